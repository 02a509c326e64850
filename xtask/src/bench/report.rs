//! BENCHMARKS.md: the machine, the command, and one table per measurement,
//! each with its target. Everything below the `HAND_WRITTEN` marker (the
//! history of changes and their effect) is kept when the file is rewritten.

use std::{collections::BTreeMap, fmt::Write as _, fs, path::Path};

use anyhow::Context as _;

use super::{Results, bpf::RunStats};
use crate::util::output;

pub const HAND_WRITTEN: &str =
    "<!-- Everything below is hand-written and kept by `cargo xtask bench`. -->";

pub struct Machine {
    pub kernel: String,
    pub cpu: String,
    pub cores: usize,
    pub date: String,
    pub keepalive: String,
}

impl Machine {
    pub fn read() -> anyhow::Result<Self> {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").context("reading /proc/cpuinfo")?;
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown", |(_, name)| name.trim())
            .to_owned();
        let git = |args: &[&str]| {
            output(crate::util::command("git").args(args))
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let commit = git(&["rev-parse", "--short", "HEAD"]);
        let dirty = if git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
            ""
        } else {
            " with uncommitted changes"
        };
        Ok(Self {
            kernel: output(std::process::Command::new("uname").arg("-r"))?
                .trim()
                .to_owned(),
            cpu,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            date: output(std::process::Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))?
                .trim()
                .to_owned(),
            keepalive: format!("{commit}{dirty}"),
        })
    }
}

/// Nearest-rank percentile.
pub fn percentile(samples: &[u64], p: f64) -> Option<u64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

const EMPTY_PREFIX: &str = "bench_empty_";

