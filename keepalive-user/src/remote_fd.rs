//! Another process's file descriptors, duplicated into ours with
//! pidfd_open + pidfd_getfd (Linux ≥ 5.6; needs PTRACE_MODE_ATTACH, which
//! root has). A setsockopt on the duplicate changes the shared socket.

use std::{
    io,
    os::fd::{FromRawFd as _, OwnedFd, RawFd},
};

use crate::cli::usage;

/// A handle on a live process.
pub struct Process {
    pub pid: u32,
    pidfd: OwnedFd,
}

impl Process {
    pub fn open(pid: u32) -> anyhow::Result<Self> {
        // SAFETY: plain syscall; the result is a new fd we own, or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::ESRCH) => usage(format!("--pid {pid}: no such process")),
                _ => anyhow::anyhow!("pidfd_open({pid}): {err}"),
            });
        }
        // SAFETY: fd is a fresh descriptor returned to us.
        Ok(Self {
            pid,
            pidfd: unsafe { OwnedFd::from_raw_fd(fd as RawFd) },
        })
    }

    /// The process's open descriptors that are sockets, from /proc/PID/fd.
    pub fn socket_fds(&self) -> anyhow::Result<Vec<RawFd>> {
        let dir = format!("/proc/{}/fd", self.pid);
        let mut fds = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| anyhow::anyhow!("reading {dir}: {e}"))? {
            let entry = entry?;
            let is_socket = std::fs::read_link(entry.path())
                .map(|t| t.to_string_lossy().starts_with("socket:["))
                .unwrap_or(false);
            if let (true, Some(fd)) = (
                is_socket,
                entry.file_name().to_str().and_then(|n| n.parse().ok()),
            ) {
                fds.push(fd);
            }
        }
        fds.sort_unstable();
        Ok(fds)
    }

    /// Duplicates the process's descriptor `fd` into this process.
    pub fn dup_fd(&self, fd: RawFd) -> io::Result<OwnedFd> {
        use std::os::fd::AsRawFd as _;
        // SAFETY: plain syscall; the result is a new fd we own, or -1.
        let dup = unsafe { libc::syscall(libc::SYS_pidfd_getfd, self.pidfd.as_raw_fd(), fd, 0) };
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: dup is a fresh descriptor returned to us.
        Ok(unsafe { OwnedFd::from_raw_fd(dup as RawFd) })
    }

    pub fn comm(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/comm", self.pid))
            .map(|c| c.trim_end().to_string())
            .unwrap_or_default()
    }
}
