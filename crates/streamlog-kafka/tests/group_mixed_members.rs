//! One group, two kinds of members: a confluent-kafka consumer over the
//! wire and in-process `Consumer`s share the partitions, never both holding
//! one at the same moment, take all when the other leaves, and resume from
//! each other's commits.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use streamlog::{Broker, ConsumerConfig, OffsetReset, ProducerRecord, RebalanceListener, TopicConfig, TopicPartition};

use common::{client_script, has_module, python, start};

const TOPIC: &str = "mixed";
const GROUP: &str = "mixed-group";

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// (time, owner, assigned?, partitions)
type Events = Arc<Mutex<Vec<(f64, String, bool, Vec<u32>)>>>;
/// (owner, partition, offset) of every record consumed.
type Consumed = Arc<Mutex<Vec<(String, u32, u64)>>>;

struct Listener {
    name: String,
    events: Events,
}

impl RebalanceListener for Listener {
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        let ps = partitions.iter().map(|tp| tp.partition).collect();
        self.events.lock().push((now(), self.name.clone(), false, ps));
    }
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        let ps = partitions.iter().map(|tp| tp.partition).collect();
        self.events.lock().push((now(), self.name.clone(), true, ps));
    }
}

/// An in-process member polling in a thread until `stop`, committing after
/// each poll; it closes (leaving the group) when stopped.
fn member(broker: &Arc<Broker>, name: &str, events: &Events, consumed: &Consumed) -> (Arc<AtomicBool>, JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let config = ConsumerConfig::with_group(GROUP)
        .client_id(name)
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false);
    let mut c = broker.consumer(config).unwrap();
    let listener = Listener { name: name.to_owned(), events: Arc::clone(events) };
    c.subscribe_with(&[TOPIC], Box::new(listener)).unwrap();
    let (s, consumed, name) = (Arc::clone(&stop), Arc::clone(consumed), name.to_owned());
    let h = std::thread::spawn(move || {
        while !s.load(Ordering::Acquire) {
            let records = c.poll(Duration::from_millis(20)).unwrap();
            for r in &records {
                consumed.lock().push((name.clone(), r.partition, r.offset));
            }
            if !records.is_empty() {
                c.commit().unwrap();
            }
        }
        c.close().unwrap();
    });
    (stop, h)
}

/// What `owner` holds after the events so far.
fn holding(events: &Events, owner: &str) -> BTreeSet<u32> {
    let mut held = BTreeSet::new();
    for (_, o, assigned, ps) in events.lock().iter().filter(|e| e.1 == owner) {
        let _ = o;
        for p in ps {
            if *assigned {
                held.insert(*p);
            } else {
                held.remove(p);
            }
        }
    }
    held
}

