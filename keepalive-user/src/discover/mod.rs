//! `keepalive discover HOST:PORT`: finds the idle time after which a NAT or
//! firewall on the path forgets a flow. Each trial is a connection with
//! TCP_KEEPIDLE set to the idle under test; the observer (watch's
//! `Watcher`) sees whether its first probe is answered (the flow survived),
//! or goes unanswered until the kernel gives up, or is answered with RST
//! (the flow was cut). `search` picks the idles; `report` words the answer.

mod report;
mod search;

use std::{
    collections::HashMap,
    io::{ErrorKind, IsTerminal as _, Write as _},
    net::SocketAddr,
    process::ExitCode,
    time::Duration,
};

use anyhow::Context as _;
use tokio::{
    net::{TcpSocket, TcpStream},
    sync::{mpsc, oneshot},
    time::Instant,
};

use self::{
    report::{Evidence, Finding, How},
    search::{IdleSearch, MAX_IDLE_S, Outcome},
};
use crate::{
    cli::{parse_duration, usage},
    events::{Conn, errno_name},
    filter::{Cidr, ConnFilter},
    kernel::LoadOptions,
    output::Clock,
    timeline::{Record, Report},
    watch::{Item, Watcher},
};

#[derive(clap::Args, Debug)]
pub struct DiscoverArgs {
    /// The server: ADDRESS:PORT, [IPV6]:PORT or HOSTNAME:PORT.
    pub target: String,
    /// The longest idle to try (whole seconds, at most 32767s); the
    /// default is Linux's own TCP_KEEPIDLE.
    #[arg(long, default_value = "2h", value_parser = parse_duration)]
    pub max: Duration,
    /// Connections idling at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: u32,
    /// One JSON object per line: watch's events for the trial
    /// connections, a `trial` object per answer, then the `result`.
    #[arg(long)]
    pub json: bool,
}

/// Probes per trial: a second one tells a lost probe from a cut flow.
const PROBES_PER_TRIAL: u32 = 2;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the search cannot go on; each says which, as the issue asks.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("{0} is unreachable: {1}")]
    Unreachable(SocketAddr, String),
    #[error("{0} refused the connection: nothing listens on that port (or a firewall rejects it)")]
    Refused(SocketAddr),
    #[error(
        "{target} closed an idle connection itself (FIN) {after} after it was opened: the server's own idle timeout ends idle flows before the path's can be measured; the path kept that flow alive {after} at least"
    )]
    PeerClosesIdle { target: SocketAddr, after: String },
    #[error("{0}")]
    NoVerdict(String),
}

/// How a trial connection is let go.
#[derive(Debug, Clone, Copy)]
enum Close {
    /// The flow is alive: FIN, as any client would.
    Graceful,
    /// The trial no longer matters and its flow may be gone: RST, so no
    /// orphan retransmits its FIN for minutes.
    Abort,
}

/// What the trial's own socket saw, beside the kernel events.
#[derive(Debug)]
enum SocketSignal {
    PeerClosed,
    Data,
    Error(std::io::Error),
}

enum Wake {
    Items(anyhow::Result<Vec<Item>>),
    Socket(Conn, SocketSignal),
    Tick,
    Stop,
}

struct Trial {
    idle_s: u32,
    connected: Instant,
    connected_ns: u64,
    deadline: Instant,
    first_probe: Option<(u64, Option<u64>)>,
    socket_error: Option<std::io::Error>,
    close: Option<oneshot::Sender<Close>>,
}

impl Trial {
    fn close(&mut self, how: Close) {
        if let Some(tx) = self.close.take() {
            let _ = tx.send(how);
        }
    }
}

