//! Discover's progress on stderr: the bracket so far, the trials idling,
//! and the time the search may still take.

use std::{
    io::{IsTerminal as _, Write as _},
    time::Duration,
};

use tokio::time::Instant;

use super::{estimate::TimeLeft, search::IdleSearch};

/// Progress on stderr: one line rewritten in place on a terminal, a line
/// every ten seconds otherwise (logs, CI).
pub struct Progress {
    tty: bool,
    shown: bool,
    last_line_at: Option<Instant>,
}

impl Progress {
    pub fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            shown: false,
            last_line_at: None,
        }
    }

    pub fn show(&mut self, line: &str) {
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
            self.shown = true;
        } else if self
            .last_line_at
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(10))
        {
            let _ = writeln!(err, "{line}");
            self.last_line_at = Some(Instant::now());
        }
        let _ = err.flush();
    }

    /// Clears the in-place line before something else is written.
    pub fn clear(&mut self) {
        if self.shown {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            self.shown = false;
        }
    }
}

/// The progress line shown while trials idle.
pub fn progress_line(
    elapsed: Duration,
    search: &IdleSearch,
    waiting: &[(u32, Duration)],
    left: TimeLeft,
) -> String {
    let bracket = match (search.survives_s(), search.cut_s()) {
        (0, None) => "nothing known yet".to_string(),
        (y, None) => format!("survives {y} s, nothing cut yet"),
        (0, Some(x)) => format!("cut at {x} s"),
        (y, Some(x)) => format!("survives {y} s, cut at {x} s"),
    };
    let mut waiting: Vec<_> = waiting.to_vec();
    waiting.sort_unstable();
    let idle = waiting
        .iter()
        .map(|(idle_s, left)| format!("{idle_s} s ({} left)", clock(*left)))
        .collect::<Vec<_>>()
        .join(", ");
    // Rounded to the clock's seconds, so that "0:31 to 0:31" says "0:31".
    let (least, most) = (clock(left.least), clock(left.most));
    let left = if least == most {
        format!("{most} left")
    } else {
        format!("{least} to {most} left")
    };
    format!(
        "[{}] bracket: {bracket} | idling: {} | {left}",
        clock(elapsed),
        if idle.is_empty() { "-".into() } else { idle },
    )
}

/// 75 s -> "1:15", 3725 s -> "1:02:05".
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::search::TrialOutcome as Trial;

    #[test]
    fn progress_shows_bracket_waits_and_time_left() {
        let mut search = IdleSearch::new(20);
        search.resolve(4, Trial::Survived);
        search.resolve(9, Trial::Cut);
        let line = progress_line(
            Duration::from_secs(75),
            &search,
            &[(7, Duration::from_secs(3)), (6, Duration::from_secs(2))],
            TimeLeft {
                least: Duration::from_millis(4_200),
                most: Duration::from_secs(12),
            },
        );
        assert_eq!(
            line,
            "[1:15] bracket: survives 4 s, cut at 9 s | idling: 6 s (0:02 left), 7 s (0:03 left) | 0:04 to 0:12 left"
        );
        assert_eq!(clock(Duration::from_secs(3725)), "1:02:05");
    }
}