fn wait_until(what: &str, events: &Events, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {:#?}", events.lock());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn produce(broker: &Broker, per_partition: usize) {
    let p = broker.producer();
    for part in 0..4 {
        for i in 0..per_partition {
            p.send(ProducerRecord::new(TOPIC, format!("v{i}")).partition(part)).unwrap();
        }
    }
}

#[test]
fn wire_and_in_process_members_share_one_group() {
    let Ok(py) = python() else {
        eprintln!("SKIPPED: the Kafka test clients are not installed (scripts/install-test-clients.sh)");
        return;
    };
    if !has_module(&py, "confluent_kafka") {
        eprintln!("SKIPPED: confluent-kafka not installed");
        return;
    }
    let env = start();
    let broker = Arc::clone(&env.broker);
    broker.create_topic(TOPIC, TopicConfig::with_partitions(4)).unwrap();
    produce(&broker, 5);
    let events: Events = Default::default();
    let consumed: Consumed = Default::default();
    let stop_file = env.dir.path().join("stop-python");

    // An in-process member first, then the Kafka client joins.
    let (stop_a, a) = member(&broker, "rust-a", &events, &consumed);
    wait_until("rust-a to hold all", &events, || holding(&events, "rust-a").len() == 4);
    let mut child = Command::new(&py)
        .arg(client_script("mixed_member.py"))
        .args([&env.bootstrap(), TOPIC, GROUP, stop_file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = {
        let (events, consumed) = (Arc::clone(&events), Arc::clone(&consumed));
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.as_slice() {
                    [kind @ ("assigned" | "revoked"), t, rest @ ..] => {
                        let ps = rest.first().map_or(vec![], |l| l.split(',').map(|p| p.parse().unwrap()).collect());
                        events.lock().push((t.parse().unwrap(), "python".into(), *kind == "assigned", ps));
                    }
                    ["consumed", p, o] => {
                        consumed.lock().push(("python".into(), p.parse().unwrap(), o.parse().unwrap()))
                    }
                    _ => {}
                }
            }
        })
    };
    let split = |x: &str, y: &str| {
        let (hx, hy) = (holding(&events, x), holding(&events, y));
        hx.len() == 2 && hy.len() == 2 && hx.is_disjoint(&hy)
    };
    wait_until("a 2/2 split with rust-a", &events, || split("rust-a", "python"));
    produce(&broker, 5);

    // The in-process member leaves: the Kafka client takes all.
    stop_a.store(true, Ordering::Release);
    a.join().unwrap();
    wait_until("python to hold all", &events, || holding(&events, "python").len() == 4);
    produce(&broker, 5);

    // Another in-process member joins: split again.
    let (stop_b, b) = member(&broker, "rust-b", &events, &consumed);
    wait_until("a 2/2 split with rust-b", &events, || split("rust-b", "python"));
    produce(&broker, 5);

    // The Kafka client leaves: the in-process member takes all, and reads
    // everything that is left from the client's commits.
    std::fs::write(&stop_file, b"").unwrap();
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    wait_until("rust-b to hold all", &events, || holding(&events, "rust-b").len() == 4);
    let end = broker.topic(TOPIC).unwrap().partition(0).unwrap().high_watermark();
    wait_until("rust-b to read everything", &events, || {
        consumed.lock().iter().filter(|(_, p, _)| *p == 0).map(|(_, _, o)| o + 1).max() == Some(end)
            && (0..4).all(|p| consumed.lock().iter().any(|(_, q, o)| *q == p && o + 1 == end))
    });
    stop_b.store(true, Ordering::Release);
    b.join().unwrap();

    // Every record was consumed exactly once, across the two kinds of
    // members: commits are shared and partitions never had two owners.
    let mut seen: BTreeMap<(u32, u64), Vec<String>> = BTreeMap::new();
    for (who, p, o) in consumed.lock().iter() {
        seen.entry((*p, *o)).or_default().push(who.clone());
    }
    assert_eq!(seen.len(), 4 * end as usize, "{seen:?}");
    assert!(seen.values().all(|w| w.len() == 1), "consumed twice: {seen:?}");
    assert!(seen.values().any(|w| w[0] == "python") && seen.values().any(|w| w[0] != "python"));
    let committed = broker.group(GROUP).committed().unwrap();
    assert!((0..4).all(|p| committed.get(&TopicPartition::new(TOPIC, p)) == Some(&end)), "{committed:?}");

    // No moment when two members held one partition: per partition, the
    // holding intervals (assigned → revoked) of different members are apart.
    let evs = events.lock().clone();
    for p in 0..4u32 {
        let mut intervals: Vec<(f64, f64, String)> = Vec::new();
        let mut open: BTreeMap<String, f64> = BTreeMap::new();
        let mut sorted: Vec<_> = evs.iter().filter(|e| e.3.contains(&p)).collect();
        sorted.sort_by(|x, y| x.0.total_cmp(&y.0));
        for (t, who, assigned, _) in sorted {
            if *assigned {
                open.insert(who.clone(), *t);
            } else if let Some(s) = open.remove(who) {
                intervals.push((s, *t, who.clone()));
            }
        }
        for (who, s) in open {
            intervals.push((s, f64::MAX, who));
        }
        intervals.sort_by(|x, y| x.0.total_cmp(&y.0));
        for w in intervals.windows(2) {
            assert!(w[0].1 <= w[1].0, "partition {p} held by {} and {} at once: {evs:#?}", w[0].2, w[1].2);
        }
    }
}
