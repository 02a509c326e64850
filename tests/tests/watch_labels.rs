//! What `watch` calls things, against the real kernel: an answer only when
//! it answers (not a window update long after other traffic), the timer
//! that really killed a connection, and connects that never were.
//!
//! Needs root: run through `cargo xtask test`. Each test filters on its own
//! ports.

use std::{process::Stdio, time::Duration};

use keepalive_tests::*;
use serde_json::Value;

fn of_client<'a>(events: &'a [Value], client: &str) -> Vec<&'a Value> {
    events.iter().filter(|v| v["src"] == client).collect()
}

/// The prober's probe #1 goes unanswered (its answer is dropped), the peer
/// then sends data, and a window update follows: none of it is an `ack`.
#[test]
fn a_late_window_update_after_other_traffic_is_no_answer() {
    let ns = NetNs::new();
    // A small receive buffer makes the peer's window close and reopen.
    ns.sysctl("net.ipv4.tcp_rmem", "4096 4096 4096");
    let p = unique_port();
    let watch = Watch::on_port(p, &[]);
    // Idle 3 s, then 5 s between probes: room for what follows probe #1.
    let mut pair = Pair::loopback_in(&ns, p, &["--keepalive", "3,5,3"]);
    let client = pair.client.local(0);
    let answers_dropped = Nft::new(
        &ns,
        &format!(
            "table inet ka_no_pure_acks_{p} {{\n  chain output {{\n    type filter hook output priority 0; policy accept;\n    tcp sport {p} ip length <= 60 drop\n  }}\n}}\n"
        ),
    );
    let probe = watch
        .next_matching(Duration::from_secs(6), |v| {
            event(v) == "probe" && v["src"] == client.as_str()
        })
        .expect("probe #1 after 3 s idle");
    assert_eq!(probe["n"], 1);
    pair.server.send_line("send 100");
    std::thread::sleep(Duration::from_millis(200));
    drop(answers_dropped);
    // Fill the peer's window, then let it read: window updates come back
    // with ack = snd_una and seq = rcv_nxt, the shape of an answer.
    pair.client.send_line("send 200000");
    std::thread::sleep(Duration::from_millis(1300));
    pair.server.send_line("recv");
    let events = watch.collect_until(Duration::from_secs(12), |v| {
        event(v) == "probe" && v["src"] == client.as_str()
    });
    let mine = of_client(&events, &client);
    assert!(
        mine.iter().all(|v| event(v) != "ack"),
        "no answer between probe #1 and the next probe: {mine:#?}"
    );
    assert!(
        mine.iter()
            .any(|v| event(v) == "answered_by_traffic" && v["n"] == 1),
        "probe #1's run ended by traffic: {mine:#?}"
    );
    assert!(
        mine.iter().all(|v| event(v) != "unanswered"),
        "the peer was alive: {mine:#?}"
    );
}

