//! The tool's life cycle against the real kernel: the doctor finds the hooks
//! it needs, and a watcher leaves nothing loaded or attached when it ends,
//! whether by its own `--duration`, by SIGINT or SIGTERM (with a summary),
//! or by SIGKILL (bpf links die with the last file descriptor).
//!
//! Needs root: run through `cargo xtask test`.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use keepalive_tests::*;
use serde_json::Value;

/// The kernel frees programs and links asynchronously after their last fd closes.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Polls until `pid` has no programs or links left in the kernel; panics with what remains.
fn assert_released(pid: u32, loaded: &[String]) {
    let deadline = Instant::now() + RELEASE_TIMEOUT;
    loop {
        let (programs, links) = (programs_owned_by(pid), links_owned_by(pid));
        let still_listed: Vec<String> = ebpf_programs_of_ours()
            .into_iter()
            .filter(|p| loaded.contains(p))
            .collect();
        if programs.is_empty() && links.is_empty() && still_listed.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "watcher {pid} left behind after {RELEASE_TIMEOUT:?}: programs {programs:?}, links {links:?}, \
                 still listed by bpftool {still_listed:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["check"] == name))
        .unwrap_or_else(|| panic!("doctor reports no {name:?} check: {report:#}"))
}

#[test]
fn doctor_finds_the_hooks_watch_needs() {
    require_root();
    let out = Command::new(keepalive_bin())
        .args(["doctor", "--json"])
        .output()
        .expect("run keepalive doctor");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "keepalive doctor --json failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("doctor --json printed no JSON ({e}):\n{stdout}"));
    for name in ["cgroup_skb/egress", "cgroup_skb/ingress", "sock_ops"] {
        let c = check(&report, name);
        assert_eq!(c["ok"], true, "{c}");
    }
    let tracepoints: Vec<&Value> = report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["check"]
                .as_str()
                .is_some_and(|n| n.starts_with("tracepoint "))
        })
        .collect();
    assert!(!tracepoints.is_empty(), "no tracepoint checks: {report:#}");
    for c in tracepoints {
        assert_eq!(c["ok"], true, "{c}");
    }
}

#[test]
fn watch_with_duration_exits_and_unloads_everything() {
    require_root();
    let watch = Watch::spawn(&["--duration", "3"]);
    let pid = watch.pid();
    let loaded = programs_owned_by(pid);
    assert!(
        !loaded.is_empty(),
        "watcher {pid} has no programs of ours loaded"
    );
    assert!(
        !links_owned_by(pid).is_empty(),
        "watcher {pid} holds no bpf links"
    );
    let (status, _, stderr) = watch.wait_output();
    assert!(
        status.success(),
        "watch --duration 3 ended with {status}: {stderr}"
    );
    assert_released(pid, &loaded);
}

#[test]
fn sigkilled_watch_leaves_no_programs_or_links() {
    require_root();
    let watch = Watch::spawn(&[]);
    let pid = watch.pid();
    let loaded = programs_owned_by(pid);
    assert!(
        !loaded.is_empty(),
        "watcher {pid} has no programs of ours loaded"
    );
    let links = links_owned_by(pid);
    assert!(!links.is_empty(), "watcher {pid} holds no bpf links");
    let cgroup_links = cgroup_links_of_ours();
    assert!(
        !cgroup_links.is_empty(),
        "no cgroup links of ours while watcher {pid} runs (its links: {links:?})"
    );
    let (status, _, stderr) = watch.kill().wait_output();
    assert!(
        !status.success(),
        "SIGKILL should end the watcher: {status} {stderr}"
    );
    assert_released(pid, &loaded);
}

#[test]
fn interrupt_terminate_and_kill_leave_nothing_attached() {
    require_root();
    for stop in ["SIGINT", "SIGTERM", "SIGKILL"] {
        let watch = Watch::on_port(unique_port(), &[]);
        let pid = watch.pid();
        let loaded = programs_owned_by(pid);
        assert!(!loaded.is_empty(), "watcher {pid} has its programs loaded");
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
        assert_released(pid, &loaded);
    }
}
