//! The pictures, as inline SVG: a swimlane per connection on one time
//! axis, and the histograms. Every mark carries `data-mark` (probe, ack,
//! unanswered, kill, predicted, reset, options) so that a reader, or a
//! test, can count them, and a `<title>` that says what it is on hover.

use std::fmt::Write as _;

use super::{
    escape::Esc,
    layout::{End, Fate, Lane, Mark, MarkKind, Page},
    sections::plural,
    words::{axis_label, fit, micros, millis, nice_step, settings, time_of_day},
};

const WIDTH: f64 = 1360.0;
const PLOT_X0: f64 = 310.0;
const PLOT_X1: f64 = 1070.0;
const OUTCOME_X: f64 = 1082.0;
const AXIS_H: f64 = 28.0;
const LANE_H: f64 = 32.0;
/// What fits left of the plot in the 11 px monospace font.
const LABEL_CHARS: usize = 46;

/// Maps Unix µs onto the plot.
struct TimeAxis {
    t0: i64,
    t1: i64,
}

impl TimeAxis {
    fn new((start, end): (i64, i64)) -> Self {
        // A little room either side so the first and last marks are not on the edge.
        let pad = ((end - start) / 25).max(50_000);
        Self {
            t0: start - pad,
            t1: end + pad,
        }
    }

    /// Clamped to the plot: a silence that began before the axis starts at its edge.
    fn x(&self, ts_us: i64) -> f64 {
        let x =
            PLOT_X0 + (ts_us - self.t0) as f64 * (PLOT_X1 - PLOT_X0) / (self.t1 - self.t0) as f64;
        x.clamp(PLOT_X0, PLOT_X1)
    }
}

/// The swimlanes, or nothing when no lane is drawn.
pub fn lanes(page: &Page, out: &mut String) {
    let (Some(span), false) = (page.span_us, page.lanes.is_empty()) else {
        return;
    };
    let axis = TimeAxis::new(span);
    let height = AXIS_H + LANE_H * page.lanes.len() as f64 + 6.0;
    let _ = write!(
        out,
        r#"<svg class="lanes" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="keepalive timeline, one lane per connection">"#
    );
    time_ticks(&axis, height, out);
    let _ = write!(
        out,
        r#"<text class="head" x="10" y="14">connection, settings</text><text class="head" x="{OUTCOME_X}" y="14">outcome</text>"#
    );
    for (i, lane) in page.lanes.iter().enumerate() {
        let top = AXIS_H + LANE_H * i as f64;
        lane_row(&axis, lane, top, i, out);
    }
    out.push_str("</svg>");
}

fn time_ticks(axis: &TimeAxis, height: f64, out: &mut String) {
    let step = nice_step(axis.t1 - axis.t0, 8);
    let mut t = axis.t0.div_euclid(step) * step + step;
    while t < axis.t1 {
        let x = axis.x(t);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{height}"/><text class="tick" x="{x:.1}" y="{y}" text-anchor="middle">{}</text>"#,
            axis_label(t, step),
            y0 = AXIS_H - 4.0,
            y = AXIS_H - 8.0,
        );
        t += step;
    }
}

fn lane_row(axis: &TimeAxis, lane: &Lane, top: f64, index: usize, out: &mut String) {
    let mid = top + LANE_H / 2.0;
    let (text_y, settings_y) = (top + 13.0, top + 26.0);
    let _ = write!(
        out,
        r#"<g class="lane {slug}" data-lane="{index}" data-interest="{slug}"><rect class="row{odd}" x="0" y="{top}" width="{WIDTH}" height="{LANE_H}"/><rect class="badge" x="0" y="{top}" width="4" height="{LANE_H}"/>"#,
        slug = lane.interest.slug(),
        odd = if index % 2 == 1 { " odd" } else { "" },
    );
    let owner = lane
        .owner
        .as_ref()
        .map_or(String::new(), |o| format!("  {}/{}", o.comm, o.pid));
    let full = format!("{} > {}{owner}", lane.conn.local, lane.conn.remote);
    let _ = write!(
        out,
        r#"<text class="conn" x="10" y="{text_y}">{}<title>{}</title></text>"#,
        Esc(&fit(&full, LABEL_CHARS)),
        Esc(&full),
    );
    if lane.keepalive_off() {
        let _ = write!(
            out,
            r#"<text class="settings warn" data-warning="keepalive-off" x="10" y="{settings_y}">⚠ keepalive off<title>SO_KEEPALIVE is off on this socket: nothing will notice a dead peer while it idles</title></text>"#
        );
    } else {
        let _ = write!(
            out,
            r#"<text class="settings" x="10" y="{settings_y}">{}</text>"#,
            settings(lane.config.as_ref())
        );
    }
    let _ = write!(
        out,
        r#"<line class="track" x1="{PLOT_X0}" y1="{mid}" x2="{PLOT_X1}" y2="{mid}"/>"#
    );
    if lane.dropped.probes + lane.dropped.other > 0 {
        let d = lane.dropped;
        let _ = write!(
            out,
            r#"<text class="dropped" x="{x:.1}" y="{y}">+{n} earlier<title>{n} earlier marks not drawn: {} probes ({} answered, {} unanswered), {} others; counted in the totals</title></text>"#,
            d.probes,
            d.answered,
            d.unanswered,
            d.other,
            n = d.probes + d.other,
            x = PLOT_X0 + 2.0,
            y = top + 9.0,
        );
    }
    for mark in &lane.marks {
        draw_mark(axis, mark, top, out);
    }
    if let Some(end) = lane.end.as_deref() {
        draw_end(axis, lane, end, top, out);
    }
    let _ = write!(
        out,
        r#"<text class="outcome" x="{OUTCOME_X}" y="{y}">{}</text></g>"#,
        Esc(&outcome(lane)),
        y = mid + 4.0,
    );
}

