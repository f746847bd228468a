//! Byte layouts of the record batch and its records. No I/O lives here.
//!
//! The authoritative description is `docs/FORMAT.md`; this module is its only
//! implementation. All integers are little-endian.
//!
//! ```text
//! batch header (44 bytes)
//!  0  crc               u32   CRC-32 (IEEE) of bytes [4, batch_length)
//!  4  batch_length      u32   bytes of the whole batch, header included
//!  8  magic             u8    format version: 1, or 2 when an attribute is set
//!  9  attributes        u8    magic 1: 0; magic 2: bit 3 (0x08) = log append time
//! 10  reserved          u16   must be 0
//! 12  base_offset       u64   offset of the first record
//! 20  last_offset_delta u32   the batch's last offset minus base_offset (at or past the last record's)
//! 24  first_timestamp   i64   first record's timestamp (ms since the epoch)
//! 32  max_timestamp     i64   largest record timestamp in the batch
//! 40  record_count      u32   number of records that follow (0 ..= last_offset_delta + 1)
//! 44  records ...
//! ```
//!
//! Each record: `length` (uvarint, bytes after this field), `attributes` (u8,
//! 0), `timestamp_delta` (zigzag varint), `offset_delta` (uvarint), key, value
//! (each as uvarint `len + 1` then the bytes, `0` meaning null), a uvarint
//! header count and that many headers (uvarint key length, UTF-8 key bytes,
//! value as above).

use std::ops::Range;
use std::str;

use bytes::Bytes;

use crate::log::record::{Header, LogRecord, Record, RecordRef};

/// Where the CRC sits, and the first byte it covers.
pub(crate) const CRC_OFFSET: usize = 0;
pub(crate) const LENGTH_OFFSET: usize = CRC_OFFSET + size_of::<u32>();
pub(crate) const MAGIC_OFFSET: usize = LENGTH_OFFSET + size_of::<u32>();
pub(crate) const ATTRIBUTES_OFFSET: usize = MAGIC_OFFSET + size_of::<u8>();
pub(crate) const RESERVED_OFFSET: usize = ATTRIBUTES_OFFSET + size_of::<u8>();
pub(crate) const BASE_OFFSET_OFFSET: usize = RESERVED_OFFSET + size_of::<u16>();
pub(crate) const LAST_DELTA_OFFSET: usize = BASE_OFFSET_OFFSET + size_of::<u64>();
pub(crate) const FIRST_TS_OFFSET: usize = LAST_DELTA_OFFSET + size_of::<u32>();
pub(crate) const MAX_TS_OFFSET: usize = FIRST_TS_OFFSET + size_of::<i64>();
pub(crate) const COUNT_OFFSET: usize = MAX_TS_OFFSET + size_of::<i64>();
/// Size of the batch header; records start here.
pub const BATCH_HEADER_LEN: usize = COUNT_OFFSET + size_of::<u32>();

/// The smallest encoded record: one byte each for its length, attributes,
/// timestamp delta, offset delta, key, value and header count.
const MIN_RECORD_LEN: usize = 7;

/// The batch format version this build writes for batches without
/// attributes, which every release reads.
pub const MAGIC: u8 = 1;

/// The batch format version of batches with attributes: magic 1 with
/// [`ATTR_LOG_APPEND_TIME`] defined. A reader that knows only magic 1 meets
/// it as an unknown version (an error, never a torn tail to cut).
pub const MAGIC_V2: u8 = 2;

/// Attribute bit (Kafka's bit 3): the batch's timestamps were set by the log
/// at append (`LogAppendTime`), not by the producer.
pub const ATTR_LOG_APPEND_TIME: u8 = 0x08;

/// Every attribute bit a magic-2 batch may set.
const KNOWN_ATTRIBUTES: u8 = ATTR_LOG_APPEND_TIME;

/// Magic byte of a batch with `attributes`.
pub(crate) fn magic_for(attributes: u8) -> u8 {
    if attributes == 0 { MAGIC } else { MAGIC_V2 }
}

/// Largest batch the format can describe (its length is a `u32`).
pub(crate) const MAX_BATCH_LEN: usize = u32::MAX as usize;

/// Why bytes do not form a valid batch or record. Positions are added by the
/// caller, which knows the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// Fewer bytes than a header, or than the header's `batch_length`.
    Truncated,
    /// `batch_length` smaller than a header.
    BadLength(u32),
    /// The stored and computed checksums differ.
    Checksum { stored: u32, computed: u32 },
    /// The checksum matched but the magic byte is not one we know.
    UnknownMagic(u8),
    /// Attributes or reserved bits we do not understand.
    BadAttributes,
    /// Records do not parse, or disagree with the header.
    BadRecord(&'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("batch is truncated"),
            DecodeError::BadLength(len) => write!(f, "batch length {len} is smaller than a header"),
            DecodeError::Checksum { stored, computed } => {
                write!(f, "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")
            }
            DecodeError::UnknownMagic(m) => write!(f, "unknown batch format version {m}"),
            DecodeError::BadAttributes => f.write_str("unknown attribute or reserved bits set"),
            DecodeError::BadRecord(why) => write!(f, "malformed record: {why}"),
        }
    }
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The fixed fields of a batch, as read from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub crc: u32,
    pub batch_length: u32,
    pub magic: u8,
    pub attributes: u8,
    pub reserved: u16,
    pub base_offset: u64,
    pub last_offset_delta: u32,
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    pub record_count: u32,
}

impl BatchHeader {
    /// Reads the header fields without checking anything but the length of
    /// `buf`. Returns `None` if fewer than [`BATCH_HEADER_LEN`] bytes remain.
    pub fn parse(buf: &[u8]) -> Option<BatchHeader> {
        if buf.len() < BATCH_HEADER_LEN {
            return None;
        }
        Some(BatchHeader {
            crc: u32_at(buf, CRC_OFFSET),
            batch_length: u32_at(buf, LENGTH_OFFSET),
            magic: buf[MAGIC_OFFSET],
            attributes: buf[ATTRIBUTES_OFFSET],
            reserved: u16::from_le_bytes([buf[RESERVED_OFFSET], buf[RESERVED_OFFSET + 1]]),
            base_offset: u64_at(buf, BASE_OFFSET_OFFSET),
            last_offset_delta: u32_at(buf, LAST_DELTA_OFFSET),
            first_timestamp: i64_at(buf, FIRST_TS_OFFSET),
            max_timestamp: i64_at(buf, MAX_TS_OFFSET),
            record_count: u32_at(buf, COUNT_OFFSET),
        })
    }

