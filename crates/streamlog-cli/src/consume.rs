//! `streamlog consume`: records of a topic to stdout.
//!
//! Without `--group` the directory is read with `pread` and no lock, so a
//! running service may hold it; with `--group` it is opened as a broker and
//! the group's offsets are committed as records are printed.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use streamlog::inspect::PartitionFiles;
use streamlog::{ConsumerConfig, Error, OffsetReset, TopicPartition};

use crate::cli::ConsumeArgs;
use crate::output::{Printable, Printer, stdout};
use crate::{Failure, Res, open_for_write, read_only};

/// How long an idle follow loop sleeps between looks at the files.
const IDLE_SLEEP: Duration = Duration::from_millis(50);
/// Bytes asked of one partition per read.
const READ_BYTES: usize = 1 << 20;

pub fn run(data: &Path, args: ConsumeArgs) -> Res {
    let printer = Printer::new(args.output, args.format.as_deref(), args.print_key)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    // Ctrl-C ends the loop between records, so output is flushed and a
    // group's offsets committed. If a handler is already set, keep it.
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::Release));
    let limits = Limits::new(&args);
    if args.group.is_some() {
        with_group(data, &args, &printer, &stop, limits)
    } else {
        read_only_loop(data, &args, &printer, &stop, limits)
    }
}

/// When to stop: a record count, an idle timeout, Ctrl-C.
#[derive(Clone, Copy)]
struct Limits {
    max_messages: Option<u64>,
    idle: Option<Duration>,
}

impl Limits {
    fn new(args: &ConsumeArgs) -> Limits {
        Limits { max_messages: args.max_messages, idle: args.timeout_ms.map(Duration::from_millis) }
    }
}

