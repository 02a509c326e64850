//! Finding what this kernel offers, and loading and attaching our programs.
//!
//! Every attachment is a bpf link or perf-event fd owned by this process:
//! when it exits, however it exits, the kernel detaches everything.
//!
//! - `hooks`: the table of programs, where each attaches, and what is lost without it;
//! - `loader`: loading the embedded object and attaching ([`Observer`]);
//! - `ring`: reading the event ring buffer, and the lost-event counter;
//! - `btf_offsets`, `tracefs`: kernel field and tracepoint layouts, read at start-up;
//! - `cgroup`, `privilege`: where to attach, and whether we may.
pub mod btf_offsets;
pub mod cgroup;
pub mod hooks;
pub mod loader;
pub mod privilege;
pub mod ring;
pub mod tracefs;

pub use hooks::{HookSet, HookStatus};
pub use loader::{LoadOptions, Observer};
