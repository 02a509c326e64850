//! When `keepalive set` cannot do all it was asked, against the real kernel:
//! bad targets and values change nothing, a connection that refuses one
//! option is rolled back while the others proceed, and a reader that goes
//! away stops no change.
//!
//! Needs root: run through `cargo xtask test`.

use std::{process::Command, time::Duration};

use keepalive_tests::*;
use serde_json::json;

/// The options a change touches, as `tcp-peer get` reads them back.
const CHANGED_OPTIONS: &[&str] = &["keepalive", "idle_s", "cnt", "user_timeout_ms"];

#[test]
fn bad_targets_and_values_change_nothing() {
    let ns = NetNs::new();
    let mut pair = Pair::loopback_in(&ns, unique_port(), &[]);
    let udp = spawn_in(
        &ns,
        "python3",
        &[
            "-c",
            "import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1',0)); time.sleep(60)",
        ],
    );
    let idle = ChildGuard(Command::new("sleep").arg("60").spawn().unwrap());
    std::thread::sleep(Duration::from_millis(300));
    let (client_pid, listener_pid) = (pair.client.pid(), pair.server.pid());
    let (client_pid, listener_pid) = (client_pid.to_string(), listener_pid.to_string());
    let (udp_pid, idle_pid) = (udp.pid().to_string(), idle.pid().to_string());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["set", "--pid", "4194000", "--idle", "5"],
            "no such process",
        ),
        (
            vec!["set", "--pid", &idle_pid, "--idle", "5"],
            "no connected TCP socket",
        ),
        (
            vec!["set", "--pid", &client_pid, "--fd", "0", "--idle", "5"],
            "not a socket",
        ),
        (
            vec!["set", "--pid", &client_pid, "--fd", "77", "--idle", "5"],
            "no fd 77",
        ),
        (
            vec!["set", "--pid", &udp_pid, "--fd", "3", "--idle", "5"],
            "not a TCP socket",
        ),
        (
            vec!["set", "--pid", &listener_pid, "--fd", "3", "--idle", "5"],
            "listening",
        ),
        (
            vec!["set", "--pid", &client_pid, "--count", "128"],
            "1 to 127",
        ),
        (
            vec!["set", "--pid", &client_pid, "--idle", "40000"],
            "32767",
        ),
        (
            vec!["set", "--pid", &client_pid, "--interval", "5 parsecs"],
            "unknown time unit",
        ),
        (vec!["set", "--pid", &client_pid], "no value to set"),
    ];
    for (args, expect) in cases {
        assert_usage_error(&args, expect);
    }
    assert_eq!(pair.client.get()[0]["keepalive"], false, "nothing changed");
    let (code, _, stderr) = run_keepalive_as_nobody(&["set", "--pid", &client_pid, "--idle", "5"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("needs root"), "{stderr}");
    assert_eq!(pair.client.get()[0]["keepalive"], false, "nothing changed");
}

#[test]
fn a_connection_that_refuses_a_change_is_rolled_back_and_the_rest_proceed() {
    require_root();
    let Some(shim) = FailingKeepcnt::build() else {
        eprintln!("skipped: no C compiler (cc) to build the failing-setsockopt shim");
        return;
    };
    let ns = NetNs::new();
    let mut pair = Pair::loopback_in(&ns, unique_port(), &["--count", "2"]);
    let client = &mut pair.client;
    let refusing = client.connections()[0].clone();
    let refusing_port: u16 = client
        .local(0)
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("a port in {refusing}"));
    let pid = client.pid().to_string();
    let before = client.get();
    let (code, stdout, stderr) = shim.run_keepalive_in(
        &ns,
        refusing_port,
        &[
            "set",
            "--pid",
            &pid,
            "--idle",
            "40",
            "--count",
            "5",
            "--user-timeout",
            "3s",
            "--json",
        ],
    );
    drop(shim);
    assert_eq!(code, Some(1), "a connection failed: {stderr}");
    let report = json_lines(&stdout);
    assert_eq!(report.len(), 2, "both connections reported: {report:#?}");
    let failed = report
        .iter()
        .find(|r| r["src"] == refusing["local"])
        .unwrap();
    let error = failed["error"].as_str().expect("an error for it");
    assert!(error.contains("TCP_KEEPCNT"), "names the option: {error}");
    assert!(error.ends_with("old values restored"), "{error}");
    assert_eq!(failed["after"], failed["before"], "{failed}");
    let changed = report
        .iter()
        .find(|r| r["src"] != refusing["local"])
        .unwrap();
    assert!(changed.get("error").is_none(), "{changed}");

    let got = client.get();
    let untouched = answer_for(&got, &refusing["fd"]);
    let as_it_was = answer_for(&before, &refusing["fd"]);
    assert_eq!(as_it_was["keepalive"], false, "{as_it_was}");
    assert_eq!(
        pick(untouched, CHANGED_OPTIONS),
        pick(as_it_was, CHANGED_OPTIONS),
        "no option left half-changed: {untouched}"
    );
    let other = answer_for(&got, &client.connections()[1]["fd"]);
    assert_eq!(
        pick(other, CHANGED_OPTIONS),
        json!({"keepalive": true, "idle_s": 40, "cnt": 5, "user_timeout_ms": 3000}),
        "{other}"
    );
}

#[test]
fn set_with_a_reader_that_goes_away_changes_every_connection() {
    let ns = NetNs::new();
    let mut pair = Pair::loopback_in(&ns, unique_port(), &["--count", "3"]);
    let pid = pair.client.pid().to_string();
    let (code, stderr) = run_keepalive_in_unread(&ns, &["set", "--pid", &pid, "--count", "7"]);
    assert_eq!(code, Some(0), "{stderr}");
    let got = pair.client.get();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got.iter().all(|g| g["cnt"] == 7),
        "every connection changed although nobody read the report: {got:?}"
    );
}
