//! `eddy bench produce|consume|e2e`: throughput and latency against any Kafka-compatible
//! cluster. Latency with a fixed `--rate` is measured from each record's *intended* send
//! time, so a stalled broker cannot hide its stall (no coordinated omission).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::outln;
use bytes::Bytes;
use clap::{Args, Subcommand};
use eddy_client::{Consumer, ConsumerConfig, OutRecord, Producer, ProducerConfig, StartAt};
use hdrhistogram::Histogram;
use serde::Deserialize;
use tokio::sync::mpsc;

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCmd {
    /// Produce N records of SIZE bytes and report throughput and ack latency.
    Produce(ProduceBench),
    /// Consume N records from the beginning of a topic and report throughput.
    Consume(ConsumeBench),
    /// Produce at a fixed rate while consuming; report end-to-end latency.
    E2e(ProduceBench),
    /// In-broker pipelines vs the same plans over TCP (starts its own broker).
    Pipeline(super::bench_pipeline::PipelineBench),
    /// Nexmark-style Flink SQL queries in the broker: events/s and per CPU-second.
    Sql(super::bench_sql::SqlBench),
}

/// Settings shared by produce and e2e runs; any of them may come from `--workload`.
#[derive(Debug, Args, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct ProduceBench {
    #[arg(long)]
    topic: Option<String>,
    #[arg(long)]
    messages: Option<u64>,
    /// Record value size in bytes.
    #[arg(long)]
    size: Option<usize>,
    /// Target records/s across all producers (default: as fast as possible).
    #[arg(long)]
    rate: Option<u64>,
    #[arg(long)]
    producers: Option<usize>,
    /// Partitions of the topic if the bench creates it.
    #[arg(long)]
    partitions: Option<i32>,
    #[arg(long)]
    acks: Option<String>,
    #[arg(long)]
    compression: Option<String>,
    #[arg(long)]
    batch_bytes: Option<usize>,
    #[arg(long)]
    linger_ms: Option<u64>,
    /// Workload file (TOML with the same names, e.g. `size = 1024`), in the spirit of the
    /// OpenMessaging Benchmark; flags override it.
    #[arg(long)]
    #[serde(skip)]
    workload: Option<String>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    #[serde(skip)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ConsumeBench {
    #[arg(long)]
    topic: String,
    #[arg(long)]
    messages: u64,
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    #[arg(long)]
    json: bool,
}

struct Resolved {
    topic: String,
    messages: u64,
    size: usize,
    rate: Option<u64>,
    producers: usize,
    partitions: i32,
    config: ProducerConfig,
    json: bool,
}

fn resolve(mut b: ProduceBench) -> anyhow::Result<Resolved> {
    if let Some(path) = &b.workload {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read workload {path}: {e}"))?;
        let w: ProduceBench = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("bad workload {path}: {}", e.message()))?;
        macro_rules! fill {
            ($($f:ident),*) => { $( if b.$f.is_none() { b.$f = w.$f.clone(); } )* };
        }
        fill!(
            topic,
            messages,
            size,
            rate,
            producers,
            partitions,
            acks,
            compression,
            batch_bytes,
            linger_ms
        );
    }
    let config = ProducerConfig {
        acks: super::parse_acks(b.acks.as_deref().unwrap_or("1"))?,
        compression: super::parse_compression(b.compression.as_deref().unwrap_or("none"))?,
        batch_bytes: b.batch_bytes.unwrap_or(1024 * 1024),
        linger: Duration::from_millis(b.linger_ms.unwrap_or(5)),
        max_in_flight: 5,
        ..ProducerConfig::default()
    };
    let producers = b.producers.unwrap_or(1).max(1);
    if b.rate == Some(0) {
        anyhow::bail!("--rate must be positive");
    }
    Ok(Resolved {
        topic: b.topic.unwrap_or_else(|| "eddy-bench".to_string()),
        messages: b.messages.unwrap_or(100_000),
        size: b.size.unwrap_or(100),
        rate: b.rate,
        producers,
        partitions: b.partitions.unwrap_or(1).max(1),
        config,
        json: b.json,
    })
}

fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs .. 1 h, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).expect("histogram"))
}

struct Summary {
    mode: &'static str,
    messages: u64,
    bytes: u64,
    seconds: f64,
    errors: u64,
    latency: Option<Histogram<u64>>,
}

