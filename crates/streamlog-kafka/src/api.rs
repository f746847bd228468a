//! The request handlers: one function per API, each mapping a Kafka request
//! onto the broker's public API.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use streamlog::{
    CleanupPolicy, ConsumerConfig, Durability, Error, GroupState, OFFSETS_TOPIC, OffsetAndMetadata, Partition,
    RemoteJoin, RemoteJoinOutcome, TopicConfig, TopicPartition,
};

use crate::Shared;
use crate::groups::{MAX_JOIN_WAIT, MAX_SYNC_WAIT};
use crate::records;

pub(crate) const NONE: i16 = 0;
pub(crate) const UNKNOWN_SERVER_ERROR: i16 = -1;
pub(crate) const OFFSET_OUT_OF_RANGE: i16 = 1;
pub(crate) const CORRUPT_MESSAGE: i16 = 2;
pub(crate) const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub(crate) const MESSAGE_TOO_LARGE: i16 = 10;
pub(crate) const OFFSET_METADATA_TOO_LARGE: i16 = 12;
pub(crate) const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub(crate) const ILLEGAL_GENERATION: i16 = 22;
pub(crate) const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub(crate) const INVALID_GROUP_ID: i16 = 24;
pub(crate) const UNKNOWN_MEMBER_ID: i16 = 25;
pub(crate) const REBALANCE_IN_PROGRESS: i16 = 27;
pub(crate) const INVALID_TIMESTAMP: i16 = 32;
pub(crate) const UNSUPPORTED_VERSION: i16 = 35;
pub(crate) const TOPIC_ALREADY_EXISTS: i16 = 36;
pub(crate) const INVALID_PARTITIONS: i16 = 37;
pub(crate) const INVALID_CONFIG: i16 = 40;
pub(crate) const INVALID_REQUEST: i16 = 42;
pub(crate) const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub(crate) const INVALID_PRODUCER_EPOCH: i16 = 47;
pub(crate) const KAFKA_STORAGE_ERROR: i16 = 56;
pub(crate) const GROUP_ID_NOT_FOUND: i16 = 69;
pub(crate) const MEMBER_ID_REQUIRED: i16 = 79;
pub(crate) const FENCED_INSTANCE_ID: i16 = 82;

/// The one node of this "cluster".
const NODE_ID: i32 = 0;
const CLUSTER_ID: &str = "streamlog";

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// The error code of a group request's failure.
fn group_error_code(e: &Error) -> i16 {
    match e {
        Error::UnknownMember { .. } | Error::GroupNotEmpty { .. } => UNKNOWN_MEMBER_ID,
        Error::RebalanceInProgress { .. } => REBALANCE_IN_PROGRESS,
        Error::StaleGeneration { .. } => ILLEGAL_GENERATION,
        Error::FencedInstanceId { .. } => FENCED_INSTANCE_ID,
        Error::GroupIdTooLong { .. } => INVALID_GROUP_ID,
        e => error_code(e),
    }
}

fn error_code(e: &Error) -> i16 {
    match e {
        Error::UnknownTopic { .. } | Error::UnknownPartition { .. } => UNKNOWN_TOPIC_OR_PARTITION,
        Error::OffsetOutOfRange { .. } => OFFSET_OUT_OF_RANGE,
        Error::RecordTooLarge { .. } => MESSAGE_TOO_LARGE,
        Error::TopicExists { .. } => TOPIC_ALREADY_EXISTS,
        Error::InvalidTopicName { .. } => INVALID_TOPIC_EXCEPTION,
        Error::InvalidConfig(_) => INVALID_CONFIG,
        Error::Io { .. } | Error::Poisoned { .. } => KAFKA_STORAGE_ERROR,
        Error::OffsetMetadataTooLarge { .. } => OFFSET_METADATA_TOO_LARGE,
        Error::InvalidTimestamp { .. } => INVALID_TIMESTAMP,
        Error::TooManyPartitions { .. } => INVALID_PARTITIONS,
        _ => UNKNOWN_SERVER_ERROR,
    }
}

/// Idempotent producers: per producer and partition, the last batches
/// appended (Kafka keeps five, so a retried batch among them is
/// answered with its first offset instead of being appended twice).
pub(crate) struct ProducerState {
    table: Mutex<ProducerTable>,
    /// Held across one producer's check, append and record on a partition
    /// (by a hash of the three): only those of the same producer and
    /// partition wait for each other, not every idempotent produce for one
    /// table lock held across appends (and their fsyncs on `Sync` topics).
    appending: [Mutex<()>; 64],
}

impl ProducerState {
    pub(crate) fn new(expiration: Duration, max_ids: usize) -> ProducerState {
        ProducerState {
            table: Mutex::new(ProducerTable::new(expiration, max_ids)),
            appending: std::array::from_fn(|_| Mutex::new(())),
        }
    }

    /// The lock of `seq`'s producer and partition.
    fn appending(&self, seq: &SeqBatch<'_>) -> parking_lot::MutexGuard<'_, ()> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one((seq.producer_id, seq.topic, seq.partition));
        self.appending[(hash % 64) as usize].lock()
    }
}

/// A new producer id. Ids must not repeat across restarts (the sequence
/// state is in memory only): a producer that outlived a restart keeps its
/// id, and a new producer given the same one had its first batch taken for
/// the old one's duplicate and dropped, or was fenced with
/// OUT_OF_ORDER_SEQUENCE_NUMBER. So an id is at least the wall clock in
/// milliseconds times 1,000, and above every id given before in this
/// process (by any server): a later start gives ids above an earlier one's
/// unless that one handed out more than a thousand a millisecond, or the
/// clock went back across the restart.
fn next_producer_id() -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let floor = i64::try_from(ms).unwrap_or(0).saturating_mul(1000).max(1000);
    let next = |last: i64| last.saturating_add(1).max(floor);
    let last = LAST.fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| Some(next(last))).unwrap_or_else(|l| l);
    next(last)
}

/// The sequence state of producer ids. An id unused for `expiration` is
/// forgotten (Kafka's `producer.id.expiration.ms`), and at most `max_ids`
/// ids are tracked, the least recently used evicted first: without both the
/// table grows with every producer ever seen.
pub(crate) struct ProducerTable {
    expiration: Duration,
    max_ids: usize,
    ids: HashMap<i64, ProducerEntry>,
    /// `(last used, id)` of every tracked id, oldest first: expiry and
    /// eviction take from the front instead of scanning the table.
    by_use: BTreeSet<(Instant, i64)>,
}

struct ProducerEntry {
    last_used: Instant,
    partitions: HashMap<(String, i32), ProducerSeq>,
}

struct ProducerSeq {
    epoch: i16,
    /// (first sequence, last sequence, base offset) of recent batches.
    recent: Vec<(i32, i32, i64)>,
}