/// Holds a trial connection: reports FIN, data and errors, and closes it
/// as told (or when the search ends and the sender is dropped).
async fn hold(
    stream: TcpStream,
    conn: Conn,
    mut close: oneshot::Receiver<Close>,
    signals: mpsc::UnboundedSender<(Conn, SocketSignal)>,
) {
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            how = &mut close => {
                if !matches!(how, Ok(Close::Graceful)) {
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                }
                return;
            }
            ready = stream.readable() => {
                if let Err(err) = ready {
                    let _ = signals.send((conn, SocketSignal::Error(err)));
                    return;
                }
                match stream.try_read(&mut buf) {
                    Ok(0) => {
                        let _ = signals.send((conn, SocketSignal::PeerClosed));
                        // Wait to be told how to close; the FIN is answered then.
                        let how = close.await;
                        if !matches!(how, Ok(Close::Graceful)) {
                            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                        }
                        return;
                    }
                    Ok(_) => {
                        let _ = signals.send((conn, SocketSignal::Data));
                    }
                    Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                    Err(err) => {
                        let _ = signals.send((conn, SocketSignal::Error(err)));
                        let _ = close.await;
                        return;
                    }
                }
            }
        }
    }
}

fn connect_error(target: SocketAddr, err: &std::io::Error) -> anyhow::Error {
    match err.raw_os_error() {
        Some(libc::ECONNREFUSED) => DiscoverError::Refused(target).into(),
        Some(libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EHOSTDOWN | libc::ENETDOWN) => {
            DiscoverError::Unreachable(target, err.to_string()).into()
        }
        _ => anyhow::Error::new(std::io::Error::new(err.kind(), err.to_string()))
            .context(format!("connecting to {target}")),
    }
}

/// Opens a connection whose first probe leaves after `idle_s` of silence.
async fn connect(
    target: SocketAddr,
    keepalive: Option<(u32, u32)>,
) -> anyhow::Result<(TcpStream, Duration)> {
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .context("creating a TCP socket")?;
    if let Some((idle_s, intvl_s)) = keepalive {
        // Set before connecting, so sock_ops reads them at establishment.
        let settings = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(idle_s.into()))
            .with_interval(Duration::from_secs(intvl_s.into()))
            .with_retries(PROBES_PER_TRIAL);
        socket2::SockRef::from(&socket)
            .set_tcp_keepalive(&settings)
            .context("setting keepalive options")?;
    }
    let started = Instant::now();
    match tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(target)).await {
        Ok(Ok(stream)) => Ok((stream, started.elapsed())),
        Ok(Err(err)) => Err(connect_error(target, &err)),
        Err(_) => Err(DiscoverError::Unreachable(
            target,
            format!(
                "no answer to the connection request within {} s",
                CONNECT_TIMEOUT.as_secs()
            ),
        )
        .into()),
    }
}

async fn resolve(target: &str) -> anyhow::Result<SocketAddr> {
    if target
        .rsplit_once(':')
        .is_none_or(|(_, port)| port.parse::<u16>().is_err())
    {
        return Err(usage(format!(
            "{target:?}: give the server as HOST:PORT (IPv6 as [ADDRESS]:PORT)"
        )));
    }
    let mut addrs = tokio::net::lookup_host(target)
        .await
        .map_err(|e| usage(format!("{target}: cannot resolve: {e}")))?;
    let addr = addrs
        .next()
        .ok_or_else(|| usage(format!("{target}: no address")))?;
    if addr.port() == 0 {
        return Err(usage(format!("{target}: port 0 is not a server port")));
    }
    // IPv4-mapped addresses are shown (and matched) as IPv4, like watch does.
    Ok(match addr.ip() {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(addr, |v4| SocketAddr::new(v4.into(), addr.port())),
        _ => addr,
    })
}

fn validate(args: &DiscoverArgs) -> anyhow::Result<u32> {
    let max = args.max;
    if max.subsec_nanos() != 0 || !(2..=u64::from(MAX_IDLE_S)).contains(&max.as_secs()) {
        return Err(usage(format!(
            "--max must be whole seconds from 2 to {MAX_IDLE_S} (TCP_KEEPIDLE's limit)"
        )));
    }
    if !(1..=64).contains(&args.parallel) {
        return Err(usage("--parallel must be from 1 to 64"));
    }
    Ok(max.as_secs() as u32)
}

