//! One segment of a partition: `<base offset, 20 digits>.log` with its
//! `.index` and `.timeindex`. This module is the only one that names, opens,
//! scans and reads these files.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::log::format::{self, BATCH_HEADER_LEN, BatchHeader, DecodeError};
use crate::log::fsutil;
use crate::log::index::{self, IndexWriter, SegmentIndex};
use crate::log::mapcache::{self, MapCache};
use crate::log::mmap::{MapWriter, MappedFile, Prefaulter};
use crate::log::record::Batch;
use crate::log::stats::OwnLine;

pub(crate) const LOG_SUFFIX: &str = ".log";
const INDEX_SUFFIX: &str = ".index";
const TIME_INDEX_SUFFIX: &str = ".timeindex";

/// `00000000000000000042.log` for base offset 42.
fn file_name(base_offset: u64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// The `.log` file name of the segment starting at `base_offset`.
pub(crate) fn log_file_name(base_offset: u64) -> String {
    file_name(base_offset, LOG_SUFFIX)
}

/// The base offset of a segment file name, if `name` is one.
pub(crate) fn parse_log_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(LOG_SUFFIX)?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit())).then(|| stem.parse().ok())?
}

/// Index settings a segment needs when it builds or resumes its indexes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexConfig {
    pub interval_bytes: u32,
    pub max_index_bytes: u32,
}

impl IndexConfig {
    fn writer(&self) -> IndexWriter {
        IndexWriter::new(self.interval_bytes, self.max_index_bytes)
    }
}

/// What opening a segment for writing needs.
#[derive(Clone)]
pub(crate) struct SegmentConfig {
    /// Largest size of a `.log` file: the writable mapping's length.
    pub capacity: u32,
    pub index: IndexConfig,
    pub prefaulter: Option<Arc<Prefaulter>>,
    /// Where sealed segments keep their mappings (shared by a broker's
    /// partitions).
    pub cache: Arc<MapCache>,
    /// Recovery may cut valid batches that follow a corrupt one.
    pub repair: bool,
}

impl SegmentConfig {
    /// Maps an active segment's file. A file already larger than the
    /// configured capacity (`segment_bytes` was lowered) keeps its size and
    /// rolls on the next append.
    fn open_writable(&self, file: File, path: &Path, len: usize) -> Result<MapWriter> {
        let capacity = (self.capacity as usize).max(len).max(1);
        MappedFile::open_writable(file, path, len, capacity, self.prefaulter.clone())
    }
}

/// How a walk over a segment's batches ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// Exactly at the end of the bytes.
    Clean,
    /// At zero bytes where a batch header should be: preallocated space
    /// that was never written (the tail of an active segment after a crash).
    Unwritten,
    /// At a batch that fails its checks, at this position.
    Bad(u64, DecodeError),
}

/// What a walk from the start of a segment found.
pub(crate) struct Scan {
    pub valid_len: usize,
    /// The offset after the last good batch (the base offset if none).
    pub next_offset: u64,
    pub index: SegmentIndex,
    pub writer: IndexWriter,
    pub end: ScanEnd,
}

/// Walks every batch of `bytes` (a segment's log), fully verifying each one,
/// and builds the indexes as the append path would have.
pub(crate) fn scan(bytes: &[u8], base_offset: u64, config: IndexConfig) -> Scan {
    let mut scanner = Scanner::new(base_offset, config);
    let end = loop {
        let rest = &bytes[scanner.valid_len..];
        if rest.is_empty() {
            break ScanEnd::Clean;
        }
        if rest.len() >= format::LENGTH_OFFSET + 4 && rest[..format::MAGIC_OFFSET].iter().all(|&b| b == 0) {
            break ScanEnd::Unwritten;
        }
        let checked = format::check_batch(rest).and_then(|h| {
            format::validate_records(rest, &h)?;
            Ok(h)
        });
        if let Err(e) = checked.and_then(|h| scanner.on_batch(&h)) {
            break ScanEnd::Bad(scanner.valid_len as u64, e);
        }
    };
    scanner.finish(end)
}

/// The accounting of [`scan`], one batch at a time, for a walk that reads
/// the file in pieces (`inspect`): offsets in order, indexes built.
pub(crate) struct Scanner {
    base_offset: u64,
    valid_len: usize,
    next_offset: u64,
    index: SegmentIndex,
    writer: IndexWriter,
}

impl Scanner {
    pub(crate) fn new(base_offset: u64, config: IndexConfig) -> Scanner {
        Scanner {
            base_offset,
            valid_len: 0,
            next_offset: base_offset,
            index: SegmentIndex::new(base_offset),
            writer: config.writer(),
        }
    }

    /// Takes the next batch, at byte `valid_len`, whose checksum and records
    /// were checked: it must follow on from the batches before it.
    pub(crate) fn on_batch(&mut self, h: &BatchHeader) -> Result<(), DecodeError> {
        if h.base_offset < self.next_offset || h.last_offset() - self.base_offset > u64::from(u32::MAX) {
            return Err(DecodeError::BadRecord("batch offsets out of order"));
        }
        let rel = (h.base_offset - self.base_offset) as u32;
        if let Some(due) = self.writer.on_batch(rel, self.valid_len as u32, h.batch_length, h.max_timestamp) {
            self.index.push(due);
        }
        self.valid_len += h.len();
        self.next_offset = h.last_offset() + 1;
        Ok(())
    }

    /// Where the next batch starts: the bytes of the good batches so far.
    pub(crate) fn valid_len(&self) -> usize {
        self.valid_len
    }

    pub(crate) fn finish(self, end: ScanEnd) -> Scan {
        Scan { valid_len: self.valid_len, next_offset: self.next_offset, index: self.index, writer: self.writer, end }
    }
}

