//! `set` and `ls` cases beyond tests/set.rs and tests/ls.rs, against the real
//! kernel, each in its own namespace: `ls` against `ss -tno` on a prober
//! whose probes go unanswered (countdown and probes out), `ls` filters and
//! columns, IPv6 and IPv4-mapped connections, one socket held through two
//! descriptors, and a reader that closes the pipe early.
//!
//! Needs root: run through `cargo xtask test`.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use keepalive_tests::*;
use serde_json::Value;

/// `ss -o` timer text in milliseconds: `164ms`, `1.124ms` (1 s 124 ms),
/// `12sec`, `1min5.123ms`, `117min` (iproute2's print_ms_timer).
fn ss_ms(text: &str) -> u64 {
    let mut rest = text;
    let mut total = 0;
    let number = |s: &str| {
        s.parse::<u64>()
            .unwrap_or_else(|_| panic!("ss timer {text:?}"))
    };
    if let Some((m, r)) = rest.split_once("min") {
        total += number(m) * 60_000;
        rest = r;
    }
    if let Some((s, r)) = rest.split_once("sec") {
        total += number(s) * 1000;
        rest = r;
    } else if let Some((s, r)) = rest.split_once('.') {
        total += number(s) * 1000;
        rest = r;
    }
    if let Some(ms) = rest.strip_suffix("ms") {
        total += number(ms);
    }
    total
}

