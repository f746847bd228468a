//! An idle broker's background threads sleep: a thread that wakes on a
//! tick takes a processor, for a moment, from whatever spins on it (a
//! consumer waiting for records), which is what made the tail of the
//! send-to-poll latency long on a two-core machine. The flush thread of
//! `Durability::Interval` ticks only while such a topic exists.
#![cfg(target_os = "linux")]

use std::time::Duration;

use streamlog::{Broker, BrokerOptions, Durability, TopicConfig};

/// Context switches of this process's threads called `name` (each wake-up
/// of a sleeping thread is one).
fn switches(name: &str) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        for line in status.lines().filter(|l| l.contains("ctxt_switches")) {
            total += line.split_whitespace().last().unwrap().parse::<u64>().unwrap();
        }
    }
    total
}

#[test]
fn the_flush_thread_sleeps_until_a_topic_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
    b.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let before = switches("streamlog-flush");
    std::thread::sleep(Duration::from_millis(300));
    let idle = switches("streamlog-flush") - before;
    assert!(idle <= 3, "the flush thread woke {idle} times in 300 ms with nothing to flush");

    // A topic flushed on an interval: the thread ticks again.
    b.create_topic("i", TopicConfig::with_partitions(1).durability(Durability::Interval(Duration::from_millis(10))))
        .unwrap();
    let before = switches("streamlog-flush");
    std::thread::sleep(Duration::from_millis(300));
    let busy = switches("streamlog-flush") - before;
    assert!(busy >= 10, "the flush thread did not tick for an Interval topic ({busy} wake-ups)");
    b.close().unwrap();
}
