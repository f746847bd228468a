//! Opening a partition's directory: what a crash, an interrupted retention
//! or a clean close left behind, turned back into a list of segments.
//!
//! A clean close leaves a marker naming the next offset, and the open costs
//! O(segments). Otherwise the active segment (and the one before it, if the
//! crash came mid-roll) is scanned: every batch's length and CRC checked, the
//! torn tail cut, the indexes rebuilt, the result synced. With `repair`,
//! every sealed segment is verified and the log cut at the first damage.

use std::fs::{self, File};
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::log::fsutil::{self, TMP_SUFFIX};
use crate::log::meta::{CLEAN_MARKER, Checkpoints, read_checkpoints, read_clean_marker};
use crate::log::segment::{self, ActiveSegment, IndexConfig, ScanEnd, Segment, SegmentConfig};

/// A partition's state as found on disk.
pub(super) struct Recovered {
    /// Oldest first; the last one is `active`'s.
    pub(super) segments: Vec<Arc<Segment>>,
    pub(super) active: ActiveSegment,
    /// The offset the next appended record gets.
    pub(super) next_offset: u64,
    pub(super) checkpoints: Checkpoints,
}

/// Lists the segments of `dir` (whose lock the caller holds), finishes
/// interrupted work (temporary files, segments below the log start), and
/// opens the last segment for appends: cheaply after a clean close,
/// otherwise by recovering it.
pub(super) fn recover(dir: &Path, config: &SegmentConfig) -> Result<Recovered> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let entry = entry.map_err(Error::io("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(TMP_SUFFIX) {
            fsutil::remove_if_exists(&entry.path())?;
        } else if let Some(base) = segment::parse_log_name(name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();

    let checkpoints = read_checkpoints(dir)?;
    // Segments wholly below the log start (deleted by retention or
    // delete_records, but a crash came before their files went).
    let below_start =
        bases.len().saturating_sub(1).min(bases.iter().skip(1).take_while(|&&b| b <= checkpoints.log_start).count());
    for &base in &bases[..below_start] {
        Segment::sealed(dir, base, config.index).delete_files()?;
    }
    if below_start > 0 {
        bases.drain(..below_start);
        fsutil::sync_dir(dir)?;
    }

    let marker_path = dir.join(CLEAN_MARKER.name);
    let mut clean_next = read_clean_marker(dir)?;
    if fsutil::remove_if_exists(&marker_path)? {
        fsutil::sync_dir(dir)?;
    }
    if config.repair && repair(dir, &mut bases, config.index)? {
        clean_next = None;
    }

    let (active, next_offset) = match bases.last() {
        None => (Segment::create(dir, 0, config)?, 0),
        Some(&last) => {
            let clean = match clean_next.filter(|&n| n >= last) {
                Some(next) => Segment::open_clean(dir, last, next, config)?.map(|a| (a, next)),
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
                        Segment::recover_sealed(dir, prev, config.index, config.repair)?;
                    }
                    Segment::recover(dir, last, config)?
                }
            }
        }
    };
    let mut segments: Vec<Arc<Segment>> =
        bases.iter().take(bases.len().saturating_sub(1)).map(|&b| Segment::sealed(dir, b, config.index)).collect();
    segments.push(Arc::clone(&active.segment));
    Ok(Recovered { segments, active, next_offset, checkpoints })
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
