//! `cargo xtask bench`: overhead and capacity of `keepalive watch`, side by
//! side with an empty eBPF program, with no observer, and with the tools
//! people use today; writes BENCHMARKS.md.
//!
//! Everything runs in a private network namespace on its loopback; the
//! observer attaches at the cgroup v2 root as a user's would. Figures are
//! measured side by side in one run because these machines are shared.

mod bpf;
mod hold;
mod report;
mod sys;
mod tools;
mod watch;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    time::Duration,
};

use anyhow::{Context as _, bail};

pub use hold::{HoldArgs, hold};

use crate::{
    build, setup,
    util::{as_root, is_root, step, workspace_root},
};
use bpf::{EmptyPrograms, RunStats};
use hold::Holders;
use sys::{NetNs, Sysctl};
use watch::Watch;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Idle connection counts for the capacity runs.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,50000")]
    conns: Vec<usize>,
    /// Length of each measured window, in seconds.
    #[arg(long, default_value_t = 20)]
    window: u64,
    /// Pairs of iperf3 runs (without, with watch) for the throughput ratio.
    #[arg(long, default_value_t = 10)]
    pairs: usize,
    /// Seconds per iperf3 run.
    #[arg(long, default_value_t = 3)]
    iperf_seconds: u32,
    /// Where to write the report (default: BENCHMARKS.md at the workspace root).
    #[arg(long)]
    output: Option<PathBuf>,
}

pub fn say(message: impl std::fmt::Display) {
    step(format!("bench: {message}"));
}

pub fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    setup::run()?;
    let keepalive = build::keepalive(true)?;
    if !is_root() {
        let exe = std::env::current_exe().context("finding the xtask executable")?;
        let mut cmd = Command::new(exe);
        cmd.arg("bench").args(std::env::args_os().skip(2));
        let status = as_root(cmd, "the benchmarks")?.status()?;
        return Ok(crate::util::exit_code(status));
    }
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| workspace_root().join("BENCHMARKS.md"));
    let results = measure(args, &keepalive)?;
    report::write(&output, &results)?;
    say(format!("wrote {}", output.display()));
    Ok(ExitCode::SUCCESS)
}

/// Everything one run measured.
pub struct Results {
    pub machine: report::Machine,
    pub args: BenchArgs,
    /// Per workload: program name → run stats over the window.
    pub cost: Vec<(String, BTreeMap<String, RunStats>)>,
    /// (bits/s without watch, bits/s with watch) per pair.
    pub throughput: Vec<(f64, f64)>,
    pub capacity: Vec<Capacity>,
}

pub struct Capacity {
    pub conns: usize,
    pub window: watch::Window,
    /// Probes the kernel sent in the window (TcpExt TCPKeepAlive).
    pub kernel_probes: u64,
    pub ended: watch::Ended,
    /// Packets the host's backlog queues dropped in the window.
    pub softnet_dropped: u64,
    pub ss: tools::ToolRun,
    pub tcpdump: tools::ToolRun,
}

fn measure(args: &BenchArgs, keepalive: &Path) -> anyhow::Result<Results> {
    if args.window == 0 || args.pairs == 0 || args.iperf_seconds == 0 {
        bail!("--window, --pairs and --iperf-seconds must be at least 1");
    }
    let machine = report::Machine::read()?;
    sys::undo::on_signal();
    let _stats = bpf::enable_stats()?;
    let cgroup = bpf::cgroup2_root()?;
    let ns = NetNs::create(&format!("ka-bench-{}", std::process::id()))?;
    let _iperf = tools::IperfServer::start(&ns)?;

    let mut cost = Vec::new();
    say("1/3 per-packet cost on a loopback bulk transfer (watch beside an empty program)");
    cost.push((
        format!("bulk TCP (iperf3, {} s)", args.iperf_seconds),
        bulk_cost(&ns, &cgroup, keepalive, args.iperf_seconds)?,
    ));

    say(format!(
        "2/3 throughput: {} pairs of {} s iperf3 runs without and with watch",
        args.pairs, args.iperf_seconds
    ));
    let throughput = throughput_pairs(&ns, keepalive, args)?;

    // Loopback packets wait in a per-CPU backlog of netdev_max_backlog
    // (1000) packets; 50 000 connections probing every second overflow it,
    // and the drops turn answered probes into unanswered ones.
    let _backlog = Sysctl::set("net.core.netdev_max_backlog", "10000")?;
    let empty = EmptyPrograms::attach(&cgroup)?;
    let mut capacity = Vec::new();
    for &conns in &args.conns {
        say(format!(
            "3/3 capacity: {conns} idle connections with keepalive 1 s / 1 s"
        ));
        let (run, stats) = capacity_run(&ns, keepalive, &empty, conns, args.window)?;
        cost.push((format!("{conns} connections probing each second"), stats));
        capacity.push(run);
    }
    Ok(Results {
        machine,
        args: args.clone(),
        cost,
        throughput,
        capacity,
    })
}

