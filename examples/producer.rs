//! Send a raw record and a keyed record, and print where they landed.
//!
//! `cargo run --example producer [DIR]`, then `cargo run --example consumer [DIR]`.
//! DIR defaults to `$TMPDIR/streamlog-example`.

use streamlog::{Broker, BrokerOptions, ProducerRecord, TopicConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).map_or_else(|| std::env::temp_dir().join("streamlog-example"), Into::into);
    let broker = Broker::open(&dir, BrokerOptions::default())?;
    if broker.topic("greetings").is_err() {
        broker.create_topic("greetings", TopicConfig::with_partitions(3))?;
    }
    let producer = broker.producer();
    let raw = producer.send(ProducerRecord::new("greetings", &b"raw bytes \x00\x01\x02"[..]))?;
    let keyed = producer.send(ProducerRecord::new("greetings", "hello, world").key("user-42"))?;
    for m in [raw, keyed] {
        println!("sent to {}:{}:{} (timestamp {})", m.topic, m.partition, m.offset, m.timestamp);
    }
    broker.close()?;
    Ok(())
}