/// What to do with an idempotent producer's batch.
#[derive(Debug, PartialEq)]
pub(crate) enum SeqCheck {
    /// New and in sequence: append it, then [`ProducerTable::record`].
    Append,
    /// A retry of a batch appended at this offset: answer with it.
    Duplicate(i64),
}

/// One batch of an idempotent producer, as the sequence check sees it.
pub(crate) struct SeqBatch<'a> {
    pub producer_id: i64,
    pub epoch: i16,
    pub topic: &'a str,
    pub partition: i32,
    pub first_seq: i32,
    pub last_seq: i32,
}

impl ProducerTable {
    pub(crate) fn new(expiration: Duration, max_ids: usize) -> ProducerTable {
        ProducerTable { expiration, max_ids: max_ids.max(1), ids: HashMap::new(), by_use: BTreeSet::new() }
    }

    /// Checks a batch against its producer's state. A producer id with no
    /// state (never seen, expired or evicted) may start at any sequence, as
    /// Kafka 2.5+ accepts (KIP-360): an idle producer must not fail fatally
    /// because its state expired.
    pub(crate) fn check(&mut self, b: &SeqBatch<'_>, now: Instant) -> Result<SeqCheck, i16> {
        self.expire(now);
        let Some(entry) = self.ids.get(&b.producer_id) else { return Ok(SeqCheck::Append) };
        if now.saturating_duration_since(entry.last_used) >= self.expiration {
            return Ok(SeqCheck::Append); // Expired, not swept yet.
        }
        let Some(st) = entry.partitions.get(&(b.topic.to_owned(), b.partition)) else { return Ok(SeqCheck::Append) };
        if b.epoch < st.epoch {
            return Err(INVALID_PRODUCER_EPOCH);
        }
        if b.epoch > st.epoch {
            // A new epoch starts at sequence 0.
            return if b.first_seq == 0 { Ok(SeqCheck::Append) } else { Err(OUT_OF_ORDER_SEQUENCE_NUMBER) };
        }
        if let Some(&(_, _, off)) = st.recent.iter().find(|(f, l, _)| *f == b.first_seq && *l == b.last_seq) {
            return Ok(SeqCheck::Duplicate(off));
        }
        let expected = st.recent.last().map_or(0, |&(_, l, _)| l.wrapping_add(1) & i32::MAX);
        if b.first_seq != expected {
            return Err(OUT_OF_ORDER_SEQUENCE_NUMBER);
        }
        Ok(SeqCheck::Append)
    }

    /// Records a batch appended at `base_offset`.
    pub(crate) fn record(&mut self, b: &SeqBatch<'_>, base_offset: i64, now: Instant) {
        if !self.ids.contains_key(&b.producer_id)
            && self.ids.len() >= self.max_ids
            && let Some((_, lru)) = self.by_use.pop_first()
        {
            // At the cap: the least recently used id goes.
            self.ids.remove(&lru);
        }
        let expiration = self.expiration;
        let entry = self
            .ids
            .entry(b.producer_id)
            .or_insert_with(|| ProducerEntry { last_used: now, partitions: HashMap::new() });
        if now.saturating_duration_since(entry.last_used) >= expiration {
            entry.partitions.clear(); // Expired before this batch: start afresh.
        }
        self.by_use.remove(&(entry.last_used, b.producer_id));
        // Never back in time (the callers' clocks are monotonic, but the
        // order must hold whatever they pass).
        entry.last_used = entry.last_used.max(now);
        self.by_use.insert((entry.last_used, b.producer_id));
        let st = entry
            .partitions
            .entry((b.topic.to_owned(), b.partition))
            .or_insert(ProducerSeq { epoch: b.epoch, recent: Vec::new() });
        if st.epoch != b.epoch {
            st.epoch = b.epoch;
            st.recent.clear();
        }
        st.recent.push((b.first_seq, b.last_seq, base_offset));
        if st.recent.len() > 5 {
            st.recent.remove(0);
        }
    }

    /// Drops expired ids, oldest first (one look when none is).
    fn expire(&mut self, now: Instant) {
        while let Some(&(used, id)) = self.by_use.first()
            && now.saturating_duration_since(used) >= self.expiration
        {
            self.by_use.pop_first();
            self.ids.remove(&id);
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        assert_eq!(self.by_use.len(), self.ids.len(), "every id once in the use order");
        self.ids.len()
    }
}

pub(crate) fn handle(shared: &Shared, header: &RequestHeader, req: RequestKind) -> Option<ResponseKind> {
    let v = header.request_api_version;
    let client_id = header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default();
    Some(match req {
        RequestKind::ApiVersions(_) => {
            let mut r = ApiVersionsResponse::default();
            r.api_keys = crate::conn::api_versions_body();
            ResponseKind::ApiVersions(r)
        }
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata(shared, r, v)),
        RequestKind::Produce(r) => {
            let acks = r.acks;
            let resp = produce(shared, r);
            if acks == 0 {
                return None;
            }
            ResponseKind::Produce(resp)
        }
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch(shared, r)),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets(shared, r)),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(create_topics(shared, r)),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(delete_topics(shared, r)),
        RequestKind::CreatePartitions(r) => ResponseKind::CreatePartitions(create_partitions(shared, r)),
        RequestKind::DeleteRecords(r) => ResponseKind::DeleteRecords(delete_records(shared, r)),
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(describe_configs(shared, r)),
        RequestKind::InitProducerId(_) => ResponseKind::InitProducerId(init_producer_id()),
        RequestKind::FindCoordinator(_) => {
            let mut r = FindCoordinatorResponse::default();
            r.node_id = BrokerId(NODE_ID);
            r.host = s(advertised_host(shared));
            r.port = i32::from(shared.addr.port());
            ResponseKind::FindCoordinator(r)
        }
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(offset_commit(shared, r)),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(offset_fetch(shared, r)),
        RequestKind::ListGroups(_) => ResponseKind::ListGroups(list_groups(shared)),
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(describe_groups(shared, r)),
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(join_group(shared, r, v, client_id)),
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(sync_group(shared, r)),
        RequestKind::Heartbeat(r) => {
            let mut resp = HeartbeatResponse::default();
            resp.error_code = match u32::try_from(r.generation_id) {
                Err(_) => ILLEGAL_GENERATION,
                Ok(generation) => match shared.broker.group(&r.group_id.0).remote_heartbeat(&r.member_id, generation) {
                    Ok(()) => NONE,
                    Err(e) => group_error_code(&e),
                },
            };
            ResponseKind::Heartbeat(resp)
        }
        RequestKind::LeaveGroup(r) => {
            let members: Vec<(String, Option<String>)> = if v >= 3 {
                r.members
                    .iter()
                    .map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|i| i.to_string())))
                    .collect()
            } else {
                vec![(r.member_id.to_string(), None)]
            };
            let codes: Vec<i16> =
                members.iter().map(|(id, inst)| leave_group(shared, &r.group_id.0, id, inst)).collect();
            let mut resp = LeaveGroupResponse::default();
            if v >= 3 {
                resp.members = members
                    .iter()
                    .zip(&codes)
                    .map(|((id, inst), &c)| {
                        let mut m = leave_group_response::MemberResponse::default();
                        m.member_id = s(id.clone());
                        m.group_instance_id = inst.clone().map(s);
                        m.error_code = c;
                        m
                    })
                    .collect();
            } else {
                resp.error_code = codes.first().copied().unwrap_or(NONE);
            }
            ResponseKind::LeaveGroup(resp)
        }
        // decode_request lets through only the APIs in SUPPORTED.
        _ => return None,
    })
}

