//! A partition: an ordered list of segments in one directory, the offsets
//! (log start, high watermark), rolling, durability and recovery.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};

use crate::error::{Error, Result};
use crate::log::format;
use crate::log::fsutil::{self, TMP_SUFFIX};
use crate::log::mmap::Prefaulter;
use crate::log::notify::{WaitList, Waiter};
use crate::log::options::{Durability, PartitionOptions};
use crate::log::periodic::Periodic;
use crate::log::record::{Batch, LogRecord, Record};
use crate::log::segment::{self, ActiveSegment, IndexConfig, ScanEnd, Segment, SegmentConfig};

/// Name of the directory lock file.
const LOCK_FILE: &str = ".lock";
/// A small partition metadata file: magic (4 bytes), version (u8), 3 zero
/// bytes, `fields` little-endian u64s, and a CRC-32 of everything before it.
/// Written atomically.
struct MetaFile {
    name: &'static str,
    magic: &'static [u8; 4],
    version: u8,
    fields: usize,
}

/// What reading a [`MetaFile`] found.
enum MetaRead {
    Missing,
    Fields(Vec<u64>),
    /// Wrong length, magic or checksum.
    Damaged,
    /// Intact, but of another version.
    Version(u8),
}

impl MetaFile {
    fn len(&self) -> usize {
        4 + 4 + 8 * self.fields + 4
    }

    fn write(&self, dir: &Path, fields: &[u64]) -> Result<()> {
        debug_assert_eq!(fields.len(), self.fields);
        let mut b = Vec::with_capacity(self.len());
        b.extend_from_slice(self.magic);
        b.extend_from_slice(&[self.version, 0, 0, 0]);
        for f in fields {
            b.extend_from_slice(&f.to_le_bytes());
        }
        b.extend_from_slice(&crc32fast::hash(&b).to_le_bytes());
        fsutil::write_atomic(dir, self.name, &b)
    }

    fn read(&self, dir: &Path) -> Result<MetaRead> {
        let path = dir.join(self.name);
        let b = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(MetaRead::Missing),
            Err(e) => return Err(Error::Io { op: "read", path, source: e }),
        };
        let crc_at = self.len() - 4;
        if b.len() != self.len() || &b[..4] != self.magic || crc32fast::hash(&b[..crc_at]).to_le_bytes() != b[crc_at..]
        {
            return Ok(MetaRead::Damaged);
        }
        if b[4] != self.version {
            return Ok(MetaRead::Version(b[4]));
        }
        Ok(MetaRead::Fields(
            b[8..crc_at].chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8"))).collect(),
        ))
    }
}

/// Written by a clean close, removed by open: its presence means the files
/// are exactly as a clean close left them. Field: the next offset.
const CLEAN_MARKER: MetaFile = MetaFile { name: ".clean_shutdown", magic: b"SLCS", version: 1, fields: 1 };

/// Log start offset and compaction progress, written when they change.
const CHECKPOINTS: MetaFile = MetaFile { name: ".checkpoints", magic: b"SLCP", version: 1, fields: 2 };

#[derive(Debug, Default, Clone, Copy)]
struct Checkpoints {
    log_start: u64,
    cleaned_up_to: u64,
}

/// Reads `.checkpoints`; missing means nothing was deleted or cleaned yet. A
/// damaged file is an error: guessing could resurrect deleted records.
fn read_checkpoints(dir: &Path) -> Result<Checkpoints> {
    let path = || dir.join(CHECKPOINTS.name);
    match CHECKPOINTS.read(dir)? {
        MetaRead::Missing => Ok(Checkpoints::default()),
        MetaRead::Fields(f) => Ok(Checkpoints { log_start: f[0], cleaned_up_to: f[1] }),
        MetaRead::Damaged => {
            Err(Error::Corrupt { path: path(), position: 0, reason: "damaged checkpoint file".into() })
        }
        MetaRead::Version(v) => Err(Error::UnsupportedFormat { path: path(), version: u32::from(v) }),
    }
}

/// The next offset a clean close recorded, or `None` if there is no valid
/// marker (then the log is recovered as after a crash).
fn read_clean_marker(dir: &Path) -> Result<Option<u64>> {
    Ok(match CLEAN_MARKER.read(dir)? {
        MetaRead::Fields(f) => Some(f[0]),
        _ => None,
    })
}

/// Settings of [`Partition::compact`].
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionOptions {
    /// Compact only when at least this share of the cleanable bytes has not
    /// been cleaned yet. Default: 0.5.
    pub min_cleanable_dirty_ratio: f64,
    /// Leave records younger than this alone. Default: 0.
    pub min_compaction_lag: Duration,
    /// Keep tombstones this long, so that consumers see the delete.
    /// Default: 1 day.
    pub delete_retention: Duration,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        CompactionOptions {
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag: Duration::ZERO,
            delete_retention: Duration::from_secs(24 * 3600),
        }
    }
}

