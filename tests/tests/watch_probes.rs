//! `keepalive watch` against the real kernel on healthy connections: which
//! packets it reports as keepalive probes and answers (IPv6 and IPv4-mapped
//! too, on connections older than the watcher, never zero-window probes or
//! pure ACKs), with the settings in force, and an account of every event a
//! full ring buffer loses.
//!
//! Needs root: run through `cargo xtask test`. The watchers attach at the
//! cgroup v2 root and see every namespace, so each test filters on its own
//! ports.

use std::time::Duration;

use keepalive_tests::*;
use serde_json::Value;

#[test]
fn healthy_idle_connection_probes_are_answered() {
    let ns = NetNs::new();
    let p = unique_port();
    let watch = Watch::on_port(p, &[]);
    let pair = Pair::loopback_in(&ns, p, &["--keepalive", "1,1,3"]);
    let client = pair.client.connections()[0].clone();
    let mut acks_seen = 0;
    let events = watch.collect_until(Duration::from_secs(8), |v| {
        acks_seen += usize::from(event(v) == "ack");
        acks_seen == 3
    });
    let acks: Vec<&Value> = events.iter().filter(|v| event(v) == "ack").collect();
    let probes: Vec<&Value> = events.iter().filter(|v| event(v) == "probe").collect();
    assert!(
        probes.len() >= 3,
        "expected a probe every second for 6 s, got {events:#?}"
    );
    assert!(
        acks.len() >= 3,
        "every probe should be answered: {events:#?}"
    );
    for probe in &probes {
        assert_eq!(
            probe["src"], client["local"],
            "probes leave the client: {probe}"
        );
        assert_eq!(probe["dst"], client["remote"]);
        assert_eq!(
            probe["n"], 1,
            "each probe answered, so each is the first of its run"
        );
        assert_eq!(timing_of(probe), (1, 1, 3, 0));
        let idle = probe["idle_ms"].as_u64().expect("idle_ms");
        assert!((900..=1300).contains(&idle), "idle 1 s, got {idle} ms");
    }
    for ack in &acks {
        assert!(
            ack["rtt_us"].as_u64().is_some_and(|rtt| rtt < 100_000),
            "loopback rtt: {ack}"
        );
    }
    assert!(
        !events
            .iter()
            .any(|v| matches!(event(v), "unanswered" | "timeout" | "reset")),
        "a healthy peer: {events:#?}"
    );
    drop(pair);
}

#[test]
fn ipv6_and_ipv4_mapped_connections() {
    let ns = NetNs::new();
    let (p6, p4) = (unique_port(), unique_port());
    let watch = Watch::spawn(&["--port", &p6.to_string(), "--port", &p4.to_string()]);
    let (dst6, dst4) = (format!("[::1]:{p6}"), format!("127.0.0.1:{p4}"));
    let v6 = Pair::spawn_in(&ns, &dst6, &dst6, &["--keepalive", "1,1,3"]);
    let mapped = Pair::spawn_in(
        &ns,
        &dst4,
        &format!("[::ffff:127.0.0.1]:{p4}"),
        &["--keepalive", "1,1,3"],
    );
    let mut seen = (false, false);
    let events = watch.collect_until(Duration::from_secs(5), |v| {
        if event(v) == "ack" {
            let dst = v["dst"].as_str().unwrap_or("");
            seen.0 |= dst == dst6;
            seen.1 |= dst == dst4;
        }
        seen.0 && seen.1
    });
    let first = |name: &str, dst: &str| events.iter().find(|v| event(v) == name && v["dst"] == dst);
    let v6_probe =
        first("probe", &dst6).unwrap_or_else(|| panic!("IPv6 probe on ::1: {events:#?}"));
    assert!(v6_probe["src"].as_str().unwrap().starts_with("[::1]:"));
    assert_eq!(timing_of(v6_probe), (1, 1, 3, 0));
    // An AF_INET6 socket talking to ::ffff:127.0.0.1 sends IPv4 packets.
    let mapped_probe =
        first("probe", &dst4).unwrap_or_else(|| panic!("v4-mapped probe: {events:#?}"));
    assert_eq!(timing_of(mapped_probe), (1, 1, 3, 0));
    assert!(first("ack", &dst6).is_some());
    drop((v6, mapped));
}

