//! `keepalive demo`: proves keepalive settings against a real fault. A
//! private network namespace holds a server and a client on loopback; the
//! client gets the settings, the connection goes idle, the fault is
//! injected on the server's (the peer's) side with nftables, and the
//! observer shows the live timeline and a verdict.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Command, ExitCode, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};
use serde_json::json;

use crate::{
    cli::{parse_duration, usage},
    filter::ConnFilter,
    kernel::LoadOptions,
    output::Clock,
    timeline::Report,
    watch::{Item, Watcher},
};

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// TCP_KEEPIDLE of the client.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub idle: Duration,
    /// TCP_KEEPINTVL of the client.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// TCP_KEEPCNT of the client.
    #[arg(long, default_value_t = 3)]
    pub count: u32,
    /// TCP_USER_TIMEOUT of the client (0: none).
    #[arg(long, value_parser = parse_duration)]
    pub user_timeout: Option<Duration>,
    /// blackhole: the peer stops answering; reset: the peer's socket
    /// vanishes (a reboot) and its kernel answers the next probe with RST;
    /// loss:PCT: the peer's packets are dropped at random; middlebox:SECS: a
    /// stateful firewall forgets flows idle for SECS and drops what follows.
    #[arg(long, default_value = "blackhole")]
    pub fault: String,
    /// One JSON object per line, ending with a verdict.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Blackhole,
    Reset,
    Loss(u32),
    Middlebox(u32),
}

fn parse_fault(text: &str) -> anyhow::Result<Fault> {
    let number = |v: &str, max: u32| v.parse::<u32>().ok().filter(|n| (1..=max).contains(n));
    match text.split_once(':') {
        None if text == "blackhole" => Ok(Fault::Blackhole),
        None if text == "reset" => Ok(Fault::Reset),
        Some(("loss", pct)) => number(pct, 100)
            .map(Fault::Loss)
            .ok_or_else(|| usage("--fault loss:PCT takes a percentage from 1 to 100")),
        Some(("middlebox", secs)) => number(secs, 3600)
            .map(Fault::Middlebox)
            .ok_or_else(|| usage("--fault middlebox:SECS takes seconds from 1 to 3600")),
        _ => Err(usage(format!(
            "--fault {text}: use blackhole, reset, loss:PCT or middlebox:SECS"
        ))),
    }
}

const PORT: u16 = 7;

/// The demo's namespace and nft table; deleting the namespace removes both.
struct Lab {
    name: String,
}

impl Lab {
    fn create() -> anyhow::Result<Self> {
        let name = format!("ka-demo-{}", std::process::id());
        run_checked(Command::new("ip").args(["netns", "add", &name]))?;
        let lab = Self { name };
        run_checked(
            Command::new("ip").args(["netns", "exec", &lab.name, "ip", "link", "set", "lo", "up"]),
        )?;
        Ok(lab)
    }

    fn nft(&self, ruleset: &str) -> anyhow::Result<()> {
        use std::io::Write as _;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running nft (Debian package nftables)")?;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(ruleset.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("nft: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }

    /// Runs `f` on a thread that entered the namespace: sockets created
    /// there belong to it for good.
    fn inside<T: Send>(&self, f: impl FnOnce() -> std::io::Result<T> + Send) -> anyhow::Result<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            scope
                .spawn(|| -> anyhow::Result<T> {
                    let ns =
                        std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
                    // SAFETY: setns on this thread only; the fd is valid.
                    if unsafe {
                        libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET)
                    } != 0
                    {
                        bail!("setns {path}: {}", std::io::Error::last_os_error());
                    }
                    Ok(f()?)
                })
                .join()
                .map_err(|_| anyhow::anyhow!("namespace thread panicked"))?
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// An nft table dropping what `rule` matches on the peer's output: the
/// client's probes still leave and are seen; the answers never come back.
fn peer_output_rule(rule: &str) -> String {
    format!(
        "table inet keepalive_demo {{\n  chain out {{\n    type filter hook output priority 0;\n    {rule}\n  }}\n}}\n"
    )
}

