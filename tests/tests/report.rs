//! `keepalive report` and `watch --report` on real runs: a blackhole demo
//! and a discover against a conntrack middlebox, rendered by a real
//! headless Chromium, the marks in its DOM counted against the events in
//! the input; screenshots kept in `target/report-artifacts/`. Needs root:
//! run through `cargo xtask test`.

use std::{
    collections::HashSet,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use keepalive_tests::*;
use serde_json::Value;

/// Where the screenshots and pages are kept after the run.
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/report-artifacts");
    std::fs::create_dir_all(&dir).expect("creating target/report-artifacts");
    dir
}

/// A directory of our own under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(unique_name("ka-report"));
        std::fs::create_dir_all(&dir).expect("creating a temporary directory");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A chromium process group, SIGKILLed whole on drop (its zygote and
/// renderers with it).
struct Browser(ChildGuard);

impl Drop for Browser {
    fn drop(&mut self) {
        let pgid = libc::pid_t::try_from(self.0.pid()).expect("pid fits pid_t");
        // SAFETY: kill has no memory-safety preconditions; -pgid names the
        // group this test started.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Runs headless Chromium on `page` with `mode` (`--dump-dom` or
/// `--screenshot=...`) and returns its stdout.
fn chromium(page: &Path, mode: &str, window: &str) -> String {
    let version = Command::new("chromium").arg("--version").output();
    assert!(
        version.is_ok_and(|v| v.status.success()),
        "no working chromium: `cargo xtask setup` installs Debian's"
    );
    let profile = TempDir::new();
    let out = TempDir::new();
    let stdout_path = out.0.join("stdout");
    let stdout = std::fs::File::create(&stdout_path).unwrap();
    // In a namespace of its own with only `lo`: the page must need no
    // network, and the browser can reach none.
    let airgap = NetNs::new();
    let child = airgap
        .command("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .arg(format!("--window-size={window}"))
        .arg(mode)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromium: {e}"));
    let mut browser = Browser(ChildGuard(child));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = browser.0.try_wait().unwrap() {
            assert!(status.success(), "chromium {mode}: {status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "chromium {mode} took over 90 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::read_to_string(&stdout_path).unwrap()
}

/// Renders `html` in Chromium: the DOM as the browser built it, and a
/// screenshot kept at `png`.
fn render(html: &Path, png: &Path, window: &str) -> String {
    let _ = std::fs::remove_file(png);
    chromium(html, &format!("--screenshot={}", png.display()), window);
    let bytes =
        std::fs::read(png).unwrap_or_else(|e| panic!("no screenshot {}: {e}", png.display()));
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "{} is not a picture of the page ({} bytes)",
        png.display(),
        bytes.len()
    );
    let dom = chromium(html, "--dump-dom", window);
    assert!(
        dom.contains("keepalive report"),
        "the browser shows the page: {dom:.300}"
    );
    dom
}

/// Elements of the browser's DOM with `attribute="value"`.
fn count(dom: &str, attribute: &str, value: &str) -> usize {
    dom.matches(&format!(r#"{attribute}="{value}""#)).count()
}

fn of_kind(events: &[Value], name: &str) -> usize {
    events.iter().filter(|v| v["event"] == name).count()
}

/// `keepalive report INPUT -o OUTPUT` run beside INPUT (the page names it
/// as given), which must succeed.
fn report(input: &Path, output: &Path) {
    let out = Command::new(keepalive_bin())
        .current_dir(input.parent().unwrap())
        .arg("report")
        .arg(input.file_name().unwrap())
        .arg("-o")
        .arg(output)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_real_blackhole_drawn_and_counted_in_chromium() {
    require_root();
    let dir = TempDir::new();
    let out = Command::new(keepalive_bin())
        .args(["demo", "--json", "--fault", "blackhole"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ndjson = dir.0.join("blackhole.ndjson");
    std::fs::write(&ndjson, &out.stdout).unwrap();
    let events = json_lines(&String::from_utf8_lossy(&out.stdout));
    let (probes, unanswered, timeouts) = (
        of_kind(&events, "probe"),
        of_kind(&events, "unanswered"),
        of_kind(&events, "timeout"),
    );
    assert!(
        probes >= 2 && unanswered >= 1 && timeouts == 1,
        "{events:#?}"
    );

    let html = artifacts().join("blackhole.html");
    report(&ndjson, &html);
    let dom = render(&html, &artifacts().join("blackhole.png"), "1440,820");
    assert_eq!(count(&dom, "data-mark", "probe"), probes, "probe marks");
    assert_eq!(
        count(&dom, "data-mark", "unanswered"),
        unanswered,
        "unanswered marks"
    );
    assert_eq!(count(&dom, "data-mark", "kill"), timeouts, "kill marks");
    assert_eq!(
        count(&dom, "data-mark", "ack"),
        of_kind(&events, "ack"),
        "answers"
    );
    assert_eq!(
        count(&dom, "data-mark", "predicted"),
        1,
        "the predicted kill is drawn too"
    );
    assert_eq!(count(&dom, "data-interest", "timeout"), 1);
    let verdict = events.last().unwrap();
    let detected = verdict["detected_ms"].as_u64().unwrap();
    assert!(
        dom.contains(&format!("dead peer detected after {detected} ms")),
        "the verdict is on the page"
    );
}

/// A server in `pair.b` behind a conntrack firewall that forgets flows
/// idle `timeout_s` and drops what follows (as in discover.rs).
struct Middlebox {
    pair: VethPair,
    _firewall: Nft,
    _server: Peer,
}

impl Middlebox {
    fn new(timeout_s: u32) -> Self {
        let pair = VethPair::new();
        let firewall = Nft::new(
            &pair.b,
            "table inet ka_middlebox {\n  chain in {\n    type filter hook input priority 0; policy accept;\n    ct state invalid drop\n  }\n}\n",
        );
        pair.b.sysctl("net.netfilter.nf_conntrack_tcp_loose", "0");
        pair.b.sysctl(
            "net.netfilter.nf_conntrack_tcp_timeout_established",
            &timeout_s.to_string(),
        );
        let server = Peer::spawn_in(&pair.b, &["listen", &format!("{}:8080", pair.addr_b)]);
        Self {
            pair,
            _firewall: firewall,
            _server: server,
        }
    }
}

#[test]
fn a_real_discover_drawn_on_the_idle_axis_in_chromium() {
    require_root();
    let lab = Middlebox::new(3);
    let out = lab
        .pair
        .a
        .command(keepalive_bin())
        .args([
            "discover",
            &format!("{}:8080", lab.pair.addr_b),
            "--max",
            "8",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = json_lines(&String::from_utf8_lossy(&out.stdout));
    let result = events.last().cloned().expect("a result");
    assert_eq!(result["event"], "result", "{result}");
    let trials: Vec<&Value> = events.iter().filter(|v| v["event"] == "trial").collect();
    let settled: HashSet<&str> = trials.iter().filter_map(|t| t["local"].as_str()).collect();
    let unsettled: HashSet<&str> = events
        .iter()
        .filter(|v| v["config"].is_object())
        .filter_map(|v| v["src"].as_str())
        .filter(|src| !settled.contains(src))
        .collect();
    let dir = TempDir::new();
    let ndjson = dir.0.join("discover.ndjson");
    std::fs::write(&ndjson, &out.stdout).unwrap();
    let html = artifacts().join("discover.html");
    report(&ndjson, &html);
    let dom = render(&html, &artifacts().join("discover.png"), "1440,1400");
    let outcomes = |name: &str| trials.iter().filter(|t| t["outcome"] == name).count();
    assert_eq!(count(&dom, "data-trial", "survived"), outcomes("survived"));
    assert_eq!(count(&dom, "data-trial", "cut"), outcomes("cut"));
    assert_eq!(count(&dom, "data-trial", "aborted"), unsettled.len());
    let (survives, cut) = (
        result["survives_s"].as_u64().expect("something survived"),
        result["cut_s"].as_u64().expect("something was cut"),
    );
    assert_eq!(
        count(&dom, "data-bracket", &format!("{survives}-{cut}")),
        1,
        "the bracket"
    );
    let recommended = result["recommended_idle_s"].as_u64().unwrap();
    assert_eq!(count(&dom, "data-recommended", &recommended.to_string()), 1);
    assert!(dom.contains(&format!("(recommended: {recommended} s)")));
    // The trial connections have their lanes too.
    assert_eq!(count(&dom, "data-mark", "probe"), of_kind(&events, "probe"));
}

#[test]
fn watch_writes_its_report_when_interrupted_or_terminated() {
    for stop in [Watch::interrupt, Watch::terminate] {
        watch_report_until(stop);
    }
}

fn watch_report_until(stop: fn(Watch) -> Watch) {
    let ns = NetNs::new();
    let p = unique_port();
    let dir = TempDir::new();
    let page = dir.0.join("watch.html");
    let watch = Watch::on_port(p, &["--report", page.to_str().unwrap()]);
    let mut pair = Pair::loopback_in(&ns, p, &["--keepalive", "1,1,2"]);
    let _blackhole = Nft::drop_output_from_port(&ns, p);
    pair.client.send_line("recv");
    let seen = watch.collect_until(Duration::from_secs(10), is("timeout"));
    assert!(seen.iter().any(is("timeout")), "{seen:#?}");
    assert!(!page.exists(), "written at the end, not before");
    let (status, events, stderr) = stop(watch).wait_output();
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(stderr.contains("report written to"), "{stderr}");
    let html = std::fs::read_to_string(&page).expect("the report");
    for (mark, kind) in [
        ("probe", "probe"),
        ("unanswered", "unanswered"),
        ("kill", "timeout"),
        ("ack", "ack"),
    ] {
        assert_eq!(
            count(&html, "data-mark", mark),
            of_kind(&events, kind),
            "{mark} marks against {kind} events"
        );
    }
    assert!(html.contains("watch's own summary"), "and its summary");
    let files = std::fs::read_dir(&dir.0).unwrap().count();
    assert_eq!(files, 1, "no temporary file left beside the page");
}

#[test]
fn bad_input_is_refused_by_line_and_nothing_is_written() {
    let dir = TempDir::new();
    let out = dir.0.join("out.html");
    let input = dir.0.join("mixed.ndjson");
    std::fs::write(
        &input,
        "{\"event\":\"lost\",\"ts\":\"2026-11-24T10:00:00.000000Z\",\"count\":1}\n19:35:44.166100 probe 127.0.0.1:59696 > 127.0.0.1:7010 #1\n",
    )
    .unwrap();
    let (input_s, out_s) = (input.to_str().unwrap(), out.to_str().unwrap());
    let nowhere = dir.0.join("no/such/dir/out.html");
    let nowhere = nowhere.to_str().unwrap();
    for (args, says) in [
        (
            vec!["report", input_s, "-o", out_s],
            format!("{input_s}:2: not JSON"),
        ),
        (
            vec!["report", "no-such.ndjson", "-o", out_s],
            "no-such.ndjson".into(),
        ),
        (
            vec!["report", input_s, "-o", nowhere],
            "no such directory".into(),
        ),
        (
            vec!["report", input_s, "-o", out_s, "--lanes", "20000"],
            "--lanes".into(),
        ),
        (
            vec!["watch", "--report", nowhere],
            "no such directory".into(),
        ),
    ] {
        assert_usage_error(&args, &says);
    }
    assert!(
        std::fs::read_dir(&dir.0)
            .unwrap()
            .all(|e| e.unwrap().file_name() == "mixed.ndjson")
    );

    // Empty (stdin, here /dev/null): a page that says so. Unknown kinds: skipped and counted.
    let (code, _, stderr) = run_keepalive(&["report", "-o", out_s]);
    assert_eq!(code, Some(0), "{stderr}");
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains(r#"data-empty="1""#), "{html}");
    let future = dir.0.join("future.ndjson");
    std::fs::write(
        &future,
        "{\"event\":\"tls_hello\",\"n\":[1]}\n{\"event\":\"tls_hello\"}\n",
    )
    .unwrap();
    report(&future, &out);
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(
        html.contains(r#"data-unknown="2""#) && html.contains("2 × tls_hello"),
        "{html}"
    );
}
