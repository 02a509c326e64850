//! Decoding the kernel's ring-buffer records into typed events.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use keepalive_common::{Event, KeepaliveConfig, Tuple, config_flags, kind};
use serde::Serialize;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// A connection as seen from this host. IPv4-mapped IPv6 addresses are shown
/// as IPv4, so the packet view and the socket view of one connection agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Conn {
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

impl Conn {
    pub fn ports_include(&self, port: u16) -> bool {
        self.local.port() == port || self.remote.port() == port
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

pub fn endpoint(family: u16, addr: &[u8; 16], port: u16) -> Option<SocketAddr> {
    let ip = match family {
        AF_INET => IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
        AF_INET6 => IpAddr::V6(Ipv6Addr::from(*addr)),
        _ => return None,
    };
    Some(SocketAddr::new(canonical(ip), port))
}

impl TryFrom<&Tuple> for Conn {
    type Error = DecodeError;
    fn try_from(t: &Tuple) -> Result<Self, DecodeError> {
        let local = endpoint(t.family, &t.local_addr, t.local_port);
        let remote = endpoint(t.family, &t.remote_addr, t.remote_port);
        match (local, remote) {
            (Some(local), Some(remote)) => Ok(Self { local, remote }),
            _ => Err(DecodeError::Family(t.family)),
        }
    }
}

/// Keepalive settings in force on a socket. JSON names are the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Config {
    pub keepalive: bool,
    pub idle_s: u32,
    pub intvl_s: u32,
    pub cnt: u32,
    pub user_timeout_ms: u32,
}

impl Config {
    /// What the settings predict: idle + count × interval until the kernel
    /// gives up on a silent peer (ignoring a user timeout).
    pub fn keepalive_budget_ms(&self) -> u64 {
        (u64::from(self.idle_s) + u64::from(self.cnt) * u64::from(self.intvl_s)) * 1000
    }

    /// When the kernel should kill a connection whose peer went silent,
    /// counted from the last segment received. The keepalive timer ticks at
    /// idle, then every interval; without a user timeout it kills at the tick
    /// after `cnt` probes. With one, it ignores `cnt` and kills at the first
    /// tick at or past the user timeout once a probe went out.
    pub fn predicted_detect_ms(&self) -> u64 {
        let (idle, intvl) = (
            u64::from(self.idle_s) * 1000,
            u64::from(self.intvl_s) * 1000,
        );
        if self.user_timeout_ms == 0 || intvl == 0 {
            return self.keepalive_budget_ms();
        }
        let user_timeout = u64::from(self.user_timeout_ms);
        let ticks = user_timeout.saturating_sub(idle).div_ceil(intvl).max(1);
        idle + ticks * intvl
    }

    /// Fills fields the kernel left 0 ("namespace default unreadable").
    pub fn with_defaults(mut self, defaults: &Config) -> Self {
        if self.idle_s == 0 {
            self.idle_s = defaults.idle_s;
        }
        if self.intvl_s == 0 {
            self.intvl_s = defaults.intvl_s;
        }
        if self.cnt == 0 {
            self.cnt = defaults.cnt;
        }
        self
    }

