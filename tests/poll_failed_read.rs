//! A read that fails part-way through a partition leaves nothing behind for
//! the next partition of the same poll: the consumer reuses one vector for
//! the batches it reads, and a damaged batch after good ones once left the
//! good ones there, returned next time labelled as the other partition's.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use streamlog::{Broker, BrokerOptions, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig, TopicPartition};

fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    out.sort();
    out
}

#[test]
fn a_failed_read_leaves_no_batch_for_the_next_partition() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || BrokerOptions::default().maintenance_interval(None);
    let broker = Broker::open(dir.path(), opts()).unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(2).segment_bytes(16 << 10)).unwrap();
    let producer = broker.producer();
    for i in 0..400u32 {
        producer.send(ProducerRecord::new("t", vec![i as u8; 100]).partition(0)).unwrap();
    }
    producer.send(ProducerRecord::new("t", "only").partition(1)).unwrap();
    drop(producer);
    broker.close().unwrap();

    // A bit flipped halfway into t-0's first (sealed) segment: the batches
    // before it read fine, the one holding it fails its checksum.
    let segments = log_files(&dir.path().join("topics").join("t").join("0"));
    assert!(segments.len() >= 2, "a sealed first segment: {segments:?}");
    let at = std::fs::metadata(&segments[0]).unwrap().len() / 2;
    let f = OpenOptions::new().read(true).write(true).open(&segments[0]).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x20], at).unwrap();
    drop(f);

    let broker = Broker::open(dir.path(), opts()).unwrap();
    let mut consumer = broker.consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest)).unwrap();
    consumer.assign(&[TopicPartition::new("t", 0), TopicPartition::new("t", 1)]).unwrap();
    let mut errors = 0;
    let mut from_t1 = Vec::new();
    for _ in 0..6 {
        match consumer.poll(Duration::ZERO) {
            Ok(records) => {
                for r in records {
                    if r.partition == 1 {
                        from_t1.push((r.offset, r.value.unwrap().len()));
                    } else {
                        assert!(r.offset < 400);
                    }
                }
            }
            Err(e) => {
                assert!(matches!(e, streamlog::Error::Corrupt { .. }), "{e:?}");
                errors += 1;
            }
        }
    }
    assert!(errors > 0, "the damaged batch is reported");
    // (offset, value length): t-1 holds one record, "only".
    assert_eq!(from_t1, vec![(0, 4)]);
}