#[test]
fn connection_established_before_watch_is_observed_with_its_settings() {
    let ns = NetNs::new();
    let p = unique_port();
    let pair = Pair::loopback_in(&ns, p, &["--keepalive", "2,1,4"]);
    std::thread::sleep(Duration::from_millis(500));
    let watch = Watch::on_port(p, &[]);
    let probe = watch
        .next_matching(Duration::from_secs(5), is("probe"))
        .expect("a probe of the old connection");
    assert_eq!(probe["src"], pair.client.connections()[0]["local"]);
    assert_eq!(timing_of(&probe), (2, 1, 4, 0));
    assert_eq!(probe["config"]["keepalive"], true);
    assert!(
        watch
            .next_matching(Duration::from_secs(2), is("ack"))
            .is_some()
    );
}

#[test]
fn zero_window_probes_and_pure_acks_are_not_keepalive_probes() {
    let ns = NetNs::new();
    let p = unique_port();
    let watch = Watch::on_port(p, &[]);
    // The server never reads: the client's data fills its window, and the
    // client sends zero-window probes (same shape as keepalive probes).
    let mut pair = Pair::loopback_in(&ns, p, &["--keepalive", "1,1,3"]);
    pair.client.send_line("send 50000000");
    std::thread::sleep(Duration::from_secs(5));
    let ss = ns.run(&[
        "ss",
        "-tnoi",
        "state",
        "established",
        "sport",
        "!=",
        &format!(":{p}"),
    ]);
    assert!(
        ss.contains("persist"),
        "the client should be probing a zero window: {ss}"
    );
    let events = watch.events_so_far();
    assert!(
        !events
            .iter()
            .any(|v| matches!(event(v), "probe" | "unanswered" | "timeout")),
        "zero-window probes and ACKs reported as keepalive: {events:#?}"
    );
}

#[test]
fn tiny_ring_buffer_counts_every_event_it_loses() {
    let ns = NetNs::new();
    let p = unique_port();
    // Two hundred connections whose first probes leave in the same tick.
    let pair = Pair::loopback_in(&ns, p, &["--keepalive", "4,1,3", "--count", "200"]);
    assert_eq!(pair.client.connections().len(), 200);
    let reference = Watch::on_port(p, &[]);
    let tiny = Watch::on_port(p, &["--ring-bytes", "4096"]);
    std::thread::sleep(Duration::from_secs(6));
    let (_, tiny_events, tiny_err) = tiny.interrupt().wait_output();
    let (_, ref_events, _) = reference.interrupt().wait_output();
    let kernel_events = |events: &[Value]| {
        events
            .iter()
            .filter(|v| matches!(event(v), "probe" | "ack"))
            .count()
    };
    let lost: u64 = tiny_events
        .iter()
        .filter(|v| event(v) == "lost")
        .filter_map(|v| v["count"].as_u64())
        .sum();
    let summary = tiny_events
        .iter()
        .find(|v| event(v) == "summary")
        .unwrap_or_else(|| panic!("{tiny_err}"));
    assert_eq!(
        summary["lost"].as_u64(),
        Some(lost),
        "lost lines add up to the summary"
    );
    assert!(lost > 0, "a 4 KiB ring cannot take 400 events at once");
    // The ring is host-wide: an event of some other connection lost in the
    // same burst counts as lost too, so on a busy host the sum may exceed
    // what this port's connections emitted by a few. It may never fall short.
    let (emitted, accounted) = (
        kernel_events(&ref_events),
        kernel_events(&tiny_events) + usize::try_from(lost).expect("lost fits usize"),
    );
    assert!(
        accounted >= emitted && accounted - emitted <= 3,
        "delivered + lost ({accounted}) = what the kernel emitted ({emitted}, seen in full by a watcher with a large ring)"
    );
    assert!(
        kernel_events(&ref_events) >= 400,
        "200 probes and 200 answers"
    );
}
