//! keepalive: see, connection by connection, what TCP keepalive is doing.
//!
//! One module per concern:
//! - `kernel`: finding kernel features, loading and attaching the programs;
//! - `events`: decoding what the kernel programs send;
//! - `timeline`: per-connection probe/answer/timeout bookkeeping, and
//!   `summary`, the session's counts and percentiles;
//! - `output`: human and JSON rendering;
//! - `filter`: which connections the user asked about;
//! - `sockdiag`, `owner_cache`: the socket table and which process holds what;
//! - `remote_fd`, `socket_options`: reaching and changing other processes' sockets;
//! - `options`: keepalive values, their parsing and limits;
//! - one module per subcommand (`doctor`, `watch`, `set`, `ls`, `demo`, `discover`).
pub mod cli;
pub mod demo;
pub mod discover;
pub mod doctor;
pub mod events;
pub mod filter;
pub mod kernel;
pub mod ls;
pub mod options;
pub mod output;
pub mod owner_cache;
pub mod remote_fd;
pub mod set;
pub mod sockdiag;
pub mod socket_options;
pub mod summary;
pub mod timeline;
pub mod watch;
