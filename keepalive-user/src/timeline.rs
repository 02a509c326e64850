//! Per-connection timelines: turns kernel events into what the user asks
//! about — which probe was answered and how fast, which went unanswered, and
//! when and why the kernel gave up — and keeps the session's summary.

use crate::events::{Config, Conn, KernelEvent, What, errno_name};
pub use crate::summary::Summary;

/// Why the kernel gave up on a connection.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    Keepalive,
    UserTimeout,
    Retransmit,
    Error(u32),
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Keepalive => f.write_str("keepalive"),
            Self::UserTimeout => f.write_str("user_timeout"),
            Self::Retransmit => f.write_str("retransmit"),
            Self::Error(errno) => write!(f, "error:{}", errno_name(*errno)),
        }
    }
}

/// What the user is shown; the JSON `event` names are the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
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
        reason: Reason,
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

impl Report {
    pub fn event_name(&self) -> &'static str {
        match self {
            Self::Probe { .. } => "probe",
            Self::Ack { .. } => "ack",
            Self::Unanswered { .. } => "unanswered",
            Self::Timeout { .. } => "timeout",
            Self::Reset { .. } => "reset",
            Self::OptionsSet { .. } => "options_set",
        }
    }
}

/// A report about one connection at one moment (CLOCK_MONOTONIC ns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub ts_ns: u64,
    pub conn: Conn,
    pub config: Option<Config>,
    pub report: Report,
}

#[derive(Debug, Default)]
struct ConnState {
    config: Option<Config>,
    /// Probes sent since the peer last answered (the kernel's numbering).
    unanswered_run: u32,
    /// When the last segment from the peer arrived, where known.
    last_peer_ns: Option<u64>,
    /// A timeout or reset was reported: later errors and resets of the same
    /// death are not reported again.
    ended: bool,
    /// The socket reached TCP_CLOSE. Kept a moment longer because the kernel
    /// reports the error (ETIMEDOUT) after the close (tcp_write_err calls
    /// tcp_done before sk_error_report).
    closed_at_ns: Option<u64>,
    /// Counted in the summary's connections.
    counted: bool,
}

/// How long a closed connection waits for its error report.
const CLOSED_GRACE_NS: u64 = 1_000_000_000;

const ECONNRESET: u32 = libc::ECONNRESET as u32;
const ECONNREFUSED: u32 = libc::ECONNREFUSED as u32;
const EPIPE: u32 = libc::EPIPE as u32;
const ETIMEDOUT: u32 = libc::ETIMEDOUT as u32;

#[derive(Debug, Default)]
pub struct Timelines {
    /// foldhash, not SipHash: hashing the 4-tuple was a tenth of watch's
    /// CPU at 100 000 events a second.
    conns: foldhash::HashMap<Conn, ConnState>,
    defaults: Option<Config>,
    /// Report only connections first seen by the cgroup-scoped hooks
    /// (packets, sock_ops): tracepoints see the whole host, so under
    /// `--cgroup` their events about other connections are ignored.
    only_seen_by_cgroup_hooks: bool,
    pub summary: Summary,
}

impl Timelines {
    /// `defaults` fill settings the kernel reported as "namespace default".
    pub fn new(defaults: Option<Config>) -> Self {
        Self {
            defaults,
            ..Self::default()
        }
    }

    pub fn only_seen_by_cgroup_hooks(mut self) -> Self {
        self.only_seen_by_cgroup_hooks = true;
        self
    }

    pub fn tracked(&self) -> usize {
        self.conns.len()
    }

