//! The timeline rules, event by event, on fixed inputs.

use super::*;

pub(super) const MS: u64 = 1_000_000;
pub(super) const S: u64 = 1_000_000_000;

pub(super) fn conn() -> Conn {
    Conn {
        netns: 4026531840,
        local: "127.0.0.1:40000".parse().unwrap(),
        remote: "127.0.0.1:5000".parse().unwrap(),
    }
}

pub(super) fn config(user_timeout_ms: u32) -> Config {
    Config {
        keepalive: true,
        idle_s: 1,
        intvl_s: 1,
        cnt: 3,
        user_timeout_ms,
    }
}

pub(super) fn ev(ts_ns: u64, kind: EventKind, ut: u32) -> KernelEvent {
    KernelEvent {
        ts_ns,
        conn: conn(),
        config: Some(config(ut)),
        socket_ino: None,
        tcp_state: None,
        data_outstanding: None,
        kind,
    }
}

pub(super) fn probe(ts_ns: u64, n: u32, idle_ns: u64, ut: u32) -> KernelEvent {
    ev(
        ts_ns,
        EventKind::Probe {
            n,
            idle_ns: Some(idle_ns),
        },
        ut,
    )
}

pub(super) fn ack(ts_ns: u64, n: u32, rtt_ns: u64, ut: u32) -> KernelEvent {
    ev(ts_ns, EventKind::Ack { n, rtt_ns }, ut)
}

pub(super) fn probe_report(n: u32, idle_ms: u64) -> Report {
    Report::Probe {
        n,
        idle_ms: Some(idle_ms),
    }
}

pub(super) fn reports(t: &mut Timelines, events: &[KernelEvent]) -> Vec<Report> {
    events
        .iter()
        .flat_map(|e| t.on_event(e))
        .map(|r| r.report)
        .collect()
}

#[test]
fn healthy_idle_connection_probes_and_answers() {
    let mut t = Timelines::new(TimelineOptions::default());
    let got = reports(
        &mut t,
        &[
            probe(10 * S, 1, S, 0),
            ack(10 * S + 50_000, 1, 50_000, 0),
            probe(11 * S, 1, S, 0),
            ack(11 * S + 70_000, 1, 70_000, 0),
        ],
    );
    assert_eq!(got[0], probe_report(1, 1000));
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
    let mut t = Timelines::new(TimelineOptions::default());
    let got = reports(
        &mut t,
        &[
            probe(S, 1, S, 0),
            probe(2 * S, 2, 2 * S, 0),
            probe(3 * S, 3, 3 * S, 0),
            ev(4 * S, EventKind::KeepaliveReset, 0),
            // 6.18 closes the socket before it reports the error.
            ev(4 * S + MS, EventKind::Closed { old_state: 1 }, 0),
            ev(4 * S + 2 * MS, EventKind::SocketError { errno: 110 }, 0),
        ],
    );
    assert_eq!(
        got,
        vec![
            probe_report(1, 1000),
            Report::Unanswered { n: 1 },
            probe_report(2, 2000),
            Report::Unanswered { n: 2 },
            probe_report(3, 3000),
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
    assert!(t.expire(4 * S + 2 * MS).0.is_empty());
    assert_eq!(t.tracked(), 1);
    let (records, forgotten) = t.expire(6 * S);
    assert!(records.is_empty(), "timed out: nothing more to say");
    assert_eq!(forgotten, vec![conn()]);
    assert_eq!(t.tracked(), 0, "closed connections are forgotten");
}

#[test]
fn old_kernel_without_reset_reason_uses_etimedout_after_probes() {
    let mut t = Timelines::new(TimelineOptions::default());
    let got = reports(
        &mut t,
        &[
            probe(S, 1, S, 0),
            probe(2 * S, 2, 2 * S, 0),
            ev(3 * S, EventKind::Closed { old_state: 1 }, 0),
            ev(3 * S, EventKind::SocketError { errno: 110 }, 0),
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
    let mut t = Timelines::new(TimelineOptions::default());
    let got = reports(
        &mut t,
        &[
            probe(S, 1, S, 1500),
            ev(2 * S, EventKind::KeepaliveReset, 1500),
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

    let mut t = Timelines::new(TimelineOptions::default());
    let mut e = ev(5 * S, EventKind::SocketError { errno: 110 }, 0);
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
    let mut t = Timelines::new(TimelineOptions::default());
    let got = reports(
        &mut t,
        &[
            probe(S, 1, S, 0),
            ev(S + MS, EventKind::ResetReceived, 0),
            ev(S + MS, EventKind::SocketError { errno: 104 }, 0),
            ev(S + MS, EventKind::Closed { old_state: 1 }, 0),
        ],
    );
    assert_eq!(
        got,
        vec![
            probe_report(1, 1000),
            Report::Reset {
                after_probe: Some(1)
            }
        ]
    );
    assert_eq!(t.summary.resets, 1);
}

#[test]
fn other_errors_and_unseen_closes() {
    let mut t = Timelines::new(TimelineOptions::default());
    assert!(
        t.on_event(&ev(S, EventKind::Closed { old_state: 1 }, 0))
            .is_empty()
    );
    assert!(
        t.on_event(&ev(S, EventKind::SocketError { errno: 104 }, 0))
            .is_empty()
    );
    assert_eq!(t.summary.connections, 0);
    assert!(t.expire(10 * S).0.is_empty());
    let got = reports(
        &mut t,
        &[
            ev(
                S,
                EventKind::Probe {
                    n: 1,
                    idle_ns: None,
                },
                0,
            ),
            ev(2 * S, EventKind::SocketError { errno: 113 }, 0),
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
    let mut t = Timelines::new(TimelineOptions::default());
    let got = reports(
        &mut t,
        &[
            probe(S, 1, S, 0),
            ev(S + MS, EventKind::Closed { old_state: 1 }, 0),
        ],
    );
    assert_eq!(got.last(), Some(&probe_report(1, 1000)));
    let (expired, _) = t.expire(3 * S);
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
    let mut t = Timelines::new(TimelineOptions {
        defaults: Some(defaults),
        ..TimelineOptions::default()
    });
    let mut e = ev(
        S,
        EventKind::Probe {
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
    let mut t = Timelines::new(TimelineOptions {
        only_seen_by_cgroup_hooks: true,
        ..TimelineOptions::default()
    });
    assert!(
        t.on_event(&ev(S, EventKind::SocketError { errno: 110 }, 0))
            .is_empty()
    );
    assert!(t.on_event(&ev(S, EventKind::ResetReceived, 0)).is_empty());
    assert_eq!(t.tracked(), 0);
    t.on_event(&ev(
        S,
        EventKind::Probe {
            n: 1,
            idle_ns: None,
        },
        0,
    ));
    assert_eq!(t.on_event(&ev(2 * S, EventKind::ResetReceived, 0)).len(), 1);
}
