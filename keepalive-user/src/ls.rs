//! `keepalive ls`: a snapshot of TCP connections, keepalive-centric, like
//! `ss -to`: who holds each one, the keepalive settings in force (read from
//! the socket itself, which the socket table does not carry), and the
//! keepalive timer's countdown and probes out.

use std::{
    collections::HashMap,
    io::{ErrorKind, Write as _},
    process::ExitCode,
};

use serde_json::{Value, json};

use crate::{
    cli::usage,
    events::{Config, Conn},
    filter::ConnFilterArgs,
    output::config_json,
    owner_cache::{Holder, socket_holders},
    remote_fd::Process,
    sockdiag::{self, LISTEN, TIME_WAIT, TcpSocket, TimerKind},
    socket_options,
};

#[derive(clap::Args, Debug)]
pub struct LsArgs {
    #[command(flatten)]
    pub conns: ConnFilterArgs,
    /// Only this TCP state (established, listen, time-wait, close-wait, ...).
    /// By default every state but LISTEN and TIME-WAIT.
    #[arg(long)]
    pub state: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// Reads settings through duplicates of holders' descriptors, one pidfd per
/// process however many sockets it holds.
#[derive(Default)]
struct SettingsReader {
    processes: HashMap<u32, Option<Process>>,
}

impl SettingsReader {
    /// None without a holder (kernel-owned, TIME-WAIT, not yet accepted) or
    /// when the holder is gone or cannot be reached.
    fn read(&mut self, holder: Option<&Holder>) -> Option<Config> {
        let holder = holder?;
        let process = self
            .processes
            .entry(holder.owner.pid)
            .or_insert_with(|| Process::open(holder.owner.pid).ok())
            .as_ref()?;
        let fd = process.dup_fd(holder.fd).ok()?;
        socket_options::read(&fd).ok()
    }
}

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

fn text_row(socket: &TcpSocket, holder: Option<&Holder>, config: Option<&Config>) -> [String; 10] {
    let dash = || "-".to_string();
    let setting = |f: &dyn Fn(&Config) -> String| config.map_or_else(dash, f);
    [
        sockdiag::state_name(socket.state).into(),
        socket.local.to_string(),
        peer_text(socket),
        holder.map_or_else(dash, |h| format!("{}/{}", h.owner.comm, h.owner.pid)),
        setting(&|c| if c.keepalive { "on" } else { "off" }.into()),
        setting(&|c| format!("{}s", c.idle_s)),
        setting(&|c| format!("{}s", c.intvl_s)),
        setting(&|c| c.cnt.to_string()),
        setting(&|c| match c.user_timeout_ms {
            0 => "off".into(),
            ms => format!("{ms}ms"),
        }),
        timer_text(socket),
    ]
}

/// Columns padded to their widest cell; Local right-aligned and Peer
/// left-aligned, so the two ends meet in the middle as in `ss`.
fn aligned(rows: &[[String; 10]]) -> String {
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

fn json_row(socket: &TcpSocket, holder: Option<&Holder>, config: Option<&Config>) -> Value {
    let mut v = json!({
        "src": socket.local.to_string(),
        "dst": socket.remote.to_string(),
        "state": sockdiag::state_name(socket.state),
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
    }
    if let Some(t) = socket.timer {
        v["timer"] = json!({"kind": t.kind, "expires_ms": t.expires_ms, "count": t.count});
    }
    v
}

pub fn run(args: LsArgs) -> anyhow::Result<ExitCode> {
    let mask = match &args.state {
        Some(name) => sockdiag::state_bit(sockdiag::state_by_name(name).ok_or_else(|| {
            usage(format!(
                "--state {name}: not a TCP state (established, listen, time-wait, close-wait, ...)"
            ))
        })?),
        None => {
            sockdiag::ALL_STATES & !sockdiag::state_bit(LISTEN) & !sockdiag::state_bit(TIME_WAIT)
        }
    };
    let pid = args.conns.checked_pid()?;
    let filter = args.conns.filter();
    let holders = socket_holders();
    let mut sockets: Vec<TcpSocket> = sockdiag::dump_tcp_states(mask)?
        .into_iter()
        .filter(|s| {
            filter.matches(&Conn {
                local: s.local,
                remote: s.remote,
            })
        })
        .filter(|s| pid.is_none() || holders.get(&s.inode).map(|h| h.owner.pid) == pid)
        .collect();
    sockets.sort_by_key(|s| (s.local, s.remote));
    let mut reader = SettingsReader::default();
    let mut text = String::new();
    let mut rows = Vec::new();
    for socket in &sockets {
        // TIME-WAIT and unaccepted sockets report inode 0: no holder.
        let holder = (socket.inode != 0)
            .then(|| holders.get(&socket.inode))
            .flatten();
        let config = reader.read(holder);
        if args.json {
            text.push_str(&json_row(socket, holder, config.as_ref()).to_string());
            text.push('\n');
        } else {
            rows.push(text_row(socket, holder, config.as_ref()));
        }
    }
    if !args.json {
        text = aligned(&rows);
    }
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(err) if err.kind() != ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{output::Owner, sockdiag::Timer};

    fn socket(local: &str, remote: &str, timer: Option<Timer>) -> TcpSocket {
        TcpSocket {
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
        assert_eq!(v["comm"], "curl");
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
