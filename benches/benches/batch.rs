//! Produce-path validation cost: `BatchHeader::parse` + `validate_produced` of a 16 KiB batch.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eddy_protocol::batch::{build_batch, BatchHeader};

fn batch_of(record_bytes: usize, total: usize) -> Vec<u8> {
    let value = vec![0xabu8; record_bytes];
    let values: Vec<&[u8]> = (0..total / record_bytes)
        .map(|_| value.as_slice())
        .collect();
    build_batch(0, 1_700_000_000_000, &values)
}

fn validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_validate_16KiB");
    for record_bytes in [100usize, 1024] {
        let batch = batch_of(record_bytes, 16 * 1024);
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_function(format!("{record_bytes}B_records"), |b| {
            b.iter(|| {
                let h = BatchHeader::parse(std::hint::black_box(&batch)).expect("valid batch");
                h.validate_produced().expect("valid batch");
                h.records_count()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
