//! `streamlog produce`: lines from stdin to a topic.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::Path;

use serde_json::Value;
use streamlog::{ProducerRecord, RecordMetadata};

use crate::cli::ProduceArgs;
use crate::output::stdout;
use crate::{Failure, Res, open_for_write};

/// Piped input is appended in groups of this many lines (one append per
/// partition per group), so a large input is not one record per call; typed
/// lines go out one by one.
const LINES_PER_SEND: usize = 1024;

pub fn run(data: &Path, args: ProduceArgs) -> Res {
    let broker = open_for_write(data)?;
    broker.topic(args.topic.name())?;
    let producer = broker.producer();
    let mut out = stdout();
    let per_send = if io::stdin().is_terminal() { 1 } else { LINES_PER_SEND };
    let mut pending = Vec::with_capacity(per_send);
    let flush = |pending: &mut Vec<ProducerRecord>, out: &mut dyn Write| -> Res {
        if pending.is_empty() {
            return Ok(());
        }
        let metas = producer.send_batch(std::mem::take(pending))?;
        if args.verbose {
            for RecordMetadata { topic, partition, offset, .. } in metas {
                writeln!(out, "{topic}:{partition}:{offset}")?;
            }
        }
        Ok(())
    };
    for (n, line) in io::stdin().lock().lines().enumerate() {
        let line = line?;
        let record = match parse_line(&args, &line) {
            Ok(r) => r,
            Err(why) => {
                // What came before the bad line is appended, and said so.
                flush(&mut pending, &mut out)?;
                out.flush()?;
                broker.close()?;
                return Err(Failure::new(format!("line {}: {why} (lines before it were appended)", n + 1)));
            }
        };
        pending.push(record);
        if pending.len() == per_send {
            flush(&mut pending, &mut out)?;
        }
    }
    flush(&mut pending, &mut out)?;
    out.flush()?;
    broker.close()?;
    Ok(())
}

fn parse_line(args: &ProduceArgs, line: &str) -> Result<ProducerRecord, String> {
    let mut record = if args.json {
        from_json(args.topic.name(), line)?
    } else if let Some(sep) = &args.key_separator {
        let sep = unescape(sep);
        let (key, value) = line.split_once(sep.as_str()).ok_or_else(|| format!("no key separator {sep:?}"))?;
        ProducerRecord::new(args.topic.name().to_owned(), value.to_owned()).key(key.to_owned())
    } else {
        ProducerRecord::new(args.topic.name().to_owned(), line.to_owned())
    };
    if let Some(p) = args.partition {
        record = record.partition(p);
    }
    Ok(record)
}

/// `{"key": .., "value": .., "headers": {..}, "partition": n, "timestamp": ms}`;
/// a string is taken as UTF-8 bytes, null as absent, anything else as its
/// JSON text.
fn from_json(topic: &str, line: &str) -> Result<ProducerRecord, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v.as_object().ok_or("expected a JSON object")?;
    let bytes = |v: Option<&Value>| -> Option<Vec<u8>> {
        match v? {
            Value::Null => None,
            Value::String(s) => Some(s.as_bytes().to_vec()),
            other => Some(other.to_string().into_bytes()),
        }
    };
    let mut record = ProducerRecord::new(topic.to_owned(), Vec::new());
    record.value = bytes(obj.get("value")).map(Into::into);
    if let Some(k) = bytes(obj.get("key")) {
        record = record.key(k);
    }
    if let Some(h) = obj.get("headers") {
        let h = h.as_object().ok_or("headers: expected an object")?;
        for (name, value) in h {
            record = record.header(name.clone(), bytes(Some(value)).map(Into::into));
        }
    }
    if let Some(p) = obj.get("partition").filter(|p| !p.is_null()) {
        let p = p.as_u64().and_then(|p| u32::try_from(p).ok()).ok_or("partition: expected a number")?;
        record = record.partition(p);
    }
    if let Some(ts) = obj.get("timestamp").filter(|t| !t.is_null()) {
        record = record.timestamp(ts.as_i64().ok_or("timestamp: expected a number")?);
    }
    Ok(record)
}

/// `\t` and `\n` as typed on a command line.
fn unescape(s: &str) -> String {
    s.replace("\\t", "\t").replace("\\n", "\n")
}
