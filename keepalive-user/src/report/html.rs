//! The page: head and style, what was skipped or lost, demo's verdicts or
//! discover's trials (`sections`), the lanes (`svg`) and what was left
//! out, the summary table, then the histograms (`sections`).
//! No script and nothing fetched: a Content-Security-Policy says so to the
//! browser too, in case a string ever slipped past the escaping.

use std::fmt::Write as _;

use serde_json::Value;

use super::{
    escape::Esc,
    layout::{Interest, Page},
    sections, svg,
    words::{date_time, millis},
};
use crate::model::summary::Samples;

/// Where the page came from, for its header.
#[derive(Debug, Clone)]
pub struct Meta {
    /// The input file (`-` for stdin), or `keepalive watch`.
    pub source: String,
    /// Lines read, for a file.
    pub lines: Option<u64>,
    pub lanes_asked: usize,
}

const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 18px 24px; color: #1d2327; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 22px 0 6px; }
.meta, .note { color: #555; } .note { margin: 4px 0; }
.warn-box { background: #fff4e5; border-left: 4px solid #e08a00; padding: 6px 10px; margin: 8px 0; }
.verdict { background: #eef5ff; border-left: 4px solid #2d6cdf; padding: 6px 10px; margin: 8px 0; font-weight: 600; }
.verdict.dead { background: #fdeeee; border-left-color: #c62828; }
.empty { font-size: 16px; padding: 24px; background: #f5f5f5; }
table { border-collapse: collapse; margin: 6px 0; } td, th { padding: 3px 10px; border-bottom: 1px solid #e4e4e4; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
svg text { font: 11px ui-monospace, monospace; fill: #1d2327; }
svg .head { font-weight: 700; } svg .tick { fill: #666; } svg .grid { stroke: #eee; }
svg .row { fill: #fff; } svg .row.odd { fill: #f7f8fa; }
.timeout .badge { fill: #c62828; } .reset .badge { fill: #ef6c00; } .unanswered .badge { fill: #f9a825; } .healthy .badge { fill: #2e7d32; }
svg .owner { fill: #777; } svg .settings { font-size: 10px; fill: #555; } svg .warn { fill: #b45309; font-weight: 700; } svg .dropped { fill: #888; }
svg .track { stroke: #d5d8dc; } svg .probe { stroke: #2d6cdf; stroke-width: 2; } svg .probe.unanswered { stroke: #c62828; }
svg .ack circle { fill: #2e7d32; } svg .ack .join { stroke: #2e7d32; }
svg .unanswered { stroke: #c62828; stroke-width: 2; fill: none; }
svg .kill line { stroke: #111; stroke-width: 3; } svg .predicted { stroke: #7b1fa2; stroke-width: 2; stroke-dasharray: 3 2; }
svg .silence { stroke: #c62828; stroke-opacity: .35; stroke-width: 6; }
svg .reset { fill: #ef6c00; } svg .options { fill: #7b1fa2; } svg .options.failed { fill: #c62828; }
svg.bars rect { fill: #2d6cdf; } svg.bars.lateness rect { fill: #7b1fa2; } svg .axis { stroke: #999; }
svg .marker { stroke: #111; stroke-dasharray: 4 3; } svg .count { fill: #333; } svg .label { fill: #555; }
svg .bracket { fill: #fdd835; fill-opacity: .35; } svg .recommended { stroke: #2e7d32; stroke-width: 2; stroke-dasharray: 5 3; }
svg .survived { fill: #2e7d32; } svg .cut { stroke: #c62828; stroke-width: 2.5; } svg .aborted { fill: none; stroke: #888; stroke-width: 1.5; }
svg .probe-idle { stroke: #555; }
.legend span { margin-right: 14px; white-space: nowrap; } .sw { display: inline-block; width: 10px; height: 10px; margin-right: 4px; vertical-align: -1px; }
.charts { display: flex; flex-wrap: wrap; gap: 24px; } .scroll { overflow-x: auto; }
figure { margin: 0; } figcaption { color: #333; margin-bottom: 4px; }
"#;

pub fn page(page: &Page, meta: &Meta) -> String {
    let mut out = String::with_capacity(64 * 1024 + page.lanes.len() * 4096);
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'"><meta name="viewport" content="width=device-width, initial-scale=1"><title>keepalive report: {src}</title><style>{STYLE}</style></head><body><h1>keepalive report</h1><p class="meta">From <code>{src}</code>{lines}{range}. Made by keepalive {version}; times are UTC.</p>"#,
        src = Esc(&meta.source),
        lines = meta.lines.map_or(String::new(), |n| format!(": {n} lines")),
        range = match (page.totals.first_us, page.totals.last_us) {
            (Some(a), Some(b)) => {
                let (from, to) = (date_time(a), date_time(b));
                // The date once when both ends are on the same day.
                let to = if from[..10] == to[..10] {
                    &to[11..]
                } else {
                    &to[..]
                };
                format!(", events from {from} to {to}")
            }
            _ => String::new(),
        },
        version = env!("CARGO_PKG_VERSION"),
    );
    notes(page, &mut out);
    if page.is_empty() {
        let _ = write!(
            out,
            r#"<p class="empty" data-empty="1">This input holds no keepalive events: nothing to draw. (Lines of <code>keepalive watch --json</code>, <code>demo --json</code> or <code>discover --json</code> make a report.)</p>"#
        );
    } else {
        verdicts(&page.verdicts, &mut out);
        // discover's answer is what its run was for; its lanes are the evidence.
        if let Some(discover) = &page.discover {
            sections::discover(discover, &mut out);
        }
        lanes_section(page, meta, &mut out);
        summary_table(page, &mut out);
        sections::histograms(page, &mut out);
    }
    out.push_str("</body></html>\n");
    out
}

fn notes(page: &Page, out: &mut String) {
    let t = &page.totals;
    if t.lost > 0 {
        let _ = write!(
            out,
            r#"<p class="warn-box" data-lost="{}">{} events were lost (the ring buffer was full): lanes and counts may miss probes and answers.</p>"#,
            t.lost, t.lost
        );
    }
    if !page.unknown.is_empty() {
        let total: u64 = page.unknown.values().sum();
        let kinds = page
            .unknown
            .iter()
            .map(|(k, n)| format!("{n} × {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            out,
            r#"<p class="note" data-unknown="{total}">Skipped {total} lines of event kinds this version does not know: {}.</p>"#,
            Esc(&kinds)
        );
    }
    if t.untracked_events > 0 || t.evicted > 0 {
        let _ = write!(
            out,
            r#"<p class="note">More connections than the report keeps one by one: {} events of connections not kept and {} healthy connections let go are in the counts and histograms only.</p>"#,
            t.untracked_events, t.evicted
        );
    }
}

fn verdicts(verdicts: &[Value], out: &mut String) {
    for v in verdicts {
        let fault = v["fault"].as_str().unwrap_or("?");
        let ms = |key: &str| v[key].as_u64().map_or("?".into(), millis);
        let (class, text) = if v["alive"] == true {
            (
                "verdict",
                format!(
                    "demo ({fault}): the connection survived: {} probes, {} unanswered",
                    v["probes"], v["unanswered"]
                ),
            )
        } else if v["reason"] == "reset" {
            (
                "verdict dead",
                format!(
                    "demo ({fault}): the peer's kernel reset the connection at probe #{}",
                    v["after_probe"]
                ),
            )
        } else {
            (
                "verdict dead",
                format!(
                    "demo ({fault}): dead peer detected after {} ({} timeout, settings predict {})",
                    ms("detected_ms"),
                    v["reason"].as_str().unwrap_or("?"),
                    ms("predicted_ms")
                ),
            )
        };
        let _ = write!(
            out,
            r#"<p class="{class}" data-verdict="1">{}</p>"#,
            Esc(&text)
        );
    }
}

fn pcts(samples: &Samples, unit: fn(u64) -> String) -> String {
    match samples.max() {
        None => "none".into(),
        Some(max) => {
            let p = |q: f64| samples.percentile(q).map_or("?".into(), unit);
            format!(
                "p50 {}, p90 {}, p99 {}, max {} ({} samples)",
                p(50.0),
                p(90.0),
                p(99.0),
                unit(max),
                samples.count()
            )
        }
    }
}

fn summary_table(page: &Page, out: &mut String) {
    let t = &page.totals;
    let timeouts = if t.timeouts.is_empty() {
        "0".to_string()
    } else {
        t.timeouts
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let watch = page.summaries.last();
    let w = |key: &str| {
        watch.map(|s| match &s[key] {
            Value::Object(by) if by.is_empty() => "0".to_string(),
            Value::Object(by) => by
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        })
    };
    let us = |v: u64| format!("{v} us");
    let ms = |v: u64| format!("{v} ms");
    let rows: Vec<(&str, String, Option<String>)> = vec![
        (
            "connections seen",
            t.connections.to_string(),
            w("connections"),
        ),
        (
            "probes",
            format!(
                "{} ({} answered, {} unanswered)",
                t.probes, t.answered, t.unanswered
            ),
            watch.map(|s| {
                format!(
                    "{} ({} answered, {} unanswered)",
                    s["probes"], s["answered"], s["unanswered"]
                )
            }),
        ),
        ("peer resets", t.resets.to_string(), w("resets")),
        ("timeouts", timeouts, w("timeouts")),
        ("probe rtt", pcts(&t.rtt_us, us), None),
        ("detection time", pcts(&t.detect_ms, ms), None),
        (
            "options set",
            format!("{} ({} failed)", t.options_set, t.options_failed),
            None,
        ),
        ("events lost", t.lost.to_string(), w("lost")),
    ];
    out.push_str(r#"<h2>Summary</h2><table class="summary"><tr><th></th><th>in this input</th>"#);
    if let Some(s) = watch {
        let _ = write!(
            out,
            "<th>watch's own summary ({} s)</th>",
            Esc(&s["elapsed_s"].to_string())
        );
    }
    out.push_str("</tr>");
    for (name, ours, theirs) in rows {
        let _ = write!(out, r#"<tr><th>{name}</th><td>{}</td>"#, Esc(&ours));
        if watch.is_some() {
            let _ = write!(out, "<td>{}</td>", Esc(theirs.as_deref().unwrap_or("")));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

fn lanes_section(page: &Page, meta: &Meta, out: &mut String) {
    let left: u64 = page.left_out.values().sum();
    let drawn = page.lanes.len();
    let _ = write!(
        out,
        r#"<h2>Connections</h2><p class="note">{drawn} of {} connections, the most interesting first (timed out, reset, unanswered probes, then healthy); time runs left to right. Hover a mark for its details.</p>"#,
        drawn as u64 + left
    );
    out.push_str(r#"<p class="legend"><span><i class="sw" style="background:#2d6cdf"></i>probe</span><span><i class="sw" style="background:#2e7d32"></i>answer (joined to its probe)</span><span><i class="sw" style="background:#c62828"></i>unanswered probe</span><span><i class="sw" style="background:#111"></i>kill</span><span><i class="sw" style="background:#7b1fa2"></i>where the settings predict the kill</span><span><i class="sw" style="background:#ef6c00"></i>peer reset</span></p>"#);
    out.push_str(r#"<div class="scroll">"#);
    svg::lanes(page, out);
    out.push_str("</div>");
    if left > 0 {
        let by = Interest::ALL
            .iter()
            .filter_map(|i| page.left_out.get(i).map(|n| format!("{n} {}", i.name())))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            out,
            r#"<p class="note" data-left-out="{left}">{left} more connections have no lane (--lanes {}): {by}. Their events are in the summary and the histograms.</p>"#,
            meta.lanes_asked
        );
    }
}