/// Stats of watch's programs and of the empty pair over one iperf3 run.
fn bulk_cost(
    ns: &NetNs,
    cgroup: &Path,
    keepalive: &Path,
    seconds: u32,
) -> anyhow::Result<BTreeMap<String, RunStats>> {
    let empty = EmptyPrograms::attach(cgroup)?;
    let watch = Watch::start(keepalive, &[])?;
    let ids = [bpf::program_ids_of(watch.pid()), empty.program_ids()].concat();
    let before = bpf::snapshot(&ids);
    let bits = tools::iperf_bits_per_s(ns, seconds)?;
    let after = bpf::snapshot(&ids);
    watch.stop()?;
    let stats = difference(&before, &after);
    say(format!(
        "bulk: {:.1} Gbit/s; {}",
        bits / 1e9,
        report::one_line(&stats)
    ));
    Ok(stats)
}

fn difference(
    before: &BTreeMap<String, RunStats>,
    after: &BTreeMap<String, RunStats>,
) -> BTreeMap<String, RunStats> {
    after
        .iter()
        .map(|(name, a)| {
            let b = before.get(name).copied().unwrap_or_default();
            (name.clone(), a.since(b))
        })
        .collect()
}

/// Alternates the order within each pair so that drift in the machine's
/// speed does not favour one side.
fn throughput_pairs(
    ns: &NetNs,
    keepalive: &Path,
    args: &BenchArgs,
) -> anyhow::Result<Vec<(f64, f64)>> {
    let mut pairs = Vec::new();
    for pair in 0..args.pairs {
        let mut without = 0.0;
        let mut with = 0.0;
        for watched in if pair % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        } {
            if watched {
                let watch = Watch::start(keepalive, &[])?;
                with = tools::iperf_bits_per_s(ns, args.iperf_seconds)?;
                watch.stop()?;
            } else {
                without = tools::iperf_bits_per_s(ns, args.iperf_seconds)?;
            }
        }
        say(format!(
            "pair {}: without {:.2} Gbit/s, with {:.2} Gbit/s, ratio {:.3}",
            pair + 1,
            without / 1e9,
            with / 1e9,
            with / without
        ));
        pairs.push((without, with));
    }
    Ok(pairs)
}

fn capacity_run(
    ns: &NetNs,
    keepalive: &Path,
    empty: &EmptyPrograms,
    conns: usize,
    window_s: u64,
) -> anyhow::Result<(Capacity, BTreeMap<String, RunStats>)> {
    let holders = Holders::start(ns, conns)?;
    let watch = Watch::start(keepalive, &[])?;
    // Let every connection reach its steady one-probe-a-second rhythm and
    // watch learn their owners before measuring.
    std::thread::sleep(Duration::from_secs(3));
    let ids = [bpf::program_ids_of(watch.pid()), empty.program_ids()].concat();
    let stats_before = bpf::snapshot(&ids);
    let probes_before = ns.netstat("TcpExt", "TCPKeepAlive")?;
    let dropped_before = sys::softnet_dropped();
    let mark = watch.mark()?;
    std::thread::sleep(Duration::from_secs(window_s));
    let window = watch.window_since(mark)?;
    let kernel_probes = ns.netstat("TcpExt", "TCPKeepAlive")? - probes_before;
    let softnet_dropped = sys::softnet_dropped() - dropped_before;
    let stats = difference(&stats_before, &bpf::snapshot(&ids));
    let ended = watch.stop()?;
    say(format!(
        "{conns}: {:.0} events/s, {} lost, {:.1} % of a core, peak RSS {:.1} MiB, latency p99 {} us",
        window.events_per_s(),
        ended.lost,
        window.core_percent(),
        ended.peak_rss_bytes as f64 / (1 << 20) as f64,
        report::percentile(&window.latency_us, 99.0).unwrap_or(0),
    ));
    let half = window.latency_us.len() / 2;
    say(format!(
        "{conns}: latency p10 {} p50 {} p90 {} us; first half of the window p99 {} us, second half p99 {} us",
        report::percentile(&window.latency_us, 10.0).unwrap_or(0),
        report::percentile(&window.latency_us, 50.0).unwrap_or(0),
        report::percentile(&window.latency_us, 90.0).unwrap_or(0),
        report::percentile(&window.latency_us[..half], 99.0).unwrap_or(0),
        report::percentile(&window.latency_us[half..], 99.0).unwrap_or(0),
    ));
    say(format!("{conns}: {}", report::one_line(&stats)));
    say(format!("{conns}: ss -tio once a second"));
    let ss = tools::poll_ss(ns, window_s)?;
    say(format!("{conns}: tcpdump printing pure ACKs"));
    let tcpdump = tools::capture_tcpdump(ns, window_s)?;
    holders.stop();
    Ok((
        Capacity {
            conns,
            window,
            kernel_probes,
            ended,
            softnet_dropped,
            ss,
            tcpdump,
        },
        stats,
    ))
}
