//! A batching producer, as Kafka users know it: sends from any number of
//! threads or tasks are gathered and appended per partition as one batch
//! (`linger.ms`, `batch.size`), each send returns a delivery future (a
//! delivery report), `flush` waits for everything sent, and a bounded buffer
//! (`queue.buffering.max.messages`) pushes back.
//!
//! One background thread per batching producer (`streamlog-batch`, joined
//! on close or when the last clone is dropped) takes the whole buffer at
//! once and appends it; senders only push onto it under a short lock.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::broker::BrokerState;
use crate::client::producer::{CachedTopic, Producer, ProducerConfig, ProducerRecord, RecordMetadata};
use crate::error::{Error, Result};
use crate::log::record::Record;

/// Options of a [`BatchingProducer`].
#[derive(Debug, Clone)]
pub struct BatchingConfig {
    /// How the records are placed. Default: [`ProducerConfig::default`].
    pub producer: ProducerConfig,
    /// How long a record may wait for others to join its batch (Kafka's
    /// `linger.ms`). Default: 5 ms.
    pub linger: Duration,
    /// Buffered bytes (keys and values) that send the batch without waiting
    /// for `linger` (Kafka's `batch.size`, here over all partitions), and
    /// the most bytes appended to one partition in one batch. Default: 256 KiB.
    pub batch_size: usize,
    /// Records buffered or being appended, at most (Kafka's
    /// `queue.buffering.max.messages`): a send beyond waits, or fails with
    /// [`Error::QueueFull`]. Default: 100,000.
    pub max_queued: usize,
}

impl Default for BatchingConfig {
    fn default() -> Self {
        BatchingConfig {
            producer: ProducerConfig::default(),
            linger: Duration::from_millis(5),
            batch_size: 256 << 10,
            max_queued: 100_000,
        }
    }
}

impl BatchingConfig {
    /// Sets `producer`: how records are placed (partitioner).
    #[must_use]
    pub fn producer(mut self, producer: ProducerConfig) -> Self {
        self.producer = producer;
        self
    }

    /// Sets `linger` (Kafka's `linger.ms`). Default: 5 ms.
    #[must_use]
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Sets `batch_size` in bytes (Kafka's `batch.size`). Default: 256 KiB.
    #[must_use]
    pub fn batch_size(mut self, bytes: usize) -> Self {
        self.batch_size = bytes;
        self
    }

    /// Sets `max_queued` in records (Kafka's `queue.buffering.max.messages`). Default: 100,000.
    #[must_use]
    pub fn max_queued(mut self, records: usize) -> Self {
        self.max_queued = records;
        self
    }

    /// Checks the options: [`Error::InvalidConfig`] when `batch_size` or `max_queued` is 0.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 || self.max_queued == 0 {
            return Err(Error::InvalidConfig("batch_size and max_queued must be at least 1".into()));
        }
        Ok(())
    }
}

/// The offset slot of a record whose append failed.
const FAILED: u64 = u64::MAX;

/// The outcome of one drained buffer, shared by its records' futures.
#[derive(Default)]
struct Delivery {
    state: Mutex<DeliveryState>,
}

#[derive(Default)]
struct DeliveryState {
    done: bool,
    /// Per record in the buffer: (its group, its offset).
    slots: Vec<(u32, u64)>,
    /// Per (topic, partition) appended: the name, the partition, and the
    /// error if its append failed.
    groups: Vec<(Arc<str>, u32, Option<Arc<Error>>)>,
    wakers: Vec<Waker>,
}

/// The buffer the senders fill and the background thread drains.
struct Queue {
    records: Vec<Record>,
    /// Per record: (index in `topics`, partition).
    targets: Vec<(u32, u32)>,
    topics: Vec<Arc<CachedTopic>>,
    /// The delivery of the records in the buffer now.
    delivery: Arc<Delivery>,
    bytes: usize,
    /// When the first record of the buffer came.
    opened: Option<Instant>,
    /// Records buffered or being appended.
    in_flight: usize,
    /// Records sent and records delivered, ever: `flush` waits for the
    /// second to reach what the first was.
    sent: u64,
    delivered: u64,
    /// A `flush` waits for records up to this.
    flush_to: u64,
    closing: bool,
    /// Async sends waiting for room.
    room_wakers: Vec<Waker>,
    /// Emptied buffers with their capacity, for the next fill (growing a
    /// fresh one faults in new pages on every pass).
    spare: (Vec<Record>, Vec<(u32, u32)>),
}

