//! `keepalive doctor`: this kernel, hook by hook — what works, what is
//! missing, and what the user loses without it. Everything is checked for
//! real: programs are loaded and attached, and a loopback connection with a
//! one-second keepalive must show its probe and answer on the ring buffer.

use std::{
    net::{TcpListener, TcpStream},
    process::ExitCode,
    time::{Duration, Instant},
};

use serde::Serialize;
use serde_json::json;

use crate::{
    events::{self, What},
    kernel::{HookStatus, LoadOptions, Observer, btf_offsets, cgroup, loader, privilege, tracefs},
};

#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Serialize)]
struct Check {
    check: String,
    ok: bool,
    required: bool,
    detail: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    without_it: String,
}

impl Check {
    fn new(
        check: &str,
        ok: bool,
        required: bool,
        detail: impl Into<String>,
        without_it: &str,
    ) -> Self {
        Self {
            check: check.into(),
            ok,
            required,
            detail: detail.into(),
            without_it: without_it.into(),
        }
    }
}

impl From<HookStatus> for Check {
    fn from(h: HookStatus) -> Self {
        Self {
            check: h.hook,
            ok: h.ok,
            required: h.required,
            detail: h.detail,
            without_it: h.without_it,
        }
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn environment_checks() -> Vec<Check> {
    let mut checks = Vec::new();
    let btf = btf_offsets::load_vmlinux();
    checks.push(Check::new(
        "BTF (/sys/kernel/btf/vmlinux)",
        btf.is_ok(),
        false,
        btf.as_ref()
            .map_or_else(|e| format!("{e:#}"), |_| "present".into()),
        "probes carry no settings, idle time, or zero-window distinction",
    ));
    if let Ok(btf) = &btf {
        let resolved = btf_offsets::resolve(btf);
        let detail = if resolved.missing.is_empty() {
            format!("all socket fields resolved (HZ={})", resolved.offsets.hz)
        } else {
            resolved.missing.join("; ")
        };
        checks.push(Check::new(
            "socket field offsets",
            resolved.missing.is_empty(),
            false,
            detail,
            "",
        ));
    }
    let tracefs_was_mounted = std::path::Path::new("/sys/kernel/tracing/events").is_dir()
        || std::path::Path::new("/sys/kernel/debug/tracing/events").is_dir();
    match tracefs::ensure_mounted() {
        Ok(dir) => {
            let how = if tracefs_was_mounted {
                "mounted"
            } else {
                "was not mounted: mounted it"
            };
            checks.push(Check::new(
                "tracefs",
                true,
                true,
                format!("{} ({how})", dir.display()),
                "",
            ));
            let layout = tracefs::layout(&dir);
            let (ok, detail) = if layout.send_reset_reason == keepalive_common::UNKNOWN {
                (false, "no reason field (kernel < 6.10)".to_string())
            } else if layout.keepalive_timeout_reason == keepalive_common::UNKNOWN {
                (
                    false,
                    "no TCP_KEEPALIVE_TIMEOUT reason (kernel < ~6.12)".to_string(),
                )
            } else {
                (
                    true,
                    format!(
                        "TCP_KEEPALIVE_TIMEOUT = {}",
                        layout.keepalive_timeout_reason
                    ),
                )
            };
            checks.push(Check::new(
                "tcp_send_reset reason",
                ok,
                false,
                detail,
                "keepalive kills recognised from ETIMEDOUT after unanswered probes",
            ));
        }
        Err(err) => checks.push(Check::new(
            "tracefs",
            false,
            true,
            format!("{err:#}"),
            "no tracepoints",
        )),
    }
    let cgroup = cgroup::find_cgroup2_mount();
    checks.push(Check::new(
        "cgroup v2",
        true,
        true,
        cgroup.map_or_else(
            || "not mounted in this mount namespace: a private mount is made at start-up".into(),
            |p| format!("mounted at {}", p.display()),
        ),
        "",
    ));
    checks
}

/// Opens a loopback connection with keepalive 1 s and waits for its
/// sock_ops event, its first probe and the answer.
async fn self_test(observer: &mut Observer) -> Vec<Check> {
    let mut checks = Vec::new();
    let ring = observer.take_events();
    let Ok(ring) = ring else {
        checks.push(Check::new(
            "ring buffer",
            false,
            true,
            "no ring buffer map",
            "no events",
        ));
        return checks;
    };
    // SAFETY: the ring buffer owns its fd and lives inside the AsyncFd.
    let Ok(mut ring) = (unsafe { tokio::io::unix::AsyncFd::register(ring) }) else {
        checks.push(Check::new(
            "ring buffer",
            false,
            true,
            "cannot poll the ring buffer",
            "no events",
        ));
        return checks;
    };
    let connection = (|| -> std::io::Result<(TcpListener, TcpStream, TcpStream)> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let client = TcpStream::connect(listener.local_addr()?)?;
        let sock = socket2::SockRef::from(&client);
        sock.set_tcp_keepalive(
            &socket2::TcpKeepalive::new()
                .with_time(Duration::from_secs(1))
                .with_interval(Duration::from_secs(1)),
        )?;
        let (server, _) = listener.accept()?;
        Ok((listener, client, server))
    })();
    let Ok((_listener, client, _server)) = connection else {
        checks.push(Check::new(
            "self-test",
            false,
            true,
            "cannot open a loopback connection",
            "",
        ));
        return checks;
    };
    let local = client.local_addr().ok();
    let (mut established, mut probe, mut ack) = (None, None, None);
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    while (established.is_none() || probe.is_none() || ack.is_none())
        && tokio::time::Instant::now() < deadline
    {
        let Ok(Ok(mut guard)) = tokio::time::timeout_at(deadline, ring.readable_mut()).await else {
            break;
        };
        while let Some(item) = guard.get_inner_mut().next() {
            let Ok(event) = events::decode(&item) else {
                continue;
            };
            if Some(event.conn.local) != local {
                continue;
            }
            let at = started.elapsed();
            match event.what {
                What::Established => established = Some(at),
                What::Probe { .. } => probe = probe.or(Some((at, event.config))),
                What::Ack { rtt_ns, .. } => ack = ack.or(Some(rtt_ns)),
                _ => {}
            }
        }
        guard.clear_ready();
    }
    checks.push(Check::new(
        "ring buffer",
        established.is_some() || probe.is_some(),
        true,
        match established {
            Some(at) => format!(
                "sock_ops event for a new loopback connection after {} us",
                at.as_micros()
            ),
            None => "no event arrived".into(),
        },
        "no events",
    ));
    checks.push(Check::new(
        "socket-local storage + probe detection",
        probe.is_some(),
        true,
        match probe {
            Some((at, Some(c))) => format!(
                "keepalive probe seen {} ms after connect, settings read from the socket: idle {}s intvl {}s",
                at.as_millis(),
                c.idle_s,
                c.intvl_s
            ),
            Some((at, None)) => format!("keepalive probe seen {} ms after connect (settings unknown)", at.as_millis()),
            None => "no probe seen within 4 s on a 1 s keepalive".into(),
        },
        "no probes are seen",
    ));
    checks.push(Check::new(
        "answer detection",
        ack.is_some(),
        true,
        ack.map_or("no answer seen".into(), |rtt| {
            format!("answer seen, rtt {} us", rtt / 1000)
        }),
        "answers and round trips are not seen",
    ));
    checks
}

pub fn run(args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    privilege::require_bpf_privileges()?;
    let mut checks = environment_checks();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match Observer::load(&LoadOptions::default()) {
        Ok(mut observer) => {
            checks.push(Check::new(
                "bpf() syscall and verifier",
                true,
                true,
                "object loaded",
                "",
            ));
            checks.extend(observer.status.clone().into_iter().map(Check::from));
            checks.extend(runtime.block_on(self_test(&mut observer)));
        }
        Err(err) => checks.push(Check::new(
            "bpf() syscall and verifier",
            false,
            true,
            format!("{err:#}"),
            "nothing works",
        )),
    }
    checks.extend(loader::probe_optional_hooks().into_iter().map(Check::from));

    let missing: Vec<&Check> = checks.iter().filter(|c| c.required && !c.ok).collect();
    if args.json {
        crate::outln!(
            "{}",
            json!({"ok": missing.is_empty(), "kernel": kernel_release(), "checks": checks})
        )?;
    } else {
        crate::outln!("keepalive doctor: Linux {}", kernel_release())?;
        let width = checks.iter().map(|c| c.check.len()).max().unwrap_or(10);
        for c in &checks {
            let mark = match (c.ok, c.required) {
                (true, _) => "ok     ",
                (false, true) => "MISSING",
                (false, false) => "absent ",
            };
            let detail = c.detail.lines().next().unwrap_or("");
            crate::outln!("  {mark}  {:<width$}  {detail}", c.check)?;
            if !c.ok && !c.without_it.is_empty() {
                crate::outln!("           {:<width$}  without it: {}", "", c.without_it)?;
            }
        }
        if missing.is_empty() {
            crate::outln!("core hooks work: `keepalive watch` can run here")?;
        } else {
            let names: Vec<&str> = missing.iter().map(|c| c.check.as_str()).collect();
            crate::outln!("missing: {}", names.join(", "))?;
        }
    }
    Ok(if missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
