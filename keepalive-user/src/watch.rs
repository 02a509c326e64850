//! `keepalive watch`: the live per-connection keepalive timeline.
//!
//! `Watcher` is the reusable part (demo, discover and the benchmarks drive
//! it too): it owns the loaded programs, drains the ring buffer, decodes,
//! filters, runs the timelines and reports lost events. `run` is the CLI.

use std::{
    fmt::Write as _,
    io::Write as _,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;

use crate::{
    cli::{parse_duration, usage},
    events::{self, Config, Conn, KernelEvent},
    filter::{ConnFilter, ConnFilterArgs},
    kernel::{LoadOptions, Observer, loader::LostCounter},
    options::ValueArgs,
    output::{self, Clock, Owner},
    timeline::{Record, Summary, Timelines},
};

#[derive(clap::Args, Debug, Clone)]
pub struct WatchArgs {
    #[command(flatten)]
    pub conns: ConnFilterArgs,
    /// Attach to this cgroup v2 directory instead of the root (all of the host).
    #[arg(long)]
    pub cgroup: Option<PathBuf>,
    /// Stop after this long (30s, 2m, 1h or plain seconds).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Ring buffer size in bytes: a power of two, at least the page size.
    #[arg(long, hide = true)]
    pub ring_bytes: Option<u32>,
    /// Also apply the keepalive values below to new connections matching
    /// --port/--dst (a sock_ops policy held while watch runs).
    #[arg(long)]
    pub apply: bool,
    #[command(flatten)]
    pub values: ValueArgs,
}

/// One thing to show: a record about a connection, or lost events.
#[derive(Debug, Clone)]
pub enum Item {
    Record(Record, Option<Owner>),
    Lost { ts_ns: u64, count: u64 },
}

/// How often the ring is read while events flow, whatever the kernel's
/// notifications do. Keepalive timers of 1 s fire in bursts every 32 ms
/// here (the timer wheel's granularity at that range, HZ=250), so "flowing"
/// must outlast the gaps between bursts.
const BUSY_POLL_INTERVAL: Duration = Duration::from_millis(1);
/// ... and when nothing came for a while. With the reader caught up the
/// notification does come (within a tick here), so this is only the bound
/// for one that never does; polling every 5 ms cost an idle watch 1 % of a
/// core.
const IDLE_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Empty polls in a row (100 ms) after which the slower interval applies.
const IDLE_POLLS: u32 = 100;
/// Records handled before the lines they make are written: a batch waits
/// for its last record, and at 100 000 events a second an unbounded drain
/// held lines back for tens of milliseconds.
const MAX_BATCH: usize = 256;

pub struct Watcher {
    observer: Observer,
    ring: AsyncFd<RingBuf<MapData>>,
    empty_polls: u32,
    batch_was_full: bool,
    lost: LostCounter,
    lost_reported: u64,
    pipeline: Pipeline,
}

/// Decoding, filtering, timelines and owners: what happens to each record
/// taken off the ring.
struct Pipeline {
    timelines: Timelines,
    filter: ConnFilter,
    pid: Option<u32>,
    owners: crate::owner_cache::OwnerCache,
    decode_errors: u64,
}

impl Pipeline {
    /// Takes up to `max_records` records off the ring; true when it took
    /// that many (more may be waiting).
    fn drain(&mut self, ring: &mut RingBuf<MapData>, max_records: usize) -> (Vec<Item>, bool) {
        let mut items = Vec::new();
        let mut taken = 0;
        while taken < max_records
            && let Some(record) = ring.next()
        {
            taken += 1;
            match events::decode(&record) {
                Ok(event) => items.extend(self.handle(&event)),
                Err(err) => {
                    self.decode_errors += 1;
                    log::warn!("undecodable kernel event: {err}");
                }
            }
        }
        (items, taken == max_records)
    }

    fn handle(&mut self, event: &KernelEvent) -> Vec<Item> {
        if !self.filter.matches(&event.conn) {
            return Vec::new();
        }
        let owner = self.owners.observe(&event.conn, event.socket_ino);
        let records = self.timelines.on_event(event);
        self.with_owners(records, Some((event.conn, owner)))
    }

    /// Attaches each record's owner and applies `--pid`. `known` is an owner
    /// already looked up: nearly every record is about the event's own
    /// connection, and each lookup is a cache miss with many connections.
    fn with_owners(&self, records: Vec<Record>, known: Option<(Conn, Option<Owner>)>) -> Vec<Item> {
        records
            .into_iter()
            .filter_map(|record| {
                let owner = match &known {
                    Some((conn, owner)) if *conn == record.conn => owner.clone(),
                    _ => self.owners.owner_of(&record.conn),
                };
                let wanted = self.pid.is_none() || owner.as_ref().map(|o| o.pid) == self.pid;
                wanted.then_some(Item::Record(record, owner))
            })
            .collect()
    }
}

impl Watcher {
    /// Loads and attaches; must run inside a tokio runtime.
    pub fn start(load: &LoadOptions, filter: ConnFilter, pid: Option<u32>) -> anyhow::Result<Self> {
        // Before attaching: the first scan of every process's fds takes
        // long enough with many sockets open to overflow the ring.
        let owners = crate::owner_cache::OwnerCache::primed(pid);
        let mut observer = Observer::load(load)?;
        // SAFETY: the ring buffer owns its fd and lives inside the AsyncFd,
        // so the fd stays open for as long as it is registered.
        let ring = unsafe { AsyncFd::register(observer.take_events()?) }
            .map_err(|e| anyhow::anyhow!("polling the ring buffer: {e}"))?;
        let lost = observer.take_lost_counter()?;
        let mut timelines = Timelines::new(Some(Config::sysctl_defaults()));
        if load.cgroup.is_some() {
            timelines = timelines.only_seen_by_cgroup_hooks();
        }
        let pipeline = Pipeline {
            timelines,
            filter,
            pid,
            owners,
            decode_errors: 0,
        };
        Ok(Self {
            observer,
            ring,
            empty_polls: 0,
            batch_was_full: false,
            lost,
            lost_reported: 0,
            pipeline,
        })
    }

    pub fn observer(&self) -> &Observer {
        &self.observer
    }

    pub fn summary(&self) -> &Summary {
        &self.pipeline.timelines.summary
    }

    /// Waits until the kernel has something, then returns it, at most
    /// `MAX_BATCH` records at a time.
    ///
    /// The kernel's "new data" notification cannot be relied on for
    /// latency: it is sent only when the reader had caught up, and on this
    /// kernel the benchmarks saw it arrive up to 0.16 s late with the ring
    /// filling at 100 000 events a second. So the ring is also polled: every
    /// `BUSY_POLL_INTERVAL` while events flow, every `IDLE_POLL_INTERVAL`
    /// after `IDLE_POLLS` empty polls in a row.
    pub async fn next_items(&mut self) -> anyhow::Result<Vec<Item>> {
        loop {
            let poll_interval = if self.empty_polls < IDLE_POLLS {
                BUSY_POLL_INTERVAL
            } else {
                IDLE_POLL_INTERVAL
            };
            let (items, full) = if self.batch_was_full {
                // More is waiting: no need to ask the kernel.
                tokio::task::yield_now().await;
                self.pipeline.drain(self.ring.get_mut(), MAX_BATCH)
            } else {
                match tokio::time::timeout(poll_interval, self.ring.readable_mut()).await {
                    Ok(guard) => {
                        let mut guard = guard?;
                        let drained = self.pipeline.drain(guard.get_inner_mut(), MAX_BATCH);
                        guard.clear_ready();
                        drained
                    }
                    Err(_elapsed) => self.pipeline.drain(self.ring.get_mut(), MAX_BATCH),
                }
            };
            // Records that were filtered out make no items but still count.
            self.batch_was_full = full;
            if items.is_empty() && !self.batch_was_full {
                self.empty_polls = self.empty_polls.saturating_add(1);
            } else {
                self.empty_polls = 0;
                return Ok(items);
            }
        }
    }

    /// Whatever is left in the ring, without waiting (used at exit).
    pub fn drain_now(&mut self) -> Vec<Item> {
        self.pipeline.drain(self.ring.get_mut(), usize::MAX).0
    }

    /// Housekeeping for a periodic tick: connections closed a moment ago
    /// are forgotten, and any probe they left unanswered is reported.
    pub fn expire(&mut self) -> Vec<Item> {
        let (records, forgotten) = self
            .pipeline
            .timelines
            .expire_closed(Clock::monotonic_now_ns());
        let items = self.pipeline.with_owners(records, None);
        for conn in &forgotten {
            self.pipeline.owners.forget(conn);
        }
        items
    }

    /// Events the ring could not take since the last call, if any.
    pub fn poll_lost(&mut self) -> anyhow::Result<Option<Item>> {
        self.observer.flush_kernel_logs();
        let total = self.lost.total()?;
        if total <= self.lost_reported {
            return Ok(None);
        }
        let count = total - self.lost_reported;
        self.lost_reported = total;
        self.pipeline.timelines.summary.lost += count;
        Ok(Some(Item::Lost {
            ts_ns: Clock::monotonic_now_ns(),
            count,
        }))
    }

    pub fn decode_errors(&self) -> u64 {
        self.pipeline.decode_errors
    }
}

/// Writes items as lines; false once stdout is gone (e.g. `| head`).
struct Printer {
    json: bool,
    color: bool,
    clock: Clock,
    out: std::io::BufWriter<std::io::Stdout>,
    /// Reused for every line.
    line: String,
}

impl Printer {
    fn print(&mut self, items: &[Item]) -> bool {
        for item in items {
            self.line.clear();
            match (item, self.json) {
                (Item::Record(r, owner), true) => {
                    let _ = write!(
                        self.line,
                        "{}",
                        output::record_json(&self.clock, r, owner.as_ref())
                    );
                }
                (Item::Record(r, owner), false) => output::write_record_line(
                    &mut self.line,
                    &self.clock,
                    r,
                    owner.as_ref(),
                    self.color,
                ),
                (Item::Lost { ts_ns, count }, true) => {
                    let _ = write!(
                        self.line,
                        "{}",
                        output::lost_json(&self.clock, *ts_ns, *count)
                    );
                }
                (Item::Lost { ts_ns, count }, false) => {
                    self.line
                        .push_str(&output::lost_line(&self.clock, *ts_ns, *count));
                }
            }
            self.line.push('\n');
            if self.out.write_all(self.line.as_bytes()).is_err() {
                return false;
            }
        }
        self.out.flush().is_ok()
    }
}

fn validate(args: &WatchArgs) -> anyhow::Result<()> {
    args.conns.checked_pid()?;
    if let Some(bytes) = args.ring_bytes
        && (bytes < 4096 || !bytes.is_power_of_two())
    {
        return Err(usage(
            "--ring-bytes must be a power of two of at least 4096",
        ));
    }
    Ok(())
}

/// What a session loads, which events it shows, and for how long.
pub struct Session {
    pub load: LoadOptions,
    pub filter: ConnFilter,
    pub pid: Option<u32>,
    pub json: bool,
    pub duration: Option<Duration>,
    /// Said on stderr once everything is attached.
    pub banner: String,
}

pub fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    validate(&args)?;
    let mut load = LoadOptions {
        cgroup: args.cgroup.clone(),
        ring_bytes: args.ring_bytes,
        ..LoadOptions::default()
    };
    let mut banner = String::new();
    let values_given = args.values.idle.is_some()
        || args.values.interval.is_some()
        || args.values.count.is_some()
        || args.values.user_timeout.is_some()
        || args.values.off;
    if args.apply {
        if args.conns.ports.len() > 1 || args.conns.dst.len() > 1 {
            return Err(usage("--apply takes at most one --port and one --dst"));
        }
        let values = args.values.values()?;
        load.policy = values.to_policy(
            args.conns.ports.first().copied(),
            args.conns.dst.first().copied(),
        );
        banner = format!("; applying {} to new connections", values.describe());
    } else if values_given {
        return Err(usage(
            "keepalive values need --apply (or use `keepalive set`)",
        ));
    }
    let session = Session {
        load,
        filter: args.conns.filter(),
        pid: args.conns.pid,
        json: args.json,
        duration: args.duration,
        banner,
    };
    run_session(session)
}

