//! The cleaner: retention (whole sealed segments by age and size,
//! delete-records) and compaction (the latest record per key), both moving
//! the partition's durable checkpoints before they unlink anything.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::log::format;
use crate::log::fsutil;
use crate::log::meta::CHECKPOINTS;
use crate::log::partition::{Inner, Partition};
use crate::log::record::LogRecord;
use crate::log::segment::Segment;

/// Settings of [`Partition::compact`].
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionOptions {
    /// Compact only when at least this share of the cleanable bytes has not
    /// been cleaned yet. Default: 0.5.
    pub min_cleanable_dirty_ratio: f64,
    /// Leave records younger than this alone. Default: 0.
    pub min_compaction_lag: Duration,
    /// A tombstone (the latest record of its key) is dropped by the first
    /// pass that finds its timestamp older than this before `now_ms`.
    /// Counted from the record's timestamp, not, as Kafka's
    /// `delete.retention.ms`, from the compaction that first cleaned it: a
    /// consumer further behind than this can miss the delete. Default: 1 day.
    pub delete_retention: Duration,
    /// The memory a pass may use to find each key's latest record (Kafka's
    /// `log.cleaner.dedupe.buffer.size`), at about 50 bytes a distinct key
    /// (a 128-bit digest of the key and its offset). The dirty segments
    /// whose keys do not fit wait for the next pass; the first dirty
    /// segment is always taken. Default: 128 MiB (about 2.7 million keys).
    pub dedupe_buffer_bytes: usize,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        CompactionOptions {
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag: Duration::ZERO,
            delete_retention: Duration::from_secs(24 * 3600),
            dedupe_buffer_bytes: 128 << 20,
        }
    }
}

/// What one compaction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Bytes of log read (the cleanable part).
    pub bytes_read: u64,
    /// Bytes of log written in their place.
    pub bytes_written: u64,
    /// Records dropped: older values of a key, and expired tombstones.
    pub records_removed: u64,
    /// Sealed segments replaced (merged ones counted each).
    pub segments_rewritten: u64,
}

impl Partition {
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

    /// Deletes the oldest segments whose records are all older than
    /// `retention` before `now_ms`, then more while the log is larger than
    /// `retention_bytes`. As in Kafka, the active segment goes too when the
    /// rules take it whole (all its records expired, or the size limit
    /// reaches past it): it is rolled first, so that a partition nobody
    /// writes to any more does not keep its last records for ever. Moves the
    /// log start offset durably. Returns how many segments went.
    pub fn apply_retention(
        &self,
        now_ms: i64,
        retention: Option<Duration>,
        retention_bytes: Option<u64>,
    ) -> Result<usize> {
        let inner = &*self.inner;
        let _m = inner.maintenance_guard()?;
        let cutoff = retention.map(|r| now_ms.saturating_sub(r.as_millis().min(i64::MAX as u128) as i64));
        let (mut doomed, takes_active) = self.retention_doomed(cutoff, retention_bytes)?;
        if takes_active {
            // Rolled, then looked at again: records appended since the look
            // are in the rolled segment, which then stays if they are young.
            // (The new active segment is empty: never taken.)
            self.roll()?;
            inner.wait_seals()?;
            doomed = self.retention_doomed(cutoff, retention_bytes)?.0;
        }
        if doomed == 0 {
            return Ok(0);
        }
        let segments = inner.segments();
        inner.advance_log_start(segments[doomed].base_offset())?;
        Ok(doomed)
    }

    /// How many of the oldest sealed segments retention deletes (records
    /// all older than `cutoff`, or the log over `retention_bytes`), and
    /// whether it would take the active segment too (then every sealed
    /// one goes, and the active one holds records).
    fn retention_doomed(&self, cutoff: Option<i64>, retention_bytes: Option<u64>) -> Result<(usize, bool)> {
        let inner = &*self.inner;
        let segments = inner.segments();
        let sealed = &segments[..segments.len() - 1];
        let mut doomed = 0;
        let mut takes_active = false;
        if let Some(cutoff) = cutoff {
            for (i, seg) in sealed.iter().enumerate() {
                if seg.max_timestamp(segments[i + 1].base_offset())? >= cutoff {
                    break;
                }
                doomed = i + 1;
            }
            if doomed == sealed.len() {
                takes_active = inner.active_max_timestamp().is_some_and(|t| t < cutoff);
            }
        }
        if let Some(limit) = retention_bytes {
            let sizes = segments.iter().map(|s| s.size()).collect::<Result<Vec<u64>>>()?;
            let mut excess = sizes.iter().sum::<u64>().saturating_sub(limit);
            let mut by_size = 0;
            for (i, &size) in sizes.iter().enumerate() {
                if size > excess || size == 0 {
                    break;
                }
                excess -= size;
                by_size = i + 1;
            }
            takes_active |= by_size == segments.len();
            doomed = doomed.max(by_size.min(sealed.len()));
        }
        Ok((doomed, takes_active))
    }

