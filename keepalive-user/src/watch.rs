//! `keepalive watch`: not written yet.
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct WatchArgs {}

pub fn run(_args: WatchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet")
}
