//! # streamlog
//!
//! An embeddable, Kafka-style message log: the storage model of a Kafka
//! broker inside your process, with no server. A [`Partition`] is an
//! append-only log of record batches kept in segment files (`.log` with a
//! sparse `.index` and a `.timeindex`); reads return zero-copy
//! [`bytes::Bytes`] slices of the memory-mapped segments.
//!
//! ```
//! use streamlog::{Durability, Partition, PartitionOptions, Record};
//!
//! let dir = tempfile::tempdir()?;
//! let opts = PartitionOptions::default().durability(Durability::Os);
//! let log = Partition::open(dir.path().join("orders-0"), opts.clone())?;
//! log.append(&[Record::new("created").with_key("order-1")])?;
//! log.append(&[Record::new("paid").with_key("order-1"), Record::tombstone("order-2")])?;
//! assert_eq!(log.high_watermark(), 3);
//! log.close()?;
//!
//! // Reopen: the clean shutdown makes this O(segments).
//! let log = Partition::open(dir.path().join("orders-0"), opts)?;
//! let mut values = Vec::new();
//! let mut next = log.log_start_offset();
//! while next < log.high_watermark() {
//!     for batch in log.read(next, 64 << 10)? {
//!         for rec in batch.records() {
//!             let rec = rec?;
//!             values.push((rec.offset, rec.value));
//!         }
//!         next = batch.next_offset();
//!     }
//! }
//! assert_eq!(values[1].1.as_deref(), Some(&b"paid"[..]));
//! assert_eq!(values[2].1, None); // a tombstone
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Guarantees
//!
//! - Offsets are assigned consecutively from 0. Compaction leaves gaps;
//!   offsets lost to power loss without `Durability::Sync`, or cut by
//!   `repair`, are assigned again.
//! - An acknowledged append is visible to every reader and survives a crash
//!   of the process; [`Durability`] decides when it also survives power loss.
//! - Every batch carries a CRC-32, checked on every read; a mismatch is an
//!   [`Error::Corrupt`] naming the file and byte position.
//! - After a crash, the active segment is scanned and its torn tail cut off;
//!   a clean close makes the next open cost O(segments).
//! - A directory is opened by one handle at a time ([`Error::Locked`]).
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

pub use broker::stats::{BrokerStats, GroupStats, PartitionStats};
pub use broker::topic::{CleanupPolicy, MAX_PARTITIONS, MAX_TOPIC_NAME_LEN, Topic, TopicConfig, validate_topic_name};
pub use broker::{Broker, BrokerOptions, ConsumerGroup, MIN_MAINTENANCE_INTERVAL, MaintenanceReport, ResetTo};
pub use client::batching::{BatchingConfig, BatchingProducer, DeliveryFuture, Enqueue};
pub use client::consumer::{
    Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, RebalanceListener, RecordStream, Recv, TopicPattern,
    WakeupHandle,
};
pub use client::partitioner::{DefaultPartitioner, NoKeyStrategy, Partitioner, murmur2, murmur2_partition};
pub use client::producer::{Producer, ProducerConfig, ProducerRecord, RecordMetadata, SendFuture};
pub use client::typed::{Codec, CodecError, TypedProducer, Utf8};
#[cfg(feature = "serde")]
pub use client::typed::{Json, MessagePack};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use group::{
    Assignor, GroupDescription, GroupState, MAX_GROUP_ID_LEN, MemberDescription, MemberSubscription, OFFSETS_TOPIC,
    PartitionOffsets, TopicPartition,
};
pub use log::cleaner::{CompactionOptions, CompactionStats};
pub use log::format::RecordIter;
pub use log::options::{Durability, MAX_TIMESTAMP, PartitionOptions};
pub use log::partition::{AppendFuture, AppendInfo, Partition};
pub use log::record::{Batch, Header, LogRecord, Record, TimestampType};
pub use log::stats::LogStats;
pub use log::view::Segment;
