//! The command line: commands and options, with Kafka's option names where
//! Kafka's tools have them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  export STREAMLOG_DATA=./data
  streamlog topics create orders --partitions 6
  printf 'k1:created\\nk2:paid\\n' | streamlog produce orders --key-separator :
  streamlog consume orders --from-beginning --max-messages 2 -f '%p:%o %k=%s\\n'
  streamlog groups describe billing
  streamlog verify";

#[derive(Debug, Parser)]
#[command(name = "streamlog", version, about = "Kafka's console tools for a streamlog data directory", after_help = EXAMPLES)]
pub struct Cli {
    /// The data directory (default: $STREAMLOG_DATA).
    #[arg(long, env = "STREAMLOG_DATA", global = true, value_name = "DIR")]
    pub data: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, describe, alter and delete topics (kafka-topics).
    #[command(subcommand)]
    Topics(TopicsCmd),
    /// Append lines from stdin to a topic (kafka-console-producer).
    #[command(after_help = "Examples:\n  echo hello | streamlog produce orders\n  \
        printf 'k1\\tv1\\n' | streamlog produce orders --key-separator '\\t'\n  \
        echo '{\"key\":\"k1\",\"value\":\"v1\",\"headers\":{\"h\":\"x\"},\"partition\":0}' | streamlog produce orders --json")]
    Produce(ProduceArgs),
    /// Print records of a topic (kafka-console-consumer, kcat -C).
    #[command(after_help = "Examples:\n  streamlog consume orders --from-beginning --max-messages 10\n  \
        streamlog consume orders --group billing --from-beginning\n  \
        streamlog consume orders --partition 0 --offset 42 --output json\n  \
        streamlog consume orders --from-beginning -f 'topic=%t p=%p o=%o ts=%T key=%k value=%s headers=%h\\n'\n\n\
        Format (-f): %t topic, %p partition, %o offset, %T timestamp (ms), %k key, %s value, %h headers,\n  \
        %K key length, %S value length, %% a percent sign; \\n \\t \\\\ escapes.")]
    Consume(ConsumeArgs),
    /// List, describe, reset and delete consumer groups (kafka-consumer-groups).
    #[command(subcommand)]
    Groups(GroupsCmd),
    /// Print every batch of a segment file or a partition directory (kafka-dump-log).
    #[command(after_help = "Examples:\n  streamlog dump-log data/topics/orders/0\n  \
        streamlog dump-log data/topics/orders/0/00000000000000000000.log --print-records")]
    DumpLog(DumpLogArgs),
    /// Check every segment's checksums, records, offsets and indexes, the segment chain and the topics'
    /// metadata (what opening the directory checks); exit status 0 only when clean.
    #[command(after_help = "Examples:\n  streamlog verify --data ./data\n  streamlog verify ./data")]
    Verify(VerifyArgs),
    /// Measure produce or consume throughput and latency (kafka-producer-perf-test).
    #[command(subcommand)]
    Perf(PerfCmd),
}

impl Command {
    /// Whether the command reads and prints, and does nothing else, so that
    /// it may stop once no one reads its output.
    pub fn only_prints(&self) -> bool {
        matches!(
            self,
            Command::Topics(TopicsCmd::List { .. } | TopicsCmd::Describe { .. })
                | Command::Consume(_)
                | Command::Groups(GroupsCmd::List | GroupsCmd::Describe { .. })
                | Command::DumpLog(_)
        )
    }
}

/// A topic, as a positional argument or as Kafka's `--topic T`.
#[derive(Debug, Args)]
pub struct TopicArg {
    /// The topic.
    #[arg(value_name = "TOPIC", required_unless_present = "topic_flag")]
    topic: Option<String>,
    /// The topic (Kafka's spelling of the argument above).
    #[arg(long = "topic", value_name = "TOPIC", conflicts_with = "topic")]
    topic_flag: Option<String>,
}

impl TopicArg {
    pub fn name(&self) -> &str {
        self.topic.as_deref().or(self.topic_flag.as_deref()).expect("clap requires one of the two")
    }
}

/// A group, as a positional argument or as Kafka's `--group G`.
#[derive(Debug, Args)]
pub struct GroupArg {
    /// The consumer group.
    #[arg(value_name = "GROUP", required_unless_present = "group_flag")]
    group: Option<String>,
    /// The consumer group (Kafka's spelling of the argument above).
    #[arg(long = "group", value_name = "GROUP", conflicts_with = "group")]
    group_flag: Option<String>,
}

impl GroupArg {
    pub fn name(&self) -> &str {
        self.group.as_deref().or(self.group_flag.as_deref()).expect("clap requires one of the two")
    }
}

