//! `keepalive demo`: arguments, checked into a demo plan.

use std::{process::ExitCode, time::Duration};

use crate::{
    cli::args::parse_duration,
    demo::{DemoPlan, Fault},
    error::usage,
};

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// TCP_KEEPIDLE of the client.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub idle: Duration,
    /// TCP_KEEPINTVL of the client.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// TCP_KEEPCNT of the client.
    #[arg(long, default_value_t = 3)]
    pub count: u32,
    /// TCP_USER_TIMEOUT of the client (0: none).
    #[arg(long, value_parser = parse_duration)]
    pub user_timeout: Option<Duration>,
    /// blackhole: the peer stops answering; reset: the peer's socket
    /// vanishes (a reboot) and its kernel answers the next probe with RST;
    /// loss:PCT: the peer's packets are dropped at random; middlebox:SECS: a
    /// stateful firewall forgets flows idle for SECS and drops what follows.
    #[arg(long, default_value = "blackhole")]
    pub fault: String,
    /// One JSON object per line, ending with a verdict.
    #[arg(long)]
    pub json: bool,
}

fn parse_fault(text: &str) -> anyhow::Result<Fault> {
    let number = |v: &str, max: u32| v.parse::<u32>().ok().filter(|n| (1..=max).contains(n));
    match text.split_once(':') {
        None if text == "blackhole" => Ok(Fault::Blackhole),
        None if text == "reset" => Ok(Fault::Reset),
        Some(("loss", pct)) => number(pct, 100)
            .map(Fault::Loss)
            .ok_or_else(|| usage("--fault loss:PCT takes a percentage from 1 to 100")),
        Some(("middlebox", secs)) => number(secs, 3600)
            .map(Fault::Middlebox)
            .ok_or_else(|| usage("--fault middlebox:SECS takes seconds from 1 to 3600")),
        _ => Err(usage(format!(
            "--fault {text}: use blackhole, reset, loss:PCT or middlebox:SECS"
        ))),
    }
}

fn whole_seconds(name: &str, d: Duration) -> anyhow::Result<u32> {
    if d.subsec_nanos() != 0 || d.as_secs() == 0 || d.as_secs() > 60 {
        return Err(usage(format!(
            "--{name} must be whole seconds from 1 to 60 for a demo"
        )));
    }
    Ok(d.as_secs() as u32)
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let fault = parse_fault(&args.fault)?;
    let (idle_s, intvl_s) = (
        whole_seconds("idle", args.idle)?,
        whole_seconds("interval", args.interval)?,
    );
    if !(1..=20).contains(&args.count) {
        return Err(usage("--count must be from 1 to 20 for a demo"));
    }
    crate::demo::run(&DemoPlan {
        idle_s,
        intvl_s,
        count: args.count,
        user_timeout_ms: args.user_timeout.map_or(0, |d| d.as_millis() as u32),
        fault,
        fault_text: args.fault,
        json: args.json,
    })
}
