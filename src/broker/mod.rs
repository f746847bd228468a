//! The broker: one data directory, its lock, its topics.
//!
//! ```text
//! <dir>/.lock                       flock(2)ed while open (the only lock: partitions have none)
//! <dir>/.clean_shutdown             every partition's clean state, left by a clean close
//! <dir>/streamlog.meta              "streamlog-broker <version>"
//! <dir>/topics/<name>/topic.meta    the topic's configuration (TopicConfig::encode)
//! <dir>/topics/<name>/<partition>/  one partition log each
//! ```

pub(crate) mod clean;
mod group;
mod maintenance;
pub(crate) mod state;
pub(crate) mod stats;
mod temporary;
pub(crate) mod topic;

pub use group::{ConsumerGroup, RemoteJoin, RemoteJoinOutcome, ResetTo};
pub use maintenance::MaintenanceReport;
use maintenance::{start_flusher, start_maintenance};
pub(crate) use state::BrokerState;
use state::{TOPIC_META, TOPICS_DIR, TRASH_DIR, check_or_init_meta, offsets_topic_config};

use std::collections::BTreeMap;
use std::fs::{self};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::broker::topic::{MAX_PARTITIONS, Topic, TopicConfig};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::group::coordinator::Coordinator;
use crate::group::{GroupDescription, OFFSETS_TOPIC};
use crate::log::mapcache::{self, MapCache};
use crate::log::meta::{CleanMarker, lock_dir};
use crate::log::mmap::Prefaulter;
use crate::log::partition::BrokerLink;
use crate::log::{fsutil, notify};

/// Options of a [`Broker`].
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// Create an unknown topic on first produce, with
    /// `default_topic_config` (Kafka's `auto.create.topics.enable`, whose
    /// default is `true`). Default: `false`.
    pub auto_create_topics: bool,
    /// Configuration of auto-created topics. Default: one partition,
    /// otherwise [`TopicConfig::default`].
    pub default_topic_config: TopicConfig,
    /// Record timestamps, segment ages and retention use this clock.
    /// Default: [`SystemClock`].
    pub clock: Arc<dyn Clock>,
    /// How often the maintenance thread applies retention and compaction,
    /// at least [`MIN_MAINTENANCE_INTERVAL`]; `None` runs no thread (call
    /// [`Broker::run_maintenance`] yourself). Kafka's
    /// `log.retention.check.interval.ms`. Default: 5 s.
    pub maintenance_interval: Option<Duration>,
    /// Segment size of the internal offsets topic, when it is created.
    /// Default: 16 MiB.
    pub offsets_segment_bytes: u32,
    /// Open every partition with [`PartitionOptions::repair`](crate::PartitionOptions::repair):
    /// damage that open would refuse (a corrupt sealed segment, a missing
    /// segment) is cut off or recorded explicitly instead. A missing
    /// `topic.meta` stays an error (a configuration cannot be guessed),
    /// but for the internal offsets topic's, which is written again.
    /// Default: `false`.
    pub repair: bool,
    /// How many sealed segments stay mapped, across all partitions; others
    /// are mapped again when read. Mappings hold no file descriptors (only
    /// address space and `vm.max_map_count` entries); `Bytes` already read
    /// keep their mapping alive regardless. Default: a quarter of the
    /// process's `RLIMIT_NOFILE`, within 64 ..= 16,384. Must be positive.
    pub max_mapped_segments: usize,
    /// How long a consumer group that was empty waits for more members
    /// before its first assignment, each join extending the wait (up to the
    /// rebalance timeout): Kafka's `group.initial.rebalance.delay.ms`, which
    /// spares a group starting up one rebalance per member. Default: 0
    /// (Kafka's broker default is 3 s).
    pub group_initial_rebalance_delay: Duration,
    /// Whether the broker ever calls fsync. `false` is for tests and
    /// throwaway data: no file, directory or metadata of this broker is
    /// synced (whatever each topic's [`Durability`](crate::Durability)),
    /// which makes opening, creating topics and closing cost system calls
    /// only. Everything acknowledged still survives a crash of the process
    /// (it is in the OS page cache), and a clean close still makes the next
    /// open cheap; but a power loss or an OS crash may lose or tear
    /// anything, data and metadata alike, so the directory may not open
    /// again afterwards. [`Broker::temporary`] uses it. Default: `true`.
    pub fsync: bool,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        BrokerOptions {
            auto_create_topics: false,
            default_topic_config: TopicConfig::default(),
            clock: Arc::new(SystemClock),
            maintenance_interval: Some(Duration::from_secs(5)),
            offsets_segment_bytes: 16 << 20,
            repair: false,
            max_mapped_segments: mapcache::default_capacity(),
            group_initial_rebalance_delay: Duration::ZERO,
            fsync: true,
        }
    }
}

