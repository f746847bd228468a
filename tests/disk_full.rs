//! A full disk (here: a file size limit, RLIMIT_FSIZE, in a child process) is
//! a typed error, never a signal; everything acknowledged before it stays
//! intact, and the log reopens and goes on once there is room again.

mod common;

use std::io::Write;

use common::{numbered, read_all};
use streamlog::{Partition, PartitionOptions};

const LIMIT: u64 = 1 << 20;

fn opts() -> PartitionOptions {
    PartitionOptions::default().segment_bytes(64 << 20)
}

fn child(dir: &str) {
    // SAFETY: plain system calls with valid arguments, before any other
    // thread of this process exists.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit { rlim_cur: LIMIT, rlim_max: LIMIT };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    let p = Partition::open(dir, opts()).unwrap();
    let mut out = std::io::stdout().lock();
    let mut i = 0u64;
    let err = loop {
        // Mix small appends (through the mapping) and large ones (pwrite).
        let batch: Vec<_> = if i.is_multiple_of(7) {
            (i..i + 40).map(|j| numbered(j, 1000)).collect()
        } else {
            vec![numbered(i, 1000)]
        };
        match p.append(&batch) {
            Ok(info) => {
                i = info.last_offset + 1;
                writeln!(out, "ACK {}", info.last_offset).unwrap();
            }
            Err(e) => break e,
        }
    };
    assert!(err.is_disk_full(), "{err:?}");
    // Smaller appends may still fit; then they fail the same way.
    let err = loop {
        match p.append(&[numbered(i, 1000)]) {
            Ok(info) => {
                i = info.last_offset + 1;
                writeln!(out, "ACK {}", info.last_offset).unwrap();
            }
            Err(e) => break e,
        }
    };
    assert!(err.is_disk_full(), "{err:?}");
    for _ in 0..3 {
        assert!(p.append(&[numbered(i, 5000)]).unwrap_err().is_disk_full());
    }
    assert_eq!(read_all(&p, 0).len() as u64, i);
    writeln!(out, "FULL {i}").unwrap();
}

#[test]
fn a_full_disk_is_an_error_and_loses_nothing() {
    if let Ok(dir) = std::env::var("STREAMLOG_FULL_CHILD") {
        child(&dir);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = common::child_process("a_full_disk_is_an_error_and_loses_nothing", "STREAMLOG_FULL_CHILD", dir.path())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let acked: u64 =
        stdout.lines().filter_map(|l| l.split("ACK ").nth(1)).map(|n| n.trim().parse().unwrap()).max().unwrap();
    assert!(stdout.contains("FULL"), "{stdout}");
    assert!(acked > 500, "the limit was reached only after {acked} records");

    let p = Partition::open(dir.path(), opts()).unwrap();
    assert!(p.high_watermark() > acked);
    let all = read_all(&p, 0);
    assert!(all.iter().all(|r| common::number_of(r) == r.offset));
    let next = p.high_watermark();
    assert_eq!(p.append(&[numbered(next, 1000)]).unwrap().base_offset, next);
}
