//! `keepalive watch` against the real kernel when the peer goes away: real
//! faults injected on the peer's side (a blackhole, a reboot, a user timeout
//! shorter than the keepalive budget), and the unanswered probes, timeout or
//! reset the tool reports checked against what was configured.
//!
//! Needs root: run through `cargo xtask test`. The watchers attach at the
//! cgroup v2 root and see every namespace, so each test filters on its own
//! ports.

use std::time::Duration;

use keepalive_tests::*;
use serde_json::Value;

/// The `n` of every `name` event, in order.
fn numbers_of(events: &[Value], name: &str) -> Vec<u64> {
    events
        .iter()
        .filter(|v| event(v) == name)
        .filter_map(|v| v["n"].as_u64())
        .collect()
}

/// Only the client's end is the prober: the server's own lines (the RST
/// it receives) and other connections that happen to use port `p` (other
/// suites run watchers and connections host-wide) are not its story. And
/// none of the story may have been lost: the programs see every connection
/// of the host and the port filter runs in userspace, so a suite nearby
/// opening 100 000 connections fills the default 8 MiB ring in a burst
/// (66 542 events lost once); this watcher gets 128 MiB to ride that out.
#[test]
fn blackholed_peer_is_declared_dead_after_idle_plus_count_intervals() {
    let ns = NetNs::new();
    let p = unique_port();
    let watch = Watch::on_port(p, &["--ring-bytes", "134217728"]);
    let mut pair = Pair::loopback_in(&ns, p, &["--keepalive", "1,1,3"]);
    // The peer's answers never leave it; the prober's probes are still seen.
    let _blackhole = Nft::drop_output_from_port(&ns, p);
    pair.client.send_line("recv");
    let (src, dst) = (pair.client.local(0), format!("127.0.0.1:{p}"));
    let clients = |v: &Value| v["src"] == src.as_str() && v["dst"] == dst.as_str();
    watch.collect_until(Duration::from_secs(10), |v| {
        clients(v) && event(v) == "timeout"
    });
    let recv = pair.client.next_json(Duration::from_secs(3));
    let (status, all, stderr) = watch.interrupt().wait_output();
    let (events, others): (Vec<Value>, Vec<Value>) = all.into_iter().partition(clients);
    // Whatever fails below, say what else the watcher saw and lost.
    let lost: Vec<&Value> = others.iter().filter(|v| event(v) == "lost").collect();
    let context = format!(
        "client {src} > {dst}: {events:#?}\nlost: {lost:?}\nother lines: {others:?}\nwatcher stderr: {stderr}"
    );
    assert!(status.success(), "{status:?}: {context}");
    assert_eq!(numbers_of(&events, "unanswered"), [1, 2, 3], "{context}");
    assert_eq!(numbers_of(&events, "probe"), [1, 2, 3], "{context}");
    assert!(
        !events.iter().any(|v| event(v) == "ack"),
        "no answer got through: {context}"
    );
    let timeout = events.last().expect("timeout");
    assert_eq!(event(timeout), "timeout", "{context}");
    assert_eq!(timeout["reason"], "keepalive", "{timeout}");
    assert_eq!(timeout["probes"], 3);
    assert_eq!(timing_of(timeout), (1, 1, 3, 0), "{timeout}");
    let detect = timeout["detect_ms"].as_u64().expect("detect_ms");
    assert!(
        (3200..=4800).contains(&detect),
        "idle 1 s + 3 × 1 s = 4 s ± 20 %, got {detect} ms"
    );
    assert_eq!(timeout["predicted_ms"], 4000);
    let recv = recv.expect("the application's recv ends");
    assert_eq!(recv["recv_error"], "ETIMEDOUT", "{recv}");
    // Nothing of this story may have been dropped on the way.
    assert!(
        lost.is_empty(),
        "events lost, this run cannot vouch for the story (the ring is host-wide: is another suite flooding the host?): {lost:?}"
    );
    let summary = others.last().expect("a summary");
    assert_eq!(event(summary), "summary", "{summary}");
    assert_eq!(summary["lost"], 0, "{summary}");
}

#[test]
fn rebooted_peer_answers_the_next_probe_with_a_reset() {
    let ns = NetNs::new();
    let p = unique_port();
    let watch = Watch::on_port(p, &[]);
    let mut pair = Pair::loopback_in(&ns, p, &["--keepalive", "2,1,3"]);
    {
        // The peer's socket vanishes and its RST never reaches the prober.
        let _no_goodbye = Nft::drop_output_tcp_flags(&ns, p, "fin|rst");
        pair.server.send_line("abort");
        std::thread::sleep(Duration::from_millis(300));
    }
    let events = watch.collect_until(Duration::from_secs(8), is("reset"));
    let reset = events.last().expect("reset");
    assert_eq!(event(reset), "reset", "{events:#?}");
    assert_eq!(
        reset["n"], 1,
        "the first probe reaches the peer's kernel, which resets: {reset}"
    );
    assert!(events.iter().any(|v| event(v) == "probe" && v["n"] == 1));
    assert!(!events.iter().any(|v| event(v) == "timeout"), "{events:#?}");
}

#[test]
fn user_timeout_shorter_than_keepalive_budget_is_named() {
    let ns = NetNs::new();
    let p = unique_port();
    let watch = Watch::on_port(p, &[]);
    let pair = Pair::loopback_in(&ns, p, &["--keepalive", "1,1,10", "--user-timeout", "2500"]);
    let _blackhole = Nft::drop_output_from_port(&ns, p);
    let events = watch.collect_until(Duration::from_secs(10), is("timeout"));
    let timeout = events.last().expect("timeout");
    assert_eq!(event(timeout), "timeout", "{events:#?}");
    assert_eq!(timeout["reason"], "user_timeout", "{timeout}");
    assert_eq!(timing_of(timeout), (1, 1, 10, 2500));
    let detect = timeout["detect_ms"].as_u64().expect("detect_ms");
    // Killed at the first keepalive tick at or past 2.5 s: 3 s, far below 11 s.
    assert!((2400..=3600).contains(&detect), "{detect} ms");
    assert!(timeout["probes"].as_u64().unwrap() < 10);
    drop(pair);
}