fn run_checked(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn whole_seconds(name: &str, d: Duration) -> anyhow::Result<u32> {
    if d.subsec_nanos() != 0 || d.as_secs() == 0 || d.as_secs() > 60 {
        return Err(usage(format!(
            "--{name} must be whole seconds from 1 to 60 for a demo"
        )));
    }
    Ok(d.as_secs() as u32)
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let fault = parse_fault(&args.fault)?;
    let (idle_s, intvl_s) = (
        whole_seconds("idle", args.idle)?,
        whole_seconds("interval", args.interval)?,
    );
    if !(1..=20).contains(&args.count) {
        return Err(usage("--count must be from 1 to 20 for a demo"));
    }
    let user_timeout_ms = args.user_timeout.map_or(0, |d| d.as_millis() as u32);
    crate::kernel::privilege::require_bpf_privileges()?;
    let lab = Lab::create()?;
    if let Fault::Middlebox(secs) = fault {
        // The firewall must see the handshake: with tcp_loose=0, conntrack
        // treats a connection it picks up mid-stream as invalid.
        lab.nft("table inet keepalive_demo_ct {\n  chain in {\n    type filter hook input priority 0;\n    ct state invalid drop\n  }\n}\n")?;
        for setting in [
            "net.netfilter.nf_conntrack_tcp_loose=0".to_string(),
            format!("net.netfilter.nf_conntrack_tcp_timeout_established={secs}"),
        ] {
            run_checked(
                Command::new("ip").args(["netns", "exec", &lab.name, "sysctl", "-qw", &setting]),
            )?;
        }
    }
    let (listener, client, server) = lab.inside(|| {
        let listener = TcpListener::bind(("127.0.0.1", PORT))?;
        let client = TcpStream::connect(("127.0.0.1", PORT))?;
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(idle_s.into()))
            .with_interval(Duration::from_secs(intvl_s.into()))
            .with_retries(args.count);
        let sock = socket2::SockRef::from(&client);
        sock.set_tcp_keepalive(&keepalive)?;
        if user_timeout_ms > 0 {
            sock.set_tcp_user_timeout(Some(Duration::from_millis(user_timeout_ms.into())))?;
        }
        let (server, _) = listener.accept()?;
        Ok((listener, client, server))
    })?;
    let client_addr: SocketAddr = client.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let filter = ConnFilter { ports: vec![PORT], ..ConnFilter::default() };
        let mut watcher = Watcher::start(&LoadOptions::default(), filter, None)?;
        let clock = Clock::now();
        if !args.json {
            eprintln!(
                "keepalive demo: client {client_addr} -> server 127.0.0.1:{PORT} in namespace {}; keepalive idle {idle_s}s interval {intvl_s}s count {}{}; fault: {}",
                lab.name,
                args.count,
                if user_timeout_ms > 0 { format!(" user timeout {user_timeout_ms}ms") } else { String::new() },
                args.fault
            );
        }
        // The first probe is answered; the fault starts half an interval later.
        let mut server = Some(server);
        let mut fault_at = None;
        let mut verdict = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(idle_s + intvl_s * (args.count + 2)) + 5);
        let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        while verdict.is_none() {
            let items = tokio::select! {
                items = watcher.next_items() => items?,
                _ = tokio::time::sleep_until(deadline) => break,
                _ = sigint.recv() => break,
            };
            for item in items {
                let Item::Record(record, owner) = item else { continue };
                if record.conn.local != client_addr {
                    continue;
                }
                if args.json {
                    crate::outln!("{}", crate::output::record_json(&clock, &record, owner.as_ref()))?;
                } else {
                    crate::outln!("{}", crate::output::record_line(&clock, &record, owner.as_ref(), false))?;
                }
                match &record.report {
                    Report::Ack { .. } if fault_at.is_none() => {
                        match fault {
                            Fault::Blackhole => lab.nft(&peer_output_rule(&format!("tcp sport {PORT} drop")))?,
                            Fault::Reset => {
                                lab.nft(&peer_output_rule(&format!(
                                    "tcp sport {PORT} tcp flags & (fin|rst) != 0 drop"
                                )))?;
                                // A reboot: the socket vanishes; its RST never leaves.
                                if let Some(s) = server.take() {
                                    socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO))?;
                                    drop(s);
                                }
                                lab.nft("delete table inet keepalive_demo")?;
                            }
                            Fault::Loss(pct) => lab.nft(&peer_output_rule(&format!(
                                "tcp sport {PORT} numgen random mod 100 < {pct} drop"
                            )))?,
                            // Installed before the connection was made.
                            Fault::Middlebox(_) => {}
                        }
                        fault_at = Some(record.ts_ns);
                        if !args.json {
                            eprintln!("keepalive demo: fault injected: {}", args.fault);
                        }
                    }
                    Report::Timeout { detect_ms, predicted_ms, reason, probes } => {
                        verdict = Some(json!({
                            "event": "verdict", "fault": args.fault, "alive": false, "reason": reason.to_string(),
                            "probes": probes, "detected_ms": detect_ms, "predicted_ms": predicted_ms,
                        }));
                    }
                    Report::Reset { after_probe } => {
                        verdict = Some(json!({
                            "event": "verdict", "fault": args.fault, "alive": false, "reason": "reset",
                            "after_probe": after_probe, "detected_ms": fault_at.map(|f| record.ts_ns.saturating_sub(f) / 1_000_000),
                            "predicted_ms": null,
                        }));
                    }
                    _ => {}
                }
            }
        }
        drop((listener, client, server));
        let summary = watcher.summary();
        let verdict = verdict.unwrap_or_else(|| {
            json!({
                "event": "verdict", "fault": args.fault, "alive": true,
                "probes": summary.probes, "unanswered": summary.unanswered,
                "detected_ms": null, "predicted_ms": null,
            })
        });
        if args.json {
            crate::outln!("{verdict}")?;
        } else if verdict["alive"] == true {
            crate::outln!(
                "verdict: the connection survived: {} probes, {} unanswered{}",
                verdict["probes"],
                verdict["unanswered"],
                match fault {
                    Fault::Middlebox(secs) if secs > idle_s =>
                        format!(" (idle {idle_s}s < the middlebox's {secs}s: keepalive kept the flow alive)"),
                    _ => String::new(),
                }
            )?;
        } else if verdict["reason"] == "reset" {
            crate::outln!(
                "verdict: the peer's kernel reset the connection at probe #{} (the peer had rebooted)",
                verdict["after_probe"]
            )?;
        } else {
            let secs = |v: &serde_json::Value| v.as_u64().map_or("?".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0));
            if let Fault::Middlebox(cut) = fault {
                crate::outln!(
                    "verdict: the middlebox forgot the flow after {cut}s idle, before the first probe at idle {idle_s}s: set TCP_KEEPIDLE below {cut}s"
                )?;
            }
            crate::outln!(
                "verdict: dead peer detected after {} ({} timeout, settings predict {})",
                secs(&verdict["detected_ms"]),
                verdict["reason"].as_str().unwrap_or(""),
                secs(&verdict["predicted_ms"])
            )?;
        }
        Ok(ExitCode::SUCCESS)
    })
}
