//! `keepalive set`: keepalive options on the connections a user targets.
//!
//! Existing connections (`--pid`, `--pid --fd`) are changed from outside:
//! their sockets are duplicated (pidfd_getfd) and set through socket2, after
//! every target was checked; a socket whose change fails midway gets its old
//! values back. `--new` holds a sock_ops policy that sets the values on every new
//! matching connection, active and passive, for as long as it runs; each
//! application is an `options_set` event with the values read back.

use std::{os::fd::RawFd, path::PathBuf, process::ExitCode, time::Duration};

use serde_json::json;

use crate::{
    cli::{parse_duration, usage},
    events::Config,
    filter::{Cidr, ConnFilter, parse_port},
    kernel::{HookSet, LoadOptions},
    options::{KeepaliveValues, ValueArgs},
    output::{config_json, config_text},
    remote_fd::Process,
    socket_options::{self, TcpTarget},
    watch::{Session, run_session},
};

#[derive(clap::Args, Debug)]
pub struct SetArgs {
    /// Apply the values to new connections (a sock_ops policy held until
    /// Ctrl-C, SIGTERM or --duration).
    #[arg(long)]
    pub new: bool,
    /// Connections with this port at either end: existing ones (their owners
    /// are found through sock_diag and /proc), or new ones with --new.
    #[arg(long, value_parser = parse_port)]
    pub port: Option<u16>,
    /// Only connections to peers in this prefix (with --new).
    #[arg(long)]
    pub dst: Option<Cidr>,
    /// Only connections of processes below this cgroup v2 directory (with --new).
    #[arg(long)]
    pub cgroup: Option<PathBuf>,
    /// Hold the policy this long (30s, 2m, 1h or plain seconds).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Target every TCP socket of this process (existing connections).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Target one existing connection by its two ends, as `ls` shows them.
    #[arg(long, num_args = 2, value_names = ["SRC", "DST"], conflicts_with = "pid")]
    pub conn: Option<Vec<std::net::SocketAddr>>,
    /// With --pid: only this file descriptor.
    #[arg(long, requires = "pid")]
    pub fd: Option<i32>,
    /// Show the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub values: ValueArgs,
}

pub fn run(args: SetArgs) -> anyhow::Result<ExitCode> {
    let values = args.values.values()?;
    if !args.new {
        return set_existing(&args, &values);
    }
    if args.pid.is_some() || args.conn.is_some() || args.dry_run {
        return Err(usage(
            "--new applies to connections not made yet: --pid, --fd, --conn and --dry-run do not apply",
        ));
    }
    let scope = match (args.port, args.dst) {
        (Some(p), Some(d)) => format!("port {p}, peers in {}/{}", d.addr, d.prefix_len),
        (Some(p), None) => format!("port {p}"),
        (None, Some(d)) => format!("peers in {}/{}", d.addr, d.prefix_len),
        (None, None) => "every connection".to_string(),
    };
    let session = Session {
        load: LoadOptions {
            cgroup: args.cgroup,
            ring_bytes: None,
            policy: values.to_policy(args.port, args.dst),
            hooks: HookSet {
                packets: false,
                tracepoints: false,
                sockops: true,
            },
        },
        filter: ConnFilter {
            ports: args.port.into_iter().collect(),
            src: Vec::new(),
            dst: args.dst.into_iter().collect(),
        },
        pid: None,
        json: args.json,
        duration: args.duration,
        banner: format!(
            "; policy active: {} on new connections ({scope})",
            values.describe()
        ),
    };
    run_session(session)
}

/// `before` with `values` laid over it: what a change will leave.
fn overlay(before: &Config, values: &KeepaliveValues) -> Config {
    Config {
        keepalive: values.keepalive.unwrap_or(before.keepalive),
        idle_s: values.idle_s.unwrap_or(before.idle_s),
        intvl_s: values.intvl_s.unwrap_or(before.intvl_s),
        cnt: values.cnt.unwrap_or(before.cnt),
        user_timeout_ms: values.user_timeout_ms.unwrap_or(before.user_timeout_ms),
    }
}

/// One socket to change, and who holds it.
struct Target {
    pid: u32,
    comm: String,
    fd: RawFd,
    socket: TcpTarget,
}

/// The sockets `--pid [--fd]` names, all checked before anything changes.
fn targets(
    args: &SetArgs,
    process: &Process,
    comm: &str,
) -> anyhow::Result<Vec<(RawFd, TcpTarget)>> {
    let pid = process.pid;
    let fds = match args.fd {
        Some(fd) => vec![fd],
        None => process.socket_fds()?,
    };
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for fd in fds {
        let dup = match process.dup_fd(fd) {
            Ok(dup) => dup,
            Err(err) if err.raw_os_error() == Some(libc::EBADF) => {
                if args.fd.is_some() {
                    return Err(usage(format!("pid {pid} ({comm}) has no fd {fd}")));
                }
                continue; // closed since /proc was read
            }
            Err(err) if err.raw_os_error() == Some(libc::EPERM) => {
                anyhow::bail!(
                    "permission denied duplicating fd {fd} of pid {pid}: needs root (CAP_SYS_PTRACE)"
                )
            }
            Err(err) => anyhow::bail!("pidfd_getfd(pid {pid}, fd {fd}): {err}"),
        };
        match socket_options::as_tcp_target(dup) {
            Ok(target) => found.push((fd, target)),
            Err(why) if args.fd.is_some() => {
                return Err(usage(format!(
                    "fd {fd} of pid {pid} ({comm}) is {why}: nothing changed"
                )));
            }
            Err(why) => skipped.push(format!("fd {fd}: {why}")),
        }
    }
    if found.is_empty() {
        let detail = if skipped.is_empty() {
            "no sockets".to_string()
        } else {
            skipped.join(", ")
        };
        return Err(usage(format!(
            "pid {pid} ({comm}) has no connected TCP socket ({detail}): nothing changed"
        )));
    }
    Ok(found)
}

