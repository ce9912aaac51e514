//! The client's encoder: building a produce batch of 1,000 records (100 B and 1 KiB values)
//! with each codec, and the murmur2 partitioner.

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use eddy_client::partitioner::partition_for_key;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

fn records(n: usize, size: usize) -> Vec<Record> {
    let value = Bytes::from(
        (0..size)
            .map(|i| b'a' + (i % 23) as u8)
            .collect::<Vec<u8>>(),
    );
    (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(value.clone()),
            headers: Default::default(),
        })
        .collect()
}

fn encode(c: &mut Criterion) {
    for size in [100usize, 1024] {
        let recs = records(1000, size);
        let mut g = c.benchmark_group(format!("encode_1000x{size}B"));
        g.throughput(Throughput::Bytes((1000 * size) as u64));
        for (name, codec) in [
            ("none", Compression::None),
            ("lz4", Compression::Lz4),
            ("zstd", Compression::Zstd),
            ("snappy", Compression::Snappy),
            ("gzip", Compression::Gzip),
        ] {
            g.bench_function(name, |b| {
                b.iter(|| {
                    let mut buf = BytesMut::with_capacity(1000 * (size + 32));
                    let opts = RecordEncodeOptions {
                        version: 2,
                        compression: codec,
                    };
                    RecordBatchEncoder::encode(&mut buf, recs.iter(), &opts).expect("encode");
                    black_box(buf.len())
                })
            });
        }
        g.finish();
    }
}

fn partitioner(c: &mut Criterion) {
    let keys: Vec<Vec<u8>> = (0..1000)
        .map(|i| format!("user-{i}").into_bytes())
        .collect();
    let mut g = c.benchmark_group("murmur2");
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function("partition_for_key_x1000", |b| {
        b.iter(|| {
            let mut acc = 0i32;
            for k in &keys {
                acc = acc.wrapping_add(partition_for_key(black_box(k), 12));
            }
            acc
        })
    });
    g.finish();
}

criterion_group!(benches, encode, partitioner);
criterion_main!(benches);
