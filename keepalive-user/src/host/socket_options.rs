//! Which descriptors are connected TCP sockets we can change, and reading
//! the keepalive settings in force on them through socket2.

use std::{collections::HashMap, net::SocketAddr, os::fd::OwnedFd};

use socket2::{SockRef, Type};

use crate::{
    host::{owners::Holder, pidfd::Process},
    model::{config::Config, conn::canonical},
};

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

/// Reads settings through duplicates of holders' descriptors, one pidfd per
/// process however many sockets it holds.
#[derive(Default)]
pub struct SettingsReader {
    processes: HashMap<u32, Option<Process>>,
}

impl SettingsReader {
    /// None without a holder (kernel-owned, TIME-WAIT, not yet accepted) or
    /// when the holder is gone or cannot be reached.
    pub fn read(&mut self, holder: Option<&Holder>) -> Option<Config> {
        let holder = holder?;
        let process = self
            .processes
            .entry(holder.owner.pid)
            .or_insert_with(|| Process::open(holder.owner.pid).ok())
            .as_ref()?;
        let fd = process.dup_fd(holder.fd).ok()?;
        read(&fd).ok()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream, UdpSocket};

    use super::*;

    /// Runs without root, on our own sockets.
    #[test]
    fn reads_what_the_application_set() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let sock = SockRef::from(&client);
        sock.set_tcp_keepalive(
            &socket2::TcpKeepalive::new()
                .with_time(std::time::Duration::from_secs(30))
                .with_interval(std::time::Duration::from_secs(5))
                .with_retries(3),
        )
        .unwrap();
        sock.set_tcp_user_timeout(Some(std::time::Duration::from_millis(2500)))
            .unwrap();
        let fd: OwnedFd = client.into();
        assert_eq!(
            read(&fd).unwrap(),
            Config {
                keepalive: true,
                idle_s: 30,
                intvl_s: 5,
                cnt: 3,
                user_timeout_ms: 2500
            }
        );
        let target = as_tcp_target(fd).unwrap();
        assert_eq!(target.remote, listener.local_addr().unwrap());
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
