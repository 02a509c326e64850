//! The demo's lab: a private network namespace with loopback up, and the
//! nftables rules that fake the fault on the peer's side. Dropping the lab
//! deletes the namespace, and with it the rules and any sysctl set there.

use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// The demo's namespace and nft table; deleting the namespace removes both.
pub struct Lab {
    pub name: String,
}

impl Lab {
    pub fn create() -> anyhow::Result<Self> {
        let name = format!("ka-demo-{}", std::process::id());
        run_checked(Command::new("ip").args(["netns", "add", &name]))?;
        let lab = Self { name };
        run_checked(
            Command::new("ip").args(["netns", "exec", &lab.name, "ip", "link", "set", "lo", "up"]),
        )?;
        Ok(lab)
    }

    /// The namespace's inode, as the kernel reports it with each event.
    pub fn netns(&self) -> anyhow::Result<crate::model::conn::NetnsIno> {
        Ok(crate::host::netns::resolve(&self.name)?.ino)
    }

    pub fn nft(&self, ruleset: &str) -> anyhow::Result<()> {
        use std::io::Write as _;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running nft (Debian package nftables)")?;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(ruleset.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("nft: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }

    /// Runs `f` on a thread that entered the namespace: sockets created
    /// there belong to it for good.
    pub fn inside<T: Send>(
        &self,
        f: impl FnOnce() -> std::io::Result<T> + Send,
    ) -> anyhow::Result<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            scope
                .spawn(|| -> anyhow::Result<T> {
                    let ns =
                        std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
                    // setns moves only this thread into the namespace.
                    rustix::thread::move_into_link_name_space(
                        std::os::fd::AsFd::as_fd(&ns),
                        Some(rustix::thread::LinkNameSpaceType::Network),
                    )
                    .with_context(|| format!("setns {path}"))?;
                    Ok(f()?)
                })
                .join()
                .map_err(|_| anyhow::anyhow!("namespace thread panicked"))?
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// An nft table dropping what `rule` matches on the peer's output: the
/// client's probes still leave and are seen; the answers never come back.
pub fn peer_output_rule(rule: &str) -> String {
    format!(
        "table inet keepalive_demo {{\n  chain out {{\n    type filter hook output priority 0;\n    {rule}\n  }}\n}}\n"
    )
}

pub fn run_checked(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}
