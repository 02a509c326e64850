//! The layout model: which connections get a lane, in which order, and
//! which marks each lane shows, with the histograms and counts that take in
//! everything else. Fed one input at a time; memory grows with the number
//! of connections (up to a cap), never with the number of events.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde_json::Value;

use super::{
    discover::{self, Discover},
    input::{ConnEvent, ConnKind, Input},
};
use crate::model::{config::Config, conn::Conn, owner::Owner, summary::Samples};

/// Lanes drawn unless `--lanes` says otherwise.
pub const DEFAULT_LANES: usize = 200;
/// Probe marks kept per connection: the latest, where a death is told.
pub const MARKS_PER_LANE: usize = 32;
/// Connections kept one by one (a few hundred bytes each); past that, a
/// healthy one makes room for one with trouble, and healthy newcomers are
/// only counted.
pub const MAX_TRACKED: usize = 200_000;
/// Round-trip bins: bin i holds [2^i, 2^(i+1)) µs, the last everything above.
pub const RTT_BINS: usize = 25;
/// Detection time against prediction, in percent of the prediction: the
/// edges between bins (the first bin takes everything below −5 %, the
/// last everything from +100 %).
pub const LATENESS_EDGES_PCT: [i64; 7] = [-5, 0, 5, 10, 25, 50, 100];
pub const LATENESS_BINS: usize = LATENESS_EDGES_PCT.len() + 1;

/// Interest, most first: the order of the lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Interest {
    TimedOut,
    Reset,
    Unanswered,
    Healthy,
}

impl Interest {
    pub const ALL: [Self; 4] = [Self::TimedOut, Self::Reset, Self::Unanswered, Self::Healthy];

    pub fn name(self) -> &'static str {
        match self {
            Self::TimedOut => "timed out",
            Self::Reset => "reset",
            Self::Unanswered => "unanswered probes",
            Self::Healthy => "healthy",
        }
    }

    /// For CSS classes and data attributes.
    pub fn slug(self) -> &'static str {
        match self {
            Self::TimedOut => "timeout",
            Self::Reset => "reset",
            Self::Unanswered => "unanswered",
            Self::Healthy => "healthy",
        }
    }
}

/// What became of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// No answer yet and none said missing: the input ended first.
    Pending,
    Answered {
        rtt_us: u64,
    },
    /// `said_us`: when watch said so (the next probe, or the kill).
    Unanswered {
        said_us: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkKind {
    Probe {
        n: u32,
        idle_ms: Option<u64>,
        fate: Fate,
    },
    /// An answer or a missing answer whose probe is not in the input
    /// (it began later, or the event was lost): drawn on its own.
    LoneAck {
        n: u32,
        rtt_us: u64,
    },
    LoneUnanswered {
        n: u32,
    },
    OptionsSet {
        result: i32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub ts_us: i64,
    pub kind: MarkKind,
}

/// How a connection ended, when the input says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    Timeout {
        ts_us: i64,
        reason: String,
        probes: u32,
        detect_ms: Option<u64>,
        predicted_ms: Option<u64>,
    },
    Reset {
        ts_us: i64,
        after_probe: Option<u32>,
    },
}

/// Marks that fell out of a lane's window, by what they were.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    pub probes: u32,
    pub answered: u32,
    pub unanswered: u32,
    pub other: u32,
}

/// One connection as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Lane {
    pub conn: Conn,
    pub interest: Interest,
    pub first_us: i64,
    pub last_us: i64,
    /// The latest settings read from the socket.
    pub config: Option<Config>,
    pub owner: Option<Owner>,
    pub probes: u32,
    pub answered: u32,
    pub unanswered: u32,
    pub max_rtt_us: Option<u64>,
    pub end: Option<End>,
    pub marks: VecDeque<Mark>,
    pub dropped: Dropped,
}

impl Lane {
    fn new(ev: &ConnEvent) -> Self {
        Self {
            conn: ev.conn,
            interest: Interest::Healthy,
            first_us: ev.ts_us,
            last_us: ev.ts_us,
            config: None,
            owner: None,
            probes: 0,
            answered: 0,
            unanswered: 0,
            max_rtt_us: None,
            end: None,
            marks: VecDeque::new(),
            dropped: Dropped::default(),
        }
    }

    /// Sorting key within the page: interest, then the more trouble (more
    /// unanswered probes, a detection further off its prediction, slower
    /// answers) first, then the earlier.
    fn order_key(&self) -> (Interest, u32, u64, u64, i64, Conn) {
        let off_prediction = match &self.end {
            Some(End::Timeout {
                detect_ms: Some(d),
                predicted_ms: Some(p),
                ..
            }) => d.abs_diff(*p),
            _ => 0,
        };
        (
            self.interest,
            u32::MAX - self.unanswered,
            u64::MAX - off_prediction,
            u64::MAX - self.max_rtt_us.unwrap_or(0),
            self.first_us,
            self.conn,
        )
    }

