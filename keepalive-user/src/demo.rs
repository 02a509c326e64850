//! `keepalive demo`: not written yet.

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {}

pub fn run(_args: DemoArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`keepalive demo` is not implemented yet")
}
