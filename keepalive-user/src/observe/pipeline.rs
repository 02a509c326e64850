//! What happens to each record taken off the ring: decode, filter, feed the
//! timelines, attach owners and namespace names, apply `--pid`.
//!
//! A connection whose socket was not yet seen by an owner scan has its
//! records held (in order) until the scan finds it or `OWNER_WAIT` passes:
//! a line never goes out without its owner merely because the scan had not
//! run yet.

use std::time::{Duration, Instant};

use crate::{
    host::{
        netns::NetnsNames,
        owners::{Lookup, OwnerCache},
    },
    model::{
        conn::{Conn, NetnsIno},
        event::{self, KernelEvent},
        filter::ConnFilter,
        owner::Attribution,
        timeline::{Record, Timelines},
    },
};

/// The longest a record waits for its connection's owner.
const OWNER_WAIT: Duration = Duration::from_millis(1500);
/// Connections whose records may wait at once; beyond, records go out
/// without waiting (connection churn must not pile them up).
const MAX_HELD: usize = 4096;

/// One thing to show: a record about a connection, or events lost.
#[derive(Debug, Clone)]
pub enum Observation {
    Record(Record, Attribution),
    Lost { ts_ns: u64, count: u64 },
}

/// Records waiting for their connection's owner.
struct Held {
    since: Instant,
    records: Vec<Record>,
}

pub struct Pipeline {
    pub timelines: Timelines,
    pub filter: ConnFilter,
    pub pid: Option<u32>,
    pub owners: OwnerCache,
    pub netns_names: NetnsNames,
    /// The watcher's own namespace: others are named on each line.
    pub own_netns: NetnsIno,
    pub decode_errors: u64,
    held: foldhash::HashMap<Conn, Held>,
}

impl Pipeline {
    pub fn new(
        timelines: Timelines,
        filter: ConnFilter,
        pid: Option<u32>,
        owners: OwnerCache,
    ) -> Self {
        Self {
            timelines,
            filter,
            pid,
            owners,
            netns_names: NetnsNames::default(),
            own_netns: crate::host::netns::own(),
            decode_errors: 0,
            held: foldhash::HashMap::default(),
        }
    }

    /// Decodes one ring-buffer record and appends what it shows to `out`.
    pub fn take(&mut self, bytes: &[u8], out: &mut Vec<Observation>) {
        match event::decode(bytes) {
            Ok(event) => self.handle(&event, out),
            Err(err) => {
                self.decode_errors += 1;
                log::warn!("undecodable kernel event: {err}");
            }
        }
    }

    fn handle(&mut self, event: &KernelEvent, out: &mut Vec<Observation>) {
        if !self.filter.matches(&event.conn) {
            return;
        }
        let records = self.timelines.on_event(event);
        let remembered = self.timelines.remembers_last();
        if remembered || !records.is_empty() {
            // Only connections with a timeline (or a line now) need an owner:
            // the established connections of a busy host cost nothing.
            self.owners.learn_inode(&event.conn, event.socket_ino);
        }
        if !remembered && matches!(event.kind, event::EventKind::Closed { .. }) {
            self.owners.forget(&event.conn);
        }
        if !records.is_empty() {
            self.show(event.conn, records, out);
        }
    }

    /// Shows `records` of `conn` now if its owner is known, else holds them.
    fn show(&mut self, conn: Conn, records: Vec<Record>, out: &mut Vec<Observation>) {
        if let Some(held) = self.held.get_mut(&conn) {
            held.records.extend(records);
            return;
        }
        match self.owners.lookup(&conn) {
            Lookup::Pending if self.held.len() >= MAX_HELD => {
                self.emit(conn, records, Default::default(), out);
            }
            Lookup::Pending => {
                self.held.insert(
                    conn,
                    Held {
                        since: Instant::now(),
                        records,
                    },
                );
            }
            Lookup::Known(owners) => self.emit(conn, records, owners, out),
            Lookup::Unknown => self.emit(conn, records, Default::default(), out),
        }
    }

    fn emit(
        &mut self,
        conn: Conn,
        records: Vec<Record>,
        owners: std::sync::Arc<[crate::model::owner::Holder]>,
        out: &mut Vec<Observation>,
    ) {
        let foreign_netns = conn.netns != 0 && conn.netns != self.own_netns;
        let attribution = Attribution {
            netns_name: if foreign_netns {
                self.netns_names.name_of(conn.netns)
            } else {
                None
            },
            foreign_netns,
            owners,
        };
        if let Some(pid) = self.pid
            && !attribution.held_by(pid)
        {
            return;
        }
        out.extend(
            records
                .into_iter()
                .map(|record| Observation::Record(record, attribution.clone())),
        );
    }

    /// Shows held records whose owner a scan found, and those that waited
    /// long enough (all of them with `force`, at exit).
    pub fn release_held(&mut self, force: bool, out: &mut Vec<Observation>) {
        self.owners.poll();
        if self.held.is_empty() {
            return;
        }
        let conns: Vec<Conn> = self.held.keys().copied().collect();
        for conn in conns {
            let lookup = self.owners.lookup(&conn);
            let waited_enough = force || self.held[&conn].since.elapsed() >= OWNER_WAIT;
            let owners = match lookup {
                Lookup::Known(owners) => owners,
                Lookup::Pending if !waited_enough => continue,
                Lookup::Pending | Lookup::Unknown => Default::default(),
            };
            if let Some(held) = self.held.remove(&conn) {
                self.emit(conn, held.records, owners, out);
            }
        }
    }

    /// Records produced outside an event (expiry), shown like the rest.
    pub fn show_records(&mut self, records: Vec<Record>, out: &mut Vec<Observation>) {
        for record in records {
            self.show(record.conn, vec![record], out);
        }
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }
}
