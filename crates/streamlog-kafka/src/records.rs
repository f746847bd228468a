//! Kafka RecordBatch v2 (big-endian, CRC-32C) to and from streamlog's
//! batches. The on-disk format stays streamlog's own.

use anyhow::{anyhow, bail};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{self, Decompressor};
use kafka_protocol::records::Compression;
use streamlog::{Batch, Partition, RecordRef, TimestampType};

/// Records of a produce batch appended at a time: a batch of up to this
/// many (librdkafka's default `batch.num.messages` is 10,000) is one append,
/// all or nothing; a larger one is appended in parts, so that what a batch
/// expands to in memory stays bounded (a few MiB of record views) however
/// many tiny records a small compressed batch holds.
const CHUNK_RECORDS: usize = 32 * 1024;

/// Headers in one record at most, and in one append before it ends its
/// part early (a part ends once it holds this many, so it holds fewer than
/// twice this): a header takes 2 bytes on the wire and 32 in memory, so without
/// a bound a batch of headers would expand sixteen-fold.
const CHUNK_HEADERS: usize = 64 * 1024;

/// Bytes of a v2 batch header after its length field: leader epoch 4,
/// magic 1, CRC 4, attributes 2, last offset delta 4, base and max
/// timestamps 16, producer id 8, epoch 2, base sequence 4, record count 4.
const HEADER_AFTER_LENGTH: usize = 49;

/// One Kafka record batch (message format v2) of a produce request, its
/// header and CRC-32C checked. Its records are decoded only when appended
/// ([`IncomingBatch::append_to`]), one batch at a time, borrowed from its
/// bytes: nothing is allocated per record.
pub(crate) struct IncomingBatch {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    /// Its records (the header's count, which matches its offset range).
    pub count: i32,
    /// A transaction marker.
    pub control: bool,
    compression: Compression,
    base_timestamp: i64,
    /// The records, as sent (compressed or not).
    body: Bytes,
}

/// Why a batch could not be appended.
pub(crate) enum AppendError {
    /// The batch does not decode (CORRUPT_MESSAGE).
    Corrupt(anyhow::Error),
    /// The log refused it.
    Log(streamlog::Error),
}

/// Splits one partition's produce data into its record batches, checking
/// each header and CRC-32C (Kafka's checks: magic 2, a known codec, a record
/// count that matches the offset range). Message format v0/v1 is refused.
pub(crate) fn split_produce(mut data: Bytes) -> anyhow::Result<Vec<IncomingBatch>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.len() < 12 {
            bail!("truncated batch header ({} bytes)", data.len());
        }
        let len = i32::from_be_bytes(data[8..12].try_into().expect("4 bytes"));
        let len = usize::try_from(len).map_err(|_| anyhow!("negative batch length {len}"))?;
        if len < HEADER_AFTER_LENGTH || len > data.len() - 12 {
            bail!("batch length {len} out of range ({} bytes left)", data.len() - 12);
        }
        let mut b = data.split_to(12 + len);
        b.advance(12);
        let _leader_epoch = b.get_i32();
        let magic = b.get_i8();
        if magic != 2 {
            bail!("message format v{magic} is unsupported");
        }
        let crc = b.get_u32();
        if crc32c::crc32c(&b) != crc {
            bail!("batch CRC-32C mismatch");
        }
        let attributes = b.get_i16();
        let compression = match attributes & 0x7 {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => bail!("unknown compression codec {other}"),
        };
        let control = attributes & (1 << 5) != 0;
        let last_offset_delta = b.get_i32();
        let base_timestamp = b.get_i64();
        let _max_timestamp = b.get_i64();
        let (producer_id, producer_epoch, base_sequence) = (b.get_i64(), b.get_i16(), b.get_i32());
        let count = b.get_i32();
        if count < 1 {
            bail!("a batch of {count} records");
        }
        if i64::from(count) != i64::from(last_offset_delta) + 1 {
            bail!("record count {count} does not match the last offset delta {last_offset_delta}");
        }
        out.push(IncomingBatch {
            producer_id,
            producer_epoch,
            base_sequence,
            count,
            control,
            compression,
            base_timestamp,
            body: b,
        });
    }
    Ok(out)
}

