//! The storage layer: byte layouts, one segment's files, the partition log.
//!
//! Bottom to top: `format` and `record` (batch and record encoding, no I/O),
//! `index` (the sparse index files), `mmap` (the only `unsafe`: mappings and
//! the prefault thread), `segment` (one `.log` with its indexes),
//! `partition` (the ordered segments: append, read, roll, durability), and
//! beside it `notify` (waking consumers), `periodic` (background threads)
//! and `fsutil` (atomic writes, directory syncs). Nothing here knows about
//! topics, groups or clients.

pub(crate) mod cleaner;
pub(crate) mod format;
pub(crate) mod fsutil;
pub(crate) mod index;
pub(crate) mod mapcache;
pub(crate) mod meta;
pub(crate) mod mmap;
pub(crate) mod notify;
pub(crate) mod options;
pub(crate) mod partition;
pub(crate) mod periodic;
pub(crate) mod record;
pub(crate) mod recovery;
pub(crate) mod segment;
pub(crate) mod stats;
pub(crate) mod view;
pub(crate) mod wait;
