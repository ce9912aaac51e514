//! Recovery, corruption, fault injection and simulated crashes.

mod common;

use std::path::{Path, PathBuf};

use common::{base_of, batch, read_everything, small_config};
use eddy_protocol::batch::BatchHeader;
use eddy_storage::sim::{CrashOptions, SimIo};
use eddy_storage::{LogConfig, PartitionLog, StorageError};
use proptest::prelude::*;

fn fill(log: &mut PartitionLog, n: usize, value_len: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut b = batch(i as i64, 1 + i % 3, value_len);
            log.append(&mut b).expect("append");
            b
        })
        .collect()
}

fn seg_path(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

fn last_log_file(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().expect("a log file")
}

#[test]
fn empty_directory_opens_as_an_empty_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("new-partition");
    let (log, report) = PartitionLog::open(&path, LogConfig::default()).expect("open");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert!(report.created_segment);
    assert!(seg_path(&path, 0, "log").exists());
    assert!(log.reader().read(0, 100).expect("read").bytes.is_empty());
    println!("{report}");
}

#[test]
fn clean_restart_validates_nothing_and_unclean_only_the_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), small_config()).expect("open");
    let mut stored = fill(&mut log, 60, 100);
    log.close().expect("close");

    let (mut log, report) = PartitionLog::open(dir.path(), small_config()).expect("reopen");
    assert!(report.previous_shutdown_clean, "{report}");
    assert!(report.segments_validated.is_empty(), "{report}");
    assert_eq!(report.bytes_validated, 0);
    assert!(report.segments_trusted.len() > 3);
    assert_eq!(read_everything(&log.reader(), 0), stored);

    // Roll, flush (recovery point moves to the active segment), append more, crash.
    stored.extend(fill(&mut log, 30, 100));
    log.flush().expect("flush");
    let mut b = batch(0, 1, 10);
    let flushed_segment = log.append(&mut b).expect("append").segment_base_offset;
    stored.push(b);
    let mut b = batch(0, 1, 3000);
    log.append(&mut b).expect("append");
    stored.push(b);
    stored.extend(fill(&mut log, 3, 10));
    drop(log);
    let (log, report) = PartitionLog::open(dir.path(), small_config()).expect("reopen");
    assert!(!report.previous_shutdown_clean);
    // Only the segments from the one active at the last flush on are read in full.
    assert_eq!(
        report.segments_validated.first(),
        Some(&flushed_segment),
        "{report}"
    );
    assert!(
        report.segments_trusted.iter().all(|&b| b < flushed_segment),
        "{report}"
    );
    assert!(report.segments_trusted.len() > 3, "{report}");
    assert!(report.truncations.is_empty(), "{report}");
    assert_eq!(read_everything(&log.reader(), 0), stored);
}

/// Damage the tail of the active segment after a crash and check the log reopens with
/// exactly the batches before the damage and keeps going.
#[test]
fn corrupt_or_torn_tail_is_truncated() {
    type Damage = fn(&mut Vec<u8>, usize);
    let cases: Vec<(&str, Damage)> = vec![
        ("torn last batch", |f, last| f.truncate(last + 30)),
        ("short header", |f, last| f.truncate(last + 7)),
        ("flipped record byte", |f, _| {
            let n = f.len();
            f[n - 3] ^= 0x40;
        }),
        ("flipped CRC", |f, last| f[last + 18] ^= 1),
        ("bad magic", |f, last| f[last + 16] = 1),
        ("length beyond the end", |f, last| f[last + 8] = 0x7f),
        ("zeroed tail", |f, last| {
            for b in &mut f[last..] {
                *b = 0;
            }
        }),
        ("preallocated zeros after the last batch", |f, _| {
            f.extend(vec![0u8; 4096])
        }),
        ("garbage after the last batch", |f, _| {
            f.extend((0..200u8).map(|i| i.wrapping_mul(37)))
        }),
        ("wrong base offset", |f, last| f[last + 7] ^= 0x10),
    ];
    for (name, damage) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            index_interval_bytes: 64,
            ..LogConfig::default()
        };
        let (mut log, _) = PartitionLog::open(dir.path(), config.clone()).expect("open");
        let stored = fill(&mut log, 20, 50);
        log.flush().expect("flush");
        drop(log); // crash: no clean-shutdown record
        let path = last_log_file(dir.path());
        let mut bytes = std::fs::read(&path).expect("read");
        let last_len = stored.last().map(Vec::len).unwrap_or(0);
        let last_pos = bytes.len() - last_len;
        damage(&mut bytes, last_pos);
        std::fs::write(&path, &bytes).expect("write");
        let survived = if name.contains("after the last batch") {
            20
        } else {
            19
        };

        let (mut log, report) = PartitionLog::open(dir.path(), config).expect("reopen");
        assert_eq!(report.truncations.len(), 1, "{name}: {report}");
        let t = &report.truncations[0];
        let expected_pos = if survived == 20 {
            last_pos + last_len
        } else {
            last_pos
        };
        assert_eq!(t.position as usize, expected_pos, "{name}");
        assert_eq!(
            read_everything(&log.reader(), 0),
            stored[..survived].to_vec(),
            "{name}"
        );
        let end = log.log_end_offset();
        let mut b = batch(5, 2, 5);
        assert_eq!(
            log.append(&mut b).expect("append").base_offset,
            end,
            "{name}"
        );
        assert_eq!(
            read_everything(&log.reader(), 0).len(),
            survived + 1,
            "{name}"
        );
    }
}