/// Whether the batches in `tail` (starting at a batch boundary) have sound
/// headers and end exactly at the end of `tail`, the last one just before
/// `next_offset` (an empty tail: `next_offset` is the segment's base; a file
/// emptied since the close lost its records). Their
/// checksums are left to the reads: a clean close vouches for the bytes, and
/// this check only has to find that the file ends where the marker says,
/// in time independent of the batches' size.
fn ends_cleanly_at(tail: &[u8], base_offset: u64, next_offset: u64) -> bool {
    let mut at = 0;
    let mut next = base_offset;
    while at < tail.len() {
        match format::check_header(&tail[at..]) {
            Ok(h) => {
                at += h.len();
                next = h.last_offset() + 1;
            }
            Err(_) => return false,
        }
    }
    next == next_offset
}

/// The offset after the last valid batch of the log file at `path`, read
/// through a read-only mapping (a segment may be as large as its
/// capacity: never read into memory whole).
pub(crate) fn scan_file_end(path: &Path, base_offset: u64, config: IndexConfig) -> Result<u64> {
    let file = File::open(path).map_err(Error::io("open", path))?;
    let len = file.metadata().map_err(Error::io("stat", path))?.len() as usize;
    let view = MappedFile::open_read_only(file, path, len)?;
    Ok(scan_committed(&view, base_offset, config).next_offset)
}

/// [`scan`] over every committed byte of `map`.
fn scan_committed(map: &MappedFile, base_offset: u64, config: IndexConfig) -> Scan {
    map.with_slice(0..map.committed(), |b| scan(b, base_offset, config)).expect("the committed range is readable")
}

/// The position of the first batch at or after `from` that passes its checks
/// and continues the log (its base offset at or past `next_offset`), if any.
/// Used to tell a torn tail (nothing valid follows) from damage in the middle.
pub(crate) fn valid_batch_after(bytes: &[u8], from: usize, next_offset: u64) -> Option<usize> {
    let mut pos = from;
    while pos + BATCH_HEADER_LEN <= bytes.len() {
        // Skip unwritten (zero) space quickly; but a batch may begin with
        // zero bytes (its checksum's), so the skip stops where one could
        // still start: its magic byte, never zero, lies at or past the end
        // of the run.
        if bytes[pos] == 0 {
            let run_end = pos + bytes[pos..].iter().position(|&b| b != 0)?;
            let skip_to = run_end.saturating_sub(format::MAGIC_OFFSET);
            if skip_to > pos {
                pos = skip_to;
                continue;
            }
        }
        let plausible = BatchHeader::parse(&bytes[pos..]).is_some_and(|h| {
            matches!(h.magic, format::MAGIC | format::MAGIC_V2)
                && h.base_offset >= next_offset
                && h.len() <= bytes.len() - pos
        });
        // The header's cheap checks first: a checksum over the length a
        // damaged header claims, at each position, is quadratic.
        if plausible && format::check_header(&bytes[pos..]).is_ok() && format::check_batch(&bytes[pos..]).is_ok() {
            return Some(pos);
        }
        pos += 1;
    }
    None
}

/// Cuts `file` (at `path`, in `dir`) to `len` bytes. If this process still
/// maps the file (`Bytes` from an earlier handle), the cut is made on a copy
/// renamed over it, so that the old mapping keeps its pages; otherwise in
/// place. Returns the file to use from now on.
pub(crate) fn cut_file(file: File, path: &Path, dir: &Path, len: u64) -> Result<File> {
    if !crate::log::mmap::is_mapped(&file) {
        file.set_len(len).map_err(Error::io("truncate", path))?;
        return Ok(file);
    }
    let tmp = path.with_extension(format!("log{}", fsutil::TMP_SUFFIX));
    let mut copy = File::create(&tmp).map_err(Error::io("create", &tmp))?;
    std::io::copy(&mut std::io::Read::take(&file, len), &mut copy).map_err(Error::io("copy", &tmp))?;
    fsutil::sync_file(&copy, &tmp)?;
    drop(copy);
    std::fs::rename(&tmp, path).map_err(Error::io("rename", path))?;
    fsutil::sync_dir(dir)?;
    OpenOptions::new().read(true).write(true).open(path).map_err(Error::io("open", path))
}

/// One segment. Sealed segments open their mapping and indexes lazily, on
/// first read, so that opening a log costs O(segments) and not O(bytes);
/// their mappings live in the [`MapCache`], which bounds how many stay.
pub(crate) struct Segment {
    base_offset: u64,
    log_path: PathBuf,
    index_path: PathBuf,
    time_index_path: PathBuf,
    /// This handle's key in `cache`.
    id: u64,
    cache: Arc<MapCache>,
    /// A mapping held for the handle's lifetime: the active segment's
    /// writable one, or the old file of a segment compaction replaced.
    pinned: OnceLock<Arc<MappedFile>>,
    /// The mapping last used, while anyone (the cache, a reader's `Bytes`)
    /// keeps it alive.
    mapped: Mutex<Weak<MappedFile>>,
    /// `None` until loaded (sealed segments) or built (the active one).
    index: RwLock<Option<SegmentIndex>>,
    index_config: IndexConfig,
    /// Largest record timestamp, kept current by the writer while active.
    max_timestamp: AtomicI64,
    /// Where the last read's run ended, packed as `(offset - base_offset)
    /// << 32 | byte position` (`u64::MAX`: none): every batch before that
    /// position ends below that offset. A read that goes on from there (a
    /// consumer following the log) starts at it instead of walking, and
    /// checking, the batches from the index entry before it. The bytes of
    /// a segment below its committed length never change, so a remembered
    /// position stays right for the handle's life. On a cache line of its
    /// own: readers store it, and the writer stores `max_timestamp` on
    /// every append.
    read_end: OwnLine,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment").field("base_offset", &self.base_offset).finish()
    }
}

/// The writer's side of the active segment.
pub(crate) struct ActiveSegment {
    pub segment: Arc<Segment>,
    pub map: MapWriter,
    pub index: IndexWriter,
}

impl Drop for Segment {
    fn drop(&mut self) {
        self.cache.remove(self.id);
    }
}

