//! The tools people use today, driven the way they are used: iperf3 for bulk
//! throughput, `ss -tio` polled once a second, tcpdump printing pure ACKs.

use std::{
    io::{BufRead as _, BufReader, Read as _},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::sys::{Killed, NetNs, cpu_seconds, reaped_children_cpu_seconds};
use crate::util::output;

pub const IPERF_PORT: u16 = 5201;

/// An iperf3 server in the namespace, for as long as this lives.
pub struct IperfServer {
    /// Held for its Drop, which kills the server.
    _server: Killed,
}

impl IperfServer {
    pub fn start(ns: &NetNs) -> anyhow::Result<Self> {
        let mut cmd = ns.exec(["iperf3", "--server", "--bind", "127.0.0.1"]);
        cmd.args(["--port", &IPERF_PORT.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let server = Killed::spawn(&mut cmd)?;
        std::thread::sleep(Duration::from_millis(300));
        Ok(Self { _server: server })
    }
}

/// One loopback bulk transfer: received bits per second.
pub fn iperf_bits_per_s(ns: &NetNs, seconds: u32) -> anyhow::Result<f64> {
    let json = output(&mut ns.exec([
        "iperf3",
        "--client",
        "127.0.0.1",
        "--port",
        &IPERF_PORT.to_string(),
        "--time",
        &seconds.to_string(),
        // Client on CPU 0, server on CPU 1: unpinned, run-to-run spread on
        // this 2-core machine hid a 1 % effect.
        "--affinity",
        "0,1",
        "--json",
    ]))?;
    let report: serde_json::Value = serde_json::from_str(&json).context("iperf3 --json")?;
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("iperf3 reported no end.sum_received.bits_per_second")
}

/// What a polling or capturing tool cost over a window.
#[derive(Debug, Clone, Default)]
pub struct ToolRun {
    pub seconds: f64,
    pub cpu_s: f64,
    /// Lines of output it produced.
    pub lines: u64,
    /// Anything it said about itself (tcpdump's drop counts).
    pub note: String,
}

impl ToolRun {
    pub fn cpu_s_per_minute(&self) -> f64 {
        60.0 * self.cpu_s / self.seconds
    }
}

/// `ss -tio` once a second for `seconds`, its output read (as a script
/// piping it to grep would); CPU is that of the ss processes.
pub fn poll_ss(ns: &NetNs, seconds: u64) -> anyhow::Result<ToolRun> {
    let started = Instant::now();
    let cpu_before = reaped_children_cpu_seconds();
    let mut lines = 0;
    for tick in 0..seconds {
        let text = output(&mut ns.exec(["ss", "-tio"]))?;
        lines += text.lines().count() as u64;
        let next = Duration::from_secs(tick + 1);
        if let Some(wait) = next.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    Ok(ToolRun {
        seconds: started.elapsed().as_secs_f64(),
        cpu_s: reaped_children_cpu_seconds() - cpu_before,
        lines,
        note: String::new(),
    })
}

/// The capture filter for segments with ACK and no payload, SYN, FIN or RST:
/// keepalive probes and their answers among every other pure ACK.
pub const PURE_ACK_FILTER: &str = "tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) == 0 \
     and tcp[tcpflags] & tcp-ack != 0 \
     and ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2) == 0";

/// tcpdump on the namespace's loopback, printing every pure ACK, for
/// `seconds`.
pub fn capture_tcpdump(ns: &NetNs, seconds: u64) -> anyhow::Result<ToolRun> {
    let mut cmd = ns.exec(["tcpdump", "-i", "lo", "-n", "-l", "-S", PURE_ACK_FILTER]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut tcpdump = Killed::spawn(&mut cmd)?;
    let stdout = tcpdump.child.stdout.take().context("tcpdump stdout")?;
    let counter = std::thread::spawn(move || BufReader::new(stdout).lines().count() as u64);
    let mut stderr = tcpdump.child.stderr.take().context("tcpdump stderr")?;
    // `ip netns exec` execs tcpdump: the child's pid is tcpdump's.
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let cpu_before = cpu_seconds(tcpdump.pid())?;
    std::thread::sleep(Duration::from_secs(seconds));
    let cpu_s = cpu_seconds(tcpdump.pid())? - cpu_before;
    let elapsed = started.elapsed().as_secs_f64();
    tcpdump.interrupt(Duration::from_secs(10))?;
    let lines = counter
        .join()
        .map_err(|_| anyhow::anyhow!("tcpdump reader panicked"))?;
    let mut said = String::new();
    stderr.read_to_string(&mut said)?;
    let note = said
        .lines()
        .filter(|l| l.contains("packets"))
        .collect::<Vec<_>>()
        .join(", ");
    if note.is_empty() {
        bail!("tcpdump did not report its packet counts: {said}");
    }
    Ok(ToolRun {
        seconds: elapsed,
        cpu_s,
        lines,
        note,
    })
}
