//! The broker: one data directory, its lock, its topics.
//!
//! ```text
//! <dir>/.lock                       flock(2)ed while open
//! <dir>/streamlog.meta              "streamlog-broker <version>"
//! <dir>/topics/<name>/topic.meta    the topic's configuration (TopicConfig::encode)
//! <dir>/topics/<name>/<partition>/  one partition log each
//! ```

pub(crate) mod topic;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::broker::topic::CleanupPolicy;
use crate::broker::topic::{Topic, TopicConfig, TopicInner, validate_topic_name};
use crate::client::consumer::{Consumer, ConsumerConfig};
use crate::client::producer::{Producer, ProducerConfig};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::group::coordinator::Coordinator;
use crate::group::{GroupDescription, MemberDescription, OFFSETS_TOPIC, PartitionOffsets, TopicPartition, TopicView};
use crate::log::fsutil;
use crate::log::meta::lock_dir;
use crate::log::mmap::Prefaulter;
use crate::log::partition::Partition;
use crate::log::periodic::Periodic;

const BROKER_META: &str = "streamlog.meta";
const BROKER_META_HEADER: &str = "streamlog-broker";
const BROKER_FORMAT_VERSION: u32 = 1;
const TOPICS_DIR: &str = "topics";
const TOPIC_META: &str = "topic.meta";
/// Topic directories being deleted are moved here first; open empties it.
const TRASH_DIR: &str = "deleted";

/// Options of a [`Broker`].
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// Create an unknown topic on first produce, with
    /// `default_topic_config`. Default: `false`.
    pub auto_create_topics: bool,
    /// Configuration of auto-created topics. Default: one partition,
    /// otherwise [`TopicConfig::default`].
    pub default_topic_config: TopicConfig,
    /// Record timestamps, segment ages and retention use this clock.
    /// Default: [`SystemClock`].
    pub clock: Arc<dyn Clock>,
    /// How often the maintenance thread applies retention and compaction;
    /// `None` runs no thread (call [`Broker::run_maintenance`] yourself).
    /// Default: 5 s.
    pub maintenance_interval: Option<Duration>,
    /// Segment size of the internal offsets topic, when it is created.
    /// Default: 16 MiB.
    pub offsets_segment_bytes: u32,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        BrokerOptions {
            auto_create_topics: false,
            default_topic_config: TopicConfig::default(),
            clock: Arc::new(SystemClock),
            maintenance_interval: Some(Duration::from_secs(5)),
            offsets_segment_bytes: 16 << 20,
        }
    }
}

impl BrokerOptions {
    #[must_use]
    pub fn auto_create_topics(mut self, on: bool) -> Self {
        self.auto_create_topics = on;
        self
    }

    #[must_use]
    pub fn default_topic_config(mut self, config: TopicConfig) -> Self {
        self.default_topic_config = config;
        self
    }

    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    #[must_use]
    pub fn maintenance_interval(mut self, every: Option<Duration>) -> Self {
        self.maintenance_interval = every;
        self
    }

    #[must_use]
    pub fn offsets_segment_bytes(mut self, bytes: u32) -> Self {
        self.offsets_segment_bytes = bytes;
        self
    }
}

/// What one maintenance pass did.
#[derive(Debug, Default)]
pub struct MaintenanceReport {
    /// Partitions whose retention or compaction failed, with the error; the
    /// others were still maintained.
    pub failures: Vec<(TopicPartition, Error)>,
    /// Segments deleted by retention.
    pub segments_deleted: usize,
    /// Records removed by compaction.
    pub records_compacted: u64,
    /// Segments rewritten by compaction.
    pub segments_compacted: u64,
}

/// The root handle: a data directory holding topics.
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
pub struct Broker {
    inner: Arc<BrokerInner>,
}