/// Shortest [`BrokerOptions::maintenance_interval`]: anything shorter
/// would keep a core busy with retention passes.
pub const MIN_MAINTENANCE_INTERVAL: Duration = Duration::from_millis(1);

impl BrokerOptions {
    /// Checks every option against its documented range.
    pub fn validate(&self) -> Result<()> {
        if self.maintenance_interval.is_some_and(|d| d < MIN_MAINTENANCE_INTERVAL) {
            return Err(Error::InvalidConfig(format!(
                "maintenance_interval must be at least {MIN_MAINTENANCE_INTERVAL:?} (or None)"
            )));
        }
        if self.max_mapped_segments == 0 {
            return Err(Error::InvalidConfig("max_mapped_segments must be positive".into()));
        }
        self.default_topic_config.validate()
    }

    /// Sets [`BrokerOptions::auto_create_topics`] (Kafka's `auto.create.topics.enable`, off here by default).
    #[must_use]
    pub fn auto_create_topics(mut self, on: bool) -> Self {
        self.auto_create_topics = on;
        self
    }

    /// Sets [`BrokerOptions::default_topic_config`], the configuration of auto-created topics.
    #[must_use]
    pub fn default_topic_config(mut self, config: TopicConfig) -> Self {
        self.default_topic_config = config;
        self
    }

    /// Sets [`BrokerOptions::clock`]: a [`ManualClock`](crate::ManualClock) makes time-based tests instant.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets [`BrokerOptions::maintenance_interval`]; `None` runs no maintenance thread.
    #[must_use]
    pub fn maintenance_interval(mut self, every: Option<Duration>) -> Self {
        self.maintenance_interval = every;
        self
    }

    /// Sets [`BrokerOptions::offsets_segment_bytes`], in bytes.
    #[must_use]
    pub fn offsets_segment_bytes(mut self, bytes: u32) -> Self {
        self.offsets_segment_bytes = bytes;
        self
    }

    /// See [`BrokerOptions::repair`].
    #[must_use]
    pub fn repair(mut self, repair: bool) -> Self {
        self.repair = repair;
        self
    }

    /// See [`BrokerOptions::max_mapped_segments`].
    #[must_use]
    pub fn max_mapped_segments(mut self, n: usize) -> Self {
        self.max_mapped_segments = n;
        self
    }

    /// See [`BrokerOptions::group_initial_rebalance_delay`].
    #[must_use]
    pub fn group_initial_rebalance_delay(mut self, delay: Duration) -> Self {
        self.group_initial_rebalance_delay = delay;
        self
    }

    /// See [`BrokerOptions::fsync`]: `false` never syncs (for tests; not
    /// safe against power loss).
    #[must_use]
    pub fn fsync(mut self, on: bool) -> Self {
        self.fsync = on;
        self
    }
}

/// The root handle: a data directory holding topics.
///
/// A `Broker` is a cheap handle: clones share one broker (`Send + Sync`),
/// so a service can hand one to each component. [`Broker::close`] on any
/// clone closes it for all of them: their later calls fail with
/// [`Error::Closed`] (closing again does nothing). Dropping the last clone
/// closes it too, ignoring errors.
///
/// ```
/// use streamlog::{Broker, BrokerOptions, ProducerRecord, TopicConfig};
/// let dir = tempfile::tempdir()?;
/// let broker = Broker::open(dir.path(), BrokerOptions::default())?;
/// broker.create_topic("orders", TopicConfig::with_partitions(3))?;
/// let producer = broker.producer();
/// let meta = producer.send(ProducerRecord::new("orders", "created").key("order-1"))?;
/// assert_eq!((meta.partition, meta.offset), (streamlog::murmur2_partition(b"order-1", 3), 0));
/// broker.close()?;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Broker {
    inner: Arc<BrokerState>,
    /// Shared by the clones; the last one dropped closes the broker
    /// (clients hold the state, not this).
    _last_closes: Arc<CloseOnDrop>,
}

