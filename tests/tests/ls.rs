//! `keepalive ls` against the real kernel: it must agree with `ss -tno` on
//! the connections and keepalive timers (also while probes go unanswered),
//! and with the processes' own getsockopt on the settings; its filters,
//! states and columns; and a reader that closes the pipe early. Runs inside
//! the test's namespace, as a user would with `ip netns exec`.
//!
//! Needs root: run through `cargo xtask test`.

use std::time::{Duration, Instant};

use keepalive_tests::*;
use serde_json::{Value, json};

/// The row `keepalive ls` shows for descriptor `fd` of process `pid`.
fn row_of<'a>(rows: &'a [Value], pid: u32, fd: &Value) -> &'a Value {
    rows.iter()
        .find(|r| &r["fd"] == fd && r["pid"] == pid)
        .unwrap_or_else(|| panic!("no row for fd {fd} of pid {pid}: {rows:#?}"))
}

#[test]
fn ss_timer_text_parses() {
    assert_eq!(ss_ms("164ms"), 164);
    assert_eq!(ss_ms("1.124ms"), 1124);
    assert_eq!(ss_ms("12sec"), 12_000);
    assert_eq!(ss_ms("1min5.123ms"), 65_123);
    assert_eq!(ss_ms("117min"), 7_020_000);
}

#[test]
fn ls_agrees_with_ss_and_getsockopt() {
    let ns = NetNs::new();
    let p = unique_port();
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
    let rows = ok_json(run_keepalive_in(
        &ns,
        &["ls", "--json", "--port", &p.to_string()],
    ));
    let ss = ss_established(&ns);
    let ss_lines: Vec<&str> = ss
        .lines()
        .filter(|l| l.contains(&format!(":{p}")))
        .collect();
    assert_eq!(rows.len(), 4, "two connections, both ends: {rows:#?}");
    assert_eq!(ss_lines.len(), rows.len(), "same connections as ss: {ss}");
    for row in &rows {
        let (src, dst) = (row["src"].as_str().unwrap(), row["dst"].as_str().unwrap());
        let line =
            ss_line(&ss, src, dst).unwrap_or_else(|| panic!("{src} > {dst} not in ss: {ss}"));
        assert!(
            line.contains("timer:(keepalive"),
            "ss shows a keepalive timer: {line}"
        );
        assert_eq!(row["timer"]["kind"], "keepalive", "{row}");
        assert_eq!(row["state"], "ESTAB");
    }
    for got in client.get() {
        let row = row_of(&rows, client.pid(), &got["fd"]);
        for key in ["keepalive", "idle_s", "intvl_s", "cnt", "user_timeout_ms"] {
            assert_eq!(
                row["config"][key], got[key],
                "{key}: ls {row} vs getsockopt {got}"
            );
        }
        assert_eq!(row["comm"], "tcp-peer");
    }
    for got in server.get() {
        let row = row_of(&rows, server.pid(), &got["fd"]);
        assert_eq!(
            row["config"]["idle_s"], got["idle_s"],
            "inherited from the listener"
        );
        assert_eq!(row["config"]["idle_s"], 5);
    }
    assert_usage_error_in(&ns, &["ls", "--state", "bogus"], "not a TCP state");
}

/// SO_KEEPALIVE off: no idle, interval or count is in force, so none is
/// shown as if it were; `--json` keeps `config` to what is in force and
/// gives the values SO_KEEPALIVE on would start with (this namespace's
/// sysctls) under `if_enabled`.
#[test]
fn keepalive_off_shows_no_settings_in_force() {
    let ns = NetNs::new();
    ns.sysctl("net.ipv4.tcp_keepalive_time", "600");
    let p = unique_port();
    let mut pair = Pair::loopback_in(&ns, p, &["--user-timeout", "4000"]);
    let got = &pair.client.get()[0];
    assert_eq!(got["keepalive"], false, "{got}");
    let port = p.to_string();
    let rows = ok_json(run_keepalive_in(&ns, &["ls", "--json", "--port", &port]));
    let row = row_of(&rows, pair.client.pid(), &got["fd"]);
    assert_eq!(
        row["config"],
        json!({"keepalive": false, "user_timeout_ms": 4000}),
        "{row}"
    );
    assert_eq!(
        row["if_enabled"],
        json!({"idle_s": 600, "intvl_s": got["intvl_s"], "cnt": got["cnt"]}),
        "{row}"
    );

    let (code, text, stderr) = run_keepalive_in(&ns, &["ls", "--port", &port]);
    assert_eq!(code, Some(0), "{stderr}");
    let holder = format!("tcp-peer/{}", pair.client.pid());
    let line = text
        .lines()
        .find(|l| l.contains(&format!("{} >", pair.client.local(0))))
        .unwrap_or_else(|| panic!("no line for the client: {text}"));
    let columns: Vec<&str> = line.split_whitespace().collect();
    let after_holder = columns.iter().position(|c| *c == holder).unwrap() + 1;
    assert_eq!(
        columns[after_holder..after_holder + 5],
        ["off", "-", "-", "-", "4000ms"],
        "Keepalive Idle Intvl Cnt UserTimeout: {line}"
    );
}

