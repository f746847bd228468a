//! Waiting for appends on several partitions at once, for servers that
//! answer a long poll (the Kafka front's Fetch with `max_wait_ms`).

use std::time::Instant;

use crate::log::notify::Waiter;
use crate::log::partition::Partition;

impl Partition {
    /// Parks the calling thread until one of `logs` has records at or past
    /// its paired offset (its high watermark passes it), one of them is
    /// closed, or `deadline` passes. Woken by the append that publishes the
    /// records, as consumers are; returns whether such data is there.
    pub fn wait_for_any(logs: &[(&Partition, u64)], deadline: Instant) -> bool {
        let ready = || logs.iter().any(|(p, offset)| p.is_closed() || p.high_watermark() > *offset);
        if ready() || logs.is_empty() {
            return ready();
        }
        let waiter = Waiter::current();
        for (p, _) in logs {
            p.register_waiter(&waiter);
        }
        // Registered before this re-check: an append after it wakes us.
        if !ready() {
            waiter.park_until(deadline);
        }
        for (p, _) in logs {
            p.unregister_waiter(&waiter);
        }
        ready()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use crate::{Partition, PartitionOptions, Record};

    #[test]
    fn an_append_wakes_a_waiter_before_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let a = Arc::new(Partition::open(dir.path().join("a"), PartitionOptions::default()).unwrap());
        let b = Partition::open(dir.path().join("b"), PartitionOptions::default()).unwrap();
        let writer = {
            let a = Arc::clone(&a);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                a.append(&[Record::new("x")]).unwrap();
            })
        };
        let start = Instant::now();
        assert!(Partition::wait_for_any(&[(&a, 0), (&b, 0)], start + Duration::from_secs(10)));
        assert!(start.elapsed() < Duration::from_secs(5));
        writer.join().unwrap();
        // Nothing new past offset 1: the deadline ends the wait.
        assert!(!Partition::wait_for_any(&[(&a, 1)], Instant::now() + Duration::from_millis(20)));
    }
}
