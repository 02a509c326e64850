//! discover's answer laid out on an idle-time axis: each trial survived,
//! cut, or aborted (a trial connection the stream shows that never got a
//! verdict: closed as moot, or discover was interrupted), with the bracket
//! and the recommendation from its `result`.

use std::{collections::HashSet, net::SocketAddr};

use serde_json::Value;

use super::layout::Lane;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialOutcome {
    Survived,
    Cut,
    Aborted,
}

impl TrialOutcome {
    pub fn name(self) -> &'static str {
        match self {
            Self::Survived => "survived",
            Self::Cut => "cut",
            Self::Aborted => "aborted",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrialMark {
    pub idle_s: u32,
    pub outcome: TrialOutcome,
    /// discover's own word for how it was settled (`answered`, `reset`, ...).
    pub how: String,
    pub probe_idle_ms: Option<u64>,
    pub rtt_us: Option<u64>,
    pub local: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Discover {
    pub target: Option<String>,
    pub max_s: Option<u32>,
    pub survives_s: Option<u32>,
    pub cut_s: Option<u32>,
    pub recommended_idle_s: Option<u32>,
    /// None: no `result` line (discover did not get that far).
    pub complete: Option<bool>,
    pub elapsed_s: Option<f64>,
    /// In the order they were settled; aborted ones last.
    pub trials: Vec<TrialMark>,
}

fn u32_of(v: &Value, key: &str) -> Option<u32> {
    v.get(key)?.as_u64().and_then(|n| u32::try_from(n).ok())
}

fn trial_mark(v: &Value) -> Option<TrialMark> {
    let outcome = match v.get("outcome")?.as_str()? {
        "survived" => TrialOutcome::Survived,
        "cut" => TrialOutcome::Cut,
        _ => TrialOutcome::Aborted,
    };
    Some(TrialMark {
        idle_s: u32_of(v, "idle_s")?,
        outcome,
        how: v
            .get("how")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        probe_idle_ms: v.get("probe_idle_ms").and_then(Value::as_u64),
        rtt_us: v.get("rtt_us").and_then(Value::as_u64),
        local: v
            .get("local")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok()),
    })
}

/// None when the input has neither a trial nor a result.
pub fn lay_out(trials: &[Value], result: Option<&Value>, lanes: &[Lane]) -> Option<Discover> {
    if trials.is_empty() && result.is_none() {
        return None;
    }
    // The result repeats every trial as evidence; the stream's own lines
    // come first when both are there.
    let evidence = result
        .and_then(|r| r.get("evidence"))
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let source = if trials.is_empty() { evidence } else { trials };
    let mut marks: Vec<TrialMark> = source.iter().filter_map(trial_mark).collect();
    let settled: HashSet<SocketAddr> = marks.iter().filter_map(|t| t.local).collect();
    let mut aborted: Vec<TrialMark> = lanes
        .iter()
        .filter(|l| !settled.contains(&l.conn.local))
        .filter_map(|l| {
            Some(TrialMark {
                idle_s: l.config?.idle_s,
                outcome: TrialOutcome::Aborted,
                how: "no verdict".into(),
                probe_idle_ms: None,
                rtt_us: None,
                local: Some(l.conn.local),
            })
        })
        .collect();
    aborted.sort_by_key(|t| (t.idle_s, t.local));
    marks.extend(aborted);
    let best = |outcome: TrialOutcome, pick: fn(u32, u32) -> u32| {
        marks
            .iter()
            .filter(|t| t.outcome == outcome)
            .map(|t| t.idle_s)
            .reduce(pick)
    };
    let from_result = |key: &str| result.and_then(|r| u32_of(r, key));
    Some(Discover {
        target: result
            .and_then(|r| r.get("target"))
            .and_then(Value::as_str)
            .map(String::from),
        max_s: from_result("max_s"),
        survives_s: if result.is_some() {
            from_result("survives_s")
        } else {
            best(TrialOutcome::Survived, u32::max)
        },
        cut_s: if result.is_some() {
            from_result("cut_s")
        } else {
            best(TrialOutcome::Cut, u32::min)
        },
        recommended_idle_s: from_result("recommended_idle_s"),
        complete: result
            .and_then(|r| r.get("complete"))
            .and_then(Value::as_bool),
        elapsed_s: result
            .and_then(|r| r.get("elapsed_s"))
            .and_then(Value::as_f64),
        trials: marks,
    })
}
