//! The public, read-only view of one segment ([`Segment`]); the segment
//! itself (files, mapping, index) is `log::segment::Segment`.

use std::path::{Path, PathBuf};

/// A snapshot of one segment of a partition, from
/// [`Partition::segments`](crate::Partition::segments): its offset range,
/// size, timestamps and files. It holds no file open; the files may be
/// deleted by retention or replaced by compaction after it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub(crate) base_offset: u64,
    pub(crate) end_offset: u64,
    pub(crate) size_in_bytes: u64,
    pub(crate) first_timestamp: Option<i64>,
    pub(crate) max_timestamp: Option<i64>,
    pub(crate) active: bool,
    pub(crate) log_path: PathBuf,
    pub(crate) index_path: PathBuf,
    pub(crate) time_index_path: PathBuf,
}

impl Segment {
    /// The offset of its first batch (its file name).
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// The offset after its last batch's range: the next segment's base
    /// offset, or the high watermark for the active segment. Compaction may
    /// have removed the records just below it.
    pub fn end_offset(&self) -> u64 {
        self.end_offset
    }

    /// Bytes of log (the `.log` file's committed length).
    pub fn size_in_bytes(&self) -> u64 {
        self.size_in_bytes
    }

    /// The first batch's first timestamp; `None` for an empty segment.
    pub fn first_timestamp(&self) -> Option<i64> {
        self.first_timestamp
    }

    /// The largest record timestamp (what time retention looks at); `None`
    /// if it holds no record.
    pub fn max_timestamp(&self) -> Option<i64> {
        self.max_timestamp
    }

    /// Whether this is the active segment, the one appends go to.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Whether it is sealed: read-only, synced, a candidate for retention.
    pub fn is_sealed(&self) -> bool {
        !self.active
    }

    /// The `.log` file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The sparse offset index file (`.index`); it may not exist (an empty
    /// segment, or one whose index is rebuilt from the log).
    pub fn index_path(&self) -> &Path {
        &self.index_path
    }

    /// The time index file (`.timeindex`); may be absent like the index.
    pub fn time_index_path(&self) -> &Path {
        &self.time_index_path
    }
}