impl Segment {
    fn new(dir: &Path, base_offset: u64, index_config: IndexConfig, cache: &Arc<MapCache>) -> Segment {
        Segment {
            base_offset,
            log_path: dir.join(file_name(base_offset, LOG_SUFFIX)),
            index_path: dir.join(file_name(base_offset, INDEX_SUFFIX)),
            time_index_path: dir.join(file_name(base_offset, TIME_INDEX_SUFFIX)),
            id: mapcache::next_id(),
            cache: Arc::clone(cache),
            pinned: OnceLock::new(),
            mapped: Mutex::new(Weak::new()),
            index: RwLock::new(None),
            index_config,
            max_timestamp: AtomicI64::new(i64::MIN),
            read_end: OwnLine(AtomicU64::new(u64::MAX)),
        }
    }

    /// A sealed segment whose files are opened on first use.
    pub fn sealed(dir: &Path, base_offset: u64, config: &SegmentConfig) -> Arc<Segment> {
        Arc::new(Segment::new(dir, base_offset, config.index, &config.cache))
    }

    /// Creates the files of a new, empty active segment. With `sync_dir`
    /// false the caller syncs the directory before anything written to the
    /// segment is reported durable.
    pub fn create(dir: &Path, base_offset: u64, config: &SegmentConfig, sync_dir: bool) -> Result<ActiveSegment> {
        let seg = Segment::new(dir, base_offset, config.index, &config.cache);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&seg.log_path)
            .map_err(Error::io("create", &seg.log_path))?;
        // Nothing may stay behind if this fails: a stray empty segment would
        // claim offsets that the next appends give to the previous segment.
        let synced = if sync_dir { fsutil::sync_dir(dir) } else { Ok(()) };
        let map = synced.and_then(|()| config.open_writable(file, &seg.log_path, 0));
        let map = match map {
            Ok(map) => map,
            Err(e) => {
                let _ = fsutil::remove_if_exists(&seg.log_path).and_then(|_| fsutil::sync_dir(dir));
                return Err(e);
            }
        };
        *seg.index.write() = Some(SegmentIndex::new(base_offset));
        Ok(seg.activate(map, config.index.writer()))
    }

    fn activate(self, map: MapWriter, index: IndexWriter) -> ActiveSegment {
        let _ = self.pinned.set(Arc::clone(map.map()));
        self.max_timestamp.store(index.max_timestamp(), Ordering::Release);
        ActiveSegment { segment: Arc::new(self), map, index }
    }

    fn open_rw(&self) -> Result<(File, u64)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.log_path)
            .map_err(Error::io("open", &self.log_path))?;
        let len = file.metadata().map_err(Error::io("stat", &self.log_path))?.len();
        Ok((file, len))
    }

    /// Reopens the last segment after a clean shutdown: its file should end
    /// at its last batch and its index files should be current. Checks the
    /// tail from the last index entry on (a bounded amount of work) and the
    /// index files; returns `None` if anything disagrees with the marker's
    /// `next_offset`, so the caller recovers the segment as after a crash.
    pub fn open_clean(
        dir: &Path,
        base_offset: u64,
        next_offset: u64,
        config: &SegmentConfig,
    ) -> Result<Option<ActiveSegment>> {
        let index_config = config.index;
        let seg = Segment::new(dir, base_offset, index_config, &config.cache);
        let (file, len) = seg.open_rw()?;
        let map = config.open_writable(file, &seg.log_path, len as usize)?;
        let (index, writer) = match seg.load_index_files(len, next_offset) {
            Some(index) => {
                let w = IndexWriter::resume(index_config.interval_bytes, index_config.max_index_bytes, &index, len);
                (index, w)
            }
            None => {
                let scan = scan_committed(map.map(), base_offset, index_config);
                if scan.end != ScanEnd::Clean {
                    return Ok(None);
                }
                (scan.index, scan.writer)
            }
        };
        let from = index.position_for(u64::MAX) as usize;
        let tail_ok = map
            .map()
            .with_slice(from..len as usize, |tail| ends_cleanly_at(tail, base_offset, next_offset))
            .unwrap_or(false);
        if !tail_ok {
            return Ok(None);
        }
        *seg.index.write() = Some(index);
        Ok(Some(seg.activate(map, writer)))
    }

    /// Reopens the last segment after a crash: verifies every batch, cuts
    /// the torn or unwritten tail, rebuilds the indexes and syncs the result.
    /// Returns the segment and the offset after its last good batch.
    pub fn recover(dir: &Path, base_offset: u64, config: &SegmentConfig) -> Result<(ActiveSegment, u64)> {
        let seg = Segment::new(dir, base_offset, config.index, &config.cache);
        let (scanned, file) = seg.recover_file(dir, config.repair)?;
        let map = config.open_writable(file, &seg.log_path, scanned.valid_len)?;
        *seg.index.write() = Some(scanned.index);
        Ok((seg.activate(map, scanned.writer), scanned.next_offset))
    }

    /// Recovers a segment that a crash may have left unsealed although it is
    /// no longer the last one (the crash came between creating the next
    /// segment and sealing this one): cuts its unwritten tail and removes its
    /// index files, which are then rebuilt on first use.
    /// Returns the offset after its last good batch if the file was cut;
    /// if not, its index files are written (best effort), so the next
    /// recovery need not scan it again.
    pub fn recover_sealed(dir: &Path, base_offset: u64, config: &SegmentConfig) -> Result<Option<u64>> {
        let seg = Segment::new(dir, base_offset, config.index, &config.cache);
        let (mut scanned, _file) = seg.recover_file(dir, config.repair)?;
        if scanned.end != ScanEnd::Clean {
            seg.delete_index_files()?;
            fsutil::sync_dir(dir)?;
            return Ok(Some(scanned.next_offset));
        }
        if scanned.valid_len > 0 {
            // Sealed as a roll seals: the time index's last entry holds the
            // largest timestamp.
            if let Some(due) = scanned.writer.finish() {
                scanned.index.push(due);
            }
            seg.write_index_files(dir, &scanned.index);
        }
        Ok(None)
    }

    /// Scans the whole log file and cuts it after its last good batch, if
    /// what follows is a torn write or unwritten space. Valid batches after
    /// a bad one mean the damage is not a torn tail: that is an error unless
    /// `repair` is set. Returns the scan and the (possibly new) file, synced.
    fn recover_file(&self, dir: &Path, repair: bool) -> Result<(Scan, File)> {
        let (file, len) = self.open_rw()?;
        let (scanned, valid_after) = {
            let dup = file.try_clone().map_err(Error::io("dup", &self.log_path))?;
            let view = MappedFile::open_read_only(dup, &self.log_path, len as usize)?;
            view.with_slice(0..len as usize, |b| {
                let scanned = scan(b, self.base_offset, self.index_config);
                let valid_after = match scanned.end {
                    ScanEnd::Bad(pos, _) => valid_batch_after(b, pos as usize + 1, scanned.next_offset),
                    _ => None,
                };
                (scanned, valid_after)
            })
            .expect("committed")
        };
        // A batch of a newer format is not a torn write: never cut it.
        if let ScanEnd::Bad(position, DecodeError::UnknownMagic(version)) = scanned.end {
            return Err(Error::UnsupportedVersion { path: self.log_path.clone(), position, version });
        }
        if let (ScanEnd::Bad(pos, e), Some(later)) = (scanned.end, valid_after)
            && !repair
        {
            return Err(Error::Corrupt {
                path: self.log_path.clone(),
                position: pos,
                reason: format!(
                    "{e}, with a valid batch at byte {later} after it: not a torn write; \
                     open with `repair` to cut the log here"
                ),
            });
        }
        let keep = scanned.valid_len as u64;
        let file = if keep == len { file } else { cut_file(file, &self.log_path, dir, keep)? };
        fsutil::sync_file(&file, &self.log_path)?;
        // Unwritten (pre-allocated) space past the last batch is cut too;
        // `end` tells a torn write from that.
        tracing::info!(
            path = %self.log_path.display(),
            scanned_bytes = len,
            kept_bytes = keep,
            cut_bytes = len - keep,
            end = ?scanned.end,
            next_offset = scanned.next_offset,
            "recovered a segment: scanned, cut after the last valid batch, index rebuilt"
        );
        Ok((scanned, file))
    }

    /// The offset after a sealed segment's last batch (which may cover
    /// offsets past its last record, see `docs/FORMAT.md`), or `None` for an
    /// empty file. Reads the file with `pread` from its last index entry on
    /// (the whole file if the index files are unusable), without mapping it.
    pub fn sealed_end_offset(dir: &Path, base_offset: u64, config: &SegmentConfig) -> Result<Option<u64>> {
        use std::os::unix::fs::FileExt;
        let index_config = config.index;
        let seg = Segment::new(dir, base_offset, index_config, &config.cache);
        let path = &seg.log_path;
        let file = File::open(path).map_err(Error::io("open", path))?;
        let len = file.metadata().map_err(Error::io("stat", path))?.len();
        if len == 0 {
            return Ok(None);
        }
        let read_from = |pos: u64| -> Result<Vec<u8>> {
            let mut buf = vec![0u8; usize::try_from(len - pos).expect("a segment fits in memory")];
            file.read_exact_at(&mut buf, pos).map_err(Error::io("read", path))?;
            Ok(buf)
        };
        let from = seg.load_index_files(len, u64::MAX).map_or(0, |idx| u64::from(idx.position_for(u64::MAX)));
        if from > 0 {
            let tail = read_from(from)?;
            let mut at = 0;
            let mut last = None;
            while at < tail.len() {
                let Ok(h) = format::check_batch(&tail[at..]) else { break };
                at += h.len();
                last = Some(h);
            }
            if at == tail.len()
                && let Some(h) = last
            {
                return Ok(Some(h.last_offset() + 1));
            }
        }
        // No usable index entry, or it points at no batch: walk it all.
        let all = read_from(0)?;
        let scanned = scan(&all, base_offset, index_config);
        seg.check_sealed_scan(&scanned)?;
        Ok(Some(scanned.next_offset))
    }

    /// Writes a sealed segment `<base>.log` holding `batches` (encoded, in
    /// offset order) crash-safely: written and synced under a temporary name,
    /// renamed into place, directory synced. Index files are built on first
    /// use.
    pub fn write_sealed(dir: &Path, base_offset: u64, batches: &[Vec<u8>]) -> Result<()> {
        use std::io::Write;
        let name = file_name(base_offset, LOG_SUFFIX);
        let tmp = dir.join(format!("{name}{}", fsutil::TMP_SUFFIX));
        let mut f = File::create(&tmp).map_err(Error::io("create", &tmp))?;
        for b in batches {
            f.write_all(b).map_err(Error::io("write", &tmp))?;
        }
        fsutil::sync_file(&f, &tmp)?;
        drop(f);
        let path = dir.join(name);
        std::fs::rename(&tmp, &path).map_err(Error::io("rename", &path))?;
        fsutil::sync_dir(dir)
    }

    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn index_path(&self) -> &Path {
        &self.index_path
    }

    pub fn time_index_path(&self) -> &Path {
        &self.time_index_path
    }

    /// The mapping: the active segment's own, or for a sealed segment the
    /// one still alive, else a read-only mapping made now and kept by the
    /// cache (which may evict it; whoever holds it keeps it valid).
    pub fn map(&self) -> Result<Arc<MappedFile>> {
        if let Some(m) = self.pinned.get() {
            return Ok(Arc::clone(m));
        }
        let mut mapped = self.mapped.lock();
        if let Some(m) = mapped.upgrade() {
            m.touch();
            return Ok(m);
        }
        let file = File::open(&self.log_path).map_err(Error::io("open", &self.log_path))?;
        let len = file.metadata().map_err(Error::io("stat", &self.log_path))?.len();
        let map = MappedFile::open_read_only(file, &self.log_path, len as usize)?;
        map.advise_sequential();
        *mapped = Arc::downgrade(&map);
        drop(mapped);
        self.cache.insert(self.id, Arc::clone(&map));
        Ok(map)
    }

    /// Maps the file and keeps the mapping for this handle's lifetime (not
    /// only the cache's): for a file about to be replaced or unlinked under
    /// readers that still hold this handle.
    pub fn pin_map(&self) -> Result<()> {
        let map = self.map()?;
        let _ = self.pinned.set(map);
        Ok(())
    }

    /// Whether a mapping of this segment is alive now.
    pub fn is_mapped(&self) -> bool {
        self.live_map().is_some()
    }

    /// The mapping if one is alive, without making one.
    fn live_map(&self) -> Option<Arc<MappedFile>> {
        self.pinned.get().cloned().or_else(|| self.mapped.lock().upgrade())
    }

    /// Runs `f` on the index, loading (or rebuilding) it first if needed.
    /// `offset_bound` is an offset no record of this segment reaches.
    fn with_index<R>(&self, offset_bound: u64, f: impl FnOnce(&SegmentIndex) -> R) -> Result<R> {
        {
            let guard = self.index.read();
            if let Some(idx) = guard.as_ref() {
                return Ok(f(idx));
            }
        }
        let mut guard = self.index.write();
        if guard.is_none() {
            let len = self.map()?.committed() as u64;
            let idx = match self.load_index_files(len, offset_bound) {
                Some(idx) => idx,
                None => self.rebuild_index()?,
            };
            self.max_timestamp.fetch_max(idx.max_timestamp(), Ordering::AcqRel);
            *guard = Some(idx);
        }
        Ok(f(guard.as_ref().expect("loaded above")))
    }

    fn load_index_files(&self, log_len: u64, offset_bound: u64) -> Option<SegmentIndex> {
        let offsets = index::read_file(&self.index_path).ok()?;
        let times = index::read_file(&self.time_index_path).ok()?;
        SegmentIndex::load(self.base_offset, &offsets, &times, log_len, offset_bound).ok()
    }

    /// Rebuilds a sealed segment's index from its log. The log must be wholly
    /// valid; corruption is reported with its position.
    fn rebuild_index(&self) -> Result<SegmentIndex> {
        let mut scan = scan_committed(&*self.map()?, self.base_offset, self.index_config);
        self.check_sealed_scan(&scan)?;
        if let Some(due) = scan.writer.finish() {
            scan.index.push(due);
        }
        Ok(scan.index)
    }

    /// A sealed segment must scan cleanly to its very end.
    fn check_sealed_scan(&self, scan: &Scan) -> Result<()> {
        match scan.end {
            ScanEnd::Clean => Ok(()),
            ScanEnd::Unwritten => Err(self.corrupt(scan.valid_len as u64, "zero bytes inside a sealed segment".into())),
            ScanEnd::Bad(pos, e) => Err(self.decode_error(pos, e)),
        }
    }

    fn corrupt(&self, position: u64, reason: String) -> Error {
        Error::Corrupt { path: self.log_path.clone(), position, reason }
    }

    fn decode_error(&self, position: u64, e: DecodeError) -> Error {
        match e {
            DecodeError::UnknownMagic(version) => {
                Error::UnsupportedVersion { path: self.log_path.clone(), position, version }
            }
            e => self.corrupt(position, e.to_string()),
        }
    }

    /// Largest record timestamp in the segment (`i64::MIN` if empty).
    pub fn max_timestamp(&self, offset_bound: u64) -> Result<i64> {
        self.with_index(offset_bound, |_| ())?;
        Ok(self.max_timestamp.load(Ordering::Acquire))
    }

    /// Whole batches holding offsets `>= offset` and `< end_offset`, from one
    /// pass over this segment: at least one batch if any qualifies, then more
    /// while their total stays within `max_bytes`. Checksums are verified.
    pub fn read(&self, offset: u64, end_offset: u64, max_bytes: usize) -> Result<Vec<Batch>> {
        let mut batches = Vec::new();
        self.read_records(offset, end_offset, max_bytes, usize::MAX, &mut batches)?;
        Ok(batches)
    }

    /// [`Segment::read`] appended to `out`, ending the run once it spans
    /// `max_records` offsets from `offset` on (records, but for compacted
    /// batches, whose removed records still count: such a run may hold
    /// fewer). Returns how many batches it appended; a damaged batch after
    /// some ends the run (it is the next read's error); on an error, `out`
    /// is as it was.
    pub fn read_records(
        &self,
        offset: u64,
        end_offset: u64,
        max_bytes: usize,
        max_records: usize,
        out: &mut Vec<Batch>,
    ) -> Result<usize> {
        let map = self.map()?;
        let committed = map.committed();
        // Where to start: the end of the last read, whose next batch holds
        // `offset` (nothing to step over: a consumer reading on), or the
        // index entry at or before `offset`, whose base offset anchors the
        // chain of headers stepped over.
        let (start, anchor) = match self.read_end_at(offset) {
            Some(pos) if pos <= committed => (pos, None),
            _ => {
                let (entry, pos) = self.with_index(end_offset, |idx| idx.entry_for(offset))?;
                (pos as usize, Some(entry))
            }
        };
        // The batches are slices of one zero-copy view from `start` to the
        // committed end.
        let bytes = map.into_bytes(start..committed).expect("committed");
        let walk = Walk { segment: self, bytes: &bytes, start, offset, end_offset, max_bytes, max_records };
        // Batches wholly before `offset` are stepped over by their headers
        // while each follows on from the anchor and the one before; a seek
        // past a damaged batch goes on after it, as in Kafka. Anything that
        // does not add up (a header that fails, a base offset off the chain,
        // a checksum failing at the end of such a walk, nothing found) and
        // the walk is made again checking every batch: damage is reported,
        // never skipped by a read that would have returned its records.
        match walk.run(anchor, out) {
            Some(result) => result,
            None => walk.run(None, out).expect("a walk checking every batch always ends"),
        }
    }

    /// The position to start a read at `offset` from, if the last read
    /// ended exactly there.
    pub(crate) fn read_end_at(&self, offset: u64) -> Option<usize> {
        let packed = self.read_end.0.load(Ordering::Relaxed);
        let rel = offset.checked_sub(self.base_offset)?;
        (packed != u64::MAX && packed >> 32 == rel).then_some((packed & u64::from(u32::MAX)) as usize)
    }

    fn remember_read_end(&self, next_offset: u64, pos: usize) {
        if let (Ok(rel), Ok(pos)) = (u32::try_from(next_offset - self.base_offset), u32::try_from(pos)) {
            self.read_end.0.store(u64::from(rel) << 32 | u64::from(pos), Ordering::Relaxed);
        }
    }

    /// The offset of the first record at or after `offset` with a timestamp
    /// `>= ts`, if this segment has one.
    pub fn offset_for_timestamp(&self, ts: i64, offset_bound: u64) -> Result<Option<u64>> {
        let from = self.with_index(offset_bound, |idx| idx.offset_for_time(ts))?;
        let mut offset = from;
        loop {
            let batches = self.read(offset, offset_bound, 1 << 20)?;
            let Some(last) = batches.last() else { return Ok(None) };
            for b in &batches {
                if b.max_timestamp() >= ts {
                    let hit = b.try_records()?.into_iter().find(|r| r.timestamp >= ts);
                    if let Some(r) = hit {
                        return Ok(Some(r.offset));
                    }
                }
            }
            offset = last.next_offset();
        }
    }

    /// Walks every batch of the segment (checksums, record encoding, offset
    /// order). Returns the valid length and how the walk ended.
    pub fn scan_all(&self) -> Result<(usize, ScanEnd)> {
        let scan = scan_committed(&*self.map()?, self.base_offset, self.index_config);
        Ok((scan.valid_len, scan.end))
    }

    /// Like [`Segment::scan_all`], but anything short of a clean end is an
    /// error naming the file and position.
    pub fn verify(&self) -> Result<()> {
        self.check_sealed_scan(&scan_committed(&*self.map()?, self.base_offset, self.index_config))
    }

    /// A fresh handle on this (sealed) segment: it opens its own read-only
    /// mapping when first read, and starts with a copy of this one's index.
    pub fn reopened(&self) -> Arc<Segment> {
        let dir = self.log_path.parent().unwrap_or(Path::new("."));
        let fresh = Segment::new(dir, self.base_offset, self.index_config, &self.cache);
        *fresh.index.write() = self.index.read().clone();
        fresh.max_timestamp.store(self.max_timestamp.load(Ordering::Acquire), Ordering::Release);
        Arc::new(fresh)
    }

    /// Every batch of the segment, checksums verified.
    pub fn read_all(&self) -> Result<Vec<Batch>> {
        self.read(self.base_offset, u64::MAX, usize::MAX)
    }

    /// Writes the replacement of this sealed segment's log, `batches`
    /// (encoded, in offset order, within this segment's offsets), under a
    /// temporary name, synced; nothing changes for readers yet. On error
    /// the temporary file is removed (a full disk must not stay fuller).
    /// [`Replacement::commit`] puts it in place.
    pub fn prepare_replacement(&self, dir: &Path, batches: &[bytes::Bytes]) -> Result<Replacement<'_>> {
        use std::io::Write;
        let tmp = dir.join(format!("{:020}.cleaned{}", self.base_offset, fsutil::TMP_SUFFIX));
        let written = (|| {
            let mut out = std::io::BufWriter::new(File::create(&tmp).map_err(Error::io("create", &tmp))?);
            let mut index = SegmentIndex::new(self.base_offset);
            let mut writer = self.index_config.writer();
            let mut pos = 0usize;
            for b in batches {
                let h = BatchHeader::parse(b).expect("encoded batches have headers");
                let rel = (h.base_offset - self.base_offset) as u32;
                if let Some(due) = writer.on_batch(rel, pos as u32, b.len() as u32, h.max_timestamp) {
                    index.push(due);
                }
                out.write_all(b).map_err(Error::io("write", &tmp))?;
                pos += b.len();
            }
            if let Some(due) = writer.finish() {
                index.push(due);
            }
            let file = out.into_inner().map_err(|e| Error::io("write", &tmp)(e.into_error()))?;
            fsutil::sync_file(&file, &tmp)?;
            Ok((index, writer.max_timestamp()))
        })();
        match written {
            Ok((index, max_timestamp)) => Ok(Replacement { segment: self, tmp, index: Some(index), max_timestamp }),
            Err(e) => {
                let _ = fsutil::remove_if_exists(&tmp);
                Err(e)
            }
        }
    }

    /// Writes both index files, best effort: they are a cache of the log,
    /// rebuilt when next needed if this fails (a full disk). Each is
    /// written atomically; one directory sync covers both renames.
    fn write_index_files(&self, dir: &Path, index: &SegmentIndex) {
        let _ = fsutil::write_atomic_many(
            dir,
            &[(&self.index_path, &index.encode_offsets()), (&self.time_index_path, &index.encode_times())],
        );
    }

    /// Bytes of log in this segment.
    /// A sealed segment not mapped yet is not mapped just for this.
    pub fn size(&self) -> Result<u64> {
        match self.live_map() {
            Some(m) => Ok(m.committed() as u64),
            None => Ok(std::fs::metadata(&self.log_path).map_err(Error::io("stat", &self.log_path))?.len()),
        }
    }

    /// Deletes this segment's files (index files first: an orphan log is a
    /// segment to recover, an orphan index is garbage).
    pub fn delete_files(&self) -> Result<()> {
        // The cache must not keep a deleted file's space in use.
        self.cache.remove(self.id);
        self.delete_index_files()?;
        fsutil::remove_if_exists(&self.log_path)?;
        Ok(())
    }

    /// Deletes the index files (to be rebuilt from the log when needed).
    /// Removes the segment's index files; true if there was one to remove.
    pub fn delete_index_files(&self) -> Result<bool> {
        let index = fsutil::remove_if_exists(&self.index_path)?;
        let time_index = fsutil::remove_if_exists(&self.time_index_path)?;
        Ok(index || time_index)
    }
}

