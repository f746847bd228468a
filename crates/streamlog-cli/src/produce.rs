//! `streamlog produce`: lines from stdin to a topic.
//!
//! What was read goes out as soon as no more input is ready: a terminal or a
//! slow pipe (`tail -f app.log | streamlog produce logs`) sends each line at
//! once, a fast pipe sends groups (one append per partition per group), as
//! Kafka's console producer groups only what comes within a few ms.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use streamlog::{Producer, ProducerRecord, RecordMetadata};

use crate::cli::ProduceArgs;
use crate::output::Report;
use crate::{Failure, Res, open_for_write};

/// At most this many lines go in one send.
const MAX_LINES_PER_SEND: usize = 1024;
/// Bytes asked of stdin per read.
const READ_BYTES: usize = 64 << 10;
/// Longest line taken: past it (`cat /dev/zero | streamlog produce t`) the
/// unended line would grow in memory without bound.
const MAX_LINE_BYTES: usize = 64 << 20;
/// How long a wait for input lasts before it looks at the stop flag again.
const STOP_CHECK: Duration = Duration::from_millis(100);

pub fn run(data: &Path, args: ProduceArgs) -> Res {
    let broker = open_for_write(data)?;
    broker.topic(args.topic.name())?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    // Ctrl-C, SIGTERM or SIGHUP ends the input; what was read is appended
    // and the broker closed. If a handler is already set, keep it.
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::Release));
    let mut sender = Sender { producer: broker.producer(), verbose: args.verbose, out: Report::new() };
    let mut input = Input::stdin()?;
    let mut pending = Vec::new();
    let ended = append_lines(&args, &mut input, &stop, &mut sender, &mut pending);
    // However the input ended, the lines read before are appended first.
    sender.send(&mut pending)?;
    broker.close()?;
    ended
}

/// Reads lines and sends them, leaving in `pending` those read and not sent
/// yet, until the end of the input or the stop flag. A line it cannot take,
/// or a failed read, ends it with an error naming the line.
fn append_lines(
    args: &ProduceArgs,
    input: &mut Input,
    stop: &AtomicBool,
    sender: &mut Sender,
    pending: &mut Vec<ProducerRecord>,
) -> Res {
    let mut line_no = 0u64;
    // The caller appends the lines before it, then reports.
    let at_line =
        |n: u64, why: &dyn std::fmt::Display| Failure::new(format!("line {n}: {why} (lines before it were appended)"));
    loop {
        while let Some(line) = input.next_line() {
            line_no += 1;
            pending.push(parse_line(args, line).map_err(|why| at_line(line_no, &why))?);
            if pending.len() == MAX_LINES_PER_SEND {
                sender.send(pending)?;
            }
        }
        if input.at_end() || stop.load(Ordering::Acquire) {
            return Ok(());
        }
        let reading = |e: io::Error| at_line(line_no + 1, &format_args!("reading stdin: {e}"));
        if !input.ready(Duration::ZERO).map_err(reading)? {
            // Nothing more to read now: what was read goes out before the wait.
            sender.send(pending)?;
            while !input.ready(STOP_CHECK).map_err(reading)? {
                if stop.load(Ordering::Acquire) {
                    return Ok(());
                }
            }
        }
        input.fill().map_err(reading)?;
    }
}

/// Appends groups of records; with `verbose`, prints where each went.
struct Sender {
    producer: Producer,
    verbose: bool,
    out: Report,
}

impl Sender {
    fn send(&mut self, pending: &mut Vec<ProducerRecord>) -> Res {
        if pending.is_empty() {
            return Ok(());
        }
        let metas = self.producer.send_batch(std::mem::take(pending))?;
        if self.verbose {
            for RecordMetadata { topic, partition, offset, .. } in metas {
                writeln!(self.out, "{topic}:{partition}:{offset}")?;
            }
            self.out.flush()?;
        }
        Ok(())
    }
}