    /// Where the settings said the connection would be killed: the last
    /// segment from the peer (the kill minus detect_ms) plus predicted_ms.
    pub fn predicted_kill_us(&self) -> Option<i64> {
        match &self.end {
            Some(End::Timeout {
                ts_us,
                detect_ms: Some(d),
                predicted_ms: Some(p),
                ..
            }) => Some(ts_us - *d as i64 * 1000 + *p as i64 * 1000),
            _ => None,
        }
    }

    /// Where the lane's drawing starts: its first event, or its first kept
    /// mark once older ones fell out of the window.
    pub fn drawn_from_us(&self) -> i64 {
        match self.marks.front() {
            Some(m) if self.dropped != Dropped::default() => m.ts_us,
            _ => self.first_us,
        }
    }

    pub fn keepalive_off(&self) -> bool {
        self.config.is_some_and(|c| !c.keepalive)
    }

    fn push_mark(&mut self, mark: Mark) {
        if self.marks.len() == MARKS_PER_LANE
            && let Some(old) = self.marks.pop_front()
        {
            match old.kind {
                MarkKind::Probe { fate, .. } => {
                    self.dropped.probes += 1;
                    match fate {
                        Fate::Answered { .. } => self.dropped.answered += 1,
                        Fate::Unanswered { .. } => self.dropped.unanswered += 1,
                        Fate::Pending => {}
                    }
                }
                _ => self.dropped.other += 1,
            }
        }
        self.marks.push_back(mark);
    }

    /// The latest probe `n` still waiting for its answer.
    fn pending_probe(&mut self, n: u32) -> Option<&mut Fate> {
        self.marks.iter_mut().rev().find_map(|m| match &mut m.kind {
            MarkKind::Probe {
                n: pn,
                fate: fate @ Fate::Pending,
                ..
            } if *pn == n => Some(fate),
            _ => None,
        })
    }

    fn on(&mut self, ev: &ConnEvent) {
        self.last_us = self.last_us.max(ev.ts_us);
        self.first_us = self.first_us.min(ev.ts_us);
        if ev.config.is_some() {
            self.config = ev.config;
        }
        if self.owner.is_none() {
            self.owner.clone_from(&ev.owner);
        }
        let ts_us = ev.ts_us;
        match &ev.kind {
            ConnKind::Probe { n, idle_ms } => {
                self.probes += 1;
                self.push_mark(Mark {
                    ts_us,
                    kind: MarkKind::Probe {
                        n: *n,
                        idle_ms: *idle_ms,
                        fate: Fate::Pending,
                    },
                });
            }
            ConnKind::Ack { n, rtt_us } => {
                self.answered += 1;
                self.max_rtt_us = Some(self.max_rtt_us.unwrap_or(0).max(*rtt_us));
                match self.pending_probe(*n) {
                    Some(fate) => *fate = Fate::Answered { rtt_us: *rtt_us },
                    None => self.push_mark(Mark {
                        ts_us,
                        kind: MarkKind::LoneAck {
                            n: *n,
                            rtt_us: *rtt_us,
                        },
                    }),
                }
            }
            ConnKind::Unanswered { n } => {
                self.unanswered += 1;
                self.interest = self.interest.min(Interest::Unanswered);
                match self.pending_probe(*n) {
                    Some(fate) => *fate = Fate::Unanswered { said_us: ts_us },
                    None => self.push_mark(Mark {
                        ts_us,
                        kind: MarkKind::LoneUnanswered { n: *n },
                    }),
                }
            }
            ConnKind::Timeout {
                reason,
                probes,
                detect_ms,
                predicted_ms,
            } => {
                self.interest = Interest::TimedOut;
                self.end.get_or_insert(End::Timeout {
                    ts_us,
                    reason: reason.clone(),
                    probes: *probes,
                    detect_ms: *detect_ms,
                    predicted_ms: *predicted_ms,
                });
            }
            ConnKind::Reset { after_probe } => {
                self.interest = self.interest.min(Interest::Reset);
                self.end.get_or_insert(End::Reset {
                    ts_us,
                    after_probe: *after_probe,
                });
            }
            ConnKind::OptionsSet { result } => self.push_mark(Mark {
                ts_us,
                kind: MarkKind::OptionsSet { result: *result },
            }),
        }
    }
}

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
