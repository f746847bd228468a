//! The broker's shared state: the directory, its lock, the topic registry
//! and the group coordinator. [`Broker`](super::Broker) is its public face;
//! the clients hold an `Arc<BrokerState>` and use only its `pub(crate)`
//! methods.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::broker::BrokerOptions;
use crate::broker::clean::{self, CleanStates};
use crate::broker::topic::{CleanupPolicy, Topic, TopicConfig, TopicInner, validate_topic_name};
use crate::error::{Error, Result};
use crate::group::coordinator::Coordinator;
use crate::group::{OFFSETS_TOPIC, TopicView};
use crate::log::fsutil;
use crate::log::notify::{self, WaitList};
use crate::log::partition::{BrokerLink, BrokerOpen, Partition};
use crate::log::periodic::Periodic;

pub(super) use crate::log::meta::BROKER_META;
pub(super) const BROKER_META_HEADER: &str = "streamlog-broker";
pub(super) const BROKER_FORMAT_VERSION: u32 = 1;
pub(crate) const TOPICS_DIR: &str = "topics";
pub(crate) const TOPIC_META: &str = "topic.meta";
/// Topic directories being deleted are moved here first; open empties it.
pub(super) const TRASH_DIR: &str = "deleted";
/// A topic is created as `topics/~<name>`, then renamed into place. `~`
/// never appears in a topic name.
const CREATING_PREFIX: &str = "~";

fn creating_dir_name(topic: &str) -> String {
    format!("{CREATING_PREFIX}{topic}")
}

pub(crate) struct BrokerState {
    pub(super) dir: PathBuf,
    pub(super) topics_dir: PathBuf,
    pub(super) opts: BrokerOptions,
    pub(super) topics: RwLock<BTreeMap<String, Topic>>,
    /// Bumped after every change to the set of topics or their partitions,
    /// so producers can cache lookups and notice when to redo them.
    pub(super) topics_epoch: AtomicU64,
    /// Serializes changes to the set of topics and their partition counts.
    pub(super) admin: Mutex<()>,
    /// The prefault thread, the mapping cache and the clean marker, shared
    /// by every partition.
    pub(super) link: BrokerLink,
    /// The clean marker's states, taken by the partitions as they open.
    pub(super) clean_states: Mutex<CleanStates>,
    pub(super) closed: AtomicBool,
    /// Set when the maintenance thread panicked: the broker refuses work.
    pub(super) poisoned: AtomicBool,
    pub(super) maintenance: Mutex<Option<Periodic>>,
    /// Syncs partitions with `Durability::Interval` when they are due.
    pub(super) flusher: Mutex<Option<Periodic>>,
    /// Consumer groups and committed offsets; set once the topics are open.
    pub(super) coordinator: std::sync::OnceLock<Coordinator>,
    /// The directory lock, held until the broker is closed.
    pub(super) dir_lock: Mutex<Option<File>>,
    /// Every consumer's waiter, for its lifetime: closing the broker or
    /// deleting a topic wakes them all, whatever they wait on.
    pub(crate) waiters: WaitList,
    /// Wakes the tasks of async consumers at their group's deadlines.
    pub(crate) timer: crate::log::notify::Timer,
    /// Set while open with `fsync(false)`: no sync under the directory.
    pub(super) no_sync: Mutex<Option<fsutil::NoSyncRoot>>,
    /// A [`Broker::temporary`](super::Broker::temporary) directory: removed
    /// at close.
    pub(super) temporary: AtomicBool,
    /// Counters behind [`Broker::stats`](super::Broker::stats).
    pub(crate) stats: crate::broker::stats::Counters,
}

impl TopicView for BrokerState {
    fn topics_epoch(&self) -> u64 {
        BrokerState::topics_epoch(self)
    }

    fn partition_count(&self, topic: &str) -> Option<u32> {
        self.topics.read().get(topic).map(Topic::partition_count)
    }
}

impl BrokerState {
    /// Now, by the broker's clock.
    pub(crate) fn now_ms(&self) -> i64 {
        self.opts.clock.now_ms()
    }

    /// See [`TopicView::topics_epoch`].
    pub(crate) fn topics_epoch(&self) -> u64 {
        self.topics_epoch.load(Ordering::Acquire)
    }