impl Summary {
    fn print(&self, json: bool) {
        let secs = self.seconds.max(1e-9);
        let mps = self.messages as f64 / secs;
        let mbps = self.bytes as f64 / secs / 1e6;
        let lat = self.latency.as_ref().map(|h| {
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            serde_json::json!({
                "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p999": ms(0.999),
                "max": h.max() as f64 / 1000.0,
            })
        });
        if json {
            let j = serde_json::json!({
                "mode": self.mode, "messages": self.messages, "bytes": self.bytes,
                "seconds": self.seconds, "msgs_per_s": mps, "mb_per_s": mbps,
                "errors": self.errors, "latency_ms": lat,
            });
            outln!("{j}");
        } else {
            outln!(
                "{}: {} records, {:.1} MB in {:.2} s = {:.0} records/s, {:.1} MB/s, {} errors",
                self.mode,
                self.messages,
                self.bytes as f64 / 1e6,
                self.seconds,
                mps,
                mbps,
                self.errors
            );
            if let Some(l) = lat {
                outln!(
                    "latency ms: p50 {} p90 {} p99 {} p99.9 {} max {}",
                    l["p50"],
                    l["p90"],
                    l["p99"],
                    l["p999"],
                    l["max"]
                );
            }
        }
    }
}

/// Counters shared with the progress printer.
#[derive(Default)]
struct Progress {
    done: AtomicU64,
    bytes: AtomicU64,
}

fn spawn_progress(p: Arc<Progress>, label: &'static str) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        let mut last = (0u64, 0u64);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            let d = p.done.load(Ordering::Relaxed);
            let b = p.bytes.load(Ordering::Relaxed);
            eprintln!(
                "[{:>5.1}s] {label} {d} records  {} records/s  {:.1} MB/s",
                start.elapsed().as_secs_f64(),
                d - last.0,
                (b - last.1) as f64 / 1e6
            );
            last = (d, b);
        }
    })
}

async fn ensure_topic(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let cluster = super::connect(bootstrap).await?;
    match cluster
        .create_topic(topic, partitions, &Default::default())
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some(36) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Runs the producers; `stamp` puts the intended send time (µs since the Unix epoch) in the
/// first 8 bytes of each value for e2e latency.
async fn run_producers(
    bootstrap: &str,
    r: &Resolved,
    stamp: bool,
    progress: Arc<Progress>,
) -> anyhow::Result<(Histogram<u64>, u64, f64)> {
    let per = r.messages / r.producers as u64;
    let extra = r.messages % r.producers as u64;
    let start = Instant::now();
    let mut handles = Vec::new();
    for i in 0..r.producers {
        let n = per + u64::from((i as u64) < extra);
        let cluster = super::connect(bootstrap).await?;
        let producer = Producer::new(cluster, r.config.clone());
        let topic = r.topic.clone();
        let size = r.size;
        let interval = r
            .rate
            .map(|rate| Duration::from_secs_f64(r.producers as f64 / rate as f64));
        let progress = progress.clone();
        handles.push(tokio::spawn(async move {
            let (tx, mut rx) = mpsc::channel::<(Instant, eddy_client::Delivery)>(100_000);
            let collector = tokio::spawn(async move {
                let mut h = histogram();
                let mut errors = 0u64;
                while let Some((intended, d)) = rx.recv().await {
                    match d.await {
                        Ok(Ok(_)) => {
                            let us = intended.elapsed().as_micros() as u64;
                            let _ = h.record(us.max(1));
                            progress.done.fetch_add(1, Ordering::Relaxed);
                            progress.bytes.fetch_add(size as u64, Ordering::Relaxed);
                        }
                        _ => errors += 1,
                    }
                }
                (h, errors)
            });
            let payload = Bytes::from(vec![b'x'; size]);
            let t0 = Instant::now();
            for k in 0..n {
                let intended = match interval {
                    Some(iv) => {
                        let t = t0 + iv.mul_f64(k as f64);
                        tokio::time::sleep_until(t.into()).await;
                        t
                    }
                    None => Instant::now(),
                };
                let value = if stamp {
                    let mut v = payload.to_vec();
                    let wall = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_micros() as u64)
                        .unwrap_or(0)
                        .saturating_sub(intended.elapsed().as_micros() as u64);
                    if v.len() >= 8 {
                        v[..8].copy_from_slice(&wall.to_be_bytes());
                    }
                    Bytes::from(v)
                } else {
                    payload.clone()
                };
                let d = producer
                    .send(OutRecord {
                        topic: topic.clone(),
                        value: Some(value),
                        ..Default::default()
                    })
                    .await?;
                if tx.send((intended, d)).await.is_err() {
                    break;
                }
            }
            producer.flush().await?;
            drop(tx);
            let r = collector
                .await
                .map_err(|e| anyhow::anyhow!("collector: {e}"))?;
            anyhow::Ok(r)
        }));
    }
    let mut h = histogram();
    let mut errors = 0;
    for j in handles {
        let (hh, e) = j
            .await
            .map_err(|e| anyhow::anyhow!("producer task: {e}"))??;
        h.add(hh).map_err(|e| anyhow::anyhow!("{e}"))?;
        errors += e;
    }
    Ok((h, errors, start.elapsed().as_secs_f64()))
}

