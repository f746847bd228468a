//! What the command's tests share: running it on a data directory.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `streamlog --data DATA ARGS`, its stdin, stdout and stderr piped.
pub fn command(data: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_streamlog"));
    cmd.arg("--data").arg(data).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// Runs `command` with `stdin` written to it, then closed.
pub fn run(mut cmd: Command, stdin: impl AsRef<[u8]>) -> Output {
    let mut child = cmd.spawn().expect("run streamlog");
    // A command that stops early stops reading too.
    let _ = child.stdin.take().expect("stdin").write_all(stdin.as_ref());
    child.wait_with_output().expect("wait")
}

/// Runs `streamlog --data DATA ARGS` with `stdin`.
pub fn streamlog(data: &Path, args: &[&str], stdin: impl AsRef<[u8]>) -> Output {
    run(command(data, args), stdin)
}

/// The same, which must succeed: its stdout.
pub fn ok(data: &Path, args: &[&str], stdin: impl AsRef<[u8]>) -> String {
    let out = streamlog(data, args, stdin);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}
