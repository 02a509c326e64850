//! A connection as this host sees it: its network namespace and its two
//! ends, IPv4-mapped IPv6 addresses shown as IPv4 so that the packet view
//! and the socket view of one connection agree. Two containers may hold
//! connections with the same addresses and ports: the namespace tells them
//! apart.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use keepalive_common::Tuple;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// Inode number of a network namespace, as /proc/PID/ns/net shows it
/// (`net:[4026531840]`); 0 where the kernel's layout was unknown.
pub type NetnsIno = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Conn {
    pub netns: NetnsIno,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

impl Conn {
    /// Both ends in their canonical form (IPv4-mapped shown as IPv4).
    pub fn new(netns: NetnsIno, local: SocketAddr, remote: SocketAddr) -> Self {
        Self {
            netns,
            local: canonical(local),
            remote: canonical(remote),
        }
    }

    pub fn ports_include(&self, port: u16) -> bool {
        self.local.port() == port || self.remote.port() == port
    }
}

/// `addr` with an IPv4-mapped IPv6 address shown as IPv4.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// One end from the kernel's family, address bytes and port.
pub fn endpoint(family: u16, addr: &[u8; 16], port: u16) -> Option<SocketAddr> {
    let ip = match family {
        AF_INET => IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
        AF_INET6 => IpAddr::V6(Ipv6Addr::from(*addr)),
        _ => return None,
    };
    Some(SocketAddr::new(ip.to_canonical(), port))
}

impl Conn {
    /// The connection a kernel tuple names in namespace `netns`; the
    /// unknown address family as the error.
    pub fn from_tuple(netns: NetnsIno, t: &Tuple) -> Result<Self, u16> {
        let local = endpoint(t.family, &t.local_addr, t.local_port);
        let remote = endpoint(t.family, &t.remote_addr, t.remote_port);
        match (local, remote) {
            (Some(local), Some(remote)) => Ok(Self {
                netns,
                local,
                remote,
            }),
            _ => Err(t.family),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_are_shown_as_ipv4() {
        let conn = Conn::new(
            4026531840,
            "[::ffff:10.0.0.1]:40000".parse().unwrap(),
            "[::1]:5000".parse().unwrap(),
        );
        assert_eq!(conn.local, "10.0.0.1:40000".parse().unwrap());
        assert_eq!(conn.remote, "[::1]:5000".parse().unwrap());
        assert!(conn.ports_include(5000) && conn.ports_include(40000));
        assert!(!conn.ports_include(1));
    }
}