/// One walk of [`Segment::read_records`] over `bytes` (the segment from
/// `start` to its committed end).
struct Walk<'a> {
    segment: &'a Segment,
    bytes: &'a bytes::Bytes,
    start: usize,
    offset: u64,
    end_offset: u64,
    max_bytes: usize,
    max_records: usize,
}

impl Walk<'_> {
    /// Walks to the first batch that reaches `offset`, then on while the run
    /// fits `max_bytes` and `max_records`, appending to `out`. Every batch
    /// taken is checked, CRC included. With `anchor` (the base offset the
    /// first batch must have), batches wholly before `offset` are stepped
    /// over by their headers while each follows on from the last; `None`
    /// when such a walk does not add up (then `out` is as it was). Without,
    /// every batch walked over is checked.
    fn run(&self, anchor: Option<u64>, out: &mut Vec<Batch>) -> Option<Result<usize>> {
        let (bytes, offset) = (self.bytes, self.offset);
        let before = out.len();
        let (mut pos, mut first, mut records) = (0, None, 0usize);
        // The base offset the next batch has if the chain holds, and whether
        // any batch was stepped over unchecked.
        let (mut expected, mut stepped) = (anchor, false);
        while pos < bytes.len() && records < self.max_records {
            if first.is_none()
                && let Some(next) = expected
                && let Ok(h) = format::check_header(&bytes[pos..])
                && h.base_offset == next
                && h.last_offset() < offset
            {
                expected = Some(h.last_offset() + 1);
                stepped = true;
                pos += h.len();
                continue;
            }
            let h = match format::check_batch(&bytes[pos..]) {
                Ok(h) => h,
                // Damage after batches taken: those are the answer, and the
                // next read, starting at the damaged batch, fails there: the
                // damage is never skipped, and the good records before it
                // are not withheld.
                Err(_) if out.len() > before && (!stepped || self.on_chain(pos, expected)) => break,
                Err(e) if stepped => {
                    out.truncate(before);
                    // The batch holding the offset, where the chain leads: its
                    // error. Anything else may be where a damaged header
                    // stepped over led: walk again.
                    return (first.is_none() && self.on_chain(pos, expected)).then(|| Err(self.error_at(pos, e)));
                }
                Err(e) => return Some(Err(self.error_at(pos, e))),
            };
            if stepped && first.is_none() && expected != Some(h.base_offset) {
                // Off the chain: a header stepped over may be wrong.
                out.truncate(before);
                return None;
            }
            if h.base_offset >= self.end_offset {
                break;
            }
            expected = expected.map(|_| h.last_offset() + 1);
            let len = h.len();
            // A batch of no records (the offset range left by compaction
            // or a repaired gap) is not returned: skipped before a run, it
            // ends one.
            if h.record_count == 0 {
                if first.is_some() {
                    break;
                }
                pos += len;
                continue;
            }
            if first.is_none() && h.last_offset() >= offset {
                first = Some(pos);
            }
            if let Some(f) = first {
                if pos > f && pos + len - f > self.max_bytes {
                    break;
                }
                records += (h.last_offset() + 1 - h.base_offset.max(offset)) as usize;
                out.push(Batch::new(bytes.slice(pos..pos + len), h, offset));
            }
            pos += len;
        }
        // After steps on the headers' word, the run must end where a batch
        // boundary is shown (the committed end, a batch that follows on, or
        // one that passes its checksum): a damaged length stepped over could
        // have landed inside a record whose bytes happen to hold a batch.
        // Nothing found, and the steps are not to be trusted either.
        let boundary = |pos: usize| {
            pos == bytes.len() || self.on_chain(pos, expected) || format::check_batch(&bytes[pos..]).is_ok()
        };
        if stepped && (out.len() == before || !boundary(pos)) {
            out.truncate(before);
            return None;
        }
        // `pos` is where the last batch taken ends.
        if out.len() > before {
            self.segment.remember_read_end(out[out.len() - 1].next_offset(), self.start + pos);
        }
        Some(Ok(out.len() - before))
    }

    /// Whether the header at `pos` is well formed and its base offset the
    /// one the chain expects there.
    fn on_chain(&self, pos: usize, expected: Option<u64>) -> bool {
        format::check_header(&self.bytes[pos..]).is_ok_and(|h| expected == Some(h.base_offset))
    }

    /// The error of the batch at `pos`, which failed `e`; with the offsets
    /// its header gives when it holds `offset` or later (a seek past them
    /// goes on after it, if that header is intact).
    fn error_at(&self, pos: usize, e: DecodeError) -> Error {
        let mut err = self.segment.decode_error((self.start + pos) as u64, e);
        if let (Error::Corrupt { reason, .. }, Ok(h)) = (&mut err, format::check_header(&self.bytes[pos..]))
            && h.last_offset() >= self.offset
        {
            let (first, last) = (h.base_offset, h.last_offset());
            reason.push_str(&format!(
                " (its header, if intact, gives offsets {first} to {last}: a seek to {} goes on after it)",
                last + 1
            ));
        }
        err
    }
}

