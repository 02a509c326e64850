//! Reading, setting and restoring keepalive options on a socket we hold,
//! through socket2.

use std::{net::SocketAddr, os::fd::OwnedFd, time::Duration};

use socket2::{SockRef, TcpKeepalive, Type};

use crate::{events::Config, options::KeepaliveValues};

/// Why a descriptor is not a connected TCP socket we can change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotATarget {
    #[error("not a socket")]
    NotASocket,
    #[error("not a TCP socket ({0})")]
    NotTcp(String),
    #[error("a listening socket")]
    Listening,
    #[error("not connected")]
    NotConnected,
}

/// A connected TCP socket and its two ends (IPv4-mapped shown as IPv4).
pub struct TcpTarget {
    pub fd: OwnedFd,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => v6
            .ip()
            .to_ipv4_mapped()
            .map_or(addr, |v4| SocketAddr::new(v4.into(), v6.port())),
        v4 => v4,
    }
}

pub fn as_tcp_target(fd: OwnedFd) -> Result<TcpTarget, NotATarget> {
    let sock = SockRef::from(&fd);
    let ty = sock.r#type().map_err(|_| NotATarget::NotASocket)?;
    let protocol = sock.protocol().ok().flatten();
    if ty != Type::STREAM || protocol.is_some_and(|p| p != socket2::Protocol::TCP) {
        let what = if ty == Type::DGRAM {
            "datagram, e.g. UDP".to_string()
        } else {
            format!("{ty:?}")
        };
        return Err(NotATarget::NotTcp(what));
    }
    let domain = sock.domain().map_err(|_| NotATarget::NotASocket)?;
    if domain != socket2::Domain::IPV4 && domain != socket2::Domain::IPV6 {
        return Err(NotATarget::NotTcp(format!("{domain:?}")));
    }
    if sock.is_listener().unwrap_or(false) {
        return Err(NotATarget::Listening);
    }
    let (Some(local), Some(remote)) = (
        sock.local_addr().ok().and_then(|a| a.as_socket()),
        sock.peer_addr().ok().and_then(|a| a.as_socket()),
    ) else {
        return Err(NotATarget::NotConnected);
    };
    Ok(TcpTarget {
        fd,
        local: canonical(local),
        remote: canonical(remote),
    })
}

/// The settings in force, as the application would read them.
pub fn read(fd: &OwnedFd) -> std::io::Result<Config> {
    let sock = SockRef::from(fd);
    Ok(Config {
        keepalive: sock.keepalive()?,
        idle_s: sock.tcp_keepalive_time()?.as_secs() as u32,
        intvl_s: sock.tcp_keepalive_interval()?.as_secs() as u32,
        cnt: sock.tcp_keepalive_retries()?,
        user_timeout_ms: sock.tcp_user_timeout()?.map_or(0, |d| d.as_millis() as u32),
    })
}

/// Sets what `values` names; the rest stays as it is.
pub fn apply(fd: &OwnedFd, values: &KeepaliveValues) -> std::io::Result<()> {
    let sock = SockRef::from(fd);
    let mut params = TcpKeepalive::new();
    let mut any = false;
    if let Some(idle) = values.idle_s {
        params = params.with_time(Duration::from_secs(idle.into()));
        any = true;
    }
    if let Some(intvl) = values.intvl_s {
        params = params.with_interval(Duration::from_secs(intvl.into()));
        any = true;
    }
    if let Some(cnt) = values.cnt {
        params = params.with_retries(cnt);
        any = true;
    }
    if any {
        sock.set_tcp_keepalive(&params)?;
    }
    if let Some(on) = values.keepalive {
        sock.set_keepalive(on)?;
    }
    if let Some(ms) = values.user_timeout_ms {
        sock.set_tcp_user_timeout((ms > 0).then(|| Duration::from_millis(ms.into())))?;
    }
    Ok(())
}

/// Puts back every value read before a change that failed midway.
pub fn restore(fd: &OwnedFd, before: &Config) -> std::io::Result<()> {
    apply(
        fd,
        &KeepaliveValues {
            keepalive: Some(before.keepalive),
            idle_s: Some(before.idle_s),
            intvl_s: Some(before.intvl_s),
            cnt: Some(before.cnt),
            user_timeout_ms: Some(before.user_timeout_ms),
        },
    )
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream, UdpSocket};

    use super::*;

    /// Runs without root, on our own sockets.
    #[test]
    fn reads_sets_and_restores_on_a_real_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let fd: OwnedFd = client.into();
        let before = read(&fd).unwrap();
        let values = KeepaliveValues {
            keepalive: Some(true),
            idle_s: Some(30),
            intvl_s: Some(5),
            cnt: Some(3),
            user_timeout_ms: Some(2500),
        };
        apply(&fd, &values).unwrap();
        let after = read(&fd).unwrap();
        assert_eq!(
            after,
            Config {
                keepalive: true,
                idle_s: 30,
                intvl_s: 5,
                cnt: 3,
                user_timeout_ms: 2500
            }
        );
        restore(&fd, &before).unwrap();
        assert_eq!(read(&fd).unwrap(), before);
        assert!(as_tcp_target(fd).is_ok());
    }

    #[test]
    fn refuses_listeners_udp_and_unconnected() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(
            as_tcp_target(listener.into()).err(),
            Some(NotATarget::Listening)
        );
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(matches!(
            as_tcp_target(udp.into()).err(),
            Some(NotATarget::NotTcp(_))
        ));
        let unconnected = socket2::Socket::new(socket2::Domain::IPV4, Type::STREAM, None).unwrap();
        assert_eq!(
            as_tcp_target(unconnected.into()).err(),
            Some(NotATarget::NotConnected)
        );
        let file: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        assert_eq!(as_tcp_target(file).err(), Some(NotATarget::NotASocket));
    }
}
