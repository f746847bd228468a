//! The offset store: committed offsets as records of the compacted
//! `__consumer_offsets` partition, replayed into a map on open.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::group::{MAX_GROUP_ID_LEN, TopicPartition};
use crate::log::partition::Partition;
use crate::log::record::Record;

/// Committed offsets, durable in the `__consumer_offsets` log.
///
/// Record key: `1u8`, group (u16 length + UTF-8), topic (u16 length +
/// UTF-8), partition (u32), all little-endian. Value: `1u8`, offset (u64),
/// commit time in ms (i64); or, when the commit carries metadata, `2u8`,
/// the same, then the metadata (u16 length + UTF-8). The latest record per
/// key wins, so the log compacts to one record per committed partition. A
/// null value is a tombstone; a value replay cannot read (a newer build's
/// version, damage) is skipped, leaving the commit before it (until
/// compaction, which keeps only the latest record of a key).
pub(crate) struct OffsetStore {
    /// The offsets log, once it exists: it is made on the first commit, so
    /// a broker that never commits (a test's, say) never creates it.
    log: OnceLock<Arc<Partition>>,
    /// Creates the offsets log; held while it does, so it runs once.
    create: Mutex<CreateLog>,
    committed: RwLock<HashMap<(String, TopicPartition), Committed>>,
    /// Serializes appends with their map updates, so the map and the log
    /// agree on which commit came last.
    write: Mutex<()>,
}

/// Makes the offsets log (creates the internal topic).
pub(crate) type CreateLog = Box<dyn Fn() -> Result<Arc<Partition>> + Send + Sync>;

const OFFSET_RECORD_VERSION: u8 = 1;
/// A value that carries the commit's metadata string. Commits without
/// metadata are still written as version 1, readable by older builds.
const OFFSET_VALUE_WITH_METADATA: u8 = 2;
/// Version 1 value: version, offset, commit time.
const VALUE_V1_LEN: usize = 1 + 8 + 8;

/// Longest metadata string stored with a committed offset, in bytes
/// (Kafka's default `offset.metadata.max.bytes`).
pub const MAX_OFFSET_METADATA_LEN: usize = 4096;

/// A committed offset with the metadata string committed with it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetAndMetadata {
    /// The next offset to read.
    pub offset: u64,
    /// Whatever the committer attached (Kafka's `OffsetAndMetadata.metadata`);
    /// empty if nothing. At most [`MAX_OFFSET_METADATA_LEN`] bytes.
    pub metadata: String,
}

impl OffsetAndMetadata {
    /// `offset` with `metadata`.
    pub fn new(offset: u64, metadata: impl Into<String>) -> OffsetAndMetadata {
        OffsetAndMetadata { offset, metadata: metadata.into() }
    }
}

/// What the store keeps per committed partition: the metadata is rare, so
/// it costs a pointer when absent.
#[derive(Clone)]
struct Committed {
    offset: u64,
    metadata: Option<Box<str>>,
}

impl Committed {
    fn to_public(&self) -> OffsetAndMetadata {
        OffsetAndMetadata { offset: self.offset, metadata: self.metadata.as_deref().unwrap_or_default().to_owned() }
    }
}

fn offset_key(group: &str, tp: &TopicPartition) -> Bytes {
    let mut k = Vec::with_capacity(1 + 2 + group.len() + 2 + tp.topic.len() + 4);
    k.push(OFFSET_RECORD_VERSION);
    k.extend_from_slice(&(group.len() as u16).to_le_bytes());
    k.extend_from_slice(group.as_bytes());
    k.extend_from_slice(&(tp.topic.len() as u16).to_le_bytes());
    k.extend_from_slice(tp.topic.as_bytes());
    k.extend_from_slice(&tp.partition.to_le_bytes());
    Bytes::from(k)
}

pub(crate) fn parse_offset_key(k: &[u8]) -> Option<(String, TopicPartition)> {
    let (&version, rest) = k.split_first()?;
    if version != OFFSET_RECORD_VERSION {
        return None;
    }
    let take_str = |b: &[u8]| -> Option<(String, usize)> {
        let n = u16::from_le_bytes(b.get(..2)?.try_into().ok()?) as usize;
        Some((std::str::from_utf8(b.get(2..2 + n)?).ok()?.to_owned(), 2 + n))
    };
    let (group, used) = take_str(rest)?;
    let rest = &rest[used..];
    let (topic, used) = take_str(rest)?;
    let partition = u32::from_le_bytes(rest.get(used..used + 4)?.try_into().ok()?);
    (rest.len() == used + 4).then_some((group, TopicPartition { topic, partition }))
}

/// The offset of a value record, without its metadata.
pub(crate) fn parse_offset_value(v: &[u8]) -> Option<u64> {
    parse_offset_value_with_metadata(v).map(|(o, _)| o)
}

