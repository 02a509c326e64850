//! `keepalive watch` as a user runs it (text lines on stdout), with a reader
//! that counts the lines and measures, for each, how long after the kernel
//! event (the time at the start of the line) it arrived.

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail};

use super::sys::{Killed, cpu_seconds, peak_rss_bytes};

/// What the reader has seen so far.
#[derive(Default)]
struct Seen {
    events: AtomicU64,
    probes: AtomicU64,
    measuring: AtomicBool,
    latency_us: Mutex<Vec<u64>>,
    summary: Mutex<String>,
}

pub struct Watch {
    process: Killed,
    seen: Arc<Seen>,
    reader: Option<JoinHandle<()>>,
}

/// Counters at one moment, to subtract.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    at: Instant,
    events: u64,
    probes: u64,
    cpu_s: f64,
}

/// One measured window of a running watch.
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub seconds: f64,
    pub events: u64,
    pub probes: u64,
    pub cpu_s: f64,
    pub latency_us: Vec<u64>,
}

impl Window {
    pub fn events_per_s(&self) -> f64 {
        self.events as f64 / self.seconds
    }

    pub fn core_percent(&self) -> f64 {
        100.0 * self.cpu_s / self.seconds
    }
}

/// The end of a session: what watch itself reported.
#[derive(Debug, Clone, Default)]
pub struct Ended {
    pub lost: u64,
    pub peak_rss_bytes: u64,
}

impl Watch {
    /// Starts `keepalive watch ARGS` and waits until it says it is attached.
    pub fn start(keepalive: &Path, args: &[&str]) -> anyhow::Result<Self> {
        let mut cmd = Command::new(keepalive);
        cmd.arg("watch")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut process = Killed::spawn(&mut cmd)?;
        let stderr = process.child.stderr.take().context("watch stderr")?;
        let mut stderr = BufReader::new(stderr);
        let mut line = String::new();
        loop {
            line.clear();
            if stderr.read_line(&mut line)? == 0 {
                bail!("keepalive watch exited before attaching");
            }
            if line.contains("keepalive: watching") {
                break;
            }
            if line.contains("error") {
                bail!("keepalive watch: {}", line.trim());
            }
        }
        // Keep draining stderr so that warnings can never block watch.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while stderr.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        let stdout = process.child.stdout.take().context("watch stdout")?;
        let seen = Arc::new(Seen::default());
        let reader = {
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || read_lines(BufReader::with_capacity(1 << 20, stdout), &seen))
        };
        Ok(Self {
            process,
            seen,
            reader: Some(reader),
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Starts a measured window.
    pub fn mark(&self) -> anyhow::Result<Mark> {
        self.seen.latency_us.lock().expect("lock").clear();
        self.seen.measuring.store(true, Ordering::Relaxed);
        Ok(Mark {
            at: Instant::now(),
            events: self.seen.events.load(Ordering::Relaxed),
            probes: self.seen.probes.load(Ordering::Relaxed),
            cpu_s: cpu_seconds(self.pid())?,
        })
    }

    /// Ends the window started at `mark`.
    pub fn window_since(&self, mark: Mark) -> anyhow::Result<Window> {
        let cpu_s = cpu_seconds(self.pid())?;
        self.seen.measuring.store(false, Ordering::Relaxed);
        Ok(Window {
            seconds: mark.at.elapsed().as_secs_f64(),
            events: self.seen.events.load(Ordering::Relaxed) - mark.events,
            probes: self.seen.probes.load(Ordering::Relaxed) - mark.probes,
            cpu_s: cpu_s - mark.cpu_s,
            latency_us: std::mem::take(&mut *self.seen.latency_us.lock().expect("lock")),
        })
    }

    /// Ctrl-C, then the summary watch prints on its way out.
    pub fn stop(mut self) -> anyhow::Result<Ended> {
        let peak_rss_bytes = peak_rss_bytes(self.pid())?;
        self.process.interrupt(Duration::from_secs(10))?;
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let summary = self.seen.summary.lock().expect("lock").clone();
        // The summary's count includes every LOST line printed before it.
        let lost = summary_lost(&summary).context("keepalive watch printed no summary")?;
        Ok(Ended {
            lost,
            peak_rss_bytes,
        })
    }
}

/// Reads watch's stdout in large chunks with one reused buffer, so that the
/// benchmark's own reading never becomes the slow consumer that makes watch
/// block on a full pipe.
fn read_lines(mut stdout: BufReader<std::process::ChildStdout>, seen: &Seen) {
    let mut line = Vec::with_capacity(256);
    let mut latencies = Vec::with_capacity(4096);
    let mut in_summary = false;
    loop {
        line.clear();
        match stdout.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        if text.starts_with("--- keepalive watch") {
            in_summary = true;
        }
        if in_summary {
            seen.summary.lock().expect("lock").push_str(&text);
            continue;
        }
        let Some((time, rest)) = text.split_once(' ') else {
            continue;
        };
        let Some(event_s) = seconds_of_day(time) else {
            continue;
        };
        let kind = rest.split_whitespace().next().unwrap_or("");
        if kind == "LOST" {
            continue;
        }
        seen.events.fetch_add(1, Ordering::Relaxed);
        if kind == "probe" {
            seen.probes.fetch_add(1, Ordering::Relaxed);
        }
        if seen.measuring.load(Ordering::Relaxed) {
            let latency_s = (now_seconds_of_day() - event_s).rem_euclid(86_400.0);
            latencies.push((latency_s * 1e6) as u64);
        }
        // Publish now and then, and whenever the pipe has nothing more yet.
        if latencies.len() >= 4096 || (!latencies.is_empty() && stdout.buffer().is_empty()) {
            seen.latency_us.lock().expect("lock").append(&mut latencies);
        }
    }
}

/// `HH:MM:SS.ffffff` (watch's UTC time of day) → seconds since midnight.
pub fn seconds_of_day(time: &str) -> Option<f64> {
    let mut parts = time.splitn(3, ':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    (time.len() == 15).then_some(h * 3600.0 + m * 60.0 + s)
}

fn now_seconds_of_day() -> f64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    now.rem_euclid(86_400.0)
}

/// `events lost      N` from watch's summary.
pub fn summary_lost(summary: &str) -> Option<u64> {
    summary
        .lines()
        .find_map(|l| l.strip_prefix("events lost"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_of_day_parses_watch_timestamps() {
        assert_eq!(seconds_of_day("01:02:03.500000"), Some(3723.5));
        assert_eq!(seconds_of_day("probe"), None);
        assert_eq!(seconds_of_day("1:2:3"), None);
    }

    #[test]
    fn lost_count_comes_from_the_summary() {
        let summary = "--- keepalive watch: 8.7 s ---\nconnections seen  2\nevents lost       17\n";
        assert_eq!(summary_lost(summary), Some(17));
        assert_eq!(summary_lost("nothing"), None);
    }
}
