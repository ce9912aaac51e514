//! Idempotent producers: producer-id allocation (never repeating across restarts) and the
//! per-partition sequence state that turns retried batches into duplicates instead of
//! second copies.
//!
//! Per partition the writer task keeps, for each producer id, its epoch and the last five
//! batches it wrote (first/last sequence, offsets), as the Java client keeps up to five
//! batches in flight, and the partition's transaction index (open transactions and aborted
//! ones, see `txn::index`). The state is rebuilt at start-up from a snapshot written at clean
//! shutdown plus a scan of batch headers written after it (or of the whole log without one).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use eddy_protocol::batch::{batch_size_at, BatchHeader};
use eddy_storage::LogReader;
use serde::{Deserialize, Serialize};

use crate::topics::write_atomic;
use crate::txn::index::TxnIndex;
use crate::txn::markers::{self, Marker};

/// Batches remembered per producer (the Java client's max.in.flight for idempotence).
const CACHED_BATCHES: usize = 5;
/// Producer ids reserved (and persisted) at a time.
const ID_BLOCK: i64 = 1000;

/// Hands out producer ids; the next unreserved block is persisted before ids from it are
/// used, so ids never repeat, even after a crash.
#[derive(Debug)]
pub(crate) struct ProducerIds {
    path: PathBuf,
    /// (next id to hand out, end of the reserved block)
    state: Mutex<(i64, i64)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct IdsFile {
    next_block: i64,
}

impl ProducerIds {
    pub(crate) fn load(data_dir: &Path) -> std::io::Result<ProducerIds> {
        let path = data_dir.join("meta").join("producer-ids.json");
        let next = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice::<IdsFile>(&b)
                .map(|f| f.next_block)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(ProducerIds {
            path,
            state: Mutex::new((next, next)),
        })
    }

    /// A fresh producer id. Blocking (may write the reservation file).
    pub(crate) fn next(&self) -> std::io::Result<i64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.0 >= s.1 {
            let end = s.1 + ID_BLOCK;
            let bytes = serde_json::to_vec(&IdsFile { next_block: end })?;
            write_atomic(&self.path, &bytes)?;
            s.1 = end;
        }
        let id = s.0;
        s.0 += 1;
        Ok(id)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
struct CachedBatch {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
    last_offset: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct Entry {
    epoch: i16,
    batches: VecDeque<CachedBatch>,
    /// Max timestamp of the producer's last batch (DescribeProducers).
    #[serde(default)]
    last_timestamp: i64,
}

/// One producer as DescribeProducers reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProducerInfo {
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
    pub(crate) last_sequence: i32,
    pub(crate) last_timestamp: i64,
    /// First offset of its open transaction here, -1 if none.
    pub(crate) txn_start_offset: i64,
}

/// Outcome of checking a batch against the producer state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqCheck {
    /// Not idempotent, or the next batch in sequence: append it.
    Append,
    /// Already written: answer with the original offsets, write nothing.
    Duplicate { base_offset: i64, last_offset: i64 },
    /// Kafka's OUT_OF_ORDER_SEQUENCE_NUMBER.
    OutOfOrder { expected: i32, got: i32 },
    /// Kafka's INVALID_PRODUCER_EPOCH: an older epoch of a producer that has moved on.
    StaleEpoch { current: i16, got: i16 },
}

/// Sequence state of one partition.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct ProducerState {
    producers: HashMap<i64, Entry>,
    /// Offset up to which the state reflects the log (exclusive).
    pub(crate) valid_to: i64,
    /// Open and aborted transactions in this partition.
    #[serde(default)]
    pub(crate) txns: TxnIndex,
    /// When the last snapshot was written, and up to which offset it reached.
    #[serde(skip)]
    last_saved: Option<(std::time::Instant, i64)>,
}

/// How often (at most) a partition writes its producer-state snapshot while running.
const SNAPSHOT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

fn next_seq(s: i32) -> i32 {
    if s == i32::MAX {
        0
    } else {
        s + 1
    }
}

