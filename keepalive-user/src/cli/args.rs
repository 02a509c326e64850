//! Argument groups several commands share: durations, ports, connection
//! filters and keepalive values. Each turns into a model type; the checks
//! against the kernel's limits live with that type.

use std::time::Duration;

use crate::{
    error::usage,
    host::netns::NetnsScope,
    model::{
        filter::{Cidr, ConnFilter},
        keepalive::{KeepaliveValues, RequestedValues},
    },
};

/// A duration on the command line: `30s`, `2m`, `1h`, `500ms`, `1h30m`
/// (humantime), or plain seconds (`90`, `1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(seconds) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds)
            .ok()
            .filter(|d| d.as_secs() <= 1_000_000_000)
            .ok_or_else(|| format!("{s:?} is out of range"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration (e.g. 30s, 2m, 1h, 500ms): {e}"))
}

/// A TCP port for `--port`: 1..=65535 (clap reports the error, exit 2).
pub fn parse_port(s: &str) -> Result<u16, String> {
    match s.parse::<u32>() {
        Ok(p @ 1..=65535) => Ok(p as u16),
        Ok(_) => Err(format!("port {s} is out of range 1..=65535")),
        Err(_) => Err(format!("{s:?} is not a port number")),
    }
}

/// `--port`, `--src`, `--dst` and `--pid`, as watch and ls take them.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConnFilterArgs {
    /// Only connections with this port at either end (repeatable).
    #[arg(long = "port", value_parser = parse_port)]
    pub ports: Vec<u16>,
    /// Only connections whose local address is in this prefix (repeatable).
    #[arg(long)]
    pub src: Vec<Cidr>,
    /// Only connections whose peer address is in this prefix (repeatable).
    #[arg(long)]
    pub dst: Vec<Cidr>,
    /// Only connections held by this process.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Only this network namespace: an `ip netns` name, a path such as
    /// /proc/PID/ns/net, or a pid (like `ss -N`).
    #[arg(short = 'N', long = "netns", value_name = "NAME|PATH|PID")]
    pub netns: Option<String>,
    /// Every network namespace of the host.
    #[arg(long, conflicts_with = "netns")]
    pub all_netns: bool,
}

impl ConnFilterArgs {
    /// The namespaces asked for; without `-N` or `--all-netns`, this
    /// process's own, or every one when `default_all`.
    pub fn netns_scope(&self, default_all: bool) -> anyhow::Result<NetnsScope> {
        NetnsScope::choose(self.netns.as_deref(), self.all_netns, default_all)
    }

    /// The namespace, address and port part; `--pid` is matched against
    /// socket holders.
    pub fn filter(&self, scope: &NetnsScope) -> ConnFilter {
        ConnFilter {
            netns: scope.only(),
            ports: self.ports.clone(),
            src: self.src.clone(),
            dst: self.dst.clone(),
        }
    }

    /// `--pid` must name a running process (a usage error otherwise).
    pub fn checked_pid(&self) -> anyhow::Result<Option<u32>> {
        match self.pid {
            Some(pid) if !std::path::Path::new(&format!("/proc/{pid}")).exists() => {
                Err(usage(format!("--pid {pid}: no such process")))
            }
            pid => Ok(pid),
        }
    }
}

/// The keepalive values `set`, `watch --apply` take.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ValueArgs {
    /// Idle time before the first probe (TCP_KEEPIDLE): 30s, 2m, 1h or seconds.
    #[arg(long, value_parser = parse_duration)]
    pub idle: Option<Duration>,
    /// Time between unanswered probes (TCP_KEEPINTVL).
    #[arg(long, value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// Unanswered probes before the kernel gives up (TCP_KEEPCNT).
    #[arg(long, allow_negative_numbers = true)]
    pub count: Option<u32>,
    /// Kill the connection when data or probes go unacknowledged this long
    /// (TCP_USER_TIMEOUT; 0 turns it off). With it, TCP_KEEPCNT is ignored.
    #[arg(long = "user-timeout", value_parser = parse_duration)]
    pub user_timeout: Option<Duration>,
    /// Turn SO_KEEPALIVE off. Only --user-timeout may go with it (it also
    /// bounds unacknowledged data, keepalive or not).
    #[arg(long, conflicts_with_all = ["idle", "interval", "count"])]
    pub off: bool,
}

