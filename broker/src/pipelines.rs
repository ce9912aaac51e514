//! Hosting processor pipelines inside the broker.
//!
//! Definitions live in `<data-dir>/pipelines/<name>.json` or `<name>.sql` (created and dropped through the
//! admin HTTP API: `eddy pipeline create/drop`, `eddy sql`); each pipeline keeps its checkpoint in
//! `<data-dir>/pipelines/<name>/` and its last status in `<name>/status.json`. The manager
//! rescans the directory every second, so pipelines start with the broker, survive restarts,
//! and appear or go without one. Each runs in its own task: a pipeline that fails is logged,
//! marked failed in its status and restarted from its checkpoint after a back-off; it never
//! takes the broker down.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use eddy_client::committed::AbortedTxn;
use eddy_processor::{
    Backend, BoxFuture, CommittedView, LocalHost, Pipeline, PipelineSpec, PipelineStatus,
    StatusSnapshot,
};
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

    fn committed(&self, topic: &str, partition: i32) -> Option<Arc<dyn CommittedView>> {
        let p = self.0.topics.get(topic)?.partition(partition)?.clone();
        Some(Arc::new(Committed(p)))
    }
}

/// A partition's last stable offset and aborted transactions, from its writer's latest
/// published view (as read_committed fetches see them).
struct Committed(Arc<crate::partition::Partition>);

impl CommittedView for Committed {
    fn last_stable_offset(&self) -> i64 {
        self.0.txn_view().lso
    }

    fn aborted(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.0
            .txn_view()
            .aborted_in(from, to)
            .into_iter()
            .map(|a| AbortedTxn {
                producer_id: a.producer_id,
                first_offset: a.first_offset,
            })
            .collect()
    }
}

/// Where pipeline definitions live.
pub fn pipelines_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("pipelines")
}

/// Writes a (validated) JSON definition straight into a data directory; a running broker
/// starts it within a second. (The admin API is the usual way; the benchmark uses this.)
pub fn install(data_dir: &Path, name: &str, definition: &[u8]) -> std::io::Result<()> {
    let dir = pipelines_dir(data_dir);
    std::fs::create_dir_all(&dir)?;
    crate::topics::write_atomic(&dir.join(format!("{name}.json")), definition)
}

/// Like [`install`] for a self-contained SQL definition (its tables, SETs and one INSERT).
pub fn install_sql(data_dir: &Path, name: &str, sql: &str) -> std::io::Result<()> {
    let dir = pipelines_dir(data_dir);
    std::fs::create_dir_all(&dir)?;
    crate::topics::write_atomic(&dir.join(format!("{name}.sql")), sql.as_bytes())
}

/// A pipeline as the broker persists it: the file it came from is what restarts it.
#[derive(Debug, Clone, PartialEq)]
pub enum Definition {
    /// A JSON definition (`eddy_processor::spec`), kept as `<name>.json`.
    Spec(PipelineSpec),
    /// Self-contained Flink SQL (its tables, SETs and one INSERT), kept as `<name>.sql`.
    Sql { name: String, sql: String },
}

impl Definition {
    pub fn name(&self) -> &str {
        match self {
            Definition::Spec(s) => &s.name,
            Definition::Sql { name, .. } => name,
        }
    }

    /// `json` or `sql`.
    pub fn kind(&self) -> &'static str {
        match self {
            Definition::Spec(_) => "json",
            Definition::Sql { .. } => "sql",
        }
    }

    fn file_name(&self) -> String {
        format!("{}.{}", self.name(), self.kind())
    }

    /// The definition as it is stored and shown by `describe`.
    pub fn text(&self) -> String {
        match self {
            Definition::Spec(s) => serde_json::to_string_pretty(s).unwrap_or_default(),
            Definition::Sql { sql, .. } => sql.clone(),
        }
    }

    fn compile(&self) -> Result<Pipeline, String> {
        match self {
            Definition::Spec(s) => s.compile().map_err(|e| e.to_string()),
            Definition::Sql { name, sql } => {
                eddy_processor::sql::compile_pipeline(name, sql).map_err(|e| e.to_string())
            }
        }
    }

    fn read(path: &Path) -> Result<Option<Definition>, String> {
        let ext = path.extension().and_then(|x| x.to_str());
        match ext {
            Some("json") => {
                let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
                PipelineSpec::from_json(&bytes)
                    .map(|s| Some(Definition::Spec(s)))
                    .map_err(|e| e.to_string())
            }
            Some("sql") => {
                let name = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .ok_or("the file name is not UTF-8")?
                    .to_string();
                let sql = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
                Ok(Some(Definition::Sql { name, sql }))
            }
            _ => Ok(None),
        }
    }
}

