//! The host's TCP socket table through netlink sock_diag (what `ss` reads):
//! addresses, state, inode, and the active timer with its countdown.
//! Like `ss`, it sees the caller's network namespace.

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

/// `idiag_timer`, as `ss -o` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    Retransmit,
    Keepalive,
    TimeWait,
    ZeroWindowProbe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Timer {
    pub kind: TimerKind,
    pub expires_ms: u64,
    /// For the keepalive timer, the probes out; for retransmit, retransmissions.
    pub count: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSocket {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: u8,
    pub inode: u64,
    pub uid: u32,
    pub timer: Option<Timer>,
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

/// The state number for a name given on the command line (any case, `-` or `_`).
pub fn state_by_name(name: &str) -> Option<u8> {
    let wanted = name.to_ascii_uppercase().replace('_', "-");
    let wanted = if wanted == "ESTABLISHED" {
        "ESTAB".to_string()
    } else {
        wanted
    };
    (1..=12).find(|s| state_name(*s) == wanted)
}

fn canonical(ip: IpAddr, port: u16) -> SocketAddr {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    SocketAddr::new(ip, port)
}

fn timer_of(kind: u8, expires_ms: u32, count: u8) -> Option<Timer> {
    let kind = match kind {
        1 => TimerKind::Retransmit,
        2 => TimerKind::Keepalive,
        3 => TimerKind::TimeWait,
        4 => TimerKind::ZeroWindowProbe,
        _ => return None,
    };
    Some(Timer {
        kind,
        expires_ms: u64::from(expires_ms),
        count,
    })
}

/// Every TCP socket of this network namespace, IPv4 and IPv6.
pub fn dump_tcp() -> anyhow::Result<Vec<TcpSocket>> {
    let mut socket =
        Socket::new(NETLINK_SOCK_DIAG).context("opening a NETLINK_SOCK_DIAG socket")?;
    socket.bind_auto().context("binding the netlink socket")?;
    socket
        .connect(&NetlinkAddr::new(0, 0))
        .context("connecting the netlink socket")?;
    let mut sockets = Vec::new();
    for family in [AF_INET, AF_INET6] {
        dump_family(&mut socket, family, &mut sockets)?;
    }
    Ok(sockets)
}

fn dump_family(socket: &mut Socket, family: u8, out: &mut Vec<TcpSocket>) -> anyhow::Result<()> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut request = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::all(),
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
                    // The crate keeps idiag_retrans only for the retransmit
                    // timer; for keepalive it is the probes out (as `ss -o`
                    // shows), so read it from the raw inet_diag_msg: byte 3
                    // after the 16-byte netlink header.
                    let retrans = bytes.get(16 + 3).copied().unwrap_or(0);
                    let (kind, expires) = match h.timer {
                        Some(netlink_packet_sock_diag::inet::Timer::Retransmit(d, _)) => (1, d),
                        Some(netlink_packet_sock_diag::inet::Timer::KeepAlive(d)) => (2, d),
                        Some(netlink_packet_sock_diag::inet::Timer::TimeWait) => {
                            (3, Default::default())
                        }
                        Some(netlink_packet_sock_diag::inet::Timer::Probe(d)) => (4, d),
                        None => (0, Default::default()),
                    };
                    out.push(TcpSocket {
                        local: canonical(h.socket_id.source_address, h.socket_id.source_port),
                        remote: canonical(
                            h.socket_id.destination_address,
                            h.socket_id.destination_port,
                        ),
                        state: h.state,
                        inode: u64::from(h.inode),
                        uid: h.uid,
                        timer: timer_of(kind, expires.as_millis() as u32, retrans),
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
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;

    #[test]
    fn state_and_timer_names() {
        assert_eq!(state_name(1), "ESTAB");
        assert_eq!(state_name(10), "LISTEN");
        assert_eq!(state_by_name("established"), Some(1));
        assert_eq!(state_by_name("time_wait"), Some(6));
        assert_eq!(state_by_name("bogus"), None);
        assert_eq!(
            timer_of(2, 1500, 1),
            Some(Timer {
                kind: TimerKind::Keepalive,
                expires_ms: 1500,
                count: 1
            })
        );
        assert_eq!(timer_of(0, 0, 0), None);
        assert_eq!(
            canonical("::ffff:10.0.0.1".parse().unwrap(), 80),
            "10.0.0.1:80".parse().unwrap()
        );
    }

    /// Runs without root: sock_diag dumps are open to every user.
    #[test]
    fn finds_our_own_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let table = dump_tcp().unwrap();
        let local = client.local_addr().unwrap();
        let row = table
            .iter()
            .find(|s| s.local == local)
            .expect("our connection is listed");
        assert_eq!(row.remote, listener.local_addr().unwrap());
        assert_eq!(state_name(row.state), "ESTAB");
        assert!(row.inode > 0);
        assert!(
            table
                .iter()
                .any(|s| s.local == listener.local_addr().unwrap() && s.state == 10)
        );
    }
}
