//! Keepalive values given on the command line, checked against the
//! kernel's limits before anything is touched.

use std::time::Duration;

use keepalive_common::{Policy, UNSET};

use crate::{
    cli::{parse_duration, usage},
    filter::Cidr,
};

/// The kernel's limits (include/net/tcp.h: MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL,
/// MAX_TCP_KEEPCNT).
pub const MAX_KEEPIDLE_S: u64 = 32767;
pub const MAX_KEEPINTVL_S: u64 = 32767;
pub const MAX_KEEPCNT: u32 = 127;

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

/// What to set; `None` leaves a value as the application set it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeepaliveValues {
    pub keepalive: Option<bool>,
    pub idle_s: Option<u32>,
    pub intvl_s: Option<u32>,
    pub cnt: Option<u32>,
    pub user_timeout_ms: Option<u32>,
}

fn whole_seconds(name: &str, d: Duration, max: u64) -> anyhow::Result<u32> {
    if d.subsec_nanos() != 0 || d.as_secs() == 0 || d.as_secs() > max {
        return Err(usage(format!(
            "--{name} must be whole seconds from 1 to {max} (the kernel's limit), got {d:?}"
        )));
    }
    Ok(d.as_secs() as u32)
}

impl ValueArgs {
    pub fn values(&self) -> anyhow::Result<KeepaliveValues> {
        let mut v = KeepaliveValues {
            idle_s: self
                .idle
                .map(|d| whole_seconds("idle", d, MAX_KEEPIDLE_S))
                .transpose()?,
            intvl_s: self
                .interval
                .map(|d| whole_seconds("interval", d, MAX_KEEPINTVL_S))
                .transpose()?,
            ..KeepaliveValues::default()
        };
        if let Some(count) = self.count {
            if !(1..=MAX_KEEPCNT).contains(&count) {
                return Err(usage(format!(
                    "--count must be from 1 to {MAX_KEEPCNT}, got {count}"
                )));
            }
            v.cnt = Some(count);
        }
        if let Some(ut) = self.user_timeout {
            // 0.5ms would silently become 0, which turns the timeout off.
            if ut.subsec_nanos() % 1_000_000 != 0 {
                return Err(usage(format!(
                    "--user-timeout must be whole milliseconds, got {ut:?}"
                )));
            }
            let ms = u32::try_from(ut.as_millis())
                .ok()
                .filter(|ms| *ms <= i32::MAX as u32)
                .ok_or_else(|| {
                    usage(format!(
                        "--user-timeout {ut:?} is out of range (at most {} ms)",
                        i32::MAX
                    ))
                })?;
            v.user_timeout_ms = Some(ms);
        }
        // Probing settings without SO_KEEPALIVE do nothing: turn it on.
        if self.off {
            v.keepalive = Some(false);
        } else if v.idle_s.is_some() || v.intvl_s.is_some() || v.cnt.is_some() {
            v.keepalive = Some(true);
        }
        if v == KeepaliveValues::default() {
            return Err(usage(
                "no value to set: give --idle, --interval, --count, --user-timeout or --off",
            ));
        }
        Ok(v)
    }
}

impl KeepaliveValues {
    /// The sock_ops policy applying these values to new connections that
    /// match `port` (either end) and `dst` (the peer's address).
    pub fn to_policy(&self, port: Option<u16>, dst: Option<Cidr>) -> Policy {
        let mut policy = Policy::disabled();
        policy.enabled = 1;
        policy.keepalive = self.keepalive.map_or(UNSET, u32::from);
        policy.idle_s = self.idle_s.unwrap_or(UNSET);
        policy.intvl_s = self.intvl_s.unwrap_or(UNSET);
        policy.cnt = self.cnt.unwrap_or(UNSET);
        policy.user_timeout_ms = self.user_timeout_ms.unwrap_or(UNSET);
        policy.port = port.unwrap_or(0);
        if let Some(dst) = dst {
            (policy.dst_family, policy.dst_addr, policy.dst_prefix_len) = dst.to_kernel();
        }
        policy
    }

    /// "keepalive on, idle 30s, interval 5s, count 3"
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match self.keepalive {
            Some(true) => parts.push("keepalive on".to_string()),
            Some(false) => parts.push("keepalive off".to_string()),
            None => {}
        }
        if let Some(v) = self.idle_s {
            parts.push(format!("idle {v}s"));
        }
        if let Some(v) = self.intvl_s {
            parts.push(format!("interval {v}s"));
        }
        if let Some(v) = self.cnt {
            parts.push(format!("count {v}"));
        }
        if let Some(v) = self.user_timeout_ms {
            parts.push(format!("user timeout {v}ms"));
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::exit_code_for;

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
            &["--idle", "1.5s"],
            &["--interval", "500ms"],
            &["--count", "0"],
            &["--count", "128"],
            &["--user-timeout", "600h"],
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
