//! A partition's small files beside its segments: the directory lock, the
//! clean-shutdown marker and the checkpoints (log start, compaction progress).

use std::fs::{self, File};
use std::path::Path;

use crate::error::{Error, Result};
use crate::log::fsutil;

/// Name of the directory lock file.
pub(crate) const LOCK_FILE: &str = ".lock";
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

/// Written by a clean close, removed by open: its presence means the files
/// are exactly as a clean close left them. Fields: the next offset, then the
/// [`SegmentFingerprint`] of the segments at close.
pub(super) const CLEAN_MARKER: MetaFile = MetaFile { name: ".clean_shutdown", magic: b"SLCS", version: 2, fields: 3 };

/// What a clean close recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CleanState {
    pub(super) next_offset: u64,
    pub(super) segments: SegmentFingerprint,
}

/// The set of segments, in short: their count and a hash (FNV-1a, 64 bits)
/// of their base offsets. If it matches at open, no segment file went
/// missing since the chain was last known good, and the open need not read
/// every segment's last batch again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SegmentFingerprint {
    pub(super) count: u64,
    pub(super) hash: u64,
}

impl SegmentFingerprint {
    pub(super) fn of(bases: impl IntoIterator<Item = u64>) -> SegmentFingerprint {
        let mut count = 0;
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        for base in bases {
            count += 1;
            for byte in base.to_le_bytes() {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        SegmentFingerprint { count, hash }
    }
}

impl CleanState {
    pub(super) fn write(&self, dir: &Path) -> Result<()> {
        CLEAN_MARKER.write(dir, &[self.next_offset, self.segments.count, self.segments.hash])
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

/// What a clean close recorded, or `None` if there is no valid marker (then
/// the log is recovered as after a crash).
pub(super) fn read_clean_marker(dir: &Path) -> Result<Option<CleanState>> {
    Ok(match CLEAN_MARKER.read(dir)? {
        MetaRead::Fields(f) => {
            Some(CleanState { next_offset: f[0], segments: SegmentFingerprint { count: f[1], hash: f[2] } })
        }
        _ => None,
    })
}

/// Writes `.checkpoints`.
pub(super) fn write_checkpoints(dir: &Path, c: Checkpoints) -> Result<()> {
    CHECKPOINTS.write(dir, &[c.log_start, c.cleaned_up_to])
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
