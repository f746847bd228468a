//! A service task on plain tokio that consumes a topic as a stream, while
//! another task produces: `cargo run --example async_consumer`.

use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;
use streamlog::{Broker, BrokerOptions, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let broker = Broker::open(dir.path(), BrokerOptions::default())?;
    broker.create_topic("orders", TopicConfig::with_partitions(2))?;

    let producer = broker.producer();
    let feeder = tokio::spawn(async move {
        for i in 0..10 {
            producer.send_async(ProducerRecord::new("orders", format!("order-{i}")).key(format!("c{}", i % 3))).await?;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok::<_, streamlog::Error>(())
    });

    let mut consumer =
        broker.consumer(ConsumerConfig::with_group("billing").auto_offset_reset(OffsetReset::Earliest))?;
    consumer.subscribe(&["orders"])?;
    let mut stream = consumer.stream();
    for _ in 0..10 {
        // With futures' `StreamExt` this is `stream.next().await`.
        let record = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await.expect("endless")?;
        println!("p{} @{}: {:?}", record.partition, record.offset, record.value);
    }
    drop(stream);
    feeder.await??;
    consumer.commit()?;
    Ok(())
}