/// What one compaction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_removed: u64,
    pub segments_rewritten: u64,
}

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the batch's first record; record `i` has `base_offset + i`.
    pub base_offset: u64,
    /// Offset of the batch's last record.
    pub last_offset: u64,
}

/// One partition log in its own directory.
///
/// Appends are serialized by a short critical section; reads never take it.
/// Readers get batches whose records are zero-copy slices of the segment
/// mappings. Dropping the partition closes it cleanly, ignoring errors; call
/// [`Partition::close`] to see them.
///
/// ```
/// use streamlog::{Partition, PartitionOptions, Record};
/// let dir = tempfile::tempdir()?;
/// let log = Partition::open(dir.path(), PartitionOptions::default())?;
/// let first = log.append(&[Record::new("hello").with_key("k"), Record::new("world")])?;
/// assert_eq!((first.base_offset, first.last_offset), (0, 1));
/// let batches = log.read(1, 1 << 20)?;
/// let rec = batches[0].records().next().unwrap();
/// assert_eq!((rec.offset, &rec.value.unwrap()[..]), (1, &b"world"[..]));
/// log.close()?;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
pub struct Partition {
    inner: Arc<Inner>,
    flusher: Mutex<Option<Periodic>>,
    /// The prefault thread, when this partition started its own (a broker
    /// shares one between its partitions).
    own_prefaulter: Option<Arc<Prefaulter>>,
}

struct Inner {
    dir: PathBuf,
    opts: PartitionOptions,
    /// `opts.segment_age` in milliseconds, as compared with timestamps.
    segment_age_ms: i64,
    segment_config: SegmentConfig,
    /// The append path. `None` once closed, or after a failed roll.
    writer: Mutex<Option<Writer>>,
    /// Oldest first; the last one is the active segment.
    segments: RwLock<Arc<Vec<Arc<Segment>>>>,
    /// The offset after the last appended record. Stored with release
    /// ordering after the bytes and index entries are in place.
    high_watermark: AtomicU64,
    log_start_offset: AtomicU64,
    poisoned: AtomicBool,
    closed: AtomicBool,
    sync: Mutex<SyncState>,
    sync_done: Condvar,
    /// Syncs issued by `sync_to`, for tests of group commit.
    sync_calls: AtomicU64,
    /// Consumers parked until new records arrive.
    waiters: WaitList,
    /// Serializes retention, delete-records and compaction.
    maintenance: Mutex<()>,
    /// Compaction has cleaned everything below this offset (for the dirty
    /// ratio). Persisted with the log start in `.checkpoints`.
    cleaned_up_to: AtomicU64,
    /// The directory lock, held until the partition is closed.
    dir_lock: Mutex<Option<File>>,
}

struct Writer {
    active: ActiveSegment,
    next_offset: u64,
    /// Timestamp of the active segment's first batch, for `segment_age`.
    first_timestamp: Option<i64>,
}

struct SyncState {
    /// Every offset below this is on disk.
    synced: u64,
    /// A thread is syncing; others wait for it rather than sync again.
    in_progress: bool,
    /// When the last sync finished (for `Durability::Interval`).
    last_sync: std::time::Instant,
}

impl Partition {
    /// Opens (or creates) the partition log in `dir`, recovering it if it
    /// was not closed cleanly. Fails with [`Error::Locked`] if another handle
    /// has it open.
    pub fn open(dir: impl AsRef<Path>, opts: PartitionOptions) -> Result<Partition> {
        Partition::open_with(dir.as_ref(), opts, None)
    }

    /// [`Partition::open`] for a broker's partition, when `prefaulter` is
    /// the broker's: its prefault thread is shared, and the broker's flush
    /// thread calls [`Partition::flush_if_due`] for `Durability::Interval`.
    /// With `None`, the partition runs both threads itself.
    pub(crate) fn open_with(
        dir: &Path,
        opts: PartitionOptions,
        prefaulter: Option<Arc<Prefaulter>>,
    ) -> Result<Partition> {
        opts.validate()?;
        let dir = dir.to_path_buf();
        if dir.as_os_str().is_empty() {
            return Err(Error::InvalidConfig("the partition directory path is empty".into()));
        }
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(Error::io("create directory", &dir))?;
            if let Some(parent) = dir.parent() {
                fsutil::sync_dir(parent)?;
            }
        }
        let lock = lock_dir(&dir)?;
        let index_config =
            IndexConfig { interval_bytes: opts.index_interval_bytes, max_index_bytes: opts.max_index_bytes };

