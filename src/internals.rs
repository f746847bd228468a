//! Entry points into the decoders for fuzzing (`fuzz/`), behind the
//! `internals` feature. Each takes arbitrary bytes and must never panic.

use std::path::Path;

use bytes::Bytes;

use crate::broker::topic::TopicConfig;
use crate::log::format::{self, RecordIter};
use crate::log::index::SegmentIndex;
use crate::log::segment::{self, IndexConfig};

/// Decodes `data` as one record batch, as it is and with its checksum
/// fixed up (so that mutations reach the record decoder). Returns how many
/// records decoded.
pub fn decode_batch(data: &[u8]) -> Option<usize> {
    let as_is = decode_one(data);
    let mut sealed = data.to_vec();
    if let Some(h) = format::BatchHeader::parse(&sealed)
        && (format::BATCH_HEADER_LEN..=sealed.len()).contains(&h.len())
    {
        let crc = crc32fast::hash(&sealed[format::LENGTH_OFFSET..h.len()]);
        sealed[format::CRC_OFFSET..format::CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
        return decode_one(&sealed).or(as_is);
    }
    as_is
}

fn decode_one(data: &[u8]) -> Option<usize> {
    let header = format::check_batch(data).ok()?;
    let _ = format::validate_records(data, &header);
    let bytes = Bytes::copy_from_slice(&data[..header.len()]);
    let mut it = RecordIter::new(bytes, &header, 0);
    let mut n = 0;
    while let Ok(Some(_)) = it.try_next() {
        n += 1;
    }
    Some(n)
}

/// Walks `data` as the `.log` of a segment starting at `base_offset`, as
/// recovery does. Returns the valid length.
pub fn scan_segment(data: &[u8], base_offset: u64) -> usize {
    segment::scan(data, base_offset, IndexConfig { interval_bytes: 64, max_index_bytes: 1 << 16 }).valid_len
}

/// Parses `offsets` and `times` as the index files of a segment.
pub fn load_index(offsets: &[u8], times: &[u8], log_len: u64) -> bool {
    SegmentIndex::load(0, offsets, times, log_len, u64::MAX).is_ok()
}

/// Parses a topic metadata file.
pub fn decode_topic_config(text: &[u8]) -> bool {
    std::str::from_utf8(text).is_ok_and(|t| TopicConfig::decode(t, Path::new("fuzz")).is_ok())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    // The fuzz targets' bodies on random input, as a quick check in every
    // test run (the fuzzer explores much further).
    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600), base in any::<u64>()) {
            decode_batch(&data);
            scan_segment(&data, base);
            load_index(&data, &data, data.len() as u64);
            decode_topic_config(&data);
        }

        /// Valid batches with one byte changed: deeper than random bytes.
        #[test]
        fn mutated_batches_never_panic(at in any::<usize>(), byte in any::<u8>(), count in 1usize..5) {
            let records: Vec<crate::Record> = (0..count)
                .map(|i| crate::Record::new(vec![i as u8; i * 3]).with_key(vec![1u8; i]).with_header("h", None))
                .collect();
            let plan = format::plan_batch(&records, 7, false).unwrap();
            let mut buf = vec![0u8; plan.len];
            format::encode_batch(&mut buf, &plan, 5, &records, 7, false);
            let i = at % buf.len();
            buf[i] = byte;
            // Re-seal so the mutation gets past the checksum.
            let crc = crc32fast::hash(&buf[format::LENGTH_OFFSET..]);
            buf[..4].copy_from_slice(&crc.to_le_bytes());
            decode_batch(&buf);
            scan_segment(&buf, 5);
        }
    }
}
