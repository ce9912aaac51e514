//! Log compaction: what is kept, what stays untouched, reads across gaps, reopening, and the
//! plan/run/install split.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{decode_records, keyed_batch, read_everything, small_config, Kv, Rec};
use eddy_protocol::batch::{read_varint, BatchHeader, Compression, BATCH_HEADER_LEN};
use eddy_storage::{LogConfig, PartitionLog};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 400,
        compact: true,
        delete_retention_ms: 100,
        ..small_config()
    }
}

/// Same, with segments large enough that compaction merges all sealed segments into one.
fn merged() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        ..config()
    }
}

/// Every record in the log, from its start.
fn contents(log: &PartitionLog) -> Vec<Rec> {
    decode_records(&read_everything(&log.reader(), log.log_start_offset()))
}

fn log_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    names
}

fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
        .collect()
}

/// The records a compaction of offsets below `end` keeps when every tombstone is young:
/// below `end`, the last record of each key (null keys always); from `end` on, everything.
fn expected_after(all: &[Rec], end: i64) -> Vec<Rec> {
    let mut last: HashMap<&[u8], i64> = HashMap::new();
    for r in all.iter().filter(|r| r.offset < end) {
        if let Some(k) = &r.key {
            last.insert(k, r.offset);
        }
    }
    all.iter()
        .filter(|r| {
            r.offset >= end
                || r.key
                    .as_deref()
                    .is_none_or(|k| last.get(k) == Some(&r.offset))
        })
        .cloned()
        .collect()
}

/// Record bytes (length varint and body) of an uncompressed batch, by offset.
fn framed_records(batch: &[u8]) -> Vec<(i64, Vec<u8>)> {
    let h = BatchHeader::parse(batch).expect("batch");
    let payload = &batch[BATCH_HEADER_LEN..];
    let mut pos = 0usize;
    let mut out = Vec::new();
    while pos < payload.len() {
        let start = pos;
        let len = read_varint(payload, &mut pos).expect("length") as usize;
        let mut rpos = pos + 1;
        read_varint(payload, &mut rpos).expect("timestamp delta");
        let delta = read_varint(payload, &mut rpos).expect("offset delta");
        pos += len;
        out.push((h.base_offset() + delta, payload[start..pos].to_vec()));
    }
    out
}

fn append_all(log: &mut PartitionLog, batches: &mut [Vec<u8>]) {
    for b in batches.iter_mut() {
        log.append(b).expect("append");
    }
}

/// 40 one-record batches over five keys, in about eight sealed segments and an active one.
fn five_keys(log: &mut PartitionLog) -> Vec<Vec<u8>> {
    let mut batches: Vec<Vec<u8>> = (0..40)
        .map(|i| {
            let key = format!("k{}", i % 5);
            let value = format!("value-{i}-{}", "x".repeat(30));
            keyed_batch(i, &[(Some(&key), Some(&value))], Compression::None)
        })
        .collect();
    append_all(log, &mut batches);
    batches
}

