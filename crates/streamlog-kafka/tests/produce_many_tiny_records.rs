//! A small compressed batch of a million tiny records, or of records with
//! many headers, is appended in bounded memory. Each record was decoded into an owned Kafka record and
//! then an owned streamlog record (about 300 B for 7 B on the wire), all of
//! a request's batches before any was appended: a batch of a few hundred
//! KB, compressed, held hundreds of MB (the one here: 1.4 MB), and a crafted one (256 MiB of such
//! records) some 10 GB.

mod common;

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip};
use streamlog::{Broker, BrokerOptions, TopicConfig};
use streamlog_kafka::ServerConfig;
use streamlog_kafka::internals::Dispatcher;

use common::*;

const RECORDS: usize = 1_000_000;

/// The process's peak resident memory in bytes (Linux), if known.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

#[test]
fn a_million_tiny_records_are_appended_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(Broker::open(dir.path(), BrokerOptions::default()).unwrap());
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let mut d = Dispatcher::new(Arc::clone(&broker), ServerConfig::default());
    let mut compressed = BytesMut::new();
    Gzip::compress(&mut compressed, |raw: &mut BytesMut| {
        for i in 0..RECORDS {
            raw.put_slice(&raw_record(i as i64, None, Some(b"v"), &[]));
        }
        Ok(())
    })
    .unwrap();
    let batch = raw_batch(&compressed, 1, RECORDS as i32, RECORDS as i32 - 1);
    assert!(batch.len() < 2 << 20, "{} bytes sent", batch.len());

    let before = peak_rss();
    assert_eq!(produce_raw(&mut d, "t", batch), 0);
    if let (Some(before), Some(after)) = (before, peak_rss()) {
        let grew = after.saturating_sub(before);
        assert!(grew < 100 << 20, "peak memory grew by {} MB", grew >> 20);
    }

    let log = broker.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(log.high_watermark(), RECORDS as u64);
    let (mut offset, mut batches) = (0, 0);
    while offset < RECORDS as u64 {
        for b in log.read(offset, 1 << 20).unwrap() {
            for r in b.records() {
                let r = r.unwrap();
                assert_eq!((r.offset, r.value.as_deref()), (offset, Some(&b"v"[..])));
                offset += 1;
            }
            batches += 1;
        }
    }
    // Appended in parts of 32,768 records.
    assert_eq!(batches, RECORDS.div_ceil(32 * 1024));
}

#[test]
fn records_with_many_headers_are_appended_in_parts_and_too_many_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(Broker::open(dir.path(), BrokerOptions::default()).unwrap());
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let mut d = Dispatcher::new(Arc::clone(&broker), ServerConfig::default());
    let log = broker.topic("t").unwrap().partition(0).unwrap();
    // Empty names and values: 2 bytes each on the wire.
    let many = vec![("", &b""[..]); 40_000];
    let records: Vec<u8> = (0..3).flat_map(|i| raw_record(i, None, Some(b"v"), &many)).collect();
    assert_eq!(produce_raw(&mut d, "t", raw_batch(&records, 0, 3, 2)), 0);
    // 64 Ki headers an append at most: the first two records, then the third.
    let batches = log.read(0, 1 << 30).unwrap();
    let counts: Vec<u32> = batches.iter().map(|b| b.record_count()).collect();
    assert_eq!(counts, [2, 1]);
    for b in &batches {
        for r in b.records() {
            assert_eq!(r.unwrap().headers.len(), 40_000);
        }
    }

    let too_many = raw_record(0, None, Some(b"v"), &vec![("", &b""[..]); 64 * 1024 + 1]);
    assert_eq!(produce_raw(&mut d, "t", raw_batch(&too_many, 0, 1, 0)), 2, "CORRUPT_MESSAGE");
    assert_eq!(log.high_watermark(), 3);
}