struct Shared {
    queue: Mutex<Queue>,
    /// The background thread waits here for records (or the end of linger).
    work: Condvar,
    /// Blocking sends wait here for room, `flush` for deliveries.
    progress: Condvar,
    config: BatchingConfig,
}

/// Joins the background thread when the last clone goes.
struct Handle {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.queue.lock().closing = true;
        self.shared.work.notify_all();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

/// A producer that gathers records from many threads or tasks and appends
/// them per partition as one batch. `Send + Sync + Clone`: clones share the
/// buffer and its thread; give each thread its own clone (each caches its
/// topic lookups). Records of one partition keep the order of their sends
/// (from one thread; sends racing from several threads are ordered as they
/// reach the buffer).
///
/// ```
/// use streamlog::{BatchingConfig, Broker, BrokerOptions, ProducerRecord, TopicConfig};
/// let dir = tempfile::tempdir()?;
/// let broker = Broker::open(dir.path(), BrokerOptions::default())?;
/// broker.create_topic("events", TopicConfig::with_partitions(4))?;
/// let producer = broker.batching_producer(BatchingConfig::default())?;
/// let delivery = producer.send(ProducerRecord::new("events", "hello"))?;
/// producer.flush();
/// assert_eq!(delivery.wait()?.offset, 0);
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
pub struct BatchingProducer {
    producer: Producer,
    handle: Arc<Handle>,
}

impl Clone for BatchingProducer {
    fn clone(&self) -> BatchingProducer {
        BatchingProducer { producer: self.producer.clone(), handle: Arc::clone(&self.handle) }
    }
}

impl fmt::Debug for BatchingProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchingProducer").field("config", &self.handle.shared.config).finish()
    }
}

/// How a send deals with a full buffer.
enum Full<'a> {
    Fail,
    Block,
    Register(&'a Waker),
}

impl BatchingProducer {
    pub(crate) fn new(broker: Arc<BrokerState>, config: BatchingConfig) -> Result<BatchingProducer> {
        config.validate()?;
        broker.check_open()?;
        let producer = Producer::new(broker, config.producer.clone());
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                records: Vec::new(),
                targets: Vec::new(),
                topics: Vec::new(),
                delivery: Arc::default(),
                bytes: 0,
                opened: None,
                in_flight: 0,
                sent: 0,
                delivered: 0,
                flush_to: 0,
                closing: false,
                room_wakers: Vec::new(),
                spare: (Vec::new(), Vec::new()),
            }),
            work: Condvar::new(),
            progress: Condvar::new(),
            config,
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("streamlog-batch".into())
            .spawn(move || run(&worker))
            .map_err(|e| Error::Io { op: "spawn thread", path: "streamlog-batch".into(), source: e })?;
        Ok(BatchingProducer { producer, handle: Arc::new(Handle { shared, thread: Mutex::new(Some(thread)) }) })
    }

    /// Buffers `record`, waiting for room if the buffer is full. The
    /// returned future (or its [`DeliveryFuture::wait`]) tells where the
    /// record landed; dropping it does not cancel the send.
    pub fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let mut record = Some(record);
        self.enqueue(&mut record, Full::Block).map(|d| d.expect("a blocking send enqueues"))
    }

    /// Buffers `record`, or fails at once with [`Error::QueueFull`].
    pub fn try_send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let mut record = Some(record);
        self.enqueue(&mut record, Full::Fail).map(|d| d.expect("a failing send enqueues"))
    }

    /// Buffers `record`, awaiting room if the buffer is full (without
    /// blocking the thread). Resolves to the delivery future.
    pub fn send_async(&self, record: ProducerRecord) -> Enqueue<'_> {
        Enqueue { producer: self, record: Some(record) }
    }

    fn enqueue(&self, record: &mut Option<ProducerRecord>, full: Full<'_>) -> Result<Option<DeliveryFuture>> {
        let shared = &*self.handle.shared;
        let max = shared.config.max_queued;
        let (topic, partition, rec) = self.producer.place(record.take().expect("a record to send"))?;
        let timestamp = rec.timestamp.unwrap_or_default();
        let len = rec.key.as_ref().map_or(0, |k| k.len()) + rec.value.as_ref().map_or(0, |v| v.len());
        let mut q = shared.queue.lock();
        while q.in_flight >= max {
            match full {
                Full::Fail => return Err(Error::QueueFull { max }),
                Full::Block => shared.progress.wait(&mut q),
                Full::Register(waker) => {
                    if !q.room_wakers.iter().any(|w| w.will_wake(waker)) {
                        q.room_wakers.push(waker.clone());
                    }
                    // Put back, placed and stamped, for the next try.
                    *record = Some(ProducerRecord {
                        topic: topic.name.to_string(),
                        partition: Some(partition),
                        key: rec.key,
                        value: rec.value,
                        headers: rec.headers,
                        timestamp: rec.timestamp,
                    });
                    return Ok(None);
                }
            }
        }
        if q.closing {
            return Err(Error::Closed);
        }
        let t = match q.topics.iter().rposition(|c| Arc::ptr_eq(c, &topic)) {
            Some(t) => t,
            None => {
                q.topics.push(topic);
                q.topics.len() - 1
            }
        };
        let index = q.records.len();
        q.records.push(rec);
        q.targets.push((t as u32, partition));
        q.in_flight += 1;
        q.sent += 1;
        let before = q.bytes;
        q.bytes += len;
        let delivery = Arc::clone(&q.delivery);
        // The thread waits without a deadline for the first record, then
        // for the linger or a full batch.
        let wake = index == 0 || (before < shared.config.batch_size && q.bytes >= shared.config.batch_size);
        if index == 0 {
            q.opened = Some(Instant::now());
        }
        drop(q);
        if wake {
            shared.work.notify_one();
        }
        Ok(Some(DeliveryFuture { delivery, index, timestamp }))
    }

    /// Waits until every record sent before this call is delivered (appended,
    /// or failed). Sends buffered records without waiting for `linger`.
    pub fn flush(&self) {
        let shared = &*self.handle.shared;
        let mut q = shared.queue.lock();
        let target = q.sent;
        q.flush_to = q.flush_to.max(target);
        shared.work.notify_one();
        while q.delivered < target {
            shared.progress.wait(&mut q);
        }
    }

    /// Records buffered or being appended now.
    pub fn in_flight(&self) -> usize {
        self.handle.shared.queue.lock().in_flight
    }

    /// Flushes, and ends the background thread if this is the last clone
    /// (dropping the last clone does the same).
    pub fn close(self) {
        self.flush();
    }
}

