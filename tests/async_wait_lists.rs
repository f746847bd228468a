//! A pending `recv` stays on the wait lists of the partitions it reads
//! across wake-ups, and follows its assignment: a member that takes over a
//! partition from one that left, while its `recv` is pending, is woken by
//! the next append to that partition (it joined its wait list), not only
//! by appends to the partition it had.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::within;
use futures_executor::block_on;
use streamlog::{Broker, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig};

#[test]
fn a_pending_recv_is_woken_by_a_partition_it_took_over_while_waiting() {
    let broker = Arc::new(Broker::temporary().unwrap());
    broker.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    // No auto-commit and long intervals: no timer wakes the pending recv
    // within the test's limit; only a wait list can.
    let config = || {
        ConsumerConfig::with_group("g")
            .auto_offset_reset(OffsetReset::Earliest)
            .enable_auto_commit(false)
            .max_poll_interval(Duration::from_secs(300))
    };
    let mut first = broker.consumer(config()).unwrap();
    first.subscribe(&["t"]).unwrap();
    let mut second = broker.consumer(config()).unwrap();
    second.subscribe(&["t"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while first.assignment().len() != 1 || second.assignment().len() != 1 {
        assert!(Instant::now() < deadline, "the two members never split the partitions");
        first.poll(Duration::from_millis(10)).unwrap();
        second.poll(Duration::from_millis(10)).unwrap();
    }
    let taken_over = second.assignment()[0].partition;
    let waiting = std::thread::spawn(move || {
        let records = block_on(first.recv()).unwrap();
        (records[0].partition, first.assignment().len())
    });
    // The recv is pending on its own partition; the second member leaves,
    // and the rebalance wakes it to take the other one.
    std::thread::sleep(Duration::from_millis(100));
    drop(second);
    std::thread::sleep(Duration::from_millis(300));
    broker.producer().send(ProducerRecord::new("t", "for the first").partition(taken_over)).unwrap();
    let (partition, assigned) = within(Duration::from_secs(10), move || waiting.join().unwrap());
    assert_eq!((partition, assigned), (taken_over, 2));
}