    /// This network namespace's sysctl defaults.
    pub fn sysctl_defaults() -> Self {
        let read = |name: &str, fallback: u32| {
            std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(fallback)
        };
        Self {
            keepalive: false,
            idle_s: read("tcp_keepalive_time", 7200),
            intvl_s: read("tcp_keepalive_intvl", 75),
            cnt: read("tcp_keepalive_probes", 9),
            user_timeout_ms: 0,
        }
    }
}

fn config_of(raw: &KeepaliveConfig) -> Option<Config> {
    (raw.flags & config_flags::KNOWN != 0).then_some(Config {
        keepalive: raw.flags & config_flags::KEEPALIVE_ON != 0,
        idle_s: raw.idle_s,
        intvl_s: raw.intvl_s,
        cnt: raw.cnt,
        user_timeout_ms: raw.user_timeout_ms,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Probe { n: u32, idle_ns: Option<u64> },
    Ack { n: u32, rtt_ns: u64 },
    KeepaliveReset,
    SocketError { errno: u32 },
    ResetReceived,
    Closed { old_state: u32 },
    Established,
    OptionsSet { result: i32 },
}

/// One decoded kernel event; `ts_ns` is CLOCK_MONOTONIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelEvent {
    pub ts_ns: u64,
    pub conn: Conn,
    pub config: Option<Config>,
    /// Inode of the socket, which tells which process holds it.
    pub socket_ino: Option<u64>,
    pub what: What,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes, expected {size}", size = size_of::<Event>())]
    Size(usize),
    #[error("unknown event kind {0}")]
    Kind(u32),
    #[error("unknown address family {0}")]
    Family(u16),
}

/// Decodes one ring-buffer record. Records are not guaranteed aligned.
pub fn decode(bytes: &[u8]) -> Result<KernelEvent, DecodeError> {
    if bytes.len() < size_of::<Event>() {
        return Err(DecodeError::Size(bytes.len()));
    }
    // SAFETY: length checked above; Event is plain old data, any bits valid.
    let raw: Event = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    KernelEvent::try_from(&raw)
}

impl TryFrom<&Event> for KernelEvent {
    type Error = DecodeError;
    fn try_from(raw: &Event) -> Result<Self, DecodeError> {
        let what = match raw.kind {
            kind::PROBE => What::Probe {
                n: raw.value,
                idle_ns: (raw.span_ns > 0).then_some(raw.span_ns),
            },
            kind::ACK => What::Ack {
                n: raw.value,
                rtt_ns: raw.span_ns,
            },
            kind::KEEPALIVE_RESET => What::KeepaliveReset,
            kind::SOCKET_ERROR => What::SocketError { errno: raw.value },
            kind::RESET_RECEIVED => What::ResetReceived,
            kind::CLOSED => What::Closed {
                old_state: raw.value,
            },
            kind::ESTABLISHED => What::Established,
            kind::OPTIONS_SET => What::OptionsSet {
                result: raw.value as i32,
            },
            other => return Err(DecodeError::Kind(other)),
        };
        Ok(Self {
            ts_ns: raw.ts_ns,
            conn: Conn::try_from(&raw.tuple)?,
            config: config_of(&raw.config),
            socket_ino: (raw.socket_ino != 0).then_some(raw.socket_ino),
            what,
        })
    }
}

/// Name of an errno as C spells it, for `error:<ERRNO>` reasons.
pub fn errno_name(errno: u32) -> String {
    let name = match errno as i32 {
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNRESET => "ECONNRESET",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::EHOSTDOWN => "EHOSTDOWN",
        libc::ENETDOWN => "ENETDOWN",
        libc::EPIPE => "EPIPE",
        libc::EPROTO => "EPROTO",
        libc::EMSGSIZE => "EMSGSIZE",
        _ => return format!("E{errno}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_event(kind: u32) -> Event {
        let mut tuple = Tuple {
            family: AF_INET,
            local_port: 40000,
            remote_port: 5000,
            ..Default::default()
        };
        tuple.local_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        tuple.remote_addr[..4].copy_from_slice(&[127, 0, 0, 2]);
        Event {
            ts_ns: 123,
            span_ns: 1_000_000_000,
            kind,
            value: 2,
            tuple,
            config: KeepaliveConfig {
                flags: config_flags::KNOWN | config_flags::KEEPALIVE_ON,
                idle_s: 1,
                intvl_s: 1,
                cnt: 3,
                user_timeout_ms: 0,
                _pad: 0,
            },
            socket_ino: 4242,
        }
    }

    fn bytes_of(event: &Event) -> Vec<u8> {
        // SAFETY: Event is repr(C) plain old data.
        unsafe {
            std::slice::from_raw_parts((event as *const Event).cast::<u8>(), size_of::<Event>())
        }
        .to_vec()
    }

    #[test]
    fn round_trips_a_probe_from_unaligned_bytes() {
        let mut buf = vec![0u8];
        buf.extend(bytes_of(&raw_event(kind::PROBE)));
        let ev = decode(&buf[1..]).unwrap();
        assert_eq!(
            ev.what,
            What::Probe {
                n: 2,
                idle_ns: Some(1_000_000_000)
            }
        );
        assert_eq!(ev.conn.local, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(ev.conn.remote, "127.0.0.2:5000".parse().unwrap());
        let config = ev.config.unwrap();
        assert!(config.keepalive);
        assert_eq!((config.idle_s, config.intvl_s, config.cnt), (1, 1, 3));
    }

    #[test]
    fn rejects_unknown_kinds_and_short_records() {
        assert_eq!(
            decode(&bytes_of(&raw_event(99))),
            Err(DecodeError::Kind(99))
        );
        assert_eq!(decode(&[0u8; 10]), Err(DecodeError::Size(10)));
        let mut bad = raw_event(kind::ACK);
        bad.tuple.family = 17;
        assert_eq!(KernelEvent::try_from(&bad), Err(DecodeError::Family(17)));
    }

    #[test]
    fn unknown_config_is_none_and_mapped_v6_becomes_v4() {
        let mut ev = raw_event(kind::ACK);
        ev.config.flags = 0;
        ev.tuple.family = AF_INET6;
        ev.tuple.local_addr = Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped().octets();
        ev.tuple.remote_addr = Ipv6Addr::LOCALHOST.octets();
        let decoded = KernelEvent::try_from(&ev).unwrap();
        assert_eq!(decoded.config, None);
        assert_eq!(decoded.conn.local, "10.0.0.1:40000".parse().unwrap());
        assert_eq!(decoded.conn.remote, "[::1]:5000".parse().unwrap());
    }

    #[test]
    fn budget_and_defaults() {
        let c = Config {
            keepalive: true,
            idle_s: 0,
            intvl_s: 5,
            cnt: 0,
            user_timeout_ms: 0,
        };
        let d = Config {
            keepalive: false,
            idle_s: 7200,
            intvl_s: 75,
            cnt: 9,
            user_timeout_ms: 0,
        };
        let filled = c.with_defaults(&d);
        assert_eq!((filled.idle_s, filled.intvl_s, filled.cnt), (7200, 5, 9));
        assert_eq!(filled.keepalive_budget_ms(), (7200 + 45) * 1000);
        assert_eq!(errno_name(110), "ETIMEDOUT");
        let ka = Config {
            keepalive: true,
            idle_s: 1,
            intvl_s: 1,
            cnt: 3,
            user_timeout_ms: 0,
        };
        assert_eq!(ka.predicted_detect_ms(), 4000);
        let ut = Config {
            user_timeout_ms: 2500,
            ..ka
        };
        assert_eq!(
            ut.predicted_detect_ms(),
            3000,
            "first tick at or after 2.5 s"
        );
        let short = Config {
            user_timeout_ms: 500,
            ..ka
        };
        assert_eq!(
            short.predicted_detect_ms(),
            2000,
            "one probe must go out first"
        );
        assert_eq!(errno_name(4242), "E4242");
    }
}
