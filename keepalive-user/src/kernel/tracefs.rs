//! tracefs: mounting it when absent, and reading tracepoint field offsets
//! from its format files so one eBPF object fits several kernel versions.

use std::{collections::HashMap, path::PathBuf};

use anyhow::{Context as _, bail};
use keepalive_common::{TracepointLayout, UNKNOWN};

const TRACEFS_DIRS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The tracefs directory, mounting tracefs at /sys/kernel/tracing when no
/// instance is visible (fresh hosts, and `ip netns exec`, which remounts /sys).
pub fn ensure_mounted() -> anyhow::Result<PathBuf> {
    if let Some(dir) = TRACEFS_DIRS
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("events").is_dir())
    {
        return Ok(dir);
    }
    let dir = PathBuf::from(TRACEFS_DIRS[0]);
    let status = std::process::Command::new("mount")
        .args(["-t", "tracefs", "tracefs"])
        .arg(&dir)
        .status()
        .context("running mount -t tracefs")?;
    if !status.success() || !dir.join("events").is_dir() {
        bail!(
            "tracefs is not mounted and `mount -t tracefs tracefs {}` failed",
            dir.display()
        );
    }
    Ok(dir)
}

/// One tracepoint's fields: name → offset in bytes.
#[derive(Debug, Default, Clone)]
pub struct EventFormat {
    pub fields: HashMap<String, u32>,
    pub print_fmt: String,
}

impl EventFormat {
    pub fn parse(text: &str) -> Self {
        let mut format = Self::default();
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("print fmt:") {
                format.print_fmt = rest.trim().to_string();
                continue;
            }
            let Some(rest) = line.strip_prefix("field:") else {
                continue;
            };
            let mut parts = rest.split(';').map(str::trim);
            let (Some(decl), Some(offset)) = (parts.next(), parts.next()) else {
                continue;
            };
            // "const void * skaddr", "__u8 saddr[28]" → skaddr, saddr
            let name = decl.rsplit([' ', '*']).next().unwrap_or(decl);
            let name = name.split('[').next().unwrap_or(name);
            if let Some(offset) = offset.strip_prefix("offset:").and_then(|o| o.parse().ok()) {
                format.fields.insert(name.to_string(), offset);
            }
        }
        format
    }

    pub fn offset(&self, field: &str) -> u32 {
        self.fields.get(field).copied().unwrap_or(UNKNOWN)
    }

    /// The number `__print_symbolic` maps to `symbol`, e.g. 15 for
    /// "TCP_KEEPALIVE_TIMEOUT" in tcp_send_reset's reason on 6.18.
    pub fn symbol_value(&self, symbol: &str) -> Option<u32> {
        let quoted = format!("\"{symbol}\"");
        let at = self.print_fmt.find(&quoted)?;
        let before = &self.print_fmt[..at];
        let open = before.rfind('{')?;
        before[open + 1..]
            .trim()
            .trim_end_matches(',')
            .trim()
            .parse()
            .ok()
    }
}

pub fn read_format(tracefs: &std::path::Path, category: &str, name: &str) -> Option<EventFormat> {
    let path = tracefs
        .join("events")
        .join(category)
        .join(name)
        .join("format");
    std::fs::read_to_string(path)
        .ok()
        .map(|text| EventFormat::parse(&text))
}

/// The layout of our four tracepoints on this kernel; fields it lacks stay
/// `UNKNOWN` and the programs skip what needs them.
pub fn layout(tracefs: &std::path::Path) -> TracepointLayout {
    let mut layout = TracepointLayout::unknown();
    if let Some(f) = read_format(tracefs, "tcp", "tcp_send_reset") {
        layout.send_reset_skaddr = f.offset("skaddr");
        layout.send_reset_reason = f.offset("reason");
        layout.send_reset_saddr = f.offset("saddr");
        layout.send_reset_daddr = f.offset("daddr");
        if layout.send_reset_reason != UNKNOWN {
            layout.keepalive_timeout_reason =
                f.symbol_value("TCP_KEEPALIVE_TIMEOUT").unwrap_or(UNKNOWN);
        }
    }
    if let Some(f) = read_format(tracefs, "tcp", "tcp_receive_reset") {
        layout.receive_reset_skaddr = f.offset("skaddr");
        layout.receive_reset_sport = f.offset("sport");
        layout.receive_reset_dport = f.offset("dport");
        layout.receive_reset_family = f.offset("family");
        layout.receive_reset_saddr = f.offset("saddr");
        layout.receive_reset_daddr = f.offset("daddr");
        layout.receive_reset_saddr_v6 = f.offset("saddr_v6");
        layout.receive_reset_daddr_v6 = f.offset("daddr_v6");
    }
    if let Some(f) = read_format(tracefs, "sock", "inet_sock_set_state") {
        layout.state_skaddr = f.offset("skaddr");
        layout.state_oldstate = f.offset("oldstate");
        layout.state_newstate = f.offset("newstate");
        layout.state_sport = f.offset("sport");
        layout.state_dport = f.offset("dport");
        layout.state_family = f.offset("family");
        layout.state_protocol = f.offset("protocol");
        layout.state_saddr = f.offset("saddr");
        layout.state_daddr = f.offset("daddr");
        layout.state_saddr_v6 = f.offset("saddr_v6");
        layout.state_daddr_v6 = f.offset("daddr_v6");
    }
    layout
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEND_RESET_6_18: &str = "name: tcp_send_reset\nID: 1234\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:const void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;\n\
\tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;\n\
\tfield:int state;\toffset:24;\tsize:4;\tsigned:1;\n\
\tfield:enum sk_rst_reason reason;\toffset:28;\tsize:4;\tsigned:0;\n\
\tfield:__u8 saddr[28];\toffset:32;\tsize:28;\tsigned:0;\n\
\tfield:__u8 daddr[28];\toffset:60;\tsize:28;\tsigned:0;\n\n\
print fmt: \"skbaddr=%p reason=%s\", REC->skbaddr, __print_symbolic(REC->reason, { 0, \"NOT_SPECIFIED\" }, { 14, \"TCP_STATE\" }, { 15, \"TCP_KEEPALIVE_TIMEOUT\" }, { 16, \"TCP_DISCONNECT_WITH_DATA\" })\n";

    #[test]
    fn parses_offsets_and_symbols() {
        let f = EventFormat::parse(SEND_RESET_6_18);
        assert_eq!(f.offset("skaddr"), 16);
        assert_eq!(f.offset("reason"), 28);
        assert_eq!(f.offset("saddr"), 32);
        assert_eq!(f.offset("daddr"), 60);
        assert_eq!(f.offset("nonexistent"), UNKNOWN);
        assert_eq!(f.symbol_value("TCP_KEEPALIVE_TIMEOUT"), Some(15));
        assert_eq!(f.symbol_value("TCP_STATE"), Some(14));
        assert_eq!(f.symbol_value("NOT_SPECIFIED"), Some(0));
        assert_eq!(f.symbol_value("MISSING"), None);
    }

    #[test]
    fn old_kernel_without_reason_field() {
        let old = "format:\n\tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;\n";
        let f = EventFormat::parse(old);
        assert_eq!(f.offset("reason"), UNKNOWN);
        assert_eq!(f.symbol_value("TCP_KEEPALIVE_TIMEOUT"), None);
    }
}