/// Twenty seconds of probing (an hour of a one-minute interval, compressed)
/// through data in both directions: every answer's round trip is below the
/// interval, and every probe is accounted for.
#[test]
fn round_trips_stay_below_the_interval_through_mixed_traffic() {
    let ns = NetNs::new();
    let p = unique_port();
    let watch = Watch::on_port(p, &[]);
    let mut pair = Pair::loopback_in(&ns, p, &["--keepalive", "1,1,5"]);
    let client = pair.client.local(0);
    for step in 0..16u32 {
        std::thread::sleep(Duration::from_millis(1250));
        match step % 4 {
            1 => pair.server.send_line("send 100"),
            3 => pair.client.send_line("send 3000"),
            _ => {}
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let events = watch.events_so_far();
    let mine = of_client(&events, &client);
    let acks: Vec<u64> = mine
        .iter()
        .filter(|v| event(v) == "ack")
        .map(|v| v["rtt_us"].as_u64().expect("rtt_us"))
        .collect();
    assert!(acks.len() >= 8, "probes answered: {mine:#?}");
    assert!(
        acks.iter().all(|rtt| *rtt < 1_000_000),
        "every round trip below the 1 s interval: {acks:?}"
    );
    assert!(
        mine.iter()
            .all(|v| event(v) != "unanswered" && event(v) != "timeout"),
        "{mine:#?}"
    );
    let probes = mine.iter().filter(|v| event(v) == "probe").count();
    let settled = mine
        .iter()
        .filter(|v| matches!(event(v), "ack" | "answered_by_traffic"))
        .count();
    assert!(
        probes - settled <= 1,
        "every probe but the last answered: {probes} probes, {settled} settled"
    );
}

/// Unanswered probes, then the application writes: the keepalive timer
/// stops and the retransmission timer kills the connection.
#[test]
fn data_written_while_probes_go_unanswered_dies_by_retransmission() {
    let ns = NetNs::new();
    // Three retransmissions: the kill comes after about 3 s, not 15 min.
    ns.sysctl("net.ipv4.tcp_retries2", "3");
    let p = unique_port();
    let watch = Watch::on_port(p, &[]);
    let mut pair = Pair::loopback_in(&ns, p, &["--keepalive", "1,1,8"]);
    let client = pair.client.local(0);
    let _blackhole = Nft::drop_output_from_port(&ns, p);
    watch
        .next_matching(Duration::from_secs(5), |v| {
            event(v) == "unanswered" && v["src"] == client.as_str()
        })
        .expect("probe #1 unanswered");
    pair.client.send_line("send 1000");
    let timeout = watch
        .next_matching(Duration::from_secs(20), |v| {
            event(v) == "timeout" && v["src"] == client.as_str()
        })
        .expect("the retransmission timer gives up");
    assert_eq!(timeout["reason"], "retransmit", "{timeout}");
    assert_eq!(timeout["predicted_ms"], Value::Null, "{timeout}");
}

/// Runs `tcp-peer connect ADDR` in `ns` and returns its first line (the
/// error it reports).
fn failed_connect(ns: &NetNs, addr: &str) -> Value {
    let out = ns
        .command(tcp_peer_bin())
        .args(["connect", addr])
        .stdin(Stdio::null())
        .output()
        .expect("running tcp-peer");
    let stdout = String::from_utf8_lossy(&out.stdout);
    json_lines(&stdout)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("tcp-peer said nothing: {stdout}"))
}

#[test]
fn failed_connects_are_not_shown_by_default_and_named_with_all() {
    let ns = NetNs::new();
    ns.sysctl("net.ipv4.tcp_syn_retries", "1");
    let (refused, silent) = (unique_port(), unique_port());
    // Only this test's namespace: another suite may use the same ports.
    let ports = [
        "-N",
        ns.name(),
        "--port",
        &refused.to_string(),
        "--port",
        &silent.to_string(),
    ]
    .map(String::from);
    let ports: Vec<&str> = ports.iter().map(String::as_str).collect();
    let quiet = Watch::spawn(&ports);
    let mut all_args = ports.clone();
    all_args.push("--all");
    let all = Watch::spawn(&all_args);
    let _no_syn = Nft::new(
        &ns,
        &format!(
            "table inet ka_no_syn_{silent} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    tcp dport {silent} drop\n  }}\n}}\n"
        ),
    );
    assert_eq!(
        failed_connect(&ns, &format!("127.0.0.1:{refused}"))["error"],
        "ECONNREFUSED"
    );
    assert_eq!(
        failed_connect(&ns, &format!("127.0.0.1:{silent}"))["error"],
        "ETIMEDOUT"
    );
    let failures = all.collect_until(Duration::from_secs(5), |_| false);
    let named: Vec<(&str, &str)> = failures
        .iter()
        .filter(|v| event(v) == "connect_failed")
        .map(|v| {
            (
                v["dst"].as_str().unwrap_or_default(),
                v["error"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    let (refused_dst, silent_dst) = (
        format!("127.0.0.1:{refused}"),
        format!("127.0.0.1:{silent}"),
    );
    assert!(
        named.contains(&(refused_dst.as_str(), "ECONNREFUSED")),
        "{failures:#?}"
    );
    assert!(
        named.contains(&(silent_dst.as_str(), "ETIMEDOUT")),
        "{failures:#?}"
    );
    assert!(
        failures
            .iter()
            .all(|v| !matches!(event(v), "reset" | "timeout")),
        "no reset or timeout for connections that never were: {failures:#?}"
    );
    let shown = quiet.events_so_far();
    assert!(
        shown.is_empty(),
        "nothing by default: {shown:#?}\n{}",
        quiet.stderr()
    );
    let (_, events, _) = quiet.interrupt().wait_output();
    let summary = events.last().expect("summary");
    assert_eq!(summary["connections"], 0, "{summary}");
    assert_eq!(summary["resets"], 0);
}