pub(crate) struct BrokerInner {
    dir: PathBuf,
    topics_dir: PathBuf,
    pub(crate) opts: BrokerOptions,
    topics: RwLock<BTreeMap<String, Topic>>,
    /// Bumped after every change to the set of topics or their partitions,
    /// so producers can cache lookups and notice when to redo them.
    pub(crate) topics_epoch: std::sync::atomic::AtomicU64,
    /// Serializes changes to the set of topics and their partition counts.
    admin: Mutex<()>,
    prefaulter: Arc<Prefaulter>,
    closed: AtomicBool,
    /// Set when the maintenance thread panicked: the broker refuses work.
    poisoned: AtomicBool,
    maintenance: Mutex<Option<Periodic>>,
    /// Syncs partitions with `Durability::Interval` when they are due.
    flusher: Mutex<Option<Periodic>>,
    /// Consumer groups and committed offsets; set once the topics are open.
    coordinator: std::sync::OnceLock<Coordinator>,
    /// The directory lock, held until the broker is closed.
    dir_lock: Mutex<Option<File>>,
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
        opts.default_topic_config.validate()?;
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(Error::io("create directory", &dir))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fsutil::sync_dir(parent)?;
            }
        }
        let lock = lock_dir(&dir)?;
        check_or_init_meta(&dir)?;
        let topics_dir = dir.join(TOPICS_DIR);
        let trash = dir.join(TRASH_DIR);
        for d in [&topics_dir, &trash] {
            if !d.is_dir() {
                fs::create_dir(d).map_err(Error::io("create directory", d))?;
                fsutil::sync_dir(&dir)?;
            }
        }
        // Finish deletes that a crash interrupted.
        for e in fs::read_dir(&trash).map_err(Error::io("list", &trash))? {
            let path = e.map_err(Error::io("list", &trash))?.path();
            let removed = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
            removed.map_err(Error::io("remove", &path))?;
            fsutil::sync_dir(&trash)?;
        }
        let inner = Arc::new(BrokerInner {
            dir,
            topics_dir,
            opts,
            topics: RwLock::new(BTreeMap::new()),
            topics_epoch: std::sync::atomic::AtomicU64::new(0),
            admin: Mutex::new(()),
            prefaulter: Prefaulter::start()?,
            closed: AtomicBool::new(false),
            poisoned: AtomicBool::new(false),
            maintenance: Mutex::new(None),
            flusher: Mutex::new(None),
            coordinator: std::sync::OnceLock::new(),
            dir_lock: Mutex::new(Some(lock)),
        });
        let broker = Broker { inner };
        broker.inner.load_topics()?;
        let offsets = match broker.inner.topic(OFFSETS_TOPIC) {
            Ok(t) => t,
            Err(_) => broker.inner.create_topic(
                OFFSETS_TOPIC,
                offsets_topic_config().segment_bytes(broker.inner.opts.offsets_segment_bytes),
            )?,
        };
        let topics = broker.inner.topic_names().into_iter().collect();
        let now = broker.inner.opts.clock.now_ms();
        let coordinator = Coordinator::new(Arc::downgrade(&broker.inner) as _, offsets.partition(0)?, &topics, now)?;
        let _ = broker.inner.coordinator.set(coordinator);
        if let Some(every) = broker.inner.opts.maintenance_interval {
            *broker.inner.maintenance.lock() = Some(start_maintenance(&broker.inner, every)?);
        }
        *broker.inner.flusher.lock() = Some(start_flusher(&broker.inner)?);
        Ok(broker)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Creates a topic. Its metadata is written atomically: after a crash
    /// the topic either exists whole or not at all.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Topic> {
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
        let _admin = inner.admin.lock();
        let topic = inner.topics.write().remove(name).ok_or_else(|| Error::UnknownTopic { topic: name.to_owned() })?;
        inner.topics_epoch.fetch_add(1, Ordering::AcqRel);
        topic.inner.deleted.store(true, Ordering::Release);
        for p in topic.partitions() {
            // The files go away next; a failed clean close changes nothing.
            let _ = p.shutdown();
        }
        // Move out first: a crash mid-delete leaves a directory in the
        // trash, which open empties, never a half-deleted topic.
        static DELETES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let trash = inner.dir.join(TRASH_DIR);
        let unique = (std::process::id(), DELETES.fetch_add(1, Ordering::Relaxed), inner.opts.clock.now_ms());
        let doomed = trash.join(format!("{name}-{}-{}-{}", unique.0, unique.1, unique.2));
        fs::rename(&topic.inner.dir, &doomed).map_err(Error::io("rename", &topic.inner.dir))?;
        fsutil::sync_dir(&inner.topics_dir)?;
        fsutil::sync_dir(&trash)?;
        // Then its committed offsets: a new topic of the same name starts
        // from scratch. (After a crash in between, open forgets the offsets
        // of topics that no longer exist.)
        inner.coordinator().offsets.forget_topic(name, inner.opts.clock.now_ms())?;
        fs::remove_dir_all(&doomed).map_err(Error::io("remove", &doomed))?;
        fsutil::sync_dir(&trash)
    }

    /// Raises a topic's partition count to `new_count` (it can only grow, as
    /// in Kafka). Keys hash to new partitions from then on.
    pub fn add_partitions(&self, name: &str, new_count: u32) -> Result<()> {
        let inner = &*self.inner;
        inner.check_open()?;
        if name == OFFSETS_TOPIC {
            return Err(Error::InvalidConfig(format!("{OFFSETS_TOPIC} is internal")));
        }
        let _admin = inner.admin.lock();
        let topic = inner.topic(name)?;
        let current = topic.partition_count();
        if new_count <= current {
            return Err(Error::InvalidConfig(format!(
                "topic {name:?} has {current} partitions; the count can only grow, not become {new_count}"
            )));
        }
        let mut config = topic.config();
        config.partitions = new_count;
        let mut parts = topic.partitions();
        for p in current..new_count {
            parts.push(Arc::new(inner.open_partition(&topic.inner.dir, p, &config)?));
        }
        // The commit point: until the new count is written, open ignores
        // (and removes) the extra partition directories.
        fsutil::write_atomic(&topic.inner.dir, TOPIC_META, config.encode().as_bytes())?;
        *topic.inner.config.write() = config;
        *topic.inner.partitions.write() = Arc::new(parts);
        inner.topics_epoch.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// A producer with the default configuration (murmur2 for keyed records,
    /// sticky for the rest).
    pub fn producer(&self) -> Producer {
        Producer::new(Arc::clone(&self.inner), ProducerConfig::default())
    }

    /// A producer with `config`.
    pub fn producer_with(&self, config: ProducerConfig) -> Producer {
        Producer::new(Arc::clone(&self.inner), config)
    }

    /// A consumer: `assign` partitions to it, or `subscribe` it to topics
    /// as a member of `config.group_id`.
    pub fn consumer(&self, config: ConsumerConfig) -> Result<Consumer> {
        Consumer::new(Arc::clone(&self.inner), config)
    }

    /// Groups with members in this process or committed offsets.
    pub fn list_groups(&self) -> Vec<String> {
        self.inner.coordinator().group_ids()
    }

    /// Members, assignment, committed offsets and lag of a group.
    pub fn describe_group(&self, group_id: &str) -> Result<GroupDescription> {
        let inner = &*self.inner;
        inner.check_open()?;
        let coordinator = inner.coordinator();
        let committed = coordinator.offsets.of_group(group_id);
        let (generation, assignor, members) = match coordinator.existing_group(group_id) {
            Some(g) => g.describe(),
            None if !committed.is_empty() => (0, Default::default(), Vec::new()),
            None => return Err(Error::InvalidConfig(format!("unknown group {group_id:?}"))),
        };
        let mut tps: std::collections::BTreeSet<TopicPartition> = committed.keys().cloned().collect();
        tps.extend(members.iter().flat_map(|(_, p)| p.iter().cloned()));
        let partitions = tps
            .into_iter()
            .map(|tp| {
                let end =
                    inner.topic(&tp.topic).and_then(|t| t.partition(tp.partition)).map_or(0, |p| p.high_watermark());
                let committed = committed.get(&tp).copied();
                let owner = members.iter().find(|(_, ps)| ps.contains(&tp)).map(|(m, _)| m.clone());
                PartitionOffsets {
                    lag: committed.map(|c| end.saturating_sub(c)),
                    partition: tp,
                    committed,
                    log_end_offset: end,
                    owner,
                }
            })
            .collect();
        Ok(GroupDescription {
            group_id: group_id.to_owned(),
            generation,
            assignor,
            members: members
                .into_iter()
                .map(|(member_id, partitions)| MemberDescription { member_id, partitions })
                .collect(),
            partitions,
        })
    }

    /// Applies retention (topics with a `delete` policy) and compaction
    /// (topics with `compact`) to every partition once, now. The
    /// maintenance thread does this every `maintenance_interval`.
    pub fn run_maintenance(&self) -> Result<MaintenanceReport> {
        self.inner.run_maintenance()
    }

    /// Closes every partition cleanly (so the next open is cheap) and
    /// releases the directory. Dropping the broker does the same, ignoring
    /// errors.
    pub fn close(self) -> Result<()> {
        self.inner.shutdown()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.inner.shutdown();
    }
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").field("dir", &self.inner.dir).field("topics", &self.topics()).finish()
    }
}

