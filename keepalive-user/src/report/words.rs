//! How the page words times, durations, settings and marks: the same words
//! as watch's text lines.

use time::{OffsetDateTime, format_description::FormatItem, macros::format_description};

use crate::model::config::Config;

/// `HH:MM:SS.ffffff` UTC from Unix µs.
pub fn time_of_day(ts_us: i64) -> String {
    const DAY_US: i64 = 86_400 * 1_000_000;
    let us = ts_us.rem_euclid(DAY_US);
    let s = us / 1_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        us % 1_000_000
    )
}

/// `2026-11-24 19:21:32 UTC` from Unix µs.
pub fn date_time(ts_us: i64) -> String {
    const FORMAT: &[FormatItem<'_>] =
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts_us) * 1000)
        .ok()
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or_default()
}

/// A round trip: `48 µs`, `1.25 ms`, `2.10 s`.
pub fn micros(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.2} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// A detection time: `4096 ms` below a minute, `2.5 min` above.
pub fn millis(ms: u64) -> String {
    if ms < 60_000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} min", ms as f64 / 60_000.0)
    }
}

/// An axis label for `us` µs after midnight-aligned time: as much of
/// `HH:MM:SS.ffffff` as the tick step needs.
pub fn axis_label(ts_us: i64, step_us: i64) -> String {
    let full = time_of_day(ts_us);
    match step_us {
        s if s >= 1_000_000 => full[..8].to_string(),
        s if s >= 1_000 => full[..12].to_string(),
        _ => full,
    }
}

/// Settings as watch's lines show them: `idle 1s intvl 1s cnt 3`.
pub fn settings(config: Option<&Config>) -> String {
    match config {
        None => "settings unknown".into(),
        Some(c) if !c.keepalive => "keepalive off".into(),
        Some(c) => {
            let mut text = format!("idle {}s intvl {}s cnt {}", c.idle_s, c.intvl_s, c.cnt);
            if c.user_timeout_ms > 0 {
                text.push_str(&format!(" ut {}ms", c.user_timeout_ms));
            }
            text
        }
    }
}

/// A step of 1, 2 or 5 × 10^k µs giving about `ticks` ticks over `span_us`.
pub fn nice_step(span_us: i64, ticks: i64) -> i64 {
    let raw = (span_us / ticks.max(1)).max(1);
    let mut magnitude = 1i64;
    while magnitude.saturating_mul(10) <= raw {
        magnitude *= 10;
    }
    [1, 2, 5, 10]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&step| step >= raw)
        .unwrap_or(magnitude * 10)
}

/// `text` cut to `max` characters, an ellipsis saying so (IPv6 ends are long).
pub fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_durations_and_steps() {
        // 2026-11-24T19:21:32.070091Z
        let ts = 1_795_548_092_070_091;
        assert_eq!(time_of_day(ts), "19:21:32.070091");
        assert_eq!(date_time(ts), "2026-11-24 19:21:32 UTC");
        assert_eq!(axis_label(ts, 1_000_000), "19:21:32");
        assert_eq!(axis_label(ts, 100_000), "19:21:32.070");
        assert_eq!(
            (micros(48), micros(1_250), micros(2_100_000)),
            ("48 µs".into(), "1.25 ms".into(), "2.10 s".into())
        );
        assert_eq!(
            (millis(4096), millis(150_000)),
            ("4096 ms".into(), "2.5 min".into())
        );
        assert_eq!(nice_step(4_000_000, 8), 500_000);
        assert_eq!(nice_step(60_000_000, 8), 10_000_000);
        assert_eq!(nice_step(7_000, 8), 1_000);
        assert_eq!(nice_step(0, 8), 1);
    }

    #[test]
    fn long_labels_are_cut_and_say_so() {
        assert_eq!(
            fit("10.0.0.1:5 > 10.0.0.2:80", 46),
            "10.0.0.1:5 > 10.0.0.2:80"
        );
        let v6 = "[fd00:1234:5678:9abc::1]:40000 > [fd00:1234:5678:9abc::2]:5432  tcp-peer/4242";
        let cut = fit(v6, 46);
        assert_eq!(cut.chars().count(), 46);
        assert!(cut.ends_with('…') && v6.starts_with(cut.trim_end_matches('…')));
    }

    #[test]
    fn settings_like_the_text_lines() {
        let c = Config {
            keepalive: true,
            idle_s: 1,
            intvl_s: 1,
            cnt: 3,
            user_timeout_ms: 0,
        };
        assert_eq!(settings(Some(&c)), "idle 1s intvl 1s cnt 3");
        let ut = Config {
            user_timeout_ms: 2500,
            ..c
        };
        assert_eq!(settings(Some(&ut)), "idle 1s intvl 1s cnt 3 ut 2500ms");
        let off = Config {
            keepalive: false,
            ..c
        };
        assert_eq!(settings(Some(&off)), "keepalive off");
        assert_eq!(settings(None), "settings unknown");
    }
}
