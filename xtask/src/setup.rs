//! `cargo xtask setup`: installs what building and testing need, each piece
//! only when it is missing, so a second run takes seconds.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::util::{command, is_root, on_path, output, run_cmd, step, succeeds};

/// Debian packages the integration tests drive (bpftool checks that nothing
/// is left loaded after a watcher exits; strace holds a syscall to make a
/// race deterministic; chromium renders `report`'s page headless, as a
/// reader's browser would).
const TEST_PACKAGES: &[&str] = &[
    "iproute2", "nftables", "iperf3", "tcpdump", "bpftool", "procps", "strace", "python3",
    "chromium",
];

pub fn run() -> anyhow::Result<()> {
    if !on_path("rustup") {
        bail!("rustup is not on PATH: the eBPF build needs rustup's nightly toolchain");
    }
    nightly_toolchain()?;
    rust_src()?;
    bpf_linker()?;
    debian_packages()?;
    step("setup done");
    Ok(())
}

fn nightly_toolchain() -> anyhow::Result<()> {
    let list = output(command("rustup").args(["toolchain", "list"]))?;
    if list.lines().any(|line| line.starts_with("nightly")) {
        return Ok(());
    }
    step("installing the nightly toolchain (rustup toolchain install nightly --profile minimal)");
    run_cmd(command("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))
        .context(
            "the eBPF programs need a nightly toolchain (-Z build-std); install one with rustup",
        )
}

fn rust_src() -> anyhow::Result<()> {
    let installed = output(command("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))?;
    if installed.lines().any(|line| line.starts_with("rust-src")) {
        return Ok(());
    }
    step("installing rust-src for nightly (rustup component add rust-src --toolchain nightly)");
    run_cmd(command("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
        .context("installing rust-src, which -Z build-std=core needs")
}

fn bpf_linker_works() -> bool {
    succeeds(command("bpf-linker").arg("--version"))
}

/// Builds bpf-linker against the nightly toolchain's own libLLVM: Debian has
/// no development install of the LLVM version rustc uses, and there is no
/// prebuilt binary to download here.
fn bpf_linker() -> anyhow::Result<()> {
    if bpf_linker_works() {
        return Ok(());
    }
    let version = output(command("rustup").args(["run", "nightly", "rustc", "-vV"]))?;
    let major = llvm_major(&version).with_context(|| {
        format!("no \"LLVM version:\" line in `rustc +nightly -vV`:\n{version}")
    })?;
    let sysroot =
        output(command("rustup").args(["run", "nightly", "rustc", "--print", "sysroot"]))?;
    let libllvm = find_libllvm(Path::new(sysroot.trim()))?;
    let prefix = llvm_prefix()?;
    step(format!(
        "linking {} into the LLVM prefix {}",
        libllvm.display(),
        prefix.display()
    ));
    let lib = prefix.join("lib");
    std::fs::create_dir_all(&lib).with_context(|| format!("creating {}", lib.display()))?;
    let file_name = libllvm.file_name().expect("a library file has a name");
    for link in [lib.join("libLLVM.so"), lib.join(file_name)] {
        if link.symlink_metadata().is_ok() {
            std::fs::remove_file(&link).with_context(|| format!("removing {}", link.display()))?;
        }
        std::os::unix::fs::symlink(&libllvm, &link)
            .with_context(|| format!("linking {} to {}", link.display(), libllvm.display()))?;
    }
    let feature = format!("llvm-{major}");
    step(format!(
        "building bpf-linker against nightly's LLVM {major} \
         (LLVM_PREFIX={} cargo +nightly install bpf-linker --no-default-features --features {feature}; about a minute)",
        prefix.display()
    ));
    run_cmd(
        command("rustup")
            .args(["run", "nightly", "cargo", "install", "bpf-linker"])
            .args(["--no-default-features", "--features", &feature])
            .env("LLVM_PREFIX", &prefix),
    )
    .context("building bpf-linker")?;
    if !bpf_linker_works() {
        bail!("bpf-linker was installed but `bpf-linker --version` still fails");
    }
    Ok(())
}

/// `22` from rustc's `LLVM version: 22.1.4` line.
fn llvm_major(rustc_version: &str) -> Option<&str> {
    let version = rustc_version
        .lines()
        .find_map(|line| line.strip_prefix("LLVM version:"))?
        .trim();
    let major = version.split('.').next()?;
    (!major.is_empty() && major.bytes().all(|b| b.is_ascii_digit())).then_some(major)
}

fn find_libllvm(sysroot: &Path) -> anyhow::Result<PathBuf> {
    let lib = sysroot.join("lib");
    let entries = std::fs::read_dir(&lib).with_context(|| format!("listing {}", lib.display()))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("libLLVM.so.") || name.starts_with("libLLVM-"))
        })
        .collect();
    found.sort();
    found.pop().with_context(|| {
        format!(
            "no libLLVM.so.* in {}: is the nightly toolchain complete?",
            lib.display()
        )
    })
}

fn llvm_prefix() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(PathBuf::from(home).join(".cache/keepalive/llvm-prefix"))
}

fn debian_packages() -> anyhow::Result<()> {
    if !on_path("dpkg-query") {
        step(format!(
            "not a Debian system: make sure these are installed for the tests: {}",
            TEST_PACKAGES.join(" ")
        ));
        return Ok(());
    }
    // dpkg-query exits non-zero when a package is unknown; the others still print.
    let status = command("dpkg-query")
        .args(["-W", "-f", "${Package} ${Status}\\n"])
        .args(TEST_PACKAGES)
        .output()
        .context("running dpkg-query")?;
    let status = String::from_utf8_lossy(&status.stdout);
    let missing: Vec<&str> = TEST_PACKAGES
        .iter()
        .copied()
        .filter(|package| {
            !status.lines().any(|line| {
                line.strip_prefix(package)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .is_some_and(|state| state == "install ok installed")
            })
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !is_root() {
        step(format!(
            "warning: the integration tests need these Debian packages: {list}; \
             install them with `sudo apt-get install -y {list}`"
        ));
        return Ok(());
    }
    step("updating the package lists (apt-get update)");
    run_cmd(
        command("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    step(format!("installing {list} (apt-get install -y)"));
    run_cmd(
        command("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .with_context(|| format!("installing {list}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llvm_major_from_rustc_vv() {
        let vv = "rustc 1.97.0-nightly (e50aa6fba 2026-05-19)\nhost: x86_64-unknown-linux-gnu\nLLVM version: 22.1.4\n";
        assert_eq!(llvm_major(vv), Some("22"));
        assert_eq!(llvm_major("rustc 1.0\n"), None);
        assert_eq!(llvm_major("LLVM version: \n"), None);
    }
}
