//! The command line: one file per subcommand, each with its arguments and
//! a `run` that calls the machinery below; `args` holds the argument groups
//! several share.

pub mod args;
pub mod demo;
pub mod discover;
pub mod doctor;
pub mod ls;
pub mod report;
pub mod set;
pub mod watch;

use std::process::ExitCode;

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
    Doctor(doctor::DoctorArgs),
    /// Stream each probe, answer, unanswered probe and timeout as it happens.
    Watch(watch::WatchArgs),
    /// Set keepalive options on live connections, or on new ones (--new).
    Set(set::SetArgs),
    /// List TCP connections with their keepalive settings and timers.
    Ls(ls::LsArgs),
    /// Prove settings against a real fault in a private network namespace.
    Demo(demo::DemoArgs),
    /// Find the idle timeout a NAT or firewall imposes on the path to a server.
    Discover(discover::DiscoverArgs),
    /// Draw watch's, demo's or discover's JSON lines as one self-contained HTML page.
    Report(report::ReportArgs),
}

impl Command {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Self::Doctor(args) => doctor::run(&args),
            Self::Watch(args) => watch::run(args),
            Self::Set(args) => set::run(args),
            Self::Ls(args) => ls::run(args),
            Self::Demo(args) => demo::run(args),
            Self::Discover(args) => discover::run(args),
            Self::Report(args) => report::run(&args),
        }
    }
}