/// Why an admin request on pipelines failed; the admin API maps these to HTTP statuses.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{0}")]
    Invalid(String),
    #[error("no pipeline named '{0}'")]
    NotFound(String),
    #[error("pipeline '{0}' already exists with a different definition; drop it first")]
    Conflict(String),
    #[error("cannot store pipeline '{name}': {source}")]
    Io {
        name: String,
        source: std::io::Error,
    },
}

/// Checks a pipeline name: it becomes a file and a directory name in the data directory.
pub fn check_name(name: &str) -> Result<(), PipelineError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(PipelineError::Invalid(format!(
            "invalid pipeline name '{name}': use 1-200 letters, digits, '-', '_' or '.', not starting with '.'"
        )))
    }
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
    def: Definition,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// The pipelines a broker runs: definitions in `<data-dir>/pipelines/`, one supervised task
/// each. The admin API creates and drops through it; [`manage`] keeps the running set in step
/// with the directory every second (so definitions written while the broker was down, or by
/// hand, are picked up too).
pub struct Pipelines {
    dir: PathBuf,
    host: Arc<dyn LocalHost>,
    /// Running tasks by name. A tokio mutex: create and drop hold it while a task stops.
    running: tokio::sync::Mutex<BTreeMap<String, Running>>,
}

impl std::fmt::Debug for Pipelines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipelines").field("dir", &self.dir).finish()
    }
}

/// How long a stopping pipeline gets for its final checkpoint.
const STOP_GRACE: Duration = Duration::from_secs(10);

