//! Running `keepalive` as a one-shot command, and the small helpers the
//! test files share: unique ports, JSON lines, the settings in an event.

use std::{
    process::{Command, Stdio},
    sync::atomic::{AtomicU16, Ordering},
};

use serde_json::Value;

use crate::{NetNs, keepalive_bin};

/// A port no other test of this run uses: each test binary (a process)
/// gets its own block of 100, so binaries run side by side never share one.
pub fn unique_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let block = u16::try_from(std::process::id() % 400).expect("below 400");
    20_000 + block * 100 + NEXT.fetch_add(1, Ordering::Relaxed) % 100
}

/// Runs `keepalive ARGS` to completion: (exit code, stdout, stderr). A
/// panic message on stderr fails the test whatever the exit code.
pub fn run_keepalive(args: &[&str]) -> (Option<i32>, String, String) {
    finish(Command::new(keepalive_bin()), args)
}

/// Like [`run_keepalive`], inside `ns`.
pub fn run_keepalive_in(ns: &NetNs, args: &[&str]) -> (Option<i32>, String, String) {
    finish(ns.command(keepalive_bin()), args)
}

fn finish(mut cmd: Command, args: &[&str]) -> (Option<i32>, String, String) {
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run keepalive {args:?}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

/// One JSON value per line of `stdout`; a line that is not JSON fails the test.
pub fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// (SO_KEEPALIVE, idle s, interval s, count) from a `config` object.
pub fn keepalive_settings(config: &Value) -> (bool, u64, u64, u64) {
    (
        config["keepalive"].as_bool().unwrap_or(false),
        config["idle_s"].as_u64().unwrap_or(0),
        config["intvl_s"].as_u64().unwrap_or(0),
        config["cnt"].as_u64().unwrap_or(0),
    )
}
