//! What `report` reads: the JSON lines of watch, demo and discover (the
//! contract in README's event table) parsed into [`Input`]s, and watch's
//! own records turned into the same, so one layout serves both.

use std::{borrow::Cow, net::SocketAddr, sync::Arc};

use serde::Deserialize;
use serde_json::Value;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    model::{
        config::Config,
        conn::Conn,
        owner::{Attribution, Owner},
        timeline::{Record, Report},
    },
    render::clock::Clock,
};

/// One line of input, understood.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Conn(ConnEvent),
    Lost {
        ts_us: i64,
        count: u64,
    },
    /// watch's `summary`, demo's `verdict`, discover's `trial` and `result`:
    /// few per input, kept whole.
    Summary(Value),
    Verdict(Value),
    Trial(Value),
    Result(Value),
    /// An event kind this version does not know (a newer writer's): skipped.
    Unknown(String),
}

/// A record about one connection at one moment (Unix time, µs).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnEvent {
    pub ts_us: i64,
    pub conn: Conn,
    pub config: Option<Config>,
    pub owner: Option<Owner>,
    pub kind: ConnKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConnKind {
    Probe {
        n: u32,
        idle_ms: Option<u64>,
    },
    Ack {
        n: u32,
        rtt_us: u64,
    },
    Unanswered {
        n: u32,
    },
    Timeout {
        reason: String,
        probes: u32,
        detect_ms: Option<u64>,
        predicted_ms: Option<u64>,
    },
    Reset {
        after_probe: Option<u32>,
    },
    OptionsSet {
        result: i32,
    },
}

impl ConnEvent {
    /// watch's record, as its JSON line would say it.
    /// `None` for kinds the report does not draw (an answer by traffic, a
    /// failed connect), which its file reader skips and counts too.
    pub fn from_record(clock: &Clock, record: &Record, attribution: &Attribution) -> Option<Self> {
        let owner = attribution.first_owner();
        let kind = match &record.report {
            Report::Probe { n, idle_ms } => ConnKind::Probe {
                n: *n,
                idle_ms: *idle_ms,
            },
            Report::Ack { n, rtt_us } => ConnKind::Ack {
                n: *n,
                rtt_us: *rtt_us,
            },
            Report::Unanswered { n } => ConnKind::Unanswered { n: *n },
            Report::Timeout {
                reason,
                probes,
                detect_ms,
                predicted_ms,
            } => ConnKind::Timeout {
                reason: reason.to_string(),
                probes: *probes,
                detect_ms: *detect_ms,
                predicted_ms: *predicted_ms,
            },
            Report::Reset { after_probe } => ConnKind::Reset {
                after_probe: *after_probe,
            },
            Report::OptionsSet { result } => ConnKind::OptionsSet { result: *result },
            Report::AnsweredByTraffic { .. } | Report::ConnectFailed { .. } => return None,
        };
        Some(Self {
            ts_us: (clock.wall(record.ts_ns).unix_timestamp_nanos() / 1000) as i64,
            conn: record.conn,
            config: record.config,
            owner: owner.cloned(),
            kind,
        })
    }
}

/// The fields of every per-connection event, borrowed from the line.
/// `rtt_us` and `detect_ms` are numbers here and objects in `summary`.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    ts: Option<Cow<'a, str>>,
    #[serde(borrow)]
    src: Option<Cow<'a, str>>,
    #[serde(borrow)]
    dst: Option<Cow<'a, str>>,
    /// The connection's network namespace (absent before it was recorded).
    netns: Option<u32>,
    pid: Option<u32>,
    #[serde(borrow)]
    comm: Option<Cow<'a, str>>,
    config: Option<ConfigLine>,
    n: Option<u32>,
    idle_ms: Option<u64>,
    rtt_us: Option<Value>,
    #[serde(borrow)]
    reason: Option<Cow<'a, str>>,
    probes: Option<Value>,
    detect_ms: Option<Value>,
    predicted_ms: Option<u64>,
    result: Option<Value>,
    count: Option<u64>,
}

/// `config` as watch writes it ([`Config`]'s serialised form).
#[derive(Deserialize)]
struct ConfigLine {
    keepalive: bool,
    idle_s: u32,
    intvl_s: u32,
    cnt: u32,
    user_timeout_ms: u32,
}

