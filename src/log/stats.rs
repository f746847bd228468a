//! Counters and a snapshot of one partition log, for
//! [`Partition::stats`](crate::Partition::stats) and `Broker::stats`.
//!
//! The counters are relaxed atomics bumped once per call (never per
//! record), beside the partition's other state: no lock, no shared cache
//! line between partitions.

use std::sync::atomic::{AtomicU64, Ordering};

/// The running counters of one partition, on cache lines of their own
/// (128 bytes: lines are fetched in pairs): the appending thread writes
/// the append counters on every append, and readers bumping `reads` in the
/// same line (or other state next to it) would take the line from the
/// writer each time, and the other way round.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Counters {
    pub appends: AtomicU64,
    pub records_appended: AtomicU64,
    pub bytes_appended: AtomicU64,
    pub fsyncs: AtomicU64,
    pub reads: OwnLine,
}

/// An atomic alone on its cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct OwnLine(pub AtomicU64);

impl Counters {
    /// Relaxed: each counter is a statistic on its own; no reader infers
    /// anything about other memory from it.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// For a counter that only one thread at a time bumps (the append
    /// counters, under the partition's writer lock): a load and a store,
    /// where `add`'s read-modify-write is a locked instruction, a full
    /// barrier on x86 (three per append, a tenth of a small append's time).
    pub fn add_exclusive(counter: &AtomicU64, n: u64) {
        counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A snapshot of one partition log: its offsets and files, and what was
/// done to it since it was opened.
///
/// ```
/// use streamlog::{Partition, PartitionOptions, Record};
/// let dir = tempfile::tempdir()?;
/// let log = Partition::open(dir.path(), PartitionOptions::default())?;
/// log.append(&[Record::new("a"), Record::new("b")])?;
/// let stats = log.stats();
/// assert_eq!((stats.log_start_offset, stats.log_end_offset), (0, 2));
/// assert_eq!((stats.appends, stats.records_appended), (1, 2));
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogStats {
    /// The first offset still in the log.
    pub log_start_offset: u64,
    /// The offset the next record will get (the high watermark).
    pub log_end_offset: u64,
    /// Bytes of log across all segments.
    pub size_bytes: u64,
    /// Segments, the active one included.
    pub segments: usize,
    /// Segments mapped now (the active one, cached sealed ones, and those
    /// a reader's `Bytes` keep alive).
    pub mapped_segments: usize,
    /// Successful `append` calls (batches) since open.
    pub appends: u64,
    /// Records in those batches.
    pub records_appended: u64,
    /// Bytes of those batches, as stored (headers included).
    pub bytes_appended: u64,
    /// `read` calls since open.
    pub reads: u64,
    /// Syncs of the log's data since open: explicit flushes, group commits,
    /// interval flushes, rolls and clean closes (counted even when the
    /// broker skips the fsync, see `BrokerOptions::fsync`).
    pub fsyncs: u64,
}
