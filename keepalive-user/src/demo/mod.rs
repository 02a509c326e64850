//! `keepalive demo`: proves keepalive settings against a real fault. A
//! private network namespace (`lab`) holds a server and a client on
//! loopback; the client gets the settings, the connection goes idle, the
//! fault is injected on the server's (the peer's) side with nftables, and
//! the observer shows the live timeline and a verdict.

mod lab;

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Command, ExitCode},
    time::Duration,
};

use serde_json::json;

use self::lab::{Lab, peer_output_rule, run_checked};
use crate::{
    host::signals::StopSignals,
    kernel::LoadOptions,
    model::{filter::ConnFilter, timeline::Report},
    observe::{pipeline::Observation, watcher::Watcher},
    render::{clock::Clock, json, text},
};

/// What the peer suffers once the first probe was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Blackhole,
    Reset,
    Loss(u32),
    Middlebox(u32),
}

/// A checked demo: the client's settings and the fault.
#[derive(Debug, Clone)]
pub struct DemoPlan {
    pub idle_s: u32,
    pub intvl_s: u32,
    pub count: u32,
    pub user_timeout_ms: u32,
    pub fault: Fault,
    /// As the user spelled it, for the lines and the verdict.
    pub fault_text: String,
    pub json: bool,
}

const PORT: u16 = 7;

pub fn run(plan: &DemoPlan) -> anyhow::Result<ExitCode> {
    let DemoPlan {
        idle_s,
        intvl_s,
        count,
        user_timeout_ms,
        fault,
        ..
    } = *plan;
    crate::kernel::privilege::require_bpf_privileges()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Before the lab exists: an early end drops it as success does.
        let mut stop = StopSignals::catch()?;
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
                .with_retries(count);
            let sock = socket2::SockRef::from(&client);
            sock.set_tcp_keepalive(&keepalive)?;
            if user_timeout_ms > 0 {
                sock.set_tcp_user_timeout(Some(Duration::from_millis(user_timeout_ms.into())))?;
            }
            let (server, _) = listener.accept()?;
            Ok((listener, client, server))
        })?;
        let client_addr: SocketAddr = client.local_addr()?;
        let lab_netns = lab.netns()?;
        let filter = ConnFilter {
            netns: Some(lab_netns),
            ports: vec![PORT],
            ..ConnFilter::default()
        };
        let mut watcher = Watcher::start(&LoadOptions::default(), filter, None)?;
        watcher.set_home_netns(lab_netns);
        let clock = Clock::now();
        if !plan.json {
            eprintln!(
                "keepalive demo: client {client_addr} -> server 127.0.0.1:{PORT} in namespace {}; keepalive idle {idle_s}s interval {intvl_s}s count {}{}; fault: {}",
                lab.name,
                count,
                if user_timeout_ms > 0 { format!(" user timeout {user_timeout_ms}ms") } else { String::new() },
                plan.fault_text
            );
        }
        // The first probe is answered; the fault starts half an interval later.
        let mut server = Some(server);
        let mut fault_at = None;
        let mut verdict = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(idle_s + intvl_s * (count + 2)) + 5);
        let mut stopped = None;
        while verdict.is_none() {
            let observations = tokio::select! {
                observations = watcher.next_observations() => observations?,
                _ = tokio::time::sleep_until(deadline) => break,
                signal = stop.next() => {
                    stopped = Some(signal);
                    break;
                }
            };
            for observation in observations {
                let Observation::Record(record, owner) = observation else { continue };
                if record.conn.local != client_addr {
                    continue;
                }
                if plan.json {
                    crate::outln!("{}", json::record_json(&clock, &record, &owner))?;
                } else {
                    crate::outln!("{}", text::record_line(&clock, &record, &owner, false))?;
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
                        if !plan.json {
                            eprintln!("keepalive demo: fault injected: {}", plan.fault_text);
                        }
                    }
                    Report::Timeout { detect_ms, predicted_ms, reason, probes } => {
                        verdict = Some(json!({
                            "event": "verdict", "fault": plan.fault_text, "alive": false, "reason": reason.to_string(),
                            "probes": probes, "detected_ms": detect_ms, "predicted_ms": predicted_ms,
                        }));
                    }
                    Report::Reset { after_probe } => {
                        verdict = Some(json!({
                            "event": "verdict", "fault": plan.fault_text, "alive": false, "reason": "reset",
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
        let verdict = verdict.unwrap_or_else(|| match stopped {
            Some(signal) => json!({
                "event": "verdict", "fault": plan.fault_text, "alive": null, "interrupted": signal.name(),
                "probes": summary.probes, "unanswered": summary.unanswered,
                "detected_ms": null, "predicted_ms": null,
            }),
            None => json!({
                "event": "verdict", "fault": plan.fault_text, "alive": true,
                "probes": summary.probes, "unanswered": summary.unanswered,
                "detected_ms": null, "predicted_ms": null,
            }),
        });
        if plan.json {
            crate::outln!("{verdict}")?;
        } else if let Some(signal) = stopped.filter(|_| verdict["alive"].is_null()) {
            crate::outln!(
                "verdict: none, interrupted by {} after {} probes, {} unanswered",
                signal.name(),
                verdict["probes"],
                verdict["unanswered"]
            )?;
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
        Ok(stopped.map_or(ExitCode::SUCCESS, |signal| ExitCode::from(signal.exit_code())))
    })
}