/// The offset of a value record and its metadata (`None` for a version-1
/// value, which has none).
pub(crate) fn parse_offset_value_with_metadata(v: &[u8]) -> Option<(u64, Option<&str>)> {
    let offset = u64::from_le_bytes(v.get(1..9)?.try_into().ok()?);
    match v[0] {
        OFFSET_RECORD_VERSION => (v.len() == VALUE_V1_LEN).then_some((offset, None)),
        OFFSET_VALUE_WITH_METADATA => {
            let rest = v.get(VALUE_V1_LEN..)?;
            let n = u16::from_le_bytes(rest.get(..2)?.try_into().ok()?) as usize;
            let text = std::str::from_utf8(rest.get(2..)?).ok()?;
            (text.len() == n).then_some((offset, Some(text)))
        }
        _ => None,
    }
}

/// The value record of a commit.
fn offset_value(offset: u64, now_ms: i64, metadata: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(VALUE_V1_LEN + if metadata.is_empty() { 0 } else { 2 + metadata.len() });
    v.push(if metadata.is_empty() { OFFSET_RECORD_VERSION } else { OFFSET_VALUE_WITH_METADATA });
    v.extend_from_slice(&offset.to_le_bytes());
    v.extend_from_slice(&now_ms.to_le_bytes());
    if !metadata.is_empty() {
        v.extend_from_slice(&(metadata.len() as u16).to_le_bytes());
        v.extend_from_slice(metadata.as_bytes());
    }
    v
}

impl OffsetStore {
    /// Replays the offsets log, if there is one yet; `create` makes it
    /// when the first commit needs it.
    pub(super) fn load(log: Option<Arc<Partition>>, create: CreateLog) -> Result<OffsetStore> {
        let store = OffsetStore {
            log: OnceLock::new(),
            create: Mutex::new(create),
            committed: RwLock::new(HashMap::new()),
            write: Mutex::new(()),
        };
        let Some(log) = log else { return Ok(store) };
        let mut committed = HashMap::new();
        let mut next = log.log_start_offset();
        while next < log.high_watermark() {
            let batches = log.read(next, 1 << 20)?;
            if batches.is_empty() {
                break;
            }
            for batch in batches {
                for r in batch.try_records()? {
                    let Some(key) = r.key.as_deref().and_then(parse_offset_key) else { continue };
                    let Some(value) = r.value.as_deref() else {
                        committed.remove(&key);
                        continue;
                    };
                    match parse_offset_value_with_metadata(value) {
                        Some((offset, md)) => {
                            committed.insert(key, Committed { offset, metadata: md.map(Box::from) });
                        }
                        // Not a tombstone (a newer build's value version, or
                        // damage): the commit before it stands, rather than
                        // the group falling back to `auto_offset_reset`.
                        None => tracing::warn!(
                            group = %key.0,
                            partition = %key.1,
                            offset = r.offset,
                            "keeping the previous commit: the offsets log holds a value this build cannot read"
                        ),
                    }
                }
                next = batch.next_offset();
            }
        }
        *store.committed.write() = committed;
        let _ = store.log.set(log);
        Ok(store)
    }

    /// The offsets log, made now if this is the first commit. Called before
    /// taking `write`: making it takes the broker's admin lock, which a
    /// topic delete holds while it forgets offsets under `write`.
    fn log_or_create(&self) -> Result<&Arc<Partition>> {
        if let Some(log) = self.log.get() {
            return Ok(log);
        }
        let create = self.create.lock();
        if let Some(log) = self.log.get() {
            return Ok(log);
        }
        let log = create()?;
        Ok(self.log.get_or_init(|| log))
    }

    pub fn get(&self, group: &str, tp: &TopicPartition) -> Option<u64> {
        self.committed.read().get(&(group.to_owned(), tp.clone())).map(|c| c.offset)
    }

    /// The committed offset of `tp` with its metadata.
    pub fn get_with_metadata(&self, group: &str, tp: &TopicPartition) -> Option<OffsetAndMetadata> {
        self.committed.read().get(&(group.to_owned(), tp.clone())).map(Committed::to_public)
    }

    /// Commits without metadata (clearing any committed before).
    pub fn commit(
        &self,
        group: &str,
        offsets: &[(TopicPartition, u64)],
        logs: &[Arc<Partition>],
        now_ms: i64,
    ) -> Result<()> {
        let offsets: Vec<(TopicPartition, u64, &str)> = offsets.iter().map(|(tp, o)| (tp.clone(), *o, "")).collect();
        self.commit_with_metadata(group, &offsets, logs, now_ms)
    }

