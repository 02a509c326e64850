//! The kernel's own accounting of BPF programs (run_time_ns / run_cnt,
//! switched on with `BPF_ENABLE_STATS` for as long as we hold its fd) and
//! the floor it is compared against: an empty cgroup_skb program pair that
//! only returns 1, attached beside ours at the same cgroup.

use std::{
    collections::BTreeMap,
    fs,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};

/// Keeps `kernel.bpf_stats_enabled` on until dropped; the kernel switches it
/// back off when the fd closes, even if we are killed.
pub struct StatsEnabled {
    _fd: OwnedFd,
}

pub fn enable_stats() -> anyhow::Result<StatsEnabled> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map(|fd| StatsEnabled { _fd: fd })
        .context("BPF_ENABLE_STATS (kernel.bpf_stats_enabled) failed: per-program run times need Linux >= 5.8 and root")
}

/// run_time_ns and run_cnt of one program at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    pub run_time_ns: u64,
    pub run_cnt: u64,
}

impl RunStats {
    pub fn since(self, earlier: Self) -> Self {
        Self {
            run_time_ns: self.run_time_ns.saturating_sub(earlier.run_time_ns),
            run_cnt: self.run_cnt.saturating_sub(earlier.run_cnt),
        }
    }

    pub fn ns_per_run(self) -> Option<f64> {
        (self.run_cnt > 0).then(|| self.run_time_ns as f64 / self.run_cnt as f64)
    }
}

/// Program name (as the kernel truncates it, 15 bytes) → its stats, for the
/// given program ids.
pub fn snapshot(ids: &[u32]) -> BTreeMap<String, RunStats> {
    let mut stats = BTreeMap::new();
    for info in aya::programs::loaded_programs().flatten() {
        if ids.contains(&info.id()) {
            let name = info.name_as_str().unwrap_or("?").to_owned();
            stats.insert(
                name,
                RunStats {
                    run_time_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
                    run_cnt: info.run_count(),
                },
            );
        }
    }
    stats
}

/// The BPF program ids a process holds open (its `/proc/PID/fdinfo`
/// `prog_id:` lines: program fds and the links that own attachments).
pub fn program_ids_of(pid: u32) -> Vec<u32> {
    let mut ids = Vec::new();
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return ids;
    };
    for entry in dir.flatten() {
        let Ok(text) = fs::read_to_string(entry.path()) else {
            continue;
        };
        for line in text.lines() {
            if let Some(id) = line.strip_prefix("prog_id:")
                && let Ok(id) = id.trim().parse()
                && !ids.contains(&id)
            {
                ids.push(id);
            }
        }
    }
    ids
}

/// The cgroup v2 root as mounted here (fstype `cgroup2` in /proc/self/mounts).
pub fn cgroup2_root() -> anyhow::Result<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, dir, fstype) = (fields.next()?, fields.next()?, fields.next()?);
            (fstype == "cgroup2").then(|| PathBuf::from(dir))
        })
        .next()
        .context("no cgroup2 file system is mounted")
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_CGROUP_SKB: u32 = 8;
const BPF_CGROUP_INET_INGRESS: u32 = 0;
const BPF_CGROUP_INET_EGRESS: u32 = 1;

/// `r0 = 1; exit`: lets every packet through and does nothing else.
const RETURN_ONE: [u64; 2] = [0xb7 | (1 << 32), 0x95];

/// An empty cgroup_skb program attached at ingress and egress of a cgroup
/// through bpf links: detached when dropped, or when the process dies.
pub struct EmptyPrograms {
    /// (program fd, link fd) per direction.
    attached: Vec<(OwnedFd, OwnedFd)>,
}

impl EmptyPrograms {
    pub fn attach(cgroup: &Path) -> anyhow::Result<Self> {
        let dir = fs::File::open(cgroup)
            .with_context(|| format!("opening cgroup {}", cgroup.display()))?;
        let mut attached = Vec::new();
        for (name, attach_type) in [
            ("bench_empty_in", BPF_CGROUP_INET_INGRESS),
            ("bench_empty_eg", BPF_CGROUP_INET_EGRESS),
        ] {
            let prog = load_return_one(name, attach_type)?;
            let link = link_create(&prog, &dir, attach_type)?;
            attached.push((prog, link));
        }
        Ok(Self { attached })
    }

    pub fn program_ids(&self) -> Vec<u32> {
        program_ids_of(std::process::id())
            .into_iter()
            .filter(|id| {
                self.attached
                    .iter()
                    .any(|(prog, _)| fd_prog_id(prog) == Some(*id))
            })
            .collect()
    }
}

fn fd_prog_id(fd: &OwnedFd) -> Option<u32> {
    let text = fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("prog_id:"))
        .and_then(|id| id.trim().parse().ok())
}

/// The fields of `union bpf_attr` that BPF_PROG_LOAD reads, in order; the
/// rest must be zero, hence the padding.
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    _rest: [u8; 64],
}

#[repr(C)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    _rest: [u8; 48],
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> anyhow::Result<OwnedFd> {
    // SAFETY: attr is a live, fully initialised bpf_attr prefix of the size
    // passed; the kernel copies it and returns a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr).cast::<libc::c_void>(),
            std::mem::size_of::<T>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: the kernel just returned this fd to us and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(i32::try_from(fd)?) })
}

fn load_return_one(name: &str, attach_type: u32) -> anyhow::Result<OwnedFd> {
    let license = c"GPL";
    let mut prog_name = [0u8; 16];
    if name.len() >= prog_name.len() {
        bail!("program name {name} is too long for the kernel");
    }
    prog_name[..name.len()].copy_from_slice(name.as_bytes());
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_SKB,
        insn_cnt: RETURN_ONE.len() as u32,
        insns: RETURN_ONE.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name,
        prog_ifindex: 0,
        expected_attach_type: attach_type,
        _rest: [0; 64],
    };
    bpf(BPF_PROG_LOAD, &mut attr).with_context(|| format!("loading the empty program {name}"))
}

fn link_create(prog: &OwnedFd, cgroup: &fs::File, attach_type: u32) -> anyhow::Result<OwnedFd> {
    let mut attr = LinkCreateAttr {
        prog_fd: u32::try_from(prog.as_raw_fd())?,
        target_fd: u32::try_from(cgroup.as_raw_fd())?,
        attach_type,
        flags: 0,
        _rest: [0; 48],
    };
    bpf(BPF_LINK_CREATE, &mut attr).context("attaching the empty program (BPF_LINK_CREATE)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_stats_difference_and_mean() {
        let before = RunStats {
            run_time_ns: 1_000,
            run_cnt: 10,
        };
        let after = RunStats {
            run_time_ns: 9_000,
            run_cnt: 110,
        };
        let delta = after.since(before);
        assert_eq!(delta.run_cnt, 100);
        assert_eq!(delta.ns_per_run(), Some(80.0));
        assert_eq!(RunStats::default().ns_per_run(), None);
    }
}
