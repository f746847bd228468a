//! Reads over a damaged sealed segment either fail or return exactly the
//! records that were written, never a record skipped or made up. A read
//! steps over the batches before its offset by their headers (so that a
//! seek past a damaged batch goes on after it); these trials damage those
//! headers (lengths, lengths spanning later batches with offsets made to
//! follow on, base offsets, last offset deltas, record counts) and bodies,
//! in a plain log and in a compacted one (whose batches leave gaps), then
//! read at every offset, follow the log batch by batch, and compact it.
//! A second test forges a batch inside a record's value, where a damaged
//! length lands.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::StoredBatch;
use streamlog::{CompactionOptions, Partition, PartitionOptions, Record};

fn opts() -> PartitionOptions {
    PartitionOptions::default().segment_bytes(16 << 10).index_interval_bytes(4096)
}

/// xorshift64: the trials are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Every record of `p`, by offset (compaction leaves gaps).
fn records_by_offset(p: &Partition) -> BTreeMap<u64, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut next = 0;
    while next < p.high_watermark() {
        let read = p.read(next, 1 << 20).unwrap();
        for r in read.iter().flat_map(|b| b.records()) {
            let r = r.unwrap();
            out.insert(r.offset, r.value.unwrap().to_vec());
        }
        next = read.last().expect("batches below the high watermark").next_offset();
    }
    out
}

/// A log of 600 records in batches of 1 to 4, keyed (and compacted) or not;
/// returns what it holds.
fn build(dir: &Path, compacted: bool) -> BTreeMap<u64, Vec<u8>> {
    let p = Partition::open(dir, opts()).unwrap();
    let mut rng = Rng(7);
    let mut next = 0u64;
    while next < 600 {
        let batch: Vec<Record> = (next..next + 1 + rng.below(4) as u64)
            .map(|o| {
                let r = Record::new(format!("{o:060}").into_bytes());
                if compacted { r.with_key(format!("k{}", rng.below(300)).into_bytes()) } else { r }
            })
            .collect();
        next = p.append(&batch).unwrap().last_offset + 1;
    }
    if compacted {
        let all = CompactionOptions { min_cleanable_dirty_ratio: 0.0, ..Default::default() };
        p.compact(i64::MAX / 2, &all).unwrap();
    }
    let written = records_by_offset(&p);
    p.close().unwrap();
    written
}

/// A log built by [`build`], and its first sealed segment as written.
struct Built {
    dir: tempfile::TempDir,
    written: BTreeMap<u64, Vec<u8>>,
    sealed: PathBuf,
    original: Vec<u8>,
    batches: Vec<StoredBatch>,
    /// One past the sealed segment's last offset.
    sealed_end: u64,
}

impl Built {
    fn new(compacted: bool) -> Built {
        let dir = tempfile::tempdir().unwrap();
        let written = build(dir.path(), compacted);
        let sealed = common::log_files(dir.path())[0].clone();
        let original = std::fs::read(&sealed).unwrap();
        let batches = common::stored_batches(&original);
        let sealed_end = batches.last().unwrap().last_offset + 1;
        Built { dir, written, sealed, original, batches, sealed_end }
    }

    /// A copy of the log whose sealed segment holds `bytes`.
    fn copy_with(&self, bytes: &[u8]) -> tempfile::TempDir {
        let copy = tempfile::tempdir().unwrap();
        common::crash_copy(self.dir.path(), copy.path());
        std::fs::write(copy.path().join(self.sealed.file_name().unwrap()), bytes).unwrap();
        copy
    }
}

/// Fails if a read of `p` from `from` returns anything but the next
/// records of `written` in order (an error is fine).
fn check_read(p: &Partition, written: &BTreeMap<u64, Vec<u8>>, from: u64, max_bytes: usize) -> Result<(), String> {
    let Ok(batches) = p.read(from, max_bytes) else { return Ok(()) };
    let mut expected = written.range(from..);
    for r in batches.iter().flat_map(|b| b.records()) {
        let Ok(r) = r else { return Ok(()) };
        match expected.next() {
            Some((&o, v)) if o == r.offset && r.value.as_deref() == Some(&v[..]) => {}
            Some((&o, _)) => return Err(format!("read at {from} returned {} where {o} is", r.offset)),
            None => return Err(format!("read at {from} returned {}, past the last record", r.offset)),
        }
    }
    Ok(())
}