fn outcome(lane: &Lane) -> String {
    match lane.end.as_deref() {
        Some(End::Timeout {
            reason,
            detect_ms,
            predicted_ms,
            ..
        }) => format!(
            "✕ {reason} {}{}",
            detect_ms.map_or("?".into(), millis),
            predicted_ms.map_or(String::new(), |p| format!(", predicted {}", millis(p)))
        ),
        Some(End::Reset { after_probe, .. }) => match after_probe {
            Some(n) => format!("reset after probe #{n}"),
            None => "reset".into(),
        },
        None if lane.unanswered > 0 => {
            format!("{} unanswered, {} answered", lane.unanswered, lane.answered)
        }
        None => match lane.max_rtt_us {
            Some(max) => format!("{} answered, max {}", lane.answered, micros(max)),
            None => plural(u64::from(lane.probes), "probe"),
        },
    }
}

fn draw_mark(axis: &TimeAxis, mark: &Mark, top: f64, out: &mut String) {
    let x = axis.x(mark.ts_us);
    let mid = top + LANE_H / 2.0;
    let at = time_of_day(mark.ts_us);
    match &mark.kind {
        MarkKind::Probe { n, idle_ms, fate } => {
            let fate_class = match fate {
                Fate::Pending => "pending",
                Fate::Answered { .. } => "answered",
                Fate::Unanswered { .. } => "unanswered",
            };
            let idle = idle_ms.map_or(String::new(), |ms| format!(", idle {ms} ms"));
            let _ = write!(
                out,
                r#"<line data-mark="probe" data-n="{n}" class="probe {fate_class}" x1="{x:.1}" y1="{y1}" x2="{x:.1}" y2="{mid}"><title>probe #{n} at {at}{idle}</title></line>"#,
                y1 = top + 3.0,
            );
            match fate {
                Fate::Answered { rtt_us } => {
                    let ax = axis.x(mark.ts_us + i64::from(*rtt_us)).max(x + 3.0);
                    let _ = write!(
                        out,
                        r#"<g data-mark="ack" data-n="{n}" data-rtt-us="{rtt_us}" class="ack"><line class="join" x1="{x:.1}" y1="{mid}" x2="{ax:.1}" y2="{y}"/><circle cx="{ax:.1}" cy="{y}" r="2.6"/><title>probe #{n} answered in {}</title></g>"#,
                        micros(u64::from(*rtt_us)),
                        y = top + LANE_H - 6.0,
                    );
                }
                Fate::Unanswered { said_after_ms } => unanswered_cross(
                    x,
                    top,
                    *n,
                    &format!(
                        " (said at {}, when the next probe left or the kill came)",
                        time_of_day(mark.ts_us + i64::from(*said_after_ms) * 1000)
                    ),
                    out,
                ),
                Fate::Pending => {}
            }
        }
        MarkKind::LoneAck { n, rtt_us } => {
            let _ = write!(
                out,
                r#"<g data-mark="ack" data-n="{n}" data-rtt-us="{rtt_us}" class="ack lone"><circle cx="{x:.1}" cy="{y}" r="2.6"/><title>probe #{n} answered in {} at {at} (its probe is not in the input)</title></g>"#,
                micros(u64::from(*rtt_us)),
                y = top + LANE_H - 6.0,
            );
        }
        MarkKind::LoneUnanswered { n } => unanswered_cross(
            x,
            top,
            *n,
            &format!(" at {at} (its probe is not in the input)"),
            out,
        ),
        MarkKind::OptionsSet { result } => {
            let what = if *result == 0 {
                "keepalive options set by the policy".to_string()
            } else {
                format!("the policy's options failed (result {result})")
            };
            let _ = write!(
                out,
                r#"<path data-mark="options" class="options{}" d="M{x:.1} {y0} l-4 -6 h8 z"><title>{what} at {at}</title></path>"#,
                if *result == 0 { "" } else { " failed" },
                y0 = top + 8.0,
            );
        }
    }
}

