//! A session: start the watcher, print what it shows until Ctrl-C, SIGTERM
//! or `--duration`, then the summary (and, for `watch --report`, the HTML
//! report). `watch` and `set --new` run one.

use std::{
    fmt::Write as _,
    io::Write as _,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use crate::{
    kernel::{LoadOptions, Observer},
    model::filter::ConnFilter,
    observe::{pipeline::Observation, watcher::Watcher},
    render::{clock::Clock, json, text},
    report::{
        self, Layout, Meta,
        input::{ConnEvent, Input},
        layout::DEFAULT_LANES,
    },
};

/// What a session loads, which events it shows, and for how long.
pub struct Session {
    pub load: LoadOptions,
    pub filter: ConnFilter,
    pub pid: Option<u32>,
    pub json: bool,
    pub duration: Option<Duration>,
    /// The command, as the start line and the summary name it
    /// (`watch`, `set --new`).
    pub command: &'static str,
    /// Which namespaces it shows, in words.
    pub scope: String,
    /// Show connects that never reached ESTABLISHED (`watch --all`).
    pub connect_failures: bool,
    /// Said on stderr once everything is attached.
    pub banner: String,
}

pub fn run_session(session: Session) -> anyhow::Result<ExitCode> {
    run_session_reporting(session, None)
}

/// A session that also writes the HTML report to `report_to` when it ends
/// (Ctrl-C, SIGTERM, `--duration`, stdout gone).
pub fn run_session_reporting(
    session: Session,
    report_to: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(session_loop(session, report_to))
}

async fn session_loop(session: Session, report_to: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    use tokio::signal::unix::{SignalKind, signal};

    let mut watcher = Watcher::start_with(
        &session.load,
        session.filter.clone(),
        session.pid,
        session.connect_failures,
    )?;
    announce(watcher.observer(), &session);

    let mut printer = Printer {
        json: session.json,
        color: !session.json && std::io::IsTerminal::is_terminal(&std::io::stdout()),
        clock: Clock::now(),
        out: std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout()),
        line: String::with_capacity(256),
        report: report_to.as_ref().map(|_| Layout::new(DEFAULT_LANES)),
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
            observations = watcher.next_observations() => {
                stdout_open = printer.print(&observations?);
            }
            _ = lost_tick.tick() => {
                let mut observations = watcher.expire();
                observations.extend(watcher.poll_lost()?);
                stdout_open = printer.print(&observations);
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
    printer.feed_report(&tail);
    if stdout_open {
        printer.print_lines(&tail);
        let elapsed = started.elapsed().as_secs_f64();
        if session.json {
            let _ = writeln!(
                printer.out,
                "{}",
                json::summary_json(watcher.summary(), elapsed)
            );
        } else {
            let _ = write!(
                printer.out,
                "{}",
                text::summary_text(watcher.summary(), session.command, elapsed)
            );
        }
        let _ = printer.out.flush();
    }
    if let (Some(path), Some(mut layout)) = (&report_to, printer.report.take()) {
        let summary = json::summary_json(watcher.summary(), started.elapsed().as_secs_f64());
        layout.push(Input::Summary(summary));
        let meta = Meta {
            source: format!("keepalive {}", session.command),
            lines: None,
            lanes_asked: DEFAULT_LANES,
        };
        report::write_page(path, &report::render(layout, &meta))?;
        eprintln!("keepalive: report written to {}", path.display());
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
fn announce(observer: &Observer, session: &Session) {
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
    // The cgroup v2 root may be a private mount (under `ip netns exec`):
    // its path would read like an empty new cgroup, so say what it means.
    let cgroups = match &session.load.cgroup {
        Some(path) => format!("below cgroup {}", path.display()),
        None => "in every cgroup".to_string(),
    };
    eprintln!(
        "keepalive: watching TCP keepalive in {}, {cgroups} ({}){}; Ctrl-C to stop",
        session.scope,
        attached.join(", "),
        session.banner
    );
}

/// Writes observations as lines; false once stdout is gone (e.g. `| head`).
struct Printer {
    json: bool,
    color: bool,
    clock: Clock,
    out: std::io::BufWriter<std::io::Stdout>,
    /// Reused for every line.
    line: String,
    /// `watch --report`: everything shown is also laid out for the page.
    report: Option<Layout>,
}

impl Printer {
    fn print(&mut self, observations: &[Observation]) -> bool {
        self.feed_report(observations);
        self.print_lines(observations)
    }

    fn feed_report(&mut self, observations: &[Observation]) {
        let Some(layout) = &mut self.report else {
            return;
        };
        for observation in observations {
            match observation {
                Observation::Record(r, owner) => {
                    if let Some(event) = ConnEvent::from_record(&self.clock, r, owner) {
                        layout.push_conn(&event);
                    }
                }
                Observation::Lost { ts_ns, count } => layout.push(Input::Lost {
                    ts_us: (self.clock.wall(*ts_ns).unix_timestamp_nanos() / 1000) as i64,
                    count: *count,
                }),
            }
        }
    }

    fn print_lines(&mut self, observations: &[Observation]) -> bool {
        for observation in observations {
            self.line.clear();
            match (observation, self.json) {
                (Observation::Record(r, owner), true) => {
                    let _ = write!(self.line, "{}", json::record_json(&self.clock, r, owner));
                }
                (Observation::Record(r, owner), false) => {
                    text::write_record_line(&mut self.line, &self.clock, r, owner, self.color)
                }
                (Observation::Lost { ts_ns, count }, true) => {
                    let _ = write!(
                        self.line,
                        "{}",
                        json::lost_json(&self.clock, *ts_ns, *count)
                    );
                }
                (Observation::Lost { ts_ns, count }, false) => {
                    self.line
                        .push_str(&text::lost_line(&self.clock, *ts_ns, *count));
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
