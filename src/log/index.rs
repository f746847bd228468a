//! The sparse offset index (`.index`) and time index (`.timeindex`) of one
//! segment, and their file format.
//!
//! Both indexes are a cache of the log: kept in memory while the segment is
//! active, written to their files when it is sealed or closed, loaded lazily
//! afterwards, and rebuilt from the log whenever a file is missing or fails
//! its checks.
//!
//! File layout (little-endian): a 24-byte header, then the entries.
//!
//! ```text
//!  0 magic        [u8; 4]  "SLIX" (offset index) or "SLTX" (time index)
//!  4 version      u8       1
//!  5 reserved     [u8; 3]  0
//!  8 base_offset  u64      the segment's base offset
//! 16 entry_count  u32
//! 20 crc          u32      CRC-32 of the entry bytes
//! 24 entries: offset index (relative_offset u32, position u32)   8 bytes
//!             time index   (timestamp i64, relative_offset u32)  12 bytes
//! ```

use std::path::Path;

use crate::error::{Error, Result};
use crate::log::format::u32_at;

const MAGIC_LEN: usize = 4;
const VERSION_OFFSET: usize = MAGIC_LEN;
const BASE_OFFSET_OFFSET: usize = VERSION_OFFSET + 4;
const COUNT_OFFSET: usize = BASE_OFFSET_OFFSET + size_of::<u64>();
const CRC_OFFSET: usize = COUNT_OFFSET + size_of::<u32>();
pub(crate) const FILE_HEADER_LEN: usize = CRC_OFFSET + size_of::<u32>();
const VERSION: u8 = 1;

const OFFSET_MAGIC: &[u8; MAGIC_LEN] = b"SLIX";
const TIME_MAGIC: &[u8; MAGIC_LEN] = b"SLTX";
/// Bytes of one offset index entry: relative offset, position.
pub(crate) const OFFSET_ENTRY_LEN: usize = 2 * size_of::<u32>();
/// Bytes of one time index entry: timestamp, relative offset.
pub(crate) const TIME_ENTRY_LEN: usize = size_of::<i64>() + size_of::<u32>();

/// Offset and time index entries of one segment. Readers look them up
/// under a shared lock; the writer pushes what [`IndexWriter`] says is due.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SegmentIndex {
    base_offset: u64,
    /// (relative offset of a batch's first record, byte position of the batch)
    offsets: Vec<(u32, u32)>,
    /// (largest timestamp so far, relative offset of the batch that first
    /// reached it)
    times: Vec<(i64, u32)>,
}

/// New entries for a [`SegmentIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DueEntries {
    offset: Option<(u32, u32)>,
    time: Option<(i64, u32)>,
}

/// The writer's running state: decides when entries are due (every
/// `interval_bytes` of log, Kafka's rule) without touching the shared index.
#[derive(Debug, Clone)]
pub(crate) struct IndexWriter {
    interval_bytes: u64,
    max_entries: usize,
    offset_entries: usize,
    bytes_since_entry: u64,
    max_timestamp: i64,
    offset_of_max_timestamp: u32,
    last_time_entry: i64,
}

impl IndexWriter {
    pub fn new(interval_bytes: u32, max_index_bytes: u32) -> IndexWriter {
        IndexWriter {
            interval_bytes: u64::from(interval_bytes),
            max_entries: (max_index_bytes as usize / OFFSET_ENTRY_LEN).max(1),
            offset_entries: 0,
            bytes_since_entry: 0,
            max_timestamp: i64::MIN,
            offset_of_max_timestamp: 0,
            last_time_entry: i64::MIN,
        }
    }

    /// Resumes after `index`, whose segment's log is `log_len` bytes long.
    pub fn resume(interval_bytes: u32, max_index_bytes: u32, index: &SegmentIndex, log_len: u64) -> IndexWriter {
        let mut w = IndexWriter::new(interval_bytes, max_index_bytes);
        w.offset_entries = index.offsets.len();
        w.bytes_since_entry = log_len - index.offsets.last().map_or(0, |e| u64::from(e.1));
        if let Some(&(ts, rel)) = index.times.last() {
            (w.max_timestamp, w.offset_of_max_timestamp, w.last_time_entry) = (ts, rel, ts);
        }
        w
    }

    /// Room for no further offset entry: the segment should roll.
    pub fn is_full(&self) -> bool {
        self.offset_entries >= self.max_entries
    }

    /// Largest timestamp of any batch seen so far (`i64::MIN` if none).
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// Accounts for a batch at `position`; returns the entries now due.
    pub fn on_batch(&mut self, rel_offset: u32, position: u32, len: u32, max_timestamp: i64) -> Option<DueEntries> {
        if max_timestamp > self.max_timestamp {
            self.max_timestamp = max_timestamp;
            self.offset_of_max_timestamp = rel_offset;
        }
        let due = if self.bytes_since_entry >= self.interval_bytes && !self.is_full() {
            self.bytes_since_entry = 0;
            self.offset_entries += 1;
            Some(DueEntries { offset: Some((rel_offset, position)), time: self.time_entry() })
        } else {
            None
        };
        self.bytes_since_entry += u64::from(len);
        due
    }

