//! Printing records: text, JSON lines, hex, or a kcat-style format string.

use std::io::{self, BufWriter, Stdout, Write};

use serde_json::{Map, Value, json};
use streamlog::Header;

use crate::cli::OutputKind;
use crate::{Failure, Res};

/// Buffered standard output; a closed pipe surfaces as `BrokenPipe`, which
/// `main` turns into a quiet exit for commands that only print.
pub fn stdout() -> BufWriter<Stdout> {
    BufWriter::with_capacity(64 << 10, io::stdout())
}

/// Standard output for what a command that does more than print reports
/// about its work (`produce --verbose`, `verify`, the plan of
/// `groups reset-offsets`): once its reader has gone away (`| head`), the
/// rest is dropped and the work goes on, so the exit status tells how the
/// work went, not whether someone read all about it.
pub struct Report {
    out: BufWriter<Stdout>,
    closed: bool,
}

impl Report {
    pub fn new() -> Report {
        Report { out: stdout(), closed: false }
    }

    /// A broken pipe closes the report; other errors stay errors.
    fn reader_gone(&mut self, e: io::Error) -> io::Result<()> {
        if e.kind() != io::ErrorKind::BrokenPipe {
            return Err(e);
        }
        self.closed = true;
        Ok(())
    }
}

impl Write for Report {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        self.out.write(buf).or_else(|e| self.reader_gone(e).map(|()| buf.len()))
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        self.out.flush().or_else(|e| self.reader_gone(e))
    }
}

/// A record to print, wherever it was read from.
pub struct Printable<'a> {
    pub topic: &'a str,
    pub partition: u32,
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [Header],
}

/// How records are printed.
pub enum Printer {
    Text { print_key: bool },
    Json,
    Hex,
    Format(Vec<Piece>),
}

/// A parsed format string: literal bytes and fields.
pub enum Piece {
    Literal(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Timestamp,
    Key,
    Value,
    Headers,
    KeyLen,
    ValueLen,
}

impl Printer {
    pub fn new(kind: OutputKind, format: Option<&str>, print_key: bool) -> Res<Printer> {
        if let Some(f) = format {
            return Ok(Printer::Format(parse_format(f)?));
        }
        Ok(match kind {
            OutputKind::Text => Printer::Text { print_key },
            OutputKind::Json => Printer::Json,
            OutputKind::Hex => Printer::Hex,
        })
    }

    pub fn print(&self, out: &mut impl Write, r: &Printable<'_>) -> io::Result<()> {
        match self {
            Printer::Text { print_key } => {
                if *print_key {
                    out.write_all(r.key.unwrap_or(b"null"))?;
                    out.write_all(b"\t")?;
                }
                out.write_all(r.value.unwrap_or(b"null"))?;
                out.write_all(b"\n")
            }
            Printer::Json => {
                let headers: Map<String, Value> =
                    r.headers.iter().map(|h| (h.key.clone(), h.value.as_deref().map_or(Value::Null, text))).collect();
                let line = json!({
                    "topic": r.topic,
                    "partition": r.partition,
                    "offset": r.offset,
                    "timestamp": r.timestamp,
                    "key": r.key.map_or(Value::Null, text),
                    "value": r.value.map_or(Value::Null, text),
                    "headers": headers,
                });
                serde_json::to_writer(&mut *out, &line)?;
                out.write_all(b"\n")
            }
            Printer::Hex => {
                writeln!(
                    out,
                    "{}:{}:{}\t{}\t{}",
                    r.topic,
                    r.partition,
                    r.offset,
                    r.key.map_or_else(|| "null".into(), hex),
                    r.value.map_or_else(|| "null".into(), hex)
                )
            }
            Printer::Format(pieces) => {
                for p in pieces {
                    match p {
                        Piece::Literal(b) => out.write_all(b)?,
                        Piece::Topic => out.write_all(r.topic.as_bytes())?,
                        Piece::Partition => write!(out, "{}", r.partition)?,
                        Piece::Offset => write!(out, "{}", r.offset)?,
                        Piece::Timestamp => write!(out, "{}", r.timestamp)?,
                        Piece::Key => out.write_all(r.key.unwrap_or(b""))?,
                        Piece::Value => out.write_all(r.value.unwrap_or(b""))?,
                        Piece::KeyLen => write!(out, "{}", r.key.map_or(-1, |k| k.len() as i64))?,
                        Piece::ValueLen => write!(out, "{}", r.value.map_or(-1, |v| v.len() as i64))?,
                        Piece::Headers => {
                            for (i, h) in r.headers.iter().enumerate() {
                                if i > 0 {
                                    out.write_all(b",")?;
                                }
                                out.write_all(h.key.as_bytes())?;
                                out.write_all(b"=")?;
                                out.write_all(h.value.as_deref().unwrap_or(b""))?;
                            }
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// Bytes as a JSON string when they are UTF-8, else as hex in an object.
fn text(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_owned()),
        Err(_) => json!({ "hex": hex(b) }),
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parses kcat's `-f` fields and backslash escapes.
fn parse_format(f: &str) -> Res<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut lit = Vec::new();
    let mut chars = f.chars();
    while let Some(c) = chars.next() {
        let field = match c {
            '%' => match chars.next() {
                Some('t') => Piece::Topic,
                Some('p') => Piece::Partition,
                Some('o') => Piece::Offset,
                Some('T') => Piece::Timestamp,
                Some('k') => Piece::Key,
                Some('s') => Piece::Value,
                Some('h') => Piece::Headers,
                Some('K') => Piece::KeyLen,
                Some('S') => Piece::ValueLen,
                Some('%') => {
                    lit.push(b'%');
                    continue;
                }
                other => {
                    return Err(Failure::usage(format!(
                        "format: unknown field %{}",
                        other.map_or_else(String::new, String::from)
                    )));
                }
            },
            '\\' => {
                let e = match chars.next() {
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some('r') => '\r',
                    Some('0') => '\0',
                    Some('\\') | None => '\\',
                    Some(other) => other,
                };
                lit.extend_from_slice(e.to_string().as_bytes());
                continue;
            }
            c => {
                let mut buf = [0u8; 4];
                lit.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
        };
        if !lit.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut lit)));
        }
        pieces.push(field);
    }
    if !lit.is_empty() {
        pieces.push(Piece::Literal(lit));
    }
    Ok(pieces)
}
