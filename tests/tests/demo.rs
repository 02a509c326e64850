//! `keepalive demo` against the real kernel: each fault gives the expected
//! verdict, and nothing is left behind, also after SIGINT mid-run.
//!
//! Needs root: run through `cargo xtask test`.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use keepalive_tests::*;
use serde_json::Value;

fn demo_namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("ka-demo-"))
        .map(String::from)
        .collect()
}

fn demo(args: &[&str]) -> (Value, Vec<Value>) {
    let out = Command::new(keepalive_bin())
        .arg("demo")
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let verdict = events.last().cloned().expect("a verdict");
    assert_eq!(verdict["event"], "verdict");
    (verdict, events)
}

#[test]
fn blackhole_is_detected_when_the_settings_predict() {
    require_root();
    let (verdict, events) = demo(&["--fault", "blackhole"]);
    assert_eq!(verdict["alive"], false, "{verdict}");
    assert_eq!(verdict["reason"], "keepalive");
    let (detected, predicted) = (
        verdict["detected_ms"].as_u64().unwrap(),
        verdict["predicted_ms"].as_u64().unwrap(),
    );
    assert_eq!(predicted, 4000);
    assert!(
        detected.abs_diff(predicted) * 5 <= predicted,
        "within ±20 %: {detected} vs {predicted}"
    );
    assert_eq!(
        events.iter().filter(|v| v["event"] == "unanswered").count(),
        3
    );
    assert!(
        demo_namespaces().is_empty(),
        "namespaces left: {:?}",
        demo_namespaces()
    );
}

#[test]
fn rebooted_peer_resets_at_the_next_probe() {
    require_root();
    let (verdict, _) = demo(&["--fault", "reset", "--idle", "2"]);
    assert_eq!(
        (verdict["reason"].as_str(), verdict["after_probe"].as_u64()),
        (Some("reset"), Some(1)),
        "{verdict}"
    );
    assert!(demo_namespaces().is_empty());
}

#[test]
fn user_timeout_verdict_and_bad_fault() {
    require_root();
    let (verdict, _) = demo(&[
        "--idle",
        "1",
        "--interval",
        "1",
        "--count",
        "9",
        "--user-timeout",
        "2500ms",
    ]);
    assert_eq!(verdict["reason"], "user_timeout", "{verdict}");
    assert_eq!(verdict["predicted_ms"], 3000);
    let bad = Command::new(keepalive_bin())
        .args(["demo", "--fault", "meteor"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(demo_namespaces().is_empty());
}

#[test]
fn interrupted_demo_leaves_nothing_behind() {
    require_root();
    let child = Command::new(keepalive_bin())
        .args(["demo", "--idle", "5"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut child = ChildGuard(child);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        demo_namespaces().len(),
        1,
        "the demo's namespace exists while it runs"
    );
    signal(pid, libc::SIGINT);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        demo_namespaces().is_empty(),
        "namespaces left: {:?}",
        demo_namespaces()
    );
    for _ in 0..50 {
        if programs_owned_by(pid).is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("programs of demo {pid} still loaded");
}

#[test]
fn middlebox_keeps_probed_flows_and_cuts_idle_ones() {
    require_root();
    let (alive, _) = demo(&["--fault", "middlebox:3", "--idle", "1"]);
    assert_eq!(
        alive["alive"], true,
        "idle 1 s under a 3 s middlebox: {alive}"
    );
    assert_eq!(alive["unanswered"], 0);
    let (cut, _) = demo(&["--fault", "middlebox:2", "--idle", "3"]);
    assert_eq!(cut["alive"], false, "idle 3 s past a 2 s middlebox: {cut}");
    assert_eq!(cut["reason"], "keepalive");
    assert!(demo_namespaces().is_empty());
}

#[test]
fn random_loss_is_survived_and_counted() {
    require_root();
    let (verdict, events) = demo(&["--fault", "loss:30", "--count", "8"]);
    assert_eq!(
        verdict["alive"], true,
        "30 % loss with 8 probes to spare: {verdict}"
    );
    let unanswered = events.iter().filter(|v| v["event"] == "unanswered").count() as u64;
    assert_eq!(verdict["unanswered"], unanswered);
    let bad = Command::new(keepalive_bin())
        .args(["demo", "--fault", "loss:0"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
