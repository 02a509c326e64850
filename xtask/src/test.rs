//! `cargo xtask test`: unit tests without privileges, then the integration
//! tests in `tests/` as root, one binary at a time.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context as _, bail};

use crate::{
    build, setup,
    util::{as_root, cargo, cargo_artifacts, command, executable, run_cmd, step, workspace_root},
};

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// Run only the unit tests (no root needed).
    #[arg(long)]
    no_integration: bool,
    /// Passed to every test binary: a name filter, `--nocapture`, ...
    #[arg(last = true)]
    filter: Vec<String>,
}

pub fn run(args: &TestArgs) -> anyhow::Result<ExitCode> {
    setup::run()?;
    step(
        "running the unit tests (cargo test --workspace, without keepalive-ebpf and keepalive-tests)",
    );
    run_unit_tests(&args.filter)?;
    if args.no_integration {
        step("--no-integration: skipping the integration tests");
        return Ok(ExitCode::SUCCESS);
    }
    integration_tests(&args.filter)?;
    Ok(ExitCode::SUCCESS)
}

fn run_unit_tests(filter: &[String]) -> anyhow::Result<()> {
    let mut cmd = cargo();
    cmd.args(["test", "--workspace"]).args([
        "--exclude",
        "keepalive-ebpf",
        "--exclude",
        "keepalive-tests",
    ]);
    if !filter.is_empty() {
        cmd.arg("--").args(filter);
    }
    run_cmd(&mut cmd).context("unit tests failed")
}

fn integration_tests(filter: &[String]) -> anyhow::Result<()> {
    let keepalive = build::keepalive(false)?;
    step("building the integration tests and their helpers (tcp-peer, prefork-server, churn)");
    let mut bins = cargo();
    bins.args(["build", "--package", "keepalive-tests", "--bins"]);
    let helpers = cargo_artifacts(&mut bins)?;
    let tcp_peer = executable(&helpers, "tcp-peer")?;
    // The harness finds the other helpers beside tcp-peer.
    for helper in ["prefork-server", "churn"] {
        executable(&helpers, helper)?;
    }
    let mut tests = cargo();
    tests.args(["test", "--package", "keepalive-tests", "--no-run"]);
    let test_binaries: Vec<(String, PathBuf)> = cargo_artifacts(&mut tests)?
        .into_iter()
        .filter(|a| a.test && a.kinds.iter().any(|k| k == "test"))
        .filter_map(|a| Some((a.name, a.executable?)))
        .collect();
    if test_binaries.is_empty() {
        bail!("cargo built no integration test binaries in tests/tests/");
    }
    // The tests share the kernel's cgroup root and tracepoints: one at a time
    // unless asked otherwise.
    let threads = std::env::var("XTASK_TEST_THREADS").unwrap_or_else(|_| "1".into());
    let mut failed = Vec::new();
    for (name, binary) in &test_binaries {
        step(format!(
            "running integration tests `{name}` as root ({})",
            binary.display()
        ));
        let mut cmd = command(binary);
        cmd.arg(format!("--test-threads={threads}"))
            .args(filter)
            .env("KEEPALIVE_BIN", &keepalive)
            .env("KEEPALIVE_TCP_PEER", &tcp_peer)
            .current_dir(workspace_root().join("tests"));
        let mut cmd = as_root(cmd, "the integration tests")?;
        let status = cmd
            .status()
            .with_context(|| format!("starting {}", binary.display()))?;
        if !status.success() {
            failed.push(name.as_str());
        }
    }
    if !failed.is_empty() {
        bail!("integration tests failed: {}", failed.join(", "));
    }
    step(format!(
        "all {} integration test binaries passed",
        test_binaries.len()
    ));
    Ok(())
}
