//! `keepalive ls`: not written yet.

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct LsArgs {}

pub fn run(_args: LsArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`keepalive ls` is not implemented yet")
}
