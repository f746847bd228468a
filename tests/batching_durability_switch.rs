//! A clone's records to one partition keep their order when the topic's
//! durability changes from `Sync` to `Os` while a batch is still handed to
//! the background thread (which appends `Sync` batches): the next batch
//! follows it there instead of being appended first on the sender's
//! thread.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use streamlog::{BatchingConfig, Broker, Durability, Partitioner, ProducerConfig, ProducerRecord, TopicConfig};

/// Holds the send that places a record in topic "gate" until opened:
/// the background thread, sending that clone's lingering batch, is then
/// busy on it.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<(bool, bool)>, // (entered, open)
    changed: Condvar,
}

impl Partitioner for Gate {
    fn partition(&self, topic: &str, _: Option<&[u8]>, _: Option<&[u8]>, _: u32) -> u32 {
        if topic == "gate" {
            let mut st = self.state.lock().unwrap();
            st.0 = true;
            self.changed.notify_all();
            while !st.1 {
                st = self.changed.wait(st).unwrap();
            }
        }
        0
    }
}

#[test]
fn a_durability_change_does_not_reorder_a_clones_batches() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("s", TopicConfig::with_partitions(1).durability(Durability::Sync)).unwrap();
    broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    broker.create_topic("gate", TopicConfig::with_partitions(1)).unwrap();
    let gate = Arc::new(Gate::default());
    let config = BatchingConfig::default()
        .linger(Duration::from_secs(60))
        .batch_size(100)
        .producer(ProducerConfig::default().partitioner(gate.clone()));
    let producer = broker.batching_producer(config).unwrap();
    let (sender, held) = (producer.clone(), producer.clone());
    std::thread::scope(|s| {
        // A send stuck in the partitioner, holding its clone's buffer.
        let stuck = s.spawn(|| held.send(ProducerRecord::new("gate", "g")).unwrap());
        {
            let mut st = gate.state.lock().unwrap();
            while !st.0 {
                st = gate.changed.wait(st).unwrap();
            }
        }
        // A new batch wakes the background thread, which then waits for
        // the stuck clone's buffer.
        let _other = producer.send(ProducerRecord::new("t", "k").partition(0)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        // A full batch to the Sync topic: handed to the (busy) thread.
        let first = sender.send(ProducerRecord::new("s", vec![1u8; 200]).partition(0)).unwrap();
        let config = broker.topic("s").unwrap().config().durability(Durability::Os);
        broker.alter_topic("s", config).unwrap();
        // Another full batch, now under Os.
        let second = sender.send(ProducerRecord::new("s", vec![2u8; 200]).partition(0)).unwrap();
        {
            let mut st = gate.state.lock().unwrap();
            st.1 = true;
            gate.changed.notify_all();
        }
        drop(stuck.join().unwrap());
        producer.flush();
        let (first, second) = (first.wait().unwrap(), second.wait().unwrap());
        assert!(first.offset < second.offset, "sent 1 then 2; 1 landed at {}, 2 at {}", first.offset, second.offset);
    });
}
