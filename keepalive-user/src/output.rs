//! Rendering records for people (aligned lines, colour on a TTY) and for
//! scripts (one JSON object per line; the field names are a contract).

use std::fmt::{self, Write as _};

use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::FormatItem, macros::format_description};

use crate::{
    events::Config,
    summary::{Samples, Summary},
    timeline::{Record, Report},
};

/// `println!` that hands back the error instead of panicking when stdout is
/// gone (`keepalive discover ... | head -3`), so the caller's cleanup runs.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, $($arg)*)
            .and_then(|()| out.flush())
            .map_err(|e| anyhow::Error::new(e).context("writing to stdout"))
    }};
}

/// Turns the kernel's CLOCK_MONOTONIC timestamps into wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    realtime_minus_monotonic_ns: i128,
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

impl Clock {
    pub fn now() -> Self {
        Self {
            realtime_minus_monotonic_ns: clock_ns(libc::CLOCK_REALTIME)
                - clock_ns(libc::CLOCK_MONOTONIC),
        }
    }

    /// For tests: monotonic 0 is the Unix epoch plus `offset_ns`.
    pub fn with_offset(offset_ns: i128) -> Self {
        Self {
            realtime_minus_monotonic_ns: offset_ns,
        }
    }

    pub fn monotonic_now_ns() -> u64 {
        clock_ns(libc::CLOCK_MONOTONIC) as u64
    }

    pub fn wall(&self, monotonic_ns: u64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(monotonic_ns) + self.realtime_minus_monotonic_ns,
        )
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// RFC 3339, UTC, microseconds: 2026-11-24T19:00:01.123456Z
    pub fn rfc3339(&self, monotonic_ns: u64) -> String {
        const FORMAT: &[FormatItem<'_>] = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        );
        self.wall(monotonic_ns).format(FORMAT).unwrap_or_default()
    }

    /// `HH:MM:SS.ffffff`, UTC, by arithmetic: it starts every line.
    fn time_of_day(&self, monotonic_ns: u64) -> TimeOfDay {
        TimeOfDay(i128::from(monotonic_ns) + self.realtime_minus_monotonic_ns)
    }
}

/// Nanoseconds since the Unix epoch, shown as the UTC time of day.
struct TimeOfDay(i128);

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DAY_US: i128 = 86_400 * 1_000_000;
        let us = (self.0 / 1000).rem_euclid(DAY_US);
        let s = us / 1_000_000;
        write!(
            f,
            "{:02}:{:02}:{:02}.{:06}",
            s / 3600,
            s / 60 % 60,
            s % 60,
            us % 1_000_000
        )
    }
}

/// The process holding a connection, where it could be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    /// Shared: every record of a connection carries its owner.
    pub comm: std::sync::Arc<str>,
}

pub fn config_json(config: &Config) -> Value {
    serde_json::to_value(config).unwrap_or(Value::Null)
}

pub fn record_json(clock: &Clock, record: &Record, owner: Option<&Owner>) -> Value {
    let mut v = json!({
        "event": record.report.event_name(),
        "ts": clock.rfc3339(record.ts_ns),
        "src": record.conn.local.to_string(),
        "dst": record.conn.remote.to_string(),
    });
    let map = v.as_object_mut().expect("object");
    if let Some(owner) = owner {
        map.insert("pid".into(), json!(owner.pid));
        map.insert("comm".into(), json!(&*owner.comm));
    }
    if let Some(config) = &record.config {
        map.insert("config".into(), config_json(config));
    }
    match &record.report {
        Report::Probe { n, idle_ms } => {
            map.insert("n".into(), json!(n));
            map.insert("idle_ms".into(), json!(idle_ms));
        }
        Report::Ack { n, rtt_us } => {
            map.insert("n".into(), json!(n));
            map.insert("rtt_us".into(), json!(rtt_us));
        }
        Report::Unanswered { n } => {
            map.insert("n".into(), json!(n));
        }
        Report::Timeout {
            reason,
            probes,
            detect_ms,
            predicted_ms,
        } => {
            map.insert("reason".into(), json!(reason.to_string()));
            map.insert("probes".into(), json!(probes));
            map.insert("detect_ms".into(), json!(detect_ms));
            map.insert("predicted_ms".into(), json!(predicted_ms));
        }
        Report::Reset { after_probe } => {
            map.insert("n".into(), json!(after_probe));
        }
        Report::OptionsSet { result } => {
            map.insert("result".into(), json!(result));
        }
    }
    v
}

