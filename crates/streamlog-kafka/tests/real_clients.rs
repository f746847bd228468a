//! Unmodified Kafka clients against the front: kcat, kafka-python,
//! confluent-kafka (librdkafka). Installed by scripts/install-test-clients.sh;
//! a test whose client is missing prints why and passes as skipped.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

macro_rules! need {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(why) => {
                eprintln!("SKIPPED: {why}");
                return;
            }
        }
    };
}

#[test]
fn kcat_metadata_produce_and_consume_with_a_format_string() {
    let kcat = need!(kcat());
    let env = start();
    let b = env.bootstrap();
    let meta = run(Command::new(kcat).args(["-b", &b, "-L", "-t", "auto"]), Duration::from_secs(20));
    assert!(meta.contains("topic \"auto\" with 4 partitions"), "{meta}");
    let mut child = Command::new(kcat)
        .args(["-b", &b, "-P", "-t", "auto", "-p", "1", "-K:"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"plain\nk1:v1\n").unwrap();
    assert!(child.wait().unwrap().success());
    let out = run(
        Command::new(kcat).args([
            "-b",
            &b,
            "-C",
            "-t",
            "auto",
            "-p",
            "1",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%t:%p:%o: key=%k value=%s\n",
        ]),
        Duration::from_secs(20),
    );
    assert_eq!(out, "auto:1:0: key= value=plain\nauto:1:1: key=k1 value=v1\n");
}

#[test]
fn kafka_python_seed_producer_and_consumer() {
    let py = need!(python());
    if !has_module(&py, "kafka") {
        eprintln!("SKIPPED: kafka-python not installed");
        return;
    }
    let env = start();
    let b = env.bootstrap();
    let out = run(Command::new(&py).arg(client_script("kp_producer.py")).args([&b, "seed"]), Duration::from_secs(30));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for l in &lines {
        let f: Vec<&str> = l.split(' ').collect();
        assert!(f[0] == "seed" && (f[2] == "0" || f[2] == "1"), "{out}");
    }
    // The keyed record lands where Kafka's murmur2 puts it.
    assert!(lines[1].starts_with(&format!("seed {} ", streamlog::murmur2_partition(b"key1", 4))), "{out}");
    let out = run(
        Command::new(&py).arg(client_script("kp_consumer.py")).args([&b, "seed", "2", "kp-group"]),
        Duration::from_secs(30),
    );
    assert!(out.contains(": key=None value=raw bytes"), "{out}");
    assert!(out.contains(": key=key1 value=keyed value"), "{out}");
    // The group's commit reached the broker's offset store.
    let desc = env.broker.describe_group("kp-group").unwrap();
    assert_eq!(desc.partitions.iter().filter_map(|p| p.committed).sum::<u64>(), 2);
}

#[test]
fn confluent_kafka_idempotent_produce_seek_offsets_for_times_watermarks_commit() {
    let py = need!(python());
    if !has_module(&py, "confluent_kafka") {
        eprintln!("SKIPPED: confluent-kafka not installed");
        return;
    }
    let env = start();
    let b = env.bootstrap();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("ck-{codec}");
        let out = run(
            Command::new(&py).arg(client_script("ck_client.py")).args([&b, &topic, codec]),
            Duration::from_secs(40),
        );
        let expect = [
            "delivered 11 (0, 0) (0, 10)",
            "watermarks 0 11",
            "offset_for_time 4",
            "from5 [5, 6, 7, 8, 9, 10]",
            "headers [('h', b'x5')] value_none True ts 5000",
            "after_seek 2 b'k2' b'v2'",
            "committed 7 meta-data",
        ];
        assert_eq!(out.lines().collect::<Vec<_>>(), expect, "codec {codec}");
    }
}

#[test]
fn confluent_kafka_group_of_three_rebalances_when_one_leaves() {
    let py = need!(python());
    if !has_module(&py, "confluent_kafka") {
        eprintln!("SKIPPED: confluent-kafka not installed");
        return;
    }
    let env = start();
    env.broker.create_topic("members", streamlog::TopicConfig::with_partitions(4)).unwrap();
    let b = env.bootstrap();
    let spawn = |name: &str, secs: &str| {
        Command::new(&py)
            .arg(client_script("ck_group.py"))
            .args([&b, "members", name, secs])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, bb, c) = (spawn("a", "9"), spawn("b", "9"), spawn("c", "4"));
    let outs: Vec<String> =
        [a, bb, c].into_iter().map(|ch| String::from_utf8(ch.wait_with_output().unwrap().stdout).unwrap()).collect();
    let assignments = |out: &str| -> Vec<Vec<u32>> {
        out.lines()
            .filter(|l| l.contains("assigned"))
            .map(|l| {
                let list = &l[l.find('[').unwrap() + 1..l.find(']').unwrap()];
                list.split(", ").filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect()
            })
            .collect()
    };
    // After c left, a and b together owned the four partitions, once each
    // (and later one of them all four, when the other closed first).
    let split = assignments(&outs[0]).iter().any(|x| {
        assignments(&outs[1]).iter().any(|y| {
            let mut all: Vec<u32> = x.iter().chain(y).copied().collect();
            all.sort();
            !x.is_empty() && !y.is_empty() && all == vec![0, 1, 2, 3]
        })
    });
    assert!(split, "{outs:?}");
    // c had partitions while it was a member (three members at once).
    assert!(outs[2].contains("assigned ["), "{outs:?}");
}

