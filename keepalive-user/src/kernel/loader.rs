//! Loading the embedded eBPF object and attaching what this kernel allows
//! (the `hooks` table says what goes where).

use std::{fs::File, path::PathBuf};

use anyhow::{Context as _, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, RingBuf},
    programs::{CgroupAttachMode, CgroupSkb, RawTracePoint, SockOps, TracePoint},
};
use keepalive_common::{Policy, SockOffsets, TracepointLayout, UNKNOWN};

use super::{
    btf_offsets,
    cgroup::Cgroup2Root,
    hooks::{Attach, HOOKS, Hook, HookSet, HookStatus, hook_name},
    privilege,
    ring::LostCounter,
    tracefs,
};

/// The eBPF object, built by build.rs and embedded so that a copied binary
/// runs without the source tree.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/keepalive"));

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Attach the cgroup programs here instead of the cgroup v2 root.
    pub cgroup: Option<PathBuf>,
    /// Ring buffer size in bytes (a power of two, multiple of the page size).
    pub ring_bytes: Option<u32>,
    pub policy: Policy,
    pub hooks: HookSet,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            cgroup: None,
            ring_bytes: None,
            policy: Policy::disabled(),
            hooks: HookSet::ALL,
        }
    }
}

/// The loaded object. Dropping it detaches everything: programs, links and
/// maps are file descriptors owned by this process.
pub struct Observer {
    ebpf: Ebpf,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    pub status: Vec<HookStatus>,
    /// Kernel fields that could not be resolved and what that costs.
    pub degraded: Vec<String>,
    pub cgroup_path: PathBuf,
    _cgroup_root: Cgroup2Root,
}

impl Observer {
    pub fn load(options: &LoadOptions) -> anyhow::Result<Self> {
        privilege::require_bpf_privileges()?;
        let cgroup_root = Cgroup2Root::find_or_mount()?;
        let cgroup_path = match &options.cgroup {
            Some(p) => cgroup_root.resolve(p)?,
            None => cgroup_root.path.clone(),
        };
        let mut degraded = Vec::new();
        let layout = match tracefs::ensure_mounted() {
            Ok(dir) => tracefs::layout(&dir),
            Err(err) => {
                degraded.push(format!("{err:#}: tracepoints unavailable"));
                TracepointLayout::unknown()
            }
        };
        if layout.send_reset_reason == UNKNOWN {
            degraded.push(
                "tcp:tcp_send_reset has no reason field (kernel < 6.10): keepalive kills \
                 recognised from ETIMEDOUT after unanswered probes"
                    .into(),
            );
        } else if layout.keepalive_timeout_reason == UNKNOWN {
            degraded.push(
                "this kernel's reset reasons lack TCP_KEEPALIVE_TIMEOUT (< ~6.12): keepalive \
                 kills recognised from ETIMEDOUT after unanswered probes"
                    .into(),
            );
        }
        let offsets = match btf_offsets::load_vmlinux() {
            Ok(btf) => {
                let resolved = btf_offsets::resolve(&btf);
                degraded.extend(resolved.missing.iter().map(|m| m.to_string()));
                resolved.offsets
            }
            Err(err) => {
                degraded.push(format!("{err:#}: probes carry no settings or idle time"));
                SockOffsets::unknown()
            }
        };

        let mut loader = EbpfLoader::new();
        loader
            .override_global("SOCK_OFFSETS", &offsets, true)
            .override_global("TP_LAYOUT", &layout, true)
            .override_global("POLICY", &options.policy, true);
        if let Some(bytes) = options.ring_bytes {
            loader.map_max_entries("EVENTS", bytes);
        }
        let mut ebpf = loader
            .load(EBPF_OBJECT)
            .context("loading the eBPF object")?;
        let logger = aya_log::EbpfLogger::init(&mut ebpf)
            .inspect_err(|err| log::debug!("kernel-side logging unavailable: {err}"))
            .ok();

        let cgroup = File::open(&cgroup_path)
            .with_context(|| format!("opening cgroup {}", cgroup_path.display()))?;
        let mut status = Vec::new();
        for hook in HOOKS.iter().filter(|h| options.hooks.includes(h.group)) {
            let result = attach(&mut ebpf, hook, &cgroup);
            let (ok, detail) = match result {
                Ok(detail) => (true, detail),
                Err(err) => (false, format!("{err:#}")),
            };
            status.push(HookStatus {
                hook: hook_name(hook),
                ok,
                required: hook.required,
                detail,
                without_it: hook.without_it.to_string(),
            });
        }
        if let Some(failed) = status.iter().find(|s| s.required && !s.ok) {
            return Err(anyhow!(
                "cannot attach {}: {} ({})",
                failed.hook,
                failed.detail,
                failed.without_it
            ));
        }
        Ok(Self {
            ebpf,
            logger,
            status,
            degraded,
            cgroup_path,
            _cgroup_root: cgroup_root,
        })
    }

