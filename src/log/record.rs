//! Records as the user writes them ([`Record`]) and reads them back
//! ([`LogRecord`], grouped in [`Batch`]es).

use bytes::Bytes;

use crate::error::Result;
use crate::log::format::{ATTR_LOG_APPEND_TIME, BatchHeader, RecordIter, RecordViews};

/// Who set a record's timestamp (Kafka's `message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// The producer's timestamp (or the log's clock when it gave none).
    /// Default.
    #[default]
    CreateTime,
    /// The log's clock when the batch was appended, whatever the producer
    /// gave: retention and time lookups follow arrival, not event time.
    LogAppendTime,
}

/// A record header: a UTF-8 key and an optional value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's name.
    pub key: String,
    /// Its value; `None` is Kafka's null header value.
    pub value: Option<Bytes>,
}

/// A record to append: key, value (`None` is a tombstone), timestamp and
/// headers.
///
/// A `None` timestamp takes the partition clock's time when appended (Kafka's
/// create time, set by the log rather than the client).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The key: what compaction keeps the latest record of.
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: Option<i64>,
    /// Application headers, in order.
    pub headers: Vec<Header>,
}

impl Record {
    /// A record with a value and no key.
    pub fn new(value: impl Into<Bytes>) -> Record {
        Record { value: Some(value.into()), ..Record::default() }
    }

    /// A record with a key and no value: deletes the key in compacted topics.
    pub fn tombstone(key: impl Into<Bytes>) -> Record {
        Record { key: Some(key.into()), ..Record::default() }
    }

    /// Sets the key.
    #[must_use]
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Record {
        self.key = Some(key.into());
        self
    }

    /// Sets the timestamp, in milliseconds since the Unix epoch.
    #[must_use]
    pub fn with_timestamp(mut self, timestamp_ms: i64) -> Record {
        self.timestamp = Some(timestamp_ms);
        self
    }

    /// Appends a header (`None`: a null value).
    #[must_use]
    pub fn with_header(mut self, key: impl Into<String>, value: Option<Bytes>) -> Record {
        self.headers.push(Header { key: key.into(), value });
        self
    }

    /// Same as [`Record::with_key`], named as `ProducerRecord::key`.
    #[must_use]
    pub fn key(self, key: impl Into<Bytes>) -> Record {
        self.with_key(key)
    }

    /// Same as [`Record::with_timestamp`].
    #[must_use]
    pub fn timestamp(self, timestamp_ms: i64) -> Record {
        self.with_timestamp(timestamp_ms)
    }

    /// Same as [`Record::with_header`].
    #[must_use]
    pub fn header(self, key: impl Into<String>, value: Option<Bytes>) -> Record {
        self.with_header(key, value)
    }
}

/// A record to append, borrowed from the caller's buffers: what
/// [`Partition::append_refs`](crate::Partition::append_refs) takes, so that
/// a caller holding `&[u8]` appends without a [`Bytes`] (an allocation) per
/// key and value. Fields mean what they mean in [`Record`]; a header is a
/// name and an optional value (`None`: Kafka's null header value).
///
/// ```
/// use streamlog::{Partition, PartitionOptions, RecordRef};
/// let dir = tempfile::tempdir()?;
/// let log = Partition::open(dir.path(), PartitionOptions::default())?;
/// let line = b"user-42 logged in".to_vec();
/// let (key, value) = line.split_at(7);
/// let at = log.append_refs(&[
///     RecordRef::new(value).with_key(key).with_timestamp(1_700_000_000_000),
///     RecordRef { headers: &[("trace", Some(b"abc".as_slice()))], ..RecordRef::new(b"second") },
/// ])?;
/// assert_eq!((at.base_offset, at.last_offset), (0, 1));
/// let rec = log.read(0, 1 << 20)?[0].records().next().unwrap()?;
/// assert_eq!((&rec.key.unwrap()[..], &rec.value.unwrap()[..]), (&b"user-42"[..], &b" logged in"[..]));
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The key: what compaction keeps the latest record of.
    pub key: Option<&'a [u8]>,
    /// The value; `None` is a tombstone.
    pub value: Option<&'a [u8]>,
    /// Milliseconds since the Unix epoch; `None` takes the partition
    /// clock's time when appended.
    pub timestamp: Option<i64>,
    /// Application headers, in order: name and value.
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
}

