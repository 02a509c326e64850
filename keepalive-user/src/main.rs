//! The `keepalive` binary: parse the command line, run the command, turn
//! its error into an exit code.

use std::process::ExitCode;

use clap::Parser as _;
use keepalive::{cli::Cli, error::exit_code_for};

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match cli.command.run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("keepalive: {err:#}");
            ExitCode::from(exit_code_for(&err))
        }
    }
}