    /// The event ring buffer; callable once.
    pub fn take_events(&mut self) -> anyhow::Result<RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map("EVENTS")
            .ok_or_else(|| anyhow!("no EVENTS map"))?;
        Ok(RingBuf::try_from(map)?)
    }

    /// The per-CPU count of events the ring buffer could not take.
    pub fn take_lost_counter(&mut self) -> anyhow::Result<LostCounter> {
        let map = self
            .ebpf
            .take_map("LOST")
            .ok_or_else(|| anyhow!("no LOST map"))?;
        Ok(LostCounter::new(PerCpuArray::try_from(map)?))
    }

    /// Forwards the kernel programs' aya-log messages to the log crate.
    pub fn flush_kernel_logs(&mut self) {
        if let Some(logger) = &mut self.logger {
            logger.flush();
        }
    }

    /// Hooks that failed but are optional: what the user cannot see.
    pub fn missing_optional(&self) -> impl Iterator<Item = &HookStatus> {
        self.status.iter().filter(|s| !s.ok)
    }
}

fn attach(ebpf: &mut Ebpf, hook: &Hook, cgroup: &File) -> anyhow::Result<String> {
    let program = ebpf
        .program_mut(hook.program)
        .ok_or_else(|| anyhow!("program {} missing from the object", hook.program))?;
    // cgroup links always coexist with other programs (systemd's, other
    // keepalive instances); bpf_link_create rejects BPF_F_ALLOW_MULTI with
    // EINVAL, so the mode must stay at its default here.
    match hook.attach {
        Attach::CgroupSkb(attach_type) => {
            let program: &mut CgroupSkb = program.try_into()?;
            program.load().context("verifier")?;
            program.attach(cgroup, attach_type, CgroupAttachMode::default())?;
            Ok("attached (bpf link)".into())
        }
        Attach::TracePoint(category, name) => {
            let program: &mut TracePoint = program.try_into()?;
            program.load().context("verifier")?;
            program.attach(category, name)?;
            Ok("attached".into())
        }
        Attach::RawTracePoint(name) => {
            let program: &mut RawTracePoint = program.try_into()?;
            program.load().context("verifier")?;
            program.attach(name)?;
            Ok("attached".into())
        }
        Attach::SockOps => {
            let program: &mut SockOps = program.try_into()?;
            program.load().context("verifier")?;
            program.attach(cgroup, CgroupAttachMode::default())?;
            Ok("attached (bpf link)".into())
        }
    }
}

/// Loads, for doctor only, the hooks we do not use, to report whether this
/// kernel has them.
pub fn probe_optional_hooks() -> Vec<HookStatus> {
    let mut out = Vec::new();
    let mut ebpf = match EbpfLoader::new().load(EBPF_OBJECT) {
        Ok(ebpf) => ebpf,
        Err(err) => {
            out.push(HookStatus {
                hook: "kprobe/fentry".into(),
                ok: false,
                required: false,
                detail: format!("{err:#}"),
                without_it: String::new(),
            });
            return out;
        }
    };
    let kprobe = (|| -> anyhow::Result<()> {
        let p: &mut aya::programs::KProbe = ebpf
            .program_mut("keepalive_timer_kprobe")
            .ok_or_else(|| anyhow!("missing"))?
            .try_into()?;
        p.load()?;
        p.attach("tcp_keepalive_timer", 0)?;
        Ok(())
    })();
    out.push(HookStatus {
        hook: "kprobe tcp_keepalive_timer".into(),
        ok: kprobe.is_ok(),
        required: false,
        detail: kprobe.err().map_or("attached".into(), |e| format!("{e:#}")),
        without_it: "not used: probes are recognised on the wire instead".into(),
    });
    let fentry = (|| -> anyhow::Result<()> {
        let btf = aya::Btf::from_sys_fs()?;
        let p: &mut aya::programs::FEntry = ebpf
            .program_mut("keepalive_timer_fentry")
            .ok_or_else(|| anyhow!("missing"))?
            .try_into()?;
        p.load("tcp_keepalive_timer", &btf)?;
        p.attach()?;
        Ok(())
    })();
    out.push(HookStatus {
        hook: "fentry tcp_keepalive_timer".into(),
        ok: fentry.is_ok(),
        required: false,
        detail: fentry.err().map_or("attached".into(), |e| format!("{e:#}")),
        without_it: "not used: timer firings without a probe (e.g. data in flight) are not seen"
            .into(),
    });
    out
}