impl TopicView for BrokerInner {
    fn topics_epoch(&self) -> u64 {
        self.topics_epoch.load(Ordering::Acquire)
    }

    fn partition_count(&self, topic: &str) -> Option<u32> {
        self.topics.read().get(topic).map(Topic::partition_count)
    }
}

impl BrokerInner {
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned { path: self.dir.clone() });
        }
        if self.closed.load(Ordering::Acquire) { Err(Error::Closed) } else { Ok(()) }
    }

    fn run_maintenance(&self) -> Result<MaintenanceReport> {
        self.check_open()?;
        let now = self.opts.clock.now_ms();
        let mut report = MaintenanceReport::default();
        let topics: Vec<Topic> = self.topics.read().values().cloned().collect();
        for topic in topics {
            let config = topic.config();
            for (i, p) in topic.partitions().iter().enumerate() {
                // One failing partition (a damaged segment, a full disk) must
                // not stop the others: collect its error and go on.
                let mut pass = || -> Result<()> {
                    if config.deletes() {
                        report.segments_deleted += p.apply_retention(now, config.retention, config.retention_bytes)?;
                    }
                    if config.compacts() {
                        let stats = p.compact(now, &config.compaction_options())?;
                        report.records_compacted += stats.records_removed;
                        report.segments_compacted += stats.segments_rewritten;
                    }
                    Ok(())
                };
                match pass() {
                    Ok(()) | Err(Error::Closed) => {}
                    Err(e) => report.failures.push((TopicPartition::new(topic.name(), i as u32), e)),
                }
            }
        }
        Ok(report)
    }

    pub(crate) fn coordinator(&self) -> &Coordinator {
        self.coordinator.get().expect("set by Broker::open")
    }

    pub(crate) fn topic_names(&self) -> Vec<String> {
        self.topics.read().keys().cloned().collect()
    }

    pub(crate) fn topic(&self, name: &str) -> Result<Topic> {
        self.check_open()?;
        self.topics.read().get(name).cloned().ok_or_else(|| Error::UnknownTopic { topic: name.to_owned() })
    }

    /// The topic to produce to: existing, or auto-created if enabled. The
    /// internal offsets topic is written by the coordinator only.
    pub(crate) fn topic_for_produce(&self, name: &str) -> Result<Topic> {
        if name == OFFSETS_TOPIC {
            return Err(Error::InvalidConfig(format!("{OFFSETS_TOPIC} is internal")));
        }
        match self.topic(name) {
            Err(Error::UnknownTopic { .. }) if self.opts.auto_create_topics => {
                match self.create_topic(name, self.opts.default_topic_config.clone()) {
                    Err(Error::TopicExists { .. }) => self.topic(name),
                    other => other,
                }
            }
            other => other,
        }
    }

    fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Topic> {
        self.check_open()?;
        validate_topic_name(name)?;
        // What is stored must reopen: the normalized form is the config.
        let config = config.normalized();
        config.validate()?;
        let _admin = self.admin.lock();
        if self.topics.read().contains_key(name) {
            return Err(Error::TopicExists { topic: name.to_owned() });
        }
        let dir = self.topics_dir.join(name);
        if dir.exists() {
            // Left by a creation that crashed before its metadata was written.
            fs::remove_dir_all(&dir).map_err(Error::io("remove", &dir))?;
        }
        fs::create_dir(&dir).map_err(Error::io("create directory", &dir))?;
        fsutil::sync_dir(&self.topics_dir)?;
        let partitions = (0..config.partitions)
            .map(|p| self.open_partition(&dir, p, &config).map(Arc::new))
            .collect::<Result<_>>()?;
        // The commit point of the creation.
        fsutil::write_atomic(&dir, TOPIC_META, config.encode().as_bytes())?;
        let topic = self.topic_handle(name, dir, config, partitions);
        self.topics.write().insert(name.to_owned(), topic.clone());
        self.topics_epoch.fetch_add(1, Ordering::AcqRel);
        Ok(topic)
    }

    fn topic_handle(&self, name: &str, dir: PathBuf, config: TopicConfig, partitions: Vec<Arc<Partition>>) -> Topic {
        Topic {
            inner: Arc::new(TopicInner {
                name: Arc::from(name),
                dir,
                config: RwLock::new(config),
                partitions: RwLock::new(Arc::new(partitions)),
                deleted: AtomicBool::new(false),
            }),
        }
    }

    fn open_partition(&self, topic_dir: &Path, index: u32, config: &TopicConfig) -> Result<Partition> {
        let opts = config.partition_options().clock(Arc::clone(&self.opts.clock));
        Partition::open_with(&topic_dir.join(index.to_string()), opts, Some(Arc::clone(&self.prefaulter)))
    }

    /// Opens every topic on disk, finishing interrupted deletes, creations
    /// and partition additions.
    fn load_topics(&self) -> Result<()> {
        let mut entries: Vec<(String, PathBuf)> = Vec::new();
        for e in fs::read_dir(&self.topics_dir).map_err(Error::io("list", &self.topics_dir))? {
            let e = e.map_err(Error::io("list", &self.topics_dir))?;
            if let Some(name) = e.file_name().to_str() {
                entries.push((name.to_owned(), e.path()));
            }
        }
        for (name, path) in entries {
            // Anything that is not a topic directory is not ours to touch.
            if validate_topic_name(&name).is_err() || !path.is_dir() {
                continue;
            }
            let meta_path = path.join(TOPIC_META);
            if !meta_path.exists() {
                // A creation that crashed before its metadata was written.
                fs::remove_dir_all(&path).map_err(Error::io("remove", &path))?;
                fsutil::sync_dir(&self.topics_dir)?;
                continue;
            }
            let text = fs::read_to_string(&meta_path).map_err(Error::io("read", &meta_path))?;
            let config = TopicConfig::decode(&text, &meta_path)?;
            remove_extra_partitions(&path, config.partitions)?;
            let partitions = (0..config.partitions)
                .map(|p| self.open_partition(&path, p, &config).map(Arc::new))
                .collect::<Result<_>>()?;
            let topic = self.topic_handle(&name, path, config, partitions);
            self.topics.write().insert(name, topic);
        }
        Ok(())
    }

    fn shutdown(&self) -> Result<()> {
        // Stop the background threads before anything is closed under them.
        let threads = [self.maintenance.lock().take(), self.flusher.lock().take()];
        for t in threads.into_iter().flatten() {
            t.stop();
        }
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let _admin = self.admin.lock();
        let mut first_error = Ok(());
        for topic in self.topics.read().values() {
            for p in topic.partitions() {
                if let Err(e) = p.shutdown()
                    && first_error.is_ok()
                {
                    first_error = Err(e);
                }
            }
        }
        self.prefaulter.shutdown();
        // Producers may outlive the broker (they fail with `Closed`); the
        // directory is free for the next open now.
        drop(self.dir_lock.lock().take());
        first_error
    }
}

