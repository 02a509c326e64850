//! What `set` did to each socket, as a line or a JSON object.

use serde_json::{Value, json};

use crate::{
    host::{option_change::ChangeResult, socket_options::TcpTarget},
    model::config::Config,
    render::{json::config_json, text::config_text},
};

/// The process and descriptor a changed socket was reached through.
pub struct HeldBy<'a> {
    pub pid: u32,
    pub comm: &'a str,
    pub fd: i32,
}

pub fn change_json(
    target: &TcpTarget,
    held_by: &HeldBy<'_>,
    result: &ChangeResult,
    dry_run: bool,
) -> Value {
    let mut v = json!({
        "event": "options_set",
        "src": target.local.to_string(),
        "dst": target.remote.to_string(),
        "pid": held_by.pid,
        "comm": held_by.comm,
        "fd": held_by.fd,
        "before": result.before.as_ref().map(config_json),
        "after": result.after.as_ref().map(config_json),
        "dry_run": dry_run,
    });
    if let Some(error) = &result.error {
        v["error"] = json!(error);
    }
    v
}

/// `127.0.0.1:51748 > 127.0.0.1:7300   tcp-peer/14453 fd 3  set: keepalive off -> idle 2s intvl 1s cnt 3`
pub fn change_line(
    target: &TcpTarget,
    held_by: &HeldBy<'_>,
    result: &ChangeResult,
    dry_run: bool,
) -> String {
    let verb = if dry_run { "would set" } else { "set" };
    let text = |c: &Option<Config>| c.as_ref().map_or_else(|| "?".into(), config_text);
    let outcome = result
        .error
        .as_ref()
        .map_or_else(String::new, |e| format!("  FAILED: {e}"));
    let HeldBy { pid, comm, fd } = held_by;
    format!(
        "{:>22} > {:<22} {comm}/{pid} fd {fd}  {verb}: {} -> {}{outcome}",
        target.local.to_string(),
        target.remote.to_string(),
        text(&result.before),
        text(&result.after),
    )
}
