//! Typed values: events encoded as JSON on the way in and decoded on the
//! way out, as the Kafka seeds do with `value_serializer=json.dumps`
//! (swap `Json` for `MessagePack` for `msgpack.dumps`). A record that is not
//! valid JSON is reported with its topic, partition and offset, and skipped.
//!
//! `cargo run --example json_producer` (needs the `serde` feature, which
//! the crate's examples and tests turn on).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use streamlog::{Broker, ConsumerConfig, Error, Json, OffsetReset, ProducerRecord, TopicConfig, Utf8};

#[derive(Debug, Serialize, Deserialize)]
struct PageView {
    user: String,
    page: String,
    millis: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let broker = Broker::temporary()?;
    broker.create_topic("page-views", TopicConfig::with_partitions(2))?;
    // Keys as plain UTF-8 (their partitions match Kafka's), values as JSON.
    let views = broker.producer().typed::<String, PageView, _, _>("page-views", Utf8, Json);
    let sent = [
        PageView { user: "ada".into(), page: "/home".into(), millis: 31 },
        PageView { user: "bob".into(), page: "/search?q=tea,green".into(), millis: 12 },
        PageView { user: "ada".into(), page: "/checkout".into(), millis: 87 },
    ];
    for v in &sent {
        let m = views.send(&v.user, v)?;
        println!("sent {} -> {}:{}:{}", v.user, m.topic, m.partition, m.offset);
    }
    // Someone else's bytes on the same topic: a poison record.
    broker.producer().send(ProducerRecord::new("page-views", "<html>").key("mallory"))?;

    let config = ConsumerConfig::with_group("report").auto_offset_reset(OffsetReset::Earliest);
    let mut consumer = broker.consumer(config)?;
    consumer.subscribe(&["page-views"])?;
    let mut seen = 0;
    while seen < sent.len() + 1 {
        for record in consumer.poll(Duration::from_millis(100))? {
            seen += 1;
            let user = record.decode_key::<String, _>(&Utf8)?.unwrap_or_default();
            match record.decode_value::<PageView, _>(&Json) {
                Ok(Some(view)) => println!("read {user}: {view:?}"),
                Ok(None) => println!("read {user}: tombstone"),
                // Poison: report it and go on; the position is past it.
                Err(e @ Error::Decode { .. }) => println!("skipped: {e}"),
                Err(e) => return Err(e.into()),
            }
        }
    }
    consumer.commit()?;
    Ok(())
}