pub fn run(args: DiscoverArgs) -> anyhow::Result<ExitCode> {
    let max_s = validate(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let target = resolve(&args.target).await?;
        crate::kernel::privilege::require_bpf_privileges()?;
        Discovery::start(args, target, max_s).await?.run().await
    })
}

struct Discovery {
    args: DiscoverArgs,
    target: SocketAddr,
    max_s: u32,
    intvl_s: u32,
    watcher: Watcher,
    clock: Clock,
    search: IdleSearch,
    trials: HashMap<Conn, Trial>,
    evidence: Vec<Evidence>,
    signals_tx: mpsc::UnboundedSender<(Conn, SocketSignal)>,
    signals: mpsc::UnboundedReceiver<(Conn, SocketSignal)>,
    started: Instant,
    progress: Progress,
}

impl Discovery {
    async fn start(args: DiscoverArgs, target: SocketAddr, max_s: u32) -> anyhow::Result<Self> {
        let filter = ConnFilter {
            ports: vec![target.port()],
            dst: vec![Cidr {
                addr: target.ip(),
                prefix_len: if target.is_ipv4() { 32 } else { 128 },
            }],
            ..ConnFilter::default()
        };
        let watcher = Watcher::start(&LoadOptions::default(), filter, None)?;
        // A first connection finds out whether the server is there at all,
        // and how long the path's round trip is.
        let (probe, rtt) = connect(target, None).await?;
        drop(probe);
        // Each probe gets at least a second, and four round trips, to be answered.
        let intvl_s = (rtt.as_secs_f64() * 4.0).ceil().max(1.0) as u32;
        let (signals_tx, signals) = mpsc::unbounded_channel();
        let discovery = Self {
            target,
            max_s,
            intvl_s,
            watcher,
            clock: Clock::now(),
            search: IdleSearch::new(max_s),
            trials: HashMap::new(),
            evidence: Vec::new(),
            signals_tx,
            signals,
            started: Instant::now(),
            progress: Progress::new(),
            args,
        };
        eprintln!(
            "keepalive discover: {target} (connect took {:.1} ms): idle up to {max_s} s, {} connections at a time; each trial's probe gets {PROBES_PER_TRIAL} x {intvl_s} s to be answered",
            rtt.as_secs_f64() * 1000.0,
            discovery.args.parallel,
        );
        Ok(discovery)
    }

    async fn run(mut self) -> anyhow::Result<ExitCode> {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let mut sigterm =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut interrupted = false;
        let result = loop {
            if let Err(err) = self.fill_slots().await {
                break Err(err);
            }
            if self.search.done() || self.trials.is_empty() {
                break Ok(());
            }
            // The handlers run after select! has let go of its futures'
            // borrows of `self`.
            let wake = tokio::select! {
                items = self.watcher.next_items() => Wake::Items(items),
                Some((conn, signal)) = self.signals.recv() => Wake::Socket(conn, signal),
                _ = tick.tick() => Wake::Tick,
                _ = sigint.recv() => Wake::Stop,
                _ = sigterm.recv() => Wake::Stop,
            };
            let step = match wake {
                Wake::Items(items) => items.and_then(|items| self.on_items(items)),
                Wake::Socket(conn, signal) => self.on_socket(conn, signal),
                Wake::Tick => self.on_tick(),
                Wake::Stop => {
                    interrupted = true;
                    break Ok(());
                }
            };
            if let Err(err) = step {
                break Err(err);
            }
            self.close_moot();
        };
        for trial in self.trials.values_mut() {
            trial.close(Close::Abort);
        }
        self.progress.clear();
        // Let the holders send their RSTs before the runtime ends.
        tokio::time::sleep(Duration::from_millis(20)).await;
        result?;
        let finding = Finding::from_search(
            &self.search,
            self.target,
            self.max_s,
            std::mem::take(&mut self.evidence),
            self.started.elapsed(),
        );
        if self.args.json {
            crate::outln!("{}", finding.json())?;
        } else {
            crate::outln!("{}", finding.text())?;
        }
        let lost = self.watcher.summary().lost;
        if lost > 0 {
            eprintln!(
                "keepalive discover: {lost} events were lost (ring buffer full); trials they belonged to ended by their socket's error instead"
            );
        }
        Ok(if interrupted {
            ExitCode::from(130)
        } else {
            ExitCode::SUCCESS
        })
    }

