//! Running `keepalive` as a one-shot command (as root, as nobody, or with
//! nobody reading its stdout), checking a usage error, and unique ports.

use std::{
    process::{Command, Stdio},
    sync::atomic::{AtomicU16, Ordering},
};

use serde_json::Value;

use crate::{NetNs, json_lines, keepalive_bin, unique_name};

/// A port no other test of this run uses: each test binary (a process)
/// gets its own block of 100, so binaries run side by side never share one.
/// All below 32768, outside Linux's ephemeral range (32768-60999 by
/// default): watchers filter on the port, and some other connection's
/// client end (another suite's, host-wide) must never have it.
pub fn unique_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let block = u16::try_from(std::process::id() % BLOCKS).expect("below BLOCKS");
    FIRST_PORT + block * 100 + NEXT.fetch_add(1, Ordering::Relaxed) % 100
}

const FIRST_PORT: u16 = 10_000;
/// Blocks of 100 from FIRST_PORT up to the ephemeral range.
const BLOCKS: u32 = (32_768 - FIRST_PORT as u32) / 100;

/// Runs `keepalive ARGS` to completion: (exit code, stdout, stderr). A
/// panic message on stderr fails the test whatever the exit code.
pub fn run_keepalive(args: &[&str]) -> (Option<i32>, String, String) {
    finish(Command::new(keepalive_bin()), args)
}

/// Like [`run_keepalive`], inside `ns`.
pub fn run_keepalive_in(ns: &NetNs, args: &[&str]) -> (Option<i32>, String, String) {
    finish(ns.command(keepalive_bin()), args)
}

/// Like [`run_keepalive`], as user and group 65534 (nobody) without groups.
pub fn run_keepalive_as_nobody(args: &[&str]) -> (Option<i32>, String, String) {
    finish(as_nobody(Command::new("setpriv")), args)
}

/// Like [`run_keepalive_as_nobody`], inside `ns`.
pub fn run_keepalive_as_nobody_in(ns: &NetNs, args: &[&str]) -> (Option<i32>, String, String) {
    finish(as_nobody(ns.command("setpriv")), args)
}

fn as_nobody(mut setpriv: Command) -> Command {
    setpriv
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(keepalive_bin());
    setpriv
}

/// Runs `cmd ARGS` (a `keepalive` command line) to completion, as [`run_keepalive`] does.
pub(crate) fn finish(mut cmd: Command, args: &[&str]) -> (Option<i32>, String, String) {
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

/// Like [`run_keepalive_in`], with stdout closed before the command has
/// written anything (a reader that went away): (exit code, stderr).
pub fn run_keepalive_in_unread(ns: &NetNs, args: &[&str]) -> (Option<i32>, String) {
    let mut child = ns
        .command(keepalive_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run keepalive {args:?}: {e}"));
    drop(child.stdout.take());
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for keepalive {args:?}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    (out.status.code(), stderr)
}

/// The JSON lines of a `keepalive ... --json` run that must succeed (exit 0).
pub fn ok_json(output: (Option<i32>, String, String)) -> Vec<Value> {
    let (code, stdout, stderr) = output;
    assert_eq!(code, Some(0), "{stderr}");
    json_lines(&stdout)
}

/// Runs `keepalive ARGS` and asserts it is refused as a usage error: exit
/// code 2 and a first line of stderr that says what is wrong and contains
/// `expect` (clap may add a hint about --help below it).
pub fn assert_usage_error(args: &[&str], expect: &str) {
    check_usage_error(run_keepalive(args), args, expect);
}

/// Like [`assert_usage_error`], inside `ns`.
pub fn assert_usage_error_in(ns: &NetNs, args: &[&str], expect: &str) {
    check_usage_error(run_keepalive_in(ns, args), args, expect);
}

/// Like [`assert_usage_error`], and the refusal came before anything was
/// loaded: under strace, the process made no bpf() and no perf_event_open()
/// call at all. (Counting programs after it exited could not tell: what a
/// process loads through file descriptors dies with it.)
pub fn assert_usage_error_before_bpf(args: &[&str], expect: &str) {
    let trace = std::env::temp_dir().join(unique_name("ka-strace"));
    let mut strace = Command::new("strace");
    strace
        .args(["-f", "-qq", "-e", "trace=bpf,perf_event_open", "-o"])
        .arg(&trace)
        .arg(keepalive_bin());
    let output = finish(strace, args);
    let calls = std::fs::read_to_string(&trace)
        .unwrap_or_else(|e| panic!("strace wrote no trace for {args:?}: {e}"));
    let _ = std::fs::remove_file(&trace);
    check_usage_error(output, args, expect);
    let mut made = std::collections::BTreeMap::<&str, usize>::new();
    for call in calls.lines() {
        let name = call.split_once(' ').map_or(call, |(_pid, call)| call);
        let name = match name.strip_prefix("bpf(") {
            Some(rest) => rest.split(',').next().unwrap_or("bpf"),
            None => name.split('(').next().unwrap_or(name),
        };
        *made.entry(name).or_default() += 1;
    }
    assert!(
        made.is_empty(),
        "{args:?} was refused only after touching the kernel's BPF: {made:?}"
    );
}

fn check_usage_error(output: (Option<i32>, String, String), args: &[&str], expect: &str) {
    let (code, _, stderr) = output;
    assert_eq!(code, Some(2), "{args:?}: {stderr}");
    let first = stderr.lines().next().unwrap_or("");
    assert!(
        !first.is_empty() && first.contains(expect),
        "{args:?}: expected {expect:?} on the first line of {stderr}"
    );
}