impl IncomingBatch {
    /// Decompresses the batch and appends its records to `log`: one append
    /// for up to [`CHUNK_RECORDS`] records and [`CHUNK_HEADERS`] headers,
    /// more for a larger batch, every record decoded before any is
    /// appended. Returns the first record's offset.
    /// `checked`: the whole batch was decoded already ([`IncomingBatch::check`]).
    pub(crate) fn append_to(&self, log: &Partition, mut checked: bool) -> Result<u64, AppendError> {
        let corrupt = AppendError::Corrupt;
        let records = self.decompress().map_err(corrupt)?;
        let count = self.count as usize;
        let mut parsed: Vec<Parsed<'_>> = Vec::with_capacity(count.min(CHUNK_RECORDS));
        let mut headers: Vec<(&str, Option<&[u8]>)> = Vec::new();
        let (mut rest, mut done, mut first) = (&records[..], 0, None);
        while done < count {
            parsed.clear();
            headers.clear();
            while done < count && parsed.len() < CHUNK_RECORDS && headers.len() < CHUNK_HEADERS {
                parsed.push(read_record(&mut rest, done, self.base_timestamp, &mut headers).map_err(corrupt)?);
                done += 1;
            }
            if done < count && !checked {
                // Appended in parts: the rest is checked before the first
                // part goes in.
                check_records(rest, done..count, self.base_timestamp)?;
                checked = true;
            }
            if done == count {
                rest_is_empty(rest)?;
            }
            let refs: Vec<RecordRef<'_>> = parsed
                .iter()
                .map(|p| RecordRef {
                    key: p.key,
                    value: p.value,
                    timestamp: p.timestamp,
                    headers: &headers[p.headers.clone()],
                })
                .collect();
            let at = log.append_refs(&refs).map_err(AppendError::Log)?;
            first.get_or_insert(at.base_offset);
        }
        // A batch holds at least one record (`split_produce`).
        Ok(first.expect("one append at least"))
    }

    /// Decodes every record of the batch, appending none: a request of
    /// several batches is checked whole before any is appended, as Kafka
    /// does, so that one that does not decode leaves the others unwritten
    /// (a client retrying the request would write them twice).
    pub(crate) fn check(&self) -> Result<(), AppendError> {
        let records = self.decompress().map_err(AppendError::Corrupt)?;
        check_records(&records, 0..self.count as usize, self.base_timestamp)
    }

    /// The batch's record bytes, decompressed (at most the vendored
    /// decoder's `MAX_DECOMPRESSED_BYTES`).
    fn decompress(&self) -> anyhow::Result<Bytes> {
        let mut body = self.body.clone();
        let take = |b: &mut Bytes| Ok(std::mem::take(b));
        match self.compression {
            Compression::None => Ok(body),
            Compression::Gzip => compression::Gzip::decompress(&mut body, take),
            Compression::Snappy => compression::Snappy::decompress(&mut body, take),
            Compression::Lz4 => compression::Lz4::decompress(&mut body, take),
            Compression::Zstd => compression::Zstd::decompress(&mut body, take),
        }
    }
}

/// Decodes records `indexes` from `rest` (which must hold exactly them),
/// keeping nothing.
fn check_records(mut rest: &[u8], indexes: std::ops::Range<usize>, base_timestamp: i64) -> Result<(), AppendError> {
    let mut scratch = Vec::new();
    for i in indexes {
        scratch.clear();
        read_record(&mut rest, i, base_timestamp, &mut scratch).map_err(AppendError::Corrupt)?;
    }
    rest_is_empty(rest)
}

