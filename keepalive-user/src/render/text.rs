//! Aligned lines for people, coloured on a terminal: one per record, the
//! lost-events line, and the end-of-session summary.

use std::fmt::{self, Write as _};

use crate::{
    model::{
        config::Config,
        errno::errno_name,
        owner::{Attribution, Holder},
        summary::{Samples, Summary},
        timeline::{Record, Report},
    },
    render::clock::Clock,
};

const RESET: &str = "\x1b[0m";

fn colour(report: &Report) -> &'static str {
    match report {
        Report::Probe { .. } => "\x1b[33m",
        Report::Ack { .. } => "\x1b[32m",
        Report::Unanswered { .. } => "\x1b[31m",
        Report::Timeout { .. } => "\x1b[1;31m",
        Report::Reset { .. } => "\x1b[35m",
        Report::OptionsSet { .. } => "\x1b[36m",
        Report::AnsweredByTraffic { .. } => "\x1b[32m",
        Report::ConnectFailed { .. } => "\x1b[35m",
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
            Report::AnsweredByTraffic { n } => write!(f, "#{n} answered by traffic, no rtt"),
            Report::ConnectFailed { errno } => write!(f, "connect failed: {}", errno_name(*errno)),
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
pub fn record_line(
    clock: &Clock,
    record: &Record,
    attribution: &Attribution,
    color: bool,
) -> String {
    let mut line = String::with_capacity(160);
    write_record_line(&mut line, clock, record, attribution, color);
    line
}

/// [`record_line`] appended to `out`, without a newline. Watch writes up to
/// 100 000 of these a second, so nothing here allocates but `out`.
pub fn write_record_line(
    out: &mut String,
    clock: &Clock,
    record: &Record,
    attribution: &Attribution,
    color: bool,
) {
    let event = text_label(&record.report);
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
    push_padded(out, OwnersText(&attribution.owners), 16);
    out.push_str(" [");
    match &record.config {
        Some(config) => {
            let _ = write!(out, "{}", ConfigText(config));
        }
        None => out.push('-'),
    }
    out.push(']');
    if attribution.foreign_netns {
        out.push_str("  netns ");
        match &attribution.netns_name {
            Some(name) => out.push_str(name),
            None => {
                let _ = write!(out, "{}", record.conn.netns);
            }
        }
    }
}

/// `nginx/120`, `nginx/120,121` (one command, several pids, as a
/// pre-forking server's listener and worker), `a/1,b/2`, or `-`.
struct OwnersText<'a>(&'a [Holder]);

impl fmt::Display for OwnersText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(first) = self.0.first().map(|h| &h.owner) else {
            return f.write_str("-");
        };
        write!(f, "{}/{}", first.comm, first.pid)?;
        for owner in self.0[1..].iter().map(|h| &h.owner) {
            if owner.comm == first.comm {
                write!(f, ",{}", owner.pid)?;
            } else {
                write!(f, ",{}/{}", owner.comm, owner.pid)?;
            }
        }
        Ok(())
    }
}

pub fn lost_line(clock: &Clock, ts_ns: u64, count: u64) -> String {
    format!(
        "{} LOST        {count} events the ring buffer could not take",
        clock.time_of_day(ts_ns)
    )
}

/// The event's name in the text column, which is 11 characters wide: the
/// JSON name where it fits.
fn text_label(report: &Report) -> &'static str {
    match report {
        Report::AnsweredByTraffic { .. } => "answered",
        Report::ConnectFailed { .. } => "conn_failed",
        other => other.event_name(),
    }
}

