//! Which processes hold a connection, for watch's `pid`/`comm` fields and
//! `--pid`.
//!
//! Probes leave from timer context, where the kernel's current task has
//! nothing to do with the connection, so the kernel programs report the
//! socket's inode number instead, and this maps inodes to the processes
//! holding them through /proc/PID/fd (which, unlike sock_diag, sees sockets
//! of every network namespace).
//!
//! Kept: a hand-written scan rather than the procfs crate, which was 1.2 to
//! 1.5 times slower on 102 004 sockets (see the layout commit).

use std::{
    collections::HashMap,
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

mod scan;

use self::scan::{children_of, holders_of_pid, parent_of, pids_in_netns, scan, still_holds};
pub use self::scan::{socket_holders, socket_holders_all};
use crate::model::conn::{Conn, NetnsIno};

/// Full scans start at most this often while an inode waits for its
/// owner, and never sooner than `SCAN_PAUSE_FACTOR` times the last scan's
/// own length after it started: a scan reads every process's fd table
/// (0.25 s with 100 000 sockets), so connection churn costs at most a fifth
/// of a core.
const MIN_RESCAN_INTERVAL: Duration = Duration::from_secs(1);
const SCAN_PAUSE_FACTOR: u32 = 5;
/// Processes tried before a full scan for a new connection's socket: the
/// holders of the same local port, their parents' children (a pre-forking
/// server's workers), at most this many.
const MAX_CANDIDATES: usize = 32;
/// Processes read, at most, when a connection's namespace is another than
/// ours (a container's processes, before a full scan of the host).
pub(crate) const MAX_NETNS_CANDIDATES: usize = 512;
/// A socket whose holders were learnt this recently may be in a hand-off (a
/// pre-forking server accepts, forks, and closes its copy): its holders are
/// checked again before they are shown, at most every `VERIFY_EVERY`.
const HANDOFF_WINDOW: Duration = Duration::from_secs(30);
const VERIFY_EVERY: Duration = Duration::from_millis(200);

pub use crate::model::owner::Holder;

/// What is known of a connection's owners right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Known(Arc<[Holder]>),
    /// A scan is looking for its socket: worth waiting a moment.
    Pending,
    /// No socket inode to look for (kernel-owned, orphaned, an answer on a
    /// connection whose probe was never seen).
    Unknown,
}

/// Socket inode → its holders, as one scan found them.
pub(crate) type Holders = HashMap<u64, Vec<Holder>>;
/// When a scan started, and what it found.
type ScanResult = (Instant, Duration, Holders);

/// When a socket's holders were learnt and last checked: kept only while
/// it may be in a hand-off (`HANDOFF_WINDOW`).
#[derive(Debug, Clone, Copy)]
struct Young {
    learned: Instant,
    verified: Instant,
}

/// Socket inode → holders, learnt from /proc.
///
/// A full scan reads every fd of every process: about 0.25 s with 100 000
/// sockets open, during which a watcher that scanned inline would not drain
/// the ring buffer. So the first scan runs before the programs are
/// attached, later ones on a background thread, and with `--pid` only that
/// process's fd table is read, inline, because it is cheap.
#[derive(Debug, Default)]
pub struct OwnerCache {
    /// One allocation per socket: a host may have 100 000.
    by_inode: HashMap<u64, Arc<[Holder]>>,
    young: HashMap<u64, Young>,
    /// foldhash: looked up for every shown record (see `Timelines::conns`).
    /// Answers carry no inode: it is remembered from the connection's probe.
    /// With it, whether its holders were noted under its port.
    inode_of: foldhash::HashMap<Conn, (u64, bool)>,
    only_pid: Option<u32>,
    last_scan_start: Option<Instant>,
    last_scan_took: Duration,
    scan_in_flight: Option<mpsc::Receiver<ScanResult>>,
    /// Inodes a lookup is waiting for.
    wanted: Vec<u64>,
    /// Processes known to hold connections of a (namespace, local port):
    /// where a new connection of that port is looked for first.
    pids_by_port: HashMap<(NetnsIno, u16), Vec<u32>>,
    own_netns: NetnsIno,
}

