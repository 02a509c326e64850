//! The layout model: which connections get a lane, in which order, and
//! which marks each lane shows, with the histograms and counts that take in
//! everything else. Fed one input at a time; memory grows with the number
//! of connections (up to a cap), never with the number of events.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

pub use super::lane::{Dropped, End, Fate, Interest, Lane, MARKS_PER_LANE, Mark, MarkKind};
use super::{
    discover::{self, Discover},
    input::{ConnEvent, ConnKind, Input},
};
use crate::model::{conn::Conn, summary::Samples};

/// Lanes drawn unless `--lanes` says otherwise.
pub const DEFAULT_LANES: usize = 200;
/// Connections kept one by one (about 200 bytes each, and up to
/// [`MARKS_PER_LANE`] marks of 32 bytes: at most ~120 MB in all); past
/// that, a healthy one makes room for one with trouble, and healthy
/// newcomers are only counted.
pub const MAX_TRACKED: usize = 100_000;
/// Round-trip bins: bin i holds [2^i, 2^(i+1)) µs, the last everything above.
pub const RTT_BINS: usize = 25;
/// Detection time against prediction, in percent of the prediction: the
/// edges between bins (the first bin takes everything below −5 %, the
/// last everything from +100 %).
pub const LATENESS_EDGES_PCT: [i64; 7] = [-5, 0, 5, 10, 25, 50, 100];
pub const LATENESS_BINS: usize = LATENESS_EDGES_PCT.len() + 1;

/// Counts over every event, drawn or not.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub connections: u64,
    pub probes: u64,
    pub answered: u64,
    pub unanswered: u64,
    pub resets: u64,
    pub timeouts: BTreeMap<String, u64>,
    pub options_set: u64,
    pub options_failed: u64,
    pub rtt_us: Samples,
    pub detect_ms: Samples,
    pub rtt_bins: [u64; RTT_BINS],
    pub lateness_bins: [u64; LATENESS_BINS],
    /// Timeouts without both detect_ms and predicted_ms.
    pub unpredicted: u64,
    pub lost: u64,
    pub first_us: Option<i64>,
    pub last_us: Option<i64>,
    /// Events of connections not kept one by one (past [`MAX_TRACKED`]).
    pub untracked_events: u64,
    /// Healthy connections let go to make room for ones with trouble.
    pub evicted: u64,
}

pub fn rtt_bin(rtt_us: u64) -> usize {
    (rtt_us.max(1).ilog2() as usize).min(RTT_BINS - 1)
}

pub fn lateness_bin(detect_ms: u64, predicted_ms: u64) -> usize {
    let pct = (detect_ms as f64 - predicted_ms as f64) * 100.0 / predicted_ms.max(1) as f64;
    LATENESS_EDGES_PCT
        .iter()
        .filter(|&&edge| pct >= edge as f64)
        .count()
}

impl Totals {
    fn on(&mut self, ev: &ConnEvent) {
        self.first_us = Some(self.first_us.map_or(ev.ts_us, |t| t.min(ev.ts_us)));
        self.last_us = Some(self.last_us.map_or(ev.ts_us, |t| t.max(ev.ts_us)));
        match &ev.kind {
            ConnKind::Probe { .. } => self.probes += 1,
            ConnKind::Ack { rtt_us, .. } => {
                self.answered += 1;
                self.rtt_us.record(*rtt_us);
                self.rtt_bins[rtt_bin(*rtt_us)] += 1;
            }
            ConnKind::Unanswered { .. } => self.unanswered += 1,
            ConnKind::Timeout {
                reason,
                detect_ms,
                predicted_ms,
                ..
            } => {
                *self.timeouts.entry(reason.clone()).or_default() += 1;
                if let Some(d) = detect_ms {
                    self.detect_ms.record(*d);
                }
                match (detect_ms, predicted_ms) {
                    (Some(d), Some(p)) => self.lateness_bins[lateness_bin(*d, *p)] += 1,
                    _ => self.unpredicted += 1,
                }
            }
            ConnKind::Reset { .. } => self.resets += 1,
            ConnKind::OptionsSet { result } => {
                self.options_set += 1;
                if *result != 0 {
                    self.options_failed += 1;
                }
            }
        }
    }
}

/// Fed inputs one at a time; [`Layout::finish`] lays out the page.
#[derive(Debug)]
pub struct Layout {
    lanes: usize,
    max_tracked: usize,
    conns: HashMap<Conn, Lane, foldhash::fast::RandomState>,
    /// Healthy connections to let go first when full.
    evict_next: Vec<Conn>,
    totals: Totals,
    summaries: Vec<Value>,
    verdicts: Vec<Value>,
    trials: Vec<Value>,
    result: Option<Value>,
    unknown: BTreeMap<String, u64>,
}

