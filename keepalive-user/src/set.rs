//! `keepalive set`: not written yet.

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct SetArgs {}

pub fn run(_args: SetArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`keepalive set` is not implemented yet")
}
