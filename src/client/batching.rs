//! A batching producer, as Kafka users know it: sends from any number of
//! threads or tasks are gathered and appended per partition as one batch
//! (`linger.ms`, `batch.size`), each send returns a delivery future (a
//! delivery report), `flush` waits for everything sent, and a bounded buffer
//! (`queue.buffering.max.messages`) pushes back.
//!
//! Each clone buffers its own records, per partition, under a lock no other
//! sender takes, with one delivery per batch: nothing is written to a
//! shared cache line per record. A send that fills a batch appends it
//! itself. One background thread per batching producer (`streamlog-batch`,
//! joined when the last clone is dropped) sends the batches that lingered
//! and appends those of partitions that sync every append (so that no
//! sender waits for the disk). The bound on buffered records is kept by a
//! shared count that clones reserve from in chunks.
//!
//! A partitioner of the application's may send through the clone that
//! asks it: it places a record before the clone's lock is taken (the
//! built-in one, which never sends, under it). Wakers are woken once the
//! lock is released, so a waker may send too; as any waker, it must not
//! block (a `flush` or a blocking `send` from a waker that the background
//! thread woke would wait for that very thread). What remains under the
//! lock is the clock and the records' drop (`Bytes` owners). A waker that
//! panics does not cut a delivery short: the batch's outcome is published
//! first; then the panic goes on to the sender that appended the batch, or
//! on the background thread is reported (`tracing`) and the thread goes on.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::broker::BrokerState;
use crate::client::partitioner::Sealed;
use crate::client::producer::{CachedTopic, Producer, ProducerConfig, ProducerRecord, RecordMetadata};
use crate::error::{Error, Result};
use crate::log::notify::{Panic, catch_panic, resume_panic, wake_each};
use crate::log::record::Record;
use crate::topic_name::TopicName;