fn advertised_host(shared: &Shared) -> String {
    shared.config.advertised_host.clone().unwrap_or_else(|| crate::wake_addr(shared.addr).ip().to_string())
}

fn auto_create(shared: &Shared, name: &str) -> Result<(), Error> {
    let config = TopicConfig::with_partitions(shared.config.auto_create_partitions.max(1));
    match shared.broker.create_topic(name, config) {
        Ok(_) | Err(Error::TopicExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

fn metadata(shared: &Shared, r: MetadataRequest, v: i16) -> MetadataResponse {
    let broker = &shared.broker;
    let mut resp = MetadataResponse::default();
    let mut b = metadata_response::MetadataResponseBroker::default();
    b.node_id = BrokerId(NODE_ID);
    b.host = s(advertised_host(shared));
    b.port = i32::from(shared.addr.port());
    resp.brokers = vec![b];
    resp.cluster_id = Some(s(CLUSTER_ID));
    resp.controller_id = BrokerId(NODE_ID);
    // v0: an empty list means all topics; v1+: null means all.
    let names: Vec<String> = match r.topics {
        Some(t) if !(v == 0 && t.is_empty()) => t.into_iter().filter_map(|t| t.name.map(|n| n.0.to_string())).collect(),
        _ => broker.topics().into_iter().filter(|t| !t.starts_with("__")).collect(),
    };
    let allow_create = shared.config.auto_create_topics && (v < 4 || r.allow_auto_topic_creation);
    for name in names {
        let mut t = metadata_response::MetadataResponseTopic::default();
        t.name = Some(TopicName(s(name.clone())));
        let mut topic = broker.topic(&name);
        if topic.is_err() && allow_create {
            topic = auto_create(shared, &name).and_then(|()| broker.topic(&name));
        }
        match topic {
            Ok(topic) => {
                t.partitions = (0..topic.partition_count())
                    .map(|i| {
                        let mut p = metadata_response::MetadataResponsePartition::default();
                        p.partition_index = i as i32;
                        p.leader_id = BrokerId(NODE_ID);
                        p.leader_epoch = 0;
                        p.replica_nodes = vec![BrokerId(NODE_ID)];
                        p.isr_nodes = vec![BrokerId(NODE_ID)];
                        p
                    })
                    .collect();
            }
            Err(e) => t.error_code = error_code(&e),
        }
        resp.topics.push(t);
    }
    resp
}

/// The committed offsets live in [`OFFSETS_TOPIC`]: a client that wrote to
/// it or deleted its records would forge or erase every group's commits at
/// the next restart. Kafka refuses both on internal topics.
fn refuse_internal(topic: &str) -> Result<(), i16> {
    if topic == OFFSETS_TOPIC { Err(INVALID_TOPIC_EXCEPTION) } else { Ok(()) }
}

fn produce(shared: &Shared, r: ProduceRequest) -> ProduceResponse {
    let mut resp = ProduceResponse::default();
    for td in r.topic_data {
        let mut tr = produce_response::TopicProduceResponse::default();
        let topic = shared.broker.topic(&td.name.0);
        for pd in td.partition_data {
            let mut pr = produce_response::PartitionProduceResponse::default();
            pr.index = pd.index;
            pr.base_offset = -1;
            pr.log_append_time_ms = -1;
            let part = refuse_internal(&td.name.0).and_then(|()| {
                let topic = topic.as_ref().map_err(|_| UNKNOWN_TOPIC_OR_PARTITION)?;
                u32::try_from(pd.index).ok().and_then(|i| topic.partition(i).ok()).ok_or(UNKNOWN_TOPIC_OR_PARTITION)
            });
            match part {
                Err(code) => pr.error_code = code,
                Ok(log) => {
                    let durability = topic.as_ref().map(|t| t.config().durability).unwrap_or_default();
                    match produce_partition(
                        shared,
                        &td.name.0,
                        pd.index,
                        &log,
                        pd.records.unwrap_or_default(),
                        r.acks,
                        durability,
                    ) {
                        Ok((base, start)) => {
                            pr.base_offset = base;
                            pr.log_start_offset = start;
                        }
                        Err((code, msg)) => {
                            pr.error_code = code;
                            pr.error_message = msg.map(s);
                        }
                    }
                }
            }
            tr.partition_responses.push(pr);
        }
        tr.name = td.name;
        resp.responses.push(tr);
    }
    resp
}

/// Appends one partition's batches; returns the first offset and the log
/// start offset.
fn produce_partition(
    shared: &Shared,
    topic: &str,
    index: i32,
    log: &Arc<Partition>,
    data: Bytes,
    acks: i16,
    durability: Durability,
) -> Result<(i64, i64), (i16, Option<String>)> {
    let batches = records::split_produce(data).map_err(|e| (CORRUPT_MESSAGE, Some(e.to_string())))?;
    let failed = |e| match e {
        records::AppendError::Corrupt(e) => (CORRUPT_MESSAGE, Some(e.to_string())),
        records::AppendError::Log(e) => (error_code(&e), Some(e.to_string())),
    };
    let checked = batches.len() > 1;
    if checked {
        // All decoded before any is appended (each is decoded again when
        // appended, one at a time: memory stays one batch's).
        batches.iter().try_for_each(|b| b.check()).map_err(failed)?;
    }
    let append = |b: &records::IncomingBatch| b.append_to(log, checked).map(|o| o as i64).map_err(failed);
    let mut first: Option<i64> = None;
    for b in batches {
        if b.control {
            continue; // Transaction markers: no transactions here.
        }
        let base = if b.producer_id >= 0 && b.base_sequence >= 0 {
            // Idempotent: checked, appended and recorded holding the lock
            // of this producer and partition, so two connections cannot
            // interleave one producer.
            let seq = SeqBatch {
                producer_id: b.producer_id,
                epoch: b.producer_epoch,
                topic,
                partition: index,
                first_seq: b.base_sequence,
                last_seq: b.base_sequence.wrapping_add(b.count - 1),
            };
            let _appending = shared.producers.appending(&seq);
            let now = Instant::now();
            let checked = shared.producers.table.lock().check(&seq, now);
            match checked {
                Err(code) => return Err((code, None)),
                Ok(SeqCheck::Duplicate(off)) => {
                    first.get_or_insert(off); // A retried duplicate: its first offset.
                    continue;
                }
                Ok(SeqCheck::Append) => {}
            }
            let base = append(&b)?;
            shared.producers.table.lock().record(&seq, base, now);
            base
        } else {
            append(&b)?
        };
        first.get_or_insert(base);
    }
    // acks=-1 promises what the topic promises: Sync topics are synced by
    // append itself; Interval topics are flushed before the answer.
    if acks == -1 && matches!(durability, Durability::Interval(_)) {
        log.flush().map_err(|e| (error_code(&e), Some(e.to_string())))?;
    }
    Ok((first.unwrap_or(log.high_watermark() as i64), log.log_start_offset() as i64))
}

fn fetch(shared: &Shared, r: FetchRequest) -> FetchResponse {
    let start = Instant::now();
    let max_wait = Duration::from_millis(r.max_wait_ms.max(0) as u64).min(shared.config.max_fetch_wait);
    let deadline = start + max_wait;
    let min_bytes = r.min_bytes.max(0) as usize;
    loop {
        let pass = fetch_once(shared, &r);
        let now = Instant::now();
        // As Kafka: enough bytes (a `min_bytes` of 0 answers at once), or a
        // partition's error, ends the wait.
        if pass.bytes >= min_bytes
            || pass.failed
            || now >= deadline
            || pass.waits.is_empty()
            || shared.stopping.load(Ordering::Acquire)
        {
            return pass.resp;
        }
        let logs: Vec<(&Partition, u64)> = pass.waits.iter().map(|(p, o)| (&**p, *o)).collect();
        // Woken by an append; checked again at least every 100 ms for shutdown.
        Partition::wait_for_any(&logs, deadline.min(now + Duration::from_millis(100)));
    }
}

/// One pass of a Fetch over the requested partitions.
struct FetchPass {
    resp: FetchResponse,
    /// Record bytes in `resp`.
    bytes: usize,
    /// The partitions to wait on, with the offset each waits past.
    waits: Vec<(Arc<Partition>, u64)>,
    /// A partition answered with an error.
    failed: bool,
}

fn fetch_once(shared: &Shared, r: &FetchRequest) -> FetchPass {
    let mut resp = FetchResponse::default();
    let mut total = 0usize;
    // The client's limit (none at 0 or below) within the server's, so that
    // one request cannot make a response of gigabytes.
    let cap = shared.config.max_fetch_bytes;
    let max_bytes = if r.max_bytes <= 0 { cap } else { (r.max_bytes as usize).min(cap) };
    let mut waits = Vec::new();
    for t in &r.topics {
        let mut tr = fetch_response::FetchableTopicResponse::default();
        tr.topic = t.topic.clone();
        let topic = shared.broker.topic(&t.topic.0);
        for p in &t.partitions {
            let mut pr = fetch_response::PartitionData::default();
            pr.partition_index = p.partition;
            pr.high_watermark = -1;
            pr.last_stable_offset = -1;
            pr.log_start_offset = -1;
            pr.preferred_read_replica = BrokerId(-1);
            let log = partition_of(&topic, p.partition);
            let Some(log) = log else {
                pr.error_code = UNKNOWN_TOPIC_OR_PARTITION;
                tr.partitions.push(pr);
                continue;
            };
            let (lso, hw) = (log.log_start_offset(), log.high_watermark());
            pr.high_watermark = hw as i64;
            pr.last_stable_offset = hw as i64;
            pr.log_start_offset = lso as i64;
            let offset = p.fetch_offset;
            if offset < lso as i64 || offset > hw as i64 {
                pr.error_code = OFFSET_OUT_OF_RANGE;
            } else if offset == hw as i64 {
                waits.push((Arc::clone(&log), hw));
            } else {
                // Below min_bytes the poll waits for appends past what it read.
                waits.push((Arc::clone(&log), hw));
                // The first partition with data always gets at least one batch.
                let room = max_bytes.saturating_sub(total);
                let limit = (p.partition_max_bytes.max(0) as usize).min(room);
                if limit > 0 || total == 0 {
                    match read_encoded(&log, offset as u64, limit.max(1), hw) {
                        Ok(out) => {
                            total += out.len();
                            pr.records = Some(out.freeze());
                        }
                        Err(code) => pr.error_code = code,
                    }
                }
            }
            tr.partitions.push(pr);
        }
        resp.responses.push(tr);
    }
    let failed = resp.responses.iter().flat_map(|t| &t.partitions).any(|p| p.error_code != NONE);
    FetchPass { resp, bytes: total, waits, failed }
}

/// Batches of `log` from `offset` on, up to about `max_bytes`, encoded as
/// Kafka batches. A read may return only batches with no record from
/// `offset` on (compaction removed the records at the end of a batch and
/// kept its offset range): the read goes on past them, up to `end`, so
/// that a fetch below the end never answers nothing, which would have the
/// client fetch the same offset for ever.
fn read_encoded(log: &Partition, mut offset: u64, max_bytes: usize, end: u64) -> Result<BytesMut, i16> {
    let mut out = BytesMut::new();
    while out.is_empty() && offset < end {
        let batches = log.read(offset, max_bytes).map_err(|e| error_code(&e))?;
        let Some(last) = batches.last() else { break };
        offset = last.next_offset();
        records::encode_fetch(&batches, &mut out).map_err(|_| CORRUPT_MESSAGE)?;
    }
    Ok(out)
}

fn list_offsets(shared: &Shared, r: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut resp = ListOffsetsResponse::default();
    for t in r.topics {
        let mut tr = list_offsets_response::ListOffsetsTopicResponse::default();
        let topic = shared.broker.topic(&t.name.0);
        for p in t.partitions {
            let mut pr = list_offsets_response::ListOffsetsPartitionResponse::default();
            pr.partition_index = p.partition_index;
            pr.timestamp = -1;
            pr.offset = -1;
            let log = partition_of(&topic, p.partition_index);
            match log {
                None => pr.error_code = UNKNOWN_TOPIC_OR_PARTITION,
                Some(log) => match p.timestamp {
                    -2 => pr.offset = log.log_start_offset() as i64,
                    -1 => pr.offset = log.high_watermark() as i64,
                    ts if ts >= 0 => match log.offset_for_timestamp(ts) {
                        Ok(Some(o)) => {
                            pr.offset = o as i64;
                            pr.timestamp = timestamp_at(&log, o).unwrap_or(ts);
                        }
                        Ok(None) => {}
                        Err(e) => pr.error_code = error_code(&e),
                    },
                    // Max timestamp (KIP-734): the record with the largest
                    // timestamp; none in an empty log.
                    -3 => match log.max_timestamp_offset() {
                        Ok(Some((o, ts))) => (pr.offset, pr.timestamp) = (o as i64, ts),
                        Ok(None) => {}
                        Err(e) => pr.error_code = error_code(&e),
                    },
                    _ => pr.error_code = INVALID_REQUEST,
                },
            }
            tr.partitions.push(pr);
        }
        tr.name = t.name;
        resp.topics.push(tr);
    }
    resp
}

fn timestamp_at(log: &Partition, offset: u64) -> Option<i64> {
    let batches = log.read(offset, 1).ok()?;
    batches.first()?.records().next().and_then(|r| r.ok()).map(|r| r.timestamp)
}

fn parse_configs(mut config: TopicConfig, entries: &[(String, Option<String>)]) -> Result<TopicConfig, String> {
    for (k, v) in entries {
        let Some(v) = v else { continue };
        let ms = || v.parse::<i64>().map_err(|_| format!("{k}: not a number: {v}"));
        match k.as_str() {
            "retention.ms" => {
                config.retention = u64::try_from(ms()?).ok().map(Duration::from_millis);
            }
            "retention.bytes" => config.retention_bytes = u64::try_from(ms()?).ok(),
            "segment.bytes" => config.segment_bytes = u32::try_from(ms()?).map_err(|_| format!("{k}: {v}"))?,
            "segment.ms" => config.segment_age = Duration::from_millis(ms()?.max(0) as u64),
            "min.compaction.lag.ms" => config.min_compaction_lag = Duration::from_millis(ms()?.max(0) as u64),
            "delete.retention.ms" => config.delete_retention = Duration::from_millis(ms()?.max(0) as u64),
            "min.cleanable.dirty.ratio" => {
                config.min_cleanable_dirty_ratio = v.parse().map_err(|_| format!("{k}: {v}"))?;
            }
            "cleanup.policy" => {
                config.cleanup_policy = match v.replace(' ', "").as_str() {
                    "delete" => CleanupPolicy::Delete,
                    "compact" => CleanupPolicy::Compact,
                    "compact,delete" | "delete,compact" => CleanupPolicy::CompactDelete,
                    _ => return Err(format!("{k}: {v}")),
                };
            }
            // Accepted and ignored: nothing to do on one node.
            _ => {}
        }
    }
    Ok(config)
}

fn create_topics(shared: &Shared, r: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut resp = CreateTopicsResponse::default();
    for t in r.topics {
        let mut tr = create_topics_response::CreatableTopicResult::default();
        // -1: as many as the replica assignments list, or the default.
        let partitions = match t.num_partitions {
            n if n >= 0 => n as u32,
            _ if !t.assignments.is_empty() => t.assignments.len() as u32,
            _ => shared.config.auto_create_partitions,
        };
        tr.num_partitions = partitions as i32;
        tr.replication_factor = 1;
        let entries: Vec<(String, Option<String>)> =
            t.configs.iter().map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))).collect();
        match parse_configs(TopicConfig::with_partitions(partitions), &entries) {
            Err(msg) => {
                tr.error_code = INVALID_CONFIG;
                tr.error_message = Some(s(msg));
            }
            Ok(_) if partitions == 0 => tr.error_code = INVALID_PARTITIONS,
            Ok(config) => {
                let res = if r.validate_only {
                    config.validate().and_then(|()| streamlog::validate_topic_name(&t.name.0)).and_then(|()| {
                        if shared.broker.topic(&t.name.0).is_ok() {
                            Err(Error::TopicExists { topic: t.name.0.to_string() })
                        } else {
                            Ok(())
                        }
                    })
                } else {
                    shared.broker.create_topic(&t.name.0, config).map(|_| ())
                };
                if let Err(e) = res {
                    tr.error_code = error_code(&e);
                    tr.error_message = Some(s(e.to_string()));
                }
            }
        }
        tr.name = t.name;
        resp.topics.push(tr);
    }
    resp
}

