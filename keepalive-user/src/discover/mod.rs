//! `keepalive discover HOST:PORT`: finds the idle time after which a NAT or
//! firewall on the path forgets a flow. Each trial (`trial`) is a
//! connection with TCP_KEEPIDLE set to the idle under test; the observer
//! sees whether its first probe is answered (the flow survived), or goes
//! unanswered until the kernel gives up, or is answered with RST (the flow
//! was cut). `search` picks the idles; `report` words the answer;
//! `progress` keeps the user informed while trials wait.

mod estimate;
mod judge;
mod progress;
mod report;
pub mod search;
mod trial;

use std::{collections::HashMap, net::SocketAddr, process::ExitCode, time::Duration};

use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use self::{
    progress::Progress,
    report::{Evidence, Finding},
    search::IdleSearch,
    trial::{Close, PROBES_PER_TRIAL, SocketSignal, Trial, connect, hold},
};
use crate::{
    error::usage,
    host::signals::{Stop, StopSignals},
    kernel::LoadOptions,
    model::{
        conn::{Conn, canonical},
        filter::{Cidr, ConnFilter},
    },
    observe::{pipeline::Observation, watcher::Watcher},
    render::clock::Clock,
};

/// A checked discovery: the server, the longest idle to try, trials at once.
#[derive(Debug, Clone)]
pub struct DiscoverPlan {
    /// HOST:PORT as given; resolved at start.
    pub target: String,
    pub max_s: u32,
    pub parallel: u32,
    pub json: bool,
}

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

enum Wake {
    Observations(anyhow::Result<Vec<Observation>>),
    Socket(Conn, SocketSignal),
    Tick,
    Stop(Stop),
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
    Ok(canonical(addr))
}

pub fn run(plan: DiscoverPlan) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Before the first connection: an early end aborts the trials (RST,
        // so the server holds nothing for them) and prints what is known.
        let stop = StopSignals::catch()?;
        let target = resolve(&plan.target).await?;
        crate::kernel::privilege::require_bpf_privileges()?;
        Discovery::start(plan, target).await?.run(stop).await
    })
}

struct Discovery {
    plan: DiscoverPlan,
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
    netns: crate::model::conn::NetnsIno,
    /// The time left as played forward at that instant (None: the search changed since).
    estimate: Option<(Instant, estimate::TimeLeft)>,
}

impl Discovery {
    async fn start(plan: DiscoverPlan, target: SocketAddr) -> anyhow::Result<Self> {
        let max_s = plan.max_s;
        // Trial connections live in this namespace: another namespace's
        // connection with the same ends is not ours.
        let netns = crate::host::netns::own();
        let filter = ConnFilter {
            netns: Some(netns),
            ports: vec![target.port()],
            dst: vec![Cidr::host(target.ip())],
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
            netns,
            estimate: None,
            plan,
        };
        eprintln!(
            "keepalive discover: {target} (connect took {:.1} ms): idle up to {max_s} s, {} connections at a time; each trial's probe gets {PROBES_PER_TRIAL} x {intvl_s} s to be answered",
            rtt.as_secs_f64() * 1000.0,
            discovery.plan.parallel,
        );
        Ok(discovery)
    }

    async fn run(mut self, mut stop: StopSignals) -> anyhow::Result<ExitCode> {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut stopped = None;
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
                observations = self.watcher.next_observations() => Wake::Observations(observations),
                Some((conn, signal)) = self.signals.recv() => Wake::Socket(conn, signal),
                _ = tick.tick() => Wake::Tick,
                signal = stop.next() => Wake::Stop(signal),
            };
            let step = match wake {
                Wake::Observations(observations) => {
                    observations.and_then(|o| self.on_observations(o))
                }
                Wake::Socket(conn, signal) => self.on_socket(conn, signal),
                Wake::Tick => self.on_tick(),
                Wake::Stop(signal) => {
                    stopped = Some(signal);
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
        if self.plan.json {
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
        Ok(stopped.map_or(ExitCode::SUCCESS, |signal| {
            ExitCode::from(signal.exit_code())
        }))
    }

    /// Starts trials until `--parallel` are idling or nothing more would help.
    async fn fill_slots(&mut self) -> anyhow::Result<()> {
        while self.trials.len() < self.plan.parallel as usize {
            let Some(idle_s) = self.search.next_idle() else {
                return Ok(());
            };
            let (stream, _) = connect(self.target, Some((idle_s, self.intvl_s))).await?;
            let conn = Conn::new(self.netns, stream.local_addr()?, self.target);
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
            self.estimate = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                assert_eq!(crate::error::exit_code_for(&err), 2, "{bad}: {err}");
            }
        });
    }
}