impl ProducerState {
    /// Checks a batch before it is appended.
    pub(crate) fn check(&self, h: &BatchHeader<'_>) -> SeqCheck {
        let pid = h.producer_id();
        // Markers come from the coordinator (clients may not write control batches) and
        // carry no sequence.
        if pid < 0 || h.is_control() {
            return SeqCheck::Append;
        }
        let epoch = h.producer_epoch();
        let first = h.base_sequence();
        let last = first.wrapping_add(h.last_offset_delta());
        let Some(e) = self.producers.get(&pid) else {
            return SeqCheck::Append;
        };
        if epoch < e.epoch {
            return SeqCheck::StaleEpoch {
                current: e.epoch,
                got: epoch,
            };
        }
        if epoch > e.epoch {
            return if first == 0 {
                SeqCheck::Append
            } else {
                SeqCheck::OutOfOrder {
                    expected: 0,
                    got: first,
                }
            };
        }
        if let Some(b) = e
            .batches
            .iter()
            .find(|b| b.first_seq == first && b.last_seq == last)
        {
            return SeqCheck::Duplicate {
                base_offset: b.base_offset,
                last_offset: b.last_offset,
            };
        }
        match e.batches.back() {
            Some(b) if first != next_seq(b.last_seq) => SeqCheck::OutOfOrder {
                expected: next_seq(b.last_seq),
                got: first,
            },
            _ => SeqCheck::Append,
        }
    }

    /// Every producer with state here (DescribeProducers).
    pub(crate) fn describe(&self) -> Vec<ProducerInfo> {
        let mut v: Vec<ProducerInfo> = self
            .producers
            .iter()
            .map(|(pid, e)| ProducerInfo {
                producer_id: *pid,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                txn_start_offset: self.txns.open_since(*pid).unwrap_or(-1),
            })
            .collect();
        v.sort_by_key(|p| p.producer_id);
        v
    }

    /// The last sequence `pid` wrote, if its state is still held.
    pub(crate) fn last_sequence(&self, pid: i64) -> Option<i32> {
        self.producers.get(&pid)?.batches.back().map(|b| b.last_seq)
    }

    /// Records a batch that is now in the log (at its final offsets).
    pub(crate) fn record(&mut self, h: &BatchHeader<'_>) {
        self.valid_to = self.valid_to.max(h.last_offset() + 1);
        let pid = h.producer_id();
        if pid < 0 {
            return;
        }
        if h.is_control() {
            if let Some(m) = markers::parse(h) {
                self.txns.marker(pid, h.base_offset(), m == Marker::Abort);
            }
            // A marker at a newer epoch (a fencing abort) fences older epochs here too; the
            // next batch of the new epoch starts at sequence 0.
            let e = self.producers.entry(pid).or_default();
            if h.producer_epoch() > e.epoch {
                e.epoch = h.producer_epoch();
                e.batches.clear();
            }
            return;
        }
        if h.is_transactional() {
            self.txns.data(pid, h.base_offset());
        }
        let e = self.producers.entry(pid).or_default();
        e.last_timestamp = h.max_timestamp();
        if h.producer_epoch() != e.epoch {
            e.epoch = h.producer_epoch();
            e.batches.clear();
        }
        e.batches.push_back(CachedBatch {
            first_seq: h.base_sequence(),
            last_seq: h.base_sequence().wrapping_add(h.last_offset_delta()),
            base_offset: h.base_offset(),
            last_offset: h.last_offset(),
        });
        while e.batches.len() > CACHED_BATCHES {
            e.batches.pop_front();
        }
    }

    fn snapshot_path(dir: &Path) -> PathBuf {
        dir.join("producer-state.json")
    }

