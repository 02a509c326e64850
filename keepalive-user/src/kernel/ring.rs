//! Reading the kernel's event ring buffer, and the count of events it could
//! not take.

use std::time::Duration;

use aya::maps::{MapData, PerCpuArray, RingBuf};
use tokio::io::unix::AsyncFd;

/// How often the ring is read while events flow, whatever the kernel's
/// notifications do. Keepalive timers of 1 s fire in bursts every 32 ms
/// here (the timer wheel's granularity at that range, HZ=250), so "flowing"
/// must outlast the gaps between bursts.
const BUSY_POLL_INTERVAL: Duration = Duration::from_millis(1);
/// ... and when nothing came for a while. With the reader caught up the
/// notification does come (within a tick here), so this is only the bound
/// for one that never does; polling every 5 ms cost an idle watch 1 % of a
/// core.
const IDLE_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Empty polls in a row (100 ms) after which the slower interval applies.
const IDLE_POLLS: u32 = 100;
/// Records handed over before the lines they make are written: a batch
/// waits for its last record, and at 100 000 events a second an unbounded
/// drain held lines back for tens of milliseconds.
pub const MAX_BATCH: usize = 256;

/// The ring, read in batches.
///
/// The kernel's "new data" notification cannot be relied on for latency:
/// it is sent only when the reader had caught up, and on this kernel the
/// benchmarks saw it arrive up to 0.16 s late with the ring filling at
/// 100 000 events a second. So the ring is also polled: every
/// `BUSY_POLL_INTERVAL` while events flow, every `IDLE_POLL_INTERVAL` after
/// `IDLE_POLLS` empty polls in a row.
pub struct EventRing {
    ring: AsyncFd<RingBuf<MapData>>,
    empty_polls: u32,
    more_waiting: bool,
}

impl EventRing {
    /// Must run inside a tokio runtime.
    pub fn new(ring: RingBuf<MapData>) -> anyhow::Result<Self> {
        // SAFETY: the ring buffer owns its fd and lives inside the AsyncFd,
        // so the fd stays open, and the same, for as long as it is registered.
        let ring = unsafe { AsyncFd::register(ring) }
            .map_err(|e| anyhow::anyhow!("polling the ring buffer: {e}"))?;
        Ok(Self {
            ring,
            empty_polls: 0,
            more_waiting: false,
        })
    }

    /// Waits until the kernel has records (or the poll interval passed),
    /// then hands up to `MAX_BATCH` of them to `take`. True when the batch
    /// was full: more may be waiting.
    pub async fn read_batch(&mut self, take: impl FnMut(&[u8])) -> std::io::Result<bool> {
        let full = if self.more_waiting {
            // More is waiting: no need to ask the kernel.
            tokio::task::yield_now().await;
            drain(self.ring.get_mut(), MAX_BATCH, take)
        } else {
            let poll_interval = if self.empty_polls < IDLE_POLLS {
                BUSY_POLL_INTERVAL
            } else {
                IDLE_POLL_INTERVAL
            };
            match tokio::time::timeout(poll_interval, self.ring.readable_mut()).await {
                Ok(guard) => {
                    let mut guard = guard?;
                    let full = drain(guard.get_inner_mut(), MAX_BATCH, take);
                    guard.clear_ready();
                    full
                }
                Err(_elapsed) => drain(self.ring.get_mut(), MAX_BATCH, take),
            }
        };
        self.more_waiting = full;
        Ok(full)
    }

    /// Says whether the last batch gave anything to show: records that
    /// were all filtered out count as an empty poll.
    pub fn note_batch(&mut self, showed_something: bool) {
        if showed_something || self.more_waiting {
            self.empty_polls = 0;
        } else {
            self.empty_polls = self.empty_polls.saturating_add(1);
        }
    }

    /// Whatever is left, without waiting (used at exit).
    pub fn drain_now(&mut self, take: impl FnMut(&[u8])) {
        drain(self.ring.get_mut(), usize::MAX, take);
    }
}

/// True when it took `max_records` (more may be waiting).
fn drain(ring: &mut RingBuf<MapData>, max_records: usize, mut take: impl FnMut(&[u8])) -> bool {
    let mut taken = 0;
    while taken < max_records
        && let Some(record) = ring.next()
    {
        taken += 1;
        take(&record);
    }
    taken == max_records
}

/// The per-CPU count of ring reservations that failed (the ring was full).
pub struct LostCounter {
    map: PerCpuArray<MapData, u64>,
}

impl LostCounter {
    pub fn new(map: PerCpuArray<MapData, u64>) -> Self {
        Self { map }
    }

    /// Total events lost since load, summed over CPUs.
    pub fn total(&self) -> anyhow::Result<u64> {
        Ok(self.map.get(&0, 0)?.iter().sum())
    }
}
