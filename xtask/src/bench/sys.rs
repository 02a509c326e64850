//! The host side of the benchmarks: a private network namespace, sysctls
//! restored on drop, children killed on drop, and what /proc says about a
//! process's CPU time and memory.

use std::{
    fs,
    process::{Child, Command},
};

use anyhow::{Context as _, bail};

use crate::util::{describe, output, run_cmd, step};

/// A network namespace with its loopback up and room for many connections;
/// deleted on drop (its sockets die with it).
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn create(name: &str) -> anyhow::Result<Self> {
        if fs::metadata(format!("/run/netns/{name}")).is_ok() {
            bail!("network namespace {name} already exists: is another benchmark running?");
        }
        run_cmd(Command::new("ip").args(["netns", "add", name]))?;
        let del = name.to_owned();
        undo::register(format!("netns {name}"), move || {
            let _ = Command::new("ip").args(["netns", "del", &del]).status();
        });
        let ns = Self {
            name: name.to_owned(),
        };
        run_cmd(&mut ns.exec(["ip", "link", "set", "lo", "up"]))?;
        for setting in [
            // 50 000 client ports towards a handful of listeners.
            "net.ipv4.ip_local_port_range=1024 65535",
            "net.core.somaxconn=65535",
        ] {
            output(&mut ns.exec(["sysctl", "-q", "-w", setting]))?;
        }
        Ok(ns)
    }

    /// `ip netns exec NAME args...`
    pub fn exec<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(args);
        cmd
    }

    /// A counter from the namespace's /proc/net/netstat (e.g. TcpExt
    /// TCPKeepAlive, the keepalive probes the kernel sent).
    pub fn netstat(&self, group: &str, name: &str) -> anyhow::Result<u64> {
        let text = output(&mut self.exec(["cat", "/proc/net/netstat"]))?;
        netstat_counter(&text, group, name)
            .with_context(|| format!("{group} {name} not in /proc/net/netstat"))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        undo::run(&format!("netns {}", self.name));
    }
}

/// `group: names...` / `group: values...` line pairs, as in /proc/net/netstat.
pub fn netstat_counter(text: &str, group: &str, name: &str) -> Option<u64> {
    let prefix = format!("{group}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    let names = lines.next()?;
    let values = lines.next()?;
    let index = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(index)?.parse().ok()
}

/// A host sysctl set for the benchmark and put back on drop.
pub struct Sysctl {
    key: String,
}

impl Sysctl {
    pub fn set(key: &str, value: &str) -> anyhow::Result<Self> {
        let path = sysctl_path(key);
        let old = fs::read_to_string(&path)
            .with_context(|| format!("reading {key}"))?
            .trim()
            .to_owned();
        fs::write(&path, value).with_context(|| format!("setting {key}={value}"))?;
        let restore = old.clone();
        undo::register(format!("sysctl {key}"), move || {
            let _ = fs::write(&path, &restore);
        });
        step(format!("set {key}={value} for the benchmark (was {old})"));
        Ok(Self {
            key: key.to_owned(),
        })
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        undo::run(&format!("sysctl {}", self.key));
    }
}

/// What the benchmark changed on the host, undone on drop or, when the run
/// is interrupted (Ctrl-C, SIGTERM), by a watcher thread before it exits:
/// drops do not run when a signal ends the process.
pub mod undo {
    use std::sync::{
        Mutex,
        atomic::{AtomicI32, Ordering},
    };

    type Action = Box<dyn FnOnce() + Send>;

    static ACTIONS: Mutex<Vec<(String, Action)>> = Mutex::new(Vec::new());
    static SIGNALLED: AtomicI32 = AtomicI32::new(0);

    pub fn register(key: String, action: impl FnOnce() + Send + 'static) {
        ACTIONS
            .lock()
            .expect("undo list")
            .push((key, Box::new(action)));
    }

    /// Runs and forgets the action registered under `key`.
    pub fn run(key: &str) {
        if let Some(action) = take(key) {
            action();
        }
    }

    /// Forgets the action registered under `key` without running it.
    pub fn forget(key: &str) {
        drop(take(key));
    }

    fn take(key: &str) -> Option<Action> {
        let mut actions = ACTIONS.lock().expect("undo list");
        let i = actions.iter().position(|(k, _)| k == key)?;
        Some(actions.remove(i).1)
    }

    extern "C" fn note_signal(signal: libc::c_int) {
        SIGNALLED.store(signal, Ordering::SeqCst);
    }

    /// On SIGINT or SIGTERM: undo everything, newest first, and exit
    /// 128 + signal. Children are in our process group and get Ctrl-C too;
    /// those that ignore it die with their namespace or their pipes.
    pub fn on_signal() {
        for signal in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: the handler only stores to an atomic, which is
            // async-signal-safe.
            unsafe { libc::signal(signal, note_signal as *const () as libc::sighandler_t) };
        }
        std::thread::spawn(|| {
            loop {
                std::thread::sleep(std::time::Duration::from_millis(100));
                let signal = SIGNALLED.load(Ordering::SeqCst);
                if signal != 0 {
                    eprintln!("xtask: bench: interrupted, undoing what it changed on the host");
                    let actions = std::mem::take(&mut *ACTIONS.lock().expect("undo list"));
                    for (_, action) in actions.into_iter().rev() {
                        action();
                    }
                    std::process::exit(128 + signal);
                }
            }
        });
    }
}

