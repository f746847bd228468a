//! The offset store: committed offsets as records of the compacted
//! `__consumer_offsets` partition, replayed into a map on open.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

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
/// commit time in ms (i64). The latest record per key wins, so the log
/// compacts to one record per committed partition.
pub(crate) struct OffsetStore {
    log: Arc<Partition>,
    committed: RwLock<HashMap<(String, TopicPartition), u64>>,
    /// Serializes appends with their map updates, so the map and the log
    /// agree on which commit came last.
    write: Mutex<()>,
}

const OFFSET_RECORD_VERSION: u8 = 1;

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

pub(crate) fn parse_offset_value(v: &[u8]) -> Option<u64> {
    (v.len() == 17 && v[0] == OFFSET_RECORD_VERSION).then(|| u64::from_le_bytes(v[1..9].try_into().expect("8 bytes")))
}

impl OffsetStore {
    /// Replays the offsets log.
    pub(super) fn load(log: Arc<Partition>) -> Result<OffsetStore> {
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
                    match r.value.as_deref().and_then(parse_offset_value) {
                        Some(offset) => committed.insert(key, offset),
                        None => committed.remove(&key),
                    };
                }
                next = batch.next_offset();
            }
        }
        Ok(OffsetStore { log, committed: RwLock::new(committed), write: Mutex::new(()) })
    }

    pub fn get(&self, group: &str, tp: &TopicPartition) -> Option<u64> {
        self.committed.read().get(&(group.to_owned(), tp.clone())).copied()
    }

    /// Appends the commits as one batch, then makes them visible. Commits
    /// for partitions whose log is closed by now (a topic deleted since the
    /// caller looked it up) are dropped, under the same lock that
    /// `forget_topic` takes, so a deleted topic's offsets never come back.
    pub fn commit(
        &self,
        group: &str,
        offsets: &[(TopicPartition, u64)],
        logs: &[Arc<Partition>],
        now_ms: i64,
    ) -> Result<()> {
        if group.len() > MAX_GROUP_ID_LEN {
            // Its u16 length would wrap: the commit would vanish on replay.
            return Err(Error::GroupIdTooLong { len: group.len(), max: MAX_GROUP_ID_LEN });
        }
        let _w = self.write.lock();
        let offsets: Vec<(TopicPartition, u64)> =
            offsets.iter().zip(logs).filter(|(_, log)| !log.is_closed()).map(|(o, _)| o.clone()).collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let records: Vec<Record> = offsets
            .iter()
            .map(|(tp, off)| {
                let mut v = Vec::with_capacity(17);
                v.push(OFFSET_RECORD_VERSION);
                v.extend_from_slice(&off.to_le_bytes());
                v.extend_from_slice(&now_ms.to_le_bytes());
                Record::new(v).with_key(offset_key(group, tp)).with_timestamp(now_ms)
            })
            .collect();
        self.log.append(&records)?;
        let mut map = self.committed.write();
        for (tp, off) in offsets {
            map.insert((group.to_owned(), tp), off);
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
        if doomed.is_empty() {
            return Ok(());
        }
        let tombstones: Vec<Record> =
            doomed.iter().map(|(g, tp)| Record::tombstone(offset_key(g, tp)).with_timestamp(now_ms)).collect();
        self.log.append(&tombstones)?;
        // As durable as the delete itself.
        self.log.flush()?;
        let mut map = self.committed.write();
        for k in &doomed {
            map.remove(k);
        }
        Ok(())
    }

    /// Committed offsets of one group.
    pub fn of_group(&self, group: &str) -> BTreeMap<TopicPartition, u64> {
        self.committed.read().iter().filter(|((g, _), _)| g == group).map(|((_, tp), o)| (tp.clone(), *o)).collect()
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
}
