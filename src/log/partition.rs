//! A partition: an ordered list of segments in one directory, the offsets
//! (log start, high watermark), rolling, durability and recovery.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};

use crate::error::{Error, Result};
use crate::log::format::{self, AppendRecord};
use crate::log::fsutil;
use crate::log::mapcache::{self, MapCache};
use crate::log::meta::{
    BROKER_CLEAN_MARKER, CLEAN_MARKER, CleanMarker, CleanState, SegmentFingerprint, lock_partition_dir,
    read_clean_marker,
};
use crate::log::mmap::Prefaulter;
use crate::log::notify::{self, WaitList, Waiter};
use crate::log::options::{Durability, MAX_TIMESTAMP, PartitionOptions};
use crate::log::periodic::{Periodic, Worker};
use crate::log::record::{Batch, Record, RecordRef, TimestampType};
use crate::log::recovery::{self, Recovered};
use crate::log::segment::{ActiveSegment, IndexConfig, Segment, SegmentConfig};
use crate::log::stats::{Counters, LogStats};
use crate::log::view;

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
/// let rec = batches[0].records().next().unwrap()?;
/// assert_eq!((rec.offset, &rec.value.unwrap()[..]), (1, &b"world"[..]));
/// log.close()?;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
pub struct Partition {
    pub(super) inner: Arc<Inner>,
    flusher: Mutex<Option<Periodic>>,
    /// The thread that syncs for async appends with `Durability::Sync`,
    /// started by the first of them and joined on close.
    syncer: Mutex<Option<JoinHandle<()>>>,
    /// The prefault thread, when this partition started its own (a broker
    /// shares one between its partitions).
    own_prefaulter: Option<Arc<Prefaulter>>,
    /// Where rolled segments are synced off the append path (the broker's,
    /// or this partition's own when standalone). Not in `Inner`: its jobs
    /// hold `Inner`, and the last holder must never be the worker's thread
    /// joining itself.
    sealer: Arc<Worker>,
}

pub(super) struct Inner {
    pub(super) dir: PathBuf,
    /// The options at open; [`Partition::update_options`] changes the
    /// copies in `Writer::settings`, `SyncState::durability` and
    /// `timestamps`, which are what the partition follows.
    pub(super) opts: PartitionOptions,
    pub(super) segment_config: SegmentConfig,
    /// How appends treat record timestamps; read without the writer's lock.
    timestamps: TimestampPolicy,
    /// The append path. `None` once closed, or after a failed roll.
    writer: Mutex<Option<Writer>>,
    /// Oldest first; the last one is the active segment.
    pub(super) segments: RwLock<Arc<Vec<Arc<Segment>>>>,
    /// The offset after the last appended record. Stored with release
    /// ordering after the bytes and index entries are in place.
    pub(super) high_watermark: AtomicU64,
    pub(super) log_start_offset: AtomicU64,
    pub(super) poisoned: AtomicBool,
    pub(super) closed: AtomicBool,
    sync: Mutex<SyncState>,
    pub(super) sync_done: Condvar,
    /// Tells the syncer thread that an async append waits for a sync.
    sync_wanted: Condvar,
    /// Syncs issued by `sync_to`, for tests of group commit.
    pub(super) sync_calls: AtomicU64,
    /// Appends, reads and syncs, for [`Partition::stats`].
    pub(super) counters: Counters,
    /// Consumers parked until new records arrive.
    pub(super) waiters: WaitList,
    /// Serializes retention, delete-records and compaction.
    pub(super) maintenance: Mutex<()>,
    /// Compaction has cleaned everything below this offset (for the dirty
    /// ratio). Persisted with the log start in `.checkpoints`.
    pub(super) cleaned_up_to: AtomicU64,
    /// The directory locks of a standalone partition, held until it is
    /// closed (a broker's partitions are covered by the broker's lock).
    pub(super) dir_lock: Mutex<Vec<File>>,
    /// The clean-shutdown marker vouching for this partition's files: its
    /// own, or its broker's.
    marker: Arc<CleanMarker>,
    /// Whether the marker is this partition's own (written at close).
    own_marker: bool,
    /// Changed since open (or recovered): a close must seal and sync it.
    dirty: AtomicBool,
    /// The directory entry of the first segment is not synced yet (a
    /// partition created by a broker, which defers that to the first sync).
    dir_unsynced: AtomicBool,
    /// Held while the directory is synced for `dir_unsynced`.
    dir_sync: Mutex<()>,
    /// Rolled segments handed to the sealer: how many were handed over and
    /// how many are synced (or failed, poisoning the partition). At most one
    /// is in flight: recovery looks one segment back for an unsealed one.
    seals: Mutex<SealCounts>,
    seal_done: Condvar,
}

#[derive(Default)]
struct SealCounts {
    started: u64,
    finished: u64,
}

/// What a broker shares with the partitions it opens.
#[derive(Clone)]
pub(crate) struct BrokerLink {
    pub prefaulter: Arc<Prefaulter>,
    /// Syncs rolled segments in the background, for all the partitions.
    pub sealer: Arc<Worker>,
    pub cache: Arc<MapCache>,
    /// The broker's clean-shutdown marker.
    pub marker: Arc<CleanMarker>,
}

/// How a broker opens one partition.
pub(crate) struct BrokerOpen {
    pub link: BrokerLink,
    /// The partition's state in the broker's marker, if it has one.
    pub clean: Option<CleanState>,
    /// A partition being created: its directory is made here, and syncing
    /// its entries is left to the caller (the parent) and to the first sync
    /// of data (the partition's own).
    pub create: bool,
}

struct Writer {
    active: ActiveSegment,
    next_offset: u64,
    /// Timestamp of the active segment's first batch, for `segment_age`.
    first_timestamp: Option<i64>,
    settings: Settings,
}

/// The options of the append path that [`Partition::update_options`] may
/// change while the partition is open (kept under the writer's lock).
#[derive(Clone, Copy)]
struct Settings {
    segment_bytes: u32,
    /// `segment_age` in milliseconds, as compared with timestamps.
    segment_age_ms: i64,
    index: IndexConfig,
    durability: Durability,
}

impl Settings {
    fn of(opts: &PartitionOptions) -> Settings {
        Settings {
            segment_bytes: opts.segment_bytes,
            segment_age_ms: millis(opts.segment_age),
            index: IndexConfig { interval_bytes: opts.index_interval_bytes, max_index_bytes: opts.max_index_bytes },
            durability: opts.durability,
        }
    }

    /// Largest batch that fits a segment.
    fn max_batch_bytes(&self) -> usize {
        (self.segment_bytes as usize).max(format::BATCH_HEADER_LEN)
    }
}

/// A duration as compared with timestamps: milliseconds, saturated.
fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// The timestamp options, as atomics: `append` reads them before it takes
/// the writer's lock. Relaxed is enough: each is a setting on its own, and
/// an append racing `update_options` may follow the old or the new one.
struct TimestampPolicy {
    log_append: AtomicBool,
    /// `i64::MAX` for no limit.
    before_max_ms: AtomicI64,
    after_max_ms: AtomicI64,
}

impl TimestampPolicy {
    fn of(opts: &PartitionOptions) -> TimestampPolicy {
        let p = TimestampPolicy {
            log_append: AtomicBool::new(false),
            before_max_ms: AtomicI64::new(i64::MAX),
            after_max_ms: AtomicI64::new(i64::MAX),
        };
        p.set(opts);
        p
    }

    fn set(&self, opts: &PartitionOptions) {
        let limit = |d: Option<Duration>| d.map_or(i64::MAX, millis);
        self.log_append.store(opts.timestamp_type == TimestampType::LogAppendTime, Ordering::Relaxed);
        self.before_max_ms.store(limit(opts.timestamp_before_max), Ordering::Relaxed);
        self.after_max_ms.store(limit(opts.timestamp_after_max), Ordering::Relaxed);
    }
}

/// The rule a producer's timestamp `ts` breaks whatever the partition's
/// settings and clock, if any (see [`Error::InvalidTimestamp`]).
pub(crate) fn timestamp_out_of_range(ts: i64) -> Option<&'static str> {
    if ts < 0 && ts != format::NO_TIMESTAMP {
        Some("negative (only -1, no timestamp, is allowed)")
    } else if ts > MAX_TIMESTAMP {
        Some("past the year 9999 (MAX_TIMESTAMP)")
    } else {
        None
    }
}

/// Checks the producer's timestamps of `records` against the partition's
/// rules (see [`Error::InvalidTimestamp`]); `now` is read only when a
/// window is set.
fn check_timestamps<R: AppendRecord>(records: &[R], now: i64, before_max: i64, after_max: i64) -> Result<()> {
    let windowed = before_max != i64::MAX || after_max != i64::MAX;
    for r in records {
        let Some(ts) = r.timestamp() else { continue };
        let reason = if let Some(reason) = timestamp_out_of_range(ts) {
            reason
        } else if ts == format::NO_TIMESTAMP {
            continue;
        } else if windowed && now.saturating_sub(ts) > before_max {
            "older than timestamp_before_max allows"
        } else if windowed && ts.saturating_sub(now) > after_max {
            "newer than timestamp_after_max allows"
        } else {
            continue;
        };
        return Err(Error::InvalidTimestamp { timestamp: ts, now, reason });
    }
    Ok(())
}