/// What the page shows.
#[derive(Debug, Clone)]
pub struct Page {
    pub lanes: Vec<Lane>,
    /// Connections without a lane, by interest.
    pub left_out: BTreeMap<Interest, u64>,
    /// The time axis of the lanes (µs), when there is one.
    pub span_us: Option<(i64, i64)>,
    pub totals: Totals,
    pub summaries: Vec<Value>,
    pub verdicts: Vec<Value>,
    pub discover: Option<Discover>,
    pub unknown: BTreeMap<String, u64>,
}

impl Page {
    /// Nothing the page could show.
    pub fn is_empty(&self) -> bool {
        self.totals.connections == 0
            && self.totals.untracked_events == 0
            && self.totals.lost == 0
            && self.summaries.is_empty()
            && self.verdicts.is_empty()
            && self.discover.is_none()
    }
}

impl Layout {
    pub fn new(lanes: usize) -> Self {
        Self::with_cap(lanes, MAX_TRACKED)
    }

    /// With a smaller cap on connections kept one by one, for tests.
    pub fn with_cap(lanes: usize, max_tracked: usize) -> Self {
        Self {
            lanes,
            max_tracked: max_tracked.max(1),
            conns: HashMap::default(),
            evict_next: Vec::new(),
            totals: Totals::default(),
            summaries: Vec::new(),
            verdicts: Vec::new(),
            trials: Vec::new(),
            result: None,
            unknown: BTreeMap::new(),
        }
    }

    pub fn push(&mut self, input: Input) {
        match input {
            Input::Conn(ev) => self.push_conn(&ev),
            Input::Lost { count, .. } => self.totals.lost += count,
            Input::Summary(v) => self.summaries.push(v),
            Input::Verdict(v) => self.verdicts.push(v),
            Input::Trial(v) => self.trials.push(v),
            Input::Result(v) => self.result = Some(v),
            Input::Unknown(name) => *self.unknown.entry(name).or_default() += 1,
        }
    }

    pub fn push_conn(&mut self, ev: &ConnEvent) {
        self.totals.on(ev);
        if !self.conns.contains_key(&ev.conn) && !self.make_room(ev) {
            self.totals.untracked_events += 1;
            return;
        }
        let lane = self.conns.entry(ev.conn).or_insert_with(|| {
            self.totals.connections += 1;
            Lane::new(ev)
        });
        lane.on(ev);
    }

    /// Whether `ev`'s connection, not yet kept, may be.
    fn make_room(&mut self, ev: &ConnEvent) -> bool {
        if self.conns.len() < self.max_tracked {
            return true;
        }
        if matches!(ev.kind, ConnKind::Probe { .. } | ConnKind::Ack { .. }) {
            return false;
        }
        if self.evict_next.is_empty() {
            self.evict_next = self
                .conns
                .values()
                .filter(|l| l.interest == Interest::Healthy)
                .map(|l| l.conn)
                .take(1024)
                .collect();
        }
        while let Some(conn) = self.evict_next.pop() {
            if self
                .conns
                .get(&conn)
                .is_some_and(|l| l.interest == Interest::Healthy)
            {
                self.conns.remove(&conn);
                self.totals.evicted += 1;
                return true;
            }
        }
        false
    }

    pub fn finish(self) -> Page {
        let mut all: Vec<Lane> = self.conns.into_values().collect();
        let discover = discover::lay_out(&self.trials, self.result.as_ref(), &all);
        let shown = self.lanes.min(all.len());
        if shown < all.len() {
            all.select_nth_unstable_by_key(shown, Lane::order_key);
        }
        let mut left_out = BTreeMap::new();
        for lane in all.drain(shown..) {
            *left_out.entry(lane.interest).or_default() += 1;
        }
        all.sort_unstable_by_key(Lane::order_key);
        let span_us = all
            .iter()
            .flat_map(|l| {
                [
                    Some(l.drawn_from_us()),
                    Some(l.last_us),
                    l.predicted_kill_us(),
                ]
            })
            .flatten()
            .fold(None, |span: Option<(i64, i64)>, t| {
                Some(span.map_or((t, t), |(a, b)| (a.min(t), b.max(t))))
            });
        Page {
            lanes: all,
            left_out,
            span_us,
            totals: self.totals,
            summaries: self.summaries,
            verdicts: self.verdicts,
            discover,
            unknown: self.unknown,
        }
    }
}
