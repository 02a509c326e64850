//! keepalive: see, connection by connection, what TCP keepalive is doing.
//!
//! Layers, each pointing only down:
//! - `cli`: arguments and dispatch, one file per subcommand;
//! - `demo`, `discover`, `doctor`: the machinery of those commands;
//! - `observe`: the watcher pipeline (ring → decode → filter → timeline →
//!   owners) and the session loop;
//! - `report`: the HTML report (`keepalive report`, `watch --report`): a
//!   pure layout model fed one event at a time, and the page;
//! - `render`: text lines, JSON lines, the clock, `ls`'s table;
//! - `kernel`: loading and attaching the eBPF programs, reading the ring;
//! - `host`: sock_diag, socket owners, other processes' sockets, options;
//! - `model`: the pure logic (events, timelines, summary, filters, values);
//! - `error`: usage errors and exit codes.
pub mod cli;
pub mod demo;
pub mod discover;
pub mod doctor;
pub mod error;
pub mod host;
pub mod kernel;
pub mod model;
pub mod observe;
pub mod render;
pub mod report;
