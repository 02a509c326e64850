//! Who a connection belongs to: the processes holding its socket, and the
//! network namespace it lives in, as shown beside each record.

use std::sync::Arc;

/// A process by pid and command name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    /// Shared: every record of a connection carries its owner.
    pub comm: Arc<str>,
}

/// A process holding a socket, and the descriptor it holds it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub owner: Owner,
    pub fd: i32,
}

/// What is known of a record's connection beyond its addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    /// Every process holding the socket (a pre-forking server's listener
    /// and worker may both, for a moment), first found first; empty when
    /// none was found (kernel-owned, orphaned, or gone).
    pub owners: Arc<[Holder]>,
    /// The connection's network namespace by name (`ip netns` name, or the
    /// process that holds it), shown when it is not the watcher's own.
    pub netns_name: Option<Arc<str>>,
    /// The connection is in another network namespace than the watcher.
    pub foreign_netns: bool,
}

impl Attribution {
    pub fn first_owner(&self) -> Option<&Owner> {
        self.owners.first().map(|h| &h.owner)
    }

    pub fn held_by(&self, pid: u32) -> bool {
        self.owners.iter().any(|h| h.owner.pid == pid)
    }
}
