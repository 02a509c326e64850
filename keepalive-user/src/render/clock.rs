//! Wall-clock time for the kernel's CLOCK_MONOTONIC timestamps.

use std::fmt;

use rustix::time::{ClockId, clock_gettime};
use time::{OffsetDateTime, format_description::FormatItem, macros::format_description};

/// Turns the kernel's CLOCK_MONOTONIC timestamps into wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    realtime_minus_monotonic_ns: i128,
}

fn clock_ns(clock: ClockId) -> i128 {
    let ts = clock_gettime(clock);
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

impl Clock {
    pub fn now() -> Self {
        Self {
            realtime_minus_monotonic_ns: clock_ns(ClockId::Realtime) - clock_ns(ClockId::Monotonic),
        }
    }

    /// For tests: monotonic 0 is the Unix epoch plus `offset_ns`.
    pub fn with_offset(offset_ns: i128) -> Self {
        Self {
            realtime_minus_monotonic_ns: offset_ns,
        }
    }

    pub fn monotonic_now_ns() -> u64 {
        clock_ns(ClockId::Monotonic) as u64
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
    pub(crate) fn time_of_day(&self, monotonic_ns: u64) -> TimeOfDay {
        TimeOfDay(i128::from(monotonic_ns) + self.realtime_minus_monotonic_ns)
    }
}

/// Nanoseconds since the Unix epoch, shown as the UTC time of day.
pub(crate) struct TimeOfDay(i128);

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
