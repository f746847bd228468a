#![no_main]
//! The Kafka front's request path (frame decoding, dispatch to the handlers,
//! response encoding) fed arbitrary frames, without a socket. One broker in
//! a temporary directory serves every input, so state carries over.
use std::sync::{Arc, Mutex, OnceLock};

use streamlog_kafka::internals::Dispatcher;

static DISPATCHER: OnceLock<Mutex<(tempfile::TempDir, Dispatcher)>> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let d = DISPATCHER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let broker = Arc::new(streamlog::Broker::open(dir.path(), Default::default()).unwrap());
        broker.create_topic("t", streamlog::TopicConfig::with_partitions(2)).unwrap();
        let config = streamlog_kafka::ServerConfig { auto_create_partitions: 1, ..Default::default() };
        Mutex::new((dir, Dispatcher::new(broker, config)))
    });
    let mut d = d.lock().unwrap_or_else(|e| e.into_inner());
    let _ = d.1.handle(bytes::Bytes::copy_from_slice(data));
});
