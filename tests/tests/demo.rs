//! `keepalive demo` against the real kernel: each fault gives the expected
//! verdict, and nothing is left behind (namespace, nft tables, sysctls,
//! programs), also when it is ended early by SIGINT, SIGHUP or `timeout`'s
//! SIGTERM.
//!
//! Each demo names its namespace after its pid (`ka-demo-<pid>`), and the
//! tests check that one only: other suites on this host run demos too.
//!
//! Needs root: run through `cargo xtask test`.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use keepalive_tests::*;
use serde_json::Value;

/// The kernel frees programs and links asynchronously after their last fd
/// closes; `ip netns del` returns before the namespace is gone for good.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// The middlebox demo's own settings, and the host sysctls they must not touch.
const MIDDLEBOX_S: &str = "30";
const CONNTRACK_SYSCTLS: [&str; 2] = [
    "net/netfilter/nf_conntrack_tcp_loose",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
];

/// The namespace demo `pid` makes; deleted on drop if the demo left it
/// (after the test has looked).
struct DemoNamespace(String);

impl DemoNamespace {
    fn of(pid: u32) -> Self {
        Self(format!("ka-demo-{pid}"))
    }

    fn exists(&self) -> bool {
        Path::new("/run/netns").join(&self.0).exists()
    }

    /// `nft list tables` inside it, or None when that fails.
    fn nft_tables(&self) -> Option<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0, "nft", "list", "tables"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn sysctl(&self, path: &str) -> Option<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0, "cat"])
            .arg(Path::new("/proc/sys").join(path))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl Drop for DemoNamespace {
    fn drop(&mut self) {
        if self.exists() {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
}

/// The root namespace's conntrack sysctls (None where the module is not loaded).
fn host_conntrack_sysctls() -> Vec<Option<String>> {
    CONNTRACK_SYSCTLS
        .iter()
        .map(|p| std::fs::read_to_string(Path::new("/proc/sys").join(p)).ok())
        .collect()
}

/// The root namespace's nft tables that a demo would have made.
fn host_demo_tables() -> Vec<String> {
    let out = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("keepalive_demo"))
        .map(String::from)
        .collect()
}

fn demo(args: &[&str]) -> (Value, Vec<Value>) {
    let child = Command::new(keepalive_bin())
        .arg("demo")
        .arg("--json")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let namespace = DemoNamespace::of(child.id());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!namespace.exists(), "{} left behind", namespace.0);
    let events = json_lines(&String::from_utf8_lossy(&out.stdout));
    let verdict = events.last().cloned().expect("a verdict");
    assert_eq!(verdict["event"], "verdict");
    (verdict, events)
}

/// How a demo is ended early.
#[derive(Clone, Copy)]
enum EarlyEnd {
    /// This signal, sent once the lab is complete.
    Signal(libc::c_int, &'static str),
    /// `timeout -s TERM 3 keepalive demo ...`, as a user would run it.
    TimeoutTerm,
}

/// Runs a middlebox demo (its nft table and sysctls are in place from the
/// start), ends it early, and checks it undid everything: its namespace
/// (and so what was in it) is gone, the host's sysctls and nft tables are as
/// they were, and the programs it held while running are unloaded.
fn ended_early_leaves_nothing(how: EarlyEnd) {
    require_root();
    let (sysctls_before, tables_before) = (host_conntrack_sysctls(), host_demo_tables());
    let demo_args = [
        "demo",
        "--json",
        "--idle",
        "5",
        "--fault",
        &format!("middlebox:{MIDDLEBOX_S}"),
    ];
    let mut cmd = match how {
        EarlyEnd::Signal(..) => Command::new(keepalive_bin()),
        EarlyEnd::TimeoutTerm => {
            let mut timeout = Command::new("timeout");
            timeout.args(["-s", "TERM", "3"]).arg(keepalive_bin());
            timeout
        }
    };
    let child = cmd
        .args(demo_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = ChildGuard(child);
    let pid = match how {
        EarlyEnd::Signal(..) => child.pid(),
        EarlyEnd::TimeoutTerm => wait_for("timeout's child", || {
            std::fs::read_to_string(format!("/proc/{}/task/{0}/children", child.pid()))
                .ok()?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        }),
    };
    let namespace = DemoNamespace::of(pid);
    // Complete: namespace, nft table and sysctl inside it, programs loaded.
    let loaded = wait_for("the demo's lab and programs", || {
        let complete = namespace
            .nft_tables()
            .is_some_and(|t| t.contains("keepalive_demo_ct"))
            && namespace.sysctl(CONNTRACK_SYSCTLS[1]).as_deref() == Some(MIDDLEBOX_S);
        let loaded = programs_owned_by(pid);
        (complete && !loaded.is_empty()).then_some(loaded)
    });
    let (expected_code, signal_name) = match how {
        EarlyEnd::Signal(signo, name) => {
            signal(pid, signo);
            (128 + signo, name)
        }
        // timeout's own code for "the command timed out".
        EarlyEnd::TimeoutTerm => (124, "SIGTERM"),
    };
    let status = child.wait().unwrap();
    let (mut stdout, mut stderr) = (String::new(), String::new());
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!namespace.exists(), "{} left behind", namespace.0);
    assert_eq!(
        host_conntrack_sysctls(),
        sysctls_before,
        "host sysctls changed"
    );
    assert_eq!(
        host_demo_tables(),
        tables_before,
        "nft tables left on the host"
    );

    assert_eq!(status.code(), Some(expected_code), "{stderr}");
    let verdict = json_lines(&stdout).pop().expect("a verdict");
    assert_eq!(verdict["event"], "verdict", "{stdout}");
    assert_eq!(verdict["interrupted"], signal_name, "{verdict}");
    assert_eq!(
        verdict["alive"],
        Value::Null,
        "no verdict either way: {verdict}"
    );
    let deadline = Instant::now() + RELEASE_TIMEOUT;
    loop {
        let still = programs_owned_by(pid);
        if still.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "demo {pid} left programs loaded: {still:?} (it held {loaded:?})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `probe` every 20 ms for up to 2.5 s (the `timeout` run ends at 3 s).
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_millis(2500);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "no {what} after 2.5 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigint_ends_the_demo_and_leaves_nothing_behind() {
    ended_early_leaves_nothing(EarlyEnd::Signal(libc::SIGINT, "SIGINT"));
}

#[test]
fn sighup_ends_the_demo_and_leaves_nothing_behind() {
    ended_early_leaves_nothing(EarlyEnd::Signal(libc::SIGHUP, "SIGHUP"));
}

#[test]
fn timeout_sigterm_ends_the_demo_and_leaves_nothing_behind() {
    ended_early_leaves_nothing(EarlyEnd::TimeoutTerm);
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
    assert_usage_error(&["demo", "--fault", "meteor"], "--fault meteor");
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
    assert_usage_error(&["demo", "--fault", "loss:0"], "loss:PCT");
}
