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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Layout, Meta, read_ndjson, render};

    fn layout_of(ndjson: &str) -> Layout {
        let mut layout = Layout::new(200);
        read_ndjson(ndjson.as_bytes(), "test", &mut layout).expect("our own lines");
        layout
    }

    fn lay_out(ndjson: &str) -> crate::report::layout::Page {
        layout_of(ndjson).finish()
    }

    fn html_of(ndjson: &str) -> String {
        let meta = Meta {
            source: "discover.ndjson".into(),
            lines: None,
            lanes_asked: 200,
        };
        render(layout_of(ndjson), &meta)
    }

    fn count(html: &str, needle: &str) -> usize {
        html.matches(needle).count()
    }

    /// `discover --json` against a 3 s middlebox, with one trial closed as moot
    /// before its verdict (a connection the stream shows, without a trial line).
    const DISCOVER: &str = r#"{"event":"probe","ts":"2026-11-24T22:00:02.010000Z","src":"10.250.0.1:40001","dst":"10.250.0.2:8080","config":{"keepalive":true,"idle_s":2,"intvl_s":1,"cnt":2,"user_timeout_ms":0},"n":1,"idle_ms":2010}
    {"event":"ack","ts":"2026-11-24T22:00:02.010090Z","src":"10.250.0.1:40001","dst":"10.250.0.2:8080","config":{"keepalive":true,"idle_s":2,"intvl_s":1,"cnt":2,"user_timeout_ms":0},"n":1,"rtt_us":90}
    {"event":"trial","idle_s":2,"outcome":"survived","how":"answered","probe":1,"probe_at":"2026-11-24T22:00:02.010000Z","probe_idle_ms":2010,"rtt_us":90,"ended_after_ms":null,"local":"10.250.0.1:40001","remote":"10.250.0.2:8080"}
    {"event":"probe","ts":"2026-11-24T22:00:04.020000Z","src":"10.250.0.1:40002","dst":"10.250.0.2:8080","config":{"keepalive":true,"idle_s":4,"intvl_s":1,"cnt":2,"user_timeout_ms":0},"n":1,"idle_ms":4020}
    {"event":"probe","ts":"2026-11-24T22:00:05.044000Z","src":"10.250.0.1:40003","dst":"10.250.0.2:8080","config":{"keepalive":true,"idle_s":5,"intvl_s":1,"cnt":2,"user_timeout_ms":0},"n":1,"idle_ms":5044}
    {"event":"unanswered","ts":"2026-11-24T22:00:05.044000Z","src":"10.250.0.1:40002","dst":"10.250.0.2:8080","n":1}
    {"event":"timeout","ts":"2026-11-24T22:00:06.068000Z","src":"10.250.0.1:40002","dst":"10.250.0.2:8080","reason":"keepalive","probes":2,"detect_ms":6068,"predicted_ms":6000}
    {"event":"trial","idle_s":4,"outcome":"cut","how":"unanswered","probe":2,"probe_at":"2026-11-24T22:00:04.020000Z","probe_idle_ms":4020,"rtt_us":null,"ended_after_ms":6070,"local":"10.250.0.1:40002","remote":"10.250.0.2:8080"}
    {"event":"trial","idle_s":3,"outcome":"cut","how":"reset","probe":1,"probe_at":null,"probe_idle_ms":3011,"rtt_us":null,"ended_after_ms":3012,"local":"10.250.0.1:40004","remote":"10.250.0.2:8080"}
    {"event":"result","target":"10.250.0.2:8080","max_s":12,"complete":true,"survives_s":2,"cut_s":3,"recommended_idle_s":1,"contradictions":[],"elapsed_s":9.4,"evidence":[]}
    "#;

    #[test]
    fn discover_trials_lie_on_the_idle_axis_with_bracket_and_recommendation() {
        let page = lay_out(DISCOVER);
        let d = page.discover.as_ref().expect("a discover section");
        let trials: Vec<(u32, TrialOutcome)> =
            d.trials.iter().map(|t| (t.idle_s, t.outcome)).collect();
        assert_eq!(
            trials,
            [
                (2, TrialOutcome::Survived),
                (4, TrialOutcome::Cut),
                (3, TrialOutcome::Cut),
                (5, TrialOutcome::Aborted),
            ]
        );
        assert_eq!(
            (d.survives_s, d.cut_s, d.recommended_idle_s, d.complete),
            (Some(2), Some(3), Some(1), Some(true))
        );
        let html = html_of(DISCOVER);
        assert_eq!(count(&html, r#"data-trial="survived""#), 1);
        assert_eq!(count(&html, r#"data-trial="cut""#), 2);
        assert_eq!(count(&html, r#"data-trial="aborted""#), 1);
        assert_eq!(count(&html, r#"data-bracket="2-3""#), 1);
        assert_eq!(count(&html, r#"data-recommended="1""#), 1);
        assert!(html.contains(
            "result: idle ≥ 3 s is cut, idle ≤ 2 s survives; set TCP_KEEPIDLE ≤ 2 s (recommended: 1 s)"
        ));
        // Without its trial lines, the result's evidence tells the same.
        let only_result = r#"{"event":"result","target":"10.250.0.2:8080","max_s":5,"complete":false,"survives_s":5,"cut_s":null,"recommended_idle_s":5,"contradictions":[],"elapsed_s":7.0,"evidence":[{"idle_s":5,"outcome":"survived","how":"answered","probe":1,"probe_at":null,"probe_idle_ms":5003,"rtt_us":70,"ended_after_ms":null,"local":"10.250.0.1:40009","remote":"10.250.0.2:8080"}]}"#;
        let page = lay_out(only_result);
        let d = page.discover.unwrap();
        assert_eq!(
            (d.trials.len(), d.cut_s, d.complete),
            (1, None, Some(false))
        );
        assert!(html_of(only_result).contains("interrupted, so far: nothing was cut"));
    }
}