    /// Offset of the last record. Cannot overflow for a header that passed
    /// [`check_batch`]; saturates otherwise.
    pub fn last_offset(&self) -> u64 {
        self.base_offset.saturating_add(u64::from(self.last_offset_delta))
    }

    pub fn len(&self) -> usize {
        self.batch_length as usize
    }
}

/// Checks the batch at the start of `buf`: its length fits, its checksum
/// matches, its version and flags are known. Records are checked lazily by
/// [`RecordIter`]; [`validate_records`] checks them all.
pub(crate) fn check_batch(buf: &[u8]) -> Result<BatchHeader, DecodeError> {
    let header = BatchHeader::parse(buf).ok_or(DecodeError::Truncated)?;
    check_length(&header, buf)?;
    let computed = crc32(&buf[LENGTH_OFFSET..header.len()]);
    if computed != header.crc {
        return Err(DecodeError::Checksum { stored: header.crc, computed });
    }
    check_fields(&header)?;
    Ok(header)
}

/// [`check_batch`] without the checksum: the header's fields and length
/// are consistent and the batch fits in `buf`. For walks that only need
/// batch boundaries: over bytes a clean close vouches for (the checksum is
/// still verified when the batch is read), and a read's walk to its offset
/// over batches it does not return, each of which must follow on from the
/// last (`Segment::read_records`).
pub(crate) fn check_header(buf: &[u8]) -> Result<BatchHeader, DecodeError> {
    let header = BatchHeader::parse(buf).ok_or(DecodeError::Truncated)?;
    check_length(&header, buf)?;
    check_fields(&header)?;
    Ok(header)
}

/// The CRC-32 of `bytes`, as `crc32fast::hash`, without its detection of
/// the CPU's features on every call (a new `Hasher` does it; a clone of one
/// made once does not): one of each per append and per batch read.
#[inline]
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    #[cfg(test)]
    test_support::CRC_BYTES.set(test_support::CRC_BYTES.get() + bytes.len() as u64);
    static HASHER: std::sync::OnceLock<crc32fast::Hasher> = std::sync::OnceLock::new();
    let mut h = HASHER.get_or_init(crc32fast::Hasher::new).clone();
    h.update(bytes);
    h.finalize()
}

/// For tests of how much work a search through damage does.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    thread_local! {
        /// Bytes [`crc32`] checksummed on this thread.
        pub(super) static CRC_BYTES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// Bytes [`crc32`] has checksummed on this thread so far.
    pub(crate) fn crc_bytes() -> u64 {
        CRC_BYTES.get()
    }

    /// `n` bytes of damage in which every [`BATCH_HEADER_LEN`]th position
    /// holds a header whose magic, base offset and length (to the end of
    /// the bytes) look right, and whose other fields fail [`check_fields`]
    /// (unknown attributes, reserved bits set, more records than room).
    pub(crate) fn plausible_damage(n: usize) -> Vec<u8> {
        let mut bytes = vec![0xff; n];
        for pos in (0..=n - BATCH_HEADER_LEN).step_by(BATCH_HEADER_LEN) {
            let len = u32::try_from(n - pos).expect("small");
            bytes[pos + LENGTH_OFFSET..pos + MAGIC_OFFSET].copy_from_slice(&len.to_le_bytes());
            bytes[pos + MAGIC_OFFSET] = MAGIC;
        }
        bytes
    }
}

fn check_length(header: &BatchHeader, buf: &[u8]) -> Result<(), DecodeError> {
    let len = header.len();
    if len < BATCH_HEADER_LEN {
        return Err(DecodeError::BadLength(header.batch_length));
    }
    if len > buf.len() {
        return Err(DecodeError::Truncated);
    }
    Ok(())
}

/// The checks of [`check_batch`] that need only the header: version, flags,
/// record count and offsets. For a batch checked in pieces.
pub(crate) fn check_fields(header: &BatchHeader) -> Result<(), DecodeError> {
    let len = header.len();
    let known = match header.magic {
        MAGIC => 0,
        MAGIC_V2 => KNOWN_ATTRIBUTES,
        m => return Err(DecodeError::UnknownMagic(m)),
    };
    if header.attributes & !known != 0 || header.reserved != 0 {
        return Err(DecodeError::BadAttributes);
    }
    // A batch may cover more offsets than it holds records, even none at all:
    // compaction keeps a segment's end offset that way (docs/FORMAT.md).
    let count = u64::from(header.record_count);
    if count > u64::from(header.last_offset_delta) + 1 {
        return Err(DecodeError::BadRecord("record count disagrees with the offset range"));
    }
    if count > ((len - BATCH_HEADER_LEN) / MIN_RECORD_LEN) as u64 {
        return Err(DecodeError::BadRecord("more records than the batch has room for"));
    }
    if header.base_offset.checked_add(u64::from(header.last_offset_delta)).is_none_or(|l| l == u64::MAX) {
        return Err(DecodeError::BadRecord("offsets overflow"));
    }
    Ok(())
}

/// Decodes every record of a checked batch, so that iterating it later cannot
/// fail. Used by recovery, where a batch must be wholly good or cut off.
pub(crate) fn validate_records(batch: &[u8], header: &BatchHeader) -> Result<(), DecodeError> {
    let batch = &batch[..header.len()];
    let mut cursor = RecordCursor::new(header);
    let mut seen = 0u32;
    while cursor.next_raw(batch)?.is_some() {
        seen += 1;
    }
    if seen != header.record_count {
        return Err(DecodeError::BadRecord("fewer records than the header says"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// varints

pub(crate) fn uvarint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

#[inline]
fn put_uvarint(buf: &mut [u8], mut at: usize, mut v: u64) -> usize {
    while v >= 0x80 {
        buf[at] = (v as u8) | 0x80;
        v >>= 7;
        at += 1;
    }
    buf[at] = v as u8;
    at + 1
}

#[inline(always)]
fn get_uvarint(buf: &[u8], at: &mut usize) -> Result<u64, DecodeError> {
    // Most lengths and deltas fit one or two bytes. One byte is checked on
    // its own: a record's last field (its header count) ends the slice.
    if let Some(&b0) = buf.get(*at) {
        if b0 < 0x80 {
            *at += 1;
            return Ok(u64::from(b0));
        }
        if let Some(&b1) = buf.get(*at + 1)
            && b1 < 0x80
        {
            *at += 2;
            return Ok(u64::from(b0 & 0x7f) | (u64::from(b1) << 7));
        }
    }
    get_uvarint_slow(buf, at)
}

#[cold]
fn get_uvarint_slow(buf: &[u8], at: &mut usize) -> Result<u64, DecodeError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at).ok_or(DecodeError::BadRecord("varint runs past the batch"))?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            if shift == 63 && b > 1 {
                break;
            }
            return Ok(v);
        }
    }
    Err(DecodeError::BadRecord("varint longer than 64 bits"))
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}
fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn opt_len(b: Option<&[u8]>) -> usize {
    match b {
        None => 1,
        Some(b) => uvarint_len(b.len() as u64 + 1) + b.len(),
    }
}

