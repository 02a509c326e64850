//! Changing keepalive options on a socket we hold, one option at a time, so
//! that a failure names the option and a rollback undoes exactly what was
//! done.

use std::{os::fd::OwnedFd, time::Duration};

use socket2::{SockRef, TcpKeepalive};

use crate::{
    host::socket_options::{TcpTarget, read},
    model::{config::Config, keepalive::KeepaliveValues},
};

/// One socket option of a change, set on its own so that a failure names it
/// and a rollback undoes exactly what was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    KeepAlive(bool),
    Idle(u32),
    Interval(u32),
    Count(u32),
    UserTimeout(u32),
}

impl Step {
    /// The steps from `before` to `values`, skipping values already in force
    /// (rewriting the default idle would pin it against later sysctl changes).
    /// SO_KEEPALIVE goes first: socket2 turns it on with each TCP_KEEP*
    /// option, so a rollback, in reverse, puts it back last.
    fn plan(before: &Config, values: &KeepaliveValues) -> Vec<Step> {
        let after = values.overlay(before);
        [
            (before.keepalive != after.keepalive).then_some(Step::KeepAlive(after.keepalive)),
            (before.idle_s != after.idle_s).then_some(Step::Idle(after.idle_s)),
            (before.intvl_s != after.intvl_s).then_some(Step::Interval(after.intvl_s)),
            (before.cnt != after.cnt).then_some(Step::Count(after.cnt)),
            (before.user_timeout_ms != after.user_timeout_ms)
                .then_some(Step::UserTimeout(after.user_timeout_ms)),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The same option with its value in `config`.
    fn undo(self, config: &Config) -> Step {
        match self {
            Step::KeepAlive(_) => Step::KeepAlive(config.keepalive),
            Step::Idle(_) => Step::Idle(config.idle_s),
            Step::Interval(_) => Step::Interval(config.intvl_s),
            Step::Count(_) => Step::Count(config.cnt),
            Step::UserTimeout(_) => Step::UserTimeout(config.user_timeout_ms),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Step::KeepAlive(_) => "SO_KEEPALIVE",
            Step::Idle(_) => "TCP_KEEPIDLE",
            Step::Interval(_) => "TCP_KEEPINTVL",
            Step::Count(_) => "TCP_KEEPCNT",
            Step::UserTimeout(_) => "TCP_USER_TIMEOUT",
        }
    }

    fn apply(self, fd: &OwnedFd) -> std::io::Result<()> {
        let sock = SockRef::from(fd);
        let secs = |s: u32| Duration::from_secs(s.into());
        match self {
            Step::KeepAlive(on) => sock.set_keepalive(on),
            Step::Idle(s) => sock.set_tcp_keepalive(&TcpKeepalive::new().with_time(secs(s))),
            Step::Interval(s) => {
                sock.set_tcp_keepalive(&TcpKeepalive::new().with_interval(secs(s)))
            }
            Step::Count(n) => sock.set_tcp_keepalive(&TcpKeepalive::new().with_retries(n)),
            Step::UserTimeout(ms) => {
                sock.set_tcp_user_timeout((ms > 0).then(|| Duration::from_millis(ms.into())))
            }
        }
    }
}

/// Changes one socket: its settings before and after, and what went wrong.
/// A change that fails midway undoes, option by option, what it had done.
pub fn change(target: &TcpTarget, values: &KeepaliveValues, dry_run: bool) -> ChangeResult {
    let before = match read(&target.fd) {
        Ok(before) => before,
        Err(err) => {
            return ChangeResult {
                before: None,
                after: None,
                error: Some(format!("reading its settings: {err}; nothing changed")),
            };
        }
    };
    if dry_run {
        return ChangeResult {
            before: Some(before),
            after: Some(values.overlay(&before)),
            error: None,
        };
    }
    let mut done = Vec::new();
    let mut error = None;
    for step in Step::plan(&before, values) {
        match step.apply(&target.fd) {
            Ok(()) => done.push(step),
            Err(err) => {
                error = Some(format!("setting {}: {err}", step.name()));
                break;
            }
        }
    }
    if let Some(failed) = &mut error {
        let mut not_restored: Vec<String> = Vec::new();
        let mut undo = |step: Step| {
            if let Err(e) = step.apply(&target.fd) {
                not_restored.push(format!("{}: {e}", step.name()));
            }
        };
        done.iter().rev().for_each(|step| undo(step.undo(&before)));
        // A failed TCP_KEEP* option may still have turned SO_KEEPALIVE on.
        if read(&target.fd).is_ok_and(|now| now.keepalive != before.keepalive) {
            undo(Step::KeepAlive(before.keepalive));
        }
        let after = read(&target.fd).ok();
        failed.push_str(&if after == Some(before) {
            "; old values restored".to_string()
        } else {
            format!(
                "; old values NOT fully restored ({})",
                not_restored.join(", ")
            )
        });
        return ChangeResult {
            before: Some(before),
            after,
            error,
        };
    }
    ChangeResult {
        before: Some(before),
        after: read(&target.fd).ok(),
        error,
    }
}

/// A socket's settings before and after a change, and what went wrong.
pub struct ChangeResult {
    pub before: Option<Config>,
    pub after: Option<Config>,
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;
    use crate::host::{socket_options::as_tcp_target, sysctl::keepalive_defaults};

    fn own_connection() -> (TcpListener, TcpTarget) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let target = as_tcp_target(client.into()).unwrap_or_else(|e| panic!("{e}"));
        (listener, target)
    }

    const DEFAULTS: Config = Config {
        keepalive: false,
        idle_s: 7200,
        intvl_s: 75,
        cnt: 9,
        user_timeout_ms: 0,
    };

    /// A fresh socket's settings: this network namespace's sysctls.
    fn fresh_socket_settings() -> Config {
        keepalive_defaults()
    }

    #[test]
    fn plan_sets_keepalive_first_and_skips_values_in_force() {
        let values = KeepaliveValues {
            keepalive: Some(true),
            idle_s: Some(30),
            intvl_s: Some(75),
            cnt: Some(3),
            user_timeout_ms: None,
        };
        assert_eq!(
            Step::plan(&DEFAULTS, &values),
            vec![Step::KeepAlive(true), Step::Idle(30), Step::Count(3)]
        );
        assert_eq!(Step::Idle(30).undo(&DEFAULTS), Step::Idle(7200));
        let off = KeepaliveValues {
            keepalive: Some(false),
            ..KeepaliveValues::default()
        };
        assert!(Step::plan(&DEFAULTS, &off).is_empty(), "already off");
    }

    /// Runs without root, on our own socket.
    #[test]
    fn a_change_the_kernel_refuses_midway_is_rolled_back() {
        let (_listener, target) = own_connection();
        let before = read(&target.fd).unwrap();
        assert_eq!(before, fresh_socket_settings());
        // 200 probes is past the kernel's TCP_KEEPCNT limit: EINVAL after
        // SO_KEEPALIVE and TCP_KEEPIDLE were already set.
        let refused = KeepaliveValues {
            keepalive: Some(true),
            idle_s: Some(30),
            cnt: Some(200),
            ..KeepaliveValues::default()
        };
        let outcome = change(&target, &refused, false);
        let error = outcome.error.expect("the kernel refuses 200 probes");
        assert!(error.starts_with("setting TCP_KEEPCNT: "), "{error}");
        assert!(error.ends_with("; old values restored"), "{error}");
        assert_eq!(outcome.after, Some(before));
        assert_eq!(read(&target.fd).unwrap(), before);

        let fine = KeepaliveValues {
            cnt: Some(4),
            ..refused
        };
        let dry = change(&target, &fine, true);
        assert_eq!(
            dry.after.map(|c| (c.keepalive, c.idle_s, c.intvl_s, c.cnt)),
            Some((true, 30, before.intvl_s, 4))
        );
        assert_eq!(read(&target.fd).unwrap(), before, "dry run");
        let done = change(&target, &fine, false);
        assert_eq!(done.error, None);
        assert_eq!(done.after, dry.after);
    }
}