/// The background thread: drains the buffer when a batch is full, the
/// oldest record has lingered, a flush waits, or the producer closes.
fn run(shared: &Shared) {
    let config = &shared.config;
    let mut groups = Groups::default();
    let mut q = shared.queue.lock();
    loop {
        let Some(opened) = q.opened else {
            if q.closing {
                return;
            }
            shared.work.wait(&mut q);
            continue;
        };
        let due = opened + config.linger;
        if q.bytes < config.batch_size && q.flush_to <= q.delivered && !q.closing && Instant::now() < due {
            shared.work.wait_until(&mut q, due);
            continue;
        }
        let (spare_records, spare_targets) = std::mem::take(&mut q.spare);
        let mut records = std::mem::replace(&mut q.records, spare_records);
        let mut targets = std::mem::replace(&mut q.targets, spare_targets);
        let topics = std::mem::take(&mut q.topics);
        let delivery = std::mem::take(&mut q.delivery);
        q.bytes = 0;
        q.opened = None;
        drop(q);
        let n = records.len();
        deliver(&mut groups, &mut records, &targets, &topics, &delivery, config.batch_size);
        targets.clear();
        q = shared.queue.lock();
        q.spare = (records, targets);
        q.in_flight -= n;
        q.delivered += n as u64;
        let wakers = std::mem::take(&mut q.room_wakers);
        shared.progress.notify_all();
        drop(q);
        for w in wakers {
            w.wake();
        }
        q = shared.queue.lock();
    }
}

/// Appends the records grouped per partition, each group in chunks of up to
/// `batch_size` bytes, and publishes the outcome.
/// The background thread's per-partition groups, kept between passes with
/// their capacity.
#[derive(Default)]
struct Groups {
    of: HashMap<(u32, u32), u32>,
    /// (topic index, partition, records, their indexes in the buffer).
    list: Vec<(u32, u32, Vec<Record>, Vec<usize>)>,
    used: usize,
}

