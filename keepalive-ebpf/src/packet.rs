//! Parsing the IP and TCP headers of segments that carry no payload.
//! cgroup_skb programs see the packet from its network header on.

use aya_ebpf::programs::SkBuffContext;
use keepalive_common::{MAX_HEADER_ONLY_LEN, Tuple};

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
const IPPROTO_TCP: u8 = 6;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// The TCP header fields the probe and answer checks need.
pub struct Segment {
    pub ip_header_len: usize,
    pub family: u16,
    pub seq: u32,
    pub ack_seq: u32,
}

/// The first 14 bytes of a TCP header, as on the wire; repr(C) pads it to
/// 16, so a read of it also covers the window field.
#[repr(C)]
struct TcpHead {
    source: u16,
    dest: u16,
    seq: u32,
    ack_seq: u32,
    data_offset: u8,
    flags: u8,
}

/// Returns the segment when the packet is TCP, carries no payload, has ACK
/// set and none of SYN, FIN, RST: the shape of a keepalive probe and of its
/// answer. Everything else returns `None`, longer packets after one compare.
#[inline(always)]
pub fn header_only_ack(ctx: &SkBuffContext) -> Option<Segment> {
    let len = ctx.len();
    if len > MAX_HEADER_ONLY_LEN {
        return None;
    }
    let (ip_header_len, family, tcp) = match linear_headers(ctx) {
        Some(headers) => headers,
        None => loaded_headers(ctx)?,
    };
    if tcp.flags & (TCP_SYN | TCP_FIN | TCP_RST) != 0 || tcp.flags & TCP_ACK == 0 {
        return None;
    }
    let tcp_header_len = usize::from(tcp.data_offset >> 4) * 4;
    if len as usize != ip_header_len + tcp_header_len {
        return None;
    }
    Some(Segment {
        ip_header_len,
        family,
        seq: u32::from_be(tcp.seq),
        ack_seq: u32::from_be(tcp.ack_seq),
    })
}

/// The common case, read in place: IPv4 without options or IPv6 without
/// extension headers, in the linear part of the skb. Direct packet access
/// saves the three bpf_skb_load_bytes calls every pure ACK would cost.
#[inline(always)]
fn linear_headers(ctx: &SkBuffContext) -> Option<(usize, u16, TcpHead)> {
    // SAFETY: ctx.skb.skb is the __sk_buff the kernel passed in, valid for
    // the whole run; the verifier turns these two u32 fields into pointers.
    let (data, data_end) = unsafe {
        (
            (*ctx.skb.skb).data as usize,
            (*ctx.skb.skb).data_end as usize,
        )
    };
    const TCP_HEAD: usize = core::mem::size_of::<TcpHead>();
    if data + 40 + TCP_HEAD <= data_end {
        // Room for either header: the version decides which. Every read in
        // this branch ends within the 40 + TCP_HEAD bytes just checked against
        // data_end, a bound the verifier proves again before it accepts a load.
        // SAFETY: byte 0, inside the checked bytes.
        let version_ihl = unsafe { *(data as *const u8) };
        if version_ihl == 0x45 {
            // SAFETY: byte 9 (IPv4 protocol), inside the checked bytes.
            if unsafe { *((data + 9) as *const u8) } != IPPROTO_TCP {
                return None;
            }
            // SAFETY: TCP_HEAD bytes from 20, inside the checked bytes; TcpHead is
            // repr(C) integers (any bit pattern is valid), read unaligned.
            let tcp = unsafe { core::ptr::read_unaligned((data + 20) as *const TcpHead) };
            return Some((20, AF_INET, tcp));
        }
        // SAFETY: byte 6 (IPv6 next header), inside the checked bytes.
        if version_ihl >> 4 == 6 && unsafe { *((data + 6) as *const u8) } == IPPROTO_TCP {
            // SAFETY: TCP_HEAD bytes from 40, inside the checked bytes; TcpHead is
            // repr(C) integers (any bit pattern is valid), read unaligned.
            let tcp = unsafe { core::ptr::read_unaligned((data + 40) as *const TcpHead) };
            return Some((40, AF_INET6, tcp));
        }
    } else if data + 20 + TCP_HEAD <= data_end {
        // A short IPv4 pure ACK (no TCP options) ends before byte 54. Every
        // read here ends within the 20 + TCP_HEAD bytes just checked.
        // SAFETY: byte 0, inside the checked bytes.
        if unsafe { *(data as *const u8) } == 0x45
            // SAFETY: byte 9 (IPv4 protocol), inside the checked bytes.
            && unsafe { *((data + 9) as *const u8) } == IPPROTO_TCP
        {
            // SAFETY: TCP_HEAD bytes from 20, inside the checked bytes; TcpHead is
            // repr(C) integers (any bit pattern is valid), read unaligned.
            let tcp = unsafe { core::ptr::read_unaligned((data + 20) as *const TcpHead) };
            return Some((20, AF_INET, tcp));
        }
    }
    None
}

/// The rare case: IP options, or headers outside the linear data.
#[inline(always)]
fn loaded_headers(ctx: &SkBuffContext) -> Option<(usize, u16, TcpHead)> {
    let version_ihl: u8 = ctx.load(0).ok()?;
    let (ip_header_len, family) = match version_ihl >> 4 {
        4 => {
            let protocol: u8 = ctx.load(9).ok()?;
            if protocol != IPPROTO_TCP {
                return None;
            }
            (usize::from(version_ihl & 0x0f) * 4, AF_INET)
        }
        6 => {
            // Extension headers are not followed: the kernel adds none to
            // keepalive probes or pure ACKs.
            let next_header: u8 = ctx.load(6).ok()?;
            if next_header != IPPROTO_TCP {
                return None;
            }
            (40, AF_INET6)
        }
        _ => return None,
    };
    let tcp: TcpHead = ctx.load(ip_header_len).ok()?;
    Some((ip_header_len, family, tcp))
}

/// Reads addresses and ports of `segment`; `egress` says which end is ours.
#[inline(always)]
pub fn tuple(ctx: &SkBuffContext, segment: &Segment, egress: bool) -> Tuple {
    let mut tuple = Tuple {
        family: segment.family,
        ..Tuple::default()
    };
    let (mut src, mut dst) = ([0u8; 16], [0u8; 16]);
    if segment.family == AF_INET {
        if let (Ok(s), Ok(d)) = (ctx.load::<[u8; 4]>(12), ctx.load::<[u8; 4]>(16)) {
            src[..4].copy_from_slice(&s);
            dst[..4].copy_from_slice(&d);
        }
    } else if let (Ok(s), Ok(d)) = (ctx.load::<[u8; 16]>(8), ctx.load::<[u8; 16]>(24)) {
        src = s;
        dst = d;
    }
    let ports: [u16; 2] = ctx.load(segment.ip_header_len).unwrap_or([0, 0]);
    let (sport, dport) = (u16::from_be(ports[0]), u16::from_be(ports[1]));
    if egress {
        (tuple.local_addr, tuple.remote_addr) = (src, dst);
        (tuple.local_port, tuple.remote_port) = (sport, dport);
    } else {
        (tuple.local_addr, tuple.remote_addr) = (dst, src);
        (tuple.local_port, tuple.remote_port) = (dport, sport);
    }
    tuple
}
