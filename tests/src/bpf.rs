//! What of ours is still loaded in the kernel, seen through bpftool and
//! /proc/<pid>/fdinfo.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
    sync::Mutex,
};

use serde_json::Value;

use crate::run_checked;

/// Names of our programs as the kernel keeps them (truncated to 15 bytes).
const OUR_PREFIXES: &[&str] = &[
    "keepalive_probe",
    "keepalive_answe",
    "keepalive_socko",
    "tcp_send_reset",
    "inet_sk_error_r",
    "tcp_receive_res",
    "inet_sock_set_s",
];

/// Program and link ids seen owned by a pid, so they can be checked after it exits
/// (a dead process owns nothing, but what it loaded might linger).
static REMEMBERED: Mutex<BTreeMap<u32, Owned>> = Mutex::new(BTreeMap::new());

#[derive(Default)]
struct Owned {
    programs: BTreeSet<u64>,
    links: BTreeSet<u64>,
}

fn is_ours(name: &str) -> bool {
    OUR_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

fn bpftool(what: &str) -> Vec<Value> {
    let out = run_checked(Command::new("bpftool").args(["-j", what, "show"]));
    match serde_json::from_str(&out) {
        Ok(Value::Array(items)) => items,
        _ => panic!("unexpected `bpftool -j {what} show` output: {out}"),
    }
}

fn id(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_default()
}

/// The pids bpftool lists as holding `v` (bpftool built with skeletons).
fn pids_of(v: &Value) -> BTreeSet<u32> {
    v["pids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["pid"].as_u64().and_then(|pid| u32::try_from(pid).ok()))
        .collect()
}

/// Ids after `key` (`prog_id:`, `link_id:`) in a live process's fdinfo, in case bpftool lists no pids.
fn fdinfo_ids(pid: u32, key: &str) -> BTreeSet<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return BTreeSet::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .flat_map(|info| {
            info.lines()
                .filter_map(|line| line.strip_prefix(key)?.trim().parse().ok())
                .collect::<Vec<u64>>()
        })
        .collect()
}

fn describe_program(p: &Value) -> String {
    format!(
        "{} (prog id {}, {})",
        p["name"].as_str().unwrap_or("?"),
        id(p, "id"),
        p["type"].as_str().unwrap_or("?")
    )
}

/// Our programs loaded in the kernel right now, whoever holds them.
pub fn ebpf_programs_of_ours() -> Vec<String> {
    bpftool("prog")
        .iter()
        .filter(|p| is_ours(p["name"].as_str().unwrap_or("")))
        .map(describe_program)
        .collect()
}

/// cgroup links whose program is one of ours.
pub fn cgroup_links_of_ours() -> Vec<String> {
    let ours: BTreeMap<u64, String> = bpftool("prog")
        .iter()
        .filter(|p| is_ours(p["name"].as_str().unwrap_or("")))
        .map(|p| (id(p, "id"), describe_program(p)))
        .collect();
    bpftool("link")
        .iter()
        .filter(|l| l["type"] == "cgroup")
        .filter_map(|l| {
            let program = ours.get(&id(l, "prog_id"))?;
            Some(format!(
                "link id {} ({}) -> {program}",
                id(l, "id"),
                l["attach_type"].as_str().unwrap_or("?")
            ))
        })
        .collect()
}

/// Our programs held by `pid`, or loaded by it earlier (seen by an earlier
/// call or by `Watch::spawn`) and still in the kernel after it exited.
pub fn programs_owned_by(pid: u32) -> Vec<String> {
    let programs = bpftool("prog");
    let mut remembered = REMEMBERED.lock().unwrap_or_else(|e| e.into_inner());
    let owned = remembered.entry(pid).or_default();
    let from_fds = fdinfo_ids(pid, "prog_id:");
    for p in &programs {
        if is_ours(p["name"].as_str().unwrap_or(""))
            && (pids_of(p).contains(&pid) || from_fds.contains(&id(p, "id")))
        {
            owned.programs.insert(id(p, "id"));
        }
    }
    programs
        .iter()
        .filter(|p| owned.programs.contains(&id(p, "id")))
        .map(describe_program)
        .collect()
}

/// Links held by `pid`, or created by it earlier and still in the kernel after it exited.
pub fn links_owned_by(pid: u32) -> Vec<String> {
    let links = bpftool("link");
    let mut remembered = REMEMBERED.lock().unwrap_or_else(|e| e.into_inner());
    let owned = remembered.entry(pid).or_default();
    let from_fds = fdinfo_ids(pid, "link_id:");
    for l in &links {
        if pids_of(l).contains(&pid) || from_fds.contains(&id(l, "id")) {
            owned.links.insert(id(l, "id"));
        }
    }
    links
        .iter()
        .filter(|l| owned.links.contains(&id(l, "id")))
        .map(|l| {
            format!(
                "link id {} ({}, prog id {})",
                id(l, "id"),
                l["type"].as_str().unwrap_or("?"),
                id(l, "prog_id")
            )
        })
        .collect()
}
