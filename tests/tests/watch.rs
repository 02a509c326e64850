//! `keepalive watch` against the real kernel: real connections in their own
//! network namespace, real faults injected on the peer's side, and what the
//! tool reports checked against what was configured.
//!
//! Needs root: run through `cargo xtask test`. The watchers attach at the
//! cgroup v2 root and see every namespace, so each test filters on its own
//! ports.

use std::time::Duration;

use keepalive_tests::*;
use serde_json::Value;

fn event(v: &Value) -> &str {
    v["event"].as_str().unwrap_or("")
}

fn is(name: &'static str) -> impl Fn(&Value) -> bool {
    move |v| event(v) == name
}

/// A listener and a keepalive client in `ns`, both tcp-peer processes.
struct Pair {
    server: Peer,
    client: Peer,
}

fn pair(ns: &NetNs, listen: &str, connect: &str, client_args: &[&str]) -> Pair {
    let server = Peer::spawn_in(ns, &["listen", listen]);
    let mut args = vec!["connect", connect];
    args.extend_from_slice(client_args);
    let client = Peer::spawn_in(ns, &args);
    Pair { server, client }
}

fn watch_port(port: u16, extra: &[&str]) -> Watch {
    let port = port.to_string();
    let mut args = vec!["--port", port.as_str()];
    args.extend_from_slice(extra);
    Watch::spawn(&args)
}

fn config_of(v: &Value) -> (u64, u64, u64, u64) {
    let c = &v["config"];
    (
        c["idle_s"].as_u64().unwrap_or(0),
        c["intvl_s"].as_u64().unwrap_or(0),
        c["cnt"].as_u64().unwrap_or(0),
        c["user_timeout_ms"].as_u64().unwrap_or(0),
    )
}