pub fn run_session(session: Session) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(session_loop(session))
}

async fn session_loop(session: Session) -> anyhow::Result<ExitCode> {
    use tokio::signal::unix::{SignalKind, signal};

    let mut watcher = Watcher::start(&session.load, session.filter, session.pid)?;
    announce(watcher.observer(), &session.banner);

    let mut printer = Printer {
        json: session.json,
        color: !session.json && std::io::IsTerminal::is_terminal(&std::io::stdout()),
        clock: Clock::now(),
        out: std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout()),
        line: String::with_capacity(256),
    };
    let started = Instant::now();
    let deadline = session.duration.map(|d| tokio::time::Instant::now() + d);
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut lost_tick = tokio::time::interval(Duration::from_secs(1));
    let mut stdout_open = true;
    loop {
        let sleep_until =
            deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86400));
        tokio::select! {
            items = watcher.next_items() => {
                stdout_open = printer.print(&items?);
            }
            _ = lost_tick.tick() => {
                let mut items = watcher.expire();
                items.extend(watcher.poll_lost()?);
                stdout_open = printer.print(&items);
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = tokio::time::sleep_until(sleep_until) => break,
        }
        if !stdout_open {
            break;
        }
    }
    let mut tail = watcher.drain_now();
    tail.extend(watcher.poll_lost()?);
    if stdout_open {
        printer.print(&tail);
        let elapsed = started.elapsed().as_secs_f64();
        if session.json {
            let _ = writeln!(
                printer.out,
                "{}",
                output::summary_json(watcher.summary(), elapsed)
            );
        } else {
            let _ = write!(
                printer.out,
                "{}",
                output::summary_text(watcher.summary(), elapsed)
            );
        }
        let _ = printer.out.flush();
    }
    if watcher.decode_errors() > 0 {
        eprintln!(
            "keepalive: {} kernel events could not be decoded",
            watcher.decode_errors()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Says on stderr what is attached and what this kernel cannot show.
fn announce(observer: &Observer, banner: &str) {
    for missing in observer.missing_optional() {
        eprintln!(
            "keepalive: warning: {} unavailable ({}): {}",
            missing.hook, missing.detail, missing.without_it
        );
    }
    for note in &observer.degraded {
        eprintln!("keepalive: warning: {note}");
    }
    let attached: Vec<&str> = observer
        .status
        .iter()
        .filter(|s| s.ok)
        .map(|s| s.hook.as_str())
        .collect();
    eprintln!(
        "keepalive: watching TCP keepalive below cgroup {} ({}){banner}; Ctrl-C to stop",
        observer.cgroup_path.display(),
        attached.join(", ")
    );
}
