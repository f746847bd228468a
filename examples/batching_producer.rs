//! Many tokio tasks producing through one batching producer, each awaiting
//! its delivery report: `cargo run --example batching_producer`.

use std::time::Duration;

use streamlog::{BatchingConfig, Broker, BrokerOptions, ProducerRecord, TopicConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let broker = Broker::open(dir.path(), BrokerOptions::default())?;
    broker.create_topic("clicks", TopicConfig::with_partitions(4))?;
    let producer = broker.batching_producer(BatchingConfig::default().linger(Duration::from_millis(2)))?;

    let mut tasks = Vec::new();
    for t in 0..8 {
        let producer = producer.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = None;
            for i in 0..1_000 {
                let record = ProducerRecord::new("clicks", format!("click {i}")).key(format!("user-{t}"));
                // Waits for room in the buffer, then for the batch's append.
                let delivery = producer.send_async(record).await?;
                if i % 100 == 99 {
                    last = Some(delivery.await?);
                }
            }
            Ok::<_, streamlog::Error>(last)
        }));
    }
    for (t, task) in tasks.into_iter().enumerate() {
        let last = task.await??.expect("sent");
        println!("task {t}: its last record landed on partition {} at offset {}", last.partition, last.offset);
    }
    producer.flush();
    let topic = broker.topic("clicks")?;
    let total: u64 = (0..4).map(|p| topic.partition(p).map(|l| l.high_watermark()).unwrap_or(0)).sum();
    println!("{total} records appended");
    Ok(())
}