#[test]
fn healthy_idle_connection_probes_are_answered() {
    require_root();
    let ns = NetNs::new();
    let p = unique_port();
    let watch = watch_port(p, &[]);
    let pair = pair(
        &ns,
        &format!("127.0.0.1:{p}"),
        &format!("127.0.0.1:{p}"),
        &["--keepalive", "1,1,3"],
    );
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
        assert_eq!(config_of(probe), (1, 1, 3, 0));
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
fn blackholed_peer_is_declared_dead_after_idle_plus_count_intervals() {
    require_root();
    let ns = NetNs::new();
    let p = unique_port();
    let watch = watch_port(p, &[]);
    let mut pair = pair(
        &ns,
        &format!("127.0.0.1:{p}"),
        &format!("127.0.0.1:{p}"),
        &["--keepalive", "1,1,3"],
    );
    // The peer's answers never leave it; the prober's probes are still seen.
    let _blackhole = Nft::drop_output_from_port(&ns, p);
    pair.client.send_line("recv");
    let events = watch.collect_until(Duration::from_secs(10), is("timeout"));
    let unanswered: Vec<u64> = events
        .iter()
        .filter(|v| event(v) == "unanswered")
        .filter_map(|v| v["n"].as_u64())
        .collect();
    assert_eq!(unanswered, vec![1, 2, 3], "{events:#?}");
    let probes: Vec<u64> = events
        .iter()
        .filter(|v| event(v) == "probe")
        .filter_map(|v| v["n"].as_u64())
        .collect();
    assert_eq!(probes, vec![1, 2, 3], "{events:#?}");
    let timeout = events.last().expect("timeout");
    assert_eq!(timeout["reason"], "keepalive", "{timeout}");
    assert_eq!(timeout["probes"], 3);
    let detect = timeout["detect_ms"].as_u64().expect("detect_ms");
    assert!(
        (3200..=4800).contains(&detect),
        "idle 1 s + 3 × 1 s = 4 s ± 20 %, got {detect} ms"
    );
    assert_eq!(timeout["predicted_ms"], 4000);
    let recv = pair
        .client
        .next_json(Duration::from_secs(3))
        .expect("the application's recv ends");
    assert_eq!(recv["recv_error"], "ETIMEDOUT", "{recv}");
}

#[test]
fn rebooted_peer_answers_the_next_probe_with_a_reset() {
    require_root();
    let ns = NetNs::new();
    let p = unique_port();
    let watch = watch_port(p, &[]);
    let mut pair = pair(
        &ns,
        &format!("127.0.0.1:{p}"),
        &format!("127.0.0.1:{p}"),
        &["--keepalive", "2,1,3"],
    );
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
fn ipv6_and_ipv4_mapped_connections() {
    require_root();
    let ns = NetNs::new();
    let (p6, p4) = (unique_port(), unique_port());
    let watch = Watch::spawn(&["--port", &p6.to_string(), "--port", &p4.to_string()]);
    let v6 = pair(
        &ns,
        &format!("[::1]:{p6}"),
        &format!("[::1]:{p6}"),
        &["--keepalive", "1,1,3"],
    );
    let mapped = pair(
        &ns,
        &format!("127.0.0.1:{p4}"),
        &format!("[::ffff:127.0.0.1]:{p4}"),
        &["--keepalive", "1,1,3"],
    );
    let events = watch.collect_until(Duration::from_secs(5), {
        let mut seen = (false, false);
        move |v: &Value| {
            if event(v) == "ack" {
                let dst = v["dst"].as_str().unwrap_or("");
                seen.0 |= dst == format!("[::1]:{p6}");
                seen.1 |= dst == format!("127.0.0.1:{p4}");
            }
            seen.0 && seen.1
        }
    });
    let v6_probe = events
        .iter()
        .find(|v| event(v) == "probe" && v["dst"] == format!("[::1]:{p6}"));
    let v6_probe = v6_probe.unwrap_or_else(|| panic!("IPv6 probe on ::1: {events:#?}"));
    assert!(v6_probe["src"].as_str().unwrap().starts_with("[::1]:"));
    assert_eq!(config_of(v6_probe), (1, 1, 3, 0));
    // An AF_INET6 socket talking to ::ffff:127.0.0.1 sends IPv4 packets.
    let mapped_probe = events
        .iter()
        .find(|v| event(v) == "probe" && v["dst"] == format!("127.0.0.1:{p4}"));
    let mapped_probe = mapped_probe.unwrap_or_else(|| panic!("v4-mapped probe: {events:#?}"));
    assert_eq!(config_of(mapped_probe), (1, 1, 3, 0));
    assert!(
        events
            .iter()
            .any(|v| event(v) == "ack" && v["dst"] == format!("[::1]:{p6}"))
    );
    drop((v6, mapped));
}

#[test]
fn connection_established_before_watch_is_observed_with_its_settings() {
    require_root();
    let ns = NetNs::new();
    let p = unique_port();
    let pair = pair(
        &ns,
        &format!("127.0.0.1:{p}"),
        &format!("127.0.0.1:{p}"),
        &["--keepalive", "2,1,4"],
    );
    std::thread::sleep(Duration::from_millis(500));
    let watch = watch_port(p, &[]);
    let probe = watch
        .next_matching(Duration::from_secs(5), is("probe"))
        .expect("a probe of the old connection");
    assert_eq!(probe["src"], pair.client.connections()[0]["local"]);
    assert_eq!(config_of(&probe), (2, 1, 4, 0));
    assert_eq!(probe["config"]["keepalive"], true);
    assert!(
        watch
            .next_matching(Duration::from_secs(2), is("ack"))
            .is_some()
    );
}

#[test]
fn user_timeout_shorter_than_keepalive_budget_is_named() {
    require_root();
    let ns = NetNs::new();
    let p = unique_port();
    let watch = watch_port(p, &[]);
    let pair = pair(
        &ns,
        &format!("127.0.0.1:{p}"),
        &format!("127.0.0.1:{p}"),
        &["--keepalive", "1,1,10", "--user-timeout", "2500"],
    );
    let _blackhole = Nft::drop_output_from_port(&ns, p);
    let events = watch.collect_until(Duration::from_secs(10), is("timeout"));
    let timeout = events.last().expect("timeout");
    assert_eq!(event(timeout), "timeout", "{events:#?}");
    assert_eq!(timeout["reason"], "user_timeout", "{timeout}");
    assert_eq!(config_of(timeout), (1, 1, 10, 2500));
    let detect = timeout["detect_ms"].as_u64().expect("detect_ms");
    // Killed at the first keepalive tick at or past 2.5 s: 3 s, far below 11 s.
    assert!((2400..=3600).contains(&detect), "{detect} ms");
    assert!(timeout["probes"].as_u64().unwrap() < 10);
    drop(pair);
}

#[test]
fn zero_window_probes_and_pure_acks_are_not_keepalive_probes() {
    require_root();
    let ns = NetNs::new();
    let p = unique_port();
    let watch = watch_port(p, &[]);
    // The server never reads: the client's data fills its window, and the
    // client sends zero-window probes (same shape as keepalive probes).
    let mut pair = pair(
        &ns,
        &format!("127.0.0.1:{p}"),
        &format!("127.0.0.1:{p}"),
        &["--keepalive", "1,1,3"],
    );
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
    require_root();
    let ns = NetNs::new();
    ns.sysctl("net.ipv4.ip_local_port_range", "20000 60000");
    let p = unique_port();
    // Two hundred connections whose first probes leave in the same tick.
    let pair = pair(
        &ns,
        &format!("127.0.0.1:{p}"),
        &format!("127.0.0.1:{p}"),
        &["--keepalive", "4,1,3", "--count", "200"],
    );
    assert_eq!(pair.client.connections().len(), 200);
    let reference = watch_port(p, &[]);
    let tiny = watch_port(p, &["--ring-bytes", "4096"]);
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
        kernel_events(&tiny_events) + lost as usize,
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

fn assert_nothing_of_pid_left(pid: u32) {
    for _ in 0..50 {
        if programs_owned_by(pid).is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "programs of watcher {pid} still loaded: {:?}",
        programs_owned_by(pid)
    );
}

#[test]
fn interrupt_terminate_and_kill_leave_nothing_attached() {
    require_root();
    for stop in ["SIGINT", "SIGTERM", "SIGKILL"] {
        let watch = Watch::spawn(&["--port", &unique_port().to_string()]);
        let pid = watch.pid();
        assert!(
            !programs_owned_by(pid).is_empty(),
            "watcher {pid} has its programs loaded"
        );
        let watch = match stop {
            "SIGINT" => watch.interrupt(),
            "SIGTERM" => watch.terminate(),
            _ => watch.kill(),
        };
        let (status, events, stderr) = watch.wait_output();
        if stop != "SIGKILL" {
            assert!(status.success(), "{stop}: {status:?} {stderr}");
            assert!(
                events.iter().any(|v| event(v) == "summary"),
                "{stop}: summary printed on exit"
            );
        }
        assert_nothing_of_pid_left(pid);
    }
}

#[test]
fn bad_input_is_refused_before_anything_is_attached() {
    require_root();
    let before = ebpf_programs_of_ours().len();
    for args in [
        vec!["watch", "--dst", "10.0.0.0/33"],
        vec!["watch", "--src", "not-an-address"],
        vec!["watch", "--port", "0"],
        vec!["watch", "--port", "65536"],
        vec!["watch", "--cgroup", "/no/such/cgroup"],
        vec!["watch", "--pid", "4194304"],
        vec!["watch", "--duration", "ten"],
    ] {
        let out = std::process::Command::new(keepalive_bin())
            .args(&args)
            .output()
            .expect("run keepalive");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        let first = stderr.lines().next().unwrap_or("");
        assert!(
            !first.is_empty() && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(
        ebpf_programs_of_ours().len(),
        before,
        "nothing was attached"
    );
}

#[test]
fn pid_filter_keeps_only_that_process_connections() {
    require_root();
    let ns = NetNs::new();
    let p = unique_port();
    let _server = Peer::spawn_in(&ns, &["listen", &format!("127.0.0.1:{p}")]);
    let target = Peer::spawn_in(
        &ns,
        &["connect", &format!("127.0.0.1:{p}"), "--keepalive", "1,1,3"],
    );
    let _other = Peer::spawn_in(
        &ns,
        &["connect", &format!("127.0.0.1:{p}"), "--keepalive", "1,1,3"],
    );
    let watch = Watch::spawn(&["--port", &p.to_string(), "--pid", &target.pid().to_string()]);
    let events = watch.collect_until(Duration::from_secs(4), |_| false);
    let probes: Vec<&Value> = events.iter().filter(|v| event(v) == "probe").collect();
    assert!(
        !probes.is_empty(),
        "the target's probes are shown: {events:#?}"
    );
    for v in &events {
        assert_eq!(v["pid"], target.pid(), "only the target process: {v}");
        assert_eq!(v["src"], target.connections()[0]["local"]);
    }
}