#[test]
fn only_the_latest_value_per_key_stays_with_offsets_headers_and_bytes_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), config()).expect("open");
    let originals = five_keys(&mut log);
    let before = contents(&log);
    let files = log_files(dir.path());
    assert!(files.len() > 5, "{files:?}");
    let active_name = files.last().expect("active");
    let active = dir.path().join(active_name);
    let active_bytes = std::fs::read(&active).expect("read");

    log.set_config(merged());
    let report = log.compact(1_000).expect("compact");
    println!("{report}");
    assert_eq!(report.first_offset, 0);
    let end = report.end_offset;
    assert_eq!(
        end.to_string(),
        active_name.trim_end_matches(".log").trim_start_matches('0')
    );
    assert!(report.records_removed > 0 && report.bytes_after < report.bytes_before);
    assert_eq!(contents(&log), expected_after(&before, end));
    assert_eq!(
        std::fs::read(&active).expect("read"),
        active_bytes,
        "active untouched"
    );

    // Headers (base offset, last offset delta, timestamps, producer fields, attributes) and
    // record bytes are the originals'.
    let by_base: HashMap<i64, &Vec<u8>> = originals
        .iter()
        .map(|b| (BatchHeader::parse(b).expect("b").base_offset(), b))
        .collect();
    for stored in read_everything(&log.reader(), 0) {
        let s = BatchHeader::parse(&stored).expect("stored");
        let o = BatchHeader::parse(by_base[&s.base_offset()]).expect("original");
        assert_eq!(
            (s.last_offset_delta(), s.base_timestamp(), s.max_timestamp()),
            (o.last_offset_delta(), o.base_timestamp(), o.max_timestamp())
        );
        assert_eq!(
            (
                s.producer_id(),
                s.producer_epoch(),
                s.base_sequence(),
                s.attributes()
            ),
            (
                o.producer_id(),
                o.producer_epoch(),
                o.base_sequence(),
                o.attributes()
            )
        );
        let originals: HashMap<i64, Vec<u8>> = framed_records(o.as_bytes()).into_iter().collect();
        for (offset, bytes) in framed_records(&stored) {
            assert_eq!(
                originals[&offset], bytes,
                "record {offset} copied unchanged"
            );
        }
    }
    // Five keys in one (merged) output segment, plus the untouched ones after it.
    assert_eq!(report.segments_written, 1, "{report}");
    assert_eq!(
        log_files(dir.path()).len(),
        files.len() - report.segments_cleaned + 1
    );
    assert!(temporaries(dir.path()).is_empty());
}

#[test]
fn batches_keep_their_last_offset_when_their_last_record_goes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), config()).expect("open");
    let mut batches = vec![
        keyed_batch(
            1,
            &[(Some("a"), Some("1")), (Some("b"), Some("1"))],
            Compression::None,
        ),
        keyed_batch(
            2,
            &[(Some("b"), Some("2")), (Some("c"), Some("2"))],
            Compression::None,
        ),
        keyed_batch(3, &[(Some("x"), Some(&"x".repeat(500)))], Compression::None),
        keyed_batch(4, &[(Some("y"), Some("active"))], Compression::None),
    ];
    append_all(&mut log, &mut batches);
    log.compact(1_000).expect("compact");
    let stored = read_everything(&log.reader(), 0);
    let first = BatchHeader::parse(&stored[0]).expect("first");
    assert_eq!(
        (
            first.base_offset(),
            first.last_offset(),
            first.records_count()
        ),
        (0, 1, 1),
        "b@1 went, the batch still ends at 1"
    );
    let offsets: Vec<i64> = contents(&log).iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![0, 2, 3, 4, 5]);
}

#[test]
fn tombstones_stay_while_young_and_go_after_delete_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), config()).expect("open");
    let big = "z".repeat(300);
    let mut batches = vec![
        keyed_batch(0, &[(Some("k"), Some("old"))], Compression::None),
        keyed_batch(10, &[(Some("k"), None)], Compression::None),
        keyed_batch(20, &[(Some("other"), Some(&big))], Compression::None),
        keyed_batch(30, &[(Some("more"), Some(&big))], Compression::None),
        keyed_batch(40, &[(Some("active"), Some("a"))], Compression::None),
    ];
    append_all(&mut log, &mut batches);
    let keys = |log: &PartitionLog| -> Vec<(String, bool)> {
        contents(log)
            .into_iter()
            .map(|r| {
                let key = String::from_utf8(r.key.expect("keyed")).expect("utf8");
                (key, r.value.is_none())
            })
            .collect()
    };

    // delete.retention.ms = 100: at 50 the tombstone is young; the old value goes at once.
    let r = log.compact(50).expect("compact");
    assert_eq!((r.records_removed, r.tombstones_removed), (1, 0), "{r}");
    assert_eq!(keys(&log)[0], ("k".to_owned(), true));
    // Nothing changed since, and the tombstone is not due yet: no plan.
    assert!(log.compaction_plan(60).is_none());
    // At 111 its batch (max timestamp 10) is older than now - 100: it goes.
    let r = log.compact(111).expect("compact");
    assert_eq!(r.tombstones_removed, 1, "{r}");
    assert!(keys(&log).iter().all(|(k, _)| k != "k"), "{:?}", keys(&log));
}