fn mark(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

pub fn render(results: &Results) -> String {
    let mut md = String::new();
    let m = &results.machine;
    let a = &results.args;
    let conns = a
        .conns
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let _ = writeln!(
        md,
        "# Benchmarks\n\n\
         Written by `cargo xtask bench` (this run: `cargo xtask bench --conns {conns} --window {} --pairs {} --iperf-seconds {}`). \
         Targets are from issue 6; nothing here is asserted by `cargo xtask test`.\n\n\
         | | |\n|---|---|\n\
         | date | {} |\n| kernel | {} |\n| CPU | {} ({} cores) |\n| keepalive | {} (release build) |\n",
        a.window, a.pairs, a.iperf_seconds, m.date, m.kernel, m.cpu, m.cores, m.keepalive
    );
    render_cost(&mut md, results);
    render_throughput(&mut md, results);
    render_capacity(&mut md, results);
    render_latency(&mut md, results);
    render_tools(&mut md, results);
    md
}

fn render_cost(md: &mut String, results: &Results) {
    let _ = writeln!(
        md,
        "## 1. Per-packet cost\n\n\
         The kernel's own accounting (`BPF_ENABLE_STATS`: run_time_ns / run_cnt per program) \
         over one window per workload, with an empty cgroup_skb program (`r0 = 1; exit`) \
         attached at the same cgroup in the same run as the floor: the accounting itself \
         costs tens of ns per run. Target: each of ours ≤ 1.3× the empty program on bulk traffic.\n"
    );
    let _ = writeln!(
        md,
        "| workload | program | runs | ns/run | × empty (same direction) | target |\n|---|---|---:|---:|---:|---|"
    );
    for (workload, stats) in &results.cost {
        let floor = |direction: &str| {
            stats
                .get(&format!("{EMPTY_PREFIX}{direction}"))
                .and_then(|s| s.ns_per_run())
        };
        for (name, s) in stats {
            let Some(ns) = s.ns_per_run() else { continue };
            // Kernel names are cut at 15 bytes: keepalive_probe(_egress),
            // keepalive_answe(r_ingress).
            let direction = if name.contains("probe") || name.ends_with("_eg") {
                Some("eg")
            } else if name.contains("answe") || name.ends_with("_in") {
                Some("in")
            } else {
                None
            };
            let ratio = direction.and_then(floor).map(|f| ns / f);
            let target = match (
                ratio,
                name.starts_with(EMPTY_PREFIX),
                workload.starts_with("bulk"),
            ) {
                (_, true, _) => "floor".to_owned(),
                (Some(r), false, true) => mark(r <= 1.3).to_owned(),
                _ => String::new(),
            };
            let _ = writeln!(
                md,
                "| {workload} | `{name}` | {} | {ns:.1} | {} | {target} |",
                s.run_cnt,
                ratio.map_or("".to_owned(), |r| format!("{r:.2}")),
            );
        }
    }
    md.push('\n');
}

fn render_throughput(md: &mut String, results: &Results) {
    let mut ratios: Vec<f64> = results.throughput.iter().map(|(wo, w)| w / wo).collect();
    let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ratios.iter().copied().fold(0.0, f64::max);
    let med = median(&mut ratios);
    let _ = writeln!(
        md,
        "## 2. Throughput overhead\n\n\
         iperf3 (Debian's) over the namespace's loopback, {} s per run, without and with \
         `keepalive watch` (no filter: every packet of the host passes its programs), \
         alternating which goes first. Target: ratio ≥ 0.97.\n\n\
         | pair | without watch | with watch | ratio |\n|---:|---:|---:|---:|",
        results.args.iperf_seconds
    );
    for (i, (without, with)) in results.throughput.iter().enumerate() {
        let _ = writeln!(
            md,
            "| {} | {:.2} Gbit/s | {:.2} Gbit/s | {:.3} |",
            i + 1,
            without / 1e9,
            with / 1e9,
            with / without
        );
    }
    let _ = writeln!(
        md,
        "\nRatio min {min:.3}, median {med:.3}, max {max:.3}: target {}.\n",
        mark(med >= 0.97)
    );
}

fn render_capacity(md: &mut String, results: &Results) {
    let _ = writeln!(
        md,
        "## 3. Capacity\n\n\
         N idle connections inside a network namespace, client side keepalive 1 s / 1 s \
         (so N probes and N answers a second), held by `cargo xtask bench-hold` processes \
         of at most 9 000 connections each (the open-file limit is 20 000 here). \
         `keepalive watch` runs with no filter, printing text lines to a pipe that the \
         benchmark reads, over a {} s window after 3 s of warm-up. \"Kernel probes\" is the \
         namespace's `TcpExt TCPKeepAlive` over the same window. Target at 50 000: \
         0 lost, < 30 % of one core, peak RSS < 100 MiB.\n\n\
         | connections | events/s | probes shown / kernel probes | events lost | CPU (% of one core) | peak RSS | backlog drops | target |\n\
         |---:|---:|---:|---:|---:|---:|---:|---|",
        results.args.window
    );
    for c in &results.capacity {
        let rss_mib = c.ended.peak_rss_bytes as f64 / f64::from(1 << 20);
        let target = if c.conns == 50_000 {
            mark(c.ended.lost == 0 && c.window.core_percent() < 30.0 && rss_mib < 100.0)
        } else {
            ""
        };
        let _ = writeln!(
            md,
            "| {} | {:.0} | {} / {} | {} | {:.1} % | {rss_mib:.1} MiB | {} | {target} |",
            c.conns,
            c.window.events_per_s(),
            c.window.probes,
            c.kernel_probes,
            c.ended.lost,
            c.window.core_percent(),
            c.softnet_dropped,
        );
    }
    let _ = writeln!(
        md,
        "\nnet.core.netdev_max_backlog is raised to 10 000 for these runs (and put back): \
         at the default 1 000, loopback drops some of the 100 000 packets a second at \
         50 000 connections, which shows up as unanswered probes, not as lost events.\n"
    );
}

fn render_latency(md: &mut String, results: &Results) {
    let _ = writeln!(
        md,
        "## 4. Latency\n\n\
         From the kernel's timestamp of each event (the time printed at the start of its \
         line) to the moment the benchmark reads that line from watch's stdout, over the \
         capacity windows. Target: p99 < 10 ms.\n\n\
         | connections | lines | p50 | p99 | max | target |\n|---:|---:|---:|---:|---:|---|"
    );
    for c in &results.capacity {
        let l = &c.window.latency_us;
        let fmt =
            |p: Option<u64>| p.map_or("-".to_owned(), |us| format!("{:.2} ms", us as f64 / 1000.0));
        let p99 = percentile(l, 99.0);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            c.conns,
            l.len(),
            fmt(percentile(l, 50.0)),
            fmt(p99),
            fmt(l.iter().max().copied()),
            mark(p99.is_some_and(|us| us < 10_000)),
        );
    }
    md.push('\n');
}

