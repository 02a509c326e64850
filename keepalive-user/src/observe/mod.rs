//! The watcher pipeline: ring → decode → filter → timeline → owners
//! (`pipeline`, `watcher`), and the signal-driven session loop that prints
//! it (`session`).
pub mod pipeline;
pub mod session;
pub mod watcher;
