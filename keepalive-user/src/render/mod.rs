//! Rendering for people and scripts: `text` (aligned lines, the summary),
//! `json` (one object per line, the contract), `clock` (kernel timestamps
//! as wall-clock time), `table` (`ls`'s socket table) and `changes`
//! (what `set` did to each socket).
pub mod changes;
pub mod clock;
pub mod json;
pub mod table;
pub mod text;

/// `println!` that hands back the error instead of panicking when stdout is
/// gone (`keepalive discover ... | head -3`), so the caller's cleanup runs.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, $($arg)*)
            .and_then(|()| out.flush())
            .map_err(|e| anyhow::Error::new(e).context("writing to stdout"))
    }};
}

/// A record of a keepalive 1 s / 1 s / 3 connection over IPv6 loopback at
/// monotonic 1.5 s, for the renderers' tests.
#[cfg(test)]
pub(crate) fn sample_record(
    report: crate::model::timeline::Report,
) -> crate::model::timeline::Record {
    use crate::model::{config::Config, conn::Conn};
    crate::model::timeline::Record {
        ts_ns: 1_500_000_000,
        conn: Conn {
            netns: 4026531840,
            local: "[::1]:40000".parse().unwrap(),
            remote: "[::1]:5000".parse().unwrap(),
        },
        config: Some(Config {
            keepalive: true,
            idle_s: 1,
            intvl_s: 1,
            cnt: 3,
            user_timeout_ms: 0,
        }),
        report,
    }
}