#[test]
fn confluent_kafka_admin_create_describe_configs_partitions_delete_records_groups_delete_topics() {
    let py = need!(python());
    if !has_module(&py, "confluent_kafka") {
        eprintln!("SKIPPED: confluent-kafka not installed");
        return;
    }
    let env = start();
    let out = run(
        Command::new(&py).arg(client_script("ck_admin.py")).args([&env.bootstrap(), "adm"]),
        Duration::from_secs(60),
    );
    let expect = [
        "created adm-topic",
        "create again: TOPIC_ALREADY_EXISTS",
        "config retention.ms 3600000 cleanup.policy delete",
        "partitions 5",
        "shrink: INVALID_PARTITIONS",
        "deleted before 4",
        "watermarks 4 10",
        "first offset after delete 4 0",
        "listed True",
        "described adm-group STABLE 1 [0, 1, 2, 3, 4]",
        "exists after delete False",
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), expect);
    // What the client saw is what the broker holds.
    assert!(env.broker.topic("adm-topic").is_err());
}

#[test]
fn kafka_python_seed_pair_with_msgpack_serializers() {
    let py = need!(python());
    if !has_module(&py, "kafka") || !has_module(&py, "msgpack") {
        eprintln!("SKIPPED: kafka-python or msgpack not installed");
        return;
    }
    let env = start();
    let out = run(
        Command::new(&py).args(["-W", "ignore"]).arg(client_script("kp_msgpack.py")).args([&env.bootstrap(), "mp"]),
        Duration::from_secs(40),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    // The keyed record lands where Kafka's murmur2 puts its serialized key
    // (msgpack of "user-7": fixstr 0xa6, then the bytes).
    let key = [&[0xa6u8][..], b"user-7"].concat();
    let p = streamlog::murmur2_partition(&key, 4);
    assert!(lines[1].starts_with(&format!("mp {p} ")), "{out}");
    assert!(lines[2].ends_with(": key=None value={'event': 'created', 'id': 1, 'tags': ['a', 'b']}"), "{out}");
    assert_eq!(
        lines[3],
        format!("mp:{p}:{}: key=user-7 value={{'event': 'updated', 'id': 7, 'score': 1.5}}", {
            lines[1].rsplit(' ').next().unwrap()
        })
    );
    // The broker holds the msgpack bytes as they were sent (kafka-python
    // passes the None key through the serializer too: msgpack nil, 0xc0).
    let log = env.broker.topic("mp").unwrap().partition(p).unwrap();
    let batches = log.read(0, 1 << 20).unwrap();
    let rec = batches
        .iter()
        .flat_map(|b| b.records())
        .map(|r| r.unwrap())
        .find(|r| r.key.as_deref() == Some(&key[..]))
        .expect("the keyed record, key bytes intact");
    assert_eq!(rec.value.as_deref().unwrap()[0], 0x83, "a msgpack fixmap of three entries");
}

#[test]
fn kafka_python_json_producer_and_group_consumer_from_earliest() {
    let py = need!(python());
    if !has_module(&py, "kafka") {
        eprintln!("SKIPPED: kafka-python not installed");
        return;
    }
    let env = start();
    let out = run(
        Command::new(&py).args(["-W", "ignore"]).arg(client_script("kp_json_group.py")).args([
            &env.bootstrap(),
            "js",
            "json-group",
            "12",
        ]),
        Duration::from_secs(40),
    );
    assert_eq!(out.trim(), "consumed [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]");
    // The values are JSON text on the broker, and the group's commit covers them all.
    let topic = env.broker.topic("js").unwrap();
    let mut values = Vec::new();
    for p in 0..topic.partition_count() {
        for b in topic.partition(p).unwrap().read(0, 1 << 20).unwrap() {
            values.extend(b.records().map(|r| String::from_utf8(r.unwrap().value.unwrap().to_vec()).unwrap()));
        }
    }
    assert_eq!(values.len(), 12);
    assert!(values.contains(&r#"{"n": 3, "text": "record 3"}"#.to_string()), "{values:?}");
    let desc = env.broker.describe_group("json-group").unwrap();
    assert_eq!(desc.partitions.iter().filter_map(|p| p.committed).sum::<u64>(), 12);
}