/// Closes the broker when the last [`Broker`] clone goes.
struct CloseOnDrop(Arc<BrokerState>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        let _ = self.0.shutdown();
    }
}

impl Broker {
    /// The handle the clients hold: the broker's state, not the `Broker`.
    pub(crate) fn state(&self) -> &Arc<BrokerState> {
        &self.inner
    }
}

impl Broker {
    /// Opens the data directory `dir`, creating it if needed, and every topic
    /// in it. Fails with [`Error::Locked`] if another handle has it open,
    /// [`Error::NotAStreamlogDirectory`] if it holds something else, and
    /// [`Error::UnsupportedFormat`] if a newer streamlog wrote it.
    pub fn open(dir: impl AsRef<Path>, opts: BrokerOptions) -> Result<Broker> {
        let dir = dir.as_ref().to_path_buf();
        if dir.as_os_str().is_empty() {
            return Err(Error::InvalidConfig("the broker directory path is empty".into()));
        }
        opts.validate()?;
        let started = std::time::Instant::now();
        let _span = tracing::info_span!("streamlog.open", dir = %dir.display()).entered();
        // Registered before anything is made, unregistered at close (or
        // when the open fails and this is dropped).
        let no_sync = (!opts.fsync).then(|| fsutil::NoSyncRoot::register(&dir));
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(Error::io("create directory", &dir))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty())
                && opts.fsync
            {
                fsutil::sync_dir(parent)?;
            }
        }
        let lock = lock_dir(&dir)?;
        check_or_init_meta(&dir)?;
        let (marker_present, clean_states) = clean::read(&dir)?;
        let marker = CleanMarker::new(&dir, clean::CLEAN_FILE, marker_present);
        let topics_dir = dir.join(TOPICS_DIR);
        let trash = dir.join(TRASH_DIR);
        for d in [&topics_dir, &trash] {
            if !d.is_dir() {
                marker.invalidate()?;
                fs::create_dir(d).map_err(Error::io("create directory", d))?;
                fsutil::sync_dir(&dir)?;
            }
        }
        // Finish deletes that a crash interrupted.
        for e in fs::read_dir(&trash).map_err(Error::io("list", &trash))? {
            marker.invalidate()?;
            let path = e.map_err(Error::io("list", &trash))?.path();
            let removed = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
            removed.map_err(Error::io("remove", &path))?;
            fsutil::sync_dir(&trash)?;
        }
        let cache = MapCache::new(opts.max_mapped_segments);
        let inner = Arc::new(BrokerState {
            dir,
            topics_dir,
            opts,
            topics: RwLock::new(BTreeMap::new()),
            topics_epoch: std::sync::atomic::AtomicU64::new(0),
            admin: Mutex::new(()),
            link: BrokerLink {
                prefaulter: Prefaulter::start()?,
                sealer: crate::log::periodic::Worker::new("streamlog-seal"),
                cache,
                marker,
            },
            clean_states: Mutex::new(clean_states),
            closed: AtomicBool::new(false),
            poisoned: AtomicBool::new(false),
            maintenance: Mutex::new(None),
            flusher: Mutex::new(None),
            coordinator: std::sync::OnceLock::new(),
            dir_lock: Mutex::new(Some(lock)),
            waiters: crate::log::notify::WaitList::default(),
            timer: Default::default(),
            no_sync: Mutex::new(no_sync),
            temporary: AtomicBool::new(false),
            stats: Default::default(),
        });
        let broker = Broker { _last_closes: Arc::new(CloseOnDrop(Arc::clone(&inner))), inner };
        broker.inner.load_topics()?;
        // The offsets topic is made by the first commit (a broker that
        // never commits, a test's say, spares its files).
        let offsets = match broker.inner.topic(OFFSETS_TOPIC) {
            Ok(t) => Some(t.partition(0)?),
            Err(Error::UnknownTopic { .. }) => None,
            Err(e) => return Err(e),
        };
        let weak = Arc::downgrade(&broker.inner);
        let create_offsets = Box::new(move || {
            let broker = weak.upgrade().ok_or(Error::Closed)?;
            let config = offsets_topic_config().segment_bytes(broker.opts.offsets_segment_bytes);
            match broker.create_topic(OFFSETS_TOPIC, config) {
                Err(Error::TopicExists { .. }) => broker.topic(OFFSETS_TOPIC),
                other => other,
            }?
            .partition(0)
        });
        let topics = broker.inner.topic_names().into_iter().collect();
        let now = broker.inner.opts.clock.now_ms();
        let delay = i64::try_from(broker.inner.opts.group_initial_rebalance_delay.as_millis()).unwrap_or(i64::MAX);
        let coordinator =
            Coordinator::new(Arc::downgrade(&broker.inner) as _, offsets, create_offsets, &topics, delay, now)?;
        let _ = broker.inner.coordinator.set(coordinator);
        if let Some(every) = broker.inner.opts.maintenance_interval {
            *broker.inner.maintenance.lock() = Some(start_maintenance(&broker.inner, every)?);
        }
        *broker.inner.flusher.lock() = Some(start_flusher(&broker.inner)?);
        let topics = broker.inner.topics.read();
        tracing::info!(
            dir = %broker.inner.dir.display(),
            topics = topics.len(),
            partitions = topics.values().map(|t| t.partition_count() as u64).sum::<u64>(),
            clean = marker_present,
            fsync = broker.inner.opts.fsync,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "opened the broker"
        );
        drop(topics);
        Ok(broker)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Creates a topic. Its metadata is written atomically: after a crash
    /// the topic either exists whole or not at all.
    /// [`OFFSETS_TOPIC`](crate::OFFSETS_TOPIC) is internal: the broker makes
    /// it at the first commit.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Topic> {
        if name == OFFSETS_TOPIC {
            return Err(Error::InvalidConfig(format!("{OFFSETS_TOPIC} is internal")));
        }
        self.inner.create_topic(name, config)
    }

    /// The topic called `name`, or [`Error::UnknownTopic`].
    pub fn topic(&self, name: &str) -> Result<Topic> {
        self.inner.topic(name)
    }

    /// Names of all topics, sorted, but for the internal
    /// [`OFFSETS_TOPIC`](crate::OFFSETS_TOPIC).
    pub fn topics(&self) -> Vec<String> {
        self.inner.topics.read().keys().filter(|t| *t != OFFSETS_TOPIC).cloned().collect()
    }

    /// Deletes a topic and its files. Handles to it fail from then on;
    /// records already read stay valid.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let inner = &*self.inner;
        inner.check_open()?;
        if name == OFFSETS_TOPIC {
            return Err(Error::InvalidConfig(format!("{OFFSETS_TOPIC} is internal and cannot be deleted")));
        }
        let admin = inner.admin.lock();
        let topic = inner.topic(name)?;
        inner.link.marker.invalidate()?;
        // Move out first, before anything in memory changes: if the rename
        // fails the topic is still whole, on disk and here. A crash after it
        // leaves a directory in the trash, which open empties, never a
        // half-deleted topic. The trash name is short whatever the topic's
        // (a 249-byte name plus a suffix would pass the 255-byte limit);
        // nothing needs the original name back.
        static DELETES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let trash = inner.dir.join(TRASH_DIR);
        let doomed = trash.join(format!(
            "{}-{}-{}",
            std::process::id(),
            DELETES.fetch_add(1, Ordering::Relaxed),
            inner.opts.clock.now_ms()
        ));
        fs::rename(&topic.inner.dir, &doomed).map_err(Error::io("rename", &topic.inner.dir))?;
        inner.topics.write().remove(name);
        inner.topics_epoch.fetch_add(1, Ordering::AcqRel);
        topic.inner.deleted.store(true, Ordering::Release);
        // A commit for it that looked the topic up before it went is
        // refused from here on (commits skip closed partitions under the
        // offsets log's lock), so none lands after the offsets are forgotten.
        for p in topic.partitions() {
            p.mark_closed();
        }
        // Durably gone, then its committed offsets: a new topic of the same
        // name starts from scratch. (After a crash in between, open forgets
        // the offsets of topics that no longer exist.)
        let forgotten = fsutil::sync_dir(&inner.topics_dir)
            .and_then(|()| fsutil::sync_dir(&trash))
            .and_then(|()| inner.coordinator().offsets.forget_topic(name, inner.opts.clock.now_ms()));
        drop(admin);
        // Its waiters are woken once the admin lock is let go: a waker may
        // run its task on the spot, and the task call back into the broker
        // (create a topic, which takes that lock). Whatever they do, all of
        // the delete is done before a waker's panic goes on.
        let mut panicked = None;
        for p in topic.partitions() {
            // The files are in the trash; a failed clean close changes
            // nothing. Closing wakes the consumers waiting on them.
            notify::catch_panic(&mut panicked, || drop(p.shutdown()));
        }
        // Again, now that the partitions are closed: a consumer looks for
        // closed partitions only when the epoch moved since its last look.
        inner.topics_epoch.fetch_add(1, Ordering::AcqRel);
        // Also those that hold no partition of it (subscribed by name, or
        // with its partitions paused): none may wait on a topic that is gone.
        notify::catch_panic(&mut panicked, || inner.waiters.wake_all());
        let result = forgotten.and_then(|()| {
            fs::remove_dir_all(&doomed).map_err(Error::io("remove", &doomed))?;
            fsutil::sync_dir(&trash)
        });
        notify::resume_panic(panicked);
        result
    }

    /// Raises a topic's partition count to `new_count` (it can only grow, as
    /// in Kafka). Keys hash to new partitions from then on.
    pub fn add_partitions(&self, name: &str, new_count: u32) -> Result<()> {
        let inner = &*self.inner;
        inner.check_open()?;
        if name == OFFSETS_TOPIC {
            return Err(Error::InvalidConfig(format!("{OFFSETS_TOPIC} is internal")));
        }
        let admin = inner.admin.lock();
        let topic = inner.topic(name)?;
        let current = topic.partition_count();
        if new_count > MAX_PARTITIONS {
            return Err(Error::TooManyPartitions { requested: new_count, max: MAX_PARTITIONS });
        }
        if new_count <= current {
            return Err(Error::InvalidConfig(format!(
                "topic {name:?} has {current} partitions; the count can only grow, not become {new_count}"
            )));
        }
        inner.link.marker.invalidate()?;
        let mut config = topic.config();
        config.partitions = new_count;
        let mut parts = topic.partitions();
        for p in current..new_count {
            let dir = &topic.inner.dir;
            if dir.join(p.to_string()).exists() {
                // Left by an `add_partitions` that crashed before its commit.
                let stale = dir.join(p.to_string());
                fs::remove_dir_all(&stale).map_err(Error::io("remove", &stale))?;
            }
            parts.push(Arc::new(inner.open_partition(name, dir, p, &config, true)?));
        }
        // The commit point: until the new count is written, open ignores
        // (and removes) the extra partition directories.
        fsutil::write_atomic(&topic.inner.dir, TOPIC_META, config.encode().as_bytes())?;
        *topic.inner.config.write() = config;
        *topic.inner.partitions.write() = Arc::new(parts);
        inner.topics_epoch.fetch_add(1, Ordering::AcqRel);
        drop(admin);
        // Subscribers take the new partitions at their next step: wake
        // them (outside the admin lock, as `create_topic` does).
        inner.waiters.wake_all();
        Ok(())
    }

    /// Replaces a topic's configuration, durably (Kafka's
    /// `kafka-configs --alter`): the new `topic.meta` is written atomically
    /// first, then applied to the open partitions, without reopening them.
    /// The partition count cannot change here (see
    /// [`Broker::add_partitions`]). Retention and compaction settings apply
    /// from the next maintenance pass; durability and the timestamp type and
    /// windows from the next append; segment size and age from the next
    /// roll decision; the index settings from the next segment (see
    /// [`Partition::update_options`](crate::Partition::update_options)).
    pub fn alter_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        let inner = &*self.inner;
        inner.check_open()?;
        if name == OFFSETS_TOPIC {
            return Err(Error::InvalidConfig(format!("{OFFSETS_TOPIC} is internal")));
        }
        let config = config.normalized();
        config.validate()?;
        let _admin = inner.admin.lock();
        let topic = inner.topic(name)?;
        if config.partitions != topic.partition_count() {
            return Err(Error::InvalidConfig(format!(
                "alter_topic keeps the partition count ({}); use add_partitions to change it",
                topic.partition_count()
            )));
        }
        fsutil::write_atomic(&topic.inner.dir, TOPIC_META, config.encode().as_bytes())?;
        let opts = config.partition_options();
        *topic.inner.config.write() = config;
        for p in topic.partitions_snapshot().iter() {
            p.update_options(&opts)?;
        }
        inner.poke_flusher();
        Ok(())
    }

    /// Writes everything appended so far to disk, in every partition of
    /// every topic, the internal offsets topic (committed offsets) included.
    /// Whatever the topics' [`Durability`](crate::Durability), every record
    /// acknowledged before the call survives power loss once it returns.
    pub fn flush(&self) -> Result<()> {
        let inner = &*self.inner;
        inner.check_open()?;
        let topics: Vec<Topic> = inner.topics.read().values().cloned().collect();
        for topic in topics {
            for p in topic.partitions_snapshot().iter() {
                match p.flush() {
                    // A topic deleted meanwhile has nothing left to flush.
                    Err(Error::Closed) if topic.inner.deleted.load(Ordering::Acquire) => {}
                    r => r?,
                }
            }
        }
        Ok(())
    }

    /// Deletes a consumer group: its committed offsets are removed durably.
    /// Refused with [`Error::GroupNotEmpty`] while it has members. See
    /// [`ConsumerGroup::delete`].
    pub fn delete_group(&self, group_id: &str) -> Result<()> {
        self.group(group_id).delete()
    }

    /// Groups with members in this process or committed offsets.
    pub fn list_groups(&self) -> Vec<String> {
        self.inner.coordinator().group_ids()
    }

    /// State, members, assignment, committed offsets and lag of a group;
    /// an unknown group is described as [`GroupState::Dead`](crate::GroupState::Dead),
    /// with nothing in it. See [`ConsumerGroup::describe`].
    pub fn describe_group(&self, group_id: &str) -> Result<GroupDescription> {
        self.group(group_id).describe()
    }

    /// A handle on consumer group `group_id`, for the admin of
    /// `kafka-consumer-groups`: describe, offsets, lag, reset, delete. The
    /// group need not exist.
    pub fn group(&self, group_id: &str) -> ConsumerGroup {
        ConsumerGroup::new(Arc::clone(&self.inner), group_id)
    }

    /// Applies retention (topics with a `delete` policy) and compaction
    /// (topics with `compact`) to every partition once, now. The
    /// maintenance thread does this every `maintenance_interval`.
    pub fn run_maintenance(&self) -> Result<MaintenanceReport> {
        self.inner.run_maintenance()
    }

    /// Closes every partition cleanly (so the next open is cheap) and
    /// releases the directory, for every clone of this handle: their later
    /// calls fail with [`Error::Closed`]. Closing a closed broker does
    /// nothing. Dropping the last clone does the same, ignoring errors.
    pub fn close(self) -> Result<()> {
        self.inner.shutdown()
    }
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").field("dir", &self.inner.dir).field("topics", &self.topics()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A topic creation that passed its open check, then waited for the
    /// admin lock while the broker closed, must not go on: the close has
    /// written the clean marker and released the directory by then. (The
    /// first commit creates the offsets topic this way, racing a close.)
    #[test]
    fn a_create_that_waited_out_a_close_fails() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(dir.path(), BrokerOptions::default().maintenance_interval(None)).unwrap();
        let inner = Arc::clone(&broker.inner);
        let admin = inner.admin.lock();
        let b = broker.clone();
        let create = std::thread::spawn(move || b.create_topic("late", TopicConfig::with_partitions(1)));
        // Let it pass its open check and wait for the lock.
        std::thread::sleep(Duration::from_millis(200));
        // A close begins here (it takes the admin lock next).
        inner.closed.store(true, Ordering::SeqCst);
        drop(admin);
        let created = create.join().unwrap();
        assert!(matches!(created, Err(Error::Closed)), "{created:?}");
        assert!(!dir.path().join("topics").join("late").exists());
    }
}
