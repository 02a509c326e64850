//! Discover's progress on stderr.

use std::{
    io::{IsTerminal as _, Write as _},
    time::Duration,
};

use tokio::time::Instant;

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
