//! `keepalive set` on other processes' live connections, against the real
//! kernel, by each kind of target (`--pid`, `--fd`, `--port`, `--conn`, IPv6
//! and IPv4-mapped ends named as `ls` shows them, one socket held through
//! two descriptors): the owning process reads the new values back itself,
//! and watch sees probes at the new timing.
//!
//! Needs root: run through `cargo xtask test`.

use std::{
    io::Read as _,
    process::Stdio,
    time::{Duration, Instant},
};

use keepalive_tests::*;
use serde_json::{Value, json};

#[test]
fn pid_target_changes_every_connection_and_watch_sees_the_new_timing() {
    let ns = NetNs::new();
    let p = unique_port();
    let mut pair = Pair::loopback_in(&ns, p, &["--count", "2"]);
    let client = &mut pair.client;
    let watch = Watch::on_port(p, &[]);
    // From the root namespace: the target is a process, whatever its namespace.
    let pid = client.pid().to_string();
    let changed = ok_json(run_keepalive(&[
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
    ]));
    assert_eq!(changed.len(), 2, "both connections: {changed:#?}");
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
    let is_its_probe = |v: &Value| event(v) == "probe" && v["src"] == local;
    let probes: Vec<Value> = watch
        .collect_until(Duration::from_secs(5), {
            let mut n = 0;
            move |v: &Value| {
                n += usize::from(is_its_probe(v));
                n == 2
            }
        })
        .into_iter()
        .filter(is_its_probe)
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
    let ns = NetNs::new();
    let mut pair = Pair::loopback_in(&ns, unique_port(), &["--count", "2"]);
    let client = &mut pair.client;
    let (pid, fd) = (
        client.pid().to_string(),
        client.connections()[1]["fd"].to_string(),
    );
    let (code, _, stderr) = run_keepalive(&[
        "set",
        "--pid",
        &pid,
        "--fd",
        &fd,
        "--idle",
        "30",
        "--user-timeout",
        "5s",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let got = client.get();
    let changed = answer_for(&got, &client.connections()[1]["fd"]);
    let untouched = answer_for(&got, &client.connections()[0]["fd"]);
    assert!(keepalive_settings(changed).0);
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
    let ns = NetNs::new();
    let mut pair = Pair::loopback_in(&ns, unique_port(), &[]);
    let pid = pair.client.pid().to_string();
    let (code, stdout, stderr) = run_keepalive(&["set", "--pid", &pid, "--idle", "9", "--dry-run"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("would set"), "{stdout}");
    assert_eq!(pair.client.get()[0]["keepalive"], false);
}

#[test]
fn port_and_conn_targets_find_the_owners() {
    let ns = NetNs::new();
    let (p, other) = (unique_port(), unique_port());
    let (mut target, mut bystander) = (
        Pair::loopback_in(&ns, p, &[]),
        Pair::loopback_in(&ns, other, &[]),
    );
    // sock_diag sees the namespace it runs in, as `ss` does.
    let changed = ok_json(run_keepalive_in(
        &ns,
        &["set", "--port", &p.to_string(), "--idle", "7", "--json"],
    ));
    assert!(
        changed.iter().any(|c| c["pid"] == target.client.pid()),
        "the client is found: {changed:#?}"
    );
    let on_port = format!(":{p}");
    assert!(
        changed
            .iter()
            .all(|c| c["src"].as_str().unwrap().ends_with(&on_port)
                || c["dst"].as_str().unwrap().ends_with(&on_port)),
        "only connections on port {p}: {changed:#?}"
    );
    assert_eq!(target.client.get()[0]["idle_s"], 7);
    assert_eq!(
        bystander.client.get()[0]["keepalive"],
        false,
        "another port's process is untouched"
    );

    let conn = &bystander.client.connections()[0];
    let (local, remote) = (
        conn["local"].as_str().unwrap(),
        conn["remote"].as_str().unwrap(),
    );
    let by_conn = ["set", "--conn", local, remote, "--count", "5"];
    let (code, _, stderr) = run_keepalive_in(&ns, &by_conn);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(bystander.client.get()[0]["cnt"], 5);
    assert_usage_error_in(
        &ns,
        &["set", "--port", "9", "--idle", "5"],
        "no connection with port 9",
    );
}

#[test]
fn ipv6_and_mapped_connections_are_set_as_ls_shows_them() {
    let ns = NetNs::new();
    let p = unique_port();
    let mut server = Peer::spawn_in(&ns, &["listen", &format!("[::]:{p}"), "--v6only-off"]);
    let mut v6 = Peer::spawn_in(&ns, &["connect", &format!("[::1]:{p}")]);
    let _v4 = Peer::spawn_in(&ns, &["connect", &format!("127.0.0.1:{p}")]);
    server.wait_connections(2, Duration::from_secs(5));

    let rows = ok_json(run_keepalive_in(
        &ns,
        &["ls", "--json", "--port", &p.to_string()],
    ));
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let mapped = rows
        .iter()
        .find(|r| r["pid"] == server.pid() && r["src"] == format!("127.0.0.1:{p}"))
        .unwrap_or_else(|| panic!("the server's IPv4-mapped end shown as IPv4: {rows:#?}"));
    assert!(
        rows.iter()
            .any(|r| r["src"] == v6.connections()[0]["local"])
    );

    // The server's end of the IPv4 connection, named as ls shows it.
    let (src, dst) = (
        mapped["src"].as_str().unwrap(),
        mapped["dst"].as_str().unwrap(),
    );
    let by_conn = ["set", "--conn", src, dst, "--idle", "11", "--json"];
    let changed = ok_json(run_keepalive_in(&ns, &by_conn));
    assert_eq!(changed.len(), 1, "{changed:#?}");
    assert_eq!(changed[0]["pid"], server.pid());
    let got = server.get();
    assert_eq!(answer_for(&got, &mapped["fd"])["idle_s"], 11, "{got:?}");
    let other_fd = &rows
        .iter()
        .find(|r| r["pid"] == server.pid() && r["fd"] != mapped["fd"])
        .unwrap_or_else(|| panic!("the server's IPv6 end: {rows:#?}"))["fd"];
    assert_eq!(
        answer_for(&got, other_fd)["keepalive"],
        false,
        "the IPv6 one is untouched"
    );

    let v6_pid = v6.pid().to_string();
    let by_pid = ["set", "--pid", &v6_pid, "--interval", "3", "--count", "2"];
    let (code, _, stderr) = run_keepalive_in(&ns, &by_pid);
    assert_eq!(code, Some(0), "{stderr}");
    let got = v6.get();
    assert_eq!(
        pick(&got[0], &["keepalive", "intvl_s", "cnt"]),
        json!({"keepalive": true, "intvl_s": 3, "cnt": 2}),
        "{got:?}"
    );
}

#[test]
fn one_socket_held_by_two_descriptors_is_changed_once() {
    let ns = NetNs::new();
    let p = unique_port();
    let _server = Peer::spawn_in(&ns, &["listen", &format!("127.0.0.1:{p}")]);
    let holder = spawn_in(
        &ns,
        "python3",
        &[
            "-c",
            &format!(
                "import socket,os,time\n\
                 s=socket.create_connection(('127.0.0.1',{p}))\n\
                 os.dup(s.fileno())\n\
                 print('up', flush=True)\n\
                 time.sleep(60)"
            ),
        ],
    );
    let pid = holder.pid().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    while run_keepalive_in(&ns, &["ls", "--json", "--pid", &pid])
        .1
        .is_empty()
    {
        assert!(Instant::now() < deadline, "python3 never connected");
        std::thread::sleep(Duration::from_millis(100));
    }
    let changed = ok_json(run_keepalive_in(
        &ns,
        &["set", "--pid", &pid, "--idle", "13", "--json"],
    ));
    assert_eq!(changed.len(), 1, "one socket, one change: {changed:#?}");
    assert_eq!(changed[0]["after"]["idle_s"], 13);
    let rows = ok_json(run_keepalive_in(&ns, &["ls", "--json", "--pid", &pid]));
    assert_eq!(rows.len(), 1, "one socket, one row: {rows:#?}");
    assert_eq!(rows[0]["config"]["idle_s"], 13);
}

/// The race `--conn` must survive: the fd number found in /proc names
/// another socket by the time it is duplicated. strace holds keepalive's
/// pidfd_getfd for 3 s (after its pidfd_open of the holder, which the test
/// waits for), and meanwhile the holder makes that number name its other
/// connection: that connection must not be changed in the named one's place.
#[test]
fn a_descriptor_reused_between_the_scan_and_the_dup_is_skipped() {
    let ns = NetNs::new();
    let mut pair = Pair::loopback_in(&ns, unique_port(), &["--count", "2"]);
    let client = &mut pair.client;
    let (named, other) = (
        client.connections()[0].clone(),
        client.connections()[1].clone(),
    );
    let mut cmd = ns.command("strace");
    cmd.args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=pidfd_getfd"])
        .args(["-e", "inject=pidfd_getfd:delay_enter=3000000"])
        .arg(keepalive_bin())
        .args(["set", "--conn"])
        .args([
            named["local"].as_str().unwrap(),
            named["remote"].as_str().unwrap(),
        ])
        .args(["--idle", "7", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut strace = ChildGuard(cmd.spawn().expect("strace runs"));
    let keepalive = wait_for(Duration::from_secs(10), "keepalive under strace", || {
        std::fs::read_to_string(format!("/proc/{}/task/{0}/children", strace.pid()))
            .ok()?
            .split_whitespace()
            .next()?
            .parse::<u32>()
            .ok()
    });
    wait_for(
        Duration::from_secs(10),
        "keepalive's pidfd of the holder",
        || {
            let fds = std::fs::read_dir(format!("/proc/{keepalive}/fd")).ok()?;
            fds.flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .any(|link| link.to_string_lossy() == "anon_inode:[pidfd]")
                .then_some(())
        },
    );
    client.send_line(&format!("dup2 {} {}", other["fd"], named["fd"]));
    let done = client.next_json(Duration::from_secs(2));
    assert_eq!(done, Some(json!({"dup2": [other["fd"], named["fd"]]})));

    let status = strace.wait().expect("waiting for strace");
    let (mut stdout, mut stderr) = (String::new(), String::new());
    strace
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    strace
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "stdout {stdout:?} stderr {stderr:?}"
    );
    assert_eq!(stdout, "", "nothing changed, nothing reported as set");
    let first = stderr.lines().next().unwrap_or("");
    assert!(
        first.contains("changed hands") && first.contains(&format!("fd {}", named["fd"])),
        "one line naming the skipped descriptor: {stderr}"
    );
    let got = client.get();
    assert_eq!(
        answer_for(&got, &other["fd"])["keepalive"],
        false,
        "the socket now under the named fd is untouched: {got:?}"
    );
}

/// Polls `probe` every 20 ms until it gives a value; panics naming `what` after `timeout`.
fn wait_for<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "no {what} after {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
