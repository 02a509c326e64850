//! `keepalive set` on other processes' live connections, against the real
//! kernel: the owning process reads the new values back itself, and watch
//! sees probes at the new timing.
//!
//! Needs root: run through `cargo xtask test`.

use std::{process::Command, time::Duration};

use keepalive_tests::*;
use serde_json::Value;

#[test]
fn pid_target_changes_every_connection_and_watch_sees_the_new_timing() {
    require_root();
    let ns = NetNs::new();
    let p = unique_port();
    let _server = Peer::spawn_in(&ns, &["listen", &format!("127.0.0.1:{p}")]);
    let mut client = Peer::spawn_in(&ns, &["connect", &format!("127.0.0.1:{p}"), "--count", "2"]);
    let watch = Watch::spawn(&["--port", &p.to_string()]);
    let pid = client.pid().to_string();
    let (code, stdout, stderr) = run_keepalive(&[
        "set",
        "--pid",
        &pid,
        "--idle",
        "1",
        "--interval",
        "1",
        "--count",
        "3",
        "--json",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let changed: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(changed.len(), 2, "both connections: {stdout}");
    for c in &changed {
        assert_eq!(keepalive_settings(&c["after"]), (true, 1, 1, 3), "{c}");
        assert_eq!(c["before"]["keepalive"], false);
    }
    for got in client.get() {
        assert_eq!(
            keepalive_settings(&got),
            (true, 1, 1, 3),
            "the process reads the new values: {got}"
        );
    }
    let local = client.connections()[0]["local"].clone();
    let probes: Vec<Value> = watch
        .collect_until(Duration::from_secs(5), {
            let mut n = 0;
            move |v: &Value| {
                n += usize::from(v["event"] == "probe" && v["src"] == local);
                n == 2
            }
        })
        .into_iter()
        .filter(|v| v["event"] == "probe" && v["src"] == client.connections()[0]["local"])
        .collect();
    assert_eq!(
        probes.len(),
        2,
        "probes every second after the change: {probes:#?}"
    );
    assert_eq!(keepalive_settings(&probes[0]["config"]), (true, 1, 1, 3));
    assert_eq!(probes[0]["pid"], client.pid());
}

#[test]
fn fd_target_changes_only_that_socket() {
    require_root();
    let ns = NetNs::new();
    let p = unique_port();
    let _server = Peer::spawn_in(&ns, &["listen", &format!("127.0.0.1:{p}")]);
    let mut client = Peer::spawn_in(&ns, &["connect", &format!("127.0.0.1:{p}"), "--count", "2"]);
    let fd = client.connections()[1]["fd"].to_string();
    let (code, _, stderr) = run_keepalive(&[
        "set",
        "--pid",
        &client.pid().to_string(),
        "--fd",
        &fd,
        "--idle",
        "30",
        "--user-timeout",
        "5s",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let got = client.get();
    let by_fd = |fd: &Value| got.iter().find(|g| &g["fd"] == fd).unwrap().clone();
    let changed = by_fd(&client.connections()[1]["fd"]);
    let untouched = by_fd(&client.connections()[0]["fd"]);
    assert!(keepalive_settings(&changed).0);
    assert_eq!(changed["idle_s"], 30);
    assert_eq!(changed["user_timeout_ms"], 5000);
    assert_eq!(
        untouched["keepalive"], false,
        "the other socket is untouched: {untouched}"
    );
    assert_eq!(untouched["user_timeout_ms"], 0);
}

#[test]
fn dry_run_changes_nothing() {
    require_root();
    let ns = NetNs::new();
    let p = unique_port();
    let _server = Peer::spawn_in(&ns, &["listen", &format!("127.0.0.1:{p}")]);
    let mut client = Peer::spawn_in(&ns, &["connect", &format!("127.0.0.1:{p}")]);
    let (code, stdout, stderr) = run_keepalive(&[
        "set",
        "--pid",
        &client.pid().to_string(),
        "--idle",
        "9",
        "--dry-run",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("would set"), "{stdout}");
    assert_eq!(client.get()[0]["keepalive"], false);
}

#[test]
fn bad_targets_and_values_change_nothing() {
    require_root();
    let ns = NetNs::new();
    let p = unique_port();
    let listener = Peer::spawn_in(&ns, &["listen", &format!("127.0.0.1:{p}")]);
    let mut client = Peer::spawn_in(&ns, &["connect", &format!("127.0.0.1:{p}")]);
    let udp = ChildGuard(
        ns.command("python3")
            .args(["-c", "import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1',0)); time.sleep(60)"])
            .spawn()
            .expect("python3 holding a UDP socket"),
    );
    let idle = ChildGuard(Command::new("sleep").arg("60").spawn().unwrap());
    std::thread::sleep(Duration::from_millis(300));
    let (client_pid, listener_pid) = (client.pid().to_string(), listener.pid().to_string());
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
            vec!["set", "--pid", &client_pid, "--interval", "5 minutes"],
            "unknown unit",
        ),
        (vec!["set", "--pid", &client_pid], "no value to set"),
    ];
    for (args, expect) in cases {
        let (code, _, stderr) = run_keepalive(&args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        let first = stderr.lines().next().unwrap_or("");
        assert!(
            first.contains(expect),
            "{args:?}: expected {expect:?} on the first line of {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert_eq!(client.get()[0]["keepalive"], false, "nothing changed");
    let not_root = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(keepalive_bin())
        .args(["set", "--pid", &client_pid, "--idle", "5"])
        .output()
        .unwrap();
    assert_eq!(not_root.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&not_root.stderr).contains("needs root"));
    assert_eq!(client.get()[0]["keepalive"], false, "nothing changed");
}

#[test]
fn port_and_conn_targets_find_the_owners() {
    require_root();
    let ns = NetNs::new();
    let (p, other) = (unique_port(), unique_port());
    let _server = Peer::spawn_in(&ns, &["listen", &format!("127.0.0.1:{p}")]);
    let _other_server = Peer::spawn_in(&ns, &["listen", &format!("127.0.0.1:{other}")]);
    let mut target = Peer::spawn_in(&ns, &["connect", &format!("127.0.0.1:{p}")]);
    let mut bystander = Peer::spawn_in(&ns, &["connect", &format!("127.0.0.1:{other}")]);
    // sock_diag sees the namespace it runs in, as `ss` does.
    let out = ns
        .command(keepalive_bin())
        .args(["set", "--port", &p.to_string(), "--idle", "7", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let changed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        changed.iter().any(|c| c["pid"] == target.pid()),
        "the client is found: {changed:#?}"
    );
    assert!(
        changed
            .iter()
            .all(|c| c["src"].as_str().unwrap().ends_with(&format!(":{p}"))
                || c["dst"].as_str().unwrap().ends_with(&format!(":{p}")))
    );
    assert_eq!(target.get()[0]["idle_s"], 7);
    assert_eq!(
        bystander.get()[0]["keepalive"],
        false,
        "another port's process is untouched"
    );

    let conn = bystander.connections()[0].clone();
    let out = ns
        .command(keepalive_bin())
        .args([
            "set",
            "--conn",
            conn["local"].as_str().unwrap(),
            conn["remote"].as_str().unwrap(),
            "--count",
            "5",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(bystander.get()[0]["cnt"], 5);
    let missing = ns
        .command(keepalive_bin())
        .args(["set", "--port", "9", "--idle", "5"])
        .output()
        .unwrap();
    assert_eq!(
        missing.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}
