//! JSON decoding for pipelines: the engine's `Value` (interned field names, decoded straight
//! from the bytes) against `serde_json::Value` as the baseline measured in the same run, on
//! the ~100-byte events of `eddy bench pipeline`; and encoding results back.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eddy_processor::Value;

fn events() -> Vec<Vec<u8>> {
    (0..1000u64)
        .map(|i| {
            format!(
                r#"{{"user":"user-{:04}","item":"item-{:05}","amount":{},"ts":{},"country":"fr"}}"#,
                i % 1000,
                (i * 7919) % 100_000,
                i % 100,
                1_700_000_000_000u64 + i
            )
            .into_bytes()
        })
        .collect()
}

fn decode(c: &mut Criterion) {
    let evs = events();
    let bytes: usize = evs.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("json_decode_1000_events");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("eddy_value", |b| {
        b.iter(|| {
            evs.iter()
                .map(|e| {
                    Value::from_json(std::hint::black_box(e))
                        .map_or(0, |v| v.get("amount").map_or(0, |_| 1))
                })
                .sum::<usize>()
        })
    });
    // What the pipeline sources do for the benchmark's plans: decode only the fields read.
    for (name, fields) in [
        ("eddy_fields_amount_ts", ["amount", "ts"]),
        ("eddy_fields_user_ts", ["user", "ts"]),
    ] {
        let fields: Vec<std::sync::Arc<str>> = fields.iter().map(|f| (*f).into()).collect();
        g.bench_function(name, |b| {
            b.iter(|| {
                evs.iter()
                    .map(|e| {
                        Value::from_json_fields(std::hint::black_box(e), &fields)
                            .map_or(0, |v| v.get("ts").map_or(0, |_| 1))
                    })
                    .sum::<usize>()
            })
        });
    }
    g.bench_function("serde_json_value_baseline", |b| {
        b.iter(|| {
            evs.iter()
                .map(|e| {
                    serde_json::from_slice::<serde_json::Value>(std::hint::black_box(e))
                        .map_or(0, |v| v.get("amount").map_or(0, |_| 1))
                })
                .sum::<usize>()
        })
    });
    g.finish();
    let parsed: Vec<Value> = evs
        .iter()
        .filter_map(|e| Value::from_json(e).ok())
        .collect();
    let mut g = c.benchmark_group("json_encode_1000_events");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("eddy_value", |b| {
        b.iter(|| parsed.iter().map(|v| v.to_json().len()).sum::<usize>())
    });
    g.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
