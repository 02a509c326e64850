//! `cargo xtask run`: set up, build, then run keepalive as root.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::{
    build, setup,
    util::{as_root, command, describe, exit_code, step},
};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Build and run the release profile.
    #[arg(long)]
    release: bool,
    /// Arguments for keepalive (after `--`), e.g. `-- watch --port 443`.
    #[arg(last = true)]
    args: Vec<String>,
}

pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    setup::run()?;
    let binary = build::keepalive(args.release)?;
    let mut cmd = command(&binary);
    cmd.args(&args.args);
    // Keep the caller's directory: relative paths in ARGS are theirs.
    if let Ok(dir) = std::env::current_dir() {
        cmd.current_dir(dir);
    }
    let mut cmd = as_root(cmd, "keepalive (it loads eBPF programs)")?;
    step(format!("running {}", describe(&cmd)));
    // Ctrl-C reaches keepalive through the terminal; stay alive to pass on its exit code.
    ignore_sigint_while_waiting();
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(exit_code(status))
}

/// Installs a no-op SIGINT handler (not SIG_IGN, which a child would inherit
/// across exec, so keepalive still stops on Ctrl-C).
fn ignore_sigint_while_waiting() {
    extern "C" fn nothing(_: libc::c_int) {}
    // SAFETY: the handler does nothing, so it is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, nothing as *const () as libc::sighandler_t);
    }
}
