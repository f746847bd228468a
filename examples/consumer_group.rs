//! Three consumers in one group share a six-partition topic; each record
//! goes to one of them. Then one leaves and the other two take over its
//! partitions.
//!
//! `cargo run --example consumer_group`

use std::collections::BTreeMap;
use std::time::Duration;

use streamlog::{Broker, BrokerOptions, Consumer, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let broker = Broker::open(dir.path(), BrokerOptions::default())?;
    broker.create_topic("orders", TopicConfig::with_partitions(6))?;
    let producer = broker.producer();
    let send = |from: u32, to: u32| -> Result<(), streamlog::Error> {
        for i in from..to {
            producer.send(ProducerRecord::new("orders", format!("order #{i}")).key(format!("customer-{}", i % 50)))?;
        }
        Ok(())
    };
    send(0, 600)?;

    let config = || ConsumerConfig::with_group("billing").auto_offset_reset(OffsetReset::Earliest);
    let mut members: Vec<Consumer> = (0..3).map(|_| broker.consumer(config())).collect::<Result<_, _>>()?;
    for m in &mut members {
        m.subscribe(&["orders"])?;
    }
    let counts = drain(&mut members)?;
    report(&members, &counts);

    let leaving = members.remove(2);
    println!("\n{} leaves the group", leaving.member_id().unwrap_or("?"));
    leaving.close()?;
    send(600, 900)?;
    let counts = drain(&mut members)?;
    report(&members, &counts);

    let d = broker.describe_group("billing")?;
    println!("\ngroup {} at generation {} ({:?}):", d.group_id, d.generation, d.assignor);
    for p in &d.partitions {
        println!("  {}: committed {:?}, log end {}, lag {:?}", p.partition, p.committed, p.log_end_offset, p.lag);
    }
    Ok(())
}

/// Polls every member until none gets anything; commits; returns how many
/// records each member got.
fn drain(members: &mut [Consumer]) -> Result<BTreeMap<String, usize>, streamlog::Error> {
    let mut counts = BTreeMap::new();
    let mut idle = 0;
    while idle < 3 {
        let mut got = 0;
        for m in members.iter_mut() {
            let n = m.poll(Duration::from_millis(10))?.len();
            *counts.entry(m.member_id().unwrap_or("?").to_owned()).or_insert(0) += n;
            got += n;
        }
        idle = if got == 0 { idle + 1 } else { 0 };
    }
    for m in members.iter_mut() {
        m.commit()?;
    }
    Ok(counts)
}

fn report(members: &[Consumer], counts: &BTreeMap<String, usize>) {
    for m in members {
        let id = m.member_id().unwrap_or("?");
        let parts: Vec<String> = m.assignment().iter().map(ToString::to_string).collect();
        println!("{id}: partitions [{}], got {} records", parts.join(", "), counts.get(id).unwrap_or(&0));
    }
}
