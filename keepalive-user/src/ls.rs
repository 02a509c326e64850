//! `keepalive ls`: a snapshot of TCP connections, keepalive-centric, like
//! `ss -to`: who holds each one, the keepalive settings in force (read from
//! the socket itself), and the keepalive timer's countdown and probes out.

use std::process::ExitCode;

use serde_json::json;

use crate::{
    cli::usage,
    events::{Config, Conn},
    filter::{Cidr, ConnFilter, parse_port},
    output::{config_json, config_text},
    owner_cache::{Holder, socket_holders},
    remote_fd::Process,
    sockdiag::{self, TcpSocket, TimerKind},
    socket_options,
};

const LISTEN: u8 = 10;
const TIME_WAIT: u8 = 6;

#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// Only connections with this port at either end (repeatable).
    #[arg(long = "port", value_parser = parse_port)]
    pub ports: Vec<u16>,
    /// Only connections whose local address is in this prefix (repeatable).
    #[arg(long)]
    pub src: Vec<Cidr>,
    /// Only connections whose peer address is in this prefix (repeatable).
    #[arg(long)]
    pub dst: Vec<Cidr>,
    /// Only connections held by this process.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Only this TCP state (established, listen, time-wait, ...). By default
    /// every state but LISTEN and TIME-WAIT.
    #[arg(long)]
    pub state: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// Settings of a socket read through a duplicate of its holder's fd; none
/// without a holder (kernel-owned, or another namespace's process gone).
fn settings(holder: Option<&Holder>) -> Option<Config> {
    let holder = holder?;
    let process = Process::open(holder.owner.pid).ok()?;
    let fd = process.dup_fd(holder.fd).ok()?;
    socket_options::read(&fd).ok()
}

fn timer_text(socket: &TcpSocket) -> String {
    match socket.timer {
        Some(t) if t.kind == TimerKind::Keepalive => {
            format!(
                "keepalive {:.1}s probes {}",
                t.expires_ms as f64 / 1000.0,
                t.count
            )
        }
        Some(t) => format!("{:?} {:.1}s", t.kind, t.expires_ms as f64 / 1000.0).to_lowercase(),
        None => "-".into(),
    }
}

pub fn run(args: LsArgs) -> anyhow::Result<ExitCode> {
    let state = match &args.state {
        Some(name) => Some(sockdiag::state_by_name(name).ok_or_else(|| {
            usage(format!(
                "--state {name}: not a TCP state (established, listen, time-wait, ...)"
            ))
        })?),
        None => None,
    };
    if let Some(pid) = args.pid
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
    {
        return Err(usage(format!("--pid {pid}: no such process")));
    }
    let filter = ConnFilter {
        ports: args.ports.clone(),
        src: args.src.clone(),
        dst: args.dst.clone(),
    };
    let holders = socket_holders();
    let mut rows: Vec<TcpSocket> = sockdiag::dump_tcp()?
        .into_iter()
        .filter(|s| match state {
            Some(st) => s.state == st,
            None => s.state != LISTEN && s.state != TIME_WAIT,
        })
        .filter(|s| {
            filter.matches(&Conn {
                local: s.local,
                remote: s.remote,
            })
        })
        .filter(|s| args.pid.is_none() || holders.get(&s.inode).map(|h| h.owner.pid) == args.pid)
        .collect();
    rows.sort_by_key(|s| (s.local, s.remote));
    if !args.json {
        println!(
            "{:<11} {:>22}   {:<22} {:<18} {:<36} Timer",
            "State", "Local", "Peer", "Process", "Keepalive"
        );
    }
    for socket in &rows {
        let holder = holders.get(&socket.inode);
        let config = settings(holder);
        if args.json {
            let mut v = json!({
                "src": socket.local.to_string(),
                "dst": socket.remote.to_string(),
                "state": sockdiag::state_name(socket.state),
                "inode": socket.inode,
            });
            if let Some(h) = holder {
                v["pid"] = json!(h.owner.pid);
                v["comm"] = json!(h.owner.comm);
                v["fd"] = json!(h.fd);
            }
            if let Some(c) = &config {
                v["config"] = config_json(c);
            }
            if let Some(t) = socket.timer {
                v["timer"] = json!({"kind": t.kind, "expires_ms": t.expires_ms, "count": t.count});
            }
            println!("{v}");
        } else {
            let process = holder.map_or_else(
                || "-".into(),
                |h| format!("{}/{}", h.owner.comm, h.owner.pid),
            );
            println!(
                "{:<11} {:>22}   {:<22} {:<18} {:<36} {}",
                sockdiag::state_name(socket.state),
                socket.local.to_string(),
                socket.remote.to_string(),
                process,
                config.as_ref().map_or_else(|| "-".into(), config_text),
                timer_text(socket),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
