use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::log::format::BATCH_HEADER_LEN;
use crate::log::record::TimestampType;

/// The largest record timestamp a partition accepts: 9999-12-31T23:59:59.999Z
/// in milliseconds since the epoch. Larger values are mistakes (`i64::MAX`
/// as "never") that would pin a segment against time retention forever.
pub const MAX_TIMESTAMP: i64 = 253_402_300_799_999;

/// When an acknowledged append also survives power loss.
///
/// Every acknowledged append survives a crash of the process (its bytes are
/// in the OS page cache); this setting decides when they reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// No sync on the append path; the OS writes back when it likes. Sealed
    /// segments are still synced after they roll, by a background thread
    /// (a flush or a clean close waits for it). Default.
    #[default]
    Os,
    /// A background thread syncs the partition at this interval (at least
    /// 1 ms), so the disk is at most about this far behind.
    Interval(Duration),
    /// `append` returns only once the batch is on disk (fdatasync). Threads
    /// appending at the same time share one sync (group commit).
    Sync,
}

/// Options of one partition log.
#[derive(Debug, Clone)]
pub struct PartitionOptions {
    /// Roll to a new segment before the `.log` file would pass this size,
    /// in bytes (Kafka's `segment.bytes`). Default: 1 GiB. Range: 4096 ..= 4294967294 (positions are 32-bit).
    pub segment_bytes: u32,
    /// Roll once the active segment's records span this much time (by
    /// record timestamps, as Kafka's `segment.ms`). Default: 7 days.
    pub segment_age: Duration,
    /// Bytes of log between two sparse index entries (Kafka's
    /// `index.interval.bytes`). Default: 4096.
    pub index_interval_bytes: u32,
    /// Size limit of one `.index` file, in bytes; a full index rolls the
    /// segment (Kafka's `segment.index.bytes`). Default: 10 MiB.
    pub max_index_bytes: u32,
    /// When appends reach the disk (Kafka's `flush.ms` / `flush.messages`).
    /// Default: [`Durability::Os`].
    pub durability: Durability,
    /// At open, verify every sealed segment (the last one is fully checked
    /// only after a crash) and cut the log at the first corrupt
    /// batch, deleting it and everything after it. Default: `false` (a
    /// corrupt sealed segment is reported when read).
    pub repair: bool,
    /// Source of record timestamps and segment ages. Default: [`SystemClock`].
    pub clock: Arc<dyn Clock>,
    /// Whose timestamps the log keeps (Kafka's `message.timestamp.type`).
    /// With [`TimestampType::LogAppendTime`] every record of a batch gets
    /// the clock's time at append. Default: [`TimestampType::CreateTime`].
    pub timestamp_type: TimestampType,
    /// With `CreateTime`, reject a record whose timestamp is more than this
    /// before the clock (Kafka's `message.timestamp.before.max.ms`).
    /// Default: `None`, no limit.
    pub timestamp_before_max: Option<Duration>,
    /// With `CreateTime`, reject a record whose timestamp is more than this
    /// after the clock (Kafka's `message.timestamp.after.max.ms`).
    /// Default: `None`, no limit (timestamps up to [`MAX_TIMESTAMP`]).
    pub timestamp_after_max: Option<Duration>,
}

impl Default for PartitionOptions {
    fn default() -> Self {
        PartitionOptions {
            segment_bytes: 1 << 30,
            segment_age: Duration::from_secs(7 * 24 * 3600),
            index_interval_bytes: 4096,
            max_index_bytes: 10 << 20,
            durability: Durability::Os,
            repair: false,
            clock: Arc::new(SystemClock),
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max: None,
            timestamp_after_max: None,
        }
    }
}

impl PartitionOptions {
    /// Sets [`PartitionOptions::segment_bytes`] (Kafka's `segment.bytes`), in bytes.
    #[must_use]
    pub fn segment_bytes(mut self, bytes: u32) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Sets [`PartitionOptions::segment_age`] (Kafka's `segment.ms`).
    #[must_use]
    pub fn segment_age(mut self, age: Duration) -> Self {
        self.segment_age = age;
        self
    }

    /// Sets [`PartitionOptions::index_interval_bytes`] (Kafka's `index.interval.bytes`).
    #[must_use]
    pub fn index_interval_bytes(mut self, bytes: u32) -> Self {
        self.index_interval_bytes = bytes;
        self
    }

    /// Sets [`PartitionOptions::max_index_bytes`] (Kafka's `segment.index.bytes`).
    #[must_use]
    pub fn max_index_bytes(mut self, bytes: u32) -> Self {
        self.max_index_bytes = bytes;
        self
    }

    /// Sets [`PartitionOptions::durability`].
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets [`PartitionOptions::repair`].
    #[must_use]
    pub fn repair(mut self, repair: bool) -> Self {
        self.repair = repair;
        self
    }

    /// Sets [`PartitionOptions::clock`].
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets [`PartitionOptions::timestamp_type`] (Kafka's `message.timestamp.type`).
    #[must_use]
    pub fn timestamp_type(mut self, timestamp_type: TimestampType) -> Self {
        self.timestamp_type = timestamp_type;
        self
    }

    /// Sets [`PartitionOptions::timestamp_before_max`] (Kafka's `message.timestamp.before.max.ms`).
    #[must_use]
    pub fn timestamp_before_max(mut self, max: Option<Duration>) -> Self {
        self.timestamp_before_max = max;
        self
    }

    /// Sets [`PartitionOptions::timestamp_after_max`] (Kafka's `message.timestamp.after.max.ms`).
    #[must_use]
    pub fn timestamp_after_max(mut self, max: Option<Duration>) -> Self {
        self.timestamp_after_max = max;
        self
    }

    /// Checks every option against its documented range.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidConfig(msg));
        if self.segment_bytes < 4096 || self.segment_bytes == u32::MAX {
            return bad(format!("segment_bytes {} is outside 4096 ..= 4294967294", self.segment_bytes));
        }
        if self.segment_age.is_zero() {
            return bad("segment_age must be positive".into());
        }
        if (self.max_index_bytes as usize) < crate::log::index::OFFSET_ENTRY_LEN {
            return bad(format!("max_index_bytes {} holds no entry", self.max_index_bytes));
        }
        if let Durability::Interval(d) = self.durability
            && d < Duration::from_millis(1)
        {
            // Shorter keeps the flush thread busy; use `Durability::Sync`.
            return bad("Durability::Interval needs an interval of at least 1 ms".into());
        }
        Ok(())
    }

    /// Largest batch that fits a segment.
    pub(crate) fn max_batch_bytes(&self) -> usize {
        (self.segment_bytes as usize).max(BATCH_HEADER_LEN)
    }
}
