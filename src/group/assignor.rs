//! The assignors: pure functions from the members' subscriptions and the
//! topics' partition counts to an assignment, as Kafka's clients compute it.

use std::collections::{BTreeMap, BTreeSet};

use crate::group::TopicPartition;

/// How a group splits partitions among its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Assignor {
    /// Kafka's default: per topic, consecutive ranges of partitions to the
    /// members (sorted as Kafka sorts them: static members by instance id
    /// first, then the others by member id); the first members get one more
    /// when it does not divide evenly. Eager: a rebalance revokes everything.
    #[default]
    Range,
    /// All partitions, sorted by topic and number, dealt to the members in
    /// turn (skipping members not subscribed to the topic). Eager.
    RoundRobin,
    /// Balanced like round robin, but keeps every partition where it is
    /// unless it must move; a rebalance revokes only the partitions that
    /// move (Kafka's `CooperativeStickyAssignor`).
    CooperativeSticky,
}

/// One member's input to an assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    /// The member id.
    pub member_id: String,
    /// The topics it subscribes to.
    pub topics: BTreeSet<String>,
    /// Partitions the member holds now (used by the sticky assignor).
    pub owned: Vec<TopicPartition>,
    /// The static member's instance id (KIP-345), which orders members
    /// for the range and round-robin assignors when present.
    pub group_instance_id: Option<String>,
}

impl Assignor {
    /// Whether a rebalance revokes only the partitions that move.
    pub fn is_cooperative(self) -> bool {
        self == Assignor::CooperativeSticky
    }