#[test]
fn a_tombstone_ending_the_cleaned_range_waits_for_more_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), config()).expect("open");
    let big = "z".repeat(400);
    // One batch per segment: a, its tombstone, and b (active).
    let mut batches = vec![
        keyed_batch(0, &[(Some("a"), Some(&big))], Compression::None),
        keyed_batch(1, &[(Some("a"), None)], Compression::None),
        keyed_batch(2, &[(Some("b"), Some(&big))], Compression::None),
    ];
    append_all(&mut log, &mut batches);
    let r = log.compact(10_000).expect("compact");
    // The tombstone is the last record before the active segment: the cleaned segment must
    // still end at offset 2, so it stays until more data is compacted after it.
    assert_eq!(
        (r.end_offset, r.records_removed, r.tombstones_removed),
        (2, 1, 0),
        "{r}"
    );
    let offsets: Vec<i64> = contents(&log).iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![1, 2]);
    let mut more = keyed_batch(3, &[(Some("c"), Some(&big))], Compression::None);
    log.append(&mut more).expect("append");
    log.append(&mut keyed_batch(
        4,
        &[(Some("d"), Some("x"))],
        Compression::None,
    ))
    .expect("append");
    let r = log.compact(10_000).expect("compact");
    assert_eq!(r.tombstones_removed, 1, "{r}");
    let offsets: Vec<i64> = contents(&log).iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![2, 3, 4]);
}

#[test]
fn compressed_batches_are_filtered_and_recompressed_with_their_codec() {
    for codec in [
        Compression::Gzip,
        Compression::Lz4,
        Compression::Snappy,
        Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = PartitionLog::open(dir.path(), config()).expect("open");
        let mut batches: Vec<Vec<u8>> = (0..12)
            .map(|i| {
                let values: Vec<String> = (0..4)
                    .map(|j| format!("v{i}-{j}-{}", "p".repeat(20)))
                    .collect();
                let records: Vec<Kv<'_>> = vec![
                    (Some("a"), Some(&values[0])),
                    (Some(["b", "c", "d"][i % 3]), Some(&values[1])),
                    (None, Some(&values[2])),
                    (Some("a"), if i % 2 == 0 { None } else { Some(&values[3]) }),
                ];
                keyed_batch(i as i64, &records, codec)
            })
            .collect();
        append_all(&mut log, &mut batches);
        let before = contents(&log);
        let r = log.compact(50).expect("compact");
        assert!(r.segments_cleaned > 0 && r.records_removed > 0, "{r}");
        assert_eq!(
            contents(&log),
            expected_after(&before, r.end_offset),
            "{codec:?}"
        );
        for b in read_everything(&log.reader(), 0) {
            let h = BatchHeader::parse(&b).expect("batch");
            assert_eq!(h.compression(), Ok(codec));
        }
    }
}

#[test]
fn null_keys_and_control_batches_are_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), config()).expect("open");
    let mut control = keyed_batch(
        5,
        &[(Some("\0\0\0\0"), Some("\0\0\0\0\0\0"))],
        Compression::None,
    );
    let attrs = i16::from_be_bytes([control[21], control[22]]) | 0x30; // transactional, control
    control[21..23].copy_from_slice(&attrs.to_be_bytes());
    let crc = crc32c::crc32c(&control[21..]);
    control[17..21].copy_from_slice(&crc.to_be_bytes());
    let mut batches = vec![
        keyed_batch(
            1,
            &[(None, Some("n1")), (Some("k"), Some("1"))],
            Compression::None,
        ),
        control.clone(),
        control,
        keyed_batch(
            2,
            &[(None, Some("n2")), (Some("k"), Some("2"))],
            Compression::None,
        ),
        keyed_batch(
            3,
            &[(Some("big"), Some(&"b".repeat(400)))],
            Compression::None,
        ),
        keyed_batch(4, &[(Some("k"), Some("active"))], Compression::None),
    ];
    append_all(&mut log, &mut batches);
    log.compact(100).expect("compact");
    let got: Vec<i64> = contents(&log).iter().map(|r| r.offset).collect();
    // k@1 went (k@5 is later, in the range); null keys and both markers stay.
    assert_eq!(got, vec![0, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn min_compaction_lag_stops_the_range_at_the_first_young_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig {
        min_compaction_lag_ms: 100,
        ..config()
    };
    let (mut log, _) = PartitionLog::open(dir.path(), cfg).expect("open");
    let big = "y".repeat(380);
    let mut batches: Vec<Vec<u8>> = [0, 0, 500, 10, 10, 10]
        .iter()
        .map(|&ts| keyed_batch(ts, &[(Some("k"), Some(&big))], Compression::None))
        .collect();
    append_all(&mut log, &mut batches);
    // One batch per segment: 0, 1 old; 2 is young at 550 (cutoff 450); 3, 4 after it.
    let plan = log.compaction_plan(550).expect("plan");
    assert_eq!((plan.first_offset(), plan.end_offset()), (0, 2));
    drop(plan);
    let r = log.compact(550).expect("compact");
    assert_eq!(r.end_offset, 2);
    let offsets: Vec<i64> = contents(&log).iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![1, 2, 3, 4, 5]);
    // Later everything old enough is compacted.
    log.compact(601).expect("compact");
    let offsets: Vec<i64> = contents(&log).iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![4, 5]);
}

