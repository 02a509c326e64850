//! What `discover` tells the user: one line (or JSON object) per answered
//! trial, and the result with its evidence.

use std::{net::SocketAddr, time::Duration};

use serde::Serialize;
use serde_json::{Value, json};

use super::search::IdleSearch;

/// How a trial's question was answered, in the words of the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialAnswer {
    /// A keepalive probe was answered: the path still knew the flow.
    Answered,
    /// Every probe went unanswered and the kernel gave up (ETIMEDOUT).
    Unanswered,
    /// A probe was answered with RST: the path (or the server's kernel) no
    /// longer knew the flow.
    Reset,
    /// A RST arrived while the connection idled, before any probe: some
    /// firewalls reset both ends when they drop a flow.
    ResetWhileIdle,
}

impl TrialAnswer {
    pub fn survived(self) -> bool {
        self == Self::Answered
    }
}

/// One trial's answer: which probe, when, and what came back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub idle_s: u32,
    pub outcome: &'static str,
    pub how: TrialAnswer,
    /// The probe that settled it (the kernel's numbering, from 1).
    pub probe: Option<u32>,
    /// When the first probe left (RFC 3339) and after how long a silence,
    /// as the kernel measured it.
    pub probe_at: Option<String>,
    pub probe_idle_ms: Option<u64>,
    pub rtt_us: Option<u64>,
    /// How long after the connection was opened it ended (cut trials).
    pub ended_after_ms: Option<u64>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

impl Evidence {
    pub fn json(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        value["event"] = json!("trial");
        value
    }

    pub fn line(&self) -> String {
        let probe = self.probe.map_or(String::new(), |n| format!("probe #{n}"));
        let idle = self.probe_idle_ms.map_or(String::new(), |ms| {
            format!(" (first probe at idle {})", seconds(ms))
        });
        let detail = match self.how {
            TrialAnswer::Answered => format!(
                "{probe} answered in {} us{idle}",
                self.rtt_us.unwrap_or_default()
            ),
            TrialAnswer::Unanswered => match self.probe {
                Some(1) | None => format!("probe #1 unanswered, the kernel gave up{idle}"),
                Some(n) => format!("probes #1..#{n} unanswered, the kernel gave up{idle}"),
            },
            TrialAnswer::Reset => format!("{probe} answered with RST{idle}"),
            TrialAnswer::ResetWhileIdle => format!(
                "reset while idle, before any probe, {} after connecting",
                self.ended_after_ms.map_or("?".into(), seconds)
            ),
        };
        format!(
            "idle {:>5} s  {:<8}  {detail}  [{} -> {}]",
            self.idle_s, self.outcome, self.local, self.remote
        )
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.2} s", ms as f64 / 1000.0)
}

/// TCP_KEEPIDLE to recommend, only once a cut was seen with a survivor
/// below it: a fifth under the survivor, because the kernel's timer wheel
/// fires long timers up to an eighth late and middleboxes do not expire
/// flows to the second. Without a cut there is no timeout to stay under,
/// and the longest survivor is no recommendation, only what was proven.
pub fn recommended_idle_s(survives_s: Option<u32>, cut_s: Option<u32>) -> Option<u32> {
    match (survives_s, cut_s) {
        (Some(s), Some(_)) => Some((s * 4 / 5).max(1)),
        _ => None,
    }
}

/// What the evidence amounts to, as the result's `finding` names it.
fn finding_name(survives_s: Option<u32>, cut_s: Option<u32>) -> &'static str {
    match (survives_s, cut_s) {
        (Some(_), Some(_)) => "bracket",
        (Some(_), None) => "no_cut",
        (None, Some(_)) => "cut_only",
        (None, None) => "nothing",
    }
}

/// The final answer.
#[derive(Debug, Clone)]
pub struct Finding {
    pub target: SocketAddr,
    pub max_s: u32,
    pub survives_s: Option<u32>,
    pub cut_s: Option<u32>,
    pub complete: bool,
    pub contradictions: Vec<(u32, u32)>,
    pub evidence: Vec<Evidence>,
    pub elapsed: Duration,
}