    /// Loads the snapshot (if it matches the log) and scans batch headers after it.
    pub(crate) fn rebuild(dir: &Path, reader: &LogReader) -> ProducerState {
        let start = reader.log_start_offset();
        let end = reader.log_end_offset();
        let mut state = std::fs::read(Self::snapshot_path(dir))
            .ok()
            .and_then(|b| serde_json::from_slice::<ProducerState>(&b).ok())
            .filter(|s| s.valid_to <= end)
            .unwrap_or_default();
        // A snapshot may cover data that was cut by recovery: then it is ahead of the log
        // (filtered above). Start the scan where the snapshot ends.
        let mut offset = state.valid_to.max(start);
        if state.valid_to < start {
            state.valid_to = start;
        }
        let mut scanned = 0usize;
        while offset < end {
            let Ok(chunk) = reader.read(offset, 4 * 1024 * 1024) else {
                break;
            };
            let data = chunk.bytes;
            if data.is_empty() {
                break;
            }
            let mut pos = 0usize;
            let mut next = offset;
            while let Some(size) = batch_size_at(&data[pos..]) {
                if pos + size > data.len() {
                    break;
                }
                if let Ok(h) = BatchHeader::parse(&data[pos..pos + size]) {
                    if h.last_offset() >= offset {
                        state.record(&h);
                    }
                    next = h.last_offset() + 1;
                }
                pos += size;
                scanned += 1;
            }
            if next <= offset {
                break;
            }
            offset = next;
        }
        state.valid_to = state.valid_to.max(end);
        if scanned > 0 {
            tracing::debug!(dir = %dir.display(), batches = scanned, producers = state.producers.len(), "rebuilt producer state");
        }
        state
    }

    /// Writes a snapshot if the last one is older than a minute and the state moved since:
    /// after a crash, start-up then scans only the batches after it. Call only when the log
    /// is durable up to `valid_to` (a snapshot ahead of the recovered log is ignored, which
    /// costs a full rescan but is never wrong).
    pub(crate) fn maybe_save(&mut self, dir: &Path) {
        let now = std::time::Instant::now();
        let due = match self.last_saved {
            None => self.valid_to > 0,
            Some((at, to)) => now.duration_since(at) >= SNAPSHOT_EVERY && self.valid_to > to,
        };
        if due {
            self.save(dir);
            self.last_saved = Some((now, self.valid_to));
        }
    }

