//! `streamlog`: Kafka's console tools (`kafka-topics`, the console producer
//! and consumer, `kafka-consumer-groups`, `kafka-dump-log`, the perf tests)
//! for a streamlog data directory.
//!
//! Inspection commands read with `pread` through `streamlog::inspect` and
//! take no lock, so they work on a directory a running service holds;
//! commands that write open the directory as a `Broker` and refuse, naming
//! the holder, when it is held.

mod cli;
mod consume;
mod groups;
mod logs;
mod output;
mod perf;
mod produce;
mod topics;

use std::io;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use streamlog::inspect::DataDir;
use streamlog::{Broker, BrokerOptions};

use cli::{Cli, Command};

/// An error for the user: a message and the exit status.
#[derive(Debug)]
pub struct Failure {
    message: String,
    code: u8,
    /// The reader of stdout went away (`| head`).
    closed_output: bool,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), code: 1, closed_output: false }
    }

    /// A usage error (exit status 2, as for a bad option).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), code: 2, closed_output: false }
    }
}

impl From<streamlog::Error> for Failure {
    fn from(e: streamlog::Error) -> Failure {
        Failure::new(e.to_string())
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure { closed_output: e.kind() == io::ErrorKind::BrokenPipe, ..Failure::new(e.to_string()) }
    }
}

pub type Res<T = ()> = Result<T, Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let only_prints = cli.command.only_prints();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of what the command is run for went away (`| head`):
        // end quietly. The others print through `output::Report`, which
        // never fails for this, and their status tells how the work went.
        Err(f) if f.closed_output && only_prints => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("streamlog: error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn run(cli: Cli) -> Res {
    let data = cli.data;
    let data =
        || data.clone().ok_or_else(|| Failure::usage("no data directory: pass --data DIR or set STREAMLOG_DATA"));
    match cli.command {
        Command::Topics(cmd) => topics::run(&data()?, cmd),
        Command::Produce(args) => produce::run(&data()?, args),
        Command::Consume(args) => consume::run(&data()?, args),
        Command::Groups(cmd) => groups::run(&data()?, cmd),
        Command::DumpLog(args) => logs::dump(args),
        Command::Verify(args) => {
            let dir = match args.dir {
                Some(d) => d,
                None => data()?,
            };
            logs::verify(&dir, args.quiet)
        }
        Command::Perf(cmd) => perf::run(cmd),
    }
}

/// Prints one line of confirmation; a closed stdout is not an error.
pub fn say(line: std::fmt::Arguments<'_>) -> Res {
    use std::io::Write;
    match writeln!(io::stdout(), "{line}") {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// The directory, read-only, without its lock.
pub fn read_only(data: &Path) -> Res<DataDir> {
    DataDir::open(data).map_err(|e| match e {
        streamlog::Error::NotAStreamlogDirectory { .. } => {
            Failure::new(format!("{} is not a streamlog data directory", data.display()))
        }
        other => other.into(),
    })
}

/// The directory, opened for writing: refused, naming the holder, while a
/// service holds it.
pub fn open_for_write(data: &Path) -> Res<Broker> {
    let opts = BrokerOptions::default().maintenance_interval(None);
    Broker::open(data, opts).map_err(|e| match e {
        streamlog::Error::Locked { .. } => {
            let holder = DataDir::open(data).ok().and_then(|d| d.holder());
            let who = holder.map_or_else(|| "another process".to_owned(), |pid| format!("process {pid}"));
            Failure::new(format!(
                "{} is held by {who}; this command writes, so stop that process first \
                 (read-only commands work while it runs: topics list/describe, consume without --group, \
                 groups list/describe, dump-log, verify)",
                data.display()
            ))
        }
        other => other.into(),
    })
}
