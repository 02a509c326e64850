//! Reading /proc for socket holders: a process's fd table, every process's,
//! a namespace's processes, and a process's parent and children.

use std::{collections::HashMap, sync::Arc};

use super::{Holder, Holders, MAX_NETNS_CANDIDATES};
use crate::model::{conn::NetnsIno, owner::Owner};

/// Whether `holder` still has socket `ino` at its descriptor: one readlink.
pub(super) fn still_holds(holder: &Holder, ino: u64) -> bool {
    std::fs::read_link(format!("/proc/{}/fd/{}", holder.owner.pid, holder.fd))
        .ok()
        .and_then(|target| target.to_str().and_then(socket_inode_of_link))
        == Some(ino)
}

/// `socket:[12345]` → 12345
pub(super) fn socket_inode_of_link(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Every socket inode held by a process (or by `only_pid`), with all its
/// holders in the order found.
pub(super) fn scan(only_pid: Option<u32>) -> Holders {
    let mut found = HashMap::new();
    match only_pid {
        Some(pid) => holders_of_pid(pid, &mut found),
        None => {
            for pid in pids() {
                holders_of_pid(pid, &mut found);
            }
        }
    }
    found
}

/// The processes in network namespace `netns` (one readlink each).
pub(super) fn pids_in_netns(netns: NetnsIno) -> Vec<u32> {
    let wanted = format!("net:[{netns}]");
    pids()
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|target| target.as_os_str() == wanted.as_str())
        })
        .take(MAX_NETNS_CANDIDATES)
        .collect()
}

/// The parent of `pid`, from /proc/PID/stat (its fourth field).
pub(super) fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: count after it.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

/// The children of `pid`'s threads (/proc/PID/task/TID/children).
pub(super) fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return children;
    };
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            children.extend(
                list.split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    children
}

pub(super) fn pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str().and_then(|n| n.parse().ok()))
}

/// Every socket inode held by a process, with every holder (like `ss -p`).
pub fn socket_holders_all() -> Holders {
    scan(None)
}

/// Every socket inode held by a process: the first process and fd found.
pub fn socket_holders() -> HashMap<u64, Holder> {
    scan(None)
        .into_iter()
        .filter_map(|(ino, holders)| Some((ino, holders.into_iter().next()?)))
        .collect()
}

/// Adds the sockets `pid` holds to `found`.
pub(super) fn holders_of_pid(pid: u32, found: &mut Holders) {
    let dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    // Processes come and go during the scan: skip whatever vanished.
    let Ok(fds) = std::fs::read_dir(dir.join("fd")) else {
        return;
    };
    let mut comm: Option<Arc<str>> = None;
    for fd in fds.flatten() {
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        let Some(ino) = target.to_str().and_then(socket_inode_of_link) else {
            continue;
        };
        let comm = comm.get_or_insert_with(|| {
            std::fs::read_to_string(dir.join("comm"))
                .map(|c| c.trim_end().into())
                .unwrap_or_else(|_| "".into())
        });
        let Some(fd) = fd.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let holders = found.entry(ino).or_default();
        // One entry per process, however many of its fds hold the socket.
        if !holders.iter().any(|h| h.owner.pid == pid) {
            holders.push(Holder {
                owner: Owner {
                    pid,
                    comm: Arc::clone(comm),
                },
                fd,
            });
        }
    }
}