/// Options of a [`BatchingProducer`].
#[derive(Debug, Clone)]
pub struct BatchingConfig {
    /// How the records are placed. Default: [`ProducerConfig::default`].
    pub producer: ProducerConfig,
    /// How long a record may wait for others to join its batch (Kafka's
    /// `linger.ms`). Default: 5 ms.
    pub linger: Duration,
    /// Buffered bytes (keys and values) of one partition that send its
    /// batch without waiting for `linger` (Kafka's `batch.size`; each
    /// clone of the producer fills its own batches). Default: 256 KiB.
    pub batch_size: usize,
    /// Records buffered or being appended, at most (Kafka's
    /// `queue.buffering.max.messages`): a send beyond waits, or fails with
    /// [`Error::QueueFull`]. Clones reserve room in chunks of
    /// `max_queued / 32` (1 to 1,024) records; a send that finds the
    /// buffer full first takes back what other clones reserved and have
    /// not used (but from clones busy sending at that moment). Default:
    /// 100,000.
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

/// The outcome of one local batch (the records of one clone for one
/// partition), shared by its records' futures.
struct Delivery {
    topic: TopicName,
    partition: u32,
    state: Mutex<DeliveryState>,
}

#[derive(Default)]
struct DeliveryState {
    done: bool,
    /// The offset of the batch's first record.
    base_offset: u64,
    /// Set if the batch's append failed (all its records fail with it).
    error: Option<Arc<Error>>,
    /// Each record's own outcome, when the batch had to be split (it was
    /// larger than one append may be, or held a timestamp the partition
    /// refused): then `base_offset` and `error` are not used.
    split: Option<Vec<std::result::Result<u64, Arc<Error>>>>,
    wakers: Vec<Waker>,
}

/// Records of one clone bound for one partition, appended together.
struct Batch {
    topic: Arc<CachedTopic>,
    partition: u32,
    records: Vec<Record>,
    bytes: usize,
    /// When its first record came (`linger` counts from here).
    opened: Instant,
    delivery: Arc<Delivery>,
    /// Set when handed to the background thread: its partition's count of
    /// this clone's handed-off batches not appended yet.
    handed: Option<Arc<AtomicUsize>>,
}

/// A partition this clone handed batches off for, and how many of them are
/// not appended yet: until none is, its later batches follow them through
/// the background thread (whatever the durability is by then), in order.
struct Pending {
    log: Arc<crate::Partition>,
    count: Arc<AtomicUsize>,
}

impl Batch {
    fn log(&self) -> &Arc<crate::Partition> {
        &self.topic.partitions[self.partition as usize]
    }
}

/// A clone's own buffer. Only its clone sends into it, so its lock is
/// uncontended on the send path; the background thread (linger) and
/// `flush` take it now and then.
#[derive(Default)]
struct Local {
    buf: Mutex<LocalBuf>,
}

#[derive(Default)]
struct LocalBuf {
    /// At most one open batch per partition (keeps the order of sends).
    batches: Vec<Batch>,
    /// Room reserved from `Shared::room` and not used yet: taken in
    /// chunks so that the shared count moves per chunk, not per record.
    credits: usize,
    /// Emptied record vectors with their capacity, for the next batches
    /// (growing fresh ones faults in new pages on every pass).
    spare: Vec<Vec<Record>>,
    /// The topic last sent to (this clone's own lookup cache).
    topic: Option<Arc<CachedTopic>>,
    /// Partitions with handed-off batches (dropped once all are appended).
    pending: Vec<Pending>,
}

/// Spare record vectors a clone keeps.
const SPARE: usize = 8;

/// The records buffered or being appended, against `max_queued`.
struct Room {
    /// Records buffered or being appended, plus credits the clones hold.
    queued: usize,
    /// Async sends waiting for room.
    wakers: Vec<Waker>,
}

/// The background thread's state.
#[derive(Default)]
struct Bg {
    /// A batch opened (or a handoff came) since the thread last looked.
    kicked: bool,
    /// A send found the buffer full since the thread last looked: every
    /// batch is due at once.
    exhausted: bool,
    closing: bool,
    /// Batches of partitions with `Durability::Sync`, appended by the
    /// background thread so that a sender never waits for the disk.
    handoff: VecDeque<Batch>,
    /// Handoffs pushed and appended, ever (appended in order: `flush`
    /// waits for the second to reach what the first was).
    pushed: u64,
    done: u64,
}

/// Wakers taken while a clone's buffer is locked, woken once it is not: a
/// waker is the executor's code (or the application's), and may send
/// through that clone. It wakes them when dropped: declared before the
/// lock's guard, it wakes after the guard is gone. `wakers` is `None`
/// until a waker (or a panic) is taken: most sends take none, and pay one
/// test for it.
#[derive(Default)]
struct Wakeups {
    wakers: Option<Vec<Waker>>,
    /// A panic raised by a waker that an append woke (a consumer's), kept
    /// until the batch's outcome is published; it goes on once `wakers`
    /// are woken.
    panic: Option<Panic>,
}

impl Wakeups {
    /// Takes `wakers`.
    fn take(&mut self, wakers: &mut Vec<Waker>) {
        match &mut self.wakers {
            Some(taken) => taken.append(wakers),
            None if wakers.is_empty() => {}
            None => self.wakers = Some(std::mem::take(wakers)),
        }
    }

    /// Keeps `panic` (if this holds none yet), to go on after the wake-ups.
    fn keep_panic(&mut self, panic: Option<Panic>) {
        if let Some(panic) = panic {
            self.panic.get_or_insert(panic);
            // `wake` looks at `wakers` only.
            self.wakers.get_or_insert_with(Vec::new);
        }
    }

    #[inline(always)]
    fn wake(&mut self) {
        if let Some(wakers) = self.wakers.take() {
            wake_all(wakers, self.panic.take());
        }
    }
}

/// Wakes every waker, then goes on with the first panic: `panicked`, or
/// else a waker's.
#[cold]
#[inline(never)]
fn wake_all(wakers: Vec<Waker>, mut panicked: Option<Panic>) {
    catch_panic(&mut panicked, || wake_each(wakers.into_iter(), Waker::wake));
    resume_panic(panicked);
}

/// Wakes `woken` on the background thread, which every clone's lingering
/// and handed-off batches depend on: a panic (a waker's, or one an
/// append's wake-up raised) is reported, not raised, and the thread goes
/// on.
fn wake_in_background(mut woken: Wakeups) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| woken.wake())).is_err() {
        tracing::warn!("a waker panicked on the batching producer's thread; the batch was delivered");
    }
}

impl Drop for Wakeups {
    #[inline(always)]
    fn drop(&mut self) {
        self.wake();
    }
}

