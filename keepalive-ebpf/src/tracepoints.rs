//! The end of a connection: the kernel giving up, errors, resets and closes.
//!
//! Classic tracepoints, whose field offsets userspace reads from tracefs at
//! start-up and passes in `TP_LAYOUT`: the same object then loads on kernels
//! whose event layouts differ (the `reason` of tcp_send_reset is 6.10+).

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use keepalive_common::{Event, KeepaliveConfig, Tuple, UNKNOWN, kind};

use crate::{
    global,
    maps::emit,
    packet::{AF_INET, AF_INET6},
    sock,
};

const IPPROTO_TCP: u16 = 6;
const TCP_SYN_RECV: u32 = 3;
const TCP_TIME_WAIT: u32 = 6;
const TCP_CLOSE: u32 = 7;
const TCP_LISTEN: u32 = 10;
const TCP_NEW_SYN_RECV: u32 = 12;

/// Reads the field at `offset` of the tracepoint's record; only for integers
/// and byte arrays, for which every bit pattern is valid.
#[inline(always)]
fn field<T>(ctx: &TracePointContext, offset: u32) -> Option<T> {
    if offset == UNKNOWN {
        return None;
    }
    // SAFETY: read_at is bpf_probe_read_kernel at ctx + offset, which fails
    // rather than faults past the record; T is plain data (see above).
    unsafe { ctx.read_at::<T>(offset as usize).ok() }
}

/// The ports, family and addresses most sock/tcp tracepoints share.
#[inline(always)]
fn tuple_from_fields(ctx: &TracePointContext, offsets: [u32; 7]) -> Option<Tuple> {
    let [sport, dport, family, saddr, daddr, saddr_v6, daddr_v6] = offsets;
    let mut tuple = Tuple {
        local_port: field(ctx, sport)?,
        remote_port: field(ctx, dport)?,
        family: field(ctx, family)?,
        ..Tuple::default()
    };
    if tuple.family == AF_INET {
        tuple.local_addr[..4].copy_from_slice(&field::<[u8; 4]>(ctx, saddr)?);
        tuple.remote_addr[..4].copy_from_slice(&field::<[u8; 4]>(ctx, daddr)?);
    } else {
        tuple.local_addr = field(ctx, saddr_v6)?;
        tuple.remote_addr = field(ctx, daddr_v6)?;
    }
    Some(tuple)
}

/// Parses a `struct sockaddr_in` or `sockaddr_in6` as tcp_send_reset stores it.
#[inline(always)]
fn endpoint(raw: &[u8; 28], addr: &mut [u8; 16]) -> (u16, u16) {
    let family = u16::from_ne_bytes([raw[0], raw[1]]);
    let port = u16::from_be_bytes([raw[2], raw[3]]);
    if family == AF_INET {
        addr[..4].copy_from_slice(&raw[4..8]);
    } else if family == AF_INET6 {
        addr.copy_from_slice(&raw[8..24]);
    }
    (family, port)
}

/// An event about `sk` (0 where the tracepoint has no socket pointer).
#[inline(always)]
fn event(kind: u32, value: u32, tuple: Tuple, sk: u64) -> Event {
    let mut event = Event {
        // SAFETY: bpf_ktime_get_ns has no arguments and no preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        span_ns: 0,
        kind,
        value,
        tuple,
        config: if sk == 0 {
            KeepaliveConfig::default()
        } else {
            sock::keepalive_config(sk)
        },
        socket_ino: sock::socket_inode(sk),
        ..Event::default()
    };
    sock::identity(sk, &mut event);
    event
}

/// tcp:tcp_send_reset: reports KEEPALIVE_RESET when the keepalive timer resets
/// a dead connection (reason SK_RST_REASON_TCP_KEEPALIVE_TIMEOUT, kernel
/// ≥ ~6.12). Earlier kernels have no reason; userspace then infers it from
/// the socket error.
#[tracepoint]
pub fn tcp_send_reset(ctx: TracePointContext) -> u32 {
    let _ = try_send_reset(&ctx);
    0
}

