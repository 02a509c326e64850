//! Which process holds a connection, for watch's `pid`/`comm` fields and
//! `--pid`.
//!
//! Probes leave from timer context, where the kernel's current task has
//! nothing to do with the connection, so the kernel programs report the
//! socket's inode number instead, and this maps inodes to the processes
//! holding them through /proc/PID/fd (which, unlike sock_diag, sees sockets
//! of every network namespace).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use crate::{events::Conn, output::Owner};

/// Rescan /proc at most this often when an unknown inode shows up: a scan
/// reads every process's fd table.
const MIN_RESCAN_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct OwnerCache {
    by_conn: HashMap<Conn, Owner>,
    by_inode: HashMap<u64, Owner>,
    last_scan: Option<Instant>,
}

impl OwnerCache {
    /// Learns the owner of `conn` from its socket inode, if the event had one.
    pub fn observe(&mut self, conn: &Conn, socket_ino: Option<u64>) {
        let Some(ino) = socket_ino else { return };
        if self.by_conn.contains_key(conn) {
            return;
        }
        if !self.by_inode.contains_key(&ino)
            && self
                .last_scan
                .is_none_or(|t| t.elapsed() >= MIN_RESCAN_INTERVAL)
        {
            self.by_inode = scan_proc();
            self.last_scan = Some(Instant::now());
        }
        if let Some(owner) = self.by_inode.get(&ino) {
            self.by_conn.insert(*conn, owner.clone());
        }
    }

    pub fn owner_of(&self, conn: &Conn) -> Option<Owner> {
        self.by_conn.get(conn).cloned()
    }

    pub fn forget(&mut self, conn: &Conn) {
        self.by_conn.remove(conn);
    }
}

/// `socket:[12345]` → 12345
fn socket_inode_of_link(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// A process holding a socket, and the descriptor it holds it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub owner: Owner,
    pub fd: i32,
}

/// Every socket inode held by a process, with the first process found.
fn scan_proc() -> HashMap<u64, Owner> {
    socket_holders()
        .into_iter()
        .map(|(ino, holder)| (ino, holder.owner))
        .collect()
}

/// Every socket inode held by a process: the first process and fd found.
pub fn socket_holders() -> HashMap<u64, Holder> {
    let mut owners = HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return owners;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Processes come and go during the scan: skip whatever vanished.
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let mut comm: Option<String> = None;
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let Some(ino) = target.to_str().and_then(socket_inode_of_link) else {
                continue;
            };
            let comm = comm.get_or_insert_with(|| {
                std::fs::read_to_string(entry.path().join("comm"))
                    .map(|c| c.trim_end().to_string())
                    .unwrap_or_default()
            });
            let Some(fd) = fd.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            owners.entry(ino).or_insert_with(|| Holder {
                owner: Owner {
                    pid,
                    comm: comm.clone(),
                },
                fd,
            });
        }
    }
    owners
}

#[cfg(test)]
mod tests {
    use std::{net::TcpListener, os::unix::fs::MetadataExt as _};

    use super::*;

    #[test]
    fn parses_socket_links() {
        assert_eq!(socket_inode_of_link("socket:[98765]"), Some(98765));
        assert_eq!(socket_inode_of_link("pipe:[98765]"), None);
        assert_eq!(socket_inode_of_link("/dev/null"), None);
    }

    /// Runs without root: a process may read its own fd table.
    #[test]
    fn finds_this_process_as_owner_of_its_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
        let ino = std::fs::metadata(format!("/proc/self/fd/{fd}"))
            .unwrap()
            .ino();
        let owners = scan_proc();
        let owner = owners.get(&ino).expect("our socket is found");
        assert_eq!(owner.pid, std::process::id());
        assert!(!owner.comm.is_empty());

        let mut cache = OwnerCache::default();
        let conn = Conn {
            local: listener.local_addr().unwrap(),
            remote: "127.0.0.1:1".parse().unwrap(),
        };
        cache.observe(&conn, Some(ino));
        assert_eq!(
            cache.owner_of(&conn).map(|o| o.pid),
            Some(std::process::id())
        );
        cache.forget(&conn);
        assert_eq!(cache.owner_of(&conn), None);
    }
}
