//! Command line: one subcommand per job; each module owns its arguments.

use clap::{Parser, Subcommand};

/// Shows, connection by connection, what TCP keepalive is really doing, and
/// sets keepalive options on live connections. Needs root (CAP_BPF and
/// CAP_NET_ADMIN, or CAP_SYS_ADMIN).
#[derive(Parser, Debug)]
#[command(name = "keepalive", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check this kernel hook by hook: what works, what is missing, what that costs.
    Doctor(crate::doctor::DoctorArgs),
    /// Stream each probe, answer, unanswered probe and timeout as it happens.
    Watch(crate::watch::WatchArgs),
    /// Set keepalive options on live connections, or on new ones (--new).
    Set(crate::set::SetArgs),
    /// List TCP connections with their keepalive settings and timers.
    Ls(crate::ls::LsArgs),
    /// Prove settings against a real fault in a private network namespace.
    Demo(crate::demo::DemoArgs),
    /// Find the idle timeout a NAT or firewall imposes on the path to a server.
    Discover(crate::discover::DiscoverArgs),
}

/// A usage error found after clap parsed the line (bad CIDR, unknown pid...):
/// exits 2 like clap's own errors. Anything else exits 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

pub fn exit_code_for(err: &anyhow::Error) -> u8 {
    if err.chain().any(|cause| cause.is::<UsageError>()) { 2 } else { 1 }
}
