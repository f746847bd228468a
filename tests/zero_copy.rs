//! Reads are zero-copy: values point into the segment's memory mapping,
//! found in /proc/self/maps, and keep it alive after the partition closes.

mod common;

use std::fs;

use streamlog::{Partition, PartitionOptions};

/// Address ranges of this process's mappings of `file`.
fn mappings_of(file: &std::path::Path) -> Vec<(usize, usize)> {
    let file = fs::canonicalize(file).unwrap();
    let maps = fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter(|l| l.ends_with(file.to_str().unwrap()))
        .map(|l| {
            let range = l.split_whitespace().next().unwrap();
            let (a, b) = range.split_once('-').unwrap();
            (usize::from_str_radix(a, 16).unwrap(), usize::from_str_radix(b, 16).unwrap())
        })
        .collect()
}

#[test]
fn values_point_into_the_segment_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), PartitionOptions::default()).unwrap();
    for i in 0..100 {
        p.append(&[common::numbered(i, 200)]).unwrap();
    }
    let log = &common::log_files(dir.path())[0];
    let maps = mappings_of(log);
    assert!(!maps.is_empty(), "segment is not mapped");
    let recs = common::read_all(&p, 0);
    for r in &recs {
        for b in [r.value.as_ref().unwrap(), r.key.as_ref().unwrap()] {
            let ptr = b.as_ptr() as usize;
            assert!(maps.iter().any(|&(lo, hi)| ptr >= lo && ptr + b.len() <= hi), "{ptr:#x} is not in {maps:x?}");
        }
    }
    // The values outlive the partition: they hold the mapping.
    p.close().unwrap();
    assert!(!mappings_of(log).is_empty());
    for r in &recs {
        assert_eq!(common::number_of(r), r.offset);
    }
    drop(recs);
    assert!(mappings_of(log).is_empty(), "mapping released with the last reader");
}

#[test]
fn a_sealed_segment_is_mapped_at_its_size_not_its_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), PartitionOptions::default()).unwrap();
    p.append(&[common::numbered(0, 100)]).unwrap();
    let log = common::log_files(dir.path())[0].clone();
    let span = |maps: &[(usize, usize)]| maps.iter().map(|(a, b)| b - a).max().unwrap_or(0);
    assert!(span(&mappings_of(&log)) >= 1 << 30, "the active segment is mapped for its capacity");
    p.roll().unwrap();
    let held = common::read_all(&p, 0);
    let maps = mappings_of(&log);
    assert!(span(&maps) <= 4096, "sealed: mapped at its size, {maps:x?}");
    assert_eq!(common::number_of(&held[0]), 0);
}
