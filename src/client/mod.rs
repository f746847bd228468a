//! The clients: the producer with its partitioners, and the consumer.
//!
//! Clients hold the broker's state ([`BrokerState`]), a narrow internal
//! handle, never the public [`Broker`]; the broker layer below does not know
//! them. The constructors on `Broker` live here, with the clients they make.

pub(crate) mod batching;
pub(crate) mod consumer;
pub(crate) mod partitioner;
pub(crate) mod producer;
pub(crate) mod typed;

use std::sync::Arc;

use crate::broker::Broker;
use crate::error::Result;
use batching::{BatchingConfig, BatchingProducer};
use consumer::{Consumer, ConsumerConfig};
use producer::{Producer, ProducerConfig};

impl Broker {
    /// A producer with the default configuration (murmur2 for keyed records,
    /// sticky for the rest).
    pub fn producer(&self) -> Producer {
        Producer::new(Arc::clone(self.state()), ProducerConfig::default())
    }

    /// A producer with `config`.
    pub fn producer_with(&self, config: ProducerConfig) -> Producer {
        Producer::new(Arc::clone(self.state()), config)
    }

    /// A producer that gathers records from many threads or tasks and
    /// appends them per partition in batches, with delivery futures (its
    /// own background thread, joined when the last clone goes).
    pub fn batching_producer(&self, config: BatchingConfig) -> Result<BatchingProducer> {
        BatchingProducer::new(Arc::clone(self.state()), config)
    }

    /// A consumer: `assign` partitions to it, or `subscribe` it to topics
    /// as a member of `config.group_id`.
    pub fn consumer(&self, config: ConsumerConfig) -> Result<Consumer> {
        Consumer::new(Arc::clone(self.state()), config)
    }
}
