//! The layout model and the page from fixed NDJSON: which lanes, in which
//! order, which marks, what is left out, skipped or refused.

use super::{
    input::{ConnEvent, Input, parse_line},
    layout::{Dropped, End, Fate, Interest, Layout, MARKS_PER_LANE, MarkKind, Page},
    *,
};
use crate::{
    model::{owner::Owner, timeline::Report},
    render::{clock::Clock, json::record_json, sample_record},
};

/// `keepalive demo --json --fault blackhole` as it printed on 2026-11-24
/// (the README's run): one answered probe, three unanswered, the kill.
const BLACKHOLE: &str = r#"{"event":"probe","ts":"2026-11-24T18:23:10.831480Z","src":"127.0.0.1:57788","dst":"127.0.0.1:7","pid":28343,"comm":"keepalive","config":{"keepalive":true,"idle_s":1,"intvl_s":1,"cnt":3,"user_timeout_ms":0},"n":1,"idle_ms":1028}
{"event":"ack","ts":"2026-11-24T18:23:10.831529Z","src":"127.0.0.1:57788","dst":"127.0.0.1:7","pid":28343,"comm":"keepalive","config":{"keepalive":true,"idle_s":1,"intvl_s":1,"cnt":3,"user_timeout_ms":0},"n":1,"rtt_us":48}
{"event":"probe","ts":"2026-11-24T18:23:11.855458Z","src":"127.0.0.1:57788","dst":"127.0.0.1:7","config":{"keepalive":true,"idle_s":1,"intvl_s":1,"cnt":3,"user_timeout_ms":0},"n":1,"idle_ms":1024}
{"event":"unanswered","ts":"2026-11-24T18:23:12.879480Z","src":"127.0.0.1:57788","dst":"127.0.0.1:7","n":1}
{"event":"probe","ts":"2026-11-24T18:23:12.879480Z","src":"127.0.0.1:57788","dst":"127.0.0.1:7","n":2,"idle_ms":2048}
{"event":"unanswered","ts":"2026-11-24T18:23:13.903451Z","src":"127.0.0.1:57788","dst":"127.0.0.1:7","n":2}
{"event":"probe","ts":"2026-11-24T18:23:13.903451Z","src":"127.0.0.1:57788","dst":"127.0.0.1:7","n":3,"idle_ms":3072}
{"event":"unanswered","ts":"2026-11-24T18:23:14.927483Z","src":"127.0.0.1:57788","dst":"127.0.0.1:7","n":3}
{"event":"timeout","ts":"2026-11-24T18:23:14.927483Z","src":"127.0.0.1:57788","dst":"127.0.0.1:7","config":{"keepalive":true,"idle_s":1,"intvl_s":1,"cnt":3,"user_timeout_ms":0},"reason":"keepalive","probes":3,"detect_ms":4096,"predicted_ms":4000}
{"event":"verdict","fault":"blackhole","alive":false,"reason":"keepalive","probes":3,"detected_ms":4096,"predicted_ms":4000}
"#;

fn lay_out(ndjson: &str, lanes: usize) -> Page {
    let mut layout = Layout::new(lanes);
    read_ndjson(ndjson.as_bytes(), "test", &mut layout).expect("our own lines");
    layout.finish()
}

fn html_of(ndjson: &str, lanes: usize) -> String {
    let mut layout = Layout::new(lanes);
    let lines = read_ndjson(ndjson.as_bytes(), "test", &mut layout).unwrap();
    render(
        layout,
        &Meta {
            source: "test.ndjson".into(),
            lines: Some(lines),
            lanes_asked: lanes,
        },
    )
}

fn count(html: &str, needle: &str) -> usize {
    html.matches(needle).count()
}

fn line(event: &str, src: &str, ts_s: u32, rest: &str) -> String {
    format!(
        r#"{{"event":"{event}","ts":"2026-11-24T10:00:{ts_s:02}.000000Z","src":"{src}","dst":"10.0.0.9:5432","config":{{"keepalive":true,"idle_s":5,"intvl_s":2,"cnt":4,"user_timeout_ms":0}}{rest}}}"#
    )
}