fn read_only_loop(data: &Path, args: &ConsumeArgs, printer: &Printer, stop: &AtomicBool, limits: Limits) -> Res {
    let dir = read_only(data)?;
    let config = dir.topic_config(args.topic.name())?;
    let partitions: Vec<u32> = match args.partition {
        Some(p) if p >= config.partitions => {
            return Err(Error::UnknownPartition {
                topic: args.topic.name().to_owned(),
                partition: p,
                count: config.partitions,
            }
            .into());
        }
        Some(p) => vec![p],
        None => (0..config.partitions).collect(),
    };
    let mut cursors = Vec::new();
    for p in partitions {
        let files = dir.partition(args.topic.name(), p)?;
        let position = start_position(&files, args)?;
        cursors.push(Cursor { partition: p, files, position, stale: false, retries: 0 });
    }
    let mut out = stdout();
    let mut printed = 0u64;
    let mut last_record = Instant::now();
    loop {
        let mut any = false;
        for c in &mut cursors {
            if c.stale {
                c.files.refresh()?;
                c.stale = false;
            }
            let batches = match c.files.read(c.position, READ_BYTES) {
                Ok(b) => b,
                Err(Error::OffsetOutOfRange { start, .. }) => {
                    eprintln!(
                        "streamlog: partition {}: offset {} was deleted; going on from {start}",
                        c.partition, c.position
                    );
                    c.position = start;
                    c.retries = 0;
                    continue;
                }
                // A segment the owner replaced or deleted under the read:
                // list the files again (up to ten times in a row; then it is an error).
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound && c.retries < 10 => {
                    c.retries += 1;
                    c.stale = true;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            c.retries = 0;
            if batches.is_empty() {
                c.stale = true;
            }
            for batch in batches {
                for r in batch.try_records()? {
                    let shown = Printable {
                        topic: args.topic.name(),
                        partition: c.partition,
                        offset: r.offset,
                        timestamp: r.timestamp,
                        key: r.key.as_deref(),
                        value: r.value.as_deref(),
                        headers: &r.headers,
                    };
                    printer.print(&mut out, &shown)?;
                    printed += 1;
                    any = true;
                    if limits.max_messages.is_some_and(|m| printed >= m) {
                        return Ok(out.flush()?);
                    }
                }
                c.position = batch.next_offset();
                if stop.load(Ordering::Acquire) {
                    return Ok(out.flush()?);
                }
            }
        }
        if any {
            last_record = Instant::now();
            continue;
        }
        out.flush()?;
        if stop.load(Ordering::Acquire) || limits.idle.is_some_and(|t| last_record.elapsed() >= t) {
            return Ok(());
        }
        std::thread::sleep(IDLE_SLEEP);
    }
}

struct Cursor {
    partition: u32,
    files: PartitionFiles,
    position: u64,
    /// List the segments again before the next read.
    stale: bool,
    /// Reads in a row that found a listed segment gone.
    retries: u32,
}

fn start_position(files: &PartitionFiles, args: &ConsumeArgs) -> Res<u64> {
    if args.from_beginning {
        return Ok(files.log_start_offset());
    }
    if let Some(ts) = args.from_time {
        return Ok(match files.offset_for_timestamp(ts)? {
            Some(o) => o,
            None => files.log_end_offset()?,
        });
    }
    match args.offset.as_deref() {
        None | Some("latest") => Ok(files.log_end_offset()?),
        Some("earliest") => Ok(files.log_start_offset()),
        Some(n) => {
            if args.partition.is_none() {
                return Err(Failure::usage("--offset N needs --partition"));
            }
            let n: u64 =
                n.parse().map_err(|_| Failure::usage(format!("--offset {n:?}: a number, earliest or latest")))?;
            let (start, end) = (files.log_start_offset(), files.log_end_offset()?);
            if n < start || n > end {
                return Err(Error::OffsetOutOfRange { requested: n, start, end }.into());
            }
            Ok(n)
        }
    }
}

fn with_group(data: &Path, args: &ConsumeArgs, printer: &Printer, stop: &AtomicBool, limits: Limits) -> Res {
    let group = args.group.clone().expect("checked by the caller");
    if args.offset.is_some() || args.from_time.is_some() {
        return Err(Failure::usage(
            "--offset and --from-time do not combine with --group: the group's committed offsets decide \
             (move them with `groups reset-offsets`)",
        ));
    }
    let broker = open_for_write(data)?;
    broker.topic(args.topic.name())?;
    let reset = if args.from_beginning { OffsetReset::Earliest } else { OffsetReset::Latest };
    let config = ConsumerConfig::with_group(group).auto_offset_reset(reset).enable_auto_commit(false);
    let mut consumer = broker.consumer(config)?;
    match args.partition {
        Some(p) => consumer.assign(&[TopicPartition::new(args.topic.name().to_owned(), p)])?,
        None => consumer.subscribe(&[args.topic.name()])?,
    }
    let mut out = stdout();
    let mut printed = 0u64;
    let mut last_record = Instant::now();
    let result = (|| -> Res {
        loop {
            let records = consumer.poll(Duration::from_millis(100))?;
            if records.is_empty() {
                out.flush()?;
                if stop.load(Ordering::Acquire) || limits.idle.is_some_and(|t| last_record.elapsed() >= t) {
                    return Ok(());
                }
                continue;
            }
            last_record = Instant::now();
            let mut done = Vec::new();
            for r in &records {
                let shown = Printable {
                    topic: &r.topic,
                    partition: r.partition,
                    offset: r.offset,
                    timestamp: r.timestamp,
                    key: r.key.as_deref(),
                    value: r.value.as_deref(),
                    headers: &r.headers,
                };
                printer.print(&mut out, &shown)?;
                printed += 1;
                done.push((TopicPartition::new(r.topic.to_string(), r.partition), r.offset + 1));
                if limits.max_messages.is_some_and(|m| printed >= m) {
                    break;
                }
            }
            out.flush()?;
            // Commit what was printed (the latest offset per partition).
            done.sort();
            done.dedup_by(|later, earlier| {
                let same = later.0 == earlier.0;
                if same {
                    earlier.1 = earlier.1.max(later.1);
                }
                same
            });
            consumer.commit_offsets(&done)?;
            if limits.max_messages.is_some_and(|m| printed >= m) || stop.load(Ordering::Acquire) {
                return Ok(());
            }
        }
    })();
    consumer.close()?;
    broker.close()?;
    result
}