fn delete_topics(shared: &Shared, r: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let mut resp = DeleteTopicsResponse::default();
    let names: Vec<TopicName> =
        if r.topic_names.is_empty() { r.topics.into_iter().filter_map(|t| t.name).collect() } else { r.topic_names };
    for name in names {
        let mut tr = delete_topics_response::DeletableTopicResult::default();
        if let Err(e) = shared.broker.delete_topic(&name.0) {
            tr.error_code = error_code(&e);
            tr.error_message = Some(s(e.to_string()));
        }
        tr.name = Some(name);
        resp.responses.push(tr);
    }
    resp
}

fn create_partitions(shared: &Shared, r: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut resp = CreatePartitionsResponse::default();
    for t in r.topics {
        let mut tr = create_partitions_response::CreatePartitionsTopicResult::default();
        let res = match shared.broker.topic(&t.name.0) {
            Err(e) => Err(e),
            Ok(topic) if t.count <= topic.partition_count() as i32 => {
                Err(Error::InvalidConfig(format!("topic has {} partitions already", topic.partition_count())))
            }
            Ok(_) if r.validate_only => Ok(()),
            Ok(_) => shared.broker.add_partitions(&t.name.0, t.count as u32),
        };
        if let Err(e) = res {
            tr.error_code = match e {
                Error::InvalidConfig(_) => INVALID_PARTITIONS,
                ref e => error_code(e),
            };
            tr.error_message = Some(s(e.to_string()));
        }
        tr.name = t.name;
        resp.results.push(tr);
    }
    resp
}

