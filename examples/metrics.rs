//! Exporting `Broker::stats` as text in Prometheus' exposition format, with
//! no metrics library: a service would serve this string on `/metrics` (or
//! feed the same numbers to the `metrics` facade).
//!
//! `cargo run --example metrics`

use std::fmt::Write;
use std::time::Duration;

use streamlog::{Broker, BrokerStats, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let broker = Broker::temporary()?;
    broker.create_topic("orders", TopicConfig::with_partitions(3))?;
    let producer = broker.producer();
    for i in 0..1000 {
        producer.send(ProducerRecord::new("orders", format!("order {i}")).key(format!("customer-{}", i % 17)))?;
    }
    let mut consumer =
        broker.consumer(ConsumerConfig::with_group("billing").auto_offset_reset(OffsetReset::Earliest))?;
    consumer.subscribe(&["orders"])?;
    let mut read = 0;
    while read < 600 {
        read += consumer.poll(Duration::from_millis(100))?.len();
    }
    consumer.commit()?;
    broker.run_maintenance()?;
    print!("{}", render(&broker.stats()?));
    Ok(())
}

/// Reads one per-partition gauge off its stats.
type Gauge = fn(&streamlog::LogStats) -> u64;

/// The snapshot as Prometheus text: counters, then gauges per partition and
/// per group.
fn render(s: &BrokerStats) -> String {
    let mut out = String::new();
    let counters = [
        ("appends", "Batches appended", s.appends),
        ("records_appended", "Records appended", s.records_appended),
        ("bytes_appended", "Bytes appended, as stored", s.bytes_appended),
        ("reads", "Partition reads", s.reads),
        ("fsyncs", "Syncs of partition data", s.fsyncs),
        ("rebalances", "Group rebalances", s.rebalances),
        ("maintenance_runs", "Maintenance passes", s.maintenance_runs),
        ("maintenance_failures", "Partitions whose maintenance failed", s.maintenance_failures),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(out, "# HELP streamlog_{name}_total {help}.\n# TYPE streamlog_{name}_total counter");
        let _ = writeln!(out, "streamlog_{name}_total {value}");
    }
    let gauges: [(&str, Gauge); 5] = [
        ("log_start_offset", |l| l.log_start_offset),
        ("log_end_offset", |l| l.log_end_offset),
        ("size_bytes", |l| l.size_bytes),
        ("segments", |l| l.segments as u64),
        ("mapped_segments", |l| l.mapped_segments as u64),
    ];
    for (name, get) in gauges {
        let _ = writeln!(out, "# TYPE streamlog_partition_{name} gauge");
        for p in &s.partitions {
            let _ = writeln!(
                out,
                "streamlog_partition_{name}{{topic=\"{}\",partition=\"{}\"}} {}",
                p.topic,
                p.partition,
                get(&p.log)
            );
        }
    }
    let _ = writeln!(out, "# TYPE streamlog_group_lag gauge");
    for g in &s.groups {
        let _ = writeln!(out, "streamlog_group_lag{{group=\"{}\"}} {}", g.group_id, g.lag);
        let _ = writeln!(out, "streamlog_group_members{{group=\"{}\"}} {}", g.group_id, g.members);
        let _ = writeln!(out, "streamlog_group_generation{{group=\"{}\"}} {}", g.group_id, g.generation);
    }
    out
}
