//! The process holding a connection, where it could be found.

/// A process by pid and command name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    /// Shared: every record of a connection carries its owner.
    pub comm: std::sync::Arc<str>,
}
