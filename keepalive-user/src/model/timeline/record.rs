//! What a timeline tells the user about a connection: the records, and the
//! reasons a connection can die.

use serde::{Serialize, Serializer};

use crate::model::{config::Config, conn::Conn, errno::errno_name};

/// Why the kernel gave up on a connection.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    Keepalive,
    UserTimeout,
    Retransmit,
    Error(u32),
}

/// In JSON as in text: `keepalive`, `error:EHOSTUNREACH`, ...
impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Keepalive => f.write_str("keepalive"),
            Self::UserTimeout => f.write_str("user_timeout"),
            Self::Retransmit => f.write_str("retransmit"),
            Self::Error(errno) => write!(f, "error:{}", errno_name(*errno)),
        }
    }
}

/// What the user is shown. The JSON `event` names and fields (serialised
/// from this type, untagged: `record_json` adds the name) are the contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Report {
    Probe {
        n: u32,
        idle_ms: Option<u64>,
    },
    Ack {
        n: u32,
        rtt_us: u64,
    },
    /// The run of probes up to `n` ended by other traffic from the peer
    /// (data, or a segment that could not be its answer): alive, no RTT.
    AnsweredByTraffic {
        n: u32,
    },
    Unanswered {
        n: u32,
    },
    Timeout {
        reason: Reason,
        probes: u32,
        detect_ms: Option<u64>,
        predicted_ms: Option<u64>,
    },
    Reset {
        #[serde(rename = "n")]
        after_probe: Option<u32>,
    },
    OptionsSet {
        result: i32,
    },
    /// A connect that never reached ESTABLISHED (refused, SYN timeout).
    ConnectFailed {
        #[serde(rename = "error", serialize_with = "errno_as_name")]
        errno: u32,
    },
}

fn errno_as_name<S: Serializer>(errno: &u32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&errno_name(*errno))
}

impl Report {
    pub fn event_name(&self) -> &'static str {
        match self {
            Self::Probe { .. } => "probe",
            Self::Ack { .. } => "ack",
            Self::AnsweredByTraffic { .. } => "answered_by_traffic",
            Self::Unanswered { .. } => "unanswered",
            Self::Timeout { .. } => "timeout",
            Self::Reset { .. } => "reset",
            Self::OptionsSet { .. } => "options_set",
            Self::ConnectFailed { .. } => "connect_failed",
        }
    }
}

/// A report about one connection at one moment (CLOCK_MONOTONIC ns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub ts_ns: u64,
    pub conn: Conn,
    pub config: Option<Config>,
    pub report: Report,
}