#[test]
fn reads_and_timestamp_lookups_inside_gaps_return_the_next_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), config()).expect("open");
    five_keys(&mut log);
    log.compact(1_000).expect("compact");
    let stored = read_everything(&log.reader(), 0);
    let kept = contents(&log);
    let reader = log.reader();
    for offset in 0..log.log_end_offset() {
        let r = reader.read(offset, 1).expect("read");
        let first = common::split_batches(&r.bytes).remove(0);
        let expected = stored
            .iter()
            .find(|b| BatchHeader::parse(b).expect("b").last_offset() >= offset)
            .expect("a batch");
        assert_eq!(&first, expected, "offset {offset}");
    }
    for ts in 0..45 {
        let expected = kept
            .iter()
            .find(|r| r.timestamp >= ts)
            .map(|r| (r.offset, r.timestamp));
        assert_eq!(
            reader.offset_for_timestamp(ts).expect("lookup"),
            expected,
            "ts {ts}"
        );
    }
    // DeleteRecords into a gap: the log starts there and reads return the next batch.
    let gap = (1..log.log_end_offset())
        .find(|o| kept.iter().all(|r| r.offset != *o))
        .expect("a gap");
    log.delete_records_before(gap).expect("delete records");
    let first = decode_records(&common::split_batches(
        &reader.read(gap, 1).expect("read").bytes,
    ));
    assert!(first[0].offset > gap);
}

#[test]
fn compacted_segments_survive_clean_and_unclean_restarts_without_repair() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), config()).expect("open");
    five_keys(&mut log);
    log.compact(1_000).expect("compact");
    let after = contents(&log);
    log.close().expect("close");

    let (log, report) = PartitionLog::open(dir.path(), config()).expect("reopen");
    assert!(report.segments_validated.is_empty(), "{report}");
    assert!(report.trust_failures.is_empty(), "{report}");
    assert_eq!(contents(&log), after);
    drop(log); // unclean

    // Without a checkpoint every segment is validated in full: gaps are accepted.
    std::fs::remove_file(dir.path().join("partition.checkpoint")).expect("rm");
    let (mut log, report) = PartitionLog::open(dir.path(), config()).expect("reopen");
    assert!(report.truncations.is_empty(), "{report}");
    assert!(report.segments_deleted.is_empty(), "{report}");
    assert!(report.segments_validated.len() > 1, "{report}");
    assert_eq!(contents(&log), after);
    // And appends continue at the end.
    let end = log.log_end_offset();
    let info = log
        .append(&mut keyed_batch(
            99,
            &[(Some("k0"), Some("new"))],
            Compression::None,
        ))
        .expect("append");
    assert_eq!(info.base_offset, end);
}