#[test]
fn ls_agrees_with_ss_on_unanswered_probes() {
    let ns = NetNs::new();
    let p = unique_port();
    let pair = Pair::loopback_in(&ns, p, &["--keepalive", "1,1,20"]);
    let (local, remote) = (pair.client.local(0), format!("127.0.0.1:{p}"));
    // The server's answers never leave: the client's probes go unanswered.
    let _blackhole = Nft::drop_output_from_port(&ns, p);
    let client_pid = pair.client.pid().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ss_before = ss_keepalive_timer(&ns, &local, &remote);
        let rows = ok_json(run_keepalive_in(
            &ns,
            &["ls", "--json", "--pid", &client_pid],
        ));
        let ss_after = ss_keepalive_timer(&ns, &local, &remote);
        assert_eq!(rows.len(), 1, "only the client's connection: {rows:#?}");
        let timer = &rows[0]["timer"];
        assert_eq!(timer["kind"], "keepalive", "{}", rows[0]);
        let probes = timer["count"].as_u64().unwrap();
        let expires = timer["expires_ms"].as_u64().unwrap();
        // A probe may leave between the three reads: only a stable
        // reading is compared.
        if let (Some((_, before)), Some((ss_expires, after))) = (ss_before, ss_after)
            && before == after
            && probes == after
            && probes >= 2
        {
            assert!(
                expires.abs_diff(ss_expires) <= 250,
                "countdown: ls {expires} ms, ss {ss_expires} ms"
            );
            assert_eq!(rows[0]["config"]["cnt"], 20);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no stable reading with 2+ probes out: ls {timer}, ss {ss_before:?} / {ss_after:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Human mode: the same probes out, columns lined up.
    let (code, stdout, stderr) = run_keepalive_in(&ns, &["ls", "--port", &p.to_string()]);
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "header and both ends: {stdout}");
    let peer_column = lines[0].find("Peer").expect("a Peer column");
    for line in &lines[1..] {
        assert_eq!(
            line.find(" > "),
            Some(peer_column - 3),
            "aligned:\n{stdout}"
        );
    }
    let client_line = lines
        .iter()
        .find(|l| l.contains(&format!("{local} >")))
        .unwrap_or_else(|| panic!("client row in\n{stdout}"));
    assert!(client_line.contains("keepalive "), "{client_line}");
    assert!(client_line.contains(" probes "), "{client_line}");
}

#[test]
fn ls_filters_and_states() {
    let ns = NetNs::new();
    let (p, other) = (unique_port(), unique_port());
    let Pair { server, client } = Pair::loopback_in(&ns, p, &[]);
    let _bystanders = Pair::loopback_in(&ns, other, &[]);
    let ls = |args: &[&str]| {
        let mut full = vec!["ls", "--json"];
        full.extend_from_slice(args);
        ok_json(run_keepalive_in(&ns, &full))
    };

    assert_eq!(ls(&[]).len(), 4, "two connections, both ends");
    let on_port = ls(&["--port", &p.to_string()]);
    assert_eq!(on_port.len(), 2, "{on_port:#?}");
    let rows = ls(&["--pid", &client.pid().to_string()]);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["src"], client.local(0).as_str());
    assert_eq!(rows[0]["comm"], "tcp-peer");
    let listeners = ls(&["--state", "listen"]);
    assert_eq!(listeners.len(), 2, "{listeners:#?}");
    assert!(
        listeners
            .iter()
            .any(|l| l["pid"] == server.pid() && l["state"] == "LISTEN")
    );
    let (_, stdout, _) = run_keepalive_in(&ns, &["ls", "--state", "listen"]);
    assert!(stdout.contains("0.0.0.0:*"), "ss-style peer: {stdout}");
    assert_eq!(
        ls(&["--src", "127.0.0.0/8"]).len(),
        4,
        "every socket is on 127.0.0.1"
    );
    let (code, stdout, stderr) = run_keepalive_in(&ns, &["ls", "--json", "--dst", "10.0.0.0/8"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let (code, stdout, _) = run_keepalive_in(&ns, &["ls", "--port", "9"]);
    assert_eq!(code, Some(0));
    assert_eq!(stdout.lines().count(), 1, "header only: {stdout}");
    for (args, expect) in [
        (["ls", "--state", "bogus"], "not a TCP state"),
        (["ls", "--pid", "4194000"], "no such process"),
        (["ls", "--port", "70000"], "70000"),
        (["ls", "--dst", "10.0.0.0/40"], "prefix length"),
    ] {
        assert_usage_error_in(&ns, &args, expect);
    }
    // Without root the table is still there; other users' settings are not.
    let rows = ok_json(run_keepalive_as_nobody_in(
        &ns,
        &["ls", "--json", "--port", &p.to_string()],
    ));
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.get("config").is_none()), "{rows:#?}");
}

#[test]
fn ls_with_a_reader_that_goes_away_breaks_nothing() {
    let ns = NetNs::new();
    let _pair = Pair::loopback_in(&ns, unique_port(), &["--count", "3"]);
    let (code, stderr) = run_keepalive_in_unread(&ns, &["ls"]);
    assert_eq!(code, Some(0), "{stderr}");
}