    /// Appends the commits as one batch, then makes them visible. Commits
    /// for partitions whose log is closed by now (a topic deleted since the
    /// caller looked it up) are dropped, under the same lock that
    /// `forget_topic` takes, so a deleted topic's offsets never come back.
    /// Each commit replaces the partition's metadata (empty clears it).
    pub fn commit_with_metadata(
        &self,
        group: &str,
        offsets: &[(TopicPartition, u64, &str)],
        logs: &[Arc<Partition>],
        now_ms: i64,
    ) -> Result<()> {
        if group.len() > MAX_GROUP_ID_LEN {
            // Its u16 length would wrap: the commit would vanish on replay.
            return Err(Error::GroupIdTooLong { len: group.len(), max: MAX_GROUP_ID_LEN });
        }
        if let Some(len) = offsets.iter().map(|(_, _, m)| m.len()).find(|&n| n > MAX_OFFSET_METADATA_LEN) {
            return Err(Error::OffsetMetadataTooLarge { len, max: MAX_OFFSET_METADATA_LEN });
        }
        let log = self.log_or_create()?;
        let _w = self.write.lock();
        let offsets: Vec<&(TopicPartition, u64, &str)> =
            offsets.iter().zip(logs).filter(|(_, log)| !log.is_closed()).map(|(o, _)| o).collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let records: Vec<Record> = offsets
            .iter()
            .map(|(tp, off, md)| {
                Record::new(offset_value(*off, now_ms, md)).with_key(offset_key(group, tp)).with_timestamp(now_ms)
            })
            .collect();
        log.append(&records)?;
        let mut map = self.committed.write();
        for (tp, offset, md) in offsets {
            let metadata = (!md.is_empty()).then(|| Box::from(*md));
            map.insert((group.to_owned(), tp.clone()), Committed { offset: *offset, metadata });
        }
        Ok(())
    }

    /// Forgets every group's offsets of `topic` (deleted), durably.
    pub fn forget_topic(&self, topic: &str, now_ms: i64) -> Result<()> {
        self.forget(|_, tp| tp.topic == topic, now_ms)
    }

    /// Removes every committed offset of `group`, durably.
    pub fn forget_group(&self, group: &str, now_ms: i64) -> Result<()> {
        self.forget(|g, _| g == group, now_ms)
    }

    /// Writes tombstones for the commits that `doomed` picks and syncs them.
    fn forget(&self, doomed: impl Fn(&str, &TopicPartition) -> bool, now_ms: i64) -> Result<()> {
        let _w = self.write.lock();
        let doomed: Vec<(String, TopicPartition)> =
            self.committed.read().keys().filter(|(g, tp)| doomed(g, tp)).cloned().collect();
        // Something committed, so the log exists.
        let Some(log) = self.log.get().filter(|_| !doomed.is_empty()) else { return Ok(()) };
        let tombstones: Vec<Record> =
            doomed.iter().map(|(g, tp)| Record::tombstone(offset_key(g, tp)).with_timestamp(now_ms)).collect();
        log.append(&tombstones)?;
        // As durable as the delete itself.
        log.flush()?;
        let mut map = self.committed.write();
        for k in &doomed {
            map.remove(k);
        }
        Ok(())
    }

    /// Committed offsets of one group.
    pub fn of_group(&self, group: &str) -> BTreeMap<TopicPartition, u64> {
        self.committed
            .read()
            .iter()
            .filter(|((g, _), _)| g == group)
            .map(|((_, tp), c)| (tp.clone(), c.offset))
            .collect()
    }

    /// Committed offsets of one group, with their metadata.
    pub fn of_group_with_metadata(&self, group: &str) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
        self.committed
            .read()
            .iter()
            .filter(|((g, _), _)| g == group)
            .map(|((_, tp), c)| (tp.clone(), c.to_public()))
            .collect()
    }

    /// Topics with committed offsets.
    pub(super) fn topics(&self) -> BTreeSet<String> {
        self.committed.read().keys().map(|(_, tp)| tp.topic.clone()).collect()
    }

    pub(super) fn groups(&self) -> BTreeSet<String> {
        self.committed.read().keys().map(|(g, _)| g.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_records_round_trip() {
        let tp = TopicPartition::new("orders", 7);
        let k = offset_key("g1", &tp);
        assert_eq!(parse_offset_key(&k), Some(("g1".to_owned(), tp)));
        assert_eq!(parse_offset_key(&k[..k.len() - 1]), None);
        assert_eq!(parse_offset_key(b""), None);
    }

    #[test]
    fn offset_values_with_and_without_metadata() {
        // A version-1 value (no metadata), as every build wrote before
        // metadata was stored: still read.
        let v1 = offset_value(42, 7, "");
        assert_eq!(v1.len(), VALUE_V1_LEN);
        assert_eq!(v1[0], 1);
        assert_eq!(parse_offset_value_with_metadata(&v1), Some((42, None)));
        let v2 = offset_value(43, 7, "checkpoint-9");
        assert_eq!(v2[0], 2);
        assert_eq!(parse_offset_value_with_metadata(&v2), Some((43, Some("checkpoint-9"))));
        assert_eq!(parse_offset_value(&v2), Some(43));
        // Damaged: a short or over-long metadata, a wrong length, unknown version.
        assert_eq!(parse_offset_value_with_metadata(&v2[..v2.len() - 1]), None);
        let mut long = v2.clone();
        long.push(b'x');
        assert_eq!(parse_offset_value_with_metadata(&long), None);
        assert_eq!(parse_offset_value_with_metadata(&v1[..16]), None);
        let mut v3 = v1.clone();
        v3[0] = 3;
        assert_eq!(parse_offset_value_with_metadata(&v3), None);
        assert_eq!(parse_offset_value_with_metadata(&[]), None);
    }
}