struct Shared {
    config: BatchingConfig,
    /// Credits a clone reserves at once.
    chunk: usize,
    room: Mutex<Room>,
    /// Blocking sends wait here for room.
    room_freed: Condvar,
    bg: Mutex<Bg>,
    /// The background thread waits here for a new batch (or the end of linger).
    work: Condvar,
    /// `flush` waits here for handoffs.
    progress: Condvar,
    /// Every clone's buffer: the background thread sends those that
    /// lingered, `flush` sends them all.
    locals: Mutex<Vec<Weak<Local>>>,
}

impl Shared {
    /// Up to `chunk` records of room, 0 if the buffer is full.
    fn reserve(&self, room: &mut Room) -> usize {
        let n = self.chunk.min(self.config.max_queued.saturating_sub(room.queued));
        room.queued += n;
        n
    }

    /// Takes back the room the other clones reserved and have not used
    /// (for a send that found the buffer full: with many clones, their
    /// chunks could otherwise fill it while holding few records). Clones
    /// busy at the moment keep theirs. Returns how much came back.
    fn reclaim(&self, me: &Arc<Local>, woken: &mut Wakeups) -> usize {
        let mut taken = 0;
        for local in self.locals() {
            // Not waiting on another clone's lock while holding this
            // one's: two reclaiming clones would deadlock.
            if !Arc::ptr_eq(&local, me)
                && let Some(mut buf) = local.buf.try_lock()
            {
                taken += std::mem::take(&mut buf.credits);
            }
        }
        self.release(taken, woken);
        taken
    }

    /// Gives back room: records delivered, or credits unused. The async
    /// sends that wait for room go to `woken`.
    fn release(&self, n: usize, woken: &mut Wakeups) {
        if n == 0 {
            return;
        }
        let mut room = self.room.lock();
        room.queued -= n;
        woken.take(&mut room.wakers);
        drop(room);
        self.room_freed.notify_all();
    }

    /// Tells the background thread a batch opened (it may be waiting without a deadline).
    fn kick(&self) {
        let mut bg = self.bg.lock();
        bg.kicked = true;
        drop(bg);
        self.work.notify_one();
    }

    /// Tells the background thread that a send waits for room: as in
    /// Kafka's accumulator, every clone's batches are then due without
    /// waiting for `linger`, so that room frees as soon as appends make
    /// it. May be called with the room's lock held (the background
    /// thread's lock is never held while taking it).
    fn exhaust(&self) {
        let mut bg = self.bg.lock();
        bg.exhausted = true;
        bg.kicked = true;
        drop(bg);
        self.work.notify_one();
    }

    /// The live clones' buffers.
    fn locals(&self) -> Vec<Arc<Local>> {
        let mut locals = self.locals.lock();
        locals.retain(|w| w.strong_count() > 0);
        locals.iter().filter_map(Weak::upgrade).collect()
    }

    /// Sends the batches of `buf` that `due` picks, and gives back the
    /// credits once `buf` holds no record. The caller holds `buf`'s lock,
    /// which keeps the batches of one partition in order.
    fn drain(&self, buf: &mut LocalBuf, due: impl Fn(&Batch) -> bool, woken: &mut Wakeups) {
        let mut i = 0;
        while i < buf.batches.len() {
            if due(&buf.batches[i]) {
                let batch = buf.batches.swap_remove(i);
                self.dispatch(batch, &mut buf.spare, &mut buf.pending, woken);
            } else {
                i += 1;
            }
        }
        if buf.batches.is_empty() {
            self.release(std::mem::take(&mut buf.credits), woken);
        }
    }

    /// Appends `batch` on this thread, or hands it to the background
    /// thread if its partition syncs every append, or if batches of its
    /// partition this clone handed off earlier are not appended yet.
    fn dispatch(
        &self,
        mut batch: Batch,
        spare: &mut Vec<Vec<Record>>,
        pending: &mut Vec<Pending>,
        woken: &mut Wakeups,
    ) {
        pending.retain(|p| p.count.load(Ordering::Acquire) > 0);
        let earlier = pending.iter().find(|p| Arc::ptr_eq(&p.log, batch.log()));
        if earlier.is_some() || batch.log().syncs_appends() {
            let count = match earlier {
                Some(p) => Arc::clone(&p.count),
                None => {
                    let count = Arc::new(AtomicUsize::new(0));
                    pending.push(Pending { log: Arc::clone(batch.log()), count: Arc::clone(&count) });
                    count
                }
            };
            count.fetch_add(1, Ordering::AcqRel);
            batch.handed = Some(count);
            let mut bg = self.bg.lock();
            bg.handoff.push_back(batch);
            bg.pushed += 1;
            bg.kicked = true;
            drop(bg);
            self.work.notify_one();
            return;
        }
        let records = self.deliver(batch, woken);
        if spare.len() < SPARE {
            spare.push(records);
        }
    }