fn unanswered_cross(x: f64, top: f64, n: u32, when: &str, out: &mut String) {
    let y = top + LANE_H - 9.0;
    let _ = write!(
        out,
        r#"<path data-mark="unanswered" data-n="{n}" class="unanswered" d="M{x0:.1} {y} l6 6 m0 -6 l-6 6"><title>probe #{n} unanswered{}</title></path>"#,
        Esc(when),
        x0 = x - 3.0,
    );
}

fn draw_end(axis: &TimeAxis, lane: &Lane, end: &End, top: f64, out: &mut String) {
    let (y0, y1) = (top + 1.0, top + LANE_H - 1.0);
    match end {
        End::Timeout {
            ts_us,
            reason,
            probes,
            detect_ms,
            predicted_ms,
        } => {
            let kx = axis.x(*ts_us);
            let mid = top + LANE_H / 2.0;
            if let Some(d) = detect_ms {
                // The silence: from the peer's last segment to the kill.
                let from = axis.x(ts_us - *d as i64 * 1000);
                let _ = write!(
                    out,
                    r#"<line class="silence" x1="{from:.1}" y1="{mid}" x2="{kx:.1}" y2="{mid}"/>"#
                );
            }
            if let Some(px) = lane.predicted_kill_us().map(|t| axis.x(t)) {
                let _ = write!(
                    out,
                    r#"<line data-mark="predicted" class="predicted" x1="{px:.1}" y1="{y0}" x2="{px:.1}" y2="{y1}"><title>the settings predict the kill here: {} after the peer's last segment</title></line>"#,
                    predicted_ms.map_or("?".into(), millis),
                );
            }
            let _ = write!(
                out,
                r#"<g data-mark="kill" data-reason="{reason}" class="kill"><line x1="{kx:.1}" y1="{y0}" x2="{kx:.1}" y2="{y1}"/><title>timeout ({reason}) at {} after {probes} unanswered: dead for {}{}</title></g>"#,
                time_of_day(*ts_us),
                detect_ms.map_or("?".into(), millis),
                predicted_ms.map_or(String::new(), |p| format!(
                    " (settings predict {})",
                    millis(p)
                )),
                reason = Esc(reason),
            );
        }
        End::Reset { ts_us, after_probe } => {
            let x = axis.x(*ts_us);
            let mid = top + LANE_H / 2.0;
            let _ = write!(
                out,
                r#"<path data-mark="reset" class="reset" d="M{x:.1} {a} l5 5 l-5 5 l-5 -5 z"><title>peer reset at {}{}</title></path>"#,
                time_of_day(*ts_us),
                after_probe.map_or(String::new(), |n| format!(", after probe #{n}")),
                a = mid - 5.0,
            );
        }
    }
}

/// A bar chart: one bar per `(label, count, hover)`, with an optional
/// dashed marker between two bars (`marker_after`, its label).
pub fn bars(
    class: &str,
    bins: &[(String, u64, String)],
    marker: Option<(usize, &str)>,
    out: &mut String,
) {
    let (h, left, bottom) = (200.0, 24.0, 34.0);
    let max = bins.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
    let slot = (600.0 / bins.len().max(1) as f64).min(64.0);
    let w = (left + slot * bins.len() as f64 + 90.0).max(260.0);
    let plot_h = h - bottom - 30.0;
    let _ = write!(
        out,
        r#"<svg class="bars {class}" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">"#
    );
    let base = h - bottom;
    let _ = write!(
        out,
        r#"<line class="axis" x1="{left}" y1="{base}" x2="{x2}" y2="{base}"/>"#,
        x2 = left + slot * bins.len() as f64
    );
    for (i, (label, count, hover)) in bins.iter().enumerate() {
        let x = left + slot * i as f64;
        let bh = *count as f64 / max * plot_h;
        let _ = write!(
            out,
            r#"<g data-bin="{i}" data-count="{count}"><rect x="{bx:.1}" y="{by:.1}" width="{bw:.1}" height="{bh:.1}"/><text class="count" x="{cx:.1}" y="{ty:.1}" text-anchor="middle">{count}</text><text class="label" x="{cx:.1}" y="{ly}" text-anchor="middle">{}</text><title>{}</title></g>"#,
            Esc(label),
            Esc(hover),
            bx = x + 2.0,
            by = base - bh,
            bw = (slot - 4.0).max(1.0),
            cx = x + slot / 2.0,
            ty = base - bh - 3.0,
            ly = base + 14.0,
        );
    }
    if let Some((after, label)) = marker {
        let x = left + slot * (after + 1) as f64;
        let _ = write!(
            out,
            r#"<line class="marker" x1="{x:.1}" y1="4" x2="{x:.1}" y2="{y2}"/><text class="marker-label" x="{tx:.1}" y="12">{}</text>"#,
            Esc(label),
            y2 = base + 4.0,
            tx = x + 4.0,
        );
    }
    out.push_str("</svg>");
}
