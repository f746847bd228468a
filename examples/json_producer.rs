//! Values through a serializer: events encoded as JSON on the way in and
//! decoded on the way out, the way the Kafka seeds use JSON or msgpack value
//! serializers. The encoding is hand-written here to keep the example free of
//! dependencies; in an application, put `serde_json::to_vec` behind the same
//! trait.
//!
//! `cargo run --example json_producer`

use bytes::Bytes;
use streamlog::{Broker, BrokerOptions, ProducerRecord, TopicConfig};

/// Turns values into record bytes and back.
trait Serializer<T> {
    fn serialize(&self, value: &T) -> Bytes;
    fn deserialize(&self, bytes: &[u8]) -> Option<T>;
}

#[derive(Debug, PartialEq)]
struct PageView {
    user: String,
    page: String,
    millis: u64,
}

struct Json;

impl Serializer<PageView> for Json {
    fn serialize(&self, v: &PageView) -> Bytes {
        let text = format!(r#"{{"user":{:?},"page":{:?},"millis":{}}}"#, v.user, v.page, v.millis);
        Bytes::from(text)
    }

    fn deserialize(&self, bytes: &[u8]) -> Option<PageView> {
        let text = std::str::from_utf8(bytes).ok()?;
        let field = |name: &str| {
            let start = text.find(&format!("\"{name}\":"))? + name.len() + 3;
            let rest = &text[start..];
            let end = rest.find([',', '}'])?;
            Some(rest[..end].trim_matches('"').to_owned())
        };
        Some(PageView { user: field("user")?, page: field("page")?, millis: field("millis")?.parse().ok()? })
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let broker = Broker::open(dir.path(), BrokerOptions::default())?;
    broker.create_topic("page-views", TopicConfig::with_partitions(2))?;
    let producer = broker.producer();
    let views = [
        PageView { user: "ada".into(), page: "/home".into(), millis: 31 },
        PageView { user: "bob".into(), page: "/cart".into(), millis: 12 },
        PageView { user: "ada".into(), page: "/checkout".into(), millis: 87 },
    ];
    for v in &views {
        let m = producer.send(ProducerRecord::new("page-views", Json.serialize(v)).key(v.user.clone()))?;
        println!("{} -> {}:{}:{}", v.user, m.topic, m.partition, m.offset);
    }
    for (i, partition) in broker.topic("page-views")?.partitions().iter().enumerate() {
        for batch in partition.read(0, 1 << 20)? {
            for r in batch.records() {
                let r = r?;
                let view = Json.deserialize(r.value.as_deref().unwrap_or_default());
                println!("page-views:{i}:{}: {view:?}", r.offset);
            }
        }
    }
    Ok(())
}
