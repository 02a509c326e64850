//! The rules that name a connection's end: which timer killed it, what
//! counts as an answer, and connects that never were.

use super::{tests::*, *};

fn with_data(mut event: KernelEvent, outstanding: bool) -> KernelEvent {
    event.data_outstanding = Some(outstanding);
    event
}

fn timeout_of(reports: &[Report]) -> Option<&Report> {
    reports
        .iter()
        .rev()
        .find(|r| matches!(r, Report::Timeout { .. }))
}

#[test]
fn data_outstanding_makes_it_a_retransmission_death_even_after_probes() {
    let mut t = Timelines::new(TimelineOptions::default());
    let got = reports(
        &mut t,
        &[
            probe(S, 1, S, 0),
            probe(2 * S, 2, 2 * S, 0),
            // The application wrote: the keepalive timer stops probing and
            // the retransmission timer kills, with no keepalive reset.
            with_data(ev(9 * S, EventKind::SocketError { errno: 110 }, 0), true),
        ],
    );
    assert!(
        matches!(
            timeout_of(&got),
            Some(Report::Timeout {
                reason: Reason::Retransmit,
                predicted_ms: None,
                ..
            })
        ),
        "{got:?}"
    );
    let mut t = Timelines::new(TimelineOptions::default());
    let got = reports(
        &mut t,
        &[with_data(
            ev(9 * S, EventKind::SocketError { errno: 110 }, 2000),
            true,
        )],
    );
    assert!(matches!(
        timeout_of(&got),
        Some(Report::Timeout {
            reason: Reason::UserTimeout,
            ..
        })
    ));
}

/// Linux 6.1 has no reset reason; a kill whose probes never reached our
/// hook is still keepalive's when nothing was outstanding, with the
/// settings' prediction.
#[test]
fn nothing_outstanding_with_keepalive_on_is_a_keepalive_kill() {
    let mut t = Timelines::new(TimelineOptions::default());
    let got = reports(
        &mut t,
        &[with_data(
            ev(4 * S, EventKind::SocketError { errno: 110 }, 0),
            false,
        )],
    );
    assert_eq!(
        timeout_of(&got),
        Some(&Report::Timeout {
            reason: Reason::Keepalive,
            probes: 0,
            detect_ms: None,
            predicted_ms: Some(4000),
        })
    );
}

#[test]
fn a_run_ended_by_traffic_has_no_rtt_and_no_unanswered_probe() {
    let mut t = Timelines::new(TimelineOptions::default());
    let got = reports(
        &mut t,
        &[
            probe(S, 1, S, 0),
            ev(S + 300 * MS, EventKind::AnsweredByTraffic { n: 1 }, 0),
            probe(3 * S, 1, S, 0),
        ],
    );
    assert_eq!(
        got,
        vec![
            probe_report(1, 1000),
            Report::AnsweredByTraffic { n: 1 },
            probe_report(1, 1000),
        ]
    );
    assert_eq!(
        (
            t.summary.answered,
            t.summary.answered_by_traffic,
            t.summary.unanswered
        ),
        (0, 1, 0)
    );
    assert_eq!(t.summary.rtt_us.count(), 0);
}

fn connect_events(errno: u32, refused: bool) -> Vec<KernelEvent> {
    let mut events = Vec::new();
    if refused {
        let mut reset = ev(S, EventKind::ResetReceived, 0);
        reset.tcp_state = Some(crate::model::event::tcp_state::SYN_SENT);
        events.push(reset);
    }
    events.push(ev(S, EventKind::Closed { old_state: 2 }, 0));
    events.push(ev(S, EventKind::SocketError { errno }, 0));
    events
}

#[test]
fn failed_connects_are_silent_by_default_and_named_with_all() {
    for (errno, refused) in [(111, true), (110, false)] {
        let mut quiet = Timelines::new(TimelineOptions::default());
        assert_eq!(reports(&mut quiet, &connect_events(errno, refused)), vec![]);
        assert_eq!(quiet.summary.connections, 0, "never a connection");
        assert!(quiet.summary.timeouts.is_empty());
        let mut all = Timelines::new(TimelineOptions {
            connect_failures: true,
            ..TimelineOptions::default()
        });
        assert_eq!(
            reports(&mut all, &connect_events(errno, refused)),
            vec![Report::ConnectFailed { errno }]
        );
        assert_eq!(all.summary.connect_failures, 1);
    }
}

#[test]
fn the_same_addresses_in_two_namespaces_are_two_connections() {
    let mut t = Timelines::new(TimelineOptions::default());
    let mut elsewhere = probe(2 * S, 2, 2 * S, 0);
    elsewhere.conn.netns += 1;
    t.on_event(&probe(S, 1, S, 0));
    t.on_event(&elsewhere);
    assert_eq!(t.summary.connections, 2);
    let here: Vec<Report> = t
        .on_event(&ev(3 * S, EventKind::KeepaliveReset, 0))
        .into_iter()
        .inspect(|r| assert_eq!(r.conn, conn()))
        .map(|r| r.report)
        .collect();
    assert_eq!(
        here,
        vec![
            Report::Unanswered { n: 1 },
            Report::Timeout {
                reason: Reason::Keepalive,
                probes: 1,
                detect_ms: Some(3000),
                predicted_ms: Some(4000),
            }
        ],
        "probe #2 elsewhere changed nothing here"
    );
}

#[test]
fn connections_whose_close_was_missed_are_forgotten() {
    let mut t = Timelines::new(TimelineOptions::default());
    t.on_event(&probe(S, 1, S, 0));
    let mut silent = probe(S, 1, S, 0);
    silent.conn.local.set_port(40001);
    silent.config = None;
    t.on_event(&silent);
    let mut established = ev(S, EventKind::Established, 0);
    established.conn.local.set_port(40002);
    t.on_event(&established);
    assert_eq!(
        t.tracked(),
        2,
        "an established connection alone costs nothing"
    );
    // keepalive 1 s / 1 s / 3: a probe at least every few seconds.
    let (records, forgotten) = t.expire(10 * 60 * S);
    assert!(records.is_empty());
    assert_eq!(forgotten, vec![conn()]);
    assert_eq!(t.tracked(), 1, "no settings: kept for ten minutes");
    let (_, forgotten) = t.expire(12 * 60 * S);
    assert_eq!(forgotten.len(), 1);
    assert_eq!(t.tracked(), 0);
}