#[test]
fn damage_in_the_middle_truncates_there_and_drops_later_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), small_config()).expect("open");
    let stored = fill(&mut log, 40, 100);
    drop(log);
    // No checkpoint: nothing can be trusted, every segment is validated.
    std::fs::remove_file(dir.path().join("partition.checkpoint")).expect("rm checkpoint");
    let first = seg_path(dir.path(), 0, "log");
    let mut bytes = std::fs::read(&first).expect("read");
    let second_batch = stored[0].len();
    bytes[second_batch + 40] ^= 0xff;
    std::fs::write(&first, &bytes).expect("write");
    let (log, report) = PartitionLog::open(dir.path(), small_config()).expect("reopen");
    assert_eq!(
        report.truncations[0].position as usize, second_batch,
        "{report}"
    );
    assert!(!report.segments_deleted.is_empty(), "{report}");
    assert_eq!(read_everything(&log.reader(), 0), stored[..1].to_vec());
    assert_eq!(log.log_end_offset(), 1);
    // The surviving segment is active again: appends, index entries and rolls continue.
    let mut log = log;
    let mut all = stored[..1].to_vec();
    for b in fill(&mut log, 40, 100) {
        all.push(b);
    }
    assert_eq!(read_everything(&log.reader(), 0), all);
    for b in &all {
        let r = log.reader().read(base_of(b), 1).expect("read");
        assert_eq!(&r.bytes[..], &b[..]);
    }
}

#[test]
fn missing_or_damaged_indexes_are_rebuilt_identically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), small_config()).expect("open");
    let stored = fill(&mut log, 60, 100);
    let bases: Vec<i64> = {
        let r = log.reader();
        let mut v = vec![0];
        // Segment bases from file names.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".log"))
            .collect();
        names.sort();
        v.extend(
            names
                .iter()
                .skip(1)
                .filter_map(|n| n[..20].parse::<i64>().ok()),
        );
        assert!(r.log_end_offset() > 0);
        v
    };
    assert!(bases.len() >= 4);
    log.close().expect("close");
    let index1 = seg_path(dir.path(), bases[1], "index");
    let time2 = seg_path(dir.path(), bases[2], "timeindex");
    let original_index = std::fs::read(&index1).expect("read");
    let original_time = std::fs::read(&time2).expect("read");
    assert!(!original_index.is_empty());
    std::fs::remove_file(&index1).expect("rm");
    let mut t = original_time.clone();
    t.pop();
    std::fs::write(&time2, &t).expect("write");

    let (log, report) = PartitionLog::open(dir.path(), small_config()).expect("reopen");
    assert!(report.previous_shutdown_clean);
    assert_eq!(report.indexes_rebuilt, vec![bases[1], bases[2]], "{report}");
    assert!(report.truncations.is_empty());
    assert_eq!(std::fs::read(&index1).expect("read"), original_index);
    assert_eq!(std::fs::read(&time2).expect("read"), original_time);
    assert_eq!(read_everything(&log.reader(), 0), stored);
    for b in &stored {
        let r = log.reader().read(base_of(b), 1).expect("read");
        assert_eq!(&r.bytes[..], &b[..]);
    }
}