    /// Feeds one kernel event; returns what to show, oldest first.
    pub fn on_event(&mut self, event: &KernelEvent) -> Vec<Record> {
        let mut out = Vec::new();
        let defaults = self.defaults;
        let summary = &mut self.summary;
        let from_cgroup_hook = matches!(
            event.what,
            What::Probe { .. } | What::Ack { .. } | What::Established | What::OptionsSet { .. }
        );
        let only_if_known = (self.only_seen_by_cgroup_hooks && !from_cgroup_hook)
            || matches!(event.what, What::SocketError { errno } if errno != ETIMEDOUT);
        // The lookup only when it matters: probes and answers are nearly all
        // events, and each lookup is a cache miss with 50 000 connections.
        if only_if_known && !self.conns.contains_key(&event.conn) {
            // An error on a connection we never saw alive, not a timeout:
            // refused connects and the like are not this tool's business.
            return out;
        }
        let state = self.conns.entry(event.conn).or_default();
        if let Some(config) = event.config {
            state.config = Some(defaults.map_or(config, |d| config.with_defaults(&d)));
        }
        let mut emit = |state: &mut ConnState, report: Report| {
            out.push(Record {
                ts_ns: event.ts_ns,
                conn: event.conn,
                config: state.config,
                report,
            });
        };
        match event.what {
            What::Probe { n, idle_ns } => {
                if n > 1 {
                    summary.unanswered += 1;
                    emit(state, Report::Unanswered { n: n - 1 });
                }
                if let Some(idle) = idle_ns {
                    state.last_peer_ns = Some(event.ts_ns.saturating_sub(idle));
                }
                state.unanswered_run = n;
                state.ended = false;
                summary.probes += 1;
                emit(
                    state,
                    Report::Probe {
                        n,
                        idle_ms: idle_ns.map(|i| i / 1_000_000),
                    },
                );
            }
            What::Ack { n, rtt_ns } => {
                state.unanswered_run = 0;
                state.last_peer_ns = Some(event.ts_ns);
                summary.answered += 1;
                summary.rtt_us.record(rtt_ns / 1000);
                emit(
                    state,
                    Report::Ack {
                        n,
                        rtt_us: rtt_ns / 1000,
                    },
                );
            }
            What::KeepaliveReset => {
                let reason = keepalive_reason(state.config);
                finish(state, event.ts_ns, reason, summary, &mut emit);
            }
            What::SocketError { errno } if !state.ended => match errno {
                // A reset from the peer: reported by `reset`, not a timeout.
                ECONNRESET | ECONNREFUSED | EPIPE => {}
                ETIMEDOUT => {
                    let reason = if state.unanswered_run > 0 {
                        // Kernels without the reset reason (< ~6.12) end here.
                        keepalive_reason(state.config)
                    } else if state.config.is_some_and(|c| c.user_timeout_ms > 0) {
                        Reason::UserTimeout
                    } else {
                        Reason::Retransmit
                    };
                    finish(state, event.ts_ns, reason, summary, &mut emit);
                }
                // The kernel reports a soft error (e.g. EHOSTUNREACH from an
                // ICMP) in place of ETIMEDOUT when it has one.
                other => finish(state, event.ts_ns, Reason::Error(other), summary, &mut emit),
            },
            What::SocketError { .. } => {}
            What::ResetReceived if !state.ended => {
                let after_probe = (state.unanswered_run > 0).then_some(state.unanswered_run);
                state.unanswered_run = 0;
                state.ended = true;
                summary.resets += 1;
                emit(state, Report::Reset { after_probe });
            }
            What::ResetReceived => {}
            What::Closed { .. } => state.closed_at_ns = Some(event.ts_ns),
            What::Established => {}
            What::OptionsSet { result } => emit(state, Report::OptionsSet { result }),
        }
        let seen = !out.is_empty() || matches!(event.what, What::Established);
        if seen && !state.counted {
            state.counted = true;
            summary.connections += 1;
        }
        out
    }

    /// Forgets connections closed more than a moment before `now_ns`; a
    /// probe still out when one closed without a timeout went unanswered.
    /// Returns those records and the connections forgotten.
    pub fn expire_closed(&mut self, now_ns: u64) -> (Vec<Record>, Vec<Conn>) {
        let mut out = Vec::new();
        let mut forgotten = Vec::new();
        let summary = &mut self.summary;
        self.conns.retain(|conn, state| {
            let Some(closed) = state.closed_at_ns else {
                return true;
            };
            if now_ns.saturating_sub(closed) < CLOSED_GRACE_NS {
                return true;
            }
            if !state.ended && state.unanswered_run > 0 {
                summary.unanswered += 1;
                out.push(Record {
                    ts_ns: closed,
                    conn: *conn,
                    config: state.config,
                    report: Report::Unanswered {
                        n: state.unanswered_run,
                    },
                });
            }
            forgotten.push(*conn);
            false
        });
        (out, forgotten)
    }
}