/// `(expires_ms, probes out)` of the keepalive timer `ss -tnoH` shows for
/// `local > remote`.
fn ss_keepalive_timer(ns: &NetNs, local: &str, remote: &str) -> Option<(u64, u64)> {
    let ss = ns.run(&["ss", "-tnoH", "state", "established"]);
    let line = ss
        .lines()
        .find(|l| l.contains(&format!("{local} ")) && l.contains(remote))?;
    let timer = line.split("timer:(keepalive,").nth(1)?.split(')').next()?;
    let (expires, probes) = timer.split_once(',')?;
    Some((ss_ms(expires), probes.parse().ok()?))
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
fn ls_agrees_with_ss_on_unanswered_probes() {
    require_root();
    let ns = NetNs::new();
    let p = unique_port();
    let _server = Peer::spawn_in(&ns, &["listen", &format!("127.0.0.1:{p}")]);
    let client = Peer::spawn_in(
        &ns,
        &[
            "connect",
            &format!("127.0.0.1:{p}"),
            "--keepalive",
            "1,1,20",
        ],
    );
    let (local, remote) = (
        client.connections()[0]["local"]
            .as_str()
            .unwrap()
            .to_owned(),
        format!("127.0.0.1:{p}"),
    );
    // The server's answers never leave: the client's probes go unanswered.
    let _blackhole = Nft::drop_output_from_port(&ns, p);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ss_before = ss_keepalive_timer(&ns, &local, &remote);
        let (code, stdout, stderr) =
            run_keepalive_in(&ns, &["ls", "--json", "--pid", &client.pid().to_string()]);
        let ss_after = ss_keepalive_timer(&ns, &local, &remote);
        assert_eq!(code, Some(0), "{stderr}");
        let rows = json_lines(&stdout);
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
    let (code, stdout, _) = run_keepalive_in(&ns, &["ls", "--port", &p.to_string()]);
    assert_eq!(code, Some(0));
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
    require_root();
    let ns = NetNs::new();
    let (p, other) = (unique_port(), unique_port());
    let server = Peer::spawn_in(&ns, &["listen", &format!("127.0.0.1:{p}")]);
    let _other_server = Peer::spawn_in(&ns, &["listen", &format!("127.0.0.1:{other}")]);
    let client = Peer::spawn_in(&ns, &["connect", &format!("127.0.0.1:{p}")]);
    let _bystander = Peer::spawn_in(&ns, &["connect", &format!("127.0.0.1:{other}")]);
    let local = client.connections()[0]["local"]
        .as_str()
        .unwrap()
        .to_owned();

    let (_, stdout, _) = run_keepalive_in(&ns, &["ls", "--json"]);
    assert_eq!(json_lines(&stdout).len(), 4, "two connections, both ends");
    let (_, stdout, _) = run_keepalive_in(&ns, &["ls", "--json", "--port", &p.to_string()]);
    assert_eq!(json_lines(&stdout).len(), 2, "{stdout}");
    let (_, stdout, _) =
        run_keepalive_in(&ns, &["ls", "--json", "--pid", &client.pid().to_string()]);
    let rows = json_lines(&stdout);
    assert_eq!(rows.len(), 1, "{stdout}");
    assert_eq!(rows[0]["src"], local.as_str());
    assert_eq!(rows[0]["comm"], "tcp-peer");
    let (_, stdout, _) = run_keepalive_in(&ns, &["ls", "--json", "--state", "listen"]);
    let listeners = json_lines(&stdout);
    assert_eq!(listeners.len(), 2, "{stdout}");
    assert!(
        listeners
            .iter()
            .any(|l| l["pid"] == server.pid() && l["state"] == "LISTEN")
    );
    let (_, stdout, _) = run_keepalive_in(&ns, &["ls", "--state", "listen"]);
    assert!(stdout.contains("0.0.0.0:*"), "ss-style peer: {stdout}");
    let (_, stdout, _) = run_keepalive_in(&ns, &["ls", "--json", "--src", "127.0.0.0/8"]);
    assert_eq!(json_lines(&stdout).len(), 4, "every socket is on 127.0.0.1");
    let (_, stdout, _) = run_keepalive_in(&ns, &["ls", "--json", "--dst", "10.0.0.0/8"]);
    assert!(stdout.is_empty(), "{stdout}");
    let (code, stdout, _) = run_keepalive_in(&ns, &["ls", "--port", "9"]);
    assert_eq!(code, Some(0));
    assert_eq!(stdout.lines().count(), 1, "header only: {stdout}");
    for (args, expect) in [
        (vec!["ls", "--state", "bogus"], "not a TCP state"),
        (vec!["ls", "--pid", "4194000"], "no such process"),
        (vec!["ls", "--port", "70000"], "70000"),
        (vec!["ls", "--dst", "10.0.0.0/40"], "prefix length"),
    ] {
        let (code, _, stderr) = run_keepalive_in(&ns, &args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        // One line saying what is wrong (clap adds a hint about --help).
        let first = stderr.lines().next().unwrap_or("");
        assert!(first.contains(expect), "{args:?}: {stderr}");
    }
    // Without root the table is still there; other users' settings are not.
    let out = ns
        .command("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(keepalive_bin())
        .args(["ls", "--json", "--port", &p.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.get("config").is_none()), "{rows:#?}");
}

#[test]
fn ipv6_and_mapped_connections_are_set_as_ls_shows_them() {
    require_root();
    let ns = NetNs::new();
    let p = unique_port();
    let mut server = Peer::spawn_in(&ns, &["listen", &format!("[::]:{p}"), "--v6only-off"]);
    let mut v6 = Peer::spawn_in(&ns, &["connect", &format!("[::1]:{p}")]);
    let _v4 = Peer::spawn_in(&ns, &["connect", &format!("127.0.0.1:{p}")]);
    server.wait_connections(2, Duration::from_secs(5));

    let (code, stdout, stderr) = run_keepalive_in(&ns, &["ls", "--json", "--port", &p.to_string()]);
    assert_eq!(code, Some(0), "{stderr}");
    let rows = json_lines(&stdout);
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
    let (code, stdout, stderr) = run_keepalive_in(
        &ns,
        &[
            "set",
            "--conn",
            mapped["src"].as_str().unwrap(),
            mapped["dst"].as_str().unwrap(),
            "--idle",
            "11",
            "--json",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let changed = json_lines(&stdout);
    assert_eq!(changed.len(), 1, "{stdout}");
    assert_eq!(changed[0]["pid"], server.pid());
    let got = server.get();
    let by_fd = |fd: &Value| got.iter().find(|g| &g["fd"] == fd).unwrap().clone();
    assert_eq!(by_fd(&mapped["fd"])["idle_s"], 11, "{got:?}");
    let other_fd = rows
        .iter()
        .find(|r| r["pid"] == server.pid() && r["fd"] != mapped["fd"])
        .unwrap()["fd"]
        .clone();
    assert_eq!(
        by_fd(&other_fd)["keepalive"],
        false,
        "the IPv6 one is untouched"
    );

    let (code, _, stderr) = run_keepalive_in(
        &ns,
        &[
            "set",
            "--pid",
            &v6.pid().to_string(),
            "--interval",
            "3",
            "--count",
            "2",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let got = v6.get();
    assert_eq!(
        (&got[0]["keepalive"], &got[0]["intvl_s"], &got[0]["cnt"]),
        (&Value::Bool(true), &Value::from(3), &Value::from(2)),
        "{got:?}"
    );
}

#[test]
fn one_socket_held_by_two_descriptors_is_changed_once() {
    require_root();
    let ns = NetNs::new();
    let p = unique_port();
    let _server = Peer::spawn_in(&ns, &["listen", &format!("127.0.0.1:{p}")]);
    let holder = ChildGuard(
        ns.command("python3")
            .args([
                "-c",
                &format!(
                    "import socket,os,time\n\
                     s=socket.create_connection(('127.0.0.1',{p}))\n\
                     os.dup(s.fileno())\n\
                     print('up', flush=True)\n\
                     time.sleep(60)"
                ),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 holding a socket twice"),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while run_keepalive_in(&ns, &["ls", "--json", "--pid", &holder.pid().to_string()])
        .1
        .is_empty()
    {
        assert!(Instant::now() < deadline, "python3 never connected");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, stdout, stderr) = run_keepalive_in(
        &ns,
        &[
            "set",
            "--pid",
            &holder.pid().to_string(),
            "--idle",
            "13",
            "--json",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let changed = json_lines(&stdout);
    assert_eq!(changed.len(), 1, "one socket, one change: {stdout}");
    assert_eq!(changed[0]["after"]["idle_s"], 13);
    let (_, stdout, _) =
        run_keepalive_in(&ns, &["ls", "--json", "--pid", &holder.pid().to_string()]);
    assert_eq!(json_lines(&stdout)[0]["config"]["idle_s"], 13);
}

#[test]
fn a_reader_that_goes_away_breaks_nothing() {
    require_root();
    let ns = NetNs::new();
    let p = unique_port();
    let _server = Peer::spawn_in(&ns, &["listen", &format!("127.0.0.1:{p}")]);
    let mut client = Peer::spawn_in(&ns, &["connect", &format!("127.0.0.1:{p}"), "--count", "3"]);
    let closed_stdout = |args: &[&str]| {
        let mut child = ns
            .command(keepalive_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run keepalive");
        // Close the reading end before the command has written anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = closed_stdout(&["ls"]);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) =
        closed_stdout(&["set", "--pid", &client.pid().to_string(), "--count", "7"]);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        client.get().iter().all(|g| g["cnt"] == 7),
        "every connection changed although nobody read the report"
    );
}

/// An LD_PRELOAD shim making `setsockopt(TCP_KEEPCNT)` fail with EPERM on
/// sockets whose local or remote port is `$KA_FAIL_PORT`, as a security
/// module or a cgroup/setsockopt program could. None without a C compiler.
fn failing_keepcnt_shim() -> Option<std::path::PathBuf> {
    const SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
static int port_of(int fd, int peer) {
    struct sockaddr_storage ss; socklen_t len = sizeof ss;
    if ((peer ? getpeername : getsockname)(fd, (struct sockaddr *)&ss, &len)) return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}
int setsockopt(int fd, int level, int name, const void *val, socklen_t len) {
    static int (*real)(int, int, int, const void *, socklen_t);
    if (!real) real = dlsym(RTLD_NEXT, "setsockopt");
    const char *fail = getenv("KA_FAIL_PORT");
    if (fail && level == IPPROTO_TCP && name == TCP_KEEPCNT) {
        int port = atoi(fail);
        if (port_of(fd, 0) == port || port_of(fd, 1) == port) { errno = EPERM; return -1; }
    }
    return real(fd, level, name, val, len);
}
"#;
    let dir = std::env::temp_dir().join(unique_name("ka-shim"));
    std::fs::create_dir_all(&dir).ok()?;
    let (source, shim) = (dir.join("shim.c"), dir.join("shim.so"));
    std::fs::write(&source, SHIM).ok()?;
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&shim)
        .arg(&source)
        .arg("-ldl")
        .status();
    built.is_ok_and(|s| s.success()).then_some(shim)
}

#[test]
fn a_connection_that_refuses_a_change_is_rolled_back_and_the_rest_proceed() {
    require_root();
    let Some(shim) = failing_keepcnt_shim() else {
        eprintln!("skipped: no C compiler (cc) to build the failing-setsockopt shim");
        return;
    };
    let ns = NetNs::new();
    let p = unique_port();
    let _server = Peer::spawn_in(&ns, &["listen", &format!("127.0.0.1:{p}")]);
    let mut client = Peer::spawn_in(&ns, &["connect", &format!("127.0.0.1:{p}"), "--count", "2"]);
    let refusing = client.connections()[0].clone();
    let refusing_port = refusing["local"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let out = ns
        .command(keepalive_bin())
        .args([
            "set",
            "--pid",
            &client.pid().to_string(),
            "--idle",
            "40",
            "--count",
            "5",
            "--user-timeout",
            "3s",
            "--json",
        ])
        .env("LD_PRELOAD", &shim)
        .env("KA_FAIL_PORT", &refusing_port)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(shim.parent().unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a connection failed: {stderr}");
    let report = json_lines(&String::from_utf8_lossy(&out.stdout));
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
    let by_fd = |fd: &Value| got.iter().find(|g| &g["fd"] == fd).unwrap().clone();
    let untouched = by_fd(&refusing["fd"]);
    assert_eq!(
        (
            &untouched["keepalive"],
            &untouched["idle_s"],
            &untouched["cnt"],
            &untouched["user_timeout_ms"]
        ),
        (
            &Value::Bool(false),
            &Value::from(7200),
            &Value::from(9),
            &Value::from(0)
        ),
        "no option left half-changed: {untouched}"
    );
    let other = by_fd(&client.connections()[1]["fd"]);
    assert_eq!(
        (
            &other["keepalive"],
            &other["idle_s"],
            &other["cnt"],
            &other["user_timeout_ms"]
        ),
        (
            &Value::Bool(true),
            &Value::from(40),
            &Value::from(5),
            &Value::from(3000)
        ),
        "{other}"
    );
}
