//! Per-connection timelines: turns kernel events into what the user asks
//! about — which probe was answered and how fast, which went unanswered, and
//! when and why the kernel gave up — and keeps the session's summary.

#[cfg(test)]
mod label_tests;
mod record;
#[cfg(test)]
mod tests;

pub use self::record::{Reason, Record, Report};
use crate::model::{
    config::Config,
    conn::Conn,
    event::{EventKind, KernelEvent, tcp_state},
    summary::Summary,
};

#[derive(Debug, Default)]
struct ConnState {
    config: Option<Config>,
    /// Probes sent since the peer last answered (the kernel's numbering).
    unanswered_run: u32,
    /// When the last segment from the peer arrived, where known.
    last_peer_ns: Option<u64>,
    /// A timeout, reset or failed connect was reported: later errors and
    /// resets of the same end are not reported again.
    ended: bool,
    /// The socket reached TCP_CLOSE. Kept a moment longer because the kernel
    /// reports the error (ETIMEDOUT) after the close (tcp_write_err calls
    /// tcp_done before sk_error_report).
    closed_at_ns: Option<u64>,
    /// It closed from SYN_SENT: it never existed as a connection, and its
    /// error (ECONNREFUSED, ETIMEDOUT) is a failed connect.
    never_established: bool,
    /// The last event about it, for forgetting connections whose close was
    /// never seen.
    last_event_ns: u64,
    /// Counted in the summary's connections.
    counted: bool,
}

/// How long a closed connection waits for its error report.
const CLOSED_GRACE_NS: u64 = 1_000_000_000;
/// How long a connection without keepalive settings is remembered after
/// its last event when its close is never seen (a full ring, a hook this
/// mode does not load).
const FORGET_SILENT_NS: u64 = 10 * 60 * 1_000_000_000;

const ECONNRESET: u32 = libc::ECONNRESET as u32;
const ECONNREFUSED: u32 = libc::ECONNREFUSED as u32;
const EPIPE: u32 = libc::EPIPE as u32;
const ETIMEDOUT: u32 = libc::ETIMEDOUT as u32;
const TCP_SYN_SENT: u32 = tcp_state::SYN_SENT as u32;

/// What a session wants from its timelines.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimelineOptions {
    /// Fill settings the kernel reported as "namespace default".
    pub defaults: Option<Config>,
    /// Report only connections first seen by the cgroup-scoped hooks
    /// (packets, sock_ops): tracepoints see the whole host, so under
    /// `--cgroup` their events about other connections are ignored.
    pub only_seen_by_cgroup_hooks: bool,
    /// Report connects that failed (`watch --all`); by default they are
    /// noise about connections that never existed.
    pub connect_failures: bool,
}

#[derive(Debug, Default)]
pub struct Timelines {
    /// foldhash, not SipHash: hashing the 4-tuple was a tenth of watch's
    /// CPU at 100 000 events a second.
    conns: foldhash::HashMap<Conn, ConnState>,
    options: TimelineOptions,
    /// Whether the last event's connection is remembered after it (saves
    /// the pipeline a second lookup per event).
    last_remembered: bool,
    pub summary: Summary,
}

impl Timelines {
    pub fn new(options: TimelineOptions) -> Self {
        Self {
            options,
            ..Self::default()
        }
    }

    pub fn tracked(&self) -> usize {
        self.conns.len()
    }

    pub fn knows(&self, conn: &Conn) -> bool {
        self.conns.contains_key(conn)
    }

    /// Whether the connection of the last event fed is remembered.
    pub fn remembers_last(&self) -> bool {
        self.last_remembered
    }