    /// Starts trials until `--parallel` are idling or nothing more would help.
    async fn fill_slots(&mut self) -> anyhow::Result<()> {
        while self.trials.len() < self.args.parallel as usize {
            let Some(idle_s) = self.search.next_idle() else {
                return Ok(());
            };
            let (stream, _) = connect(self.target, Some((idle_s, self.intvl_s))).await?;
            let conn = Conn {
                local: canonical(stream.local_addr()?),
                remote: self.target,
            };
            let (close_tx, close_rx) = oneshot::channel();
            tokio::spawn(hold(stream, conn, close_rx, self.signals_tx.clone()));
            let connected = Instant::now();
            // The timer wheel may fire a long timer up to an eighth late.
            let budget = Duration::from_secs(u64::from(idle_s))
                + Duration::from_secs(u64::from(idle_s)) / 8
                + Duration::from_secs(u64::from(self.intvl_s * PROBES_PER_TRIAL) + 3);
            self.trials.insert(
                conn,
                Trial {
                    idle_s,
                    connected,
                    connected_ns: Clock::monotonic_now_ns(),
                    deadline: connected + budget,
                    first_probe: None,
                    socket_error: None,
                    close: Some(close_tx),
                },
            );
            self.search.start(idle_s);
        }
        Ok(())
    }

    fn on_items(&mut self, items: Vec<Item>) -> anyhow::Result<()> {
        for item in items {
            match item {
                Item::Record(record, owner) => {
                    if !self.trials.contains_key(&record.conn) {
                        continue;
                    }
                    if self.args.json {
                        crate::outln!(
                            "{}",
                            crate::output::record_json(&self.clock, &record, owner.as_ref())
                        )?;
                    }
                    self.on_record(&record)?;
                }
                Item::Lost { ts_ns, count } => {
                    if self.args.json {
                        crate::outln!("{}", crate::output::lost_json(&self.clock, ts_ns, count))?;
                    }
                }
            }
        }
        Ok(())
    }

    fn on_record(&mut self, record: &Record) -> anyhow::Result<()> {
        let Some(trial) = self.trials.get_mut(&record.conn) else {
            return Ok(());
        };
        let how = match &record.report {
            Report::Probe { idle_ms, .. } => {
                trial.first_probe.get_or_insert((record.ts_ns, *idle_ms));
                return Ok(());
            }
            Report::Ack { n, rtt_us } => (How::Answered, Some(*n), Some(*rtt_us)),
            Report::Timeout { probes, .. } => (How::Unanswered, Some(*probes), None),
            Report::Reset {
                after_probe: Some(n),
            } => (How::Reset, Some(*n), None),
            Report::Reset { after_probe: None } => (How::ResetWhileIdle, None, None),
            Report::Unanswered { .. } | Report::OptionsSet { .. } => return Ok(()),
        };
        self.settle(record.conn, how.0, how.1, how.2, record.ts_ns)
    }

