//! The histograms (probe round trips; detection time against what the
//! settings predict) and discover's trials on an idle-time axis.

use std::fmt::Write as _;

use super::{
    discover::{Discover, TrialOutcome},
    escape::Esc,
    layout::{LATENESS_EDGES_PCT, Page, RTT_BINS},
    svg::bars,
    words::micros,
};

pub fn histograms(page: &Page, out: &mut String) {
    let t = &page.totals;
    if t.answered == 0 && t.timeouts.is_empty() {
        return;
    }
    out.push_str(r#"<h2>Distributions</h2><div class="charts">"#);
    if t.answered > 0 {
        // One empty bin either side, for context.
        let first = t
            .rtt_bins
            .iter()
            .position(|&n| n > 0)
            .unwrap_or(0)
            .saturating_sub(1);
        let last = (t.rtt_bins.iter().rposition(|&n| n > 0).unwrap_or(0) + 1).min(RTT_BINS - 1);
        let bins: Vec<(String, u64, String)> = (first..=last)
            .map(|i| {
                let low = 1u64 << i;
                let range = if i == RTT_BINS - 1 {
                    format!("{} or more", micros(low))
                } else {
                    format!("{} to {}", micros(low), micros(low * 2))
                };
                (
                    micros(low),
                    t.rtt_bins[i],
                    format!("{range}: {} answers", t.rtt_bins[i]),
                )
            })
            .collect();
        let _ = write!(
            out,
            r#"<figure data-histogram="rtt"><figcaption>Probe round trip ({}; each bar from its lower edge to twice that)</figcaption>"#,
            plural(t.answered, "answer")
        );
        bars("rtt", &bins, None, out);
        out.push_str("</figure>");
    }
    if !t.timeouts.is_empty() {
        let label = |i: usize| match i {
            0 => format!("<{}%", LATENESS_EDGES_PCT[0]),
            i if i == LATENESS_EDGES_PCT.len() => format!("≥+{}%", LATENESS_EDGES_PCT[i - 1]),
            i => format!("{:+}%", LATENESS_EDGES_PCT[i - 1]),
        };
        let bins: Vec<(String, u64, String)> = t
            .lateness_bins
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let range = match i {
                    0 => format!("more than {}% early", -LATENESS_EDGES_PCT[0]),
                    i if i == LATENESS_EDGES_PCT.len() => {
                        format!("{}% late or more", LATENESS_EDGES_PCT[i - 1])
                    }
                    i => format!(
                        "{:+}% to {:+}%",
                        LATENESS_EDGES_PCT[i - 1],
                        LATENESS_EDGES_PCT[i]
                    ),
                };
                (
                    label(i),
                    n,
                    format!("detected {range} of the prediction: {n} timeouts"),
                )
            })
            .collect();
        let zero = LATENESS_EDGES_PCT.iter().position(|&e| e == 0).unwrap_or(0);
        let _ = write!(
            out,
            r#"<figure data-histogram="lateness"><figcaption>Detection time against the settings' prediction ({}{})</figcaption>"#,
            plural(t.timeouts.values().sum::<u64>(), "timeout"),
            if t.unpredicted > 0 {
                format!(", {} without a prediction", t.unpredicted)
            } else {
                String::new()
            }
        );
        bars("lateness", &bins, Some((zero, "as predicted")), out);
        out.push_str("</figure>");
    }
    out.push_str("</div>");
}

