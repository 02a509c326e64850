//! `keepalive ls` against the real kernel: it must agree with `ss -tno` on
//! the connections and keepalive timers, and with the processes' own
//! getsockopt on the settings. Runs inside the test's namespace, as a user
//! would with `ip netns exec`.
//!
//! Needs root: run through `cargo xtask test`.

use std::time::Duration;

use keepalive_tests::*;
use serde_json::Value;

#[test]
fn ls_agrees_with_ss_and_getsockopt() {
    require_root();
    let ns = NetNs::new();
    let p = 7400u16;
    let mut server = Peer::spawn_in(
        &ns,
        &["listen", &format!("127.0.0.1:{p}"), "--keepalive", "5,2,4"],
    );
    let mut client = Peer::spawn_in(
        &ns,
        &[
            "connect",
            &format!("127.0.0.1:{p}"),
            "--keepalive",
            "2,1,3",
            "--user-timeout",
            "9000",
            "--count",
            "2",
        ],
    );
    server.wait_connections(2, Duration::from_secs(5));
    let out = ns
        .command(keepalive_bin())
        .args(["ls", "--json", "--port", &p.to_string()])
        .output()
        .expect("keepalive ls");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ss = ns.run(&["ss", "-tnoH", "state", "established"]);
    let ss_lines: Vec<&str> = ss
        .lines()
        .filter(|l| l.contains(&format!(":{p}")))
        .collect();
    assert_eq!(rows.len(), 4, "two connections, both ends: {rows:#?}");
    assert_eq!(ss_lines.len(), rows.len(), "same connections as ss: {ss}");
    for row in &rows {
        let (src, dst) = (row["src"].as_str().unwrap(), row["dst"].as_str().unwrap());
        let line = ss_lines
            .iter()
            .find(|l| l.contains(&format!("{src} ")) && l.contains(dst))
            .unwrap_or_else(|| panic!("{src} > {dst} not in ss: {ss}"));
        assert!(
            line.contains("timer:(keepalive"),
            "ss shows a keepalive timer: {line}"
        );
        assert_eq!(row["timer"]["kind"], "keepalive", "{row}");
        assert_eq!(row["state"], "ESTAB");
    }
    for got in client.get() {
        let row = rows
            .iter()
            .find(|r| r["fd"] == got["fd"] && r["pid"] == client.pid())
            .expect("client row");
        for key in ["keepalive", "idle_s", "intvl_s", "cnt", "user_timeout_ms"] {
            assert_eq!(
                row["config"][key], got[key],
                "{key}: ls {row} vs getsockopt {got}"
            );
        }
        assert_eq!(row["comm"], "tcp-peer");
    }
    for got in server.get() {
        let row = rows
            .iter()
            .find(|r| r["fd"] == got["fd"] && r["pid"] == server.pid())
            .expect("server row");
        assert_eq!(
            row["config"]["idle_s"], got["idle_s"],
            "inherited from the listener"
        );
        assert_eq!(row["config"]["idle_s"], 5);
    }
    let bad = ns
        .command(keepalive_bin())
        .args(["ls", "--state", "bogus"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
