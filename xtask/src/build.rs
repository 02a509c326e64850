//! `cargo xtask build`: set up, then build keepalive, whose build.rs builds
//! and embeds the eBPF programs.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::{
    setup,
    util::{cargo, cargo_artifacts, executable, step},
};

#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Build with the release profile.
    #[arg(long)]
    pub release: bool,
}

pub fn run(args: &BuildArgs) -> anyhow::Result<PathBuf> {
    setup::run()?;
    keepalive(args.release)
}

/// Builds the `keepalive` binary (setup already done) and returns its path.
pub fn keepalive(release: bool) -> anyhow::Result<PathBuf> {
    let profile = if release { "release" } else { "debug" };
    step(format!(
        "building keepalive ({profile}) with its eBPF programs"
    ));
    let mut cmd = cargo();
    cmd.args(["build", "--package", "keepalive-user", "--bin", "keepalive"]);
    if release {
        cmd.arg("--release");
    }
    let artifacts = cargo_artifacts(&mut cmd).context("building keepalive")?;
    executable(&artifacts, "keepalive")
}
