//! Helpers shared by the subcommands: announced steps, child processes with
//! the right PATH, root, and reading cargo's JSON messages.

use std::{
    ffi::OsString,
    io::{BufRead as _, BufReader},
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::{Command, ExitCode, ExitStatus, Stdio},
};

use anyhow::{Context as _, bail};

/// Says on stderr what xtask is about to do.
pub fn step(message: impl std::fmt::Display) {
    eprintln!("xtask: {message}");
}

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// Where `cargo install` puts binaries: `$CARGO_HOME/bin`, else `~/.cargo/bin`.
pub fn cargo_bin_dir() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .map(|home| home.join("bin"))
}

/// PATH for child processes, with the cargo bin directory first so that a
/// freshly installed bpf-linker is found by the eBPF build.
pub fn child_path() -> OsString {
    let current = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&current).collect();
    if let Some(bin) = cargo_bin_dir()
        && !dirs.contains(&bin)
    {
        dirs.insert(0, bin);
    }
    std::env::join_paths(dirs).unwrap_or(current)
}

/// A command run from the workspace root with [`child_path`] as its PATH.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("PATH", child_path()).current_dir(workspace_root());
    cmd
}

/// The cargo that runs xtask (`$CARGO`), so the toolchain stays the same.
pub fn cargo() -> Command {
    command(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// `program arg arg...` for messages.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` with inherited stdio and fails unless it exits 0.
pub fn run_cmd(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("starting `{}`", describe(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(cmd));
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout; fails with its stderr unless it exits 0.
pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting `{}`", describe(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).with_context(|| format!("output of `{}`", describe(cmd)))
}

/// Whether `cmd` runs and exits 0, its output discarded.
pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Whether `program` is found on [`child_path`].
pub fn on_path(program: &str) -> bool {
    std::env::split_paths(&child_path()).any(|dir| dir.join(program).is_file())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `cmd` as root: itself when we are root, else through `sudo`, carrying the
/// environment variables set on it (sudo may not pass them on otherwise).
pub fn as_root(cmd: Command, what: &str) -> anyhow::Result<Command> {
    if is_root() {
        return Ok(cmd);
    }
    if !on_path("sudo") {
        bail!("root is needed to run {what}: run this as root (sudo is not installed)");
    }
    step(format!("root is needed to run {what}: using sudo"));
    let mut sudo = Command::new("sudo");
    sudo.arg("-E").arg("env");
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            let mut pair = key.to_os_string();
            pair.push("=");
            pair.push(value);
            sudo.arg(pair);
        }
    }
    sudo.arg(cmd.get_program()).args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        sudo.current_dir(dir);
    }
    Ok(sudo)
}

/// The exit code a shell would report for `status` (128 + signal if killed).
pub fn exit_code(status: ExitStatus) -> ExitCode {
    let code = status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// One `compiler-artifact` message from cargo.
#[derive(Debug)]
pub struct Artifact {
    pub name: String,
    pub kinds: Vec<String>,
    /// Built as a test harness (`profile.test`).
    pub test: bool,
    pub executable: Option<PathBuf>,
}

/// Runs a cargo build-like command with JSON messages (diagnostics still
/// rendered on stderr) and returns the artifacts it reports.
pub fn cargo_artifacts(cmd: &mut Command) -> anyhow::Result<Vec<Artifact>> {
    cmd.arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped());
    let what = describe(cmd);
    let mut child = cmd.spawn().with_context(|| format!("starting `{what}`"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut artifacts = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.with_context(|| format!("reading the output of `{what}`"))?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let strings = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        };
        artifacts.push(Artifact {
            name: message["target"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            kinds: strings(&message["target"]["kind"]),
            test: message["profile"]["test"].as_bool().unwrap_or(false),
            executable: message["executable"].as_str().map(PathBuf::from),
        });
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{what}`"))?;
    if !status.success() {
        bail!("`{what}` failed ({status})");
    }
    Ok(artifacts)
}

/// The executable of bin target `name` among `artifacts`.
pub fn executable(artifacts: &[Artifact], name: &str) -> anyhow::Result<PathBuf> {
    artifacts
        .iter()
        .find(|a| !a.test && a.name == name && a.kinds.iter().any(|k| k == "bin"))
        .and_then(|a| a.executable.clone())
        .with_context(|| format!("cargo reported no executable for binary `{name}`"))
}
