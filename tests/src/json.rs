//! Reading what `keepalive` and `tcp-peer` print as JSON: one value per
//! line, event names, and the keepalive settings in a `config` object.

use serde_json::{Map, Value};

/// One JSON value per line of `stdout`; a line that is not JSON fails the test.
pub fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// The `event` name of a watch line (`probe`, `ack`, `timeout`, ...), or "".
pub fn event(v: &Value) -> &str {
    v["event"].as_str().unwrap_or("")
}

/// A predicate for `Watch::next_matching` and friends: the event is `name`.
pub fn is(name: &'static str) -> impl Fn(&Value) -> bool {
    move |v| event(v) == name
}

/// (SO_KEEPALIVE, idle s, interval s, count) from a `config` object.
pub fn keepalive_settings(config: &Value) -> (bool, u64, u64, u64) {
    (
        config["keepalive"].as_bool().unwrap_or(false),
        config["idle_s"].as_u64().unwrap_or(0),
        config["intvl_s"].as_u64().unwrap_or(0),
        config["cnt"].as_u64().unwrap_or(0),
    )
}

/// (idle s, interval s, count, user timeout ms) of an event's `config`.
pub fn timing_of(event: &Value) -> (u64, u64, u64, u64) {
    let c = &event["config"];
    (
        c["idle_s"].as_u64().unwrap_or(0),
        c["intvl_s"].as_u64().unwrap_or(0),
        c["cnt"].as_u64().unwrap_or(0),
        c["user_timeout_ms"].as_u64().unwrap_or(0),
    )
}

/// An object with only `keys` of `v` (a missing key becomes `null`), to
/// compare several settings at once with `json!({...})`.
pub fn pick(v: &Value, keys: &[&str]) -> Value {
    let picked: Map<String, Value> = keys
        .iter()
        .map(|&key| (key.to_owned(), v[key].clone()))
        .collect();
    Value::Object(picked)
}
