//! Finding what this kernel offers, and loading and attaching our programs.
//!
//! Every attachment is a bpf link or perf-event fd owned by this process:
//! when it exits, however it exits, the kernel detaches everything.
pub mod btf_offsets;
pub mod cgroup;
pub mod loader;
pub mod privilege;
pub mod tracefs;

pub use loader::{HookSet, HookStatus, LoadOptions, Observer};
