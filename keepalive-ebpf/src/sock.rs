//! Reading a socket's keepalive settings and receive times from kernel memory.
//!
//! aya-ebpf has no CO-RE, so userspace resolves the field offsets from this
//! kernel's BTF and passes them in `SOCK_OFFSETS`. These reads happen only
//! for probes, timeouts and closes, never on the per-packet fast path.

use aya_ebpf::helpers::{bpf_jiffies64, bpf_probe_read_kernel};
use keepalive_common::{KeepaliveConfig, UNKNOWN, config_flags};

use crate::global;

/// Reads a `T` at `base + offset` in kernel memory; only for integers and
/// byte arrays, for which every bit pattern is valid.
#[inline(always)]
fn read<T>(base: u64, offset: u32) -> Option<T> {
    if base == 0 || offset == UNKNOWN {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel checks the address itself and fails
    // rather than faults on a bad one; T is plain data (see above).
    unsafe { bpf_probe_read_kernel((base + u64::from(offset)) as *const T).ok() }
}

/// Whether SO_KEEPALIVE is on, when the kernel layout is known.
#[inline(always)]
pub fn keepalive_on(sk: u64) -> Option<bool> {
    let flags: u64 = read(sk, global!(SOCK_OFFSETS.sk_flags))?;
    let bit = global!(SOCK_OFFSETS.sock_keepopen_bit);
    if bit >= 64 {
        return None;
    }
    Some((flags >> bit) & 1 == 1)
}

/// True when the socket has data queued but not sent: a probe-shaped segment
/// is then a zero-window probe, not a keepalive probe.
#[inline(always)]
pub fn has_unsent_data(sk: u64) -> Option<bool> {
    let write_seq: u32 = read(sk, global!(SOCK_OFFSETS.write_seq))?;
    let snd_nxt: u32 = read(sk, global!(SOCK_OFFSETS.snd_nxt))?;
    Some(write_seq != snd_nxt)
}

/// The socket's inode number, which userspace maps to the process holding
/// it (probes leave from timer context, where the current task is unrelated).
#[inline(always)]
pub fn socket_inode(sk: u64) -> u64 {
    let Some(socket) = read::<u64>(sk, global!(SOCK_OFFSETS.sk_socket)) else {
        return 0;
    };
    read::<u64>(socket, global!(SOCK_OFFSETS.socket_ino)).unwrap_or(0)
}

/// Nanoseconds since the last segment from the peer, as the keepalive timer
/// measures it: max(rcv_tstamp, icsk_ack.lrcvtime), in jiffies.
#[inline(always)]
pub fn idle_ns(sk: u64) -> u64 {
    let hz = global!(SOCK_OFFSETS.hz);
    let (Some(rcv_tstamp), Some(lrcvtime)) = (
        read::<u32>(sk, global!(SOCK_OFFSETS.rcv_tstamp)),
        read::<u32>(sk, global!(SOCK_OFFSETS.icsk_ack_lrcvtime)),
    ) else {
        return 0;
    };
    if hz == 0 {
        return 0;
    }
    let last = if (lrcvtime.wrapping_sub(rcv_tstamp) as i32) > 0 {
        lrcvtime
    } else {
        rcv_tstamp
    };
    // SAFETY: bpf_jiffies64 has no arguments and no preconditions.
    let now = unsafe { bpf_jiffies64() } as u32;
    u64::from(now.wrapping_sub(last)) * 1_000_000_000 / u64::from(hz)
}

/// The settings the keepalive timer applies to `sk`, with the namespace's
/// sysctl defaults where the socket has none of its own (the kernel keeps 0
/// for "use the default"). A field left 0 means its default was unreadable.
#[inline(always)]
pub fn keepalive_config(sk: u64) -> KeepaliveConfig {
    let mut config = KeepaliveConfig::default();
    let hz = global!(SOCK_OFFSETS.hz);
    if sk == 0 || hz == 0 {
        return config;
    }
    let Some(on) = keepalive_on(sk) else {
        return config;
    };
    let mut idle: u32 = read(sk, global!(SOCK_OFFSETS.keepalive_time)).unwrap_or(0);
    let mut intvl: u32 = read(sk, global!(SOCK_OFFSETS.keepalive_intvl)).unwrap_or(0);
    let mut cnt = u32::from(read::<u8>(sk, global!(SOCK_OFFSETS.keepalive_probes)).unwrap_or(0));
    if (idle == 0 || intvl == 0 || cnt == 0)
        && let Some(net) = read::<u64>(sk, global!(SOCK_OFFSETS.skc_net))
    {
        if idle == 0 {
            idle = read(net, global!(SOCK_OFFSETS.net_keepalive_time)).unwrap_or(0);
        }
        if intvl == 0 {
            intvl = read(net, global!(SOCK_OFFSETS.net_keepalive_intvl)).unwrap_or(0);
        }
        if cnt == 0 {
            cnt =
                u32::from(read::<u8>(net, global!(SOCK_OFFSETS.net_keepalive_probes)).unwrap_or(0));
        }
    }
    config.flags = config_flags::KNOWN | if on { config_flags::KEEPALIVE_ON } else { 0 };
    config.idle_s = idle / hz;
    config.intvl_s = intvl / hz;
    config.cnt = cnt;
    config.user_timeout_ms = read(sk, global!(SOCK_OFFSETS.icsk_user_timeout)).unwrap_or(0);
    config
}

/// Inode of the socket's network namespace (what /proc/PID/ns/net shows),
/// 0 when unknown.
#[inline(always)]
pub fn netns_inode(sk: u64) -> u32 {
    let Some(net) = read::<u64>(sk, global!(SOCK_OFFSETS.skc_net)) else {
        return 0;
    };
    read::<u32>(net, global!(SOCK_OFFSETS.net_ns_inum)).unwrap_or(0)
}

/// The socket's TCP state, when it can be read.
#[inline(always)]
pub fn tcp_state(sk: u64) -> Option<u8> {
    read::<u8>(sk, global!(SOCK_OFFSETS.skc_state))
}

/// Data written and not yet acknowledged: write_seq != snd_una. Survives
/// the write-queue purge that precedes a timeout's error report.
#[inline(always)]
pub fn data_outstanding(sk: u64) -> Option<bool> {
    let write_seq: u32 = read(sk, global!(SOCK_OFFSETS.write_seq))?;
    let snd_una: u32 = read(sk, global!(SOCK_OFFSETS.snd_una))?;
    Some(write_seq != snd_una)
}

/// The namespace, state and data-outstanding flag every event carries.
#[inline(always)]
pub fn identity(sk: u64, event: &mut keepalive_common::Event) {
    use keepalive_common::event_flags;
    if sk == 0 {
        return;
    }
    event.netns_ino = netns_inode(sk);
    if let Some(state) = tcp_state(sk) {
        event.tcp_state = state;
        event.flags |= event_flags::STATE_KNOWN;
    }
    match data_outstanding(sk) {
        Some(true) => event.flags |= event_flags::DATA_KNOWN | event_flags::DATA_OUTSTANDING,
        Some(false) => event.flags |= event_flags::DATA_KNOWN,
        None => {}
    }
}

/// The connection as this socket sees it, from its sock_common fields (for
/// hooks that get only the socket).
#[inline(always)]
pub fn tuple(sk: u64) -> Option<keepalive_common::Tuple> {
    use crate::packet::{AF_INET, AF_INET6};
    let family: u16 = read(sk, global!(SOCK_OFFSETS.skc_family))?;
    let mut tuple = keepalive_common::Tuple {
        family,
        local_port: u16::from_be(read(sk, global!(SOCK_OFFSETS.inet_sport))?),
        remote_port: u16::from_be(read(sk, global!(SOCK_OFFSETS.skc_dport))?),
        ..keepalive_common::Tuple::default()
    };
    if family == AF_INET {
        tuple.local_addr[..4]
            .copy_from_slice(&read::<[u8; 4]>(sk, global!(SOCK_OFFSETS.skc_rcv_saddr))?);
        tuple.remote_addr[..4]
            .copy_from_slice(&read::<[u8; 4]>(sk, global!(SOCK_OFFSETS.skc_daddr))?);
    } else if family == AF_INET6 {
        tuple.local_addr = read(sk, global!(SOCK_OFFSETS.skc_v6_rcv_saddr))?;
        tuple.remote_addr = read(sk, global!(SOCK_OFFSETS.skc_v6_daddr))?;
    } else {
        return None;
    }
    Some(tuple)
}

/// sock::sk_protocol and sock::sk_err.
#[inline(always)]
pub fn protocol_and_error(sk: u64) -> Option<(u16, i32)> {
    Some((
        read(sk, global!(SOCK_OFFSETS.sk_protocol))?,
        read(sk, global!(SOCK_OFFSETS.sk_err))?,
    ))
}