fn delete_records(shared: &Shared, r: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut resp = DeleteRecordsResponse::default();
    for t in r.topics {
        let mut tr = delete_records_response::DeleteRecordsTopicResult::default();
        let topic = shared.broker.topic(&t.name.0);
        for p in t.partitions {
            let mut pr = delete_records_response::DeleteRecordsPartitionResult::default();
            pr.partition_index = p.partition_index;
            pr.low_watermark = -1;
            let log = refuse_internal(&t.name.0)
                .and_then(|()| partition_of(&topic, p.partition_index).ok_or(UNKNOWN_TOPIC_OR_PARTITION));
            match log {
                Err(code) => pr.error_code = code,
                Ok(log) => {
                    let to = if p.offset == -1 { log.high_watermark() } else { p.offset.max(0) as u64 };
                    match log.delete_records(to) {
                        Ok(start) => pr.low_watermark = start as i64,
                        Err(e) => pr.error_code = error_code(&e),
                    }
                }
            }
            tr.partitions.push(pr);
        }
        tr.name = t.name;
        resp.topics.push(tr);
    }
    resp
}

fn topic_config_entries(c: &TopicConfig) -> Vec<(&'static str, String)> {
    let ms = |d: Duration| d.as_millis().to_string();
    vec![
        (
            "cleanup.policy",
            match c.cleanup_policy {
                CleanupPolicy::Delete => "delete".into(),
                CleanupPolicy::Compact => "compact".into(),
                _ => "compact,delete".into(),
            },
        ),
        ("retention.ms", c.retention.map_or("-1".into(), ms)),
        ("retention.bytes", c.retention_bytes.map_or("-1".into(), |b| b.to_string())),
        ("segment.bytes", c.segment_bytes.to_string()),
        ("segment.ms", ms(c.segment_age)),
        ("segment.index.bytes", c.max_index_bytes.to_string()),
        ("index.interval.bytes", c.index_interval_bytes.to_string()),
        ("min.cleanable.dirty.ratio", c.min_cleanable_dirty_ratio.to_string()),
        ("min.compaction.lag.ms", ms(c.min_compaction_lag)),
        ("delete.retention.ms", ms(c.delete_retention)),
        ("message.timestamp.type", "CreateTime".into()),
        (
            "flush.messages",
            match c.durability {
                Durability::Sync => "1".into(),
                _ => i64::MAX.to_string(),
            },
        ),
        (
            "flush.ms",
            match c.durability {
                Durability::Interval(d) => ms(d),
                Durability::Sync => "0".into(),
                _ => i64::MAX.to_string(),
            },
        ),
    ]
}

