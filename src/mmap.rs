//! Memory-mapped files: the only module with `unsafe` code.
//!
//! A [`MappedFile`] is a file mapped shared for a fixed capacity, of which
//! only the first [`MappedFile::committed`] bytes may be looked at. A single
//! [`MapWriter`] per file copies new bytes past the committed end, then
//! publishes the new end with release ordering. Readers load it with acquire
//! ordering and form slices only below it, so every `&[u8]` ever made over a
//! mapping covers bytes that are written and never change again.
//!
//! The writer keeps the file allocated (`fallocate`) ahead of itself, so it
//! never touches a page past the end of the file: a full disk is an `Err`
//! from `fallocate`, never a SIGBUS. Assumption (documented in
//! `docs/FORMAT.md`): no other program truncates the files while streamlog
//! has them open; the directory lock keeps other streamlog handles away.
#![allow(unsafe_code, reason = "memory maps need unsafe; this module is their only user")]

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use memmap2::{Advice, MmapOptions, MmapRaw};

use crate::error::{Error, Result};

/// First preallocation step; each later step doubles, up to [`MAX_CHUNK`].
/// Small logs stay small on disk; large ones extend rarely.
const MIN_CHUNK: usize = 64 << 10;
const MAX_CHUNK: usize = 32 << 20;

/// A shared mapping of one file, readable up to its committed length.
pub(crate) struct MappedFile {
    file: File,
    path: PathBuf,
    /// `None` when the capacity is zero (an empty sealed file).
    raw: Option<MmapRaw>,
    capacity: usize,
    /// Bytes below this are written, immutable, and safe to read.
    committed: AtomicUsize,
}

impl MappedFile {
    /// Maps an existing file read-only; all its `len` bytes are committed.
    pub fn open_read_only(file: File, path: &Path, len: usize) -> Result<Arc<MappedFile>> {
        let raw = if len == 0 {
            None
        } else {
            let raw = MmapOptions::new().len(len).map_raw_read_only(&file).map_err(Error::io("mmap", path))?;
            Some(raw)
        };
        Ok(Arc::new(MappedFile { file, path: path.to_owned(), raw, capacity: len, committed: AtomicUsize::new(len) }))
    }

