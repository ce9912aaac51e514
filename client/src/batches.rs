//! Writing ready-made record batches idempotently: what an exactly-once sink needs from a
//! remote cluster. The caller owns the producer id and the sequence numbers (they live in its
//! checkpoint), so after a crash it can ask the partition's leader how far that producer got
//! (DescribeProducers, KIP-664) and re-send only the rest; a re-sent batch the broker already
//! has is answered with its original offset, as for any idempotent producer.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    DescribeProducersRequest, InitProducerIdRequest, ProduceRequest, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::Cluster;
use crate::error::ClientError;

/// Error codes worth another attempt: leadership moved, a timeout, a transient storage or
/// replication error. A re-sent batch is deduplicated by its producer id and sequence.
fn retriable(code: i16) -> bool {
    matches!(code, 5 | 6 | 7 | 13 | 19 | 20 | 56)
}

fn is_retriable(e: &ClientError) -> bool {
    match e {
        ClientError::Kafka { code, .. } => retriable(*code),
        ClientError::Connect { .. }
        | ClientError::Disconnected { .. }
        | ClientError::NoBroker(_) => true,
        _ => false,
    }
}

/// The one partition a request asked about, from its response: an error if the broker left
/// it out or answered it with an error code.
fn partition_answer<P>(
    found: Option<P>,
    api: &str,
    context: &str,
    error: impl FnOnce(&P) -> (i16, Option<&StrBytes>),
) -> Result<P, ClientError> {
    let p = found.ok_or_else(|| ClientError::Decode {
        api: api.into(),
        reason: format!("no answer for the partition ({context})"),
    })?;
    let (code, message) = error(&p);
    if code != 0 {
        return Err(ClientError::kafka(
            context,
            code,
            message.map(|m| m.to_string()),
        ));
    }
    Ok(p)
}

impl Cluster {
    /// A fresh idempotent producer id and epoch (InitProducerId without a transactional id).
    pub async fn init_producer_id(&self) -> Result<(i64, i16), ClientError> {
        let conn = self.any().await?;
        let mut req = InitProducerIdRequest::default();
        req.transactional_id = None;
        req.transaction_timeout_ms = -1;
        req.producer_id = ProducerId(-1);
        req.producer_epoch = -1;
        let resp = conn.send(&req).await?;
        if resp.error_code != 0 {
            return Err(ClientError::kafka(
                "init producer id",
                resp.error_code,
                None,
            ));
        }
        Ok((resp.producer_id.0, resp.producer_epoch))
    }

    /// Appends one encoded v2 record batch to `topic`/`partition` with acks=all and returns
    /// its base offset, retrying leader changes and transient errors until `timeout`.
    pub async fn produce_batch(
        &self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        timeout: Duration,
    ) -> Result<i64, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut backoff = Duration::from_millis(50);
        loop {
            match self
                .produce_once(topic, partition, batch.clone(), timeout)
                .await
            {
                Ok(offset) => return Ok(offset),
                Err(e) if is_retriable(&e) && tokio::time::Instant::now() + backoff < deadline => {
                    tracing::debug!(%topic, partition, error = %e, "retrying a batch");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    let _ = self.refresh(Some(&[topic])).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn produce_once(
        &self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        timeout: Duration,
    ) -> Result<i64, ClientError> {
        let conn = self.leader(topic, partition).await?;
        let mut pd = PartitionProduceData::default();
        pd.index = partition;
        pd.records = Some(batch);
        let mut td = TopicProduceData::default();
        td.name = TopicName(StrBytes::from_string(topic.to_string()));
        td.partition_data = vec![pd];
        let mut req = ProduceRequest::default();
        req.acks = -1;
        req.timeout_ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        req.topic_data = vec![td];
        let resp = match conn.send(&req).await {
            Ok(r) => r,
            Err(e) => {
                self.drop_conn(conn.addr()).await;
                return Err(e);
            }
        };
        let p = partition_answer(
            resp.responses
                .into_iter()
                .flat_map(|t| t.partition_responses)
                .find(|p| p.index == partition),
            "Produce",
            &format!("produce to {topic}-{partition}"),
            |p| (p.error_code, p.error_message.as_ref()),
        )?;
        Ok(p.base_offset)
    }

    /// The last sequence number `producer_id` wrote to `topic`/`partition`, as its leader
    /// reports it; `None` when the leader holds no state for that producer.
    pub async fn last_sequence(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
    ) -> Result<Option<i32>, ClientError> {
        let conn = self.leader(topic, partition).await?;
        let mut t = TopicRequest::default();
        t.name = TopicName(StrBytes::from_string(topic.to_string()));
        t.partition_indexes = vec![partition];
        let mut req = DescribeProducersRequest::default();
        req.topics = vec![t];
        let resp = conn.send(&req).await?;
        let p = partition_answer(
            resp.topics
                .into_iter()
                .flat_map(|t| t.partitions)
                .find(|p| p.partition_index == partition),
            "DescribeProducers",
            &format!("describe producers of {topic}-{partition}"),
            |p| (p.error_code, p.error_message.as_ref()),
        )?;
        Ok(p.active_producers
            .iter()
            .find(|s| s.producer_id.0 == producer_id)
            .map(|s| s.last_sequence))
    }
}