fn keepalive_reason(config: Option<Config>) -> Reason {
    // With TCP_USER_TIMEOUT set the keepalive timer ignores TCP_KEEPCNT and
    // kills on the user timeout instead.
    if config.is_some_and(|c| c.user_timeout_ms > 0) {
        Reason::UserTimeout
    } else {
        Reason::Keepalive
    }
}

fn finish(
    state: &mut ConnState,
    ts_ns: u64,
    reason: Reason,
    summary: &mut Summary,
    emit: &mut impl FnMut(&mut ConnState, Report),
) {
    let probes = state.unanswered_run;
    if probes > 0 {
        summary.unanswered += 1;
        emit(state, Report::Unanswered { n: probes });
    }
    let detect_ms = state
        .last_peer_ns
        .map(|last| ts_ns.saturating_sub(last) / 1_000_000);
    let predicted_ms = match (&reason, state.config) {
        (Reason::Keepalive | Reason::UserTimeout, Some(c)) if c.keepalive => {
            Some(c.predicted_detect_ms())
        }
        _ => None,
    };
    if let Some(d) = detect_ms {
        summary.detect_ms.record(d);
    }
    *summary.timeouts.entry(reason.to_string()).or_default() += 1;
    state.unanswered_run = 0;
    state.ended = true;
    emit(
        state,
        Report::Timeout {
            reason,
            probes,
            detect_ms,
            predicted_ms,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;

    fn conn() -> Conn {
        Conn {
            local: "127.0.0.1:40000".parse().unwrap(),
            remote: "127.0.0.1:5000".parse().unwrap(),
        }
    }

    fn config(user_timeout_ms: u32) -> Config {
        Config {
            keepalive: true,
            idle_s: 1,
            intvl_s: 1,
            cnt: 3,
            user_timeout_ms,
        }
    }

    fn ev(ts_ns: u64, what: What, ut: u32) -> KernelEvent {
        KernelEvent {
            ts_ns,
            conn: conn(),
            config: Some(config(ut)),
            socket_ino: None,
            what,
        }
    }

    fn reports(t: &mut Timelines, events: &[KernelEvent]) -> Vec<Report> {
        events
            .iter()
            .flat_map(|e| t.on_event(e))
            .map(|r| r.report)
            .collect()
    }

    #[test]
    fn healthy_idle_connection_probes_and_answers() {
        let mut t = Timelines::new(None);
        let got = reports(
            &mut t,
            &[
                ev(
                    10 * S,
                    What::Probe {
                        n: 1,
                        idle_ns: Some(S),
                    },
                    0,
                ),
                ev(
                    10 * S + 50_000,
                    What::Ack {
                        n: 1,
                        rtt_ns: 50_000,
                    },
                    0,
                ),
                ev(
                    11 * S,
                    What::Probe {
                        n: 1,
                        idle_ns: Some(S),
                    },
                    0,
                ),
                ev(
                    11 * S + 70_000,
                    What::Ack {
                        n: 1,
                        rtt_ns: 70_000,
                    },
                    0,
                ),
            ],
        );
        assert_eq!(
            got[0],
            Report::Probe {
                n: 1,
                idle_ms: Some(1000)
            }
        );
        assert_eq!(got[1], Report::Ack { n: 1, rtt_us: 50 });
        assert_eq!(got.len(), 4);
        assert_eq!(
            (t.summary.probes, t.summary.answered, t.summary.unanswered),
            (2, 2, 0)
        );
        assert_eq!(t.summary.connections, 1);
        assert!(t.summary.timeouts.is_empty());
    }

    #[test]
    fn blackholed_peer_three_unanswered_then_keepalive_timeout() {
        let mut t = Timelines::new(None);
        let got = reports(
            &mut t,
            &[
                ev(
                    S,
                    What::Probe {
                        n: 1,
                        idle_ns: Some(S),
                    },
                    0,
                ),
                ev(
                    2 * S,
                    What::Probe {
                        n: 2,
                        idle_ns: Some(2 * S),
                    },
                    0,
                ),
                ev(
                    3 * S,
                    What::Probe {
                        n: 3,
                        idle_ns: Some(3 * S),
                    },
                    0,
                ),
                ev(4 * S, What::KeepaliveReset, 0),
                // 6.18 closes the socket before it reports the error.
                ev(4 * S + MS, What::Closed { old_state: 1 }, 0),
                ev(4 * S + 2 * MS, What::SocketError { errno: 110 }, 0),
            ],
        );
        assert_eq!(
            got,
            vec![
                Report::Probe {
                    n: 1,
                    idle_ms: Some(1000)
                },
                Report::Unanswered { n: 1 },
                Report::Probe {
                    n: 2,
                    idle_ms: Some(2000)
                },
                Report::Unanswered { n: 2 },
                Report::Probe {
                    n: 3,
                    idle_ms: Some(3000)
                },
                Report::Unanswered { n: 3 },
                Report::Timeout {
                    reason: Reason::Keepalive,
                    probes: 3,
                    detect_ms: Some(4000),
                    predicted_ms: Some(4000)
                },
            ]
        );
        assert_eq!(t.summary.timeouts.get("keepalive"), Some(&1));
        assert_eq!(t.summary.detect_ms.percentile(100.0), Some(4000));
        assert_eq!(t.summary.detect_ms.count(), 1);
        assert_eq!(t.tracked(), 1, "kept for its late error report");
        assert!(t.expire_closed(4 * S + 2 * MS).0.is_empty());
        assert_eq!(t.tracked(), 1);
        let (records, forgotten) = t.expire_closed(6 * S);
        assert!(records.is_empty(), "timed out: nothing more to say");
        assert_eq!(forgotten, vec![conn()]);
        assert_eq!(t.tracked(), 0, "closed connections are forgotten");
    }

    #[test]
    fn old_kernel_without_reset_reason_uses_etimedout_after_probes() {
        let mut t = Timelines::new(None);
        let got = reports(
            &mut t,
            &[
                ev(
                    S,
                    What::Probe {
                        n: 1,
                        idle_ns: Some(S),
                    },
                    0,
                ),
                ev(
                    2 * S,
                    What::Probe {
                        n: 2,
                        idle_ns: Some(2 * S),
                    },
                    0,
                ),
                ev(3 * S, What::Closed { old_state: 1 }, 0),
                ev(3 * S, What::SocketError { errno: 110 }, 0),
            ],
        );
        assert!(matches!(
            got.last(),
            Some(Report::Timeout {
                reason: Reason::Keepalive,
                probes: 2,
                ..
            })
        ));
    }

    #[test]
    fn user_timeout_is_named_and_retransmit_without_probes() {
        let mut t = Timelines::new(None);
        let got = reports(
            &mut t,
            &[
                ev(
                    S,
                    What::Probe {
                        n: 1,
                        idle_ns: Some(S),
                    },
                    1500,
                ),
                ev(2 * S, What::KeepaliveReset, 1500),
            ],
        );
        assert!(matches!(
            got.last(),
            Some(Report::Timeout {
                reason: Reason::UserTimeout,
                probes: 1,
                ..
            })
        ));

        let mut t = Timelines::new(None);
        let mut e = ev(5 * S, What::SocketError { errno: 110 }, 0);
        e.config = None;
        let got = reports(&mut t, &[e]);
        assert_eq!(
            got,
            vec![Report::Timeout {
                reason: Reason::Retransmit,
                probes: 0,
                detect_ms: None,
                predicted_ms: None
            }]
        );
    }

    #[test]
    fn peer_reset_after_probe_and_no_duplicate_errors() {
        let mut t = Timelines::new(None);
        let got = reports(
            &mut t,
            &[
                ev(
                    S,
                    What::Probe {
                        n: 1,
                        idle_ns: Some(S),
                    },
                    0,
                ),
                ev(S + MS, What::ResetReceived, 0),
                ev(S + MS, What::SocketError { errno: 104 }, 0),
                ev(S + MS, What::Closed { old_state: 1 }, 0),
            ],
        );
        assert_eq!(
            got,
            vec![
                Report::Probe {
                    n: 1,
                    idle_ms: Some(1000)
                },
                Report::Reset {
                    after_probe: Some(1)
                }
            ]
        );
        assert_eq!(t.summary.resets, 1);
    }

    #[test]
    fn other_errors_and_unseen_closes() {
        let mut t = Timelines::new(None);
        assert!(
            t.on_event(&ev(S, What::Closed { old_state: 1 }, 0))
                .is_empty()
        );
        assert!(
            t.on_event(&ev(S, What::SocketError { errno: 104 }, 0))
                .is_empty()
        );
        assert_eq!(t.summary.connections, 0);
        assert!(t.expire_closed(10 * S).0.is_empty());
        let got = reports(
            &mut t,
            &[
                ev(
                    S,
                    What::Probe {
                        n: 1,
                        idle_ns: None,
                    },
                    0,
                ),
                ev(2 * S, What::SocketError { errno: 113 }, 0),
            ],
        );
        assert!(matches!(
            got.last(),
            Some(Report::Timeout {
                reason: Reason::Error(113),
                detect_ms: None,
                predicted_ms: None,
                ..
            })
        ));
        assert_eq!(Reason::Error(113).to_string(), "error:EHOSTUNREACH");
    }

    #[test]
    fn closing_with_a_probe_out_reports_it_unanswered() {
        let mut t = Timelines::new(None);
        let got = reports(
            &mut t,
            &[
                ev(
                    S,
                    What::Probe {
                        n: 1,
                        idle_ns: Some(S),
                    },
                    0,
                ),
                ev(S + MS, What::Closed { old_state: 1 }, 0),
            ],
        );
        assert_eq!(
            got.last(),
            Some(&Report::Probe {
                n: 1,
                idle_ms: Some(1000)
            })
        );
        let (expired, _) = t.expire_closed(3 * S);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].report, Report::Unanswered { n: 1 });
        assert_eq!(expired[0].ts_ns, S + MS);
    }

    #[test]
    fn defaults_fill_namespace_settings() {
        let defaults = Config {
            keepalive: false,
            idle_s: 7200,
            intvl_s: 75,
            cnt: 9,
            user_timeout_ms: 0,
        };
        let mut t = Timelines::new(Some(defaults));
        let mut e = ev(
            S,
            What::Probe {
                n: 1,
                idle_ns: None,
            },
            0,
        );
        e.config = Some(Config {
            keepalive: true,
            idle_s: 0,
            intvl_s: 0,
            cnt: 0,
            user_timeout_ms: 0,
        });
        let record = &t.on_event(&e)[0];
        let c = record.config.unwrap();
        assert_eq!(
            (c.keepalive, c.idle_s, c.intvl_s, c.cnt),
            (true, 7200, 75, 9)
        );
    }

    #[test]
    fn cgroup_scope_ignores_tracepoint_only_connections() {
        let mut t = Timelines::new(None).only_seen_by_cgroup_hooks();
        assert!(
            t.on_event(&ev(S, What::SocketError { errno: 110 }, 0))
                .is_empty()
        );
        assert!(t.on_event(&ev(S, What::ResetReceived, 0)).is_empty());
        assert_eq!(t.tracked(), 0);
        t.on_event(&ev(
            S,
            What::Probe {
                n: 1,
                idle_ns: None,
            },
            0,
        ));
        assert_eq!(t.on_event(&ev(2 * S, What::ResetReceived, 0)).len(), 1);
    }
}
