//! `keepalive discover`: not written yet.

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct DiscoverArgs {}

pub fn run(_args: DiscoverArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`keepalive discover` is not implemented yet")
}
