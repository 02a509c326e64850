//! The contract between the kernel programs (keepalive-ebpf) and userspace.
//!
//! Everything that crosses the ring buffer or a map is `#[repr(C)]`, made of
//! fixed-width integers and byte arrays with explicit padding: no `bool`, no
//! enum, no `Option`. Userspace turns tags into enums with `TryFrom` and
//! rejects values it does not know.
#![no_std]

/// The longest IP + TCP header a segment without payload can carry
/// (IPv4 60 + TCP 60). Anything longer carries data and cannot be a probe or
/// its answer, so the cgroup_skb programs let it pass after one comparison.
pub const MAX_HEADER_ONLY_LEN: u32 = 120;

/// `Event::kind` values.
pub mod kind {
    /// A keepalive probe left this host (cgroup_skb egress).
    pub const PROBE: u32 = 1;
    /// The peer answered the outstanding probe (cgroup_skb ingress).
    pub const ACK: u32 = 2;
    /// The kernel's keepalive timer reset the connection
    /// (`tcp:tcp_send_reset` with reason TCP_KEEPALIVE_TIMEOUT).
    pub const KEEPALIVE_RESET: u32 = 3;
    /// An error was reported on a TCP socket (`sock:inet_sk_error_report`);
    /// `value` is the errno.
    pub const SOCKET_ERROR: u32 = 4;
    /// The peer reset the connection (`tcp:tcp_receive_reset`).
    pub const RESET_RECEIVED: u32 = 5;
    /// The connection went to TCP_CLOSE (`sock:inet_sock_set_state`);
    /// `value` is the old state.
    pub const CLOSED: u32 = 6;
    /// A connection was established (sock_ops); `config` holds its settings.
    pub const ESTABLISHED: u32 = 7;
    /// The policy applied keepalive options to a new connection (sock_ops);
    /// `config` holds the values read back, `value` the first failing
    /// bpf_setsockopt's -errno or 0.
    pub const OPTIONS_SET: u32 = 8;
    /// The outstanding probe run ended because something other than its
    /// answer arrived (data, an ACK too late to be the answer, or a segment
    /// the ingress check does not match): the peer is alive, no round trip
    /// can be told. `value` is the last probe's number.
    pub const ANSWERED_BY_TRAFFIC: u32 = 9;
}

/// `Event::flags` bits.
pub mod event_flags {
    /// Data was written and not yet acknowledged (write_seq != snd_una) when
    /// the event was made: a timeout then comes from the retransmission or
    /// zero-window path, not from keepalive.
    pub const DATA_OUTSTANDING: u8 = 1;
    /// `tcp_state` was read from the socket.
    pub const STATE_KNOWN: u8 = 2;
    /// `DATA_OUTSTANDING` was read from the socket (set or not).
    pub const DATA_KNOWN: u8 = 4;
}

/// `KeepaliveConfig::flags` bits.
pub mod config_flags {
    /// The settings were read from the socket; without it the rest is zero.
    pub const KNOWN: u32 = 1;
    /// SO_KEEPALIVE is on.
    pub const KEEPALIVE_ON: u32 = 2;
}

/// The connection as seen from this host: `local` sent the packet on egress
/// and received it on ingress. Addresses in network byte order; an IPv4
/// address fills the first 4 bytes. Ports in host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    pub local_port: u16,
    pub remote_port: u16,
    /// AF_INET (2) or AF_INET6 (10): the family of the addresses above,
    /// which is the packet's, not the socket's (an AF_INET6 socket talking to
    /// an IPv4-mapped address sends IPv4).
    pub family: u16,
    pub _pad: u16,
}

/// A socket's keepalive settings as the kernel applies them, with the
/// namespace's defaults already substituted where the socket has none.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeepaliveConfig {
    pub flags: u32,
    pub idle_s: u32,
    pub intvl_s: u32,
    pub cnt: u32,
    pub user_timeout_ms: u32,
    pub _pad: u32,
}

/// One record on the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Event {
    /// bpf_ktime_get_ns(): CLOCK_MONOTONIC.
    pub ts_ns: u64,
    /// PROBE: time since the last segment from the peer; ACK: round trip of
    /// the answered probe. Zero otherwise or when unknown.
    pub span_ns: u64,
    pub kind: u32,
    /// PROBE/ACK: the probe's number in the current unanswered run (1 for the
    /// first after idle). SOCKET_ERROR: errno. KEEPALIVE_RESET: the reason.
    /// CLOSED: the old TCP state. OPTIONS_SET: 0 or -errno.
    pub value: u32,
    pub tuple: Tuple,
    pub config: KeepaliveConfig,
    /// The socket's inode number (as in /proc/PID/fd/N -> socket:[INODE]),
    /// 0 when unknown or the socket has no file (kernel-owned, orphaned).
    pub socket_ino: u64,
    /// Inode of the socket's network namespace (as /proc/PID/ns/net shows
    /// it), 0 when unknown: with the tuple, the connection's identity.
    pub netns_ino: u32,
    /// The socket's TCP state (TCP_ESTABLISHED = 1 ...) when the event was
    /// made, valid with `event_flags::STATE_KNOWN`.
    pub tcp_state: u8,
    pub flags: u8,
    pub _pad: u16,
}

