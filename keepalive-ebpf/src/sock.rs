//! Reading a socket's keepalive settings and receive times from kernel memory.
//!
//! aya-ebpf has no CO-RE, so userspace resolves the field offsets from this
//! kernel's BTF and passes them in `SOCK_OFFSETS`. These reads happen only
//! for probes, timeouts and closes, never on the per-packet fast path.

use aya_ebpf::helpers::{bpf_jiffies64, bpf_probe_read_kernel};
use keepalive_common::{KeepaliveConfig, UNKNOWN, config_flags};

use crate::global;

/// Reads a `T` at `base + offset` in kernel memory; only for integers, for
/// which every bit pattern is valid.
#[inline(always)]
fn read<T>(base: u64, offset: u32) -> Option<T> {
    if base == 0 || offset == UNKNOWN {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel checks the address itself and fails
    // rather than faults on a bad one; T is an integer (see above).
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
