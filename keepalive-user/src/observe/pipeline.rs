//! What happens to each record taken off the ring: decode, filter, feed the
//! timelines, attach the owner, apply `--pid`.

use crate::{
    host::owners::OwnerCache,
    model::{
        conn::Conn,
        event::{self, KernelEvent},
        filter::ConnFilter,
        owner::Owner,
        timeline::{Record, Timelines},
    },
};

/// One thing to show: a record about a connection, or events lost.
#[derive(Debug, Clone)]
pub enum Observation {
    Record(Record, Option<Owner>),
    Lost { ts_ns: u64, count: u64 },
}

pub struct Pipeline {
    pub timelines: Timelines,
    pub filter: ConnFilter,
    pub pid: Option<u32>,
    pub owners: OwnerCache,
    pub decode_errors: u64,
}

impl Pipeline {
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
        let owner = self.owners.observe(&event.conn, event.socket_ino);
        let records = self.timelines.on_event(event);
        self.with_owners(records, Some((event.conn, owner)), out);
    }

    /// Attaches each record's owner and applies `--pid`. `known` is an owner
    /// already looked up: nearly every record is about the event's own
    /// connection, and each lookup is a cache miss with many connections.
    pub fn with_owners(
        &self,
        records: Vec<Record>,
        known: Option<(Conn, Option<Owner>)>,
        out: &mut Vec<Observation>,
    ) {
        out.extend(records.into_iter().filter_map(|record| {
            let owner = match &known {
                Some((conn, owner)) if *conn == record.conn => owner.clone(),
                _ => self.owners.owner_of(&record.conn),
            };
            let wanted = self.pid.is_none() || owner.as_ref().map(|o| o.pid) == self.pid;
            wanted.then_some(Observation::Record(record, owner))
        }));
    }
}
