//! Memory-mapped files: the module with nearly all of the crate's `unsafe`
//! code (the other is one `clock_gettime` call in `clock.rs`).
//!
//! A [`MappedFile`] is a file mapped shared for a fixed capacity, of which
//! only the first [`MappedFile::committed`] bytes may be looked at. A single
//! [`MapWriter`] per file copies new bytes past the committed end, then
//! publishes the new end with release ordering. Readers load it with acquire
//! ordering and form slices only below it, so every `&[u8]` ever made over a
//! mapping covers bytes that are written and never change again.
//!
//! The file is provisioned ahead of the writer: allocated with `fallocate`
//! (so a write never touches a page past the end of the file, and a full disk
//! is an `Err` from `fallocate`, never a SIGBUS) and pre-faulted writable
//! (`MADV_POPULATE_WRITE`). A [`Prefaulter`] thread does this in the
//! background so the append path is a plain copy; when the writer catches up
//! it provisions what it needs itself. Assumption (documented in
//! `docs/FORMAT.md`): no other program truncates the files while streamlog
//! has them open; the directory lock keeps other streamlog handles away.
#![allow(unsafe_code, reason = "memory maps need unsafe; this module is their only user")]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::thread::JoinHandle;

use bytes::Bytes;
use memmap2::{Advice, MmapOptions, MmapRaw};
use parking_lot::Mutex;

use crate::error::{Error, Result};

/// The prefaulter keeps this much provisioned ahead of the writer: as much as
/// has been written, within these bounds (small logs stay small on disk).
const PREFAULT_MIN_AHEAD: usize = 256 << 10;
const PREFAULT_MAX_AHEAD: usize = 64 << 20;
/// What the prefaulter allocates at a time, holding the provisioning lock (a
/// writer that catches up waits for it). Well ahead of the writer it also
/// writes zeroes over it before the writer may use it: the pages then come
/// into the page cache by `write(2)`, and `MADV_POPULATE_WRITE` only maps
/// them, about 3.5× less CPU than populating fallocated (unwritten) blocks
/// page by page, which took as much CPU as the appends it ran ahead of
/// (`provision_experiment`).
const PREFAULT_STEP: usize = 2 << 20;
/// Largest encoding buffer a thread keeps between `pwrite` appends.
const SCRATCH_KEEP: usize = 4 << 20;
/// What a writer that caught up allocates at a time.
const WRITER_STEP: usize = 2 << 20;
/// The unit pages are faulted in by.
const PAGE: usize = 4 << 10;

/// Appends at least this large go through `pwrite` instead of the mapping.
const PWRITE_MIN: usize = 16 << 10;
/// A `pwrite` append also writes zeroes from its end up to the next multiple
/// of this (within the mapping), so that the page cache gets the file in
/// large folios. The kernel sizes a new folio by the length of the write
/// that creates it: appends of arbitrary length left a trail of small
/// folios at their ends, each allocated, inserted and accounted on its own,
/// and the next append began inside one. Padded, every folio is created by
/// a write reaching at least this far, and the next append overwrites the
/// zeroes in place. 1,000 × 100 B appends (108,852 B) wrote 31-35 µs
/// unpadded against 23-27 padded and 23-28 for `write(2)` of 64 KiB chunks;
/// 64 × 1 KiB (66,156 B) 22-23 against 15-16 and 14-15 (6.18 kernel, ext4).
const PWRITE_PAD_TO: usize = 64 << 10;
/// Zeroes to write from: the padding, and provisioning where the file system
/// has no `fallocate`. Untouched by the process (its pages stay the shared
/// zero page when the kernel reads them): no memory to speak of.
static ZEROES: [u8; 256 << 10] = [0; 256 << 10];

fn prefault_ahead(written: usize) -> usize {
    written.clamp(PREFAULT_MIN_AHEAD, PREFAULT_MAX_AHEAD)
}