fn render_tools(md: &mut String, results: &Results) {
    let _ = writeln!(
        md,
        "## 5. Against today's tools\n\n\
         On the same connections, one after the other: `keepalive watch` (from section 3), \
         `ss -tio` run once a second with its output read, and \
         `tcpdump -i lo -n -l -S '{}'` printing to a pipe. CPU is seconds of CPU per \
         minute of watching.\n\n\
         | connections | keepalive watch | ss -tio every 1 s | tcpdump (pure ACKs) | tcpdump says |\n|---:|---:|---:|---:|---|",
        super::tools::PURE_ACK_FILTER
    );
    for c in &results.capacity {
        let _ = writeln!(
            md,
            "| {} | {:.2} s/min ({} lines) | {:.2} s/min ({} lines) | {:.2} s/min ({} lines) | {} |",
            c.conns,
            60.0 * c.window.cpu_s / c.window.seconds,
            c.window.events,
            c.ss.cpu_s_per_minute(),
            c.ss.lines,
            c.tcpdump.cpu_s_per_minute(),
            c.tcpdump.lines,
            c.tcpdump.note,
        );
    }
    let _ = writeln!(
        md,
        "\n| can it tell | keepalive watch | ss -tio polled 1/s | tcpdump, pure ACKs |\n|---|---|---|---|\n\
         | a keepalive probe from an ordinary ACK | yes (seq = snd_una − 1, checked in the kernel) | no packets; `timer:(keepalive,…)` says a probe is due | only by hand: the probe's seq is one below the previous ACK's (needs -S and state) |\n\
         | when each probe left | yes, kernel timestamp | no (a countdown, to 1 s) | yes (packet time) |\n\
         | whether and how fast the peer answered | yes, per probe, with RTT | no; the probe count (`timer:(keepalive,…,N)`) rises when unanswered | only by pairing packets by hand |\n\
         | unanswered probes, and the timeout | yes: each unanswered probe, then the kill with its reason (keepalive, user timeout) and time to detect | the probe count, while the socket lives; gone once killed | the RST, without why |\n\
         | the keepalive settings in force | yes, per connection | no (only that a timer runs) | no |\n\
         | which process | yes (pid, comm) | with -p | no |\n\
         | misses events | counts every one it could not take (\"events lost\") | everything between polls | drops under load (its own count above) |\n"
    );
}

pub fn write(path: &Path, results: &Results) -> anyhow::Result<()> {
    let mut text = render(results);
    let kept = fs::read_to_string(path)
        .ok()
        .and_then(|old| {
            old.split_once(HAND_WRITTEN)
                .map(|(_, rest)| rest.to_owned())
        })
        .unwrap_or_else(|| "\n\n## Changes and their effect\n\n(none recorded yet)\n".to_owned());
    text.push_str(HAND_WRITTEN);
    text.push_str(&kept);
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Per-program ns/run, for logging a workload in one line.
pub fn one_line(stats: &BTreeMap<String, RunStats>) -> String {
    stats
        .iter()
        .filter_map(|(n, s)| Some(format!("{n} {:.0} ns", s.ns_per_run()?)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_and_median() {
        assert_eq!(percentile(&[5, 1, 4, 2, 3], 50.0), Some(3));
        assert_eq!(percentile(&[5, 1, 4, 2, 3], 99.0), Some(5));
        assert_eq!(percentile(&[], 99.0), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