        let mut bases = Vec::new();
        for entry in fs::read_dir(&dir).map_err(Error::io("list", &dir))? {
            let entry = entry.map_err(Error::io("list", &dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(TMP_SUFFIX) {
                fsutil::remove_if_exists(&entry.path())?;
            } else if let Some(base) = segment::parse_log_name(name) {
                bases.push(base);
            }
        }
        bases.sort_unstable();

        let checkpoints = read_checkpoints(&dir)?;
        // Segments wholly below the log start (deleted by retention or
        // delete_records, but a crash came before their files went).
        let below_start = bases
            .len()
            .saturating_sub(1)
            .min(bases.iter().skip(1).take_while(|&&b| b <= checkpoints.log_start).count());
        for &base in &bases[..below_start] {
            Segment::sealed(&dir, base, index_config).delete_files()?;
        }
        if below_start > 0 {
            bases.drain(..below_start);
            fsutil::sync_dir(&dir)?;
        }

        let marker_path = dir.join(CLEAN_MARKER.name);
        let mut clean_next = read_clean_marker(&dir)?;
        if fsutil::remove_if_exists(&marker_path)? {
            fsutil::sync_dir(&dir)?;
        }
        if opts.repair && repair(&dir, &mut bases, index_config)? {
            clean_next = None;
        }

        let own_prefaulter = match prefaulter {
            Some(_) => None,
            None => Some(Prefaulter::start()?),
        };
        let prefaulter = prefaulter.or_else(|| own_prefaulter.clone());
        let segment_config =
            SegmentConfig { capacity: opts.segment_bytes, index: index_config, prefaulter, repair: opts.repair };
        let (active, next_offset) = match bases.last() {
            None => (Segment::create(&dir, 0, &segment_config)?, 0),
            Some(&last) => {
                let clean = match clean_next.filter(|&n| n >= last) {
                    Some(next) => Segment::open_clean(&dir, last, next, &segment_config)?.map(|a| (a, next)),
                    None => None,
                };
                match clean {
                    Some(opened) => opened,
                    None => {
                        // A crash between creating a segment and sealing the
                        // one before leaves that one unsealed too.
                        let last_is_empty =
                            fs::metadata(dir.join(segment::log_file_name(last))).is_ok_and(|m| m.len() == 0);
                        if let (true, Some(&prev)) = (last_is_empty, bases.iter().rev().nth(1)) {
                            Segment::recover_sealed(&dir, prev, index_config, opts.repair)?;
                        }
                        Segment::recover(&dir, last, &segment_config)?
                    }
                }
            }
        };
        let mut segments: Vec<Arc<Segment>> =
            bases.iter().take(bases.len().saturating_sub(1)).map(|&b| Segment::sealed(&dir, b, index_config)).collect();
        segments.push(Arc::clone(&active.segment));
        let log_start = segments[0].base_offset().max(checkpoints.log_start).min(next_offset);
        let first_timestamp = first_timestamp(&active.segment)?;

        let inner = Arc::new(Inner {
            dir,
            segment_config,
            segment_age_ms: opts.segment_age.as_millis().min(i64::MAX as u128) as i64,
            writer: Mutex::new(Some(Writer { active, next_offset, first_timestamp })),
            segments: RwLock::new(Arc::new(segments)),
            high_watermark: AtomicU64::new(next_offset),
            log_start_offset: AtomicU64::new(log_start),
            poisoned: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            // Recovery synced whatever it kept; a clean close synced all.
            sync: Mutex::new(SyncState {
                synced: next_offset,
                in_progress: false,
                last_sync: std::time::Instant::now(),
            }),
            sync_done: Condvar::new(),
            sync_calls: AtomicU64::new(0),
            maintenance: Mutex::new(()),
            cleaned_up_to: AtomicU64::new(checkpoints.cleaned_up_to),
            waiters: WaitList::default(),
            dir_lock: Mutex::new(Some(lock)),
            opts,
        });
        let flusher = match inner.opts.durability {
            Durability::Interval(every) if own_prefaulter.is_some() => Some(start_flusher(Arc::clone(&inner), every)?),
            _ => None,
        };
        Ok(Partition { inner, flusher: Mutex::new(flusher), own_prefaulter })
    }

    /// Appends `records` as one batch and returns their offsets. The batch is
    /// visible to readers, and survives a crash of the process, when this
    /// returns; with [`Durability::Sync`] it is also on disk.
    pub fn append(&self, records: &[Record]) -> Result<AppendInfo> {
        let inner = &*self.inner;
        let now = if records.iter().any(|r| r.timestamp.is_none()) { inner.opts.clock.now_ms() } else { 0 };
        let plan = format::plan_batch(records, now).ok_or_else(|| {
            if records.is_empty() {
                Error::EmptyBatch
            } else {
                Error::RecordTooLarge { size: u64::MAX, max: inner.opts.max_batch_bytes() as u64 }
            }
        })?;
        if plan.len > inner.opts.max_batch_bytes() {
            return Err(Error::RecordTooLarge { size: plan.len as u64, max: inner.opts.max_batch_bytes() as u64 });
        }
        let count = u64::from(plan.record_count);

        let mut guard = inner.writer.lock();
        inner.check_writable()?;
        let Some(mut w) = guard.as_mut() else { return Err(Error::Closed) };
        if inner.needs_roll(w, plan.len, count, plan.max_timestamp) {
            inner.roll_locked(&mut guard)?;
            let Some(rolled) = guard.as_mut() else { return Err(Error::Closed) };
            w = rolled;
        }
        let base = w.next_offset;
        let pos = w.active.map.append_with(plan.len, |buf| format::encode_batch(buf, &plan, base, records, now))?;
        w.active.index_batch(base, pos, plan.len, plan.max_timestamp);
        w.first_timestamp.get_or_insert(plan.first_timestamp);
        w.next_offset = base + count;
        // Release (as part of SeqCst): the bytes, index entries and
        // timestamps above are visible to readers that load the high
        // watermark with acquire ordering. SeqCst: pairs with waiters'
        // registration, see `WaitList::register`.
        inner.high_watermark.store(w.next_offset, Ordering::SeqCst);
        let next = w.next_offset;
        drop(guard);
        inner.waiters.wake_all();

        if inner.opts.durability == Durability::Sync {
            inner.sync_to(next)?;
        }
        Ok(AppendInfo { base_offset: base, last_offset: next - 1 })
    }

    /// Batches from `offset` on, up to about `max_bytes` (at least one batch
    /// if any record is there). The first batch may start before `offset`;
    /// its [`Batch::records`] skip the records before it. Reading at the high
    /// watermark returns no batches; outside `[log_start_offset,
    /// high_watermark]` is [`Error::OffsetOutOfRange`].
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Vec<Batch>> {
        let inner = &*self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let end = inner.high_watermark.load(Ordering::Acquire);
        let start = inner.log_start_offset.load(Ordering::Acquire);
        if offset < start || offset > end {
            return Err(Error::OffsetOutOfRange { requested: offset, start, end });
        }
        if offset == end {
            return Ok(Vec::new());
        }
        let segments = inner.segments();
        let mut i = segments.partition_point(|s| s.base_offset() <= offset).saturating_sub(1);
        loop {
            let bound = segments.get(i + 1).map_or(end, |s| s.base_offset().min(end));
            let batches = segments[i].read(offset, bound, max_bytes).map_err(|e| {
                // Retention may have deleted the segment under this read.
                let start = inner.log_start_offset.load(Ordering::Acquire);
                if offset < start { Error::OffsetOutOfRange { requested: offset, start, end } } else { e }
            })?;
            // An empty answer from a sealed segment means `offset` is past its
            // last record (a gap left by compaction): go on to the next one.
            if !batches.is_empty() || i + 1 == segments.len() {
                return Ok(batches);
            }
            i += 1;
        }
    }

    /// The offset of the first record whose timestamp is `>= ts`, or `None`
    /// if every record is older (Kafka's `offsetsForTimes`).
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<u64>> {
        let inner = &*self.inner;
        let end = inner.high_watermark.load(Ordering::Acquire);
        let start = inner.log_start_offset.load(Ordering::Acquire);
        let segments = inner.segments();
        for (i, seg) in segments.iter().enumerate() {
            let bound = segments.get(i + 1).map_or(end, |s| s.base_offset().min(end));
            if seg.max_timestamp(bound)? >= ts
                && let Some(off) = seg.offset_for_timestamp(ts, bound)?
            {
                return Ok(Some(off.max(start)));
            }
        }
        Ok(None)
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> u64 {
        self.inner.log_start_offset.load(Ordering::Acquire)
    }

    /// The offset the next appended record will get (Kafka's log end
    /// offset; with one in-process replica it is also the high watermark).
    pub fn high_watermark(&self) -> u64 {
        self.inner.high_watermark.load(Ordering::Acquire)
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.inner.segments().len()
    }

    /// Bytes of log across all segments.
    pub fn size_in_bytes(&self) -> Result<u64> {
        self.inner.segments().iter().map(|s| s.size()).sum()
    }

    /// Registers `w` to be woken by the next append (see `WaitList`).
    pub(crate) fn register_waiter(&self, w: &Arc<Waiter>) {
        self.inner.waiters.register(w);
    }

    pub(crate) fn unregister_waiter(&self, w: &Arc<Waiter>) {
        self.inner.waiters.unregister(w);
    }

    /// Whether the partition is closed (its handle can no longer be used).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Every offset below this is known to be on disk (synced by `flush`,
    /// a group commit, an interval flush, a roll or a clean close).
    pub fn flushed_offset(&self) -> u64 {
        self.inner.sync.lock().synced
    }

    /// With `Durability::Interval(d)`: syncs if there is unsynced data and
    /// the last sync is at least `d` ago.
    pub(crate) fn flush_if_due(&self) -> Result<()> {
        let inner = &*self.inner;
        let Durability::Interval(every) = inner.opts.durability else { return Ok(()) };
        let hw = inner.high_watermark.load(Ordering::Acquire);
        let due = {
            let state = inner.sync.lock();
            state.synced < hw && state.last_sync.elapsed() >= every
        };
        if due && !inner.closed.load(Ordering::Acquire) { inner.sync_to(hw) } else { Ok(()) }
    }

    /// Writes everything appended so far to disk.
    pub fn flush(&self) -> Result<()> {
        let inner = &*self.inner;
        inner.sync_to(inner.high_watermark.load(Ordering::Acquire))
    }

    /// Seals the active segment (syncing it) and starts a new one. Does
    /// nothing if the active segment is empty.
    pub fn roll(&self) -> Result<()> {
        let inner = &*self.inner;
        let mut guard = inner.writer.lock();
        inner.check_writable()?;
        match guard.as_ref() {
            None => Err(Error::Closed),
            Some(w) if w.active.map.position() == 0 => Ok(()),
            Some(_) => inner.roll_locked(&mut guard),
        }
    }

    /// Verifies every batch of every segment: checksums, record encoding,
    /// offset order. The first problem is an error naming file and position.
    pub fn verify(&self) -> Result<()> {
        self.inner.segments().iter().try_for_each(|s| s.verify())
    }

    /// Moves the log start offset up to `before_offset` (Kafka's
    /// `deleteRecords`): records below it can no longer be read, and whole
    /// segments below it are deleted. Returns the new log start offset.
    pub fn delete_records(&self, before_offset: u64) -> Result<u64> {
        let inner = &*self.inner;
        let _m = inner.maintenance_guard()?;
        let (start, end) = (self.log_start_offset(), self.high_watermark());
        if before_offset > end {
            return Err(Error::OffsetOutOfRange { requested: before_offset, start, end });
        }
        if before_offset > start {
            inner.advance_log_start(before_offset)?;
        }
        Ok(self.log_start_offset())
    }

    /// Deletes the oldest sealed segments (never the active one) whose
    /// records are all older than `retention` before `now_ms`, then more
    /// while the log is larger than `retention_bytes`. Moves the log start
    /// offset durably. Returns how many segments went.
    pub fn apply_retention(
        &self,
        now_ms: i64,
        retention: Option<Duration>,
        retention_bytes: Option<u64>,
    ) -> Result<usize> {
        let inner = &*self.inner;
        let _m = inner.maintenance_guard()?;
        let segments = inner.segments();
        let sealed = &segments[..segments.len() - 1];
        let mut doomed = 0;
        if let Some(r) = retention {
            let cutoff = now_ms.saturating_sub(r.as_millis().min(i64::MAX as u128) as i64);
            for (i, seg) in sealed.iter().enumerate() {
                if seg.max_timestamp(segments[i + 1].base_offset())? >= cutoff {
                    break;
                }
                doomed = i + 1;
            }
        }
        if let Some(limit) = retention_bytes {
            let sizes = segments.iter().map(|s| s.size()).collect::<Result<Vec<u64>>>()?;
            let mut excess = sizes.iter().sum::<u64>().saturating_sub(limit);
            let mut by_size = 0;
            for (i, &size) in sizes[..sealed.len()].iter().enumerate() {
                if size > excess {
                    break;
                }
                excess -= size;
                by_size = i + 1;
            }
            doomed = doomed.max(by_size);
        }
        if doomed == 0 {
            return Ok(0);
        }
        inner.advance_log_start(segments[doomed].base_offset())?;
        Ok(doomed)
    }

    /// Compacts the sealed segments whose records are all older than
    /// `min_compaction_lag`: keeps the latest record per key (offsets stay;
    /// reads skip the gaps), drops tombstones older than `delete_retention`,
    /// and replaces each changed segment crash-safely. Skipped while the
    /// not-yet-cleaned share of those segments is below
    /// `min_cleanable_dirty_ratio`. Records without a key are kept.
    pub fn compact(&self, now_ms: i64, opts: &CompactionOptions) -> Result<CompactionStats> {
        let inner = &*self.inner;
        let _m = inner.maintenance_guard()?;
        let mut stats = CompactionStats::default();
        let segments = inner.segments();
        let lag_cutoff = now_ms.saturating_sub(opts.min_compaction_lag.as_millis().min(i64::MAX as u128) as i64);
        let mut end = 0;
        for (i, seg) in segments[..segments.len() - 1].iter().enumerate() {
            if seg.max_timestamp(segments[i + 1].base_offset())? > lag_cutoff {
                break;
            }
            end = i + 1;
        }
        let range = &segments[..end];
        if range.is_empty() {
            return Ok(stats);
        }
        let cleaned_up_to = inner.cleaned_up_to.load(Ordering::Acquire);
        let sizes = range.iter().map(|s| s.size()).collect::<Result<Vec<u64>>>()?;
        let total: u64 = sizes.iter().sum();
        let dirty: u64 =
            range.iter().zip(&sizes).filter(|(s, _)| s.base_offset() >= cleaned_up_to).map(|(_, n)| n).sum();
        if (dirty as f64) < opts.min_cleanable_dirty_ratio * total as f64
            || (dirty == 0 && opts.min_cleanable_dirty_ratio > 0.0)
        {
            return Ok(stats);
        }
        // Pass 1: the latest offset of every key (keys are slices of the
        // mappings, not copies).
        let mut latest: std::collections::HashMap<bytes::Bytes, u64> = std::collections::HashMap::new();
        for seg in range {
            for batch in seg.read_all()? {
                for r in batch.try_records()? {
                    if let Some(k) = r.key {
                        latest.insert(k, r.offset);
                    }
                }
            }
        }
        // Pass 2: rewrite each segment that loses records.
        let tombstone_cutoff = now_ms.saturating_sub(opts.delete_retention.as_millis().min(i64::MAX as u128) as i64);
        for (seg, &size) in range.iter().zip(&sizes) {
            stats.bytes_read += size;
            let mut out = Vec::new();
            let mut removed = 0u64;
            for batch in seg.read_all()? {
                let all = batch.try_records()?;
                let n = all.len() as u64;
                let kept: Vec<LogRecord> = all
                    .into_iter()
                    .filter(|r| match &r.key {
                        None => true,
                        Some(k) => {
                            latest.get(k) == Some(&r.offset) && (r.value.is_some() || r.timestamp >= tombstone_cutoff)
                        }
                    })
                    .collect();
                removed += n - kept.len() as u64;
                if kept.len() as u64 == n {
                    out.push(batch.as_bytes().to_vec());
                } else if let Some(b) = format::encode_log_records(&kept) {
                    out.push(b);
                }
            }
            if removed == 0 {
                stats.bytes_written += size;
                continue;
            }
            stats.records_removed += removed;
            stats.bytes_written += out.iter().map(|b| b.len() as u64).sum::<u64>();
            let fresh = seg.replace_log(&inner.dir, &out)?;
            let mut list = inner.segments.write();
            let mut next = Vec::clone(&list);
            if let Some(slot) = next.iter_mut().find(|s| s.base_offset() == seg.base_offset()) {
                *slot = fresh;
            }
            *list = Arc::new(next);
            stats.segments_rewritten += 1;
        }
        let up_to = segments[end].base_offset();
        inner.write_checkpoints(inner.log_start_offset.load(Ordering::Acquire), up_to)?;
        inner.cleaned_up_to.store(up_to, Ordering::Release);
        Ok(stats)
    }

    /// Closes the partition cleanly: seals the active segment's files, syncs
    /// everything and leaves the marker that makes the next open cheap.
    pub fn close(self) -> Result<()> {
        self.shutdown()
    }

    /// Closes through a shared reference: what `close` and drop do, and what
    /// a broker does to partitions that others may still hold.
    pub(crate) fn shutdown(&self) -> Result<()> {
        let result = self.seal_for_close();
        // Release the directory even if other handles to this partition live
        // on (they fail with `Closed`), so that it can be opened again.
        drop(self.inner.dir_lock.lock().take());
        result
    }

    fn seal_for_close(&self) -> Result<()> {
        if let Some(f) = self.flusher.lock().take() {
            f.stop();
        }
        let inner = &*self.inner;
        // Wait out a maintenance pass in progress; none starts once closed.
        let maintenance = inner.maintenance.lock();
        let writer = inner.writer.lock().take();
        inner.closed.store(true, Ordering::Release);
        drop(maintenance);
        if let Some(pf) = &self.own_prefaulter {
            pf.shutdown();
        }
        inner.check_writable()?;
        let Some(w) = writer else { return Ok(()) };
        w.active.seal(&inner.dir)?;
        CLEAN_MARKER.write(&inner.dir, &[w.next_offset])
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("dir", &self.inner.dir)
            .field("log_start_offset", &self.log_start_offset())
            .field("high_watermark", &self.high_watermark())
            .finish()
    }
}

impl Inner {
    fn segments(&self) -> Arc<Vec<Arc<Segment>>> {
        Arc::clone(&self.segments.read())
    }

    /// Moves the log start offset to `new_start` (durably, first), then
    /// drops and deletes the segments wholly below it. Called with
    /// `maintenance` held.
    fn advance_log_start(&self, new_start: u64) -> Result<()> {
        let current = self.log_start_offset.load(Ordering::Acquire);
        if new_start > current {
            // Durable first: if this fails, nothing moved.
            self.write_checkpoints(new_start, self.cleaned_up_to.load(Ordering::Acquire))?;
            self.log_start_offset.store(new_start, Ordering::Release);
        }
        // Whatever lies wholly below the log start goes, also when an
        // earlier pass moved it but failed before deleting.
        let new_start = new_start.max(current);
        let doomed: Vec<Arc<Segment>> = {
            let mut list = self.segments.write();
            let keep_from = (0..list.len() - 1).take_while(|&i| list[i + 1].base_offset() <= new_start).count();
            if keep_from == 0 {
                return Ok(());
            }
            let next = list[keep_from..].to_vec();
            let doomed = list[..keep_from].to_vec();
            *list = Arc::new(next);
            doomed
        };
        // Unlink only: readers holding records of these segments keep their
        // mappings, and nothing is ever truncated under them.
        for seg in &doomed {
            seg.delete_files()?;
        }
        fsutil::sync_dir(&self.dir)
    }

    /// The maintenance lock, once it is sure the partition is still open: a
    /// handle that outlived its broker must never touch files that a new
    /// handle owns.
    fn maintenance_guard(&self) -> Result<parking_lot::MutexGuard<'_, ()>> {
        let guard = self.maintenance.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(guard)
    }

    fn write_checkpoints(&self, log_start: u64, cleaned_up_to: u64) -> Result<()> {
        CHECKPOINTS.write(&self.dir, &[log_start, cleaned_up_to])
    }

    fn check_writable(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned { path: self.dir.clone() });
        }
        Ok(())
    }

    fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
    }

    fn needs_roll(&self, w: &Writer, len: usize, count: u64, max_timestamp: i64) -> bool {
        let map = &w.active.map;
        if map.position() == 0 {
            return false;
        }
        len > map.remaining()
            || w.active.index.is_full()
            || w.next_offset + count - w.active.segment.base_offset() > u64::from(u32::MAX)
            || w.first_timestamp.is_some_and(|first| max_timestamp.saturating_sub(first) >= self.segment_age_ms)
    }

    /// Starts the next segment, then seals the active one. Creating the
    /// new file comes first: if that fails (a full disk), nothing changed
    /// and the append can be retried. A failure to cut or sync the old
    /// segment poisons the partition. A crash between the two steps is
    /// handled by recovery (the segment before an empty last one is
    /// recovered too). The new segment joins the list only once the old one
    /// is synced: a concurrent `sync_to` syncs the last listed segment and
    /// must not take an unsynced predecessor for done.
    fn roll_locked(&self, slot: &mut Option<Writer>) -> Result<()> {
        let Some(w) = slot.as_ref() else { return Err(Error::Closed) };
        let next_offset = w.next_offset;
        let active = Segment::create(&self.dir, next_offset, &self.segment_config)?;
        let new_segment = Arc::clone(&active.segment);
        let old = slot.replace(Writer { active, next_offset, first_timestamp: None }).expect("checked above");
        let sealed = old.active.seal(&self.dir).inspect_err(|_| self.poison())?;
        // New readers get a handle that maps the sealed file read-only at its
        // size; the writable full-capacity mapping goes with the last reader
        // of the old handle. (No reader needs the new segment yet: the high
        // watermark has not moved past its base.)
        {
            let mut segments = self.segments.write();
            let mut list = Vec::clone(&segments);
            if let Some(slot) = list.iter_mut().find(|s| s.base_offset() == sealed.base_offset()) {
                *slot = sealed.reopened();
            }
            list.push(new_segment);
            *segments = Arc::new(list);
        }
        // Sealing synced everything below the new segment.
        let mut state = self.sync.lock();
        state.synced = state.synced.max(next_offset);
        Ok(())
    }

    /// Returns once every offset below `target` is on disk. Concurrent
    /// callers share one sync: whoever finds none running starts one that
    /// covers everything appended so far; the others wait for it.
    fn sync_to(&self, target: u64) -> Result<()> {
        let mut state = self.sync.lock();
        loop {
            self.check_writable()?;
            if state.synced >= target {
                return Ok(());
            }
            if !state.in_progress {
                break;
            }
            self.sync_done.wait(&mut state);
        }
        state.in_progress = true;
        drop(state);
        // Load the high watermark before choosing the segment: every segment
        // before the one we sync was synced when it rolled.
        let covered = self.high_watermark.load(Ordering::Acquire);
        let active = Arc::clone(self.segments().last().expect("a partition has a segment"));
        self.sync_calls.fetch_add(1, Ordering::Relaxed);
        let result = active.map().and_then(|m| m.sync().map_err(Error::io("sync", m.path())));
        let mut state = self.sync.lock();
        state.in_progress = false;
        match &result {
            Ok(()) => {
                state.synced = state.synced.max(covered);
                state.last_sync = std::time::Instant::now();
            }
            Err(_) => self.poison(),
        }
        self.sync_done.notify_all();
        result
    }
}

