//! Crash test: a child process appends and reports each acknowledged offset
//! on stdout; the parent kills it with SIGKILL at a random moment, reopens
//! the log and checks that every acknowledged record is there, intact, with
//! dense offsets. The same directory goes through every trial, so the log is
//! recovered again and again.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use common::{numbered, read_all};
use streamlog::{Partition, PartitionOptions};

const TRIALS: usize = 50;

fn opts() -> PartitionOptions {
    PartitionOptions::default().segment_bytes(256 << 10).index_interval_bytes(1024)
}

/// The child: append numbered records forever, printing each acknowledgement.
fn child(dir: &str) {
    let p = Partition::open(dir, opts()).unwrap();
    let mut next = p.high_watermark();
    let mut out = std::io::stdout().lock();
    writeln!(out, "START {next}").unwrap();
    let mut rng = next.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    loop {
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let n = 1 + (rng >> 60);
        let size = 10 + (rng >> 50) as usize % 2000;
        let batch: Vec<_> = (next..next + n).map(|i| numbered(i, size)).collect();
        let info = p.append(&batch).unwrap();
        assert_eq!(info.base_offset, next);
        next += n;
        writeln!(out, "ACK {}", info.last_offset).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn acknowledged_records_survive_sigkill() {
    if let Ok(dir) = std::env::var("STREAMLOG_CRASH_CHILD") {
        child(&dir);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut last_acked: Option<u64> = None;
    let mut seed = 0x9e3779b97f4a7c15u64;
    for trial in 0..TRIALS {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let run_for = Duration::from_micros(2_000 + (seed >> 40) % 40_000);
        let mut child =
            common::child_process("acknowledged_records_survive_sigkill", "STREAMLOG_CRASH_CHILD", dir.path())
                .spawn()
                .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Wait until the child has opened (and so recovered) the log.
        loop {
            let line = lines.next().expect("child exited before starting").unwrap();
            // libtest prints "test ... " on the same line first.
            if let Some(at) = line.find("START ") {
                let start: u64 = line[at + 6..].trim().parse().unwrap();
                assert!(
                    last_acked.is_none_or(|a| start > a),
                    "trial {trial}: reopened at {start}, acked {last_acked:?}"
                );
                break;
            }
        }
        let killer = std::thread::spawn(move || {
            std::thread::sleep(run_for);
            child.kill().unwrap();
            child.wait().unwrap()
        });
        for line in lines.map_while(Result::ok) {
            if let Some(acked) = line.strip_prefix("ACK ") {
                last_acked = Some(acked.parse().unwrap());
            }
        }
        let status = killer.join().unwrap();
        assert!(!status.success(), "the child was killed");

        let p = Partition::open(dir.path(), opts()).unwrap();
        let hw = p.high_watermark();
        if let Some(acked) = last_acked {
            assert!(hw > acked, "trial {trial}: high watermark {hw}, acknowledged {acked}");
        }
        let all = read_all(&p, 0);
        assert_eq!(all.len() as u64, hw);
        for r in &all {
            assert_eq!(common::number_of(r), r.offset, "trial {trial}: record content");
        }
        p.verify().unwrap();
        // Leave the log as the crash left it for the next child, but for the
        // clean marker this handle's close would write.
        drop(p);
        std::fs::remove_file(dir.path().join(".clean_shutdown")).unwrap();
    }
    assert!(last_acked.unwrap_or(0) > 100, "the children appended something");
}