fn describe_configs(shared: &Shared, r: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let mut resp = DescribeConfigsResponse::default();
    for res in r.resources {
        let mut rr = describe_configs_response::DescribeConfigsResult::default();
        rr.resource_type = res.resource_type;
        let entries: Vec<(&'static str, String)> = match res.resource_type {
            2 => match shared.broker.topic(&res.resource_name) {
                Ok(t) => topic_config_entries(&t.config()),
                Err(e) => {
                    rr.error_code = error_code(&e);
                    rr.error_message = Some(s(e.to_string()));
                    Vec::new()
                }
            },
            4 => vec![
                ("num.partitions", shared.config.auto_create_partitions.to_string()),
                ("auto.create.topics.enable", shared.config.auto_create_topics.to_string()),
                ("socket.request.max.bytes", shared.config.max_frame_bytes.to_string()),
                ("group.initial.rebalance.delay.ms", "0".into()),
            ],
            _ => {
                rr.error_code = INVALID_REQUEST;
                Vec::new()
            }
        };
        let wanted = res.configuration_keys.as_ref();
        rr.configs = entries
            .into_iter()
            .filter(|(k, _)| wanted.is_none_or(|w| w.iter().any(|x| x.as_str() == *k)))
            .map(|(k, v)| {
                let mut c = describe_configs_response::DescribeConfigsResourceResult::default();
                c.name = s(k);
                c.value = Some(s(v));
                c.config_source = if res.resource_type == 2 { 1 } else { 5 }; // topic / default
                c
            })
            .collect();
        rr.resource_name = res.resource_name;
        resp.results.push(rr);
    }
    resp
}

fn init_producer_id() -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse::default();
    // Ids are unique across restarts (see `next_producer_id`); the
    // sequence state is in memory.
    resp.producer_id = ProducerId(next_producer_id());
    resp.producer_epoch = 0;
    resp
}

fn offset_commit(shared: &Shared, r: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = r.group_id.0.to_string();
    let generation = r.generation_id_or_member_epoch;
    let member = r.member_id.to_string();
    let mut resp = OffsetCommitResponse::default();
    // Per partition: its place in the response and its commit, if valid.
    let mut commits: Vec<(usize, usize, TopicPartition, OffsetAndMetadata)> = Vec::new();
    for (ti, t) in r.topics.into_iter().enumerate() {
        let mut tr = offset_commit_response::OffsetCommitResponseTopic::default();
        for (pi, p) in t.partitions.into_iter().enumerate() {
            let mut pr = offset_commit_response::OffsetCommitResponsePartition::default();
            pr.partition_index = p.partition_index;
            pr.error_code = if group.is_empty() {
                INVALID_GROUP_ID
            } else if p.partition_index < 0 || p.committed_offset < 0 {
                INVALID_REQUEST
            } else if p.committed_metadata.as_ref().is_some_and(|m| m.len() > streamlog::MAX_OFFSET_METADATA_LEN) {
                // Refused alone, as Kafka does: the others still commit.
                OFFSET_METADATA_TOO_LARGE
            } else {
                let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index as u32);
                let md = p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default();
                commits.push((ti, pi, tp, OffsetAndMetadata::new(p.committed_offset as u64, md)));
                NONE
            };
            tr.partitions.push(pr);
        }
        tr.name = t.name;
        resp.topics.push(tr);
    }
    if commits.is_empty() {
        return resp;
    }
    let offsets: Vec<(TopicPartition, OffsetAndMetadata)> =
        commits.iter().map(|(_, _, tp, o)| (tp.clone(), o.clone())).collect();
    let result = if generation < 0 && member.is_empty() {
        // Outside any generation: only while the group has no members. A
        // consumer made for this request only (keeping one per group id
        // would grow with the ids clients choose).
        shared
            .broker
            .consumer(ConsumerConfig::with_group(&group).enable_auto_commit(false))
            .and_then(|mut c| c.commit_offsets_with_metadata(&offsets))
    } else {
        match u32::try_from(generation) {
            Ok(g) => shared.broker.group(&group).remote_commit(&member, g, &offsets),
            Err(_) => Err(Error::UnknownMember { group: group.clone(), member_id: member }),
        }
    };
    if let Err(e) = result {
        let code = group_error_code(&e);
        for (ti, pi, _, _) in commits {
            resp.topics[ti].partitions[pi].error_code = code;
        }
    }
    resp
}

fn offset_fetch(shared: &Shared, r: OffsetFetchRequest) -> OffsetFetchResponse {
    let group = r.group_id.0.to_string();
    let committed = shared.broker.group(&group).committed_with_metadata().unwrap_or_default();
    let mut resp = OffsetFetchResponse::default();
    let requested: Vec<(TopicName, Vec<i32>)> = match r.topics {
        Some(ts) => ts.into_iter().map(|t| (t.name, t.partition_indexes)).collect(),
        None => {
            let mut by_topic: HashMap<String, Vec<i32>> = HashMap::new();
            for tp in committed.keys() {
                by_topic.entry(tp.topic.clone()).or_default().push(tp.partition as i32);
            }
            by_topic.into_iter().map(|(t, ps)| (TopicName(s(t)), ps)).collect()
        }
    };
    for (name, parts) in requested {
        let mut tr = offset_fetch_response::OffsetFetchResponseTopic::default();
        for p in parts {
            let mut pr = offset_fetch_response::OffsetFetchResponsePartition::default();
            pr.partition_index = p;
            pr.committed_leader_epoch = -1;
            let tp = TopicPartition::new(name.0.to_string(), p.max(0) as u32);
            let c = committed.get(&tp);
            pr.committed_offset = c.map_or(-1, |c| c.offset as i64);
            pr.metadata = Some(s(c.map(|c| c.metadata.clone()).unwrap_or_default()));
            tr.partitions.push(pr);
        }
        tr.name = name;
        resp.topics.push(tr);
    }
    resp
}

fn state_name(state: GroupState) -> &'static str {
    match state {
        GroupState::Empty => "Empty",
        GroupState::PreparingRebalance => "PreparingRebalance",
        GroupState::CompletingRebalance => "CompletingRebalance",
        GroupState::Stable => "Stable",
        _ => "Dead",
    }
}

