//! Network namespaces, veth pairs and nft tables, each removed on drop.

use std::{
    ffi::OsStr,
    io::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
};

use crate::{require_root, run_checked, unique_name};

/// A network namespace of our own, with `lo` up; deleted on drop, after
/// SIGKILLing whatever still runs in it.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates a namespace named like `ka-<pid>-<n>` and brings `lo` up;
    /// panics first, as [`require_root`] does, unless running as root.
    pub fn new() -> Self {
        require_root();
        let name = unique_name("ka");
        run_checked(Command::new("ip").args(["netns", "add", &name]));
        let ns = Self { name };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// The name `ip netns` knows it by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec <name> program`, to add arguments to and run.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `args` inside the namespace and returns its stdout; panics with stderr on failure.
    pub fn run(&self, args: &[&str]) -> String {
        let (program, rest) = args.split_first().expect("a command to run");
        run_checked(self.command(program).args(rest))
    }

    /// Sets a sysctl inside the namespace (`net.*` keys are per namespace).
    pub fn sysctl(&self, key: &str, value: &str) {
        self.run(&["sysctl", "-q", "-w", &format!("{key}={value}")]);
    }

    /// Pids of the processes running in the namespace.
    pub fn pids(&self) -> Vec<u32> {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output();
        out.map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect()
        })
        .unwrap_or_default()
    }
}

impl Default for NetNs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        for pid in self.pids() {
            crate::signal(pid, libc::SIGKILL);
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// Two namespaces joined by a veth pair (`ka0` on both sides), with IPv4
/// addresses on a private /30 and IPv6 ULA addresses on fd00::/64; dropping
/// it deletes both namespaces.
#[derive(Debug)]
pub struct VethPair {
    pub a: NetNs,
    pub b: NetNs,
    pub addr_a: IpAddr,
    pub addr_b: IpAddr,
    pub addr6_a: IpAddr,
    pub addr6_b: IpAddr,
}

impl VethPair {
    /// Creates both namespaces and the link, addresses configured and up.
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let x = u8::try_from(20 + std::process::id() % 200).expect("below 256");
        let y = u8::try_from(n % 64).expect("below 256") * 4;
        let (a, b) = (NetNs::new(), NetNs::new());
        a.run(&[
            "ip",
            "link",
            "add",
            "ka0",
            "type",
            "veth",
            "peer",
            "name",
            "ka0",
            "netns",
            b.name(),
        ]);
        let v4 = |host: u8| IpAddr::V4(Ipv4Addr::new(10, x, y, host));
        let v6 = |host: u16| {
            IpAddr::V6(Ipv6Addr::new(
                0xfd00,
                0,
                u16::from(x),
                u16::from(y),
                0,
                0,
                0,
                host,
            ))
        };
        let pair = Self {
            addr_a: v4(1),
            addr_b: v4(2),
            addr6_a: v6(1),
            addr6_b: v6(2),
            a,
            b,
        };
        for (ns, v4, v6) in [
            (&pair.a, pair.addr_a, pair.addr6_a),
            (&pair.b, pair.addr_b, pair.addr6_b),
        ] {
            ns.run(&["ip", "addr", "add", &format!("{v4}/30"), "dev", "ka0"]);
            // nodad: usable at once instead of after duplicate address detection.
            ns.run(&[
                "ip",
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                "ka0",
                "nodad",
            ]);
            ns.run(&["ip", "link", "set", "ka0", "up"]);
        }
        pair
    }
}

impl Default for VethPair {
    fn default() -> Self {
        Self::new()
    }
}

/// An nft table loaded inside a namespace; deleted on drop.
#[derive(Debug)]
pub struct Nft {
    ns: String,
    family: String,
    table: String,
}

impl Nft {
    /// Loads `ruleset` (which defines one `table <family> <name> { ... }`) with `nft -f -`.
    pub fn new(ns: &NetNs, ruleset: &str) -> Self {
        let mut words = ruleset.split_whitespace();
        let (family, table) = loop {
            match words.next() {
                Some("table") => match (words.next(), words.next()) {
                    (Some(family), Some(table)) => break (family.to_owned(), table.to_owned()),
                    _ => panic!("no `table <family> <name>` in nft ruleset:\n{ruleset}"),
                },
                Some(_) => continue,
                None => panic!("no `table <family> <name>` in nft ruleset:\n{ruleset}"),
            }
        };
        let mut child = ns
            .command("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run nft in {}: {e}", ns.name()));
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(ruleset.as_bytes())
            .expect("writing the ruleset to nft");
        let out = child.wait_with_output().expect("waiting for nft");
        if !out.status.success() {
            panic!(
                "nft refused the ruleset in {}: {}\n{ruleset}",
                ns.name(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Self {
            ns: ns.name().to_owned(),
            family,
            table,
        }
    }

    /// A table with one `output` or `input` filter chain holding `rule`.
    fn one_rule(ns: &NetNs, hook: &str, rule: &str) -> Self {
        let table = unique_name("ka").replace('-', "_");
        Self::new(
            ns,
            &format!(
                "table inet {table} {{\n  chain {hook} {{\n    type filter hook {hook} priority 0; policy accept;\n    {rule}\n  }}\n}}\n"
            ),
        )
    }

    /// Drops TCP segments leaving the namespace's sockets towards `port`.
    pub fn drop_output_to(ns: &NetNs, port: u16) -> Self {
        Self::one_rule(ns, "output", &format!("tcp dport {port} drop"))
    }

    /// Drops TCP segments sent from local port `port` (a peer whose answers never leave).
    pub fn drop_output_from_port(ns: &NetNs, port: u16) -> Self {
        Self::one_rule(ns, "output", &format!("tcp sport {port} drop"))
    }

    /// Drops TCP segments arriving from remote port `port` (a blackholed peer).
    pub fn drop_input_from_port(ns: &NetNs, port: u16) -> Self {
        Self::one_rule(ns, "input", &format!("tcp sport {port} drop"))
    }

    /// Drops segments sent from local port `port` carrying any of `flags`
    /// (e.g. `"fin|rst"`: a peer that vanishes without saying goodbye).
    pub fn drop_output_tcp_flags(ns: &NetNs, port: u16, flags: &str) -> Self {
        Self::one_rule(
            ns,
            "output",
            &format!("tcp sport {port} tcp flags & ({flags}) != 0 drop"),
        )
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }
}

impl Drop for Nft {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "exec", &self.ns, "nft", "delete", "table"])
            .args([&self.family, &self.table])
            .stderr(Stdio::null())
            .status();
    }
}
