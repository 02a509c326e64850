//! Network namespaces: which one we are in, finding them by name, path or
//! pid, listing all of them, naming them for display, and running code
//! inside one (sock_diag sees only the namespace its socket was made in).

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::{error::usage, model::conn::NetnsIno};

/// Where `ip netns add` keeps its namespaces.
const NAMED_NETNS_DIR: &str = "/run/netns";

/// A network namespace and a file that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    pub ino: NetnsIno,
    /// `ip netns` name, or how it was found (`pid 1234`).
    pub name: String,
    pub path: PathBuf,
}

fn ino_of(path: &Path) -> Option<NetnsIno> {
    std::fs::metadata(path)
        .ok()
        .and_then(|m| NetnsIno::try_from(m.ino()).ok())
}

/// This process's network namespace.
pub fn own() -> NetnsIno {
    ino_of(Path::new("/proc/self/ns/net")).unwrap_or(0)
}

/// Whether we run in the host's namespace (pid 1's). Inside a container
/// with its own pid namespace, pid 1 is the container's init: its
/// namespace, and ours, count as "initial" there, which is what a user of
/// that container sees anyway.
pub fn in_initial() -> bool {
    match ino_of(Path::new("/proc/1/ns/net")) {
        Some(init) => init == own(),
        None => true,
    }
}

/// `-N NAME|PATH|PID`, as `ss -N` takes it.
pub fn resolve(arg: &str) -> anyhow::Result<Netns> {
    let (path, name) = if let Ok(pid) = arg.parse::<u32>() {
        (
            PathBuf::from(format!("/proc/{pid}/ns/net")),
            format!("pid {pid}"),
        )
    } else if arg.contains('/') {
        (PathBuf::from(arg), arg.to_string())
    } else {
        (Path::new(NAMED_NETNS_DIR).join(arg), arg.to_string())
    };
    let ino = ino_of(&path).ok_or_else(|| {
        usage(format!(
            "--netns {arg}: no network namespace there ({} not found; give an `ip netns` name, a path or a pid)",
            path.display()
        ))
    })?;
    Ok(Netns { ino, name, path })
}

/// Every network namespace in use: the named ones, then those of running
/// processes, each once.
pub fn all() -> Vec<Netns> {
    let mut seen = HashMap::new();
    let mut out = Vec::new();
    let mut add = |path: PathBuf, name: String| {
        if let Some(ino) = ino_of(&path)
            && seen.insert(ino, ()).is_none()
        {
            out.push(Netns { ino, name, path });
        }
    };
    add(PathBuf::from("/proc/self/ns/net"), "this namespace".into());
    if let Ok(entries) = std::fs::read_dir(NAMED_NETNS_DIR) {
        for entry in entries.flatten() {
            add(
                entry.path(),
                entry.file_name().to_string_lossy().into_owned(),
            );
        }
    }
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for entry in procs.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            add(entry.path().join("ns/net"), format!("pid {pid}"));
        }
    }
    out
}

/// Runs `f` on a thread that entered `netns`: sockets it makes belong to
/// that namespace for good, and this thread's namespace does not change.
pub fn run_in<T: Send>(
    netns: &Netns,
    f: impl FnOnce() -> anyhow::Result<T> + Send,
) -> anyhow::Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| -> anyhow::Result<T> {
                let file = std::fs::File::open(&netns.path)
                    .with_context(|| format!("opening {}", netns.path.display()))?;
                rustix::thread::move_into_link_name_space(
                    std::os::fd::AsFd::as_fd(&file),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .with_context(|| format!("entering network namespace {}", netns.name))?;
                f()
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the namespace thread panicked"))?
    })
}

/// Which namespaces a command looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetnsScope {
    Only(Netns),
    All,
}

impl NetnsScope {
    /// `-N` one, `--all-netns` all, otherwise this process's own namespace,
    /// or every one when `default_all`.
    pub fn choose(netns: Option<&str>, all_netns: bool, default_all: bool) -> anyhow::Result<Self> {
        Ok(match (netns, all_netns) {
            (Some(arg), _) => Self::Only(resolve(arg)?),
            (None, true) => Self::All,
            (None, false) if default_all => Self::All,
            (None, false) => Self::Only(Netns {
                ino: own(),
                name: "this namespace".into(),
                path: PathBuf::from("/proc/self/ns/net"),
            }),
        })
    }

    pub fn only(&self) -> Option<NetnsIno> {
        match self {
            Self::Only(netns) => Some(netns.ino),
            Self::All => None,
        }
    }

    /// The namespaces to visit one by one (`ls --all-netns`).
    pub fn namespaces(&self) -> Vec<Netns> {
        match self {
            Self::Only(netns) => vec![netns.clone()],
            Self::All => all(),
        }
    }

    /// In words, for start lines.
    pub fn describe(&self) -> String {
        match self {
            Self::All => "every network namespace".into(),
            Self::Only(netns) if netns.ino == own() => {
                format!(
                    "this network namespace only ({}; --all-netns for the whole host)",
                    netns.ino
                )
            }
            Self::Only(netns) => format!("network namespace {} ({})", netns.name, netns.ino),
        }
    }
}

/// How long a name lookup that found nothing is trusted.
const UNKNOWN_RETRY: Duration = Duration::from_secs(5);

/// Names of namespaces for display, learnt as they show up: an `ip netns`
/// name where there is one, else the first process found in it.
#[derive(Debug, Default)]
pub struct NetnsNames {
    names: HashMap<NetnsIno, Option<Arc<str>>>,
    last_refresh: Option<Instant>,
}

impl NetnsNames {
    pub fn name_of(&mut self, ino: NetnsIno) -> Option<Arc<str>> {
        if ino == 0 {
            return None;
        }
        if let Some(name) = self.names.get(&ino) {
            return name.clone();
        }
        if self
            .last_refresh
            .is_none_or(|at| at.elapsed() >= UNKNOWN_RETRY)
        {
            self.last_refresh = Some(Instant::now());
            for netns in all() {
                self.names.insert(netns.ino, Some(netns.name.into()));
            }
        }
        self.names.entry(ino).or_insert(None).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_namespace_is_found_by_pid_and_listed() {
        let me = own();
        assert_ne!(me, 0);
        let by_pid = resolve(&std::process::id().to_string()).unwrap();
        assert_eq!(by_pid.ino, me);
        assert!(all().iter().any(|n| n.ino == me));
        assert!(resolve("no-such-namespace-here").is_err());
        if rustix::process::geteuid().is_root() {
            assert_eq!(
                run_in(&by_pid, || Ok(own())).unwrap(),
                me,
                "entering our own namespace"
            );
        }
        let mut names = NetnsNames::default();
        assert!(names.name_of(me).is_some());
        assert_eq!(names.name_of(0), None);
    }
}
