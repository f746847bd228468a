#![no_main]
//! A record batch decoder fed arbitrary bytes: errors are fine, panics not.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    streamlog::internals::decode_batch(data);
});