/// Takes the exclusive lock of `dir` (an flock on `dir/.lock`).
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(Error::io("open lock", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(Error::Locked { path: dir.to_owned() }),
        Err(fs::TryLockError::Error(e)) => Err(Error::Io { op: "lock", path, source: e }),
    }
}

/// Timestamp of a segment's first batch, read off its header.
fn first_timestamp(segment: &Segment) -> Result<Option<i64>> {
    let map = segment.map()?;
    let len = map.committed().min(format::BATCH_HEADER_LEN);
    Ok(map.with_slice(0..len, |b| format::BatchHeader::parse(b).map(|h| h.first_timestamp)).flatten())
}

/// Verifies every segment but the last and cuts the log at the first bad
/// batch: that segment is truncated there and every later one deleted.
/// Returns whether anything was cut. Used only with `repair`.
fn repair(dir: &Path, bases: &mut Vec<u64>, index_config: IndexConfig) -> Result<bool> {
    for i in 0..bases.len().saturating_sub(1) {
        let seg = Segment::sealed(dir, bases[i], index_config);
        let (valid_len, end) = seg.scan_all()?;
        if end == ScanEnd::Clean {
            continue;
        }
        drop(seg);
        for &later in &bases[i + 1..] {
            Segment::sealed(dir, later, index_config).delete_files()?;
        }
        bases.truncate(i + 1);
        let seg = Segment::sealed(dir, bases[i], index_config);
        seg.delete_index_files()?;
        let path = seg.log_path();
        let file = File::options().read(true).write(true).open(path).map_err(Error::io("open", path))?;
        let file = segment::cut_file(file, path, dir, valid_len as u64)?;
        file.sync_all().map_err(Error::io("sync", path))?;
        fsutil::sync_dir(dir)?;
        return Ok(true);
    }
    Ok(false)
}