    /// Records a trial's answer, shows it and lets its connection go.
    fn settle(
        &mut self,
        conn: Conn,
        how: How,
        probe: Option<u32>,
        rtt_us: Option<u64>,
        at_ns: u64,
    ) -> anyhow::Result<()> {
        let Some(mut trial) = self.trials.remove(&conn) else {
            return Ok(());
        };
        trial.close(if how.survived() {
            Close::Graceful
        } else {
            Close::Abort
        });
        let evidence = Evidence {
            idle_s: trial.idle_s,
            outcome: if how.survived() { "survived" } else { "cut" },
            how,
            probe,
            probe_at: trial.first_probe.map(|(ts, _)| self.clock.rfc3339(ts)),
            probe_idle_ms: trial.first_probe.and_then(|(_, idle)| idle),
            rtt_us,
            ended_after_ms: (!how.survived())
                .then(|| at_ns.saturating_sub(trial.connected_ns) / 1_000_000),
            local: conn.local,
            remote: conn.remote,
        };
        self.search.resolve(
            trial.idle_s,
            if how.survived() {
                Outcome::Survived
            } else {
                Outcome::Cut
            },
        );
        self.progress.clear();
        if self.args.json {
            crate::outln!("{}", evidence.json())?;
        } else {
            crate::outln!("{}", evidence.line())?;
        }
        self.evidence.push(evidence);
        Ok(())
    }

    fn on_socket(&mut self, conn: Conn, signal: SocketSignal) -> anyhow::Result<()> {
        let Some(trial) = self.trials.get_mut(&conn) else {
            return Ok(());
        };
        match signal {
            SocketSignal::PeerClosed => {
                return Err(DiscoverError::PeerClosesIdle {
                    target: self.target,
                    after: format!("{:.1} s", trial.connected.elapsed().as_secs_f64()),
                }
                .into());
            }
            SocketSignal::Data => log::info!(
                "{conn:?}: the server sent data; the idle time restarts (the probe's measured idle shows it)"
            ),
            SocketSignal::Error(err) => trial.socket_error = Some(err),
        }
        Ok(())
    }

    fn on_tick(&mut self) -> anyhow::Result<()> {
        if let Some(Item::Lost { ts_ns, count }) = self.watcher.poll_lost()? {
            if self.args.json {
                crate::outln!("{}", crate::output::lost_json(&self.clock, ts_ns, count))?;
            }
            log::warn!("{count} events lost: the ring buffer was full");
        }
        let _ = self.watcher.expire();
        let now = Instant::now();
        let overdue: Vec<Conn> = self
            .trials
            .iter()
            .filter(|(_, t)| t.deadline <= now)
            .map(|(c, _)| *c)
            .collect();
        for conn in overdue {
            self.overdue(conn)?;
        }
        self.show_progress();
        Ok(())
    }

    /// A trial past its time without a kernel event to settle it: its own
    /// socket's error can (when the events were lost); otherwise say what
    /// is missing rather than guess.
    fn overdue(&mut self, conn: Conn) -> anyhow::Result<()> {
        let trial = &self.trials[&conn];
        let now_ns = Clock::monotonic_now_ns();
        match trial
            .socket_error
            .as_ref()
            .and_then(std::io::Error::raw_os_error)
        {
            Some(libc::ETIMEDOUT) => {
                return self.settle(conn, How::Unanswered, None, None, now_ns);
            }
            Some(libc::ECONNRESET) => {
                let how = if trial.first_probe.is_some() {
                    How::Reset
                } else {
                    How::ResetWhileIdle
                };
                return self.settle(conn, how, None, None, now_ns);
            }
            _ => {}
        }
        let idle_s = trial.idle_s;
        let error = trial.socket_error.as_ref().map_or(String::new(), |e| {
            format!(" (its socket reports {})", errno_text(e))
        });
        Err(DiscoverError::NoVerdict(match trial.first_probe {
            None => format!(
                "the trial connection idle {idle_s} s sent no keepalive probe in time{error}: something keeps it from idling (the server sending data?), or the observer missed it ({} events lost)",
                self.watcher.summary().lost
            ),
            Some(_) => format!(
                "the trial connection idle {idle_s} s sent its probe, but neither an answer nor the kernel's verdict came in time{error}"
            ),
        })
        .into())
    }

    fn close_moot(&mut self) {
        let moot = self.search.moot();
        if moot.is_empty() {
            return;
        }
        self.trials.retain(|_, trial| {
            if moot.contains(&trial.idle_s) {
                trial.close(Close::Abort);
                false
            } else {
                true
            }
        });
        for idle_s in moot {
            self.search.abandon(idle_s);
        }
    }

