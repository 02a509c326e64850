//! Which idle times to try next, and when the answer is known: the pure
//! part of `discover`.
//!
//! A trial at idle `s` is a connection whose first keepalive probe leaves
//! after `s` seconds of silence: answered means the path still knew the
//! flow (it survives idle `s`), unanswered or reset means it was cut. Idle
//! times are whole seconds because TCP_KEEPIDLE is. Trials run
//! concurrently and start whenever a slot frees, so a short trial's answer
//! narrows the bracket while long ones are still waiting.

use std::collections::BTreeSet;

/// The largest TCP_KEEPIDLE the kernel accepts (MAX_TCP_KEEPIDLE).
pub const MAX_IDLE_S: u32 = 32_767;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialOutcome {
    Survived,
    Cut,
}

#[derive(Debug, Clone)]
pub struct IdleSearch {
    max_s: u32,
    survived: BTreeSet<u32>,
    cut: BTreeSet<u32>,
    pending: BTreeSet<u32>,
}

/// The bracket is narrow enough once its width is at most a tenth of its
/// top (one second at least): a margin under the survivor covers that, and
/// each further halving of a long timeout costs another wait as long.
fn precision_s(hi_s: u32) -> u32 {
    (hi_s / 10).max(1)
}

impl IdleSearch {
    pub fn new(max_s: u32) -> Self {
        Self {
            max_s,
            survived: BTreeSet::new(),
            cut: BTreeSet::new(),
            pending: BTreeSet::new(),
        }
    }

    /// The longest idle to try (`--max`).
    pub fn max_s(&self) -> u32 {
        self.max_s
    }

    /// The shortest idle that was cut, if any.
    pub fn cut_s(&self) -> Option<u32> {
        self.cut.first().copied()
    }

    /// The longest idle that survived below the shortest cut (0: none yet).
    pub fn survives_s(&self) -> u32 {
        let below = self.cut_s().unwrap_or(u32::MAX);
        self.survived
            .range(..below)
            .next_back()
            .copied()
            .unwrap_or(0)
    }

    /// Survivors above a cut: the path did not behave like one fixed
    /// timeout (e.g. a middlebox under memory pressure evicting early).
    pub fn contradictions(&self) -> Vec<(u32, u32)> {
        match self.cut_s() {
            Some(cut) => self
                .survived
                .range(cut + 1..)
                .map(|&survived| (survived, cut))
                .collect(),
            None => Vec::new(),
        }
    }

    #[cfg(test)]
    pub fn pending(&self) -> impl Iterator<Item = u32> + '_ {
        self.pending.iter().copied()
    }

    /// The top of what is still unknown: the shortest cut, or `--max`
    /// (inclusive: it must be tried) while nothing was cut.
    fn upper_s(&self) -> u32 {
        self.cut_s().unwrap_or(self.max_s)
    }

    pub fn done(&self) -> bool {
        let lo = self.survives_s();
        match self.cut_s() {
            None => lo >= self.max_s,
            Some(hi) => hi - lo <= precision_s(hi),
        }
    }

    /// Pending trials whose answer no longer matters: at or above the
    /// shortest cut, or at or below the longest survivor.
    pub fn moot(&self) -> Vec<u32> {
        let (lo, cut) = (self.survives_s(), self.cut_s());
        self.pending
            .iter()
            .copied()
            .filter(|&s| s <= lo || cut.is_some_and(|c| s >= c) || self.done())
            .collect()
    }

    /// The idle to try in the next free slot, or None when no untried idle
    /// would narrow the bracket.
    pub fn next_idle(&self) -> Option<u32> {
        if self.done() {
            return None;
        }
        let lo = self.survives_s();
        let upper = self.upper_s();
        if self.cut_s().is_none() && !self.pending.contains(&upper) {
            // Surviving --max is the only proof that nothing cuts below it.
            return Some(upper);
        }
        let precision = precision_s(upper);
        let mut points = vec![lo];
        points.extend(self.pending.range(lo + 1..upper));
        points.push(upper);
        points
            .windows(2)
            .filter(|gap| gap[1] - gap[0] > precision)
            .filter_map(|gap| split(gap[0], gap[1]).map(|at| (gap_size(gap[0], gap[1]), at)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, at)| at)
    }

    pub fn start(&mut self, idle_s: u32) {
        self.pending.insert(idle_s);
    }

    /// A trial ended without an answer to its question (cancelled, failed).
    pub fn abandon(&mut self, idle_s: u32) {
        self.pending.remove(&idle_s);
    }

    pub fn resolve(&mut self, idle_s: u32, outcome: TrialOutcome) {
        self.pending.remove(&idle_s);
        match outcome {
            TrialOutcome::Survived => self.survived.insert(idle_s),
            TrialOutcome::Cut => self.cut.insert(idle_s),
        };
    }
}

/// How much a gap between two idles is worth splitting: timeouts spread
/// over orders of magnitude (30 s to 2 h), so wide ratios come first.
fn gap_size(lo: u32, hi: u32) -> f64 {
    f64::from(hi) / f64::from(lo.max(1))
}

