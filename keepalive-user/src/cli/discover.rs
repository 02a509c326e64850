//! `keepalive discover HOST:PORT`: arguments, checked into a discovery plan.

use std::{process::ExitCode, time::Duration};

use crate::{
    cli::args::parse_duration,
    discover::{DiscoverPlan, search::MAX_IDLE_S},
    error::usage,
};

#[derive(clap::Args, Debug)]
pub struct DiscoverArgs {
    /// The server: ADDRESS:PORT, [IPV6]:PORT or HOSTNAME:PORT.
    pub target: String,
    /// The longest idle to try (whole seconds, at most 32767s); the
    /// default is Linux's own TCP_KEEPIDLE.
    #[arg(long, default_value = "2h", value_parser = parse_duration)]
    pub max: Duration,
    /// Connections idling at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: u32,
    /// One JSON object per line: watch's events for the trial
    /// connections, a `trial` object per answer, then the `result`.
    #[arg(long)]
    pub json: bool,
}

fn validate(args: &DiscoverArgs) -> anyhow::Result<u32> {
    let max = args.max;
    if max.subsec_nanos() != 0 || !(2..=u64::from(MAX_IDLE_S)).contains(&max.as_secs()) {
        return Err(usage(format!(
            "--max must be whole seconds from 2 to {MAX_IDLE_S} (TCP_KEEPIDLE's limit)"
        )));
    }
    if !(1..=64).contains(&args.parallel) {
        return Err(usage("--parallel must be from 1 to 64"));
    }
    Ok(max.as_secs() as u32)
}

pub fn run(args: DiscoverArgs) -> anyhow::Result<ExitCode> {
    let max_s = validate(&args)?;
    crate::discover::run(DiscoverPlan {
        target: args.target,
        max_s,
        parallel: args.parallel,
        json: args.json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(max: &str, parallel: u32) -> DiscoverArgs {
        DiscoverArgs {
            target: "127.0.0.1:80".into(),
            max: parse_duration(max).unwrap(),
            parallel,
            json: false,
        }
    }

    #[test]
    fn max_and_parallel_limits() {
        assert_eq!(validate(&args("2h", 4)).unwrap(), 7200);
        assert_eq!(validate(&args("2", 1)).unwrap(), 2);
        for (max, parallel) in [("1", 4), ("1.5", 4), ("32768", 4), ("10", 0), ("10", 65)] {
            let err = validate(&args(max, parallel)).unwrap_err();
            assert_eq!(
                crate::error::exit_code_for(&err),
                2,
                "{max} {parallel}: {err}"
            );
        }
    }
}
