//! sock_ops: each new connection's keepalive settings, and the policy that
//! sets them. Sees only connections established after it was attached.

use aya_ebpf::{
    bindings::{
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB, bpf_sock_ops,
    },
    helpers::{bpf_getsockopt, bpf_ktime_get_ns, bpf_setsockopt, bpf_skc_to_tcp_sock},
    macros::sock_ops,
    programs::SockOpsContext,
};
use keepalive_common::{Event, KeepaliveConfig, Tuple, UNSET, config_flags, kind};

use crate::{
    global,
    maps::emit,
    packet::{AF_INET, AF_INET6},
    sock,
};

const SOL_SOCKET: i32 = 1;
const SO_KEEPALIVE: i32 = 9;
const SOL_TCP: i32 = 6;
const TCP_KEEPIDLE: i32 = 4;
const TCP_KEEPINTVL: i32 = 5;
const TCP_KEEPCNT: i32 = 6;
const TCP_USER_TIMEOUT: i32 = 18;

/// Reads one field of the sock_ops context. The verifier accepts only
/// ctx + constant loads of these fields, so each is read once, with a
/// volatile load LLVM cannot turn into pointer arithmetic on ctx.
macro_rules! ops_field {
    ($ops:expr, $($field:tt)+) => {
        // SAFETY: $ops is the bpf_sock_ops context the kernel passed in, valid
        // for the whole run; the verifier checks every field offset read.
        unsafe { core::ptr::read_volatile(&raw const (*$ops).$($field)+) }
    };
}

/// sock_ops (ACTIVE/PASSIVE_ESTABLISHED_CB): reports ESTABLISHED with the
/// settings from bpf_getsockopt, or OPTIONS_SET after applying the policy.
/// Kernel ≥ 6.0 for bpf_{get,set}sockopt of these options from sock_ops.
#[sock_ops]
pub fn keepalive_sockops(ctx: SockOpsContext) -> u32 {
    let _ = try_sockops(&ctx);
    1
}

fn try_sockops(ctx: &SockOpsContext) -> Option<()> {
    let op = ops_field!(ctx.ops, op);
    if op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB {
        return None;
    }
    let tuple = tuple_of(ctx)?;
    let mut event = Event {
        // SAFETY: bpf_ktime_get_ns has no arguments and no preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        span_ns: 0,
        kind: kind::ESTABLISHED,
        value: 0,
        tuple,
        config: KeepaliveConfig::default(),
        socket_ino: 0,
        ..Event::default()
    };
    if global!(POLICY.enabled) != 0 && policy_matches(&tuple) {
        event.kind = kind::OPTIONS_SET;
        event.value = apply_policy(ctx) as u32;
    }
    let sk = ops_field!(ctx.ops, __bindgen_anon_2.sk);
    let kernel_sk = if sk.is_null() {
        0
    } else {
        // SAFETY: sk is this callback's non-null socket, which the helper
        // accepts; the result (0 if not TCP) is only an address to read from.
        (unsafe { bpf_skc_to_tcp_sock(sk.cast()) }) as u64
    };
    event.config = read_config(ctx.ops).unwrap_or_else(|| sock::keepalive_config(kernel_sk));
    event.socket_ino = sock::socket_inode(kernel_sk);
    sock::identity(kernel_sk, &mut event);
    emit(&event);
    Some(())
}

fn tuple_of(ctx: &SockOpsContext) -> Option<Tuple> {
    // Each field is read once, up front (see ops_field!).
    let ops = ctx.ops;
    let family = ops_field!(ops, family) as u16;
    let local_port = ops_field!(ops, local_port);
    let remote_port = ops_field!(ops, remote_port);
    let mut tuple = Tuple {
        family,
        local_port: local_port as u16,
        // remote_port holds the network-order port in its upper 16 bits on
        // little-endian hosts (the kernel loads skc_dport and shifts it).
        remote_port: u16::from_be((remote_port >> 16) as u16),
        ..Tuple::default()
    };
    if family == AF_INET {
        let local = ops_field!(ops, local_ip4);
        let remote = ops_field!(ops, remote_ip4);
        tuple.local_addr[..4].copy_from_slice(&local.to_ne_bytes());
        tuple.remote_addr[..4].copy_from_slice(&remote.to_ne_bytes());
    } else if family == AF_INET6 {
        let local = [
            ops_field!(ops, local_ip6[0]),
            ops_field!(ops, local_ip6[1]),
            ops_field!(ops, local_ip6[2]),
            ops_field!(ops, local_ip6[3]),
        ];
        let remote = [
            ops_field!(ops, remote_ip6[0]),
            ops_field!(ops, remote_ip6[1]),
            ops_field!(ops, remote_ip6[2]),
            ops_field!(ops, remote_ip6[3]),
        ];
        for i in 0..4 {
            tuple.local_addr[i * 4..i * 4 + 4].copy_from_slice(&local[i].to_ne_bytes());
            tuple.remote_addr[i * 4..i * 4 + 4].copy_from_slice(&remote[i].to_ne_bytes());
        }
    } else {
        return None;
    }
    Some(tuple)
}

