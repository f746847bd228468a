//! `WakeupHandle::wakeup` wakes an async consumer whose executor polls the
//! task inside `wake`; the task, its `recv` ended by the wakeup, goes on
//! with a blocking `poll`, which rebinds the consumer's waiter to the
//! thread. `wakeup` held the lock on that waiter while it woke it, so the
//! rebinding deadlocked on the waking thread.

mod common;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use streamlog::{Broker, ConsumerConfig, Error, OffsetReset, TopicConfig, TopicPartition};

#[test]
fn a_wakeup_whose_waker_polls_the_consumer_inline_does_not_deadlock() {
    common::within(Duration::from_secs(20), || {
        let broker = Broker::temporary().unwrap();
        broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
        let mut c = broker.consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest)).unwrap();
        c.assign(&[TopicPartition::new("t", 0)]).unwrap();
        let handle = c.wakeup_handle();
        let outcome: Arc<Mutex<Option<(bool, usize)>>> = Arc::default();
        let task = common::InlineTask::spawn({
            let outcome = Arc::clone(&outcome);
            async move {
                let woken = matches!(c.recv().await, Err(Error::Wakeup));
                let polled = c.poll(Duration::ZERO).unwrap().len();
                *outcome.lock() = Some((woken, polled));
            }
        });
        assert!(outcome.lock().is_none(), "nothing to receive yet");
        handle.wakeup();
        assert_eq!(*outcome.lock(), Some((true, 0)));
        task.cancel();
    });
}
