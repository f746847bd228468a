//! Kafka RecordBatch v2 (big-endian, CRC-32C) to and from streamlog's
//! batches. The on-disk format stays streamlog's own.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record as KRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use streamlog::{Batch, Header, Record};

/// One Kafka batch of a produce request, decoded.
pub(crate) struct IncomingBatch {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records: Vec<Record>,
}

/// Decodes the record batches of one partition's produce data: checks each
/// batch's CRC-32C, decompresses it (gzip, snappy with xerial framing, lz4,
/// zstd) and converts its records. Message format v0/v1 is refused.
pub(crate) fn decode_produce(mut data: Bytes) -> anyhow::Result<Vec<IncomingBatch>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let set = RecordBatchDecoder::decode(&mut data)?;
        let Some(first) = set.records.first() else { continue };
        if first.control {
            continue; // Transaction markers: no transactions here.
        }
        let (producer_id, producer_epoch, base_sequence) = (first.producer_id, first.producer_epoch, first.sequence);
        let records = set
            .records
            .into_iter()
            .map(|r| Record {
                key: r.key,
                value: r.value,
                timestamp: (r.timestamp >= 0).then_some(r.timestamp),
                headers: r.headers.into_iter().map(|(k, value)| Header { key: k.to_string(), value }).collect(),
            })
            .collect();
        out.push(IncomingBatch { producer_id, producer_epoch, base_sequence, records });
    }
    Ok(out)
}

/// Encodes stored batches as Kafka batches (uncompressed), one per stored
/// batch, each holding its records from the read offset on.
pub(crate) fn encode_fetch(batches: &[Batch], out: &mut BytesMut) -> anyhow::Result<()> {
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    let mut recs: Vec<KRecord> = Vec::new();
    for batch in batches {
        recs.clear();
        for r in batch.try_records()? {
            let mut headers = IndexMap::with_capacity(r.headers.len());
            for h in r.headers {
                headers.insert(StrBytes::from_string(h.key), h.value);
            }
            recs.push(KRecord {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: r.offset as i64,
                // Offset minus sequence is the same for every record: one
                // batch per stored batch, gaps (compaction) included.
                sequence: r.offset as i32,
                timestamp: r.timestamp,
                key: r.key,
                value: r.value,
                headers,
            });
        }
        if !recs.is_empty() {
            RecordBatchEncoder::encode(out, recs.iter(), &options)?;
        }
    }
    Ok(())
}
