//! `keepalive discover` against a simulated middlebox: two namespaces on a
//! veth, the server's namespace running conntrack with a short established
//! timeout and dropping what it no longer knows (a stateful firewall that
//! forgets idle flows). The reported bracket must contain the timeout.
//!
//! Needs root: run through `cargo xtask test`.

use std::{
    io::{BufRead as _, BufReader},
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use keepalive_tests::*;
use serde_json::Value;

const PORT: u16 = 8080;

/// What the firewall does with a segment of a flow it has forgotten.
const DROP: &str = "drop";
const RESET: &str = "reject with tcp reset";

/// A server in `pair.b` behind a firewall that forgets flows idle
/// `timeout_s` (None: no firewall at all).
struct Lab {
    pair: VethPair,
    _firewall: Option<Nft>,
    _server: Peer,
}

impl Lab {
    fn new(timeout_s: Option<u32>, server_args: &[&str]) -> Self {
        Self::with_firewall(timeout_s, DROP, server_args)
    }

    fn with_firewall(timeout_s: Option<u32>, forgotten: &str, server_args: &[&str]) -> Self {
        let pair = VethPair::new();
        let firewall = timeout_s.map(|secs| {
            // The rule loads conntrack in the namespace; its sysctls exist from then on.
            let nft = Nft::new(
                &pair.b,
                &format!(
                    "table inet ka_middlebox {{\n  chain in {{\n    type filter hook input priority 0; policy accept;\n    ct state invalid {forgotten}\n  }}\n}}\n"
                ),
            );
            pair.b.sysctl("net.netfilter.nf_conntrack_tcp_loose", "0");
            pair.b.sysctl(
                "net.netfilter.nf_conntrack_tcp_timeout_established",
                &secs.to_string(),
            );
            nft
        });
        let listen = format!("{}:{PORT}", pair.addr_b);
        let mut args = vec!["listen", listen.as_str()];
        args.extend_from_slice(server_args);
        let server = Peer::spawn_in(&pair.b, &args);
        Self {
            pair,
            _firewall: firewall,
            _server: server,
        }
    }

    fn target(&self) -> String {
        format!("{}:{PORT}", self.pair.addr_b)
    }

    /// Runs `keepalive discover` in the client's namespace.
    fn discover(&self, target: &str, args: &[&str]) -> Output {
        self.pair
            .a
            .command(keepalive_bin())
            .args(["discover", target])
            .args(args)
            .output()
            .expect("running keepalive discover")
    }

    /// The server's ends of trial connections, established or half-closed
    /// by the client (the listener itself is not listed).
    fn server_sockets(&self) -> String {
        self.pair.b.run(&[
            "ss",
            "-Htan",
            "state",
            "established",
            "state",
            "close-wait",
            &format!("sport = :{PORT}"),
        ])
    }

    /// Open connections from the client's namespace to the server (closed
    /// ones may linger in FIN-WAIT-2 until the kernel lets them go).
    fn client_sockets(&self) -> String {
        self.pair.a.run(&[
            "ss",
            "-Htan",
            "state",
            "established",
            &format!("dport = :{PORT}"),
        ])
    }
}

/// Runs discover --json and returns its final result, checking that the
/// evidence agrees with the trial lines streamed before it.
fn discover_result(lab: &Lab, args: &[&str]) -> Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = lab.discover(&lab.target(), &full);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    let lines = json_lines(&String::from_utf8_lossy(&out.stdout));
    let result = lines.last().cloned().expect("a result line");
    assert_eq!(result["event"], "result", "{result}");
    assert_eq!(result["complete"], true, "{result}");
    let trials: Vec<&Value> = lines.iter().filter(|v| v["event"] == "trial").collect();
    assert_eq!(
        trials.len(),
        result["evidence"].as_array().unwrap().len(),
        "{result}"
    );
    // Every trial's verdict rests on a probe the observer saw leave.
    for trial in &trials {
        if trial["how"] != "reset_while_idle" {
            let local = trial["local"].as_str().unwrap();
            assert!(
                lines
                    .iter()
                    .any(|v| v["event"] == "probe" && v["src"] == local),
                "no probe event for {trial}"
            );
        }
    }
    assert!(stderr.contains("bracket:"), "progress on stderr: {stderr}");
    assert_first_estimate_held(&stderr, &result);
    assert!(
        lab.client_sockets().trim().is_empty(),
        "trial connections left open:\n{}",
        lab.client_sockets()
    );
    result
}

