//! Finding the sockets `set` changes in other processes: every TCP socket of
//! a process (or one of its descriptors), or the holders of connections
//! found in the socket table. Each is duplicated into this process and
//! checked before anything changes.

use std::{
    collections::HashSet,
    os::{
        fd::{OwnedFd, RawFd},
        unix::fs::{FileTypeExt as _, MetadataExt as _},
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

/// A duplicated descriptor that is no longer the socket the table named.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("its fd now holds {now}, not socket inode {expected}")]
pub struct NotTheSameSocket {
    pub expected: u64,
    /// What the descriptor holds now, as /proc would name it.
    pub now: String,
}

/// `dup` if it is still the socket `expected_ino` that sock_diag reported.
/// The fd number came from a /proc scan: in between, the process may have
/// closed it and reused the number for another socket, which must not be
/// changed in its place.
pub fn still_the_socket(dup: OwnedFd, expected_ino: u64) -> Result<OwnedFd, NotTheSameSocket> {
    let file = std::fs::File::from(dup);
    let now = match file.metadata() {
        Ok(meta) if meta.file_type().is_socket() && meta.ino() == expected_ino => {
            return Ok(file.into());
        }
        Ok(meta) if meta.file_type().is_socket() => format!("socket inode {}", meta.ino()),
        Ok(meta) => format!("{} (inode {})", kind_of(meta.file_type()), meta.ino()),
        Err(err) => format!("something fstat cannot read ({err})"),
    };
    Err(NotTheSameSocket {
        expected: expected_ino,
        now,
    })
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

/// A descriptor that is not a socket, as `ls -l /proc/PID/fd` would tell it.
fn kind_of(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_file() {
        "a regular file"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a pipe"
    } else if file_type.is_char_device() {
        "a character device"
    } else {
        "neither a socket nor a file"
    }
}

/// What `--port`/`--conn` found: the sockets to change, and the ones skipped
/// because their descriptor changed hands after the scan (one line each).
pub struct ByConnection {
    pub targets: Vec<Target>,
    pub skipped: Vec<String>,
}

/// Existing connections `wanted` names in this network namespace, each
/// duplicated from the process holding it and checked to be the very socket
/// sock_diag reported.
pub fn targets_by_connection(scope: &NetnsScope, wanted: Wanted) -> anyhow::Result<ByConnection> {
    // Listeners and TIME-WAIT sockets have no live connection to change.
    let states = ALL_STATES & !state_bit(LISTEN) & !state_bit(TIME_WAIT);
    let sockets = sockdiag::find(scope, wanted, states)?;
    let holders = socket_holders();
    let mut targets = Vec::new();
    let mut skipped = Vec::new();
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
        let dup = match still_the_socket(dup, socket.inode) {
            Ok(dup) => dup,
            Err(why) => {
                skipped.push(format!(
                    "{} > {} (pid {} {} fd {}): {why}",
                    socket.local, socket.remote, holder.owner.pid, holder.owner.comm, holder.fd
                ));
                continue;
            }
        };
        if let Ok(tcp) = as_tcp_target(dup) {
            targets.push(Target {
                pid: holder.owner.pid,
                comm: holder.owner.comm.to_string(),
                fd: holder.fd,
                socket: tcp,
            });
        }
    }
    if targets.is_empty() {
        let what = match wanted {
            Wanted::Conn { local, remote } => format!("connection {local} > {remote}"),
            Wanted::Port(p) => format!("connection with port {p}"),
        };
        if !skipped.is_empty() {
            // Not a usage error: the connection existed when it was named.
            anyhow::bail!(
                "the {what} changed hands while it was looked up, skipped {}: nothing changed",
                skipped.join("; ")
            );
        }
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
    Ok(ByConnection { targets, skipped })
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    fn dup_of(fd: impl std::os::fd::AsFd) -> OwnedFd {
        fd.as_fd().try_clone_to_owned().unwrap()
    }

    #[test]
    fn the_socket_the_table_named_is_kept() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (ino, dup) = inode_of(dup_of(&listener));
        assert_ne!(ino, 0);
        assert!(still_the_socket(dup, ino).is_ok());
    }

    #[test]
    fn another_socket_under_the_same_fd_is_refused() {
        let named = TcpListener::bind("127.0.0.1:0").unwrap();
        let reused = TcpListener::bind("127.0.0.1:0").unwrap();
        let (named_ino, _) = inode_of(dup_of(&named));
        let (reused_ino, _) = inode_of(dup_of(&reused));
        let refused = still_the_socket(dup_of(&reused), named_ino).unwrap_err();
        assert_eq!(
            refused,
            NotTheSameSocket {
                expected: named_ino,
                now: format!("socket inode {reused_ino}"),
            }
        );
    }

    #[test]
    fn a_file_with_the_sockets_inode_number_is_refused() {
        // Inode numbers are per file system: only a socket can match.
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let (ino, _) = inode_of(dup_of(&file));
        let refused = still_the_socket(dup_of(&file), ino).unwrap_err();
        assert_eq!(refused.now, format!("a regular file (inode {ino})"));
    }
}
