//! `ls`'s socket table: one row per socket, as aligned text like `ss -to`
//! or as one JSON object per line.

use serde_json::{Value, json};

use crate::{
    host::{
        owners::Holder,
        sockdiag::{TcpSocket, TimerKind, state_name},
    },
    model::config::Config,
    render::json::config_json,
};

fn seconds(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

fn timer_text(socket: &TcpSocket) -> String {
    let Some(t) = socket.timer else {
        return "-".into();
    };
    match t.kind {
        TimerKind::Keepalive | TimerKind::ZeroWindowProbe => format!(
            "{} {} probes {}",
            t.kind.name(),
            seconds(t.expires_ms),
            t.count
        ),
        TimerKind::Retransmit => format!("retrans {} #{}", seconds(t.expires_ms), t.count),
        TimerKind::TimeWait => format!("{} {}", t.kind.name(), seconds(t.expires_ms)),
    }
}

/// `0.0.0.0:*` for a listener's unspecified peer, as `ss` prints it.
fn peer_text(socket: &TcpSocket) -> String {
    if socket.remote.port() == 0 && socket.remote.ip().is_unspecified() {
        match socket.remote {
            std::net::SocketAddr::V4(a) => format!("{}:*", a.ip()),
            std::net::SocketAddr::V6(a) => format!("[{}]:*", a.ip()),
        }
    } else {
        socket.remote.to_string()
    }
}

const HEADER: [&str; 10] = [
    "State",
    "Local",
    "Peer",
    "Process",
    "Keepalive",
    "Idle",
    "Intvl",
    "Cnt",
    "UserTimeout",
    "Timer",
];

pub fn text_row(
    socket: &TcpSocket,
    holder: Option<&Holder>,
    config: Option<&Config>,
) -> [String; 10] {
    let dash = || "-".to_string();
    let setting = |f: &dyn Fn(&Config) -> String| config.map_or_else(dash, f);
    // With SO_KEEPALIVE off the socket still reports idle, interval and
    // count (the sysctls), but none of them is in force: no probe leaves.
    let keepalive =
        |f: &dyn Fn(&Config) -> String| config.filter(|c| c.keepalive).map_or_else(dash, f);
    [
        state_name(socket.state).into(),
        socket.local.to_string(),
        peer_text(socket),
        holder.map_or_else(dash, |h| format!("{}/{}", h.owner.comm, h.owner.pid)),
        setting(&|c| if c.keepalive { "on" } else { "off" }.into()),
        keepalive(&|c| format!("{}s", c.idle_s)),
        keepalive(&|c| format!("{}s", c.intvl_s)),
        keepalive(&|c| c.cnt.to_string()),
        setting(&|c| match c.user_timeout_ms {
            0 => "off".into(),
            ms => format!("{ms}ms"),
        }),
        timer_text(socket),
    ]
}

/// Columns padded to their widest cell; Local right-aligned and Peer
/// left-aligned, so the two ends meet in the middle as in `ss`.
pub fn aligned(rows: &[[String; 10]]) -> String {
    let header = HEADER.map(String::from);
    let all = std::iter::once(&header).chain(rows);
    let mut widths = [0usize; 10];
    for row in all.clone() {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for (n, row) in all.enumerate() {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let w = widths[i];
            let cell = match i {
                1 => format!("{cell:>w$}"),
                9 => cell.clone(),
                _ => format!("{cell:<w$}"),
            };
            line.push_str(&cell);
            line.push_str(match (i, n) {
                (1, 0) => "   ",
                (1, _) => " > ",
                _ => "  ",
            });
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

pub fn json_row(socket: &TcpSocket, holder: Option<&Holder>, config: Option<&Config>) -> Value {
    let mut v = json!({
        "src": socket.local.to_string(),
        "dst": socket.remote.to_string(),
        "state": state_name(socket.state),
        "inode": socket.inode,
        "uid": socket.uid,
    });
    if let Some(h) = holder {
        v["pid"] = json!(h.owner.pid);
        v["comm"] = json!(&*h.owner.comm);
        v["fd"] = json!(h.fd);
    }
    if let Some(c) = config {
        v["config"] = config_json(c);
        if !c.keepalive {
            // Not in force; what SO_KEEPALIVE on alone would start with.
            let mut if_enabled = json!({});
            for key in ["idle_s", "intvl_s", "cnt"] {
                if let Some(value) = v["config"].as_object_mut().and_then(|o| o.remove(key)) {
                    if_enabled[key] = value;
                }
            }
            v["if_enabled"] = if_enabled;
        }
    }
    if let Some(t) = socket.timer {
        v["timer"] = json!({"kind": t.kind, "expires_ms": t.expires_ms, "count": t.count});
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{host::sockdiag::Timer, model::owner::Owner};

    fn socket(local: &str, remote: &str, timer: Option<Timer>) -> TcpSocket {
        TcpSocket {
            netns: 0,
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            state: 1,
            inode: 7,
            uid: 0,
            timer,
        }
    }

    #[test]
    fn rows_show_settings_timer_and_holder() {
        let s = socket(
            "127.0.0.1:5000",
            "127.0.0.1:80",
            Some(Timer {
                kind: TimerKind::Keepalive,
                expires_ms: 1450,
                count: 2,
            }),
        );
        let holder = Holder {
            owner: Owner {
                pid: 42,
                comm: "curl".into(),
            },
            fd: 3,
        };
        let config = Config {
            keepalive: true,
            idle_s: 2,
            intvl_s: 1,
            cnt: 3,
            user_timeout_ms: 9000,
        };
        let row = text_row(&s, Some(&holder), Some(&config));
        assert_eq!(
            row.join("|"),
            "ESTAB|127.0.0.1:5000|127.0.0.1:80|curl/42|on|2s|1s|3|9000ms|keepalive 1.4s probes 2"
        );
        let bare = text_row(&socket("[::1]:1", "0.0.0.0:0", None), None, None);
        assert_eq!(bare.join("|"), "ESTAB|[::1]:1|0.0.0.0:*|-|-|-|-|-|-|-");
        let v = json_row(&s, Some(&holder), Some(&config));
        assert_eq!(v["timer"]["kind"], "keepalive");
        assert_eq!(v["timer"]["count"], 2);
        assert_eq!(v["config"]["user_timeout_ms"], 9000);
        assert_eq!(v["config"]["idle_s"], 2);
        assert!(v.get("if_enabled").is_none(), "{v}");
        assert_eq!(v["comm"], "curl");
    }

    #[test]
    fn keepalive_off_shows_no_settings_in_force() {
        let s = socket("127.0.0.1:5000", "127.0.0.1:80", None);
        let off = Config {
            keepalive: false,
            idle_s: 7200,
            intvl_s: 75,
            cnt: 9,
            user_timeout_ms: 3000,
        };
        let row = text_row(&s, None, Some(&off));
        assert_eq!(
            row[4..9].join("|"),
            "off|-|-|-|3000ms",
            "the user timeout applies without keepalive"
        );
        let v = json_row(&s, None, Some(&off));
        assert_eq!(
            v["config"],
            json!({"keepalive": false, "user_timeout_ms": 3000})
        );
        assert_eq!(
            v["if_enabled"],
            json!({"idle_s": 7200, "intvl_s": 75, "cnt": 9})
        );
    }

    #[test]
    fn columns_line_up() {
        let rows = [
            text_row(&socket("127.0.0.1:5000", "127.0.0.1:80", None), None, None),
            text_row(&socket("[::1]:40000", "[::1]:443", None), None, None),
        ];
        let text = aligned(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let peer = lines[0].find("Peer").unwrap();
        assert!(
            lines[1..].iter().all(|l| l.find(" > ") == Some(peer - 3)),
            "{text}"
        );
        let timer = lines[0].find("Timer").unwrap();
        assert!(
            lines[1..].iter().all(|l| l.rfind('-') == Some(timer)),
            "{text}"
        );
    }
}
