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