fn deliver(
    groups: &mut Groups,
    records: &mut Vec<Record>,
    targets: &[(u32, u32)],
    topics: &[Arc<CachedTopic>],
    delivery: &Delivery,
    batch_size: usize,
) {
    groups.of.clear();
    groups.used = 0;
    for (i, (rec, &(t, p))) in records.drain(..).zip(targets).enumerate() {
        let Groups { of, list, used } = &mut *groups;
        let g = *of.entry((t, p)).or_insert_with(|| {
            if *used == list.len() {
                list.push((t, p, Vec::new(), Vec::new()));
            }
            let slot = &mut list[*used];
            (slot.0, slot.1) = (t, p);
            slot.2.clear();
            slot.3.clear();
            *used += 1;
            (*used - 1) as u32
        });
        list[g as usize].2.push(rec);
        list[g as usize].3.push(i);
    }
    let mut slots = vec![(0u32, 0u64); targets.len()];
    let mut outcomes = Vec::with_capacity(groups.used);
    for (g, (t, p, recs, indexes)) in groups.list[..groups.used].iter_mut().enumerate() {
        let topic = &topics[*t as usize];
        let log = &topic.partitions[*p as usize];
        // Failed until an append says where they landed.
        for &i in indexes.iter() {
            slots[i] = (g as u32, FAILED);
        }
        let mut error = None;
        let mut start = 0;
        while start < recs.len() && error.is_none() {
            let mut end = start;
            let mut bytes = 0;
            while end < recs.len() && (end == start || bytes < batch_size) {
                let r = &recs[end];
                bytes += r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len());
                end += 1;
            }
            match log.append(&recs[start..end]) {
                Ok(at) => {
                    for (k, &i) in indexes[start..end].iter().enumerate() {
                        slots[i] = (g as u32, at.base_offset + k as u64);
                    }
                }
                // This chunk and the rest of the group fail with it (a
                // later chunk must not overtake a failed one).
                Err(e) => error = Some(Arc::new(e)),
            }
            start = end;
        }
        outcomes.push((Arc::clone(&topic.name), *p, error));
        // Drop the records now (their bytes), keep the capacity.
        recs.clear();
    }
    let mut st = delivery.state.lock();
    st.slots = slots;
    st.groups = outcomes;
    st.done = true;
    let wakers = std::mem::take(&mut st.wakers);
    drop(st);
    for w in wakers {
        w.wake();
    }
}

/// Where a record of a [`BatchingProducer`] landed, once its batch is
/// appended: await it, or [`DeliveryFuture::wait`] on a thread.
#[must_use = "the record is sent; the future tells where it landed"]
pub struct DeliveryFuture {
    delivery: Arc<Delivery>,
    index: usize,
    timestamp: i64,
}

impl fmt::Debug for DeliveryFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryFuture").field("index", &self.index).finish()
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = self.delivery.state.lock();
        if !st.done {
            if !st.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                st.wakers.push(cx.waker().clone());
            }
            return Poll::Pending;
        }
        let (g, offset) = st.slots[self.index];
        let (topic, partition, error) = &st.groups[g as usize];
        Poll::Ready(match error {
            Some(e) if offset == FAILED => Err(Error::BatchFailed(Arc::clone(e))),
            _ => Ok(RecordMetadata {
                topic: Arc::clone(topic),
                partition: *partition,
                offset,
                timestamp: self.timestamp,
            }),
        })
    }
}

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

impl DeliveryFuture {
    /// Blocks the thread until the record is delivered.
    pub fn wait(mut self) -> Result<RecordMetadata> {
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(r) = Pin::new(&mut self).poll(&mut cx) {
                return r;
            }
            std::thread::park();
        }
    }
}

/// The future of [`BatchingProducer::send_async`]: resolves to the
/// delivery future once the record is in the buffer.
#[must_use = "futures do nothing unless polled"]
pub struct Enqueue<'a> {
    producer: &'a BatchingProducer,
    record: Option<ProducerRecord>,
}

impl fmt::Debug for Enqueue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enqueue").field("record", &self.record).finish()
    }
}

impl Future for Enqueue<'_> {
    type Output = Result<DeliveryFuture>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.record.is_none() {
            return Poll::Ready(Err(Error::InvalidConfig("Enqueue polled after it resolved".into())));
        }
        match this.producer.enqueue(&mut this.record, Full::Register(cx.waker())) {
            Ok(Some(d)) => Poll::Ready(Ok(d)),
            Ok(None) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}