fn list_groups(shared: &Shared) -> ListGroupsResponse {
    let mut resp = ListGroupsResponse::default();
    for id in shared.broker.list_groups() {
        let Ok(desc) = shared.broker.describe_group(&id) else { continue };
        let mut g = list_groups_response::ListedGroup::default();
        g.group_id = GroupId(s(id));
        g.protocol_type = s("consumer");
        g.group_state = s(state_name(desc.state));
        g.group_type = s("classic");
        resp.groups.push(g);
    }
    resp
}

fn describe_groups(shared: &Shared, r: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let mut resp = DescribeGroupsResponse::default();
    for id in r.groups {
        let mut d = describe_groups_response::DescribedGroup::default();
        match shared.broker.describe_group(&id.0) {
            Ok(desc) => {
                d.group_state = s(state_name(desc.state));
                d.protocol_type = s(if desc.state == GroupState::Dead { "" } else { "consumer" });
                if !desc.members.is_empty() {
                    d.protocol_data = s(crate::groups::protocol_name(desc.assignor));
                }
                d.members = desc
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut dm = describe_groups_response::DescribedGroupMember::default();
                        dm.client_id = s(m.member_id.rsplit_once('-').map_or("", |(c, _)| c));
                        dm.member_id = s(m.member_id);
                        dm.group_instance_id = m.group_instance_id.map(s);
                        dm.member_assignment = crate::groups::encode_assignment(&m.partitions);
                        dm
                    })
                    .collect();
            }
            Err(_) => d.group_state = s("Dead"),
        }
        if id.0.is_empty() {
            d.error_code = INVALID_GROUP_ID;
        }
        let _ = GROUP_ID_NOT_FOUND; // Kafka answers "Dead", not an error, for an unknown group.
        d.group_id = id;
        resp.groups.push(d);
    }
    resp
}

fn join_group(shared: &Shared, r: JoinGroupRequest, v: i16, client_id: String) -> JoinGroupResponse {
    let mut resp = JoinGroupResponse::default();
    resp.generation_id = -1;
    resp.member_id = r.member_id.clone();
    resp.protocol_type = Some(r.protocol_type.clone());
    let group_id = r.group_id.0.to_string();
    if group_id.is_empty() || group_id.len() > streamlog::MAX_GROUP_ID_LEN {
        resp.error_code = INVALID_GROUP_ID;
        return resp;
    }
    // The broker assigns, so it must read the subscriptions: consumer
    // groups only (not, say, Kafka Connect's "connect" protocol).
    let subscription = r.protocols.iter().find_map(|p| crate::groups::decode_subscription(&p.metadata));
    let Some((topics, owned)) = subscription.filter(|_| r.protocol_type.as_str() == "consumer") else {
        resp.error_code = INCONSISTENT_GROUP_PROTOCOL;
        return resp;
    };
    let group = shared.broker.group(&group_id);
    let instance_id = r.group_instance_id.as_ref().map(|i| i.to_string());
    let mut member_id = r.member_id.to_string();
    if member_id.is_empty() {
        member_id = group.new_member_id(if client_id.is_empty() { "consumer" } else { &client_id });
        resp.member_id = s(member_id.clone());
        if v >= 4 && instance_id.is_none() {
            // KIP-394: the client rejoins with this id.
            shared.groups.add_pending(&group_id, &member_id);
            resp.error_code = MEMBER_ID_REQUIRED;
            return resp;
        }
    } else if !group.has_remote_member(&member_id) && !shared.groups.take_pending(&group_id, &member_id) {
        resp.error_code = UNKNOWN_MEMBER_ID;
        return resp;
    }
    let assignor = r.protocols.iter().find_map(|p| crate::groups::assignor_of(&p.name)).unwrap_or_default();
    let session = Duration::from_millis(r.session_timeout_ms.max(1) as u64);
    let rebalance =
        if v >= 1 { Duration::from_millis(r.rebalance_timeout_ms.max(1) as u64) } else { session }.min(MAX_JOIN_WAIT);
    let join = RemoteJoin {
        member_id: member_id.clone(),
        group_instance_id: instance_id,
        topics,
        owned,
        assignor,
        session_timeout: session,
        rebalance_timeout: rebalance,
    };
    // Waits in slices, to notice a shutdown; a rejoin is idempotent.
    let start = Instant::now();
    let outcome = loop {
        match group.remote_join(join.clone(), Duration::from_millis(100)) {
            Ok(RemoteJoinOutcome::Pending)
                if !shared.stopping.load(Ordering::Acquire) && start.elapsed() < rebalance + Duration::from_secs(1) =>
            {
                continue;
            }
            Ok(RemoteJoinOutcome::Pending) => break Err(Error::RebalanceInProgress { group: group_id.clone() }),
            other => break other,
        }
    };
    match outcome {
        Ok(RemoteJoinOutcome::Joined { generation, assignor, .. }) => {
            // The protocol of the group's assignor if the member offers it
            // (it then revokes as that protocol does), else its first.
            let name = crate::groups::protocol_name(assignor);
            let protocol = r
                .protocols
                .iter()
                .find(|p| p.name.as_str() == name)
                .or(r.protocols.first())
                .map(|p| p.name.to_string())
                .unwrap_or_default();
            shared.groups.set_protocol(&group_id, &member_id, &protocol);
            resp.generation_id = i32::try_from(generation).unwrap_or(i32::MAX);
            resp.protocol_name = Some(s(protocol));
            resp.leader = s(crate::groups::LEADER);
            resp.member_id = s(member_id);
        }
        Ok(_) => resp.error_code = REBALANCE_IN_PROGRESS,
        Err(e) => resp.error_code = group_error_code(&e),
    }
    resp
}

fn sync_group(shared: &Shared, r: SyncGroupRequest) -> SyncGroupResponse {
    let mut resp = SyncGroupResponse::default();
    let group_id = r.group_id.0.to_string();
    let protocol = shared.groups.protocol(&group_id, &r.member_id);
    resp.protocol_type = Some(s("consumer"));
    resp.protocol_name = protocol.clone().map(s);
    let Ok(generation) = u32::try_from(r.generation_id) else {
        resp.error_code = ILLEGAL_GENERATION;
        return resp;
    };
    // The leader's assignments, if any client sends them, are not used:
    // the broker has assigned.
    // Waits for partitions other members have yet to release, but not
    // past a shutdown.
    let stopping = || shared.stopping.load(Ordering::Acquire);
    match shared.broker.group(&group_id).remote_sync_unless(&r.member_id, generation, MAX_SYNC_WAIT, &stopping) {
        Ok(partitions) => resp.assignment = crate::groups::encode_assignment(&partitions),
        Err(e) => {
            if matches!(e, Error::UnknownMember { .. }) {
                shared.groups.forget(&group_id, &r.member_id);
            }
            resp.error_code = group_error_code(&e);
        }
    }
    resp
}

