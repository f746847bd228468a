//! Property test: a consumer of a few partitions, under random sequences of
//! batch sends, polls (of few records, so they often stop inside a batch),
//! records taken from a stream then dropped, seeks, pauses and resumes, against a model: per partition, the values
//! sent and the position. Each poll must return, for each partition, the
//! model's records from its position on, in order, none skipped or
//! repeated, and as many as wait, up to `max_poll_records`.

use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use proptest::prelude::*;
use streamlog::{Broker, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig, TopicPartition};

const PARTITIONS: u32 = 3;

#[derive(Debug, Clone)]
enum Op {
    /// A batch of this many records to a partition.
    Send(u32, usize),
    Poll,
    /// To this fraction of the partition's records (0.0 is the start,
    /// 1.0 its end).
    Seek(u32, f64),
    SeekToBeginning,
    Pause(u32),
    Resume(u32),
    /// This many records through `Consumer::stream`, then the stream
    /// dropped: what it fetched and did not yield is given back.
    Stream(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..PARTITIONS, 1usize..60).prop_map(|(p, n)| Op::Send(p, n)),
        8 => Just(Op::Poll),
        2 => (0..PARTITIONS, 0.0..=1.0f64).prop_map(|(p, at)| Op::Seek(p, at)),
        1 => Just(Op::SeekToBeginning),
        1 => (0..PARTITIONS).prop_map(Op::Pause),
        1 => (0..PARTITIONS).prop_map(Op::Resume),
        2 => (1usize..50).prop_map(Op::Stream),
    ]
}

#[derive(Default)]
struct Model {
    /// Per partition, the values in offset order.
    logs: [Vec<Bytes>; PARTITIONS as usize],
    positions: [u64; PARTITIONS as usize],
    paused: [bool; PARTITIONS as usize],
}

impl Model {
    /// Records past the positions of the unpaused partitions.
    fn waiting(&self) -> usize {
        (0..PARTITIONS as usize)
            .filter(|&p| !self.paused[p])
            .map(|p| self.logs[p].len() - self.positions[p] as usize)
            .sum()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn polls_follow_the_model(max_poll in 1usize..40, ops in proptest::collection::vec(op(), 1..60)) {
        let broker = Broker::temporary().unwrap();
        // Small segments: reads and kept batches cross segment boundaries.
        broker.create_topic("m", TopicConfig::with_partitions(PARTITIONS).segment_bytes(4096)).unwrap();
        let producer = broker.producer();
        let tps: Vec<TopicPartition> = (0..PARTITIONS).map(|p| TopicPartition::new("m", p)).collect();
        let mut c = broker
            .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest).max_poll_records(max_poll))
            .unwrap();
        c.assign(&tps).unwrap();
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Send(p, n) => {
                    let log = &mut model.logs[p as usize];
                    let values: Vec<Bytes> = (log.len()..log.len() + n).map(|i| Bytes::from(format!("{p}/{i}"))).collect();
                    let batch = values.iter().map(|v| ProducerRecord::new("m", v.clone()).partition(p)).collect();
                    producer.send_batch(batch).unwrap();
                    log.extend(values);
                }
                Op::Poll => {
                    let records = c.poll(Duration::ZERO).unwrap();
                    prop_assert!(records.len() <= max_poll);
                    let waiting = model.waiting();
                    // A poll fills up from the partitions in turn.
                    prop_assert_eq!(records.len(), waiting.min(max_poll), "records returned");
                    for r in records {
                        let p = r.partition as usize;
                        prop_assert!(!model.paused[p], "a record of paused partition {}", p);
                        prop_assert_eq!(r.offset, model.positions[p], "partition {}", p);
                        prop_assert_eq!(r.value.as_ref(), model.logs[p].get(r.offset as usize));
                        model.positions[p] += 1;
                    }
                }
                Op::Stream(n) => {
                    let waiting = model.waiting();
                    // No more than wait: the stream would wait for more.
                    let mut stream = c.stream();
                    for _ in 0..n.min(waiting) {
                        let r = futures_executor::block_on(std::future::poll_fn(|cx| {
                            std::pin::Pin::new(&mut stream).poll_next(cx)
                        }))
                        .unwrap()
                        .unwrap();
                        let p = r.partition as usize;
                        prop_assert!(!model.paused[p], "a record of paused partition {}", p);
                        prop_assert_eq!(r.offset, model.positions[p], "partition {}", p);
                        prop_assert_eq!(r.value.as_ref(), model.logs[p].get(r.offset as usize));
                        model.positions[p] += 1;
                    }
                }
                Op::Seek(p, at) => {
                    let to = (model.logs[p as usize].len() as f64 * at) as u64;
                    c.seek(&tps[p as usize], to).unwrap();
                    model.positions[p as usize] = to;
                }
                Op::SeekToBeginning => {
                    c.seek_to_beginning(&[]).unwrap();
                    model.positions = Default::default();
                }
                Op::Pause(p) => {
                    c.pause(&tps[p as usize..=p as usize]).unwrap();
                    model.paused[p as usize] = true;
                }
                Op::Resume(p) => {
                    c.resume(&tps[p as usize..=p as usize]).unwrap();
                    model.paused[p as usize] = false;
                }
            }
            for (p, tp) in tps.iter().enumerate() {
                prop_assert_eq!(c.position(tp).unwrap(), model.positions[p]);
            }
        }
    }
}