    /// Writes the snapshot (at clean close) so the next start scans nothing.
    pub(crate) fn save(&self, dir: &Path) {
        match serde_json::to_vec(self) {
            Ok(b) => {
                if let Err(e) = write_atomic(&Self::snapshot_path(dir), &b) {
                    tracing::warn!(dir = %dir.display(), error = %e, "could not write the producer state snapshot; the next start will rescan the log");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not encode the producer state"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_protocol::batch::{build_batch, set_producer};

    fn idem_batch(base_offset: i64, pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
        let values: Vec<&[u8]> = (0..n).map(|_| b"v".as_slice()).collect();
        let mut b = build_batch(base_offset, 1, &values);
        set_producer(&mut b, pid, epoch, seq);
        b
    }

    #[test]
    fn sequences_duplicates_and_epochs() {
        let mut s = ProducerState::default();
        let b0 = idem_batch(0, 7, 0, 0, 3);
        let h0 = BatchHeader::parse(&b0).expect("parse");
        h0.verify_crc().expect("crc");
        assert_eq!(s.check(&h0), SeqCheck::Append);
        s.record(&h0);
        // The same batch again is a duplicate with its original offsets.
        assert_eq!(
            s.check(&h0),
            SeqCheck::Duplicate {
                base_offset: 0,
                last_offset: 2
            }
        );
        // A gap is out of order.
        let gap = idem_batch(3, 7, 0, 5, 1);
        assert_eq!(
            s.check(&BatchHeader::parse(&gap).expect("parse")),
            SeqCheck::OutOfOrder {
                expected: 3,
                got: 5
            }
        );
        let b1 = idem_batch(3, 7, 0, 3, 2);
        let h1 = BatchHeader::parse(&b1).expect("parse");
        assert_eq!(s.check(&h1), SeqCheck::Append);
        s.record(&h1);
        // A new epoch must start at sequence 0; the old epoch is then stale.
        let e1 = idem_batch(5, 7, 1, 0, 1);
        let he1 = BatchHeader::parse(&e1).expect("parse");
        assert_eq!(s.check(&he1), SeqCheck::Append);
        s.record(&he1);
        let old = idem_batch(6, 7, 0, 5, 1);
        assert_eq!(
            s.check(&BatchHeader::parse(&old).expect("parse")),
            SeqCheck::StaleEpoch { current: 1, got: 0 }
        );
        // Non-idempotent batches are never checked.
        let plain = build_batch(0, 1, &[b"x"]);
        assert_eq!(
            s.check(&BatchHeader::parse(&plain).expect("parse")),
            SeqCheck::Append
        );
    }

    fn txn_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
        let mut b = idem_batch(0, pid, epoch, seq, n);
        // Transactional attribute bit; set_producer recomputes the CRC over it.
        b[22] |= 0x10;
        set_producer(&mut b, pid, epoch, seq);
        b
    }

    #[test]
    fn transaction_index_is_rebuilt_from_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) =
            eddy_storage::PartitionLog::open(dir.path(), eddy_storage::LogConfig::default())
                .expect("open");
        let mut live = ProducerState::default();
        let mut append = |log: &mut eddy_storage::PartitionLog, mut b: Vec<u8>| {
            log.append(&mut b).expect("append");
            live.record(&BatchHeader::parse(&b).expect("parse"));
        };
        append(&mut log, txn_batch(1, 0, 0, 2)); // 0..=1, producer 1 (aborted below)
        append(&mut log, build_batch(0, 1, &[b"plain"])); // 2
        append(&mut log, txn_batch(2, 0, 0, 1)); // 3, producer 2 (committed below)
        append(&mut log, markers::build(1, 1, Marker::Abort, 1)); // 4, fencing epoch 1
        append(&mut log, markers::build(2, 0, Marker::Commit, 1)); // 5
        append(&mut log, txn_batch(3, 0, 0, 1)); // 6, producer 3 stays open
        append(&mut log, build_batch(0, 1, &[b"after"])); // 7
        let end = log.log_end_offset();
        assert_eq!(end, 8);
        let check = |s: &mut ProducerState| {
            let v = s.txns.view(end, &Default::default());
            assert_eq!(v.lso, 6, "the open transaction of producer 3 holds the LSO");
            assert_eq!(v.aborted.len(), 1);
            assert_eq!(
                (
                    v.aborted[0].producer_id,
                    v.aborted[0].first_offset,
                    v.aborted[0].last_offset
                ),
                (1, 0, 4)
            );
            // The fencing marker moved producer 1 to epoch 1: epoch 0 is stale now.
            let stale = txn_batch(1, 0, 2, 1);
            assert_eq!(
                s.check(&BatchHeader::parse(&stale).expect("parse")),
                SeqCheck::StaleEpoch { current: 1, got: 0 }
            );
            let d = s.describe();
            assert_eq!(
                d.iter()
                    .find(|p| p.producer_id == 3)
                    .map(|p| p.txn_start_offset),
                Some(6)
            );
            assert_eq!(
                d.iter()
                    .find(|p| p.producer_id == 2)
                    .map(|p| p.txn_start_offset),
                Some(-1)
            );
        };
        check(&mut live);
        let reader = log.reader();
        // No snapshot: a full scan rebuilds the same state.
        let mut rebuilt = ProducerState::rebuild(dir.path(), &reader);
        check(&mut rebuilt);
        // From a snapshot too.
        rebuilt.save(dir.path());
        let mut reloaded = ProducerState::rebuild(dir.path(), &reader);
        check(&mut reloaded);
    }

    #[test]
    fn periodic_snapshots_are_written_once_per_interval_when_the_state_moved() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = ProducerState::snapshot_path(dir.path());
        let mut s = ProducerState::default();
        s.maybe_save(dir.path());
        assert!(!path.exists(), "nothing to save for an empty log");
        s.valid_to = 10;
        s.maybe_save(dir.path());
        assert!(
            path.exists(),
            "the first flush after start writes a snapshot"
        );
        std::fs::remove_file(&path).expect("rm");
        s.valid_to = 20;
        s.maybe_save(dir.path());
        assert!(!path.exists(), "not again within the interval");
        s.last_saved = s
            .last_saved
            .map(|(at, to)| (at - SNAPSHOT_EVERY - std::time::Duration::from_secs(1), to));
        s.maybe_save(dir.path());
        assert!(
            path.exists(),
            "again once the interval passed and the state moved"
        );
    }

    #[test]
    fn producer_ids_never_repeat_across_reloads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = ProducerIds::load(dir.path()).expect("load");
        let a: Vec<i64> = (0..3).map(|_| ids.next().expect("id")).collect();
        drop(ids);
        let ids = ProducerIds::load(dir.path()).expect("reload");
        let b = ids.next().expect("id");
        assert!(a.iter().all(|x| *x < b), "{a:?} then {b}");
    }
}
