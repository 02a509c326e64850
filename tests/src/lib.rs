//! Harness for the integration tests in `tests/tests/`: network namespaces,
//! nft faults, the `tcp-peer` helper and `keepalive watch` as guard types
//! that clean up in `Drop`, even when a test panics.
//!
//! Tests panic with a message instead of returning `Result`, need root
//! (`cargo xtask test` runs them so), and only send traffic on loopback or
//! inside namespaces they created.

mod bpf;
mod json;
mod netns;
mod peer;
mod run;
mod shim;
mod ss;
mod watch;

use std::{
    ffi::OsStr,
    ops::{Deref, DerefMut},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
};

pub use bpf::{cgroup_links_of_ours, ebpf_programs_of_ours, links_owned_by, programs_owned_by};
pub use json::{event, is, json_lines, keepalive_settings, pick, timing_of};
pub use netns::{NetNs, Nft, VethPair};
pub use peer::{Pair, Peer, answer_for};
pub use run::{
    assert_usage_error, assert_usage_error_before_bpf, assert_usage_error_in, ok_json,
    run_keepalive, run_keepalive_as_nobody, run_keepalive_as_nobody_in, run_keepalive_in,
    run_keepalive_in_unread, unique_port,
};
pub use shim::FailingKeepcnt;
pub use ss::{ss_established, ss_keepalive_timer, ss_line, ss_ms};
pub use watch::Watch;

/// Panics unless running as root, naming the command that arranges it.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        panic!("integration tests need root: run `cargo xtask test`");
    }
}

fn workspace_target_debug(name: &str) -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("tests/ lives inside the workspace")
        .join("target/debug")
        .join(name)
}

/// The `keepalive` binary under test: `$KEEPALIVE_BIN`, else `target/debug/keepalive`.
pub fn keepalive_bin() -> PathBuf {
    std::env::var_os("KEEPALIVE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_target_debug("keepalive"))
}

/// The `tcp-peer` helper: `$KEEPALIVE_TCP_PEER`, else `target/debug/tcp-peer`.
pub fn tcp_peer_bin() -> PathBuf {
    std::env::var_os("KEEPALIVE_TCP_PEER")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_target_debug("tcp-peer"))
}

/// Another helper binary of this crate, built beside `tcp-peer`.
pub fn helper_bin(name: &str) -> PathBuf {
    tcp_peer_bin().with_file_name(name)
}

/// A short name unique to this process and call, like `ka-1234-7`.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// A child process that is SIGKILLed and reaped when dropped.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Deref for ChildGuard {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `program args` inside `ns` (stdin and stdout closed, stderr shared with the test).
pub fn spawn_in(ns: &NetNs, program: impl AsRef<OsStr>, args: &[&str]) -> ChildGuard {
    let mut cmd = ns.command(program.as_ref());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?} in {}: {e}", program.as_ref(), ns.name()));
    ChildGuard(child)
}

/// Runs `cmd` to completion and returns its stdout; panics with its stderr on failure.
pub(crate) fn run_checked(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sends `signal` to `pid`, ignoring a process that is already gone.
pub fn signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, signal);
    }
}