thread_local! {
    /// Where large appends are encoded before `pwrite`: one buffer per
    /// appending thread, not per partition, so memory does not multiply by
    /// partitions (a thousand partitions that each saw a 1 MiB batch once
    /// would otherwise keep a gigabyte).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Writes `data` at `offset`, then up to `pad` zeroes after it (at most
/// 256 KiB), with one `pwritev` (more if the kernel writes less of `data`).
/// Returns the bytes written: all of `data` and as many of the zeroes as the
/// kernel took. The zeroes are optional: once `data` is written, nothing is
/// retried (a retry at a file size limit would raise `SIGXFSZ`, which kills
/// a process that does not ignore it).
fn write_padded_at(file: &File, data: &[u8], pad: usize, offset: u64) -> io::Result<usize> {
    let zeroes = &ZEROES[..pad.min(ZEROES.len())];
    let mut done = 0;
    while done < data.len() {
        let rest = &data[done..];
        let iov = [
            libc::iovec { iov_base: rest.as_ptr() as *mut libc::c_void, iov_len: rest.len() },
            libc::iovec { iov_base: zeroes.as_ptr() as *mut libc::c_void, iov_len: zeroes.len() },
        ];
        let at =
            libc::off_t::try_from(offset + done as u64).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: each iovec describes a live slice (`rest` of `data`, and
        // `zeroes` of the static) by its pointer and length; the kernel only
        // reads them.
        match unsafe { libc::pwritev(file.as_raw_fd(), iov.as_ptr(), 2, at) } {
            n if n > 0 => done += n as usize,
            0 => return Err(io::ErrorKind::WriteZero.into()),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(done)
}

/// The soft limit of open file descriptors (`RLIMIT_NOFILE`), or 1,024 if
/// it cannot be read.
pub(crate) fn nofile_limit() -> usize {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one `rlimit` through a valid pointer to a
    // local; nothing else is shared with the kernel.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc != 0 || lim.rlim_cur == libc::RLIM_INFINITY {
        return 1024;
    }
    usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
}

/// Descriptors that writers keep open between appends, process-wide (the
/// limit is the process's). Beyond this share of `RLIMIT_NOFILE` a writer
/// opens its file only for the rare calls that need one (`fallocate` every
/// few MiB, the final cut) and appends through the mapping.
static WRITER_FDS: AtomicUsize = AtomicUsize::new(0);

fn writer_fd_cap() -> usize {
    static CAP: OnceLock<usize> = OnceLock::new();
    *CAP.get_or_init(|| nofile_limit() / 4)
}

/// A descriptor kept open by a writer, counted in [`WRITER_FDS`].
struct KeptFile(File);

impl KeptFile {
    fn try_keep(file: File) -> Option<KeptFile> {
        let cap = writer_fd_cap();
        WRITER_FDS.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < cap).then_some(n + 1)).ok()?;
        Some(KeptFile(file))
    }
}

impl Drop for KeptFile {
    fn drop(&mut self) {
        WRITER_FDS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A shared mapping of one file, readable up to its committed length. It
/// holds no file descriptor: a mapping stays valid after its file is closed.
pub(crate) struct MappedFile {
    path: PathBuf,
    /// `None` when the capacity is zero (an empty sealed file).
    raw: Option<MmapRaw>,
    capacity: usize,
    /// Bytes below this are written, immutable, and safe to read.
    committed: AtomicUsize,
    /// Bytes below this are allocated in the file and safe to write.
    provisioned: AtomicUsize,
    /// The prefaulter has faulted the pages below this in (or the writer
    /// had written them when it looked). Below `provisioned`, beyond it:
    /// what the writer allocated itself, for the prefaulter to fault in.
    populated: AtomicUsize,
    /// Serializes provisioning; `true` once the writer finished (the file was
    /// cut to its committed length and must not grow again).
    provision_lock: Mutex<bool>,
    /// A prefault request is queued or running.
    prefault_pending: AtomicBool,
    /// Read since a cache last looked (its eviction clock).
    used: AtomicBool,
    _registered: LiveMapping,
}

/// Files this process has mapped, by (device, inode), with a count of live
/// mappings. A mapping lives as long as any `Bytes` read from it, possibly
/// longer than the handle that made it; code that cuts files asks
/// [`is_mapped`] first.
static LIVE_MAPPINGS: Mutex<BTreeMap<(u64, u64), usize>> = Mutex::new(BTreeMap::new());

struct LiveMapping((u64, u64));

fn file_id(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

impl LiveMapping {
    fn register(file: &File, path: &Path) -> Result<LiveMapping> {
        let id = file_id(&file.metadata().map_err(Error::io("stat", path))?);
        *LIVE_MAPPINGS.lock().entry(id).or_insert(0) += 1;
        Ok(LiveMapping(id))
    }
}

impl Drop for LiveMapping {
    fn drop(&mut self) {
        let mut maps = LIVE_MAPPINGS.lock();
        if let Some(n) = maps.get_mut(&self.0) {
            *n -= 1;
            if *n == 0 {
                maps.remove(&self.0);
            }
        }
    }
}

/// Whether this process still maps the file at `path` (through a handle or
/// through `Bytes` read from one). Such a file must not be truncated in
/// place: reading a cut-off page through the old mapping would be a SIGBUS.
pub(crate) fn is_mapped(file: &File) -> bool {
    file.metadata().is_ok_and(|m| LIVE_MAPPINGS.lock().contains_key(&file_id(&m)))
}

impl MappedFile {
    /// Maps an existing file read-only; all its `len` bytes are committed.
    /// The file is closed once mapped.
    pub fn open_read_only(file: File, path: &Path, len: usize) -> Result<Arc<MappedFile>> {
        let raw = if len == 0 {
            None
        } else {
            let raw = MmapOptions::new().len(len).map_raw_read_only(&file).map_err(Error::io("mmap", path))?;
            Some(raw)
        };
        let registered = LiveMapping::register(&file, path)?;
        Ok(Arc::new(MappedFile {
            path: path.to_owned(),
            raw,
            capacity: len,
            committed: AtomicUsize::new(len),
            provisioned: AtomicUsize::new(len),
            populated: AtomicUsize::new(len),
            provision_lock: Mutex::new(true),
            prefault_pending: AtomicBool::new(false),
            used: AtomicBool::new(true),
            _registered: registered,
        }))
    }

    /// Maps `file` writable for `capacity` bytes. Its first `len` bytes (the
    /// file's current size) are committed; the writer appends after them,
    /// helped by `prefaulter` if given. The writer keeps `file` open while
    /// the process-wide budget of kept descriptors allows.
    pub fn open_writable(
        file: File,
        path: &Path,
        len: usize,
        capacity: usize,
        prefaulter: Option<Arc<Prefaulter>>,
    ) -> Result<MapWriter> {
        assert!(len <= capacity && capacity > 0, "len {len} capacity {capacity}");
        #[cfg(test)]
        if failpoints::map_fails(path) {
            return Err(Error::io("mmap", path)(io::Error::from_raw_os_error(libc::ENOMEM)));
        }
        let raw = MmapOptions::new().len(capacity).map_raw(&file).map_err(Error::io("mmap", path))?;
        let registered = LiveMapping::register(&file, path)?;
        let map = Arc::new(MappedFile {
            path: path.to_owned(),
            raw: Some(raw),
            capacity,
            committed: AtomicUsize::new(len),
            provisioned: AtomicUsize::new(len),
            populated: AtomicUsize::new(len),
            provision_lock: Mutex::new(false),
            prefault_pending: AtomicBool::new(false),
            used: AtomicBool::new(true),
            _registered: registered,
        });
        Ok(MapWriter { map, cursor: len, prefaulter, file: KeptFile::try_keep(file) })
    }

    /// Opens the mapped file for writing (for the calls that need a
    /// descriptor when none is kept).
    fn open_file(&self) -> Result<File> {
        File::options().write(true).open(&self.path).map_err(Error::io("open", &self.path))
    }

    /// Marks the mapping as recently read (for a cache's eviction).
    pub fn touch(&self) {
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the mapping was read since the last call.
    pub fn take_used(&self) -> bool {
        self.used.swap(false, Ordering::Relaxed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Length of the committed prefix (acquire: the bytes below it are visible).
    pub fn committed(&self) -> usize {
        self.committed.load(Ordering::Acquire)
    }

    /// Runs `f` over committed bytes `range`. `None` if the range is not
    /// wholly committed.
    pub fn with_slice<R>(&self, range: Range<usize>, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        if range.start > range.end || range.end > self.committed() {
            return None;
        }
        if range.is_empty() {
            return Some(f(&[]));
        }
        let raw = self.raw.as_ref()?;
        // SAFETY: `range` lies below the committed length loaded above with
        // acquire ordering, so the bytes were fully written before they were
        // published and no one writes them again; the mapping lives as long
        // as `self`, which outlives the borrow passed to `f`.
        let slice = unsafe { std::slice::from_raw_parts(raw.as_ptr().add(range.start), range.len()) };
        Some(f(slice))
    }

    /// A zero-copy `Bytes` over committed bytes `range`, keeping the mapping
    /// alive (through this reference) for as long as it, or any slice of
    /// it, lives.
    pub fn into_bytes(self: Arc<Self>, range: Range<usize>) -> Option<Bytes> {
        if range.start > range.end || range.end > self.committed() {
            return None;
        }
        if range.is_empty() {
            return Some(Bytes::new());
        }
        Some(Bytes::from_owner(View { map: self, range }))
    }

    /// Allocates `[provisioned, end)` in the file and publishes it. The
    /// caller holds `provision_lock` and has checked that the writer has not
    /// finished. Returns the newly allocated range.
    /// `zero_fill`: also write zeroes over the new range (see
    /// [`PREFAULT_STEP`]); only for a range nobody can be writing to, which
    /// one past `provisioned` is while the lock is held.
    fn allocate_locked(&self, file: &File, end: usize, zero_fill: bool) -> Result<Range<usize>> {
        let start = self.provisioned.load(Ordering::Acquire);
        if end <= start {
            return Ok(start..start);
        }
        let zeroed = allocate(file, start as u64, (end - start) as u64).map_err(Error::io("fallocate", &self.path))?;
        if zero_fill && !zeroed {
            write_zeroes(file, start as u64, (end - start) as u64).map_err(Error::io("write", &self.path))?;
        }
        // Release: a writer that loads the new value sees the file extended.
        self.provisioned.store(end, Ordering::Release);
        Ok(start..end)
    }

    /// The prefaulter's work: fault in what the writer allocated itself,
    /// then allocate ahead of the writer a step at a time (briefly holding
    /// the lock), faulting the pages in (not holding it).
    fn prefault(&self) {
        loop {
            self.prefault_round();
            self.prefault_pending.store(false, Ordering::Release);
            // A writer that allocated while the flag was still set sent no
            // request: look again, unless another request is on its way.
            if self.populated.load(Ordering::Relaxed) >= self.provisioned.load(Ordering::Acquire)
                || *self.provision_lock.lock()
                || self.prefault_pending.swap(true, Ordering::AcqRel)
            {
                return;
            }
        }
    }

    /// One pass of [`MappedFile::prefault`], until it has nothing to do.
    fn prefault_round(&self) {
        // Its own descriptor, for the length of this request.
        let mut file = None;
        loop {
            let range = {
                let finished = self.provision_lock.lock();
                let written = self.committed();
                let target = (written + prefault_ahead(written)).min(self.capacity);
                let have = self.provisioned.load(Ordering::Acquire);
                if *finished {
                    break;
                }
                // Allocated by the writer (the first pages of a new
                // segment, or after it caught up): from where it is now.
                let from = self.populated.load(Ordering::Relaxed).max(written / PAGE * PAGE).min(have);
                // What the writer already wrote needs nothing.
                self.populated.store(from, Ordering::Relaxed);
                if from < have {
                    let end = have.min(from + PREFAULT_STEP);
                    self.populated.store(end, Ordering::Relaxed);
                    from..end
                } else if have >= target {
                    break;
                } else {
                    // An error (a full disk) is left for the writer to meet.
                    if file.is_none() {
                        match self.open_file() {
                            Ok(f) => file = Some(f),
                            Err(_) => break,
                        }
                    }
                    let f = file.as_ref().expect("opened above");
                    // Zeroes only well ahead of the writer: they are written
                    // holding the lock (a writer that catches up waits for
                    // them), and the kernel may throttle a `pwrite` while
                    // memory is dirty. Close to the writer, the blocks are
                    // only allocated, and populated outside the lock.
                    let zero_fill = have >= written + 2 * PREFAULT_STEP;
                    match self.allocate_locked(f, target.min(have + PREFAULT_STEP), zero_fill) {
                        Ok(range) => {
                            self.populated.store(range.end, Ordering::Relaxed);
                            range
                        }
                        Err(_) => break,
                    }
                }
            };
            if let Some(raw) = &self.raw {
                // One call instead of one trap per page on the append path.
                // Outside the lock, the file may have been cut meanwhile: the
                // kernel then fails the call (EFAULT) instead of signalling.
                // Only an optimisation; errors are ignored.
                let _ = raw.advise_range(Advice::PopulateWrite, range.start, range.len());
            }
        }
    }

    /// Flushes the committed bytes (and the file size they need) to disk.
    /// Only the committed range: pre-faulted pages past it are dirty zeroes
    /// that need not be written now (though a large page-cache folio that
    /// straddles the committed end is written back whole, its zeroes too).
    pub fn sync(&self) -> io::Result<()> {
        #[cfg(test)]
        failpoints::count_sync();
        #[cfg(test)]
        if failpoints::sync_fails(&self.path) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        if crate::log::fsutil::skips_sync(&self.path) {
            return Ok(());
        }
        match &self.raw {
            // msync(MS_SYNC) of a shared file mapping is fdatasync of that
            // range on Linux (file size included); it also covers bytes
            // written with pwrite. Nothing committed: nothing to sync (the
            // file's creation was synced with its directory).
            Some(raw) if self.committed() > 0 => raw.flush_range(0, self.committed()),
            _ => Ok(()),
        }
    }

    /// Hints that reads will be sequential (best effort).
    pub fn advise_sequential(&self) {
        if let Some(raw) = &self.raw {
            let _ = raw.advise(Advice::Sequential);
        }
    }
}

/// A committed range of a mapping, owned: the owner behind read `Bytes`.
struct View {
    map: Arc<MappedFile>,
    range: Range<usize>,
}

impl AsRef<[u8]> for View {
    fn as_ref(&self) -> &[u8] {
        let raw = self.map.raw.as_ref().expect("a non-empty view has a mapping");
        // SAFETY: `MappedFile::into_bytes` only builds a `View` whose range lies
        // below the committed length it loaded with acquire ordering: those
        // bytes are written and immutable, and `self.map` keeps the mapping
        // alive for the lifetime of the returned borrow.
        unsafe { std::slice::from_raw_parts(raw.as_ptr().add(self.range.start), self.range.len()) }
    }
}

/// The one writer of a writable [`MappedFile`]. Not `Clone`: uniqueness is
/// what lets it hand out `&mut` access to the uncommitted tail.
pub(crate) struct MapWriter {
    map: Arc<MappedFile>,
    /// Always equal to `map.committed` between calls.
    cursor: usize,
    prefaulter: Option<Arc<Prefaulter>>,
    /// The file, when the descriptor budget let the writer keep it: large
    /// appends then go through `pwrite`.
    file: Option<KeptFile>,
}

impl MapWriter {
    pub fn map(&self) -> &Arc<MappedFile> {
        &self.map
    }

    /// Bytes written and committed so far.
    pub fn position(&self) -> usize {
        self.cursor
    }

    /// Bytes that may still be appended before the mapping is full.
    pub fn remaining(&self) -> usize {
        self.map.capacity - self.cursor
    }

    /// Makes sure the file is provisioned up to at least `end`.
    fn reserve(&mut self, end: usize) -> Result<()> {
        if end <= self.map.provisioned.load(Ordering::Acquire) {
            return Ok(());
        }
        // The writer caught up with the prefaulter (or has none): allocate
        // what this append needs, rounded up a little.
        {
            let _guard = self.map.provision_lock.lock();
            let opened;
            let file = match &self.file {
                Some(kept) => &kept.0,
                None => {
                    opened = self.map.open_file()?;
                    &opened
                }
            };
            let want = end.next_multiple_of(WRITER_STEP).min(self.map.capacity);
            // Near a full disk the rounding may not fit where the append does.
            self.map.allocate_locked(file, want, false).or_else(|_| self.map.allocate_locked(file, end, false))?;
        }
        // The prefaulter faults in what was just allocated, ahead of this
        // writer, which otherwise takes a page fault every 4 KiB of it (the
        // first 2 MiB of every new segment). Without one, the pages fault in
        // as they are written.
        if let Some(pf) = &self.prefaulter
            && !self.map.prefault_pending.swap(true, Ordering::AcqRel)
        {
            pf.request(Arc::clone(&self.map));
        }
        Ok(())
    }

    /// Asks the prefaulter to provision more once half the headroom is used.
    fn maybe_prefault(&self) {
        let Some(pf) = &self.prefaulter else { return };
        let ahead = self.map.provisioned.load(Ordering::Relaxed).saturating_sub(self.cursor);
        if ahead < prefault_ahead(self.cursor) / 2
            && self.map.provisioned.load(Ordering::Relaxed) < self.map.capacity
            && !self.map.prefault_pending.swap(true, Ordering::AcqRel)
        {
            pf.request(Arc::clone(&self.map));
        }
    }

    /// Appends `n` bytes produced by `fill` and commits them. Returns the
    /// position they start at. On error nothing is written.
    pub fn append_with(&mut self, n: usize, fill: impl FnOnce(&mut [u8])) -> Result<usize> {
        if n > self.remaining() {
            return Err(Error::RecordTooLarge { size: n as u64, max: self.remaining() as u64 });
        }
        let start = self.cursor;
        if n >= PWRITE_MIN && self.file.is_some() {
            return self.append_pwrite(n, fill);
        }
        self.reserve(start + n)?;
        let raw = self.map.raw.as_ref().expect("writable maps have a mapping");
        // SAFETY: [start, start + n) lies inside the mapping (n <= remaining)
        // and inside the file (provisioned above, and the file only shrinks
        // in `finish`, which consumes the writer), so touching it cannot
        // fault. It lies at or above the committed length, where no reader
        // ever forms a reference, and this writer is the only one (not Clone,
        // and `&mut self` here), so this is the only live reference to it.
        let buf = unsafe { std::slice::from_raw_parts_mut(raw.as_mut_ptr().add(start), n) };
        fill(buf);
        self.cursor = start + n;
        // Release: the bytes written above are visible to any reader that
        // loads the new length with acquire ordering.
        self.map.committed.store(self.cursor, Ordering::Release);
        self.maybe_prefault();
        Ok(start)
    }

    /// Large appends: encode into a buffer and `pwrite` it, padded with
    /// zeroes to [`PWRITE_PAD_TO`]. The kernel copies straight into fresh
    /// page-cache pages, which beats zero-filling mapped pages and then
    /// copying into them. Readers still read the mapping: on Linux both see
    /// the same page cache.
    fn append_pwrite(&mut self, n: usize, fill: impl FnOnce(&mut [u8])) -> Result<usize> {
        let start = self.cursor;
        let end = start + n;
        let file = &self.file.as_ref().expect("checked by the caller").0;
        // Past what is provisioned, the prefaulter may be allocating: where
        // the file system has no fallocate, by writing zeroes, which must
        // not land after these bytes. It does so holding the lock. Padded
        // only there: below `provisioned` the file is allocated already (by
        // the prefaulter's zeroes, an earlier padding, or `fallocate`).
        let provisioning = (self.map.provisioned.load(Ordering::Acquire) < end).then(|| self.map.provision_lock.lock());
        let padded = match provisioning {
            Some(_) => end.next_multiple_of(PWRITE_PAD_TO).min(self.map.capacity),
            None => end,
        };
        let written = SCRATCH.with_borrow_mut(|scratch| {
            // Zeroed only when it grows: `fill` writes every byte it is given.
            if scratch.len() < n {
                scratch.resize(n, 0);
            }
            let buf = &mut scratch[..n];
            fill(buf);
            let written = write_padded_at(file, buf, padded - end, start as u64);
            if scratch.capacity() > SCRATCH_KEEP {
                // Do not hold on to the largest batch ever seen.
                *scratch = Vec::new();
            }
            written
        });
        // The path is copied only on error: this is the append path.
        let written = written.map_err(|e| Error::io("write", &self.map.path)(e))?;
        if provisioning.is_some() {
            // In the file now, the padding that made it included.
            self.map.provisioned.fetch_max(start + written, Ordering::AcqRel);
        }
        drop(provisioning);
        self.cursor = end;
        self.map.committed.store(end, Ordering::Release);
        Ok(start)
    }

    /// Cuts the provisioned tail off the file, leaving exactly the committed
    /// bytes, and stops all further provisioning. Safe for readers: they
    /// never look past the committed length. Consumes the writer: nothing
    /// may be written past the new end of file.
    pub fn finish(mut self) -> Result<Arc<MappedFile>> {
        let map = Arc::clone(&self.map);
        let cursor = self.cursor;
        let kept = self.file.take();
        let opened;
        let file = match &kept {
            Some(kept) => &kept.0,
            None => {
                opened = map.open_file()?;
                &opened
            }
        };
        drop(self); // marks the map finished
        {
            let _guard = map.provision_lock.lock();
            // The file may be longer than `provisioned` says: a failed
            // `pwrite` can leave part of a batch behind.
            let file_len = file.metadata().map_err(Error::io("stat", &map.path))?.len();
            if file_len != cursor as u64 {
                file.set_len(cursor as u64).map_err(Error::io("truncate", &map.path))?;
            }
            map.provisioned.store(cursor, Ordering::Release);
        }
        Ok(map)
    }
}

impl Drop for MapWriter {
    /// A writer dropped without `finish` (a poisoned partition, a failed
    /// roll) still stops provisioning: a queued prefault request must not
    /// grow a file that recovery may cut or seal later.
    fn drop(&mut self) {
        *self.map.provision_lock.lock() = true;
    }
}

/// A background thread that provisions writable maps ahead of their writers
/// (Chronicle Queue's "pretoucher"), so page faults and file extension stay
/// off the append path. Stopped and joined by [`Prefaulter::shutdown`] or drop.
pub(crate) struct Prefaulter {
    queue: Mutex<Option<mpsc::Sender<Arc<MappedFile>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Prefaulter {
    pub fn start() -> Result<Arc<Prefaulter>> {
        let (tx, rx) = mpsc::channel::<Arc<MappedFile>>();
        let thread = std::thread::Builder::new()
            .name("streamlog-prefault".into())
            .spawn(move || {
                for map in rx {
                    map.prefault();
                }
            })
            .map_err(|e| Error::Io { op: "spawn prefaulter", path: PathBuf::new(), source: e })?;
        Ok(Arc::new(Prefaulter { queue: Mutex::new(Some(tx)), thread: Mutex::new(Some(thread)) }))
    }

    fn request(&self, map: Arc<MappedFile>) {
        let queued = self.queue.lock().as_ref().is_some_and(|tx| tx.send(Arc::clone(&map)).is_ok());
        if !queued {
            map.prefault_pending.store(false, Ordering::Release);
        }
    }

    /// Stops the thread after the queued requests and waits for it.
    pub fn shutdown(&self) {
        drop(self.queue.lock().take());
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

impl Drop for Prefaulter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Extends `file` to cover `[offset, offset + len)` with allocated blocks;
/// `true` if that wrote zeroes there (a file system without `fallocate`).
fn allocate(file: &File, offset: u64, len: u64) -> io::Result<bool> {
    loop {
        // SAFETY: a plain system call on a valid descriptor; no memory is
        // passed to the kernel.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, offset as libc::off_t, len as libc::off_t) };
        if rc == 0 {
            return Ok(false);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            // A file system without fallocate: write real zeroes instead,
            // which allocates just the same (and fails just the same when
            // the disk is full).
            Some(libc::EOPNOTSUPP) => return write_zeroes(file, offset, len).map(|()| true),
            _ => return Err(err),
        }
    }
}

fn write_zeroes(file: &File, mut offset: u64, len: u64) -> io::Result<()> {
    let end = offset + len;
    while offset < end {
        let n = (end - offset).min(ZEROES.len() as u64) as usize;
        file.write_all_at(&ZEROES[..n], offset)?;
        offset += n as u64;
    }
    Ok(())
}

/// Fault injection for unit tests: make syncs of files under a directory fail
/// as a dying disk would (EIO), or writable mappings fail as when the
/// process runs out of map areas (ENOMEM).
#[cfg(test)]
pub(crate) mod failpoints {
    use std::path::{Path, PathBuf};

    use parking_lot::Mutex;

    static FAILING_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    static FAILING_MAP_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    pub fn fail_maps_under(dir: &Path, fail: bool) {
        let mut dirs = FAILING_MAP_DIRS.lock();
        dirs.retain(|d| d != dir);
        if fail {
            dirs.push(dir.to_owned());
        }
    }

    pub(super) fn map_fails(path: &Path) -> bool {
        FAILING_MAP_DIRS.lock().iter().any(|d| path.starts_with(d))
    }

    pub fn fail_syncs_under(dir: &Path, fail: bool) {
        let mut dirs = FAILING_DIRS.lock();
        dirs.retain(|d| d != dir);
        if fail {
            dirs.push(dir.to_owned());
        }
    }

    pub(super) fn sync_fails(path: &Path) -> bool {
        FAILING_DIRS.lock().iter().any(|d| path.starts_with(d))
    }

    thread_local! {
        static SYNCS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    pub(crate) fn count_sync() {
        SYNCS.with(|n| n.set(n.get() + 1));
    }

    /// Mapped-file and directory syncs made by the calling thread so far.
    pub fn syncs_on_this_thread() -> u64 {
        SYNCS.with(std::cell::Cell::get)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new, empty file `f` in `dir`, open for reading and writing.
    fn new_file(dir: &Path) -> (PathBuf, File) {
        let path = dir.join("f");
        let file = File::options().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        (path, file)
    }

    /// A writer of a new 64 MiB file in `dir`, with a prefaulter.
    fn prefaulted_writer(dir: &Path) -> (PathBuf, Arc<Prefaulter>, MapWriter) {
        let (path, file) = new_file(dir);
        let pf = Prefaulter::start().unwrap();
        let w = MappedFile::open_writable(file, &path, 0, 64 << 20, Some(Arc::clone(&pf))).unwrap();
        (path, pf, w)
    }

    #[test]
    fn prefaulter_provisions_ahead_and_stops_at_finish() {
        let dir = tempfile::tempdir().unwrap();
        let (path, pf, mut w) = prefaulted_writer(dir.path());
        let map = Arc::clone(w.map());
        for _ in 0..64 {
            w.append_with(4096, |b| b.fill(1)).unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while map.provisioned.load(Ordering::Acquire) < 2 * 64 * 4096 {
            assert!(std::time::Instant::now() < deadline, "prefaulter never ran");
            std::thread::yield_now();
        }
        let map = w.finish().unwrap();
        pf.shutdown();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 64 * 4096);
        map.prefault();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 64 * 4096, "finished files never grow");
    }

    /// Minor page faults taken by the calling thread so far.
    fn thread_faults() -> i64 {
        // SAFETY: all-zero bytes are a valid `rusage` (plain integers).
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage fills the struct it is given.
        assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) }, 0);
        u.ru_minflt
    }

    /// The first pages of a new file are allocated by the writer's first
    /// append; the prefaulter faults them in too, so the writer does not
    /// take a page fault every 4 KiB of its first 2 MiB (511 faults, each
    /// a latency spike on the append path).
    #[test]
    fn the_prefaulter_faults_in_what_the_writer_allocated() {
        let dir = tempfile::tempdir().unwrap();
        let (_path, _prefaulter, mut w) = prefaulted_writer(dir.path());
        let map = Arc::clone(w.map());
        w.append_with(100, |b| b.fill(1)).unwrap();
        assert_eq!(map.provisioned.load(Ordering::Acquire), WRITER_STEP, "the writer allocated its step");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while map.populated.load(Ordering::Relaxed) < WRITER_STEP || map.prefault_pending.load(Ordering::Acquire) {
            assert!(std::time::Instant::now() < deadline, "the writer's step was never faulted in");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let before = thread_faults();
        while w.position() + 100 <= WRITER_STEP {
            w.append_with(100, |b| b.fill(2)).unwrap();
        }
        let faults = thread_faults() - before;
        assert!(faults < 16, "{faults} page faults writing the first {WRITER_STEP} bytes");
    }

    /// The prefaulter writes zeroes over what it provisions while the
    /// writer appends (through the mapping and, for large appends, `pwrite`):
    /// only ever past what the writer may write, so every appended byte is
    /// in the file at the end. Once with the prefaulter's thread racing the
    /// writer, once with the prefaulter's work run after every append.
    #[test]
    fn zeroes_written_ahead_never_land_on_appended_bytes() {
        for threaded in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let (path, pf, mut w) = if threaded {
                let (path, pf, w) = prefaulted_writer(dir.path());
                (path, Some(pf), w)
            } else {
                let (path, file) = new_file(dir.path());
                (path.clone(), None, MappedFile::open_writable(file, &path, 0, 64 << 20, None).unwrap())
            };
            let mut appended = Vec::new();
            for (i, n) in [100, 4096, PWRITE_MIN + 100, 3000, 70 << 10, 1].into_iter().cycle().enumerate() {
                if n > w.remaining() {
                    break;
                }
                let fill = (i % 251 + 1) as u8;
                appended.push((w.append_with(n, |b| b.fill(fill)).unwrap(), n, fill));
                if pf.is_none() {
                    w.map().prefault();
                }
            }
            w.finish().unwrap();
            if let Some(pf) = pf {
                pf.shutdown();
            }
            let bytes = std::fs::read(&path).unwrap();
            for (start, n, fill) in appended {
                let wrong = bytes[start..start + n].iter().position(|&b| b != fill);
                assert_eq!(wrong, None, "append of {n} bytes at {start} (prefaulter thread: {threaded})");
            }
        }
    }

    #[test]
    fn writer_publishes_and_views_stay_valid_after_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let (path, file) = new_file(dir.path());
        let mut w = MappedFile::open_writable(file, &path, 0, 1 << 20, None).unwrap();
        let map = Arc::clone(w.map());
        assert_eq!(Arc::clone(&map).into_bytes(0..1), None);
        let at = w.append_with(5, |b| b.copy_from_slice(b"hello")).unwrap();
        assert_eq!(at, 0);
        let view = Arc::clone(&map).into_bytes(0..5).unwrap();
        assert_eq!(&view[..], b"hello");
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len, WRITER_STEP.min(1 << 20) as u64, "allocated ahead of the writer");
        // A large append goes through pwrite; readers see it in the mapping.
        w.append_with(PWRITE_MIN, |b| b.fill(7)).unwrap();
        w.append_with(3, |b| b.fill(8)).unwrap();
        let map = w.finish().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8 + PWRITE_MIN as u64);
        assert_eq!(&view[..], b"hello");
        assert_eq!(map.with_slice(5..6, |s| s[0]), Some(7));
        assert_eq!(map.with_slice(5 + PWRITE_MIN..6 + PWRITE_MIN, |s| s[0]), Some(8));
        assert!(map.with_slice(0..PWRITE_MIN + 9, |_| ()).is_none());
    }

    /// A large append is padded with zeroes to the next 64 KiB in the file
    /// (large page-cache folios), and what follows lands in the padding.
    #[test]
    fn a_large_append_pads_the_file_with_zeroes_that_the_next_appends_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let (path, file) = new_file(dir.path());
        let mut w = MappedFile::open_writable(file, &path, 0, 1 << 20, None).unwrap();
        let map = Arc::clone(w.map());
        w.append_with(PWRITE_MIN + 100, |b| b.fill(7)).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), PWRITE_PAD_TO as u64);
        assert_eq!(map.provisioned.load(Ordering::Acquire), PWRITE_PAD_TO, "the padding is provisioned");
        let tail = std::fs::read(&path).unwrap().split_off(PWRITE_MIN + 100);
        assert!(tail.iter().all(|&b| b == 0), "zeroes past the append");
        // Through the mapping, inside the padding: nothing to allocate.
        w.append_with(100, |b| b.fill(8)).unwrap();
        assert_eq!(map.provisioned.load(Ordering::Acquire), PWRITE_PAD_TO);
        // Over the padding's end, and padded again.
        let at = w.append_with(PWRITE_PAD_TO, |b| b.fill(9)).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * PWRITE_PAD_TO as u64);
        let map = w.finish().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), (at + PWRITE_PAD_TO) as u64, "cut to what was appended");
        assert_eq!(map.with_slice(PWRITE_MIN + 99..PWRITE_MIN + 201, |s| s.to_vec()).unwrap(), {
            let mut v = vec![7];
            v.extend([8; 100]);
            v.push(9);
            v
        });
    }

    /// The padding is optional: where it does not fit (a file size limit,
    /// a full disk) the append still succeeds, without the retry at the
    /// limit that would raise `SIGXFSZ` (here left to its default action,
    /// which kills); where the data does not fit, it fails. In a child
    /// process, under `RLIMIT_FSIZE`.
    #[test]
    fn padding_that_does_not_fit_is_dropped_and_data_that_does_not_fit_fails() {
        let dir = tempfile::tempdir().unwrap();
        let (path, file) = new_file(dir.path());
        let data = vec![7u8; 20_000];
        // SAFETY: the child only makes system calls and leaves with `_exit`:
        // `write_padded_at` allocates nothing, on success or failure, so no
        // lock another thread of the test harness held at the fork matters.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let limit = libc::rlimit { rlim_cur: 30_000, rlim_max: 30_000 };
            // SAFETY: as above.
            unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) };
            let padded = write_padded_at(&file, &data, PWRITE_PAD_TO - data.len(), 0);
            // SAFETY: as above.
            unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
            let too_far = write_padded_at(&file, &data, 100, 30_000);
            let code = match (padded, too_far) {
                (Ok(30_000), Err(_)) => 0,
                (Ok(_), _) => 2,
                (Err(_), _) => 3,
            };
            // SAFETY: ends the child without running anything of the parent's.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "child status {status}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "0: padded to the limit, then the data past it failed");
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 30_000);
        assert!(bytes[..20_000].iter().all(|&b| b == 7) && bytes[20_000..].iter().all(|&b| b == 0));
    }

    #[test]
    fn too_large_is_rejected_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let (path, file) = new_file(dir.path());
        let mut w = MappedFile::open_writable(file, &path, 0, 100, None).unwrap();
        assert!(matches!(w.append_with(101, |_| ()), Err(Error::RecordTooLarge { .. })));
        assert_eq!(w.position(), 0);
        w.append_with(100, |b| b.fill(1)).unwrap();
        assert_eq!(w.remaining(), 0);
    }
}
/// How fast each way of getting page-cache pages under the writer runs on
/// this machine (issue 16): `cargo test --release --lib
/// provision_experiment -- --ignored --nocapture` (`STREAMLOG_BENCH_COLD=1`
/// skips warming memory). "provision" is the prefaulter's share, "copy"
/// the writer's (64 KiB copies through the mapping, page faults included),
/// "both" the two on one thread; `write(2)` of the same bytes in 64 KiB
/// chunks is the baseline.
#[cfg(test)]
mod provisioning {
    use std::time::Instant;