    /// The final time entry, so that a sealed segment's largest timestamp can
    /// be read off its time index.
    pub fn finish(&mut self) -> Option<DueEntries> {
        self.time_entry().map(|t| DueEntries { offset: None, time: Some(t) })
    }

    fn time_entry(&mut self) -> Option<(i64, u32)> {
        (self.max_timestamp > self.last_time_entry).then(|| {
            self.last_time_entry = self.max_timestamp;
            (self.max_timestamp, self.offset_of_max_timestamp)
        })
    }
}

impl SegmentIndex {
    pub fn new(base_offset: u64) -> SegmentIndex {
        SegmentIndex { base_offset, ..SegmentIndex::default() }
    }

    pub fn push(&mut self, due: DueEntries) {
        self.offsets.extend(due.offset);
        self.times.extend(due.time);
    }

    /// Largest timestamp in the time index (`i64::MIN` if empty). For a
    /// sealed segment, its largest timestamp.
    pub fn max_timestamp(&self) -> i64 {
        self.times.last().map_or(i64::MIN, |t| t.0)
    }

    /// Position of the last indexed batch starting at or before `offset`;
    /// 0 when there is none.
    pub fn position_for(&self, offset: u64) -> u32 {
        self.entry_for(offset).1
    }

    /// The last indexed batch starting at or before `offset`: its base
    /// offset and position; the segment's base offset and 0 when there is
    /// none.
    pub fn entry_for(&self, offset: u64) -> (u64, u32) {
        let rel = offset.saturating_sub(self.base_offset).min(u64::from(u32::MAX)) as u32;
        match self.offsets.partition_point(|&(r, _)| r <= rel) {
            0 => (self.base_offset, 0),
            i => (self.base_offset + u64::from(self.offsets[i - 1].0), self.offsets[i - 1].1),
        }
    }

    /// The offset to start scanning from to find the first record with a
    /// timestamp at or after `ts`: every record before it is older.
    pub fn offset_for_time(&self, ts: i64) -> u64 {
        let i = self.times.partition_point(|&(t, _)| t <= ts);
        if i == 0 { self.base_offset } else { self.base_offset + u64::from(self.times[i - 1].1) }
    }

    pub fn encode_offsets(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.offsets.len() * OFFSET_ENTRY_LEN);
        for &(rel, pos) in &self.offsets {
            body.extend_from_slice(&rel.to_le_bytes());
            body.extend_from_slice(&pos.to_le_bytes());
        }
        with_header(OFFSET_MAGIC, self.base_offset, self.offsets.len(), body)
    }

    pub fn encode_times(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.times.len() * TIME_ENTRY_LEN);
        for &(ts, rel) in &self.times {
            body.extend_from_slice(&ts.to_le_bytes());
            body.extend_from_slice(&rel.to_le_bytes());
        }
        with_header(TIME_MAGIC, self.base_offset, self.times.len(), body)
    }

    /// Parses both index files of a segment whose log is `log_len` bytes
    /// long and whose offsets lie below `offset_bound`. Says why they are
    /// unusable (missing, torn, inconsistent) so the caller can rebuild.
    pub fn load(
        base_offset: u64,
        offsets_file: &[u8],
        times_file: &[u8],
        log_len: u64,
        offset_bound: u64,
    ) -> Result<SegmentIndex, &'static str> {
        let offsets = parse_entries(offsets_file, OFFSET_MAGIC, base_offset, OFFSET_ENTRY_LEN)?;
        let times = parse_entries(times_file, TIME_MAGIC, base_offset, TIME_ENTRY_LEN)?;
        let max_rel = offset_bound.saturating_sub(base_offset);
        let out = SegmentIndex {
            base_offset,
            offsets: offsets.chunks_exact(OFFSET_ENTRY_LEN).map(|e| (u32_at(e, 0), u32_at(e, 4))).collect(),
            times: times
                .chunks_exact(TIME_ENTRY_LEN)
                .map(|e| (i64::from_le_bytes(e[..8].try_into().expect("8 bytes")), u32_at(e, 8)))
                .collect(),
        };
        let offsets_ok = out.offsets.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1)
            && out.offsets.iter().all(|&(r, p)| u64::from(r) < max_rel && u64::from(p) < log_len);
        let times_ok = out.times.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
            && out.times.iter().all(|&(_, r)| u64::from(r) < max_rel);
        if !offsets_ok || !times_ok {
            return Err("index entries out of order or past the log");
        }
        if log_len > 0 && out.times.is_empty() {
            return Err("time index of a non-empty segment is empty");
        }
        Ok(out)
    }
}

