//! Offsets of the socket fields the kernel programs read, from this kernel's
//! BTF. aya-ebpf has no CO-RE, so this is how one object fits many kernels.

use btf_rs::{Btf, Type};
use keepalive_common::{SockOffsets, UNKNOWN};

/// A field found in BTF: byte offset from the start of the outer struct, size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub offset: u32,
    pub size: u32,
}

/// Skips typedefs and qualifiers down to the type with a layout.
fn strip(btf: &Btf, mut ty: Type) -> Option<Type> {
    for _ in 0..16 {
        ty = match &ty {
            Type::Typedef(t) => btf.resolve_chained_type(t).ok()?,
            Type::Volatile(t) | Type::Const(t) | Type::Restrict(t) => {
                btf.resolve_chained_type(t).ok()?
            }
            Type::TypeTag(t) => btf.resolve_chained_type(t).ok()?,
            _ => return Some(ty),
        };
    }
    None
}

fn size_of(btf: &Btf, ty: &Type) -> Option<u32> {
    match ty {
        Type::Int(i) => Some(i.size() as u32),
        Type::Ptr(_) => Some(8),
        Type::Enum(e) => Some(e.size() as u32),
        Type::Struct(s) | Type::Union(s) => Some(s.size() as u32),
        Type::Array(a) => {
            let elem = strip(btf, btf.resolve_chained_type(a).ok()?)?;
            Some(size_of(btf, &elem)? * a.len() as u32)
        }
        _ => None,
    }
}

/// Finds `name` among the members of `ty`, looking inside anonymous structs
/// and unions as C does. Returns the bit offset and the member's type.
fn find_member(btf: &Btf, ty: &Type, name: &str) -> Option<(u32, Type)> {
    let (Type::Struct(s) | Type::Union(s)) = ty else {
        return None;
    };
    for member in &s.members {
        let member_name = btf.resolve_name(member).unwrap_or_default();
        let member_ty = strip(btf, btf.resolve_chained_type(member).ok()?)?;
        if member_name == name {
            return Some((member.bit_offset(), member_ty));
        }
        if member_name.is_empty()
            && let Some((inner, found)) = find_member(btf, &member_ty, name)
        {
            return Some((member.bit_offset() + inner, found));
        }
    }
    None
}

/// Resolves `struct_name.a.b.c` to its offset and size.
pub fn field(btf: &Btf, struct_name: &str, path: &[&str]) -> Option<Field> {
    let mut ty = btf
        .resolve_types_by_name(struct_name)
        .ok()?
        .into_iter()
        .find(|t| matches!(t, Type::Struct(s) if !s.members.is_empty()))?;
    let mut bits = 0;
    for name in path {
        let (offset, member_ty) = find_member(btf, &ty, name)?;
        bits += offset;
        ty = member_ty;
    }
    if bits % 8 != 0 {
        return None; // a bitfield: not readable with a plain load
    }
    Some(Field {
        offset: bits / 8,
        size: size_of(btf, &ty)?,
    })
}

/// The value of an enumerator, e.g. SOCK_KEEPOPEN in enum sock_flags.
pub fn enum_value(btf: &Btf, enum_name: &str, enumerator: &str) -> Option<u32> {
    btf.resolve_types_by_name(enum_name)
        .ok()?
        .into_iter()
        .find_map(|t| match t {
            Type::Enum(e) => e
                .members
                .iter()
                .find(|m| btf.resolve_name(*m).ok().as_deref() == Some(enumerator))
                .map(|m| m.val()),
            _ => None,
        })
}

/// Kernel ticks per second (CONFIG_HZ): the resolution of the coarse clocks
/// is one jiffy.
pub fn kernel_hz() -> Option<u32> {
    let res = rustix::time::clock_getres(rustix::time::ClockId::MonotonicCoarse);
    let tick_ns = res.tv_sec as u64 * 1_000_000_000 + res.tv_nsec as u64;
    (tick_ns > 0).then(|| (1_000_000_000 / tick_ns) as u32)
}

/// What resolving the offsets found, for doctor and the start-up notice.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub offsets: SockOffsets,
    /// Fields that could not be resolved, each with what it costs.
    pub missing: Vec<&'static str>,
}

fn expect(field: Option<Field>, size: u32) -> u32 {
    match field {
        Some(f) if f.size == size => f.offset,
        _ => UNKNOWN,
    }
}

