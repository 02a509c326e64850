//! `keepalive set`: keepalive options on the connections a user targets.
//!
//! `--new` holds a sock_ops policy that sets the values on every new
//! matching connection, active and passive, for as long as it runs; each
//! application is an `options_set` event with the values read back.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use crate::{
    cli::{parse_duration, usage},
    filter::{Cidr, ConnFilter, parse_port},
    kernel::{HookSet, LoadOptions},
    options::ValueArgs,
    watch::{Session, run_session},
};

#[derive(clap::Args, Debug)]
pub struct SetArgs {
    /// Apply the values to new connections (a sock_ops policy held until
    /// Ctrl-C, SIGTERM or --duration).
    #[arg(long)]
    pub new: bool,
    /// Only connections with this port at either end.
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
        anyhow::bail!(
            "setting options on existing connections (--pid, --fd, --port without --new) is not \
             implemented yet; --new applies them to new connections"
        );
    }
    if args.pid.is_some() || args.dry_run {
        return Err(usage(
            "--new applies to connections not made yet: --pid, --fd and --dry-run do not apply",
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