/// Existing connections with `port` at either end, or exactly `conn`, in
/// this network namespace, each duplicated from the process holding it.
fn targets_by_connection(
    port: Option<u16>,
    conn: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
) -> anyhow::Result<Vec<Target>> {
    let holders = crate::owner_cache::socket_holders();
    let mut found = Vec::new();
    let mut unowned = 0;
    for socket in crate::sockdiag::dump_tcp()? {
        let wanted = match (conn, port) {
            (Some((src, dst)), _) => socket.local == src && socket.remote == dst,
            (None, Some(p)) => socket.local.port() == p || socket.remote.port() == p,
            (None, None) => false,
        };
        // Listeners and TIME-WAIT sockets have no live connection to change.
        if !wanted || socket.state == 10 || socket.state == 6 {
            continue;
        }
        let Some(holder) = holders.get(&socket.inode) else {
            unowned += 1;
            continue;
        };
        // A process or connection gone since the table was read is skipped.
        let Ok(process) = Process::open(holder.owner.pid) else {
            continue;
        };
        let Ok(dup) = process.dup_fd(holder.fd) else {
            continue;
        };
        if let Ok(tcp) = socket_options::as_tcp_target(dup) {
            found.push(Target {
                pid: holder.owner.pid,
                comm: holder.owner.comm.clone(),
                fd: holder.fd,
                socket: tcp,
            });
        }
    }
    if found.is_empty() {
        let what = match (conn, port) {
            (Some((src, dst)), _) => format!("connection {src} > {dst}"),
            (_, p) => format!("connection with port {}", p.unwrap_or(0)),
        };
        let note = if unowned > 0 {
            format!(" ({unowned} without an owning process)")
        } else {
            String::new()
        };
        return Err(usage(format!(
            "no {what} held by a process in this network namespace{note}: nothing changed"
        )));
    }
    Ok(found)
}

fn set_existing(args: &SetArgs, values: &KeepaliveValues) -> anyhow::Result<ExitCode> {
    if args.dst.is_some() || args.cgroup.is_some() || args.duration.is_some() {
        return Err(usage("--dst, --cgroup and --duration go with --new"));
    }
    if args.pid.is_none() && args.port.is_none() && args.conn.is_none() {
        return Err(usage(
            "give --pid PID [--fd FD], --port P or --conn SRC DST for existing connections, or --new",
        ));
    }
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!(
            "permission denied: changing another process's sockets needs root (CAP_SYS_PTRACE)"
        );
    }
    let targets: Vec<Target> = match args.pid {
        Some(pid) => {
            let process = Process::open(pid)?;
            let comm = process.comm();
            targets(args, &process, &comm)?
                .into_iter()
                .filter(|(_, t)| {
                    args.port
                        .is_none_or(|p| t.local.port() == p || t.remote.port() == p)
                })
                .map(|(fd, socket)| Target {
                    pid,
                    comm: comm.clone(),
                    fd,
                    socket,
                })
                .collect()
        }
        None => targets_by_connection(args.port, args.conn.as_ref().map(|c| (c[0], c[1])))?,
    };
    if targets.is_empty() {
        return Err(usage(
            "no connection of that process has that port: nothing changed",
        ));
    }
    let mut failures = 0;
    for Target {
        pid,
        comm,
        fd,
        socket: target,
    } in &targets
    {
        let before = socket_options::read(&target.fd)?;
        let (after, error) = if args.dry_run {
            (overlay(&before, values), None)
        } else {
            match socket_options::apply(&target.fd, values) {
                Ok(()) => (socket_options::read(&target.fd)?, None),
                Err(err) => {
                    failures += 1;
                    let restored = socket_options::restore(&target.fd, &before);
                    let note = match restored {
                        Ok(()) => format!("{err}; old values restored"),
                        Err(again) => {
                            format!("{err}; restoring the old values failed too: {again}")
                        }
                    };
                    (
                        socket_options::read(&target.fd).unwrap_or(before),
                        Some(note),
                    )
                }
            }
        };
        if args.json {
            let mut v = json!({
                "event": "options_set",
                "src": target.local.to_string(),
                "dst": target.remote.to_string(),
                "pid": pid,
                "comm": comm,
                "fd": fd,
                "before": config_json(&before),
                "after": config_json(&after),
                "dry_run": args.dry_run,
            });
            if let Some(error) = &error {
                v["error"] = json!(error);
            }
            println!("{v}");
        } else {
            let verb = if args.dry_run { "would set" } else { "set" };
            let outcome = error.map_or_else(String::new, |e| format!("  FAILED: {e}"));
            println!(
                "{:>22} > {:<22} {comm}/{pid} fd {fd}  {verb}: {} -> {}{outcome}",
                target.local.to_string(),
                target.remote.to_string(),
                config_text(&before),
                config_text(&after),
            );
        }
    }
    Ok(if failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
