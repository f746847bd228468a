//! Storage-core benchmarks, each next to its baseline in the same run.
//!
//! `cargo bench -p streamlog-bench --bench storage` (add `-- append` or `-- read` to filter).
//! Before each measured loop a few hundred MiB of memory are touched and
//! freed, so the page cache pages the loop faults in come from recently used
//! ("warm") memory; see the README on memory temperature.
//! `STREAMLOG_BENCH_COLD=1` skips that step.

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use streamlog::{Batch, Partition, PartitionOptions, Record};

/// Touches `bytes` of fresh memory, then frees it. `STREAMLOG_BENCH_COLD=1`
/// skips this, to measure the cold-memory regime (or to profile).
#[inline(never)]
fn warm_memory(bytes: usize) {
    if std::env::var_os("STREAMLOG_BENCH_COLD").is_some() {
        return;
    }
    let mut v = vec![0u8; bytes];
    for chunk in v.chunks_mut(4096) {
        chunk[0] = 1;
    }
    black_box(&v);
}

fn records(value_len: usize, n: usize) -> Vec<Record> {
    let value = Bytes::from(vec![0xab; value_len]);
    (0..n).map(|i| Record::new(value.clone()).with_timestamp(1_700_000_000_000 + i as i64)).collect()
}

/// Bytes one record takes in a batch of `n` (header shared).
fn encoded_size(value_len: usize, n: usize) -> usize {
    batch_bytes(value_len, n) / n
}

/// Bytes a batch of `n` records of `value_len` bytes takes in the log.
fn batch_bytes(value_len: usize, n: usize) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), PartitionOptions::default()).unwrap();
    p.append(&records(value_len, n)).unwrap();
    p.size_in_bytes().unwrap() as usize
}

/// Times `iters` appends of `batch` (`bytes` in the log) into a fresh
/// partition.
fn time_appends(batch: &[Record], bytes: usize, iters: u64) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), PartitionOptions::default()).unwrap();
    // Outside the timing: the first change to a new log removes its clean
    // marker and syncs the directory (milliseconds when the disk is busy,
    // which swamped short samples).
    p.append(batch).unwrap();
    warm_memory((iters as usize * bytes).clamp(64 << 20, 2 << 30));
    let start = Instant::now();
    for _ in 0..iters {
        black_box(p.append(batch).unwrap());
    }
    let t = start.elapsed();
    drop(p);
    t
}

/// Times `iters` `write(2)` calls of `chunk` to a fresh file.
fn time_writes(chunk: &[u8], iters: u64) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let mut f = File::create(dir.path().join("raw")).unwrap();
    warm_memory((iters as usize * chunk.len()).clamp(64 << 20, 2 << 30));
    let start = Instant::now();
    for _ in 0..iters {
        f.write_all(chunk).unwrap();
    }
    start.elapsed()
}

/// Times writing `iters * bytes` bytes to a fresh file with `write(2)` in
/// 64 KiB chunks (the last one shorter).
fn time_chunked_writes(bytes: usize, iters: u64) -> Duration {
    const CHUNK: usize = 64 << 10;
    let dir = tempfile::tempdir().unwrap();
    let mut f = File::create(dir.path().join("raw")).unwrap();
    let chunk = vec![0xab; CHUNK];
    let total = iters as usize * bytes;
    warm_memory(total.clamp(64 << 20, 2 << 30));
    let start = Instant::now();
    let mut left = total;
    while left > 0 {
        let n = left.min(CHUNK);
        f.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    start.elapsed()
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));

    // 100 B records, one per call.
    let one = records(100, 1);
    let size = encoded_size(100, 1);
    g.throughput(Throughput::Elements(1));
    g.bench_function("100B_one_per_call/streamlog", |b| b.iter_custom(|n| time_appends(&one, size, n)));
    let chunk = vec![0xab; size];
    g.bench_function(BenchmarkId::new("100B_one_per_call/write(2)", format!("{size}B")), |b| {
        b.iter_custom(|n| time_writes(&chunk, n))
    });

    // Batched, as issue 16 defines it: `per_call` records of `value_len`
    // bytes in one `Partition::append`, against `write(2)` of the same
    // number of bytes in 64 KiB chunks.
    for (per_call, value_len, name) in [(64usize, 1024usize, "64x1KiB"), (1000, 100, "1000x100B")] {
        let batch = records(value_len, per_call);
        let bytes = batch_bytes(value_len, per_call);
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_function(format!("{name}_per_call/streamlog"), |b| b.iter_custom(|n| time_appends(&batch, bytes, n)));
        g.bench_function(format!("{name}_per_call/write(2)_64KiB"), |b| {
            b.iter_custom(|n| time_chunked_writes(bytes, n))
        });
    }
    g.finish();
}

