//! Soak: 50 producers (acks=all) and 50 consumers on 20 partitions for a while (loopback
//! only). No errors, no unbounded memory growth in the broker, and consumer lag returns to
//! zero. Prints throughput, the broker's peak RSS and the p99 produce latency.
//!
//! CI runs a 20-second variant; `EDDY_SOAK_SECS=300 cargo test -p eddy-e2e --test soak --
//! --nocapture` runs the long one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use eddy_client::{
    Cluster, Consumer, ConsumerConfig, OutRecord, Producer, ProducerConfig, StartAt,
};
use eddy_e2e::Broker;

const PRODUCERS: usize = 50;
const CONSUMERS: usize = 50;
const PARTITIONS: i32 = 20;
/// Records per second per producer.
const RATE: u64 = 100;

#[test]
fn soak_fifty_producers_and_fifty_consumers() -> Result<()> {
    let secs: u64 = std::env::var("EDDY_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let broker = Broker::start()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let cluster = Cluster::connect(&broker.bootstrap(), "soak").await?;
        cluster.create_topic("soak", PARTITIONS, &BTreeMap::new()).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let produced = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let mut producers = Vec::new();
        for i in 0..PRODUCERS {
            let cluster = Cluster::connect(&broker.bootstrap(), &format!("soak-p{i}")).await?;
            let (stop, produced, errors) = (stop.clone(), produced.clone(), errors.clone());
            producers.push(tokio::spawn(async move {
                let p = Producer::new(cluster, ProducerConfig::default());
                let mut latencies = Vec::new();
                let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let sent = Instant::now();
                    let r = OutRecord {
                        topic: "soak".into(),
                        key: Some(format!("p{i}-{}", n % 97).into_bytes().into()),
                        value: Some(vec![b'x'; 200].into()),
                        ..OutRecord::default()
                    };
                    n += 1;
                    match p.send(r).await {
                        Ok(ack) => {
                            let (errors, produced) = (errors.clone(), produced.clone());
                            latencies.push(tokio::spawn(async move {
                                match ack.await {
                                    Ok(Ok(_)) => {
                                        produced.fetch_add(1, Ordering::Relaxed);
                                        Some(sent.elapsed())
                                    }
                                    _ => {
                                        errors.fetch_add(1, Ordering::Relaxed);
                                        None
                                    }
                                }
                            }));
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                let _ = p.flush().await;
                let mut out = Vec::new();
                for l in latencies {
                    if let Ok(Some(d)) = l.await {
                        out.push(d);
                    }
                }
                out
            }));
        }
        let consumed = Arc::new(AtomicU64::new(0));
        // Set once every producer has stopped and flushed: consumers then read to the end.
        let drain = Arc::new(AtomicBool::new(false));
        let mut consumers = Vec::new();
        for i in 0..CONSUMERS {
            let cluster = Cluster::connect(&broker.bootstrap(), &format!("soak-c{i}")).await?;
            let (stop, consumed, errors) = (drain.clone(), consumed.clone(), errors.clone());
            consumers.push(tokio::spawn(async move {
                let partition = i as i32 % PARTITIONS;
                let mut c = Consumer::new(cluster.clone(), ConsumerConfig { max_wait: Duration::from_millis(200), ..ConsumerConfig::default() });
                if c.assign("soak", partition, StartAt::Earliest).await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                    return (0, -1);
                }
                let mut n = 0u64;
                // After the producers stop, read until this consumer is at the log end.
                loop {
                    match c.poll().await {
                        Ok(recs) => {
                            n += recs.len() as u64;
                            consumed.fetch_add(recs.len() as u64, Ordering::Relaxed);
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if stop.load(Ordering::Relaxed) {
                        let end = cluster.list_offset("soak", partition, -1).await.unwrap_or(i64::MAX);
                        if c.positions().get(&("soak".to_string(), partition)).copied() == Some(end) {
                            return (n, end);
                        }
                    }
                }
            }));
        }
        let start = Instant::now();
        let mut samples = Vec::new();
        while start.elapsed() < Duration::from_secs(secs) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            samples.push(broker.rss_kib()?.0);
        }
        stop.store(true, Ordering::Relaxed);
        let mut lat = Vec::new();
        for p in producers {
            lat.extend(p.await?);
        }
        drain.store(true, Ordering::Relaxed);
        let elapsed = start.elapsed().as_secs_f64();
        let reads = tokio::time::timeout(Duration::from_secs(60), async {
            let mut reads = Vec::new();
            for c in consumers {
                reads.push(c.await.unwrap_or((0, -1)));
            }
            reads
        })
        .await
        .context("consumers did not catch up to the log end within 60 s (lag did not return to zero)")?;
        let drained: u64 = reads.iter().map(|r| r.0).sum();
        lat.sort();
        let p99 = lat.get(lat.len() * 99 / 100).copied().unwrap_or_default();
        let (rss, peak) = broker.rss_kib()?;
        let produced = produced.load(Ordering::Relaxed);
        let errors = errors.load(Ordering::Relaxed);
        eprintln!(
            "soak {secs} s: {produced} records acknowledged ({:.0}/s), {drained} consumed by {CONSUMERS} consumers ({:.0}/s), p99 produce latency {:.1} ms, broker RSS {} MiB now / {} MiB peak, errors {errors}",
            produced as f64 / elapsed,
            drained as f64 / elapsed,
            p99.as_secs_f64() * 1000.0,
            rss / 1024,
            peak / 1024,
        );
        if errors > 0 {
            bail!("{errors} errors during the soak");
        }
        // Every consumer read its partition from offset 0 to the end, each record once.
        for (i, (n, end)) in reads.iter().enumerate() {
            if *n as i64 != *end {
                bail!("consumer {i} read {n} records of a partition that holds {end}");
            }
        }
        let in_log: i64 = reads.iter().take(PARTITIONS as usize).map(|r| r.1).sum();
        if in_log as u64 != produced {
            bail!("{produced} records acknowledged but {in_log} in the log");
        }
        // Memory: after warm-up, RSS must not keep growing.
        let warm = samples[samples.len() / 3];
        let last = *samples.last().context("samples")?;
        if last > warm * 2 + 64 * 1024 {
            bail!("broker RSS grew from {} MiB to {} MiB during the soak: {samples:?}", warm / 1024, last / 1024);
        }
        anyhow::Ok(())
    })
}