/// A sealed segment's new log, written and synced beside the old one
/// ([`Segment::prepare_replacement`]).
/// Dropped without a commit (or with one that failed before the rename),
/// it removes the new log.
pub(crate) struct Replacement<'a> {
    segment: &'a Segment,
    tmp: PathBuf,
    /// `None` once the new log is in place.
    index: Option<SegmentIndex>,
    max_timestamp: i64,
}

impl Drop for Replacement<'_> {
    fn drop(&mut self) {
        if self.index.is_some() {
            let _ = fsutil::remove_if_exists(&self.tmp);
        }
    }
}

impl Replacement<'_> {
    /// Puts the new log in place, crash-safely: the old index files are
    /// removed, then the new log is renamed over the old one (one atomic
    /// step: a crash leaves one or the other, never both or neither) and
    /// new index files are written. Returns a fresh handle on the new file;
    /// the old handle keeps reading the old file (its mapping is pinned
    /// first).
    pub fn commit(mut self, dir: &Path) -> Result<Arc<Segment>> {
        let seg = self.segment;
        seg.pin_map()?;
        seg.delete_index_files()?;
        fsutil::sync_dir(dir)?;
        std::fs::rename(&self.tmp, &seg.log_path).map_err(Error::io("rename", &seg.log_path))?;
        let index = self.index.take().expect("taken only here");
        fsutil::sync_dir(dir)?;
        seg.write_index_files(dir, &index);
        let fresh = Segment::new(dir, seg.base_offset, seg.index_config, &seg.cache);
        *fresh.index.write() = Some(index);
        fresh.max_timestamp.store(self.max_timestamp, Ordering::Release);
        Ok(Arc::new(fresh))
    }
}

