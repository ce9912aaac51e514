//! The Eddy broker: a Kafka-compatible server over Eddy's log store.
//!
//! `serve` wires the pieces: configuration, the topic registry (which recovers every
//! partition log), the listener and its connection tasks, and background tasks for retention
//! and interval flushing. See `docs/design.md` for the whole picture.

mod admin;
pub mod check;
pub mod config;
mod error;
mod groups;
mod handlers;
mod partition;
pub mod pipelines;
mod producers;
mod queries;
mod server;
mod sql;
mod topics;
mod txn;

use std::fs;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::BrokerConfig;

/// Persisted identity of this data directory's cluster.
#[derive(Debug, Serialize, Deserialize)]
struct ClusterMeta {
    cluster_id: String,
}

fn cluster_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("meta").join("cluster.json");
    if let Ok(bytes) = fs::read(&path) {
        let m: ClusterMeta = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is unreadable", path.display()))?;
        return Ok(m.cluster_id);
    }
    // Kafka cluster ids are 22-character URL-safe base64 of a UUID; any unique string works.
    let id = uuid::Uuid::new_v4().simple().to_string()[..22].to_string();
    let bytes = serde_json::to_vec(&ClusterMeta {
        cluster_id: id.clone(),
    })?;
    topics::write_atomic(&path, &bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(id)
}

/// Runs the broker until `stop` resolves, then shuts down cleanly: stops accepting, lets
/// in-flight requests finish (up to `shutdown.grace.ms`), flushes and closes every log.
pub async fn serve(
    config: BrokerConfig,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    raise_open_file_limit(config.long("max.connections").max(0) as u64);
    let config = Arc::new(config);
    let data_dir = config.data_dir();
    fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let lock_path = data_dir.join(".lock");
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        anyhow::bail!(
            "data directory {} is in use by another eddy process",
            data_dir.display()
        );
    }
    let cluster_id = cluster_id(&data_dir)?;
    let topics = topics::Topics::load(config.clone())
        .await
        .context("cannot load topics")?;
    let listen = config.listen();
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let http = match config.http() {
        Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| {
            format!(
                "cannot listen on {addr} for the admin HTTP API (set http=off or --http HOST:PORT)"
            )
        })?),
        None => None,
    };
    let bound = listener.local_addr()?;
    let (host, port) = config.advertised(bound);
    let (sd_tx, sd_rx) = watch::channel(false);
    let ms = |k: &str| Duration::from_millis(config.long(k).max(0) as u64);
    let settings = groups::GroupSettings {
        initial_rebalance_delay: ms("group.initial.rebalance.delay.ms"),
        min_session_timeout: ms("group.min.session.timeout.ms"),
        max_session_timeout: ms("group.max.session.timeout.ms"),
    };
    let coordinator = groups::Coordinator::load(
        &topics,
        settings,
        Duration::from_secs(config.long("offsets.retention.minutes").max(1) as u64 * 60),
        config.long("offset.metadata.max.bytes").max(0) as usize,
    )
    .await
    .context("cannot load consumer groups")?;
    let coordinator = Arc::new(coordinator);
    tokio::spawn(coordinator.clone().run_timers(sd_rx.clone()));
    let txn_settings = txn::TxnSettings {
        max_timeout_ms: config
            .long("transaction.max.timeout.ms")
            .clamp(1, i64::from(i32::MAX)) as i32,
        abort_check_every: ms("transaction.abort.timed.out.transaction.cleanup.interval.ms"),
    };
    let transactions = txn::Coordinator::load(&topics, &coordinator, txn_settings)
        .await
        .context("cannot load transactions")?;
    let broker = Arc::new(server::Broker {
        config: config.clone(),
        topics,
        groups: coordinator,
        txn: Arc::new(transactions),
        producer_ids: Arc::new(
            producers::ProducerIds::load(&data_dir)
                .context("cannot read the producer id reservation")?,
        ),
        node_id: config.long("node.id") as i32,
        host,
        port,
        cluster_id,
        max_frame: config.long("socket.request.max.bytes") as usize,
        request_memory: Arc::new(tokio::sync::Semaphore::new(
            config.long("queued.max.request.bytes") as usize,
        )),
        request_memory_total: config.long("queued.max.request.bytes") as usize,
        connection_inflight: config.long("connection.max.inflight.bytes") as usize,
        max_connections: config.long("max.connections") as usize,
        shutdown: sd_rx.clone(),
    });
    tracing::info!(
        listen = %bound,
        advertise = %format!("{}:{}", broker.host, broker.port),
        data_dir = %data_dir.display(),
        topics = broker.topics.all().len(),
        startup_ms = started.elapsed().as_millis() as u64,
        "eddy listening on {bound}"
    );

    warn_fault_injection();

    tokio::spawn(broker.txn.clone().run_timers(broker.clone(), sd_rx.clone()));
    let background = spawn_background(broker.clone(), sd_rx.clone());
    let registry = Arc::new(pipelines::Pipelines::new(broker.clone()));
    let pipelines = tokio::spawn(pipelines::manage(registry.clone(), sd_rx.clone()));
    let admin_task = match http {
        Some(l) => {
            let addr = l.local_addr()?;
            tracing::info!("eddy admin API listening on http://{addr}");
            let admin = admin::Admin {
                sql: Arc::new(sql::SqlService::load(&data_dir, registry.clone())?),
                queries: Arc::new(queries::Queries::new(registry.host(), sd_rx.clone())),
                pipelines: registry,
            };
            Some(tokio::spawn(admin::run(l, admin, sd_rx.clone())))
        }
        None => None,
    };
    let server = tokio::spawn(server::run(listener, broker.clone(), sd_rx));
    stop.await;
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = sd_tx.send(true);
    let _ = server.await;
    if let Some(mut t) = admin_task {
        // Queries end on the shutdown signal, but a query client that stopped reading keeps
        // its streaming answer (and so the admin server) busy: bounded like the Kafka side.
        let grace = Duration::from_millis(broker.config.long("shutdown.grace.ms").max(0) as u64);
        if tokio::time::timeout(grace, &mut t).await.is_err() {
            tracing::warn!(
                "admin API connections still busy after the shutdown grace period; dropping them"
            );
            t.abort();
        }
    }
    // Pipelines take a final checkpoint through the partition writers: before logs close.
    let _ = pipelines.await;
    background.abort();
    broker.topics.close_all().await;
    drop(lock);
    tracing::info!("shutdown complete; all logs flushed");
    Ok(())
}

