#![no_main]
//! The topic metadata parser, fed arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    streamlog::internals::decode_topic_config(data);
});