impl ActiveSegment {
    /// Indexes a batch just appended at `position`: adds the index entries
    /// that are due and publishes the segment's largest timestamp.
    pub fn index_batch(&mut self, base_offset: u64, position: usize, len: usize, max_timestamp: i64) {
        let rel = (base_offset - self.segment.base_offset) as u32;
        if let Some(due) = self.index.on_batch(rel, position as u32, len as u32, max_timestamp)
            && let Some(idx) = self.segment.index.write().as_mut()
        {
            idx.push(due);
        }
        // Only the writer stores it, so a plain store of its running maximum
        // suffices; readers pair it with the high watermark's release.
        self.segment.max_timestamp.store(self.index.max_timestamp(), Ordering::Relaxed);
    }

    /// Seals the segment: cuts the preallocated tail, syncs the log, writes
    /// the index files (best effort). Returns the now read-only segment. An
    /// error means the log could not be cut or synced.
    pub fn seal(self, dir: &Path) -> Result<Arc<Segment>> {
        self.cut()?.sync(dir)
    }

    /// The first half of [`ActiveSegment::seal`]: cuts the preallocated
    /// tail, so the file ends at its last batch and may be mapped read-only.
    pub fn cut(mut self) -> Result<CutSegment> {
        if let Some(due) = self.index.finish()
            && let Some(idx) = self.segment.index.write().as_mut()
        {
            idx.push(due);
        }
        let written = self.map.position() > 0;
        let map = self.map.finish()?;
        Ok(CutSegment { segment: self.segment, map, written })
    }
}