    /// Compacts the sealed segments whose records are all older than
    /// `min_compaction_lag`: keeps the latest record per key (offsets stay;
    /// reads skip the gaps), drops tombstones whose timestamp is older than
    /// `delete_retention` before `now_ms`,
    /// and replaces each changed segment crash-safely. Skipped while the
    /// not-yet-cleaned share of those segments is below
    /// `min_cleanable_dirty_ratio`. Records without a key are kept.
    pub fn compact(&self, now_ms: i64, opts: &CompactionOptions) -> Result<CompactionStats> {
        let inner = &*self.inner;
        let _m = inner.maintenance_guard()?;
        let _span = tracing::debug_span!("streamlog.compact", dir = %inner.dir.display()).entered();
        let started = std::time::Instant::now();
        let mut stats = CompactionStats::default();
        let lag_cutoff = now_ms.saturating_sub(opts.min_compaction_lag.as_millis().min(i64::MAX as u128) as i64);
        let cleaned_up_to = inner.cleaned_up_to.load(Ordering::Acquire);
        // The handles of the pass's segments are let go run by run (below),
        // so that their mappings, pinned for the replacement, do not all
        // stay mapped until the pass ends: the list is copied, not held.
        let (mut range, bases) = {
            let segments = inner.segments();
            let mut end = 0;
            for (i, seg) in segments[..segments.len() - 1].iter().enumerate() {
                if seg.max_timestamp(segments[i + 1].base_offset())? > lag_cutoff {
                    break;
                }
                end = i + 1;
            }
            let bases: Vec<u64> = segments[..=end].iter().map(|s| s.base_offset()).collect();
            (segments[..end].to_vec(), bases)
        };
        if range.is_empty() {
            return Ok(stats);
        }
        let sizes = range.iter().map(|s| s.size()).collect::<Result<Vec<u64>>>()?;
        let total: u64 = sizes.iter().sum();
        let first_dirty = range.iter().take_while(|s| s.base_offset() < cleaned_up_to).count();
        let dirty: u64 = sizes[first_dirty..].iter().sum();
        if (dirty as f64) < opts.min_cleanable_dirty_ratio * total as f64
            || (dirty == 0 && opts.min_cleanable_dirty_ratio > 0.0)
        {
            return Ok(stats);
        }
        // Pass 1: the latest offset of every key of the dirty segments (the
        // cleaned ones hold each key once already), by a digest of the key,
        // in at most `dedupe_buffer_bytes`. Segments whose keys do not fit
        // wait for the next pass (Kafka's cleaner does the same).
        let max_keys = opts.dedupe_buffer_bytes / KEY_ENTRY_BYTES;
        let digest = KeyDigest::new();
        let mut latest = KeyOffsets::default();
        let mut fitted = first_dirty;
        for seg in &range[first_dirty..] {
            let mut keys = KeyOffsets::default();
            for batch in seg.read_all()? {
                for r in batch.record_views() {
                    let r = r?;
                    if let Some(k) = r.key() {
                        keys.insert(digest.of(k), r.offset());
                    }
                }
            }
            let new_keys = keys.keys().filter(|k| !latest.contains_key(*k)).count();
            // The first dirty segment is always taken, whatever its keys
            // (bounded by the segment's size): a pass always progresses.
            if fitted > first_dirty && latest.len() + new_keys > max_keys {
                tracing::debug!(
                    dir = %inner.dir.display(),
                    up_to = seg.base_offset(),
                    keys = latest.len(),
                    "compaction: the dedupe buffer is full; the rest waits for the next pass"
                );
                break;
            }
            latest.extend(keys);
            fitted += 1;
        }
        range.truncate(fitted);
        let end = fitted;
        // Pass 2: filter each segment, then write each run of adjacent
        // segments whose output fits one segment as one segment named by the
        // first (Kafka's cleaner groups segments the same way): small and
        // empty segments merge away. A run of one unchanged segment is left.
        // A record stays if it is the latest of its key (a key of a cleaned
        // segment that no dirty segment holds is its latest), or keyless;
        // a tombstone only until `delete_retention` past its timestamp.
        let tombstone_cutoff = now_ms.saturating_sub(opts.delete_retention.as_millis().min(i64::MAX as u128) as i64);
        let capacity = u64::from(inner.segment_config.capacity);
        let mut run: Option<Run> = None;
        for (i, (seg, size)) in range.drain(..).zip(sizes).enumerate() {
            stats.bytes_read += size;
            // The chain (checked on open, kept by every pass) makes the next
            // segment's base this one's end.
            let seg_end = bases[i + 1];
            let mut out: Vec<bytes::Bytes> = Vec::new();
            let mut removed = 0u64;
            for batch in seg.read_all()? {
                let all = batch.try_records()?;
                let n = all.len() as u64;
                let kept: Vec<LogRecord> = all
                    .into_iter()
                    .filter(|r| match &r.key {
                        None => true,
                        Some(k) => {
                            latest.get(&digest.of(k)).is_none_or(|&at| at == r.offset)
                                && (r.value.is_some() || r.timestamp >= tombstone_cutoff)
                        }
                    })
                    .collect();
                removed += n - kept.len() as u64;
                if kept.len() as u64 == n {
                    out.push(batch.as_bytes().clone());
                } else if let Some(b) = format::encode_log_records(&kept, batch.attributes()) {
                    out.push(b.into());
                }
            }
            stats.records_removed += removed;
            let out_len: u64 = out.iter().map(|b| b.len() as u64).sum();
            let fits = run
                .as_ref()
                .is_some_and(|r| r.bytes + out_len <= capacity && seg_end - 1 - r.base <= u64::from(u32::MAX));
            if !fits && let Some(done) = run.take() {
                stats.segments_rewritten += u64::from(done.rewrites());
                stats.bytes_written += done.write(inner)?;
            }
            let r = run.get_or_insert_with(|| Run { base: seg.base_offset(), ..Run::default() });
            r.max_timestamp = r.max_timestamp.max(seg.max_timestamp(seg_end)?);
            r.segments.push(seg);
            r.batches.extend(out);
            r.bytes += out_len;
            r.changed |= removed > 0;
            r.end = seg_end;
        }
        if let Some(done) = run.take() {
            stats.segments_rewritten += u64::from(done.rewrites());
            stats.bytes_written += done.write(inner)?;
        }
        let up_to = bases[end];
        inner.before_change()?;
        inner.write_checkpoints(inner.log_start_offset.load(Ordering::Acquire), up_to)?;
        inner.cleaned_up_to.store(up_to, Ordering::Release);
        tracing::info!(
            dir = %inner.dir.display(),
            records_removed = stats.records_removed,
            segments_rewritten = stats.segments_rewritten,
            bytes_read = stats.bytes_read,
            bytes_removed = stats.bytes_read.saturating_sub(stats.bytes_written),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compacted"
        );
        Ok(stats)
    }
}

