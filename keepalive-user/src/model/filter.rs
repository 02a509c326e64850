//! Which connections the user asked about: ports at either end, and
//! address prefixes for this host's end (`--src`) and the peer's (`--dst`).

use std::{net::IpAddr, str::FromStr};

use ipnet::IpNet;

use crate::model::conn::{Conn, NetnsIno};

/// An address prefix such as 10.0.0.0/8, ::1/128 or a bare address. An
/// IPv4-mapped IPv6 prefix is the IPv4 prefix it maps, as connections are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(IpNet);

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim_start_matches('[').replacen(']', "", 1);
        let net = match text.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) if !text.contains('/') => text
                .parse::<IpAddr>()
                .map(IpNet::from)
                .map_err(|_| format!("{s:?} is not an IP address or CIDR prefix"))?,
            Err(_) => {
                let valid_address = text
                    .split_once('/')
                    .is_some_and(|(addr, _)| addr.parse::<IpAddr>().is_ok());
                return Err(if valid_address {
                    let max = if text.contains(':') { 128 } else { 32 };
                    format!("{s:?}: prefix length must be 0..={max}")
                } else {
                    format!("{s:?} is not an IP address or CIDR prefix")
                });
            }
        };
        Ok(Self::canonical(net))
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Cidr {
    /// The prefix holding exactly `ip`.
    pub fn host(ip: IpAddr) -> Self {
        Self::canonical(IpNet::from(ip))
    }

    fn canonical(net: IpNet) -> Self {
        match net {
            IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
                Some(v4) => Self(
                    IpNet::new(v4.into(), v6.prefix_len() - 96)
                        .expect("a mapped prefix of 96 or more fits IPv4"),
                ),
                None => Self(net),
            },
            _ => Self(net),
        }
    }

    pub fn prefix_len(&self) -> u8 {
        self.0.prefix_len()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }

    /// AF_INET/AF_INET6, the network's address bytes and the prefix as the
    /// kernel policy (`keepalive_common::Policy`) wants them.
    pub fn to_kernel(&self) -> (u32, [u8; 16], u32) {
        let mut bytes = [0u8; 16];
        let family = match self.0.trunc().addr() {
            IpAddr::V4(v4) => {
                bytes[..4].copy_from_slice(&v4.octets());
                libc::AF_INET as u32
            }
            IpAddr::V6(v6) => {
                bytes = v6.octets();
                libc::AF_INET6 as u32
            }
        };
        (family, bytes, u32::from(self.0.prefix_len()))
    }
}

/// The connection filters shared by watch, ls and set.
#[derive(Debug, Clone, Default)]
pub struct ConnFilter {
    /// Only this network namespace (`-N`, or the watcher's own when it runs
    /// in one); `None`: every namespace.
    pub netns: Option<NetnsIno>,
    pub ports: Vec<u16>,
    pub src: Vec<Cidr>,
    pub dst: Vec<Cidr>,
}

impl ConnFilter {
    /// `src` is this host's end, `dst` the peer's. Within a kind, any match
    /// passes; across kinds, all must.
    pub fn matches(&self, conn: &Conn) -> bool {
        self.netns.is_none_or(|ns| ns == conn.netns)
            && (self.ports.is_empty() || self.ports.iter().any(|p| conn.ports_include(*p)))
            && (self.src.is_empty() || self.src.iter().any(|c| c.contains(conn.local.ip())))
            && (self.dst.is_empty() || self.dst.iter().any(|c| c.contains(conn.remote.ip())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(local: &str, remote: &str) -> Conn {
        Conn {
            netns: 7,
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
        }
    }

    #[test]
    fn parses_cidrs_and_rejects_garbage() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        let host: Cidr = "::1".parse().unwrap();
        assert_eq!(host.prefix_len(), 128);
        assert!(host.contains("::1".parse().unwrap()));
        let bracketed: Cidr = "[::1]".parse().unwrap();
        assert_eq!(bracketed, host);
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        assert!(!all.contains("::2".parse().unwrap()));
        let mapped: Cidr = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(mapped, "10.0.0.0/8".parse().unwrap());
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err("\"10.0.0.0/33\": prefix length must be 0..=32".into())
        );
        assert!("300.1.1.1".parse::<Cidr>().is_err());
        assert!("fe80::/129".parse::<Cidr>().is_err());
        assert!("banana".parse::<Cidr>().is_err());
        assert!("10.0.0.0/x".parse::<Cidr>().is_err());
    }

    #[test]
    fn filter_combines_kinds() {
        let f = ConnFilter {
            netns: None,
            ports: vec![5000],
            src: vec![],
            dst: vec!["127.0.0.0/8".parse().unwrap()],
        };
        assert!(f.matches(&conn("127.0.0.1:40000", "127.0.0.1:5000")));
        assert!(f.matches(&conn("127.0.0.1:5000", "127.0.0.2:40000")));
        assert!(!f.matches(&conn("127.0.0.1:40000", "127.0.0.1:6000")));
        assert!(!f.matches(&conn("10.0.0.1:40000", "10.0.0.2:5000")));
        assert!(ConnFilter::default().matches(&conn("[::1]:1", "[::1]:2")));
        let other_netns = ConnFilter {
            netns: Some(8),
            ..ConnFilter::default()
        };
        assert!(!other_netns.matches(&conn("[::1]:1", "[::1]:2")));
    }

    #[test]
    fn kernel_form_of_a_prefix() {
        let (family, bytes, len) = "192.168.0.7/24".parse::<Cidr>().unwrap().to_kernel();
        assert_eq!((family, &bytes[..4], len), (2, &[192, 168, 0, 0][..], 24));
    }
}
