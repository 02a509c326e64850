//! Aligned lines for people, coloured on a terminal: one per record, the
//! lost-events line, and the end-of-session summary.

use std::fmt::{self, Write as _};

use crate::{
    model::{
        config::Config,
        owner::Owner,
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
    format!(
        "--- keepalive {command}: {elapsed_s:.1} s ---\n\
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
    use crate::render::sample_record as record;

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
