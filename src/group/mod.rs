//! Consumer groups: the coordinator, the assignors and the offset store.
pub(crate) mod coordinator;
