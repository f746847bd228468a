//! The consumer as an async source, on three executors (tokio's
//! multi-thread and current-thread runtimes, and `futures::executor`): the
//! library picks none. A pending `recv` is woken by the append (from another
//! thread), by a rebalance, a broker close, a topic delete or a wakeup;
//! dropping a pending future or a stream loses nothing; group duties work
//! for a consumer driven only through async.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use common::on_every_executor;
use futures_core::Stream;
use streamlog::{
    Broker, BrokerOptions, Consumer, ConsumerConfig, Error, ManualClock, OffsetReset, ProducerRecord,
    RebalanceListener, TopicConfig, TopicPartition,
};

/// The next item of a stream, without a `StreamExt`.
fn next<S: Stream + Unpin>(s: &mut S) -> impl Future<Output = Option<S::Item>> + '_ {
    std::future::poll_fn(move |cx| Pin::new(&mut *s).poll_next(cx))
}

/// Polls `f` once with a waker that does nothing.
fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
}

fn broker(opts: BrokerOptions) -> (tempfile::TempDir, Arc<Broker>) {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), opts.maintenance_interval(None)).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
    (dir, Arc::new(b))
}

fn assigned(b: &Broker) -> Consumer {
    let mut c = b.consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest)).unwrap();
    c.assign(&[TopicPartition::new("t", 0), TopicPartition::new("t", 1)]).unwrap();
    c
}

/// Sends `n` records to partition `p` from another thread after `delay`.
fn send_later(b: &Arc<Broker>, p: u32, n: usize, delay: Duration) -> std::thread::JoinHandle<()> {
    let b = Arc::clone(b);
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        let producer = b.producer();
        for i in 0..n {
            producer.send(ProducerRecord::new("t", format!("v{i}")).partition(p)).unwrap();
        }
    })
}

#[test]
fn recv_is_woken_by_an_append_from_another_thread() {
    on_every_executor(|| async {
        let (_dir, b) = broker(BrokerOptions::default());
        let mut c = assigned(&b);
        let t = send_later(&b, 1, 1, Duration::from_millis(50));
        let start = Instant::now();
        let records = c.recv().await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(40), "returned before the append");
        assert_eq!(records.len(), 1);
        assert_eq!((records[0].partition, records[0].value.as_deref()), (1, Some(&b"v0"[..])));
        t.join().unwrap();
    });
}

#[test]
fn the_stream_yields_every_record_in_order() {
    on_every_executor(|| async {
        let (_dir, b) = broker(BrokerOptions::default());
        let mut c = assigned(&b);
        let t = send_later(&b, 0, 2_000, Duration::from_millis(5));
        let mut s = c.stream();
        for i in 0..2_000u64 {
            let r = next(&mut s).await.unwrap().unwrap();
            assert_eq!((r.partition, r.offset), (0, i));
        }
        drop(s);
        t.join().unwrap();
        assert_eq!(c.position(&TopicPartition::new("t", 0)).unwrap(), 2_000);
    });
}

#[test]
fn dropping_a_pending_recv_or_a_stream_loses_nothing() {
    on_every_executor(|| async {
        let (_dir, b) = broker(BrokerOptions::default());
        let mut c = assigned(&b);
        // A recv dropped while it waits.
        let mut pending = c.recv();
        assert!(poll_once(&mut pending).is_pending());
        drop(pending);
        let producer = b.producer();
        for i in 0..10 {
            producer.send(ProducerRecord::new("t", format!("v{i}")).partition(0)).unwrap();
        }
        // A stream dropped with records fetched and not yielded.
        let mut s = c.stream();
        let first = next(&mut s).await.unwrap().unwrap();
        assert_eq!(first.offset, 0);
        assert_eq!(s.size_hint().0, 9);
        drop(s);
        assert_eq!(c.position(&TopicPartition::new("t", 0)).unwrap(), 1);
        // The rest, through the async and then the blocking path.
        let rest = c.recv().await.unwrap();
        assert_eq!(rest.iter().map(|r| r.offset).collect::<Vec<_>>(), (1..10).collect::<Vec<_>>());
        producer.send(ProducerRecord::new("t", "blocking").partition(1)).unwrap();
        let got = c.poll(Duration::from_secs(5)).unwrap();
        assert_eq!(got[0].value.as_deref(), Some(&b"blocking"[..]));
    });
}

