//! Idle connections that probe every second, held by several processes
//! because one process may open only 20 000 files here (and root cannot
//! raise that): each holder listens on its own port, connects to itself
//! CONNS times with keepalive 1 s / 1 s on the client side, says `ready`,
//! and keeps everything open until its stdin closes.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::sys::{Killed, NetNs};

/// Connections per holder: two fds each (client and accepted end), under
/// the 20 000 open-file limit with room for the listener and stdio.
pub const CONNS_PER_HOLDER: usize = 9_000;

/// Keepalive on every client socket: first probe after 1 s idle, then one
/// per second; 9 unanswered probes before giving up, so that an occasional
/// dropped answer does not kill a connection mid-benchmark.
const IDLE_S: i32 = 1;
const INTERVAL_S: i32 = 1;
const COUNT: i32 = 9;

#[derive(clap::Args, Debug)]
pub struct HoldArgs {
    /// Listen on 127.0.0.1:PORT and connect to it.
    #[arg(long)]
    port: u16,
    /// Connections to open.
    #[arg(long)]
    conns: usize,
}

/// The holder process (`cargo xtask bench-hold`, started by the benchmark
/// inside its namespace).
pub fn hold(args: &HoldArgs) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
    let conns = args.conns;
    let accepter = std::thread::spawn(move || -> std::io::Result<Vec<TcpStream>> {
        let mut accepted = Vec::with_capacity(conns);
        while accepted.len() < conns {
            accepted.push(listener.accept()?.0);
        }
        Ok(accepted)
    });
    let mut clients = Vec::with_capacity(args.conns);
    for _ in 0..args.conns {
        let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        set_keepalive(&stream)?;
        clients.push(stream);
    }
    let accepted = accepter
        .join()
        .map_err(|_| anyhow::anyhow!("the accepting thread panicked"))?
        .context("accepting")?;
    println!("ready {}", clients.len().min(accepted.len()));
    std::io::stdout().flush()?;
    // Hold until the benchmark closes our stdin (or kills us).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    Ok(())
}

fn set_keepalive(stream: &TcpStream) -> anyhow::Result<()> {
    let fd = stream.as_raw_fd();
    for (level, name, value) in [
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1),
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, IDLE_S),
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, INTERVAL_S),
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT, COUNT),
    ] {
        // SAFETY: fd is an open socket; value is a live c_int of the size given.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&raw const value).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("setsockopt");
        }
    }
    Ok(())
}

/// N connections spread over holder processes in `ns`.
pub struct Holders {
    children: Vec<Killed>,
}

impl Holders {
    pub fn start(ns: &NetNs, conns: usize) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding the xtask executable")?;
        let started = Instant::now();
        let mut children = Vec::new();
        let mut left = conns;
        // Listener ports below the widened ephemeral range (1024-65535), so
        // a client's port can never take a listener's.
        let mut port = 900;
        while left > 0 {
            let these = left.min(CONNS_PER_HOLDER);
            let mut cmd = ns.exec([exe.as_os_str()]);
            cmd.args(["bench-hold", "--port", &port.to_string()])
                .args(["--conns", &these.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped());
            children.push(Killed::spawn(&mut cmd)?);
            port += 1;
            left -= these;
        }
        let mut held = 0;
        for holder in &mut children {
            let stdout = holder.child.stdout.take().context("holder stdout")?;
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line)?;
            match line.trim().strip_prefix("ready ") {
                Some(n) => held += n.parse::<usize>().unwrap_or(0),
                None => bail!("a connection holder failed: `{}`", holder.what),
            }
        }
        if held != conns {
            bail!("holders opened {held} connections, not {conns}");
        }
        super::say(format!(
            "{conns} idle connections open in {} processes ({:.1} s)",
            children.len(),
            started.elapsed().as_secs_f64()
        ));
        Ok(Self { children })
    }

    /// Closes every connection and waits for the holders to exit.
    pub fn stop(mut self) {
        for holder in &mut self.children {
            drop(holder.child.stdin.take());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for holder in &mut self.children {
            while Instant::now() < deadline && matches!(holder.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
