//! `eddy bench pipeline`: the same plans in the broker (local source and sink, straight
//! through storage) and as a remote client over TCP against that same broker, in one run.
//!
//! Starts its own broker on a free loopback port with a temporary data directory, loads
//! `--events` JSON events of about 100 bytes, then runs three bounded plans (filter, map,
//! 10 s tumbling count per key) both ways and reports events/s and the ratio.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use eddy_broker::BrokerConfig;
use eddy_client::{Cluster, OutRecord, Producer, ProducerConfig};
use eddy_processor::{Backend, PipelineSpec, PipelineStatus};

use super::outln;

#[derive(Debug, Args)]
pub(crate) struct PipelineBench {
    /// Events to generate.
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Partitions of the input topic.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
    /// Run only these plans (filter, map, count); all three by default.
    #[arg(long = "plan", value_name = "PLAN", value_parser = ["filter", "map", "count"])]
    only: Vec<String>,
}

const INPUT: &str = "bench-events";

fn plans() -> [(&'static str, &'static str); 3] {
    [
        (
            "filter",
            r#"[{"filter": {"field": "amount", "op": ">", "value": 50}}]"#,
        ),
        ("map", r#"[{"project": ["user", "amount", "ts"]}]"#),
        (
            "count",
            r#"[{"window": {"tumbling_ms": 10000, "group_by": ["user"], "aggregates": [{"fn": "count", "as": "n"}]}}]"#,
        ),
    ]
}

fn spec(name: &str, steps: &str, output: &str) -> anyhow::Result<(Vec<u8>, PipelineSpec)> {
    let json = format!(
        r#"{{"name": "{name}", "inputs": [{{"topic": "{INPUT}", "event_time": "ts"}}], "steps": {steps}, "output": "{output}", "bounded": true}}"#
    );
    let spec = PipelineSpec::from_json(json.as_bytes())?;
    Ok((json.into_bytes(), spec))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[derive(Debug, serde::Serialize)]
struct Row {
    plan: &'static str,
    local_events_per_s: f64,
    remote_events_per_s: f64,
    ratio: f64,
}

/// A broker in this process on a free loopback port (admin API off), for benchmarks.
pub(super) struct Embedded {
    pub(super) cluster: Arc<Cluster>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Embedded {
    pub(super) async fn start(data_dir: &std::path::Path) -> anyhow::Result<Embedded> {
        Self::start_with(data_dir, &[]).await
    }

    /// [`Embedded::start`] with further broker settings (tests).
    pub(super) async fn start_with(
        data_dir: &std::path::Path,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<Embedded> {
        let addr = format!("127.0.0.1:{}", free_port()?);
        let mut config = BrokerConfig::default();
        config.set("data-dir", &data_dir.to_string_lossy())?;
        config.set("listen", &addr)?;
        config.set("http", "off")?;
        // Generated events carry fixed event times (2023): with the default retention the
        // broker would delete them at its first retention check (5 minutes after start),
        // under a query still reading them, which then finishes early.
        config.set("log.retention.ms", "-1")?;
        for (k, v) in settings {
            config.set(k, v)?;
        }
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(eddy_broker::serve(config, async {
            let _ = stop_rx.await;
        }));
        let cluster = connect(&addr).await?;
        Ok(Embedded {
            cluster,
            stop,
            task,
        })
    }

    /// Shuts the broker down cleanly.
    pub(super) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await?
    }
}

pub(crate) async fn run(b: PipelineBench) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("data");
    let embedded = Embedded::start(&data_dir).await?;
    let cluster = Arc::clone(&embedded.cluster);
    cluster
        .create_topic(INPUT, b.partitions, &Default::default())
        .await?;
    for (plan, _) in plans() {
        for side in ["local", "remote"] {
            cluster
                .create_topic(
                    &format!("bench-{plan}-{side}"),
                    b.partitions,
                    &Default::default(),
                )
                .await?;
        }
    }
    load(&cluster, b.events).await?;
    let mut rows = Vec::new();
    let chosen = plans()
        .into_iter()
        .filter(|(plan, _)| b.only.is_empty() || b.only.iter().any(|o| o == plan));
    for (plan, steps) in chosen {
        let local = run_local(&data_dir, plan, steps, b.events).await?;
        let remote = run_remote(&cluster, dir.path(), plan, steps, b.events).await?;
        let row = Row {
            plan,
            local_events_per_s: b.events as f64 / local,
            remote_events_per_s: b.events as f64 / remote,
            ratio: remote / local,
        };
        if !b.json {
            outln!(
                "{plan:>6}: in-broker {:>12.0} events/s   remote over TCP {:>12.0} events/s   in-broker is {:.1}x",
                row.local_events_per_s,
                row.remote_events_per_s,
                row.ratio
            );
        }
        rows.push(row);
    }
    if b.json {
        outln!("{}", serde_json::to_string(&rows)?);
    }
    embedded.stop().await
}

async fn connect(addr: &str) -> anyhow::Result<Arc<Cluster>> {
    for _ in 0..100 {
        if let Ok(c) = Cluster::connect(addr, "eddy-bench-pipeline").await {
            return Ok(c);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the embedded broker did not start on {addr}")
}

/// Produces `n` events of about 100 bytes, keyed by user, 1 ms of event time apart.
async fn load(cluster: &Arc<Cluster>, n: u64) -> anyhow::Result<()> {
    let base = 1_700_000_000_000u64;
    load_with(cluster, n, |i| {
        let user = format!("user-{:04}", i % 1000);
        let value = format!(
            r#"{{"user":"{user}","item":"item-{:05}","amount":{},"ts":{},"country":"fr"}}"#,
            (i * 7919) % 100_000,
            i % 100,
            base + i
        );
        OutRecord {
            topic: INPUT.into(),
            key: Some(user.into_bytes().into()),
            value: Some(value.into_bytes().into()),
            timestamp: Some((base + i) as i64),
            ..OutRecord::default()
        }
    })
    .await
}

/// Produces the records `make(0..n)` with acks=1, at most 4,096 unacknowledged.
pub(super) async fn load_with(
    cluster: &Arc<Cluster>,
    n: u64,
    make: impl Fn(u64) -> OutRecord,
) -> anyhow::Result<()> {
    let producer = Producer::new(
        Arc::clone(cluster),
        ProducerConfig {
            acks: 1,
            ..ProducerConfig::default()
        },
    );
    let start = Instant::now();
    let mut acks = Vec::with_capacity(4096);
    for i in 0..n {
        acks.push(producer.send(make(i)).await?);
        if acks.len() == 4096 {
            for a in acks.drain(..) {
                a.await??;
            }
        }
    }
    producer.flush().await?;
    for a in acks {
        a.await??;
    }
    eprintln!(
        "loaded {n} events in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Seconds the in-broker run took, from its own start and finish stamps.
async fn run_local(
    data_dir: &std::path::Path,
    plan: &str,
    steps: &str,
    n: u64,
) -> anyhow::Result<f64> {
    let name = format!("bench-{plan}");
    let (json, _) = spec(&name, steps, &format!("bench-{plan}-local"))?;
    eddy_broker::pipelines::install(data_dir, &name, &json)?;
    wait_finished(data_dir, &name, n).await
}

/// Waits for the bounded in-broker pipeline `name` to finish having read `n` events; the
/// seconds it took, from its own start and finish stamps.
pub(super) async fn wait_finished(
    data_dir: &std::path::Path,
    name: &str,
    n: u64,
) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(3_600);
    loop {
        if let Some(s) = eddy_broker::pipelines::read_status(data_dir, name) {
            match s["state"].as_str() {
                Some("finished") => {
                    anyhow::ensure!(
                        s["records_in"].as_u64() == Some(n),
                        "{name} read {} events of {n}",
                        s["records_in"]
                    );
                    let ms = s["finished_at_ms"].as_i64().unwrap_or(0)
                        - s["started_at_ms"].as_i64().unwrap_or(0);
                    return Ok(ms.max(1) as f64 / 1000.0);
                }
                Some("failed") => anyhow::bail!("{name} failed: {}", s["error"]),
                _ => {}
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "{name} did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run_remote(
    cluster: &Arc<Cluster>,
    tmp: &std::path::Path,
    plan: &str,
    steps: &str,
    n: u64,
) -> anyhow::Result<f64> {
    let name = format!("bench-{plan}-remote");
    let (_, spec) = spec(&name, steps, &format!("bench-{plan}-remote"))?;
    let status = Arc::new(PipelineStatus::default());
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    eddy_processor::run(
        spec.compile()?,
        Backend::Remote(Arc::clone(cluster)),
        tmp.join(&name),
        Arc::clone(&status),
        stop,
    )
    .await?;
    let s = status.snapshot();
    anyhow::ensure!(s.records_in == n, "remote run read {} events", s.records_in);
    let ms = s.finished_at_ms.unwrap_or(0) - s.started_at_ms.unwrap_or(0);
    Ok(ms.max(1) as f64 / 1000.0)
}
