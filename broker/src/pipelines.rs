//! Hosting processor pipelines inside the broker.
//!
//! Definitions live in `<data-dir>/pipelines/<name>.json` (written by `eddy pipeline create`,
//! removed by `eddy pipeline drop`); each pipeline keeps its checkpoint in
//! `<data-dir>/pipelines/<name>/` and its last status in `<name>/status.json`. The manager
//! rescans the directory every second, so pipelines start with the broker, survive restarts,
//! and appear or go without one. Each runs in its own task: a pipeline that fails is logged,
//! marked failed in its status and restarted from its checkpoint after a back-off; it never
//! takes the broker down.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use eddy_processor::{Backend, BoxFuture, LocalHost, PipelineSpec, PipelineStatus, StatusSnapshot};
use eddy_storage::LogReader;
use serde::Serialize;
use tokio::sync::watch;

use crate::partition::Durability;
use crate::server::Broker;

/// The broker's partitions as a pipeline sees them: reads straight from the logs, writes
/// through the partition writers (sequence checks, group commit, fsync) like a producer.
struct BrokerHost(Arc<Broker>);

impl LocalHost for BrokerHost {
    fn partitions(&self, topic: &str) -> Option<i32> {
        self.0.topics.get(topic).map(|t| t.partitions.len() as i32)
    }

    fn subscribe(&self, topic: &str, partition: i32) -> Option<(LogReader, watch::Receiver<i64>)> {
        let t = self.0.topics.get(topic)?;
        let p = t.partition(partition)?;
        Some((p.reader(), p.watch_end()))
    }

    fn append(
        &self,
        topic: &str,
        partition: i32,
        batch: Vec<u8>,
    ) -> BoxFuture<Result<i64, String>> {
        let p = self
            .0
            .topics
            .get(topic)
            .and_then(|t| t.partition(partition).cloned());
        let name = format!("{topic}-{partition}");
        Box::pin(async move {
            let p = p.ok_or_else(|| format!("{name} does not exist"))?;
            let rx = p
                .append(batch, Durability::Synced)
                .await
                .map_err(|e| e.to_string())?;
            let done = rx.await.map_err(|_| "the partition closed".to_string())?;
            done.map(|a| a.base_offset).map_err(|e| e.to_string())
        })
    }

    fn last_sequence(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
    ) -> BoxFuture<Option<i32>> {
        let p = self
            .0
            .topics
            .get(topic)
            .and_then(|t| t.partition(partition).cloned());
        Box::pin(async move { p?.last_sequence(producer_id).await.ok().flatten() })
    }

    fn allocate_producer_id(&self) -> BoxFuture<Result<i64, String>> {
        let r = self.0.producer_ids.next().map_err(|e| e.to_string());
        Box::pin(async move { r })
    }
}

/// Where pipeline definitions live.
pub fn pipelines_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("pipelines")
}

/// Writes a (validated) definition atomically into the data directory.
pub fn install(data_dir: &Path, name: &str, definition: &[u8]) -> std::io::Result<()> {
    let dir = pipelines_dir(data_dir);
    std::fs::create_dir_all(&dir)?;
    crate::topics::write_atomic(&dir.join(format!("{name}.json")), definition)
}

/// Status as written to `status.json`.
#[derive(Debug, Serialize)]
struct StatusFile<'a> {
    name: &'a str,
    #[serde(flatten)]
    status: StatusSnapshot,
    /// Records per second in and out over the last interval.
    rate_in: f64,
    rate_out: f64,
    restarts: u32,
}

struct Running {
    spec: PipelineSpec,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts, restarts and stops the pipelines defined in the data directory until `shutdown`
/// fires; then stops each (a final checkpoint) before returning.
pub(crate) async fn manage(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let dir = pipelines_dir(&broker.config.data_dir());
    let host: Arc<dyn LocalHost> = Arc::new(BrokerHost(Arc::clone(&broker)));
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        let specs = read_specs(&dir);
        running.retain(|name, r| {
            let keep = specs.get(name).is_some_and(|s| *s == r.spec);
            if !keep {
                tracing::info!(pipeline = %name, "pipeline definition removed or changed; stopping it");
                let _ = r.stop.send(true);
            }
            keep
        });
        for (name, spec) in specs {
            if running.contains_key(&name) {
                continue;
            }
            let (stop, stop_rx) = watch::channel(false);
            let task = tokio::spawn(supervise(
                spec.clone(),
                Arc::clone(&host),
                dir.join(&name),
                stop_rx,
            ));
            running.insert(name, Running { spec, stop, task });
        }
    }
    for r in running.values() {
        let _ = r.stop.send(true);
    }
    for (name, r) in running {
        if tokio::time::timeout(Duration::from_secs(10), r.task)
            .await
            .is_err()
        {
            tracing::warn!(pipeline = %name, "pipeline did not stop within 10 s");
        }
    }
}

fn read_specs(dir: &Path) -> BTreeMap<String, PipelineSpec> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| PipelineSpec::from_json(&b).map_err(|e| e.to_string()))
        {
            Ok(spec) => {
                out.insert(spec.name.clone(), spec);
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "ignoring an unreadable pipeline definition")
            }
        }
    }
    out
}

/// Runs one pipeline, restarting it after failures, and keeps its status file current.
async fn supervise(
    spec: PipelineSpec,
    host: Arc<dyn LocalHost>,
    state_dir: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    let mut restarts = 0u32;
    loop {
        let status = Arc::new(PipelineStatus::default());
        let outcome = match spec.compile() {
            Err(e) => Err(e.to_string()),
            Ok(pipeline) => {
                let run = eddy_processor::run(
                    pipeline,
                    Backend::Local(Arc::clone(&host)),
                    state_dir.clone(),
                    Arc::clone(&status),
                    stop.clone(),
                );
                let reporter = report(&spec.name, &state_dir, &status, restarts);
                tokio::pin!(run);
                tokio::select! {
                    r = &mut run => r.map_err(|e| e.to_string()),
                    _ = reporter => Ok(()),
                }
            }
        };
        write_status(
            &spec.name,
            &state_dir,
            &status.snapshot(),
            0.0,
            0.0,
            restarts,
        );
        match outcome {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(pipeline = %spec.name, error = %e, "pipeline failed; restarting from its last checkpoint in 5 s");
                restarts += 1;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

/// Writes the status file every second (never returns).
async fn report(name: &str, dir: &Path, status: &PipelineStatus, restarts: u32) {
    let mut last = status.snapshot();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = status.snapshot();
        let rate_in = now.records_in.saturating_sub(last.records_in) as f64;
        let rate_out = now.records_out.saturating_sub(last.records_out) as f64;
        write_status(name, dir, &now, rate_in, rate_out, restarts);
        last = now;
    }
}

fn write_status(
    name: &str,
    dir: &Path,
    status: &StatusSnapshot,
    rate_in: f64,
    rate_out: f64,
    restarts: u32,
) {
    let file = StatusFile {
        name,
        status: status.clone(),
        rate_in,
        rate_out,
        restarts,
    };
    if let Ok(bytes) = serde_json::to_vec_pretty(&file) {
        if let Err(e) = crate::topics::write_atomic(&dir.join("status.json"), &bytes) {
            tracing::debug!(pipeline = %name, error = %e, "cannot write pipeline status");
        }
    }
}

/// The state of a pipeline as last reported (for `eddy pipeline list/describe`).
pub fn read_status(data_dir: &Path, name: &str) -> Option<serde_json::Value> {
    let bytes = std::fs::read(pipelines_dir(data_dir).join(name).join("status.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}