fn leave_group(shared: &Shared, group_id: &str, member_id: &str, instance: &Option<String>) -> i16 {
    let group = shared.broker.group(group_id);
    let mut id = member_id.to_owned();
    if id.is_empty()
        && let Some(i) = instance
        && let Ok(desc) = group.describe()
    {
        id = desc
            .members
            .into_iter()
            .find(|m| m.group_instance_id.as_ref() == Some(i))
            .map(|m| m.member_id)
            .unwrap_or_default();
    }
    shared.groups.forget(group_id, &id);
    match group.remote_leave(&id) {
        Ok(()) => NONE,
        Err(e) => group_error_code(&e),
    }
}

/// Partition `index` of `topic`, if both exist (a wire index is an `i32`).
fn partition_of(
    topic: &streamlog::Result<streamlog::Topic>,
    index: i32,
) -> Option<std::sync::Arc<streamlog::Partition>> {
    let topic = topic.as_ref().ok()?;
    topic.partition(u32::try_from(index).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(producer_id: i64, first_seq: i32, last_seq: i32) -> SeqBatch<'static> {
        SeqBatch { producer_id, epoch: 0, topic: "t", partition: 0, first_seq, last_seq }
    }

    #[test]
    fn producer_state_expires_after_the_expiration_time() {
        let day = Duration::from_secs(86_400);
        let mut table = ProducerTable::new(day, 1000);
        let t0 = Instant::now();
        assert_eq!(table.check(&batch(7, 0, 4), t0), Ok(SeqCheck::Append));
        table.record(&batch(7, 0, 4), 100, t0);
        // Within the expiration: a retry is a duplicate, a gap is refused.
        let t1 = t0 + day / 2;
        assert_eq!(table.check(&batch(7, 0, 4), t1), Ok(SeqCheck::Duplicate(100)));
        assert_eq!(table.check(&batch(7, 9, 9), t1), Err(OUT_OF_ORDER_SEQUENCE_NUMBER));
        table.record(&batch(7, 5, 5), 105, t1);
        // Use keeps it alive: a day after the first batch, half a day after the last.
        let t2 = t0 + day;
        assert_eq!(table.check(&batch(7, 5, 5), t2), Ok(SeqCheck::Duplicate(105)));
        // A day after its last use it is forgotten: swept from the table, and
        // the producer may go on at any sequence (Kafka 2.5+).
        table.record(&batch(8, 0, 0), 200, t2);
        let t3 = t1 + day;
        assert_eq!(table.check(&batch(8, 0, 0), t3), Ok(SeqCheck::Duplicate(200)));
        assert_eq!(table.tracked(), 1, "producer 7 swept");
        assert_eq!(table.check(&batch(7, 6, 6), t3), Ok(SeqCheck::Append));
    }

    #[test]
    fn at_most_max_ids_are_tracked_and_the_least_recently_used_goes_first() {
        let mut table = ProducerTable::new(Duration::from_secs(86_400), 3);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        for id in 1..=3 {
            table.record(&batch(id, 0, 0), id * 10, at(id as u64));
        }
        table.record(&batch(1, 1, 1), 11, at(4)); // 1 used again: 2 is now the oldest.
        table.record(&batch(4, 0, 0), 40, at(5));
        assert_eq!(table.tracked(), 3);
        assert_eq!(table.check(&batch(2, 0, 0), at(6)), Ok(SeqCheck::Append), "2 evicted");
        assert_eq!(table.check(&batch(1, 1, 1), at(6)), Ok(SeqCheck::Duplicate(11)));
        assert_eq!(table.check(&batch(3, 0, 0), at(6)), Ok(SeqCheck::Duplicate(30)));
        assert_eq!(table.check(&batch(4, 0, 0), at(6)), Ok(SeqCheck::Duplicate(40)));
        // Many producers: the table stays at its cap.
        for id in 100..1100 {
            table.record(&batch(id, 0, 0), id, at(7 + id as u64));
        }
        assert_eq!(table.tracked(), 3);
    }

    fn shared() -> (tempfile::TempDir, Shared) {
        let dir = tempfile::tempdir().unwrap();
        let broker = streamlog::Broker::open(dir.path(), streamlog::BrokerOptions::default()).unwrap();
        broker.create_topic("t", TopicConfig::with_partitions(2)).unwrap();
        for p in 0..2 {
            broker.producer().send(streamlog::ProducerRecord::new("t", "x").partition(p)).unwrap();
        }
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 9092));
        (dir, Shared::new(Arc::new(broker), crate::ServerConfig::default(), addr))
    }

    /// An OffsetCommit outside any generation, of `(partition, metadata)`.
    fn simple_commit(group: &str, partitions: &[(i32, &str)]) -> OffsetCommitRequest {
        let mut r = OffsetCommitRequest::default();
        r.group_id = GroupId(s(group));
        r.generation_id_or_member_epoch = -1;
        let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
        t.name = TopicName(s("t"));
        t.partitions = partitions
            .iter()
            .map(|&(p, md)| {
                let mut rp = offset_commit_request::OffsetCommitRequestPartition::default();
                rp.partition_index = p;
                rp.committed_offset = 1;
                rp.committed_metadata = Some(s(md));
                rp
            })
            .collect();
        r.topics = vec![t];
        r
    }

    /// As Kafka: a partition whose metadata is too large is refused alone;
    /// the others of the request are committed.
    #[test]
    fn too_large_metadata_fails_only_its_partition() {
        let (_dir, shared) = shared();
        let big = "m".repeat(streamlog::MAX_OFFSET_METADATA_LEN + 1);
        let resp = offset_commit(&shared, simple_commit("g", &[(0, big.as_str()), (1, "ok")]));
        let codes: Vec<i16> = resp.topics[0].partitions.iter().map(|p| p.error_code).collect();
        assert_eq!(codes, [OFFSET_METADATA_TOO_LARGE, NONE]);
        let committed = shared.broker.group("g").committed_with_metadata().unwrap();
        assert_eq!(committed.get(&TopicPartition::new("t", 0)), None);
        assert_eq!(committed.get(&TopicPartition::new("t", 1)), Some(&OffsetAndMetadata::new(1, "ok")));
    }

    #[test]
    fn epochs_fence_and_restart_sequences() {
        let mut table = ProducerTable::new(Duration::from_secs(60), 10);
        let now = Instant::now();
        table.record(&SeqBatch { epoch: 1, ..batch(5, 0, 2) }, 0, now);
        assert_eq!(table.check(&SeqBatch { epoch: 0, ..batch(5, 3, 3) }, now), Err(INVALID_PRODUCER_EPOCH));
        assert_eq!(table.check(&SeqBatch { epoch: 2, ..batch(5, 3, 3) }, now), Err(OUT_OF_ORDER_SEQUENCE_NUMBER));
        assert_eq!(table.check(&SeqBatch { epoch: 2, ..batch(5, 0, 0) }, now), Ok(SeqCheck::Append));
        assert_eq!(table.check(&SeqBatch { epoch: 1, ..batch(5, 3, 3) }, now), Ok(SeqCheck::Append));
    }
}
