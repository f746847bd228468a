//! # streamlog
//!
//! An embeddable, Kafka-style message log: the storage and consumption
//! model of a Kafka broker inside your process, with no server. A
//! [`Broker`] owns one data directory; its topics are split into
//! partitions, each an append-only log of record batches in memory-mapped
//! segment files. A [`Producer`] places records with Kafka's murmur2
//! partitioner, a [`Consumer`] reads zero-copy [`bytes::Bytes`] slices of
//! them, alone or in a consumer group that rebalances and commits offsets
//! durably; retention and compaction bound the disk.
//!
//! ```
//! use std::time::Duration;
//! use streamlog::{Broker, BrokerOptions, ConsumerConfig, OffsetReset, ProducerRecord, TopicConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let broker = Broker::open(dir.path(), BrokerOptions::default())?;
//! broker.create_topic("orders", TopicConfig::with_partitions(3))?;
//!
//! // Produce: records with the same key land on the same partition, in order.
//! let producer = broker.producer(); // Send + Sync + Clone
//! for (key, event) in [("order-1", "created"), ("order-2", "created"), ("order-1", "paid")] {
//!     let meta = producer.send(ProducerRecord::new("orders", event).key(key))?;
//!     println!("{}:{}:{}", meta.topic, meta.partition, meta.offset);
//! }
//!
//! // Consume as a member of group "billing", from the beginning, and commit.
//! let config = ConsumerConfig::with_group("billing").auto_offset_reset(OffsetReset::Earliest);
//! let mut consumer = broker.consumer(config)?;
//! consumer.subscribe(&["orders"])?;
//! let mut seen = Vec::new();
//! while seen.len() < 3 {
//!     for record in consumer.poll(Duration::from_millis(100))? {
//!         seen.push((record.key.unwrap(), record.value.unwrap()));
//!     }
//! }
//! consumer.commit()?; // the group resumes here after a restart
//! consumer.close()?;
//! let order_1: Vec<_> = seen.iter().filter(|(k, _)| k == "order-1").map(|(_, v)| v.clone()).collect();
//! assert_eq!(order_1, ["created", "paid"]);
//!
//! // A clean close makes the next open cost O(segments).
//! broker.close()?;
//! let broker = Broker::open(dir.path(), BrokerOptions::default())?;
//! assert_eq!(broker.group("billing").total_lag()?, 0);
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Where to go next
//!
//! - **Topics**: [`TopicConfig`] (partitions, segments, retention,
//!   compaction, timestamps, [`Durability`]) and [`Broker::alter_topic`].
//!   Each option names its Kafka equivalent; `docs/KAFKA-CONFIG.md` maps
//!   Kafka's configuration names to streamlog's.
//! - **Producing**: [`Producer::send`], [`Producer::send_batch`]; placement
//!   by [`Partitioner`] ([`DefaultPartitioner`], [`NoKeyStrategy`]).
//! - **Consuming**: [`Consumer`]: `assign` or group `subscribe`, `poll`,
//!   `commit`, `seek`, [`Consumer::offsets_for_times`],
//!   [`Consumer::pause`] / `resume`, a [`RebalanceListener`], and
//!   [`Consumer::wakeup_handle`] to stop a blocked poll. Group admin
//!   (describe, lag, reset offsets, delete) is [`Broker::group`] →
//!   [`ConsumerGroup`].
//! - **Async** (any executor; the library picks none):
//!   [`Consumer::recv`] and [`Consumer::stream`] are woken by the append;
//!   [`Producer::send_async`] resolves when the record is as durable as its
//!   topic asks; a [`BatchingProducer`] gathers records from many threads or
//!   tasks into one batch per partition (Kafka's `linger.ms`, `batch.size`).
//! - **Typed values** (feature `serde`): the [`Codec`] trait with [`Utf8`],
//!   `Json` and `MessagePack`; [`Producer::typed`] → [`TypedProducer`];
//!   [`ConsumerRecord::decode_value`]. A record that does not decode is an
//!   [`Error::Decode`] naming it, and the consumer goes on past it.
//! - **Partitions, low level**: a [`Partition`] is one log on its own
//!   (append, read by offset or time, retention, compaction), usable without
//!   a broker; [`Topic::partition`] gives a broker's.
//! - **Inspection**: [`inspect`] reads a data directory another process
//!   holds, with `pread` (no lock, no mapping), for tools such as the
//!   `streamlog` command.
//! - **Observability**: `tracing` events and spans (silent without a
//!   subscriber); [`Broker::stats`] for metrics.
//! - **Testing**: [`Broker::temporary`] is a real broker in a fresh
//!   temporary directory, created and closed in about a millisecond because
//!   nothing is synced ([`BrokerOptions::fsync`]`(false)`: it survives a
//!   crash of the process, not power loss). With a [`ManualClock`] and
//!   [`BrokerOptions::maintenance_interval`]`(None)` plus
//!   [`Broker::run_maintenance`], time-based behaviour (retention, segment
//!   age, timeouts) is tested instantly and deterministically.
//!
//! A [`Partition`] alone:
//!
//! ```
//! use streamlog::{Partition, PartitionOptions, Record};
//!
//! let dir = tempfile::tempdir()?;
//! let log = Partition::open(dir.path().join("orders-0"), PartitionOptions::default())?;
//! log.append(&[Record::new("created").with_key("order-1"), Record::tombstone("order-2")])?;
//! let mut values = Vec::new();
//! for batch in log.read(0, 64 << 10)? {
//!     for rec in batch.records() {
//!         let rec = rec?;
//!         values.push((rec.offset, rec.value));
//!     }
//! }
//! assert_eq!(values, [(0, Some("created".into())), (1, None)]); // None: a tombstone
//! log.close()?;
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Guarantees
//!
//! - Offsets are assigned consecutively from 0. Compaction leaves gaps;
//!   offsets lost to power loss without `Durability::Sync`, or cut by
//!   `repair`, are assigned again.
//! - An acknowledged append (`send`, `append` returning `Ok`) is visible to
//!   every reader and survives a crash of the process; [`Durability`]
//!   decides when it also survives power loss ([`Broker::flush`] forces it).
//! - Every batch carries a CRC-32, checked on every read; a mismatch is an
//!   [`Error::Corrupt`] naming the file and byte position.
//! - After a crash, the active segment is scanned and its torn tail cut off;
//!   a clean close makes the next open cost O(segments).
//! - A directory is opened by one handle at a time ([`Error::Locked`]).
//! - Committed offsets are records in the internal [`OFFSETS_TOPIC`], as
//!   durable as any other log; at most one member of a group holds a
//!   partition at any moment, and a commit from a member that lost it is
//!   refused ([`Error::StaleGeneration`]).
//! - Bad input and bad files are typed [`Error`]s, never a panic.
//!
//! The byte layout of every file is specified in `docs/FORMAT.md`.
#![deny(missing_docs)]
#![warn(rustdoc::broken_intra_doc_links)]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations, clippy::undocumented_unsafe_blocks)]