    /// Appends `batch`, publishes the outcome to its futures (their wakers
    /// go to `woken`) and frees its room. Gives back its emptied record
    /// vector. A panic of a waker the append woke goes to `woken` too, to
    /// go on once the outcome is published.
    fn deliver(&self, batch: Batch, woken: &mut Wakeups) -> Vec<Record> {
        let Batch { topic, partition, mut records, delivery, handed, .. } = batch;
        let log = &topic.partitions[partition as usize];
        let (result, mut panicked) = log.append_keeping_panic(&records);
        // Records that each fit may together exceed what one append takes
        // (the segment size), and one record's timestamp may be outside the
        // topic's window: append them in halves, in order, each record then
        // failing or landing on its own.
        let split = match &result {
            Err(e) if splits(e) && records.len() > 1 => {
                let mut outcomes = Vec::with_capacity(records.len());
                let (first, second) = records.split_at(records.len() / 2);
                append_halving(log, first, &mut outcomes, &mut panicked);
                append_halving(log, second, &mut outcomes, &mut panicked);
                Some(outcomes)
            }
            _ => None,
        };
        if let Some(count) = handed {
            // Release: a clone that then sees none pending appends after
            // this.
            count.fetch_sub(1, Ordering::Release);
        }
        let n = records.len();
        // Drop the records now (their bytes), keep the capacity.
        records.clear();
        // Out of flight before the futures resolve, so a caller that saw
        // its record delivered never counts it in `in_flight`.
        self.release(n, woken);
        let mut st = delivery.state.lock();
        match (result, split) {
            (_, Some(outcomes)) => st.split = Some(outcomes),
            (Ok(at), None) => st.base_offset = at.base_offset,
            (Err(e), None) => st.error = Some(Arc::new(e)),
        }
        st.done = true;
        woken.take(&mut st.wakers);
        woken.keep_panic(panicked);
        records
    }
}

/// Whether a batch's append that failed with `e` is retried in parts:
/// the failure may be one record's (its size with the others', or its
/// timestamp), not every record's.
fn splits(e: &Error) -> bool {
    matches!(e, Error::RecordTooLarge { .. } | Error::InvalidTimestamp { .. })
}

/// Appends `records` to `log`, halving a run that fails as [`splits`]
/// says until it lands (or is one record), and pushes each record's
/// offset or error to `outcomes`, in order. The first panic of a waker
/// the appends woke is kept in `panicked`.
fn append_halving(
    log: &crate::Partition,
    records: &[Record],
    outcomes: &mut Vec<std::result::Result<u64, Arc<Error>>>,
    panicked: &mut Option<Panic>,
) {
    let (result, panic) = log.append_keeping_panic(records);
    *panicked = panicked.take().or(panic);
    match result {
        Ok(at) => outcomes.extend((0..records.len() as u64).map(|i| Ok(at.base_offset + i))),
        Err(e) if splits(&e) && records.len() > 1 => {
            let (first, second) = records.split_at(records.len() / 2);
            append_halving(log, first, outcomes, panicked);
            append_halving(log, second, outcomes, panicked);
        }
        Err(e) => {
            let e = Arc::new(e);
            outcomes.extend(records.iter().map(|_| Err(Arc::clone(&e))));
        }
    }
}

