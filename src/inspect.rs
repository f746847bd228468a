//! Read-only inspection of a data directory, for tools (the `streamlog`
//! command) that look at a directory another process may hold open.
//!
//! Nothing here takes the directory lock, maps a file or writes a byte.
//! Files are read with `pread(2)`: when the owner rolls, cuts, compacts or
//! deletes a segment under a reader, the reader sees a short read (the end)
//! or an I/O error, never `SIGBUS`, which a mapping past the end of a file
//! would raise. What is read is a snapshot; the owner may append meanwhile.
//!
//! ```
//! use streamlog::{Broker, BrokerOptions, ProducerRecord, TopicConfig};
//! use streamlog::inspect::DataDir;
//!
//! let dir = tempfile::tempdir()?;
//! let broker = Broker::open(dir.path(), BrokerOptions::default())?;
//! broker.create_topic("orders", TopicConfig::with_partitions(1))?;
//! broker.producer().send(ProducerRecord::new("orders", "created"))?;
//!
//! // While the broker holds the directory:
//! let data = DataDir::open(dir.path())?;
//! assert_eq!(data.holder(), Some(std::process::id()));
//! let p = data.partition("orders", 0)?;
//! assert_eq!(p.log_end_offset()?, 1);
//! let batches = p.read(0, 1 << 20)?;
//! assert_eq!(batches[0].records().next().unwrap()?.value.as_deref(), Some(&b"created"[..]));
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::broker::state::{self, TOPIC_META, TOPICS_DIR};
use crate::broker::topic::TopicConfig;
use crate::error::{Error, Result};
use crate::group::offsets::{parse_offset_key, parse_offset_value};
use crate::group::{OFFSETS_TOPIC, TopicPartition};
use crate::log::format::{self, BATCH_HEADER_LEN, BatchHeader};
use crate::log::index::{self, SegmentIndex};
use crate::log::meta::{BROKER_META, LOCK_FILE, PARTITION_CLEAN_MARKER, read_checkpoints};
use crate::log::record::Batch;
use crate::log::segment::{self, IndexConfig, Scan, ScanEnd, Scanner};

/// How many bytes a segment reader asks for at once.
const READ_CHUNK: usize = 1 << 20;

