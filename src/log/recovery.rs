//! Opening a partition's directory: what a crash, an interrupted retention
//! or a clean close left behind, turned back into a list of segments.
//!
//! A clean close leaves a marker with each partition's [`CleanState`] (the
//! next offset, the segment fingerprint), and the open costs O(segments).
//! The marker is removed only before the first change to the files, here or
//! later. Otherwise the active segment (and the one before it, if the
//! crash came mid-roll) is scanned: every batch's length and CRC checked, the
//! torn tail cut, the indexes rebuilt, the result synced. With `repair`,
//! every sealed segment is verified and the log cut at the first damage.
//! Every open checks the segment chain (no offsets missing between the log
//! start and the last segment), reading each sealed segment's last batch
//! unless a clean close recorded this very set of segments.

use std::fs::{self, File};
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::log::format;
use crate::log::fsutil::{self, TMP_SUFFIX};
use crate::log::meta::{
    CHECKPOINTS, Checkpoints, CleanMarker, CleanState, SegmentFingerprint, read_checkpoints, write_checkpoints,
};
use crate::log::segment::{self, ActiveSegment, ScanEnd, Segment, SegmentConfig};

/// A partition's state as found on disk.
pub(super) struct Recovered {
    /// Oldest first; the last one is `active`'s.
    pub(super) segments: Vec<Arc<Segment>>,
    pub(super) active: ActiveSegment,
    /// The offset the next appended record gets.
    pub(super) next_offset: u64,
    pub(super) checkpoints: Checkpoints,
    /// Opened as the clean state said, nothing changed on disk.
    pub(super) clean: bool,
}

