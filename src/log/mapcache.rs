//! The cache of sealed segments' mappings: sealed segments are mapped on
//! demand and at most `capacity` of them stay mapped through the cache.
//! Eviction drops only the cache's reference: `Bytes` handed out keep their
//! mapping alive, and the segment finds it again while they do.
//!
//! Eviction is CLOCK (second chance): a mapping read since the hand last
//! passed it is kept for one more round.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::log::mmap::MappedFile;

/// Mappings kept by a standalone partition's cache.
pub(crate) const PARTITION_DEFAULT_CAPACITY: usize = 64;

/// The default capacity of a broker's cache: a quarter of the descriptor
/// limit (`RLIMIT_NOFILE`), within 64 ..= 16,384. Mappings hold no
/// descriptors; the limit is a sign of how large a process means to be,
/// and this stays far below `vm.max_map_count`.
pub(crate) fn default_capacity() -> usize {
    (crate::log::mmap::nofile_limit() / 4).clamp(64, 16 << 10)
}

pub(crate) struct MapCache {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    maps: HashMap<u64, Arc<MappedFile>>,
    /// The clock's ring of ids; ids no longer in `maps` are skipped.
    ring: VecDeque<u64>,
}

/// A unique id for a segment handle: the key it caches its mapping under.
pub(crate) fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl MapCache {
    pub fn new(capacity: usize) -> Arc<MapCache> {
        Arc::new(MapCache { capacity: capacity.max(1), state: Mutex::new(State::default()) })
    }

    /// Keeps `map` mapped as segment `id`'s, evicting others beyond the
    /// capacity. What is evicted is dropped outside the lock (an unmap).
    pub fn insert(&self, id: u64, map: Arc<MappedFile>) {
        let mut evicted = Vec::new();
        {
            let mut st = self.state.lock();
            if st.maps.insert(id, map).is_none() {
                st.ring.push_back(id);
            }
            while st.maps.len() > self.capacity {
                let Some(victim) = st.ring.pop_front() else { break };
                let Some(m) = st.maps.get(&victim) else { continue };
                if victim != id && m.take_used() {
                    st.ring.push_back(victim);
                } else if victim != id {
                    evicted.extend(st.maps.remove(&victim));
                } else {
                    st.ring.push_back(victim);
                }
            }
            if st.ring.len() > 2 * st.maps.len() + 64 {
                let State { maps, ring } = &mut *st;
                ring.retain(|id| maps.contains_key(id));
            }
        }
        drop(evicted);
    }

    /// Forgets segment `id`'s mapping (the segment is gone or deleted).
    pub fn remove(&self, id: u64) {
        let removed = self.state.lock().maps.remove(&id);
        drop(removed);
    }

    /// Mappings the cache holds.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.state.lock().maps.len()
    }

    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}
