//! Which connection, and whose: two namespaces holding connections with the
//! same addresses and ports, and a pre-forking server that hands each
//! connection to a child. Each line must name the right namespace,
//! settings and process.
//!
//! Needs root: run through `cargo xtask test`.

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader},
    os::unix::fs::MetadataExt as _,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use keepalive_tests::*;
use serde_json::Value;

/// The namespace's inode, as the kernel reports it.
fn netns_ino(ns: &NetNs) -> u64 {
    std::fs::metadata(format!("/run/netns/{}", ns.name()))
        .expect("ip netns keeps the namespace under /run/netns")
        .ino()
}

fn ls_in_netns(netns: &str, port: u16) -> Vec<Value> {
    ok_json(run_keepalive(&[
        "ls",
        "--json",
        "-N",
        netns,
        "--port",
        &port.to_string(),
    ]))
}

#[test]
fn identical_connections_in_two_namespaces_are_told_apart() {
    let (blue, green) = (NetNs::new(), NetNs::new());
    let port = unique_port();
    let client_port = unique_port();
    let watch = Watch::on_port(port, &[]);
    let local_port = client_port.to_string();
    // The same 127.0.0.1:client_port > 127.0.0.1:port in both namespaces,
    // with different keepalive settings.
    let mut dead = Pair::loopback_in(
        &blue,
        port,
        &["--keepalive", "1,1,3", "--local-port", &local_port],
    );
    let healthy = Pair::loopback_in(
        &green,
        port,
        &["--keepalive", "2,1,4", "--local-port", &local_port],
    );
    assert_eq!(dead.client.local(0), healthy.client.local(0), "same tuple");
    let (blue_ino, green_ino) = (netns_ino(&blue), netns_ino(&green));
    let _blackhole = Nft::drop_output_from_port(&blue, port);
    dead.client.send_line("recv");
    let client_end = format!("127.0.0.1:{client_port}");
    watch
        .next_matching(Duration::from_secs(12), |v| {
            event(v) == "timeout" && v["src"] == client_end.as_str()
        })
        .expect("blue's connection dies");
    // Green goes on probing meanwhile; a second timeout would show by now.
    std::thread::sleep(Duration::from_secs(3));
    let events: Vec<Value> = watch
        .events_so_far()
        .into_iter()
        .filter(|v| v["src"] == client_end.as_str())
        .collect();
    let timeouts: Vec<&Value> = events.iter().filter(|v| event(v) == "timeout").collect();
    assert_eq!(timeouts.len(), 1, "exactly one death: {events:#?}");
    let timeout = timeouts[0];
    assert_eq!(timeout["netns"], blue_ino, "{timeout}");
    assert_eq!(timeout["reason"], "keepalive");
    assert_eq!(keepalive_settings(&timeout["config"]), (true, 1, 1, 3));
    assert_eq!(timeout["pid"], dead.client.pid(), "{timeout}");
    let green_lines: Vec<&Value> = events.iter().filter(|v| v["netns"] == green_ino).collect();
    assert!(
        green_lines.iter().any(|v| event(v) == "ack"),
        "the healthy one keeps answering: {events:#?}"
    );
    for line in &green_lines {
        assert!(
            matches!(event(line), "probe" | "ack"),
            "nothing but probes and answers in green: {line}"
        );
        assert_eq!(
            keepalive_settings(&line["config"]),
            (true, 2, 1, 4),
            "{line}"
        );
        assert_eq!(line["pid"], healthy.client.pid(), "{line}");
    }
    for line in events.iter().filter(|v| v["netns"] == blue_ino) {
        assert_eq!(line["pid"], dead.client.pid(), "{line}");
    }

    // ls and set, namespace by namespace.
    let green_rows = ls_in_netns(green.name(), port);
    let client_row = green_rows
        .iter()
        .find(|r| r["src"] == client_end.as_str())
        .unwrap_or_else(|| panic!("green's client in ls -N: {green_rows:#?}"));
    assert_eq!(keepalive_settings(&client_row["config"]), (true, 2, 1, 4));
    assert_eq!(client_row["netns"], green_ino);
    let blue_rows = ls_in_netns(blue.name(), port);
    assert!(
        blue_rows.iter().all(|r| r["src"] != client_end.as_str()),
        "blue's client is gone: {blue_rows:#?}"
    );
    let server_end = format!("127.0.0.1:{port}");
    let (code, _, stderr) = run_keepalive(&[
        "set",
        "-N",
        green.name(),
        "--conn",
        &client_end,
        &server_end,
        "--idle",
        "7",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let mut healthy = healthy;
    assert_eq!(
        healthy.client.get()[0]["idle_s"],
        7,
        "set -N changed green's"
    );
    let (code, _, stderr) =
        run_keepalive(&["set", "--conn", &client_end, &server_end, "--idle", "9"]);
    assert_eq!(
        code,
        Some(2),
        "not in this namespace, nothing changed: {stderr}"
    );
    assert_eq!(healthy.client.get()[0]["idle_s"], 7);
}

/// `prefork-server` in `ns`: its lines (listening, one per child, accepted).
struct Prefork {
    child: ChildGuard,
    lines: mpsc::Receiver<Value>,
}

impl Prefork {
    fn spawn(ns: &NetNs, port: u16, count: usize) -> Self {
        let mut cmd = ns.command(helper_bin("prefork-server"));
        cmd.args([&format!("127.0.0.1:{port}"), &count.to_string(), "1,1,5"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = cmd.spawn().expect("starting prefork-server");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let server = Self {
            child: ChildGuard(child),
            lines,
        };
        let first = server.next(Duration::from_secs(5));
        assert!(first.get("listening").is_some(), "{first}");
        server
    }

    fn next(&self, timeout: Duration) -> Value {
        self.lines
            .recv_timeout(timeout)
            .unwrap_or_else(|_| panic!("prefork-server said nothing in {timeout:?}"))
    }
}

#[test]
fn a_preforking_servers_connections_belong_to_its_children() {
    const CONNECTIONS: usize = 50;
    const RUNS: usize = 20;
    let ns = NetNs::new();
    let ports: Vec<u16> = (0..RUNS).map(|_| unique_port()).collect();
    let port_args: Vec<String> = ports
        .iter()
        .flat_map(|p| ["--port".into(), p.to_string()])
        .collect();
    let port_args: Vec<&str> = port_args.iter().map(String::as_str).collect();
    let watch = Watch::spawn(&port_args);
    for (run, port) in ports.iter().enumerate() {
        let server = Prefork::spawn(&ns, *port, CONNECTIONS);
        let count = CONNECTIONS.to_string();
        let _clients = Peer::spawn_in(
            &ns,
            &["connect", &format!("127.0.0.1:{port}"), "--count", &count],
        );
        // The child's end of each connection, by its two ends.
        let mut child_of: HashMap<(String, String), u64> = HashMap::new();
        while child_of.len() < CONNECTIONS {
            let v = server.next(Duration::from_secs(10));
            if let (Some(local), Some(remote), Some(pid)) =
                (v["local"].as_str(), v["remote"].as_str(), v["pid"].as_u64())
            {
                child_of.insert((local.into(), remote.into()), pid);
            }
        }
        let parent = u64::from(server.child.0.id());
        // Idle 1 s: every child's socket probes within about a second and a half.
        let deadline = Instant::now() + Duration::from_secs(4);
        let mut probed: HashMap<(String, String), u64> = HashMap::new();
        while probed.len() < CONNECTIONS && Instant::now() < deadline {
            for v in watch.events_so_far() {
                if event(&v) != "probe" {
                    continue;
                }
                let key = (
                    v["src"].as_str().unwrap_or_default().to_owned(),
                    v["dst"].as_str().unwrap_or_default().to_owned(),
                );
                let Some(&child) = child_of.get(&key) else {
                    continue;
                };
                let pid = v["pid"].as_u64();
                assert_ne!(
                    pid,
                    Some(parent),
                    "run {run}: the listener let go of it: {v}"
                );
                assert_eq!(
                    pid,
                    Some(child),
                    "run {run}: every probe line names the child: {v}"
                );
                probed.insert(key, child);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            probed.len(),
            CONNECTIONS,
            "run {run}: a probe line for every connection"
        );
    }
    let _ = Command::new("true").status();
}