pub fn resolve(btf: &Btf) -> Resolved {
    let mut o = SockOffsets::unknown();
    // Newer kernels keep the flags in sock_common (`#define sk_flags __sk_common.skc_flags`).
    o.sk_flags = expect(
        field(btf, "sock", &["sk_flags"])
            .or_else(|| field(btf, "sock", &["__sk_common", "skc_flags"])),
        8,
    );
    o.sock_keepopen_bit = enum_value(btf, "sock_flags", "SOCK_KEEPOPEN").unwrap_or(UNKNOWN);
    o.keepalive_time = expect(field(btf, "tcp_sock", &["keepalive_time"]), 4);
    o.keepalive_intvl = expect(field(btf, "tcp_sock", &["keepalive_intvl"]), 4);
    o.keepalive_probes = expect(field(btf, "tcp_sock", &["keepalive_probes"]), 1);
    o.rcv_tstamp = expect(field(btf, "tcp_sock", &["rcv_tstamp"]), 4);
    o.write_seq = expect(field(btf, "tcp_sock", &["write_seq"]), 4);
    o.snd_nxt = expect(field(btf, "tcp_sock", &["snd_nxt"]), 4);
    o.icsk_user_timeout = expect(
        field(btf, "inet_connection_sock", &["icsk_user_timeout"]),
        4,
    );
    o.icsk_ack_lrcvtime = expect(
        field(btf, "inet_connection_sock", &["icsk_ack", "lrcvtime"]),
        4,
    );
    o.skc_net = expect(field(btf, "sock", &["__sk_common", "skc_net"]), 8);
    o.net_keepalive_time = expect(field(btf, "net", &["ipv4", "sysctl_tcp_keepalive_time"]), 4);
    o.net_keepalive_intvl = expect(
        field(btf, "net", &["ipv4", "sysctl_tcp_keepalive_intvl"]),
        4,
    );
    o.net_keepalive_probes = expect(
        field(btf, "net", &["ipv4", "sysctl_tcp_keepalive_probes"]),
        1,
    );
    o.sk_socket = expect(field(btf, "sock", &["sk_socket"]), 8);
    o.socket_ino = match (
        field(btf, "socket_alloc", &["socket"]),
        field(btf, "socket_alloc", &["vfs_inode", "i_ino"]),
    ) {
        (Some(socket), Some(ino)) if ino.size == 8 => ino.offset - socket.offset,
        _ => UNKNOWN,
    };
    o.net_ns_inum = expect(field(btf, "net", &["ns", "inum"]), 4);
    o.snd_una = expect(field(btf, "tcp_sock", &["snd_una"]), 4);
    let common = |name: &str, size: u32| expect(field(btf, "sock", &["__sk_common", name]), size);
    o.skc_state = common("skc_state", 1);
    o.skc_family = common("skc_family", 2);
    o.skc_dport = common("skc_dport", 2);
    o.skc_rcv_saddr = common("skc_rcv_saddr", 4);
    o.skc_daddr = common("skc_daddr", 4);
    o.skc_v6_rcv_saddr = common("skc_v6_rcv_saddr", 16);
    o.skc_v6_daddr = common("skc_v6_daddr", 16);
    o.inet_sport = expect(field(btf, "inet_sock", &["inet_sport"]), 2);
    o.sk_protocol = expect(field(btf, "sock", &["sk_protocol"]), 2);
    o.sk_err = expect(field(btf, "sock", &["sk_err"]), 4);
    o.hz = kernel_hz().unwrap_or(0);

    let mut missing = Vec::new();
    if o.sk_flags == UNKNOWN || o.sock_keepopen_bit == UNKNOWN || o.hz == 0 {
        missing.push("socket settings (SO_KEEPALIVE flag, HZ): probes carry no config");
    }
    if o.keepalive_time == UNKNOWN || o.keepalive_intvl == UNKNOWN || o.keepalive_probes == UNKNOWN
    {
        missing.push("tcp_sock keepalive fields: settings shown as the namespace defaults");
    }
    if o.rcv_tstamp == UNKNOWN || o.icsk_ack_lrcvtime == UNKNOWN {
        missing.push("receive timestamps: probes carry no idle_ms");
    }
    if o.write_seq == UNKNOWN || o.snd_nxt == UNKNOWN {
        missing.push("write_seq: zero-window probes told apart by packets in flight only");
    }
    if o.skc_net == UNKNOWN || o.net_keepalive_time == UNKNOWN {
        missing.push("per-namespace defaults: this namespace's sysctls used instead");
    }
    if o.sk_socket == UNKNOWN || o.socket_ino == UNKNOWN {
        missing.push("socket inode: pid and comm of connections unknown");
    }
    if o.net_ns_inum == UNKNOWN || o.skc_net == UNKNOWN {
        missing.push(
            "network namespace inode: connections of different namespaces with the same addresses are merged",
        );
    }
    if o.snd_una == UNKNOWN || o.write_seq == UNKNOWN {
        missing
            .push("snd_una: a timeout with data outstanding cannot be told from a keepalive kill");
    }
    if [
        o.skc_state,
        o.skc_family,
        o.inet_sport,
        o.skc_dport,
        o.skc_rcv_saddr,
        o.skc_daddr,
    ]
    .contains(&UNKNOWN)
        || o.sk_protocol == UNKNOWN
        || o.sk_err == UNKNOWN
    {
        missing.push("sock_common fields: socket errors (timeouts) are not seen");
    }
    if o.icsk_user_timeout == UNKNOWN {
        missing.push("TCP_USER_TIMEOUT: user timeouts reported as keepalive timeouts");
    }
    Resolved {
        offsets: o,
        missing,
    }
}

pub fn load_vmlinux() -> anyhow::Result<Btf> {
    use anyhow::Context as _;
    Btf::from_file("/sys/kernel/btf/vmlinux")
        .context("reading kernel BTF at /sys/kernel/btf/vmlinux")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hz_is_a_plausible_config_hz() {
        let hz = kernel_hz().expect("clock_getres works");
        assert!([100, 250, 300, 1000].contains(&hz), "HZ = {hz}");
    }

    /// Runs without root: /sys/kernel/btf/vmlinux is world-readable.
    #[test]
    fn resolves_this_kernels_socket_fields() {
        let Ok(btf) = load_vmlinux() else {
            eprintln!("skipped: no /sys/kernel/btf/vmlinux on this kernel");
            return;
        };
        let r = resolve(&btf);
        assert!(r.missing.is_empty(), "missing: {:?}", r.missing);
        // tcp_sock begins with inet_connection_sock, which begins with sock.
        let icsk = field(&btf, "tcp_sock", &["inet_conn"]).unwrap();
        assert_eq!(icsk.offset, 0);
        assert!(r.offsets.keepalive_time > r.offsets.sk_flags);
        assert_eq!(enum_value(&btf, "sock_flags", "SOCK_DEAD"), Some(0));
    }
}
