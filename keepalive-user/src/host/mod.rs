//! What the host knows about its sockets, outside the kernel programs:
//! the socket table (`sockdiag`), which process holds which socket
//! (`owners`), other processes' descriptors (`pidfd`), reading and changing
//! keepalive options (`socket_options`, `option_change`), network
//! namespaces (`netns`), finding the sockets `set` changes (`targets`), the
//! namespace's sysctl defaults, and the signals that end a run early
//! (`signals`).
pub mod netns;
pub mod option_change;
pub mod owners;
pub mod pidfd;
pub mod signals;
pub mod sockdiag;
pub mod socket_options;
pub mod sysctl;
pub mod targets;