/// Standard input in lines, with a way to ask, before a read that could
/// block, whether anything is ready.
struct Input {
    /// A duplicate of fd 0, read directly: the buffer of `io::stdin()`
    /// could hold bytes that poll(2) does not see.
    file: File,
    buf: Vec<u8>,
    /// Where the bytes not yet returned as lines start in `buf`.
    start: usize,
    /// How many bytes from `start` on are known to hold no `\n`.
    searched: usize,
    eof: bool,
}

impl Input {
    fn stdin() -> io::Result<Input> {
        let file = File::from(io::stdin().as_fd().try_clone_to_owned()?);
        Ok(Input { file, buf: Vec::new(), start: 0, searched: 0, eof: false })
    }

    /// The next line already read, without its `\n` (or `\r\n`); at the end
    /// of the input, a last line without one.
    fn next_line(&mut self) -> Option<&[u8]> {
        let rest = &self.buf[self.start..];
        let (len, used) = match rest[self.searched..].iter().position(|&b| b == b'\n') {
            Some(i) => (self.searched + i, self.searched + i + 1),
            None if self.eof && !rest.is_empty() => (rest.len(), rest.len()),
            None => {
                self.searched = rest.len();
                return None;
            }
        };
        self.start += used;
        self.searched = 0;
        let line = &rest[..len];
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }

    /// Whether every byte of the input was read and returned.
    fn at_end(&self) -> bool {
        self.eof && self.start == self.buf.len()
    }

    /// Whether a read would return at once (bytes, the end or an error),
    /// after waiting up to `timeout` for it; a signal ends the wait early.
    fn ready(&self, timeout: Duration) -> io::Result<bool> {
        let mut fd = libc::pollfd { fd: self.file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fd` is one initialized pollfd, alive for the call, and
        // the count passed is 1.
        match unsafe { libc::poll(&mut fd, 1, ms) } {
            -1 => match io::Error::last_os_error() {
                e if e.kind() == io::ErrorKind::Interrupted => Ok(false),
                e => Err(e),
            },
            n => Ok(n > 0),
        }
    }

    /// Reads what is there, waiting if nothing is (ask `ready` first).
    fn fill(&mut self) -> io::Result<()> {
        // Keep only the bytes not returned yet (a line not ended yet).
        self.buf.drain(..self.start);
        self.start = 0;
        let len = self.buf.len();
        if len > MAX_LINE_BYTES {
            let message = format!("a line longer than {} MiB", MAX_LINE_BYTES >> 20);
            return Err(io::Error::new(io::ErrorKind::InvalidData, message));
        }
        self.buf.resize(len + READ_BYTES, 0);
        let read = loop {
            match self.file.read(&mut self.buf[len..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        self.buf.truncate(len + *read.as_ref().unwrap_or(&0));
        self.eof = read? == 0;
        Ok(())
    }
}

/// A line, as bytes: Kafka's console producer takes any (only `--json`
/// needs UTF-8).
fn parse_line(args: &ProduceArgs, line: &[u8]) -> Result<ProducerRecord, String> {
    let mut record = if args.json {
        from_json(args.topic.name(), line)?
    } else if let Some(sep) = &args.key_separator {
        let sep = unescape(sep);
        let at = find(line, sep.as_bytes()).ok_or_else(|| format!("no key separator {sep:?}"))?;
        let (key, value) = (&line[..at], &line[at + sep.len()..]);
        ProducerRecord::new(args.topic.name().to_owned(), value.to_vec()).key(key.to_vec())
    } else {
        ProducerRecord::new(args.topic.name().to_owned(), line.to_vec())
    };
    if let Some(p) = args.partition {
        record = record.partition(p);
    }
    Ok(record)
}

/// Where `needle` first occurs in `haystack` (an empty one: at the start).
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `{"key": .., "value": .., "headers": {..}, "partition": n, "timestamp": ms}`;
/// a string is taken as UTF-8 bytes, null as absent, anything else as its
/// JSON text.
fn from_json(topic: &str, line: &[u8]) -> Result<ProducerRecord, String> {
    let v: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
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