#[inline(always)]
fn put_opt(buf: &mut [u8], at: usize, b: Option<&[u8]>) -> usize {
    match b {
        None => put_uvarint(buf, at, 0),
        Some(b) => {
            let at = put_uvarint(buf, at, b.len() as u64 + 1);
            buf[at..at + b.len()].copy_from_slice(b);
            at + b.len()
        }
    }
}

#[inline(always)]
fn get_opt(buf: &[u8], at: &mut usize) -> Result<Option<Range<usize>>, DecodeError> {
    let n = get_uvarint(buf, at)?;
    if n == 0 {
        return Ok(None);
    }
    let len = usize::try_from(n - 1).map_err(|_| DecodeError::BadRecord("length overflows"))?;
    let end = at.checked_add(len).filter(|&e| e <= buf.len());
    let end = end.ok_or(DecodeError::BadRecord("field runs past the record"))?;
    let range = *at..end;
    *at = end;
    Ok(Some(range))
}

// ---------------------------------------------------------------------------
// encoding

/// One record to encode, borrowed: from a [`Record`] being appended, or from
/// a [`LogRecord`] being rewritten by compaction (which keeps its offset).
#[derive(Clone, Copy)]
pub(crate) struct EncodeRef<'a> {
    /// Offset minus the batch's base offset.
    pub offset_delta: u32,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Headers<'a>,
}

/// A record's headers as the caller holds them.
#[derive(Clone, Copy)]
pub(crate) enum Headers<'a> {
    Owned(&'a [Header]),
    Borrowed(&'a [(&'a str, Option<&'a [u8]>)]),
}

impl<'a> Headers<'a> {
    #[inline]
    fn len(self) -> usize {
        match self {
            Headers::Owned(h) => h.len(),
            Headers::Borrowed(h) => h.len(),
        }
    }

    /// Calls `f` with each header's name and value, in order.
    #[inline]
    fn each(self, mut f: impl FnMut(&'a str, Option<&'a [u8]>)) {
        match self {
            Headers::Owned(h) => h.iter().for_each(|h| f(&h.key, h.value.as_deref())),
            Headers::Borrowed(h) => h.iter().for_each(|&(k, v)| f(k, v)),
        }
    }
}

/// A record an append takes: [`Record`] or the borrowed [`RecordRef`].
pub(crate) trait AppendRecord {
    /// The timestamp the producer gave, if any.
    fn timestamp(&self) -> Option<i64>;
    /// Its fields, borrowed for encoding (see [`EncodeRef::of`]).
    fn fields(&self) -> (Option<&[u8]>, Option<&[u8]>, Headers<'_>);
}

impl AppendRecord for Record {
    #[inline]
    fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }
    #[inline]
    fn fields(&self) -> (Option<&[u8]>, Option<&[u8]>, Headers<'_>) {
        (self.key.as_deref(), self.value.as_deref(), Headers::Owned(&self.headers))
    }
}

impl AppendRecord for RecordRef<'_> {
    #[inline]
    fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }
    #[inline]
    fn fields(&self) -> (Option<&[u8]>, Option<&[u8]>, Headers<'_>) {
        (self.key, self.value, Headers::Borrowed(self.headers))
    }
}