pub(crate) async fn run(bootstrap: &str, cmd: BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Pipeline(b) => super::bench_pipeline::run(b).await?,
        BenchCmd::Sql(b) => super::bench_sql::run(b).await?,
        BenchCmd::Produce(b) => {
            let r = resolve(b)?;
            ensure_topic(bootstrap, &r.topic, r.partitions).await?;
            let progress = Arc::new(Progress::default());
            let pp = spawn_progress(progress.clone(), "produced");
            let (h, errors, secs) = run_producers(bootstrap, &r, false, progress).await?;
            pp.abort();
            Summary {
                mode: "produce",
                messages: r.messages - errors,
                bytes: (r.messages - errors) * r.size as u64,
                seconds: secs,
                errors,
                latency: Some(h),
            }
            .print(r.json);
        }
        BenchCmd::Consume(c) => {
            let cluster = super::connect(bootstrap).await?;
            let info = cluster.topic(&c.topic).await?;
            let parts = info.leaders.len();
            let progress = Arc::new(Progress::default());
            let pp = spawn_progress(progress.clone(), "consumed");
            let start = Instant::now();
            let mut handles = Vec::new();
            let target = c.messages;
            for i in 0..c.consumers.max(1) {
                let mine: Vec<i32> = (0..parts as i32)
                    .filter(|p| *p as usize % c.consumers.max(1) == i)
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                let cl = super::connect(bootstrap).await?;
                let topic = c.topic.clone();
                let progress = progress.clone();
                handles.push(tokio::spawn(async move {
                    let mut consumer = Consumer::new(cl, ConsumerConfig::default());
                    for p in mine {
                        consumer.assign(&topic, p, StartAt::Earliest).await?;
                    }
                    let mut idle = 0;
                    while progress.done.load(Ordering::Relaxed) < target {
                        let recs = consumer.poll().await?;
                        if recs.is_empty() {
                            idle += 1;
                            if idle > 20 {
                                break;
                            }
                            continue;
                        }
                        idle = 0;
                        let bytes: usize = recs
                            .iter()
                            .map(|r| r.value.as_ref().map_or(0, |v| v.len()))
                            .sum();
                        progress
                            .done
                            .fetch_add(recs.len() as u64, Ordering::Relaxed);
                        progress.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                    }
                    anyhow::Ok(())
                }));
            }
            for h in handles {
                h.await
                    .map_err(|e| anyhow::anyhow!("consumer task: {e}"))??;
            }
            pp.abort();
            let done = progress.done.load(Ordering::Relaxed);
            if done < target {
                anyhow::bail!(
                    "only {done} of {target} records were available in {}",
                    c.topic
                );
            }
            Summary {
                mode: "consume",
                messages: done,
                bytes: progress.bytes.load(Ordering::Relaxed),
                seconds: start.elapsed().as_secs_f64(),
                errors: 0,
                latency: None,
            }
            .print(c.json);
        }
        BenchCmd::E2e(b) => {
            let mut r = resolve(b)?;
            if r.size < 8 {
                r.size = 8;
            }
            if r.rate.is_none() {
                anyhow::bail!("bench e2e needs --rate (records/s) so latency is meaningful");
            }
            ensure_topic(bootstrap, &r.topic, r.partitions).await?;
            let cluster = super::connect(bootstrap).await?;
            let info = cluster.topic(&r.topic).await?;
            let mut consumer = Consumer::new(
                cluster,
                ConsumerConfig {
                    max_wait: Duration::from_millis(100),
                    ..ConsumerConfig::default()
                },
            );
            for p in 0..info.leaders.len() as i32 {
                consumer.assign(&r.topic, p, StartAt::Latest).await?;
            }
            let target = r.messages;
            let consumer_task = tokio::spawn(async move {
                let mut h = histogram();
                let mut got = 0u64;
                let mut idle_since = Instant::now();
                while got < target {
                    let recs = consumer.poll().await?;
                    if recs.is_empty() {
                        if idle_since.elapsed() > Duration::from_secs(30) {
                            anyhow::bail!("e2e consumer saw nothing for 30 s after {got} records");
                        }
                        continue;
                    }
                    idle_since = Instant::now();
                    let now_us = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_micros() as u64)
                        .unwrap_or(0);
                    for rec in recs {
                        if let Some(v) = rec.value.as_ref().filter(|v| v.len() >= 8) {
                            let mut a = [0u8; 8];
                            a.copy_from_slice(&v[..8]);
                            let sent = u64::from_be_bytes(a);
                            let _ = h.record(now_us.saturating_sub(sent).max(1));
                        }
                        got += 1;
                    }
                }
                anyhow::Ok((h, got))
            });
            let progress = Arc::new(Progress::default());
            let pp = spawn_progress(progress.clone(), "produced");
            let (_, errors, secs) = run_producers(bootstrap, &r, true, progress).await?;
            let (h, got) = consumer_task
                .await
                .map_err(|e| anyhow::anyhow!("consumer: {e}"))??;
            pp.abort();
            Summary {
                mode: "e2e",
                messages: got,
                bytes: got * r.size as u64,
                seconds: secs,
                errors,
                latency: Some(h),
            }
            .print(r.json);
        }
    }
    Ok(())
}