fn with_header(magic: &[u8; MAGIC_LEN], base_offset: u64, count: usize, body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(FILE_HEADER_LEN + body.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&[VERSION, 0, 0, 0]);
    out.extend_from_slice(&base_offset.to_le_bytes());
    out.extend_from_slice(&(count as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn parse_entries<'a>(
    file: &'a [u8],
    magic: &[u8; MAGIC_LEN],
    base_offset: u64,
    entry_len: usize,
) -> Result<&'a [u8], &'static str> {
    if file.len() < FILE_HEADER_LEN || &file[..MAGIC_LEN] != magic {
        return Err("missing or foreign index header");
    }
    if file[VERSION_OFFSET] != VERSION {
        return Err("unknown index version");
    }
    if file[VERSION_OFFSET + 1..BASE_OFFSET_OFFSET] != [0; 3] {
        return Err("reserved index header bytes are set");
    }
    let stored_base = u64::from_le_bytes(file[BASE_OFFSET_OFFSET..COUNT_OFFSET].try_into().expect("8 bytes"));
    let count = u32_at(file, COUNT_OFFSET) as usize;
    let body = &file[FILE_HEADER_LEN..];
    if stored_base != base_offset || body.len() != count.saturating_mul(entry_len) {
        return Err("index header disagrees with the segment");
    }
    if crc32fast::hash(body) != u32_at(file, CRC_OFFSET) {
        return Err("index checksum mismatch");
    }
    Ok(body)
}

/// Reads an index file, treating "not there" as empty (to be rebuilt).
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::Io { op: "read index", path: path.to_owned(), source: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built() -> (SegmentIndex, IndexWriter) {
        let mut idx = SegmentIndex::new(100);
        let mut w = IndexWriter::new(100, 1 << 20);
        // Batches of 60 bytes, 2 records each, timestamps going up and down.
        let ts = [10, 30, 20, 40, 40, 35, 50, 60];
        for (i, &t) in ts.iter().enumerate() {
            idx.push_opt(w.on_batch(2 * i as u32, 60 * i as u32, 60, t));
        }
        idx.push_opt(w.finish());
        (idx, w)
    }

    impl SegmentIndex {
        fn push_opt(&mut self, due: Option<DueEntries>) {
            if let Some(d) = due {
                self.push(d);
            }
        }
    }

    #[test]
    fn sparse_entries_and_lookups() {
        let (idx, w) = built();
        // An entry once at least 100 bytes passed: before batches 2, 4, 6.
        assert_eq!(idx.offsets, vec![(4, 120), (8, 240), (12, 360)]);
        assert_eq!(idx.position_for(100), 0);
        assert_eq!(idx.position_for(103), 0);
        assert_eq!(idx.position_for(104), 120);
        assert_eq!(idx.position_for(111), 240);
        assert_eq!(idx.position_for(10_000), 360);
        assert_eq!(idx.entry_for(103), (100, 0), "no entry: the segment's base");
        assert_eq!(idx.entry_for(111), (108, 240));
        // Max so far: 30 first reached by batch 1 (rel 2); 40 by batch 3 (rel 6);
        // 50 by batch 6 (rel 12); final 60 by batch 7 (rel 14).
        assert_eq!(idx.times, vec![(30, 2), (40, 6), (50, 12), (60, 14)]);
        assert_eq!(idx.offset_for_time(5), 100);
        assert_eq!(idx.offset_for_time(30), 102);
        assert_eq!(idx.offset_for_time(45), 106);
        assert_eq!(idx.max_timestamp(), 60);
        assert_eq!(w.max_timestamp(), 60);
    }

    #[test]
    fn files_round_trip_and_reject_damage() {
        let (idx, _) = built();
        let (o, t) = (idx.encode_offsets(), idx.encode_times());
        let loaded = SegmentIndex::load(100, &o, &t, 480, 116).unwrap();
        assert_eq!(loaded, idx);
        for i in 0..o.len() {
            let mut bad = o.clone();
            bad[i] ^= 1;
            assert!(SegmentIndex::load(100, &bad, &t, 480, 116).is_err(), "byte {i}");
        }
        for cut in 0..t.len() {
            assert!(SegmentIndex::load(100, &o, &t[..cut], 480, 116).is_err(), "cut {cut}");
        }
        // Entries past the end of a (shorter) log are inconsistent.
        assert!(SegmentIndex::load(100, &o, &t, 300, 116).is_err());
        assert!(SegmentIndex::load(100, &o, &t, 480, 110).is_err());
        assert!(SegmentIndex::load(0, &o, &t, 480, 116).is_err());
    }

    #[test]
    fn resume_continues_where_the_files_left_off() {
        let (idx, mut w) = built();
        let mut r = IndexWriter::resume(100, 1 << 20, &idx, 480);
        assert_eq!(r.max_timestamp(), 60);
        assert_eq!(r.on_batch(16, 480, 60, 70), w.on_batch(16, 480, 60, 70));
    }

    #[test]
    fn full_index_stops_growing() {
        let mut w = IndexWriter::new(0, 2 * OFFSET_ENTRY_LEN as u32);
        let due: Vec<_> = (0..10).filter_map(|i| w.on_batch(i, i * 10, 10, 0)).collect();
        assert!(w.is_full());
        assert_eq!(due.len(), 2);
    }
}