impl<'a> EncodeRef<'a> {
    /// Record `i` of an append; a missing timestamp (or Kafka's `-1`, no
    /// timestamp) takes `now`, and with `log_append` every one does.
    #[inline]
    fn of<R: AppendRecord>(rec: &'a R, i: usize, now: i64, log_append: bool) -> EncodeRef<'a> {
        let timestamp = match rec.timestamp() {
            Some(ts) if ts != NO_TIMESTAMP && !log_append => ts,
            _ => now,
        };
        let (key, value, headers) = rec.fields();
        EncodeRef { offset_delta: i as u32, timestamp, key, value, headers }
    }

    /// A stored record, relative to the batch starting at `base_offset`.
    pub fn of_log(rec: &'a LogRecord, base_offset: u64) -> EncodeRef<'a> {
        EncodeRef {
            offset_delta: (rec.offset - base_offset) as u32,
            timestamp: rec.timestamp,
            key: rec.key.as_deref(),
            value: rec.value.as_deref(),
            headers: Headers::Owned(&rec.headers),
        }
    }

    /// Length of the record's body (everything after its length prefix).
    #[inline(always)]
    fn body_len(&self, first_timestamp: i64) -> usize {
        let mut n = 1 // attributes
            + uvarint_len(zigzag(self.timestamp.wrapping_sub(first_timestamp)))
            + uvarint_len(u64::from(self.offset_delta))
            + opt_len(self.key)
            + opt_len(self.value)
            + uvarint_len(self.headers.len() as u64);
        self.headers.each(|key, value| n += uvarint_len(key.len() as u64) + key.len() + opt_len(value));
        n
    }

    /// Writes the record (whose body is `body` bytes) at `at`.
    #[inline(always)]
    fn write(&self, buf: &mut [u8], mut at: usize, first_timestamp: i64, body: usize) -> usize {
        at = put_uvarint(buf, at, body as u64);
        buf[at] = 0;
        at = put_uvarint(buf, at + 1, zigzag(self.timestamp.wrapping_sub(first_timestamp)));
        at = put_uvarint(buf, at, u64::from(self.offset_delta));
        at = put_opt(buf, at, self.key);
        at = put_opt(buf, at, self.value);
        at = put_uvarint(buf, at, self.headers.len() as u64);
        self.headers.each(|key, value| {
            at = put_uvarint(buf, at, key.len() as u64);
            buf[at..at + key.len()].copy_from_slice(key.as_bytes());
            at += key.len();
            at = put_opt(buf, at, value);
        });
        at
    }
}

/// A batch ready to be written: its timestamps are fixed and its size known.
pub(crate) struct BatchPlan {
    pub len: usize,
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    pub record_count: u32,
    pub last_offset_delta: u32,
    /// Body length of a lone record (the one-record append is the hot
    /// path: this saves sizing it twice, without an allocation).
    pub single_body_len: usize,
    /// Body lengths of the records of a batch of two or more, in order,
    /// so that encoding sizes no record again (empty for one record).
    pub body_lens: Vec<u32>,
    /// The batch's attribute bits (its magic follows from them).
    pub attributes: u8,
}

thread_local! {
    /// The body-length list of this thread's last multi-record plan, kept
    /// for the next one: a batched append allocates nothing.
    static BODY_LENS: std::cell::Cell<Vec<u32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Longest body-length list a thread keeps between appends (4 MiB).
const BODY_LENS_KEEP: usize = 1 << 20;

impl Drop for BatchPlan {
    fn drop(&mut self) {
        if self.body_lens.capacity() != 0 && self.body_lens.capacity() <= BODY_LENS_KEEP {
            BODY_LENS.set(std::mem::take(&mut self.body_lens));
        }
    }
}

/// Sizes a batch of `refs` (offset deltas increasing), which are `count`
/// records; `KEEP`: record their body lengths (for more than one record).
/// `None` when empty or too large for the format.
fn plan_refs<'a, const KEEP: bool>(
    refs: impl Iterator<Item = EncodeRef<'a>> + Clone,
    count: usize,
) -> Option<BatchPlan> {
    let first = refs.clone().next()?.timestamp;
    let mut len = BATCH_HEADER_LEN;
    let (mut max_ts, mut last, mut single) = (i64::MIN, 0u32, 0);
    let count = u32::try_from(count).ok()?;
    // A lone record keeps its length in `single` (no allocation).
    let mut body_lens = if KEEP { BODY_LENS.take() } else { Vec::new() };
    body_lens.clear();
    for r in refs {
        max_ts = max_ts.max(r.timestamp);
        let body = r.body_len(first);
        if KEEP {
            // A body past `u32::MAX` makes the batch too large anyway.
            body_lens.push(u32::try_from(body).ok()?);
        }
        single = body;
        len = len.checked_add(uvarint_len(body as u64) + body)?;
        last = r.offset_delta;
    }
    (len <= MAX_BATCH_LEN).then_some(BatchPlan {
        len,
        first_timestamp: first,
        max_timestamp: max_ts,
        record_count: count,
        last_offset_delta: last,
        single_body_len: single,
        body_lens,
        attributes: 0,
    })
}

fn encode_refs<'a>(buf: &mut [u8], plan: &BatchPlan, base_offset: u64, refs: impl Iterator<Item = EncodeRef<'a>>) {
    debug_assert_eq!(buf.len(), plan.len);
    // Assemble the header on the stack and copy it once.
    let mut header = [0u8; BATCH_HEADER_LEN];
    header[LENGTH_OFFSET..MAGIC_OFFSET].copy_from_slice(&(plan.len as u32).to_le_bytes());
    header[MAGIC_OFFSET] = magic_for(plan.attributes);
    header[ATTRIBUTES_OFFSET] = plan.attributes;
    // The reserved bytes stay 0.
    header[BASE_OFFSET_OFFSET..LAST_DELTA_OFFSET].copy_from_slice(&base_offset.to_le_bytes());
    header[LAST_DELTA_OFFSET..FIRST_TS_OFFSET].copy_from_slice(&plan.last_offset_delta.to_le_bytes());
    header[FIRST_TS_OFFSET..MAX_TS_OFFSET].copy_from_slice(&plan.first_timestamp.to_le_bytes());
    header[MAX_TS_OFFSET..COUNT_OFFSET].copy_from_slice(&plan.max_timestamp.to_le_bytes());
    header[COUNT_OFFSET..].copy_from_slice(&plan.record_count.to_le_bytes());
    buf[..BATCH_HEADER_LEN].copy_from_slice(&header);
    let mut at = BATCH_HEADER_LEN;
    if plan.body_lens.is_empty() {
        for r in refs {
            at = r.write(buf, at, plan.first_timestamp, plan.single_body_len);
        }
    } else {
        for (r, &body) in refs.zip(&plan.body_lens) {
            at = r.write(buf, at, plan.first_timestamp, body as usize);
        }
    }
    debug_assert_eq!(at, plan.len);
    let crc = crc32(&buf[LENGTH_OFFSET..plan.len]);
    buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Kafka's "no timestamp" (`RecordBatch.NO_TIMESTAMP`): on append it means
/// the same as `None`.
pub const NO_TIMESTAMP: i64 = -1;

/// Fixes the timestamps of `records` (`None` and [`NO_TIMESTAMP`] take
/// `now`; with `log_append` all of them do, and the batch is marked
/// [`ATTR_LOG_APPEND_TIME`]) and computes the encoded size. Returns `None`
/// when the batch is empty or too large for the format.
pub(crate) fn plan_batch<R: AppendRecord>(records: &[R], now: i64, log_append: bool) -> Option<BatchPlan> {
    let refs = records.iter().enumerate().map(|(i, r)| EncodeRef::of(r, i, now, log_append));
    let mut plan =
        if records.len() > 1 { plan_refs::<true>(refs, records.len()) } else { plan_refs::<false>(refs, 1) }?;
    if log_append {
        plan.attributes = ATTR_LOG_APPEND_TIME;
    }
    Some(plan)
}

/// Writes the batch described by `plan` into `buf` (exactly `plan.len` bytes)
/// and seals it with its checksum. `now` and `log_append` as given to
/// [`plan_batch`].
pub(crate) fn encode_batch<R: AppendRecord>(
    buf: &mut [u8],
    plan: &BatchPlan,
    base_offset: u64,
    records: &[R],
    now: i64,
    log_append: bool,
) {
    let refs = records.iter().enumerate().map(|(i, r)| EncodeRef::of(r, i, now, log_append));
    encode_refs(buf, plan, base_offset, refs);
}

/// Encodes stored records (offsets increasing, gaps allowed) as one batch
/// whose base offset is the first record's, with the attribute bits
/// `attributes` of the batch they come from: how compaction rewrites a batch.
pub(crate) fn encode_log_records(records: &[LogRecord], attributes: u8) -> Option<Vec<u8>> {
    let base = records.first()?.offset;
    if records.last()?.offset - base > u64::from(u32::MAX) {
        return None;
    }
    let refs = records.iter().map(|r| EncodeRef::of_log(r, base));
    let mut plan = if records.len() > 1 {
        plan_refs::<true>(refs.clone(), records.len())
    } else {
        plan_refs::<false>(refs.clone(), 1)
    }?;
    plan.attributes = attributes;
    let mut buf = vec![0u8; plan.len];
    encode_refs(&mut buf, &plan, base, refs);
    Some(buf)
}

/// A copy of the checked batch `batch` whose offset range ends at
/// `last_offset` (at or past its last record's, within a `u32` of its base):
/// how compaction keeps the offset range of the records it removed after it.
pub(crate) fn with_last_offset(batch: &[u8], last_offset: u64) -> Vec<u8> {
    let h = BatchHeader::parse(batch).expect("a checked batch");
    let delta = u32::try_from(last_offset - h.base_offset).expect("within the segment's offset range");
    let mut out = batch[..h.len()].to_vec();
    out[LAST_DELTA_OFFSET..FIRST_TS_OFFSET].copy_from_slice(&delta.to_le_bytes());
    let crc = crc32fast::hash(&out[LENGTH_OFFSET..]);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    out
}

/// A batch of no records covering offsets `base_offset ..= last_offset`
/// (within a `u32`): what remains of a range whose records were all
/// compacted away, or a gap made explicit by `repair`.
pub(crate) fn encode_empty_batch(base_offset: u64, last_offset: u64, timestamp: i64) -> Vec<u8> {
    let delta = u32::try_from(last_offset - base_offset).expect("within a u32 of the base");
    let mut b = vec![0u8; BATCH_HEADER_LEN];
    b[LENGTH_OFFSET..MAGIC_OFFSET].copy_from_slice(&(BATCH_HEADER_LEN as u32).to_le_bytes());
    b[MAGIC_OFFSET] = MAGIC;
    b[BASE_OFFSET_OFFSET..LAST_DELTA_OFFSET].copy_from_slice(&base_offset.to_le_bytes());
    b[LAST_DELTA_OFFSET..FIRST_TS_OFFSET].copy_from_slice(&delta.to_le_bytes());
    b[FIRST_TS_OFFSET..MAX_TS_OFFSET].copy_from_slice(&timestamp.to_le_bytes());
    b[MAX_TS_OFFSET..COUNT_OFFSET].copy_from_slice(&timestamp.to_le_bytes());
    let crc = crc32fast::hash(&b[LENGTH_OFFSET..]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    b
}

// ---------------------------------------------------------------------------
// decoding

/// One record's fields as byte ranges into its batch.
struct RawRecord {
    offset: u64,
    timestamp: i64,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
    headers: Range<usize>,
    header_count: u64,
}

/// Position and state while walking the records of one checked batch. It
/// holds no borrow, so [`RecordIter`] can keep it next to its `Bytes`.
#[derive(Debug)]
struct RecordCursor {
    at: usize,
    left: u32,
    base_offset: u64,
    last_offset_delta: u32,
    first_timestamp: i64,
    /// The smallest offset delta the next record may have (deltas rise).
    min_delta: u64,
}

impl RecordCursor {
    fn new(header: &BatchHeader) -> Self {
        RecordCursor {
            at: BATCH_HEADER_LEN,
            left: header.record_count,
            base_offset: header.base_offset,
            last_offset_delta: header.last_offset_delta,
            first_timestamp: header.first_timestamp,
            min_delta: 0,
        }
    }

    /// Decodes the next record of `batch` (the whole batch, and nothing more).
    #[inline(always)]
    fn next_raw(&mut self, batch: &[u8]) -> Result<Option<RawRecord>, DecodeError> {
        if self.left == 0 {
            if self.at != batch.len() {
                return Err(DecodeError::BadRecord("bytes after the last record"));
            }
            return Ok(None);
        }
        self.left -= 1;
        let mut at = self.at;
        let len = get_uvarint(batch, &mut at)?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| at.checked_add(l))
            .filter(|&e| e <= batch.len())
            .ok_or(DecodeError::BadRecord("record runs past the batch"))?;
        let rec = &batch[..end];
        if rec.get(at) != Some(&0) {
            return Err(DecodeError::BadRecord("unknown record attributes"));
        }
        at += 1;
        let ts_delta = unzigzag(get_uvarint(rec, &mut at)?);
        let offset_delta = get_uvarint(rec, &mut at)?;
        if offset_delta > u64::from(self.last_offset_delta) || offset_delta < self.min_delta {
            return Err(DecodeError::BadRecord("offset deltas out of order"));
        }
        // No overflow: `offset_delta` is at most a `u32`.
        self.min_delta = offset_delta + 1;
        let key = get_opt(rec, &mut at)?;
        let value = get_opt(rec, &mut at)?;
        let header_count = get_uvarint(rec, &mut at)?;
        let headers_start = at;
        for _ in 0..header_count {
            let klen = get_uvarint(rec, &mut at)?;
            let kend = usize::try_from(klen)
                .ok()
                .and_then(|l| at.checked_add(l))
                .filter(|&e| e <= rec.len())
                .ok_or(DecodeError::BadRecord("header key runs past the record"))?;
            if str::from_utf8(&rec[at..kend]).is_err() {
                return Err(DecodeError::BadRecord("header key is not UTF-8"));
            }
            at = kend;
            get_opt(rec, &mut at)?;
        }
        if at != end {
            return Err(DecodeError::BadRecord("record length disagrees with its fields"));
        }
        self.at = end;
        Ok(Some(RawRecord {
            offset: self.base_offset + offset_delta,
            timestamp: self.first_timestamp.wrapping_add(ts_delta),
            key,
            value,
            headers: headers_start..end,
            header_count,
        }))
    }
}

/// Iterator over the records of a batch, yielding zero-copy [`LogRecord`]s
/// whose keys, values and header values are slices of the batch's `Bytes`.
///
/// A record that does not decode (in a batch that passed its checksum: a
/// broken writer) is yielded as [`Error::CorruptBatch`](crate::Error::CorruptBatch),
/// after the records before it, and ends the iteration: nothing is skipped
/// silently.
///
/// ```
/// use streamlog::{Partition, PartitionOptions, Record};
/// let dir = tempfile::tempdir()?;
/// let log = Partition::open(dir.path(), PartitionOptions::default())?;
/// log.append(&[Record::new("a"), Record::new("b")])?;
/// for batch in log.read(0, 1 << 20)? {
///     for record in batch.records() {
///         let record = record?; // a malformed record is an error, not the end
///         println!("{} {:?}", record.offset, record.value);
///     }
/// }
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RecordIter {
    data: Bytes,
    cursor: RecordCursor,
    min_offset: u64,
    base_offset: u64,
    /// An error was yielded: the iteration is over.
    failed: bool,
}

impl RecordIter {
    /// `data` is exactly one batch that passed [`check_batch`].
    pub(crate) fn new(data: Bytes, header: &BatchHeader, min_offset: u64) -> Self {
        RecordIter {
            cursor: RecordCursor::new(header),
            data,
            min_offset,
            base_offset: header.base_offset,
            failed: false,
        }
    }

    /// Like `next`, but a malformed record is an error rather than the end.
    #[inline]
    pub(crate) fn try_next(&mut self) -> Result<Option<LogRecord>, DecodeError> {
        loop {
            let Some(raw) = self.cursor.next_raw(&self.data)? else { return Ok(None) };
            if raw.offset >= self.min_offset {
                return Ok(Some(self.materialize(raw)));
            }
        }
    }

    #[inline]
    fn materialize(&self, raw: RawRecord) -> LogRecord {
        let mut headers = Vec::new();
        if raw.header_count > 0 {
            headers.reserve(raw.header_count as usize);
            let buf = &self.data[..raw.headers.end];
            let mut at = raw.headers.start;
            for _ in 0..raw.header_count {
                // `next_raw` validated these fields already.
                let klen = get_uvarint(buf, &mut at).unwrap_or(0) as usize;
                let key = str::from_utf8(&buf[at..at + klen]).unwrap_or_default().to_owned();
                at += klen;
                let value = get_opt(buf, &mut at).ok().flatten().map(|r| self.data.slice(r));
                headers.push(Header { key, value });
            }
        }
        LogRecord {
            offset: raw.offset,
            timestamp: raw.timestamp,
            key: raw.key.map(|r| self.data.slice(r)),
            value: raw.value.map(|r| self.data.slice(r)),
            headers,
        }
    }
}

/// One record of a batch, borrowed from it: key, value and headers are
/// slices of the batch's bytes (the segment mapping), with no reference
/// count touched and nothing allocated. Turn a field into `Bytes` (still
/// zero-copy, one reference count) only for what the caller keeps:
/// [`RecordView::key_bytes`], [`RecordView::value_bytes`],
/// [`RecordView::to_log_record`]. Yielded by
/// [`Batch::record_views`](crate::Batch::record_views).
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    batch: &'a Bytes,
    offset: u64,
    timestamp: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    /// The encoded headers (`header_count` of them, already validated).
    headers: &'a [u8],
    header_count: u64,
}

impl<'a> RecordView<'a> {
    /// Its offset in the partition.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Milliseconds since the Unix epoch.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The key, if any.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }

