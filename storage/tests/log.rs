//! Append, read, roll, retention, DeleteRecords and timestamp lookups on real files.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{base_of, batch, batch_with_timestamps, read_everything, small_config, split_batches};
use eddy_storage::{LogConfig, PartitionLog, RetentionReason, StorageError};

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    names
}

#[test]
fn append_assigns_offsets_and_reads_back_whole_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, report) = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
    assert!(!report.previous_shutdown_clean);
    assert_eq!(log.log_end_offset(), 0);
    let mut stored = Vec::new();
    for i in 0..10 {
        let mut b = batch(1000 + i, 3, 10);
        let info = log.append(&mut b).expect("append");
        assert_eq!(info.base_offset, i * 3);
        assert_eq!(info.last_offset, i * 3 + 2);
        assert_eq!(base_of(&b), i * 3, "base offset patched in place");
        stored.push(b);
    }
    assert_eq!(log.log_end_offset(), 30);
    let reader = log.reader();
    // An offset inside a batch returns the whole batch containing it.
    let r = reader.read(4, 1 << 20).expect("read");
    let got = split_batches(&r.bytes);
    assert_eq!(got, stored[1..].to_vec());
    assert_eq!((r.log_start_offset, r.log_end_offset), (0, 30));
    // max_bytes smaller than one batch still returns that batch whole (KIP-74)...
    let r = reader.read(0, 1).expect("read");
    assert_eq!(split_batches(&r.bytes), vec![stored[0].clone()]);
    // ...and otherwise only whole batches that fit.
    let r = reader.read(0, stored[0].len() * 2 + 5).expect("read");
    assert_eq!(split_batches(&r.bytes), stored[..2].to_vec());
    // The end offset reads nothing; beyond it is out of range.
    assert!(reader.read(30, 100).expect("read at end").bytes.is_empty());
    assert!(matches!(
        reader.read(31, 100),
        Err(StorageError::OffsetOutOfRange {
            offset: 31,
            start: 0,
            end: 30
        })
    ));
    assert!(matches!(
        reader.read(-1, 100),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn rejects_malformed_input_without_latching() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
    let mut two = batch(1, 1, 1);
    two.extend(batch(1, 1, 1));
    assert!(matches!(
        log.append(&mut two),
        Err(StorageError::InvalidBatch { .. })
    ));
    assert!(matches!(
        log.append(&mut [0u8; 10]),
        Err(StorageError::InvalidBatch { .. })
    ));
    log.append(&mut batch(1, 1, 1)).expect("log still usable");
}

#[test]
fn rolls_by_size_and_reads_across_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), small_config()).expect("open");
    let mut stored = Vec::new();
    for i in 0..40 {
        let mut b = batch(i, 2, 100);
        log.append(&mut b).expect("append");
        stored.push(b);
    }
    let segments = segment_files(dir.path());
    assert!(
        segments.len() > 3,
        "expected several segments, got {segments:?}"
    );
    for name in &segments {
        let size = std::fs::metadata(dir.path().join(name))
            .expect("stat")
            .len();
        assert!(size <= 2048, "{name} is {size} bytes, over segment_bytes");
    }
    let reader = log.reader();
    assert_eq!(read_everything(&reader, 0), stored);
    for (i, b) in stored.iter().enumerate() {
        let r = reader.read(base_of(b) + 1, 1).expect("read");
        assert_eq!(split_batches(&r.bytes), vec![b.clone()], "batch {i}");
    }
    log.close().expect("close");
    let (log, report) = PartitionLog::open(dir.path(), small_config()).expect("reopen");
    assert!(report.previous_shutdown_clean);
    assert!(report.segments_validated.is_empty(), "{report}");
    assert_eq!(read_everything(&log.reader(), 0), stored);
}

#[test]
fn rolls_by_segment_ms_and_by_full_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_ms: Some(1000),
        ..small_config()
    };
    let (mut log, _) = PartitionLog::open(dir.path(), config).expect("open");
    log.append(&mut batch(10_000, 1, 1)).expect("append");
    log.append(&mut batch(10_900, 1, 1)).expect("append");
    assert_eq!(segment_files(dir.path()).len(), 1);
    let info = log.append(&mut batch(11_001, 1, 1)).expect("append");
    assert_eq!(
        info.segment_base_offset, 2,
        "more than segment_ms after the first batch"
    );
    assert_eq!(segment_files(dir.path()).len(), 2);

    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 1,
        segment_index_bytes: 24, // two 12-byte time entries
        ..small_config()
    };
    let (mut log, _) = PartitionLog::open(dir.path(), config).expect("open");
    for i in 0..7 {
        log.append(&mut batch(i, 1, 1)).expect("append");
    }
    // Each segment: first batch (no entry) + two indexed batches.
    assert_eq!(segment_files(dir.path()).len(), 3);
    assert_eq!(read_everything(&log.reader(), 0).len(), 7);
}

