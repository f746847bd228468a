//! A group member dropped while a panic unwinds (its processing failed)
//! leaves the group, but commits nothing and does not call its rebalance
//! listener: the positions are past records whose processing panicked
//! (committed, they would be lost under at-least-once), and a listener
//! that panics in turn (a mutex the panic poisoned) would abort the process.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use streamlog::{
    Broker, BrokerOptions, ConsumerConfig, OffsetReset, ProducerRecord, RebalanceListener, TopicConfig, TopicPartition,
};

struct Counting(Arc<AtomicUsize>);

impl RebalanceListener for Counting {
    fn on_partitions_revoked(&mut self, _partitions: &[TopicPartition]) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_consumer_dropped_by_a_panic_leaves_without_committing() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    let p = b.producer();
    let send = |from: u32| {
        for i in from..from + 10 {
            p.send(ProducerRecord::new("t", i.to_string())).unwrap();
        }
    };
    send(0);
    // Auto-commit on, but not due by time during the test: only a close
    // (or a revocation) would commit.
    let config = ConsumerConfig::with_group("g")
        .auto_offset_reset(OffsetReset::Earliest)
        .auto_commit_interval(Duration::from_secs(3600));
    let mut consumer = b.consumer(config).unwrap();
    let revoked = Arc::new(AtomicUsize::new(0));
    consumer.subscribe_with(&["t"], Box::new(Counting(Arc::clone(&revoked)))).unwrap();
    assert_eq!(consumer.poll(Duration::from_secs(5)).unwrap().len(), 10);
    consumer.commit().unwrap();
    send(10);
    let outcome = catch_unwind(AssertUnwindSafe(move || {
        let records = consumer.poll(Duration::from_secs(5)).unwrap();
        assert_eq!(records[0].offset, 10);
        panic!("processing offset 10 failed");
    }));
    assert!(outcome.is_err());
    let tp = TopicPartition::new("t", 0);
    assert_eq!(b.group("g").committed().unwrap().get(&tp), Some(&10), "the failed records are read again");
    assert_eq!(revoked.load(Ordering::SeqCst), 0, "no listener call while unwinding");
    // It left: its partition is free for the next member at once.
    assert!(b.describe_group("g").unwrap().members.is_empty());
    let mut next = b.consumer(ConsumerConfig::with_group("g")).unwrap();
    next.subscribe(&["t"]).unwrap();
    let records = next.poll(Duration::from_secs(5)).unwrap();
    assert_eq!((records.len(), records[0].offset), (10, 10));
}
