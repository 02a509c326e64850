//! `keepalive watch` filters against the real kernel: `--pid` keeps only
//! that process's connections, and a filter it cannot honour is refused
//! before anything is attached.
//!
//! Needs root: run through `cargo xtask test`. The watchers attach at the
//! cgroup v2 root and see every namespace, so each test filters on its own
//! ports.

use std::time::Duration;

use keepalive_tests::*;
use serde_json::Value;

#[test]
fn pid_filter_keeps_only_that_process_connections() {
    let ns = NetNs::new();
    let p = unique_port();
    let pair = Pair::loopback_in(&ns, p, &["--keepalive", "1,1,3"]);
    let target = &pair.client;
    let _other = Peer::spawn_in(
        &ns,
        &["connect", &format!("127.0.0.1:{p}"), "--keepalive", "1,1,3"],
    );
    let watch = Watch::spawn(&["--port", &p.to_string(), "--pid", &target.pid().to_string()]);
    let events = watch.collect_until(Duration::from_secs(4), |_| false);
    let probes: Vec<&Value> = events.iter().filter(|v| event(v) == "probe").collect();
    assert!(
        !probes.is_empty(),
        "the target's probes are shown: {events:#?}"
    );
    for v in &events {
        assert_eq!(v["pid"], target.pid(), "only the target process: {v}");
        assert_eq!(v["src"], target.connections()[0]["local"]);
    }
}

#[test]
fn bad_input_is_refused_before_anything_is_attached() {
    require_root();
    for args in [
        vec!["watch", "--dst", "10.0.0.0/33"],
        vec!["watch", "--src", "not-an-address"],
        vec!["watch", "--port", "0"],
        vec!["watch", "--port", "65536"],
        vec!["watch", "--cgroup", "/no/such/cgroup"],
        vec!["watch", "--pid", "4194304"],
        vec!["watch", "--duration", "ten"],
    ] {
        assert_usage_error_before_bpf(&args, "");
    }
}