mod broker;
mod client;
mod clock;
mod error;
mod group;
pub mod inspect;
#[cfg(any(test, feature = "internals"))]
pub mod internals;
mod log;
mod topic_name;

pub use broker::stats::{BrokerStats, GroupStats, PartitionStats};
pub use broker::topic::{CleanupPolicy, MAX_PARTITIONS, MAX_TOPIC_NAME_LEN, Topic, TopicConfig, validate_topic_name};
pub use broker::{
    Broker, BrokerOptions, ConsumerGroup, MIN_MAINTENANCE_INTERVAL, MaintenanceReport, RemoteJoin, RemoteJoinOutcome,
    ResetTo,
};
pub use client::batching::{BatchingConfig, BatchingProducer, DeliveryFuture, Enqueue};
pub use client::consumer::{
    Consumer, ConsumerBatch, ConsumerConfig, ConsumerRecord, OffsetReset, RebalanceListener, RecordStream, Recv,
    TopicPattern, WakeupHandle,
};
pub use client::partitioner::{DefaultPartitioner, NoKeyStrategy, Partitioner, murmur2, murmur2_partition};
pub use client::producer::{Producer, ProducerConfig, ProducerRecord, RecordMetadata, SendFuture};
pub use client::typed::{Codec, CodecError, TypedProducer, Utf8};
#[cfg(feature = "serde")]
pub use client::typed::{Json, MessagePack};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use group::{
    Assignor, GroupDescription, GroupState, MAX_GROUP_ID_LEN, MAX_OFFSET_METADATA_LEN, MemberDescription,
    MemberSubscription, OFFSETS_TOPIC, OffsetAndMetadata, PartitionOffsets, TopicPartition,
};
pub use log::cleaner::{CompactionOptions, CompactionStats};
pub use log::format::{HeaderViews, RecordIter, RecordView, RecordViews};
pub use log::options::{Durability, MAX_TIMESTAMP, PartitionOptions};
pub use log::partition::{AppendFuture, AppendInfo, Partition};
pub use log::record::{Batch, Header, LogRecord, Record, RecordRef, TimestampType};
pub use log::stats::LogStats;
pub use log::view::Segment;
pub use topic_name::TopicName;
