//! Which connections the user asked about: `--port`, `--src`, `--dst`.

use std::{net::IpAddr, str::FromStr};

use crate::events::Conn;

/// An address prefix such as 10.0.0.0/8, ::1/128 or a bare address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr_text, len_text) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr_text = addr_text.trim_start_matches('[').trim_end_matches(']');
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR prefix"))?;
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len_text {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
        };
        Ok(Self { addr, prefix_len })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// AF_INET/AF_INET6, the address bytes and the prefix as the kernel
    /// policy (`keepalive_common::Policy`) wants them.
    pub fn to_kernel(&self) -> (u32, [u8; 16], u32) {
        let mut bytes = [0u8; 16];
        let family = match self.addr {
            IpAddr::V4(v4) => {
                bytes[..4].copy_from_slice(&v4.octets());
                libc::AF_INET as u32
            }
            IpAddr::V6(v6) => {
                bytes = v6.octets();
                libc::AF_INET6 as u32
            }
        };
        (family, bytes, u32::from(self.prefix_len))
    }
}

/// A TCP port for `--port`: 1..=65535 (clap reports the error, exit 2).
pub fn parse_port(s: &str) -> Result<u16, String> {
    match s.parse::<u32>() {
        Ok(p @ 1..=65535) => Ok(p as u16),
        Ok(_) => Err(format!("port {s} is out of range 1..=65535")),
        Err(_) => Err(format!("{s:?} is not a port number")),
    }
}

/// `--port`, `--src`, `--dst` and `--pid`, as watch and ls take them.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConnFilterArgs {
    /// Only connections with this port at either end (repeatable).
    #[arg(long = "port", value_parser = parse_port)]
    pub ports: Vec<u16>,
    /// Only connections whose local address is in this prefix (repeatable).
    #[arg(long)]
    pub src: Vec<Cidr>,
    /// Only connections whose peer address is in this prefix (repeatable).
    #[arg(long)]
    pub dst: Vec<Cidr>,
    /// Only connections held by this process.
    #[arg(long)]
    pub pid: Option<u32>,
}

impl ConnFilterArgs {
    /// The address and port part; `--pid` is matched against socket holders.
    pub fn filter(&self) -> ConnFilter {
        ConnFilter {
            ports: self.ports.clone(),
            src: self.src.clone(),
            dst: self.dst.clone(),
        }
    }

    /// `--pid` must name a running process (a usage error otherwise).
    pub fn checked_pid(&self) -> anyhow::Result<Option<u32>> {
        match self.pid {
            Some(pid) if !std::path::Path::new(&format!("/proc/{pid}")).exists() => {
                Err(crate::cli::usage(format!("--pid {pid}: no such process")))
            }
            pid => Ok(pid),
        }
    }
}

/// The connection filters shared by watch, ls and set.
#[derive(Debug, Clone, Default)]
pub struct ConnFilter {
    pub ports: Vec<u16>,
    pub src: Vec<Cidr>,
    pub dst: Vec<Cidr>,
}

impl ConnFilter {
    /// `src` is this host's end, `dst` the peer's. Within a kind, any match
    /// passes; across kinds, all must.
    pub fn matches(&self, conn: &Conn) -> bool {
        (self.ports.is_empty() || self.ports.iter().any(|p| conn.ports_include(*p)))
            && (self.src.is_empty() || self.src.iter().any(|c| c.contains(conn.local.ip())))
            && (self.dst.is_empty() || self.dst.iter().any(|c| c.contains(conn.remote.ip())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(local: &str, remote: &str) -> Conn {
        Conn {
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
        assert_eq!(host.prefix_len, 128);
        assert!(host.contains("::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        assert!(!all.contains("::2".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("300.1.1.1".parse::<Cidr>().is_err());
        assert!("fe80::/129".parse::<Cidr>().is_err());
        assert!("banana".parse::<Cidr>().is_err());
    }

    #[test]
    fn ports_are_1_to_65535() {
        assert_eq!(parse_port("443"), Ok(443));
        assert!(parse_port("0").is_err());
        assert!(parse_port("65536").is_err());
        assert!(parse_port("-1").is_err());
    }

    #[test]
    fn filter_combines_kinds() {
        let f = ConnFilter {
            ports: vec![5000],
            src: vec![],
            dst: vec!["127.0.0.0/8".parse().unwrap()],
        };
        assert!(f.matches(&conn("127.0.0.1:40000", "127.0.0.1:5000")));
        assert!(f.matches(&conn("127.0.0.1:5000", "127.0.0.2:40000")));
        assert!(!f.matches(&conn("127.0.0.1:40000", "127.0.0.1:6000")));
        assert!(!f.matches(&conn("10.0.0.1:40000", "10.0.0.2:5000")));
        assert!(ConnFilter::default().matches(&conn("[::1]:1", "[::1]:2")));
    }

    #[test]
    fn kernel_form_of_a_prefix() {
        let (family, bytes, len) = "192.168.0.0/24".parse::<Cidr>().unwrap().to_kernel();
        assert_eq!((family, &bytes[..4], len), (2, &[192, 168, 0, 0][..], 24));
    }
}