#[test]
fn retention_by_time_deletes_old_segments_and_rolls_when_all_expired() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        retention_ms: Some(1000),
        ..small_config()
    };
    let (mut log, _) = PartitionLog::open(dir.path(), config).expect("open");
    for i in 0..30 {
        log.append(&mut batch(i * 100, 1, 200)).expect("append");
    }
    let reader = log.reader();
    let segments_before = segment_files(dir.path()).len();
    // now = 3000, cutoff = 2000: segments whose newest batch is < 2000 go.
    let report = log.enforce_retention(3000).expect("retention");
    assert!(!report.deleted.is_empty());
    assert!(report
        .deleted
        .iter()
        .all(|d| d.reason == RetentionReason::Time));
    assert!(report.deleted.iter().all(|d| d.max_timestamp < 2000));
    assert!(!report.rolled_active);
    assert_eq!(
        segment_files(dir.path()).len(),
        segments_before - report.deleted.len()
    );
    let start = log.log_start_offset();
    assert_eq!(start, report.log_start_offset);
    assert_eq!(reader.log_start_offset(), start);
    assert!(matches!(
        reader.read(start - 1, 10),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // The first remaining batch may still be older than the cutoff, but its segment holds
    // a newer one.
    let first = split_batches(&reader.read(start, 1).expect("read").bytes);
    assert_eq!(base_of(&first[0]), start);
    println!("{report}");

    // Everything expired: the active segment is rolled and deleted too.
    let report = log.enforce_retention(1_000_000).expect("retention");
    assert!(report.rolled_active);
    assert_eq!(log.log_start_offset(), 30);
    assert_eq!(log.log_end_offset(), 30);
    assert_eq!(segment_files(dir.path()), vec![format!("{:020}.log", 30)]);
    assert!(reader.read(30, 10).expect("read at end").bytes.is_empty());
    log.append(&mut batch(2_000_000, 1, 1))
        .expect("append after expiry");
    log.close().expect("close");
    let (log, _) = PartitionLog::open(dir.path(), small_config()).expect("reopen");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (30, 31));
}

#[test]
fn retention_by_bytes_keeps_the_log_at_or_above_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        retention_bytes: Some(5000),
        ..small_config()
    };
    let (mut log, _) = PartitionLog::open(dir.path(), config).expect("open");
    for i in 0..60 {
        log.append(&mut batch(i, 1, 200)).expect("append");
    }
    let total = |dir: &Path| -> u64 {
        segment_files(dir)
            .iter()
            .map(|n| std::fs::metadata(dir.join(n)).expect("stat").len())
            .sum()
    };
    let before = total(dir.path());
    let report = log.enforce_retention(0).expect("retention");
    assert!(report
        .deleted
        .iter()
        .all(|d| d.reason == RetentionReason::Size));
    let after = total(dir.path());
    assert!(after >= 5000, "deleted too much: {after}");
    let oldest = report.deleted.last().map(|d| d.size_bytes).unwrap_or(0);
    assert!(
        before > after && after < 5000 + 2048 + oldest,
        "{before} -> {after}"
    );
    // Another run deletes nothing more.
    assert!(log
        .enforce_retention(0)
        .expect("retention")
        .deleted
        .is_empty());
}

