//! Compaction against a model: random appends (keys from a small set, some tombstones, null
//! keys, all codecs), rolls through small segments, compactions at random times (in-line, or
//! planned with appends between plan and install), reopens. After every step the log must
//! hold, per the model: every record at its original offset with its original content, no
//! record the model lacks, offsets strictly increasing, everything after the cleaned range,
//! every null-key record, each key's latest value, and the same final state per key as the
//! model (a removed tombstone never lets an older value come back).

mod common;

use std::collections::HashMap;

use common::{decode_records, keyed_batch, read_everything, small_config, Kv, Rec};
use eddy_protocol::batch::Compression;
use eddy_storage::{CompactionReport, LogConfig, PartitionLog};
use proptest::prelude::*;

const DELETE_RETENTION_MS: i64 = 50;

#[derive(Debug, Clone)]
struct Batch {
    /// Key index (None: null key) and whether the record is a tombstone.
    records: Vec<(Option<u8>, bool)>,
    ts_step: i64,
    codec: Compression,
}

#[derive(Debug, Clone)]
enum Op {
    Append(Batch),
    /// Compact at `now = latest timestamp + delta`.
    Compact {
        delta: i64,
    },
    /// Plan, append these, then run and install.
    CompactAround {
        delta: i64,
        appends: Vec<Batch>,
    },
    Reopen {
        clean: bool,
    },
}

fn codec() -> impl Strategy<Value = Compression> {
    prop_oneof![
        6 => Just(Compression::None),
        1 => Just(Compression::Gzip),
        1 => Just(Compression::Lz4),
        1 => Just(Compression::Snappy),
        1 => Just(Compression::Zstd),
    ]
}

