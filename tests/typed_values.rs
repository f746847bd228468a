//! Typed keys and values (feature `serde`, on for the tests through the
//! crate's dev-dependency on itself): JSON and MessagePack round trips,
//! poison records reported with topic, partition and offset and skipped,
//! encoding failures typed.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use streamlog::{
    Broker, Codec, Consumer, ConsumerConfig, ConsumerRecord, Error, Json, MessagePack, OffsetReset, ProducerRecord,
    TopicConfig, Utf8,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PageView {
    user: String,
    page: String,
    millis: u64,
}

fn view(user: &str, page: &str, millis: u64) -> PageView {
    PageView { user: user.into(), page: page.into(), millis }
}

fn consume(broker: &Broker, topic: &str, n: usize) -> Vec<ConsumerRecord> {
    let mut consumer: Consumer =
        broker.consumer(ConsumerConfig::with_group("g").auto_offset_reset(OffsetReset::Earliest)).unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    while out.len() < n {
        out.extend(consumer.poll(Duration::from_millis(100)).unwrap());
    }
    out
}

#[test]
fn json_and_msgpack_round_trip_keys_and_values() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("json", TopicConfig::with_partitions(3)).unwrap();
    broker.create_topic("msgpack", TopicConfig::with_partitions(3)).unwrap();
    // Commas, quotes and braces inside strings: what hand-written JSON breaks on.
    let views = [view("ada", "/a,b", 1), view("bob \"b\"", "/{x}", 2), view("ada", "/c", 3)];
    let json = broker.producer().typed::<String, PageView, _, _>("json", Utf8, Json);
    let msgpack = broker.producer().typed::<String, PageView, _, _>("msgpack", Utf8, MessagePack);
    for v in &views {
        let m = json.send(&v.user, v).unwrap();
        // Keys keep their bytes: the partition is the untyped one.
        assert_eq!(m.partition, streamlog::murmur2_partition(v.user.as_bytes(), 3));
        msgpack.send(&v.user, v).unwrap();
    }
    msgpack.send_tombstone(&"ada".to_owned()).unwrap();
    for (topic, codec) in [("json", &Json as &dyn Codec<PageView>), ("msgpack", &MessagePack)] {
        let got = consume(&broker, topic, if topic == "json" { 3 } else { 4 });
        let mut values: Vec<PageView> = got.iter().filter_map(|r| r.decode_value(codec).unwrap()).collect();
        values.sort_by_key(|v| v.millis);
        assert_eq!(values, views, "{topic}");
        for r in &got {
            let key: String = r.decode_key(&Utf8).unwrap().unwrap();
            if let Some(v) = r.decode_value::<PageView, _>(codec).unwrap() {
                assert_eq!(key, v.user);
            }
        }
    }
}

#[test]
fn a_poison_record_is_a_typed_error_naming_it_and_the_consumer_goes_on() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("views", TopicConfig::with_partitions(1)).unwrap();
    let typed = broker.producer().typed::<String, PageView, _, _>("views", Utf8, Json);
    typed.send_value(&view("a", "/", 1)).unwrap();
    broker.producer().send(ProducerRecord::new("views", "{not json").key(vec![0xff, 0xfe])).unwrap();
    typed.send_value(&view("c", "/", 3)).unwrap();
    let got = consume(&broker, "views", 3);
    let mut decoded = Vec::new();
    let mut poison = Vec::new();
    for r in &got {
        match r.decode_value::<PageView, _>(&Json) {
            Ok(v) => decoded.push(v.unwrap().user),
            Err(e) => poison.push(e),
        }
    }
    assert_eq!(decoded, vec!["a".to_owned(), "c".to_owned()]);
    assert_eq!(poison.len(), 1);
    assert!(
        matches!(&poison[0], Error::Decode { topic, partition: 0, offset: 1, part: "value", .. } if topic == "views"),
        "{:?}",
        poison[0]
    );
    assert!(poison[0].to_string().contains("views:0:1"), "{}", poison[0]);
    // A key that is not UTF-8, through the string codec.
    assert!(matches!(got[1].decode_key::<String, _>(&Utf8), Err(Error::Decode { part: "key", offset: 1, .. })));
    // MessagePack of JSON bytes is no better.
    assert!(matches!(got[0].decode_value::<PageView, _>(&MessagePack), Err(Error::Decode { offset: 0, .. })));
}

#[test]
fn a_value_that_does_not_encode_is_a_typed_error_and_sends_nothing() {
    let broker = Broker::temporary().unwrap();
    let t = broker.create_topic("t", TopicConfig::with_partitions(1)).unwrap();
    // JSON object keys must be strings.
    let typed = broker.producer().typed::<String, HashMap<(u8, u8), u8>, _, _>("t", Utf8, Json);
    let value = HashMap::from([((1, 2), 3)]);
    let err = typed.send(&"k".to_owned(), &value).unwrap_err();
    assert!(matches!(&err, Error::Encode { topic, part: "value", .. } if topic == "t"), "{err:?}");
    assert_eq!(t.partition(0).unwrap().high_watermark(), 0);
}