    /// Whether the broker is closed (a `SeqCst` load, for waiters).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Tells the flush thread (idle while no topic uses
    /// `Durability::Interval`) that the topics changed.
    pub(crate) fn poke_flusher(&self) {
        if let Some(f) = self.flusher.lock().as_ref() {
            f.poke();
        }
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned { path: self.dir.clone() });
        }
        if self.closed.load(Ordering::Acquire) { Err(Error::Closed) } else { Ok(()) }
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

    pub(super) fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Topic> {
        let topic = self.add_topic(name, config)?;
        // A consumer waiting for it (subscribed by name or by pattern)
        // takes its partitions at its next step: wake them all, as a new
        // topic is rare. Once the admin lock is let go: a waker may run its
        // task on the spot, and the task create a topic.
        self.waiters.wake_all();
        Ok(topic)
    }

    /// `create_topic` without the wake-up.
    fn add_topic(&self, name: &str, config: TopicConfig) -> Result<Topic> {
        self.check_open()?;
        validate_topic_name(name)?;
        // What is stored must reopen: the normalized form is the config.
        let config = config.normalized();
        config.validate()?;
        let _admin = self.admin.lock();
        // Again under the lock: a close that began while this waited for it
        // has released the directory by now.
        self.check_open()?;
        if self.topics.read().contains_key(name) {
            return Err(Error::TopicExists { topic: name.to_owned() });
        }
        self.link.marker.invalidate()?;
        let dir = self.topics_dir.join(name);
        if dir.exists() {
            // Not loaded, yet there: never ours to remove (it may hold data).
            return Err(Error::Corrupt {
                path: dir,
                position: 0,
                reason: "a directory of this name exists but holds no loaded topic; move it away".into(),
            });
        }
        // Created under a temporary name, renamed into place as the commit
        // point: a crash before leaves a directory open recognises and
        // removes; after, a whole topic. A topic directory without its
        // metadata is then damage, never an interrupted creation.
        let creating = self.topics_dir.join(creating_dir_name(name));
        if creating.exists() {
            fs::remove_dir_all(&creating).map_err(Error::io("remove", &creating))?;
        }
        fs::create_dir(&creating).map_err(Error::io("create directory", &creating))?;
        fsutil::write_atomic(&creating, TOPIC_META, config.encode().as_bytes())?;
        fs::rename(&creating, &dir).map_err(Error::io("rename", &creating))?;
        fsutil::sync_dir(&self.topics_dir)?;
        // The partitions are made without a directory sync each: one sync
        // of the topic directory makes their entries durable, and each
        // partition syncs its own directory before its first sync of data
        // (a crash before that loses only empty segment files, made again
        // on open).
        let opened = self
            .open_partitions(name, &dir, 0..config.partitions, &config, true)
            .and_then(|p| fsutil::sync_dir(&dir).map(|()| p));
        let partitions = match opened {
            Ok(partitions) => partitions,
            Err(e) => {
                // A new topic holds no records yet: undo it whole.
                if fs::remove_dir_all(&dir).is_ok() {
                    let _ = fsutil::sync_dir(&self.topics_dir);
                }
                return Err(e);
            }
        };
        let topic = self.topic_handle(name, dir, config, partitions);
        self.topics.write().insert(name.to_owned(), topic.clone());
        self.topics_epoch.fetch_add(1, Ordering::AcqRel);
        if matches!(topic.config().durability, crate::Durability::Interval(_)) {
            self.poke_flusher();
        }
        Ok(topic)
    }

    fn topic_handle(&self, name: &str, dir: PathBuf, config: TopicConfig, partitions: Vec<Arc<Partition>>) -> Topic {
        Topic {
            inner: Arc::new(TopicInner {
                name: crate::TopicName::from(name),
                dir,
                config: RwLock::new(config),
                partitions: RwLock::new(Arc::new(partitions)),
                deleted: AtomicBool::new(false),
            }),
        }
    }

    /// Opens partition `index` of topic `name`; `create` when it is being
    /// created (by `create_topic` or `add_partitions`, which then sync the
    /// topic directory).
    pub(super) fn open_partition(
        &self,
        name: &str,
        topic_dir: &Path,
        index: u32,
        config: &TopicConfig,
        create: bool,
    ) -> Result<Partition> {
        let opts = config.partition_options().clock(Arc::clone(&self.opts.clock)).repair(self.opts.repair);
        let clean = self.clean_states.lock().remove(&(name.to_owned(), index));
        let open = BrokerOpen { link: self.link.clone(), clean, create };
        Partition::open_with(&topic_dir.join(index.to_string()), opts, Some(open))
    }

    /// Opens partitions `range` of topic `name`, on a few threads when there
    /// are many: each open is a few dozen system calls, independent of the
    /// others.
    pub(super) fn open_partitions(
        &self,
        name: &str,
        topic_dir: &Path,
        range: std::ops::Range<u32>,
        config: &TopicConfig,
        create: bool,
    ) -> Result<Vec<Arc<Partition>>> {
        const PER_THREAD: usize = 64;
        let indexes: Vec<u32> = range.collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(indexes.len() / PER_THREAD);
        let open_chunk = |chunk: &[u32]| -> Result<Vec<Arc<Partition>>> {
            chunk.iter().map(|&p| self.open_partition(name, topic_dir, p, config, create).map(Arc::new)).collect()
        };
        if threads <= 1 {
            return open_chunk(&indexes);
        }
        let chunks: Vec<Result<Vec<Arc<Partition>>>> = std::thread::scope(|s| {
            let handles: Vec<_> = indexes
                .chunks(indexes.len().div_ceil(threads))
                .map(|chunk| {
                    std::thread::Builder::new().name("streamlog-open".into()).spawn_scoped(s, || open_chunk(chunk))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| match h {
                    Ok(h) => h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                    Err(e) => Err(Error::Io { op: "spawn", path: topic_dir.to_owned(), source: e }),
                })
                .collect()
        });
        let mut all = Vec::with_capacity(indexes.len());
        for chunk in chunks {
            all.extend(chunk?);
        }
        Ok(all)
    }

    /// Opens every topic on disk, finishing interrupted deletes, creations
    /// and partition additions.
    pub(super) fn load_topics(&self) -> Result<()> {
        let mut entries: Vec<(String, PathBuf)> = Vec::new();
        for e in fs::read_dir(&self.topics_dir).map_err(Error::io("list", &self.topics_dir))? {
            let e = e.map_err(Error::io("list", &self.topics_dir))?;
            if let Some(name) = e.file_name().to_str() {
                entries.push((name.to_owned(), e.path()));
            }
        }
        for (name, path) in entries {
            if name.strip_prefix(CREATING_PREFIX).is_some_and(|n| validate_topic_name(n).is_ok()) && path.is_dir() {
                // A creation that crashed before its commit point.
                self.link.marker.invalidate()?;
                fs::remove_dir_all(&path).map_err(Error::io("remove", &path))?;
                fsutil::sync_dir(&self.topics_dir)?;
                continue;
            }
            // Anything that is not a topic directory is not ours to touch.
            if validate_topic_name(&name).is_err() || !path.is_dir() {
                continue;
            }
            let meta_path = path.join(TOPIC_META);
            let bytes = match fs::read(&meta_path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if name == OFFSETS_TOPIC && self.opts.repair {
                        // Its configuration is known: write it again.
                        self.link.marker.invalidate()?;
                        let config = offsets_topic_config().segment_bytes(self.opts.offsets_segment_bytes);
                        fsutil::write_atomic(&path, TOPIC_META, config.encode().as_bytes())?;
                        config.encode().into_bytes()
                    } else {
                        return Err(Error::Corrupt {
                            path: meta_path,
                            position: 0,
                            reason: "the topic's metadata file is missing; its data is kept. Restore the file \
                                     (or move the topic directory away); `repair` cannot guess a topic's \
                                     configuration, but rewrites the internal offsets topic's"
                                .into(),
                        });
                    }
                }
                Err(e) => return Err(Error::Io { op: "read", path: meta_path, source: e }),
            };
            let text = String::from_utf8(bytes).map_err(|e| Error::Corrupt {
                path: meta_path.clone(),
                position: e.utf8_error().valid_up_to() as u64,
                reason: "topic metadata is not UTF-8".into(),
            })?;
            let config = TopicConfig::decode(&text, &meta_path)?;
            remove_extra_partitions(&path, config.partitions, &self.link)?;
            let partitions = self.open_partitions(&name, &path, 0..config.partitions, &config, false)?;
            let topic = self.topic_handle(&name, path, config, partitions);
            self.topics.write().insert(name, topic);
        }
        Ok(())
    }

    pub(super) fn shutdown(&self) -> Result<()> {
        // Stop the background threads before anything is closed under them.
        let threads = [self.maintenance.lock().take(), self.flusher.lock().take()];
        for t in threads.into_iter().flatten() {
            t.stop();
        }
        // SeqCst, then wake: pairs with the consumer's fence and check
        // before it parks (see `Consumer::wait`).
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let _span = tracing::info_span!("streamlog.close", dir = %self.dir.display()).entered();
        // A waker that panics is let go on only once the close is done:
        // `closed` is set, so a second close would not finish it.
        let mut panicked = None;
        notify::catch_panic(&mut panicked, || self.waiters.wake_all());
        self.timer.shutdown();
        let _admin = self.admin.lock();
        let mut first_error = Ok(());
        let mut states = Vec::new();
        for (name, topic) in self.topics.read().iter() {
            for (i, p) in topic.partitions().iter().enumerate() {
                let (closed, panic) = p.shutdown_keeping_panic();
                panicked = panicked.or(panic);
                match closed {
                    Ok(Some(state)) => states.push((name.clone(), i as u32, state)),
                    Ok(None) => {}
                    Err(e) if first_error.is_ok() => first_error = Err(e),
                    Err(_) => {}
                }
            }
        }
        // Nothing changed since a clean open: the marker is still right.
        // Otherwise one marker for all: partitions that failed to close are
        // left out, and recovered on the next open.
        if !self.link.marker.is_present()
            && let Err(e) = clean::write(&self.dir, &states)
            && first_error.is_ok()
        {
            first_error = Err(e);
        }
        self.link.prefaulter.shutdown();
        // The partitions waited for their seals when they closed.
        self.link.sealer.shutdown();
        // Producers may outlive the broker (they fail with `Closed`); the
        // directory is free for the next open now.
        drop(self.dir_lock.lock().take());
        drop(self.no_sync.lock().take());
        match &first_error {
            Ok(()) => tracing::info!(
                dir = %self.dir.display(),
                partitions_sealed = states.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "closed the broker"
            ),
            Err(e) => tracing::error!(dir = %self.dir.display(), error = %e, "closed the broker, not cleanly"),
        }
        if self.temporary.load(Ordering::Acquire) {
            crate::broker::temporary::remove_later(self.dir.clone());
        }
        drop(_admin);
        notify::resume_panic(panicked);
        first_error
    }
}