/// Where to split (lo, hi): the geometric mean for wide ratios, the middle
/// for narrow ones; None when no whole second lies strictly inside.
fn split(lo: u32, hi: u32) -> Option<u32> {
    if hi <= lo + 1 {
        return None;
    }
    let base = f64::from(lo.max(1));
    let at = if f64::from(hi) / base > 2.0 {
        (base * f64::from(hi)).sqrt()
    } else {
        (f64::from(lo) + f64::from(hi)) / 2.0
    };
    let at = at.round() as u32;
    Some(at.clamp(lo + 1, hi - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search against a path that cuts flows idle `cut_at` seconds
    /// or more, one trial at a time in order of idle, and returns the
    /// result and the number of trials.
    fn simulate(max_s: u32, parallel: usize, cut_at: Option<u32>) -> (u32, Option<u32>, usize) {
        let mut search = IdleSearch::new(max_s);
        let mut trials = 0;
        while !search.done() {
            while search.pending().count() < parallel {
                let Some(idle) = search.next_idle() else {
                    break;
                };
                search.start(idle);
                trials += 1;
            }
            // The shortest pending trial answers first.
            let Some(idle) = search.pending().next() else {
                break;
            };
            let outcome = match cut_at {
                Some(cut) if idle >= cut => TrialOutcome::Cut,
                _ => TrialOutcome::Survived,
            };
            search.resolve(idle, outcome);
            for moot in search.moot() {
                search.abandon(moot);
            }
        }
        (search.survives_s(), search.cut_s(), trials)
    }

    #[test]
    fn finds_a_short_timeout_to_the_second() {
        for cut in 2..=19 {
            let (survives, cut_s, _) = simulate(20, 4, Some(cut));
            assert_eq!((survives, cut_s), (cut - 1, Some(cut)), "cut at {cut}");
        }
    }

    #[test]
    fn a_long_timeout_to_a_tenth() {
        let (survives, cut_s, trials) = simulate(7200, 4, Some(350));
        let cut_s = cut_s.unwrap();
        assert!(survives < 350 && cut_s >= 350, "{survives}..{cut_s}");
        assert!(cut_s - survives <= cut_s / 10, "{survives}..{cut_s}");
        assert!(trials <= 20, "{trials} trials");
    }

    #[test]
    fn nothing_cut_means_max_was_tried_and_survived() {
        let (survives, cut_s, trials) = simulate(30, 4, None);
        assert_eq!((survives, cut_s), (30, None));
        assert!(trials <= 12, "{trials} trials");
        let mut search = IdleSearch::new(30);
        assert_eq!(search.next_idle(), Some(30), "--max is tried first");
        search.start(30);
        assert!(search.next_idle().unwrap() < 30);
    }

    #[test]
    fn cut_at_the_shortest_idle() {
        // Even idle 1 s is cut: nothing survives, and the search must still
        // end (1 s was tried) instead of looking for a survivor below it.
        let (survives, cut_s, trials) = simulate(20, 4, Some(1));
        assert_eq!((survives, cut_s), (0, Some(1)));
        assert!((2..=8).contains(&trials), "{trials} trials");
        let mut search = IdleSearch::new(20);
        search.resolve(1, TrialOutcome::Cut);
        assert!(search.done());
        assert_eq!(search.next_idle(), None);
    }

    #[test]
    fn first_trials_spread_over_orders_of_magnitude() {
        let mut search = IdleSearch::new(7200);
        let mut idles = Vec::new();
        for _ in 0..4 {
            let idle = search.next_idle().unwrap();
            search.start(idle);
            idles.push(idle);
        }
        idles.sort_unstable();
        assert_eq!(idles.last(), Some(&7200));
        // Geometric: each is several times the one before.
        for pair in idles.windows(2) {
            assert!(pair[1] >= 3 * pair[0], "{idles:?}");
        }
    }

    #[test]
    fn moot_trials_are_those_outside_the_bracket() {
        let mut search = IdleSearch::new(100);
        for idle in [5, 20, 50, 100] {
            search.start(idle);
        }
        search.resolve(20, TrialOutcome::Cut);
        assert_eq!(search.moot(), vec![50, 100]);
        search.resolve(5, TrialOutcome::Survived);
        assert_eq!(search.survives_s(), 5);
        assert_eq!(search.cut_s(), Some(20));
    }

    #[test]
    fn a_survivor_above_a_cut_is_a_contradiction_not_the_result() {
        let mut search = IdleSearch::new(100);
        search.resolve(40, TrialOutcome::Survived);
        search.resolve(30, TrialOutcome::Cut);
        search.resolve(10, TrialOutcome::Survived);
        assert_eq!(search.survives_s(), 10);
        assert_eq!(search.contradictions(), vec![(40, 30)]);
    }

    #[test]
    fn splits_stay_strictly_inside() {
        assert_eq!(split(3, 4), None);
        assert_eq!(split(3, 5), Some(4));
        assert_eq!(split(0, 2), Some(1));
        let at = split(1, 7200).unwrap();
        assert!((80..=90).contains(&at), "{at}");
    }
}