impl<'a> RecordRef<'a> {
    /// A record with a value and no key.
    pub fn new(value: &'a [u8]) -> RecordRef<'a> {
        RecordRef { value: Some(value), ..RecordRef::default() }
    }

    /// A record with a key and no value: deletes the key in compacted topics.
    pub fn tombstone(key: &'a [u8]) -> RecordRef<'a> {
        RecordRef { key: Some(key), ..RecordRef::default() }
    }

    /// Sets the key.
    #[must_use]
    pub fn with_key(mut self, key: &'a [u8]) -> RecordRef<'a> {
        self.key = Some(key);
        self
    }

    /// Sets the timestamp, in milliseconds since the Unix epoch.
    #[must_use]
    pub fn with_timestamp(mut self, timestamp_ms: i64) -> RecordRef<'a> {
        self.timestamp = Some(timestamp_ms);
        self
    }

    /// Sets the headers.
    #[must_use]
    pub fn with_headers(mut self, headers: &'a [(&'a str, Option<&'a [u8]>)]) -> RecordRef<'a> {
        self.headers = headers;
        self
    }
}

/// A record read back from the log. `key`, `value` and header values are
/// zero-copy slices of the segment's memory map; holding them keeps the
/// mapping alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Its offset in the partition.
    pub offset: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The key, if any.
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// The headers, in order.
    pub headers: Vec<Header>,
}

/// One record batch as stored, its checksum already verified.
///
/// A read that starts inside a batch returns the whole batch, but
/// [`Batch::records`] yields only the records from the requested offset on.
#[derive(Clone)]
pub struct Batch {
    data: Bytes,
    header: BatchHeader,
    min_offset: u64,
}

impl Batch {
    pub(crate) fn new(data: Bytes, header: BatchHeader, min_offset: u64) -> Batch {
        Batch { data, header, min_offset }
    }

    /// This batch, its records read from `offset` on.
    pub(crate) fn starting_at(mut self, offset: u64) -> Batch {
        self.min_offset = self.min_offset.max(offset);
        self
    }

    /// This batch, its records read from `offset` on, even if it was read
    /// from a later offset before (the whole batch was checked).
    pub(crate) fn reading_from(mut self, offset: u64) -> Batch {
        self.min_offset = offset;
        self
    }

    /// The offset of the batch's first record (before any compaction).
    pub fn base_offset(&self) -> u64 {
        self.header.base_offset
    }

    /// The offset of the batch's last record (kept by compaction).
    pub fn last_offset(&self) -> u64 {
        self.header.last_offset()
    }

    /// The offset after this batch's last record.
    pub fn next_offset(&self) -> u64 {
        self.header.last_offset() + 1
    }

    /// Records stored in the batch, including any before the read offset.
    pub fn record_count(&self) -> u32 {
        self.header.record_count
    }

    /// The timestamp of the batch's first record, ms since the Unix epoch.
    pub fn first_timestamp(&self) -> i64 {
        self.header.first_timestamp
    }

    /// The largest timestamp in the batch, ms since the Unix epoch.
    pub fn max_timestamp(&self) -> i64 {
        self.header.max_timestamp
    }

    /// Whether the batch's timestamps are the producer's or the log's
    /// (stored in the batch, so it stays true if the topic's setting changes).
    pub fn timestamp_type(&self) -> TimestampType {
        if self.header.attributes & ATTR_LOG_APPEND_TIME != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// The batch's header, as stored.
    pub(crate) fn stored_header(&self) -> &BatchHeader {
        &self.header
    }

    /// The batch's attribute bits, as stored.
    pub(crate) fn attributes(&self) -> u8 {
        self.header.attributes
    }

    /// The batch's bytes as stored (a slice of the mapping).
    pub fn as_bytes(&self) -> &Bytes {
        &self.data
    }

    /// The batch's records from the read offset on, each a `Result`: a
    /// record that fails to decode is an
    /// [`Error::CorruptBatch`](crate::Error::CorruptBatch), the last
    /// item (see [`RecordIter`]). Nothing is allocated but each record's
    /// headers.
    pub fn records(&self) -> RecordIter {
        RecordIter::new(self.data.clone(), &self.header, self.min_offset)
    }

    /// The batch's records from the read offset on, borrowed from the
    /// batch: no reference count is touched and nothing is allocated per
    /// record, so this is the fastest way to walk a log. A field becomes
    /// `Bytes` (zero-copy) only when asked for. Errors as [`Batch::records`].
    ///
    /// ```
    /// use streamlog::{Partition, PartitionOptions, Record};
    /// let dir = tempfile::tempdir()?;
    /// let log = Partition::open(dir.path(), PartitionOptions::default())?;
    /// log.append(&[Record::new("a").with_key("k"), Record::new("bb").with_header("h", None)])?;
    /// let mut total = 0;
    /// let mut kept = Vec::new();
    /// for batch in log.read(0, 1 << 20)? {
    ///     for view in batch.record_views() {
    ///         let view = view?;
    ///         total += view.value().map_or(0, <[u8]>::len);
    ///         if view.key() == Some(&b"k"[..]) {
    ///             kept.push(view.value_bytes()); // this one outlives the batch
    ///         }
    ///         for (name, value) in view.headers() {
    ///             assert_eq!((name, value), ("h", None));
    ///         }
    ///     }
    /// }
    /// assert_eq!(total, 3);
    /// assert_eq!(kept, [Some(bytes::Bytes::from("a"))]);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn record_views(&self) -> RecordViews<'_> {
        RecordViews::new(&self.data, &self.header, self.min_offset)
    }

    /// Every record from the read offset on, in a `Vec`; the first
    /// malformed one is the error ([`Batch::records`] without collecting).
    pub fn try_records(&self) -> Result<Vec<LogRecord>> {
        let mut out = Vec::with_capacity(self.header.record_count as usize);
        for r in self.records() {
            out.push(r?);
        }
        Ok(out)
    }
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("base_offset", &self.header.base_offset)
            .field("last_offset", &self.header.last_offset())
            .field("records", &self.header.record_count)
            .field("bytes", &self.data.len())
            .finish()
    }
}
