//! `cargo xtask`: the project's build, run and test entry points. One module
//! per subcommand; each step says what it does on stderr.

mod bench;
mod build;
mod clippy;
mod run;
mod setup;
mod test;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Build, run and test keepalive, installing what that needs first.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Install what is missing: nightly rust-src, bpf-linker, Debian packages the tests use.
    Setup,
    /// Set up, then build keepalive (the eBPF programs are embedded by its build.rs).
    Build(build::BuildArgs),
    /// Set up, build, then run keepalive as root with the given arguments.
    Run(run::RunArgs),
    /// Set up, then run clippy with `-D warnings` on every crate, the eBPF one
    /// included (for the bpf target, with nightly); lints to add after `--`.
    Clippy(clippy::ClippyArgs),
    /// Set up, run the unit tests, then the integration tests as root, one
    /// test thread per binary (XTASK_TEST_THREADS=N to change).
    Test(test::TestArgs),
    /// Set up, build (release), then measure the observer's overhead and
    /// capacity as root and write BENCHMARKS.md (takes about 8 minutes).
    Bench(bench::BenchArgs),
    /// Holds idle keepalive connections for `bench` (started by it).
    #[command(hide = true)]
    BenchHold(bench::HoldArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup => setup::run().map(|()| ExitCode::SUCCESS),
        Command::Build(args) => build::run(&args).map(|_| ExitCode::SUCCESS),
        Command::Run(args) => run::run(&args),
        Command::Clippy(args) => clippy::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Test(args) => test::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::BenchHold(args) => bench::hold(&args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
