//! The consumer: reads assigned partitions by offset, alone (`assign`) or as
//! a member of a group (`subscribe`), and commits what it has read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use std::vec::Drain;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::broker::BrokerState;
use crate::error::{Error, Result};
use crate::group::coordinator::{Group, Join};
use crate::group::{Assignor, MAX_GROUP_ID_LEN, OffsetAndMetadata, TopicPartition};
use crate::log::notify::{Panic, Waiter, catch_panic, resume_panic};
use crate::log::partition::Partition;
use crate::log::record::{Batch, Header, TimestampType};
use crate::topic_name::TopicName;

mod stream;
pub use stream::{RecordStream, Recv};

/// A timeout that never runs out (a century).
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Where a consumer starts when its group has no valid committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// At the log start offset.
    Earliest,
    /// At the high watermark: only new records. Default (as Kafka).
    #[default]
    Latest,
    /// `poll` fails with [`Error::NoOffset`].
    Error,
}

/// Options of a [`Consumer`].
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The group to join on `subscribe` and to commit offsets for, 1 to
    /// [`MAX_GROUP_ID_LEN`] bytes (Kafka's `group.id`). Default: none (then
    /// only `assign`, and no commits).
    pub group_id: Option<String>,
    /// Prefix of the member id (Kafka's `client.id`). Default: `"consumer"`.
    pub client_id: String,
    /// Where to start without a valid committed offset (Kafka's
    /// `auto.offset.reset`). Default: [`OffsetReset::Latest`].
    pub auto_offset_reset: OffsetReset,
    /// Commit positions from `poll` every `auto_commit_interval`, on
    /// revocation and on close (or drop), but not when a panic drops the
    /// consumer (Kafka's `enable.auto.commit`). A consumer with manually
    /// assigned partitions commits too, if it has a `group_id`, while the
    /// group has no members. A failed periodic auto-commit is a `tracing`
    /// warning, not an error of `poll` (as Kafka logs it), but for
    /// [`Error::Closed`]; the next one tries again. So is a failed commit
    /// at the close of a consumer of assigned partitions; a member's close
    /// returns it. Default: `true`.
    pub enable_auto_commit: bool,
    /// How often auto-commit commits (Kafka's `auto.commit.interval.ms`). Default: 5 s.
    pub auto_commit_interval: Duration,
    /// Most records one `poll` returns (Kafka's `max.poll.records`). Default: 500.
    pub max_poll_records: usize,
    /// A member that does not poll within this long is removed from its
    /// group and its partitions are reassigned (Kafka's
    /// `max.poll.interval.ms`). Default: 5 minutes.
    pub max_poll_interval: Duration,
    /// How long a rebalance waits for the group's members to rejoin (each
    /// member's next poll is its rejoin) before it assigns without those
    /// that did not; they are removed. The group uses its members' longest.
    /// Kafka uses `max.poll.interval.ms` for this. Default: 5 minutes.
    pub rebalance_timeout: Duration,
    /// Makes this a static member (Kafka's `group.instance.id`, KIP-345):
    /// when it closes, it keeps its place and its assignment for
    /// `session_timeout`, and a consumer with the same instance id that
    /// subscribes within that time takes them back without a rebalance.
    /// Range and round-robin order static members by instance id. At most
    /// one live member per instance id ([`Error::FencedInstanceId`]).
    /// Default: none.
    pub group_instance_id: Option<String>,
    /// How long a static member that closed keeps its place (Kafka's
    /// `session.timeout.ms`). Members in this process are known alive while
    /// they exist, so `max_poll_interval` alone removes live members that
    /// stop polling. Default: 45 s.
    pub session_timeout: Duration,
    /// How the group splits partitions (Kafka's
    /// `partition.assignment.strategy`). Default: [`Assignor::Range`]. The
    /// first member of a group decides.
    pub assignor: Assignor,
    /// Bytes read from one partition per fetch (Kafka's
    /// `max.partition.fetch.bytes`); at least one batch is read, however
    /// large. Default: 1 MiB.
    pub fetch_max_bytes: usize,
    /// How long `poll` spins, watching for new records, before it parks
    /// the thread until an append wakes it. Default: 100 µs.
    pub spin: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            group_id: None,
            client_id: "consumer".into(),
            auto_offset_reset: OffsetReset::Latest,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            max_poll_records: 500,
            max_poll_interval: Duration::from_secs(300),
            rebalance_timeout: Duration::from_secs(300),
            group_instance_id: None,
            session_timeout: Duration::from_secs(45),
            assignor: Assignor::Range,
            fetch_max_bytes: 1 << 20,
            spin: Duration::from_micros(100),
        }
    }
}

impl ConsumerConfig {
    /// The default configuration in group `group_id`.
    pub fn with_group(group_id: impl Into<String>) -> ConsumerConfig {
        ConsumerConfig { group_id: Some(group_id.into()), ..ConsumerConfig::default() }
    }

    /// Sets the group (Kafka's `group.id`).
    #[must_use]
    pub fn group_id(mut self, group_id: impl Into<String>) -> Self {
        self.group_id = Some(group_id.into());
        self
    }

    /// Sets the member id prefix (Kafka's `client.id`). Default: `"consumer"`.
    #[must_use]
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// Sets where to start without a committed offset (Kafka's `auto.offset.reset`). Default: [`OffsetReset::Latest`].
    #[must_use]
    pub fn auto_offset_reset(mut self, reset: OffsetReset) -> Self {
        self.auto_offset_reset = reset;
        self
    }

    /// Sets Kafka's `enable.auto.commit`. Default: `true`.
    #[must_use]
    pub fn enable_auto_commit(mut self, on: bool) -> Self {
        self.enable_auto_commit = on;
        self
    }

    /// Sets Kafka's `auto.commit.interval.ms`. Default: 5 s.
    #[must_use]
    pub fn auto_commit_interval(mut self, every: Duration) -> Self {
        self.auto_commit_interval = every;
        self
    }

    /// Sets Kafka's `max.poll.records`, at least 1. Default: 500.
    #[must_use]
    pub fn max_poll_records(mut self, n: usize) -> Self {
        self.max_poll_records = n;
        self
    }

    /// Sets Kafka's `max.poll.interval.ms`. Default: 5 minutes.
    #[must_use]
    pub fn max_poll_interval(mut self, d: Duration) -> Self {
        self.max_poll_interval = d;
        self
    }

    /// See [`ConsumerConfig::rebalance_timeout`].
    #[must_use]
    pub fn rebalance_timeout(mut self, d: Duration) -> Self {
        self.rebalance_timeout = d;
        self
    }

    /// See [`ConsumerConfig::group_instance_id`].
    #[must_use]
    pub fn group_instance_id(mut self, id: impl Into<String>) -> Self {
        self.group_instance_id = Some(id.into());
        self
    }

    /// See [`ConsumerConfig::session_timeout`].
    #[must_use]
    pub fn session_timeout(mut self, d: Duration) -> Self {
        self.session_timeout = d;
        self
    }

    /// Sets the assignor (Kafka's `partition.assignment.strategy`). Default: [`Assignor::Range`].
    #[must_use]
    pub fn assignor(mut self, assignor: Assignor) -> Self {
        self.assignor = assignor;
        self
    }

    /// Sets how long `poll` spins before it parks (no Kafka equivalent). Default: 100 µs.
    #[must_use]
    pub fn spin(mut self, spin: Duration) -> Self {
        self.spin = spin;
        self
    }

    /// See [`ConsumerConfig::fetch_max_bytes`] (Kafka's
    /// `max.partition.fetch.bytes`). At least 1.
    #[must_use]
    pub fn fetch_max_bytes(mut self, bytes: usize) -> Self {
        self.fetch_max_bytes = bytes;
        self
    }