/// A data directory, opened for reading only.
#[derive(Debug, Clone)]
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    /// Checks that `path` is a streamlog data directory of a version this
    /// build reads ([`Error::NotAStreamlogDirectory`],
    /// [`Error::UnsupportedFormat`]). Takes no lock.
    pub fn open(path: impl AsRef<Path>) -> Result<DataDir> {
        let path = path.as_ref().to_path_buf();
        if !path.is_dir() {
            return Err(Error::NotAStreamlogDirectory { path });
        }
        state::check_meta(&path)?;
        Ok(DataDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The id of the process holding the directory's lock (a running
    /// [`Broker`](crate::Broker)), if any, as `/proc/locks` tells.
    pub fn holder(&self) -> Option<u32> {
        lock_holder(&self.path.join(LOCK_FILE))
    }

    /// Names of the topics, sorted; `internal` adds `__consumer_offsets`.
    pub fn topics(&self, internal: bool) -> Result<Vec<String>> {
        let dir = self.path.join(TOPICS_DIR);
        let mut names = Vec::new();
        for e in fs::read_dir(&dir).map_err(Error::io("list", &dir))? {
            let e = e.map_err(Error::io("list", &dir))?;
            let Some(name) = e.file_name().to_str().map(str::to_owned) else { continue };
            if crate::validate_topic_name(&name).is_ok()
                && e.path().join(TOPIC_META).is_file()
                && (internal || name != OFFSETS_TOPIC)
            {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// What [`Broker::open`](crate::Broker::open) would refuse in the
    /// topics directory itself: a directory named as a topic without its
    /// `topic.meta` (which [`DataDir::topics`] does not list).
    pub fn verify_topics(&self) -> Result<Vec<Problem>> {
        let dir = self.path.join(TOPICS_DIR);
        let mut problems = Vec::new();
        for e in fs::read_dir(&dir).map_err(Error::io("list", &dir))? {
            let e = e.map_err(Error::io("list", &dir))?;
            let named = e.file_name().to_str().is_some_and(|name| crate::validate_topic_name(name).is_ok());
            // A topic is created and deleted by renaming its directory whole.
            if named && e.path().is_dir() && !e.path().join(TOPIC_META).is_file() {
                problems.push(Problem {
                    path: e.path().join(TOPIC_META),
                    position: 0,
                    what: "the topic's metadata file is missing (its data is kept; open refuses the directory)".into(),
                });
            }
        }
        problems.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(problems)
    }

    /// A topic's stored configuration.
    pub fn topic_config(&self, topic: &str) -> Result<TopicConfig> {
        let path = self.path.join(TOPICS_DIR).join(topic).join(TOPIC_META);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::UnknownTopic { topic: topic.to_owned() });
            }
            Err(e) => return Err(Error::Io { op: "read", path, source: e }),
        };
        let text = String::from_utf8(bytes).map_err(|_| Error::Corrupt {
            path: path.clone(),
            position: 0,
            reason: "topic metadata is not UTF-8".into(),
        })?;
        TopicConfig::decode(&text, &path)
    }

    /// The files of one partition.
    pub fn partition(&self, topic: &str, partition: u32) -> Result<PartitionFiles> {
        let config = self.topic_config(topic)?;
        if partition >= config.partitions {
            return Err(Error::UnknownPartition { topic: topic.to_owned(), partition, count: config.partitions });
        }
        let dir = self.path.join(TOPICS_DIR).join(topic).join(partition.to_string());
        PartitionFiles::open(&dir, &config)
    }

    /// Every committed offset, by group, as the `__consumer_offsets` log
    /// holds them (the latest record per key; tombstones remove).
    pub fn committed_offsets(&self) -> Result<BTreeMap<String, BTreeMap<TopicPartition, u64>>> {
        let mut attempts = 0;
        loop {
            match self.replay_offsets() {
                // Compaction replaced a segment of the offsets log while it
                // was read: list the files again and start over.
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound && attempts < 5 => {
                    attempts += 1;
                }
                other => return other,
            }
        }
    }

    fn replay_offsets(&self) -> Result<BTreeMap<String, BTreeMap<TopicPartition, u64>>> {
        let mut out: BTreeMap<String, BTreeMap<TopicPartition, u64>> = BTreeMap::new();
        let log = match self.partition(OFFSETS_TOPIC, 0) {
            Ok(p) => p,
            Err(Error::UnknownTopic { .. }) => return Ok(out),
            Err(e) => return Err(e),
        };
        let mut next = log.log_start_offset();
        loop {
            let batches = log.read(next, 1 << 20)?;
            let Some(last) = batches.last() else { break };
            next = last.next_offset();
            for batch in &batches {
                for r in batch.try_records()? {
                    let Some((group, tp)) = r.key.as_deref().and_then(parse_offset_key) else { continue };
                    match r.value.as_deref().map(parse_offset_value) {
                        Some(Some(offset)) => {
                            out.entry(group).or_default().insert(tp, offset);
                        }
                        // A value this build cannot read is no tombstone: the
                        // commit before it stands, as the broker replays it.
                        Some(None) => {}
                        None => {
                            if let Some(g) = out.get_mut(&group) {
                                g.remove(&tp);
                            }
                        }
                    }
                }
            }
        }
        out.retain(|_, offsets| !offsets.is_empty());
        Ok(out)
    }
}

/// One partition's segment files, listed when it was opened.
#[derive(Debug)]
pub struct PartitionFiles {
    dir: PathBuf,
    /// The data directory's lock file (`<data>/topics/<topic>/<partition>`
    /// is the layout), to ask whether a process holds the directory.
    lock_file: Option<PathBuf>,
    index: IndexConfig,
    segments: Vec<SegmentFile>,
    log_start: u64,
    /// The log start the owner recorded: at or past the first segment's
    /// base offset, unless the first segment went missing.
    recorded_log_start: u64,
    /// Where the last read of the last segment stopped, so that the next
    /// read (a consumer following the log) resumes there instead of
    /// walking the active segment, which has no index file, from its start.
    tail: std::sync::Mutex<Option<TailHint>>,
    /// The last unfinished tail found while nobody held the directory:
    /// (segment base offset, position, file length).
    unfinished_tail: std::sync::Mutex<Option<(u64, u64, u64)>>,
}

/// A byte position in the last segment and the offset its batch starts at.
#[derive(Debug, Clone, Copy)]
struct TailHint {
    base_offset: u64,
    position: u64,
    next_offset: u64,
}

impl PartitionFiles {
    /// Lists the segments of the partition directory `dir` of a topic with
    /// `config`.
    pub fn open(dir: &Path, config: &TopicConfig) -> Result<PartitionFiles> {
        let index =
            IndexConfig { interval_bytes: config.index_interval_bytes, max_index_bytes: config.max_index_bytes };
        PartitionFiles::open_with(dir, index)
    }

    fn open_with(dir: &Path, index: IndexConfig) -> Result<PartitionFiles> {
        let mut segments = Vec::new();
        for e in fs::read_dir(dir).map_err(Error::io("list", dir))? {
            let e = e.map_err(Error::io("list", dir))?;
            if let Some(base) = e.file_name().to_str().and_then(segment::parse_log_name) {
                let len = match e.metadata() {
                    Ok(m) => m.len(),
                    // Deleted by retention or compaction since it was listed.
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(err) => return Err(Error::Io { op: "stat", path: e.path(), source: err }),
                };
                segments.push(SegmentFile { base_offset: base, path: e.path(), len });
            }
        }
        segments.sort_by_key(|s| s.base_offset);
        let checkpoint = read_checkpoints(dir)?.log_start;
        let log_start = segments.first().map_or(checkpoint, |s| s.base_offset.max(checkpoint));
        let lock_file = dir.ancestors().nth(3).map(|data| data.join(LOCK_FILE));
        Ok(PartitionFiles {
            dir: dir.to_path_buf(),
            lock_file,
            index,
            segments,
            log_start,
            recorded_log_start: checkpoint,
            tail: Default::default(),
            unfinished_tail: Default::default(),
        })
    }

    /// Lists the segment files again (the owner may have rolled, compacted
    /// or deleted some), keeping where the last read of the active segment
    /// stopped.
    pub fn refresh(&mut self) -> Result<()> {
        let fresh = PartitionFiles::open_with(&self.dir, self.index)?;
        self.segments = fresh.segments;
        self.log_start = fresh.log_start;
        self.recorded_log_start = fresh.recorded_log_start;
        *self.unfinished_tail.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Oldest first; the last one is the active segment.
    pub fn segments(&self) -> &[SegmentFile] {
        &self.segments
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> u64 {
        self.log_start
    }

    /// Bytes of the segment files (an active segment's file includes space
    /// allocated ahead of the writer).
    pub fn size_in_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// The offset after the last record: the end of the last segment's
    /// valid batches (a batch the owner is still writing is not counted; a
    /// damaged one is [`Error::Corrupt`], see [`PartitionFiles::read`]).
    pub fn log_end_offset(&self) -> Result<u64> {
        let Some(last) = self.segments.last() else { return Ok(self.log_start) };
        let mut end = last.base_offset;
        for entry in last.batches()? {
            let entry = entry?;
            match entry.batch {
                Some(b) => end = b.next_offset(),
                None => {
                    self.end_of_written(last, &entry, end)?;
                    break;
                }
            }
        }
        Ok(end.max(self.log_start))
    }

    /// Batches from `offset` on, up to about `max_bytes` (at least one if
    /// any record is there), as [`Partition::read`](crate::Partition::read)
    /// returns them, but copied out of the files. Below the log start is
    /// [`Error::OffsetOutOfRange`]; at or past the end, no batches. A batch
    /// that fails its checks is [`Error::Corrupt`] naming the file and
    /// position, unless it is the end of the last segment, no valid batch
    /// follows it, and a process holds the directory (a write in progress)
    /// or the partition was not closed cleanly (a write a crash cut short):
    /// where the written log ends.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Vec<Batch>> {
        if offset < self.log_start {
            return Err(Error::OffsetOutOfRange { requested: offset, start: self.log_start, end: u64::MAX });
        }
        let first = self.segments.partition_point(|s| s.base_offset <= offset).saturating_sub(1);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for (i, seg) in self.segments.iter().enumerate().skip(first) {
            let is_last = i + 1 == self.segments.len();
            let hint = *self.tail.lock().unwrap_or_else(|e| e.into_inner());
            let start = match hint {
                // Only the active segment is resumed: it is never replaced,
                // only appended to (compaction rewrites sealed segments).
                Some(h) if is_last && i == first && h.base_offset == seg.base_offset && h.next_offset <= offset => {
                    h.position
                }
                _ if i == first => self.index_position(seg, offset),
                _ => 0,
            };
            let (kept, kept_bytes) = (out.len(), bytes);
            let full = self.read_segment(seg, start, offset, max_bytes, is_last, &mut out, &mut bytes);
            let full = match full {
                // An index position (or, for a segment that was active when
                // listed, the last read's end) read before a compaction
                // replaced the file may point anywhere in the new one: walk
                // it whole, without what the first walk took from it.
                Err(Error::Corrupt { .. }) if start != 0 => {
                    out.truncate(kept);
                    bytes = kept_bytes;
                    self.read_segment(seg, 0, offset, max_bytes, is_last, &mut out, &mut bytes)?
                }
                other => other?,
            };
            if full {
                break;
            }
        }
        Ok(out)
    }

    /// Appends to `out` the batches of `seg` from byte `start` that hold
    /// offsets from `offset` on; returns whether `max_bytes` was reached.
    #[allow(clippy::too_many_arguments)]
    fn read_segment(
        &self,
        seg: &SegmentFile,
        start: u64,
        offset: u64,
        max_bytes: usize,
        is_last: bool,
        out: &mut Vec<Batch>,
        bytes: &mut usize,
    ) -> Result<bool> {
        // A lower bound of the offset after the batches walked so far.
        let mut next_offset = seg.base_offset;
        for entry in seg.batches_from(start)? {
            let entry = entry?;
            let Some(batch) = entry.batch else {
                // A batch the owner is still writing ends the last segment
                // for now; anywhere else, damage is an error.
                if is_last {
                    self.end_of_written(seg, &entry, next_offset)?;
                    return Ok(false);
                }
                return Err(damage(seg, &entry));
            };
            next_offset = batch.next_offset();
            if is_last {
                let next = TailHint {
                    base_offset: seg.base_offset,
                    position: entry.position + batch.as_bytes().len() as u64,
                    next_offset: batch.next_offset(),
                };
                *self.tail.lock().unwrap_or_else(|e| e.into_inner()) = Some(next);
            }
            if batch.last_offset() < offset {
                continue;
            }
            *bytes += batch.as_bytes().len();
            out.push(batch.starting_at(offset));
            if *bytes >= max_bytes {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The offset of the first record whose timestamp is `>= ts`, or `None`.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<u64>> {
        for (i, seg) in self.segments.iter().enumerate() {
            let mut next_offset = seg.base_offset;
            for entry in seg.batches()? {
                let entry = entry?;
                let Some(batch) = entry.batch else {
                    if i + 1 < self.segments.len() {
                        return Err(damage(seg, &entry));
                    }
                    self.end_of_written(seg, &entry, next_offset)?;
                    break;
                };
                next_offset = batch.next_offset();
                if batch.max_timestamp() >= ts
                    && let Some(r) = batch.try_records()?.into_iter().find(|r| r.timestamp >= ts)
                {
                    return Ok(Some(r.offset.max(self.log_start)));
                }
            }
        }
        Ok(None)
    }

    /// Checks every batch of every segment (checksum, records, offsets in
    /// order), the segment chain as [`Broker::open`](crate::Broker::open)
    /// does (the first segment starts at or below the log start, each one
    /// where the one before ends) and the index files of sealed segments
    /// against the log, reading the files in pieces. With `live` (another
    /// process holds the directory), a bad batch at the very end of the last
    /// segment with no valid batch after it is taken for a write in
    /// progress, and a break in the chain is reported only if a fresh
    /// listing still shows it (retention and compaction delete segments);
    /// after a crash (the partition not closed cleanly), such a batch is a
    /// tail the crash cut short, which the next open cuts off: not a
    /// problem either.
    /// `progress` gets the bytes checked so far. Returns the problems found,
    /// none if the partition is clean.
    pub fn verify(&self, live: bool, progress: &mut dyn FnMut(u64)) -> Result<Vec<Problem>> {
        let mut problems = Vec::new();
        let mut breaks = Vec::new();
        match self.segments.first() {
            None if self.recorded_log_start > 0 => breaks.push(ChainBreak::NoSegment),
            Some(first) if first.base_offset > self.recorded_log_start => breaks.push(ChainBreak::Start(first)),
            _ => {}
        }
        // The segment before and where it ends, if it was read whole.
        let mut before: Option<(&SegmentFile, u64)> = None;
        for (i, seg) in self.segments.iter().enumerate() {
            let is_last = i + 1 == self.segments.len();
            if let Some((prev, end)) = before {
                if seg.base_offset < end && self.segments[i + 1..].iter().any(|s| s.base_offset == end) {
                    // Covered by a merge not finished yet, or that a crash
                    // interrupted (its output ends where a later segment
                    // starts): it goes (open deletes it).
                    progress(seg.len);
                    continue;
                }
                if seg.base_offset != end && !(is_last && seg.len == 0) {
                    breaks.push(ChainBreak::Between(prev, end, seg));
                }
            }
            let (scan, bad) = match self.walk(seg, progress) {
                Ok(walked) => walked,
                // Deleted by retention or compaction since it was listed:
                // the next one cannot be checked against the one before.
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    before = None;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let problem = |position: u64, what: String| Problem { path: seg.path.clone(), position, what };
            before = None;
            match (scan.end, bad) {
                (ScanEnd::Unwritten, _) if !is_last => {
                    problems.push(problem(scan.valid_len as u64, "zero bytes inside a sealed segment".into()))
                }
                // The active segment's tail with nothing valid after it: a
                // write in progress while the directory is held (not
                // damage), or a tail torn by a crash (the next open cuts it).
                (_, Some((pos, _))) if is_last && self.is_unfinished_tail(live, seg, pos, scan.next_offset)? => {}
                (_, Some((pos, why))) => problems.push(problem(pos, why)),
                _ => before = Some((seg, scan.next_offset)),
            }
            let offsets = index::read_file(&segment::offset_index_path(&seg.path))?;
            let times = index::read_file(&segment::time_index_path(&seg.path))?;
            // Indexes are a cache: none at all (the active segment; one
            // recovery sealed) is fine, present ones must match the log.
            let no_index = offsets.is_empty() && times.is_empty();
            if !is_last && !no_index {
                match SegmentIndex::load(seg.base_offset, &offsets, &times, scan.valid_len as u64, scan.next_offset) {
                    Ok(loaded) if loaded == scan.index => {}
                    Ok(_) => problems.push(problem(0, "index files disagree with the log (rebuilt on open)".into())),
                    Err(why) => problems.push(problem(0, format!("index files unusable: {why} (rebuilt on open)"))),
                }
            }
        }
        if !breaks.is_empty() {
            problems.extend(self.confirm_breaks(breaks)?);
        }
        Ok(problems)
    }

    /// Walks `seg` as recovery scans it (every batch checked, offsets in
    /// order, indexes built), a chunk of the file at a time. Returns the
    /// scan (its end `Unwritten` if it stopped at zeros before the end of
    /// the file) and the bad batch it stopped at, if any.
    fn walk(&self, seg: &SegmentFile, progress: &mut dyn FnMut(u64)) -> Result<(Scan, Option<(u64, String)>)> {
        let mut scanner = Scanner::new(seg.base_offset, self.index);
        let mut batches = seg.batches()?;
        let mut bad = None;
        for entry in &mut batches {
            let entry = entry?;
            let taken = match &entry.batch {
                Some(batch) => scanner.on_batch(batch.stored_header()).map_err(|e| e.to_string()),
                None => Err(entry.problem.clone().unwrap_or_else(|| "damaged batch".into())),
            };
            match taken {
                Ok(()) => progress(entry.batch.map_or(0, |b| b.as_bytes().len() as u64)),
                Err(why) => {
                    bad = Some((entry.position, why));
                    break;
                }
            }
        }
        progress(seg.len.saturating_sub(scanner.valid_len() as u64));
        let end = if batches.stopped_at_zeros { ScanEnd::Unwritten } else { ScanEnd::Clean };
        let mut scan = scanner.finish(end);
        // Sealing adds the final time entry; so does a rebuild.
        if let Some(due) = scan.writer.finish() {
            scan.index.push(due);
        }
        Ok((scan, bad))
    }

    /// The breaks in the segment chain that a fresh listing still shows, as
    /// problems: retention or compaction may have deleted segments since
    /// this listing (and a merge's output may start where one was).
    fn confirm_breaks(&self, breaks: Vec<ChainBreak<'_>>) -> Result<Vec<Problem>> {
        let fresh = PartitionFiles::open_with(&self.dir, self.index)?;
        let bases: Vec<u64> = fresh.segments.iter().map(|s| s.base_offset).collect();
        let follows = |a: u64, b: u64| bases.iter().position(|&x| x == a).is_some_and(|i| bases.get(i + 1) == Some(&b));
        let mut problems = Vec::new();
        for b in breaks {
            let (path, what) = match b {
                ChainBreak::NoSegment if bases.is_empty() && fresh.recorded_log_start > 0 => (
                    self.dir.clone(),
                    format!(
                        "offsets below {} were written, but the partition has no segment file",
                        fresh.recorded_log_start
                    ),
                ),
                ChainBreak::Start(first)
                    if bases.first() == Some(&first.base_offset) && first.base_offset > fresh.recorded_log_start =>
                {
                    (
                        first.path.clone(),
                        format!(
                            "offsets {}..{} are missing: the first segment starts past the log start",
                            fresh.recorded_log_start, first.base_offset
                        ),
                    )
                }
                // An overlap with a segment that starts where the one before
                // ends is a merge not finished yet (or that a crash
                // interrupted: open finishes it).
                ChainBreak::Between(prev, end, next)
                    if follows(prev.base_offset, next.base_offset) && !bases.contains(&end) =>
                {
                    let what = if next.base_offset > end {
                        format!(
                            "offsets {end}..{} are missing: this segment ends at {end}, the next one starts at {}",
                            next.base_offset, next.base_offset
                        )
                    } else {
                        format!("this segment ends at {end}, the next one starts inside it, at {}", next.base_offset)
                    };
                    (prev.path.clone(), what)
                }
                _ => continue,
            };
            problems.push(Problem { path, position: 0, what: format!("{what} (open refuses the directory)") });
        }
        Ok(problems)
    }

    /// Whether a process holds the data directory now.
    fn is_held(&self) -> bool {
        self.lock_file.as_deref().and_then(lock_holder).is_some()
    }

    /// Tells what a batch of the last segment that failed its checks is,
    /// `entry`, after batches ending at or past `next_offset`: `Ok` if it is
    /// where the written log ends, a write in progress (a process holds the
    /// directory) or one a crash cut short (the directory was not closed
    /// cleanly: its owner's next open cuts it off), with no valid batch
    /// after it; [`Error::Corrupt`] otherwise, and always after a clean
    /// close, which leaves no write unfinished.
    fn end_of_written(&self, seg: &SegmentFile, entry: &BatchEntry, next_offset: u64) -> Result<()> {
        if self.is_unfinished_tail(self.is_held(), seg, entry.position, next_offset)? {
            return Ok(());
        }
        Err(damage(seg, entry))
    }

    /// Whether the bad batch at `position` of the last segment `seg` is an
    /// unfinished write rather than damage: `held` (a process holds the
    /// directory) or the partition not closed cleanly, and no valid batch
    /// after it. Without a holder the files do not change, so the verdict
    /// for one position of a file of one length is kept: a consumer
    /// following a crashed directory does not read the rest of the file
    /// (provisioned space, up to 64 MiB) at every poll.
    fn is_unfinished_tail(&self, held: bool, seg: &SegmentFile, position: u64, next_offset: u64) -> Result<bool> {
        if !held && self.closed_cleanly() {
            return Ok(false);
        }
        let len = fs::metadata(&seg.path).map_err(Error::io("stat", &seg.path))?.len();
        let key = (seg.base_offset, position, len);
        let mut known = self.unfinished_tail.lock().unwrap_or_else(|e| e.into_inner());
        if !held && *known == Some(key) {
            return Ok(true);
        }
        let unfinished = self.is_write_in_progress(seg, position, next_offset)?;
        *known = (unfinished && !held).then_some(key);
        Ok(unfinished)
    }

    /// Whether the owner closed the partition cleanly: in a broker's data
    /// directory, its clean marker lists the partition (a partition's own
    /// marker there may be left from a time it was opened alone); a
    /// partition opened alone has its own marker.
    fn closed_cleanly(&self) -> bool {
        let data = self.lock_file.as_deref().and_then(Path::parent).filter(|d| d.join(BROKER_META).is_file());
        match data {
            Some(data) => {
                let topic = self.dir.parent().and_then(Path::file_name).and_then(|n| n.to_str());
                let partition = self.dir.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse().ok());
                topic.zip(partition).is_some_and(|(t, p)| crate::broker::clean::vouches_for(data, t, p))
            }
            None => self.dir.join(PARTITION_CLEAN_MARKER).exists(),
        }
    }

    /// Whether the bad batch at `position` of the last segment `seg`, after
    /// batches ending at or past `next_offset`, can be the owner's write in
    /// progress: no valid batch follows it.
    fn is_write_in_progress(&self, seg: &SegmentFile, position: u64, next_offset: u64) -> Result<bool> {
        let file = File::open(&seg.path).map_err(Error::io("open", &seg.path))?;
        if valid_batch_after(&file, &seg.path, position + 1, next_offset)?.is_none() {
            return Ok(true);
        }
        // Read again after what follows it: a batch still being written
        // when first read, with the next one written since, is whole now.
        Ok(matches!(seg.batches_from(position)?.next().transpose()?, Some(again) if again.batch.is_some()))
    }

    /// The position to start reading `offset` at in `seg`: from its offset
    /// index when the file is there and sound, else the start.
    fn index_position(&self, seg: &SegmentFile, offset: u64) -> u64 {
        let read = |p: PathBuf| index::read_file(&p).ok();
        let (Some(offsets), Some(times)) =
            (read(segment::offset_index_path(&seg.path)), read(segment::time_index_path(&seg.path)))
        else {
            return 0;
        };
        SegmentIndex::load(seg.base_offset, &offsets, &times, seg.len, u64::MAX)
            .map_or(0, |idx| u64::from(idx.position_for(offset)))
    }
}

/// The error for a batch that failed its checks.
fn damage(seg: &SegmentFile, entry: &BatchEntry) -> Error {
    Error::Corrupt {
        path: seg.path.clone(),
        position: entry.position,
        reason: entry.problem.clone().unwrap_or_else(|| "damaged batch".into()),
    }
}

/// The position of the first batch at or after `from` in `file` that passes
/// its checks and continues the log (its base offset at or past
/// `next_offset`), if any: [`segment::valid_batch_after`] over a file read
/// in chunks, so that a segment is never in memory whole.
fn valid_batch_after(file: &File, path: &Path, from: u64, next_offset: u64) -> Result<Option<u64>> {
    let len = file.metadata().map_err(Error::io("stat", path))?.len();
    let mut at = from;
    while at + BATCH_HEADER_LEN as u64 <= len {
        let chunk = read_at(file, path, at, READ_CHUNK.min((len - at) as usize))?;
        if chunk.len() < BATCH_HEADER_LEN {
            break; // The file was cut shorter meanwhile.
        }
        // Candidates start where a whole header is in the chunk; the next
        // chunk starts at the first position not looked at.
        let mut i = 0;
        while i + BATCH_HEADER_LEN <= chunk.len() {
            if chunk[i..i + format::MAGIC_OFFSET].iter().all(|&b| b == 0) {
                // Unwritten space. A batch's length is never zero, so one
                // starts at most 7 bytes before the next byte that is not.
                let nonzero = chunk[i..].iter().position(|&b| b != 0).map_or(chunk.len(), |d| i + d);
                i = (i + 1).max(nonzero.saturating_sub(format::MAGIC_OFFSET - 1));
                continue;
            }
            let position = at + i as u64;
            let h = BatchHeader::parse(&chunk[i..]).expect("a whole header is in the chunk");
            let plausible = matches!(h.magic, format::MAGIC | format::MAGIC_V2)
                && h.base_offset >= next_offset
                && h.len() >= BATCH_HEADER_LEN
                && h.len() as u64 <= len - position;
            if plausible && batch_checks_out(file, path, position, &chunk[i..], &h)? {
                return Ok(Some(position));
            }
            i += 1;
        }
        at += i as u64;
    }
    Ok(None)
}

/// Whether the batch at `position` with header `h` passes
/// [`format::check_batch`]; `start` holds its first bytes. One longer than
/// `start` is checked a chunk at a time: a damaged length must not become a
/// huge allocation.
fn batch_checks_out(file: &File, path: &Path, position: u64, start: &[u8], h: &BatchHeader) -> Result<bool> {
    // The header's cheap checks first: a checksum over the length a damaged
    // header claims, at each position, is quadratic.
    if format::check_fields(h).is_err() {
        return Ok(false);
    }
    if start.len() >= h.len() {
        return Ok(format::check_batch(start).is_ok());
    }
    let mut crc = crc32fast::Hasher::new();
    let mut at = position + format::LENGTH_OFFSET as u64;
    let end = position + h.len() as u64;
    while at < end {
        let chunk = read_at(file, path, at, READ_CHUNK.min((end - at) as usize))?;
        if chunk.is_empty() {
            return Ok(false); // The file was cut meanwhile.
        }
        crc.update(&chunk);
        at += chunk.len() as u64;
    }
    Ok(crc.finalize() == h.crc)
}

/// Up to `len` bytes of `file` from `position` (fewer at its end).
fn read_at(file: &File, path: &Path, position: u64, len: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buf[filled..], position + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io { op: "read", path: path.to_owned(), source: e }),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// Where [`PartitionFiles::verify`] found the segment chain broken, to be
/// confirmed against a fresh listing.
enum ChainBreak<'a> {
    /// Records were written, but no segment is listed.
    NoSegment,
    /// The first segment starts past the recorded log start.
    Start(&'a SegmentFile),
    /// The segment before, where it ends, and the next one, which does not
    /// start there.
    Between(&'a SegmentFile, u64, &'a SegmentFile),
}

/// Something [`PartitionFiles::verify`] found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub path: PathBuf,
    /// Byte position in the file.
    pub position: u64,
    /// What is wrong.
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}: {}", self.path.display(), self.position, self.what)
    }
}

/// One `.log` file.
#[derive(Debug, Clone)]
pub struct SegmentFile {
    base_offset: u64,
    path: PathBuf,
    len: u64,
}

impl SegmentFile {
    /// The segment file at `path` (named `<base offset, 20 digits>.log`).
    pub fn open(path: impl AsRef<Path>) -> Result<SegmentFile> {
        let path = path.as_ref().to_path_buf();
        let base_offset = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(segment::parse_log_name)
            .ok_or_else(|| Error::InvalidConfig(format!("{} is not a segment file name", path.display())))?;
        let len = fs::metadata(&path).map_err(Error::io("stat", &path))?.len();
        Ok(SegmentFile { base_offset, path, len })
    }

    /// The offset of its first record.
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length when it was listed.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file was empty when listed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every batch from the start of the file, in order.
    pub fn batches(&self) -> Result<SegmentBatches> {
        self.batches_from(0)
    }

    fn batches_from(&self, position: u64) -> Result<SegmentBatches> {
        let file = File::open(&self.path).map_err(Error::io("open", &self.path))?;
        Ok(SegmentBatches {
            file,
            path: self.path.clone(),
            pos: position,
            chunk: Bytes::new(),
            chunk_at: 0,
            done: false,
            stopped_at_zeros: false,
        })
    }
}

/// One batch as a walk over a segment file met it.
#[derive(Debug, Clone)]
pub struct BatchEntry {
    /// Byte position of the batch in the file.
    pub position: u64,
    /// The header as stored, if there were enough bytes for one (for a
    /// damaged batch its fields may be garbage).
    pub header: Option<BatchSummary>,
    /// The batch, if it passed every check.
    pub batch: Option<Batch>,
    /// Why it did not, if it did not.
    pub problem: Option<String>,
}

/// The fields of a batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    /// The offset of the first record.
    pub base_offset: u64,
    /// The offset of the last record.
    pub last_offset: u64,
    /// Records stored in the batch.
    pub record_count: u32,
    /// Bytes of the whole batch.
    pub size: u32,
    /// The first record's timestamp, ms since the Unix epoch.
    pub first_timestamp: i64,
    /// The largest timestamp in the batch, ms since the Unix epoch.
    pub max_timestamp: i64,
    /// The stored CRC-32.
    pub crc: u32,
}

impl From<&BatchHeader> for BatchSummary {
    fn from(h: &BatchHeader) -> BatchSummary {
        BatchSummary {
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
            record_count: h.record_count,
            size: h.batch_length,
            first_timestamp: h.first_timestamp,
            max_timestamp: h.max_timestamp,
            crc: h.crc,
        }
    }
}

/// The batches of a segment file, read with `pread` in chunks. Ends at the
/// end of the file or at unwritten (zero) space; a damaged batch is yielded
/// with its problem and ends the walk, since its length cannot be trusted.
#[derive(Debug)]
pub struct SegmentBatches {
    file: File,
    path: PathBuf,
    pos: u64,
    /// Bytes read from `chunk_at` on.
    chunk: Bytes,
    chunk_at: u64,
    done: bool,
    /// The walk ended at zero bytes, not at the end of the file.
    stopped_at_zeros: bool,
}

impl SegmentBatches {
    /// The bytes from `self.pos` on, at least `want` of them if the file has
    /// them; fewer means the file ends sooner.
    fn bytes_at_pos(&mut self, want: usize) -> Result<Bytes> {
        let in_chunk = self.pos.checked_sub(self.chunk_at).map(|d| d as usize).filter(|&d| d <= self.chunk.len());
        if let Some(d) = in_chunk
            && self.chunk.len() - d >= want
        {
            return Ok(self.chunk.slice(d..));
        }
        self.chunk = Bytes::from(read_at(&self.file, &self.path, self.pos, want.max(READ_CHUNK))?);
        self.chunk_at = self.pos;
        Ok(self.chunk.clone())
    }

    fn next_entry(&mut self) -> Result<Option<BatchEntry>> {
        let head = self.bytes_at_pos(BATCH_HEADER_LEN)?;
        // The end, or space allocated ahead of the writer and not yet
        // written: a batch never starts with eight zero bytes.
        if head[..head.len().min(format::MAGIC_OFFSET)].iter().all(|&b| b == 0) {
            self.stopped_at_zeros = !head.is_empty();
            return Ok(None);
        }
        let position = self.pos;
        let Some(header) = BatchHeader::parse(&head) else {
            return Ok(Some(self.damaged(position, None, "truncated batch header".into())));
        };
        let want = header.len().max(BATCH_HEADER_LEN);
        if head.len() < want {
            // A damaged length must not become a huge allocation.
            let file_len = self.file.metadata().map_err(Error::io("stat", &self.path))?.len();
            if position + want as u64 > file_len {
                return Ok(Some(self.damaged(
                    position,
                    Some(BatchSummary::from(&header)),
                    "batch runs past the end of the file".into(),
                )));
            }
        }
        let bytes = if head.len() >= want { head } else { self.bytes_at_pos(want)? };
        let checked = format::check_batch(&bytes).and_then(|h| format::validate_records(&bytes, &h).map(|()| h));
        match checked {
            Ok(h) => {
                self.pos += h.len() as u64;
                let data = bytes.slice(..h.len());
                Ok(Some(BatchEntry {
                    position,
                    header: Some(BatchSummary::from(&h)),
                    batch: Some(Batch::new(data, h, h.base_offset)),
                    problem: None,
                }))
            }
            Err(e) => Ok(Some(self.damaged(position, Some(BatchSummary::from(&header)), e.to_string()))),
        }
    }

    fn damaged(&mut self, position: u64, header: Option<BatchSummary>, problem: String) -> BatchEntry {
        self.done = true;
        BatchEntry { position, header, batch: None, problem: Some(problem) }
    }
}

impl Iterator for SegmentBatches {
    type Item = Result<BatchEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_entry();
        if !matches!(next, Ok(Some(_))) {
            self.done = true;
        }
        next.transpose()
    }
}

