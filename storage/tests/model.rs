//! Random operations against an in-memory model (a Vec of stored batches), on real files with
//! small segments so rolls, index lookups and reopen (clean and unclean) all happen.

mod common;

use common::{base_of, batch, read_everything, small_config, split_batches};
use eddy_protocol::batch::BatchHeader;
use eddy_storage::{PartitionLog, StorageError};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: usize,
        value_len: usize,
        ts: i64,
    },
    Read {
        at: u16,
        max_bytes: usize,
    },
    Flush,
    Reopen {
        clean: bool,
    },
    DeleteRecords {
        at: u16,
    },
    Timestamp {
        ts: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..6, 0usize..400, 0i64..1000)
            .prop_map(|(records, value_len, ts)| Op::Append { records, value_len, ts }),
        4 => (any::<u16>(), 0usize..3000).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => Just(Op::Flush),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => any::<u16>().prop_map(|at| Op::DeleteRecords { at }),
        1 => (0i64..1100).prop_map(|ts| Op::Timestamp { ts }),
    ]
}

fn last_of(b: &[u8]) -> i64 {
    BatchHeader::parse(b).expect("model batch").last_offset()
}
fn ts_of(b: &[u8]) -> i64 {
    BatchHeader::parse(b).expect("model batch").max_timestamp()
}

/// Picks an offset in `[start, end]` from a random number.
fn pick(at: u16, start: i64, end: i64) -> i64 {
    start + i64::from(at) % (end - start + 1)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..120)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = small_config();
        config.index_interval_bytes = 200;
        let (mut log, _) = PartitionLog::open(dir.path(), config.clone()).expect("open");
        let mut model: Vec<Vec<u8>> = Vec::new();
        let mut start = 0i64;
        for op in ops {
            let end = model.last().map_or(0, |b| last_of(b) + 1);
            match op {
                Op::Append { records, value_len, ts } => {
                    let mut b = batch(ts, records, value_len);
                    let info = log.append(&mut b).expect("append");
                    prop_assert_eq!(info.base_offset, end);
                    prop_assert_eq!(info.last_offset, end + records as i64 - 1);
                    model.push(b);
                }
                Op::Read { at, max_bytes } => {
                    let offset = pick(at, start, end);
                    let r = log.reader().read(offset, max_bytes).expect("read");
                    prop_assert_eq!((r.log_start_offset, r.log_end_offset), (start, end));
                    let got = split_batches(&r.bytes);
                    let first = model.iter().position(|b| last_of(b) >= offset);
                    match first {
                        None => prop_assert!(got.is_empty()),
                        Some(i) => {
                            prop_assert!(!got.is_empty(), "no data at {}", offset);
                            prop_assert_eq!(&got[..], &model[i..i + got.len()]);
                            if got.len() > 1 {
                                prop_assert!(r.bytes.len() <= max_bytes);
                            }
                        }
                    }
                }
                Op::Flush => log.flush().expect("flush"),
                Op::Reopen { clean } => {
                    if clean {
                        log.close().expect("close");
                    } else {
                        drop(log);
                    }
                    let (reopened, report) =
                        PartitionLog::open(dir.path(), config.clone()).expect("reopen");
                    prop_assert_eq!(report.previous_shutdown_clean, clean);
                    prop_assert!(report.truncations.is_empty(), "{}", report);
                    if clean {
                        prop_assert!(report.segments_validated.is_empty(), "{}", report);
                    }
                    log = reopened;
                    prop_assert_eq!(log.log_end_offset(), end);
                    prop_assert_eq!(log.log_start_offset(), start);
                }
                Op::DeleteRecords { at } => {
                    let target = pick(at, start, end);
                    prop_assert_eq!(log.delete_records_before(target).expect("delete"), target);
                    start = target;
                    let beyond = log.delete_records_before(end + 1);
                    let out_of_range = matches!(beyond, Err(StorageError::OffsetOutOfRange { .. }));
                    prop_assert!(out_of_range, "{:?}", beyond);
                }
                Op::Timestamp { ts } => {
                    let live = model.iter().filter(|b| last_of(b) >= start);
                    let expected = live
                        .clone()
                        .find(|b| ts_of(b) >= ts)
                        .map(|b| (base_of(b).max(start), ts_of(b)));
                    prop_assert_eq!(log.reader().offset_for_timestamp(ts).expect("lookup"), expected);
                    let max = live.clone().map(|b| ts_of(b)).max();
                    let expected_max = max.and_then(|m| {
                        live.clone().find(|b| ts_of(b) == m).map(|b| (m, base_of(b).max(start)))
                    });
                    prop_assert_eq!(log.reader().max_timestamp().expect("max"), expected_max);
                }
            }
        }
        let from_start: Vec<Vec<u8>> =
            model.iter().filter(|b| last_of(b) >= start).cloned().collect();
        prop_assert_eq!(read_everything(&log.reader(), start), from_start);
    }
}