#[test]
fn stray_files_zero_byte_segments_and_a_damaged_checkpoint_are_handled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), small_config()).expect("open");
    let stored = fill(&mut log, 10, 10);
    log.close().expect("close");
    for name in [
        "partition.checkpoint.tmp",
        "00000000000000000000.log.cleaned",
        "00000000000000000003.index.deleted",
        "00000000000000009999.index",
        "00000000000000009999.timeindex",
    ] {
        std::fs::write(dir.path().join(name), b"junk").expect("write");
    }
    // A zero-byte segment at the log end (e.g. rolled just before a crash).
    let end = stored.last().map_or(0, |b| last_of(b) + 1);
    std::fs::write(seg_path(dir.path(), end, "log"), b"").expect("write");
    let (mut log, report) = PartitionLog::open(dir.path(), small_config()).expect("reopen");
    assert_eq!(report.stray_files_removed.len(), 5, "{report}");
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(read_everything(&log.reader(), 0), stored);
    assert_eq!(
        log.append(&mut batch(1, 1, 1))
            .expect("append")
            .segment_base_offset,
        end
    );
    log.close().expect("close");

    std::fs::write(dir.path().join("partition.checkpoint"), b"garbage").expect("write");
    let (log, report) = PartitionLog::open(dir.path(), small_config()).expect("reopen");
    assert!(report.checkpoint_problem.is_some());
    assert!(!report.previous_shutdown_clean);
    assert_eq!(log.log_end_offset(), end + 1);
    assert!(
        report.to_string().contains("checkpoint was ignored"),
        "{report}"
    );
}

#[test]
fn a_failed_fsync_latches_the_log() {
    let io = SimIo::new();
    let dir = Path::new("/data/t-0");
    let (mut log, _) = PartitionLog::open_with_io(dir, small_config(), io.as_io()).expect("open");
    let durable = fill(&mut log, 5, 10);
    log.flush().expect("flush");
    fill(&mut log, 3, 10);
    io.fail_nth_sync(1);
    let err = log.flush().expect_err("injected fsync failure");
    assert!(matches!(err, StorageError::Io { op: "fsync", .. }), "{err}");
    let syncs = io.sync_count();
    let writes = io.write_count();
    // Latched: no retry of fsync, no further writes.
    assert!(matches!(log.flush(), Err(StorageError::Failed { .. })));
    assert!(matches!(
        log.append(&mut batch(1, 1, 1)),
        Err(StorageError::Failed { .. })
    ));
    assert!(matches!(
        log.enforce_retention(0),
        Err(StorageError::Failed { .. })
    ));
    assert!(matches!(
        log.delete_records_before(1),
        Err(StorageError::Failed { .. })
    ));
    assert!(log.is_failed());
    assert_eq!((io.sync_count(), io.write_count()), (syncs, writes));
    let msg = log.flush().expect_err("latched").to_string();
    assert!(msg.contains("reopen"), "{msg}");
    // Readers still serve what was appended.
    assert_eq!(read_everything(&log.reader(), 0).len(), 8);
    assert!(matches!(log.close(), Err(StorageError::Failed { .. })));
    // Power loss, reopen: what the last successful flush covered is there.
    io.crash(CrashOptions::default());
    let (log, report) =
        PartitionLog::open_with_io(dir, small_config(), io.as_io()).expect("reopen");
    assert!(!report.previous_shutdown_clean);
    assert_eq!(read_everything(&log.reader(), 0), durable);
}

/// After a failed fsync the unflushed batches may read back fine (the kernel can keep pages
/// it failed to write, marked clean) and still never reach the disk. Reopening must cut them,
/// or acknowledged batches appended later would sit behind a hole after a power cut.
#[test]
fn reopening_after_a_failed_fsync_cuts_what_was_not_flushed() {
    let io = SimIo::new();
    let dir = Path::new("/data/t-reopen");
    let (mut log, _) = PartitionLog::open_with_io(dir, small_config(), io.as_io()).expect("open");
    // Enough to roll a few 2 KiB segments, so the cut can span segments.
    let mut durable = fill(&mut log, 20, 100);
    log.flush().expect("flush");
    let durable_end = log.log_end_offset();
    assert_eq!(log.durable_end_offset(), durable_end);
    fill(&mut log, 30, 100);
    io.fail_nth_sync(1);
    log.flush().expect_err("injected fsync failure");
    assert_eq!(log.durable_end_offset(), durable_end);
    // No crash: the unflushed batches are still readable from the simulated page cache.
    assert_eq!(read_everything(&log.reader(), 0).len(), 50);
    let (mut reopened, report) = log.reopener().open().expect("reopen");
    assert_eq!(reopened.log_end_offset(), durable_end, "{report}");
    assert_eq!(read_everything(&reopened.reader(), 0), durable);
    assert!(
        report
            .truncations
            .iter()
            .any(|t| t.reason.contains("last successful flush")),
        "{report}"
    );
    // New writes continue from the durable end and survive a power cut.
    let more = fill(&mut reopened, 5, 100);
    reopened.flush().expect("flush after reopening");
    durable.extend(more);
    io.crash(CrashOptions::default());
    let (log, _) = PartitionLog::open_with_io(dir, small_config(), io.as_io()).expect("open");
    assert_eq!(read_everything(&log.reader(), 0), durable);
}