/// The pid holding an flock on `lock_file`, from `/proc/locks` (lines like
/// `1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF`).
fn lock_holder(lock_file: &Path) -> Option<u32> {
    let meta = fs::metadata(lock_file).ok()?;
    let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
    let locks = fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (kind, pid, id) = (fields.get(1)?, fields.get(4)?, fields.get(5)?);
        let mut parts = id.split(':');
        let dev_major = u32::from_str_radix(parts.next()?, 16).ok()?;
        let dev_minor = u32::from_str_radix(parts.next()?, 16).ok()?;
        let inode: u64 = parts.next()?.parse().ok()?;
        (*kind == "FLOCK" && inode == meta.ino() && dev_major == major && dev_minor == minor)
            .then(|| pid.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As `segment::tests::damage_with_plausible_lengths_is_searched_without_checksums`,
    /// through a file read in chunks.
    #[test]
    fn damage_with_plausible_lengths_is_searched_without_checksums() {
        use crate::log::format::test_support::{crc_bytes, plausible_damage};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        let bytes = plausible_damage(256 << 10);
        std::fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        let before = crc_bytes();
        assert_eq!(valid_batch_after(&file, &path, 0, 0).unwrap(), None);
        let checksummed = crc_bytes() - before;
        assert!(checksummed < bytes.len() as u64, "{checksummed} bytes checksummed");
    }
}