pub fn lost_json(clock: &Clock, ts_ns: u64, count: u64) -> Value {
    json!({"event": "lost", "ts": clock.rfc3339(ts_ns), "count": count})
}

const RESET: &str = "\x1b[0m";

fn colour(report: &Report) -> &'static str {
    match report {
        Report::Probe { .. } => "\x1b[33m",
        Report::Ack { .. } => "\x1b[32m",
        Report::Unanswered { .. } => "\x1b[31m",
        Report::Timeout { .. } => "\x1b[1;31m",
        Report::Reset { .. } => "\x1b[35m",
        Report::OptionsSet { .. } => "\x1b[36m",
    }
}

pub fn config_text(config: &Config) -> String {
    ConfigText(config).to_string()
}

/// `idle 1s intvl 1s cnt 3 [user_timeout 500ms]` or `keepalive off`.
struct ConfigText<'a>(&'a Config);

impl fmt::Display for ConfigText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0;
        if !c.keepalive {
            return f.write_str("keepalive off");
        }
        write!(f, "idle {}s intvl {}s cnt {}", c.idle_s, c.intvl_s, c.cnt)?;
        if c.user_timeout_ms > 0 {
            write!(f, " user_timeout {}ms", c.user_timeout_ms)?;
        }
        Ok(())
    }
}

/// The detail column of a record.
struct Detail<'a>(&'a Report);

impl fmt::Display for Detail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Report::Probe {
                n,
                idle_ms: Some(idle),
            } => write!(f, "#{n} idle {idle} ms"),
            Report::Probe { n, idle_ms: None } => write!(f, "#{n}"),
            Report::Ack { n, rtt_us } => write!(f, "#{n} rtt {rtt_us} us"),
            Report::Unanswered { n } => write!(f, "#{n} no answer"),
            Report::Timeout {
                reason,
                probes,
                detect_ms,
                predicted_ms,
            } => {
                write!(f, "{reason} after {probes} unanswered")?;
                if let Some(d) = detect_ms {
                    write!(f, ", dead for {d} ms")?;
                }
                if let Some(p) = predicted_ms {
                    write!(f, " (settings predict {p} ms)")?;
                }
                Ok(())
            }
            Report::Reset {
                after_probe: Some(n),
            } => write!(f, "peer reset after probe #{n}"),
            Report::Reset { after_probe: None } => f.write_str("peer reset"),
            Report::OptionsSet { result: 0 } => f.write_str("applied"),
            Report::OptionsSet { result } => write!(f, "failed: errno {}", -result),
        }
    }
}

/// Writes `value` into `out`, then spaces up to `width` characters
/// (left-aligned): `{:<width}` for Display types that ignore the width.
fn push_padded(out: &mut String, value: impl fmt::Display, width: usize) {
    let start = out.len();
    let _ = write!(out, "{value}");
    let written = out[start..].chars().count();
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(written)));
}

/// One aligned line: time, event, src → dst, detail, owner, settings.
pub fn record_line(clock: &Clock, record: &Record, owner: Option<&Owner>, color: bool) -> String {
    let mut line = String::with_capacity(160);
    write_record_line(&mut line, clock, record, owner, color);
    line
}

