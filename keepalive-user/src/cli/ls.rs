//! `keepalive ls`: a snapshot of TCP connections, keepalive-centric, like
//! `ss -to`: who holds each one, the keepalive settings in force (read from
//! the socket itself, which the socket table does not carry), and the
//! keepalive timer's countdown and probes out.

use std::{
    io::{ErrorKind, Write as _},
    process::ExitCode,
};

use crate::{
    cli::args::ConnFilterArgs,
    error::usage,
    host::netns::NetnsScope,
    host::{
        owners::socket_holders,
        sockdiag::{self, LISTEN, TIME_WAIT, TcpSocket},
        socket_options::SettingsReader,
    },
    model::conn::Conn,
    render::table::{aligned, json_row, text_row},
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
    // Like `ss`: this namespace, unless -N or --all-netns say otherwise.
    let scope = args.conns.netns_scope(false)?;
    let filter = args.conns.filter(&scope);
    let holders = socket_holders();
    let mut sockets: Vec<TcpSocket> = sockdiag::dump_tcp_states_in(&scope, mask)?
        .into_iter()
        .filter(|s| filter.matches(&Conn::new(s.netns, s.local, s.remote)))
        .filter(|s| pid.is_none() || holders.get(&s.inode).map(|h| h.owner.pid) == pid)
        .collect();
    sockets.sort_by_key(|s| (s.netns, s.local, s.remote));
    let names: std::collections::HashMap<_, _> = match scope {
        NetnsScope::All => crate::host::netns::all()
            .into_iter()
            .map(|ns| (ns.ino, ns.name))
            .collect(),
        NetnsScope::Only(ns) => [(ns.ino, ns.name)].into(),
    };
    let show_netns = sockets.iter().any(|s| s.netns != crate::host::netns::own());
    let mut reader = SettingsReader::default();
    let mut text = String::new();
    let mut rows = Vec::new();
    for socket in &sockets {
        // TIME-WAIT and unaccepted sockets report inode 0: no holder.
        let holder = (socket.inode != 0)
            .then(|| holders.get(&socket.inode))
            .flatten();
        let config = reader.read(holder);
        let netns_name = names.get(&socket.netns).map(String::as_str);
        if args.json {
            let mut row = json_row(socket, holder, config.as_ref());
            row["netns"] = serde_json::json!(socket.netns);
            if let Some(name) = netns_name {
                row["netns_name"] = serde_json::json!(name);
            }
            text.push_str(&row.to_string());
            text.push('\n');
        } else {
            rows.push((netns_name, text_row(socket, holder, config.as_ref())));
        }
    }
    if !args.json {
        text = with_netns_column(
            aligned(&rows.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>()),
            &rows,
            show_netns,
        );
    }
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(err) if err.kind() != ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Prefixes each line with its namespace's name when the table shows other
/// namespaces than this one (`-N`, `--all-netns`), as a first column.
fn with_netns_column(table: String, rows: &[(Option<&str>, [String; 10])], show: bool) -> String {
    if !show {
        return table;
    }
    let names: Vec<&str> = std::iter::once("Netns")
        .chain(rows.iter().map(|(name, _)| name.unwrap_or("?")))
        .collect();
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(5);
    table
        .lines()
        .zip(names)
        .map(|(line, name)| format!("{name:<width$}  {line}\n"))
        .collect()
}