/// The broker's background thread: retention and compaction on a schedule.
/// A panic in a pass poisons the broker instead of vanishing with the thread;
/// an error (a full disk, a damaged segment) is retried on the next pass.
fn start_maintenance(broker: &Arc<BrokerInner>, every: Duration) -> Result<Periodic> {
    let (task, on_panic) = (Arc::downgrade(broker), Arc::downgrade(broker));
    Periodic::start(
        "streamlog-maintenance",
        every,
        move || task.upgrade().is_some_and(|b| b.run_maintenance().is_ok() || b.check_open().is_ok()),
        move || {
            if let Some(b) = on_panic.upgrade() {
                b.poisoned.store(true, Ordering::Release);
            }
        },
    )
}

/// How often the broker's flush thread looks for partitions due a sync.
const FLUSH_TICK: Duration = Duration::from_millis(5);

/// The broker's flush thread: one for all partitions with
/// `Durability::Interval`, each synced once its interval has passed. A
/// failed sync poisons that partition (as it would its own flusher).
fn start_flusher(broker: &Arc<BrokerInner>) -> Result<Periodic> {
    let (task, on_panic) = (Arc::downgrade(broker), Arc::downgrade(broker));
    Periodic::start(
        "streamlog-flush",
        FLUSH_TICK,
        move || {
            let Some(b) = task.upgrade() else { return false };
            let topics: Vec<Topic> = b.topics.read().values().cloned().collect();
            for t in topics.iter().filter(|t| matches!(t.config().durability, crate::Durability::Interval(_))) {
                for p in t.partitions() {
                    let _ = p.flush_if_due();
                }
            }
            b.check_open().is_ok()
        },
        move || {
            if let Some(b) = on_panic.upgrade() {
                b.poisoned.store(true, Ordering::Release);
            }
        },
    )
}

