//! The signals that end a run early: Ctrl-C (SIGINT), `kill` and `timeout`
//! (SIGTERM), a closed terminal or ssh session (SIGHUP). Commands that change
//! the host (demo's namespace, discover's trial connections) catch all three
//! before changing anything, so that an early end undoes the same as success.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Which signal ended the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Interrupt,
    Terminate,
    Hangup,
}

impl Stop {
    pub fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
            Self::Hangup => "SIGHUP",
        }
    }

    /// 128 + the signal's number, as a shell reports a process it ended.
    pub fn exit_code(self) -> u8 {
        let signo = match self {
            Self::Interrupt => libc::SIGINT,
            Self::Terminate => libc::SIGTERM,
            Self::Hangup => libc::SIGHUP,
        };
        128 + signo as u8
    }
}

/// SIGINT, SIGTERM and SIGHUP, caught.
pub struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl StopSignals {
    /// Catches the three from now on (call inside a tokio runtime). tokio
    /// keeps its handlers until the process exits, so none of them can kill
    /// it halfway through the cleanup either; one that arrives before
    /// `next` is polled is kept for it.
    pub fn catch() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The next of them to arrive.
    pub async fn next(&mut self) -> Stop {
        tokio::select! {
            _ = self.interrupt.recv() => Stop::Interrupt,
            _ = self.terminate.recv() => Stop::Terminate,
            _ = self.hangup.recv() => Stop::Hangup,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_128_plus_the_signal() {
        assert_eq!(Stop::Hangup.exit_code(), 129);
        assert_eq!(Stop::Interrupt.exit_code(), 130);
        assert_eq!(Stop::Terminate.exit_code(), 143);
    }

    #[test]
    fn a_signal_sent_before_waiting_is_kept() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut stop = StopSignals::catch().unwrap();
            // SAFETY: raise has no memory-safety preconditions; SIGHUP is caught above.
            unsafe { libc::raise(libc::SIGHUP) };
            assert_eq!(stop.next().await, Stop::Hangup);
        });
    }
}