/// A partition holding `total` records of `value_len` bytes.
fn filled(dir: &Path, value_len: usize, total: usize) -> Partition {
    let p = Partition::open(dir, PartitionOptions::default()).unwrap();
    let per_batch = (64 << 10) / (value_len + 10);
    let batch = records(value_len, per_batch);
    while (p.high_watermark() as usize) < total {
        p.append(&batch).unwrap();
    }
    p
}

/// What every read variant does with a value: reads each of its bytes (a
/// wrapping byte sum, which the compiler vectorizes, so the parse and not
/// the sum is what is measured).
#[inline(always)]
fn touch(v: &[u8]) -> u64 {
    u64::from(v.iter().fold(0u8, |a, &b| a.wrapping_add(b))) + v.len() as u64
}

/// A uvarint as the log stores it (docs/FORMAT.md), for the baselines.
#[inline(always)]
fn uvarint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let x = *b.get(*at)?;
        *at += 1;
        v |= u64::from(x & 0x7f) << shift;
        if x < 0x80 {
            return Some(v);
        }
    }
    None
}

/// A length-prefixed optional field (`len + 1`, 0 = null).
#[inline(always)]
fn opt<'a>(b: &'a [u8], at: &mut usize) -> Option<Option<&'a [u8]>> {
    let n = uvarint(b, at)? as usize;
    if n == 0 {
        return Some(None);
    }
    let v = b.get(*at..*at + n - 1)?;
    *at += n - 1;
    Some(Some(v))
}

const BATCH_HEADER_LEN: usize = 44;

/// The baselines' per-batch parse: the batch's CRC (if `crc`), then each
/// record's length, attributes, timestamp and offset deltas, key, value and
/// header count, touching every value byte. Returns the records, or `None`
/// when `buf` does not start with a whole batch.
#[inline(always)]
fn parse_batch(buf: &[u8], crc: bool, sum: &mut u64) -> Option<(usize, u64)> {
    let len = u32::from_le_bytes(buf.get(4..8)?.try_into().unwrap()) as usize;
    if len < BATCH_HEADER_LEN || buf.len() < len {
        return None;
    }
    let batch = &buf[..len];
    if crc {
        let stored = u32::from_le_bytes(batch[0..4].try_into().unwrap());
        assert_eq!(crc32fast::hash(&batch[4..]), stored, "checksum");
    }
    let count = u32::from_le_bytes(batch[40..44].try_into().unwrap());
    let mut at = BATCH_HEADER_LEN;
    for _ in 0..count {
        let body = uvarint(batch, &mut at)? as usize;
        let end = at + body;
        let rec = batch.get(..end)?;
        assert_eq!(rec[at], 0, "attributes");
        at += 1;
        let _ts = uvarint(rec, &mut at)?;
        let _delta = uvarint(rec, &mut at)?;
        let _key = opt(rec, &mut at)?;
        if let Some(v) = opt(rec, &mut at)? {
            *sum += touch(v);
        }
        let headers = uvarint(rec, &mut at)?;
        assert_eq!(headers, 0, "the bench writes no headers");
        assert_eq!(at, end, "record length");
    }
    Some((len, u64::from(count)))
}

/// Times reading at least `iters` records of `p` from `*next` on (wrapping
/// at `end`), a 1 MiB read at a time, each batch walked by `walk`, which
/// adds to the sum and returns how many records it read.
fn time_reads(p: &Partition, end: u64, next: &mut u64, iters: u64, walk: impl Fn(&Batch, &mut u64) -> u64) -> Duration {
    let start = Instant::now();
    let mut left = iters;
    let mut sum = 0u64;
    while left > 0 {
        if *next >= end {
            *next = 0;
        }
        for batch in p.read(*next, 1 << 20).unwrap() {
            left = left.saturating_sub(walk(&batch, &mut sum));
            *next = batch.next_offset();
        }
    }
    black_box(sum);
    start.elapsed()
}

