//! The cgroup v2 hierarchy the cgroup_skb and sock_ops programs attach to.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// Where cgroup v2 is mounted, from /proc/self/mounts (hybrid hosts have it
/// at /sys/fs/cgroup/unified, most modern ones at /sys/fs/cgroup).
pub fn find_cgroup2_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    cgroup2_mount_in(&mounts)
}

fn cgroup2_mount_in(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, dir, fstype) = (fields.next()?, fields.next()?, fields.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(unescape_mount_path(dir)))
    })
}

/// /proc/self/mounts escapes space, tab, newline and backslash as octal.
fn unescape_mount_path(raw: &str) -> String {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The cgroup v2 root, mounted privately when this mount namespace shows
/// none (as under `ip netns exec`, which remounts /sys). Several mounts of
/// the same hierarchy are harmless; ours is unmounted on drop.
pub struct Cgroup2Root {
    pub path: PathBuf,
    private_mount: Option<PathBuf>,
}

impl Cgroup2Root {
    pub fn find_or_mount() -> anyhow::Result<Self> {
        if let Some(path) = find_cgroup2_mount() {
            return Ok(Self {
                path,
                private_mount: None,
            });
        }
        let dir = std::env::temp_dir().join(format!("keepalive-cgroup2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let status = std::process::Command::new("mount")
            .args(["-t", "cgroup2", "none"])
            .arg(&dir)
            .status()
            .context("running mount -t cgroup2")?;
        if !status.success() {
            let _ = std::fs::remove_dir(&dir);
            bail!(
                "no cgroup v2 hierarchy is mounted and mounting one at {} failed",
                dir.display()
            );
        }
        Ok(Self {
            path: dir.clone(),
            private_mount: Some(dir),
        })
    }

    /// A cgroup the user named: a directory inside the cgroup v2 hierarchy.
    pub fn resolve(&self, user_path: &Path) -> anyhow::Result<PathBuf> {
        let candidate = if user_path.is_absolute() {
            user_path.to_path_buf()
        } else {
            self.path.join(user_path)
        };
        if !candidate.join("cgroup.procs").exists() {
            return Err(crate::error::usage(format!(
                "--cgroup {}: not a cgroup v2 directory (the hierarchy is at {})",
                user_path.display(),
                self.path.display()
            )));
        }
        Ok(candidate)
    }
}

impl Drop for Cgroup2Root {
    fn drop(&mut self) {
        if let Some(dir) = &self.private_mount {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(dir)
                .status();
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hybrid_and_unified_layouts() {
        let hybrid = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n\
                      cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n\
                      cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        assert_eq!(
            cgroup2_mount_in(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified = "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n";
        assert_eq!(
            cgroup2_mount_in(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(cgroup2_mount_in("proc /proc proc rw 0 0\n"), None);
    }

    #[test]
    fn unescapes_octal_in_mount_paths() {
        assert_eq!(unescape_mount_path(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mount_path(r"/plain"), "/plain");
    }
}
