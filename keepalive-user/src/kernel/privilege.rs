//! Refusing early, with one clear line, when we lack the privileges to load.

use anyhow::bail;
use rustix::thread::{CapabilitySet, capabilities};

/// Loading and attaching need CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN, or
/// CAP_SYS_ADMIN (which implies them on older kernels).
pub fn require_bpf_privileges() -> anyhow::Result<()> {
    let Ok(sets) = capabilities(None) else {
        return Ok(()); // cannot tell: let the kernel decide
    };
    let has = |cap: CapabilitySet| sets.effective.contains(cap);
    if has(CapabilitySet::SYS_ADMIN)
        || (has(CapabilitySet::BPF) && has(CapabilitySet::PERFMON) && has(CapabilitySet::NET_ADMIN))
    {
        return Ok(());
    }
    bail!(
        "permission denied: loading eBPF programs needs root (CAP_BPF, CAP_PERFMON and \
         CAP_NET_ADMIN, or CAP_SYS_ADMIN); run with sudo"
    )
}