struct SyncState {
    /// Every offset below this is on disk.
    synced: u64,
    /// A thread is syncing; others wait for it rather than sync again.
    in_progress: bool,
    /// When the last sync finished (for `Durability::Interval`).
    last_sync: std::time::Instant,
    /// The current durability, for the flush thread and async appends (the
    /// append path reads its copy in `Writer::settings`).
    durability: Durability,
    /// The highest offset async appends wait to see synced.
    requested: u64,
    /// Tasks of async appends waiting for a sync; all woken after each.
    wakers: Vec<Waker>,
    /// The syncer thread is to end (the partition closes).
    stop_syncer: bool,
}

impl Partition {
    /// Opens (or creates) the partition log in `dir`, recovering it if it
    /// was not closed cleanly. Fails with [`Error::Locked`] if another handle
    /// has it open.
    ///
    /// A partition directory inside a broker's directory that a broker has
    /// open (in this process or another) is [`Error::Locked`] too.
    pub fn open(dir: impl AsRef<Path>, opts: PartitionOptions) -> Result<Partition> {
        Partition::open_with(dir.as_ref(), opts, None)
    }

    /// [`Partition::open`] for a broker's partition (`broker` given): the
    /// broker's lock covers it, its prefault thread, mapping cache and
    /// clean marker are shared, and the broker's flush thread calls
    /// [`Partition::flush_if_due`] for `Durability::Interval`. With `None`,
    /// the partition locks its directory and has all of these itself.
    pub(crate) fn open_with(dir: &Path, opts: PartitionOptions, broker: Option<BrokerOpen>) -> Result<Partition> {
        opts.validate()?;
        let dir = dir.to_path_buf();
        if dir.as_os_str().is_empty() {
            return Err(Error::InvalidConfig("the partition directory path is empty".into()));
        }
        let create = broker.as_ref().is_some_and(|b| b.create);
        if create {
            // Its parent is synced by the caller, its own entries before
            // the first sync of data.
            fs::create_dir(&dir).map_err(Error::io("create directory", &dir))?;
        } else if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(Error::io("create directory", &dir))?;
            if let Some(parent) = dir.parent() {
                fsutil::sync_dir(parent)?;
            }
        }
        let (locks, brokers) = if broker.is_none() { lock_partition_dir(&dir)? } else { Default::default() };
        let settings = Settings::of(&opts);
        let index_config = settings.index;

        let (link, clean, own_prefaulter) = match broker {
            Some(b) => (b.link, b.clean, None),
            None => {
                let prefaulter = Prefaulter::start()?;
                let clean = read_clean_marker(&dir)?;
                let link = BrokerLink {
                    prefaulter: Arc::clone(&prefaulter),
                    sealer: Worker::new("streamlog-seal"),
                    cache: MapCache::new(mapcache::PARTITION_DEFAULT_CAPACITY),
                    // A broker's partition opened on its own: its changes
                    // void the broker's marker too.
                    marker: CleanMarker::with_enclosing(
                        &dir,
                        CLEAN_MARKER.name,
                        dir.join(CLEAN_MARKER.name).exists(),
                        brokers.iter().map(|b| b.join(BROKER_CLEAN_MARKER)).collect(),
                    ),
                };
                (link, clean, Some(prefaulter))
            }
        };
        let sealer = Arc::clone(&link.sealer);
        let segment_config = SegmentConfig {
            capacity: opts.segment_bytes,
            index: index_config,
            prefaulter: Some(link.prefaulter),
            cache: link.cache,
            repair: opts.repair,
        };
        let Recovered { segments, active, next_offset, checkpoints, clean: opened_clean } =
            recovery::recover(&dir, &segment_config, clean, &link.marker, !create)?;
        let log_start = segments[0].base_offset().max(checkpoints.log_start).min(next_offset);
        let first_timestamp = first_timestamp(&active.segment)?;