/// A segment whose writer is done and whose file is cut to its length, not
/// yet synced (the second half of [`ActiveSegment::seal`]).
pub(crate) struct CutSegment {
    segment: Arc<Segment>,
    map: Arc<MappedFile>,
    written: bool,
}

impl CutSegment {
    pub fn segment(&self) -> &Arc<Segment> {
        &self.segment
    }

    /// Syncs the log, then writes the index files (best effort). The index
    /// files come after the sync on purpose: recovery takes a segment before
    /// the last with index files for one that reached the disk.
    pub fn sync(self, dir: &Path) -> Result<Arc<Segment>> {
        self.map.sync().map_err(Error::io("sync", self.map.path()))?;
        // An empty segment's index is empty: nothing worth a file.
        if self.written
            && let Some(index) = self.segment.index.read().as_ref()
        {
            self.segment.write_index_files(dir, index);
        }
        Ok(self.segment)
    }
}

/// The offset index file beside the segment file `log_path`.
pub(crate) fn offset_index_path(log_path: &Path) -> PathBuf {
    log_path.with_extension(&INDEX_SUFFIX[1..])
}

/// The time index file beside the segment file `log_path`.
pub(crate) fn time_index_path(log_path: &Path) -> PathBuf {
    log_path.with_extension(&TIME_INDEX_SUFFIX[1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid batch whose checksum begins with a zero byte, after damage,
    /// is found: the skip over zero space jumped past it, so that recovery
    /// took the damage for a torn tail and cut the batch off.
    #[test]
    fn a_valid_batch_whose_checksum_begins_with_zero_is_found_after_damage() {
        use crate::log::format::{encode_batch, plan_batch};
        use crate::log::record::Record;
        let encode = |value: &[u8], base: u64| {
            let records = [Record::new(value.to_vec()).with_timestamp(1)];
            let plan = plan_batch(&records, 0, false).unwrap();
            let mut buf = vec![0u8; plan.len];
            encode_batch(&mut buf, &plan, base, &records, 0, false);
            buf
        };
        // A value whose batch's checksum has a zero low byte (1 in 256).
        let zero_crc = (0u32..)
            .map(|i| encode(&i.to_le_bytes(), 1))
            .find(|b| b[format::CRC_OFFSET] == 0)
            .expect("found within a few hundred tries");
        let mut bytes = encode(b"first", 0);
        let damaged = bytes.len();
        bytes.extend_from_slice(&[0xff, 0x00, 0x00, 0x00]); // a torn start, then zeroes
        let later = bytes.len();
        bytes.extend_from_slice(&zero_crc);
        assert_eq!(valid_batch_after(&bytes, damaged, 1), Some(later));
        // After a longer run of zeroes too.
        let mut spaced = encode(b"first", 0);
        let gap = spaced.len();
        spaced.extend_from_slice(&[0u8; 100]);
        let later = spaced.len();
        spaced.extend_from_slice(&zero_crc);
        assert_eq!(valid_batch_after(&spaced, gap, 1), Some(later));
    }

    /// Damage whose headers look plausible (magic, base offset, a length
    /// that fits) but fail their cheap checks is passed over without a
    /// checksum over what each header claims: the search stays linear in
    /// the damaged bytes, not quadratic.
    #[test]
    fn damage_with_plausible_lengths_is_searched_without_checksums() {
        use crate::log::format::test_support::{crc_bytes, plausible_damage};
        let bytes = plausible_damage(256 << 10);
        let before = crc_bytes();
        assert_eq!(valid_batch_after(&bytes, 0, 0), None);
        let checksummed = crc_bytes() - before;
        assert!(checksummed < bytes.len() as u64, "{checksummed} bytes checksummed");
    }

    #[test]
    fn names() {
        assert_eq!(file_name(42, LOG_SUFFIX), "00000000000000000042.log");
        assert_eq!(parse_log_name("00000000000000000042.log"), Some(42));
        assert_eq!(parse_log_name("0000000000000000042.log"), None);
        assert_eq!(parse_log_name("00000000000000000042.index"), None);
        assert_eq!(parse_log_name("0000000000000000004x.log"), None);
        assert_eq!(parse_log_name("99999999999999999999.log"), None);
    }
}
