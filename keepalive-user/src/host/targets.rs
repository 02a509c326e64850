//! Finding the sockets `set` changes in other processes: every TCP socket of
//! a process (or one of its descriptors), or the holders of connections
//! found in the socket table. Each is duplicated into this process and
//! checked before anything changes.

use std::{
    collections::HashSet,
    os::{
        fd::{OwnedFd, RawFd},
        unix::fs::MetadataExt as _,
    },
};

use crate::{
    error::usage,
    host::{
        netns::NetnsScope,
        owners::socket_holders,
        pidfd::Process,
        sockdiag::{self, ALL_STATES, LISTEN, TIME_WAIT, Wanted, state_bit},
        socket_options::{TcpTarget, as_tcp_target},
    },
};

/// One socket to change, and who holds it.
pub struct Target {
    pub pid: u32,
    pub comm: String,
    pub fd: RawFd,
    pub socket: TcpTarget,
}

/// The socket's inode: one socket held by several descriptors is changed once.
fn inode_of(fd: OwnedFd) -> (u64, OwnedFd) {
    let file = std::fs::File::from(fd);
    let ino = file.metadata().map_or(0, |m| m.ino());
    (ino, file.into())
}

/// The sockets of `process` (or its one descriptor `only_fd`, as `--pid
/// [--fd]` name them), all checked before anything changes.
pub fn targets_of_process(
    process: &Process,
    comm: &str,
    only_fd: Option<RawFd>,
) -> anyhow::Result<Vec<(RawFd, TcpTarget)>> {
    let pid = process.pid;
    let fds = match only_fd {
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
                if only_fd.is_some() {
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
        match as_tcp_target(dup) {
            Ok(target) => found.push((fd, target)),
            Err(why) if only_fd.is_some() => {
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
pub fn targets_by_connection(scope: &NetnsScope, wanted: Wanted) -> anyhow::Result<Vec<Target>> {
    // Listeners and TIME-WAIT sockets have no live connection to change.
    let states = ALL_STATES & !state_bit(LISTEN) & !state_bit(TIME_WAIT);
    let sockets = sockdiag::find(scope, wanted, states)?;
    let holders = socket_holders();
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
        if let Ok(tcp) = as_tcp_target(dup) {
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
            "no {what} held by a process in {}{note}: nothing changed",
            scope.describe()
        )));
    }
    Ok(found)
}
