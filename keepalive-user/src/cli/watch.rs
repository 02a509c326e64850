//! `keepalive watch`: the live per-connection keepalive timeline, with
//! `--apply` to set values on new connections while watching.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use crate::{
    cli::args::{ConnFilterArgs, ValueArgs, parse_duration},
    error::usage,
    kernel::LoadOptions,
    observe::session::{Session, run_session_reporting},
};

#[derive(clap::Args, Debug, Clone)]
pub struct WatchArgs {
    #[command(flatten)]
    pub conns: ConnFilterArgs,
    /// Attach to this cgroup v2 directory instead of the root (all of the host).
    #[arg(long)]
    pub cgroup: Option<PathBuf>,
    /// Stop after this long (30s, 2m, 1h or plain seconds).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Ring buffer size in bytes: a power of two, at least the page size.
    #[arg(long, hide = true)]
    pub ring_bytes: Option<u32>,
    /// Also apply the keepalive values below to new connections matching
    /// --port/--dst (a sock_ops policy held while watch runs).
    #[arg(long)]
    pub apply: bool,
    /// Also show connects that never reached ESTABLISHED (refused, SYN
    /// timeout) as `connect_failed`.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub values: ValueArgs,
    /// Also write what was seen as a self-contained HTML page to FILE when
    /// watch ends (Ctrl-C, SIGTERM, --duration), as `keepalive report` does.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

fn validate(args: &WatchArgs) -> anyhow::Result<()> {
    args.conns.checked_pid()?;
    if let Some(path) = &args.report {
        crate::report::check_output(path)?;
    }
    if let Some(bytes) = args.ring_bytes
        && (bytes < 4096 || !bytes.is_power_of_two())
    {
        return Err(usage(
            "--ring-bytes must be a power of two of at least 4096",
        ));
    }
    Ok(())
}

pub fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    validate(&args)?;
    let mut load = LoadOptions {
        cgroup: args.cgroup.clone(),
        ring_bytes: args.ring_bytes,
        ..LoadOptions::default()
    };
    let mut banner = String::new();
    if args.apply {
        if args.conns.ports.len() > 1 || args.conns.dst.len() > 1 {
            return Err(usage("--apply takes at most one --port and one --dst"));
        }
        let values = args.values.values()?;
        load.policy = values.to_policy(
            args.conns.ports.first().copied(),
            args.conns.dst.first().copied(),
        );
        banner = format!("; applying {} to new connections", values.describe());
    } else if args.values.given() {
        return Err(usage(
            "keepalive values need --apply (or use `keepalive set`)",
        ));
    }
    // Like `ss`: run inside a namespace (`ip netns exec`, a container), it
    // shows that namespace unless asked for more; from the host, all.
    let scope = args.conns.netns_scope(crate::host::netns::in_initial())?;
    let session = Session {
        load,
        filter: args.conns.filter(&scope),
        pid: args.conns.pid,
        json: args.json,
        duration: args.duration,
        command: "watch",
        scope: scope.describe(),
        connect_failures: args.all,
        banner,
    };
    run_session_reporting(session, args.report)
}