/// Offsets into kernel structures, resolved from BTF by userspace and passed
/// in as a read-only global. `UNKNOWN` disables whatever needs that field.
pub const UNKNOWN: u32 = u32::MAX;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockOffsets {
    /// struct sock::sk_flags (unsigned long) and the SOCK_KEEPOPEN bit.
    pub sk_flags: u32,
    pub sock_keepopen_bit: u32,
    /// struct tcp_sock fields, from the start of the socket.
    pub keepalive_time: u32,
    pub keepalive_intvl: u32,
    pub keepalive_probes: u32,
    pub rcv_tstamp: u32,
    pub write_seq: u32,
    pub snd_nxt: u32,
    /// struct inet_connection_sock fields.
    pub icsk_user_timeout: u32,
    pub icsk_ack_lrcvtime: u32,
    /// sock::__sk_common.skc_net and the per-namespace defaults in struct net.
    pub skc_net: u32,
    pub net_keepalive_time: u32,
    pub net_keepalive_intvl: u32,
    pub net_keepalive_probes: u32,
    /// sock::sk_socket, and the inode number of a `struct socket`
    /// (socket_alloc.vfs_inode.i_ino, relative to the struct socket).
    pub sk_socket: u32,
    pub socket_ino: u32,
    /// struct net::ns.inum: the namespace's inode number.
    pub net_ns_inum: u32,
    /// tcp_sock::snd_una, to tell data outstanding at a timeout.
    pub snd_una: u32,
    /// sock_common fields, for hooks that get only the socket: state,
    /// family, the peer's port (network order) and addresses.
    pub skc_state: u32,
    pub skc_family: u32,
    pub skc_dport: u32,
    pub skc_rcv_saddr: u32,
    pub skc_daddr: u32,
    pub skc_v6_rcv_saddr: u32,
    pub skc_v6_daddr: u32,
    /// inet_sock::inet_sport, the local port in network order: it outlives
    /// the close (which zeroes skc_num when the port was not bound).
    pub inet_sport: u32,
    /// sock::sk_protocol (u16) and sock::sk_err (int).
    pub sk_protocol: u32,
    pub sk_err: u32,
    /// Kernel jiffies per second (CONFIG_HZ), to turn jiffies into time.
    pub hz: u32,
}

impl SockOffsets {
    pub const fn unknown() -> Self {
        Self {
            sk_flags: UNKNOWN,
            sock_keepopen_bit: UNKNOWN,
            keepalive_time: UNKNOWN,
            keepalive_intvl: UNKNOWN,
            keepalive_probes: UNKNOWN,
            rcv_tstamp: UNKNOWN,
            write_seq: UNKNOWN,
            snd_nxt: UNKNOWN,
            icsk_user_timeout: UNKNOWN,
            icsk_ack_lrcvtime: UNKNOWN,
            skc_net: UNKNOWN,
            net_keepalive_time: UNKNOWN,
            net_keepalive_intvl: UNKNOWN,
            net_keepalive_probes: UNKNOWN,
            sk_socket: UNKNOWN,
            socket_ino: UNKNOWN,
            net_ns_inum: UNKNOWN,
            snd_una: UNKNOWN,
            skc_state: UNKNOWN,
            skc_family: UNKNOWN,
            skc_dport: UNKNOWN,
            skc_rcv_saddr: UNKNOWN,
            skc_daddr: UNKNOWN,
            skc_v6_rcv_saddr: UNKNOWN,
            skc_v6_daddr: UNKNOWN,
            inet_sport: UNKNOWN,
            sk_protocol: UNKNOWN,
            sk_err: UNKNOWN,
            hz: 0,
        }
    }
}

