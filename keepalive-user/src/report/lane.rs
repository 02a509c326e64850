//! One connection's lane: its interest, its probe marks (each with what
//! became of it), how it ended, and the marks that fell out of its window.

use std::collections::VecDeque;

use super::input::{ConnEvent, ConnKind};
use crate::model::{config::Config, conn::Conn, owner::Owner};

/// Probe marks kept per connection: the latest, where a death is told.
pub const MARKS_PER_LANE: usize = 32;

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

/// What became of a probe. Narrow fields: every connection keeps up to
/// [`MARKS_PER_LANE`] of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// No answer yet and none said missing: the input ended first.
    Pending,
    Answered {
        rtt_us: u32,
    },
    /// When watch said so (the next probe, or the kill), after the probe.
    Unanswered {
        said_after_ms: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkKind {
    Probe {
        n: u32,
        idle_ms: Option<u32>,
        fate: Fate,
    },
    /// An answer or a missing answer whose probe is not in the input
    /// (it began later, or the event was lost): drawn on its own.
    LoneAck {
        n: u32,
        rtt_us: u32,
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
    pub end: Option<Box<End>>,
    pub marks: VecDeque<Mark>,
    pub dropped: Dropped,
}

impl Lane {
    pub(super) fn new(ev: &ConnEvent) -> Self {
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
    pub(super) fn order_key(&self) -> (Interest, u32, u64, u64, i64, Conn) {
        let off_prediction = match self.end.as_deref() {
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
        match self.end.as_deref() {
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

    /// A connection ends once: a second ending (a reused tuple, a reset
    /// after the kill) is counted in the totals but does not relabel the
    /// lane, so its label and its marks always agree.
    fn end_with(&mut self, interest: Interest, end: End) {
        if self.end.is_none() {
            self.interest = self.interest.min(interest);
            self.end = Some(Box::new(end));
        }
    }

    /// The latest probe `n` still waiting for its answer, and when it left.
    fn pending_probe(&mut self, n: u32) -> Option<(&mut Fate, i64)> {
        self.marks.iter_mut().rev().find_map(|m| match &mut m.kind {
            MarkKind::Probe {
                n: pn,
                fate: fate @ Fate::Pending,
                ..
            } if *pn == n => Some((fate, m.ts_us)),
            _ => None,
        })
    }

    pub(super) fn on(&mut self, ev: &ConnEvent) {
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
                        idle_ms: idle_ms.map(narrow),
                        fate: Fate::Pending,
                    },
                });
            }
            ConnKind::Ack { n, rtt_us } => {
                self.answered += 1;
                self.max_rtt_us = Some(self.max_rtt_us.unwrap_or(0).max(*rtt_us));
                let rtt_us = narrow(*rtt_us);
                match self.pending_probe(*n) {
                    Some((fate, _)) => *fate = Fate::Answered { rtt_us },
                    None => self.push_mark(Mark {
                        ts_us,
                        kind: MarkKind::LoneAck { n: *n, rtt_us },
                    }),
                }
            }
            ConnKind::Unanswered { n } => {
                self.unanswered += 1;
                self.interest = self.interest.min(Interest::Unanswered);
                match self.pending_probe(*n) {
                    Some((fate, sent_us)) => {
                        *fate = Fate::Unanswered {
                            said_after_ms: narrow(
                                ts_us.saturating_sub(sent_us).max(0) as u64 / 1000,
                            ),
                        }
                    }
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
            } => self.end_with(
                Interest::TimedOut,
                End::Timeout {
                    ts_us,
                    reason: reason.clone(),
                    probes: *probes,
                    detect_ms: *detect_ms,
                    predicted_ms: *predicted_ms,
                },
            ),
            ConnKind::Reset { after_probe } => self.end_with(
                Interest::Reset,
                End::Reset {
                    ts_us,
                    after_probe: *after_probe,
                },
            ),
            ConnKind::OptionsSet { result } => self.push_mark(Mark {
                ts_us,
                kind: MarkKind::OptionsSet { result: *result },
            }),
        }
    }
}

/// Saturates into a mark's narrow field (4 294 s, far beyond any keepalive).
fn narrow(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}
