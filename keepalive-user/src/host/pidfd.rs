//! Another process's file descriptors, duplicated into ours with
//! pidfd_open + pidfd_getfd (Linux ≥ 5.6; needs PTRACE_MODE_ATTACH, which
//! root has). A setsockopt on the duplicate changes the shared socket.

use std::{
    io,
    os::fd::{OwnedFd, RawFd},
};

use rustix::process::{Pid, PidfdFlags, PidfdGetfdFlags, pidfd_getfd, pidfd_open};

use crate::error::usage;

/// A handle on a live process.
pub struct Process {
    pub pid: u32,
    pidfd: OwnedFd,
}

impl Process {
    pub fn open(pid: u32) -> anyhow::Result<Self> {
        let no_such_process = || usage(format!("--pid {pid}: no such process"));
        let raw = i32::try_from(pid).map_err(|_| no_such_process())?;
        let target = Pid::from_raw(raw).ok_or_else(no_such_process)?;
        match pidfd_open(target, PidfdFlags::empty()) {
            Ok(pidfd) => Ok(Self { pid, pidfd }),
            Err(rustix::io::Errno::SRCH) => Err(no_such_process()),
            Err(err) => Err(anyhow::anyhow!(
                "pidfd_open({pid}): {}",
                io::Error::from(err)
            )),
        }
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
        Ok(pidfd_getfd(&self.pidfd, fd, PidfdGetfdFlags::empty())?)
    }

    pub fn comm(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/comm", self.pid))
            .map(|c| c.trim_end().to_string())
            .unwrap_or_default()
    }
}
