//! `inspect::PartitionFiles` following a log that another handle appends to
//! and rolls: every record exactly once, in order, read with pread while the
//! writer works (the read resumes where the last one stopped).

use streamlog::inspect::DataDir;
use streamlog::{Broker, BrokerOptions, ProducerRecord, TopicConfig};

#[test]
fn a_follower_sees_every_record_once_across_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(1).segment_bytes(8192).index_interval_bytes(512)).unwrap();
    let producer = broker.producer();
    let data = DataDir::open(dir.path()).unwrap();
    let mut files = data.partition("t", 0).unwrap();
    let (mut next, mut sent) = (0u64, 0u64);
    for round in 0..200 {
        for _ in 0..(round % 7) {
            producer.send(ProducerRecord::new("t", format!("value-{sent}")).partition(0)).unwrap();
            sent += 1;
        }
        // Small reads, so that a read stops inside the active segment.
        loop {
            let batches = files.read(next, 64).unwrap();
            if batches.is_empty() {
                break;
            }
            for b in &batches {
                for r in b.try_records().unwrap() {
                    assert_eq!(r.offset, next, "round {round}");
                    assert_eq!(r.value.as_deref(), Some(format!("value-{next}").as_bytes()));
                    next += 1;
                }
            }
        }
        if round % 10 == 0 {
            files.refresh().unwrap();
        }
    }
    files.refresh().unwrap();
    while let Some(b) = files.read(next, 1 << 20).unwrap().last() {
        next = b.next_offset();
    }
    assert_eq!(next, sent);
    assert!(files.segments().len() > 3, "the log rolled: {}", files.segments().len());
    // A read from the start still works (the hint is only for the tail).
    assert_eq!(files.read(0, 1).unwrap()[0].base_offset(), 0);
}
