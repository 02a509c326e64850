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
    if err.chain().any(|cause| cause.is::<UsageError>()) {
        2
    } else {
        1
    }
}

/// A duration on the command line: `30s`, `2m`, `1h`, `500ms`, or plain
/// seconds (`90`, `1.5`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 30s, 2m, 1h, 500ms)"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("{s:?}: unknown unit {other:?} (use ms, s, m or h)")),
    };
    let seconds = value * scale;
    if !seconds.is_finite() || seconds > 1e9 {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-3s").is_err());
    }

    #[test]
    fn usage_errors_exit_2_others_1() {
        assert_eq!(exit_code_for(&usage("bad cidr")), 2);
        assert_eq!(exit_code_for(&anyhow::anyhow!("boom")), 1);
        assert_eq!(exit_code_for(&usage("inner").context("outer")), 2);
    }
}
