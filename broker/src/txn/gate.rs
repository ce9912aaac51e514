//! The gate between the transaction coordinator and the partition writers: which partitions
//! each transactional producer may write to right now.
//!
//! The coordinator opens a partition for a producer only after the AddPartitionsToTxn that
//! added it is durable, and closes the producer's gate *before* it writes the transaction's
//! markers. Partition writers check every transactional batch against the gate when they
//! append it, so a batch is either in the log before the marker (inside the transaction) or
//! refused — never after the marker, where it would open a transaction nobody ends.

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;

use crate::partition::PartitionError;

#[derive(Debug, Clone)]
struct Entry {
    epoch: i16,
    /// Open (the transaction is Ongoing) or closed (ending, ended, or none started).
    open: bool,
    partitions: BTreeSet<(String, i32)>,
}

/// Shared by the coordinator (writes) and every partition writer (reads).
#[derive(Debug, Default)]
pub(crate) struct TxnGate {
    producers: RwLock<HashMap<i64, Entry>>,
}

impl TxnGate {
    /// Whether a transactional batch of `producer_id` at `epoch` may be appended to
    /// `topic`-`partition` now.
    pub(crate) fn check(
        &self,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), PartitionError> {
        let map = self.producers.read().unwrap_or_else(|e| e.into_inner());
        let Some(e) = map.get(&producer_id) else {
            return Err(PartitionError::NotInTransaction {
                producer_id,
                reason: "the producer id belongs to no transactional id",
            });
        };
        if epoch < e.epoch {
            return Err(PartitionError::StaleEpoch {
                current: e.epoch,
                got: epoch,
            });
        }
        if epoch > e.epoch {
            return Err(PartitionError::NotInTransaction {
                producer_id,
                reason: "the producer epoch is newer than the coordinator's",
            });
        }
        if !e.open {
            return Err(PartitionError::NotInTransaction {
                producer_id,
                reason: "no transaction is ongoing",
            });
        }
        if !e.partitions.contains(&(topic.to_string(), partition)) {
            return Err(PartitionError::NotInTransaction {
                producer_id,
                reason: "the partition was not added to the transaction (AddPartitionsToTxn)",
            });
        }
        Ok(())
    }

    /// Sets what `producer_id` may write: `partitions` when `open`, nothing otherwise.
    pub(crate) fn set(
        &self,
        producer_id: i64,
        epoch: i16,
        open: bool,
        partitions: &BTreeSet<(String, i32)>,
    ) {
        let mut map = self.producers.write().unwrap_or_else(|e| e.into_inner());
        map.insert(
            producer_id,
            Entry {
                epoch,
                open,
                partitions: if open {
                    partitions.clone()
                } else {
                    BTreeSet::new()
                },
            },
        );
    }

    /// Forgets a producer id that its transactional id no longer uses.
    pub(crate) fn remove(&self, producer_id: i64) {
        let mut map = self.producers.write().unwrap_or_else(|e| e.into_inner());
        map.remove(&producer_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_added_partitions_of_an_open_transaction_at_the_current_epoch() {
        let g = TxnGate::default();
        assert!(g.check(1, 0, "t", 0).is_err());
        let parts: BTreeSet<_> = [("t".to_string(), 0)].into_iter().collect();
        g.set(1, 2, true, &parts);
        assert!(g.check(1, 2, "t", 0).is_ok());
        assert!(matches!(
            g.check(1, 2, "t", 1),
            Err(PartitionError::NotInTransaction { .. })
        ));
        assert!(matches!(
            g.check(1, 1, "t", 0),
            Err(PartitionError::StaleEpoch { current: 2, got: 1 })
        ));
        g.set(1, 2, false, &parts);
        assert!(g.check(1, 2, "t", 0).is_err());
        g.set(1, 2, true, &parts);
        g.remove(1);
        assert!(g.check(1, 2, "t", 0).is_err());
    }
}
