//! The clients: the producer with its partitioners, and the consumer.
pub(crate) mod consumer;
pub(crate) mod producer;