        let inner = Arc::new(Inner {
            dir,
            segment_config,
            timestamps: TimestampPolicy::of(&opts),
            writer: Mutex::new(Some(Writer { active, next_offset, first_timestamp, settings })),
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
                durability: opts.durability,
                requested: 0,
                wakers: Vec::new(),
                stop_syncer: false,
            }),
            sync_done: Condvar::new(),
            sync_wanted: Condvar::new(),
            sync_calls: AtomicU64::new(0),
            counters: Counters::default(),
            maintenance: Mutex::new(()),
            cleaned_up_to: AtomicU64::new(checkpoints.cleaned_up_to),
            waiters: WaitList::default(),
            dir_lock: Mutex::new(locks),
            marker: link.marker,
            own_marker: own_prefaulter.is_some(),
            dirty: AtomicBool::new(!opened_clean),
            dir_unsynced: AtomicBool::new(create),
            dir_sync: Mutex::new(()),
            seals: Mutex::new(SealCounts::default()),
            seal_done: Condvar::new(),
            opts,
        });
        let flusher = match inner.opts.durability {
            Durability::Interval(every) if own_prefaulter.is_some() => Some(start_flusher(Arc::clone(&inner), every)?),
            _ => None,
        };
        Ok(Partition { inner, flusher: Mutex::new(flusher), syncer: Mutex::new(None), own_prefaulter, sealer })
    }

    /// Appends `records` as one batch and returns their offsets. The batch is
    /// visible to readers, and survives a crash of the process, when this
    /// returns; with [`Durability::Sync`] it is also on disk. A panic of a
    /// waker it wakes (a consumer task's) goes on once the append, and its
    /// sync, are done.
    pub fn append(&self, records: &[Record]) -> Result<AppendInfo> {
        let (result, panicked) = self.append_keeping_panic(records);
        notify::resume_panic(panicked);
        result
    }

    /// [`Partition::append`], returning a waker's panic (a woken consumer's,
    /// or an async append's woken by the sync) rather than resuming it: the
    /// append is done, and synced if it must be, whatever a waker does, and
    /// the caller tells its own waiters of it before the panic goes on.
    pub(crate) fn append_keeping_panic(&self, records: &[Record]) -> (Result<AppendInfo>, Option<notify::Panic>) {
        let mut panicked = None;
        let result = self.append_synced(records, &mut panicked);
        (result, panicked)
    }

    /// [`Partition::append`] of records borrowed from the caller's buffers:
    /// nothing is allocated per record (see [`RecordRef`] for an example).
    /// The bytes are copied into the log before this returns.
    pub fn append_refs(&self, records: &[RecordRef<'_>]) -> Result<AppendInfo> {
        let mut panicked = None;
        let result = self.append_synced(records, &mut panicked);
        notify::resume_panic(panicked);
        result
    }

    /// The append, then the sync of `Durability::Sync`; a waker's panic is
    /// kept in `panicked`.
    fn append_synced<R: AppendRecord>(
        &self,
        records: &[R],
        panicked: &mut Option<notify::Panic>,
    ) -> Result<AppendInfo> {
        let (at, durability) = self.append_visible(records, panicked)?;
        if durability == Durability::Sync {
            let (synced, sync_panicked) = self.inner.sync_to_keeping_panic(at.last_offset + 1);
            *panicked = panicked.take().or(sync_panicked);
            synced?;
        }
        Ok(at)
    }

    /// [`Partition::append`] without blocking the thread: the batch is
    /// appended (and visible) when this is called, and the future resolves
    /// at once, but with [`Durability::Sync`], where it resolves when a
    /// sync covers the batch. Concurrent async and blocking appends share
    /// syncs (group commit); the async ones are synced by a thread of this
    /// partition (one, started by the first, joined on close), so the
    /// executor's thread never waits for the disk. Dropping the future
    /// does not undo the append.
    pub fn append_async(&self, records: &[Record]) -> AppendFuture<'_> {
        AppendFuture { log: self, result: Some(self.append_unsynced(records)) }
    }

    /// Whether appends must wait for a sync before they are acknowledged
    /// (the durability may change while the partition is open).
    pub(crate) fn syncs_appends(&self) -> bool {
        self.inner.sync.lock().durability == Durability::Sync
    }

    /// Ready once every offset below `target` is on disk; until then the
    /// syncer thread is asked to sync and `cx`'s task is woken after it.
    pub(crate) fn poll_synced(&self, target: u64, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let inner = &*self.inner;
        let mut state = inner.sync.lock();
        if state.synced >= target {
            return Poll::Ready(Ok(()));
        }
        if let Err(e) = inner.check_writable() {
            return Poll::Ready(Err(e));
        }
        if inner.closed.load(Ordering::Acquire) {
            return Poll::Ready(Err(Error::Closed));
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        state.requested = state.requested.max(target);
        drop(state);
        if let Err(e) = self.start_syncer() {
            return Poll::Ready(Err(e));
        }
        // After the request, under the lock the syncer checks it with: it
        // either sees the request or is waiting and gets this.
        inner.sync_wanted.notify_one();
        Poll::Pending
    }

    fn start_syncer(&self) -> Result<()> {
        let mut slot = self.syncer.lock();
        if slot.is_some() {
            return Ok(());
        }
        let inner = Arc::clone(&self.inner);
        let thread = std::thread::Builder::new()
            .name("streamlog-sync".into())
            .spawn(move || {
                let mut state = inner.sync.lock();
                while !state.stop_syncer {
                    if state.requested > state.synced && inner.check_writable().is_ok() {
                        let target = state.requested;
                        drop(state);
                        // Errors poison the partition and wake the waiters
                        // (inside `sync_to`); they report it. A waker's
                        // panic must not end this thread: the next async
                        // append would find it started and wait for ever.
                        let _ = inner.sync_in_background(target);
                        state = inner.sync.lock();
                    } else {
                        inner.sync_wanted.wait(&mut state);
                    }
                }
            })
            .map_err(|e| Error::Io { op: "spawn thread", path: self.inner.dir.clone(), source: e })?;
        *slot = Some(thread);
        Ok(())
    }

    fn stop_syncer(&self) {
        let Some(thread) = self.syncer.lock().take() else { return };
        self.inner.sync.lock().stop_syncer = true;
        self.inner.sync_wanted.notify_all();
        let _ = thread.join();
    }

    /// The append, acknowledged once visible (without the sync of
    /// `Durability::Sync`).
    pub(crate) fn append_unsynced(&self, records: &[Record]) -> Result<(AppendInfo, Durability)> {
        let mut panicked = None;
        let result = self.append_visible(records, &mut panicked);
        notify::resume_panic(panicked);
        result
    }

    /// The append up to visibility, and the durability that applied to it.
    /// A panic of a waker it wakes is kept in `panicked`.
    fn append_visible<R: AppendRecord>(
        &self,
        records: &[R],
        panicked: &mut Option<notify::Panic>,
    ) -> Result<(AppendInfo, Durability)> {
        let inner = &*self.inner;
        let ts = &inner.timestamps;
        let log_append = ts.log_append.load(Ordering::Relaxed);
        let (before_max, after_max) =
            (ts.before_max_ms.load(Ordering::Relaxed), ts.after_max_ms.load(Ordering::Relaxed));
        let needs_now = log_append
            || before_max != i64::MAX
            || after_max != i64::MAX
            || records.iter().any(|r| r.timestamp().is_none_or(|t| t == format::NO_TIMESTAMP));
        let now = if needs_now { inner.opts.clock.now_ms() } else { 0 };
        if !log_append {
            check_timestamps(records, now, before_max, after_max)?;
        }
        let plan = format::plan_batch(records, now, log_append).ok_or_else(|| {
            if records.is_empty() {
                Error::EmptyBatch
            } else {
                Error::RecordTooLarge { size: u64::MAX, max: inner.opts.max_batch_bytes() as u64 }
            }
        })?;
        let count = u64::from(plan.record_count);

        let mut guard = inner.writer.lock();
        inner.check_writable()?;
        let Some(mut w) = guard.as_mut() else { return Err(Error::Closed) };
        let max = w.settings.max_batch_bytes();
        if plan.len > max {
            return Err(Error::RecordTooLarge { size: plan.len as u64, max: max as u64 });
        }
        let durability = w.settings.durability;
        inner.before_change()?;
        if inner.needs_roll(w, plan.len, count, plan.max_timestamp) {
            // `Sync` keeps its promise by syncing the roll here; otherwise the
            // old segment is synced in the background.
            let sealer = (durability != Durability::Sync).then_some(&*self.sealer);
            self.inner.roll_locked(&mut guard, sealer)?;
            let Some(rolled) = guard.as_mut() else { return Err(Error::Closed) };
            w = rolled;
        }
        let base = w.next_offset;
        let pos = w
            .active
            .map
            .append_with(plan.len, |buf| format::encode_batch(buf, &plan, base, records, now, log_append))?;
        w.active.index_batch(base, pos, plan.len, plan.max_timestamp);
        w.first_timestamp.get_or_insert(plan.first_timestamp);
        w.next_offset = base + count;
        // Release (as part of SeqCst): the bytes, index entries and
        // timestamps above are visible to readers that load the high
        // watermark with acquire ordering. SeqCst: pairs with waiters'
        // registration, see `WaitList::register`.
        inner.high_watermark.store(w.next_offset, Ordering::SeqCst);
        let next = w.next_offset;
        // Still under the writer lock: no other thread bumps these.
        Counters::add_exclusive(&inner.counters.appends, 1);
        Counters::add_exclusive(&inner.counters.records_appended, count);
        Counters::add_exclusive(&inner.counters.bytes_appended, plan.len as u64);
        drop(guard);
        inner.waiters.wake_all_keeping_panic(panicked);
        Ok((AppendInfo { base_offset: base, last_offset: next - 1 }, durability))
    }

    /// Batches from `offset` on, up to about `max_bytes` (at least one batch
    /// if any record is there). The first batch may start before `offset`;
    /// its [`Batch::records`] skip the records before it. Reading at the high
    /// watermark returns no batches; outside `[log_start_offset,
    /// high_watermark]` is [`Error::OffsetOutOfRange`].
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Vec<Batch>> {
        let mut batches = Vec::new();
        self.read_records(offset, max_bytes, usize::MAX, &mut batches)?;
        Ok(batches)
    }

    /// [`Partition::read`] into `out` (appended to: a consumer reuses one
    /// vector), stopping once the batches span `max_records` offsets from
    /// `offset` on (a consumer's `max_poll_records`: the batches past it
    /// would be checked and then dropped; compacted batches count their
    /// removed records too, so they may hold fewer).
    pub(crate) fn read_records(
        &self,
        offset: u64,
        max_bytes: usize,
        max_records: usize,
        out: &mut Vec<Batch>,
    ) -> Result<()> {
        let inner = &*self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let end = inner.high_watermark.load(Ordering::Acquire);
        // The segment list before the log start: retention stores the new
        // start before it swaps the list (`advance_log_start`), so a list
        // without the dropped segments comes with a start that excludes
        // their offsets. The other way round, a start loaded before
        // retention and a list taken after it would send a read below the
        // new start to the first kept segment: later records, not
        // `OffsetOutOfRange`. An old list with an old start is a consistent
        // view of before retention (its files stay readable, or fail and
        // are mapped to `OffsetOutOfRange` below).
        let segments = inner.segments();
        #[cfg(test)]
        tests::between_read_loads();
        let start = inner.log_start_offset.load(Ordering::Acquire);
        if offset < start || offset > end {
            return Err(Error::OffsetOutOfRange { requested: offset, start, end });
        }
        Counters::add(&inner.counters.reads.0, 1);
        if offset == end {
            return Ok(());
        }
        let mut i = segments.partition_point(|s| s.base_offset() <= offset).saturating_sub(1);
        loop {
            let bound = segments.get(i + 1).map_or(end, |s| s.base_offset().min(end));
            let taken = segments[i].read_records(offset, bound, max_bytes, max_records, out).map_err(|e| {
                // Retention may have deleted the segment under this read.
                let start = inner.log_start_offset.load(Ordering::Acquire);
                if offset < start { Error::OffsetOutOfRange { requested: offset, start, end } } else { e }
            })?;
            // An empty answer from a sealed segment means `offset` is past its
            // last record (a gap left by compaction): go on to the next one.
            if taken > 0 || i + 1 == segments.len() {
                return Ok(());
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

    /// The first record with the largest timestamp in the log, and that
    /// timestamp (Kafka's `ListOffsets` with `MAX_TIMESTAMP`, KIP-734), or
    /// `None` if the log holds no record.
    pub fn max_timestamp_offset(&self) -> Result<Option<(u64, i64)>> {
        let inner = &*self.inner;
        let end = inner.high_watermark.load(Ordering::Acquire);
        let start = inner.log_start_offset.load(Ordering::Acquire);
        let segments = inner.segments();
        let bound = |i: usize| segments.get(i + 1).map_or(end, |s: &Arc<Segment>| s.base_offset().min(end));
        // The first segment holding the largest timestamp (`i64::MIN`: empty).
        let mut best: Option<(usize, i64)> = None;
        for (i, seg) in segments.iter().enumerate() {
            let ts = seg.max_timestamp(bound(i))?;
            if ts != i64::MIN && best.is_none_or(|(_, max)| ts > max) {
                best = Some((i, ts));
            }
        }
        let Some((i, ts)) = best else { return Ok(None) };
        Ok(segments[i].offset_for_timestamp(ts, bound(i))?.map(|o| (o.max(start), ts)))
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

    /// A snapshot of the offsets, files and counters (see [`LogStats`]).
    /// Costs a `stat` per sealed segment not mapped now; nothing on the
    /// append or read path waits for it.
    pub fn stats(&self) -> LogStats {
        let inner = &*self.inner;
        let segments = inner.segments();
        let c = &inner.counters;
        LogStats {
            log_start_offset: self.log_start_offset(),
            log_end_offset: self.high_watermark(),
            // A segment deleted under the snapshot counts as empty.
            size_bytes: segments.iter().map(|s| s.size().unwrap_or(0)).sum(),
            segments: segments.len(),
            mapped_segments: segments.iter().filter(|s| s.is_mapped()).count(),
            appends: Counters::get(&c.appends),
            records_appended: Counters::get(&c.records_appended),
            bytes_appended: Counters::get(&c.bytes_appended),
            reads: Counters::get(&c.reads.0),
            fsyncs: Counters::get(&c.fsyncs),
        }
    }

    /// Registers `w` to be woken by the next append (see `WaitList`).
    pub(crate) fn register_waiter(&self, w: &Arc<Waiter>) {
        self.inner.waiters.register(w);
    }

    /// How many waiters are registered (for tests).
    #[cfg(test)]
    pub(crate) fn waiters_registered(&self) -> usize {
        self.inner.waiters.count.load(Ordering::SeqCst)
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
    /// the last sync is at least `d` ago. For the broker's flush thread: a
    /// waker's panic is reported, not raised.
    pub(crate) fn flush_if_due(&self) -> Result<()> {
        let inner = &*self.inner;
        let hw = inner.high_watermark.load(Ordering::Acquire);
        let due = {
            let state = inner.sync.lock();
            let Durability::Interval(every) = state.durability else { return Ok(()) };
            state.synced < hw && state.last_sync.elapsed() >= every
        };
        if due && !inner.closed.load(Ordering::Acquire) { inner.sync_in_background(hw) } else { Ok(()) }
    }

    /// Writes everything appended so far to disk.
    pub fn flush(&self) -> Result<()> {
        let inner = &*self.inner;
        inner.sync_to(inner.high_watermark.load(Ordering::Acquire))
    }

    /// Applies `opts` to the open partition, without reopening it:
    /// - `segment_bytes` and `segment_age` from the next append's roll
    ///   decision (the active segment rolls once it would pass the new size;
    ///   a larger size applies from the next segment, as the active one's
    ///   file was sized when it was created);
    /// - `index_interval_bytes` and `max_index_bytes` from the next segment;
    /// - `durability`, the timestamp type and windows from the next append.
    ///
    /// `repair` and `clock` only matter at open and are ignored here. The
    /// options are not stored by the partition: a broker's topic keeps them
    /// in its `topic.meta` ([`crate::Broker::alter_topic`]).
    pub fn update_options(&self, opts: &PartitionOptions) -> Result<()> {
        opts.validate()?;
        let inner = &*self.inner;
        let settings = Settings::of(opts);
        // Lock order as in `seal_for_close`: the flusher, then the writer.
        // Holding the first keeps a concurrent close from missing a flusher
        // started here.
        let mut flusher = self.flusher.lock();
        let old = {
            let mut guard = inner.writer.lock();
            let Some(w) = guard.as_mut() else { return Err(Error::Closed) };
            let old = std::mem::replace(&mut w.settings, settings);
            inner.sync.lock().durability = settings.durability;
            inner.timestamps.set(opts);
            old
        };
        // A standalone partition runs its own flusher for `Interval` (a
        // broker's flush thread reads `SyncState::durability` on each tick).
        if self.own_prefaulter.is_some() && old.durability != settings.durability {
            if let Some(f) = flusher.take() {
                f.stop();
            }
            if let Durability::Interval(every) = settings.durability {
                *flusher = Some(start_flusher(Arc::clone(&self.inner), every)?);
            }
        }
        Ok(())
    }

    /// A read-only snapshot of every segment, oldest first; the last one is
    /// the active segment. Costs no scan: offsets come from the segment
    /// list, sizes from the mapping (or a `stat`), timestamps from the first
    /// batch's header and the time index (a segment not read since open has
    /// its index files loaded, or rebuilt if they are missing).
    pub fn segments(&self) -> Result<Vec<view::Segment>> {
        let inner = &*self.inner;
        // The high watermark before the list: a roll in between adds an
        // empty segment whose base is past it, never offsets to an old one.
        let end = inner.high_watermark.load(Ordering::Acquire);
        let segments = inner.segments();
        let mut out = Vec::with_capacity(segments.len());
        for (i, seg) in segments.iter().enumerate() {
            let next = segments.get(i + 1).map(|s| s.base_offset());
            let end_offset = next.unwrap_or(end).max(seg.base_offset());
            let max = seg.max_timestamp(end_offset)?;
            out.push(view::Segment {
                base_offset: seg.base_offset(),
                end_offset,
                size_in_bytes: seg.size()?,
                first_timestamp: if end_offset > seg.base_offset() { first_timestamp(seg)? } else { None },
                max_timestamp: (max != i64::MIN).then_some(max),
                active: next.is_none(),
                log_path: seg.log_path().to_path_buf(),
                index_path: seg.index_path().to_path_buf(),
                time_index_path: seg.time_index_path().to_path_buf(),
            });
        }
        Ok(out)
    }

    /// Seals the active segment (syncing it before this returns, whatever
    /// the durability) and starts a new one. Does nothing if the active
    /// segment is empty. (A roll decided by an append syncs the old segment
    /// in the background unless the durability is `Sync`.)
    pub fn roll(&self) -> Result<()> {
        let inner = &*self.inner;
        let mut guard = inner.writer.lock();
        inner.check_writable()?;
        match guard.as_ref() {
            None => Err(Error::Closed),
            Some(w) if w.active.map.position() == 0 => Ok(()),
            Some(_) => {
                inner.before_change()?;
                self.inner.roll_locked(&mut guard, None)
            }
        }
    }

    /// Verifies every batch of every segment: checksums, record encoding,
    /// offset order. The first problem is an error naming file and position.
    pub fn verify(&self) -> Result<()> {
        self.inner.segments().iter().try_for_each(|s| s.verify())
    }

    /// Closes the partition cleanly: seals the active segment's files, syncs
    /// everything and leaves the marker that makes the next open cheap.
    pub fn close(self) -> Result<()> {
        self.shutdown()
    }

    /// Refuses reads and commits from now on (appends go on until the
    /// writer is taken), waking no one and sealing nothing: what a topic's
    /// delete does under the broker's lock before it forgets the topic's
    /// committed offsets, so that no commit lands after them; the close
    /// that follows wakes and seals.
    pub(crate) fn mark_closed(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
    }

    /// Closes through a shared reference: what `close` and drop do, and what
    /// a broker does to partitions that others may still hold.
    pub(crate) fn shutdown(&self) -> Result<()> {
        let (result, panicked) = self.shutdown_keeping_panic();
        notify::resume_panic(panicked);
        result.map(drop)
    }

    /// [`Partition::shutdown`], returning the state a broker records in its
    /// clean marker (`None` if its writer was taken already: closed before,
    /// or failed), and a waker's panic rather than resuming it: a broker
    /// closing its partitions still records this one's state.
    pub(crate) fn shutdown_keeping_panic(&self) -> (Result<Option<CleanState>>, Option<notify::Panic>) {
        let sealed = self.seal_for_close();
        // Release the directory even if other handles to this partition live
        // on (they fail with `Closed`), so that it can be opened again.
        self.inner.dir_lock.lock().clear();
        sealed
    }

    /// Seals the active segment, unless nothing changed since a clean open
    /// (then the files are as the marker describes them), and for a
    /// standalone partition writes its marker.
    fn seal_for_close(&self) -> (Result<Option<CleanState>>, Option<notify::Panic>) {
        if let Some(f) = self.flusher.lock().take() {
            f.stop();
        }
        self.stop_syncer();
        let inner = &*self.inner;
        // Wait out a maintenance pass in progress; none starts once closed.
        // (The writer is taken below, so no roll starts a seal after the
        // wait for them further down.)
        let maintenance = inner.maintenance.lock();
        let writer = inner.writer.lock().take();
        // SeqCst, then wake: pairs with a waiter's registration, as an
        // append's high watermark does (a deleted topic or a closed broker
        // must not leave a consumer parked).
        inner.closed.store(true, Ordering::SeqCst);
        // Woken outside the lock: a waker may run its task on the spot,
        // and the task call back into the partition. A waker's panic is
        // returned, to go on once the partition is sealed.
        drop(maintenance);
        let mut panicked = None;
        notify::catch_panic(&mut panicked, || inner.waiters.wake_all());
        // Async appends waiting for a sync learn of the close.
        notify::catch_panic(&mut panicked, || inner.wake_sync_waiters(inner.sync.lock()));
        (self.seal_closed(writer), panicked)
    }

    /// The rest of [`Partition::seal_for_close`], once closed: waits for
    /// background seals, then seals the active segment of `writer`.
    fn seal_closed(&self, writer: Option<Writer>) -> Result<Option<CleanState>> {
        let inner = &*self.inner;
        // A background seal of a rolled segment finishes first: a clean
        // close leaves everything synced. (Its failure poisons: checked next.)
        let _ = inner.wait_seals();
        if let Some(pf) = &self.own_prefaulter {
            pf.shutdown();
            self.sealer.shutdown();
        }
        inner.check_writable()?;
        let Some(w) = writer else { return Ok(None) };
        // The active segment's file is cut to its position when sealed.
        let segments = inner.segments();
        let mut lens = Vec::with_capacity(segments.len());
        for s in &segments[..segments.len() - 1] {
            lens.push((s.base_offset(), s.size()?));
        }
        lens.push((w.active.segment.base_offset(), w.active.map.position() as u64));
        let state = CleanState { next_offset: w.next_offset, segments: SegmentFingerprint::of(lens) };
        if !inner.dirty.load(Ordering::Acquire) {
            return Ok(Some(state));
        }
        let written = w.active.map.position() > 0;
        Counters::add(&inner.counters.fsyncs, 1);
        w.active.seal(&inner.dir)?;
        if written {
            inner.sync_dir_if_needed()?;
        }
        if inner.own_marker {
            CLEAN_MARKER.write(&inner.dir, &state.to_fields())?;
        }
        Ok(Some(state))
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
    /// The newest timestamp in the active segment, `None` while it holds
    /// no record (or the partition is closed).
    pub(super) fn active_max_timestamp(&self) -> Option<i64> {
        let writer = self.writer.lock();
        writer.as_ref().filter(|w| w.active.map.position() > 0).map(|w| w.active.index.max_timestamp())
    }

    pub(super) fn segments(&self) -> Arc<Vec<Arc<Segment>>> {
        Arc::clone(&self.segments.read())
    }

    /// Called before the first change to the files after open: the clean
    /// marker must be gone first. One atomic load after that.
    pub(super) fn before_change(&self) -> Result<()> {
        // Acquire: pairs with the release below (the marker is gone).
        if !self.dirty.load(Ordering::Acquire) {
            self.marker.invalidate()?;
            self.dirty.store(true, Ordering::Release);
        }
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned { path: self.dir.clone() });
        }
        Ok(())
    }

    fn poison(&self) {
        tracing::error!(dir = %self.dir.display(), "a sync failed: the partition refuses writes until reopened");
        self.poisoned.store(true, Ordering::Release);
    }

    fn needs_roll(&self, w: &Writer, len: usize, count: u64, max_timestamp: i64) -> bool {
        let map = &w.active.map;
        if map.position() == 0 {
            return false;
        }
        // `segment_bytes` may have shrunk below the active segment's
        // capacity since it was created (`update_options`).
        len > map.remaining()
            || map.position() + len > w.settings.segment_bytes as usize
            || w.active.index.is_full()
            || w.next_offset + count - w.active.segment.base_offset() > u64::from(u32::MAX)
            || w.first_timestamp.is_some_and(|first| max_timestamp.saturating_sub(first) >= w.settings.segment_age_ms)
    }

    /// Starts the next segment, then seals the active one. Creating the
    /// new file comes first: if that fails (a full disk), nothing changed
    /// and the append can be retried. A failure to cut or sync the old
    /// segment poisons the partition. A crash between the two steps is
    /// handled by recovery (the segment before the last is recovered when
    /// the last is empty or the one before has no index files).
    ///
    /// With `sealer`, only the cut (dropping the preallocated tail) happens
    /// here; the sync and the index files are the sealer's job, off the
    /// append path, and `synced` moves past the old segment when it is done.
    /// Without, the old segment is synced before this returns. Either way
    /// the new segment joins the list only once the old one is cut, and a
    /// concurrent `sync_to` waits for a background seal before it takes the
    /// last listed segment's sync for all.
    fn roll_locked(self: &Arc<Self>, slot: &mut Option<Writer>, sealer: Option<&Worker>) -> Result<()> {
        let Some(w) = slot.as_ref() else { return Err(Error::Closed) };
        // One seal in flight at most: recovery looks one segment back only.
        // (Waits only when segments roll faster than they sync.)
        self.wait_seals()?;
        let (next_offset, settings) = (w.next_offset, w.settings);
        let config =
            SegmentConfig { capacity: settings.segment_bytes, index: settings.index, ..self.segment_config.clone() };
        // Under `Sync` the new segment's directory entry is synced here,
        // as its first append will need it. With a sealer, the seal job
        // syncs the directory after the old segment (and a `sync_to` before
        // it reports anything durable): no directory sync on the append
        // path, which costs milliseconds while the old segment is written
        // back. One exception: recovery takes a segment before the last
        // without index files for one whose sync may not have reached the
        // disk, so index files left by a clean close (now stale) must be
        // gone, durably, before the next segment exists.
        if sealer.is_some() && w.active.segment.delete_index_files()? {
            fsutil::sync_dir(&self.dir)?;
        }
        let sync_dir = sealer.is_none();
        let active = Segment::create(&self.dir, next_offset, &config, sync_dir)?;
        // A `sync_to` running now covers only offsets below the new segment.
        self.dir_unsynced.store(!sync_dir, Ordering::Release);
        let new_segment = Arc::clone(&active.segment);
        let old = slot.replace(Writer { active, next_offset, first_timestamp: None, settings }).expect("checked above");
        let cut = old.active.cut().inspect_err(|_| self.poison())?;
        let (sealed, unsynced) = match sealer {
            None => {
                Counters::add(&self.counters.fsyncs, 1);
                (cut.sync(&self.dir).inspect_err(|_| self.poison())?, None)
            }
            // Cut, so its size is final: a read-only handle may map it now.
            Some(_) => {
                // Counted before the new segment is listed: a `sync_to` that
                // finds the new segment last must find this seal to wait for
                // (it syncs only the last segment).
                self.seals.lock().started += 1;
                (Arc::clone(cut.segment()), Some(cut))
            }
        };
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
        #[cfg(test)]
        roll_hooks::run(self);
        match (sealer, unsynced) {
            (Some(worker), Some(cut)) => {
                // Counted when issued, as the other syncs are.
                Counters::add(&self.counters.fsyncs, 1);
                let inner = Arc::clone(self);
                worker.submit(Box::new(move || {
                    let done = SealDone(Arc::clone(&inner));
                    #[cfg(test)]
                    roll_hooks::maybe_panic_in_seal(&inner.dir);
                    // The directory too: the roll created the next
                    // segment without syncing it.
                    match cut.sync(&inner.dir).and_then(|_| inner.sync_dir_if_needed()) {
                        Ok(()) => inner.mark_synced(next_offset),
                        Err(e) => {
                            tracing::error!(dir = %inner.dir.display(), error = %e, "syncing a rolled segment failed");
                            inner.poison();
                            inner.wake_sync_waiters(inner.sync.lock());
                        }
                    }
                    drop(done);
                }));
            }
            _ => self.mark_synced(next_offset),
        }
        tracing::debug!(dir = %self.dir.display(), base_offset = next_offset, "rolled to a new segment");
        Ok(())
    }

    /// Syncs the partition's directory if a segment was created since it
    /// was last synced. (The flag is cleared before the sync: a segment
    /// created meanwhile sets it again.)
    fn sync_dir_if_needed(&self) -> Result<()> {
        // Serialised: a caller that finds another's sync in flight (the
        // flag already cleared) waits for it rather than returning as if
        // the entries were on disk (a clean close racing a flush).
        let _one_at_a_time = self.dir_sync.lock();
        if !self.dir_unsynced.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        fsutil::sync_dir(&self.dir).inspect_err(|_| self.dir_unsynced.store(true, Ordering::Release))
    }

    /// Records that every offset below `offset` is on disk.
    fn mark_synced(&self, offset: u64) {
        let mut state = self.sync.lock();
        state.synced = state.synced.max(offset);
        self.wake_sync_waiters(state);
    }

    /// Returns once every rolled segment handed to the sealer so far is
    /// synced; an error if one failed (the partition is poisoned then).
    pub(super) fn wait_seals(&self) -> Result<()> {
        let mut seals = self.seals.lock();
        let target = seals.started;
        while seals.finished < target {
            self.seal_done.wait(&mut seals);
        }
        drop(seals);
        self.check_writable()
    }

    /// Returns once every offset below `target` is on disk. Concurrent
    /// callers share one sync: whoever finds none running starts one that
    /// covers everything appended so far; the others wait for it.
    fn sync_to(&self, target: u64) -> Result<()> {
        let (result, panicked) = self.sync_to_keeping_panic(target);
        notify::resume_panic(panicked);
        result
    }

    /// [`Inner::sync_to`] on a thread of the library's own (the syncer, a
    /// flusher): a panic of an async append's waker it wakes is reported
    /// and dropped, so that the thread lives on for later appends.
    fn sync_in_background(&self, target: u64) -> Result<()> {
        let (result, panicked) = self.sync_to_keeping_panic(target);
        if panicked.is_some() {
            tracing::warn!(dir = %self.dir.display(), "a waker panicked when a sync woke it");
        }
        result
    }

    /// [`Inner::sync_to`], returning a waker's panic rather than resuming
    /// it (the sync's outcome is published first).
    fn sync_to_keeping_panic(&self, target: u64) -> (Result<()>, Option<notify::Panic>) {
        let mut state = self.sync.lock();
        loop {
            if let Err(e) = self.check_writable() {
                return (Err(e), None);
            }
            if state.synced >= target {
                return (Ok(()), None);
            }
            if !state.in_progress {
                break;
            }
            self.sync_done.wait(&mut state);
        }
        state.in_progress = true;
        drop(state);
        let dir_synced = self.sync_dir_if_needed();
        // Load the high watermark before choosing the segment: every segment
        // before the one we sync was synced when it rolled.
        let covered = self.high_watermark.load(Ordering::Acquire);
        let active = Arc::clone(self.segments().last().expect("a partition has a segment"));
        self.sync_calls.fetch_add(1, Ordering::Relaxed);
        Counters::add(&self.counters.fsyncs, 1);
        // The segments before `active` are synced once their seals are.
        let result = dir_synced
            .and_then(|()| self.wait_seals())
            .and_then(|()| active.map())
            .and_then(|m| m.sync().map_err(Error::io("sync", m.path())));
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
        let mut panicked = None;
        notify::catch_panic(&mut panicked, || self.wake_sync_waiters(state));
        (result, panicked)
    }

    /// Wakes the tasks of async appends waiting for a sync (they check
    /// what they wait for themselves).
    fn wake_sync_waiters(&self, mut state: parking_lot::MutexGuard<'_, SyncState>) {
        if state.wakers.is_empty() {
            return;
        }
        let wakers = std::mem::take(&mut state.wakers);
        drop(state);
        notify::wake_each(wakers.into_iter(), Waker::wake);
    }
}

/// The future of [`Partition::append_async`].
#[must_use = "the append is done; the future tells when it is durable"]
#[derive(Debug)]
pub struct AppendFuture<'a> {
    log: &'a Partition,
    /// Taken when the future resolves; with the durability the append
    /// applied (not the topic's setting when polled, which may change).
    result: Option<Result<(AppendInfo, Durability)>>,
}

impl std::future::Future for AppendFuture<'_> {
    type Output = Result<AppendInfo>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let (at, durability) = match this.result.take() {
            Some(Ok(appended)) => appended,
            Some(Err(e)) => return Poll::Ready(Err(e)),
            None => return Poll::Ready(Err(Error::InvalidConfig("AppendFuture polled after it resolved".into()))),
        };
        if durability != Durability::Sync {
            return Poll::Ready(Ok(at));
        }
        match this.log.poll_synced(at.last_offset + 1, cx) {
            Poll::Ready(r) => Poll::Ready(r.map(|()| at)),
            Poll::Pending => {
                this.result = Some(Ok((at, durability)));
                Poll::Pending
            }
        }
    }
}

/// Timestamp of a segment's first batch, read off its header.
fn first_timestamp(segment: &Segment) -> Result<Option<i64>> {
    let map = segment.map()?;
    let len = map.committed().min(format::BATCH_HEADER_LEN);
    Ok(map.with_slice(0..len, |b| format::BatchHeader::parse(b).map(|h| h.first_timestamp)).flatten())
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
            inner.sync_in_background(inner.high_watermark.load(Ordering::Acquire)).is_ok()
        },
        move || on_panic.poison(),
    )
}

