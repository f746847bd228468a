//! Property test: under random joins, leaves, polls and assignors, no
//! partition is ever held by two members of a group, and once everyone has
//! polled enough every partition is held.

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;
use streamlog::{Assignor, Broker, BrokerOptions, Consumer, ConsumerConfig, TopicConfig};

#[derive(Debug, Clone)]
enum Op {
    Join,
    Leave(usize),
    Poll(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![2 => Just(Op::Join), 1 => (0usize..8).prop_map(Op::Leave), 5 => (0usize..8).prop_map(Op::Poll)]
}

fn assignor() -> impl Strategy<Value = Assignor> {
    prop_oneof![Just(Assignor::Range), Just(Assignor::RoundRobin), Just(Assignor::CooperativeSticky)]
}

fn check_disjoint(members: &[Consumer]) {
    let mut held = BTreeSet::new();
    for m in members {
        for tp in m.assignment() {
            assert!(held.insert(tp.clone()), "{tp} held by two members");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn one_owner_per_partition(assignor in assignor(), ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let b = Broker::open(dir.path(), BrokerOptions::default()).unwrap();
        b.create_topic("a", TopicConfig::with_partitions(5)).unwrap();
        b.create_topic("b", TopicConfig::with_partitions(3)).unwrap();
        let mut members: Vec<Consumer> = Vec::new();
        for op in ops {
            match op {
                Op::Join => {
                    let mut c = b.consumer(ConsumerConfig::with_group("g").assignor(assignor)).unwrap();
                    c.subscribe(&["a", "b"]).unwrap();
                    members.push(c);
                }
                Op::Leave(i) if !members.is_empty() => {
                    let i = i % members.len();
                    members.remove(i).close().unwrap();
                }
                Op::Poll(i) if !members.is_empty() => {
                    let i = i % members.len();
                    members[i].poll(Duration::ZERO).unwrap();
                }
                _ => {}
            }
            check_disjoint(&members);
        }
        if !members.is_empty() {
            for _ in 0..3 {
                for m in members.iter_mut() {
                    m.poll(Duration::ZERO).unwrap();
                    check_disjoint(std::slice::from_ref(m));
                }
            }
            check_disjoint(&members);
            let held: usize = members.iter().map(|m| m.assignment().len()).sum();
            prop_assert_eq!(held, 8, "every partition held once the group settled");
            let counts: Vec<usize> = members.iter().map(|m| m.assignment().len()).collect();
            let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            if assignor != Assignor::Range {
                prop_assert!(max - min <= 1, "balanced: {:?}", counts);
            }
        }
    }
}
