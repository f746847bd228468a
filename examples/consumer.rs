//! Print every record of a topic from the beginning, as
//! `topic:partition:offset: key=.. value=..`, with a [`Consumer`] that is
//! assigned every partition (no group: nothing is committed).
//!
//! `cargo run --example consumer [DIR] [TOPIC]` (defaults:
//! `$TMPDIR/streamlog-example`, `greetings`).

use std::time::Duration;

use streamlog::{Broker, BrokerOptions, Consumer, ConsumerConfig, TopicPartition};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().map_or_else(|| std::env::temp_dir().join("streamlog-example"), Into::into);
    let topic_name = args.next().unwrap_or_else(|| "greetings".to_owned());
    let broker = Broker::open(&dir, BrokerOptions::default())?;
    let count = broker.topic(&topic_name)?.partition_count();
    let partitions: Vec<TopicPartition> = (0..count).map(|p| TopicPartition::new(&topic_name, p)).collect();

    let mut consumer: Consumer = broker.consumer(ConsumerConfig::default())?;
    consumer.assign(&partitions)?;
    consumer.seek_to_beginning(&[])?;
    // Until every partition is read to the end it had when we started.
    let ends: Vec<u64> =
        partitions.iter().map(|tp| consumer.watermarks(tp).map(|(_, end)| end)).collect::<Result<_, _>>()?;
    while partitions.iter().zip(&ends).any(|(tp, &end)| consumer.position(tp).is_ok_and(|p| p < end)) {
        for r in consumer.poll(Duration::from_millis(100))? {
            println!(
                "{}:{}:{}: key={} value={}",
                r.topic,
                r.partition,
                r.offset,
                show(r.key.as_deref()),
                show(r.value.as_deref())
            );
        }
    }
    consumer.close()?;
    broker.close()?;
    Ok(())
}

/// UTF-8 as text, anything else escaped, `null` for a missing key or value.
fn show(bytes: Option<&[u8]>) -> String {
    match bytes {
        None => "null".to_owned(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => format!("{s:?}"),
            Err(_) => format!("{:?}", b.escape_ascii().to_string()),
        },
    }
}
