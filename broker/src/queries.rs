//! Ephemeral queries: a bare `SELECT` sent to `POST /v1/query` (what `eddy sql` does) runs as
//! a pipeline inside the broker whose rows go to that one HTTP response instead of a topic.
//!
//! Unlike [`crate::pipelines`], nothing is persisted: no definition, no state directory, no
//! checkpoints (the query keeps its state in memory and reads from its tables' start
//! positions). A query ends when its client disconnects (the response body is dropped, so
//! the pipeline's channel closes), when its LIMIT is reached, when a bounded source is read,
//! when it is cancelled (`DELETE /v1/queries/{id}`: `eddy sql` on Ctrl-C), or when the broker
//! shuts down. `GET /v1/queries` lists the ones running.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use eddy_processor::sql::SqlQuery;
use eddy_processor::{Event, LocalHost, PipelineStatus, RunState};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};

/// How many result events may wait for a slow client before the query stops reading.
const ROWS_BUFFERED: usize = 64;

/// One running query, for `GET /v1/queries`.
#[derive(Debug)]
struct Entry {
    sql: String,
    status: Arc<PipelineStatus>,
    /// Stops it (`DELETE /v1/queries/{id}`, broker shutdown).
    stop: watch::Sender<bool>,
}

/// The running ephemeral queries.
pub(crate) struct Queries {
    host: Arc<dyn LocalHost>,
    /// The broker's shutdown signal: every query stops on it.
    shutdown: watch::Receiver<bool>,
    next_id: AtomicU64,
    running: Mutex<BTreeMap<u64, Entry>>,
}

impl std::fmt::Debug for Queries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queries")
            .field("running", &self.running_ids())
            .finish()
    }
}

/// A started query: its rows as they come, then how it ended.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) id: u64,
    /// Result events; closed when the query ends. Dropping it stops the query.
    pub(crate) rows: mpsc::Receiver<Event>,
    /// How the run ended (sent after `rows` closes).
    pub(crate) done: oneshot::Receiver<RunState>,
}

impl Queries {
    pub(crate) fn new(host: Arc<dyn LocalHost>, shutdown: watch::Receiver<bool>) -> Queries {
        Queries {
            host,
            shutdown,
            next_id: AtomicU64::new(1),
            running: Mutex::new(BTreeMap::new()),
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn running_ids(&self) -> Vec<u64> {
        self.running().keys().copied().collect()
    }

    /// Starts `query` (planned from `sql`) in its own task.
    pub(crate) fn start(self: &Arc<Self>, sql: String, query: SqlQuery) -> Started {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rows) = mpsc::channel(ROWS_BUFFERED);
        let (done_tx, done) = oneshot::channel();
        let status = Arc::new(PipelineStatus::default());
        let (stop, stop_rx) = watch::channel(false);
        self.running().insert(
            id,
            Entry {
                sql,
                status: Arc::clone(&status),
                stop,
            },
        );
        let me = Arc::clone(self);
        tracing::info!(query = id, "query started");
        tokio::spawn(async move {
            let run = eddy_processor::run_query(
                query.pipeline,
                Arc::clone(&me.host),
                Arc::clone(&status),
                stop_rx,
                tx,
            );
            tokio::pin!(run);
            let mut shutdown = me.shutdown.clone();
            let down = async move {
                let _ = shutdown.wait_for(|down| *down).await;
            };
            let result = match tokio::select! {
                r = &mut run => Some(r),
                () = down => None,
            } {
                Some(r) => r,
                None => {
                    me.cancel(id);
                    run.await
                }
            };
            if let Err(e) = result {
                tracing::warn!(query = id, error = %e, "query failed");
            }
            // Gone from the list before its client hears the end.
            me.running().remove(&id);
            let state = status.snapshot().state;
            tracing::info!(query = id, state = ?state, "query ended");
            let _ = done_tx.send(state);
        });
        Started { id, rows, done }
    }

    /// Stops a running query (its client then gets `{"end": "stopped"}`); false if there is
    /// no such query.
    pub(crate) fn cancel(&self, id: u64) -> bool {
        match self.running().get(&id) {
            Some(e) => {
                let _ = e.stop.send(true);
                true
            }
            None => false,
        }
    }

    /// The running queries with their progress.
    pub(crate) fn list(&self) -> Vec<Value> {
        self.running()
            .iter()
            .map(|(id, e)| {
                let s = e.status.snapshot();
                let mut v = json!({ "id": id, "sql": e.sql });
                if let Ok(Value::Object(fields)) = serde_json::to_value(&s) {
                    for (k, x) in fields {
                        v[k] = x;
                    }
                }
                v
            })
            .collect()
    }
}