fn batch() -> impl Strategy<Value = Batch> {
    let record = (
        prop_oneof![12 => (0u8..6).prop_map(Some), 1 => Just(None)],
        proptest::bool::weighted(0.2),
    );
    (proptest::collection::vec(record, 1..5), 0i64..30, codec()).prop_map(
        |(records, ts_step, codec)| Batch {
            records,
            ts_step,
            codec,
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => batch().prop_map(Op::Append),
        3 => (-10i64..150).prop_map(|delta| Op::Compact { delta }),
        1 => ((-10i64..150), proptest::collection::vec(batch(), 1..6))
            .prop_map(|(delta, appends)| Op::CompactAround { delta, appends }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

/// One appended record.
#[derive(Debug, Clone)]
struct MRec {
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    batch_ts: i64,
}

#[derive(Debug, Default)]
struct Model {
    all: Vec<MRec>,
    ts: i64,
    values: u64,
    /// Largest end offset of a compaction that was installed.
    cleaned_end: i64,
    /// Largest `now` of an installed compaction (tombstones older than it minus
    /// delete.retention.ms may be gone).
    max_now: i64,
}

impl Model {
    fn append(&mut self, log: &mut PartitionLog, b: &Batch) {
        self.ts += b.ts_step;
        let strings: Vec<(Option<String>, Option<String>)> = b
            .records
            .iter()
            .map(|(k, tomb)| {
                self.values += 1;
                let value = (!tomb).then(|| format!("v{}-{}", self.values, "p".repeat(24)));
                (k.map(|k| format!("key{k}")), value)
            })
            .collect();
        let kvs: Vec<Kv<'_>> = strings
            .iter()
            .map(|(k, v)| (k.as_deref(), v.as_deref()))
            .collect();
        let mut bytes = keyed_batch(self.ts, &kvs, b.codec);
        let info = log.append(&mut bytes).expect("append");
        for (i, (k, v)) in strings.into_iter().enumerate() {
            self.all.push(MRec {
                offset: info.base_offset + i as i64,
                key: k.map(String::into_bytes),
                value: v.map(String::into_bytes),
                batch_ts: self.ts,
            });
        }
    }

    fn installed(&mut self, r: &CompactionReport, now: i64) {
        if !r.discarded && r.end_offset > 0 {
            self.cleaned_end = self.cleaned_end.max(r.end_offset);
            self.max_now = self.max_now.max(now);
        }
    }

    fn check(&self, log: &PartitionLog) -> Result<(), TestCaseError> {
        let got: Vec<Rec> = decode_records(&read_everything(&log.reader(), 0));
        let by_offset: HashMap<i64, &MRec> = self.all.iter().map(|r| (r.offset, r)).collect();
        for r in &got {
            let m = by_offset.get(&r.offset);
            prop_assert!(m.is_some(), "offset {} is not in the model", r.offset);
            let m = m.expect("checked");
            prop_assert_eq!(
                (&r.key, &r.value),
                (&m.key, &m.value),
                "offset {}",
                r.offset
            );
        }
        let present: HashMap<i64, &Rec> = got.iter().map(|r| (r.offset, r)).collect();
        let mut latest: HashMap<&[u8], &MRec> = HashMap::new();
        for m in &self.all {
            if let Some(k) = &m.key {
                latest.insert(k, m);
            }
        }
        for (i, m) in self.all.iter().enumerate() {
            if present.contains_key(&m.offset) {
                continue;
            }
            prop_assert!(
                m.offset < self.cleaned_end,
                "{} removed outside a compaction",
                m.offset
            );
            let Some(key) = &m.key else {
                return Err(TestCaseError::fail(format!(
                    "null-key record {} removed",
                    m.offset
                )));
            };
            let superseded = self.all[i + 1..]
                .iter()
                .any(|l| l.offset < self.cleaned_end && l.key.as_ref() == Some(key));
            let expired_tombstone =
                m.value.is_none() && m.batch_ts < self.max_now - DELETE_RETENTION_MS;
            prop_assert!(
                superseded || expired_tombstone,
                "{} removed without reason",
                m.offset
            );
        }
        for (key, l) in &latest {
            if l.value.is_some() {
                prop_assert!(
                    present.contains_key(&l.offset),
                    "latest of a key lost: {}",
                    l.offset
                );
            }
            let last_seen = got.iter().rev().find(|r| r.key.as_deref() == Some(*key));
            let state = last_seen.and_then(|r| r.value.as_ref());
            prop_assert_eq!(state, l.value.as_ref(), "final state of {:?}", key);
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn compaction_matches_the_model(
        ops in proptest::collection::vec(op(), 1..60),
        segment_bytes in 250u64..900,
        lag in prop_oneof![Just(0i64), Just(20i64)],
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            segment_bytes,
            index_interval_bytes: 100,
            compact: true,
            delete_retention_ms: DELETE_RETENTION_MS,
            min_compaction_lag_ms: lag,
            ..small_config()
        };
        let (mut log, _) = PartitionLog::open(dir.path(), config.clone()).expect("open");
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Append(b) => model.append(&mut log, &b),
                Op::Compact { delta } => {
                    let now = model.ts + delta;
                    let r = log.compact(now).expect("compact");
                    model.installed(&r, now);
                }
                Op::CompactAround { delta, appends } => {
                    let now = model.ts + delta;
                    let plan = log.compaction_plan(now);
                    for b in &appends {
                        model.append(&mut log, b);
                    }
                    if let Some(plan) = plan {
                        let done = plan.run().expect("run");
                        let r = log.install_compaction(done).expect("install");
                        prop_assert!(!r.discarded);
                        model.installed(&r, now);
                    }
                }
                Op::Reopen { clean } => {
                    if clean {
                        log.close().expect("close");
                    } else {
                        drop(log);
                    }
                    let (reopened, report) =
                        PartitionLog::open(dir.path(), config.clone()).expect("reopen");
                    prop_assert!(report.truncations.is_empty(), "{}", report);
                    prop_assert!(report.segments_deleted.is_empty(), "{}", report);
                    prop_assert!(report.trust_failures.is_empty(), "{}", report);
                    log = reopened;
                }
            }
            model.check(&log)?;
        }
        // A final compaction far in the future leaves at most the latest record per key and no
        // expired tombstone, except the one record that may have to end the cleaned range.
        let now = model.ts + 10_000;
        let r = log.compact(now).expect("compact");
        model.installed(&r, now);
        model.check(&log)?;
    }
}