    /// Checks every option against its documented range.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidConfig(m.to_owned()));
        if self.group_id.as_deref().is_some_and(str::is_empty) {
            return bad("group_id must not be empty");
        }
        if let Some(len) = self.group_id.as_deref().map(str::len).filter(|&n| n > MAX_GROUP_ID_LEN) {
            return Err(Error::GroupIdTooLong { len, max: MAX_GROUP_ID_LEN });
        }
        if self.max_poll_records == 0 {
            return bad("max_poll_records must be at least 1");
        }
        if self.max_poll_interval.is_zero() || self.auto_commit_interval.is_zero() {
            return bad("max_poll_interval and auto_commit_interval must be positive");
        }
        if self.rebalance_timeout.is_zero() || self.session_timeout.is_zero() {
            return bad("rebalance_timeout and session_timeout must be positive");
        }
        if self.group_instance_id.as_deref().is_some_and(|i| i.is_empty() || i.len() > MAX_GROUP_ID_LEN) {
            return bad("group_instance_id must be 1 to MAX_GROUP_ID_LEN bytes");
        }
        if self.fetch_max_bytes == 0 {
            return bad("fetch_max_bytes must be at least 1");
        }
        Ok(())
    }
}

/// Told about partitions coming and going in a group, on the consumer's
/// thread, from within `poll` (Kafka's `ConsumerRebalanceListener`). Set
/// with [`Consumer::subscribe_with`] or [`Consumer::set_listener`]; every
/// method has a default that does nothing. A panic in
/// `on_partitions_revoked` comes out of the `poll` (or `close`) that called
/// it once the revocation is done: the partitions are given up, and a
/// closing member leaves its group, all the same.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use streamlog::{Broker, ConsumerConfig, RebalanceListener, TopicConfig, TopicPartition};
///
/// #[derive(Clone, Default)]
/// struct Held(Arc<Mutex<Vec<TopicPartition>>>);
/// impl RebalanceListener for Held {
///     fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
///         self.0.lock().unwrap().extend_from_slice(partitions); // e.g. load per-partition state
///     }
///     fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
///         self.0.lock().unwrap().retain(|tp| !partitions.contains(tp)); // e.g. flush it
///     }
/// }
///
/// let broker = Broker::temporary()?;
/// broker.create_topic("orders", TopicConfig::with_partitions(2))?;
/// let held = Held::default();
/// let mut consumer = broker.consumer(ConsumerConfig::with_group("billing"))?;
/// consumer.subscribe_with(&["orders"], Box::new(held.clone()))?;
/// consumer.poll(Duration::from_millis(10))?; // joins: both partitions assigned
/// assert_eq!(held.0.lock().unwrap().len(), 2);
/// consumer.close()?; // leaves: both revoked
/// assert!(held.0.lock().unwrap().is_empty());
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
pub trait RebalanceListener: Send {
    /// Partitions taken away (their positions were committed first when
    /// auto-commit is on).
    fn on_partitions_revoked(&mut self, _partitions: &[TopicPartition]) {}
    /// Partitions now held by this consumer.
    fn on_partitions_assigned(&mut self, _partitions: &[TopicPartition]) {}
    /// Partitions lost without a clean revocation: the member missed its
    /// poll deadline and was removed; others may already own them.
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        self.on_partitions_revoked(partitions);
    }
}

/// A record as a consumer sees it. Keys, values and header values are
/// zero-copy slices of the segment mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic it was read from.
    pub topic: TopicName,
    /// The partition it was read from.
    pub partition: u32,
    /// Its offset in that partition.
    pub offset: u64,
    /// Milliseconds since the Unix epoch; whose clock, `timestamp_type` says.
    pub timestamp: i64,
    /// [`TimestampType::LogAppendTime`] when the log stamped the record at
    /// append (the topic's setting when its batch was written).
    pub timestamp_type: TimestampType,
    /// The key, if any.
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// The headers, in the order they were sent.
    pub headers: Vec<Header>,
}

/// A whole record batch as a consumer sees it, from
/// [`Consumer::poll_batches`]: read its records with
/// [`Batch::record_views`] (borrowed, the fastest) or [`Batch::records`]
/// (owned). Both start at the consumer's position, which may lie inside
/// the batch.
#[derive(Debug, Clone)]
pub struct ConsumerBatch {
    /// The topic it was read from.
    pub topic: TopicName,
    /// The partition it was read from.
    pub partition: u32,
    /// The batch, its records from the consumer's position on.
    pub batch: Batch,
}

/// What a poll hands back: records ([`Consumer::poll`]) or whole batches
/// ([`Consumer::poll_batches`]). One poll loop serves both.
trait Polled: Default {
    /// Records taken so far (what `max_poll_records` counts).
    fn records(&self) -> usize;

    /// Takes from `batches` of partition `tp` until `max` records are taken,
    /// moving `a.position` past what it took.
    fn take(&mut self, a: &mut Assigned, tp: &TopicPartition, batches: Drain<'_, Batch>, max: usize) -> Result<()>;
}

impl Polled for Vec<ConsumerRecord> {
    fn records(&self) -> usize {
        self.len()
    }

    fn take(&mut self, a: &mut Assigned, tp: &TopicPartition, batches: Drain<'_, Batch>, max: usize) -> Result<()> {
        // Room for these records up front, rather than growing by copies.
        self.reserve(batches.as_slice().iter().map(|b| b.record_count() as usize).sum::<usize>().min(max - self.len()));
        for b in batches {
            let timestamp_type = b.timestamp_type();
            let mut full = false;
            // Views, made into `Bytes` straight into the record: no
            // intermediate `LogRecord` to build and move.
            for r in b.record_views() {
                if self.len() == max {
                    full = true;
                    break;
                }
                // A record that does not decode stops the partition at
                // its position: the records before it are returned first
                // (see `fetch`), then the error (seek past the batch).
                let r = r?;
                a.position = Some(r.offset() + 1);
                self.push(ConsumerRecord {
                    topic: a.topic.clone(),
                    partition: tp.partition,
                    offset: r.offset(),
                    timestamp: r.timestamp(),
                    timestamp_type,
                    key: r.key_bytes(),
                    value: r.value_bytes(),
                    headers: r.owned_headers(),
                });
            }
            if full {
                // The next poll goes on inside this batch.
                a.keep_unfinished(b);
                break;
            }
            // Past any records compaction removed at the batch's end.
            a.position = Some(a.position.unwrap_or(0).max(b.next_offset()));
        }
        Ok(())
    }
}

/// Batches and the records they hold from the position on.
#[derive(Default)]
struct PolledBatches {
    batches: Vec<ConsumerBatch>,
    records: usize,
}

impl Polled for PolledBatches {
    fn records(&self) -> usize {
        self.records
    }

    fn take(&mut self, a: &mut Assigned, tp: &TopicPartition, batches: Drain<'_, Batch>, max: usize) -> Result<()> {
        for b in batches {
            if self.records >= max {
                a.keep_unfinished(b);
                break;
            }
            let pos = a.position.unwrap_or(0);
            // Records before the position (the first batch may start
            // before it) are not counted; the batch's `records` skip them.
            let skipped = pos.saturating_sub(b.base_offset()).min(u64::from(b.record_count()));
            self.records += (u64::from(b.record_count()) - skipped) as usize;
            a.position = Some(pos.max(b.next_offset()));
            self.batches.push(ConsumerBatch { topic: a.topic.clone(), partition: tp.partition, batch: b });
        }
        Ok(())
    }
}

/// A topic filter for pattern subscriptions.
pub type TopicPattern = Arc<dyn Fn(&str) -> bool + Send + Sync>;

enum Subscription {
    None,
    Manual,
    Topics(BTreeSet<String>),
    Pattern(TopicPattern),
}

/// Batches a consumer's kept read vector keeps room for between polls.
const KEEP_BATCHES: usize = 1024;

/// What a poll reads a partition with: the consumer's settings, and the
/// vector batches go through on their way into the poll's result.
struct PartitionReader<'a> {
    config: &'a ConsumerConfig,
    broker: &'a BrokerState,
    batches: &'a mut Vec<Batch>,
    /// A partition was found closed (its topic deleted).
    saw_closed: bool,
}

