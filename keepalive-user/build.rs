//! Builds the kernel programs (keepalive-ebpf, for the bpf target) and leaves
//! the object in `OUT_DIR/keepalive` for the loader's `include_bytes_aligned!`.
//!
//! This is what `aya_build::build_ebpf` 0.2.0 does, except for the output:
//! aya-build relays every line the inner cargo prints as `cargo:warning=`, so
//! a first build showed some 50 "warnings" that were only `Compiling ...`.
//! Here the inner cargo runs `--quiet`: on success only its real diagnostics
//! are relayed (a warning in the eBPF code still shows as one); on failure
//! its whole output goes to stderr, which cargo prints under the error.

use std::{
    env,
    ffi::OsStr,
    fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, anyhow, bail};

const EBPF_PACKAGE: &str = "keepalive-ebpf";
/// keepalive-ebpf's bin target; the loader embeds `OUT_DIR/<this>`.
const EBPF_BINARY: &str = "keepalive";
/// The toolchain `rustup run` builds the eBPF crate with (aya-build's default).
const TOOLCHAIN: &str = "nightly";
/// Set to 1 or true to skip the eBPF build, e.g. for a lint-only run.
const SKIP: &str = "AYA_BUILD_SKIP";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Not anyhow's `Error: ...` with a backtrace of this script.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .with_context(|| format!("no parent of {}", manifest_dir.display()))?;
    let ebpf_dir = workspace.join(EBPF_PACKAGE);
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let object = out_dir.join(EBPF_BINARY);

    // Printed only once the build succeeded: on failure cargo reruns us
    // anyway, and these lines would only clutter the error it shows.
    let mut directives = vec![
        format!("cargo:rerun-if-env-changed={SKIP}"),
        "cargo:rerun-if-env-changed=RUSTC_BOOTSTRAP".to_owned(),
    ];
    // The build-dependency on keepalive-ebpf's lib covers keepalive-common and
    // the crates it uses; these cover its binary's own sources, its release
    // profile (in the workspace manifest) and the versions locked.
    for path in [
        ebpf_dir.clone(),
        workspace.join("Cargo.toml"),
        workspace.join("Cargo.lock"),
    ] {
        directives.push(format!("cargo:rerun-if-changed={}", path.display()));
    }

    if env::var(SKIP).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        // An empty object keeps include_bytes_aligned! compiling; loading it fails.
        if !object.exists() {
            fs::write(&object, b"").with_context(|| format!("writing {}", object.display()))?;
        }
        directives.push(format!(
            "cargo:warning={SKIP} is set: the eBPF programs were not built, this keepalive cannot load them"
        ));
    } else {
        build_ebpf(&ebpf_dir, &out_dir, &object, &mut directives)?;
    }
    for directive in directives {
        println!("{directive}");
    }
    Ok(())
}

fn build_ebpf(
    ebpf_dir: &Path,
    out_dir: &Path,
    object: &Path,
    directives: &mut Vec<String>,
) -> anyhow::Result<()> {
    let endian = env::var("CARGO_CFG_TARGET_ENDIAN").context("CARGO_CFG_TARGET_ENDIAN")?;
    let target = match endian.as_str() {
        "little" => "bpfel-unknown-none",
        "big" => "bpfeb-unknown-none",
        other => bail!("unsupported target endianness {other}"),
    };
    // aya-ebpf's helpers differ per architecture (pt_regs and the like).
    let arch = env::var("CARGO_CFG_TARGET_ARCH").context("CARGO_CFG_TARGET_ARCH")?;
    let arch = if arch.starts_with("riscv64") {
        "riscv64"
    } else {
        &arch
    };

    let rustup = find_on_path("rustup");
    if rustup.is_none() {
        directives.push(format!(
            "cargo:warning=rustup is not on PATH: building the eBPF programs with the current toolchain instead of {TOOLCHAIN}"
        ));
    }
    let tool = |program: &str| match &rustup {
        Some(rustup) => {
            let mut cmd = Command::new(rustup);
            cmd.args(["run", TOOLCHAIN, program]);
            cmd
        }
        None => Command::new(program),
    };

    let mut cmd = tool("cargo");
    cmd.current_dir(ebpf_dir)
        .args(["build", "--quiet", "--package", EBPF_PACKAGE])
        .args(["--bins", "--release", "--target", target]);
    if use_build_std(&mut tool("rustc"))? {
        cmd.args(["-Z", "build-std=core"]);
    }
    let rustflags = [
        format!("--cfg=bpf_target_arch=\"{arch}\""),
        "-Cdebuginfo=2".to_owned(),
        "-Clink-arg=--btf".to_owned(),
    ]
    .join("\x1f");
    cmd.env("CARGO_ENCODED_RUSTFLAGS", rustflags);
    // The outer cargo's rustc is the stable one: let rustup pick nightly's.
    cmd.env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    // A target directory of its own: the outer cargo holds the lock on ours.
    let target_dir = out_dir.join("ebpf-target");
    cmd.arg("--target-dir").arg(&target_dir);

    let what = describe(&cmd);
    let output = cmd.output().with_context(|| {
        format!("starting `{what}` (`cargo xtask setup` installs the toolchain)")
    })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        // Cargo shows a failed build script's stderr: the compiler's errors
        // then read as they would from a plain `cargo build`.
        eprintln!("{}", stderr.trim_end());
        return Err(anyhow!(
            "building the eBPF programs failed ({}): `{what}`; its messages are above \
             (`cargo xtask setup` installs rust-src and bpf-linker)",
            output.status
        ));
    }
    // --quiet leaves only diagnostics: warnings in the eBPF code.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let said = format!("{}\n{}", stderr.trim(), stdout.trim());
    directives.extend(
        said.trim()
            .lines()
            .map(|line| format!("cargo:warning={line}")),
    );

    let built = target_dir.join(target).join("release").join(EBPF_BINARY);
    fs::copy(&built, object)
        .with_context(|| format!("copying {} to {}", built.display(), object.display()))?;
    Ok(())
}

/// Whether to pass `-Z build-std=core`, as aya-build decides it: RUSTC_BOOTSTRAP
/// (1 or our package name: yes, -1: no) else whether the toolchain is nightly.
fn use_build_std(rustc: &mut Command) -> anyhow::Result<bool> {
    match env::var("RUSTC_BOOTSTRAP").as_deref() {
        Ok("1" | EBPF_PACKAGE) => return Ok(true),
        Ok("-1") => return Ok(false),
        _ => {}
    }
    let what = describe(rustc.arg("-vV"));
    let output = rustc
        .output()
        .with_context(|| format!("starting `{what}`"))?;
    if !output.status.success() {
        bail!(
            "`{what}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let version = String::from_utf8_lossy(&output.stdout);
    Ok(version
        .lines()
        .find_map(|line| line.strip_prefix("release:"))
        .is_some_and(|release| release.contains("-nightly")))
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// `program arg arg...` for messages.
fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}
