use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let metadata = cargo_metadata_ebpf_dir()?;
    aya_build::build_ebpf(
        [Package {
            name: "keepalive-ebpf",
            root_dir: &metadata,
            ..Default::default()
        }],
        Toolchain::default(),
    )
    .context("building the eBPF programs (cargo xtask installs rust-src and bpf-linker)")
}

fn cargo_metadata_ebpf_dir() -> anyhow::Result<String> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR")?;
    let dir = std::path::Path::new(&manifest)
        .parent()
        .ok_or_else(|| anyhow!("no parent of {manifest}"))?
        .join("keepalive-ebpf");
    Ok(dir.to_string_lossy().into_owned())
}