impl PartitionReader<'_> {
    /// Reads `partitions` in turn until the poll is full or one fails.
    fn read_all<'p, T: Polled>(
        &mut self,
        partitions: impl Iterator<Item = (&'p TopicPartition, &'p mut Assigned)>,
        out: &mut T,
    ) -> Result<()> {
        for (tp, a) in partitions {
            if out.records() >= self.config.max_poll_records {
                break;
            }
            self.read(tp, a, out)?;
        }
        Ok(())
    }

    /// Appends the records of one partition to `out`, up to the poll limit,
    /// moving its position past them.
    fn read<T: Polled>(&mut self, tp: &TopicPartition, a: &mut Assigned, out: &mut T) -> Result<()> {
        // Taken before any return: kept only while this read uses it, so a
        // partition that is not read on (at its end, closed, failing) holds
        // no mapping of a segment that retention may delete.
        let unfinished = a.unfinished.take();
        if a.log.is_closed() {
            self.saw_closed = true;
            return Ok(());
        }
        let config = self.config;
        if a.position.is_none_or(|p| p > a.log.high_watermark()) {
            // No position yet, or one past the end (a seek too far): resolve
            // it as Kafka does, through the committed offset or the reset.
            let pos = match a.position {
                None => resolve_position(config, self.broker, tp, a)?,
                Some(_) => reset_position(config, tp, a)?,
            };
            a.position = Some(pos);
        }
        let pos = a.position.expect("resolved above");
        if pos < a.log.log_start_offset() {
            // Retention (or `delete_records`) moved past it, since the
            // last poll or the seek: reset, as Kafka does.
            a.position = Some(reset_position(config, tp, a)?);
            return Ok(());
        }
        if pos >= a.log.high_watermark() {
            return Ok(());
        }
        // No more batches than the poll can take: the rest would be
        // checked, then dropped, and read again by the next poll.
        let max = config.max_poll_records;
        let (mut from, mut wanted, mut max_bytes) = (pos, max - out.records(), config.fetch_max_bytes);
        // Empty (`fetch` hands every read an empty vector, and a failed
        // `read_records` leaves it as it was, but a panic caught under a
        // read may not): what it holds after a failed read below is the
        // kept batch alone.
        self.batches.clear();
        if let Some(b) = unfinished.filter(|b| b.base_offset() <= pos && pos < b.next_offset()) {
            // The batch the last poll stopped inside: its records from the
            // position on, without reading (and checking) it again. Then
            // on from after it, within what is left of `fetch_max_bytes`
            // (at least one batch, as for any read).
            (from, wanted) = (b.next_offset(), wanted.saturating_sub((b.next_offset() - pos) as usize));
            max_bytes = max_bytes.saturating_sub(b.as_bytes().len());
            self.batches.push(b.reading_from(pos));
        }
        if wanted > 0 && max_bytes > 0 && from < a.log.high_watermark() {
            match a.log.read_records(from, max_bytes, wanted, self.batches) {
                Ok(()) => {}
                // The kept batch's records first; the next poll reads on
                // from after them and meets the error again.
                Err(e) if !self.batches.is_empty() => self.saw_closed |= matches!(e, Error::Closed),
                Err(Error::OffsetOutOfRange { .. }) => {
                    a.position = Some(reset_position(config, tp, a)?);
                    return Ok(());
                }
                // Deleted between the check above and the read: next time.
                Err(Error::Closed) => {
                    self.saw_closed = true;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        out.take(a, tp, self.batches.drain(..), max)
    }
}

/// Resolves the position of a partition that has none yet.
fn resolve_position(config: &ConsumerConfig, broker: &BrokerState, tp: &TopicPartition, a: &Assigned) -> Result<u64> {
    let (start, end) = (a.log.log_start_offset(), a.log.high_watermark());
    let committed = config.group_id.as_deref().and_then(|g| broker.coordinator().offsets.get(g, tp));
    if let Some(c) = committed.filter(|c| (start..=end).contains(c)) {
        return Ok(c);
    }
    reset_position(config, tp, a)
}

fn reset_position(config: &ConsumerConfig, tp: &TopicPartition, a: &Assigned) -> Result<u64> {
    match config.auto_offset_reset {
        OffsetReset::Earliest => Ok(a.log.log_start_offset()),
        OffsetReset::Latest => Ok(a.log.high_watermark()),
        OffsetReset::Error => Err(Error::NoOffset { topic: tp.topic.clone(), partition: tp.partition }),
    }
}

struct Assigned {
    topic: TopicName,
    log: Arc<Partition>,
    /// The next offset to return; `None` until resolved from the committed
    /// offset or `auto_offset_reset`.
    position: Option<u64>,
    paused: bool,
    /// The user moved the position: a commit may then go backwards.
    seeked: bool,
    /// The batch holding the position, read and checked by a poll that
    /// filled up before its end (`max_poll_records` smaller than a batch):
    /// the next poll of the partition starts from it rather than reading
    /// it again. One batch per partition, dropped by that poll (which may
    /// keep the next), by a seek and by a pause.
    unfinished: Option<Batch>,
}

impl Assigned {
    /// Keeps `b` for the next poll if the position lies inside it.
    fn keep_unfinished(&mut self, b: Batch) {
        if self.position.is_some_and(|p| p < b.next_offset()) {
            self.unfinished = Some(b);
        }
    }
}

struct Membership {
    group: Arc<Group>,
    member_id: String,
    generation: u32,
    target: Vec<TopicPartition>,
    /// Broker-clock time by which a waiting poll looks at the group again
    /// (a rebalance that completes by time, not by a member's action).
    wake_at_ms: Option<i64>,
}

/// Interrupts a consumer's `poll` from any thread (Kafka's
/// `KafkaConsumer.wakeup()`): get one with [`Consumer::wakeup_handle`],
/// hand it to the thread that stops the service. `Send + Sync + Clone`.
#[derive(Clone)]
pub struct WakeupHandle {
    shared: Arc<WakeupShared>,
}

struct WakeupShared {
    /// A wakeup not yet reported by a `poll`.
    requested: AtomicBool,
    /// The waiter of the thread that polls (it changes when the consumer
    /// moves to another thread).
    waiter: Mutex<Arc<Waiter>>,
}

impl WakeupHandle {
    /// Makes the consumer's blocked `poll` return [`Error::Wakeup`] at once;
    /// if none is blocked, the next `poll` does (once). The consumer stays
    /// usable.
    pub fn wakeup(&self) {
        // Before the wake: the woken poll's `reset` reads the wake's write
        // and so sees the request.
        self.shared.requested.store(true, Ordering::SeqCst);
        // Woken outside the lock: a waker may run the consumer's task on
        // the spot, and its poll may rebind the waiter (which locks this).
        let waiter = Arc::clone(&self.shared.waiter.lock());
        waiter.wake();
    }
}

impl fmt::Debug for WakeupHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WakeupHandle").field("requested", &self.shared.requested.load(Ordering::Relaxed)).finish()
    }
}

/// Reads records from assigned partitions; `Send`, used from one thread at a
/// time (like Kafka's consumer). Another thread interrupts its `poll`
/// through a [`WakeupHandle`].
///
/// ```
/// use std::time::Duration;
/// use streamlog::{Broker, BrokerOptions, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig};
/// let dir = tempfile::tempdir()?;
/// let broker = Broker::open(dir.path(), BrokerOptions::default())?;
/// broker.create_topic("jobs", TopicConfig::with_partitions(2))?;
/// broker.producer().send(ProducerRecord::new("jobs", "resize img-1").key("img-1"))?;
/// let config = ConsumerConfig::with_group("workers").auto_offset_reset(OffsetReset::Earliest);
/// let mut consumer = broker.consumer(config)?;
/// consumer.subscribe(&["jobs"])?;
/// let records = consumer.poll(Duration::from_secs(1))?;
/// assert_eq!(records[0].value.as_deref(), Some(&b"resize img-1"[..]));
/// consumer.commit()?;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
pub struct Consumer {
    broker: Arc<BrokerState>,
    config: ConsumerConfig,
    subscription: Subscription,
    membership: Option<Membership>,
    assigned: BTreeMap<TopicPartition, Assigned>,
    listener: Option<Box<dyn RebalanceListener>>,
    last_auto_commit_ms: i64,
    /// Where the next fetch starts, rotating for fairness.
    next_start: usize,
    /// Empty between polls: the batches a fetch reads, kept for its
    /// capacity.
    batches: Vec<Batch>,
    /// The partitions whose wait lists hold the consumer's waiter: while a
    /// poll waits, or an async step (`recv`, `stream`) is pending, or one
    /// whose future was forgotten (the next step, a rebind or the drop
    /// takes it off them). Empty otherwise; kept for its capacity.
    registered: Vec<Arc<Partition>>,
    waiter: Arc<Waiter>,
    wakeup: Arc<WakeupShared>,
    /// Topics subscribed by name found missing, as of a broker topics
    /// epoch: each deletion is reported once.
    missing_topics: (u64, BTreeSet<String>),
    /// The broker topics epoch when the assignment was last checked for
    /// partitions of deleted topics.
    closed_checked_epoch: u64,
    /// The subscribed topics, and the broker topics epoch they are for.
    topics_cache: Option<(u64, BTreeSet<String>)>,
    /// The broker-clock time by which the current `poll` returns.
    poll_until_ms: i64,
    closed: bool,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("group_id", &self.config.group_id)
            .field("member_id", &self.member_id())
            .field("assignment", &self.assignment())
            .finish()
    }
}