impl Inner {
    /// Moves the log start offset to `new_start` (durably, first), then
    /// drops and deletes the segments wholly below it. Called with
    /// `maintenance` held.
    pub(super) fn advance_log_start(&self, new_start: u64) -> Result<()> {
        let current = self.log_start_offset.load(Ordering::Acquire);
        if new_start > current {
            self.before_change()?;
            // Durable first: if this fails, nothing moved.
            self.write_checkpoints(new_start, self.cleaned_up_to.load(Ordering::Acquire))?;
            // Before the list swap below: `Partition::read` takes the list
            // first, then the start, and relies on this order.
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
        self.before_change()?;
        // A roll since the guard may be sealing one of them.
        self.wait_seals()?;
        // Unlink only: readers holding records of these segments keep their
        // mappings, and nothing is ever truncated under them.
        let bytes: u64 = doomed.iter().map(|s| s.size().unwrap_or(0)).sum();
        for seg in &doomed {
            seg.delete_files()?;
        }
        fsutil::sync_dir(&self.dir)?;
        tracing::info!(
            dir = %self.dir.display(),
            log_start_offset = new_start,
            segments = doomed.len(),
            bytes,
            "deleted segments below the log start"
        );
        Ok(())
    }

    /// The maintenance lock, once it is sure the partition is still open: a
    /// handle that outlived its broker must never touch files that a new
    /// handle owns.
    pub(super) fn maintenance_guard(&self) -> Result<parking_lot::MutexGuard<'_, ()>> {
        let guard = self.maintenance.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        // A rolled segment is not touched while its background seal runs.
        self.wait_seals()?;
        Ok(guard)
    }