impl Pipelines {
    pub(crate) fn new(broker: Arc<Broker>) -> Pipelines {
        Pipelines {
            dir: pipelines_dir(&broker.config.data_dir()),
            host: Arc::new(BrokerHost(broker)),
            running: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// How pipelines reach the broker's partitions (queries use it too).
    pub(crate) fn host(&self) -> Arc<dyn LocalHost> {
        Arc::clone(&self.host)
    }

    /// Validates, stores and starts a pipeline. Creating one that exists with the same
    /// definition is a no-op (`Ok(false)`); a different definition under the same name is a
    /// conflict: its checkpointed state belongs to the old plan.
    pub async fn create(&self, def: Definition) -> Result<bool, PipelineError> {
        self.check(&def)?;
        let mut running = self.running.lock().await;
        if let Some(existing) = read_definitions(&self.dir).get(def.name()) {
            if *existing == def {
                return Ok(false);
            }
            return Err(PipelineError::Conflict(def.name().to_string()));
        }
        let io = |source| PipelineError::Io {
            name: def.name().to_string(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        crate::topics::write_atomic(&self.dir.join(def.file_name()), def.text().as_bytes())
            .map_err(io)?;
        tracing::info!(pipeline = %def.name(), kind = def.kind(), "pipeline created");
        self.sync(&mut running).await;
        Ok(true)
    }

    /// Would [`Pipelines::create`] accept `def`? A valid name, a plan that compiles, and no
    /// other pipeline of that name with a different definition. Lets a caller refuse a
    /// request before it changes anything else.
    pub fn check(&self, def: &Definition) -> Result<(), PipelineError> {
        check_name(def.name())?;
        def.compile().map_err(PipelineError::Invalid)?;
        match read_definitions(&self.dir).get(def.name()) {
            Some(existing) if existing != def => {
                Err(PipelineError::Conflict(def.name().to_string()))
            }
            _ => Ok(()),
        }
    }

    /// Stops a pipeline (a final checkpoint), then removes its definition and state.
    pub async fn drop_pipeline(&self, name: &str) -> Result<(), PipelineError> {
        let mut running = self.running.lock().await;
        let def = read_definitions(&self.dir)
            .remove(name)
            .ok_or_else(|| PipelineError::NotFound(name.to_string()))?;
        let io = |source| PipelineError::Io {
            name: name.to_string(),
            source,
        };
        std::fs::remove_file(self.dir.join(def.file_name())).map_err(io)?;
        if let Some(r) = running.remove(name) {
            stop(name, r).await;
        }
        let state = self.dir.join(name);
        if state.exists() {
            std::fs::remove_dir_all(&state).map_err(io)?;
        }
        tracing::info!(pipeline = %name, "pipeline dropped");
        Ok(())
    }

    /// Every defined pipeline with its last reported status.
    pub fn list(&self) -> Vec<(Definition, Option<serde_json::Value>)> {
        read_definitions(&self.dir)
            .into_values()
            .map(|d| {
                let status = read_status_in(&self.dir, d.name());
                (d, status)
            })
            .collect()
    }

    /// One pipeline's definition and last reported status.
    pub fn describe(
        &self,
        name: &str,
    ) -> Result<(Definition, Option<serde_json::Value>), PipelineError> {
        let def = read_definitions(&self.dir)
            .remove(name)
            .ok_or_else(|| PipelineError::NotFound(name.to_string()))?;
        Ok((def, read_status_in(&self.dir, name)))
    }

    /// Starts and stops tasks so that exactly the stored definitions run.
    async fn sync(&self, running: &mut BTreeMap<String, Running>) {
        let defs = read_definitions(&self.dir);
        let gone: Vec<String> = running
            .iter()
            .filter(|(name, r)| defs.get(*name) != Some(&r.def))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if let Some(r) = running.remove(&name) {
                tracing::info!(pipeline = %name, "pipeline definition removed or changed; stopping it");
                stop(&name, r).await;
            }
        }
        for (name, def) in defs {
            if running.contains_key(&name) {
                continue;
            }
            let (stop, stop_rx) = watch::channel(false);
            let task = tokio::spawn(supervise(
                def.clone(),
                Arc::clone(&self.host),
                self.dir.join(&name),
                stop_rx,
            ));
            running.insert(name, Running { def, stop, task });
        }
    }
}

async fn stop(name: &str, r: Running) {
    let _ = r.stop.send(true);
    if tokio::time::timeout(STOP_GRACE, r.task).await.is_err() {
        tracing::warn!(pipeline = %name, "pipeline did not stop within {STOP_GRACE:?}");
    }
}

/// Keeps the running pipelines in step with their definitions until `shutdown` fires; then
/// stops each (a final checkpoint) before returning.
pub(crate) async fn manage(pipelines: Arc<Pipelines>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        let mut running = pipelines.running.lock().await;
        pipelines.sync(&mut running).await;
    }
    let mut running = pipelines.running.lock().await;
    for r in running.values() {
        let _ = r.stop.send(true);
    }
    for (name, r) in std::mem::take(&mut *running) {
        stop(&name, r).await;
    }
}

fn read_definitions(dir: &Path) -> BTreeMap<String, Definition> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        match Definition::read(&path) {
            Ok(Some(def)) => {
                out.insert(def.name().to_string(), def);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "ignoring an unreadable pipeline definition")
            }
        }
    }
    out
}

/// Runs one pipeline, restarting it after failures, and keeps its status file current.
async fn supervise(
    def: Definition,
    host: Arc<dyn LocalHost>,
    state_dir: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    let mut restarts = 0u32;
    loop {
        let status = Arc::new(PipelineStatus::default());
        let outcome = match def.compile() {
            Err(e) => Err(e),
            Ok(pipeline) => {
                let run = eddy_processor::run(
                    pipeline,
                    Backend::Local(Arc::clone(&host)),
                    state_dir.clone(),
                    Arc::clone(&status),
                    stop.clone(),
                );
                let reporter = report(def.name(), &state_dir, &status, restarts);
                tokio::pin!(run);
                tokio::select! {
                    r = &mut run => r.map_err(|e| e.to_string()),
                    _ = reporter => Ok(()),
                }
            }
        };
        write_status(
            def.name(),
            &state_dir,
            &status.snapshot(),
            0.0,
            0.0,
            restarts,
        );
        match outcome {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(pipeline = %def.name(), error = %e, "pipeline failed; restarting from its last checkpoint in 5 s");
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

/// The state of a pipeline as last reported.
pub fn read_status(data_dir: &Path, name: &str) -> Option<serde_json::Value> {
    read_status_in(&pipelines_dir(data_dir), name)
}

fn read_status_in(dir: &Path, name: &str) -> Option<serde_json::Value> {
    let bytes = std::fs::read(dir.join(name).join("status.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}