impl Consumer {
    pub(crate) fn new(broker: Arc<BrokerState>, config: ConsumerConfig) -> Result<Consumer> {
        config.validate()?;
        broker.check_open()?;
        let now = broker.now_ms();
        let waiter = Waiter::current();
        // For the consumer's lifetime: a broker close or topic delete wakes
        // it whatever it waits on.
        broker.waiters.register(&waiter);
        let wakeup =
            Arc::new(WakeupShared { requested: AtomicBool::new(false), waiter: Mutex::new(Arc::clone(&waiter)) });
        Ok(Consumer {
            broker,
            config,
            subscription: Subscription::None,
            membership: None,
            assigned: BTreeMap::new(),
            listener: None,
            last_auto_commit_ms: now,
            next_start: 0,
            batches: Vec::new(),
            registered: Vec::new(),
            waiter,
            wakeup,
            missing_topics: (u64::MAX, BTreeSet::new()),
            closed_checked_epoch: u64::MAX,
            topics_cache: None,
            poll_until_ms: 0,
            closed: false,
        })
    }

    fn check_open(&self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        self.broker.check_open()
    }

    /// A handle that interrupts this consumer's `poll` from another thread.
    pub fn wakeup_handle(&self) -> WakeupHandle {
        WakeupHandle { shared: Arc::clone(&self.wakeup) }
    }

    /// Makes the next `poll` return [`Error::Wakeup`] (once). From another
    /// thread, while `poll` blocks, use a [`Consumer::wakeup_handle`].
    pub fn wakeup(&self) {
        self.wakeup_handle().wakeup();
    }

    fn group_id(&self) -> Result<&str> {
        self.config
            .group_id
            .as_deref()
            .ok_or_else(|| Error::InvalidConfig("this needs a consumer with a group_id".into()))
    }

    /// The member id in the group, once subscribed.
    pub fn member_id(&self) -> Option<&str> {
        self.membership.as_ref().map(|m| m.member_id.as_str())
    }

    /// The group generation this consumer last synced with.
    pub fn generation(&self) -> Option<u32> {
        self.membership.as_ref().map(|m| m.generation)
    }