    /// Feeds one kernel event; returns what to show, oldest first.
    pub fn on_event(&mut self, event: &KernelEvent) -> Vec<Record> {
        self.last_remembered = false;
        let mut out = Vec::new();
        let options = self.options;
        let summary = &mut self.summary;
        let from_cgroup_hook = matches!(
            event.kind,
            EventKind::Probe { .. }
                | EventKind::Ack { .. }
                | EventKind::AnsweredByTraffic { .. }
                | EventKind::Established
                | EventKind::OptionsSet { .. }
        );
        let only_if_known = (options.only_seen_by_cgroup_hooks && !from_cgroup_hook)
            || matches!(event.kind, EventKind::SocketError { errno } if errno != ETIMEDOUT)
            // A close says nothing about a connection we never saw.
            || matches!(event.kind, EventKind::Closed { old_state } if old_state != TCP_SYN_SENT);
        // Connections only ever established (or given a policy) need no
        // memory: a busy host makes thousands a second. Under `--cgroup` they
        // are remembered, to tell which tracepoint events are in scope.
        let stateless = !options.only_seen_by_cgroup_hooks
            && matches!(
                event.kind,
                EventKind::Established | EventKind::OptionsSet { .. }
            );
        if stateless && !self.conns.contains_key(&event.conn) {
            if let EventKind::OptionsSet { result } = event.kind {
                summary.connections += 1;
                out.push(Record {
                    ts_ns: event.ts_ns,
                    conn: event.conn,
                    config: event
                        .config
                        .map(|c| options.defaults.map_or(c, |d| c.with_defaults(&d))),
                    report: Report::OptionsSet { result },
                });
            }
            return out;
        }
        // The lookup only when it matters: probes and answers are nearly all
        // events, and each lookup is a cache miss with 50 000 connections.
        if only_if_known && !self.conns.contains_key(&event.conn) {
            // An error on a connection we never saw, not a timeout: nothing
            // to tell it from an unrelated socket's.
            return out;
        }
        self.last_remembered = true;
        let state = self.conns.entry(event.conn).or_default();
        state.last_event_ns = event.ts_ns;
        if let Some(config) = event.config {
            state.config = Some(
                options
                    .defaults
                    .map_or(config, |d| config.with_defaults(&d)),
            );
        }
        let mut emit = |state: &mut ConnState, report: Report| {
            out.push(Record {
                ts_ns: event.ts_ns,
                conn: event.conn,
                config: state.config,
                report,
            });
        };
        match event.kind {
            EventKind::Probe { n, idle_ns } => {
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
            EventKind::Ack { n, rtt_ns } => {
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
            EventKind::AnsweredByTraffic { n } => {
                state.unanswered_run = 0;
                state.last_peer_ns = Some(event.ts_ns);
                summary.answered_by_traffic += 1;
                emit(state, Report::AnsweredByTraffic { n });
            }
            EventKind::KeepaliveReset => {
                let reason = keepalive_reason(state.config);
                finish(state, event.ts_ns, reason, summary, &mut emit);
            }
            EventKind::SocketError { errno } if state.never_established && !state.ended => {
                state.ended = true;
                if options.connect_failures {
                    summary.connect_failures += 1;
                    emit(state, Report::ConnectFailed { errno });
                }
            }
            EventKind::SocketError { errno } if !state.ended => match errno {
                // A reset from the peer: reported by `reset`, not a timeout.
                ECONNRESET | ECONNREFUSED | EPIPE => {}
                ETIMEDOUT => {
                    let reason = timeout_reason(state, event.data_outstanding);
                    finish(state, event.ts_ns, reason, summary, &mut emit);
                }
                // The kernel reports a soft error (e.g. EHOSTUNREACH from an
                // ICMP) in place of ETIMEDOUT when it has one.
                other => finish(state, event.ts_ns, Reason::Error(other), summary, &mut emit),
            },
            EventKind::SocketError { .. } => {}
            EventKind::ResetReceived if event.tcp_state == Some(tcp_state::SYN_SENT) => {
                // A refused connect: the RST answered our SYN.
                state.never_established = true;
                if !state.ended {
                    state.ended = true;
                    if options.connect_failures {
                        summary.connect_failures += 1;
                        emit(
                            state,
                            Report::ConnectFailed {
                                errno: ECONNREFUSED,
                            },
                        );
                    }
                }
            }
            EventKind::ResetReceived if !state.ended => {
                let after_probe = (state.unanswered_run > 0).then_some(state.unanswered_run);
                state.unanswered_run = 0;
                state.ended = true;
                summary.resets += 1;
                emit(state, Report::Reset { after_probe });
            }
            EventKind::ResetReceived => {}
            EventKind::Closed { old_state } => {
                state.closed_at_ns = Some(event.ts_ns);
                if old_state == TCP_SYN_SENT {
                    state.never_established = true;
                }
            }
            EventKind::Established => {}
            EventKind::OptionsSet { result } => emit(state, Report::OptionsSet { result }),
        }
        let seen = !out.is_empty() || matches!(event.kind, EventKind::Established);
        if seen && !state.counted {
            state.counted = true;
            summary.connections += 1;
        }
        out
    }

    /// Forgets connections closed more than a moment before `now_ns` (a
    /// probe still out when one closed without a timeout went unanswered),
    /// and connections silent for longer than their keepalive settings
    /// allow (their close was missed). Returns those records and the
    /// connections forgotten.
    pub fn expire(&mut self, now_ns: u64) -> (Vec<Record>, Vec<Conn>) {
        let mut out = Vec::new();
        let mut forgotten = Vec::new();
        let summary = &mut self.summary;
        self.conns.retain(|conn, state| {
            let Some(closed) = state.closed_at_ns else {
                if now_ns.saturating_sub(state.last_event_ns) > silence_allowed_ns(state.config) {
                    forgotten.push(*conn);
                    return false;
                }
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

/// How long a live connection can go without an event: with keepalive on,
/// a probe (or its kill) comes at least every idle + count × interval.
fn silence_allowed_ns(config: Option<Config>) -> u64 {
    match config {
        Some(c) if c.keepalive => {
            (c.keepalive_budget_ms() + u64::from(c.intvl_s) * 1000 + 120_000) * 1_000_000
        }
        _ => FORGET_SILENT_NS,
    }
}

/// Which timer killed a connection that reported ETIMEDOUT. With data
/// outstanding the keepalive timer does not probe (tcp_keepalive_timer
/// reschedules while packets are out or queued): the retransmission (or
/// zero-window) timer gave up, bounded by TCP_USER_TIMEOUT when set. With
/// nothing outstanding, only the keepalive timer kills.
fn timeout_reason(state: &ConnState, data_outstanding: Option<bool>) -> Reason {
    let user_timeout = state.config.is_some_and(|c| c.user_timeout_ms > 0);
    match data_outstanding {
        Some(true) if user_timeout => Reason::UserTimeout,
        Some(true) => Reason::Retransmit,
        Some(false) if state.unanswered_run > 0 || state.config.is_some_and(|c| c.keepalive) => {
            keepalive_reason(state.config)
        }
        Some(false) => Reason::Retransmit,
        // A kernel whose layout we could not read: the probes are the evidence.
        None if state.unanswered_run > 0 => keepalive_reason(state.config),
        None if user_timeout => Reason::UserTimeout,
        None => Reason::Retransmit,
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