    /// Maps `file` writable for `capacity` bytes. Its first `len` bytes (the
    /// file's current size) are committed; the writer appends after them.
    pub fn open_writable(file: File, path: &Path, len: usize, capacity: usize) -> Result<MapWriter> {
        assert!(len <= capacity && capacity > 0, "len {len} capacity {capacity}");
        let raw = MmapOptions::new().len(capacity).map_raw(&file).map_err(Error::io("mmap", path))?;
        let map = Arc::new(MappedFile {
            file,
            path: path.to_owned(),
            raw: Some(raw),
            capacity,
            committed: AtomicUsize::new(len),
        });
        Ok(MapWriter { map, allocated: len, cursor: len, next_chunk: MIN_CHUNK })
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
    /// alive for as long as it (or any slice of it) lives.
    pub fn bytes(self: &Arc<Self>, range: Range<usize>) -> Option<Bytes> {
        if range.start > range.end || range.end > self.committed() {
            return None;
        }
        if range.is_empty() {
            return Some(Bytes::new());
        }
        Some(Bytes::from_owner(View { map: Arc::clone(self), range }))
    }

    /// Flushes written data (and the size the data needs) to the disk.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
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
        // SAFETY: `MappedFile::bytes` only builds a `View` whose range lies
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
    /// File size: bytes below are backed by allocated blocks.
    allocated: usize,
    /// Always equal to `map.committed` between calls.
    cursor: usize,
    next_chunk: usize,
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

    /// Makes sure the file is allocated up to at least `end`, growing it in
    /// doubling chunks and pre-faulting the new pages writable.
    fn reserve(&mut self, end: usize) -> Result<()> {
        if end <= self.allocated {
            return Ok(());
        }
        let want = end.max(self.allocated + self.next_chunk).min(self.map.capacity);
        let (offset, len) = (self.allocated, want - self.allocated);
        allocate(&self.map.file, offset as u64, len as u64).map_err(Error::io("fallocate", &self.map.path))?;
        self.allocated = want;
        self.next_chunk = (self.next_chunk * 2).min(MAX_CHUNK);
        if let Some(raw) = &self.map.raw {
            // Fault the new pages in now, in one call, instead of one trap per
            // page on the append path. Only an optimisation: old kernels say
            // EINVAL and the pages fault in on first write instead.
            let _ = raw.advise_range(Advice::PopulateWrite, offset, len);
        }
        Ok(())
    }

    /// Appends `n` bytes produced by `fill` and commits them. Returns the
    /// position they start at. On error nothing is written.
    pub fn append_with(&mut self, n: usize, fill: impl FnOnce(&mut [u8])) -> Result<usize> {
        if n > self.remaining() {
            return Err(Error::RecordTooLarge { size: n as u64, max: self.remaining() as u64 });
        }
        let start = self.cursor;
        self.reserve(start + n)?;
        let raw = self.map.raw.as_ref().expect("writable maps have a mapping");
        // SAFETY: [start, start + n) lies inside the mapping (n <= remaining)
        // and inside the file (reserved above), so touching it cannot fault.
        // It lies at or above the committed length, where no reader ever forms
        // a reference, and this writer is the only one (not Clone, and
        // `&mut self` here), so this is the only live reference to it.
        let buf = unsafe { std::slice::from_raw_parts_mut(raw.as_mut_ptr().add(start), n) };
        fill(buf);
        self.cursor = start + n;
        // Release: the bytes written above are visible to any reader that
        // loads the new length with acquire ordering.
        self.map.committed.store(self.cursor, Ordering::Release);
        Ok(start)
    }

    /// Cuts the preallocated tail off the file, leaving exactly the committed
    /// bytes. Safe for readers: they never look past the committed length.
    /// Consumes the writer: nothing may be written past the new end of file.
    pub fn finish(self) -> Result<Arc<MappedFile>> {
        if self.allocated > self.cursor {
            self.map.file.set_len(self.cursor as u64).map_err(Error::io("truncate", &self.map.path))?;
        }
        Ok(self.map)
    }
}

/// Extends `file` to cover `[offset, offset + len)` with allocated blocks.
fn allocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    loop {
        // SAFETY: a plain system call on a valid descriptor; no memory is
        // passed to the kernel.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, offset as libc::off_t, len as libc::off_t) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            // A file system without fallocate: write real zeroes instead,
            // which allocates just the same (and fails just the same when
            // the disk is full).
            Some(libc::EOPNOTSUPP) => return write_zeroes(file, offset, len),
            _ => return Err(err),
        }
    }
}

fn write_zeroes(file: &File, mut offset: u64, len: u64) -> io::Result<()> {
    let zeroes = vec![0u8; 64 << 10];
    let end = offset + len;
    while offset < end {
        let n = (end - offset).min(zeroes.len() as u64) as usize;
        file.write_all_at(&zeroes[..n], offset)?;
        offset += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_publishes_and_views_stay_valid_after_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::options().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        let mut w = MappedFile::open_writable(file, &path, 0, 1 << 20).unwrap();
        let map = Arc::clone(w.map());
        assert_eq!(map.bytes(0..1), None);
        let at = w.append_with(5, |b| b.copy_from_slice(b"hello")).unwrap();
        assert_eq!(at, 0);
        let view = map.bytes(0..5).unwrap();
        assert_eq!(&view[..], b"hello");
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len, MIN_CHUNK as u64, "preallocated ahead of the writer");
        w.append_with(MIN_CHUNK, |b| b.fill(7)).unwrap();
        let map = w.finish().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 5 + MIN_CHUNK as u64);
        assert_eq!(&view[..], b"hello");
        assert_eq!(map.with_slice(5..6, |s| s[0]), Some(7));
        assert!(map.with_slice(0..MIN_CHUNK + 6, |_| ()).is_none());
    }

    #[test]
    fn too_large_is_rejected_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::options().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        let mut w = MappedFile::open_writable(file, &path, 0, 100).unwrap();
        assert!(matches!(w.append_with(101, |_| ()), Err(Error::RecordTooLarge { .. })));
        assert_eq!(w.position(), 0);
        w.append_with(100, |b| b.fill(1)).unwrap();
        assert_eq!(w.remaining(), 0);
    }
}