/// The first progress line's "A to B left" (or "B left") held: the search
/// ended between A and B after it (to the line's whole seconds).
fn assert_first_estimate_held(stderr: &str, result: &Value) {
    let secs = |clock: &str| -> f64 {
        clock
            .split(':')
            .fold(0.0, |acc, part| acc * 60.0 + part.parse::<f64>().unwrap())
    };
    let line = stderr
        .lines()
        .find(|l| l.contains("bracket:"))
        .expect("a progress line");
    let at = secs(&line[1..line.find(']').unwrap()]);
    let left = line.rsplit("| ").next().unwrap().trim_end_matches(" left");
    let (least, most) = left.split_once(" to ").unwrap_or((left, left));
    let (least, most) = (secs(least), secs(most));
    let took = result["elapsed_s"].as_f64().unwrap() - at;
    assert!(
        least - 1.0 <= took && took <= most + 2.0,
        "{line:?}: the search ended {took:.1} s later"
    );
}

fn assert_bracket_contains(result: &Value, timeout_s: u64) {
    let survives = result["survives_s"].as_u64().expect("something survived");
    let cut = result["cut_s"].as_u64().expect("something was cut");
    assert!(
        survives <= timeout_s && timeout_s <= cut && cut - survives <= 2,
        "bracket {survives}..{cut} for a {timeout_s} s timeout: {result}"
    );
    assert_eq!(result["finding"], "bracket", "{result}");
    let recommended = result["recommended_idle_s"].as_u64().unwrap();
    assert!(
        (1..=survives).contains(&recommended),
        "{recommended}: {result}"
    );
    for trial in result["evidence"].as_array().unwrap() {
        let idle = trial["idle_s"].as_u64().unwrap();
        match trial["outcome"].as_str() {
            Some("survived") => {
                assert_eq!(trial["how"], "answered", "{trial}");
                assert!(trial["rtt_us"].as_u64().is_some(), "{trial}");
                // The probe left no earlier than the idle asked for.
                assert!(trial["probe_idle_ms"].as_u64().unwrap() >= idle * 1000 - 50);
                assert!(idle <= timeout_s, "{trial}");
            }
            Some("cut") => {
                assert!(
                    ["unanswered", "reset"].contains(&trial["how"].as_str().unwrap()),
                    "{trial}"
                );
                assert!(idle >= timeout_s, "{trial}");
            }
            other => panic!("outcome {other:?}: {trial}"),
        }
    }
}

#[test]
fn finds_a_3_second_middlebox_timeout() {
    require_root();
    let lab = Lab::new(Some(3), &[]);
    let result = discover_result(&lab, &["--max", "12"]);
    assert_bracket_contains(&result, 3);
}

#[test]
fn finds_an_8_second_middlebox_timeout() {
    require_root();
    let lab = Lab::new(Some(8), &[]);
    let result = discover_result(&lab, &["--max", "20", "--parallel", "4"]);
    assert_bracket_contains(&result, 8);
}