    fn show_progress(&mut self) {
        let now = Instant::now();
        let waiting: Vec<(u32, Duration)> = self
            .trials
            .values()
            .map(|t| {
                let probe_due = t.connected + Duration::from_secs(u64::from(t.idle_s));
                (t.idle_s, probe_due.saturating_duration_since(now))
            })
            .collect();
        let current = self
            .trials
            .values()
            .map(|t| t.deadline.saturating_duration_since(now))
            .max()
            .unwrap_or_default();
        let per_wait = Duration::from_secs(
            u64::from(self.search.cut_s().unwrap_or(self.max_s))
                + u64::from(self.intvl_s * PROBES_PER_TRIAL)
                + 3,
        );
        let at_most = current + per_wait * self.search.waits_left_at_most(self.args.parallel);
        let line = report::progress_line(self.started.elapsed(), &self.search, &waiting, at_most);
        self.progress.show(&line);
    }
}

fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(addr, |v4| SocketAddr::new(v4.into(), addr.port())),
        _ => addr,
    }
}

fn errno_text(err: &std::io::Error) -> String {
    err.raw_os_error()
        .map_or_else(|| err.to_string(), |e| errno_name(e as u32))
}

/// Progress on stderr: one line rewritten in place on a terminal, a line
/// every ten seconds otherwise (logs, CI).
struct Progress {
    tty: bool,
    shown: bool,
    last_line_at: Option<Instant>,
}

impl Progress {
    fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            shown: false,
            last_line_at: None,
        }
    }

    fn show(&mut self, line: &str) {
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
            self.shown = true;
        } else if self
            .last_line_at
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(10))
        {
            let _ = writeln!(err, "{line}");
            self.last_line_at = Some(Instant::now());
        }
        let _ = err.flush();
    }

    /// Clears the in-place line before something else is written.
    fn clear(&mut self) {
        if self.shown {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            self.shown = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(max: &str, parallel: u32) -> DiscoverArgs {
        DiscoverArgs {
            target: "127.0.0.1:80".into(),
            max: parse_duration(max).unwrap(),
            parallel,
            json: false,
        }
    }

    #[test]
    fn max_and_parallel_limits() {
        assert_eq!(validate(&args("2h", 4)).unwrap(), 7200);
        assert_eq!(validate(&args("2", 1)).unwrap(), 2);
        for (max, parallel) in [("1", 4), ("1.5", 4), ("32768", 4), ("10", 0), ("10", 65)] {
            let err = validate(&args(max, parallel)).unwrap_err();
            assert_eq!(
                crate::cli::exit_code_for(&err),
                2,
                "{max} {parallel}: {err}"
            );
        }
    }

    #[test]
    fn targets_need_a_port() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            assert_eq!(
                resolve("127.0.0.1:8080").await.unwrap(),
                "127.0.0.1:8080".parse().unwrap()
            );
            assert_eq!(
                resolve("[::ffff:10.0.0.2]:80").await.unwrap(),
                "10.0.0.2:80".parse().unwrap()
            );
            assert_eq!(
                resolve("[::1]:22").await.unwrap(),
                "[::1]:22".parse().unwrap()
            );
            for bad in ["127.0.0.1", "127.0.0.1:x", "127.0.0.1:0", "[::1]"] {
                let err = resolve(bad).await.unwrap_err();
                assert_eq!(crate::cli::exit_code_for(&err), 2, "{bad}: {err}");
            }
        });
    }

    #[test]
    fn connect_errors_say_which() {
        let target: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let refused = connect_error(
            target,
            &std::io::Error::from_raw_os_error(libc::ECONNREFUSED),
        );
        assert!(refused.to_string().contains("refused"), "{refused}");
        let unreachable = connect_error(
            target,
            &std::io::Error::from_raw_os_error(libc::EHOSTUNREACH),
        );
        assert!(
            unreachable.to_string().contains("unreachable"),
            "{unreachable}"
        );
    }
}