impl OwnerCache {
    /// Scans now (call before events flow); with `only_pid`, only that
    /// process's sockets are ever looked up.
    pub fn primed(only_pid: Option<u32>) -> Self {
        let mut cache = Self {
            only_pid,
            own_netns: crate::host::netns::own(),
            ..Self::default()
        };
        let now = Instant::now();
        cache.last_scan_start = Some(now);
        cache.merge(now, scan(only_pid));
        // What was there before we started is not in a hand-off we could
        // tell: only sockets learnt later are checked again.
        cache.young.clear();
        cache
    }

    /// Remembers which socket inode `conn` has, when the event told.
    pub fn learn_inode(&mut self, conn: &Conn, socket_ino: Option<u64>) {
        if let Some(ino) = socket_ino {
            let known = self.inode_of.entry(*conn).or_insert((ino, false));
            if known.0 != ino {
                *known = (ino, false);
            }
        }
    }

    /// The owners of `conn` now, checked again if its socket may be in a
    /// hand-off; asks for a scan when its socket is unseen.
    pub fn lookup(&mut self, conn: &Conn) -> Lookup {
        let Some(&(ino, port_noted)) = self.inode_of.get(conn) else {
            return Lookup::Unknown;
        };
        let now = Instant::now();
        let lookup = self.lookup_inode(conn, ino, now);
        // Each connection's holders are noted under its port once.
        if let (Lookup::Known(owners), false) = (&lookup, port_noted) {
            if let Some(known) = self.inode_of.get_mut(conn) {
                known.1 = true;
            }
            let pids = self
                .pids_by_port
                .entry((conn.netns, conn.local.port()))
                .or_default();
            for holder in owners.iter() {
                if !pids.contains(&holder.owner.pid) && pids.len() < MAX_CANDIDATES {
                    pids.push(holder.owner.pid);
                }
            }
        }
        lookup
    }

    fn lookup_inode(&mut self, conn: &Conn, ino: u64, now: Instant) -> Lookup {
        if let Some(holders) = self.by_inode.get(&ino) {
            let Some(young) = self.young.get_mut(&ino) else {
                return Lookup::Known(Arc::clone(holders));
            };
            if now.duration_since(young.learned) >= HANDOFF_WINDOW {
                self.young.remove(&ino);
                return Lookup::Known(Arc::clone(holders));
            }
            if now.duration_since(young.verified) < VERIFY_EVERY {
                return Lookup::Known(Arc::clone(holders));
            }
            young.verified = now;
            let still: Vec<Holder> = holders
                .iter()
                .filter(|h| still_holds(h, ino))
                .cloned()
                .collect();
            if still.len() == holders.len() {
                return Lookup::Known(Arc::clone(holders));
            }
            if !still.is_empty() {
                let still: Arc<[Holder]> = still.into();
                self.by_inode.insert(ino, Arc::clone(&still));
                return Lookup::Known(still);
            }
            // Every holder let go of it since: whoever took it over is new.
            self.by_inode.remove(&ino);
            self.young.remove(&ino);
        }
        if self.only_pid.is_some() {
            // One process's fd table: cheap enough to read at once, though
            // not for every event of every other process.
            if self
                .last_scan_start
                .is_none_or(|t| now.duration_since(t) >= VERIFY_EVERY)
            {
                self.last_scan_start = Some(now);
                self.merge(now, scan(self.only_pid));
            }
            return match self.by_inode.get(&ino) {
                Some(holders) => Lookup::Known(Arc::clone(holders)),
                None => Lookup::Unknown,
            };
        }
        if let Some(owners) = self.try_candidates(conn, ino, now) {
            return Lookup::Known(owners);
        }
        if !self.wanted.contains(&ino) {
            self.wanted.push(ino);
        }
        self.poll();
        Lookup::Pending
    }