/// Damages 1-3 places of a copy of `sealed` in `rng`'s way; says what.
fn damage(bytes: &mut [u8], at: &[StoredBatch], rng: &mut Rng) -> String {
    let mut what = String::new();
    for _ in 0..1 + rng.below(3) {
        let i = rng.below(at.len());
        let StoredBatch { pos, len, base_offset, .. } = at[i];
        let flip = |b: &mut [u8], at: usize, rng: &mut Rng| b[at] ^= 1 << rng.below(8);
        match rng.below(6) {
            0 => {
                bytes[pos + 4 + rng.below(4)] = rng.next() as u8;
                what += &format!("length byte of the batch at {pos}; ");
            }
            1 => {
                // A length spanning the next 1-3 batches, and maybe a last
                // offset delta that makes the chain follow on there.
                let span = 1 + rng.below(3);
                let end = (i + span).min(at.len());
                let total: usize = at[i..end].iter().map(|b| b.len).sum();
                bytes[pos + 4..pos + 8].copy_from_slice(&(total as u32).to_le_bytes());
                what += &format!("length of the batch at {pos} spanning {span}; ");
                if rng.below(2) == 0
                    && let Some(landing) = at.get(end)
                {
                    let delta = landing.base_offset - 1 - base_offset;
                    bytes[pos + 20..pos + 24].copy_from_slice(&(delta as u32).to_le_bytes());
                    what += "with its offsets following on; ";
                }
            }
            2 => {
                flip(bytes, pos + 12 + rng.below(8), rng);
                what += &format!("base offset of the batch at {pos}; ");
            }
            3 => {
                flip(bytes, pos + 20 + rng.below(4), rng);
                what += &format!("last offset delta of the batch at {pos}; ");
            }
            4 => {
                flip(bytes, pos + 40 + rng.below(4), rng);
                what += &format!("record count of the batch at {pos}; ");
            }
            _ => {
                flip(bytes, pos + rng.below(len), rng);
                what += &format!("a byte of the batch at {pos}; ");
            }
        }
    }
    what
}