pub fn discover(d: &Discover, out: &mut String) {
    let idle_max = d
        .trials
        .iter()
        .map(|t| t.idle_s)
        .chain(d.max_s)
        .chain(d.cut_s)
        .max()
        .unwrap_or(1)
        .max(1);
    let axis_s = f64::from(idle_max) * 1.05;
    let (x0, x1, w) = (60.0, 900.0, 940.0);
    let row = 16.0;
    let top = 24.0;
    let h = top + row * d.trials.len().max(1) as f64 + 36.0;
    let x = |s: f64| x0 + s / axis_s * (x1 - x0);
    let _ = write!(
        out,
        r#"<h2>discover{}</h2>"#,
        d.target
            .as_deref()
            .map_or(String::new(), |t| format!(": {}", Esc(t)))
    );
    out.push_str(&conclusion(d));
    let _ = write!(
        out,
        r#"<svg class="trials" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="discover's trials by idle time">"#
    );
    let base = h - 30.0;
    if let (Some(s), Some(c)) = (d.survives_s, d.cut_s) {
        let _ = write!(
            out,
            r#"<rect class="bracket" data-bracket="{s}-{c}" x="{bx:.1}" y="{top}" width="{bw:.1}" height="{bh:.1}"><title>the path forgets idle flows somewhere between {s} s (survived) and {c} s (cut)</title></rect>"#,
            bx = x(f64::from(s)),
            bw = (x(f64::from(c)) - x(f64::from(s))).max(2.0),
            bh = base - top,
        );
    }
    if let Some(r) = d.recommended_idle_s {
        let rx = x(f64::from(r));
        let _ = write!(
            out,
            r#"<line class="recommended" data-recommended="{r}" x1="{rx:.1}" y1="{y0}" x2="{rx:.1}" y2="{base}"><title>recommended TCP_KEEPIDLE: {r} s</title></line><text x="{tx:.1}" y="{ty}">recommended {r} s</text>"#,
            y0 = top - 6.0,
            tx = rx + 4.0,
            ty = top - 8.0,
        );
    }
    let step = [1u32, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600]
        .into_iter()
        .find(|s| idle_max / s <= 10)
        .unwrap_or(3600);
    let _ = write!(
        out,
        r#"<line class="axis" x1="{x0}" y1="{base}" x2="{x1}" y2="{base}"/>"#
    );
    let mut s = 0;
    while f64::from(s) <= axis_s {
        let _ = write!(
            out,
            r#"<text class="tick" x="{tx:.1}" y="{ty}" text-anchor="middle">{s} s</text>"#,
            tx = x(f64::from(s)),
            ty = base + 14.0,
        );
        s += step;
    }
    let _ = write!(
        out,
        r#"<text class="tick" x="{x1}" y="{ty}" text-anchor="end">idle time (TCP_KEEPIDLE of the trial)</text>"#,
        ty = base + 27.0
    );
    for (i, t) in d.trials.iter().enumerate() {
        let cy = top + row * i as f64 + row / 2.0;
        let cx = x(f64::from(t.idle_s));
        let detail = trial_detail(t);
        if let Some(ms) = t.probe_idle_ms {
            let px = x(ms as f64 / 1000.0);
            let _ = write!(
                out,
                r#"<line class="probe-idle" x1="{cx:.1}" y1="{cy}" x2="{px:.1}" y2="{cy}"/>"#
            );
        }
        let shape = match t.outcome {
            TrialOutcome::Survived => format!(r#"<circle cx="{cx:.1}" cy="{cy}" r="4.5"/>"#),
            TrialOutcome::Cut => format!(
                r#"<path d="M{a:.1} {b:.1} l8 8 m0 -8 l-8 8"/>"#,
                a = cx - 4.0,
                b = cy - 4.0
            ),
            TrialOutcome::Aborted => format!(r#"<circle cx="{cx:.1}" cy="{cy}" r="4"/>"#),
        };
        let _ = write!(
            out,
            r#"<g data-trial="{name}" data-idle-s="{idle}" class="{name}">{shape}<title>idle {idle} s: {name}, {}</title></g>"#,
            Esc(&detail),
            name = t.outcome.name(),
            idle = t.idle_s,
        );
    }
    out.push_str("</svg>");
    out.push_str(r#"<p class="legend"><span><i class="sw" style="background:#2e7d32"></i>survived</span><span><i class="sw" style="background:#c62828"></i>cut</span><span><i class="sw" style="border:1px solid #888"></i>aborted (no verdict: moot, or interrupted)</span><span><i class="sw" style="background:#fdd835"></i>bracket</span><span>— line to where the first probe really left</span></p>"#);
    out.push_str(r#"<table class="trials"><tr><th class="num">idle</th><th>outcome</th><th>how</th><th class="num">first probe at idle</th><th class="num">rtt</th><th>connection</th></tr>"#);
    for t in &d.trials {
        let _ = write!(
            out,
            r#"<tr><td class="num">{} s</td><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
            t.idle_s,
            t.outcome.name(),
            Esc(&t.how),
            t.probe_idle_ms
                .map_or(String::new(), |ms| format!("{:.2} s", ms as f64 / 1000.0)),
            t.rtt_us.map_or(String::new(), micros),
            t.local.map_or(String::new(), |a| a.to_string()),
        );
    }
    out.push_str("</table>");
}

pub fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn trial_detail(t: &super::discover::TrialMark) -> String {
    let mut text = t.how.replace('_', " ");
    if let Some(rtt) = t.rtt_us {
        text.push_str(&format!(" in {}", micros(rtt)));
    }
    if let Some(ms) = t.probe_idle_ms {
        text.push_str(&format!(
            " (first probe at idle {:.2} s)",
            ms as f64 / 1000.0
        ));
    }
    text
}

/// discover's answer in its own words.
fn conclusion(d: &Discover) -> String {
    let prefix = match d.complete {
        Some(true) => "result",
        Some(false) => "interrupted, so far",
        None => "no result line (discover did not finish)",
    };
    let text = match (d.survives_s, d.cut_s) {
        (Some(y), Some(x)) => format!(
            "{prefix}: idle ≥ {x} s is cut, idle ≤ {y} s survives; set TCP_KEEPIDLE ≤ {y} s{}",
            d.recommended_idle_s
                .map_or(String::new(), |r| format!(" (recommended: {r} s)"))
        ),
        (None, Some(x)) => {
            format!("{prefix}: idle ≥ {x} s is cut and no shorter idle was seen surviving")
        }
        (Some(y), None) => format!("{prefix}: nothing was cut: idle flows survive at least {y} s"),
        (None, None) => format!("{prefix}: no trial finished"),
    };
    let elapsed = d
        .elapsed_s
        .map_or(String::new(), |s| format!(", in {s:.0} s"));
    format!(
        r#"<p class="verdict" data-discover="1">{}</p><p class="note">{} trials{elapsed}.</p>"#,
        Esc(&text),
        d.trials.len()
    )
}