/// Counts a background seal finished however its job ends: one that
/// panicked poisons the partition instead of leaving the next roll, flush
/// or close waiting for it for ever.
struct SealDone(Arc<Inner>);

impl Drop for SealDone {
    fn drop(&mut self) {
        let inner = &self.0;
        if std::thread::panicking() {
            tracing::error!(dir = %inner.dir.display(), "sealing a rolled segment panicked");
            inner.poison();
            inner.wake_sync_waiters(inner.sync.lock());
        }
        inner.seals.lock().finished += 1;
        inner.seal_done.notify_all();
    }
}

/// Test hooks: code run by a roll of a given partition directory right
/// after the new segment is listed, to widen races on purpose.
#[cfg(test)]
pub(super) mod roll_hooks {
    use super::*;

    type Hook = Arc<dyn Fn(&Arc<Inner>) + Send + Sync>;
    static HOOKS: Mutex<Vec<(PathBuf, Hook)>> = Mutex::new(Vec::new());

    static PANIC_IN_SEAL: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    /// Makes the background seals of partitions under `dir` panic.
    pub fn panic_in_seal(dir: &Path, panic: bool) {
        let mut dirs = PANIC_IN_SEAL.lock();
        dirs.retain(|d| d != dir);
        if panic {
            dirs.push(dir.to_owned());
        }
    }