impl Finding {
    pub fn from_search(
        search: &IdleSearch,
        target: SocketAddr,
        max_s: u32,
        evidence: Vec<Evidence>,
        elapsed: Duration,
    ) -> Self {
        Self {
            target,
            max_s,
            survives_s: Some(search.survives_s()).filter(|&s| s > 0),
            cut_s: search.cut_s(),
            complete: search.done(),
            contradictions: search.contradictions(),
            evidence,
            elapsed,
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "event": "result",
            "target": self.target.to_string(),
            "max_s": self.max_s,
            "complete": self.complete,
            "finding": finding_name(self.survives_s, self.cut_s),
            "survives_s": self.survives_s,
            "cut_s": self.cut_s,
            "recommended_idle_s": recommended_idle_s(self.survives_s, self.cut_s),
            "contradictions": self.contradictions.iter()
                .map(|(survived, cut)| json!({"survived_s": survived, "cut_s": cut}))
                .collect::<Vec<_>>(),
            "elapsed_s": (self.elapsed.as_secs_f64() * 10.0).round() / 10.0,
            "evidence": self.evidence.iter().map(|e| serde_json::to_value(e).unwrap_or(Value::Null)).collect::<Vec<_>>(),
        })
    }

    pub fn text(&self) -> String {
        let mut lines = Vec::new();
        let prefix = if self.complete {
            "result"
        } else {
            "interrupted, so far"
        };
        lines.push(match (self.survives_s, self.cut_s) {
            (Some(y), Some(x)) => format!(
                "{prefix}: idle >= {x} s is cut, idle <= {y} s survives; set TCP_KEEPIDLE <= {y} s (recommended: {} s)",
                recommended_idle_s(self.survives_s, self.cut_s).unwrap_or(1)
            ),
            (None, Some(x)) => format!(
                "{prefix}: idle >= {x} s is cut and no shorter idle was seen surviving{}",
                if x <= 1 {
                    "; the path forgets flows within a second, keepalive cannot hold them open"
                } else {
                    ""
                }
            ),
            (Some(y), None) if self.complete => format!(
                "{prefix}: no cut up to {y} s (--max): a flow idle {y} s was still known to the path; no recommendation, there is no timeout here to stay under (a larger --max looks further)"
            ),
            (Some(y), None) => format!(
                "{prefix}: no cut up to {y} s (--max {} not reached): a flow idle {y} s was still known to the path; no recommendation without a cut",
                self.max_s
            ),
            (None, None) => format!("{prefix}: no trial finished"),
        });
        for (survived, cut) in &self.contradictions {
            lines.push(format!(
                "note: idle {survived} s survived although {cut} s was cut: the path does not expire flows at one fixed idle time"
            ));
        }
        lines.push(format!(
            "({} trials in {:.0} s)",
            self.evidence.len(),
            self.elapsed.as_secs_f64()
        ));
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::search::TrialOutcome as Trial;

    fn evidence(idle_s: u32, how: TrialAnswer) -> Evidence {
        Evidence {
            idle_s,
            outcome: if how.survived() { "survived" } else { "cut" },
            how,
            probe: Some(if how == TrialAnswer::Unanswered { 2 } else { 1 }),
            probe_at: Some("2026-11-24T22:00:00.000000Z".into()),
            probe_idle_ms: Some(u64::from(idle_s) * 1000 + 12),
            rtt_us: (how == TrialAnswer::Answered).then_some(57),
            ended_after_ms: None,
            local: "10.0.0.1:40000".parse().unwrap(),
            remote: "10.0.0.2:80".parse().unwrap(),
        }
    }

    #[test]
    fn recommendation_keeps_a_margin_under_the_survivor() {
        assert_eq!(recommended_idle_s(Some(7), Some(8)), Some(5));
        assert_eq!(recommended_idle_s(Some(1), Some(2)), Some(1));
        assert_eq!(recommended_idle_s(Some(300), Some(330)), Some(240));
        assert_eq!(
            recommended_idle_s(Some(20), None),
            None,
            "no margin-free number without a cut"
        );
        assert_eq!(recommended_idle_s(None, Some(1)), None);
    }

    #[test]
    fn result_json_is_the_contract() {
        let mut search = IdleSearch::new(20);
        search.resolve(7, Trial::Survived);
        search.resolve(8, Trial::Cut);
        let outcome = Finding::from_search(
            &search,
            "10.0.0.2:80".parse().unwrap(),
            20,
            vec![
                evidence(7, TrialAnswer::Answered),
                evidence(8, TrialAnswer::Unanswered),
            ],
            Duration::from_millis(21_340),
        );
        let v = outcome.json();
        assert_eq!(v["event"], "result");
        assert_eq!(v["survives_s"], 7);
        assert_eq!(v["cut_s"], 8);
        assert_eq!(v["recommended_idle_s"], 5);
        assert_eq!(v["finding"], "bracket");
        assert_eq!(v["complete"], true);
        assert_eq!(v["elapsed_s"], 21.3);
        assert_eq!(v["evidence"][1]["how"], "unanswered");
        assert_eq!(v["evidence"][1]["probe"], 2);
        assert_eq!(v["evidence"][0]["rtt_us"], 57);
        assert!(
            outcome
                .text()
                .starts_with("result: idle >= 8 s is cut, idle <= 7 s survives; set TCP_KEEPIDLE <= 7 s (recommended: 5 s)"),
            "{}",
            outcome.text()
        );
    }

    #[test]
    fn nothing_cut_reports_survival_up_to_max() {
        let mut search = IdleSearch::new(6);
        search.resolve(6, Trial::Survived);
        let outcome = Finding::from_search(
            &search,
            "[fd00::2]:80".parse().unwrap(),
            6,
            vec![evidence(6, TrialAnswer::Answered)],
            Duration::from_secs(7),
        );
        let v = outcome.json();
        assert_eq!(
            (v["survives_s"].clone(), v["cut_s"].clone()),
            (json!(6), Value::Null)
        );
        assert_eq!(v["target"], "[fd00::2]:80");
        assert_eq!(v["finding"], "no_cut");
        assert_eq!(v["recommended_idle_s"], Value::Null);
        assert_eq!(
            outcome.text().lines().next().unwrap(),
            "result: no cut up to 6 s (--max): a flow idle 6 s was still known to the path; no recommendation, there is no timeout here to stay under (a larger --max looks further)"
        );
    }

    #[test]
    fn an_early_end_with_no_cut_recommends_nothing() {
        // Interrupted after the shortest trial of a --max 60 run.
        let mut search = IdleSearch::new(60);
        for idle_s in [60, 16, 4] {
            search.start(idle_s);
        }
        search.resolve(4, Trial::Survived);
        let outcome = Finding::from_search(
            &search,
            "10.0.0.2:80".parse().unwrap(),
            60,
            vec![evidence(4, TrialAnswer::Answered)],
            Duration::from_secs(5),
        );
        let v = outcome.json();
        assert_eq!(v["complete"], false);
        assert_eq!(v["finding"], "no_cut");
        assert_eq!(v["survives_s"], 4, "what was proven");
        assert_eq!(v["recommended_idle_s"], Value::Null, "{v}");
        let text = outcome.text();
        assert!(
            text.starts_with("interrupted, so far: no cut up to 4 s (--max 60 not reached)")
                && text.contains("no recommendation without a cut")
                && !text.contains("recommended"),
            "{text}"
        );
    }

    #[test]
    fn trial_lines_name_the_probe_and_the_answer() {
        let answered = evidence(4, TrialAnswer::Answered);
        assert_eq!(answered.json()["event"], "trial");
        assert_eq!(answered.json()["outcome"], "survived");
        let line = answered.line();
        assert!(
            line.contains("survived") && line.contains("probe #1 answered in 57 us"),
            "{line}"
        );
        assert!(line.contains("first probe at idle 4.01 s"), "{line}");
        let line = evidence(9, TrialAnswer::Unanswered).line();
        assert!(
            line.contains("probes #1..#2 unanswered, the kernel gave up"),
            "{line}"
        );
        let line = evidence(9, TrialAnswer::Reset).line();
        assert!(line.contains("probe #1 answered with RST"), "{line}");
    }
}
