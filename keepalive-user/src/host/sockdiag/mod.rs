//! The TCP socket table through netlink sock_diag (what `ss` reads):
//! addresses, state, inode, uid, and the active timer with its countdown.
//! Like `ss`, one netlink socket sees its own network namespace only:
//! [`dump_tcp_states_in`] makes one inside each namespace asked for.
//!
//! - [`dump_tcp`] / [`dump_tcp_states`]: the table, IPv4 and IPv6;
//! - [`Wanted`]: one connection by its two ends, or every one with a port;
//! - [`state_name`], [`state_by_name`], [`TimerKind::name`]: `ss`'s words.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context as _;
use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::{
    SockDiagMessage,
    constants::{AF_INET, AF_INET6, IPPROTO_TCP},
    inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
};
use netlink_sys::{Socket, SocketAddr as NetlinkAddr, protocols::NETLINK_SOCK_DIAG};

use crate::{
    host::netns::{self, NetnsScope},
    model::conn::NetnsIno,
};

pub const ESTABLISHED: u8 = 1;
pub const TIME_WAIT: u8 = 6;
pub const LISTEN: u8 = 10;

/// Every state `dump_tcp_states` can ask for (ESTABLISHED..=CLOSING).
pub const ALL_STATES: u32 = 0xffe;

/// The bit of `state` in a mask for [`dump_tcp_states`].
pub const fn state_bit(state: u8) -> u32 {
    1 << state
}

/// `idiag_timer`, as `ss -o` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    Retransmit,
    Keepalive,
    TimeWait,
    ZeroWindowProbe,
}

impl TimerKind {
    fn from_raw(timer: u8) -> Option<Self> {
        match timer {
            1 => Some(Self::Retransmit),
            2 => Some(Self::Keepalive),
            3 => Some(Self::TimeWait),
            4 => Some(Self::ZeroWindowProbe),
            _ => None,
        }
    }

    /// The name `ss -o` prints in `timer:(NAME,...)`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Retransmit => "on",
            Self::Keepalive => "keepalive",
            Self::TimeWait => "timewait",
            Self::ZeroWindowProbe => "persist",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Timer {
    pub kind: TimerKind,
    /// `idiag_expires`: milliseconds until the timer fires.
    pub expires_ms: u64,
    /// `idiag_retrans`: for the keepalive and zero-window timers the probes
    /// out (unanswered so far), for retransmit the retransmissions.
    pub count: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSocket {
    /// The network namespace the table was read in.
    pub netns: NetnsIno,
    /// IPv4-mapped IPv6 addresses shown as IPv4, as `model::conn` does.
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// `TCP_ESTABLISHED` (1) .. `TCP_NEW_SYN_RECV` (12); see [`state_name`].
    pub state: u8,
    /// 0 for sockets no file refers to (TIME-WAIT, not yet accepted).
    pub inode: u64,
    pub uid: u32,
    pub timer: Option<Timer>,
}

/// Which connections a caller is after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// Exactly this local and remote end (IPv4-mapped compared as IPv4).
    Conn {
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// This port at either end.
    Port(u16),
}

impl Wanted {
    pub fn conn(local: SocketAddr, remote: SocketAddr) -> Self {
        Self::Conn {
            local: canonical(local.ip(), local.port()),
            remote: canonical(remote.ip(), remote.port()),
        }
    }

    pub fn matches(&self, socket: &TcpSocket) -> bool {
        match *self {
            Self::Conn { local, remote } => socket.local == local && socket.remote == remote,
            Self::Port(port) => socket.local.port() == port || socket.remote.port() == port,
        }
    }
}

/// The sockets in states `mask` (see [`state_bit`]) that `wanted` names,
/// in the namespaces of `scope`.
pub fn find(scope: &NetnsScope, wanted: Wanted, mask: u32) -> anyhow::Result<Vec<TcpSocket>> {
    let mut table = dump_tcp_states_in(scope, mask)?;
    table.retain(|s| wanted.matches(s));
    Ok(table)
}

/// The TCP sockets in states `mask` of every namespace in `scope` (one
/// netlink socket made inside each: sock_diag answers for its own only). A
/// namespace that goes away meanwhile is skipped.
pub fn dump_tcp_states_in(scope: &NetnsScope, mask: u32) -> anyhow::Result<Vec<TcpSocket>> {
    let own = netns::own();
    let mut sockets = Vec::new();
    for ns in scope.namespaces() {
        let table = if ns.ino == own {
            dump_tcp_states(mask)
        } else {
            netns::run_in(&ns, || dump_tcp_states(mask))
        };
        match table {
            Ok(mut table) => {
                for socket in &mut table {
                    socket.netns = ns.ino;
                }
                sockets.append(&mut table);
            }
            Err(err) if matches!(scope, NetnsScope::All) => {
                log::debug!("skipping network namespace {}: {err:#}", ns.name);
            }
            Err(err) => return Err(err),
        }
    }
    Ok(sockets)
}

/// TCP state names as `ss` prints them.
pub fn state_name(state: u8) -> &'static str {
    match state {
        1 => "ESTAB",
        2 => "SYN-SENT",
        3 => "SYN-RECV",
        4 => "FIN-WAIT-1",
        5 => "FIN-WAIT-2",
        6 => "TIME-WAIT",
        7 => "UNCONN",
        8 => "CLOSE-WAIT",
        9 => "LAST-ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW-SYN-RECV",
        _ => "UNKNOWN",
    }
}

/// The state number for a name given on the command line (any case, `-` or
/// `_`; `established` and `close` too).
pub fn state_by_name(name: &str) -> Option<u8> {
    let wanted = name.to_ascii_uppercase().replace('_', "-");
    let wanted = match wanted.as_str() {
        "ESTABLISHED" => "ESTAB",
        "CLOSE" => "UNCONN",
        other => other,
    };
    (1..=12).find(|s| state_name(*s) == wanted)
}

fn canonical(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip.to_canonical(), port)
}

