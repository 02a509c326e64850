//! The observer that `watch`, `set --new`, `demo`, `discover` and the
//! benchmarks share: it owns the loaded programs, reads the ring, runs the
//! pipeline and reports lost events.

use crate::{
    host::{owners::OwnerCache, sysctl::keepalive_defaults},
    kernel::{
        LoadOptions, Observer,
        ring::{EventRing, LostCounter},
    },
    model::{
        filter::ConnFilter,
        summary::Summary,
        timeline::{TimelineOptions, Timelines},
    },
    observe::pipeline::{Observation, Pipeline},
    render::clock::Clock,
};

pub struct Watcher {
    observer: Observer,
    ring: EventRing,
    lost: LostCounter,
    lost_reported: u64,
    pipeline: Pipeline,
}

impl Watcher {
    /// Loads and attaches; must run inside a tokio runtime.
    pub fn start(load: &LoadOptions, filter: ConnFilter, pid: Option<u32>) -> anyhow::Result<Self> {
        Self::start_with(load, filter, pid, false)
    }

    /// `start`, also reporting connects that failed (`watch --all`).
    pub fn start_with(
        load: &LoadOptions,
        filter: ConnFilter,
        pid: Option<u32>,
        connect_failures: bool,
    ) -> anyhow::Result<Self> {
        // Before attaching: the first scan of every process's fds takes
        // long enough with many sockets open to overflow the ring.
        let owners = OwnerCache::primed(pid);
        let mut observer = Observer::load(load)?;
        let ring = EventRing::new(observer.take_events()?)?;
        let lost = observer.take_lost_counter()?;
        let timelines = Timelines::new(TimelineOptions {
            defaults: Some(keepalive_defaults()),
            only_seen_by_cgroup_hooks: load.cgroup.is_some(),
            connect_failures,
        });
        let pipeline = Pipeline::new(timelines, filter, pid, owners);
        Ok(Self {
            observer,
            ring,
            lost,
            lost_reported: 0,
            pipeline,
        })
    }

    /// Lines name a connection's namespace when it is not `netns` (by
    /// default this process's): demo's connections live in its lab.
    pub fn set_home_netns(&mut self, netns: crate::model::conn::NetnsIno) {
        self.pipeline.own_netns = netns;
    }

    pub fn observer(&self) -> &Observer {
        &self.observer
    }

    pub fn summary(&self) -> &Summary {
        &self.pipeline.timelines.summary
    }

    /// Waits until the kernel has something to show, then returns it, at
    /// most a ring batch at a time.
    pub async fn next_observations(&mut self) -> anyhow::Result<Vec<Observation>> {
        loop {
            let mut out = Vec::new();
            let pipeline = &mut self.pipeline;
            let full = self
                .ring
                .read_batch(|bytes| pipeline.take(bytes, &mut out))
                .await?;
            pipeline.release_held(false, &mut out);
            self.ring.note_batch(!out.is_empty());
            if !out.is_empty() || full {
                return Ok(out);
            }
        }
    }

    /// Whatever is left in the ring, without waiting (used at exit).
    pub fn drain_now(&mut self) -> Vec<Observation> {
        let mut out = Vec::new();
        let pipeline = &mut self.pipeline;
        self.ring.drain_now(|bytes| pipeline.take(bytes, &mut out));
        pipeline.release_held(true, &mut out);
        out
    }

    /// Housekeeping for a periodic tick: connections closed a moment ago
    /// are forgotten, and any probe they left unanswered is reported.
    pub fn expire(&mut self) -> Vec<Observation> {
        let (records, forgotten) = self.pipeline.timelines.expire(Clock::monotonic_now_ns());
        let mut out = Vec::new();
        self.pipeline.show_records(records, &mut out);
        self.pipeline.release_held(false, &mut out);
        for conn in &forgotten {
            self.pipeline.owners.forget(conn);
        }
        if !forgotten.is_empty() {
            self.pipeline.owners.trim();
        }
        out
    }

    /// Events the ring could not take since the last call, if any.
    pub fn poll_lost(&mut self) -> anyhow::Result<Option<Observation>> {
        self.observer.flush_kernel_logs();
        let total = self.lost.total()?;
        if total <= self.lost_reported {
            return Ok(None);
        }
        let count = total - self.lost_reported;
        self.lost_reported = total;
        self.pipeline.timelines.summary.lost += count;
        Ok(Some(Observation::Lost {
            ts_ns: Clock::monotonic_now_ns(),
            count,
        }))
    }

    pub fn decode_errors(&self) -> u64 {
        self.pipeline.decode_errors
    }

    /// Connections remembered (timelines, owner inodes, held): the memory
    /// that must stay bounded.
    pub fn remembered(&self) -> (usize, usize, usize) {
        (
            self.pipeline.timelines.tracked(),
            self.pipeline.owners.remembered().1,
            self.pipeline.held(),
        )
    }
}