fn trials(compacted: bool, seed: u64, count: usize) {
    let built = Built::new(compacted);
    let (written, sealed_end) = (&built.written, built.sealed_end);
    let mut rng = Rng(seed);
    let mut failures = Vec::new();
    for trial in 0..count {
        let mut bytes = built.original.clone();
        let what = damage(&mut bytes, &built.batches, &mut rng);
        let dir = built.copy_with(&bytes);
        // Damage that open refuses is another test's matter.
        let Ok(p) = Partition::open(dir.path(), opts()) else { continue };
        for from in 0..sealed_end.min(p.high_watermark()) {
            for max_bytes in [usize::MAX, 1] {
                if let Err(e) = check_read(&p, written, from, max_bytes) {
                    failures.push(format!("trial {trial} ({what}): {e}"));
                }
            }
        }
        // A follower, batch by batch, then compaction over the damage.
        let mut next = 0;
        while let Ok(read) = p.read(next, 1)
            && let Some(last) = read.last()
        {
            for r in read.iter().flat_map(|b| b.records()).flatten() {
                if written.get(&r.offset).map(Vec::as_slice) != r.value.as_deref() {
                    failures.push(format!("trial {trial} ({what}): the follower read {} wrong", r.offset));
                }
            }
            next = last.next_offset();
        }
        let all = CompactionOptions { min_cleanable_dirty_ratio: 0.0, ..Default::default() };
        let _ = p.compact(i64::MAX / 2, &all);
        let mut next = 0;
        while let Ok(read) = p.read(next, usize::MAX)
            && let Some(last) = read.last()
        {
            for r in read.iter().flat_map(|b| b.records()).flatten() {
                if !written.contains_key(&r.offset) {
                    failures.push(format!("trial {trial} ({what}): {} after compaction, never written", r.offset));
                }
            }
            next = last.next_offset();
        }
        let _ = p.close();
    }
    assert!(
        failures.is_empty(),
        "{} failures, the first:\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );
}

#[test]
fn reads_over_damage_in_a_plain_log_fail_or_return_what_was_written() {
    trials(false, 0x1234_5678_9abc, 1000);
}

#[test]
fn reads_over_damage_in_a_compacted_log_fail_or_return_what_was_written() {
    trials(true, 0x9876_5432_1fed, 1000);
}

/// Damage to batch bodies alone (headers intact) never stops a read at an
/// offset outside the damaged batches: it returns that offset's record
/// first. That is how a consumer goes on past damage, seeking after it.
#[test]
fn a_read_outside_batches_with_damaged_bodies_returns_its_record() {
    let built = Built::new(false);
    let mut rng = Rng(0x5eed);
    for trial in 0..200 {
        let mut bytes = built.original.clone();
        let mut damaged = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let b = built.batches[rng.below(built.batches.len())];
            bytes[b.pos + 44 + rng.below(b.len - 44)] ^= 1 << rng.below(8);
            damaged.push(b.base_offset..=b.last_offset);
        }
        let dir = built.copy_with(&bytes);
        let p = Partition::open(dir.path(), opts()).unwrap();
        for from in (0..built.sealed_end).filter(|o| !damaged.iter().any(|d| d.contains(o))) {
            for max_bytes in [usize::MAX, 1] {
                let first = p.read(from, max_bytes).map(|read| read[0].records().next().unwrap().unwrap());
                match first {
                    Ok(r) if r.offset == from && built.written.get(&from).map(Vec::as_slice) == r.value.as_deref() => {}
                    other => panic!("trial {trial}, damaged {damaged:?}: a read at {from} gave {other:?}"),
                }
            }
        }
    }
}

/// A record's value holding a well-formed batch with the next offset, and a
/// damaged length in the batch before it that lands on that batch: a read
/// stepping over the damaged batch by its header must not return the forged
/// record.
#[test]
fn a_batch_forged_in_a_value_is_not_read_as_one() {
    let value_of = |o: u64| format!("{o}").into_bytes();
    // The forged batch: offset 41, value "FAKE", as a log would hold it.
    let forger = tempfile::tempdir().unwrap();
    let p = Partition::open(forger.path(), opts()).unwrap();
    for o in 0..41 {
        p.append(&[Record::new(value_of(o))]).unwrap();
    }
    p.append(&[Record::new(&b"FAKE"[..])]).unwrap();
    p.close().unwrap();
    let bytes = std::fs::read(&common::log_files(forger.path())[0]).unwrap();
    let last = *common::stored_batches(&bytes).last().unwrap();
    let forged = bytes[last.pos..last.pos + last.len].to_vec();

    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), opts()).unwrap();
    for o in 0..41 {
        p.append(&[Record::new(value_of(o))]).unwrap();
    }
    p.append(&[Record::new(forged.clone())]).unwrap();
    for o in 42..60 {
        p.append(&[Record::new(value_of(o))]).unwrap();
    }
    p.roll().unwrap();
    p.append(&[Record::new(&b"x"[..])]).unwrap();
    p.close().unwrap();
    let log = common::log_files(dir.path())[0].clone();
    let bytes = std::fs::read(&log).unwrap();
    let before = common::stored_batches(&bytes)[40].pos;
    let forged_at = bytes.windows(forged.len()).position(|w| w == &forged[..]).unwrap();
    // Batch 40's length, damaged to reach the forged batch.
    let mut damaged = bytes.clone();
    damaged[before + 4..before + 8].copy_from_slice(&((forged_at - before) as u32).to_le_bytes());
    std::fs::write(&log, &damaged).unwrap();

    let p = Partition::open(dir.path(), opts()).unwrap();
    match p.read(41, 1 << 20) {
        Err(_) => {}
        Ok(read) => {
            let r = read[0].records().next().unwrap().unwrap();
            assert_ne!(r.value.as_deref(), Some(&b"FAKE"[..]), "the forged record was read as offset {}", r.offset);
        }
    }
}
