//! The keepalive settings in force on a socket, and what they predict.

use serde::Serialize;

/// Keepalive settings in force on a socket. JSON names are the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Config {
    pub keepalive: bool,
    pub idle_s: u32,
    pub intvl_s: u32,
    pub cnt: u32,
    pub user_timeout_ms: u32,
}

impl Config {
    /// What the settings predict: idle + count × interval until the kernel
    /// gives up on a silent peer (ignoring a user timeout).
    pub fn keepalive_budget_ms(&self) -> u64 {
        (u64::from(self.idle_s) + u64::from(self.cnt) * u64::from(self.intvl_s)) * 1000
    }

    /// When the kernel should kill a connection whose peer went silent,
    /// counted from the last segment received. The keepalive timer ticks at
    /// idle, then every interval; without a user timeout it kills at the tick
    /// after `cnt` probes. With one, it ignores `cnt` and kills at the first
    /// tick at or past the user timeout once a probe went out.
    pub fn predicted_detect_ms(&self) -> u64 {
        let (idle, intvl) = (
            u64::from(self.idle_s) * 1000,
            u64::from(self.intvl_s) * 1000,
        );
        if self.user_timeout_ms == 0 || intvl == 0 {
            return self.keepalive_budget_ms();
        }
        let user_timeout = u64::from(self.user_timeout_ms);
        let ticks = user_timeout.saturating_sub(idle).div_ceil(intvl).max(1);
        idle + ticks * intvl
    }

    /// Fills fields the kernel left 0 ("namespace default unreadable").
    pub fn with_defaults(mut self, defaults: &Config) -> Self {
        if self.idle_s == 0 {
            self.idle_s = defaults.idle_s;
        }
        if self.intvl_s == 0 {
            self.intvl_s = defaults.intvl_s;
        }
        if self.cnt == 0 {
            self.cnt = defaults.cnt;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_and_defaults() {
        let c = Config {
            keepalive: true,
            idle_s: 0,
            intvl_s: 5,
            cnt: 0,
            user_timeout_ms: 0,
        };
        let d = Config {
            keepalive: false,
            idle_s: 7200,
            intvl_s: 75,
            cnt: 9,
            user_timeout_ms: 0,
        };
        let filled = c.with_defaults(&d);
        assert_eq!((filled.idle_s, filled.intvl_s, filled.cnt), (7200, 5, 9));
        assert_eq!(filled.keepalive_budget_ms(), (7200 + 45) * 1000);
    }

    #[test]
    fn predicted_detection_with_and_without_user_timeout() {
        let ka = Config {
            keepalive: true,
            idle_s: 1,
            intvl_s: 1,
            cnt: 3,
            user_timeout_ms: 0,
        };
        assert_eq!(ka.predicted_detect_ms(), 4000);
        let ut = Config {
            user_timeout_ms: 2500,
            ..ka
        };
        assert_eq!(
            ut.predicted_detect_ms(),
            3000,
            "first tick at or after 2.5 s"
        );
        let short = Config {
            user_timeout_ms: 500,
            ..ka
        };
        assert_eq!(
            short.predicted_detect_ms(),
            2000,
            "one probe must go out first"
        );
    }
}