/// Fails unless the batch's bytes after its last record are none.
fn rest_is_empty(rest: &[u8]) -> Result<(), AppendError> {
    match rest.len() {
        0 => Ok(()),
        n => Err(AppendError::Corrupt(anyhow!("{n} bytes after the last record"))),
    }
}

/// One record's fields, borrowed; its headers are `headers` of the list
/// they were read into.
struct Parsed<'a> {
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    timestamp: Option<i64>,
    headers: std::ops::Range<usize>,
}

/// Reads record `index` of a batch (Kafka's v2 record: length, attributes,
/// timestamp delta, offset delta, key, value, headers, each length a zigzag
/// varint) from the front of `buf`, its headers appended to `headers`.
/// Offset deltas must count up from 0, as Kafka requires; a negative
/// timestamp means none (the log's clock), as before.
fn read_record<'a>(
    buf: &mut &'a [u8],
    index: usize,
    base_timestamp: i64,
    headers: &mut Vec<(&'a str, Option<&'a [u8]>)>,
) -> anyhow::Result<Parsed<'a>> {
    let len = varint(buf)?;
    let len = usize::try_from(len).map_err(|_| anyhow!("record {index}: negative length {len}"))?;
    let mut r = take(buf, len).ok_or_else(|| anyhow!("record {index}: length {len} past the batch"))?;
    let _attributes = take(&mut r, 1).ok_or_else(|| anyhow!("record {index}: empty"))?;
    let timestamp = base_timestamp.wrapping_add(varlong(&mut r)?);
    let offset_delta = varint(&mut r)?;
    if usize::try_from(offset_delta).ok() != Some(index) {
        bail!("record {index}: offset delta {offset_delta}, not incremental");
    }
    let key = nullable(&mut r)?;
    let value = nullable(&mut r)?;
    let n = varint(&mut r)?;
    let n = usize::try_from(n).map_err(|_| anyhow!("record {index}: negative header count {n}"))?;
    if n > CHUNK_HEADERS {
        bail!("record {index}: {n} headers, more than {CHUNK_HEADERS}");
    }
    let from = headers.len();
    for _ in 0..n {
        let name = nullable(&mut r)?.ok_or_else(|| anyhow!("record {index}: a header without a name"))?;
        let name = std::str::from_utf8(name).map_err(|_| anyhow!("record {index}: a header name is not UTF-8"))?;
        headers.push((name, nullable(&mut r)?));
    }
    if !r.is_empty() {
        bail!("record {index}: {} bytes past its fields", r.len());
    }
    Ok(Parsed { key, value, timestamp: (timestamp >= 0).then_some(timestamp), headers: from..headers.len() })
}

/// The first `n` bytes of `buf`, which moves past them.
fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if n > buf.len() {
        return None;
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Some(head)
}

/// A zigzag varint of at most 10 bytes (Kafka's varlong).
fn varlong(buf: &mut &[u8]) -> anyhow::Result<i64> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&byte, rest) = buf.split_first().ok_or_else(|| anyhow!("truncated varint"))?;
        *buf = rest;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((v >> 1) as i64 ^ -((v & 1) as i64));
        }
    }
    bail!("varint longer than 10 bytes")
}

/// A zigzag varint that fits an `i32` (Kafka's varint).
fn varint(buf: &mut &[u8]) -> anyhow::Result<i32> {
    let v = varlong(buf)?;
    i32::try_from(v).map_err(|_| anyhow!("varint {v} out of range"))
}

/// A length-prefixed byte string; length -1 is null.
fn nullable<'a>(buf: &mut &'a [u8]) -> anyhow::Result<Option<&'a [u8]>> {
    match varint(buf)? {
        -1 => Ok(None),
        n => {
            let n = usize::try_from(n).map_err(|_| anyhow!("negative length {n}"))?;
            take(buf, n).map(Some).ok_or_else(|| anyhow!("length {n} past the record"))
        }
    }
}