#[test]
fn appends_and_reads_continue_while_a_plan_runs_on_another_thread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), config()).expect("open");
    five_keys(&mut log);
    let before = contents(&log);
    log.set_config(merged());
    let plan = log.compaction_plan(1_000).expect("plan");
    log.set_config(config()); // small segments again: the appends below roll
    let end = plan.end_offset();
    assert!(log.compaction_plan(1_000).is_none(), "one plan at a time");
    let worker = std::thread::spawn(move || plan.run());
    let mut later: Vec<Vec<u8>> = (40..80)
        .map(|i| {
            keyed_batch(
                i,
                &[(Some("k1"), Some(&format!("late-{i}-{}", "q".repeat(40))))],
                Compression::None,
            )
        })
        .collect();
    append_all(&mut log, &mut later);
    let all = contents(&log);
    assert_eq!(all.len(), 80, "reads see everything while the plan runs");
    let done = worker.join().expect("thread").expect("run");
    let r = log.install_compaction(done).expect("install");
    assert!(!r.discarded);
    assert_eq!(r.end_offset, end);
    let expected: Vec<Rec> = expected_after(&before, end)
        .into_iter()
        .chain(all.into_iter().filter(|r| r.offset >= 40))
        .collect();
    assert_eq!(contents(&log), expected);
    assert!(
        log.compaction_plan(2_000).is_some(),
        "the new segments can be compacted"
    );
}

#[test]
fn an_install_after_retention_removed_planned_segments_is_discarded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig {
        retention_ms: Some(1_000),
        ..config()
    };
    let (mut log, _) = PartitionLog::open(dir.path(), cfg).expect("open");
    five_keys(&mut log);
    let plan = log.compaction_plan(500).expect("plan");
    let done = plan.run().expect("run");
    assert!(!temporaries(dir.path()).is_empty(), "output written");
    let retention = log.enforce_retention(1_010).expect("retention");
    assert!(!retention.deleted.is_empty());
    let before = contents(&log);
    let r = log.install_compaction(done).expect("install");
    assert!(r.discarded, "{r}");
    assert!(r.to_string().contains("discarded"));
    assert!(temporaries(dir.path()).is_empty());
    assert_eq!(contents(&log), before);

    // Same after DeleteRecords; and an abandoned result cleans up after itself.
    let done = log.compaction_plan(500).expect("plan").run().expect("run");
    log.delete_records_before(log.log_end_offset() - 2)
        .expect("delete records");
    assert!(log.install_compaction(done).expect("install").discarded);
    drop(log.compaction_plan(2_000).map(|p| p.run().expect("run")));
    assert!(temporaries(dir.path()).is_empty());
}

#[test]
fn plans_only_when_enabled_and_when_something_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let off = LogConfig {
        compact: false,
        ..config()
    };
    let (mut log, _) = PartitionLog::open(dir.path(), off).expect("open");
    // One batch per segment, every key unique.
    let big = "n".repeat(390);
    let add = |log: &mut PartitionLog, key: &str, ts: i64| {
        let mut b = keyed_batch(ts, &[(Some(key), Some(&big))], Compression::None);
        log.append(&mut b).expect("append");
    };
    for i in 0..6 {
        add(&mut log, &format!("u{i}"), i);
    }
    assert!(log.compaction_plan(1_000).is_none(), "compaction is off");
    assert_eq!(log.compact(1_000).expect("compact").segments_cleaned, 0);
    log.set_config(config());
    // Nothing to remove and nothing to merge: nothing is written.
    let files = log_files(dir.path());
    let r = log.compact(1_000).expect("compact");
    assert_eq!(
        (r.segments_cleaned, r.records_removed, r.records_kept),
        (0, 0, 5),
        "{r}"
    );
    assert_eq!(log_files(dir.path()), files);
    assert!(log.compaction_plan(1_000).is_none(), "nothing new since");
    // A new sealed segment is something new (still nothing to remove).
    add(&mut log, "u0", 10);
    assert!(log.compaction_plan(1_000).is_some());
    assert_eq!(log.compact(1_000).expect("compact").segments_cleaned, 0);
    // Once the new u0 is sealed, the old one goes.
    add(&mut log, "u7", 11);
    let r = log.compact(1_000).expect("compact");
    assert_eq!(r.records_removed, 1, "{r}");
    let keys: Vec<Vec<u8>> = contents(&log).into_iter().filter_map(|r| r.key).collect();
    assert_eq!(keys.iter().filter(|k| k.as_slice() == b"u0").count(), 1);
}