/// Lists the segments of `dir` (whose lock the caller holds), finishes
/// interrupted work (temporary files, segments below the log start), and
/// opens the last segment for appends: cheaply after a clean close (`clean`
/// is what the marker recorded), otherwise by recovering it. `marker` is
/// invalidated before any file it vouches for changes. A first segment
/// created here has its directory synced only if `sync_new_dir`.
pub(super) fn recover(
    dir: &Path,
    config: &SegmentConfig,
    clean: Option<CleanState>,
    marker: &CleanMarker,
    sync_new_dir: bool,
) -> Result<Recovered> {
    let _span = tracing::debug_span!("streamlog.recover", dir = %dir.display()).entered();
    let mut bases = Vec::new();
    let mut has_checkpoints = false;
    for entry in fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let entry = entry.map_err(Error::io("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == CHECKPOINTS.name {
            has_checkpoints = true;
        } else if name.ends_with(TMP_SUFFIX) {
            fsutil::remove_if_exists(&entry.path())?;
        } else if let Some(base) = segment::parse_log_name(name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();

    // Listed above: no need to try opening a file that is not there.
    let checkpoints = if has_checkpoints { read_checkpoints(dir)? } else { Checkpoints::default() };
    // Segments wholly below the log start (deleted by retention or
    // delete_records, but a crash came before their files went).
    let below_start =
        bases.len().saturating_sub(1).min(bases.iter().skip(1).take_while(|&&b| b <= checkpoints.log_start).count());
    if below_start > 0 {
        marker.invalidate()?;
    }
    for &base in &bases[..below_start] {
        Segment::sealed(dir, base, config).delete_files()?;
    }
    if below_start > 0 {
        bases.drain(..below_start);
        fsutil::sync_dir(dir)?;
    }

    let mut clean_next = clean.map(|c| c.next_offset);
    if config.repair {
        marker.invalidate()?;
        if repair(dir, &mut bases, config)? {
            clean_next = None;
        }
    }
    let trust_marker = clean_next.is_some_and(|n| bases.last().is_none_or(|&last| n >= last));
    if !trust_marker && let [.., prev, last] = bases[..] {
        // A crash between creating a segment and sealing the one before
        // leaves that one unsealed too: the last one is empty, or (a roll
        // syncs the old segment in the background, then writes its index
        // files) the one before has no index files.
        let last_len = fs::metadata(dir.join(segment::log_file_name(last))).map(|m| m.len()).ok();
        let prev_unsealed = !segment::offset_index_path(&dir.join(segment::log_file_name(prev))).exists();
        if last_len == Some(0) || prev_unsealed {
            marker.invalidate()?;
            let cut_at = Segment::recover_sealed(dir, prev, config)?;
            // A cut of only the unwritten tail (the roll's cut was lost, not
            // a record) leaves no gap: the last segment stays.
            if cut_at.is_some_and(|end| end < last) && last_len != Some(0) {
                // Power was lost before the old segment's sync: what the
                // last segment holds follows lost offsets, and none of it
                // was acknowledged as synced (a sync waits for the seal).
                tracing::warn!(
                    dir = %dir.display(),
                    segment = last,
                    "dropping the last segment: the segment before it lost its unsynced tail"
                );
                Segment::sealed(dir, last, config).delete_files()?;
                bases.pop();
                fsutil::sync_dir(dir)?;
            }
        }
    }
    // With a marker whose segment set matches the listing (and each file's
    // length, one stat each), the chain is as the clean close left it: only
    // the log start is checked.
    let chain_known_good = trust_marker && clean.is_some_and(|c| Some(c.segments) == fingerprint(dir, &bases));
    let mut checkpoints = checkpoints;
    // The marker stays unless a file changes: an open that failed its
    // checks leaves it (and what it knows) for the next attempt.
    if check_chain(dir, &mut bases, &mut checkpoints, config, chain_known_good, clean_next, marker)? {
        clean_next = None;
    }

    let mut opened_clean = false;
    let (active, next_offset) = match bases.last() {
        None => {
            // Only a new log has no segment (checked above, or repaired).
            marker.invalidate()?;
            let start = checkpoints.log_start.max(clean_next.unwrap_or(0));
            (Segment::create(dir, start, config, sync_new_dir)?, start)
        }
        Some(&last) => {
            let clean = match clean_next.filter(|&n| n >= last) {
                Some(next) => Segment::open_clean(dir, last, next, config)?.map(|a| (a, next)),
                None => None,
            };
            match clean {
                Some(opened) => {
                    opened_clean = true;
                    opened
                }
                None => {
                    // A clean close synced everything up to `n`: segments
                    // ending sooner mean a file went missing. Checked (with
                    // pread) before anything changes, so a refused open
                    // leaves the marker for the next attempt.
                    if let Some(n) = clean_next
                        && !config.repair
                    {
                        // The end of the valid batches: a torn tail is cut
                        // below, as after any crash.
                        let path = dir.join(segment::log_file_name(last));
                        let end = segment::scan_file_end(&path, last, config.index)?;
                        if end < n {
                            return Err(Error::Corrupt {
                                path: dir.join(segment::log_file_name(last)),
                                position: 0,
                                reason: format!(
                                    "offsets {end}..{n} are missing: the last clean close left the log \
                                     ending at {n}, its segments end at {end}; open with `repair` to \
                                     record the gap and go on"
                                ),
                            });
                        }
                    }
                    marker.invalidate()?;
                    let (active, next) = Segment::recover(dir, last, config)?;
                    match clean_next {
                        Some(n) if next < n && !config.repair => {
                            return Err(Error::Corrupt {
                                path: dir.join(segment::log_file_name(last)),
                                position: next,
                                reason: format!(
                                    "offsets {next}..{n} are lost: the last clean close left the log ending \
                                     at {n}, and its last segment is damaged there; open with `repair`"
                                ),
                            });
                        }
                        Some(n) if next < n => {
                            // Record the gap as empty batches, then go on at `n`.
                            // A segment that lost everything (damaged from its
                            // first byte) is itself the gap's first file: listed
                            // already, and its index files, from its old
                            // content, go (as in `check_chain`).
                            drop(active.seal(dir)?);
                            let mut at = next;
                            while at < n {
                                let end = (n - 1).min(at.saturating_add(u64::from(u32::MAX)));
                                if at == last {
                                    Segment::sealed(dir, last, config).delete_index_files()?;
                                }
                                Segment::write_sealed(dir, at, &[format::encode_empty_batch(at, end, 0)])?;
                                if at != last {
                                    bases.push(at);
                                }
                                at = end + 1;
                            }
                            bases.push(n);
                            (Segment::create(dir, n, config, true)?, n)
                        }
                        _ => (active, next),
                    }
                }
            }
        }
    };
    // The log start reached the disk, the records up to it did not (a power
    // loss after delete_records, the records never synced): the log starts
    // afresh at the log start, as Kafka's does, so that no offset below it
    // is handed out again. The new segment comes first: a crash before the
    // old ones go leaves them below the log start, removed by the next open.
    let (active, next_offset) = if next_offset < checkpoints.log_start {
        let start = checkpoints.log_start;
        tracing::warn!(
            dir = %dir.display(),
            log_end_offset = next_offset,
            log_start_offset = start,
            "the log ends below its log start after recovery: starting it afresh at the log start"
        );
        marker.invalidate()?;
        opened_clean = false;
        drop(active);
        let fresh = Segment::create(dir, start, config, true)?;
        for &base in &bases {
            Segment::sealed(dir, base, config).delete_files()?;
        }
        fsutil::sync_dir(dir)?;
        bases.clear();
        bases.push(start);
        (fresh, start)
    } else {
        (active, next_offset)
    };
    let mut segments: Vec<Arc<Segment>> =
        bases.iter().take(bases.len().saturating_sub(1)).map(|&b| Segment::sealed(dir, b, config)).collect();
    segments.push(Arc::clone(&active.segment));
    Ok(Recovered { segments, active, next_offset, checkpoints, clean: opened_clean && !config.repair })
}

/// The fingerprint of the segments `bases` as they are on disk; `None` if a
/// file cannot be stat'ed (then nothing is trusted, and the checks that
/// follow report it).
fn fingerprint(dir: &Path, bases: &[u64]) -> Option<SegmentFingerprint> {
    let lens: Vec<(u64, u64)> = bases
        .iter()
        .map(|&b| fs::metadata(dir.join(segment::log_file_name(b))).ok().map(|m| (b, m.len())))
        .collect::<Option<_>>()?;
    Some(SegmentFingerprint::of(lens))
}

/// Verifies every segment but the last and cuts the log at the first bad
/// batch: that segment is truncated there and every later one deleted.
/// Returns whether anything was cut. Used only with `repair`.
fn repair(dir: &Path, bases: &mut Vec<u64>, config: &SegmentConfig) -> Result<bool> {
    for i in 0..bases.len().saturating_sub(1) {
        let seg = Segment::sealed(dir, bases[i], config);
        let (valid_len, end) = seg.scan_all()?;
        if end == ScanEnd::Clean {
            continue;
        }
        drop(seg);
        tracing::warn!(
            dir = %dir.display(),
            segment = bases[i],
            valid_bytes = valid_len,
            later_segments_deleted = bases.len() - i - 1,
            "repair: cutting the log at a damaged sealed segment"
        );
        for &later in &bases[i + 1..] {
            Segment::sealed(dir, later, config).delete_files()?;
        }
        bases.truncate(i + 1);
        let seg = Segment::sealed(dir, bases[i], config);
        seg.delete_index_files()?;
        let path = seg.log_path();
        let file = File::options().read(true).write(true).open(path).map_err(Error::io("open", path))?;
        let file = segment::cut_file(file, path, dir, valid_len as u64)?;
        fsutil::sync_file(&file, path)?;
        fsutil::sync_dir(dir)?;
        return Ok(true);
    }
    Ok(false)
}

/// Checks the segment chain: the first segment starts at or below the log
/// start, and every segment ends (its last batch's last offset + 1) where the
/// next one starts. With `sealed_known_good` (a clean close left this very
/// set of segments) only the first check is made. Finishes what a crash
/// interrupted: the segments a merge covered (its output, named by the
/// first, ends past them exactly at a later segment's base) are deleted, and
/// so is an empty last segment that does not follow on (left by a failed
/// roll of an earlier version). A missing range is [`Error::Corrupt`] naming
/// it; with `repair` the loss is recorded durably: a missing start moves the
/// log start, a gap inside is filled with segments of empty batches covering
/// exactly its offsets (they read as if compacted away). Returns whether any
/// file changed.
fn check_chain(
    dir: &Path,
    bases: &mut Vec<u64>,
    checkpoints: &mut Checkpoints,
    config: &SegmentConfig,
    sealed_known_good: bool,
    clean_next: Option<u64>,
    marker: &CleanMarker,
) -> Result<bool> {
    let log_path = |base: u64| dir.join(segment::log_file_name(base));
    let Some(&first) = bases.first() else {
        // No segment at all, but records were once written.
        let end = checkpoints.log_start.max(clean_next.unwrap_or(0));
        if end == 0 {
            return Ok(false);
        }
        if !config.repair {
            return Err(Error::Corrupt {
                path: dir.to_owned(),
                position: 0,
                reason: format!(
                    "offsets {}..{end} are missing: the partition has no segment file; \
                     open with `repair` to start the log afresh at {end}",
                    checkpoints.log_start
                ),
            });
        }
        checkpoints.log_start = end;
        marker.invalidate()?;
        write_checkpoints(dir, *checkpoints)?;
        return Ok(true);
    };
    let mut changed = false;
    if first > checkpoints.log_start {
        if !config.repair {
            return Err(Error::Corrupt {
                path: log_path(first),
                position: 0,
                reason: format!(
                    "offsets {}..{first} are missing: the first segment starts at {first}, past the log start; \
                     open with `repair` to move the log start to {first}",
                    checkpoints.log_start
                ),
            });
        }
        checkpoints.log_start = first;
        marker.invalidate()?;
        write_checkpoints(dir, *checkpoints)?;
        changed = true;
    }
    if sealed_known_good {
        return Ok(changed);
    }
    let mut i = 0;
    while i + 1 < bases.len() {
        let (base, next) = (bases[i], bases[i + 1]);
        // An empty sealed file holds nothing, so covers nothing.
        let end = Segment::sealed_end_offset(dir, base, config)?.unwrap_or(base);
        if end == next {
            i += 1;
            continue;
        }
        // An empty last segment that does not follow on holds nothing to
        // lose: left by a power loss while rolling (it was listed before the
        // old segment's tail reached the disk, and recovery cut that tail;
        // nothing past the cut was acknowledged unless synced) or by a
        // failed roll of an earlier version. It goes; the one before is
        // active again.
        let last_is_empty = fs::metadata(log_path(next)).is_ok_and(|m| m.len() == 0);
        if i + 2 == bases.len() && last_is_empty {
            marker.invalidate()?;
            Segment::sealed(dir, next, config).delete_files()?;
            fsutil::sync_dir(dir)?;
            bases.pop();
            changed = true;
            continue;
        }
        if end < next {
            if !config.repair {
                return Err(Error::Corrupt {
                    path: log_path(base),
                    position: 0,
                    reason: format!(
                        "offsets {end}..{next} are missing: this segment ends at {end}, the next one \
                         ({}) starts at {next}; open with `repair` to record the gap and go on",
                        segment::log_file_name(next)
                    ),
                });
            }
            marker.invalidate()?;
            let mut at = end;
            while at < next {
                let last = next.saturating_sub(1).min(at.saturating_add(u64::from(u32::MAX)));
                if at == base {
                    Segment::sealed(dir, base, config).delete_index_files()?;
                }
                Segment::write_sealed(dir, at, &[format::encode_empty_batch(at, last, 0)])?;
                if at != base {
                    i += 1;
                    bases.insert(i, at);
                }
                at = last + 1;
            }
            i += 1;
            changed = true;
            continue;
        }
        // Overlap. A merge that took the place of its first segment but
        // did not delete the others yet ends exactly at a later base.
        if let Some(covered) = bases[i + 1..].iter().position(|&b| b == end) {
            marker.invalidate()?;
            for &b in &bases[i + 1..i + 1 + covered] {
                Segment::sealed(dir, b, config).delete_files()?;
            }
            fsutil::sync_dir(dir)?;
            bases.drain(i + 1..i + 1 + covered);
            changed = true;
            continue;
        }
        return Err(Error::Corrupt {
            path: log_path(base),
            position: 0,
            reason: format!("this segment ends at {end}, past the start of the next one ({next})"),
        });
    }
    Ok(changed)
}
