//! Storage engine throughput: appends of ~16 KiB batches (1 KiB and 100 B records) to the page
//! cache, and sequential reads through a `LogReader`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eddy_protocol::batch::build_batch;
use eddy_storage::{LogConfig, PartitionLog};

const BATCHES_PER_ITER: usize = 64;

fn batch_of(record_bytes: usize, total: usize) -> Vec<u8> {
    let value = vec![0x5au8; record_bytes];
    let values: Vec<&[u8]> = (0..total / record_bytes)
        .map(|_| value.as_slice())
        .collect();
    build_batch(0, 1_700_000_000_000, &values)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024 * 1024,
        retention_ms: None,
        segment_ms: None,
        ..LogConfig::default()
    }
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_16KiB_batches");
    for record_bytes in [1024usize, 100] {
        let batch = batch_of(record_bytes, 16 * 1024);
        group.throughput(Throughput::Bytes((batch.len() * BATCHES_PER_ITER) as u64));
        group.bench_function(format!("{record_bytes}B_records"), |b| {
            let dir = tempfile::tempdir().expect("tempdir");
            let (mut log, _) = PartitionLog::open(dir.path(), config()).expect("open");
            let mut work = vec![batch.clone(); BATCHES_PER_ITER];
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                for i in 0..iters {
                    for w in work.iter_mut() {
                        w.copy_from_slice(&batch);
                    }
                    let start = Instant::now();
                    for w in work.iter_mut() {
                        log.append(w).expect("append");
                    }
                    elapsed += start.elapsed();
                    if i % 32 == 31 {
                        // Keep the temp dir small: drop whole segments already appended.
                        let end = log.log_end_offset();
                        log.delete_records_before(end).expect("delete");
                        log.enforce_retention(0).expect("retention");
                    }
                }
                elapsed
            });
        });
    }
    group.finish();
}

fn sequential_read(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), config()).expect("open");
    let batch = batch_of(1024, 16 * 1024);
    for _ in 0..2048 {
        log.append(&mut batch.clone()).expect("append"); // 32 MiB
    }
    log.flush().expect("flush");
    let reader = log.reader();
    let total: u64 = 2048 * batch.len() as u64;
    let mut group = c.benchmark_group("sequential_read");
    group.throughput(Throughput::Bytes(total));
    group.sample_size(10);
    group.bench_function("1MiB_fetches", |b| {
        b.iter(|| {
            let mut offset = reader.log_start_offset();
            let end = reader.log_end_offset();
            let mut bytes = 0usize;
            while offset < end {
                let r = reader.read(offset, 1 << 20).expect("read");
                bytes += r.bytes.len();
                let mut at = 0usize;
                while let Some(size) = eddy_protocol::batch::batch_size_at(&r.bytes[at..]) {
                    let h = eddy_protocol::batch::BatchHeader::parse(&r.bytes[at..])
                        .expect("stored batch");
                    offset = h.last_offset() + 1;
                    at += size;
                }
            }
            bytes
        })
    });
    group.finish();
}

criterion_group!(benches, append, sequential_read);
criterion_main!(benches);
