//! `streamlog produce` fed by a pipe that stays open (`tail -f app.log |
//! streamlog produce logs`): each line is readable as soon as nothing more
//! is ready, not once a group of lines fills; SIGTERM appends what was read
//! and ends cleanly.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use streamlog::inspect::DataDir;

fn streamlog(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_streamlog")).arg("--data").arg(data).args(args).output().expect("run streamlog")
}

fn producer(data: &Path, topic: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_streamlog"))
        .arg("--data")
        .arg(data)
        .args(["produce", topic])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run streamlog produce")
}

fn log_end(data: &Path, topic: &str) -> u64 {
    DataDir::open(data).unwrap().partition(topic, 0).unwrap().log_end_offset().unwrap()
}

#[test]
fn lines_are_readable_while_the_pipe_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(streamlog(&data, &["topics", "create", "logs"]).status.success());
    let mut child = producer(&data, "logs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"one\ntwo\nthree\n").unwrap();
    stdin.flush().unwrap();

    // The pipe is still open; the three lines must reach the log.
    let out =
        streamlog(&data, &["consume", "logs", "--from-beginning", "--max-messages", "3", "--timeout-ms", "10000"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\ntwo\nthree\n");

    // A line typed later goes out on its own too.
    stdin.write_all(b"four\n").unwrap();
    let started = Instant::now();
    while log_end(&data, "logs") < 4 {
        assert!(started.elapsed() < Duration::from_secs(10), "the fourth line was not appended");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn sigterm_appends_what_was_read_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(streamlog(&data, &["topics", "create", "logs"]).status.success());
    let mut child = producer(&data, "logs");
    let mut stdin = child.stdin.take().unwrap();
    // A writer faster than the appends, still writing when the signal comes.
    let writer = std::thread::spawn(move || {
        for i in 0..2_000_000u64 {
            if writeln!(stdin, "line-{i}").is_err() {
                return; // The producer stopped reading.
            }
        }
    });
    let started = Instant::now();
    while log_end(&data, "logs") == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "nothing was appended");
        std::thread::sleep(Duration::from_millis(5));
    }
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    // Ended by its own hand, not by the signal: status 0, the broker closed.
    assert_eq!(out.status.code(), Some(0), "{:?} {}", out.status, String::from_utf8_lossy(&out.stderr));
    // What was appended is the input's first lines, in order, none missing.
    let printed = streamlog(&data, &["consume", "logs", "--from-beginning", "--timeout-ms", "200"]);
    assert!(printed.status.success(), "{}", String::from_utf8_lossy(&printed.stderr));
    let printed = String::from_utf8(printed.stdout).unwrap();
    assert!(!printed.is_empty());
    for (i, line) in printed.lines().enumerate() {
        assert_eq!(line, format!("line-{i}"));
    }
    let verify = streamlog(&data, &["verify"]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}