/// Records of both partitions fetched by one step: dropping the stream
/// after one was yielded puts each partition back at its first record not
/// yielded.
#[test]
fn dropping_a_stream_gives_back_every_partitions_records() {
    on_every_executor(|| async {
        let (_dir, b) = broker(BrokerOptions::default());
        let mut c = assigned(&b);
        let producer = b.producer();
        for p in [0, 1] {
            for i in 0..5 {
                producer.send(ProducerRecord::new("t", format!("v{i}")).partition(p)).unwrap();
            }
        }
        let mut s = c.stream();
        let first = next(&mut s).await.unwrap().unwrap();
        assert_eq!(s.size_hint().0, 9, "both partitions' records in one step");
        drop(s);
        let (yielded, other) = (first.partition, 1 - first.partition);
        assert_eq!(c.position(&TopicPartition::new("t", yielded)).unwrap(), 1);
        assert_eq!(c.position(&TopicPartition::new("t", other)).unwrap(), 0);
        let mut rest = Vec::new();
        while rest.len() < 9 {
            rest.extend(c.recv().await.unwrap().into_iter().map(|r| (r.partition, r.offset)));
        }
        rest.sort();
        let mut want: Vec<_> = (1..5).map(|o| (yielded, o)).chain((0..5).map(|o| (other, o))).collect();
        want.sort();
        assert_eq!(rest, want);
    });
}

#[test]
fn a_pending_recv_returns_on_wakeup_close_and_delete() {
    on_every_executor(|| async {
        // Wakeup from another thread.
        let (_dir, b) = broker(BrokerOptions::default());
        let mut c = assigned(&b);
        let handle = c.wakeup_handle();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            handle.wakeup();
        });
        assert!(matches!(c.recv().await, Err(Error::Wakeup)));
        t.join().unwrap();
        // Topic deleted.
        let b2 = Arc::clone(&b);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            b2.delete_topic("t").unwrap();
        });
        assert!(matches!(c.recv().await, Err(Error::UnknownTopic { .. })));
        t.join().unwrap();
        // Broker closed: the stream reports it, then ends.
        b.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
        let mut c = assigned(&b);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            Arc::into_inner(b).expect("the only handle").close().unwrap();
        });
        let mut s = c.stream();
        assert!(matches!(next(&mut s).await, Some(Err(Error::Closed))));
        assert!(next(&mut s).await.is_none());
        t.join().unwrap();
    });
}

struct Count(Arc<AtomicUsize>, Arc<AtomicUsize>);
impl RebalanceListener for Count {
    fn on_partitions_revoked(&mut self, p: &[TopicPartition]) {
        self.0.fetch_add(p.len(), Ordering::SeqCst);
    }
    fn on_partitions_assigned(&mut self, p: &[TopicPartition]) {
        self.1.fetch_add(p.len(), Ordering::SeqCst);
    }
}

#[test]
fn a_group_member_driven_only_by_async_rebalances_commits_and_stays_alive() {
    on_every_executor(|| async {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let (_dir, b) = broker(BrokerOptions::default().clock(clock.clone()));
        let cfg = || {
            ConsumerConfig::with_group("g")
                .auto_offset_reset(OffsetReset::Earliest)
                .max_poll_interval(Duration::from_secs(10))
                .auto_commit_interval(Duration::from_millis(1))
        };
        let (revoked, assigned) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut c1 = b.consumer(cfg()).unwrap();
        c1.subscribe_with(&["t"], Box::new(Count(revoked.clone(), assigned.clone()))).unwrap();
        b.producer().send(ProducerRecord::new("t", "a").partition(0)).unwrap();
        b.producer().send(ProducerRecord::new("t", "b").partition(1)).unwrap();
        let mut got = 0;
        while got < 2 {
            got += c1.recv().await.unwrap().len();
        }
        assert_eq!(assigned.load(Ordering::SeqCst), 2);

        // Pending in recv, then the clock moves past a quarter of the poll
        // interval (not past the interval: a member whose future nobody
        // polls before its deadline expires, by design, and the second
        // member's joining raced the first's renewal, 1 run in 6 here): a
        // second member joining makes it revoke one partition inside the
        // pending recv (woken by the rebalance, renewing its deadline), and
        // its next recv's first step auto-committed what the first returned.
        let b2 = Arc::clone(&b);
        let clock2 = clock.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            clock2.advance(Duration::from_secs(5));
            let mut c2 = b2.consumer(cfg()).unwrap();
            c2.subscribe(&["t"]).unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while c2.assignment().len() != 1 {
                assert!(Instant::now() < deadline, "c2 never got its partition");
                c2.poll(Duration::from_millis(10)).unwrap();
            }
            let p = c2.assignment()[0].partition;
            b2.producer().send(ProducerRecord::new("t", "for c1").partition(1 - p)).unwrap();
            c2
        });
        let records = c1.recv().await.unwrap();
        let c2 = t.join().unwrap();
        assert_eq!(records[0].value.as_deref(), Some(&b"for c1"[..]));
        assert_eq!(c1.assignment().len(), 1, "c1 kept one partition");
        assert!(revoked.load(Ordering::SeqCst) >= 1);
        let group = b.describe_group("g").unwrap();
        assert_eq!(group.members.len(), 2, "c1 stayed a member: {group:?}");
        for p in 0..2 {
            assert_eq!(c1.committed(&TopicPartition::new("t", p)).unwrap(), Some(1));
        }
        drop(c2);
    });
}