    use super::*;

    fn warm(bytes: usize) {
        if std::env::var_os("STREAMLOG_BENCH_COLD").is_some() {
            return;
        }
        let mut v = vec![0u8; bytes];
        for c in v.chunks_mut(4096) {
            c[0] = 1;
        }
        std::hint::black_box(&v);
    }

    fn gbs(bytes: usize, t: std::time::Duration) -> f64 {
        bytes as f64 / t.as_secs_f64() / 1e9
    }

    fn pmd_mapped() -> String {
        let s = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
        s.lines()
            .filter(|l| l.starts_with("FilePmdMapped") || l.starts_with("Shared_Dirty"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    #[ignore = "a measurement"]
    fn provision_experiment() {
        const TOTAL: usize = 128 << 20;
        const CHUNK: usize = 64 << 10;
        let dir = tempfile::tempdir().unwrap();
        let src = vec![0xabu8; CHUNK];
        let zeroes = vec![0u8; 2 << 20];
        for round in 0..3 {
            let p = dir.path().join("w");
            let mut f = File::create(&p).unwrap();
            warm(512 << 20);
            let t = Instant::now();
            for _ in 0..TOTAL / CHUNK {
                std::io::Write::write_all(&mut f, &src).unwrap();
            }
            println!("round {round}: write(2) 64K: {:.2} GB/s", gbs(TOTAL, t.elapsed()));
            drop(f);
            std::fs::remove_file(&p).unwrap();
            for (name, step, zero, populate) in [
                ("fallocate + MADV_POPULATE_WRITE 2M", 2 << 20, false, true),
                ("fallocate, writer faults", 2 << 20, false, false),
                ("zeroes 256K, writer faults", 256 << 10, true, false),
                ("zeroes 2M, writer faults", 2 << 20, true, false),
                ("zeroes 256K + MADV_POPULATE_WRITE", 256 << 10, true, true),
                ("zeroes 2M + MADV_POPULATE_WRITE", 2 << 20, true, true),
            ] {
                let p = dir.path().join("m");
                let f = File::options().read(true).write(true).create(true).truncate(true).open(&p).unwrap();
                let raw = MmapOptions::new().len(TOTAL).map_raw(&f).unwrap();
                warm(512 << 20);
                let t = Instant::now();
                let mut off = 0;
                while off < TOTAL {
                    allocate(&f, off as u64, step as u64).unwrap();
                    if zero {
                        f.write_all_at(&zeroes[..step], off as u64).unwrap();
                    }
                    if populate {
                        raw.advise_range(Advice::PopulateWrite, off, step).unwrap();
                    }
                    off += step;
                }
                let prov = t.elapsed();
                let t = Instant::now();
                for i in 0..TOTAL / CHUNK {
                    // SAFETY: inside the mapping and the file (provisioned above).
                    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), raw.as_mut_ptr().add(i * CHUNK), CHUNK) };
                }
                let copy = t.elapsed();
                println!(
                    "round {round}: {name}: provision {:.2} GB/s, copy {:.2} GB/s, both {:.2} GB/s; aligned {}; {}",
                    gbs(TOTAL, prov),
                    gbs(TOTAL, copy),
                    gbs(TOTAL, prov + copy),
                    (raw.as_ptr() as usize).is_multiple_of(2 << 20),
                    pmd_mapped()
                );
                drop(raw);
                drop(f);
                std::fs::remove_file(&p).unwrap();
            }
        }
    }
}