    /// Reads the fd tables of the processes likely to hold `ino`: those
    /// holding other connections of its local port and the other children
    /// of their parents (a pre-forking server hands each connection to a
    /// new worker); then, for a connection in another namespace than ours
    /// (a container), the processes in that namespace.
    fn try_candidates(&mut self, conn: &Conn, ino: u64, now: Instant) -> Option<Arc<[Holder]>> {
        let mut candidates = Vec::new();
        if let Some(known) = self.pids_by_port.get(&(conn.netns, conn.local.port())) {
            for pid in known {
                candidates.push(*pid);
                if let Some(parent) = parent_of(*pid) {
                    candidates.push(parent);
                    candidates.extend(children_of(parent));
                }
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        candidates.truncate(MAX_CANDIDATES);
        if let Some(owners) = self.find_among(candidates, ino, now) {
            return Some(owners);
        }
        if conn.netns == 0 || conn.netns == self.own_netns {
            return None;
        }
        self.find_among(pids_in_netns(conn.netns), ino, now)
    }

    fn find_among(&mut self, pids: Vec<u32>, ino: u64, now: Instant) -> Option<Arc<[Holder]>> {
        if pids.is_empty() {
            return None;
        }
        let mut found = Holders::new();
        for pid in pids {
            holders_of_pid(pid, &mut found);
        }
        let holders: Arc<[Holder]> = found.remove(&ino)?.into();
        self.by_inode.insert(ino, Arc::clone(&holders));
        self.young.insert(
            ino,
            Young {
                learned: now,
                verified: now,
            },
        );
        Some(holders)
    }

    /// Takes in a finished scan and starts the next one if an inode waits
    /// for it; true when a scan came in (held records may resolve now).
    pub fn poll(&mut self) -> bool {
        let mut arrived = false;
        if let Some(rx) = &self.scan_in_flight {
            match rx.try_recv() {
                Ok((started, took, found)) => {
                    self.scan_in_flight = None;
                    self.last_scan_took = took;
                    self.merge(started, found);
                    arrived = true;
                }
                Err(mpsc::TryRecvError::Empty) => {}
                Err(mpsc::TryRecvError::Disconnected) => self.scan_in_flight = None,
            }
        }
        let pause = MIN_RESCAN_INTERVAL.max(self.last_scan_took * SCAN_PAUSE_FACTOR);
        let due = self.last_scan_start.is_none_or(|t| t.elapsed() >= pause);
        if !self.wanted.is_empty() && self.scan_in_flight.is_none() && due {
            self.wanted.clear();
            self.start_scan();
        }
        arrived
    }

    fn start_scan(&mut self) {
        let started = Instant::now();
        self.last_scan_start = Some(started);
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("owner-scan".into())
            .spawn(move || {
                let found = scan(None);
                let _ = tx.send((started, started.elapsed(), found));
            });
        match spawned {
            Ok(_) => self.scan_in_flight = Some(rx),
            Err(err) => log::warn!("cannot start the /proc scan for socket owners: {err}"),
        }
    }

    /// A scan's findings replace what was known of those inodes; an inode
    /// with other holders than before counts as learnt anew.
    fn merge(&mut self, scanned_at: Instant, found: Holders) {
        for (ino, holders) in found {
            match self.by_inode.get(&ino) {
                Some(known) if **known == *holders => {
                    if let Some(young) = self.young.get_mut(&ino) {
                        young.verified = scanned_at;
                    }
                }
                _ => {
                    self.by_inode.insert(ino, holders.into());
                    self.young.insert(
                        ino,
                        Young {
                            learned: scanned_at,
                            verified: scanned_at,
                        },
                    );
                }
            }
        }
    }

    /// Forgets a connection that is gone, and its socket's holders.
    pub fn forget(&mut self, conn: &Conn) {
        if let Some((ino, _)) = self.inode_of.remove(conn) {
            self.by_inode.remove(&ino);
            self.young.remove(&ino);
        }
    }

    /// Forgets the processes known to hold connections of a local port once
    /// none of them is remembered any more (called at the periodic tick).
    pub fn trim(&mut self) {
        let now = Instant::now();
        self.young
            .retain(|_, young| now.duration_since(young.learned) < HANDOFF_WINDOW);
        if self.inode_of.is_empty() {
            self.pids_by_port.clear();
        }
        let live: std::collections::HashSet<(NetnsIno, u16)> = self
            .inode_of
            .keys()
            .map(|c| (c.netns, c.local.port()))
            .collect();
        self.pids_by_port.retain(|key, _| live.contains(key));
    }

    /// Sockets whose holders are remembered (for the memory bound's tests).
    pub fn remembered(&self) -> (usize, usize) {
        (self.by_inode.len(), self.inode_of.len())
    }
}

#[cfg(test)]
mod tests;
