//! The broker's clean-shutdown marker, `<dir>/.clean_shutdown`: the
//! [`CleanState`] of every partition a clean close left, in one file. Its
//! presence means every partition it lists is exactly as that close left
//! it, so open trusts them without a scan and without a write. It is
//! removed (and the directory synced) once, before the first change to any
//! file after open; `close` writes it again (one atomic write for all
//! partitions). Layout in `docs/FORMAT.md`.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use crate::error::{Error, Result};
use crate::log::fsutil;
use crate::log::meta::CleanState;

pub(super) use crate::log::meta::BROKER_CLEAN_MARKER as CLEAN_FILE;
const MAGIC: &[u8; 4] = b"SLBC";
/// Version 2: the clean states' segment fingerprints cover file lengths
/// (see `SegmentFingerprint`). A version-1 marker vouches for nothing.
const VERSION: u8 = 2;

/// Clean states by (topic, partition).
pub(super) type CleanStates = HashMap<(String, u32), CleanState>;

/// Encodes the marker: magic, version, 3 zero bytes, the entry count (u32),
/// the entries, and a CRC-32 of everything before it. An entry: topic name
/// length (u16) and bytes, partition (u32), field count (u16), fields (u64).
fn encode(states: &[(String, u32, CleanState)]) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + states.len() * 40);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&[VERSION, 0, 0, 0]);
    b.extend_from_slice(&(states.len() as u32).to_le_bytes());
    for (topic, partition, state) in states {
        b.extend_from_slice(&(topic.len() as u16).to_le_bytes());
        b.extend_from_slice(topic.as_bytes());
        b.extend_from_slice(&partition.to_le_bytes());
        let fields = state.to_fields();
        b.extend_from_slice(&(fields.len() as u16).to_le_bytes());
        for f in fields {
            b.extend_from_slice(&f.to_le_bytes());
        }
    }
    b.extend_from_slice(&crc32fast::hash(&b).to_le_bytes());
    b
}

/// `None` unless `b` is an intact marker of this version.
fn decode(b: &[u8]) -> Option<CleanStates> {
    let body = b.len().checked_sub(4).map(|n| &b[..n])?;
    if crc32fast::hash(body).to_le_bytes() != b[body.len()..] || body.get(..4)? != MAGIC || body.get(4)? != &VERSION {
        return None;
    }
    let mut at: usize = 8;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = body.get(at..at.checked_add(n)?)?;
        at += n;
        Some(s)
    };
    let count = u32::from_le_bytes(take(4)?.try_into().ok()?);
    let mut states = CleanStates::new();
    for _ in 0..count {
        let len = u16::from_le_bytes(take(2)?.try_into().ok()?) as usize;
        let topic = std::str::from_utf8(take(len)?).ok()?.to_owned();
        let partition = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let n = u16::from_le_bytes(take(2)?.try_into().ok()?) as usize;
        let fields: Vec<u64> =
            (0..n).map(|_| take(8).map(|f| u64::from_le_bytes(f.try_into().expect("8")))).collect::<Option<_>>()?;
        // A state this version cannot read is left out: that partition is
        // recovered as after a crash.
        if let Some(state) = CleanState::from_fields(&fields) {
            states.insert((topic, partition), state);
        }
    }
    (at == body.len()).then_some(states)
}

/// Reads the marker of `dir`: whether a file is there, and the states if it
/// is intact. A damaged marker vouches for nothing (every partition is
/// recovered) but is still removed before the first change.
pub(super) fn read(dir: &Path) -> Result<(bool, CleanStates)> {
    let path = dir.join(CLEAN_FILE);
    match fs::read(&path) {
        Ok(b) => Ok((true, decode(&b).unwrap_or_default())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((false, CleanStates::new())),
        Err(e) => Err(Error::Io { op: "read", path, source: e }),
    }
}

/// Whether the marker of the data directory `dir` lists `topic`'s
/// `partition`: the broker closed it cleanly and nothing has changed it
/// since (a broker removes the marker before its first change).
pub(crate) fn vouches_for(dir: &Path, topic: &str, partition: u32) -> bool {
    read(dir).is_ok_and(|(_, states)| states.contains_key(&(topic.to_owned(), partition)))
}

/// Writes the marker atomically (one file sync, one directory sync).
pub(super) fn write(dir: &Path, states: &[(String, u32, CleanState)]) -> Result<()> {
    fsutil::write_atomic(dir, CLEAN_FILE, &encode(states))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::meta::SegmentFingerprint;

    #[test]
    fn round_trips_and_rejects_damage() {
        let state = |next_offset| CleanState {
            next_offset,
            segments: SegmentFingerprint::of([(0, 70), (7, 0), (next_offset, 1)]),
        };
        let states =
            vec![("orders".to_owned(), 0, state(42)), ("__consumer_offsets".to_owned(), 0, state(u64::MAX - 1))];
        let b = encode(&states);
        let back = decode(&b).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[&("orders".to_owned(), 0)], state(42));
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 1;
            assert!(decode(&bad).is_none(), "flip at {i}");
        }
        assert!(decode(&b[..b.len() - 1]).is_none());
        assert!(decode(&[]).is_none());
        // An intact marker of version 1 (fingerprints of base offsets only).
        let mut v1 = b[..b.len() - 4].to_vec();
        v1[4] = 1;
        v1.extend_from_slice(&crc32fast::hash(&v1).to_le_bytes());
        assert!(decode(&v1).is_none());
        assert_eq!(decode(&encode(&[])).unwrap().len(), 0);
    }
}
