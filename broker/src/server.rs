//! The listener and connection tasks.
//!
//! A connection task reads frames (bounding the length before allocating), decodes each
//! into a request, and hands it to [`crate::handlers::dispatch`], which does the order-
//! sensitive part at once (for Produce: queueing the appends) and returns a future for the
//! response. A writer task awaits those futures in request order and writes the responses,
//! so many requests can be in flight on one connection while answers leave in order.
//! Produce futures run in their own task (they only wait for appends already queued), so a
//! produce frees its request-budget reservation when it is done, not when the writer task
//! reaches it; every other response is built only when the writer polls it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use eddy_protocol::codec::{self, DecodeError};
use futures::future::BoxFuture;
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::config::BrokerConfig;
use crate::handlers;
use crate::topics::Topics;

/// Requests one connection may have in flight before the broker stops reading from it.
const MAX_IN_FLIGHT: usize = 64;
/// Frame bytes read per step: a huge announced length is only allocated as data arrives.
const READ_CHUNK: usize = 64 * 1024;

/// A response in the making: resolves to the encoded frame, or `None` when the request
/// gets no answer (acks=0 produce).
pub(crate) type Pending = BoxFuture<'static, Option<BytesMut>>;

/// Everything a handler needs.
#[derive(Debug)]
pub(crate) struct Broker {
    pub(crate) config: Arc<BrokerConfig>,
    pub(crate) topics: Topics,
    pub(crate) groups: Arc<crate::groups::Coordinator>,
    pub(crate) txn: Arc<crate::txn::Coordinator>,
    pub(crate) producer_ids: Arc<crate::producers::ProducerIds>,
    pub(crate) node_id: i32,
    pub(crate) host: String,
    pub(crate) port: i32,
    pub(crate) cluster_id: String,
    pub(crate) max_frame: usize,
    /// Bytes of requests read but not yet answered, broker-wide (`queued.max.request.bytes`).
    pub(crate) request_memory: Arc<Semaphore>,
    pub(crate) request_memory_total: usize,
    /// Per-connection cap on the same (`connection.max.inflight.bytes`).
    pub(crate) connection_inflight: usize,
    pub(crate) max_connections: usize,
    /// Fires when the broker starts shutting down; long-polls return early.
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// Accepts connections until `shutdown` fires, then waits up to the grace period for the
/// connections to finish their in-flight requests.
pub(crate) async fn run(
    listener: TcpListener,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if conns.len() >= broker.max_connections {
                        tracing::warn!(%peer, limit = broker.max_connections,
                            "refusing a connection: max.connections reached");
                        drop(stream);
                        continue;
                    }
                    let b = broker.clone();
                    let sd = shutdown.clone();
                    conns.spawn(async move { connection(stream, peer, b, sd).await });
                }
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let grace = Duration::from_millis(broker.config.long("shutdown.grace.ms").max(0) as u64);
    let drained =
        tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            remaining = conns.len(),
            "connections still busy after the shutdown grace period; dropping them"
        );
        conns.abort_all();
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Pending>(MAX_IN_FLIGHT);
    let inflight = Arc::new(Semaphore::new(broker.connection_inflight));
    let writer = tokio::spawn(write_responses(wr, rx, peer));
    tracing::debug!(%peer, "connection opened");
    loop {
        let mut len = [0u8; 4];
        tokio::select! {
            r = rd.read_exact(&mut len) => {
                if let Err(e) = r {
                    if e.kind() != std::io::ErrorKind::UnexpectedEof {
                        tracing::debug!(%peer, error = %e, "read failed");
                    }
                    break;
                }
            }
            _ = shutdown.changed() => break,
        }
        let n = match codec::check_frame_len(i32::from_be_bytes(len), broker.max_frame) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(%peer, "{e}; closing the connection");
                break;
            }
        };
        // Reserve the frame's bytes before reading it: when the broker (or this connection)
        // holds too many unanswered request bytes, stop reading until responses go out.
        let permits = match reserve(&broker, &inflight, n).await {
            Some(p) => p,
            None => break,
        };
        let frame = match read_frame(&mut rd, n).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(%peer, expected = n, error = %e, "connection closed in the middle of a request frame");
                break;
            }
        };
        let pending: Pending = match codec::decode_request(frame.freeze()) {
            Ok(req) => {
                let api = req.api;
                let p = handlers::dispatch(broker.clone(), req, peer).await;
                let done = async move {
                    let out = p.await;
                    drop(permits);
                    out
                };
                if api == ApiKey::Produce {
                    // The batches are already queued on their partition writers; finish the
                    // request (and free its reservation) as soon as they are appended, not
                    // when the writer task reaches it: a client that does not read its
                    // answers must not hold request budget for work that is done. The
                    // answer waiting in the task is small.
                    let task = tokio::spawn(done);
                    Box::pin(async move {
                        task.await.unwrap_or_else(|e| {
                            tracing::error!(%peer, error = %e, "a produce request's task failed; the client will time out");
                            None
                        })
                    })
                } else {
                    // Built only when the writer task reaches it: a Fetch reads the log then,
                    // so a client that does not read holds one answer, not one per request.
                    Box::pin(done)
                }
            }
            Err(DecodeError::UnsupportedVersion {
                api: ApiKey::ApiVersions,
                version,
                correlation_id,
                ..
            }) => {
                tracing::debug!(%peer, version, "ApiVersions at an unsupported version; answering with the v0 fallback");
                match codec::api_versions_fallback(correlation_id) {
                    Ok(b) => Box::pin(async move { Some(b) }),
                    Err(e) => {
                        tracing::error!(%peer, error = %e, "encoding failed");
                        break;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(%peer, "bad request: {e}; closing the connection");
                break;
            }
        };
        if tx.send(pending).await.is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
    tracing::debug!(%peer, "connection closed");
}

/// Takes `n` bytes (capped at each limit, so one large frame can always proceed alone) from
/// the broker-wide and the per-connection request budgets.
async fn reserve(
    broker: &Broker,
    inflight: &Arc<Semaphore>,
    n: usize,
) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
    let global = n.min(broker.request_memory_total).max(1) as u32;
    let local = n.min(broker.connection_inflight).max(1) as u32;
    let l = inflight.clone().acquire_many_owned(local).await.ok()?;
    let g = broker
        .request_memory
        .clone()
        .acquire_many_owned(global)
        .await
        .ok()?;
    Some((g, l))
}

/// Reads exactly `n` bytes, growing the buffer as data arrives so an announced length
/// alone does not allocate.
async fn read_frame(rd: &mut OwnedReadHalf, n: usize) -> std::io::Result<BytesMut> {
    let mut buf = BytesMut::with_capacity(n.min(READ_CHUNK));
    while buf.len() < n {
        let want = (n - buf.len()).min(READ_CHUNK);
        buf.reserve(want);
        let got = (&mut *rd).take(want as u64).read_buf(&mut buf).await?;
        if got == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(buf)
}

async fn write_responses(wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Pending>, peer: SocketAddr) {
    let mut out = BufWriter::with_capacity(64 * 1024, wr);
    while let Some(p) = rx.recv().await {
        if let Some(bytes) = p.await {
            if let Err(e) = out.write_all(&bytes).await {
                tracing::debug!(%peer, error = %e, "write failed");
                return;
            }
        }
        if rx.is_empty() {
            if let Err(e) = out.flush().await {
                tracing::debug!(%peer, error = %e, "flush failed");
                return;
            }
        }
    }
    let _ = out.flush().await;
    let _ = out.into_inner().shutdown().await;
}
