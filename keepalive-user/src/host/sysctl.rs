//! This network namespace's keepalive sysctls, which a socket's settings
//! fall back on until the application sets its own.

use crate::model::config::Config;

/// `net.ipv4.tcp_keepalive_{time,intvl,probes}` as a `Config` with
/// keepalive off; the kernel's own defaults where a file cannot be read.
pub fn keepalive_defaults() -> Config {
    let read = |name: &str, fallback: u32| {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(fallback)
    };
    Config {
        keepalive: false,
        idle_s: read("tcp_keepalive_time", 7200),
        intvl_s: read("tcp_keepalive_intvl", 75),
        cnt: read("tcp_keepalive_probes", 9),
        user_timeout_ms: 0,
    }
}
