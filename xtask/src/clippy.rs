//! `cargo xtask clippy`: clippy on every crate, the eBPF one included, which
//! plain `cargo clippy` cannot reach (it builds only for the bpf target, with
//! nightly's `-Z build-std=core`).

use anyhow::bail;

use crate::{
    setup,
    util::{cargo, command, run_cmd, step, workspace_root},
};

#[derive(clap::Args, Debug)]
pub struct ClippyArgs {
    /// Lint arguments for clippy-driver (after `--`), e.g.
    /// `-- -W clippy::undocumented_unsafe_blocks`; `-D warnings` is always on.
    #[arg(last = true)]
    lints: Vec<String>,
}

pub fn run(args: &ClippyArgs) -> anyhow::Result<()> {
    setup::run()?;
    step(
        "clippy on the host crates (cargo clippy --workspace --exclude keepalive-ebpf --all-targets)",
    );
    let mut host = cargo();
    host.args([
        "clippy",
        "--workspace",
        "--exclude",
        "keepalive-ebpf",
        "--all-targets",
    ])
    .args(["--", "-D", "warnings"])
    .args(&args.lints);
    // Both runs even when the first fails: one report of everything to fix.
    let host = run_cmd(&mut host);

    step("clippy on keepalive-ebpf (nightly, bpfel-unknown-none, -Z build-std=core)");
    // Its own target directory: nightly's build-std artifacts stay apart
    // from the stable ones in target/.
    let target_dir = workspace_root().join("target").join("bpf-clippy");
    let mut ebpf = command("rustup");
    ebpf.args([
        "run",
        "nightly",
        "cargo",
        "clippy",
        "--package",
        "keepalive-ebpf",
    ])
    .args([
        "--release",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
    ])
    .arg("--target-dir")
    .arg(&target_dir)
    .args(["--", "-D", "warnings"])
    .args(&args.lints)
    // `cargo xtask` runs under the stable toolchain: let rustup pick nightly's tools.
    .env_remove("RUSTC")
    .env_remove("RUSTC_WORKSPACE_WRAPPER")
    .env_remove("RUSTUP_TOOLCHAIN");
    let ebpf = run_cmd(&mut ebpf);
    match (host, ebpf) {
        (Ok(()), Ok(())) => {
            step("clippy: no warnings");
            Ok(())
        }
        (Err(err), Ok(())) => Err(err.context("clippy found problems in the host crates")),
        (Ok(()), Err(err)) => Err(err.context("clippy found problems in keepalive-ebpf")),
        (Err(_), Err(_)) => bail!("clippy found problems in the host crates and in keepalive-ebpf"),
    }
}
