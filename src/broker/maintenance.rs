//! Background work of a broker: retention and compaction on a schedule,
//! and the flush thread of `Durability::Interval` partitions.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::broker::BrokerState;
use crate::broker::stats::Counters;
use crate::broker::topic::Topic;
use crate::error::{Error, Result};
use crate::group::TopicPartition;
use crate::log::periodic::{Next, Periodic};

/// What one maintenance pass did.
#[derive(Debug, Default)]
pub struct MaintenanceReport {
    /// Partitions whose retention or compaction failed, with the error; the
    /// others were still maintained.
    pub failures: Vec<(TopicPartition, Error)>,
    /// Segments deleted by retention.
    pub segments_deleted: usize,
    /// Records removed by compaction.
    pub records_compacted: u64,
    /// Segments rewritten by compaction.
    pub segments_compacted: u64,
}

impl BrokerState {
    pub(super) fn run_maintenance(&self) -> Result<MaintenanceReport> {
        self.check_open()?;
        let _span = tracing::debug_span!("streamlog.maintenance", dir = %self.dir.display()).entered();
        let started = std::time::Instant::now();
        let now = self.opts.clock.now_ms();
        let mut report = MaintenanceReport::default();
        let topics: Vec<Topic> = self.topics.read().values().cloned().collect();
        for topic in topics {
            let config = topic.config();
            for (i, p) in topic.partitions().iter().enumerate() {
                // One failing partition (a damaged segment, a full disk) must
                // not stop the others: collect its error and go on.
                let mut pass = || -> Result<()> {
                    if config.deletes() {
                        report.segments_deleted += p.apply_retention(now, config.retention, config.retention_bytes)?;
                    }
                    if config.compacts() {
                        let stats = p.compact(now, &config.compaction_options())?;
                        report.records_compacted += stats.records_removed;
                        report.segments_compacted += stats.segments_rewritten;
                    }
                    Ok(())
                };
                match pass() {
                    Ok(()) | Err(Error::Closed) => {}
                    Err(e) => {
                        tracing::warn!(topic = topic.name(), partition = i, error = %e, "maintenance failed");
                        report.failures.push((TopicPartition::new(topic.name(), i as u32), e));
                    }
                }
            }
        }
        self.coordinator().forget_idle_groups(now);
        Counters::bump(&self.stats.maintenance_runs, 1);
        Counters::bump(&self.stats.maintenance_failures, report.failures.len() as u64);
        tracing::debug!(
            segments_deleted = report.segments_deleted,
            records_compacted = report.records_compacted,
            segments_compacted = report.segments_compacted,
            failures = report.failures.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "maintenance pass done"
        );
        Ok(report)
    }
}

/// The broker's background thread: retention and compaction on a schedule.
/// A panic in a pass poisons the broker instead of vanishing with the thread;
/// an error (a full disk, a damaged segment) is retried on the next pass.
pub(super) fn start_maintenance(broker: &Arc<BrokerState>, every: Duration) -> Result<Periodic> {
    let (task, on_panic) = (Arc::downgrade(broker), Arc::downgrade(broker));
    Periodic::start(
        "streamlog-maintenance",
        every,
        move || {
            let Some(b) = task.upgrade() else { return false };
            // Each partition's failure was reported by the pass; a failure
            // of the pass itself is reported here, and retried next time.
            match b.run_maintenance() {
                Ok(_) | Err(Error::Closed) => {}
                Err(e) => tracing::error!(dir = %b.dir.display(), error = %e, "the maintenance pass failed"),
            }
            b.check_open().is_ok()
        },
        move || {
            if let Some(b) = on_panic.upgrade() {
                tracing::error!(dir = %b.dir.display(), "the maintenance thread panicked: the broker is poisoned");
                b.poisoned.store(true, Ordering::Release);
            }
        },
    )
}

/// How often the broker's flush thread looks for partitions due a sync.
const FLUSH_TICK: Duration = Duration::from_millis(5);

/// The broker's flush thread: one for all partitions with
/// `Durability::Interval`, each synced once its interval has passed. A
/// failed sync poisons that partition (as it would its own flusher).
pub(super) fn start_flusher(broker: &Arc<BrokerState>) -> Result<Periodic> {
    let (task, on_panic) = (Arc::downgrade(broker), Arc::downgrade(broker));
    Periodic::start_idle(
        "streamlog-flush",
        FLUSH_TICK,
        move || {
            let Some(b) = task.upgrade() else { return Next::Stop };
            let topics: Vec<Topic> = b.topics.read().values().cloned().collect();
            let interval: Vec<&Topic> =
                topics.iter().filter(|t| matches!(t.config().durability, crate::Durability::Interval(_))).collect();
            if interval.is_empty() {
                // Nothing to flush: sleep until a topic is created or
                // altered rather than wake 200 times a second, each time
                // taking a processor from whatever spins (a consumer).
                return if b.check_open().is_ok() { Next::Idle } else { Next::Stop };
            }
            for t in interval {
                for p in t.partitions() {
                    // The partition poisons itself (and says so); this says
                    // which topic it belongs to, once: a poisoned one
                    // fails every tick.
                    if let Err(e) = p.flush_if_due()
                        && !matches!(e, Error::Poisoned { .. })
                    {
                        tracing::error!(topic = t.name(), dir = %p.dir().display(), error = %e, "interval flush failed");
                    }
                }
            }
            if b.check_open().is_ok() { Next::Again } else { Next::Stop }
        },
        move || {
            if let Some(b) = on_panic.upgrade() {
                tracing::error!(dir = %b.dir.display(), "the flush thread panicked: the broker is poisoned");
                b.poisoned.store(true, Ordering::Release);
            }
        },
    )
}