    /// The value; `None` is a tombstone.
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }

    /// The headers, in order: each a UTF-8 key and an optional value.
    pub fn headers(&self) -> HeaderViews<'a> {
        HeaderViews { buf: self.headers, at: 0, left: self.header_count }
    }

    /// The key as `Bytes` sharing the batch's memory (no copy).
    pub fn key_bytes(&self) -> Option<Bytes> {
        self.key.map(|k| self.batch.slice_ref(k))
    }

    /// The value as `Bytes` sharing the batch's memory (no copy).
    pub fn value_bytes(&self) -> Option<Bytes> {
        self.value.map(|v| self.batch.slice_ref(v))
    }

    /// The owned record, as [`Batch::records`](crate::Batch::records)
    /// yields it (zero-copy `Bytes`; the header keys are allocated).
    pub fn to_log_record(&self) -> LogRecord {
        LogRecord {
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key_bytes(),
            value: self.value_bytes(),
            headers: self.owned_headers(),
        }
    }

    /// The headers, owned (values zero-copy; nothing allocated when there
    /// are none).
    pub(crate) fn owned_headers(&self) -> Vec<Header> {
        if self.header_count == 0 {
            return Vec::new();
        }
        self.headers()
            .map(|(key, value)| Header { key: key.to_owned(), value: value.map(|v| self.batch.slice_ref(v)) })
            .collect()
    }
}