impl From<ConfigLine> for Config {
    fn from(c: ConfigLine) -> Self {
        Self {
            keepalive: c.keepalive,
            idle_s: c.idle_s,
            intvl_s: c.intvl_s,
            cnt: c.cnt,
            user_timeout_ms: c.user_timeout_ms,
        }
    }
}

const KNOWN: [&str; 11] = [
    "probe",
    "ack",
    "unanswered",
    "timeout",
    "reset",
    "options_set",
    "lost",
    "summary",
    "verdict",
    "trial",
    "result",
];

/// Parses one non-empty line; the error says what is wrong with it.
pub fn parse_line(line: &str) -> Result<Input, String> {
    let parsed: Line<'_> = match serde_json::from_str(line) {
        Ok(parsed) => parsed,
        Err(typed) => {
            // A kind we do not know may use our field names differently.
            return match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(map)) => match map.get("event").and_then(Value::as_str) {
                    Some(name) if !KNOWN.contains(&name) => Ok(Input::Unknown(name.to_string())),
                    Some(name) => Err(format!("a {name:?} event that does not fit: {typed}")),
                    None => Err("a JSON object without an \"event\" name".into()),
                },
                Ok(_) => Err("not a JSON object".into()),
                Err(e) => Err(format!("not JSON: {e}")),
            };
        }
    };
    let whole = || serde_json::from_str::<Value>(line).map_err(|e| e.to_string());
    let kind = match &*parsed.event {
        "summary" => return whole().map(Input::Summary),
        "verdict" => return whole().map(Input::Verdict),
        "trial" => return whole().map(Input::Trial),
        "result" => return whole().map(Input::Result),
        "lost" => {
            return Ok(Input::Lost {
                ts_us: parse_ts(parsed.ts.as_deref())?,
                count: parsed.count.ok_or("a lost event without its count")?,
            });
        }
        "probe" => ConnKind::Probe {
            n: need(parsed.n, "probe", "n")?,
            idle_ms: parsed.idle_ms,
        },
        "ack" => ConnKind::Ack {
            n: need(parsed.n, "ack", "n")?,
            rtt_us: need(number(&parsed.rtt_us), "ack", "rtt_us")?,
        },
        "unanswered" => ConnKind::Unanswered {
            n: need(parsed.n, "unanswered", "n")?,
        },
        "timeout" => ConnKind::Timeout {
            reason: need(parsed.reason.as_deref(), "timeout", "reason")?.to_string(),
            probes: need(number(&parsed.probes), "timeout", "probes")? as u32,
            detect_ms: number(&parsed.detect_ms),
            predicted_ms: parsed.predicted_ms,
        },
        "reset" => ConnKind::Reset {
            after_probe: parsed.n,
        },
        "options_set" => ConnKind::OptionsSet {
            result: need(
                parsed.result.as_ref().and_then(Value::as_i64),
                "options_set",
                "result",
            )? as i32,
        },
        other => return Ok(Input::Unknown(other.to_string())),
    };
    let name = &*parsed.event;
    let src = need(parsed.src.as_deref(), name, "src")?;
    let dst = need(parsed.dst.as_deref(), name, "dst")?;
    let addr = |text: &str| {
        text.parse::<SocketAddr>()
            .map_err(|_| format!("{text:?} is not an ADDRESS:PORT"))
    };
    Ok(Input::Conn(ConnEvent {
        ts_us: parse_ts(parsed.ts.as_deref())?,
        conn: Conn::new(parsed.netns.unwrap_or(0), addr(src)?, addr(dst)?),
        config: parsed.config.map(Config::from),
        owner: parsed.pid.map(|pid| Owner {
            pid,
            comm: Arc::from(parsed.comm.as_deref().unwrap_or("?")),
        }),
        kind,
    }))
}

fn need<T>(value: Option<T>, event: &str, field: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("a {event} event without its {field:?}"))
}

fn number(value: &Option<Value>) -> Option<u64> {
    value.as_ref().and_then(Value::as_u64)
}

/// RFC 3339 as watch writes it, to Unix µs.
pub fn parse_ts(ts: Option<&str>) -> Result<i64, String> {
    let ts = ts.ok_or("an event without its \"ts\"")?;
    let at = OffsetDateTime::parse(ts, &Rfc3339)
        .map_err(|e| format!("ts {ts:?} is not an RFC 3339 time: {e}"))?;
    Ok((at.unix_timestamp_nanos() / 1000) as i64)
}
