//! What `ss -tno` (iproute2) says about a connection, to hold `keepalive ls`
//! against: its line, and its keepalive timer.

use crate::NetNs;

/// `ss -tnoH state established` inside `ns`: one line per socket.
pub fn ss_established(ns: &NetNs) -> String {
    ns.run(&["ss", "-tnoH", "state", "established"])
}

/// The line of `ss` output for `local > remote`.
pub fn ss_line<'a>(ss: &'a str, local: &str, remote: &str) -> Option<&'a str> {
    ss.lines()
        .find(|l| l.contains(&format!("{local} ")) && l.contains(remote))
}

/// `ss -o` timer text in milliseconds: `164ms`, `1.124ms` (1 s 124 ms),
/// `12sec`, `1min5.123ms`, `117min` (iproute2's print_ms_timer).
pub fn ss_ms(text: &str) -> u64 {
    let mut rest = text;
    let mut total = 0;
    let number = |s: &str| {
        s.parse::<u64>()
            .unwrap_or_else(|_| panic!("ss timer {text:?}"))
    };
    if let Some((m, r)) = rest.split_once("min") {
        total += number(m) * 60_000;
        rest = r;
    }
    if let Some((s, r)) = rest.split_once("sec") {
        total += number(s) * 1000;
        rest = r;
    } else if let Some((s, r)) = rest.split_once('.') {
        total += number(s) * 1000;
        rest = r;
    }
    if let Some(ms) = rest.strip_suffix("ms") {
        total += number(ms);
    }
    total
}

/// `(expires_ms, probes out)` of the keepalive timer `ss -tnoH` shows for
/// `local > remote` inside `ns`.
pub fn ss_keepalive_timer(ns: &NetNs, local: &str, remote: &str) -> Option<(u64, u64)> {
    let ss = ss_established(ns);
    let line = ss_line(&ss, local, remote)?;
    let timer = line.split("timer:(keepalive,").nth(1)?.split(')').next()?;
    let (expires, probes) = timer.split_once(',')?;
    Some((ss_ms(expires), probes.parse().ok()?))
}