impl From<RecordView<'_>> for LogRecord {
    fn from(view: RecordView<'_>) -> LogRecord {
        view.to_log_record()
    }
}

/// The headers of a [`RecordView`]: `(key, value)` pairs borrowed from the
/// batch.
#[derive(Debug, Clone)]
pub struct HeaderViews<'a> {
    buf: &'a [u8],
    at: usize,
    left: u64,
}

impl<'a> Iterator for HeaderViews<'a> {
    type Item = (&'a str, Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // `RecordCursor::next_raw` validated these fields (lengths in bounds,
        // keys UTF-8) before the view was made; a failure here ends the walk.
        let klen = usize::try_from(get_uvarint(self.buf, &mut self.at).ok()?).ok()?;
        let key = str::from_utf8(self.buf.get(self.at..self.at.checked_add(klen)?)?).ok()?;
        self.at += klen;
        let value = get_opt(self.buf, &mut self.at).ok()?.map(|r| &self.buf[r]);
        Some((key, value))
    }
}

/// Iterator over the records of a batch as borrowed [`RecordView`]s (see
/// [`Batch::record_views`](crate::Batch::record_views)). Like
/// [`RecordIter`], a record that does not decode is yielded as
/// [`Error::CorruptBatch`](crate::Error::CorruptBatch) and ends the
/// iteration.
#[derive(Debug)]
pub struct RecordViews<'a> {
    data: &'a Bytes,
    cursor: RecordCursor,
    min_offset: u64,
    /// An error was yielded: the iteration is over.
    failed: bool,
}

impl<'a> RecordViews<'a> {
    /// `data` is exactly one batch that passed [`check_batch`].
    pub(crate) fn new(data: &'a Bytes, header: &BatchHeader, min_offset: u64) -> Self {
        RecordViews { data, cursor: RecordCursor::new(header), min_offset, failed: false }
    }

    #[inline]
    fn try_next(&mut self) -> Result<Option<RecordView<'a>>, DecodeError> {
        let data: &'a [u8] = self.data;
        loop {
            let Some(raw) = self.cursor.next_raw(data)? else { return Ok(None) };
            if raw.offset >= self.min_offset {
                return Ok(Some(RecordView {
                    batch: self.data,
                    offset: raw.offset,
                    timestamp: raw.timestamp,
                    key: raw.key.map(|r| &data[r]),
                    value: raw.value.map(|r| &data[r]),
                    headers: &data[raw.headers],
                    header_count: raw.header_count,
                }));
            }
        }
    }
}

