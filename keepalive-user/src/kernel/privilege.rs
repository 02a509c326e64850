//! Refusing early, with one clear line, when we lack the privileges to load.

use anyhow::bail;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

/// Loading and attaching need CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN, or
/// CAP_SYS_ADMIN (which implies them on older kernels).
pub fn require_bpf_privileges() -> anyhow::Result<()> {
    let Some(caps) = effective_capabilities() else {
        return Ok(()); // cannot tell: let the kernel decide
    };
    let has = |cap: u32| caps & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON) && has(CAP_NET_ADMIN)) {
        return Ok(());
    }
    bail!(
        "permission denied: loading eBPF programs needs root (CAP_BPF, CAP_PERFMON and \
         CAP_NET_ADMIN, or CAP_SYS_ADMIN); run with sudo"
    )
}
