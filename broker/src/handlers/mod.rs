//! Request handlers, one module per API family. Handlers translate requests into topic and
//! partition operations and build typed responses; storage logic stays in `storage`.

mod admin;
mod fetch;
mod groups;
mod metadata;
mod produce;
mod txn;

use std::sync::Arc;

use bytes::BytesMut;
use eddy_protocol::codec::{self, Request};
use kafka_protocol::messages::{ApiKey, DescribeClusterResponse, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use tracing::Instrument;

use crate::server::{Broker, Pending};

/// Runs the order-sensitive part of a request now and returns the response future.
pub(crate) async fn dispatch(
    broker: Arc<Broker>,
    req: Request,
    peer: std::net::SocketAddr,
) -> Pending {
    let api = req.api;
    let version = req.version;
    let correlation_id = req.header.correlation_id;
    let span = tracing::debug_span!(
        "request",
        api = ?api,
        version,
        client_id = req.header.client_id.as_deref().unwrap_or(""),
        correlation_id
    );
    let client_id = req.header.client_id.as_deref().unwrap_or("").to_string();
    let reply = route(broker, req.body, version, peer, client_id)
        .instrument(span.clone())
        .await;
    match reply {
        Reply::Now(body) => {
            let out = encode(api, version, correlation_id, &body);
            Box::pin(async move { out })
        }
        Reply::Later(fut) => Box::pin(
            async move {
                let body = fut.await;
                encode(api, version, correlation_id, &body)
            }
            .instrument(span),
        ),
        Reply::Nothing(fut) => Box::pin(async move {
            fut.await;
            None
        }),
    }
}

/// What a handler produced.
pub(crate) enum Reply {
    Now(Box<ResponseKind>),
    Later(futures::future::BoxFuture<'static, ResponseKind>),
    /// No response is sent (acks=0), but the future still runs so the write completes
    /// before later requests on this connection are answered.
    Nothing(futures::future::BoxFuture<'static, ()>),
}

impl Reply {
    fn now(body: ResponseKind) -> Reply {
        Reply::Now(Box::new(body))
    }
}

fn encode(api: ApiKey, version: i16, correlation_id: i32, body: &ResponseKind) -> Option<BytesMut> {
    match codec::encode_response(api, version, correlation_id, body) {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::error!(error = %e, "could not encode a response; the client will time out");
            None
        }
    }
}

async fn route(
    broker: Arc<Broker>,
    body: RequestKind,
    version: i16,
    peer: std::net::SocketAddr,
    client_id: String,
) -> Reply {
    match body {
        RequestKind::ApiVersions(_) => {
            Reply::now(ResponseKind::ApiVersions(codec::api_versions_body(0)))
        }
        RequestKind::Metadata(r) => Reply::now(metadata::metadata(&broker, r, version).await),
        RequestKind::Produce(r) => produce::produce(broker, r, version).await,
        RequestKind::Fetch(r) => fetch::fetch(broker, r, version),
        RequestKind::ListOffsets(r) => Reply::now(fetch::list_offsets(&broker, r, version).await),
        RequestKind::OffsetForLeaderEpoch(r) => {
            Reply::now(fetch::offset_for_leader_epoch(&broker, r))
        }
        RequestKind::CreateTopics(r) => Reply::now(admin::create_topics(&broker, r, version).await),
        RequestKind::DeleteTopics(r) => Reply::now(admin::delete_topics(&broker, r, version).await),
        RequestKind::CreatePartitions(r) => Reply::now(admin::create_partitions(&broker, r).await),
        RequestKind::DescribeConfigs(r) => Reply::now(admin::describe_configs(&broker, r, version)),
        RequestKind::DeleteRecords(r) => Reply::now(admin::delete_records(&broker, r).await),
        RequestKind::DescribeCluster(_) => Reply::now(describe_cluster(&broker)),
        RequestKind::InitProducerId(r) => {
            Reply::now(txn::init_producer_id(&broker, r, version).await)
        }
        RequestKind::AddPartitionsToTxn(r) => {
            Reply::now(txn::add_partitions_to_txn(&broker, r, version).await)
        }
        RequestKind::AddOffsetsToTxn(r) => {
            Reply::now(txn::add_offsets_to_txn(&broker, r, version).await)
        }
        RequestKind::TxnOffsetCommit(r) => Reply::now(txn::txn_offset_commit(&broker, r).await),
        RequestKind::EndTxn(r) => Reply::now(txn::end_txn(&broker, r, version).await),
        RequestKind::ListTransactions(r) => Reply::now(txn::list_transactions(&broker, r)),
        RequestKind::DescribeTransactions(r) => Reply::now(txn::describe_transactions(&broker, r)),
        RequestKind::DescribeProducers(r) => Reply::now(txn::describe_producers(&broker, r).await),
        RequestKind::FindCoordinator(r) => {
            Reply::now(groups::find_coordinator(&broker, r, version))
        }
        RequestKind::JoinGroup(r) => groups::join_group(broker, r, version, peer, client_id),
        RequestKind::SyncGroup(r) => groups::sync_group(broker, r),
        RequestKind::Heartbeat(r) => Reply::now(groups::heartbeat(&broker, r).await),
        RequestKind::LeaveGroup(r) => Reply::now(groups::leave_group(&broker, r, version).await),
        RequestKind::OffsetCommit(r) => groups::offset_commit(broker, r),
        RequestKind::OffsetFetch(r) => Reply::now(groups::offset_fetch(&broker, r, version)),
        RequestKind::ListGroups(r) => Reply::now(groups::list_groups(&broker, r)),
        RequestKind::DescribeGroups(r) => Reply::now(groups::describe_groups(&broker, r)),
        RequestKind::DeleteGroups(r) => Reply::now(groups::delete_groups(&broker, r).await),
        RequestKind::OffsetDelete(r) => Reply::now(groups::offset_delete(&broker, r).await),
        other => {
            // The codec only decodes APIs in SUPPORTED_APIS, each of which is routed above;
            // reaching this is a bug in the table, answered with an error response.
            tracing::error!(request = ?std::mem::discriminant(&other), "no handler for an advertised API");
            Reply::now(ResponseKind::ApiVersions(codec::api_versions_body(
                kafka_protocol::error::ResponseError::UnknownServerError.code(),
            )))
        }
    }
}

fn describe_cluster(broker: &Broker) -> ResponseKind {
    use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
    let mut r = DescribeClusterResponse::default();
    r.cluster_id = StrBytes::from_string(broker.cluster_id.clone());
    r.controller_id = broker.node_id.into();
    r.endpoint_type = 1;
    let mut b = DescribeClusterBroker::default();
    b.broker_id = broker.node_id.into();
    b.host = StrBytes::from_string(broker.host.clone());
    b.port = broker.port;
    r.brokers = vec![b];
    r.cluster_authorized_operations = i32::MIN;
    ResponseKind::DescribeCluster(r)
}

/// Current wall-clock time in Kafka's milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}