    /// Assigns the partitions of the subscribed topics (`partition_counts`)
    /// to `members`. Every member gets an entry, possibly empty.
    pub fn assign(
        self,
        members: &[MemberSubscription],
        partition_counts: &BTreeMap<String, u32>,
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let mut out: BTreeMap<String, Vec<TopicPartition>> =
            members.iter().map(|m| (m.member_id.clone(), Vec::new())).collect();
        let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
        // Kafka's `MemberInfo` order: static members by instance id, then
        // dynamic members by member id.
        sorted.sort_by(|a, b| match (&a.group_instance_id, &b.group_instance_id) {
            (Some(x), Some(y)) => x.cmp(y).then_with(|| a.member_id.cmp(&b.member_id)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.member_id.cmp(&b.member_id),
        });
        match self {
            Assignor::Range => {
                for (topic, &count) in partition_counts {
                    let subs: Vec<&&MemberSubscription> = sorted.iter().filter(|m| m.topics.contains(topic)).collect();
                    if subs.is_empty() {
                        continue;
                    }
                    let (per, extra) = (count / subs.len() as u32, count % subs.len() as u32);
                    for (i, m) in subs.iter().enumerate() {
                        let i = i as u32;
                        let start = i * per + i.min(extra);
                        let len = per + u32::from(i < extra);
                        let list = out.get_mut(&m.member_id).expect("every member has an entry");
                        list.extend((start..start + len).map(|p| TopicPartition::new(topic.clone(), p)));
                    }
                }
            }
            Assignor::RoundRobin => {
                let mut next = 0usize;
                for (topic, &count) in partition_counts {
                    if !sorted.iter().any(|m| m.topics.contains(topic)) {
                        continue;
                    }
                    for p in 0..count {
                        while !sorted[next % sorted.len()].topics.contains(topic) {
                            next += 1;
                        }
                        let m = sorted[next % sorted.len()];
                        out.get_mut(&m.member_id).expect("entry").push(TopicPartition::new(topic.clone(), p));
                        next += 1;
                    }
                }
            }
            Assignor::CooperativeSticky => sticky(&sorted, partition_counts, &mut out),
        }
        for list in out.values_mut() {
            list.sort();
        }
        out
    }
}

/// Keeps what members own (if still valid), deals out the rest to the least
/// loaded subscribed member, then moves partitions one at a time from the
/// most to the least loaded member until no move can narrow the gap.
fn sticky(
    members: &[&MemberSubscription],
    partition_counts: &BTreeMap<String, u32>,
    out: &mut BTreeMap<String, Vec<TopicPartition>>,
) {
    let exists = |tp: &TopicPartition| partition_counts.get(&tp.topic).is_some_and(|&n| tp.partition < n);
    let mut taken = BTreeSet::new();
    for m in members {
        for tp in &m.owned {
            if m.topics.contains(&tp.topic) && exists(tp) && taken.insert(tp.clone()) {
                out.get_mut(&m.member_id).expect("entry").push(tp.clone());
            }
        }
    }
    let subscribed = |id: &str, topic: &str| members.iter().any(|m| m.member_id == id && m.topics.contains(topic));
    for (topic, &count) in partition_counts {
        for p in 0..count {
            let tp = TopicPartition::new(topic.clone(), p);
            if taken.contains(&tp) {
                continue;
            }
            let least = members
                .iter()
                .filter(|m| m.topics.contains(topic))
                .min_by_key(|m| (out[&m.member_id].len(), m.member_id.clone()));
            if let Some(m) = least {
                out.get_mut(&m.member_id).expect("entry").push(tp.clone());
                taken.insert(tp);
            }
        }
    }
    // Balance: move from the fullest member to an emptier one that can take
    // one of its partitions, while that narrows the gap by two or more.
    loop {
        let mut best: Option<(String, String, usize)> = None;
        for from in members {
            for to in members {
                let (nf, nt) = (out[&from.member_id].len(), out[&to.member_id].len());
                if nf < nt + 2 {
                    continue;
                }
                let movable = out[&from.member_id].iter().rposition(|tp| subscribed(&to.member_id, &tp.topic));
                if let Some(i) = movable
                    && best.as_ref().is_none_or(|b| nf - nt > out[&b.0].len() - out[&b.1].len())
                {
                    best = Some((from.member_id.clone(), to.member_id.clone(), i));
                }
            }
        }
        let Some((from, to, i)) = best else { break };
        let tp = out.get_mut(&from).expect("entry").remove(i);
        out.get_mut(&to).expect("entry").push(tp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, topics: &[&str]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            owned: vec![],
            group_instance_id: None,
        }
    }

    fn tps(list: &[(&str, u32)]) -> Vec<TopicPartition> {
        list.iter().map(|&(t, p)| TopicPartition::new(t, p)).collect()
    }

    fn counts(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
        list.iter().map(|&(t, n)| (t.to_owned(), n)).collect()
    }

    /// Kafka's documented RangeAssignor example: two consumers, two topics
    /// of three partitions.
    #[test]
    fn range_matches_kafkas_example() {
        let members = [member("C0", &["t0", "t1"]), member("C1", &["t0", "t1"])];
        let a = Assignor::Range.assign(&members, &counts(&[("t0", 3), ("t1", 3)]));
        assert_eq!(a["C0"], tps(&[("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)]));
        assert_eq!(a["C1"], tps(&[("t0", 2), ("t1", 2)]));
    }

    /// Kafka's documented RoundRobinAssignor example: same input, the
    /// partitions dealt in turn.
    #[test]
    fn round_robin_matches_kafkas_example() {
        let members = [member("C0", &["t0", "t1"]), member("C1", &["t0", "t1"])];
        let a = Assignor::RoundRobin.assign(&members, &counts(&[("t0", 3), ("t1", 3)]));
        assert_eq!(a["C0"], tps(&[("t0", 0), ("t0", 2), ("t1", 1)]));
        assert_eq!(a["C1"], tps(&[("t0", 1), ("t1", 0), ("t1", 2)]));
    }

    #[test]
    fn round_robin_skips_unsubscribed_members() {
        // Kafka's example with different subscriptions: C0 t0; C1 t0,t1; C2 t0,t1,t2
        // with t0 1 partition, t1 2, t2 3.
        let members = [member("C0", &["t0"]), member("C1", &["t0", "t1"]), member("C2", &["t0", "t1", "t2"])];
        let a = Assignor::RoundRobin.assign(&members, &counts(&[("t0", 1), ("t1", 2), ("t2", 3)]));
        assert_eq!(a["C0"], tps(&[("t0", 0)]));
        assert_eq!(a["C1"], tps(&[("t1", 0)]));
        assert_eq!(a["C2"], tps(&[("t1", 1), ("t2", 0), ("t2", 1), ("t2", 2)]));
    }

    #[test]
    fn sticky_keeps_ownership_and_moves_the_minimum() {
        let c = counts(&[("t", 6)]);
        let mut members = vec![member("A", &["t"]), member("B", &["t"])];
        let first = Assignor::CooperativeSticky.assign(&members, &c);
        assert_eq!(first["A"].len(), 3);
        assert_eq!(first["B"].len(), 3);
        // C joins: exactly two partitions move, one from each, to C.
        for m in members.iter_mut() {
            m.owned = first[&m.member_id].clone();
        }
        members.push(member("C", &["t"]));
        let second = Assignor::CooperativeSticky.assign(&members, &c);
        assert_eq!(second["C"].len(), 2);
        for id in ["A", "B"] {
            assert_eq!(second[id].len(), 2);
            assert!(second[id].iter().all(|tp| first[id].contains(tp)), "{id} kept what it could");
        }
        // B leaves: its partitions go to A and C, nothing else moves.
        let members: Vec<MemberSubscription> = ["A", "C"]
            .iter()
            .map(|id| MemberSubscription { owned: second[*id].clone(), ..member(id, &["t"]) })
            .collect();
        let third = Assignor::CooperativeSticky.assign(&members, &c);
        for id in ["A", "C"] {
            assert_eq!(third[id].len(), 3);
            assert!(second[id].iter().all(|tp| third[id].contains(tp)));
        }
    }

    /// Kafka's `RangeAssignorTest.testStaticMemberRangeAssignmentPersistent`
    /// idea: static members are ordered by instance id, ahead of dynamic
    /// members, whatever their member ids.
    #[test]
    fn static_members_are_ordered_by_instance_id() {
        let with_instance = |id: &str, instance: &str| MemberSubscription {
            group_instance_id: Some(instance.into()),
            ..member(id, &["t"])
        };
        let members =
            [with_instance("a-member", "z-instance"), with_instance("z-member", "a-instance"), member("0", &["t"])];
        let c = counts(&[("t", 3)]);
        let range = Assignor::Range.assign(&members, &c);
        assert_eq!(range["z-member"], tps(&[("t", 0)]));
        assert_eq!(range["a-member"], tps(&[("t", 1)]));
        assert_eq!(range["0"], tps(&[("t", 2)]));
        let rr = Assignor::RoundRobin.assign(&members, &c);
        assert_eq!(rr, range);
    }
}
