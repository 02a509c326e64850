//! `keepalive doctor`: not written yet.
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet")
}