fn policy_matches(tuple: &Tuple) -> bool {
    let port = global!(POLICY.port);
    if port != 0 && tuple.local_port != port && tuple.remote_port != port {
        return false;
    }
    let dst_family = global!(POLICY.dst_family);
    if dst_family == 0 {
        return true;
    }
    let (remote, family) = normalized_remote(tuple);
    if u32::from(family) != dst_family {
        return false;
    }
    let prefix = global!(POLICY.dst_prefix_len);
    let dst = global!(POLICY.dst_addr);
    for i in 0..16usize {
        let bits = (prefix as usize).saturating_sub(i * 8).min(8);
        if bits == 0 {
            break;
        }
        let mask = 0xffu8 << (8 - bits);
        if remote[i] & mask != dst[i] & mask {
            return false;
        }
    }
    true
}

/// An AF_INET6 socket talking to ::ffff:a.b.c.d matches IPv4 prefixes.
fn normalized_remote(tuple: &Tuple) -> ([u8; 16], u16) {
    let a = tuple.remote_addr;
    if tuple.family == AF_INET6 && a[..10].iter().all(|b| *b == 0) && a[10] == 0xff && a[11] == 0xff
    {
        let mut v4 = [0u8; 16];
        v4[..4].copy_from_slice(&a[12..16]);
        return (v4, AF_INET);
    }
    (a, tuple.family)
}

/// Applies every value the policy sets; returns 0 or the first -errno.
fn apply_policy(ctx: &SockOpsContext) -> i64 {
    let ops = ctx.ops;
    let settings = [
        (SOL_SOCKET, SO_KEEPALIVE, global!(POLICY.keepalive)),
        (SOL_TCP, TCP_KEEPIDLE, global!(POLICY.idle_s)),
        (SOL_TCP, TCP_KEEPINTVL, global!(POLICY.intvl_s)),
        (SOL_TCP, TCP_KEEPCNT, global!(POLICY.cnt)),
        (SOL_TCP, TCP_USER_TIMEOUT, global!(POLICY.user_timeout_ms)),
    ];
    let mut first_error = 0;
    for (level, name, value) in settings {
        if value == UNSET {
            continue;
        }
        let mut value = value as i32;
        // SAFETY: ops is this program's context, as the helper requires, and
        // value a live i32: the 4 bytes passed.
        let ret = unsafe { bpf_setsockopt(ops.cast(), level, name, (&raw mut value).cast(), 4) };
        if ret != 0 && first_error == 0 {
            first_error = ret;
            aya_log_ebpf::warn!(
                ctx,
                "policy: bpf_setsockopt({}, {}) failed: {}",
                level,
                name,
                ret
            );
        }
    }
    first_error
}

fn getsockopt(ops: *mut bpf_sock_ops, level: i32, name: i32) -> Option<u32> {
    let mut value: i32 = 0;
    // SAFETY: ops is this program's context, as the helper requires, and
    // value a live i32: the helper writes at most the 4 bytes passed.
    let ret = unsafe { bpf_getsockopt(ops.cast(), level, name, (&raw mut value).cast(), 4) };
    if ret == 0 { Some(value as u32) } else { None }
}

fn read_config(ops: *mut bpf_sock_ops) -> Option<KeepaliveConfig> {
    let on = getsockopt(ops, SOL_SOCKET, SO_KEEPALIVE)? != 0;
    Some(KeepaliveConfig {
        flags: config_flags::KNOWN | if on { config_flags::KEEPALIVE_ON } else { 0 },
        idle_s: getsockopt(ops, SOL_TCP, TCP_KEEPIDLE)?,
        intvl_s: getsockopt(ops, SOL_TCP, TCP_KEEPINTVL)?,
        cnt: getsockopt(ops, SOL_TCP, TCP_KEEPCNT)?,
        user_timeout_ms: getsockopt(ops, SOL_TCP, TCP_USER_TIMEOUT)?,
        _pad: 0,
    })
}
