//! `keepalive set`: keepalive options on the connections a user targets.
//!
//! Existing connections (`--pid [--fd]`, or `--port`/`--conn` with their
//! holders found through sock_diag and /proc) are changed from outside: their
//! sockets are duplicated (pidfd_getfd) and set through socket2, after every
//! target was checked; a socket whose change fails midway gets its old
//! values back, and the others are still changed. `--new` holds a sock_ops
//! policy that sets the values on every new matching connection, active and
//! passive, for as long as it runs; each application is an `options_set`
//! event with the values read back.

use std::{io::Write as _, path::PathBuf, process::ExitCode, time::Duration};

use crate::{
    cli::args::{ValueArgs, parse_duration, parse_port},
    error::usage,
    host::{
        netns::NetnsScope,
        option_change::change,
        pidfd::Process,
        sockdiag::Wanted,
        targets::{Target, targets_by_connection, targets_of_process},
    },
    kernel::{HookSet, LoadOptions},
    model::{
        filter::{Cidr, ConnFilter},
        keepalive::KeepaliveValues,
    },
    observe::session::{Session, run_session},
    render::changes::{HeldBy, change_json, change_line},
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
    /// With --port/--conn: the connection's network namespace, an `ip netns`
    /// name, a path or a pid (like `ss -N`); this one by default.
    #[arg(
        short = 'N',
        long = "netns",
        value_name = "NAME|PATH|PID",
        conflicts_with = "pid"
    )]
    pub netns: Option<String>,
    /// With --port/--conn: look in every network namespace.
    #[arg(long, conflicts_with_all = ["netns", "pid"])]
    pub all_netns: bool,
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
    if args.pid.is_some()
        || args.conn.is_some()
        || args.dry_run
        || args.netns.is_some()
        || args.all_netns
    {
        return Err(usage(
            "--new applies to connections not made yet: --pid, --fd, --conn, --netns, --all-netns and --dry-run do not apply",
        ));
    }
    let scope = match (args.port, args.dst) {
        (Some(p), Some(d)) => format!("port {p}, peers in {d}"),
        (Some(p), None) => format!("port {p}"),
        (None, Some(d)) => format!("peers in {d}"),
        (None, None) => "every connection".to_string(),
    };
    let session = Session {
        load: LoadOptions {
            cgroup: args.cgroup,
            ring_bytes: None,
            policy: values.to_policy(args.port, args.dst),
            // Closes too: without them every connection the policy ever saw
            // would stay in memory.
            hooks: HookSet {
                packets: false,
                tracepoints: false,
                closes: true,
                sockops: true,
            },
        },
        filter: ConnFilter {
            netns: None,
            ports: args.port.into_iter().collect(),
            src: Vec::new(),
            dst: args.dst.into_iter().collect(),
        },
        pid: None,
        json: args.json,
        duration: args.duration,
        command: "set --new",
        scope: "every network namespace".into(),
        connect_failures: false,
        banner: format!(
            "; policy active: {} on new connections ({scope})",
            values.describe()
        ),
    };
    run_session(session)
}

fn set_existing(args: &SetArgs, values: &KeepaliveValues) -> anyhow::Result<ExitCode> {
    if args.dst.is_some() || args.cgroup.is_some() || args.duration.is_some() {
        return Err(usage("--dst, --cgroup and --duration go with --new"));
    }
    let by_connection = match (&args.conn, args.port) {
        (Some(conn), _) => Some(Wanted::conn(conn[0], conn[1])),
        (None, Some(port)) => Some(Wanted::Port(port)),
        (None, None) => None,
    };
    if args.pid.is_none() && by_connection.is_none() {
        return Err(usage(
            "give --pid PID [--fd FD], --port P or --conn SRC DST for existing connections, or --new",
        ));
    }
    if !rustix::process::geteuid().is_root() {
        anyhow::bail!(
            "permission denied: changing another process's sockets needs root (CAP_SYS_PTRACE)"
        );
    }
    let mut skipped = Vec::new();
    let targets: Vec<Target> = match (args.pid, by_connection) {
        (Some(pid), _) => {
            let process = Process::open(pid)?;
            let comm = process.comm();
            targets_of_process(&process, &comm, args.fd)?
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
        (None, Some(wanted)) => {
            let scope = NetnsScope::choose(args.netns.as_deref(), args.all_netns, false)?;
            let found = targets_by_connection(&scope, wanted)?;
            skipped = found.skipped;
            found.targets
        }
        (None, None) => Vec::new(),
    };
    if targets.is_empty() {
        return Err(usage(
            "no connection of that process has that port: nothing changed",
        ));
    }
    for skip in &skipped {
        eprintln!("keepalive: skipped {skip}");
    }
    let mut failures = skipped.len();
    // A reader that went away (`| head`) must not stop the changes.
    let mut out = std::io::stdout().lock();
    for Target {
        pid,
        comm,
        fd,
        socket: target,
    } in &targets
    {
        let result = change(target, values, args.dry_run);
        failures += usize::from(result.error.is_some());
        let held_by = HeldBy {
            pid: *pid,
            comm,
            fd: *fd,
        };
        let line = if args.json {
            change_json(target, &held_by, &result, args.dry_run).to_string()
        } else {
            change_line(target, &held_by, &result, args.dry_run)
        };
        let _ = writeln!(out, "{line}");
    }
    Ok(if failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