/// The end-of-session summary; `command` names the session (`watch`,
/// `set --new`).
pub fn summary_text(summary: &Summary, command: &str, elapsed_s: f64) -> String {
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
    let by_traffic = match summary.answered_by_traffic {
        0 => String::new(),
        n => format!(", {n} by traffic"),
    };
    let connect_failures = match summary.connect_failures {
        0 => String::new(),
        n => format!("connect failures  {n}\n"),
    };
    format!(
        "--- keepalive {command}: {elapsed_s:.1} s ---\n\
         connections seen  {}\n\
         probes            {} ({} answered{by_traffic}, {} unanswered)\n\
         peer resets       {}\n\
         {connect_failures}\
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
    use crate::render::sample_record as record;

    #[test]
    fn human_line_is_aligned_and_colour_optional() {
        let clock = Clock::with_offset(0);
        let plain = record_line(
            &clock,
            &record(Report::Unanswered { n: 3 }),
            &Attribution::default(),
            false,
        );
        assert!(plain.starts_with("00:00:01.500000 unanswered "), "{plain}");
        assert!(plain.contains("[::1]:40000 > [::1]:5000"));
        assert!(plain.contains("#3 no answer"));
        assert!(plain.contains("[idle 1s intvl 1s cnt 3]"));
        assert!(!plain.contains('\x1b'));
        let coloured = record_line(
            &clock,
            &record(Report::Unanswered { n: 3 }),
            &Attribution::default(),
            true,
        );
        assert!(coloured.contains("\x1b[31m"));
        let a = record_line(
            &clock,
            &record(Report::Probe {
                n: 1,
                idle_ms: Some(1000),
            }),
            &Attribution::default(),
            false,
        );
        let b = record_line(
            &clock,
            &record(Report::Ack { n: 1, rtt_us: 9 }),
            &Attribution::default(),
            false,
        );
        assert_eq!(a.find(" > "), b.find(" > "), "columns line up");
        let by_traffic = record_line(
            &clock,
            &record(Report::AnsweredByTraffic { n: 2 }),
            &Attribution::default(),
            false,
        );
        let failed = record_line(
            &clock,
            &record(Report::ConnectFailed { errno: 111 }),
            &Attribution::default(),
            false,
        );
        assert!(
            by_traffic.contains("answered    ")
                && by_traffic.contains("#2 answered by traffic, no rtt"),
            "{by_traffic}"
        );
        assert!(
            failed.contains("conn_failed ") && failed.contains("connect failed: ECONNREFUSED"),
            "{failed}"
        );
        assert_eq!(a.find(" > "), by_traffic.find(" > "));
        assert_eq!(a.find(" > "), failed.find(" > "));
    }

    #[test]
    fn owners_and_foreign_namespaces_are_named() {
        let clock = Clock::with_offset(0);
        let owner = |pid, comm: &str| Holder {
            owner: crate::model::owner::Owner {
                pid,
                comm: comm.into(),
            },
            fd: 3,
        };
        let forked = Attribution {
            owners: vec![owner(10, "srv"), owner(11, "srv"), owner(12, "log")].into(),
            netns_name: Some("blue".into()),
            foreign_netns: true,
        };
        let line = record_line(
            &clock,
            &record(Report::Ack { n: 1, rtt_us: 9 }),
            &forked,
            false,
        );
        assert!(line.contains(" srv/10,11,log/12 "), "{line}");
        assert!(line.ends_with("]  netns blue"), "{line}");
        let own = Attribution {
            owners: vec![owner(10, "srv")].into(),
            ..Attribution::default()
        };
        let line = record_line(
            &clock,
            &record(Report::Ack { n: 1, rtt_us: 9 }),
            &own,
            false,
        );
        assert!(line.ends_with("cnt 3]"), "own namespace: no suffix: {line}");
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
        let text = summary_text(&summary, "watch", 10.0);
        assert!(
            text.contains("probes            5 (2 answered, 3 unanswered)"),
            "{text}"
        );
        assert!(text.contains("p50 10 us"));
        assert!(
            text.starts_with("--- keepalive watch: 10.0 s ---\n"),
            "{text}"
        );
        assert!(
            summary_text(&summary, "set --new", 1.0)
                .starts_with("--- keepalive set --new: 1.0 s ---")
        );
    }
}
