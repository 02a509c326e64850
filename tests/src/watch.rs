//! `keepalive watch --json` as a guard: JSON events on a channel, stderr
//! kept for messages, the process SIGKILLed on drop if still running.

use std::{
    cell::RefCell,
    io::{BufRead as _, BufReader, Read},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        mpsc::{self, Receiver, RecvTimeoutError, Sender},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{NetNs, keepalive_bin};

/// How long a watcher may take to attach before `spawn` gives up.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `wait_output` waits for the watcher to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `keepalive watch --json ...`.
pub struct Watch {
    child: Option<Child>,
    pid: u32,
    events: Receiver<Value>,
    seen: RefCell<Seen>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

/// Every event received so far, and how far `next_matching`/`collect_until` have read.
#[derive(Default)]
struct Seen {
    all: Vec<Value>,
    cursor: usize,
}

impl Watch {
    /// Starts `keepalive watch --json ARGS` in the root namespace and waits until it has attached.
    pub fn spawn(args: &[&str]) -> Self {
        let mut full = vec!["watch", "--json"];
        full.extend_from_slice(args);
        Self::start(Command::new(keepalive_bin()), &full)
    }

    /// Watches `--port PORT EXTRA...` in the root namespace (the programs
    /// see every namespace).
    pub fn on_port(port: u16, extra: &[&str]) -> Self {
        let port = port.to_string();
        let mut args = vec!["--port", port.as_str()];
        args.extend_from_slice(extra);
        Self::spawn(&args)
    }

    /// Starts another long-running subcommand that streams JSON events, such
    /// as `set --new ... --json`, and waits until it has attached.
    pub fn spawn_command(args: &[&str]) -> Self {
        Self::start(Command::new(keepalive_bin()), args)
    }

    /// Like [`Watch::spawn`], inside `ns` (where `/sys` is remounted without cgroup2 or tracefs).
    pub fn spawn_in(ns: &NetNs, args: &[&str]) -> Self {
        let mut full = vec!["watch", "--json"];
        full.extend_from_slice(args);
        Self::start(ns.command(keepalive_bin()), &full)
    }

    fn start(mut cmd: Command, args: &[&str]) -> Self {
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, events) = mpsc::channel();
        let readers = vec![
            read_events(
                child.stdout.take().expect("stdout is piped"),
                tx,
                stderr.clone(),
            ),
            read_text(
                child.stderr.take().expect("stderr is piped"),
                stderr.clone(),
            ),
        ];
        let pid = child.id();
        let mut watch = Self {
            child: Some(child),
            pid,
            events,
            seen: RefCell::default(),
            stderr,
            readers,
        };
        watch.wait_attached(&cmd);
        // Remember its programs now, so `programs_owned_by` still knows them after it exits.
        let _ = crate::programs_owned_by(pid);
        let _ = crate::links_owned_by(pid);
        watch
    }

    /// Waits for the `keepalive: watching` line; panics (and `Drop` kills the
    /// watcher) if it exits first or takes too long.
    fn wait_attached(&mut self, cmd: &Command) {
        let deadline = Instant::now() + ATTACH_TIMEOUT;
        loop {
            if self
                .stderr()
                .lines()
                .any(|line| line.starts_with("keepalive: watching"))
            {
                return;
            }
            let child = self.child.as_mut().expect("not yet waited for");
            if let Some(status) = child.try_wait().expect("polling the watcher") {
                // Let the reader threads take in the last of stderr.
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                panic!(
                    "{cmd:?} exited ({status}) before attaching; stderr:\n{}",
                    self.stderr()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "{cmd:?} did not print `keepalive: watching` within {ATTACH_TIMEOUT:?}; stderr so far:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The watcher's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Everything it has written on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// The next unread event matching `pred`, skipping the others; `None` after `timeout`.
    pub fn next_matching(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Option<Value> {
        let mut found = None;
        self.read_until(timeout, |v| {
            let hit = pred(v);
            if hit {
                found = Some(v.clone());
            }
            hit
        });
        found
    }

    /// Unread events up to and including the first matching `pred`, or all
    /// that arrived before `timeout`.
    pub fn collect_until(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Vec<Value> {
        let mut collected = Vec::new();
        self.read_until(timeout, |v| {
            collected.push(v.clone());
            pred(v)
        });
        collected
    }

    /// Feeds unread events to `visit` until it returns true, the timeout
    /// passes or the watcher's stdout closes.
    fn read_until(&self, timeout: Duration, mut visit: impl FnMut(&Value) -> bool) {
        let deadline = Instant::now() + timeout;
        let mut seen = self.seen.borrow_mut();
        loop {
            while seen.cursor < seen.all.len() {
                let index = seen.cursor;
                seen.cursor += 1;
                if visit(&seen.all[index]) {
                    return;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => seen.all.push(v),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Every event received since the start, read or not.
    pub fn events_so_far(&self) -> Vec<Value> {
        let mut seen = self.seen.borrow_mut();
        seen.all.extend(self.events.try_iter());
        seen.all.clone()
    }

    /// Sends SIGINT (Ctrl-C).
    pub fn interrupt(self) -> Self {
        crate::signal(self.pid, libc::SIGINT);
        self
    }

    /// Sends SIGTERM.
    pub fn terminate(self) -> Self {
        crate::signal(self.pid, libc::SIGTERM);
        self
    }

    /// Sends SIGKILL.
    pub fn kill(self) -> Self {
        crate::signal(self.pid, libc::SIGKILL);
        self
    }

    /// Waits for the watcher to exit (panics after 30 s) and returns its
    /// status, every event since the start, and its stderr.
    pub fn wait_output(mut self) -> (ExitStatus, Vec<Value>, String) {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        let mut child = self.child.take().expect("the watcher is waited for once");
        let status = loop {
            match child.try_wait().expect("waiting for the watcher") {
                Some(status) => break status,
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "watcher {} did not exit within {EXIT_TIMEOUT:?}; stderr:\n{}",
                        self.pid,
                        self.stderr()
                    );
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let events = self.events_so_far();
        (status, events, self.stderr())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads JSON lines into `tx`; a line that is not JSON goes to `log` instead.
fn read_events(
    out: impl Read + Send + 'static,
    tx: Sender<Value>,
    log: Arc<Mutex<String>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            match serde_json::from_str(&line) {
                Ok(value) => {
                    if tx.send(value).is_err() {
                        return;
                    }
                }
                Err(_) => {
                    let mut log = log.lock().expect("stderr lock");
                    log.push_str("[stdout, not JSON] ");
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        }
    })
}

fn read_text(out: impl Read + Send + 'static, log: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let mut log = log.lock().expect("stderr lock");
            log.push_str(&line);
            log.push('\n');
        }
    })
}