fn sysctl_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

/// A child process killed and reaped on drop.
pub struct Killed {
    pub child: Child,
    pub what: String,
}

impl Killed {
    pub fn spawn(cmd: &mut Command) -> anyhow::Result<Self> {
        let what = describe(cmd);
        let child = cmd.spawn().with_context(|| format!("starting `{what}`"))?;
        let pid = child.id();
        undo::register(format!("pid {pid}"), move || signal(pid, libc::SIGKILL));
        Ok(Self { child, what })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGINT (what Ctrl-C sends), then waits up to `grace` before SIGKILL.
    pub fn interrupt(&mut self, grace: std::time::Duration) -> anyhow::Result<()> {
        signal(self.pid(), libc::SIGINT);
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        bail!("`{}` did not exit within {grace:?} of SIGINT", self.what)
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        undo::forget(&format!("pid {}", self.child.id()));
    }
}

pub fn signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, signal) };
    }
}

/// CPU seconds (user + system, all threads) a process has used so far.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let ticks = stat_cpu_ticks(&stat).context("unexpected /proc/PID/stat format")?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// utime + stime (fields 14 and 15) of a /proc/PID/stat line; the command
/// name in parentheses may contain spaces, so count from the last ')'.
pub fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// CPU seconds of all children that have been waited for (RUSAGE_CHILDREN).
pub fn reaped_children_cpu_seconds() -> f64 {
    // SAFETY: rusage is plain data that getrusage fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: usage is a valid rusage to write to.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &raw mut usage) };
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Peak resident memory (VmHWM) of a process, in bytes.
pub fn peak_rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status_kib(&status, "VmHWM:")
        .map(|kib| kib * 1024)
        .context("no VmHWM in /proc/PID/status")
}

pub fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Packets the host dropped because a CPU's backlog queue was full
/// (/proc/net/softnet_stat, second column, summed over CPUs); loopback
/// traffic goes through that queue.
pub fn softnet_dropped() -> u64 {
    fs::read_to_string("/proc/net/softnet_stat")
        .map(|text| {
            text.lines()
                .filter_map(|l| l.split_whitespace().nth(1))
                .filter_map(|hex| u64::from_str_radix(hex, 16).ok())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netstat_counter_pairs_names_with_values() {
        let text =
            "TcpExt: SyncookiesSent TCPKeepAlive\nTcpExt: 0 4242\nIpExt: InNoRoutes\nIpExt: 7\n";
        assert_eq!(netstat_counter(text, "TcpExt", "TCPKeepAlive"), Some(4242));
        assert_eq!(netstat_counter(text, "IpExt", "InNoRoutes"), Some(7));
        assert_eq!(netstat_counter(text, "TcpExt", "Missing"), None);
    }

    #[test]
    fn stat_ticks_skip_a_command_name_with_spaces() {
        let stat = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(stat_cpu_ticks(stat), Some(300));
    }

    #[test]
    fn status_reads_kib_fields() {
        let status = "Name:\tkeepalive\nVmHWM:\t   41234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(status_kib(status, "VmHWM:"), Some(41234));
    }
}
