//! Keepalive values to set, checked against the kernel's limits before
//! anything is touched, and what they leave on a socket.

use std::time::Duration;

use keepalive_common::{Policy, UNSET};

use crate::{
    error::usage,
    model::{config::Config, filter::Cidr},
};

/// The kernel's limits (include/net/tcp.h: MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL,
/// MAX_TCP_KEEPCNT).
pub const MAX_KEEPIDLE_S: u64 = 32767;
pub const MAX_KEEPINTVL_S: u64 = 32767;
pub const MAX_KEEPCNT: u32 = 127;

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

/// Values as asked for (`--idle 30s ...`), before any check.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestedValues {
    pub idle: Option<Duration>,
    pub interval: Option<Duration>,
    pub count: Option<u32>,
    pub user_timeout: Option<Duration>,
    pub off: bool,
}

impl RequestedValues {
    /// The values to set, or a usage error naming the limit broken.
    pub fn checked(&self) -> anyhow::Result<KeepaliveValues> {
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

    /// `before` with these values laid over it: what a change will leave.
    pub fn overlay(&self, before: &Config) -> Config {
        Config {
            keepalive: self.keepalive.unwrap_or(before.keepalive),
            idle_s: self.idle_s.unwrap_or(before.idle_s),
            intvl_s: self.intvl_s.unwrap_or(before.intvl_s),
            cnt: self.cnt.unwrap_or(before.cnt),
            user_timeout_ms: self.user_timeout_ms.unwrap_or(before.user_timeout_ms),
        }
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
    use super::*;

    #[test]
    fn overlay_keeps_what_is_not_given() {
        let before = Config {
            keepalive: false,
            idle_s: 7200,
            intvl_s: 75,
            cnt: 9,
            user_timeout_ms: 0,
        };
        let values = KeepaliveValues {
            keepalive: Some(true),
            cnt: Some(3),
            ..KeepaliveValues::default()
        };
        let after = values.overlay(&before);
        assert_eq!(
            (after.keepalive, after.idle_s, after.intvl_s, after.cnt),
            (true, 7200, 75, 3)
        );
    }
}