    /// Partitions this consumer holds now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assigned.keys().cloned().collect()
    }

    /// The topics this consumer is subscribed to, sorted: those given to
    /// [`Consumer::subscribe`], or for a pattern the topics it matches now.
    /// Empty without a subscription (or after [`Consumer::assign`]), as
    /// Kafka's `subscription()`.
    pub fn subscription(&self) -> Vec<String> {
        self.subscribed_topics().into_iter().collect()
    }

    /// Reads exactly these partitions, outside any group rebalancing.
    /// Replaces an earlier `assign`; fails after `subscribe`.
    pub fn assign(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.check_open()?;
        if matches!(self.subscription, Subscription::Topics(_) | Subscription::Pattern(_)) {
            return Err(Error::InvalidConfig("assign after subscribe: unsubscribe first".into()));
        }
        let mut next = BTreeMap::new();
        for tp in partitions {
            let topic = self.broker.topic(&tp.topic)?;
            let log = topic.partition(tp.partition)?;
            // Kept as it is (position, pause) unless its topic was deleted
            // and made again since: the old log is closed.
            let old = self.assigned.remove(tp).filter(|old| Arc::ptr_eq(&old.log, &log));
            next.insert(tp.clone(), old.unwrap_or_else(|| fresh(topic.name(), log)));
        }
        self.assigned = next;
        self.subscription = Subscription::Manual;
        self.topics_cache = None;
        Ok(())
    }

    /// Joins the group (`group_id` required) for `topics`; partitions are
    /// assigned from the next `poll` on.
    /// Topics that do not exist yet are fine, as in Kafka: their
    /// partitions are assigned once they are created.
    ///
    /// Members of one group share the partitions (each held by one member
    /// at a time); each member's `poll` is also its part in the rebalance:
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamlog::{Broker, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig};
    /// let broker = Broker::temporary()?;
    /// broker.create_topic("orders", TopicConfig::with_partitions(4))?;
    /// let producer = broker.producer();
    /// for i in 0..100 {
    ///     producer.send(ProducerRecord::new("orders", i.to_string()).key(format!("order-{i}")))?;
    /// }
    /// let config = ConsumerConfig::with_group("billing").auto_offset_reset(OffsetReset::Earliest);
    /// let (mut a, mut b) = (broker.consumer(config.clone())?, broker.consumer(config)?);
    /// a.subscribe(&["orders"])?;
    /// b.subscribe(&["orders"])?;
    /// // Usually one thread per member; here one thread polls both in turn.
    /// let mut seen = 0;
    /// while seen < 100 {
    ///     seen += a.poll(Duration::from_millis(10))?.len();
    ///     seen += b.poll(Duration::from_millis(10))?.len();
    /// }
    /// assert_eq!((a.assignment().len(), b.assignment().len()), (2, 2));
    /// assert!(a.assignment().iter().all(|tp| !b.assignment().contains(tp)));
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        for t in topics {
            crate::broker::topic::validate_topic_name(t)?;
        }
        let set: BTreeSet<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        // Topics missing now are not reported as deleted by `poll`.
        let epoch = self.broker.topics_epoch();
        let existing = self.broker.topic_names();
        self.missing_topics = (epoch, set.iter().filter(|t| existing.binary_search(t).is_err()).cloned().collect());
        self.join(Subscription::Topics(set))
    }

    /// [`Consumer::subscribe`] with a listener for revocations and assignments.
    pub fn subscribe_with(&mut self, topics: &[&str], listener: Box<dyn RebalanceListener>) -> Result<()> {
        self.subscribe(topics)?;
        self.listener = Some(listener);
        Ok(())
    }

    /// Subscribes to every topic whose name matches `pattern`, now and as
    /// topics are created or deleted (checked on every poll; a poll waiting
    /// when a topic is created or gains partitions is woken to look).
    pub fn subscribe_pattern(&mut self, pattern: impl Fn(&str) -> bool + Send + Sync + 'static) -> Result<()> {
        self.join(Subscription::Pattern(Arc::new(pattern)))
    }

    /// Sets (or replaces) the rebalance listener.
    pub fn set_listener(&mut self, listener: Box<dyn RebalanceListener>) {
        self.listener = Some(listener);
    }

    fn join(&mut self, subscription: Subscription) -> Result<()> {
        self.check_open()?;
        let group_id = self.group_id()?.to_owned();
        if matches!(self.subscription, Subscription::Manual) {
            return Err(Error::InvalidConfig("subscribe after assign: unassign first".into()));
        }
        self.subscription = subscription;
        self.topics_cache = None;
        // Already a member: the next sync tells the group about the change.
        if self.membership.is_none() {
            let topics = self.subscribed_topics();
            let coordinator = self.broker.coordinator();
            let member_id = coordinator.new_member_id(&self.config.client_id);
            let joined = coordinator.join(
                &group_id,
                Join {
                    member_id: member_id.clone(),
                    group_instance_id: self.config.group_instance_id.clone(),
                    topics,
                    assignor: self.config.assignor,
                    max_poll_interval_ms: millis(self.config.max_poll_interval),
                    rebalance_timeout_ms: millis(self.config.rebalance_timeout),
                    session_timeout_ms: millis(self.config.session_timeout),
                    now_ms: self.broker.now_ms(),
                    waiter: Arc::clone(&self.waiter),
                    remote: false,
                },
            );
            let group = match joined {
                Ok(group) => group,
                Err(e) => {
                    self.subscription = Subscription::None;
                    return Err(e);
                }
            };
            self.membership =
                Some(Membership { group, member_id, generation: 0, target: Vec::new(), wake_at_ms: None });
        }
        Ok(())
    }

    /// Leaves the group (committing first with auto-commit) or drops the
    /// manual assignment.
    pub fn unsubscribe(&mut self) -> Result<()> {
        self.check_open()?;
        let result = self.leave_group();
        self.assigned.clear();
        self.subscription = Subscription::None;
        self.topics_cache = None;
        result
    }

    fn leave_group(&mut self) -> Result<()> {
        let mut result = Ok(());
        // Dropped by a panic (processing a record failed): the positions
        // are past records whose processing may not have finished, so they
        // are not committed; and a listener panicking in turn (on a mutex
        // the panic poisoned) would abort the process. Leaving still
        // releases the partitions.
        let unwinding = std::thread::panicking();
        if self.membership.is_some() && self.config.enable_auto_commit && !unwinding {
            // Commits what this member still holds; partitions it lost are
            // fenced off (their new owners resume from the last commit).
            result = self.commit();
            if matches!(result, Err(Error::StaleGeneration { .. })) {
                result = Ok(());
            }
        }
        if let Some(m) = self.membership.take() {
            let held: Vec<TopicPartition> = self.assigned.keys().cloned().collect();
            let mut panic = None;
            if !held.is_empty()
                && !unwinding
                && let Some(l) = self.listener.as_mut()
            {
                // Caught until the member has left: its partitions would
                // stay blocked until `max_poll_interval` ran out (a closed
                // consumer does not leave again).
                catch_panic(&mut panic, || l.on_partitions_revoked(&held));
            }
            self.assigned.clear();
            self.broker.coordinator().leave(&m.group, &m.member_id, self.broker.now_ms());
            resume_panic(panic);
        }
        result
    }

    fn subscribed_topics(&self) -> BTreeSet<String> {
        match &self.subscription {
            Subscription::Topics(t) => t.clone(),
            Subscription::Pattern(p) => {
                self.broker.topic_names().into_iter().filter(|t| !t.starts_with("__") && p(t)).collect()
            }
            _ => BTreeSet::new(),
        }
    }

    /// The subscribed topics as of `epoch`: a pattern is matched again only
    /// when the broker's topics changed.
    fn refresh_topics(&mut self, epoch: u64) {
        if self.topics_cache.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.topics_cache = Some((epoch, self.subscribed_topics()));
        }
    }

    /// Returns records from the assigned partitions, waiting up to
    /// `timeout` for some to arrive (woken by the append, not by polling).
    /// In a group, this is also when rebalances take effect and when
    /// auto-commits happen; not polling within `max_poll_interval` gets the
    /// member removed.
    ///
    /// Returns at once, however long `timeout` is, with [`Error::Closed`]
    /// when the broker closes, [`Error::Wakeup`] after a
    /// [`WakeupHandle::wakeup`], and [`Error::UnknownTopic`] when an assigned
    /// topic, or one subscribed by name, is deleted (once per deletion; its
    /// partitions leave the assignment). Under a pattern subscription a
    /// deleted topic just stops matching.
    pub fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        self.poll_for(timeout)
    }

    /// [`Consumer::poll`] by whole batches: the same waiting, group work
    /// and positions, but the batches as read, with no record decoded or
    /// allocated up front. Walk them with [`Batch::record_views`] to read
    /// a log at the speed of [`Partition::read`](crate::Partition::read).
    /// The position moves past every returned batch; `max_poll_records`
    /// stops the poll after the batch that reaches it (batches are not
    /// split). A malformed record is met as an error while walking the
    /// batch (the position is already past it).
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamlog::{Broker, BrokerOptions, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig, TopicPartition};
    /// let dir = tempfile::tempdir()?;
    /// let broker = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None))?;
    /// broker.create_topic("events", TopicConfig::with_partitions(1))?;
    /// let producer = broker.producer();
    /// producer.send(ProducerRecord::new("events", "a"))?;
    /// producer.send(ProducerRecord::new("events", "bb"))?;
    /// let mut consumer = broker.consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))?;
    /// consumer.assign(&[TopicPartition::new("events", 0)])?;
    /// let mut bytes = 0;
    /// for polled in consumer.poll_batches(Duration::from_secs(1))? {
    ///     for record in polled.batch.record_views() {
    ///         bytes += record?.value().map_or(0, <[u8]>::len);
    ///     }
    /// }
    /// assert_eq!(bytes, 3);
    /// broker.close()?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll_batches(&mut self, timeout: Duration) -> Result<Vec<ConsumerBatch>> {
        self.poll_for::<PolledBatches>(timeout).map(|p| p.batches)
    }

    fn poll_for<T: Polled>(&mut self, timeout: Duration) -> Result<T> {
        self.check_open()?;
        // `Duration::MAX` means "until records come".
        let deadline = Instant::now().checked_add(timeout).unwrap_or_else(|| Instant::now() + FOREVER);
        if !self.waiter.is_current_thread() {
            // Moved to another thread (or used async before).
            self.rebind_waiter(Waiter::current());
        }
        // While inside poll the member is alive, however long it waits;
        // `max_poll_interval` counts the time between polls.
        if let Some(m) = &self.membership {
            let now = self.broker.now_ms();
            self.poll_until_ms = now.saturating_add(millis(timeout));
            m.group.enter_poll(self.broker.coordinator(), &m.member_id, now, self.poll_until_ms);
        }
        let result = self.poll_until(deadline);
        if let Some(m) = &self.membership {
            m.group.exit_poll(&m.member_id, self.broker.now_ms());
        }
        result
    }

    /// Makes `waiter` the one every wake-up of this consumer reaches (broker
    /// close, wakeup, the group). Swapped before any reset or sync, so that
    /// none is lost.
    fn rebind_waiter(&mut self, waiter: Arc<Waiter>) {
        // Off the wait lists first, while they still hold this waiter (a
        // future forgotten mid-wait leaves it registered).
        self.leave_wait_lists();
        let old = std::mem::replace(&mut self.waiter, waiter);
        self.broker.waiters.unregister(&old);
        self.broker.waiters.register(&self.waiter);
        *self.wakeup.waiter.lock() = Arc::clone(&self.waiter);
        if let Some(m) = &self.membership {
            m.group.set_waiter(&m.member_id, &self.waiter);
        }
    }

    fn poll_until<T: Polled>(&mut self, deadline: Instant) -> Result<T> {
        let mut first = true;
        loop {
            let records: T = self.poll_once(&mut first)?;
            if records.records() > 0 || Instant::now() >= deadline {
                return Ok(records);
            }
            let group_event = self.membership.as_ref().and_then(|m| m.wake_at_ms).map(|at| {
                let ms = at.saturating_sub(self.broker.now_ms()).max(1);
                Instant::now().checked_add(Duration::from_millis(ms as u64)).unwrap_or(deadline)
            });
            self.wait(group_event.map_or(deadline, |t| t.min(deadline)));
        }
    }

    /// One step of a poll that never blocks, shared by the blocking and the
    /// async poll: applies the group's changes, auto-commits (on a poll's
    /// `first` step), and takes what records are there (maybe none).
    fn poll_once<T: Polled>(&mut self, first: &mut bool) -> Result<T> {
        // Reset before looking at the group: a rebalance or release after
        // this point wakes the wait that follows instead of being lost.
        self.waiter.reset();
        self.check_open()?;
        if self.wakeup.requested.swap(false, Ordering::AcqRel) {
            return Err(Error::Wakeup);
        }
        self.sync_group()?;
        if std::mem::take(first) {
            self.maybe_auto_commit()?;
        }
        self.drop_deleted_topics()?;
        self.fetch()
    }

    /// Drops the partitions of deleted topics from the assignment, and
    /// fails with [`Error::UnknownTopic`] naming one (or a topic subscribed
    /// by name that is gone since the last look), but for a pattern
    /// subscription.
    fn drop_deleted_topics(&mut self) -> Result<()> {
        let mut gone: Option<String> = None;
        // A delete closes its partitions, then moves the topics epoch on:
        // the assignment needs a look only when the epoch moved since the
        // last one (not a walk over every partition per poll).
        let epoch = self.broker.topics_epoch();
        let closed: Vec<TopicPartition> = if self.closed_checked_epoch == epoch {
            Vec::new()
        } else {
            self.closed_checked_epoch = epoch;
            self.assigned.iter().filter(|(_, a)| a.log.is_closed()).map(|(tp, _)| tp.clone()).collect()
        };
        if !closed.is_empty() {
            // Closed by the broker's close, not a delete: say that.
            self.check_open()?;
        }
        for tp in closed {
            self.assigned.remove(&tp);
            if let Some(m) = &self.membership {
                m.group.release(&m.member_id, &tp);
            }
            gone.get_or_insert(tp.topic);
        }
        if let Subscription::Topics(names) = &self.subscription
            && self.missing_topics.0 != epoch
        {
            let existing = self.broker.topic_names();
            let missing: BTreeSet<String> =
                names.iter().filter(|t| existing.binary_search(t).is_err()).cloned().collect();
            if let Some(t) = missing.difference(&self.missing_topics.1).next() {
                gone.get_or_insert_with(|| t.clone());
            }
            self.missing_topics = (epoch, missing);
        }
        match gone {
            Some(topic) if !matches!(self.subscription, Subscription::Pattern(_)) => {
                self.check_open()?;
                Err(Error::UnknownTopic { topic })
            }
            _ => Ok(()),
        }
    }

    /// Applies the group's current generation: revokes, then takes what is
    /// free of this member's target.
    fn sync_group(&mut self) -> Result<()> {
        if self.membership.is_none() {
            return Ok(());
        }
        let epoch = self.broker.topics_epoch();
        self.refresh_topics(epoch);
        let Some(m) = self.membership.as_ref() else { return Ok(()) };
        let coordinator = self.broker.coordinator();
        let topics = &self.topics_cache.as_ref().expect("refreshed above").1;
        let now = self.broker.now_ms();
        let Some(state) = m.group.sync(coordinator, &m.member_id, topics, epoch, now) else {
            // Removed (missed the poll deadline): everything is lost; join
            // again as a new member.
            let lost: Vec<TopicPartition> = self.assigned.keys().cloned().collect();
            self.assigned.clear();
            if let Some(l) = self.listener.as_mut() {
                l.on_partitions_lost(&lost);
            }
            self.membership = None;
            let subscription = std::mem::replace(&mut self.subscription, Subscription::None);
            self.join(subscription)?;
            if let Some(m) = &self.membership {
                m.group.enter_poll(self.broker.coordinator(), &m.member_id, now, self.poll_until_ms);
            }
            return self.sync_group();
        };
        // The group's assignor decides, not this member's configuration.
        let cooperative = state.cooperative;
        self.membership.as_mut().expect("checked above").wake_at_ms = state.wake_at_ms;
        let m = self.membership.as_ref().expect("checked above");
        if state.generation != m.generation {
            let target: BTreeSet<&TopicPartition> = state.target.iter().collect();
            let revoked: Vec<TopicPartition> =
                self.assigned.keys().filter(|tp| !cooperative || !target.contains(tp)).cloned().collect();
            self.membership.as_mut().expect("checked above").target = state.target.clone();
            let panic = self.revoke(&revoked);
            // Only once the revocation is done: a poll that stopped short
            // of it would otherwise never revoke again (same generation).
            self.membership.as_mut().expect("checked above").generation = state.generation;
            resume_panic(panic);
        }
        let m = self.membership.as_ref().expect("checked above");
        let mut newly = Vec::new();
        for tp in &m.target {
            if self.assigned.contains_key(tp) {
                continue;
            }
            // Looked up before it is taken: a partition of a deleted topic
            // (in the target until the group rebalances) taken and given
            // back on every poll would wake the members each time.
            let Ok((log, topic)) = self.broker.topic(&tp.topic).and_then(|t| Ok((t.partition(tp.partition)?, t)))
            else {
                continue;
            };
            if m.group.acquire(&m.member_id, tp) {
                self.assigned.insert(tp.clone(), fresh(topic.name(), log));
                newly.push(tp.clone());
            }
        }
        if !newly.is_empty()
            && let Some(l) = self.listener.as_mut()
        {
            l.on_partitions_assigned(&newly);
        }
        Ok(())
    }

    /// Gives `revoked` up: commits their positions (with auto-commit),
    /// tells the listener, releases them to the group. Done to the end
    /// whatever the listener, or a waker woken by a release, does: a panic
    /// there would leave the partitions held and read by this member, and
    /// their new owner waiting. The first panic is returned, to go on with
    /// once the caller is done.
    fn revoke(&mut self, revoked: &[TopicPartition]) -> Option<Panic> {
        let mut panic = None;
        if revoked.is_empty() {
            return panic;
        }
        if self.config.enable_auto_commit {
            // Still held at the new generation: the commit is valid.
            catch_panic(&mut panic, || {
                let _ = self.commit_positions(revoked);
            });
        }
        if let Some(l) = self.listener.as_mut() {
            catch_panic(&mut panic, || l.on_partitions_revoked(revoked));
        }
        let m = self.membership.as_ref().expect("revoked by a member");
        for tp in revoked {
            self.assigned.remove(tp);
            catch_panic(&mut panic, || m.group.release(&m.member_id, tp));
        }
        panic
    }

    fn maybe_auto_commit(&mut self) -> Result<()> {
        if !self.config.enable_auto_commit || self.config.group_id.is_none() {
            return Ok(());
        }
        let now = self.broker.now_ms();
        if now.saturating_sub(self.last_auto_commit_ms) < millis(self.config.auto_commit_interval) {
            return Ok(());
        }
        self.last_auto_commit_ms = now;
        self.auto_commit()
    }

    /// Commits every position for auto-commit. A failure is logged, not
    /// returned: the records were returned all the same, and the next
    /// auto-commit tries again (a consumer outside its group is refused
    /// every time while the group has members). But the broker's close,
    /// which `poll` reports at once.
    fn auto_commit(&mut self) -> Result<()> {
        match self.commit() {
            Ok(()) => Ok(()),
            // A rebalance happened since the last sync: the next poll syncs.
            Err(Error::StaleGeneration { .. }) => Ok(()),
            Err(e) => {
                self.broker.check_open()?;
                let group = self.config.group_id.as_deref().unwrap_or_default();
                tracing::warn!(group, error = %e, "auto-commit failed");
                Ok(())
            }
        }
    }

    /// Reads up to `max_poll_records` from the assigned, unpaused
    /// partitions, starting at a different partition each time. Allocates
    /// nothing but what it returns: the partitions are walked in place and
    /// the batches read go through one vector the consumer keeps.
    fn fetch<T: Polled>(&mut self) -> Result<T> {
        let mut out = T::default();
        let n = self.assigned.values().filter(|a| !a.paused).count();
        if n == 0 {
            return Ok(out);
        }
        let start = self.next_start % n;
        self.next_start = self.next_start.wrapping_add(1);
        let mut reader = PartitionReader {
            config: &self.config,
            broker: &self.broker,
            batches: &mut self.batches,
            saw_closed: false,
        };
        // From the `start`th unpaused partition to the last, then from the
        // first.
        let unpaused = |(_, a): &(&TopicPartition, &mut Assigned)| !a.paused;
        let mut result = reader.read_all(self.assigned.iter_mut().filter(unpaused).skip(start), &mut out);
        if result.is_ok() {
            result = reader.read_all(self.assigned.iter_mut().filter(unpaused).take(start), &mut out);
        }
        if reader.saw_closed {
            // A topic deleted under this poll: the next one drops its
            // partitions and reports it (`drop_deleted_topics`), whatever
            // the topics epoch it last looked at.
            self.closed_checked_epoch = u64::MAX;
        }
        if self.batches.capacity() > KEEP_BATCHES {
            // Not the largest poll's worth for the consumer's lifetime.
            self.batches = Vec::new();
        }
        match result {
            // Records already taken (and positions already moved) must
            // reach the caller; the error comes back on the next poll.
            Err(e) if out.records() == 0 => Err(e),
            _ => Ok(out),
        }
    }

    /// Whether any unpaused partition has records past its position (or a
    /// position still to resolve).
    fn has_data(&self) -> bool {
        self.assigned
            .values()
            .any(|a| !a.paused && (a.log.is_closed() || a.position.is_none_or(|p| p != a.log.high_watermark())))
    }

    /// Spins briefly watching for records, then parks until an append (or a
    /// rebalance) wakes it or `deadline` passes.
    fn wait(&mut self, deadline: Instant) {
        let spin_until = Instant::now().checked_add(self.config.spin).map_or(deadline, |t| deadline.min(t));
        while Instant::now() < spin_until {
            if self.has_data() || self.waiter.is_woken() {
                return;
            }
            std::hint::spin_loop();
        }
        self.join_wait_lists();
        // Pairs with the SeqCst store of the high watermark: either this
        // check sees the new records or the append sees the registration.
        // The same for the broker's close (this waiter is registered with
        // the broker for the consumer's lifetime). A wakeup needs no fence:
        // it sets the waiter's flag, which the park checks.
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        if !self.has_data() && !self.broker.is_closed() {
            self.waiter.park_until(deadline);
        }
        self.leave_wait_lists();
    }

    /// Puts the consumer's waiter on the wait lists of its unpaused
    /// partitions (an append then wakes it), noting them in `registered`.
    fn join_wait_lists(&mut self) {
        // Already on the lists of the partitions it reads, in order (an
        // async wait woken with nothing new for it): nothing to change.
        let mut joined = self.registered.iter();
        let unchanged =
            self.assigned.values().filter(|a| !a.paused).all(|a| joined.next().is_some_and(|r| Arc::ptr_eq(&a.log, r)))
                && joined.next().is_none();
        if unchanged {
            return;
        }
        self.leave_wait_lists();
        for a in self.assigned.values().filter(|a| !a.paused) {
            a.log.register_waiter(&self.waiter);
            self.registered.push(Arc::clone(&a.log));
        }
    }

    /// Takes the consumer's waiter off the wait lists it joined.
    fn leave_wait_lists(&mut self) {
        for log in self.registered.drain(..) {
            log.unregister_waiter(&self.waiter);
        }
    }

    fn assigned(&self, tp: &TopicPartition) -> Result<&Assigned> {
        self.assigned.get(tp).ok_or_else(|| Error::NotAssigned { topic: tp.topic.clone(), partition: tp.partition })
    }

    fn assigned_mut(&mut self, tp: &TopicPartition) -> Result<&mut Assigned> {
        self.assigned.get_mut(tp).ok_or_else(|| Error::NotAssigned { topic: tp.topic.clone(), partition: tp.partition })
    }

    /// Moves the position of an assigned partition. Offsets outside the log
    /// are handled by `auto_offset_reset` at the next fetch.
    pub fn seek(&mut self, tp: &TopicPartition, offset: u64) -> Result<()> {
        self.check_open()?;
        let a = self.assigned_mut(tp)?;
        a.position = Some(offset);
        a.seeked = true;
        // As Kafka drops what it fetched for a partition sought: the next
        // poll reads the log as it is now (compacted, say).
        a.unfinished = None;
        Ok(())
    }

    /// Seeks to the log start of each partition (all assigned if empty).
    pub fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_each(partitions, |log| log.log_start_offset())
    }

    /// Seeks to the high watermark of each partition (all assigned if empty).
    pub fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_each(partitions, |log| log.high_watermark())
    }

    fn seek_each(&mut self, partitions: &[TopicPartition], to: impl Fn(&Partition) -> u64) -> Result<()> {
        self.check_open()?;
        let list: Vec<TopicPartition> = if partitions.is_empty() { self.assignment() } else { partitions.to_vec() };
        for tp in &list {
            self.assigned(tp)?;
        }
        for tp in &list {
            let a = self.assigned_mut(tp)?;
            a.position = Some(to(&a.log));
            a.seeked = true;
            a.unfinished = None;
        }
        Ok(())
    }

    /// The next offset `poll` will return for `tp`. A partition with no
    /// position yet (neither polled nor sought since it was assigned)
    /// reports where a poll would start now: the group's committed offset,
    /// else the `auto_offset_reset` end; the first poll (or a seek) fixes
    /// it.
    pub fn position(&self, tp: &TopicPartition) -> Result<u64> {
        self.check_open()?;
        let a = self.assigned(tp)?;
        match a.position {
            Some(p) => Ok(p),
            None => resolve_position(&self.config, &self.broker, tp, a),
        }
    }

    /// The group's committed offset for `tp` (the next offset to read).
    pub fn committed(&self, tp: &TopicPartition) -> Result<Option<u64>> {
        self.check_open()?;
        Ok(self.broker.coordinator().offsets.get(self.group_id()?, tp))
    }

    /// The group's committed offset for `tp` with the metadata committed
    /// with it (empty if none).
    pub fn committed_with_metadata(&self, tp: &TopicPartition) -> Result<Option<OffsetAndMetadata>> {
        self.check_open()?;
        Ok(self.broker.coordinator().offsets.get_with_metadata(self.group_id()?, tp))
    }

    /// For each (partition, timestamp): the first offset whose record has a
    /// timestamp at or after it, or `None` (Kafka's `offsetsForTimes`).
    /// Timestamps are milliseconds since the Unix epoch. Any partition of
    /// any topic may be asked; [`Error::UnknownTopic`] /
    /// [`Error::UnknownPartition`] otherwise.
    ///
    /// Replaying from a point in time:
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamlog::{Broker, ConsumerConfig, ProducerRecord, TopicConfig, TopicPartition};
    /// let broker = Broker::temporary()?;
    /// broker.create_topic("ticks", TopicConfig::default())?;
    /// let producer = broker.producer();
    /// for (t, v) in [(1_000, "a"), (2_000, "b"), (3_000, "c")] {
    ///     producer.send(ProducerRecord::new("ticks", v).timestamp(t))?;
    /// }
    /// let tp = TopicPartition::new("ticks", 0);
    /// let mut consumer = broker.consumer(ConsumerConfig::default())?;
    /// consumer.assign(&[tp.clone()])?;
    /// let found = consumer.offsets_for_times(&[(tp.clone(), 1_500), (tp.clone(), 9_000)])?;
    /// assert_eq!(found, vec![(tp.clone(), Some(1)), (tp.clone(), None)]);
    /// consumer.seek(&tp, found[0].1.unwrap())?;
    /// let values: Vec<_> = consumer.poll(Duration::from_millis(50))?.into_iter().map(|r| r.value).collect();
    /// assert_eq!(values, [Some("b".into()), Some("c".into())]);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn offsets_for_times(&self, query: &[(TopicPartition, i64)]) -> Result<Vec<(TopicPartition, Option<u64>)>> {
        self.check_open()?;
        query
            .iter()
            .map(|(tp, ts)| {
                let log = self.broker.topic(&tp.topic)?.partition(tp.partition)?;
                Ok((tp.clone(), log.offset_for_timestamp(*ts)?))
            })
            .collect()
    }

    /// (log start offset, high watermark) of any partition.
    pub fn watermarks(&self, tp: &TopicPartition) -> Result<(u64, u64)> {
        self.check_open()?;
        let log = self.broker.topic(&tp.topic)?.partition(tp.partition)?;
        Ok((log.log_start_offset(), log.high_watermark()))
    }

    /// Records between the position and the high watermark of an assigned
    /// partition.
    pub fn lag(&self, tp: &TopicPartition) -> Result<u64> {
        let pos = self.position(tp)?;
        Ok(self.assigned(tp)?.log.high_watermark().saturating_sub(pos))
    }

    /// Stops returning records from these partitions (they stay assigned,
    /// their positions and group membership unchanged: Kafka's `pause`),
    /// until [`Consumer::resume`]. [`Error::NotAssigned`] for a partition
    /// not held (and then none is paused). A rebalance that takes a
    /// partition away forgets its pause.
    ///
    /// Back-pressure: hold one partition while its work is pending.
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamlog::{Broker, ConsumerConfig, ProducerRecord, TopicConfig, TopicPartition};
    /// let broker = Broker::temporary()?;
    /// broker.create_topic("jobs", TopicConfig::with_partitions(2))?;
    /// let producer = broker.producer();
    /// producer.send(ProducerRecord::new("jobs", "slow").partition(0))?;
    /// producer.send(ProducerRecord::new("jobs", "fast").partition(1))?;
    /// let (p0, p1) = (TopicPartition::new("jobs", 0), TopicPartition::new("jobs", 1));
    /// let mut consumer = broker.consumer(ConsumerConfig::default())?;
    /// consumer.assign(&[p0.clone(), p1.clone()])?;
    /// consumer.seek_to_beginning(&[])?;
    /// consumer.pause(&[p0.clone()])?;
    /// let records = consumer.poll(Duration::from_millis(50))?;
    /// assert_eq!(records.len(), 1);
    /// assert_eq!(records[0].partition, 1);
    /// assert_eq!(consumer.paused(), vec![p0.clone()]);
    /// consumer.resume(&[p0])?;
    /// let records = consumer.poll(Duration::from_millis(50))?;
    /// assert_eq!(records[0].value.as_deref(), Some(&b"slow"[..]));
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn pause(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.set_paused(partitions, true)
    }

    /// Returns records from these paused partitions again, from where
    /// they stopped. [`Error::NotAssigned`] for a partition not held.
    pub fn resume(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.set_paused(partitions, false)
    }

    fn set_paused(&mut self, partitions: &[TopicPartition], paused: bool) -> Result<()> {
        self.check_open()?;
        for tp in partitions {
            self.assigned(tp)?;
        }
        for tp in partitions {
            let a = self.assigned_mut(tp)?;
            a.paused = paused;
            if paused {
                // A paused partition holds no mapping of a segment that
                // retention may delete meanwhile.
                a.unfinished = None;
            }
        }
        Ok(())
    }

    /// The assigned partitions that are paused now.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.assigned.iter().filter(|(_, a)| a.paused).map(|(tp, _)| tp.clone()).collect()
    }

    /// Commits the positions of all assigned partitions (each the next
    /// offset to read) for the group: a member that takes a partition over,
    /// or this group after a restart, resumes there. Durable as the
    /// internal offsets topic is (a record in a streamlog log; see
    /// [`Broker::flush`](crate::Broker::flush)). Needs a `group_id`.
    /// [`Error::StaleGeneration`] when the group rebalanced since the last
    /// poll: poll, then commit again.
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamlog::{Broker, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig, TopicPartition};
    /// let broker = Broker::temporary()?;
    /// broker.create_topic("orders", TopicConfig::default())?;
    /// let producer = broker.producer();
    /// for v in ["created", "paid", "shipped"] {
    ///     producer.send(ProducerRecord::new("orders", v).key("order-1"))?;
    /// }
    /// let config = ConsumerConfig::with_group("billing")
    ///     .auto_offset_reset(OffsetReset::Earliest)
    ///     .enable_auto_commit(false)
    ///     .max_poll_records(2);
    /// let mut consumer = broker.consumer(config.clone())?;
    /// consumer.subscribe(&["orders"])?;
    /// let first = consumer.poll(Duration::from_secs(1))?;
    /// assert_eq!(first.len(), 2);
    /// consumer.commit()?;
    /// assert_eq!(consumer.committed(&TopicPartition::new("orders", 0))?, Some(2));
    /// consumer.close()?;
    ///
    /// // The next member of the group resumes after the commit.
    /// let mut consumer = broker.consumer(config)?;
    /// consumer.subscribe(&["orders"])?;
    /// let rest = consumer.poll(Duration::from_secs(1))?;
    /// assert_eq!(rest[0].value.as_deref(), Some(&b"shipped"[..]));
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn commit(&mut self) -> Result<()> {
        let all = self.assignment();
        self.commit_positions(&all)
    }

    fn commit_positions(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        let group = self.group_id()?.to_owned();
        let coordinator = self.broker.coordinator();
        let mut offsets = Vec::new();
        for tp in partitions {
            let a = self.assigned(tp)?;
            // Nothing to commit for a deleted topic, or for a position past
            // the end (a seek too far, reset at the next fetch).
            let Some(pos) = a.position.filter(|&p| !a.log.is_closed() && p <= a.log.high_watermark()) else {
                continue;
            };
            let committed = coordinator.offsets.get(&group, tp);
            // Never move a commit backwards unless the user sought there.
            if committed.is_none_or(|c| pos > c || (pos < c && a.seeked)) {
                offsets.push((tp.clone(), pos, ""));
            }
        }
        self.commit_checked(&offsets)?;
        for (tp, _, _) in &offsets {
            if let Some(a) = self.assigned.get_mut(tp) {
                a.seeked = false;
            }
        }
        Ok(())
    }

    /// Commits these offsets (each the next offset to read). Offsets past
    /// the high watermark are rejected; in a group, so is a commit from a
    /// stale generation or for a partition this member does not hold. A
    /// consumer that is not a member (no subscription) may commit only
    /// while the group has no members, else [`Error::GroupNotEmpty`].
    pub fn commit_offsets(&mut self, offsets: &[(TopicPartition, u64)]) -> Result<()> {
        self.check_open()?;
        let offsets: Vec<(TopicPartition, u64, &str)> = offsets.iter().map(|(tp, o)| (tp.clone(), *o, "")).collect();
        self.commit_checked(&offsets)
    }

    /// [`Consumer::commit_offsets`] with a metadata string per partition
    /// (Kafka's `OffsetAndMetadata`), stored durably with the offset and
    /// read back by [`Consumer::committed_with_metadata`] and by Kafka
    /// clients' OffsetFetch. [`Error::OffsetMetadataTooLarge`] past
    /// [`MAX_OFFSET_METADATA_LEN`](crate::MAX_OFFSET_METADATA_LEN) bytes.
    pub fn commit_offsets_with_metadata(&mut self, offsets: &[(TopicPartition, OffsetAndMetadata)]) -> Result<()> {
        self.check_open()?;
        let offsets: Vec<(TopicPartition, u64, &str)> =
            offsets.iter().map(|(tp, o)| (tp.clone(), o.offset, o.metadata.as_str())).collect();
        self.commit_checked(&offsets)
    }

    fn commit_checked(&self, offsets: &[(TopicPartition, u64, &str)]) -> Result<()> {
        let group = self.group_id()?;
        let mut logs = Vec::with_capacity(offsets.len());
        for (tp, offset, _) in offsets {
            let log = self.broker.topic(&tp.topic)?.partition(tp.partition)?;
            let end = log.high_watermark();
            if *offset > end {
                return Err(Error::OffsetOutOfRange { requested: *offset, start: log.log_start_offset(), end });
            }
            logs.push(log);
        }
        let coordinator = self.broker.coordinator();
        let now = self.broker.now_ms();
        match &self.membership {
            // Checked and written under the group's lock: a member removed in
            // between cannot slip a commit in.
            Some(m) => m.group.commit_fenced(&m.member_id, m.generation, offsets, &logs, &coordinator.offsets, now),
            // Not a member: only while the group has none (Kafka rejects
            // such commits to a group with members).
            None => coordinator
                .with_empty_group(group, now, || coordinator.offsets.commit_with_metadata(group, offsets, &logs, now)),
        }
    }

    /// Commits (with auto-commit, a member or a consumer of manually
    /// assigned partitions with a `group_id`), leaves the group and closes
    /// the consumer.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        if self.broker.check_open().is_err() {
            return Ok(());
        }
        // A group member commits as it leaves (`leave_group`); a consumer
        // of manually assigned partitions here, not when a panic drops it
        // (see `leave_group`).
        let manual = matches!(self.subscription, Subscription::Manual);
        if manual && self.config.enable_auto_commit && self.config.group_id.is_some() && !std::thread::panicking() {
            return self.auto_commit();
        }
        self.leave_group()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.leave_wait_lists();
        // A listener's panic goes on once the waiter is off the broker's
        // list, which would keep it for the broker's life otherwise.
        let mut panic = None;
        catch_panic(&mut panic, || {
            let _ = self.shutdown();
        });
        self.broker.waiters.unregister(&self.waiter);
        resume_panic(panic);
    }
}

/// A duration in whole milliseconds, saturated to fit the clock's `i64`.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn fresh(topic: &str, log: Arc<Partition>) -> Assigned {
    // A copy of the name for this assignment alone: every record read from
    // it takes a reference on the name, which on the topic's shared `Arc`
    // would be a cache line written by every consumer thread.
    Assigned { topic: TopicName::from(topic), log, position: None, paused: false, seeked: false, unfinished: None }
}