/// Reopening a log that did not fail keeps everything (only a failure limits what is kept).
#[test]
fn reopening_a_healthy_log_keeps_unflushed_batches() {
    let io = SimIo::new();
    let dir = Path::new("/data/t-reopen-ok");
    let (mut log, _) = PartitionLog::open_with_io(dir, small_config(), io.as_io()).expect("open");
    let all = fill(&mut log, 10, 100);
    let (reopened, _) = log.reopener().open().expect("reopen");
    assert_eq!(read_everything(&reopened.reader(), 0), all);
}

#[test]
fn a_failed_write_latches_and_hides_the_batch() {
    let io = SimIo::new();
    let dir = Path::new("/data/t-1");
    let (mut log, _) = PartitionLog::open_with_io(dir, small_config(), io.as_io()).expect("open");
    let stored = fill(&mut log, 4, 10);
    io.fail_nth_write(1);
    let err = log
        .append(&mut batch(1, 1, 10))
        .expect_err("injected write failure");
    assert!(
        matches!(err, StorageError::Io { op: "write to", .. }),
        "{err}"
    );
    assert!(matches!(
        log.append(&mut batch(1, 1, 1)),
        Err(StorageError::Failed { .. })
    ));
    let reader = log.reader();
    assert_eq!(reader.log_end_offset(), log.log_end_offset());
    assert_eq!(read_everything(&reader, 0), stored);
}

// ---- Crash simulation against a model ----

#[derive(Debug, Clone)]
enum Op {
    Append { records: usize, value_len: usize },
    Flush,
    DeleteRecords { at: u16 },
    FailSync { nth: u64 },
    FailWrite { nth: u64 },
    RetainBytes { bytes: u64 },
    ExpireAll,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (1usize..4, 0usize..700).prop_map(|(records, value_len)| Op::Append { records, value_len }),
        3 => Just(Op::Flush),
        1 => any::<u16>().prop_map(|at| Op::DeleteRecords { at }),
        1 => (1u64..20).prop_map(|nth| Op::FailSync { nth }),
        1 => (1u64..60).prop_map(|nth| Op::FailWrite { nth }),
        1 => (0u64..8000).prop_map(|bytes| Op::RetainBytes { bytes }),
        1 => Just(Op::ExpireAll),
    ]
}

fn crash_options() -> impl Strategy<Value = CrashOptions> {
    (
        proptest::bool::weighted(0.7),
        proptest::option::weighted(0.6, 0usize..800),
    )
        .prop_map(|(keep_unsynced, torn)| CrashOptions {
            keep_unsynced,
            torn_last_write_bytes: torn,
        })
}

fn last_of(b: &[u8]) -> i64 {
    BatchHeader::parse(b).expect("model batch").last_offset()
}