/// Encodes stored batches as Kafka batches (message format v2,
/// uncompressed), one per stored batch, each holding its records from the
/// read offset on with their offsets (gaps left by compaction included),
/// its stored offset range and timestamp kind, and the records' headers in
/// order, repeated names too. Written straight from the
/// borrowed record views: nothing is allocated per record.
pub(crate) fn encode_fetch(batches: &[Batch], out: &mut BytesMut) -> anyhow::Result<()> {
    let mut rec = Vec::new();
    for batch in batches {
        let start = out.len();
        out.put_bytes(0, 12 + HEADER_AFTER_LENGTH); // The header, written below.
        let (mut base, mut first_ts, mut max_ts, mut last_delta, mut count) = (0u64, 0i64, i64::MIN, 0i32, 0i32);
        for r in batch.record_views() {
            let r = r?;
            if count == 0 {
                (base, first_ts) = (r.offset(), r.timestamp());
            }
            let delta = i32::try_from(r.offset() - base).map_err(|_| anyhow!("offset range past i32"))?;
            rec.clear();
            rec.push(0); // attributes
            put_varint(&mut rec, r.timestamp().wrapping_sub(first_ts));
            put_varint(&mut rec, i64::from(delta));
            put_nullable(&mut rec, r.key());
            put_nullable(&mut rec, r.value());
            put_varint(&mut rec, r.headers().count() as i64);
            for (name, value) in r.headers() {
                put_nullable(&mut rec, Some(name.as_bytes()));
                put_nullable(&mut rec, value);
            }
            put_varint(out, rec.len() as i64);
            out.put_slice(&rec);
            max_ts = max_ts.max(r.timestamp());
            last_delta = delta;
            count += 1;
        }
        if count == 0 {
            out.truncate(start);
            continue;
        }
        let length = i32::try_from(out.len() - start - 12).map_err(|_| anyhow!("batch past i32"))?;
        // The batch's offset range as stored, past records compaction
        // removed at its end (a client goes on after it); within an i32.
        let last_delta = i32::try_from(batch.last_offset() - base).unwrap_or(last_delta);
        // Bit 3: log append time.
        let attributes: i16 = if batch.timestamp_type() == TimestampType::LogAppendTime { 1 << 3 } else { 0 };
        let h = &mut out[start..start + 12 + HEADER_AFTER_LENGTH];
        h[0..8].copy_from_slice(&(base as i64).to_be_bytes());
        h[8..12].copy_from_slice(&length.to_be_bytes());
        // Leader epoch 0 (12..16), then the magic; the CRC (17..21) below;
        // attributes (21..23): uncompressed, and the timestamps' kind.
        h[16] = 2;
        h[21..23].copy_from_slice(&attributes.to_be_bytes());
        h[23..27].copy_from_slice(&last_delta.to_be_bytes());
        h[27..35].copy_from_slice(&first_ts.to_be_bytes());
        h[35..43].copy_from_slice(&max_ts.to_be_bytes());
        h[43..51].copy_from_slice(&(-1i64).to_be_bytes()); // producer id
        h[51..53].copy_from_slice(&(-1i16).to_be_bytes()); // producer epoch
        h[53..57].copy_from_slice(&(-1i32).to_be_bytes()); // base sequence
        h[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&out[start + 21..]);
        out[start + 17..start + 21].copy_from_slice(&crc.to_be_bytes());
    }
    Ok(())
}

/// Appends Kafka's zigzag varint of `v`.
fn put_varint(out: &mut impl BufMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.put_u8(z as u8 | 0x80);
        z >>= 7;
    }
    out.put_u8(z as u8);
}

/// Appends a length-prefixed byte string (length -1: null).
fn put_nullable(out: &mut impl BufMut, field: Option<&[u8]>) {
    match field {
        None => put_varint(out, -1),
        Some(f) => {
            put_varint(out, f.len() as i64);
            out.put_slice(f);
        }
    }
}
