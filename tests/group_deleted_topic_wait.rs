//! A member whose target still names a deleted topic (the group has yet to
//! rebalance: another member has not polled since) waits in `poll` and
//! `recv` like any member with nothing to read. It used to take the
//! deleted partition, fail to find its topic and give it back, which woke
//! every member, itself included: `poll` spun a core and `recv` never
//! returned `Pending` until the rebalance deadline.

use std::time::{Duration, Instant};

use streamlog::{Broker, BrokerOptions, Consumer, ConsumerConfig, Error, OffsetReset, TopicConfig};

/// Two members of a group on topics `a` and `b`, each holding a partition
/// of both; then `b` is deleted and the first member has been told so.
/// The second member does not poll again: the rebalance waits for it.
fn members_after_delete() -> (tempfile::TempDir, Broker, Consumer, Consumer) {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap();
    for t in ["a", "b"] {
        b.create_topic(t, TopicConfig::with_partitions(2)).unwrap();
    }
    let cfg = || {
        ConsumerConfig::with_group("g")
            .auto_offset_reset(OffsetReset::Earliest)
            .rebalance_timeout(Duration::from_secs(5))
    };
    let (mut one, mut two) = (b.consumer(cfg()).unwrap(), b.consumer(cfg()).unwrap());
    one.subscribe(&["a", "b"]).unwrap();
    two.subscribe(&["a", "b"]).unwrap();
    for _ in 0..4 {
        one.poll(Duration::ZERO).unwrap();
        two.poll(Duration::ZERO).unwrap();
    }
    assert_eq!((one.assignment().len(), two.assignment().len()), (2, 2));
    b.delete_topic("b").unwrap();
    assert!(matches!(one.poll(Duration::ZERO), Err(Error::UnknownTopic { .. })));
    (dir, b, one, two)
}

/// CPU time of the calling thread.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) }, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[test]
fn poll_parks_while_the_target_names_a_deleted_topic() {
    let (_dir, _b, mut one, _two) = members_after_delete();
    let cpu = thread_cpu_time();
    assert!(one.poll(Duration::from_millis(300)).unwrap().is_empty());
    let spent = thread_cpu_time() - cpu;
    assert!(spent < Duration::from_millis(100), "poll spun for {spent:?} of CPU in 300 ms");
}

#[test]
fn recv_yields_to_other_tasks_while_the_target_names_a_deleted_topic() {
    let (_dir, _b, mut one, _two) = members_after_delete();
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let start = Instant::now();
    let (timed_out, other_ran_at) = rt.block_on(async {
        let other = tokio::spawn(async move { start.elapsed() });
        let timed_out = tokio::time::timeout(Duration::from_millis(200), one.recv()).await.is_err();
        (timed_out, other.await.unwrap())
    });
    assert!(timed_out, "no records to return");
    // Before, the task ran only once the rebalance timed out (5 s).
    assert!(other_ran_at < Duration::from_secs(2), "the other task waited {other_ran_at:?}");
    assert!(start.elapsed() < Duration::from_secs(2), "recv kept the thread {:?}", start.elapsed());
}
