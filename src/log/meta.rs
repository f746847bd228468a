//! A partition's small files beside its segments: the directory lock, the
//! clean-shutdown marker and the checkpoints (log start, compaction progress).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::log::fsutil;

/// Name of the directory lock file.
pub(crate) const LOCK_FILE: &str = ".lock";
/// Name of a broker's clean-shutdown marker (in the broker directory; its
/// contents are the broker's business).
pub(crate) const BROKER_CLEAN_MARKER: &str = ".clean_shutdown";
/// Name of a broker directory's format file: a partition directory below
/// one belongs to that broker (see [`lock_partition_dir`]).
pub(crate) const BROKER_META: &str = "streamlog.meta";
/// A small partition metadata file: magic (4 bytes), version (u8), 3 zero
/// bytes, `fields` little-endian u64s, and a CRC-32 of everything before it.
/// Written atomically.
pub(super) struct MetaFile {
    pub(super) name: &'static str,
    magic: &'static [u8; 4],
    version: u8,
    fields: usize,
}

/// What reading a [`MetaFile`] found.
pub(super) enum MetaRead {
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

    pub(super) fn write(&self, dir: &Path, fields: &[u64]) -> Result<()> {
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

    pub(super) fn read(&self, dir: &Path) -> Result<MetaRead> {
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

/// Written by a clean close of a standalone partition, removed before the
/// first change after open: its presence means the files are exactly as a
/// clean close left them. Fields: a [`CleanState`]. (A broker keeps the
/// clean states of all its partitions in one file of its own instead.)
/// A marker of an older version is ignored (the open recovers as after a
/// crash): its fingerprint is of another kind.
pub(super) const CLEAN_MARKER: MetaFile =
    MetaFile { name: PARTITION_CLEAN_MARKER, magic: b"SLCS", version: 3, fields: CleanState::FIELDS };

/// The file name of [`CLEAN_MARKER`], in a partition's directory.
pub(crate) const PARTITION_CLEAN_MARKER: &str = ".clean_shutdown";

/// What a clean close records about a partition, so that the next open
/// trusts its files without scanning them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CleanState {
    /// The offset the next appended record gets.
    pub(crate) next_offset: u64,
    /// The segments at close.
    pub(crate) segments: SegmentFingerprint,
}

impl CleanState {
    /// Number of u64 fields in the encoding.
    pub(crate) const FIELDS: usize = 3;

    pub(crate) fn to_fields(self) -> Vec<u64> {
        vec![self.next_offset, self.segments.count, self.segments.hash]
    }

    /// `None` if `fields` is not a state of this version.
    pub(crate) fn from_fields(fields: &[u64]) -> Option<CleanState> {
        match *fields {
            [next_offset, count, hash] => {
                Some(CleanState { next_offset, segments: SegmentFingerprint { count, hash } })
            }
            _ => None,
        }
    }
}

/// The set of segments, in short: their count and a hash (FNV-1a, 64 bits)
/// of their base offsets and `.log` file lengths. If it matches at open, no
/// segment file went missing, and none was emptied or cut short, since the
/// chain was last known good, and the open need not read every segment's
/// last batch again. (Version 2 hashed the base offsets only: a file cut
/// short went unseen.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentFingerprint {
    pub(crate) count: u64,
    pub(crate) hash: u64,
}

impl SegmentFingerprint {
    /// Of the segments `(base offset, .log file length)`, in order.
    pub(crate) fn of(segments: impl IntoIterator<Item = (u64, u64)>) -> SegmentFingerprint {
        let mut count = 0;
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        for (base, len) in segments {
            count += 1;
            for byte in base.to_le_bytes().into_iter().chain(len.to_le_bytes()) {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        SegmentFingerprint { count, hash }
    }
}

/// A clean-shutdown marker file as seen by the partitions it covers (a
/// standalone partition's own, or its broker's): it must be gone, durably,
/// before the first change to any file it vouches for.
#[derive(Debug)]
pub(crate) struct CleanMarker {
    dir: PathBuf,
    name: &'static str,
    /// Markers of enclosing brokers, which vouch for this partition too (a
    /// broker's partition opened on its own): removed along with this one.
    enclosing: Vec<PathBuf>,
    /// The file is known to be gone.
    removed: AtomicBool,
    removing: Mutex<()>,
}

impl CleanMarker {
    /// The marker `dir/name`; `present` says whether the file may exist.
    pub(crate) fn new(dir: &Path, name: &'static str, present: bool) -> std::sync::Arc<CleanMarker> {
        CleanMarker::with_enclosing(dir, name, present, Vec::new())
    }

    /// A partition's own marker, plus the markers (full paths) of the
    /// brokers whose directories enclose it.
    pub(crate) fn with_enclosing(
        dir: &Path,
        name: &'static str,
        present: bool,
        enclosing: Vec<PathBuf>,
    ) -> std::sync::Arc<CleanMarker> {
        let present = present || enclosing.iter().any(|p| p.exists());
        std::sync::Arc::new(CleanMarker {
            dir: dir.to_owned(),
            name,
            enclosing,
            removed: AtomicBool::new(!present),
            removing: Mutex::new(()),
        })
    }

    /// Removes the marker (and syncs its directory) unless already gone.
    /// Cheap after the first call: one atomic load.
    pub(crate) fn invalidate(&self) -> Result<()> {
        // Acquire: pairs with the release below; the removal is durable.
        if self.removed.load(Ordering::Acquire) {
            return Ok(());
        }
        let _once = self.removing.lock();
        if self.removed.load(Ordering::Acquire) {
            return Ok(());
        }
        for other in &self.enclosing {
            if fsutil::remove_if_exists(other)?
                && let Some(parent) = other.parent()
            {
                fsutil::sync_dir(parent)?;
            }
        }
        if fsutil::remove_if_exists(&self.dir.join(self.name))? {
            fsutil::sync_dir(&self.dir)?;
        }
        self.removed.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether the marker file is still in place (nothing changed since open).
    pub(crate) fn is_present(&self) -> bool {
        !self.removed.load(Ordering::Acquire)
    }
}

/// Log start offset and compaction progress, written when they change.
pub(super) const CHECKPOINTS: MetaFile = MetaFile { name: ".checkpoints", magic: b"SLCP", version: 1, fields: 2 };

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Checkpoints {
    pub(crate) log_start: u64,
    pub(super) cleaned_up_to: u64,
}

/// Reads `.checkpoints`; missing means nothing was deleted or cleaned yet. A
/// damaged file is an error: guessing could resurrect deleted records.
pub(crate) fn read_checkpoints(dir: &Path) -> Result<Checkpoints> {
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

/// The state a clean close recorded, or `None` if there is no valid marker
/// (then the log is recovered as after a crash).
pub(super) fn read_clean_marker(dir: &Path) -> Result<Option<CleanState>> {
    Ok(match CLEAN_MARKER.read(dir)? {
        MetaRead::Fields(f) => CleanState::from_fields(&f),
        _ => None,
    })
}

/// Writes `.checkpoints`.
pub(super) fn write_checkpoints(dir: &Path, c: Checkpoints) -> Result<()> {
    CHECKPOINTS.write(dir, &[c.log_start, c.cleaned_up_to])
}

/// Takes the exclusive lock of `dir` (an flock on `dir/.lock`).
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    lock_file(dir, false)
}

/// flock(2)s `dir/.lock`, shared or exclusive, without waiting.
fn lock_file(dir: &Path, shared: bool) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(Error::io("open lock", &path))?;
    let locked = if shared { file.try_lock_shared() } else { file.try_lock() };
    match locked {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(Error::Locked { path: dir.to_owned() }),
        Err(fs::TryLockError::Error(e)) => Err(Error::Io { op: "lock", path, source: e }),
    }
}

/// The locks a standalone partition holds: its own directory's, exclusive,
/// and a shared lock on every enclosing broker directory (one holding
/// [`BROKER_META`]). A broker holds its directory's lock exclusively, so a
/// partition inside a broker that is open fails with [`Error::Locked`], and
/// a broker does not open while one of its partitions is open on its own;
/// flock(2) makes both hold across processes too.
/// Returns the locks and the enclosing broker directories.
pub(crate) fn lock_partition_dir(dir: &Path) -> Result<(Vec<File>, Vec<PathBuf>)> {
    let mut locks = Vec::new();
    let mut brokers = Vec::new();
    let abs = fs::canonicalize(dir).map_err(Error::io("resolve", dir))?;
    for ancestor in abs.ancestors().skip(1) {
        if ancestor.join(BROKER_META).is_file() {
            locks.push(lock_file(ancestor, true)?);
            brokers.push(ancestor.to_owned());
        }
    }
    locks.push(lock_file(dir, false)?);
    Ok((locks, brokers))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-2 marker's fingerprint hashed base offsets only: read as
    /// this version's, it would vouch for files cut short since.
    #[test]
    fn a_marker_of_an_older_version_vouches_for_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state = CleanState { next_offset: 1000, segments: SegmentFingerprint::of([(0, 4096), (500, 2048)]) };
        MetaFile { version: 2, ..CLEAN_MARKER }.write(dir.path(), &state.to_fields()).unwrap();
        assert_eq!(read_clean_marker(dir.path()).unwrap(), None);
        CLEAN_MARKER.write(dir.path(), &state.to_fields()).unwrap();
        assert_eq!(read_clean_marker(dir.path()).unwrap(), Some(state));
    }

    #[test]
    fn the_fingerprint_covers_file_lengths() {
        let of = |s: &[(u64, u64)]| SegmentFingerprint::of(s.iter().copied());
        assert_eq!(of(&[(0, 4096), (500, 2048)]), of(&[(0, 4096), (500, 2048)]));
        assert_ne!(of(&[(0, 4096), (500, 2048)]), of(&[(0, 4096), (500, 0)]));
        assert_ne!(of(&[(0, 4096), (500, 2048)]), of(&[(0, 4096)]));
    }
}
