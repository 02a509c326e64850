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
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use crate::model::{conn::Conn, owner::Owner};

/// Rescan /proc at most this often when an unknown inode shows up: a scan
/// reads every process's fd table.
const MIN_RESCAN_INTERVAL: Duration = Duration::from_secs(1);

/// Socket inode → owner, learnt from /proc.
///
/// A full scan reads every fd of every process: about 0.8 s of system time
/// with 100 000 sockets open, during which a watcher that scanned inline
/// would not drain the ring buffer (the benchmarks lost 90 000 events that
/// way at 50 000 connections). So the first scan runs before the programs
/// are attached, later ones on a background thread, and with `--pid` only
/// that process's fd table is read, inline, because it is cheap and a
/// record of the wanted process must not be dropped for want of its owner.
#[derive(Debug, Default)]
pub struct OwnerCache {
    /// foldhash: looked up for every event (see `Timelines::conns`).
    by_conn: foldhash::HashMap<Conn, Owner>,
    by_inode: HashMap<u64, Owner>,
    last_scan: Option<Instant>,
    only_pid: Option<u32>,
    scan_in_flight: Option<mpsc::Receiver<HashMap<u64, Owner>>>,
}

impl OwnerCache {
    /// Scans now (call before events flow); with `only_pid`, only that
    /// process's sockets are ever looked up.
    pub fn primed(only_pid: Option<u32>) -> Self {
        let mut cache = Self {
            only_pid,
            ..Self::default()
        };
        cache.by_inode = scan(only_pid);
        cache.last_scan = Some(Instant::now());
        cache
    }

    /// Learns the owner of `conn` from its socket inode, if the event had
    /// one, and returns the owner when known.
    pub fn observe(&mut self, conn: &Conn, socket_ino: Option<u64>) -> Option<Owner> {
        if let Some(owner) = self.by_conn.get(conn) {
            return Some(owner.clone());
        }
        let ino = socket_ino?;
        self.collect_finished_scan();
        if !self.by_inode.contains_key(&ino) && self.rescan_due() {
            self.rescan();
        }
        let owner = self.by_inode.get(&ino)?.clone();
        self.by_conn.insert(*conn, owner.clone());
        Some(owner)
    }

    fn rescan_due(&self) -> bool {
        self.scan_in_flight.is_none()
            && self
                .last_scan
                .is_none_or(|t| t.elapsed() >= MIN_RESCAN_INTERVAL)
    }

    fn rescan(&mut self) {
        self.last_scan = Some(Instant::now());
        if self.only_pid.is_some() {
            self.by_inode = scan(self.only_pid);
            return;
        }
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("owner-scan".into())
            .spawn(move || {
                let _ = tx.send(scan(None));
            });
        match spawned {
            Ok(_) => self.scan_in_flight = Some(rx),
            Err(err) => log::warn!("cannot start the /proc scan for socket owners: {err}"),
        }
    }

    fn collect_finished_scan(&mut self) {
        let Some(rx) = &self.scan_in_flight else {
            return;
        };
        match rx.try_recv() {
            Ok(by_inode) => {
                self.by_inode = by_inode;
                self.scan_in_flight = None;
            }
            Err(mpsc::TryRecvError::Empty) => {}
            Err(mpsc::TryRecvError::Disconnected) => self.scan_in_flight = None,
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

/// Every socket inode held by a process (or by `only_pid`), with the first
/// process found.
fn scan(only_pid: Option<u32>) -> HashMap<u64, Owner> {
    let holders = match only_pid {
        Some(pid) => {
            let mut holders = HashMap::new();
            holders_of_pid(pid, &mut holders);
            holders
        }
        None => socket_holders(),
    };
    holders
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
        if let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        {
            holders_of_pid(pid, &mut owners);
        }
    }
    owners
}

/// Adds the sockets `pid` holds to `owners` (first holder wins).
fn holders_of_pid(pid: u32, owners: &mut HashMap<u64, Holder>) {
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
        owners.entry(ino).or_insert_with(|| Holder {
            owner: Owner {
                pid,
                comm: Arc::clone(comm),
            },
            fd,
        });
    }
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
        let owners = scan(None);
        let owner = owners.get(&ino).expect("our socket is found");
        assert_eq!(owner.pid, std::process::id());
        assert!(!owner.comm.is_empty());
        assert_eq!(scan(Some(std::process::id())).get(&ino), Some(owner));

        let mut cache = OwnerCache::primed(None);
        let conn = Conn {
            local: listener.local_addr().unwrap(),
            remote: "127.0.0.1:1".parse().unwrap(),
        };
        let seen = cache.observe(&conn, Some(ino));
        assert_eq!(seen.map(|o| o.pid), Some(std::process::id()));
        assert_eq!(cache.observe(&conn, None), cache.owner_of(&conn));
        assert_eq!(
            cache.owner_of(&conn).map(|o| o.pid),
            Some(std::process::id())
        );
        cache.forget(&conn);
        assert_eq!(cache.owner_of(&conn), None);
    }
}
