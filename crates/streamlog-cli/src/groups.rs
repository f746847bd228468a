//! `streamlog groups`: committed offsets and lag, reset, delete.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use streamlog::{ConsumerConfig, TopicPartition};

use crate::cli::{GroupsCmd, ResetArgs};
use crate::output::{Report, stdout};
use crate::{Failure, Res, open_for_write, read_only, say};

pub fn run(data: &Path, cmd: GroupsCmd) -> Res {
    match cmd {
        GroupsCmd::List => {
            let mut out = stdout();
            for group in read_only(data)?.committed_offsets()?.keys() {
                writeln!(out, "{group}")?;
            }
            Ok(out.flush()?)
        }
        GroupsCmd::Describe { group } => describe(data, group.name()),
        GroupsCmd::ResetOffsets(args) => reset(data, args),
        GroupsCmd::Delete { group } => {
            open_for_write(data)?.delete_group(group.name())?;
            say(format_args!("Deleted group {}.", group.name()))
        }
    }
}

fn describe(data: &Path, group: &str) -> Res {
    let dir = read_only(data)?;
    let committed = dir.committed_offsets()?.remove(group).unwrap_or_default();
    let mut out = stdout();
    match dir.holder() {
        // Members live in the process that holds the directory.
        Some(pid) => writeln!(out, "Group {group}: members are in process {pid}, which holds the directory")?,
        None => writeln!(out, "Group {group}: no active members (the directory is not held)")?,
    }
    if committed.is_empty() {
        writeln!(out, "No committed offsets.")?;
        return Ok(out.flush()?);
    }
    writeln!(
        out,
        "{:<24} {:>9} {:>16} {:>16} {:>10}",
        "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"
    )?;
    for (tp, offset) in committed {
        let end = match dir.partition(&tp.topic, tp.partition) {
            Ok(p) => Some(p.log_end_offset()?),
            Err(streamlog::Error::UnknownTopic { .. } | streamlog::Error::UnknownPartition { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let show = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        writeln!(
            out,
            "{:<24} {:>9} {:>16} {:>16} {:>10}",
            tp.topic,
            tp.partition,
            offset,
            show(end),
            show(end.map(|e| e.saturating_sub(offset)))
        )?;
    }
    Ok(out.flush()?)
}

fn reset(data: &Path, args: ResetArgs) -> Res {
    let to_count = [args.to_earliest, args.to_latest, args.to_offset.is_some(), args.shift_by.is_some()]
        .into_iter()
        .filter(|&b| b)
        .count()
        + usize::from(args.to_datetime.is_some());
    if to_count != 1 {
        return Err(Failure::usage(
            "say where to: one of --to-earliest, --to-latest, --to-offset, --shift-by, --to-datetime",
        ));
    }
    // Plan from the files (works while the directory is held), then write.
    let dir = read_only(data)?;
    let committed = dir.committed_offsets()?.remove(args.group.name()).unwrap_or_default();
    let targets: Vec<TopicPartition> = match &args.topic {
        Some(topic) => {
            let count = dir.topic_config(topic)?.partitions;
            (0..count)
                .filter(|p| args.partition.is_none_or(|only| only == *p))
                .map(|p| TopicPartition::new(topic.clone(), p))
                .collect()
        }
        None => committed.keys().cloned().collect(),
    };
    if targets.is_empty() {
        return Err(Failure::new(format!("group {:?} has no committed offsets; name a --topic", args.group.name())));
    }
    let mut plan = BTreeMap::new();
    for tp in targets {
        let files = dir.partition(&tp.topic, tp.partition)?;
        let (start, end) = (files.log_start_offset(), files.log_end_offset()?);
        let current = committed.get(&tp).copied();
        let new = if args.to_earliest {
            start
        } else if args.to_latest {
            end
        } else if let Some(o) = args.to_offset {
            o
        } else if let Some(n) = args.shift_by {
            current.unwrap_or(start).saturating_add_signed(n)
        } else {
            let ts = args.to_datetime.expect("one target is set");
            files.offset_for_timestamp(ts)?.unwrap_or(end)
        };
        plan.insert(tp, (current, new.clamp(start, end)));
    }
    // With --execute the plan is a report: the commit goes on unread.
    let mut out = Report::new();
    writeln!(out, "{:<24} {:>9} {:>16} {:>16}", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET")?;
    for (tp, (current, new)) in &plan {
        let current = current.map_or_else(|| "-".to_owned(), |c| c.to_string());
        writeln!(out, "{:<24} {:>9} {:>16} {:>16}", tp.topic, tp.partition, current, new)?;
    }
    if !args.execute {
        writeln!(out, "(dry run: nothing changed; add --execute to commit these offsets)")?;
        return Ok(out.flush()?);
    }
    out.flush()?;
    let broker = open_for_write(data)?;
    let mut consumer =
        broker.consumer(ConsumerConfig::with_group(args.group.name().to_owned()).enable_auto_commit(false))?;
    let offsets: Vec<(TopicPartition, u64)> = plan.into_iter().map(|(tp, (_, new))| (tp, new)).collect();
    let tps: Vec<TopicPartition> = offsets.iter().map(|(tp, _)| tp.clone()).collect();
    consumer.assign(&tps)?;
    consumer.commit_offsets(&offsets)?;
    consumer.close()?;
    broker.close()?;
    say(format_args!("Committed new offsets for group {}.", args.group.name()))
}