    pub(super) fn maybe_panic_in_seal(dir: &Path) {
        if PANIC_IN_SEAL.lock().iter().any(|d| dir.starts_with(d)) {
            panic!("injected panic in a background seal");
        }
    }

    pub fn set(dir: &Path, hook: Option<Hook>) {
        let mut hooks = HOOKS.lock();
        hooks.retain(|(d, _)| d != dir);
        if let Some(h) = hook {
            hooks.push((dir.to_owned(), h));
        }
    }

    pub(super) fn run(inner: &Arc<Inner>) {
        let hook = HOOKS.lock().iter().find(|(d, _)| *d == inner.dir).map(|(_, h)| Arc::clone(h));
        if let Some(h) = hook {
            h(inner);
        }
    }
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
        assert_eq!(p.read(0, 1 << 20).unwrap()[0].records().next().unwrap().unwrap().offset, 0);
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

    /// Issue 10 item 5: a roll whose new segment cannot be mapped must leave
    /// no file behind, and what is appended after it stays readable.
    #[test]
    fn a_failed_roll_leaves_no_segment_behind() {
        let dir = tempfile::tempdir().unwrap();
        let opts = PartitionOptions::default().segment_bytes(4096);
        let p = Partition::open(dir.path(), opts.clone()).unwrap();
        for i in 0..61 {
            p.append(&[rec(i)]).unwrap();
        }
        failpoints::fail_maps_under(dir.path(), true);
        let err = p.roll().unwrap_err();
        assert!(matches!(err, Error::Io { op: "mmap", .. }), "{err}");
        failpoints::fail_maps_under(dir.path(), false);
        let logs = || {
            let mut v: Vec<String> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.ends_with(".log"))
                .collect();
            v.sort();
            v
        };
        let before = logs();
        for i in 61..63 {
            p.append(&[rec(i)]).unwrap();
        }
        p.close().unwrap();
        let p = Partition::open(dir.path(), opts).unwrap();
        assert_eq!(p.high_watermark(), 63);
        let got: Vec<u64> =
            p.read(61, 1 << 20).unwrap().iter().flat_map(|b| b.records()).map(|r| r.unwrap().offset).collect();
        assert_eq!(got, vec![61, 62]);
        assert_eq!(logs(), before, "no segment file left by the failed roll");
        p.verify().unwrap();
    }

    /// Appends `rec(i)` from `from` on until the partition rolls; returns
    /// the next `i` and the slowest append (the one that rolled).
    fn append_until_roll(p: &Partition, from: u64) -> (u64, Duration) {
        let segments = p.segment_count();
        let mut i = from;
        let mut slowest = Duration::ZERO;
        while p.segment_count() == segments {
            let start = std::time::Instant::now();
            p.append(&[Record::new(vec![7u8; 500]).with_timestamp(i as i64)]).unwrap();
            slowest = slowest.max(start.elapsed());
            i += 1;
        }
        (i, slowest)
    }

    /// A read that goes on where the last one ended starts at the batch
    /// after it, not at the index entry before it; `read_records` stops at
    /// its record limit.
    #[test]
    fn a_read_goes_on_where_the_last_one_ended() {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(dir.path(), PartitionOptions::default()).unwrap();
        for i in 0..50 {
            p.append(&[rec(i)]).unwrap();
        }
        let all = p.read(0, usize::MAX).unwrap();
        assert_eq!(all.len(), 50);
        let segment = Arc::clone(&p.inner.segments()[0]);
        let read_records = |offset, max| {
            let mut out = Vec::new();
            p.read_records(offset, usize::MAX, max, &mut out).unwrap();
            out
        };
        let limited = read_records(0, 10);
        assert_eq!(limited.len(), 10);
        // Batch `i` starts at the sum of the lengths before it.
        let mut pos = limited.iter().map(|b| b.as_bytes().len()).sum::<usize>();
        for i in 10..50 {
            assert_eq!(segment.read_end_at(i), Some(pos), "offset {i}");
            let next = read_records(i, 1);
            assert_eq!((next.len(), next[0].base_offset()), (1, i));
            pos += next[0].as_bytes().len();
        }
        assert_eq!(segment.read_end_at(50), Some(pos));
        // Not used for another offset.
        assert_eq!(segment.read_end_at(49), None);
        assert_eq!(p.read(49, usize::MAX).unwrap()[0].base_offset(), 49);
    }

    /// Issue 16: under `Os` (and `Interval`) a roll syncs the old segment
    /// off the appending thread; a clean close still leaves it all synced.
    #[test]
    fn a_roll_syncs_the_old_segment_in_the_background() {
        for durability in [Durability::Os, Durability::Interval(Duration::from_secs(3600))] {
            let dir = tempfile::tempdir().unwrap();
            let opts = PartitionOptions::default().segment_bytes(64 << 10).durability(durability);
            let p = Partition::open(dir.path(), opts.clone()).unwrap();
            // (The first change to a log syncs its directory once.)
            p.append(&[rec(0)]).unwrap();
            // Neither the old segment nor the directory holding the new one
            // is synced by the appender.
            let before = failpoints::syncs_on_this_thread();
            let (mut next, _) = append_until_roll(&p, 1);
            for _ in 0..3 {
                next = append_until_roll(&p, next).0;
            }
            assert_eq!(failpoints::syncs_on_this_thread(), before, "{durability:?}: a roll synced on the appender");
            // The seals run in the background and are counted there.
            p.inner.wait_seals().unwrap();
            assert!(p.stats().fsyncs >= 4, "{durability:?}: {} fsyncs", p.stats().fsyncs);
            let rolled = p.segments().unwrap()[3].end_offset;
            assert!(p.flushed_offset() >= rolled, "{durability:?}: sealed segments count as synced");
            for s in &p.segments().unwrap()[..4] {
                assert!(s.index_path.exists(), "{durability:?}: a sealed segment has its index files");
            }
            p.close().unwrap();
            assert!(dir.path().join(CLEAN_MARKER.name).exists());
            let p = Partition::open(dir.path(), opts).unwrap();
            assert_eq!(p.high_watermark(), next);
            p.verify().unwrap();
        }
    }

    /// A flush that starts while an append rolls, once the new segment is
    /// listed but before the old one's background sync is handed over, must
    /// still wait for that sync: it syncs only the last listed segment, and
    /// reports everything below the high watermark (the old segment's
    /// records) as on disk.
    #[test]
    fn a_flush_during_a_roll_waits_for_the_rolled_segments_sync() {
        let dir = tempfile::tempdir().unwrap();
        let opts = PartitionOptions::default().segment_bytes(64 << 10);
        let p = Partition::open(dir.path(), opts).unwrap();
        let returned_early = Arc::new(Mutex::new(None::<bool>));
        let slot = Arc::clone(&returned_early);
        roll_hooks::set(
            dir.path(),
            Some(Arc::new(move |inner: &Arc<Inner>| {
                let (tx, rx) = std::sync::mpsc::channel();
                let i = Arc::clone(inner);
                std::thread::spawn(move || {
                    let target = i.high_watermark.load(Ordering::Acquire);
                    let _ = tx.send(i.sync_to(target));
                });
                // Done within this window only if it did not wait for the
                // rolled segment's sync (which this roll has yet to hand over).
                let early = rx.recv_timeout(Duration::from_millis(300)).is_ok();
                *slot.lock() = Some(early);
            })),
        );
        append_until_roll(&p, 0);
        roll_hooks::set(dir.path(), None);
        assert_eq!(*returned_early.lock(), Some(false), "a flush reported the rolled segment synced before its sync");
        p.close().unwrap();
    }

    /// `Sync` keeps its promise: the appender that rolls syncs the old
    /// segment itself (and its own batch, as every `Sync` append does).
    #[test]
    fn a_roll_under_sync_durability_syncs_on_the_appender() {
        let dir = tempfile::tempdir().unwrap();
        let opts = PartitionOptions::default().segment_bytes(64 << 10).durability(Durability::Sync);
        let p = Partition::open(dir.path(), opts).unwrap();
        p.append(&[rec(0)]).unwrap();
        let before = failpoints::syncs_on_this_thread();
        append_until_roll(&p, 1);
        assert!(p.flushed_offset() == p.high_watermark());
        assert!(failpoints::syncs_on_this_thread() > before);
        assert_eq!(p.inner.seals.lock().started, 0, "no background seal under Sync");
    }

    /// A background seal that fails poisons the partition: later appends
    /// and the close report it, and the close leaves no clean marker.
    #[test]
    fn a_failed_background_seal_poisons() {
        let dir = tempfile::tempdir().unwrap();
        let opts = PartitionOptions::default().segment_bytes(64 << 10);
        let p = Partition::open(dir.path(), opts.clone()).unwrap();
        let (next, _) = append_until_roll(&p, 0);
        p.inner.wait_seals().unwrap();
        failpoints::fail_syncs_under(dir.path(), true);
        let (next, _) = append_until_roll(&p, next);
        assert!(matches!(p.inner.wait_seals(), Err(Error::Poisoned { .. })));
        assert!(matches!(p.append(&[rec(next)]), Err(Error::Poisoned { .. })));
        assert!(matches!(p.flush(), Err(Error::Poisoned { .. })));
        assert!(matches!(p.close(), Err(Error::Poisoned { .. })));
        failpoints::fail_syncs_under(dir.path(), false);
        assert!(!dir.path().join(CLEAN_MARKER.name).exists(), "a poisoned close is not clean");
        let p = Partition::open(dir.path(), opts).unwrap();
        assert_eq!(p.high_watermark(), next, "everything acknowledged is there after a process restart");
        p.verify().unwrap();
    }

    /// A background seal that panics poisons too, instead of leaving the
    /// next roll and the close waiting for it for ever.
    #[test]
    fn a_panicking_background_seal_poisons_and_hangs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let opts = PartitionOptions::default().segment_bytes(64 << 10);
        let p = Partition::open(dir.path(), opts.clone()).unwrap();
        roll_hooks::panic_in_seal(dir.path(), true);
        let (next, _) = append_until_roll(&p, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send((p.inner.wait_seals(), p.close()));
        });
        let (seals, close) = rx.recv_timeout(Duration::from_secs(10)).expect("waited for ever for the seal");
        roll_hooks::panic_in_seal(dir.path(), false);
        assert!(matches!(seals, Err(Error::Poisoned { .. })), "{seals:?}");
        assert!(matches!(close, Err(Error::Poisoned { .. })), "{close:?}");
        let p = Partition::open(dir.path(), opts).unwrap();
        assert_eq!(p.high_watermark(), next);
        p.verify().unwrap();
    }

    /// Two segments (the second holding one record), closed, then made to
    /// look as if the process died before the first one's seal: no index
    /// files, no clean marker. Returns the options, the second segment's
    /// base offset and the first segment.
    fn two_segments_crashed_before_the_seal(dir: &Path) -> (PartitionOptions, u64, view::Segment) {
        let opts = PartitionOptions::default().segment_bytes(64 << 10);
        let p = Partition::open(dir, opts.clone()).unwrap();
        let (next, _) = append_until_roll(&p, 0);
        p.append(&[rec(next)]).unwrap();
        let first = p.segments().unwrap()[0].clone();
        p.close().unwrap();
        fs::remove_file(&first.index_path).unwrap();
        fs::remove_file(&first.time_index_path).unwrap();
        fs::remove_file(dir.join(CLEAN_MARKER.name)).unwrap();
        (opts, next, first)
    }

    /// A crash after a roll whose background sync had not finished: the
    /// segment before the last has no index files, and recovery scans it
    /// (here it is whole: the process died, the page cache did not).
    #[test]
    fn recovery_scans_a_segment_whose_seal_did_not_finish() {
        let dir = tempfile::tempdir().unwrap();
        let (opts, next, first) = two_segments_crashed_before_the_seal(dir.path());
        let p = Partition::open(dir.path(), opts).unwrap();
        assert_eq!(p.high_watermark(), next + 1);
        assert!(first.index_path.exists(), "recovery scanned it and wrote its index");
        p.verify().unwrap();
    }

    /// Power lost after a roll whose background sync had written the old
    /// segment's data but not its cut (the file still ends in preallocated
    /// zeroes): nothing is missing before the last segment, so recovery
    /// keeps it (it drops the last segment only when the one before it
    /// lost records, which would leave a gap).
    #[test]
    fn recovery_keeps_the_last_segment_when_the_one_before_lost_only_its_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (opts, next, first) = two_segments_crashed_before_the_seal(dir.path());
        let log = fs::OpenOptions::new().append(true).open(&first.log_path).unwrap();
        log.set_len(log.metadata().unwrap().len() + 4096).unwrap();
        drop(log);
        let p = Partition::open(dir.path(), opts).unwrap();
        assert_eq!(p.high_watermark(), next + 1, "the last segment's records are kept");
        assert_eq!(p.segment_count(), 2);
        p.verify().unwrap();
        // Records lost from the one before (a torn tail): the last segment
        // would follow a gap, so it goes.
        let first = p.segments().unwrap()[0].clone();
        p.close().unwrap();
        let _ = fs::remove_file(&first.index_path);
        let _ = fs::remove_file(&first.time_index_path);
        fs::remove_file(dir.path().join(CLEAN_MARKER.name)).unwrap();
        let log = fs::OpenOptions::new().write(true).open(&first.log_path).unwrap();
        log.set_len(log.metadata().unwrap().len() - 10).unwrap();
        drop(log);
        let p = Partition::open(dir.path(), PartitionOptions::default().segment_bytes(64 << 10)).unwrap();
        assert_eq!(p.high_watermark(), next - 2, "the torn batch and the segment after it are gone");
        assert_eq!(p.segment_count(), 1);
        p.verify().unwrap();
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

    /// An async append made under `Sync` resolves once a sync covers it,
    /// even if the durability changes before the future is polled.
    #[test]
    fn an_async_append_waits_for_the_durability_it_was_made_under() {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(dir.path(), PartitionOptions::default().durability(Durability::Sync)).unwrap();
        let future = p.append_async(&[rec(0)]);
        p.update_options(&PartitionOptions::default().durability(Durability::Os)).unwrap();
        futures_executor::block_on(future).unwrap();
        assert_eq!(p.inner.sync.lock().synced, 1, "resolved without a sync");
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

    thread_local! {
        /// Run by `read` between its loads of the segment list and of the
        /// log start, on this thread only.
        static BETWEEN_READ_LOADS: std::cell::RefCell<Option<Box<dyn FnMut()>>> =
            const { std::cell::RefCell::new(None) };
    }

    pub(super) fn between_read_loads() {
        let hook = BETWEEN_READ_LOADS.with(|h| h.borrow_mut().take());
        if let Some(mut f) = hook {
            f();
        }
    }

    #[test]
    fn a_read_racing_retention_is_out_of_range_not_later_records() {
        let dir = tempfile::tempdir().unwrap();
        let p = Arc::new(Partition::open(dir.path(), PartitionOptions::default()).unwrap());
        for i in 0..3 {
            p.append(&[rec(2 * i), rec(2 * i + 1)]).unwrap();
            p.roll().unwrap();
        }
        // Segments based at 0, 2, 4 and the active one at 6. Retention moves
        // the log start to 4 while a read of offset 1 is between its loads.
        let q = Arc::clone(&p);
        BETWEEN_READ_LOADS
            .with(|h| *h.borrow_mut() = Some(Box::new(move || assert_eq!(q.delete_records(4).unwrap(), 4))));
        match p.read(1, 1 << 20) {
            Err(Error::OffsetOutOfRange { requested: 1, start: 4, .. }) => {}
            Ok(batches) => {
                panic!("read(1) returned offsets {:?}", batches.iter().map(|b| b.base_offset()).collect::<Vec<_>>())
            }
            Err(e) => panic!("{e}"),
        }
        assert_eq!(p.log_start_offset(), 4);
    }

    #[test]
    fn sealed_segments_are_mapped_through_a_bounded_cache() {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(dir.path(), PartitionOptions::default().segment_bytes(4096)).unwrap();
        let value = |i: u64| Record::new(vec![(i % 251) as u8; 1000]);
        for i in 0..600 {
            p.append(&[value(i)]).unwrap();
        }
        let cache = &p.inner.segment_config.cache;
        assert!(p.segment_count() > 2 * cache.capacity(), "{} segments", p.segment_count());
        let first = p.read(0, 1).unwrap()[0].records().next().unwrap().unwrap().value.unwrap();
        let mut next = 0;
        while next < p.high_watermark() {
            for b in p.read(next, 64 << 10).unwrap() {
                next = b.next_offset();
            }
            assert!(cache.len() <= cache.capacity(), "{} mapped", cache.len());
        }
        // Evicted long ago, still readable through the reader's own handle.
        assert_eq!(&first[..], &[0u8; 1000][..]);
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

/// Where a batched append's time goes (issue 16): run with
/// `cargo test --release --lib append_breakdown -- --ignored --nocapture`.
#[cfg(test)]
mod breakdown {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    use std::time::Instant;

    use super::*;

    /// (user, system) CPU time of this thread so far, in microseconds
    /// (clock ticks of 10 ms: time enough calls).
    fn rusage() -> (f64, f64) {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        let tick = |i: usize| fields[i].parse::<f64>().unwrap() * 1e4;
        (tick(11), tick(12))
    }

    fn per_call(calls: usize, mut f: impl FnMut(usize)) -> f64 {
        let start = Instant::now();
        for i in 0..calls {
            f(i);
        }
        start.elapsed().as_secs_f64() * 1e6 / calls as f64
    }

    /// The records of `STREAMLOG_SHAPE` (records x value bytes, default
    /// `1000x100`) and `STREAMLOG_CALLS` (default `calls`), for the loops
    /// below.
    fn shaped_records(calls: usize) -> (String, Vec<Record>, usize) {
        let shape = std::env::var("STREAMLOG_SHAPE").unwrap_or_else(|_| "1000x100".into());
        let (n, value_len) = shape.split_once('x').unwrap();
        let (n, value_len): (usize, usize) = (n.parse().unwrap(), value_len.parse().unwrap());
        let calls = std::env::var("STREAMLOG_CALLS").map_or(calls, |c| c.parse().unwrap());
        let value = bytes::Bytes::from(vec![0xabu8; value_len]);
        let records = (0..n).map(|i| Record::new(value.clone()).with_timestamp(1_700_000_000_000 + i as i64)).collect();
        (shape, records, calls)
    }

    /// Only appends, for profilers (callgrind, `perf`, rusage):
    /// `STREAMLOG_SHAPE=1000x100` (records x value bytes), `STREAMLOG_CALLS`.
    #[test]
    #[ignore = "a measurement, not a test"]
    fn append_loop() {
        let (shape, records, calls) = shaped_records(1000);
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(dir.path().join("log"), PartitionOptions::default()).unwrap();
        p.append(&records).unwrap();
        let len = p.size_in_bytes().unwrap() as usize;
        let mut f = File::create(dir.path().join("w")).unwrap();
        let chunk = vec![0xabu8; 64 << 10];
        let mut carry = 0usize;
        for round in 0..2 {
            let r0 = rusage();
            let us = per_call(calls, |_| {
                p.append(&records).unwrap();
            });
            let r1 = rusage();
            let wus = per_call(calls, |_| {
                carry += len;
                while carry >= chunk.len() {
                    f.write_all(&chunk).unwrap();
                    carry -= chunk.len();
                }
            });
            let r2 = rusage();
            let c = calls as f64;
            println!(
                "{shape} round {round}: append {us:.2} us/call (user {:.2} sys {:.2}), write(2) {wus:.2} (user {:.2} sys {:.2}); wall ratio {:.2}",
                (r1.0 - r0.0) / c,
                (r1.1 - r0.1) / c,
                (r2.0 - r1.0) / c,
                (r2.1 - r1.1) / c,
                wus / us
            );
        }
    }

    /// Sizing and encoding only, for callgrind: `STREAMLOG_SHAPE`, `STREAMLOG_CALLS`.
    #[test]
    #[ignore = "a measurement, not a test"]
    fn encode_loop() {
        let (_, records, calls) = shaped_records(100);
        let len = format::plan_batch(&records, 0, false).unwrap().len;
        let mut buf = vec![0u8; len];
        for i in 0..calls {
            let plan = format::plan_batch(std::hint::black_box(&records), 0, false).unwrap();
            format::encode_batch(&mut buf, &plan, i as u64, &records, 0, false);
        }
        std::hint::black_box(&buf);
    }

    #[test]
    #[ignore = "a measurement, not a test"]
    fn append_breakdown() {
        for (n, value_len) in [(64usize, 1024usize), (1000, 100)] {
            let value = bytes::Bytes::from(vec![0xabu8; value_len]);
            let records: Vec<Record> =
                (0..n).map(|i| Record::new(value.clone()).with_timestamp(1_700_000_000_000 + i as i64)).collect();
            let plan = format::plan_batch(&records, 0, false).unwrap();
            let len = plan.len;
            let mut buf = vec![0u8; len];
            let calls = (256 << 20) / len;
            let plan_us = per_call(calls, |_| {
                std::hint::black_box(format::plan_batch(std::hint::black_box(&records), 0, false));
            });
            let encode_us = per_call(calls, |i| {
                let plan = format::plan_batch(&records, 0, false).unwrap();
                format::encode_batch(&mut buf, &plan, i as u64, &records, 0, false);
            });
            let crc_us = per_call(calls, |_| {
                std::hint::black_box(crc32fast::hash(std::hint::black_box(&buf[4..])));
            });
            let src = buf.clone();
            let copy_us = per_call(calls, |_| buf.copy_from_slice(std::hint::black_box(&src)));
            let dir = tempfile::tempdir().unwrap();
            let f = File::create(dir.path().join("p")).unwrap();
            let pwrite_us = per_call(calls, |i| f.write_all_at(&src, (i * len) as u64).unwrap());
            let mut wf = File::create(dir.path().join("wb")).unwrap();
            let write_batch_us = per_call(calls, |_| wf.write_all(&src).unwrap());
            let af = File::create(dir.path().join("pa")).unwrap();
            let aligned_us = per_call(calls, |i| af.write_all_at(&src[..64 << 10], (i as u64) << 16).unwrap());
            let mut f = File::create(dir.path().join("w")).unwrap();
            let chunk = vec![0xabu8; 64 << 10];
            let mut carry = 0usize;
            let write_us = per_call(calls, |_| {
                carry += len;
                while carry >= chunk.len() {
                    f.write_all(&chunk).unwrap();
                    carry -= chunk.len();
                }
            });
            let p = Partition::open(dir.path().join("log"), PartitionOptions::default()).unwrap();
            p.append(&records).unwrap();
            let append_us = per_call(calls, |_| {
                p.append(&records).unwrap();
            });
            println!(
                "{n} x {value_len} B ({len} B per call), us per call: plan {plan_us:.2}, plan+encode+crc \
                 {encode_us:.2}, crc alone {crc_us:.2}, memcpy alone {copy_us:.2}, pwrite alone {pwrite_us:.2}, \
                 write(2) of the batch {write_batch_us:.2}, pwrite of 64 KiB aligned {aligned_us:.2}, \
                 write(2) 64 KiB chunks {write_us:.2}; Partition::append {append_us:.2} \
                 ({:.2}x write(2))",
                write_us / append_us
            );
        }
    }
}