#[derive(Debug, Subcommand)]
#[command(after_help = "Examples:\n  streamlog topics create orders --partitions 6 --config retention.ms=86400000\n  \
    streamlog topics list\n  streamlog topics describe orders\n  \
    streamlog topics alter orders --config cleanup.policy=compact\n  \
    streamlog topics add-partitions orders --partitions 12\n  streamlog topics delete orders\n\n\
    Config names (Kafka's): retention.ms, retention.bytes, segment.bytes, segment.ms, cleanup.policy,\n  \
    min.cleanable.dirty.ratio, min.compaction.lag.ms, delete.retention.ms, index.interval.bytes,\n  \
    segment.index.bytes, and streamlog's durability (os, sync or interval:<ms>). -1 or none: no limit.")]
pub enum TopicsCmd {
    /// Create a topic.
    Create {
        #[command(flatten)]
        topic: TopicArg,
        /// Number of partitions.
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// A setting as NAME=VALUE (repeatable).
        #[arg(long = "config", value_name = "NAME=VALUE")]
        config: Vec<String>,
    },
    /// List topics.
    List {
        /// Include the internal __consumer_offsets topic.
        #[arg(long)]
        internal: bool,
    },
    /// Partitions, log start and end, size, segments and configuration.
    Describe {
        /// Topics to describe (default: all).
        topics: Vec<String>,
        /// A topic to describe (Kafka's spelling; repeatable).
        #[arg(long = "topic", value_name = "TOPIC")]
        topic_flags: Vec<String>,
    },
    /// Change settings of a topic.
    Alter {
        #[command(flatten)]
        topic: TopicArg,
        /// A setting as NAME=VALUE (repeatable).
        #[arg(long = "config", value_name = "NAME=VALUE", required = true)]
        config: Vec<String>,
    },
    /// Delete a topic and its data.
    Delete {
        #[command(flatten)]
        topic: TopicArg,
    },
    /// Raise a topic's partition count.
    AddPartitions {
        #[command(flatten)]
        topic: TopicArg,
        /// The new partition count.
        #[arg(long)]
        partitions: u32,
    },
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub topic: TopicArg,
    /// Split each line into key and value at the first SEP (Kafka's parse.key with key.separator).
    #[arg(long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// Each line is a JSON object: {"key", "value", "headers": {name: value}, "partition", "timestamp"}.
    #[arg(long, conflicts_with = "key_separator")]
    pub json: bool,
    /// Send every record to this partition.
    #[arg(long)]
    pub partition: Option<u32>,
    /// Print topic, partition and offset of every record appended.
    #[arg(long, short)]
    pub verbose: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputKind {
    /// The value (and the key with --print-key), one line per record.
    Text,
    /// One JSON object per record.
    Json,
    /// Key and value in hex.
    Hex,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub topic: TopicArg,
    /// Start at the log start (default: the end, as Kafka's console consumer).
    #[arg(long, conflicts_with_all = ["offset", "from_time"])]
    pub from_beginning: bool,
    /// Start at this offset (with --partition), or earliest / latest.
    #[arg(long, conflicts_with = "from_time")]
    pub offset: Option<String>,
    /// Start at the first record with a timestamp at or after this many ms since the epoch.
    #[arg(long, value_name = "MS")]
    pub from_time: Option<i64>,
    /// Read only this partition.
    #[arg(long)]
    pub partition: Option<u32>,
    /// Read as a member of this consumer group, committing what was printed (opens the directory for writing).
    #[arg(long)]
    pub group: Option<String>,
    /// Exit after this many records.
    #[arg(long)]
    pub max_messages: Option<u64>,
    /// Exit once no record arrived for this long (default: follow until Ctrl-C).
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// Output kind.
    #[arg(long, value_enum, default_value_t = OutputKind::Text)]
    pub output: OutputKind,
    /// A kcat-style format string (overrides --output).
    #[arg(short = 'f', long = "format")]
    pub format: Option<String>,
    /// With text output, print the key and a tab before the value.
    #[arg(long)]
    pub print_key: bool,
}

#[derive(Debug, Subcommand)]
#[command(after_help = "Examples:\n  streamlog groups list\n  streamlog groups describe billing\n  \
    streamlog groups reset-offsets billing --topic orders --to-earliest            # a dry run\n  \
    streamlog groups reset-offsets billing --topic orders --shift-by -10 --execute\n  \
    streamlog groups delete billing")]
pub enum GroupsCmd {
    /// Groups with committed offsets.
    List,
    /// Committed offsets, log end offsets and lag of a group.
    Describe {
        #[command(flatten)]
        group: GroupArg,
    },
    /// Move a group's committed offsets (a dry run unless --execute).
    ResetOffsets(ResetArgs),
    /// Delete a group's committed offsets.
    Delete {
        #[command(flatten)]
        group: GroupArg,
    },
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub group: GroupArg,
    /// The topic whose offsets move (default: every topic the group committed).
    #[arg(long)]
    pub topic: Option<String>,
    /// Only this partition.
    #[arg(long, requires = "topic")]
    pub partition: Option<u32>,
    #[arg(long, group = "to")]
    pub to_earliest: bool,
    #[arg(long, group = "to")]
    pub to_latest: bool,
    #[arg(long, group = "to", value_name = "OFFSET")]
    pub to_offset: Option<u64>,
    /// Move by N (negative: back), clamped to the log.
    #[arg(long, group = "to", value_name = "N", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// The first offset at or after this time (ms since the epoch).
    #[arg(long, group = "to", value_name = "MS")]
    pub to_datetime: Option<i64>,
    /// Only print the new offsets (the default).
    #[arg(long, conflicts_with = "execute")]
    pub dry_run: bool,
    /// Commit the new offsets.
    #[arg(long)]
    pub execute: bool,
}

#[derive(Debug, Args)]
pub struct DumpLogArgs {
    /// A segment file (.log) or a partition directory.
    pub path: PathBuf,
    /// Print every record too.
    #[arg(long)]
    pub print_records: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The data directory (default: --data).
    pub dir: Option<PathBuf>,
    /// Print only problems.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum PerfCmd {
    /// Append records and report throughput and latency.
    Produce(PerfArgs),
    /// Append records, then read them back, and report throughput.
    Consume(PerfArgs),
}

#[derive(Debug, Args)]
pub struct PerfArgs {
    /// Records to send.
    #[arg(long, default_value_t = 1_000_000)]
    pub num_records: u64,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Partitions of the topic the run creates.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Records per send (1: one send per record).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Run in this directory (default: a temporary one, removed afterwards;
    /// never --data, so a run does not fill a real data directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}
