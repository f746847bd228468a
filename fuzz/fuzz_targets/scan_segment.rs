#![no_main]
//! Recovery's walk over a segment, fed arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let base = data.first().map_or(0, |&b| u64::from(b) << 20);
    streamlog::internals::scan_segment(data, base);
});