impl<'a> Iterator for RecordViews<'a> {
    type Item = crate::Result<RecordView<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.try_next() {
            Ok(r) => r.map(Ok),
            Err(e) => {
                self.failed = true;
                let base_offset = self.cursor.base_offset;
                Some(Err(crate::Error::CorruptBatch { base_offset, reason: e.to_string() }))
            }
        }
    }
}

impl Iterator for RecordIter {
    type Item = crate::Result<LogRecord>;

    /// Records of a batch that passed its checksum decode unless the writer
    /// was broken; such a record is an `Err`, and the last item.
    #[inline]
    fn next(&mut self) -> Option<crate::Result<LogRecord>> {
        if self.failed {
            return None;
        }
        match self.try_next() {
            Ok(r) => r.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(crate::Error::CorruptBatch { base_offset: self.base_offset, reason: e.to_string() }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(records: &[Record], base: u64, now: i64) -> Vec<u8> {
        let plan = plan_batch(records, now, false).unwrap();
        let mut buf = vec![0u8; plan.len];
        encode_batch(&mut buf, &plan, base, records, now, false);
        buf
    }

    fn sample() -> Vec<Record> {
        vec![
            Record::new(&b"v0"[..]).with_key(&b"k0"[..]).with_timestamp(1000),
            Record::tombstone(&b"k1"[..]).with_timestamp(990),
            Record::new(vec![7u8; 300]).with_header("h", Some(Bytes::from_static(b"hv"))).with_header("nul", None),
            Record::new(Bytes::new()),
        ]
    }

    #[test]
    fn round_trip() {
        let recs = sample();
        let buf = encode(&recs, 42, 2000);
        let h = check_batch(&buf).unwrap();
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.record_count, 4);
        assert_eq!(h.last_offset(), 45);
        assert_eq!(h.first_timestamp, 1000);
        assert_eq!(h.max_timestamp, 2000);
        validate_records(&buf, &h).unwrap();
        let out: Vec<LogRecord> = RecordIter::new(Bytes::from(buf), &h, 0).collect::<crate::Result<_>>().unwrap();
        assert_eq!(out.len(), 4);
        for (i, (o, r)) in out.iter().zip(&recs).enumerate() {
            assert_eq!(o.offset, 42 + i as u64);
            assert_eq!(o.key, r.key);
            assert_eq!(o.value, r.value);
            assert_eq!(o.headers, r.headers);
            assert_eq!(o.timestamp, r.timestamp.unwrap_or(2000));
        }
        assert_eq!(out[1].value, None);
        assert_eq!(out[3].value.as_deref(), Some(&b""[..]));
    }

    /// Issue 16: a batch is sized once. The plan keeps each record's body
    /// length (what encoding writes as its length prefix), and a lone record
    /// keeps its own without a list.
    #[test]
    fn plan_keeps_each_body_length_once() {
        let recs = sample();
        let plan = plan_batch(&recs, 2000, false).unwrap();
        let buf = encode(&recs, 0, 2000);
        let mut at = BATCH_HEADER_LEN;
        for &body in &plan.body_lens {
            let mut p = at;
            assert_eq!(get_uvarint(&buf, &mut p).unwrap(), u64::from(body));
            at = p + body as usize;
        }
        assert_eq!((plan.body_lens.len(), at), (4, plan.len));
        let one = plan_batch(&recs[2..3], 2000, false).unwrap();
        assert!(one.body_lens.is_empty() && one.body_lens.capacity() == 0);
        assert_eq!(one.len, BATCH_HEADER_LEN + uvarint_len(one.single_body_len as u64) + one.single_body_len);
    }

    #[test]
    fn stored_records_with_gaps_round_trip() {
        let buf = encode(&sample(), 100, 2000);
        let h = check_batch(&buf).unwrap();
        let all: Vec<LogRecord> = RecordIter::new(Bytes::from(buf), &h, 0).collect::<crate::Result<_>>().unwrap();
        let kept = vec![all[1].clone(), all[3].clone()];
        let out = encode_log_records(&kept, 0).unwrap();
        let h = check_batch(&out).unwrap();
        assert_eq!((h.base_offset, h.last_offset(), h.record_count), (101, 103, 2));
        validate_records(&out, &h).unwrap();
        let back: Vec<LogRecord> = RecordIter::new(Bytes::from(out), &h, 0).collect::<crate::Result<_>>().unwrap();
        assert_eq!(back, kept);
    }

    #[test]
    fn batches_may_cover_offsets_past_their_last_record() {
        let buf = encode(&sample(), 100, 2000);
        let h = check_batch(&buf).unwrap();
        let all: Vec<LogRecord> = RecordIter::new(Bytes::from(buf), &h, 0).collect::<crate::Result<_>>().unwrap();
        let kept = encode_log_records(&all[..2], 0).unwrap();
        let longer = with_last_offset(&kept, 109);
        let h = check_batch(&longer).unwrap();
        assert_eq!((h.base_offset, h.last_offset(), h.record_count), (100, 109, 2));
        validate_records(&longer, &h).unwrap();
        let back: Vec<LogRecord> = RecordIter::new(Bytes::from(longer), &h, 0).collect::<crate::Result<_>>().unwrap();
        assert_eq!(back, all[..2]);

        let empty = encode_empty_batch(50, 60, 7);
        let h = check_batch(&empty).unwrap();
        assert_eq!((h.base_offset, h.last_offset(), h.record_count, h.len()), (50, 60, 0, BATCH_HEADER_LEN));
        validate_records(&empty, &h).unwrap();
        assert_eq!(RecordIter::new(Bytes::from(empty), &h, 0).count(), 0);
    }

    #[test]
    fn views_borrow_what_records_own() {
        let recs = sample();
        let data = Bytes::from(encode(&recs, 42, 2000));
        let h = check_batch(&data).unwrap();
        let owned: Vec<LogRecord> = RecordIter::new(data.clone(), &h, 43).collect::<crate::Result<_>>().unwrap();
        let views: Vec<RecordView<'_>> = RecordViews::new(&data, &h, 43).collect::<crate::Result<_>>().unwrap();
        assert_eq!(views.len(), 3);
        let range = data.as_ptr_range();
        for (v, o) in views.iter().zip(&owned) {
            assert_eq!((v.offset(), v.timestamp()), (o.offset, o.timestamp));
            assert_eq!(v.key(), o.key.as_deref());
            assert_eq!(v.value(), o.value.as_deref());
            let headers: Vec<(&str, Option<&[u8]>)> = v.headers().collect();
            let expected: Vec<(&str, Option<&[u8]>)> =
                o.headers.iter().map(|h| (h.key.as_str(), h.value.as_deref())).collect();
            assert_eq!(headers, expected);
            assert_eq!(&v.to_log_record(), o);
            // Zero-copy both ways: the slices and the `Bytes` made from them
            // point into the batch.
            if let Some(value) = v.value().filter(|v| !v.is_empty()) {
                assert!(range.contains(&value.as_ptr()));
                assert!(range.contains(&v.value_bytes().unwrap().as_ptr()));
            }
        }
        assert_eq!(views[1].headers().count(), 2);
    }

    /// The sample batch with its second record's length prefix running past
    /// the batch (CRC fixed up, so only the record is bad).
    fn second_record_runs_past_the_batch() -> Vec<u8> {
        let mut buf = encode(&sample(), 7, 5);
        let mut at = BATCH_HEADER_LEN;
        let first_len = get_uvarint(&buf, &mut at).unwrap() as usize;
        buf[at + first_len] = 0x7f;
        reseal(&mut buf);
        buf
    }

    #[test]
    fn a_malformed_record_ends_the_views_with_an_error() {
        let buf = second_record_runs_past_the_batch();
        let h = check_batch(&buf).unwrap();
        let data = Bytes::from(buf);
        let items: Vec<_> = RecordViews::new(&data, &h, 0).collect();
        assert_eq!(items.len(), 2, "the good record, then the error, then nothing");
        assert!(matches!(&items[0], Ok(r) if r.offset() == 7));
        assert!(matches!(&items[1], Err(crate::Error::CorruptBatch { base_offset: 7, .. })));
    }

    #[test]
    fn a_varint_ending_its_slice_decodes() {
        for (bytes, v) in [(&[5u8][..], 5u64), (&[0x80 | 3, 2][..], 259)] {
            let mut at = 0;
            assert_eq!(get_uvarint(bytes, &mut at).unwrap(), v);
            assert_eq!(at, bytes.len());
        }
        let mut at = 0;
        assert!(get_uvarint(&[0x80], &mut at).is_err());
    }

    #[test]
    fn min_offset_skips_leading_records() {
        let buf = encode(&sample(), 10, 0);
        let h = check_batch(&buf).unwrap();
        let offs: Vec<u64> = RecordIter::new(Bytes::from(buf), &h, 12).map(|r| r.unwrap().offset).collect();
        assert_eq!(offs, vec![12, 13]);
    }

    #[test]
    fn varints_round_trip() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut buf = [0u8; 10];
            let end = put_uvarint(&mut buf, 0, v);
            assert_eq!(end, uvarint_len(v));
            let mut at = 0;
            assert_eq!(get_uvarint(&buf, &mut at).unwrap(), v);
            assert_eq!(at, end);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        let mut at = 0;
        assert!(get_uvarint(&[0xff; 11], &mut at).is_err());
    }

    /// Every byte of the header is covered: changing any of them is caught.
    #[test]
    fn every_corrupted_header_byte_is_rejected() {
        let buf = encode(&sample(), 7, 5);
        for i in 0..BATCH_HEADER_LEN {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[i] ^= 1 << bit;
                assert!(check_batch(&bad).is_err(), "flip of byte {i} bit {bit} accepted");
            }
        }
    }