#[test]
fn delete_records_moves_log_start_durably() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), small_config()).expect("open");
    let mut stored = Vec::new();
    for i in 0..30 {
        let mut b = batch(i, 2, 100);
        log.append(&mut b).expect("append");
        stored.push(b);
    }
    let segments_before = segment_files(dir.path()).len();
    assert!(matches!(
        log.delete_records_before(61),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.delete_records_before(25).expect("delete"), 25);
    assert!(
        segment_files(dir.path()).len() < segments_before,
        "whole segments below 25 deleted"
    );
    let reader = log.reader();
    assert_eq!(reader.log_start_offset(), 25);
    assert!(matches!(
        reader.read(24, 10),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // Offset 25 is inside the batch 24..=25, which is still served whole.
    let r = reader.read(25, 1).expect("read");
    assert_eq!(base_of(&r.bytes), 24);
    // A smaller offset does not move the start back.
    assert_eq!(log.delete_records_before(10).expect("delete"), 25);
    // Survives an unclean restart (no close).
    drop(log);
    let (log, report) = PartitionLog::open(dir.path(), small_config()).expect("reopen");
    assert!(!report.previous_shutdown_clean);
    assert_eq!(log.log_start_offset(), 25);
    assert_eq!(log.log_end_offset(), 60);
    assert_eq!(read_everything(&log.reader(), 25), stored[12..].to_vec());
}

#[test]
fn timestamp_lookup_finds_first_record_at_or_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), small_config()).expect("open");
    // Offsets 0..=2 at 100,110,120; 3..=5 at 130,150,140; then many later batches.
    log.append(&mut batch_with_timestamps(&[100, 110, 120], 0))
        .expect("append");
    log.append(&mut batch_with_timestamps(&[130, 150, 140], 0))
        .expect("append");
    for i in 0..50 {
        log.append(&mut batch(1000 + i * 10, 1, 150))
            .expect("append");
    }
    let reader = log.reader();
    assert_eq!(
        reader.offset_for_timestamp(0).expect("lookup"),
        Some((0, 100))
    );
    assert_eq!(
        reader.offset_for_timestamp(105).expect("lookup"),
        Some((1, 110))
    );
    assert_eq!(
        reader.offset_for_timestamp(121).expect("lookup"),
        Some((3, 130))
    );
    assert_eq!(
        reader.offset_for_timestamp(145).expect("lookup"),
        Some((4, 150))
    );
    assert_eq!(
        reader.offset_for_timestamp(151).expect("lookup"),
        Some((6, 1000))
    );
    for i in 0..50 {
        assert_eq!(
            reader
                .offset_for_timestamp(1000 + i * 10 - 3)
                .expect("lookup"),
            Some((6 + i, 1000 + i * 10)),
            "batch {i}"
        );
    }
    assert_eq!(reader.offset_for_timestamp(1491).expect("lookup"), None);
    assert_eq!(reader.max_timestamp().expect("max"), Some((1490, 55)));
    // Never below the log start: the record at offset 1 (ts 110) is gone.
    log.delete_records_before(2).expect("delete");
    assert_eq!(
        reader.offset_for_timestamp(105).expect("lookup"),
        Some((2, 120))
    );
}

#[test]
fn compressed_batches_resolve_to_batch_granularity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), small_config()).expect("open");
    log.append(&mut batch_with_timestamps(&[100, 300, 200], 1))
        .expect("append");
    log.append(&mut batch_with_timestamps(&[400, 500], 1))
        .expect("append");
    let reader = log.reader();
    assert_eq!(
        reader.offset_for_timestamp(50).expect("lookup"),
        Some((0, 100))
    );
    assert_eq!(
        reader.offset_for_timestamp(250).expect("lookup"),
        Some((0, 300))
    );
    assert_eq!(
        reader.offset_for_timestamp(450).expect("lookup"),
        Some((3, 500))
    );
    assert_eq!(reader.max_timestamp().expect("max"), Some((500, 3)));
}

#[test]
fn max_timestamp_reports_the_record_holding_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), small_config()).expect("open");
    let reader = log.reader();
    assert_eq!(reader.max_timestamp().expect("max"), None);
    for i in 0..20 {
        log.append(&mut batch(i, 2, 100)).expect("append");
    }
    log.append(&mut batch_with_timestamps(&[5, 9000, 7], 0))
        .expect("append");
    for i in 0..20 {
        log.append(&mut batch(100 + i, 2, 100)).expect("append");
    }
    assert_eq!(reader.max_timestamp().expect("max"), Some((9000, 41)));
    log.close().expect("close");
    let (log, _) = PartitionLog::open(dir.path(), small_config()).expect("reopen");
    assert_eq!(log.reader().max_timestamp().expect("max"), Some((9000, 41)));
}

