use std::process::ExitCode;

use clap::Parser as _;
use keepalive::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let result = match cli.command {
        Command::Doctor(args) => keepalive::doctor::run(&args),
        Command::Watch(args) => keepalive::watch::run(args),
        Command::Set(args) => keepalive::set::run(args),
        Command::Ls(args) => keepalive::ls::run(args),
        Command::Demo(args) => keepalive::demo::run(args),
        Command::Discover(args) => keepalive::discover::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("keepalive: {err:#}");
            ExitCode::from(keepalive::cli::exit_code_for(&err))
        }
    }
}
