//! How discover judges its trials: each record about a trial connection,
//! its socket's own signals, and the clock settle it as survived or cut.

use std::time::Duration;

use tokio::time::Instant;

use super::{
    DiscoverError, Discovery,
    estimate::{self, InFlight, TimeLeft, TrialTiming},
    progress,
    report::{Evidence, TrialAnswer},
    search::TrialOutcome,
    trial::{Close, PROBES_PER_TRIAL, SocketSignal},
};
use crate::{
    model::{
        conn::Conn,
        errno::io_error_name,
        timeline::{Record, Report},
    },
    observe::pipeline::Observation,
    render::{clock::Clock, json},
};

impl Discovery {
    pub(super) fn on_observations(&mut self, observations: Vec<Observation>) -> anyhow::Result<()> {
        for observation in observations {
            match observation {
                Observation::Record(record, owner) => {
                    if !self.trials.contains_key(&record.conn) {
                        continue;
                    }
                    if self.plan.json {
                        crate::outln!("{}", json::record_json(&self.clock, &record, &owner))?;
                    }
                    self.on_record(&record)?;
                }
                Observation::Lost { ts_ns, count } => {
                    if self.plan.json {
                        crate::outln!("{}", json::lost_json(&self.clock, ts_ns, count))?;
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) fn on_record(&mut self, record: &Record) -> anyhow::Result<()> {
        let Some(trial) = self.trials.get_mut(&record.conn) else {
            return Ok(());
        };
        let how = match &record.report {
            Report::Probe { idle_ms, .. } => {
                trial.first_probe.get_or_insert((record.ts_ns, *idle_ms));
                return Ok(());
            }
            Report::Ack { n, rtt_us } => (TrialAnswer::Answered, Some(*n), Some(*rtt_us)),
            // Something from the server crossed the path after the probe:
            // the flow was alive, though no round trip can be told.
            Report::AnsweredByTraffic { n } => (TrialAnswer::Answered, Some(*n), None),
            Report::Timeout { probes, .. } => (TrialAnswer::Unanswered, Some(*probes), None),
            Report::Reset {
                after_probe: Some(n),
            } => (TrialAnswer::Reset, Some(*n), None),
            Report::Reset { after_probe: None } => (TrialAnswer::ResetWhileIdle, None, None),
            Report::Unanswered { .. }
            | Report::OptionsSet { .. }
            | Report::ConnectFailed { .. } => return Ok(()),
        };
        self.settle(record.conn, how.0, how.1, how.2, record.ts_ns)
    }

    /// Records a trial's answer, shows it and lets its connection go.
    pub(super) fn settle(
        &mut self,
        conn: Conn,
        how: TrialAnswer,
        probe: Option<u32>,
        rtt_us: Option<u64>,
        at_ns: u64,
    ) -> anyhow::Result<()> {
        let Some(mut trial) = self.trials.remove(&conn) else {
            return Ok(());
        };
        trial.close(if how.survived() {
            Close::Graceful
        } else {
            Close::Abort
        });
        let evidence = Evidence {
            idle_s: trial.idle_s,
            outcome: if how.survived() { "survived" } else { "cut" },
            how,
            probe,
            probe_at: trial.first_probe.map(|(ts, _)| self.clock.rfc3339(ts)),
            probe_idle_ms: trial.first_probe.and_then(|(_, idle)| idle),
            rtt_us,
            ended_after_ms: (!how.survived())
                .then(|| at_ns.saturating_sub(trial.connected_ns) / 1_000_000),
            local: conn.local,
            remote: conn.remote,
        };
        self.estimate = None;
        self.search.resolve(
            trial.idle_s,
            if how.survived() {
                TrialOutcome::Survived
            } else {
                TrialOutcome::Cut
            },
        );
        self.progress.clear();
        if self.plan.json {
            crate::outln!("{}", evidence.json())?;
        } else {
            crate::outln!("{}", evidence.line())?;
        }
        self.evidence.push(evidence);
        Ok(())
    }

    pub(super) fn on_socket(&mut self, conn: Conn, signal: SocketSignal) -> anyhow::Result<()> {
        let Some(trial) = self.trials.get_mut(&conn) else {
            return Ok(());
        };
        match signal {
            SocketSignal::PeerClosed => {
                return Err(DiscoverError::PeerClosesIdle {
                    target: self.target,
                    after: format!("{:.1} s", trial.connected.elapsed().as_secs_f64()),
                }
                .into());
            }
            SocketSignal::Data => log::info!(
                "{conn:?}: the server sent data; the idle time restarts (the probe's measured idle shows it)"
            ),
            SocketSignal::Error(err) => trial.socket_error = Some(err),
        }
        Ok(())
    }

    pub(super) fn on_tick(&mut self) -> anyhow::Result<()> {
        if let Some(Observation::Lost { ts_ns, count }) = self.watcher.poll_lost()? {
            if self.plan.json {
                crate::outln!("{}", json::lost_json(&self.clock, ts_ns, count))?;
            }
            log::warn!("{count} events lost: the ring buffer was full");
        }
        let _ = self.watcher.expire();
        let now = Instant::now();
        let overdue: Vec<Conn> = self
            .trials
            .iter()
            .filter(|(_, t)| t.deadline <= now)
            .map(|(c, _)| *c)
            .collect();
        for conn in overdue {
            self.overdue(conn)?;
        }
        self.show_progress();
        Ok(())
    }

    /// A trial past its time without a kernel event to settle it: its own
    /// socket's error can (when the events were lost); otherwise say what
    /// is missing rather than guess.
    pub(super) fn overdue(&mut self, conn: Conn) -> anyhow::Result<()> {
        let trial = &self.trials[&conn];
        let now_ns = Clock::monotonic_now_ns();
        match trial
            .socket_error
            .as_ref()
            .and_then(std::io::Error::raw_os_error)
        {
            Some(libc::ETIMEDOUT) => {
                return self.settle(conn, TrialAnswer::Unanswered, None, None, now_ns);
            }
            Some(libc::ECONNRESET) => {
                let how = if trial.first_probe.is_some() {
                    TrialAnswer::Reset
                } else {
                    TrialAnswer::ResetWhileIdle
                };
                return self.settle(conn, how, None, None, now_ns);
            }
            _ => {}
        }
        let idle_s = trial.idle_s;
        let error = trial.socket_error.as_ref().map_or(String::new(), |e| {
            format!(" (its socket reports {})", io_error_name(e))
        });
        Err(DiscoverError::NoVerdict(match trial.first_probe {
            None => format!(
                "the trial connection idle {idle_s} s sent no keepalive probe in time{error}: something keeps it from idling (the server sending data?), or the observer missed it ({} events lost)",
                self.watcher.summary().lost
            ),
            Some(_) => format!(
                "the trial connection idle {idle_s} s sent its probe, but neither an answer nor the kernel's verdict came in time{error}"
            ),
        })
        .into())
    }

    pub(super) fn close_moot(&mut self) {
        let moot = self.search.moot();
        if moot.is_empty() {
            return;
        }
        self.trials.retain(|_, trial| {
            if moot.contains(&trial.idle_s) {
                trial.close(Close::Abort);
                false
            } else {
                true
            }
        });
        for idle_s in moot {
            self.search.abandon(idle_s);
        }
        self.estimate = None;
    }

    /// The range of time the search may still take, played forward again
    /// only when the search changed (a trial started, settled or was let go).
    fn time_left(&mut self) -> TimeLeft {
        let (at, left) = *self.estimate.get_or_insert_with(|| {
            let now = Instant::now();
            let in_flight: Vec<InFlight> = self
                .trials
                .values()
                .map(|t| InFlight {
                    idle_s: t.idle_s,
                    elapsed: now.saturating_duration_since(t.connected),
                })
                .collect();
            let timing = TrialTiming {
                give_up: Duration::from_secs(u64::from(self.intvl_s * PROBES_PER_TRIAL)),
            };
            let left = estimate::time_left(&self.search, &in_flight, self.plan.parallel, timing);
            (now, left)
        });
        let since = at.elapsed();
        TimeLeft {
            least: left.least.saturating_sub(since),
            most: left.most.saturating_sub(since),
        }
    }

    pub(super) fn show_progress(&mut self) {
        let now = Instant::now();
        let waiting: Vec<(u32, Duration)> = self
            .trials
            .values()
            .map(|t| {
                let probe_due = t.connected + Duration::from_secs(u64::from(t.idle_s));
                (t.idle_s, probe_due.saturating_duration_since(now))
            })
            .collect();
        let left = self.time_left();
        let line = progress::progress_line(self.started.elapsed(), &self.search, &waiting, left);
        self.progress.show(&line);
    }
}
