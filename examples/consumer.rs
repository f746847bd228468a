//! Print every record of a topic from the beginning, as
//! `topic:partition:offset: key=.. value=..`.
//!
//! `cargo run --example consumer [DIR] [TOPIC]` (defaults:
//! `$TMPDIR/streamlog-example`, `greetings`).

use streamlog::{Broker, BrokerOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().map_or_else(|| std::env::temp_dir().join("streamlog-example"), Into::into);
    let topic_name = args.next().unwrap_or_else(|| "greetings".to_owned());
    let broker = Broker::open(&dir, BrokerOptions::default())?;
    let topic = broker.topic(&topic_name)?;
    for (index, partition) in topic.partitions().iter().enumerate() {
        let mut next = partition.log_start_offset();
        while next < partition.high_watermark() {
            for batch in partition.read(next, 1 << 20)? {
                for r in batch.records() {
                    let r = r?;
                    println!(
                        "{}:{index}:{}: key={} value={}",
                        topic.name(),
                        r.offset,
                        show(r.key.as_deref()),
                        show(r.value.as_deref())
                    );
                }
                next = batch.next_offset();
            }
        }
    }
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