/// [`record_line`] appended to `out`, without a newline. Watch writes up to
/// 100 000 of these a second, so nothing here allocates but `out`.
pub fn write_record_line(
    out: &mut String,
    clock: &Clock,
    record: &Record,
    owner: Option<&Owner>,
    color: bool,
) {
    let event = record.report.event_name();
    let (on, off) = if color {
        (colour(&record.report), RESET)
    } else {
        ("", "")
    };
    let _ = write!(
        out,
        "{} {on}{event:<11}{off} {:>22} > {:<22} {on}",
        clock.time_of_day(record.ts_ns),
        record.conn.local,
        record.conn.remote,
    );
    push_padded(out, Detail(&record.report), 44);
    out.push_str(off);
    out.push(' ');
    match owner {
        Some(o) => push_padded(out, format_args!("{}/{}", o.comm, o.pid), 16),
        None => push_padded(out, "-", 16),
    }
    out.push_str(" [");
    match &record.config {
        Some(config) => {
            let _ = write!(out, "{}", ConfigText(config));
        }
        None => out.push('-'),
    }
    out.push(']');
}

pub fn lost_line(clock: &Clock, ts_ns: u64, count: u64) -> String {
    format!(
        "{} LOST        {count} events the ring buffer could not take",
        clock.time_of_day(ts_ns)
    )
}

fn pcts(samples: &Samples) -> Value {
    json!({
        "p50": samples.percentile(50.0),
        "p90": samples.percentile(90.0),
        "p99": samples.percentile(99.0),
        "max": samples.max(),
        "count": samples.count(),
    })
}

pub fn summary_json(summary: &Summary, elapsed_s: f64) -> Value {
    json!({
        "event": "summary",
        "elapsed_s": (elapsed_s * 1000.0).round() / 1000.0,
        "connections": summary.connections,
        "probes": summary.probes,
        "answered": summary.answered,
        "unanswered": summary.unanswered,
        "resets": summary.resets,
        "timeouts": summary.timeouts,
        "rtt_us": pcts(&summary.rtt_us),
        "detect_ms": pcts(&summary.detect_ms),
        "lost": summary.lost,
    })
}