    fn write_checkpoints(&self, log_start: u64, cleaned_up_to: u64) -> Result<()> {
        CHECKPOINTS.write(&self.dir, &[log_start, cleaned_up_to])
    }
}

/// What the dedupe map costs a key at most: a 24-byte entry and its control
/// byte, with the table up to half empty after it doubled.
const KEY_ENTRY_BYTES: usize = 50;

/// A key's 128-bit digest: two SipHash values under keys drawn at random
/// for each pass, so that no input can be made to collide on purpose (as
/// Kafka's cleaner keys its map by an MD5 of the key). Two distinct keys
/// share a digest with a chance of about 2^-128 per pair.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Digest(u64, u64);

impl std::hash::Hash for Digest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

struct KeyDigest(std::hash::RandomState, std::hash::RandomState);

impl KeyDigest {
    fn new() -> KeyDigest {
        KeyDigest(std::hash::RandomState::new(), std::hash::RandomState::new())
    }

    fn of(&self, key: &[u8]) -> Digest {
        use std::hash::BuildHasher;
        Digest(self.0.hash_one(key), self.1.hash_one(key))
    }
}

/// The digest is already a random hash: the map uses its first half as is.
#[derive(Default)]
struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is called (by `Digest::hash`); this keeps the
        // trait's contract for anything else.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The latest offset of each key digest.
type KeyOffsets = std::collections::HashMap<Digest, u64, std::hash::BuildHasherDefault<DigestHasher>>;

/// Adjacent segments of a compaction pass that become one.
struct Run {
    /// The first segment's base: the output's name.
    base: u64,
    /// The offset after the last segment (the next segment's base).
    end: u64,
    /// Its segments' handles, let go once it is written.
    segments: Vec<Arc<Segment>>,
    /// The kept batches, in order (unchanged ones are slices of the map).
    batches: Vec<bytes::Bytes>,
    bytes: u64,
    /// Some segment lost records.
    changed: bool,
    max_timestamp: i64,
}

impl Default for Run {
    fn default() -> Self {
        Run {
            base: 0,
            end: 0,
            segments: Vec::new(),
            batches: Vec::new(),
            bytes: 0,
            changed: false,
            max_timestamp: i64::MIN,
        }
    }
}

impl Run {
    /// Segments this run rewrites: none when it is one unchanged segment.
    fn rewrites(&self) -> u32 {
        if self.segments.len() == 1 && !self.changed { 0 } else { self.segments.len() as u32 }
    }

    /// Writes the run as one segment in place of its segments; returns the
    /// bytes written (or kept as they were). The output's last batch covers
    /// the run's offsets to its end, so that the segment's end stays known
    /// (the chain check on open relies on it). Crash-safe (docs/FORMAT.md):
    /// the output is written and synced under a temporary name and renamed
    /// over the first segment; a crash before the others are deleted leaves
    /// them wholly covered by it, which open recognises and finishes.
    fn write(mut self, inner: &Inner) -> Result<u64> {
        if self.rewrites() == 0 {
            return Ok(self.bytes);
        }
        let last = self.end - 1;
        match self.batches.last_mut() {
            Some(b) => {
                let h = format::BatchHeader::parse(b).expect("checked when read");
                if h.last_offset() < last {
                    *b = format::with_last_offset(b, last).into();
                }
            }
            None => self.batches.push(format::encode_empty_batch(self.base, last, self.max_timestamp).into()),
        }
        let first = &self.segments[0];
        let others = &self.segments[1..];
        inner.before_change()?;
        // Written first: a failure there (a full disk) leaves every handle
        // as it was, with no mapping pinned beyond the cache's bound.
        let replacement = first.prepare_replacement(&inner.dir, &self.batches)?;
        // Readers holding the current list keep reading the old files:
        // map them all (held by their handles, not only the cache) before
        // any is replaced or unlinked.
        // (A failure drops the replacement, which removes its file.)
        self.segments.iter().try_for_each(|seg| seg.pin_map())?;
        let fresh = replacement.commit(&inner.dir)?;
        for seg in others {
            seg.delete_files()?;
        }
        fsutil::sync_dir(&inner.dir)?;
        let mut list = inner.segments.write();
        let next: Vec<Arc<Segment>> = list
            .iter()
            .filter(|s| !others.iter().any(|o| o.base_offset() == s.base_offset()))
            .map(|s| if s.base_offset() == self.base { Arc::clone(&fresh) } else { Arc::clone(s) })
            .collect();
        *list = Arc::new(next);
        Ok(self.batches.iter().map(|b| b.len() as u64).sum())
    }
}
