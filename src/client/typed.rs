//! Typed keys and values: a [`Codec`] turns a value into record bytes and
//! back; [`TypedProducer`] sends typed records to one topic and
//! [`ConsumerRecord::decode_key`] / [`ConsumerRecord::decode_value`] read
//! them back. With the `serde` feature, [`Json`] and [`MessagePack`] encode
//! any `serde` type (Kafka's JSON and msgpack serializers).
//!
//! A record that does not decode (a poison record) is an
//! [`Error::Decode`] naming its topic, partition and offset, never a panic.

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;

use crate::client::consumer::ConsumerRecord;
use crate::client::producer::{Producer, ProducerRecord, RecordMetadata};
use crate::error::{Error, Result};

/// Why a codec failed: its own error, boxed.
pub type CodecError = Box<dyn std::error::Error + Send + Sync>;

/// Turns values of type `T` into record bytes and back (Kafka's
/// `Serializer`/`Deserializer` pair). Implement it for your own format;
#[cfg_attr(feature = "serde", doc = "[`Utf8`], and with the `serde` feature [`Json`] and [`MessagePack`],")]
#[cfg_attr(not(feature = "serde"), doc = "[`Utf8`], and with the `serde` feature `Json` and `MessagePack`,")]
/// are provided.
///
/// ```
/// use bytes::Bytes;
/// use streamlog::{Codec, CodecError};
///
/// /// Big-endian `u64`s.
/// struct BeU64;
///
/// impl Codec<u64> for BeU64 {
///     fn encode(&self, value: &u64) -> Result<Bytes, CodecError> {
///         Ok(Bytes::copy_from_slice(&value.to_be_bytes()))
///     }
///     fn decode(&self, bytes: &[u8]) -> Result<u64, CodecError> {
///         Ok(u64::from_be_bytes(bytes.try_into()?))
///     }
/// }
/// assert_eq!(BeU64.decode(&BeU64.encode(&7).unwrap()).unwrap(), 7);
/// assert!(BeU64.decode(b"short").is_err());
/// ```
pub trait Codec<T> {
    /// The bytes of `value`.
    fn encode(&self, value: &T) -> Result<Bytes, CodecError>;
    /// The value of `bytes`; an error for bytes this codec did not write.
    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError>;
}

/// A `String` as its UTF-8 bytes (Kafka's `StringSerializer`): the codec
/// for keys, which keeps their bytes, and so their partitions, the same as
/// untyped producers' and Kafka clients'.
#[derive(Debug, Clone, Copy, Default)]
pub struct Utf8;

impl Codec<String> for Utf8 {
    fn encode(&self, value: &String) -> Result<Bytes, CodecError> {
        Ok(Bytes::copy_from_slice(value.as_bytes()))
    }

    fn decode(&self, bytes: &[u8]) -> Result<String, CodecError> {
        Ok(std::str::from_utf8(bytes)?.to_owned())
    }
}

/// JSON through `serde_json`, for any `serde` type (feature `serde`).
///
/// ```
/// use streamlog::{Codec, Json};
/// let bytes = Json.encode(&vec![1, 2, 3]).unwrap();
/// assert_eq!(&bytes[..], b"[1,2,3]");
/// assert_eq!(Codec::<Vec<u32>>::decode(&Json, &bytes).unwrap(), vec![1, 2, 3]);
/// ```
#[cfg(feature = "serde")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

