//! The pure logic: what the kernel's events mean. Nothing here touches the
//! kernel or the host, so all of it is unit-tested alone.
//!
//! - `event`: decoding ring-buffer records into [`event::KernelEvent`]s;
//! - `conn`, `config`, `owner`: a connection, its keepalive settings, its holder;
//! - `timeline`: per-connection rules turning events into records (probe,
//!   ack, unanswered, timeout, reset) and `summary`, the session's counts;
//! - `filter`: which connections the user asked about;
//! - `keepalive`: values to set and the kernel's limits on them;
//! - `errno`: errno names.
pub mod config;
pub mod conn;
pub mod errno;
pub mod event;
pub mod filter;
pub mod keepalive;
pub mod owner;
pub mod summary;
pub mod timeline;