fn read(c: &mut Criterion) {
    let mut g = c.benchmark_group("read");
    g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    for (value_len, total) in [(100usize, 4_000_000usize), (1024, 500_000)] {
        let dir = tempfile::tempdir().unwrap();
        let p = filled(dir.path(), value_len, total);
        let end = p.high_watermark();
        g.throughput(Throughput::Elements(1));
        // Owned records: each value a `Bytes` (a reference count per record).
        let mut next = 0u64;
        g.bench_function(format!("{value_len}B/streamlog_records"), |b| {
            b.iter_custom(|iters| {
                time_reads(&p, end, &mut next, iters, |batch, sum| {
                    let mut n = 0;
                    for rec in batch.records() {
                        *sum += touch(&rec.unwrap().value.unwrap());
                        n += 1;
                    }
                    n
                })
            })
        });
        // Borrowed views: slices of the batch, no reference count per record.
        let mut next = 0u64;
        g.bench_function(format!("{value_len}B/streamlog_views"), |b| {
            b.iter_custom(|iters| {
                time_reads(&p, end, &mut next, iters, |batch, sum| {
                    let mut n = 0;
                    for rec in batch.record_views() {
                        *sum += touch(rec.unwrap().value().unwrap());
                        n += 1;
                    }
                    n
                })
            })
        });

        // Baseline: read(2) of the same segment file in 1 MiB chunks into a
        // buffer, each batch's CRC checked and its records parsed as above.
        let size = p.size_in_bytes().unwrap() as usize;
        let path = dir.path().join("00000000000000000000.log");
        let mut file = File::open(&path).unwrap();
        let mut buf = vec![0u8; 2 << 20];
        let (mut filled, mut at, mut file_pos) = (0usize, 0usize, 0usize);
        g.bench_function(format!("{value_len}B/read(2)_1MiB"), |b| {
            b.iter_custom(|iters| {
                use std::io::{Read, Seek};
                let start = Instant::now();
                let mut left = iters;
                let mut sum = 0u64;
                while left > 0 {
                    match parse_batch(&buf[at..filled], true, &mut sum) {
                        Some((len, n)) => {
                            at += len;
                            left = left.saturating_sub(n);
                        }
                        None => {
                            // Keep the partial batch, then read the next chunk.
                            buf.copy_within(at..filled, 0);
                            filled -= at;
                            at = 0;
                            if file_pos >= size {
                                file.seek(std::io::SeekFrom::Start(0)).unwrap();
                                (filled, file_pos) = (0, 0);
                            }
                            let want = (1 << 20).min(size - file_pos);
                            let got = file.read(&mut buf[filled..filled + want]).unwrap();
                            assert!(got > 0);
                            filled += got;
                            file_pos += got;
                        }
                    }
                }
                black_box(sum);
                start.elapsed()
            })
        });

        // Ceilings: the same file through a plain read-only mapping, walked
        // batch by batch and record by record as above but without the CRC
        // (`bare_mmap_walk`), and summed byte by byte (`plain_mmap_sum`),
        // both counted per record.
        let bytes_per_record = (p.size_in_bytes().unwrap() / end) as usize;
        let file = File::open(&path).unwrap();
        // SAFETY: nothing writes the file while the benchmark maps it.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file).unwrap() };
        let mut at = 0usize;
        g.bench_function(format!("{value_len}B/bare_mmap_walk"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let mut left = iters;
                let mut sum = 0u64;
                while left > 0 {
                    match parse_batch(&map[at..size], false, &mut sum) {
                        Some((len, n)) => {
                            at += len;
                            left = left.saturating_sub(n);
                        }
                        None => at = 0,
                    }
                }
                black_box(sum);
                start.elapsed()
            })
        });
        let mut at = 0usize;
        g.bench_function(format!("{value_len}B/plain_mmap_sum"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let mut sum = 0u64;
                let mut left = iters as usize * bytes_per_record;
                while left > 0 {
                    if at >= size {
                        at = 0;
                    }
                    let n = left.min(size - at).min(1 << 20);
                    sum += touch(&map[at..at + n]);
                    at += n;
                    left -= n;
                }
                black_box(sum);
                start.elapsed()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, append, read);
criterion_main!(benches);