/// Field offsets of the tracepoints, read from tracefs format files at
/// start-up so the same object works across kernel versions.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TracepointLayout {
    /// tcp:tcp_send_reset
    pub send_reset_skaddr: u32,
    /// `UNKNOWN` before 6.10 (no reason field).
    pub send_reset_reason: u32,
    pub send_reset_saddr: u32,
    pub send_reset_daddr: u32,
    /// Value of SK_RST_REASON_TCP_KEEPALIVE_TIMEOUT, `UNKNOWN` where the
    /// kernel has no such reason (before about 6.12).
    pub keepalive_timeout_reason: u32,
    /// tcp:tcp_receive_reset
    pub receive_reset_skaddr: u32,
    pub receive_reset_sport: u32,
    pub receive_reset_dport: u32,
    pub receive_reset_family: u32,
    pub receive_reset_saddr: u32,
    pub receive_reset_daddr: u32,
    pub receive_reset_saddr_v6: u32,
    pub receive_reset_daddr_v6: u32,
    /// sock:inet_sock_set_state
    pub state_skaddr: u32,
    pub state_oldstate: u32,
    pub state_newstate: u32,
    pub state_sport: u32,
    pub state_dport: u32,
    pub state_family: u32,
    pub state_protocol: u32,
    pub state_saddr: u32,
    pub state_daddr: u32,
    pub state_saddr_v6: u32,
    pub state_daddr_v6: u32,
    pub _pad: u32,
}

impl TracepointLayout {
    pub const fn unknown() -> Self {
        Self {
            send_reset_skaddr: UNKNOWN,
            send_reset_reason: UNKNOWN,
            send_reset_saddr: UNKNOWN,
            send_reset_daddr: UNKNOWN,
            keepalive_timeout_reason: UNKNOWN,
            receive_reset_skaddr: UNKNOWN,
            receive_reset_sport: UNKNOWN,
            receive_reset_dport: UNKNOWN,
            receive_reset_family: UNKNOWN,
            receive_reset_saddr: UNKNOWN,
            receive_reset_daddr: UNKNOWN,
            receive_reset_saddr_v6: UNKNOWN,
            receive_reset_daddr_v6: UNKNOWN,
            state_skaddr: UNKNOWN,
            state_oldstate: UNKNOWN,
            state_newstate: UNKNOWN,
            state_sport: UNKNOWN,
            state_dport: UNKNOWN,
            state_family: UNKNOWN,
            state_protocol: UNKNOWN,
            state_saddr: UNKNOWN,
            state_daddr: UNKNOWN,
            state_saddr_v6: UNKNOWN,
            state_daddr_v6: UNKNOWN,
            _pad: 0,
        }
    }
}

/// Keepalive values a sock_ops policy applies to new connections. A field of
/// `UNSET` is left as the application set it.
pub const UNSET: u32 = u32::MAX;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Non-zero when the policy is active.
    pub enabled: u32,
    /// 1 = SO_KEEPALIVE on, 0 = off, `UNSET`.
    pub keepalive: u32,
    pub idle_s: u32,
    pub intvl_s: u32,
    pub cnt: u32,
    pub user_timeout_ms: u32,
    /// Either end's port must equal this; 0 = any.
    pub port: u16,
    pub _pad: u16,
    /// AF_INET / AF_INET6 of `dst_addr`; 0 = any destination.
    pub dst_family: u32,
    pub dst_addr: [u8; 16],
    pub dst_prefix_len: u32,
    pub _pad2: u32,
}

impl Policy {
    pub const fn disabled() -> Self {
        Self {
            enabled: 0,
            keepalive: UNSET,
            idle_s: UNSET,
            intvl_s: UNSET,
            cnt: UNSET,
            user_timeout_ms: UNSET,
            port: 0,
            _pad: 0,
            dst_family: 0,
            dst_addr: [0; 16],
            dst_prefix_len: 0,
            _pad2: 0,
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C) integers, Tuple and KeepaliveConfig (themselves repr(C)
    // integers and byte arrays), with no implicit padding: any bytes are valid.
    unsafe impl aya::Pod for super::Event {}
    // SAFETY: repr(C) u32 fields only, no padding: any bytes are valid.
    unsafe impl aya::Pod for super::SockOffsets {}
    // SAFETY: repr(C) u32 fields only, no padding: any bytes are valid.
    unsafe impl aya::Pod for super::TracepointLayout {}
    // SAFETY: repr(C) integers and a byte array, padding in explicit fields:
    // any bytes are valid.
    unsafe impl aya::Pod for super::Policy {}
}

const _: () = assert!(core::mem::size_of::<Tuple>() == 40);
const _: () = assert!(core::mem::size_of::<KeepaliveConfig>() == 24);
const _: () = assert!(core::mem::size_of::<Event>() == 104);
const _: () = assert!(core::mem::size_of::<Policy>() == 56);