#[test]
fn readers_run_concurrently_with_the_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), small_config()).expect("open");
    let reader = log.reader();
    let done = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for _ in 0..2 {
        let reader = reader.clone();
        let done = Arc::clone(&done);
        threads.push(std::thread::spawn(move || {
            let mut reads = 0u64;
            while !done.load(Ordering::Acquire) {
                // Every published offset is readable and holds whole, valid, contiguous
                // batches (DeleteRecords may move the start meanwhile: then start over).
                let end = reader.log_end_offset();
                let mut next = reader.log_start_offset();
                while next < end {
                    let r = match reader.read(next, 700) {
                        Ok(r) => r,
                        Err(StorageError::OffsetOutOfRange { start, .. }) if start > next => {
                            next = start;
                            continue;
                        }
                        Err(e) => panic!("read at {next}: {e}"),
                    };
                    let batches = split_batches(&r.bytes);
                    assert!(!batches.is_empty(), "nothing at {next} below {end}");
                    for b in &batches {
                        let h = eddy_protocol::batch::BatchHeader::parse(b).expect("whole batch");
                        h.verify_crc().expect("crc");
                        assert!(h.base_offset() <= next && h.last_offset() >= next);
                        next = h.last_offset() + 1;
                    }
                }
                reads += 1;
            }
            reads
        }));
    }
    for i in 0..400 {
        log.append(&mut batch(i, 2, 50)).expect("append");
        if i % 50 == 0 {
            log.flush().expect("flush");
        }
        if i % 100 == 99 {
            log.delete_records_before(i).expect("delete");
        }
    }
    done.store(true, Ordering::Release);
    for t in threads {
        assert!(t.join().expect("reader thread") > 0);
    }
}

/// An `Io` that counts the bytes read from `.log` files, to check lookups use the indexes.
#[derive(Debug)]
struct CountingIo {
    inner: eddy_storage::sim::SimIo,
    log_bytes_read: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Debug)]
struct CountingFile {
    inner: Arc<dyn eddy_storage::IoFile>,
    counter: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl eddy_storage::IoFile for CountingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let n = self.inner.read_at(buf, offset)?;
        if let Some(c) = &self.counter {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.inner.write_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.inner.sync_data()
    }
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
}

impl eddy_storage::Io for CountingIo {
    fn open(
        &self,
        path: &Path,
        mode: eddy_storage::OpenMode,
    ) -> std::io::Result<Arc<dyn eddy_storage::IoFile>> {
        let inner = self.inner.open(path, mode)?;
        let is_log = path.extension().is_some_and(|e| e == "log");
        Ok(Arc::new(CountingFile {
            inner,
            counter: is_log.then(|| Arc::clone(&self.log_bytes_read)),
        }))
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.inner.list_dir(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(dir)
    }
}

#[test]
fn lookups_read_about_one_index_interval_not_the_segment() {
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let io = Arc::new(CountingIo {
        inner: eddy_storage::sim::SimIo::new(),
        log_bytes_read: Arc::clone(&counter),
    });
    let config = LogConfig {
        index_interval_bytes: 4096,
        ..LogConfig::default()
    };
    let dir = Path::new("/big");
    let (mut log, _) = PartitionLog::open_with_io(dir, config.clone(), io.clone()).expect("open");
    let mut stored = Vec::new();
    for i in 0..20_000 {
        let mut b = batch(1_000 + i, 1, 40);
        log.append(&mut b).expect("append");
        stored.push(b);
    }
    let segment_bytes: usize = stored.iter().map(Vec::len).sum();
    assert!(segment_bytes > 2_000_000);
    let reader = log.reader();
    let budget = 16 * 1024 + 4096;
    for target in [7_000i64, 13_333, 19_999] {
        counter.store(0, Ordering::Relaxed);
        let r = reader.read(target, 1).expect("read");
        assert_eq!(&r.bytes[..], &stored[target as usize][..]);
        let read = counter.load(Ordering::Relaxed);
        assert!(
            read < budget as u64,
            "read {read} bytes of log to find offset {target}"
        );

        counter.store(0, Ordering::Relaxed);
        let found = reader.offset_for_timestamp(1_000 + target).expect("lookup");
        assert_eq!(found, Some((target, 1_000 + target)));
        let read = counter.load(Ordering::Relaxed);
        assert!(
            read < 2 * budget as u64,
            "read {read} bytes for a timestamp lookup"
        );
    }
    counter.store(0, Ordering::Relaxed);
    assert_eq!(reader.max_timestamp().expect("max"), Some((20_999, 19_999)));
    assert!(counter.load(Ordering::Relaxed) < 2 * budget as u64);
    // A clean reopen reads about one interval of each segment, not the segment.
    log.close().expect("close");
    counter.store(0, Ordering::Relaxed);
    let (_log, report) = PartitionLog::open_with_io(dir, config, io).expect("reopen");
    assert!(report.segments_validated.is_empty(), "{report}");
    let read = counter.load(Ordering::Relaxed);
    assert!(read < 64 * 1024, "clean open read {read} bytes of log");
}