fn try_send_reset(ctx: &TracePointContext) -> Option<()> {
    let keepalive_reason = global!(TP_LAYOUT.keepalive_timeout_reason);
    if keepalive_reason == UNKNOWN {
        return None;
    }
    let reason: u32 = field(ctx, global!(TP_LAYOUT.send_reset_reason))?;
    if reason != keepalive_reason {
        return None;
    }
    let sk: u64 = field(ctx, global!(TP_LAYOUT.send_reset_skaddr))?;
    let saddr: [u8; 28] = field(ctx, global!(TP_LAYOUT.send_reset_saddr))?;
    let daddr: [u8; 28] = field(ctx, global!(TP_LAYOUT.send_reset_daddr))?;
    let mut tuple = Tuple::default();
    (tuple.family, tuple.local_port) = endpoint(&saddr, &mut tuple.local_addr);
    (_, tuple.remote_port) = endpoint(&daddr, &mut tuple.remote_addr);
    emit(&event(kind::KEEPALIVE_RESET, reason, tuple, sk));
    Some(())
}

/// raw_tp inet_sk_error_report: reports SOCKET_ERROR with the error the
/// application will see (ETIMEDOUT after keepalive, user or retransmission
/// timeout; ECONNRESET…). A raw tracepoint because its only argument is the
/// socket, which the classic one does not record: the namespace, the state
/// and whether data was outstanding come from it. Kernel ≥ 5.15 (the
/// tracepoint), offsets from BTF.
#[raw_tracepoint(tracepoint = "inet_sk_error_report")]
pub fn inet_sk_error_report(ctx: RawTracePointContext) -> i32 {
    let _ = try_error_report(&ctx);
    0
}

fn try_error_report(ctx: &RawTracePointContext) -> Option<()> {
    let sk: u64 = ctx.arg(0);
    let (protocol, error) = sock::protocol_and_error(sk)?;
    if protocol != IPPROTO_TCP {
        return None;
    }
    let tuple = sock::tuple(sk)?;
    let mut event = event(kind::SOCKET_ERROR, error.unsigned_abs(), tuple, sk);
    // The settings matter only for what the timeline already knows.
    event.config = KeepaliveConfig::default();
    emit(&event);
    Some(())
}

/// tcp:tcp_receive_reset: reports RESET_RECEIVED when the peer resets the
/// connection, e.g. a rebooted peer answering a probe for a socket it no
/// longer has.
#[tracepoint]
pub fn tcp_receive_reset(ctx: TracePointContext) -> u32 {
    let _ = try_receive_reset(&ctx);
    0
}

fn try_receive_reset(ctx: &TracePointContext) -> Option<()> {
    let sk: u64 = field(ctx, global!(TP_LAYOUT.receive_reset_skaddr))?;
    let tuple = tuple_from_fields(
        ctx,
        [
            global!(TP_LAYOUT.receive_reset_sport),
            global!(TP_LAYOUT.receive_reset_dport),
            global!(TP_LAYOUT.receive_reset_family),
            global!(TP_LAYOUT.receive_reset_saddr),
            global!(TP_LAYOUT.receive_reset_daddr),
            global!(TP_LAYOUT.receive_reset_saddr_v6),
            global!(TP_LAYOUT.receive_reset_daddr_v6),
        ],
    )?;
    emit(&event(kind::RESET_RECEIVED, 0, tuple, sk));
    Some(())
}

/// sock:inet_sock_set_state: reports CLOSED when a connected socket goes to
/// TCP_CLOSE, the end of its timeline, with its settings at that moment.
#[tracepoint]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    let _ = try_set_state(&ctx);
    0
}

fn try_set_state(ctx: &TracePointContext) -> Option<()> {
    let protocol: u16 = field(ctx, global!(TP_LAYOUT.state_protocol))?;
    let new_state: i32 = field(ctx, global!(TP_LAYOUT.state_newstate))?;
    if protocol != IPPROTO_TCP || new_state as u32 != TCP_CLOSE {
        return None;
    }
    let old_state = field::<i32>(ctx, global!(TP_LAYOUT.state_oldstate))? as u32;
    // Listeners, half-open and TIME_WAIT sockets never send keepalive probes.
    if matches!(
        old_state,
        TCP_LISTEN | TCP_SYN_RECV | TCP_NEW_SYN_RECV | TCP_TIME_WAIT | TCP_CLOSE
    ) {
        return None;
    }
    let sk: u64 = field(ctx, global!(TP_LAYOUT.state_skaddr))?;
    let tuple = tuple_from_fields(
        ctx,
        [
            global!(TP_LAYOUT.state_sport),
            global!(TP_LAYOUT.state_dport),
            global!(TP_LAYOUT.state_family),
            global!(TP_LAYOUT.state_saddr),
            global!(TP_LAYOUT.state_daddr),
            global!(TP_LAYOUT.state_saddr_v6),
            global!(TP_LAYOUT.state_daddr_v6),
        ],
    )?;
    emit(&event(kind::CLOSED, old_state, tuple, sk));
    Some(())
}