pub fn summary_text(summary: &Summary, elapsed_s: f64) -> String {
    let fmt_pcts = |samples: &Samples, unit: &str| match (
        samples.percentile(50.0),
        samples.percentile(90.0),
        samples.percentile(99.0),
        samples.max(),
    ) {
        (Some(p50), Some(p90), Some(p99), Some(max)) => {
            format!(
                "p50 {p50} {unit}, p90 {p90} {unit}, p99 {p99} {unit}, max {max} {unit} ({} samples)",
                samples.count()
            )
        }
        _ => "none".into(),
    };
    let timeouts = if summary.timeouts.is_empty() {
        "none".to_string()
    } else {
        summary
            .timeouts
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "--- keepalive watch: {elapsed_s:.1} s ---\n\
         connections seen  {}\n\
         probes            {} ({} answered, {} unanswered)\n\
         peer resets       {}\n\
         timeouts          {timeouts}\n\
         probe rtt         {}\n\
         detection time    {}\n\
         events lost       {}\n",
        summary.connections,
        summary.probes,
        summary.answered,
        summary.unanswered,
        summary.resets,
        fmt_pcts(&summary.rtt_us, "us"),
        fmt_pcts(&summary.detect_ms, "ms"),
        summary.lost,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{events::Conn, timeline::Reason};

    fn record(report: Report) -> Record {
        Record {
            ts_ns: 1_500_000_000,
            conn: Conn {
                local: "[::1]:40000".parse().unwrap(),
                remote: "[::1]:5000".parse().unwrap(),
            },
            config: Some(Config {
                keepalive: true,
                idle_s: 1,
                intvl_s: 1,
                cnt: 3,
                user_timeout_ms: 0,
            }),
            report,
        }
    }

    #[test]
    fn json_follows_the_contract() {
        let clock = Clock::with_offset(1_795_000_000_000_000_000);
        let owner = Owner {
            pid: 42,
            comm: "server".into(),
        };
        let v = record_json(
            &clock,
            &record(Report::Probe {
                n: 2,
                idle_ms: Some(2000),
            }),
            Some(&owner),
        );
        assert_eq!(v["event"], "probe");
        assert_eq!(v["ts"], "2026-11-18T11:06:41.500000Z");
        assert_eq!(v["src"], "[::1]:40000");
        assert_eq!(v["dst"], "[::1]:5000");
        assert_eq!(v["pid"], 42);
        assert_eq!(v["comm"], "server");
        assert_eq!(v["n"], 2);
        assert_eq!(v["idle_ms"], 2000);
        assert_eq!(
            v["config"],
            json!({"keepalive": true, "idle_s": 1, "intvl_s": 1, "cnt": 3, "user_timeout_ms": 0})
        );
        let t = record_json(
            &clock,
            &record(Report::Timeout {
                reason: Reason::UserTimeout,
                probes: 1,
                detect_ms: Some(3001),
                predicted_ms: Some(3000),
            }),
            None,
        );
        assert_eq!(
            (t["event"].as_str(), t["reason"].as_str()),
            (Some("timeout"), Some("user_timeout"))
        );
        assert_eq!(
            (t["probes"].as_u64(), t["detect_ms"].as_u64()),
            (Some(1), Some(3001))
        );
        assert!(t.get("pid").is_none());
        let ack = record_json(&clock, &record(Report::Ack { n: 1, rtt_us: 37 }), None);
        assert_eq!(ack["rtt_us"], 37);
        assert_eq!(lost_json(&clock, 0, 7)["count"], 7);
    }

    #[test]
    fn human_line_is_aligned_and_colour_optional() {
        let clock = Clock::with_offset(0);
        let plain = record_line(&clock, &record(Report::Unanswered { n: 3 }), None, false);
        assert!(plain.starts_with("00:00:01.500000 unanswered "), "{plain}");
        assert!(plain.contains("[::1]:40000 > [::1]:5000"));
        assert!(plain.contains("#3 no answer"));
        assert!(plain.contains("[idle 1s intvl 1s cnt 3]"));
        assert!(!plain.contains('\x1b'));
        let coloured = record_line(&clock, &record(Report::Unanswered { n: 3 }), None, true);
        assert!(coloured.contains("\x1b[31m"));
        let a = record_line(
            &clock,
            &record(Report::Probe {
                n: 1,
                idle_ms: Some(1000),
            }),
            None,
            false,
        );
        let b = record_line(
            &clock,
            &record(Report::Ack { n: 1, rtt_us: 9 }),
            None,
            false,
        );
        assert_eq!(a.find(" > "), b.find(" > "), "columns line up");
    }

    #[test]
    fn time_of_day_agrees_with_the_rfc3339_time() {
        for offset_ns in [0i128, 1_763_463_999_999_999_999, 1_763_464_001_500_000_123] {
            let clock = Clock::with_offset(offset_ns);
            for mono in [0u64, 999, 86_399_999_999_999] {
                let full = clock.rfc3339(mono);
                let time = &full[11..26];
                assert_eq!(clock.time_of_day(mono).to_string(), time, "{full}");
            }
        }
    }

    #[test]
    fn summary_lists_percentiles() {
        let summary = Summary {
            connections: 2,
            probes: 5,
            answered: 2,
            unanswered: 3,
            rtt_us: [10, 20].into_iter().collect(),
            detect_ms: [4000].into_iter().collect(),
            ..Summary::default()
        };
        let text = summary_text(&summary, 10.0);
        assert!(
            text.contains("probes            5 (2 answered, 3 unanswered)"),
            "{text}"
        );
        assert!(text.contains("p50 10 us"));
        let v = summary_json(&summary, 10.0);
        assert_eq!(v["detect_ms"]["p99"], 4000);
        assert_eq!(v["lost"], 0);
    }
}