/// The background sync of [`Durability::Interval`].
fn start_flusher(inner: Arc<Inner>, every: Duration) -> Result<Periodic> {
    let on_panic = Arc::clone(&inner);
    Periodic::start(
        "streamlog-flush",
        every,
        move || {
            // Errors poison the partition inside `sync_to`; keep trying
            // only while it is healthy.
            inner.sync_to(inner.high_watermark.load(Ordering::Acquire)).is_ok()
        },
        move || on_panic.poison(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::mmap::failpoints;

    fn rec(i: u64) -> Record {
        Record::new(i.to_le_bytes().to_vec()).with_timestamp(i as i64)
    }

    #[test]
    fn a_failed_sync_poisons_writes_until_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let opts = PartitionOptions::default().durability(Durability::Sync);
        let p = Partition::open(dir.path(), opts.clone()).unwrap();
        p.append(&[rec(0)]).unwrap();
        failpoints::fail_syncs_under(dir.path(), true);
        let err = p.append(&[rec(1)]).unwrap_err();
        assert!(matches!(err, Error::Io { op: "sync", .. }), "{err}");
        assert!(matches!(p.append(&[rec(2)]), Err(Error::Poisoned { .. })));
        assert!(matches!(p.roll(), Err(Error::Poisoned { .. })));
        assert!(matches!(p.flush(), Err(Error::Poisoned { .. })));
        // Reads still work: what was acknowledged is there.
        assert_eq!(p.read(0, 1 << 20).unwrap()[0].records().next().unwrap().offset, 0);
        assert!(matches!(p.close(), Err(Error::Poisoned { .. })));
        failpoints::fail_syncs_under(dir.path(), false);
        assert!(!dir.path().join(CLEAN_MARKER.name).exists(), "a poisoned close is not clean");
        let p = Partition::open(dir.path(), opts).unwrap();
        assert!(p.high_watermark() >= 1, "the acknowledged record survived");
        p.append(&[rec(9)]).unwrap();
    }

    #[test]
    fn a_failed_sync_on_roll_poisons() {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(dir.path(), PartitionOptions::default()).unwrap();
        p.append(&[rec(0)]).unwrap();
        failpoints::fail_syncs_under(dir.path(), true);
        assert!(matches!(p.roll(), Err(Error::Io { op: "sync", .. })));
        assert!(matches!(p.append(&[rec(1)]), Err(Error::Poisoned { .. })));
        failpoints::fail_syncs_under(dir.path(), false);
        drop(p);
        let p = Partition::open(dir.path(), PartitionOptions::default()).unwrap();
        assert_eq!(p.high_watermark(), 1);
    }

    #[test]
    fn concurrent_sync_appends_share_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let p =
            Arc::new(Partition::open(dir.path(), PartitionOptions::default().durability(Durability::Sync)).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let p = Arc::clone(&p);
                std::thread::spawn(move || {
                    for i in 0..100 {
                        p.append(&[rec(t * 1000 + i)]).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(p.high_watermark(), 400);
        let syncs = p.inner.sync_calls.load(Ordering::Relaxed);
        assert!(syncs < 400, "group commit: {syncs} syncs for 400 appends");
        assert_eq!(p.inner.sync.lock().synced, 400);
    }

    #[test]
    fn interval_durability_syncs_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let opts = PartitionOptions::default().durability(Durability::Interval(Duration::from_millis(5)));
        let p = Partition::open(dir.path(), opts).unwrap();
        p.append(&[rec(0), rec(1)]).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while p.inner.sync.lock().synced < 2 {
            assert!(std::time::Instant::now() < deadline, "the flusher never synced");
            std::thread::sleep(Duration::from_millis(1));
        }
        p.close().unwrap();
    }

    #[test]
    fn a_closed_partition_refuses_calls() {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(dir.path(), PartitionOptions::default()).unwrap();
        p.shutdown().unwrap();
        assert!(matches!(p.append(&[rec(0)]), Err(Error::Closed)));
        assert!(matches!(p.read(0, 10), Err(Error::Closed)));
        assert!(matches!(p.roll(), Err(Error::Closed)));
    }
}
