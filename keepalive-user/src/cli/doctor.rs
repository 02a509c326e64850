//! `keepalive doctor`: the checks, printed as a table or JSON.

use std::process::ExitCode;

use serde_json::json;

use crate::doctor::{Check, kernel_release, run_checks};

#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    let checks = run_checks()?;
    let missing: Vec<&Check> = checks.iter().filter(|c| c.required && !c.ok).collect();
    if args.json {
        crate::outln!(
            "{}",
            json!({"ok": missing.is_empty(), "kernel": kernel_release(), "checks": checks})
        )?;
    } else {
        crate::outln!("keepalive doctor: Linux {}", kernel_release())?;
        let width = checks.iter().map(|c| c.check.len()).max().unwrap_or(10);
        for c in &checks {
            let mark = match (c.ok, c.required) {
                (true, _) => "ok     ",
                (false, true) => "MISSING",
                (false, false) => "absent ",
            };
            let detail = c.detail.lines().next().unwrap_or("");
            crate::outln!("  {mark}  {:<width$}  {detail}", c.check)?;
            if !c.ok && !c.without_it.is_empty() {
                crate::outln!("           {:<width$}  without it: {}", "", c.without_it)?;
            }
        }
        if missing.is_empty() {
            crate::outln!("core hooks work: `keepalive watch` can run here")?;
        } else {
            let names: Vec<&str> = missing.iter().map(|c| c.check.as_str()).collect();
            crate::outln!("missing: {}", names.join(", "))?;
        }
    }
    Ok(if missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