/// The internal offsets topic: one compacted partition, kept forever.
pub(super) fn offsets_topic_config() -> TopicConfig {
    TopicConfig::with_partitions(1).segment_bytes(64 << 20).retention(None).cleanup_policy(CleanupPolicy::Compact)
}

/// Partition directories numbered at or past `count`: left by an
/// `add_partitions` that crashed before its commit point.
pub(super) fn remove_extra_partitions(topic_dir: &Path, count: u32, link: &BrokerLink) -> Result<()> {
    for e in fs::read_dir(topic_dir).map_err(Error::io("list", topic_dir))? {
        let e = e.map_err(Error::io("list", topic_dir))?;
        let index = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok());
        if index.is_some_and(|i| i >= count) && e.path().is_dir() {
            link.marker.invalidate()?;
            fs::remove_dir_all(e.path()).map_err(Error::io("remove", e.path()))?;
            fsutil::sync_dir(topic_dir)?;
        }
    }
    Ok(())
}

/// Checks the broker's format file, or writes it in a new, empty directory.
pub(super) fn check_or_init_meta(dir: &Path) -> Result<()> {
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
            let foreign = fs::read_dir(dir).map_err(Error::io("list", dir))?.filter_map(|e| e.ok()).any(|e| {
                e.file_name() != crate::log::meta::LOCK_FILE
                    && !e.file_name().to_string_lossy().ends_with(fsutil::TMP_SUFFIX)
            });
            if foreign {
                return Err(Error::NotAStreamlogDirectory { path: dir.to_owned() });
            }
            let text = format!("{BROKER_META_HEADER} {BROKER_FORMAT_VERSION}\n");
            fsutil::write_atomic(dir, BROKER_META, text.as_bytes())
        }
        Err(e) => Err(Error::Io { op: "read", path, source: e }),
    }
}

/// Checks the broker's format file without writing anything: a directory
/// without one is not a data directory.
pub(crate) fn check_meta(dir: &Path) -> Result<()> {
    if !dir.join(BROKER_META).is_file() {
        return Err(Error::NotAStreamlogDirectory { path: dir.to_owned() });
    }
    check_or_init_meta(dir)
}
