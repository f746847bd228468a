//! `streamlog perf produce|consume`: a local throughput and latency run, as
//! `kafka-producer-perf-test` and `kafka-consumer-perf-test` report it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use streamlog::{ConsumerConfig, Producer, ProducerRecord, TopicConfig, TopicPartition};

use crate::cli::{PerfArgs, PerfCmd};
use crate::{Failure, Res, open_for_write};

pub fn run(cmd: PerfCmd) -> Res {
    let (args, consume) = match cmd {
        PerfCmd::Produce(a) => (a, false),
        PerfCmd::Consume(a) => (a, true),
    };
    if args.batch == 0 || args.num_records == 0 {
        return Err(Failure::usage("--batch and --num-records must be at least 1"));
    }
    if args.record_size > 64 << 20 {
        return Err(Failure::usage("--record-size is at most 64 MiB"));
    }
    // Without --dir, a temporary directory that goes away afterwards.
    let temp;
    let dir: PathBuf = match args.dir.clone() {
        Some(d) => d,
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let broker = open_for_write(&dir)?;
    let topic = format!("perf-{}", std::process::id());
    broker.create_topic(&topic, TopicConfig::with_partitions(args.partitions))?;
    let producer = broker.producer();
    let (elapsed, latencies) = produce(&producer, &topic, &args)?;
    let bytes = args.num_records as f64 * args.record_size as f64;
    if !consume {
        let mut lat = latencies;
        lat.sort_unstable();
        let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
        crate::say(format_args!(
            "{} records sent, {:.0} records/sec ({:.2} MB/sec), {} per send; send latency p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us.",
            args.num_records,
            args.num_records as f64 / elapsed.as_secs_f64(),
            bytes / elapsed.as_secs_f64() / 1e6,
            args.batch,
            pct(0.5),
            pct(0.99),
            pct(0.999),
            pct(1.0)
        ))?;
    } else {
        let mut consumer = broker.consumer(ConsumerConfig::default())?;
        let tps: Vec<TopicPartition> = (0..args.partitions).map(|p| TopicPartition::new(topic.clone(), p)).collect();
        consumer.assign(&tps)?;
        consumer.seek_to_beginning(&tps)?;
        let started = Instant::now();
        let (mut records, mut value_bytes) = (0u64, 0u64);
        while records < args.num_records {
            for r in consumer.poll(Duration::from_secs(1))? {
                records += 1;
                value_bytes += r.value.map_or(0, |v| v.len() as u64);
            }
        }
        let secs = started.elapsed().as_secs_f64();
        crate::say(format_args!(
            "{records} records read, {:.0} records/sec ({:.2} MB/sec of values) in {:.3} s.",
            records as f64 / secs,
            value_bytes as f64 / secs / 1e6,
            secs
        ))?;
    }
    broker.delete_topic(&topic)?;
    broker.close()?;
    Ok(())
}

/// Sends the records; returns the wall time and the latency of every send.
fn produce(producer: &Producer, topic: &str, args: &PerfArgs) -> Res<(Duration, Vec<Duration>)> {
    let value = bytes::Bytes::from(vec![b'x'; args.record_size]);
    let mut latencies = Vec::with_capacity((args.num_records as usize).div_ceil(args.batch).min(1 << 20));
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < args.num_records {
        let n = (args.num_records - sent).min(args.batch as u64);
        let t = Instant::now();
        if n == 1 {
            producer.send(ProducerRecord::new(topic.to_owned(), value.clone()))?;
        } else {
            producer.send_batch((0..n).map(|_| ProducerRecord::new(topic.to_owned(), value.clone())).collect())?;
        }
        latencies.push(t.elapsed());
        sent += n;
    }
    Ok((started.elapsed(), latencies))
}