/// Base offsets of every segment file currently in `dir`: after a failed retention run any of
/// them may end up first.
fn first_bases(io: &SimIo, dir: &Path) -> Vec<i64> {
    use eddy_storage::Io;
    io.list_dir(dir)
        .unwrap_or_default()
        .iter()
        .filter(|n| n.ends_with(".log"))
        .filter_map(|n| n[..20].parse().ok())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Every batch appended before the last successful flush survives any crash byte for byte;
    /// the recovered log is always a prefix of what was appended (nothing after a torn or
    /// corrupt point is served); a persisted DeleteRecords start survives.
    #[test]
    fn crash_keeps_flushed_batches_and_serves_a_clean_prefix(
        rounds in proptest::collection::vec(
            (proptest::collection::vec(op(), 0..40), crash_options()), 1..4)
    ) {
        let io = SimIo::new();
        let dir = Path::new("/data/topic-0");
        let config = LogConfig { segment_bytes: 3000, index_interval_bytes: 256, ..small_config() };
        let mut model: Vec<Vec<u8>> = Vec::new();
        let mut durable = 0usize;
        let mut starts = vec![0i64];
        for (ops, crash) in rounds {
            let (mut log, report) =
                PartitionLog::open_with_io(dir, config.clone(), io.as_io()).expect("reopen");
            let start = log.log_start_offset();
            prop_assert!(starts.contains(&start), "start {} not in {:?}: {}", start, starts, report);
            let got = read_everything(&log.reader(), start);
            let j = model.iter().position(|b| last_of(b) >= start).unwrap_or(model.len());
            let k = j + got.len();
            prop_assert!(k <= model.len(), "more batches than appended: {}", report);
            prop_assert_eq!(&got[..], &model[j..k], "not a prefix of the appended batches");
            prop_assert!(k >= durable.max(j), "lost flushed batches: {} < {}: {}", k, durable, report);
            let expected_end = got.last().map_or(start, |b| last_of(b) + 1);
            prop_assert_eq!(log.log_end_offset(), expected_end);
            model.truncate(k);
            durable = k; // recovery made everything it kept durable
            starts = vec![start];
            for op in ops {
                let end = log.log_end_offset();
                match op {
                    Op::Append { records, value_len } => {
                        let mut b = batch(0, records, value_len);
                        match log.append(&mut b) {
                            Ok(info) => {
                                prop_assert_eq!(info.base_offset, end);
                                model.push(b);
                            }
                            // The write may have reached the file before the failure.
                            Err(_) if base_of(&b) == end => model.push(b),
                            Err(_) => {}
                        }
                    }
                    Op::Flush => {
                        if log.flush().is_ok() {
                            durable = model.len();
                        }
                    }
                    Op::DeleteRecords { at } => {
                        let s = log.log_start_offset();
                        let target = s + i64::from(at) % (end - s + 1);
                        match log.delete_records_before(target) {
                            Ok(new) => starts = vec![new],
                            Err(_) => starts.push(target),
                        }
                    }
                    Op::RetainBytes { bytes } => {
                        log.set_config(LogConfig { retention_bytes: Some(bytes), ..config.clone() });
                        match log.enforce_retention(0) {
                            Ok(r) => starts = vec![r.log_start_offset],
                            Err(_) => starts.extend(first_bases(&io, dir)),
                        }
                        log.set_config(config.clone());
                    }
                    Op::ExpireAll => {
                        log.set_config(LogConfig { retention_ms: Some(1), ..config.clone() });
                        match log.enforce_retention(1 << 40) {
                            Ok(r) => {
                                prop_assert_eq!(r.log_start_offset, end);
                                starts = vec![end];
                            }
                            Err(_) => {
                                starts.push(end);
                                starts.extend(first_bases(&io, dir));
                            }
                        }
                        log.set_config(config.clone());
                    }
                    Op::FailSync { nth } => io.fail_nth_sync(nth),
                    Op::FailWrite { nth } => io.fail_nth_write(nth),
                }
            }
            drop(log);
            io.crash(crash);
        }
        // A final clean cycle: everything recovered stays after close + reopen.
        let (log, _) = PartitionLog::open_with_io(dir, config.clone(), io.as_io()).expect("reopen");
        let before = read_everything(&log.reader(), log.log_start_offset());
        let start = log.log_start_offset();
        log.close().expect("close");
        io.crash(CrashOptions::default());
        let (log, report) = PartitionLog::open_with_io(dir, config, io.as_io()).expect("reopen");
        prop_assert!(report.previous_shutdown_clean);
        prop_assert_eq!(log.log_start_offset(), start);
        prop_assert_eq!(read_everything(&log.reader(), start), before);
    }
}

#[test]
fn flush_of_an_idle_log_does_not_fsync() {
    let io = SimIo::new();
    let dir = Path::new("/data/idle");
    let (mut log, _) = PartitionLog::open_with_io(dir, small_config(), io.as_io()).expect("open");
    fill(&mut log, 3, 10);
    log.flush().expect("flush");
    let syncs = io.sync_count();
    log.flush().expect("flush");
    assert_eq!(io.sync_count(), syncs);
    fill(&mut log, 1, 10);
    log.flush().expect("flush");
    assert_eq!(io.sync_count(), syncs + 1);
}
