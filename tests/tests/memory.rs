//! Memory that must stay bounded whatever the host does: `set --new` on a
//! host with connection churn forgets every connection once it closes.
//!
//! Needs root: run through `cargo xtask test`.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use keepalive_tests::*;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process lives");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn set_new_over_100_000_short_connections_stays_within_10_mib() {
    const CONNECTIONS: usize = 100_000;
    let ns = NetNs::new();
    // Every connection its own 4-tuple, as on a busy host: the memory of
    // one that is forgotten must not be taken over by the next.
    ns.sysctl("net.ipv4.ip_local_port_range", "1024 65535");
    let p = unique_port();
    let mut policy = Command::new(keepalive_bin());
    policy
        .args(["set", "--new", "--port", &p.to_string(), "--idle", "5"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = ChildGuard(policy.spawn().expect("starting set --new"));
    let stderr = child.0.stderr.take().expect("piped");
    let mut lines = BufReader::new(stderr).lines();
    let attached = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.starts_with("keepalive: watching"));
    assert!(attached, "set --new did not attach");
    std::thread::sleep(Duration::from_millis(500));
    let pid = child.0.id();
    let before = rss_kib(pid);
    let started = Instant::now();
    let out = ns
        .command(helper_bin("churn"))
        .args([&format!("127.0.0.1:{p}"), &CONNECTIONS.to_string()])
        .output()
        .expect("running churn");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let churned = started.elapsed();
    // Closed connections are forgotten a second after their close.
    std::thread::sleep(Duration::from_secs(3));
    let after = rss_kib(pid);
    assert!(
        after <= before + 10 * 1024,
        "RSS {before} KiB before {CONNECTIONS} connections ({churned:?}), {after} KiB after"
    );
    eprintln!(
        "set --new RSS: {before} KiB before, {after} KiB after {CONNECTIONS} connections in {churned:?}"
    );
}
