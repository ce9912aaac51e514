//! Crash safety of compaction on the simulated file system: a crash before each write, fsync,
//! rename and delete a compaction makes (and, in turn, before each one the recovery of such a
//! crash makes) must leave, after reopening, exactly the log before the compaction or exactly
//! the log after it, with no temporary file left.

mod common;

use std::path::Path;

use common::{decode_records, keyed_batch, read_everything, small_config, Rec};
use eddy_protocol::batch::Compression;
use eddy_storage::sim::{CrashOptions, SimIo};
use eddy_storage::{Io, LogConfig, PartitionLog};

const NOW: i64 = 10_000;

fn dir() -> &'static Path {
    Path::new("/data/compacted-0")
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 500,
        compact: true,
        delete_retention_ms: 1_000,
        ..small_config()
    }
}

/// A flushed log: 30 batches over five keys (some tombstones, some compressed) in several
/// sealed segments, ending with a live value of a fresh key so no record is kept only to end
/// the cleaned range.
fn build(io: &SimIo) -> PartitionLog {
    let (mut log, _) = PartitionLog::open_with_io(dir(), config(), io.as_io()).expect("open");
    for i in 0..30i64 {
        let key = format!("k{}", i % 5);
        let value = format!("value-{i}-{}", "v".repeat(40));
        let value = (i % 7 != 3).then_some(value.as_str());
        let codec = if i % 4 == 1 {
            Compression::Gzip
        } else {
            Compression::None
        };
        let ts = if i < 10 { 0 } else { 9_500 };
        let mut b = keyed_batch(ts, &[(Some(&key), value), (Some("x"), Some("y"))], codec);
        log.append(&mut b).expect("append");
    }
    for key in ["last", "active"] {
        let value = "w".repeat(400);
        let mut b = keyed_batch(9_999, &[(Some(key), Some(&value))], Compression::None);
        log.append(&mut b).expect("append");
    }
    log.flush().expect("flush");
    log
}

fn contents(log: &PartitionLog) -> Vec<Rec> {
    decode_records(&read_everything(&log.reader(), log.log_start_offset()))
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Write,
    Sync,
    Rename,
    Remove,
}

fn count(io: &SimIo, f: Fault) -> u64 {
    match f {
        Fault::Write => io.write_count(),
        Fault::Sync => io.sync_count(),
        Fault::Rename => io.rename_count(),
        Fault::Remove => io.remove_count(),
    }
}

fn arm(io: &SimIo, f: Fault, n: u64) {
    match f {
        Fault::Write => io.fail_nth_write(n),
        Fault::Sync => io.fail_nth_sync(n),
        Fault::Rename => io.fail_nth_rename(n),
        Fault::Remove => io.fail_nth_remove(n),
    }
}

const FAULTS: [Fault; 4] = [Fault::Write, Fault::Sync, Fault::Rename, Fault::Remove];

const CRASHES: [CrashOptions; 3] = [
    // Power loss: only what was fsynced survives.
    CrashOptions {
        keep_unsynced: false,
        torn_last_write_bytes: None,
    },
    // Process crash: everything written survives...
    CrashOptions {
        keep_unsynced: true,
        torn_last_write_bytes: None,
    },
    // ...except part of the last write.
    CrashOptions {
        keep_unsynced: true,
        torn_last_write_bytes: Some(7),
    },
];

fn temporaries(io: &SimIo) -> Vec<String> {
    io.list_dir(dir())
        .expect("list")
        .into_iter()
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
        .collect()
}

/// Reopens after a crash and checks the log is `pre` or `post`; returns which.
fn reopen_and_check(io: &SimIo, pre: &[Rec], post: &[Rec], what: &str) -> bool {
    let (mut log, report) =
        PartitionLog::open_with_io(dir(), config(), io.as_io()).expect("reopen");
    let got = contents(&log);
    assert!(
        got == pre || got == post,
        "{what}: the log is neither the old nor the compacted one\n{report}"
    );
    assert!(report.truncations.is_empty(), "{what}: {report}");
    assert!(temporaries(io).is_empty(), "{what}: {:?}", temporaries(io));
    // The log works: compacting again gives the compacted content.
    log.compact(NOW).expect("compact after recovery");
    assert_eq!(contents(&log), post, "{what}: compacting after recovery");
    got == post
}

#[test]
fn a_crash_at_any_step_leaves_the_old_or_the_new_log() {
    let reference = SimIo::new();
    let mut log = build(&reference);
    let pre = contents(&log);
    let before: Vec<u64> = FAULTS.iter().map(|f| count(&reference, *f)).collect();
    let report = log.compact(NOW).expect("compact");
    assert!(
        report.records_removed > 0 && report.segments_cleaned > 1,
        "{report}"
    );
    let post = contents(&log);
    assert_ne!(pre, post);
    let totals: Vec<u64> = FAULTS
        .iter()
        .zip(&before)
        .map(|(f, b)| count(&reference, *f) - b)
        .collect();
    println!("compaction ops (write, sync, rename, remove): {totals:?}");

    let (mut saw_pre, mut saw_post) = (false, false);
    for (fault, total) in FAULTS.iter().zip(&totals) {
        for n in 1..=*total {
            for crash in CRASHES {
                let io = SimIo::new();
                let mut log = build(&io);
                arm(&io, *fault, n);
                let result = log.compact(NOW);
                assert!(result.is_err(), "{fault:?} #{n} was injected");
                drop(log);
                io.crash(crash);
                let what = format!("crash before {fault:?} #{n} ({crash:?})");
                if reopen_and_check(&io, &pre, &post, &what) {
                    saw_post = true;
                } else {
                    saw_pre = true;
                }
            }
        }
    }
    assert!(saw_pre && saw_post, "both outcomes occur");
}

#[test]
fn a_crash_while_recovery_finishes_an_interrupted_swap_is_recovered_too() {
    let reference = SimIo::new();
    let mut log = build(&reference);
    let pre = contents(&log);
    log.compact(NOW).expect("compact");
    let post = contents(&log);
    let mut checked = 0;
    // Stop the install after its commit (before the first delete), at every later step...
    let crash = CRASHES[1];
    for first_remove in 1..=3u64 {
        // ...and then stop the recovery at each of its own steps.
        for (fault, n) in FAULTS[1..]
            .iter()
            .flat_map(|f| (1..=6u64).map(move |n| (*f, n)))
        {
            let io = SimIo::new();
            let mut log = build(&io);
            io.fail_nth_remove(first_remove);
            assert!(log.compact(NOW).is_err());
            drop(log);
            io.crash(crash);
            arm(&io, fault, n);
            let opened = PartitionLog::open_with_io(dir(), config(), io.as_io());
            let recovery_failed = opened.is_err();
            drop(opened);
            io.crash(crash);
            let what = format!("remove #{first_remove}, then {fault:?} #{n} during recovery");
            assert!(
                reopen_and_check(&io, &pre, &post, &what),
                "{what}: a committed compaction must win"
            );
            checked += usize::from(recovery_failed);
        }
    }
    assert!(checked > 0, "some recoveries were interrupted");
}