impl ValueArgs {
    pub fn given(&self) -> bool {
        self.idle.is_some()
            || self.interval.is_some()
            || self.count.is_some()
            || self.user_timeout.is_some()
            || self.off
    }

    /// The values, checked against the kernel's limits (a usage error).
    pub fn values(&self) -> anyhow::Result<KeepaliveValues> {
        RequestedValues {
            idle: self.idle,
            interval: self.interval,
            count: self.count,
            user_timeout: self.user_timeout,
            off: self.off,
        }
        .checked()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use keepalive_common::UNSET;

    use super::*;
    use crate::error::exit_code_for;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("5 minutes"), Ok(Duration::from_secs(300)));
        let unknown = parse_duration("5 parsecs").unwrap_err();
        assert!(unknown.contains("unknown time unit"), "{unknown}");
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-3s").is_err());
        assert!(parse_duration("-3").is_err());
        assert!(parse_duration("1e12").is_err());
    }

    #[test]
    fn ports_are_1_to_65535() {
        assert_eq!(parse_port("443"), Ok(443));
        assert!(parse_port("0").is_err());
        assert!(parse_port("65536").is_err());
        assert!(parse_port("-1").is_err());
    }

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        values: ValueArgs,
    }

    fn parse(args: &[&str]) -> anyhow::Result<KeepaliveValues> {
        let mut argv = vec!["cmd"];
        argv.extend_from_slice(args);
        Cmd::try_parse_from(argv)
            .map_err(anyhow::Error::from)?
            .values
            .values()
    }

    #[test]
    fn values_and_implied_keepalive() {
        let v = parse(&["--idle", "30s", "--interval", "5", "--count", "3"]).unwrap();
        assert_eq!(
            v,
            KeepaliveValues {
                keepalive: Some(true),
                idle_s: Some(30),
                intvl_s: Some(5),
                cnt: Some(3),
                user_timeout_ms: None
            }
        );
        assert_eq!(v.describe(), "keepalive on, idle 30s, interval 5s, count 3");
        let ut = parse(&["--user-timeout", "2500ms"]).unwrap();
        assert_eq!((ut.keepalive, ut.user_timeout_ms), (None, Some(2500)));
        assert_eq!(parse(&["--off"]).unwrap().keepalive, Some(false));
        assert_eq!(parse(&["--idle", "2h"]).unwrap().idle_s, Some(7200));
    }

    #[test]
    fn kernel_limits_are_usage_errors() {
        for bad in [
            &["--idle", "0"][..],
            &["--idle", "32768"],
            &["--idle", "1.5"],
            &["--idle", "1.5s"],
            &["--interval", "500ms"],
            &["--count", "0"],
            &["--count", "128"],
            &["--user-timeout", "600h"],
            &["--user-timeout", "0.0005"],
            &["--user-timeout", "0.5ms"],
            &[],
        ] {
            let err = parse(bad).expect_err(&format!("{bad:?} must be refused"));
            assert_eq!(exit_code_for(&err), 2, "{bad:?}: {err:#}");
        }
        assert!(
            parse(&["--off", "--idle", "3"]).is_err(),
            "--off with values"
        );
        assert!(parse(&["--idle", "soon"]).is_err());
        let off = parse(&["--off", "--user-timeout", "0"]).unwrap();
        assert_eq!((off.keepalive, off.user_timeout_ms), (Some(false), Some(0)));
        assert_eq!(
            parse(&["--user-timeout", "2147483647ms"])
                .unwrap()
                .user_timeout_ms,
            Some(i32::MAX as u32)
        );
        assert!(parse(&["--user-timeout", "2147483648ms"]).is_err());
    }

    #[test]
    fn policy_leaves_unset_values_alone() {
        let v = parse(&["--idle", "30", "--count", "4"]).unwrap();
        let p = v.to_policy(Some(443), Some("10.0.0.0/8".parse().unwrap()));
        assert_eq!((p.enabled, p.keepalive, p.idle_s, p.cnt), (1, 1, 30, 4));
        assert_eq!((p.intvl_s, p.user_timeout_ms), (UNSET, UNSET));
        assert_eq!((p.port, p.dst_family, p.dst_prefix_len), (443, 2, 8));
        assert_eq!(&p.dst_addr[..4], &[10, 0, 0, 0]);
    }
}
