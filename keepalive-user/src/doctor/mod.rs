//! `keepalive doctor`'s checks: this kernel, hook by hook — what works,
//! what is missing, and what the user loses without it. Everything is
//! checked for real: programs are loaded and attached, and a self-test
//! must see a probe and its answer.

mod self_test;

use serde::Serialize;

use crate::kernel::{
    HookStatus, LoadOptions, Observer, btf_offsets, cgroup, loader, privilege, tracefs,
};

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: String,
    pub ok: bool,
    pub required: bool,
    pub detail: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub without_it: String,
}

impl Check {
    pub fn new(
        check: &str,
        ok: bool,
        required: bool,
        detail: impl Into<String>,
        without_it: &str,
    ) -> Self {
        Self {
            check: check.into(),
            ok,
            required,
            detail: detail.into(),
            without_it: without_it.into(),
        }
    }
}

impl From<HookStatus> for Check {
    fn from(h: HookStatus) -> Self {
        Self {
            check: h.hook,
            ok: h.ok,
            required: h.required,
            detail: h.detail,
            without_it: h.without_it,
        }
    }
}

pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn environment_checks() -> Vec<Check> {
    let mut checks = Vec::new();
    let btf = btf_offsets::load_vmlinux();
    checks.push(Check::new(
        "BTF (/sys/kernel/btf/vmlinux)",
        btf.is_ok(),
        false,
        btf.as_ref()
            .map_or_else(|e| format!("{e:#}"), |_| "present".into()),
        "probes carry no settings, idle time, or zero-window distinction",
    ));
    if let Ok(btf) = &btf {
        let resolved = btf_offsets::resolve(btf);
        let detail = if resolved.missing.is_empty() {
            format!("all socket fields resolved (HZ={})", resolved.offsets.hz)
        } else {
            resolved.missing.join("; ")
        };
        checks.push(Check::new(
            "socket field offsets",
            resolved.missing.is_empty(),
            false,
            detail,
            "",
        ));
    }
    let tracefs_was_mounted = std::path::Path::new("/sys/kernel/tracing/events").is_dir()
        || std::path::Path::new("/sys/kernel/debug/tracing/events").is_dir();
    match tracefs::ensure_mounted() {
        Ok(dir) => {
            let how = if tracefs_was_mounted {
                "mounted"
            } else {
                "was not mounted: mounted it"
            };
            checks.push(Check::new(
                "tracefs",
                true,
                true,
                format!("{} ({how})", dir.display()),
                "",
            ));
            let layout = tracefs::layout(&dir);
            let (ok, detail) = if layout.send_reset_reason == keepalive_common::UNKNOWN {
                (false, "no reason field (kernel < 6.10)".to_string())
            } else if layout.keepalive_timeout_reason == keepalive_common::UNKNOWN {
                (
                    false,
                    "no TCP_KEEPALIVE_TIMEOUT reason (kernel < ~6.12)".to_string(),
                )
            } else {
                (
                    true,
                    format!(
                        "TCP_KEEPALIVE_TIMEOUT = {}",
                        layout.keepalive_timeout_reason
                    ),
                )
            };
            checks.push(Check::new(
                "tcp_send_reset reason",
                ok,
                false,
                detail,
                "keepalive kills recognised from ETIMEDOUT after unanswered probes",
            ));
        }
        Err(err) => checks.push(Check::new(
            "tracefs",
            false,
            true,
            format!("{err:#}"),
            "no tracepoints",
        )),
    }
    let cgroup = cgroup::find_cgroup2_mount();
    checks.push(Check::new(
        "cgroup v2",
        true,
        true,
        cgroup.map_or_else(
            || "not mounted in this mount namespace: a private mount is made at start-up".into(),
            |p| format!("mounted at {}", p.display()),
        ),
        "",
    ));
    checks
}

/// Every check, in the order they are shown.
pub fn run_checks() -> anyhow::Result<Vec<Check>> {
    privilege::require_bpf_privileges()?;
    let mut checks = environment_checks();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match Observer::load(&LoadOptions::default()) {
        Ok(mut observer) => {
            checks.push(Check::new(
                "bpf() syscall and verifier",
                true,
                true,
                "object loaded",
                "",
            ));
            checks.extend(observer.status.clone().into_iter().map(Check::from));
            checks.extend(runtime.block_on(self_test::self_test(&mut observer)));
        }
        Err(err) => checks.push(Check::new(
            "bpf() syscall and verifier",
            false,
            true,
            format!("{err:#}"),
            "nothing works",
        )),
    }
    checks.extend(loader::probe_optional_hooks().into_iter().map(Check::from));

    Ok(checks)
}