#[cfg(feature = "serde")]
impl<T: serde::Serialize + serde::de::DeserializeOwned> Codec<T> for Json {
    fn encode(&self, value: &T) -> Result<Bytes, CodecError> {
        Ok(Bytes::from(serde_json::to_vec(value)?))
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

/// MessagePack through `rmp-serde`, for any `serde` type, structs as maps
/// keyed by field name (as Python's `msgpack.dumps` of a dict), so fields
/// may be added and reordered (feature `serde`).
///
/// ```
/// use streamlog::{Codec, MessagePack};
/// let bytes = MessagePack.encode(&("tea".to_owned(), 3u8)).unwrap();
/// assert_eq!(Codec::<(String, u8)>::decode(&MessagePack, &bytes).unwrap(), ("tea".to_owned(), 3));
/// ```
#[cfg(feature = "serde")]
#[derive(Debug, Clone, Copy, Default)]
pub struct MessagePack;

#[cfg(feature = "serde")]
impl<T: serde::Serialize + serde::de::DeserializeOwned> Codec<T> for MessagePack {
    fn encode(&self, value: &T) -> Result<Bytes, CodecError> {
        Ok(Bytes::from(rmp_serde::to_vec_named(value)?))
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError> {
        Ok(rmp_serde::from_slice(bytes)?)
    }
}

/// A producer of typed records to one topic: keys through `KC`, values
/// through `VC`. Made by [`Producer::typed`]; `Send + Sync` when its codecs
/// are, and as cheap to clone as they are.
///
/// Read them back with [`ConsumerRecord::decode_value`] and
/// [`ConsumerRecord::decode_key`]. A record that does not decode (a poison
/// record) is an [`Error::Decode`] naming its topic, partition and offset,
/// never a panic; the consumer's position is already past it, so skipping
/// it is just not retrying:
///
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use std::time::Duration;
/// use streamlog::{Broker, ConsumerConfig, Error, Json, OffsetReset, ProducerRecord, TopicConfig, Utf8};
///
/// #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// struct Order {
///     id: u64,
///     item: String,
/// }
///
/// let broker = Broker::temporary()?;
/// broker.create_topic("orders", TopicConfig::with_partitions(1))?;
/// let orders = broker.producer().typed::<String, Order, _, _>("orders", Utf8, Json);
/// orders.send(&"customer-7".to_owned(), &Order { id: 1, item: "tea, green".into() })?;
/// broker.producer().send(ProducerRecord::new("orders", "not json"))?; // a poison record
/// orders.send(&"customer-7".to_owned(), &Order { id: 2, item: "cups".into() })?;
///
/// let config = ConsumerConfig::with_group("shipping").auto_offset_reset(OffsetReset::Earliest);
/// let mut consumer = broker.consumer(config)?;
/// consumer.subscribe(&["orders"])?;
/// let (mut ids, mut poison) = (Vec::new(), Vec::new());
/// while ids.len() + poison.len() < 3 {
///     for record in consumer.poll(Duration::from_millis(100))? {
///         match record.decode_value::<Order, _>(&Json) {
///             Ok(Some(order)) => ids.push(order.id),
///             Ok(None) => {} // a tombstone
///             // Log it and go on: the position is already past it.
///             Err(Error::Decode { offset, .. }) => poison.push(offset),
///             Err(e) => return Err(e.into()),
///         }
///     }
/// }
/// assert_eq!((ids, poison), (vec![1, 2], vec![1]));
/// # }
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
pub struct TypedProducer<K, V, KC, VC> {
    producer: Producer,
    topic: String,
    key_codec: KC,
    value_codec: VC,
    types: PhantomData<fn(&K, &V)>,
}

impl<K, V, KC: Clone, VC: Clone> Clone for TypedProducer<K, V, KC, VC> {
    fn clone(&self) -> Self {
        TypedProducer {
            producer: self.producer.clone(),
            topic: self.topic.clone(),
            key_codec: self.key_codec.clone(),
            value_codec: self.value_codec.clone(),
            types: PhantomData,
        }
    }
}

impl<K, V, KC, VC> fmt::Debug for TypedProducer<K, V, KC, VC> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedProducer").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl Producer {
    /// A producer of `K`-keyed `V` records to `topic` (a clone of this
    /// one: same partitioner).
    ///
    /// ```
    /// # #[cfg(feature = "serde")] {
    /// use streamlog::{Broker, MessagePack, TopicConfig, Utf8};
    /// let broker = Broker::temporary()?;
    /// broker.create_topic("scores", TopicConfig::with_partitions(4))?;
    /// let scores = broker.producer().typed::<String, (u32, f64), _, _>("scores", Utf8, MessagePack);
    /// let meta = scores.send(&"ada".to_owned(), &(3, 0.5))?;
    /// // The key's bytes are the string's: the partition is Kafka's.
    /// assert_eq!(meta.partition, streamlog::murmur2_partition(b"ada", 4));
    /// # }
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn typed<K, V, KC: Codec<K>, VC: Codec<V>>(
        &self,
        topic: impl Into<String>,
        key_codec: KC,
        value_codec: VC,
    ) -> TypedProducer<K, V, KC, VC> {
        TypedProducer { producer: self.clone(), topic: topic.into(), key_codec, value_codec, types: PhantomData }
    }
}

impl<K, V, KC: Codec<K>, VC: Codec<V>> TypedProducer<K, V, KC, VC> {
    /// The topic it sends to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Sends `value` under `key` (partitioned by the key's bytes).
    pub fn send(&self, key: &K, value: &V) -> Result<RecordMetadata> {
        self.producer.send(self.record(Some(key), Some(value))?)
    }

    /// Sends `value` without a key.
    pub fn send_value(&self, value: &V) -> Result<RecordMetadata> {
        self.producer.send(self.record(None, Some(value))?)
    }

    /// Sends a tombstone for `key` (deletes it in a compacted topic).
    pub fn send_tombstone(&self, key: &K) -> Result<RecordMetadata> {
        self.producer.send(self.record(Some(key), None)?)
    }

    /// The encoded record, to add a partition, timestamp or headers before
    /// [`Producer::send`]. An encoding failure is [`Error::Encode`].
    pub fn record(&self, key: Option<&K>, value: Option<&V>) -> Result<ProducerRecord> {
        let encode_err = |part: &'static str| {
            let topic = self.topic.clone();
            move |e: CodecError| Error::Encode { topic, part, reason: e.to_string() }
        };
        Ok(ProducerRecord {
            topic: self.topic.clone().into(),
            key: key.map(|k| self.key_codec.encode(k)).transpose().map_err(encode_err("key"))?,
            value: value.map(|v| self.value_codec.encode(v)).transpose().map_err(encode_err("value"))?,
            ..ProducerRecord::default()
        })
    }

    /// The untyped producer underneath.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }
}

impl ConsumerRecord {
    /// The value decoded by `codec`; `None` for a tombstone. Bytes the codec
    /// rejects are [`Error::Decode`] naming this record's topic, partition
    /// and offset (see [`TypedProducer`] for skipping such a
    /// record).
    pub fn decode_value<T, C: Codec<T> + ?Sized>(&self, codec: &C) -> Result<Option<T>> {
        self.decode_part(self.value.as_ref(), codec, "value")
    }

    /// The key decoded by `codec`; `None` when the record has no key.
    pub fn decode_key<T, C: Codec<T> + ?Sized>(&self, codec: &C) -> Result<Option<T>> {
        self.decode_part(self.key.as_ref(), codec, "key")
    }

    fn decode_part<T, C: Codec<T> + ?Sized>(
        &self,
        bytes: Option<&Bytes>,
        codec: &C,
        part: &'static str,
    ) -> Result<Option<T>> {
        bytes.map(|b| codec.decode(b)).transpose().map_err(|e| Error::Decode {
            topic: self.topic.to_string(),
            partition: self.partition,
            offset: self.offset,
            part,
            reason: e.to_string(),
        })
    }
}