    #[test]
    fn corrupt_record_bytes_fail_the_checksum() {
        let buf = encode(&sample(), 7, 5);
        for i in BATCH_HEADER_LEN..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert!(matches!(check_batch(&bad), Err(DecodeError::Checksum { .. })));
        }
    }

    fn reseal(buf: &mut [u8]) {
        let crc = crc32fast::hash(&buf[LENGTH_OFFSET..]);
        buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn unknown_version_is_typed() {
        let mut buf = encode(&sample(), 7, 5);
        buf[MAGIC_OFFSET] = 9;
        reseal(&mut buf);
        assert_eq!(check_batch(&buf), Err(DecodeError::UnknownMagic(9)));
        let mut buf = encode(&sample(), 7, 5);
        buf[ATTRIBUTES_OFFSET] = 1;
        reseal(&mut buf);
        assert_eq!(check_batch(&buf), Err(DecodeError::BadAttributes));
    }

    #[test]
    fn absurd_record_counts_and_offsets_are_rejected() {
        let mut buf = encode(&sample(), 7, 5);
        buf[LAST_DELTA_OFFSET..LAST_DELTA_OFFSET + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        buf[COUNT_OFFSET..COUNT_OFFSET + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        reseal(&mut buf);
        assert!(matches!(check_batch(&buf), Err(DecodeError::BadRecord(_))));
        let mut buf = encode(&sample(), u64::MAX - 1, 5);
        reseal(&mut buf);
        assert!(matches!(check_batch(&buf), Err(DecodeError::BadRecord(_))));
    }

    #[test]
    fn truncation_and_zeroes() {
        let buf = encode(&sample(), 7, 5);
        for cut in 0..buf.len() {
            assert!(check_batch(&buf[..cut]).is_err());
        }
        assert!(matches!(check_batch(&[0u8; 64]), Err(DecodeError::BadLength(0))));
    }

    #[test]
    fn resealed_garbage_records_are_caught_by_validation() {
        let mut buf = encode(&sample(), 7, 5);
        // A record length prefix that runs past the batch, with a valid CRC.
        buf[BATCH_HEADER_LEN] = 0x7f;
        reseal(&mut buf);
        let h = check_batch(&buf).unwrap();
        assert!(validate_records(&buf, &h).is_err());
    }

    #[test]
    fn a_malformed_record_is_yielded_as_an_error_not_the_end() {
        // The first record still decodes.
        let buf = second_record_runs_past_the_batch();
        let h = check_batch(&buf).unwrap();
        let items: Vec<_> = RecordIter::new(Bytes::from(buf), &h, 0).collect();
        assert_eq!(items.len(), 2, "the good record, then the error, then nothing");
        assert!(matches!(&items[0], Ok(r) if r.offset == 7));
        assert!(matches!(&items[1], Err(crate::Error::CorruptBatch { base_offset: 7, .. })));
    }
}
