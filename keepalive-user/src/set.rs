//! `keepalive set`: keepalive options on the connections a user targets.
//!
//! Existing connections (`--pid [--fd]`, or `--port`/`--conn` with their
//! holders found through sock_diag and /proc) are changed from outside: their
//! sockets are duplicated (pidfd_getfd) and set through socket2, after every
//! target was checked; a socket whose change fails midway gets its old values
//! back, and the others are still changed. `--new` holds a sock_ops policy that sets the values on every new
//! matching connection, active and passive, for as long as it runs; each
//! application is an `options_set` event with the values read back.

use std::{
    collections::HashSet,
    io::Write as _,
    os::{
        fd::{OwnedFd, RawFd},
        unix::fs::MetadataExt as _,
    },
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use serde_json::json;
use socket2::{SockRef, TcpKeepalive};

use crate::{
    cli::{parse_duration, usage},
    events::Config,
    filter::{Cidr, ConnFilter, parse_port},
    kernel::{HookSet, LoadOptions},
    options::{KeepaliveValues, ValueArgs},
    output::{config_json, config_text},
    remote_fd::Process,
    sockdiag::{self, ALL_STATES, LISTEN, TIME_WAIT, Wanted, state_bit},
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

/// The socket's inode: one socket held by several descriptors is changed once.
fn inode_of(fd: OwnedFd) -> (u64, OwnedFd) {
    let file = std::fs::File::from(fd);
    let ino = file.metadata().map_or(0, |m| m.ino());
    (ino, file.into())
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
    let mut seen = HashSet::new();
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
            Err(err) if err.raw_os_error() == Some(libc::ESRCH) => {
                return Err(usage(format!("--pid {pid}: the process exited")));
            }
            Err(err) => anyhow::bail!("pidfd_getfd(pid {pid}, fd {fd}): {err}"),
        };
        let (ino, dup) = inode_of(dup);
        if ino != 0 && !seen.insert(ino) {
            continue;
        }
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

/// Existing connections `wanted` names in this network namespace, each
/// duplicated from the process holding it.
fn targets_by_connection(wanted: Wanted) -> anyhow::Result<Vec<Target>> {
    // Listeners and TIME-WAIT sockets have no live connection to change.
    let states = ALL_STATES & !state_bit(LISTEN) & !state_bit(TIME_WAIT);
    let sockets = sockdiag::find(wanted, states)?;
    let holders = crate::owner_cache::socket_holders();
    let mut found = Vec::new();
    let mut unowned = 0;
    for socket in sockets {
        let Some(holder) = holders.get(&socket.inode).filter(|_| socket.inode != 0) else {
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
                comm: holder.owner.comm.to_string(),
                fd: holder.fd,
                socket: tcp,
            });
        }
    }
    if found.is_empty() {
        let what = match wanted {
            Wanted::Conn { local, remote } => format!("connection {local} > {remote}"),
            Wanted::Port(p) => format!("connection with port {p}"),
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

/// One socket option of a change, set on its own so that a failure names it
/// and a rollback undoes exactly what was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    KeepAlive(bool),
    Idle(u32),
    Interval(u32),
    Count(u32),
    UserTimeout(u32),
}

impl Step {
    /// The steps from `before` to `values`, skipping values already in force
    /// (rewriting the default idle would pin it against later sysctl changes).
    /// SO_KEEPALIVE goes first: socket2 turns it on with each TCP_KEEP*
    /// option, so a rollback, in reverse, puts it back last.
    fn plan(before: &Config, values: &KeepaliveValues) -> Vec<Step> {
        let after = overlay(before, values);
        [
            (before.keepalive != after.keepalive).then_some(Step::KeepAlive(after.keepalive)),
            (before.idle_s != after.idle_s).then_some(Step::Idle(after.idle_s)),
            (before.intvl_s != after.intvl_s).then_some(Step::Interval(after.intvl_s)),
            (before.cnt != after.cnt).then_some(Step::Count(after.cnt)),
            (before.user_timeout_ms != after.user_timeout_ms)
                .then_some(Step::UserTimeout(after.user_timeout_ms)),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The same option with its value in `config`.
    fn undo(self, config: &Config) -> Step {
        match self {
            Step::KeepAlive(_) => Step::KeepAlive(config.keepalive),
            Step::Idle(_) => Step::Idle(config.idle_s),
            Step::Interval(_) => Step::Interval(config.intvl_s),
            Step::Count(_) => Step::Count(config.cnt),
            Step::UserTimeout(_) => Step::UserTimeout(config.user_timeout_ms),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Step::KeepAlive(_) => "SO_KEEPALIVE",
            Step::Idle(_) => "TCP_KEEPIDLE",
            Step::Interval(_) => "TCP_KEEPINTVL",
            Step::Count(_) => "TCP_KEEPCNT",
            Step::UserTimeout(_) => "TCP_USER_TIMEOUT",
        }
    }

    fn apply(self, fd: &OwnedFd) -> std::io::Result<()> {
        let sock = SockRef::from(fd);
        let secs = |s: u32| Duration::from_secs(s.into());
        match self {
            Step::KeepAlive(on) => sock.set_keepalive(on),
            Step::Idle(s) => sock.set_tcp_keepalive(&TcpKeepalive::new().with_time(secs(s))),
            Step::Interval(s) => {
                sock.set_tcp_keepalive(&TcpKeepalive::new().with_interval(secs(s)))
            }
            Step::Count(n) => sock.set_tcp_keepalive(&TcpKeepalive::new().with_retries(n)),
            Step::UserTimeout(ms) => {
                sock.set_tcp_user_timeout((ms > 0).then(|| Duration::from_millis(ms.into())))
            }
        }
    }
}

/// Changes one socket: its settings before and after, and what went wrong.
/// A change that fails midway undoes, option by option, what it had done.
fn change(target: &TcpTarget, values: &KeepaliveValues, dry_run: bool) -> Outcome {
    let before = match socket_options::read(&target.fd) {
        Ok(before) => before,
        Err(err) => {
            return Outcome {
                before: None,
                after: None,
                error: Some(format!("reading its settings: {err}; nothing changed")),
            };
        }
    };
    if dry_run {
        return Outcome {
            before: Some(before),
            after: Some(overlay(&before, values)),
            error: None,
        };
    }
    let mut done = Vec::new();
    let mut error = None;
    for step in Step::plan(&before, values) {
        match step.apply(&target.fd) {
            Ok(()) => done.push(step),
            Err(err) => {
                error = Some(format!("setting {}: {err}", step.name()));
                break;
            }
        }
    }
    if let Some(failed) = &mut error {
        let mut not_restored: Vec<String> = Vec::new();
        let mut undo = |step: Step| {
            if let Err(e) = step.apply(&target.fd) {
                not_restored.push(format!("{}: {e}", step.name()));
            }
        };
        done.iter().rev().for_each(|step| undo(step.undo(&before)));
        // A failed TCP_KEEP* option may still have turned SO_KEEPALIVE on.
        if socket_options::read(&target.fd).is_ok_and(|now| now.keepalive != before.keepalive) {
            undo(Step::KeepAlive(before.keepalive));
        }
        let after = socket_options::read(&target.fd).ok();
        failed.push_str(&if after == Some(before) {
            "; old values restored".to_string()
        } else {
            format!(
                "; old values NOT fully restored ({})",
                not_restored.join(", ")
            )
        });
        return Outcome {
            before: Some(before),
            after,
            error,
        };
    }
    Outcome {
        before: Some(before),
        after: socket_options::read(&target.fd).ok(),
        error,
    }
}

struct Outcome {
    before: Option<Config>,
    after: Option<Config>,
    error: Option<String>,
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
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!(
            "permission denied: changing another process's sockets needs root (CAP_SYS_PTRACE)"
        );
    }
    let targets: Vec<Target> = match (args.pid, by_connection) {
        (Some(pid), _) => {
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
        (None, Some(wanted)) => targets_by_connection(wanted)?,
        (None, None) => Vec::new(),
    };
    if targets.is_empty() {
        return Err(usage(
            "no connection of that process has that port: nothing changed",
        ));
    }
    let mut failures = 0;
    // A reader that went away (`| head`) must not stop the changes.
    let mut out = std::io::stdout().lock();
    for Target {
        pid,
        comm,
        fd,
        socket: target,
    } in &targets
    {
        let Outcome {
            before,
            after,
            error,
        } = change(target, values, args.dry_run);
        failures += usize::from(error.is_some());
        let line = if args.json {
            let mut v = json!({
                "event": "options_set",
                "src": target.local.to_string(),
                "dst": target.remote.to_string(),
                "pid": pid,
                "comm": comm,
                "fd": fd,
                "before": before.as_ref().map(config_json),
                "after": after.as_ref().map(config_json),
                "dry_run": args.dry_run,
            });
            if let Some(error) = &error {
                v["error"] = json!(error);
            }
            v.to_string()
        } else {
            let verb = if args.dry_run { "would set" } else { "set" };
            let text = |c: &Option<Config>| c.as_ref().map_or_else(|| "?".into(), config_text);
            let outcome = error.map_or_else(String::new, |e| format!("  FAILED: {e}"));
            format!(
                "{:>22} > {:<22} {comm}/{pid} fd {fd}  {verb}: {} -> {}{outcome}",
                target.local.to_string(),
                target.remote.to_string(),
                text(&before),
                text(&after),
            )
        };
        let _ = writeln!(out, "{line}");
    }
    Ok(if failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;

    fn own_connection() -> (TcpListener, TcpTarget) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let target = socket_options::as_tcp_target(client.into()).unwrap_or_else(|e| panic!("{e}"));
        (listener, target)
    }

    const DEFAULTS: Config = Config {
        keepalive: false,
        idle_s: 7200,
        intvl_s: 75,
        cnt: 9,
        user_timeout_ms: 0,
    };

    #[test]
    fn plan_sets_keepalive_first_and_skips_values_in_force() {
        let values = KeepaliveValues {
            keepalive: Some(true),
            idle_s: Some(30),
            intvl_s: Some(75),
            cnt: Some(3),
            user_timeout_ms: None,
        };
        assert_eq!(
            Step::plan(&DEFAULTS, &values),
            vec![Step::KeepAlive(true), Step::Idle(30), Step::Count(3)]
        );
        assert_eq!(Step::Idle(30).undo(&DEFAULTS), Step::Idle(7200));
        let off = KeepaliveValues {
            keepalive: Some(false),
            ..KeepaliveValues::default()
        };
        assert!(Step::plan(&DEFAULTS, &off).is_empty(), "already off");
    }

    /// Runs without root, on our own socket.
    #[test]
    fn a_change_the_kernel_refuses_midway_is_rolled_back() {
        let (_listener, target) = own_connection();
        let before = socket_options::read(&target.fd).unwrap();
        assert_eq!(before, DEFAULTS);
        // 200 probes is past the kernel's TCP_KEEPCNT limit: EINVAL after
        // SO_KEEPALIVE and TCP_KEEPIDLE were already set.
        let refused = KeepaliveValues {
            keepalive: Some(true),
            idle_s: Some(30),
            cnt: Some(200),
            ..KeepaliveValues::default()
        };
        let outcome = change(&target, &refused, false);
        let error = outcome.error.expect("the kernel refuses 200 probes");
        assert!(error.starts_with("setting TCP_KEEPCNT: "), "{error}");
        assert!(error.ends_with("; old values restored"), "{error}");
        assert_eq!(outcome.after, Some(before));
        assert_eq!(socket_options::read(&target.fd).unwrap(), before);

        let fine = KeepaliveValues {
            cnt: Some(4),
            ..refused
        };
        let dry = change(&target, &fine, true);
        assert_eq!(
            dry.after.map(|c| (c.keepalive, c.idle_s, c.cnt)),
            Some((true, 30, 4))
        );
        assert_eq!(socket_options::read(&target.fd).unwrap(), before, "dry run");
        let done = change(&target, &fine, false);
        assert_eq!(done.error, None);
        assert_eq!(done.after, dry.after);
    }
}