#[test]
fn compact_only_topics_are_not_deleted_by_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig {
        delete: false,
        retention_ms: Some(1),
        retention_bytes: Some(1),
        ..config()
    };
    let (mut log, _) = PartitionLog::open(dir.path(), cfg).expect("open");
    five_keys(&mut log);
    let r = log.enforce_retention(1_000_000).expect("retention");
    assert!(r.deleted.is_empty(), "{r}");
    assert_eq!(log.log_start_offset(), 0);
    let files = log_files(dir.path()).len();
    log.delete_records_before(20).expect("delete records");
    assert_eq!(log.log_start_offset(), 20);
    assert!(
        log_files(dir.path()).len() < files,
        "DeleteRecords still deletes"
    );
}

/// Sets a batch's last offset delta (storage accepts any; the broker validates producers'),
/// so a few batches can span more offsets than one segment can address.
fn with_last_offset_delta(mut b: Vec<u8>, lod: i32) -> Vec<u8> {
    b[23..27].copy_from_slice(&lod.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

#[test]
fn a_stale_value_kept_to_end_a_segment_keeps_its_keys_tombstone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), config()).expect("open");
    let wide = |ts, kv: Kv<'_>| {
        with_last_offset_delta(keyed_batch(ts, &[kv], Compression::None), i32::MAX)
    };
    let medium = "m".repeat(240);
    let mut batches = vec![
        // Segment 0 spans offsets 0 to 2^32 - 1: it cannot merge with anything after it.
        wide(0, (Some("a"), Some("1"))),
        wide(0, (Some("k"), Some("old"))),
        // Segment 1: k's tombstone, then another key.
        keyed_batch(0, &[(Some("k"), None)], Compression::None),
        keyed_batch(0, &[(Some("other"), Some(&medium))], Compression::None),
        keyed_batch(0, &[(Some("active"), Some(&medium))], Compression::None),
    ];
    append_all(&mut log, &mut batches);
    assert_eq!(log_files(dir.path()).len(), 3);
    let r = log.compact(10_000).expect("compact");
    println!("{r}");
    // Segment 0's last batch (k=old) must keep a record to end its segment; k's tombstone,
    // although expired, must then stay, or "old" would be k's value again.
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b[..b.len().min(8)]).into_owned();
    let got: Vec<(String, Option<String>)> = contents(&log)
        .into_iter()
        .map(|r| (text(r.key.expect("keyed")), r.value.map(text)))
        .collect();
    let k: Vec<_> = got.iter().filter(|(key, _)| key == "k").collect();
    assert_eq!(k.len(), 2, "{got:?}");
    assert_eq!(k[1].1, None, "k stays deleted");
}

/// A cleaned segment (with gaps) becomes the last one when the segments after it are lost in
/// a crash: recovery must keep all of its records, at the first open and every later one (it
/// used to truncate such a segment at its first gap the second time, once it was the active
/// segment: found by the `storage_recovery` fuzz target).
#[test]
fn a_cleaned_segment_that_becomes_the_last_one_keeps_its_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), config()).expect("open");
    five_keys(&mut log);
    log.compact(1_000).expect("compact");
    log.close().expect("close");
    let files = log_files(dir.path());
    assert!(files.len() >= 3, "{files:?}");
    // Lose every segment after the first cleaned one, and the checkpoint (a crash).
    let first_cleaned = files[0].trim_end_matches(".log").to_string();
    for f in std::fs::read_dir(dir.path()).expect("list").flatten() {
        let name = f.file_name().into_string().expect("utf8");
        if !name.starts_with(&first_cleaned) {
            std::fs::remove_file(f.path()).expect("rm");
        }
    }
    let (log, report) = PartitionLog::open(dir.path(), config()).expect("reopen");
    assert!(report.truncations.is_empty(), "{report}");
    let kept = contents(&log);
    // The segment's base is 0; gaps at its start or between batches are what is tested.
    assert!(
        kept.first().is_some_and(|r| r.offset > 0)
            || kept.windows(2).any(|w| w[1].offset > w[0].offset + 1),
        "the test needs a segment with gaps: {kept:?}"
    );
    let end = log.log_end_offset();
    log.close().expect("close");
    for _ in 0..2 {
        std::fs::remove_file(dir.path().join("partition.checkpoint")).ok();
        let (log, report) = PartitionLog::open(dir.path(), config()).expect("reopen");
        assert!(report.truncations.is_empty(), "{report}");
        assert_eq!(contents(&log), kept);
        assert_eq!(log.log_end_offset(), end);
        drop(log);
    }
}