#[test]
fn a_firewall_that_resets_forgotten_flows() {
    require_root();
    let lab = Lab::with_firewall(Some(4), RESET, &[]);
    let result = discover_result(&lab, &["--max", "10"]);
    assert_bracket_contains(&result, 4);
    let cut: Vec<&Value> = result["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["outcome"] == "cut")
        .collect();
    assert!(!cut.is_empty(), "{result}");
    assert!(
        cut.iter().all(|t| t["how"] == "reset" && t["probe"] == 1),
        "the first probe was answered with RST: {result}"
    );
}

#[test]
fn without_a_middlebox_flows_survive_up_to_max() {
    require_root();
    let lab = Lab::new(None, &[]);
    let result = discover_result(&lab, &["--max", "5"]);
    assert_eq!(result["survives_s"], 5, "{result}");
    assert_eq!(result["cut_s"], Value::Null, "{result}");
    assert_eq!(result["finding"], "no_cut", "{result}");
    assert_eq!(
        result["recommended_idle_s"],
        Value::Null,
        "no margin-free recommendation: {result}"
    );
    let evidence = result["evidence"].as_array().unwrap();
    assert!(
        evidence
            .iter()
            .any(|t| t["idle_s"] == 5 && t["outcome"] == "survived"),
        "--max itself was tried: {result}"
    );
    assert!(evidence.iter().all(|t| t["outcome"] == "survived"));
}

#[test]
fn says_which_when_the_target_cannot_be_measured() {
    require_root();
    let lab = Lab::new(None, &["--close-idle", "3"]);
    // Nothing listens on this port.
    let refused = lab.discover(
        &format!("{}:{}", lab.pair.addr_b, PORT + 1),
        &["--max", "10"],
    );
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("refused the connection"), "{stderr}");
    // An address on the client's own subnet where no host answers ARP.
    lab.pair
        .a
        .run(&["ip", "addr", "add", "10.254.0.1/24", "dev", "ka0"]);
    let unreachable = lab.discover("10.254.0.9:80", &["--max", "10"]);
    assert_eq!(unreachable.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(stderr.contains("is unreachable"), "{stderr}");
    // The server closes connections idle 3 s itself.
    let fin = lab.discover(&lab.target(), &["--max", "10"]);
    assert_eq!(fin.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&fin.stderr);
    assert!(
        stderr.contains("closed an idle connection itself (FIN)"),
        "{stderr}"
    );
    // Usage errors exit 2 before anything is loaded.
    for args in [&["--max", "1"][..], &["--parallel", "0"][..]] {
        let bad = lab.discover(&lab.target(), args);
        assert_eq!(bad.status.code(), Some(2), "{args:?}");
    }
    let no_port = lab.discover(&lab.pair.addr_b.to_string(), &[]);
    assert_eq!(no_port.status.code(), Some(2));
    // Inside the namespace no resolver is reachable: the lookup fails at once.
    let unknown = lab.discover("no-such-host.invalid:80", &["--max", "5"]);
    assert_eq!(unknown.status.code(), Some(2), "{unknown:?}");
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("cannot resolve"), "{stderr}");
    assert!(lab.client_sockets().trim().is_empty());
}

/// Ends a discover run with `signo` once a trial was answered: it reports
/// what it knows and exits 128 + signo, having unloaded the programs it held
/// while running and aborted its pending trials with RST, so that the server
/// holds nothing for them (a discover killed outright closes them with FIN,
/// and this server, which never closes its end, keeps each in CLOSE-WAIT as
/// it keeps the connections discover did close gracefully: the first one,
/// which measured the round trip, and each survivor).
fn interrupted_discover_reports_what_it_knows_and_leaves_nothing(signo: libc::c_int) {
    require_root();
    let lab = Lab::new(None, &[]);
    let mut child = ChildGuard(
        lab.pair
            .a
            .command(keepalive_bin())
            .args(["discover", &lab.target(), "--max", "60", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = child.pid();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // Wait for the first answered trial.
    let started = Instant::now();
    let mut lines = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "discover ended early"
        );
        lines.push_str(&line);
        if line.contains(r#""event":"trial""#) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no trial answered"
        );
    }
    let loaded = programs_owned_by(pid);
    assert!(
        !loaded.is_empty(),
        "discover {pid} holds its programs while it runs"
    );
    assert!(
        lab.server_sockets().contains("ESTAB"),
        "the server holds the trials while they idle"
    );
    signal(pid, signo);
    std::io::Read::read_to_string(&mut stdout, &mut lines).unwrap();
    let status = child.wait().unwrap();
    let lines = json_lines(&lines);

    let survived = lines
        .iter()
        .filter(|v| v["event"] == "trial" && v["outcome"] == "survived")
        .count();
    let closed_gracefully = 1 + survived;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let server = lab.server_sockets();
        if programs_owned_by(pid).is_empty()
            && lab.client_sockets().trim().is_empty()
            && !server.contains("ESTAB")
            && server.lines().count() <= closed_gracefully
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: programs {:?} (of {loaded:?}), client sockets {}, server sockets (beyond {closed_gracefully} closed gracefully) {server}",
            programs_owned_by(pid),
            lab.client_sockets(),
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    assert_eq!(status.code(), Some(128 + signo), "{status:?}");
    let result = lines.last().expect("a result");
    assert_eq!(result["event"], "result");
    assert_eq!(result["complete"], false, "{result}");
    assert!(result["survives_s"].as_u64().is_some(), "{result}");
    assert_eq!(
        result["recommended_idle_s"],
        Value::Null,
        "no cut, no recommendation: {result}"
    );
}

#[test]
fn sigint_sigterm_and_sighup_end_discover_cleanly() {
    for signo in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        interrupted_discover_reports_what_it_knows_and_leaves_nothing(signo);
    }
}
