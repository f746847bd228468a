#![no_main]
//! The index file parser, fed arbitrary bytes as both index files.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mid = data.len() / 2;
    streamlog::internals::load_index(&data[..mid], &data[mid..], data.len() as u64 * 4);
});
