//! Keepalive policies for new connections (`set --new`, `watch --apply`)
//! against the real kernel: the processes themselves read the values back.
//!
//! Needs root: run through `cargo xtask test`.

use std::time::Duration;

use keepalive_tests::*;
use serde_json::Value;

#[test]
fn new_connections_get_the_policy_and_old_ones_do_not() {
    let ns = NetNs::new();
    let p = unique_port();
    let mut old = Pair::loopback_in(&ns, p, &[]);
    let before = &mut old.client;
    let policy = Watch::spawn_command(&[
        "set",
        "--new",
        "--port",
        &p.to_string(),
        "--idle",
        "2",
        "--interval",
        "1",
        "--count",
        "4",
        "--json",
    ]);
    let mut after = Peer::spawn_in(&ns, &["connect", &format!("127.0.0.1:{p}")]);
    let applied = policy
        .next_matching(Duration::from_secs(5), |v| v["event"] == "options_set")
        .expect("an options_set event for the new connection");
    assert_eq!(applied["result"], 0, "{applied}");
    assert_eq!(
        keepalive_settings(&applied["config"]),
        (true, 2, 1, 4),
        "values read back in the kernel: {applied}"
    );
    let new_values = after.get();
    assert_eq!(
        keepalive_settings(&new_values[0]),
        (true, 2, 1, 4),
        "the process reads the policy's values: {new_values:?}"
    );
    let old_values = before.get();
    assert!(
        !old_values[0]["keepalive"].as_bool().unwrap(),
        "made before the policy: untouched {old_values:?}"
    );
    let events = policy.events_so_far();
    let srcs: Vec<&Value> = events
        .iter()
        .filter(|v| v["event"] == "options_set")
        .map(|v| &v["src"])
        .collect();
    assert!(
        !srcs.contains(&&before.connections()[0]["local"]),
        "no event for the old connection: {events:#?}"
    );
}

#[test]
fn watch_apply_sets_and_observes_in_one_command() {
    let ns = NetNs::new();
    let p = unique_port();
    let watch = Watch::spawn(&[
        "--port",
        &p.to_string(),
        "--apply",
        "--idle",
        "1",
        "--interval",
        "1",
        "--count",
        "2",
    ]);
    let _server = Peer::spawn_in(&ns, &["listen", &format!("127.0.0.1:{p}")]);
    let client = Peer::spawn_in(&ns, &["connect", &format!("127.0.0.1:{p}")]);
    let local = client.connections()[0]["local"].clone();
    let probe = watch
        .next_matching(Duration::from_secs(5), |v| {
            v["event"] == "probe" && v["src"] == local
        })
        .expect("the client, which set no keepalive itself, now probes");
    assert_eq!(
        keepalive_settings(&probe["config"]),
        (true, 1, 1, 2),
        "{probe}"
    );
    let idle = probe["idle_ms"].as_u64().unwrap();
    assert!(
        (900..=1300).contains(&idle),
        "first probe after the policy's idle of 1 s: {idle} ms"
    );
}

#[test]
fn out_of_range_values_are_refused_and_nothing_is_attached() {
    require_root();
    for args in [
        vec!["set", "--new", "--count", "0"],
        vec!["set", "--new", "--count", "128"],
        vec!["set", "--new", "--idle", "32768"],
        vec!["set", "--new", "--interval", "0.5"],
        vec!["set", "--new", "--idle", "soon"],
        vec!["set", "--new"],
        vec!["watch", "--idle", "5"],
        vec![
            "watch", "--apply", "--port", "1", "--port", "2", "--idle", "5",
        ],
    ] {
        assert_usage_error_before_bpf(&args, "");
    }
}
