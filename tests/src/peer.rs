//! The `tcp-peer` helper as a guard: its connections, its JSON answers,
//! commands written to its stdin, and a listener with a client as a [`Pair`].

use std::{
    collections::VecDeque,
    io::{BufRead as _, BufReader, Write as _},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{NetNs, tcp_peer_bin};

/// How long `spawn` waits for `{"ready":true}` (connecting hundreds takes a while).
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `tcp-peer listen|connect ...`; SIGKILLed on drop.
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Value>,
    connections: Vec<Value>,
    pending: VecDeque<Value>,
}

impl Peer {
    /// Starts `tcp-peer ARGS` in the root namespace (loopback only) and waits until ready.
    pub fn spawn(args: &[&str]) -> Self {
        Self::start(Command::new(tcp_peer_bin()), args)
    }

    /// Starts `tcp-peer ARGS` inside `ns` and waits until it is ready: a
    /// listener once listening, a client once all its connections are up.
    pub fn spawn_in(ns: &NetNs, args: &[&str]) -> Self {
        Self::start(ns.command(tcp_peer_bin()), args)
    }

    fn start(mut cmd: Command, args: &[&str]) -> Self {
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        let mut peer = Self {
            stdin: child.stdin.take(),
            child,
            lines,
            connections: Vec::new(),
            pending: VecDeque::new(),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match peer.lines.recv_timeout(left) {
                Ok(v) if v["ready"] == true => return peer,
                Ok(v) => peer.file(v),
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{cmd:?} was not ready within {READY_TIMEOUT:?}: {:?}",
                    peer.pending
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = peer.child.wait().expect("waiting for tcp-peer");
                    panic!(
                        "{cmd:?} exited ({status}) before it was ready: {:?}",
                        peer.pending
                    )
                }
            }
        }
    }

    /// Connection lines go to `connections`, everything else to `pending`.
    fn file(&mut self, v: Value) {
        if v.get("local").is_some() && v.get("remote").is_some() {
            self.connections.push(v);
        } else {
            self.pending.push_back(v);
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Connections reported so far: `{"fd","local","remote","pid"}` each.
    pub fn connections(&self) -> &[Value] {
        &self.connections
    }

    /// The local address of connection `i`, like `127.0.0.1:41234`.
    pub fn local(&self, i: usize) -> String {
        self.connections[i]["local"]
            .as_str()
            .unwrap_or_else(|| {
                panic!(
                    "connection {i} has no local address: {:?}",
                    self.connections
                )
            })
            .to_owned()
    }

    /// Waits until at least `n` connections are reported (a listener accepting); panics after `timeout`.
    pub fn wait_connections(&mut self, n: usize, timeout: Duration) -> &[Value] {
        let deadline = Instant::now() + timeout;
        while self.connections.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => self.file(v),
                Err(_) => panic!(
                    "tcp-peer {} has {} of {n} connections after {timeout:?}",
                    self.pid(),
                    self.connections.len()
                ),
            }
        }
        &self.connections
    }

    /// Writes one command line (`get`, `send N`, `close`, `abort`, `recv`, `exit`).
    pub fn send_line(&mut self, line: &str) {
        let pid = self.pid();
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("tcp-peer {pid} cannot take {line:?}: {e}"));
    }

    /// The next line that is not a connection line, or `None` after `timeout`.
    pub fn next_json(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.pending.pop_front() {
                return Some(v);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.lines.recv_timeout(left).ok()?;
            self.file(v);
        }
    }

    /// Sends `get` and returns one settings line per connection, as the
    /// application reads them back; other lines stay for `next_json`.
    pub fn get(&mut self) -> Vec<Value> {
        self.send_line("get");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut answers = Vec::new();
        let mut others = VecDeque::new();
        while answers.len() < self.connections.len() {
            let v = match self.pending.pop_front() {
                Some(v) => v,
                None => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match self.lines.recv_timeout(left) {
                        Ok(v) => v,
                        Err(_) => {
                            panic!("tcp-peer {} did not answer `get`: {answers:?}", self.pid())
                        }
                    }
                }
            };
            if v.get("keepalive").is_some() {
                answers.push(v);
            } else if v.get("local").is_some() {
                self.connections.push(v);
            } else {
                others.push_back(v);
            }
        }
        others.append(&mut self.pending);
        self.pending = others;
        answers
    }

    /// Closes stdin (tcp-peer then exits) and waits for it.
    pub fn finish(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        self.child.wait().expect("waiting for tcp-peer")
    }
}

/// The answer about descriptor `fd` among those [`Peer::get`] returned.
pub fn answer_for<'a>(answers: &'a [Value], fd: &Value) -> &'a Value {
    answers
        .iter()
        .find(|a| &a["fd"] == fd)
        .unwrap_or_else(|| panic!("no answer for fd {fd}: {answers:?}"))
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `tcp-peer listen` and a `tcp-peer connect` to it, in one namespace.
pub struct Pair {
    pub server: Peer,
    pub client: Peer,
}

impl Pair {
    /// `listen LISTEN` and `connect CONNECT CLIENT_ARGS...` inside `ns`,
    /// returned once the client's connections are up.
    pub fn spawn_in(ns: &NetNs, listen: &str, connect: &str, client_args: &[&str]) -> Self {
        let server = Peer::spawn_in(ns, &["listen", listen]);
        let mut args = vec!["connect", connect];
        args.extend_from_slice(client_args);
        let client = Peer::spawn_in(ns, &args);
        Self { server, client }
    }

    /// Both ends on `127.0.0.1:port` inside `ns`.
    pub fn loopback_in(ns: &NetNs, port: u16, client_args: &[&str]) -> Self {
        let addr = format!("127.0.0.1:{port}");
        Self::spawn_in(ns, &addr, &addr, client_args)
    }
}
