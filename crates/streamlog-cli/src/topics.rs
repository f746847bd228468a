//! `streamlog topics`.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use streamlog::{CleanupPolicy, Durability, TopicConfig};

use crate::cli::TopicsCmd;
use crate::output::stdout;
use crate::{Failure, Res, open_for_write, read_only, say};

pub fn run(data: &Path, cmd: TopicsCmd) -> Res {
    match cmd {
        TopicsCmd::Create { topic, partitions, config } => {
            let config = apply_settings(TopicConfig::with_partitions(partitions), &config)?;
            open_for_write(data)?.create_topic(topic.name(), config)?;
            say(format_args!("Created topic {}.", topic.name()))
        }
        TopicsCmd::List { internal } => {
            let mut out = stdout();
            for name in read_only(data)?.topics(internal)? {
                writeln!(out, "{name}")?;
            }
            Ok(out.flush()?)
        }
        TopicsCmd::Describe { mut topics, topic_flags } => {
            topics.extend(topic_flags);
            describe(data, topics)
        }
        TopicsCmd::Alter { topic, config } => {
            let broker = open_for_write(data)?;
            let current = broker.topic(topic.name())?.config();
            broker.alter_topic(topic.name(), apply_settings(current, &config)?)?;
            say(format_args!("Altered topic {}.", topic.name()))
        }
        TopicsCmd::Delete { topic } => {
            open_for_write(data)?.delete_topic(topic.name())?;
            say(format_args!("Deleted topic {}.", topic.name()))
        }
        TopicsCmd::AddPartitions { topic, partitions } => {
            open_for_write(data)?.add_partitions(topic.name(), partitions)?;
            say(format_args!("Topic {} now has {partitions} partitions.", topic.name()))
        }
    }
}

fn describe(data: &Path, topics: Vec<String>) -> Res {
    let dir = read_only(data)?;
    let topics = if topics.is_empty() { dir.topics(false)? } else { topics };
    let mut out = stdout();
    for topic in topics {
        let config = dir.topic_config(&topic)?;
        writeln!(out, "Topic: {topic}\tPartitionCount: {}\tConfigs: {}", config.partitions, settings(&config))?;
        for p in 0..config.partitions {
            let files = dir.partition(&topic, p)?;
            writeln!(
                out,
                "\tPartition: {p}\tLogStartOffset: {}\tLogEndOffset: {}\tSize: {}\tSegments: {}",
                files.log_start_offset(),
                files.log_end_offset()?,
                files.size_in_bytes(),
                files.segments().len()
            )?;
        }
    }
    Ok(out.flush()?)
}

/// A configuration in Kafka's names, as `kafka-topics --describe` prints it.
pub fn settings(c: &TopicConfig) -> String {
    let ms = |d: Duration| d.as_millis().to_string();
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-1".into());
    let durability = match c.durability {
        Durability::Os => "os".to_owned(),
        Durability::Sync => "sync".to_owned(),
        Durability::Interval(d) => format!("interval:{}", d.as_millis()),
    };
    let policy = match c.cleanup_policy {
        CleanupPolicy::Delete => "delete",
        CleanupPolicy::Compact => "compact",
        CleanupPolicy::CompactDelete => "compact,delete",
    };
    [
        format!("cleanup.policy={policy}"),
        format!("retention.ms={}", opt(c.retention.map(ms))),
        format!("retention.bytes={}", opt(c.retention_bytes.map(|b| b.to_string()))),
        format!("segment.bytes={}", c.segment_bytes),
        format!("segment.ms={}", ms(c.segment_age)),
        format!("index.interval.bytes={}", c.index_interval_bytes),
        format!("segment.index.bytes={}", c.max_index_bytes),
        format!("min.cleanable.dirty.ratio={}", c.min_cleanable_dirty_ratio),
        format!("min.compaction.lag.ms={}", ms(c.min_compaction_lag)),
        format!("delete.retention.ms={}", ms(c.delete_retention)),
        format!("durability={durability}"),
    ]
    .join(",")
}

/// Applies `NAME=VALUE` settings (Kafka's names) to `config`.
pub fn apply_settings(mut config: TopicConfig, settings: &[String]) -> Res<TopicConfig> {
    for s in settings {
        let (name, value) =
            s.split_once('=').ok_or_else(|| Failure::usage(format!("--config {s:?}: expected NAME=VALUE")))?;
        let bad = || Failure::usage(format!("--config {name}: bad value {value:?}"));
        let number = || value.trim().parse::<u64>().map_err(|_| bad());
        let limit = || match value.trim() {
            "-1" | "none" => Ok(None),
            v => v.parse::<u64>().map(Some).map_err(|_| bad()),
        };
        let millis = || number().map(Duration::from_millis);
        let small = || number().and_then(|n| u32::try_from(n).map_err(|_| bad()));
        match name.trim() {
            "retention.ms" => config.retention = limit()?.map(Duration::from_millis),
            "retention.bytes" => config.retention_bytes = limit()?,
            "segment.bytes" => config.segment_bytes = small()?,
            "segment.ms" => config.segment_age = millis()?,
            "index.interval.bytes" => config.index_interval_bytes = small()?,
            "segment.index.bytes" => config.max_index_bytes = small()?,
            "min.compaction.lag.ms" => config.min_compaction_lag = millis()?,
            "delete.retention.ms" => config.delete_retention = millis()?,
            "min.cleanable.dirty.ratio" => {
                config.min_cleanable_dirty_ratio = value.trim().parse().map_err(|_| bad())?
            }
            "cleanup.policy" => {
                config.cleanup_policy = match value.trim() {
                    "delete" => CleanupPolicy::Delete,
                    "compact" => CleanupPolicy::Compact,
                    "compact,delete" | "delete,compact" => CleanupPolicy::CompactDelete,
                    _ => return Err(bad()),
                }
            }
            "durability" => {
                config.durability = match value.trim() {
                    "os" => Durability::Os,
                    "sync" => Durability::Sync,
                    v => match v.strip_prefix("interval:").and_then(|ms| ms.parse().ok()) {
                        Some(ms) => Durability::Interval(Duration::from_millis(ms)),
                        None => return Err(bad()),
                    },
                }
            }
            other => return Err(Failure::usage(format!("--config: unknown setting {other:?}"))),
        }
    }
    Ok(config)
}