/// Every TCP socket of this network namespace but NEW-SYN-RECV requests,
/// IPv4 and IPv6.
pub fn dump_tcp() -> anyhow::Result<Vec<TcpSocket>> {
    dump_tcp_states(ALL_STATES)
}

/// The TCP sockets of this network namespace in the states of `mask`.
pub fn dump_tcp_states(mask: u32) -> anyhow::Result<Vec<TcpSocket>> {
    let mut socket =
        Socket::new(NETLINK_SOCK_DIAG).context("opening a NETLINK_SOCK_DIAG socket")?;
    socket.bind_auto().context("binding the netlink socket")?;
    socket
        .connect(&NetlinkAddr::new(0, 0))
        .context("connecting the netlink socket")?;
    let mut sockets = Vec::new();
    for family in [AF_INET, AF_INET6] {
        dump_family(&mut socket, family, mask, &mut sockets)?;
    }
    let own = netns::own();
    for socket in &mut sockets {
        socket.netns = own;
    }
    Ok(sockets)
}

/// `struct inet_diag_msg` fields the crate does not keep for every timer
/// (it drops `idiag_retrans` for keepalive, `idiag_expires` for TIME-WAIT):
/// timer, retrans and expires, read from the message's own bytes.
fn raw_timer(message: &[u8]) -> Option<Timer> {
    const NLMSG_HDRLEN: usize = 16;
    // family, state, timer, retrans, then the 48-byte inet_diag_sockid.
    let msg = message.get(NLMSG_HDRLEN..)?;
    let kind = TimerKind::from_raw(*msg.get(2)?)?;
    let expires = u32::from_ne_bytes(msg.get(52..56)?.try_into().ok()?);
    Some(Timer {
        kind,
        expires_ms: u64::from(expires),
        count: *msg.get(3)?,
    })
}

fn dump_family(
    socket: &mut Socket,
    family: u8,
    mask: u32,
    out: &mut Vec<TcpSocket>,
) -> anyhow::Result<()> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut request = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::from_bits_truncate(mask),
            socket_id: if family == AF_INET {
                SocketId::new_v4()
            } else {
                SocketId::new_v6()
            },
        })
        .into(),
    );
    request.finalize();
    let mut buf = vec![0; request.buffer_len()];
    request.serialize(&mut buf);
    socket
        .send(&buf, 0)
        .context("sending the sock_diag request")?;
    let mut receive = vec![0u8; 1 << 16];
    loop {
        let size = socket
            .recv(&mut &mut receive[..], 0)
            .context("reading sock_diag")?;
        let mut offset = 0;
        while offset < size {
            let bytes = &receive[offset..size];
            let message = <NetlinkMessage<SockDiagMessage>>::deserialize(bytes)
                .map_err(|e| anyhow::anyhow!("undecodable sock_diag reply: {e}"))?;
            let length = message.header.length as usize;
            match message.payload {
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(err) => anyhow::bail!("sock_diag: {err:?}"),
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                    let h = &response.header;
                    let id = &h.socket_id;
                    out.push(TcpSocket {
                        netns: 0,
                        local: canonical(id.source_address, id.source_port),
                        remote: canonical(id.destination_address, id.destination_port),
                        state: h.state,
                        inode: u64::from(h.inode),
                        uid: h.uid,
                        timer: raw_timer(&bytes[..length.min(bytes.len())]),
                    });
                }
                _ => {}
            }
            if length == 0 {
                break;
            }
            offset += length;
        }
    }
}

#[cfg(test)]
mod tests;
