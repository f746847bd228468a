//! A group member driven by async whose executor polls the task inside
//! `wake` (legal: nothing in `Waker`'s contract forbids it, and some
//! executors do): the coordinator wakes the member when another joins or
//! leaves, and the task, polled on the spot, calls back into the group
//! (its `recv` syncs with the group; then it describes the group, which
//! takes the registry's lock and the group's). Woken under either lock,
//! the task would deadlock on it: the group's mutex is not reentrant.

mod common;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use streamlog::{Broker, BrokerOptions, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig};

/// A batch's values, and the group's member count right after.
type Received = (Vec<Vec<u8>>, usize);

#[test]
fn a_member_whose_waker_polls_its_task_inline_survives_joins_and_leaves() {
    common::within(Duration::from_secs(20), || {
        let dir = tempfile::tempdir().unwrap();
        let broker = Arc::new(Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap());
        broker.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
        let config = ConsumerConfig::with_group("g").auto_offset_reset(OffsetReset::Earliest);

        // Member A, alone in the group (both partitions), waits in `recv`;
        // each batch it gets, it reports with the group's member count.
        let mut a = broker.consumer(config.clone()).unwrap();
        a.subscribe(&["t"]).unwrap();
        let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
        let task = common::InlineTask::spawn({
            let (broker, seen) = (Arc::clone(&broker), Arc::clone(&seen));
            async move {
                loop {
                    let records = a.recv().await.unwrap();
                    let members = broker.describe_group("g").unwrap().members.len();
                    let values = records.into_iter().map(|r| r.value.unwrap().to_vec()).collect();
                    seen.lock().push((values, members));
                }
            }
        });
        assert!(seen.lock().is_empty(), "nothing to receive yet");

        // B joins: the group wakes A (its next poll is its rejoin), whose
        // task, polled inside the wake, syncs with the group.
        let polls = task.polls();
        let mut b = broker.consumer(config).unwrap();
        b.subscribe(&["t"]).unwrap();
        assert!(task.polls() > polls, "A's task was not polled from the join's wake-up");
        b.poll(Duration::ZERO).unwrap();
        let theirs = b.assignment();
        assert_eq!(theirs.len(), 1, "B took its partition from A: {theirs:?}");
        assert_eq!(broker.describe_group("g").unwrap().members.len(), 2);

        // A record in B's partition; B leaves without reading it. The
        // group wakes A (B's partition is free, the group rebalances);
        // A's task, polled inside that wake, takes the partition, receives
        // the record and describes the group.
        let producer = broker.producer();
        producer.send(ProducerRecord::new("t", "left behind").partition(theirs[0].partition)).unwrap();
        let polls = task.polls();
        b.unsubscribe().unwrap();
        assert!(task.polls() > polls, "A's task was not polled from the leave's wake-up");
        assert_eq!(*seen.lock(), vec![(vec![b"left behind".to_vec()], 1)]);

        task.cancel();
        drop(b);
    });
}