/// Retention checks, the log cleaner of compacted topics and, with `log.flush.interval.ms`,
/// periodic fsync.
fn spawn_background(
    broker: Arc<server::Broker>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let retention_every =
            Duration::from_millis(broker.config.long("log.retention.check.interval.ms") as u64);
        let flush_ms = broker.config.long("log.flush.interval.ms");
        let mut retention = tokio::time::interval(retention_every);
        let mut cleaner = tokio::time::interval(Duration::from_millis(
            broker.config.long("log.cleaner.backoff.ms").max(10) as u64,
        ));
        let mut flush = tokio::time::interval(Duration::from_millis(flush_ms.max(1) as u64));
        loop {
            tokio::select! {
                _ = retention.tick() => {
                    let now = handlers_now();
                    for p in broker.topics.all_partitions() {
                        p.enforce_retention(now).await;
                    }
                }
                _ = cleaner.tick() => {
                    let now = handlers_now();
                    for t in broker.topics.all() {
                        if topics::log_config(&broker.config, &t.configs).compact {
                            for p in &t.partitions {
                                p.compact(now).await;
                            }
                        }
                    }
                }
                _ = flush.tick(), if flush_ms >= 0 => {
                    for p in broker.topics.all_partitions() {
                        p.flush().await;
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
    })
}

fn handlers_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Says loudly when the storage fault hook of debug builds is armed (tests only), and that
/// release builds ignore it.
fn warn_fault_injection() {
    #[cfg(debug_assertions)]
    if let Some(p) = eddy_storage::fault::control_file() {
        tracing::warn!(
            control_file = %p.display(),
            "storage fault injection is enabled (EDDY_FAULT_FILE, a test hook of debug builds)"
        );
    }
    #[cfg(not(debug_assertions))]
    if std::env::var_os("EDDY_FAULT_FILE").is_some() {
        tracing::warn!("EDDY_FAULT_FILE is ignored: release builds have no fault injection");
    }
}

/// Raises the soft open-file limit to the hard one: every connection and every open segment
/// file is a descriptor, and many systems start processes at a soft limit of 1,024, far below
/// `max.connections`. Warns when even the hard limit leaves too little room.
fn raise_open_file_limit(max_connections: u64) {
    /// Descriptors kept for log files, indexes and the rest besides connections.
    const ROOM: u64 = 1024;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < max_connections.saturating_add(ROOM) => tracing::warn!(
            limit,
            max_connections,
            "the open-file limit is below max.connections plus {ROOM} for log files: beyond \
             about {} connections, accepting fails (raise the hard limit, `ulimit -Hn`, or \
             lower max.connections)",
            limit.saturating_sub(ROOM)
        ),
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the open-file limit"),
    }
}
