//! `streamlog dump-log` and `streamlog verify`: every batch of the files,
//! read with `pread` (never mapped), so a running owner may change them.

use std::io::{IsTerminal, Write};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use streamlog::inspect::{PartitionFiles, SegmentFile};
use streamlog::{OFFSETS_TOPIC, TopicConfig};

use crate::cli::DumpLogArgs;
use crate::output::{Report, hex, stdout};
use crate::{Failure, Res, read_only};

/// A byte-count progress bar on stderr when it is a terminal; hidden
/// otherwise (pipes and tests see no control characters).
fn progress(total: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

pub fn dump(args: DumpLogArgs) -> Res {
    let segments: Vec<SegmentFile> = if args.path.is_dir() {
        // The topic's index settings do not matter for listing segments.
        PartitionFiles::open(&args.path, &TopicConfig::default())?.segments().to_vec()
    } else {
        vec![SegmentFile::open(&args.path)?]
    };
    let bar = progress(segments.iter().map(SegmentFile::len).sum(), "dump-log");
    let mut out = stdout();
    let mut damaged = false;
    let mut done = 0;
    for seg in &segments {
        writeln!(out, "Dumping {}", seg.path().display())?;
        writeln!(out, "Starting offset: {}", seg.base_offset())?;
        for entry in seg.batches()? {
            let entry = entry?;
            bar.set_position(done + entry.position);
            match &entry.header {
                Some(h) => write!(
                    out,
                    "baseOffset: {} lastOffset: {} count: {} position: {} size: {} firstTimestamp: {} maxTimestamp: {} crc: {:#010x}",
                    h.base_offset,
                    h.last_offset,
                    h.record_count,
                    entry.position,
                    h.size,
                    h.first_timestamp,
                    h.max_timestamp,
                    h.crc
                )?,
                None => write!(out, "position: {}", entry.position)?,
            }
            match (&entry.batch, &entry.problem) {
                (Some(_), _) => writeln!(out, " isValid: true")?,
                (None, problem) => {
                    damaged = true;
                    writeln!(out, " isValid: false ({})", problem.as_deref().unwrap_or("damaged"))?
                }
            }
            if let (true, Some(batch)) = (args.print_records, &entry.batch) {
                for r in batch.try_records()? {
                    let show = |b: Option<&[u8]>| match b {
                        None => "null".to_owned(),
                        Some(b) => std::str::from_utf8(b).map_or_else(|_| format!("0x{}", hex(b)), str::to_owned),
                    };
                    let headers: Vec<String> =
                        r.headers.iter().map(|h| format!("{}={}", h.key, show(h.value.as_deref()))).collect();
                    writeln!(
                        out,
                        "| offset: {} timestamp: {} key: {} value: {} headers: [{}]",
                        r.offset,
                        r.timestamp,
                        show(r.key.as_deref()),
                        show(r.value.as_deref()),
                        headers.join(",")
                    )?;
                }
            }
        }
        done += seg.len();
        bar.set_position(done);
    }
    bar.finish_and_clear();
    out.flush()?;
    if damaged { Err(Failure::new("damaged batches found (see above)")) } else { Ok(()) }
}

pub fn verify(data: &Path, quiet: bool) -> Res {
    let dir = read_only(data)?;
    let mut partitions = Vec::new();
    for topic in dir.topics(true)? {
        let config = dir.topic_config(&topic)?;
        for p in 0..config.partitions {
            partitions.push((topic.clone(), p, dir.partition(&topic, p)?));
        }
    }
    let bar = progress(partitions.iter().map(|(_, _, f)| f.size_in_bytes()).sum(), "verify");
    // The verdict is the exit status: read or not, the check goes on.
    let mut out = Report::new();
    let live = dir.holder().is_some();
    let unlisted = dir.verify_topics()?;
    for problem in &unlisted {
        writeln!(out, "{problem}")?;
    }
    let mut problems = unlisted.len();
    for (topic, p, files) in &partitions {
        let found = files.verify(live, &mut |n| bar.inc(n))?;
        if !quiet || !found.is_empty() {
            let verdict = if found.is_empty() { "ok".to_owned() } else { format!("{} problem(s)", found.len()) };
            let internal = if topic == OFFSETS_TOPIC { " (internal)" } else { "" };
            bar.suspend(|| writeln!(out, "{topic}-{p}{internal}: {} segment(s), {verdict}", files.segments().len()))?;
        }
        for problem in &found {
            bar.suspend(|| writeln!(out, "  {problem}"))?;
        }
        problems += found.len();
    }
    bar.finish_and_clear();
    out.flush()?;
    if problems > 0 {
        return Err(Failure::new(format!("{problems} problem(s) found in {}", data.display())));
    }
    if !quiet {
        writeln!(out, "{}: {} partition(s) verified, no problems.", data.display(), partitions.len())?;
    }
    Ok(out.flush()?)
}
