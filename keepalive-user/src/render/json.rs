//! One JSON object per line for scripts; the field names are a contract
//! (README's event table).

use serde_json::{Value, json};

use super::clock::Clock;
use crate::model::{
    config::Config,
    owner::Attribution,
    summary::{Samples, Summary},
    timeline::Record,
};

pub fn config_json(config: &Config) -> Value {
    serde_json::to_value(config).unwrap_or(Value::Null)
}

pub fn record_json(clock: &Clock, record: &Record, attribution: &Attribution) -> Value {
    let mut v = json!({
        "event": record.report.event_name(),
        "ts": clock.rfc3339(record.ts_ns),
        "src": record.conn.local.to_string(),
        "dst": record.conn.remote.to_string(),
    });
    let map = v.as_object_mut().expect("object");
    if record.conn.netns != 0 {
        map.insert("netns".into(), json!(record.conn.netns));
    }
    if let Some(name) = &attribution.netns_name {
        map.insert("netns_name".into(), json!(&**name));
    }
    if let Some(owner) = attribution.first_owner() {
        map.insert("pid".into(), json!(owner.pid));
        map.insert("comm".into(), json!(&*owner.comm));
    }
    if attribution.owners.len() > 1 {
        let holders: Vec<Value> = attribution
            .owners
            .iter()
            .map(|h| json!({"pid": h.owner.pid, "comm": &*h.owner.comm, "fd": h.fd}))
            .collect();
        map.insert("holders".into(), Value::Array(holders));
    }
    if let Some(config) = &record.config {
        map.insert("config".into(), config_json(config));
    }
    if let Ok(Value::Object(fields)) = serde_json::to_value(&record.report) {
        map.extend(fields);
    }
    v
}

pub fn lost_json(clock: &Clock, ts_ns: u64, count: u64) -> Value {
    json!({"event": "lost", "ts": clock.rfc3339(ts_ns), "count": count})
}

fn pcts(samples: &Samples) -> Value {
    json!({
        "p50": samples.percentile(50.0),
        "p90": samples.percentile(90.0),
        "p99": samples.percentile(99.0),
        "max": samples.max(),
        "count": samples.count(),
    })
}

pub fn summary_json(summary: &Summary, elapsed_s: f64) -> Value {
    json!({
        "event": "summary",
        "elapsed_s": (elapsed_s * 1000.0).round() / 1000.0,
        "connections": summary.connections,
        "probes": summary.probes,
        "answered": summary.answered,
        "answered_by_traffic": summary.answered_by_traffic,
        "unanswered": summary.unanswered,
        "resets": summary.resets,
        "connect_failures": summary.connect_failures,
        "timeouts": summary.timeouts,
        "rtt_us": pcts(&summary.rtt_us),
        "detect_ms": pcts(&summary.detect_ms),
        "lost": summary.lost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model::owner::{Holder, Owner},
        model::timeline::{Reason, Report},
        render::sample_record as record,
    };

    #[test]
    fn json_follows_the_contract() {
        let clock = Clock::with_offset(1_795_000_000_000_000_000);
        let owner = Attribution {
            owners: vec![Holder {
                owner: Owner {
                    pid: 42,
                    comm: "server".into(),
                },
                fd: 3,
            }]
            .into(),
            ..Attribution::default()
        };
        let v = record_json(
            &clock,
            &record(Report::Probe {
                n: 2,
                idle_ms: Some(2000),
            }),
            &owner,
        );
        assert_eq!(v["event"], "probe");
        assert_eq!(v["ts"], "2026-11-18T11:06:41.500000Z");
        assert_eq!(v["src"], "[::1]:40000");
        assert_eq!(v["dst"], "[::1]:5000");
        assert_eq!(v["pid"], 42);
        assert_eq!(v["comm"], "server");
        assert_eq!(v["n"], 2);
        assert_eq!(v["idle_ms"], 2000);
        assert_eq!(
            v["config"],
            json!({"keepalive": true, "idle_s": 1, "intvl_s": 1, "cnt": 3, "user_timeout_ms": 0})
        );
        let t = record_json(
            &clock,
            &record(Report::Timeout {
                reason: Reason::UserTimeout,
                probes: 1,
                detect_ms: Some(3001),
                predicted_ms: Some(3000),
            }),
            &Attribution::default(),
        );
        assert_eq!(
            (t["event"].as_str(), t["reason"].as_str()),
            (Some("timeout"), Some("user_timeout"))
        );
        assert_eq!(
            (t["probes"].as_u64(), t["detect_ms"].as_u64()),
            (Some(1), Some(3001))
        );
        assert!(t.get("pid").is_none());
        let ack = record_json(
            &clock,
            &record(Report::Ack { n: 1, rtt_us: 37 }),
            &Attribution::default(),
        );
        assert_eq!(ack["rtt_us"], 37);
        let reset = record_json(
            &clock,
            &record(Report::Reset {
                after_probe: Some(2),
            }),
            &Attribution::default(),
        );
        assert_eq!(
            (reset["event"].as_str(), reset["n"].as_u64()),
            (Some("reset"), Some(2))
        );
        let keys: Vec<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "event",
                "ts",
                "src",
                "dst",
                "netns",
                "config",
                "reason",
                "probes",
                "detect_ms",
                "predicted_ms"
            ]
        );
        assert_eq!(lost_json(&clock, 0, 7)["count"], 7);
    }

    #[test]
    fn summary_has_percentiles_and_lost() {
        let summary = Summary {
            detect_ms: [4000].into_iter().collect(),
            ..Summary::default()
        };
        let v = summary_json(&summary, 10.0);
        assert_eq!(v["detect_ms"]["p99"], 4000);
        assert_eq!(v["lost"], 0);
    }
}
