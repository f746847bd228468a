//! Deleting a topic wakes the consumers waiting on it, whatever their
//! wakers do. A waker may run its task on the spot (nothing in `Waker`'s
//! contract forbids it), and the task call back into the broker: the delete
//! woke under the broker's admin lock, so a task that created a topic
//! deadlocked it. A waker may panic (a broken executor): the delete stopped
//! half done, the topic gone but its committed offsets kept, so a new topic
//! of the same name resumed at them.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use streamlog::{Broker, BrokerOptions, ConsumerConfig, ProducerRecord, TopicConfig, TopicPartition};

fn broker() -> (tempfile::TempDir, Arc<Broker>) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap());
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    (dir, broker)
}

#[test]
fn a_task_woken_by_the_delete_may_create_a_topic() {
    common::within(Duration::from_secs(20), || {
        let (_dir, broker) = broker();
        let mut consumer = broker.consumer(ConsumerConfig::default()).unwrap();
        consumer.assign(&[TopicPartition::new("t", 0)]).unwrap();
        let polls = Arc::new(AtomicUsize::new(0));
        // Each poll of the task creates a topic, then polls `recv`.
        let _task = common::InlineTask::spawn({
            let (broker, polls) = (Arc::clone(&broker), Arc::clone(&polls));
            async move {
                let mut recv = std::pin::pin!(consumer.recv());
                std::future::poll_fn(|cx| {
                    let n = polls.fetch_add(1, Ordering::SeqCst);
                    broker.create_topic(&format!("side-{n}"), TopicConfig::with_partitions(1)).unwrap();
                    recv.as_mut().poll(cx).map(|_| ())
                })
                .await
            }
        });
        assert_eq!(polls.load(Ordering::SeqCst), 1, "waiting in recv");
        broker.delete_topic("t").unwrap();
        assert!(polls.load(Ordering::SeqCst) > 1, "the delete woke the task, which ran inline");
        assert!(broker.topic("side-1").is_ok());
    });
}

struct Panics;

impl Wake for Panics {
    fn wake(self: Arc<Self>) {
        panic!("a broken waker");
    }
}

#[test]
fn a_waker_that_panics_does_not_leave_the_delete_half_done() {
    let (_dir, broker) = broker();
    broker.producer().send(ProducerRecord::new("t", &b"a"[..]).partition(0)).unwrap();
    let tp = TopicPartition::new("t", 0);
    let mut committer = broker.consumer(ConsumerConfig::with_group("g").enable_auto_commit(false)).unwrap();
    committer.assign(std::slice::from_ref(&tp)).unwrap();
    committer.commit_offsets(&[(tp.clone(), 1)]).unwrap();
    drop(committer);
    let mut waiting = broker.consumer(ConsumerConfig::default()).unwrap();
    waiting.assign(std::slice::from_ref(&tp)).unwrap();
    waiting.seek(&tp, 1).unwrap();
    let waker = Waker::from(Arc::new(Panics));
    let mut recv = Box::pin(waiting.recv());
    assert!(recv.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());

    let deleted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| broker.delete_topic("t")));
    assert!(deleted.is_err(), "the waker's panic goes on to the caller");
    drop(recv);
    assert!(broker.topic("t").is_err(), "gone");
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    assert_eq!(broker.group("g").committed().unwrap().get(&tp), None, "the old topic's commit forgotten");
}
