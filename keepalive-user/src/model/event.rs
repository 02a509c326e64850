//! Decoding the kernel's ring-buffer records into typed events.

use keepalive_common::{Event, KeepaliveConfig, config_flags, event_flags, kind};

use crate::model::{config::Config, conn::Conn};

fn config_of(raw: &KeepaliveConfig) -> Option<Config> {
    (raw.flags & config_flags::KNOWN != 0).then_some(Config {
        keepalive: raw.flags & config_flags::KEEPALIVE_ON != 0,
        idle_s: raw.idle_s,
        intvl_s: raw.intvl_s,
        cnt: raw.cnt,
        user_timeout_ms: raw.user_timeout_ms,
    })
}

/// What a kernel program saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Probe {
        n: u32,
        idle_ns: Option<u64>,
    },
    Ack {
        n: u32,
        rtt_ns: u64,
    },
    /// Probe `n`'s run ended by other traffic from the peer, not its answer.
    AnsweredByTraffic {
        n: u32,
    },
    KeepaliveReset,
    SocketError {
        errno: u32,
    },
    ResetReceived,
    Closed {
        old_state: u32,
    },
    Established,
    OptionsSet {
        result: i32,
    },
}

/// One decoded kernel event; `ts_ns` is CLOCK_MONOTONIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelEvent {
    pub ts_ns: u64,
    pub conn: Conn,
    pub config: Option<Config>,
    /// Inode of the socket, which tells which process holds it.
    pub socket_ino: Option<u64>,
    /// The socket's TCP state (1 = ESTABLISHED, 2 = SYN_SENT...) when known.
    pub tcp_state: Option<u8>,
    /// Whether data was written and not yet acknowledged, when known.
    pub data_outstanding: Option<bool>,
    pub kind: EventKind,
}

/// TCP states as the kernel numbers them (include/net/tcp_states.h).
pub mod tcp_state {
    pub const ESTABLISHED: u8 = 1;
    pub const SYN_SENT: u8 = 2;
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
        let kind = match raw.kind {
            kind::PROBE => EventKind::Probe {
                n: raw.value,
                idle_ns: (raw.span_ns > 0).then_some(raw.span_ns),
            },
            kind::ACK => EventKind::Ack {
                n: raw.value,
                rtt_ns: raw.span_ns,
            },
            kind::KEEPALIVE_RESET => EventKind::KeepaliveReset,
            kind::SOCKET_ERROR => EventKind::SocketError { errno: raw.value },
            kind::RESET_RECEIVED => EventKind::ResetReceived,
            kind::CLOSED => EventKind::Closed {
                old_state: raw.value,
            },
            kind::ESTABLISHED => EventKind::Established,
            kind::OPTIONS_SET => EventKind::OptionsSet {
                result: raw.value as i32,
            },
            kind::ANSWERED_BY_TRAFFIC => EventKind::AnsweredByTraffic { n: raw.value },
            other => return Err(DecodeError::Kind(other)),
        };
        Ok(Self {
            ts_ns: raw.ts_ns,
            conn: Conn::from_tuple(raw.netns_ino, &raw.tuple).map_err(DecodeError::Family)?,
            config: config_of(&raw.config),
            socket_ino: (raw.socket_ino != 0).then_some(raw.socket_ino),
            tcp_state: (raw.flags & event_flags::STATE_KNOWN != 0).then_some(raw.tcp_state),
            data_outstanding: (raw.flags & event_flags::DATA_KNOWN != 0)
                .then_some(raw.flags & event_flags::DATA_OUTSTANDING != 0),
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use keepalive_common::Tuple;

    use super::*;

    const AF_INET: u16 = 2;
    const AF_INET6: u16 = 10;

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
            netns_ino: 4026531840,
            tcp_state: 1,
            flags: event_flags::STATE_KNOWN | event_flags::DATA_KNOWN,
            _pad: 0,
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
            ev.kind,
            EventKind::Probe {
                n: 2,
                idle_ns: Some(1_000_000_000)
            }
        );
        assert_eq!(ev.conn.local, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(ev.conn.remote, "127.0.0.2:5000".parse().unwrap());
        assert_eq!(ev.conn.netns, 4026531840);
        assert_eq!((ev.tcp_state, ev.data_outstanding), (Some(1), Some(false)));
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
        let mut unknown = raw_event(kind::ANSWERED_BY_TRAFFIC);
        unknown.flags = event_flags::DATA_OUTSTANDING;
        let decoded = KernelEvent::try_from(&unknown).unwrap();
        assert_eq!(decoded.kind, EventKind::AnsweredByTraffic { n: 2 });
        assert_eq!(
            (decoded.tcp_state, decoded.data_outstanding),
            (None, None),
            "the flags say what was read"
        );
    }
}