/// The internal offsets topic: one compacted partition, kept forever.
fn offsets_topic_config() -> TopicConfig {
    TopicConfig::with_partitions(1).segment_bytes(64 << 20).retention(None).cleanup_policy(CleanupPolicy::Compact)
}

/// Partition directories numbered at or past `count`: left by an
/// `add_partitions` that crashed before its commit point.
fn remove_extra_partitions(topic_dir: &Path, count: u32) -> Result<()> {
    for e in fs::read_dir(topic_dir).map_err(Error::io("list", topic_dir))? {
        let e = e.map_err(Error::io("list", topic_dir))?;
        let index = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok());
        if index.is_some_and(|i| i >= count) && e.path().is_dir() {
            fs::remove_dir_all(e.path()).map_err(Error::io("remove", e.path()))?;
            fsutil::sync_dir(topic_dir)?;
        }
    }
    Ok(())
}

/// Checks the broker's format file, or writes it in a new, empty directory.
fn check_or_init_meta(dir: &Path) -> Result<()> {
    let path = dir.join(BROKER_META);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let version = text.trim().strip_prefix(BROKER_META_HEADER).and_then(|v| v.trim().parse::<u32>().ok());
            match version {
                Some(BROKER_FORMAT_VERSION) => Ok(()),
                Some(version) => Err(Error::UnsupportedFormat { path, version }),
                None => Err(Error::NotAStreamlogDirectory { path: dir.to_owned() }),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let foreign = fs::read_dir(dir)
                .map_err(Error::io("list", dir))?
                .filter_map(|e| e.ok())
                .any(|e| e.file_name() != ".lock" && !e.file_name().to_string_lossy().ends_with(fsutil::TMP_SUFFIX));
            if foreign {
                return Err(Error::NotAStreamlogDirectory { path: dir.to_owned() });
            }
            let text = format!("{BROKER_META_HEADER} {BROKER_FORMAT_VERSION}\n");
            fsutil::write_atomic(dir, BROKER_META, text.as_bytes())
        }
        Err(e) => Err(Error::Io { op: "read", path, source: e }),
    }
}