#[test]
fn a_blackhole_is_one_lane_with_its_whole_story() {
    let page = lay_out(BLACKHOLE, 200);
    assert_eq!(page.lanes.len(), 1);
    let lane = &page.lanes[0];
    assert_eq!(lane.interest, Interest::TimedOut);
    assert_eq!((lane.probes, lane.answered, lane.unanswered), (4, 1, 3));
    assert_eq!(lane.owner.as_ref().map(|o| o.pid), Some(28343));
    let fates: Vec<Fate> = lane
        .marks
        .iter()
        .map(|m| match m.kind {
            MarkKind::Probe { fate, .. } => fate,
            ref other => panic!("only probes here: {other:?}"),
        })
        .collect();
    assert_eq!(fates[0], Fate::Answered { rtt_us: 48 });
    assert_eq!(
        fates[1],
        Fate::Unanswered {
            said_after_ms: 1024
        }
    );
    assert!(
        fates[1..]
            .iter()
            .all(|f| matches!(f, Fate::Unanswered { .. })),
        "{fates:?}"
    );
    let Some(End::Timeout {
        ts_us,
        reason,
        detect_ms,
        predicted_ms,
        ..
    }) = lane.end.as_deref()
    else {
        panic!("{:?}", lane.end)
    };
    assert_eq!(
        (reason.as_str(), *detect_ms, *predicted_ms),
        ("keepalive", Some(4096), Some(4000))
    );
    // The settings said 4.000 s after the peer's last segment, 96 ms before the kill.
    assert_eq!(lane.predicted_kill_us(), Some(ts_us - 96_000));
    let (start, end) = page.span_us.unwrap();
    assert_eq!((start, end), (lane.first_us, *ts_us));
    assert_eq!(page.verdicts.len(), 1);
    assert_eq!(page.totals.rtt_bins[5], 1, "48 µs is in [32, 64)");
    assert_eq!(
        page.totals.lateness_bins[2], 1,
        "+2.4 % is in the 0..+5 % bin"
    );

    let html = html_of(BLACKHOLE, 200);
    assert_eq!(count(&html, r#"data-mark="probe""#), 4);
    assert_eq!(count(&html, r#"data-mark="ack""#), 1);
    assert_eq!(count(&html, r#"data-mark="unanswered""#), 3);
    assert_eq!(count(&html, r#"data-mark="kill""#), 1);
    assert_eq!(count(&html, r#"data-mark="predicted""#), 1);
    assert!(html.contains(
        "dead peer detected after 4096 ms (keepalive timeout, settings predict 4000 ms)"
    ));
    assert!(html.contains("probe #1 answered in 48 µs"));
    assert!(html.contains("idle 1s intvl 1s cnt 3"));
}

#[test]
fn the_page_is_self_contained() {
    let html = html_of(BLACKHOLE, 200);
    assert!(html.starts_with("<!DOCTYPE html>"));
    for banned in ["<script", "src=", "href=", "url(", "@import", "https:"] {
        assert!(!html.contains(banned), "{banned} in the page");
    }
    assert!(
        html.contains("default-src 'none'"),
        "a CSP that forbids fetching"
    );
}

#[test]
fn lanes_are_sorted_by_interest_and_the_rest_is_said() {
    let healthy = |port: u16, t: u32, rtt: u32| {
        let src = format!("10.0.0.1:{port}");
        format!(
            "{}\n{}\n",
            line("probe", &src, t, r#","n":1,"idle_ms":5000"#),
            line("ack", &src, t, &format!(r#","n":1,"rtt_us":{rtt}"#))
        )
    };
    let mut input = String::new();
    input += &healthy(1000, 1, 90);
    input += &healthy(1001, 2, 900);
    input += &line("probe", "10.0.0.1:1002", 3, r#","n":1,"idle_ms":5000"#);
    input += "\n";
    input += &line("unanswered", "10.0.0.1:1002", 5, r#","n":1"#);
    input += "\n";
    input += &line("reset", "10.0.0.1:1003", 6, r#","n":null"#);
    input += "\n";
    input += &line(
        "timeout",
        "10.0.0.1:1004",
        9,
        r#","reason":"user_timeout","probes":1,"detect_ms":9000,"predicted_ms":9000"#,
    );
    input += "\n";
    let page = lay_out(&input, 10);
    let order: Vec<(u16, Interest)> = page
        .lanes
        .iter()
        .map(|l| (l.conn.local.port(), l.interest))
        .collect();
    assert_eq!(
        order,
        [
            (1004, Interest::TimedOut),
            (1003, Interest::Reset),
            (1002, Interest::Unanswered),
            (1001, Interest::Healthy),
            (1000, Interest::Healthy),
        ],
        "healthy ones: the slower answer first"
    );
    let few = lay_out(&input, 2);
    assert_eq!(few.lanes.len(), 2);
    assert_eq!(few.left_out.get(&Interest::Healthy), Some(&2));
    assert_eq!(few.left_out.get(&Interest::Unanswered), Some(&1));
    assert_eq!(few.totals.probes, 3, "the totals keep every event");
    assert_eq!(few.totals.rtt_us.count(), 2);
    let html = html_of(&input, 2);
    assert!(html.contains(r#"data-left-out="3""#), "the page says so");
    assert!(
        html.contains(
            "3 more connections have no lane (--lanes 2): 1 unanswered probes, 2 healthy"
        )
    );
    assert_eq!(count(&html, "data-lane="), 2);
}

#[test]
fn a_long_lane_keeps_its_latest_marks_and_counts_the_rest() {
    let src = "10.0.0.1:2000";
    let mut input = String::new();
    for t in 0..40u32 {
        input += &line("probe", src, t, r#","n":1,"idle_ms":1000"#);
        input += "\n";
        input += &line("ack", src, t, r#","n":1,"rtt_us":50"#);
        input += "\n";
    }
    let page = lay_out(&input, 5);
    let lane = &page.lanes[0];
    assert_eq!(lane.marks.len(), MARKS_PER_LANE);
    assert_eq!(
        lane.dropped,
        Dropped {
            probes: 40 - MARKS_PER_LANE as u32,
            answered: 40 - MARKS_PER_LANE as u32,
            unanswered: 0,
            other: 0
        }
    );
    assert_eq!(lane.probes, 40);
    assert_eq!(
        page.span_us.unwrap().0,
        lane.marks[0].ts_us,
        "the axis starts at the kept marks"
    );
}

#[test]
fn past_the_cap_healthy_newcomers_are_counted_and_trouble_makes_room() {
    let mut layout = Layout::with_cap(10, 2);
    let mut feed = |text: String| layout.push(parse_line(&text).unwrap());
    feed(line("probe", "10.0.0.1:1", 1, r#","n":1"#));
    feed(line("probe", "10.0.0.1:2", 1, r#","n":1"#));
    feed(line("probe", "10.0.0.1:3", 1, r#","n":1"#));
    feed(line("unanswered", "10.0.0.1:4", 2, r#","n":1"#));
    let page = layout.finish();
    assert_eq!(page.totals.untracked_events, 1);
    assert_eq!(page.totals.evicted, 1);
    assert_eq!(page.totals.probes, 3);
    let ports: Vec<u16> = page.lanes.iter().map(|l| l.conn.local.port()).collect();
    assert_eq!(ports.len(), 2);
    assert_eq!(ports[0], 4, "the one with trouble got a lane");
}

#[test]
fn unknown_kinds_are_skipped_and_counted_bad_lines_are_refused_by_number() {
    let input = format!(
        "{}\n{}\n\n{}\n",
        r#"{"event":"handshake","ts":"2026-11-24T10:00:00Z","n":"a string this time"}"#,
        line("probe", "10.0.0.1:1", 1, r#","n":1"#),
        r#"{"event":"handshake"}"#
    );
    let page = lay_out(&input, 5);
    assert_eq!(page.unknown.get("handshake"), Some(&2));
    assert_eq!(page.totals.probes, 1);
    assert!(html_of(&input, 5).contains(r#"data-unknown="2""#));

    for (bad, at, says) in [
        ("probe 1 2 3\n", 1, "not JSON"),
        ("{\"event\":\"probe\"}\n", 1, "without its \"n\""),
        ("\n[1,2]\n", 2, "not a JSON object"),
        ("{\"ts\":\"x\"}\n", 1, "without an \"event\""),
        ("{\"event\":\"ack\",\"n\":\"one\"}\n", 1, "does not fit"),
    ] {
        let input = format!("{}\n{bad}", line("probe", "10.0.0.1:1", 1, r#","n":1"#));
        let mut layout = Layout::new(5);
        let err = read_ndjson(input.as_bytes(), "capture.ndjson", &mut layout).unwrap_err();
        assert_eq!(crate::error::exit_code_for(&err), 2, "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("capture.ndjson:{}: ", at + 1)),
            "{text}"
        );
        assert!(text.contains(says), "{text}");
    }
    let bad_ts = line("probe", "10.0.0.1:1", 1, r#","n":1"#).replace("2026-11-24T10", "yesterday");
    assert!(parse_line(&bad_ts).unwrap_err().contains("RFC 3339"));
}

#[test]
fn an_empty_input_gives_a_page_that_says_so() {
    for input in ["", "\n\n"] {
        let page = lay_out(input, 200);
        assert!(page.is_empty());
        let html = html_of(input, 200);
        assert!(html.contains(r#"data-empty="1""#), "{html}");
        assert!(html.contains("This input holds no keepalive events"));
        assert_eq!(count(&html, "data-mark="), 0);
    }
}

#[test]
fn text_from_the_input_is_escaped() {
    let input = line(
        "probe",
        "10.0.0.1:1",
        1,
        r##","n":1,"pid":7,"comm":"<script>x</script>&\"'""##,
    );
    let html = html_of(&input, 5);
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;x&lt;/script&gt;&amp;&quot;&#39;/7"));
}

#[test]
fn a_connection_ends_once_and_its_label_agrees_with_its_marks() {
    let src = "10.0.0.1:3000";
    let input = [
        line(
            "timeout",
            src,
            1,
            r#","reason":"keepalive","probes":3,"detect_ms":1,"predicted_ms":1"#,
        ),
        line("reset", src, 2, r#","n":null"#),
    ]
    .join("\n");
    let page = lay_out(&input, 5);
    assert_eq!(page.lanes[0].interest, Interest::TimedOut);
    assert!(matches!(
        page.lanes[0].end.as_deref(),
        Some(End::Timeout { .. })
    ));
    assert_eq!(
        (page.totals.resets, page.totals.timeouts["keepalive"]),
        (1, 1)
    );
    let html = html_of(&input, 5);
    assert_eq!(count(&html, r#"data-mark="kill""#), 1);
    assert_eq!(count(&html, r#"data-mark="reset""#), 0);
}

#[test]
fn keepalive_off_gets_a_warning_beside_its_lane() {
    let off = r#"{"event":"reset","ts":"2026-11-24T19:35:49.254144Z","src":"127.0.0.1:7010","dst":"127.0.0.1:59696","config":{"keepalive":false,"idle_s":7200,"intvl_s":75,"cnt":9,"user_timeout_ms":0},"n":null}"#;
    let page = lay_out(off, 5);
    assert!(page.lanes[0].keepalive_off());
    assert_eq!(page.lanes[0].interest, Interest::Reset);
    let html = html_of(off, 5);
    assert_eq!(count(&html, r#"data-warning="keepalive-off""#), 1);
    assert_eq!(count(&html, r#"data-mark="reset""#), 1);
}

#[test]
fn watch_records_feed_the_layout_as_their_json_lines_do() {
    let clock = Clock::with_offset(1_795_000_000_000_000_000);
    let owner = crate::model::owner::Attribution {
        owners: vec![crate::model::owner::Holder {
            owner: Owner {
                pid: 42,
                comm: "server".into(),
            },
            fd: 3,
        }]
        .into(),
        ..Default::default()
    };
    for report in [
        Report::Probe {
            n: 2,
            idle_ms: Some(2000),
        },
        Report::Ack { n: 2, rtt_us: 37 },
        Report::Unanswered { n: 1 },
        Report::Timeout {
            reason: crate::model::timeline::Reason::Error(113),
            probes: 2,
            detect_ms: None,
            predicted_ms: Some(3000),
        },
        Report::Reset {
            after_probe: Some(2),
        },
        Report::OptionsSet { result: -1 },
    ] {
        let record = sample_record(report);
        let direct = ConnEvent::from_record(&clock, &record, &owner).expect("drawn");
        let line = record_json(&clock, &record, &owner).to_string();
        assert_eq!(parse_line(&line), Ok(Input::Conn(direct)), "{line}");
    }
    for undrawn in [
        Report::AnsweredByTraffic { n: 1 },
        Report::ConnectFailed { errno: 111 },
    ] {
        let record = sample_record(undrawn);
        assert_eq!(ConnEvent::from_record(&clock, &record, &owner), None);
        let line = record_json(&clock, &record, &owner).to_string();
        assert!(matches!(parse_line(&line), Ok(Input::Unknown(_))), "{line}");
    }
}