/// Ends the background thread when the last clone goes.
struct Handle {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.bg.lock().closing = true;
        self.shared.work.notify_all();
        if let Some(t) = self.thread.lock().take() {
            // The background thread itself drops the last clone when a
            // waker it woke held it: it sees `closing` once that waker
            // returns, delivers what is handed off and ends. Joining itself
            // would fail (EDEADLK) and panic.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

/// A producer that gathers records from many threads or tasks and appends
/// them per partition as one batch. `Send + Sync + Clone`: clones share the
/// buffer bound and the background thread, but each clone buffers its own
/// records, so give each thread or task its own clone (sends through one
/// clone from several threads contend on its buffer). Records a clone sends
/// to one partition keep the order of its sends; a full batch is appended
/// by the send that fills it, one that lingered by the background thread.
/// Dropping a clone sends what it buffered.
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
    local: Arc<Local>,
    handle: Arc<Handle>,
    /// The partitioner is the built-in one, which never sends: records are
    /// placed under the buffer's lock. An application's partitioner may
    /// send through this very clone, so it runs before the lock is taken.
    builtin_partitioner: bool,
}

impl Clone for BatchingProducer {
    fn clone(&self) -> BatchingProducer {
        let local = Arc::new(Local::default());
        let mut locals = self.handle.shared.locals.lock();
        // Dropped clones' entries go here too: a service that makes a
        // clone per request and never flushes would grow the list otherwise.
        locals.retain(|w| w.strong_count() > 0);
        locals.push(Arc::downgrade(&local));
        drop(locals);
        BatchingProducer {
            producer: self.producer.clone(),
            local,
            handle: Arc::clone(&self.handle),
            builtin_partitioner: self.builtin_partitioner,
        }
    }
}

impl Drop for BatchingProducer {
    fn drop(&mut self) {
        // Declared before the guard: wakes after it is released.
        let mut woken = Wakeups::default();
        let mut buf = self.local.buf.lock();
        self.handle.shared.drain(&mut buf, |_| true, &mut woken);
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

/// A record placed before its clone's buffer was locked, by a partitioner
/// of the application (which may send through this producer). It keeps
/// its partition while a send waits for room: the partitioner runs once.
struct Placed {
    topic: Arc<CachedTopic>,
    partition: u32,
    record: Record,
}

/// A record on its way into a clone's buffer, as `enqueue` takes it.
trait Outgoing {
    /// Its partition, of the topic it leaves in `slot` (the clone's
    /// lookup cache), and the record to buffer. Runs under the buffer's
    /// lock.
    fn place_in(self, producer: &Producer, slot: &mut Option<Arc<CachedTopic>>) -> Result<(u32, Record)>;
}

/// Placed now: by the built-in partitioner (it never sends), or by the
/// record's own partition.
impl Outgoing for ProducerRecord {
    #[inline]
    fn place_in(self, producer: &Producer, slot: &mut Option<Arc<CachedTopic>>) -> Result<(u32, Record)> {
        producer.place_in(slot, self)
    }
}

impl Outgoing for Placed {
    #[inline]
    fn place_in(self, producer: &Producer, slot: &mut Option<Arc<CachedTopic>>) -> Result<(u32, Record)> {
        // Placed before a wait for room: the broker may have closed, or
        // the topic been deleted, since.
        producer.check_open()?;
        if self.topic.partitions[self.partition as usize].is_closed() {
            // A close closes the partitions after marking the broker
            // closed: say `Closed` if that is what happened.
            producer.check_open()?;
            return Err(Error::UnknownTopic { topic: self.topic.name.to_string() });
        }
        *slot = Some(self.topic);
        Ok((self.partition, self.record))
    }
}

impl BatchingProducer {
    pub(crate) fn new(broker: Arc<BrokerState>, config: BatchingConfig) -> Result<BatchingProducer> {
        config.validate()?;
        broker.check_open()?;
        let builtin_partitioner = config.producer.partitioner.is_builtin(Sealed);
        let producer = Producer::new(broker, config.producer.clone());
        // A clone holds at most this much unused room: a small share of
        // the bound, so that idle clones do not starve the others.
        let chunk = (config.max_queued / 32).clamp(1, 1024);
        let local = Arc::new(Local::default());
        let shared = Arc::new(Shared {
            config,
            chunk,
            room: Mutex::new(Room { queued: 0, wakers: Vec::new() }),
            room_freed: Condvar::new(),
            bg: Mutex::new(Bg::default()),
            work: Condvar::new(),
            progress: Condvar::new(),
            locals: Mutex::new(vec![Arc::downgrade(&local)]),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("streamlog-batch".into())
            .spawn(move || run(&worker))
            .map_err(|e| Error::Io { op: "spawn thread", path: "streamlog-batch".into(), source: e })?;
        let handle = Arc::new(Handle { shared, thread: Mutex::new(Some(thread)) });
        Ok(BatchingProducer { producer, local, handle, builtin_partitioner })
    }

    /// Buffers `record`, waiting for room if the buffer is full (after
    /// sending what this clone buffered; while it waits, the other clones'
    /// batches are sent without waiting for `linger`). The returned future (or its
    /// [`DeliveryFuture::wait`]) tells where the record landed; dropping it
    /// does not cancel the send. A timestamp no partition accepts (negative
    /// but -1, past [`MAX_TIMESTAMP`](crate::MAX_TIMESTAMP)) fails the send
    /// with [`Error::InvalidTimestamp`]; one outside the topic's timestamp
    /// window fails its own delivery only ([`Error::BatchFailed`]).
    pub fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        self.send_with(record, Full::Block)
    }

    /// Buffers `record`, or fails at once with [`Error::QueueFull`] (a
    /// partitioner of the application has then chosen its partition all
    /// the same, as in Kafka).
    pub fn try_send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        self.send_with(record, Full::Fail)
    }

    /// [`BatchingProducer::send`] or [`BatchingProducer::try_send`]: `full`
    /// blocks or fails, and never gives the record back.
    #[inline]
    fn send_with(&self, record: ProducerRecord, full: Full<'_>) -> Result<DeliveryFuture> {
        if !self.places_under_lock(&record) {
            return self.place_and_enqueue(record, full);
        }
        self.enqueue(record, full).map(|d| d.unwrap_or_else(|_| unreachable!("a failing or blocking send enqueues")))
    }

    /// Buffers `record`, awaiting room if the buffer is full (without
    /// blocking the thread), as [`BatchingProducer::send`] waits. Resolves to the delivery future. An
    /// application's partitioner runs at the first poll; a send that then
    /// waits for room keeps that partition, and fails with
    /// [`Error::UnknownTopic`] if the topic is deleted meanwhile.
    pub fn send_async(&self, record: ProducerRecord) -> Enqueue<'_> {
        Enqueue { producer: self, record: Some(record), placed: None }
    }

    /// Whether `record` is placed under the buffer's lock: no partitioner
    /// of the application runs for it.
    #[inline]
    fn places_under_lock(&self, record: &ProducerRecord) -> bool {
        self.builtin_partitioner || record.partition.is_some()
    }

    /// Places `record` with no lock held, for an application's partitioner.
    fn place_first(&self, record: ProducerRecord) -> Result<Placed> {
        let (topic, partition, record) = self.producer.place(record)?;
        Ok(Placed { topic, partition, record })
    }

    /// [`BatchingProducer::send_with`] of a record an application's
    /// partitioner places. Never inlined: the built-in partitioner's sends
    /// stay as lean as they were.
    #[inline(never)]
    fn place_and_enqueue(&self, record: ProducerRecord, full: Full<'_>) -> Result<DeliveryFuture> {
        let placed = self.place_first(record)?;
        self.enqueue(placed, full).map(|d| d.unwrap_or_else(|_| unreachable!("a failing or blocking send enqueues")))
    }

    /// Buffers `record` (placed under the buffer's lock, or [`Placed`]
    /// already); gives it back (`Ok(Err(record))`) when the buffer is full
    /// and `full` registered the waker. Takes the record by value: a send
    /// moves it once, not through an `Option`.
    #[inline]
    fn enqueue<R: Outgoing>(&self, record: R, full: Full<'_>) -> Result<Result<DeliveryFuture, R>> {
        let shared = &*self.handle.shared;
        let max = shared.config.max_queued;
        // Declared before the guard: wakes after it is released.
        let mut woken = Wakeups::default();
        let mut buf = self.local.buf.lock();
        if buf.credits == 0 {
            let mut got = shared.reserve(&mut shared.room.lock());
            if got == 0 && shared.reclaim(&self.local, &mut woken) > 0 {
                got = shared.reserve(&mut shared.room.lock());
            }
            if got > 0 {
                buf.credits = got;
            } else {
                match full {
                    Full::Fail => return Err(Error::QueueFull { max }),
                    Full::Block => {
                        // What this clone holds counts against the bound: send it first.
                        shared.drain(&mut buf, |_| true, &mut woken);
                        drop(buf);
                        woken.wake();
                        let mut room = shared.room.lock();
                        let got = loop {
                            match shared.reserve(&mut room) {
                                0 => {
                                    shared.exhaust();
                                    shared.room_freed.wait(&mut room);
                                }
                                got => break got,
                            }
                        };
                        drop(room);
                        buf = self.local.buf.lock();
                        buf.credits += got;
                    }
                    Full::Register(waker) => {
                        shared.drain(&mut buf, |_| true, &mut woken);
                        let mut room = shared.room.lock();
                        match shared.reserve(&mut room) {
                            0 => {
                                if !room.wakers.iter().any(|w| w.will_wake(waker)) {
                                    room.wakers.push(waker.clone());
                                }
                                drop(room);
                                shared.exhaust();
                                return Ok(Err(record));
                            }
                            got => buf.credits = got,
                        }
                    }
                }
            }
        }
        let LocalBuf { batches, topic: slot, spare, .. } = &mut *buf;
        let (partition, rec) = match record.place_in(&self.producer, slot) {
            Ok(placed) => placed,
            Err(e) => {
                // Room reserved by a clone that buffers nothing goes back.
                if batches.is_empty() {
                    shared.release(std::mem::take(&mut buf.credits), &mut woken);
                }
                return Err(e);
            }
        };
        let topic = slot.as_ref().expect("placed in a topic");
        let timestamp = rec.timestamp.unwrap_or_default();
        let len = rec.key.as_ref().map_or(0, |k| k.len()) + rec.value.as_ref().map_or(0, |v| v.len());
        // The partition's identity, not the topic lookup's: a lookup
        // renewed mid-batch must find the same batch.
        let log = &topic.partitions[partition as usize];
        let (i, opened) = match batches.iter().position(|b| b.partition == partition && Arc::ptr_eq(b.log(), log)) {
            Some(i) => (i, false),
            None => {
                let delivery = Arc::new(Delivery {
                    topic: topic.name.clone(),
                    partition,
                    state: Mutex::new(DeliveryState::default()),
                });
                let records = spare.pop().unwrap_or_default();
                let topic = Arc::clone(topic);
                batches.push(Batch {
                    topic,
                    partition,
                    records,
                    bytes: 0,
                    opened: Instant::now(),
                    delivery,
                    handed: None,
                });
                (batches.len() - 1, true)
            }
        };
        buf.credits -= 1;
        let buf = &mut *buf;
        let batch = &mut buf.batches[i];
        let index = batch.records.len();
        batch.records.push(rec);
        batch.bytes += len;
        let delivery = Arc::clone(&batch.delivery);
        let kick = if batch.bytes >= shared.config.batch_size {
            // Full: appended by this send, no handoff.
            let batch = buf.batches.swap_remove(i);
            shared.dispatch(batch, &mut buf.spare, &mut buf.pending, &mut woken);
            if buf.batches.is_empty() {
                shared.release(std::mem::take(&mut buf.credits), &mut woken);
            }
            false
        } else {
            opened
        };
        if kick {
            shared.kick();
        }
        Ok(Ok(DeliveryFuture { delivery, index, timestamp }))
    }

    /// One poll of [`Enqueue`]: the delivery future, or `record` kept in
    /// `keep` until room frees.
    fn enqueue_or_keep<R: Outgoing>(
        &self,
        record: R,
        keep: &mut Option<R>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<DeliveryFuture>> {
        match self.enqueue(record, Full::Register(cx.waker())) {
            Ok(Ok(d)) => Poll::Ready(Ok(d)),
            Ok(Err(record)) => {
                *keep = Some(record);
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Waits until every record sent (by any clone) before this call is
    /// delivered (appended, or failed). Sends buffered records without
    /// waiting for `linger`.
    pub fn flush(&self) {
        let shared = &*self.handle.shared;
        for local in shared.locals() {
            // Declared before the guard: wakes after it is released.
            let mut woken = Wakeups::default();
            let mut buf = local.buf.lock();
            shared.drain(&mut buf, |_| true, &mut woken);
        }
        let mut bg = shared.bg.lock();
        let target = bg.pushed;
        while bg.done < target {
            shared.progress.wait(&mut bg);
        }
    }

    /// Records buffered or being appended now.
    pub fn in_flight(&self) -> usize {
        let shared = &*self.handle.shared;
        // Every buffer locked first (buffer before room, the order sends and
        // drains take them), then the shared count: no drain can give back
        // credits, nor a send take room, between the two reads.
        let locals = shared.locals();
        let bufs: Vec<_> = locals.iter().map(|l| l.buf.lock()).collect();
        let unused: usize = bufs.iter().map(|b| b.credits).sum();
        let queued = shared.room.lock().queued;
        queued.saturating_sub(unused)
    }

    /// Flushes, and ends the background thread if this is the last clone
    /// (dropping the last clone does the same).
    pub fn close(self) {
        self.flush();
    }
}

/// The background thread: sends the batches that lingered (all of them
/// when a send waits for room), appends the handed-off ones, and ends when
/// the last clone is gone.
fn run(shared: &Shared) {
    let linger = shared.config.linger;
    loop {
        let mut bg = shared.bg.lock();
        bg.kicked = false;
        let exhausted = std::mem::take(&mut bg.exhausted);
        let handoff = std::mem::take(&mut bg.handoff);
        drop(bg);
        if !handoff.is_empty() {
            let n = handoff.len() as u64;
            for batch in handoff {
                // No buffer is locked here: its futures wake at once.
                let mut woken = Wakeups::default();
                shared.deliver(batch, &mut woken);
                wake_in_background(woken);
            }
            shared.bg.lock().done += n;
            shared.progress.notify_all();
            // On to the linger pass all the same: a steady stream of
            // handoffs must not hold back the other clones' batches.
        }
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for local in shared.locals() {
            // Declared before the guard: wakes after it is released.
            let mut woken = Wakeups::default();
            let mut buf = local.buf.lock();
            // A linger too long to add to an instant never comes due (but
            // for a send waiting for room).
            let due = |b: &Batch| exhausted || b.opened.checked_add(linger).is_some_and(|due| due <= now);
            shared.drain(&mut buf, due, &mut woken);
            for due in buf.batches.iter().filter_map(|b| b.opened.checked_add(linger)) {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
            drop(buf);
            wake_in_background(woken);
        }
        let mut bg = shared.bg.lock();
        if bg.kicked || !bg.handoff.is_empty() {
            continue;
        }
        if bg.closing {
            return;
        }
        match next {
            Some(due) => {
                shared.work.wait_until(&mut bg, due);
            }
            None => shared.work.wait(&mut bg),
        }
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
        let offset = match (&st.split, &st.error) {
            (Some(outcomes), _) => outcomes[self.index].clone(),
            (None, Some(e)) => Err(Arc::clone(e)),
            (None, None) => Ok(st.base_offset + self.index as u64),
        };
        Poll::Ready(match offset {
            Err(e) => Err(Error::BatchFailed(e)),
            Ok(offset) => Ok(RecordMetadata {
                topic: self.delivery.topic.clone(),
                partition: self.delivery.partition,
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
    /// The record once an application's partitioner placed it (at the
    /// first poll: it does not run again while the send waits for room).
    placed: Option<Placed>,
}

impl fmt::Debug for Enqueue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enqueue").field("record", &self.record).field("placed", &self.placed.is_some()).finish()
    }
}

impl Future for Enqueue<'_> {
    type Output = Result<DeliveryFuture>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(record) = this.record.take() {
            if this.producer.places_under_lock(&record) {
                return this.producer.enqueue_or_keep(record, &mut this.record, cx);
            }
            match this.producer.place_first(record) {
                Ok(placed) => this.placed = Some(placed),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        match this.placed.take() {
            Some(placed) => this.producer.enqueue_or_keep(placed, &mut this.placed, cx),
            None => Poll::Ready(Err(Error::InvalidConfig("Enqueue polled after it resolved".into()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{BatchingConfig, Broker, TopicConfig};

    #[test]
    fn dropped_clones_are_not_kept() {
        let broker = Broker::temporary().unwrap();
        broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
        let producer = broker.batching_producer(BatchingConfig::default()).unwrap();
        for _ in 0..1000 {
            drop(producer.clone());
        }
        assert!(producer.handle.shared.locals.lock().len() <= 2, "one entry per live clone");
        producer.close();
        broker.close().unwrap();
    }
}
