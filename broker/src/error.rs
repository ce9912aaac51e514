//! Broker errors and the one mapping from internal errors to Kafka error codes.

use std::path::Path;
use std::sync::Arc;

use eddy_protocol::batch::BatchError;
use eddy_storage::StorageError;
use kafka_protocol::error::ResponseError;
use thiserror::Error;

use crate::partition::PartitionError;

#[derive(Debug, Error, Clone)]
pub(crate) enum BrokerError {
    #[error("topic or partition '{0}' does not exist")]
    UnknownTopic(String),
    #[error("topic id {0} does not exist")]
    UnknownTopicId(uuid::Uuid),
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("{0}")]
    InvalidTopic(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("replication factor {0} is not possible on a single-node broker; use 1 or -1")]
    InvalidReplicationFactor(i16),
    #[error("record batch rejected: {0}")]
    Corrupt(#[from] BatchError),
    #[error("record batch of {size} bytes exceeds max.message.bytes ({max})")]
    MessageTooLarge { size: usize, max: usize },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    Storage(Arc<StorageError>),
    #[error("the partition is shutting down")]
    NotAvailable,
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: Arc<std::io::Error>,
    },
    #[error("{0}")]
    OutOfOrderSequence(String),
    #[error("{0}")]
    InvalidProducerEpoch(String),
    #[error("{0}")]
    InvalidTxnState(String),
    #[error("{0}")]
    ProducerFenced(String),
    #[error("{0}")]
    InvalidProducerIdMapping(String),
    #[error("{0}")]
    ConcurrentTransactions(String),
    #[error("{0}")]
    InvalidTransactionTimeout(String),
    #[error("transactional id '{0}' is unknown")]
    TransactionalIdNotFound(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl BrokerError {
    pub(crate) fn io(op: &'static str, path: &Path, e: std::io::Error) -> Self {
        BrokerError::Io {
            op,
            path: path.display().to_string(),
            source: Arc::new(e),
        }
    }

    /// The Kafka error a client sees for this failure.
    pub(crate) fn kafka(&self) -> ResponseError {
        match self {
            BrokerError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
            BrokerError::UnknownTopicId(_) => ResponseError::UnknownTopicId,
            BrokerError::TopicExists(_) => ResponseError::TopicAlreadyExists,
            BrokerError::InvalidTopic(_) => ResponseError::InvalidTopicException,
            BrokerError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            BrokerError::InvalidConfig(_) => ResponseError::InvalidConfig,
            BrokerError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            BrokerError::Corrupt(BatchError::UnsupportedMagic(_)) => {
                ResponseError::UnsupportedForMessageFormat
            }
            BrokerError::Corrupt(_) => ResponseError::CorruptMessage,
            BrokerError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
            BrokerError::InvalidRequest(_) => ResponseError::InvalidRequest,
            BrokerError::Storage(e) => storage_code(e),
            BrokerError::NotAvailable => ResponseError::NotLeaderOrFollower,
            BrokerError::Io { .. } => ResponseError::KafkaStorageError,
            BrokerError::OutOfOrderSequence(_) => ResponseError::OutOfOrderSequenceNumber,
            BrokerError::InvalidProducerEpoch(_) => ResponseError::InvalidProducerEpoch,
            BrokerError::InvalidTxnState(_) => ResponseError::InvalidTxnState,
            BrokerError::ProducerFenced(_) => ResponseError::ProducerFenced,
            BrokerError::InvalidProducerIdMapping(_) => ResponseError::InvalidProducerIdMapping,
            BrokerError::ConcurrentTransactions(_) => ResponseError::ConcurrentTransactions,
            BrokerError::InvalidTransactionTimeout(_) => ResponseError::InvalidTransactionTimeout,
            BrokerError::TransactionalIdNotFound(_) => ResponseError::TransactionalIdNotFound,
            BrokerError::Internal(_) => ResponseError::UnknownServerError,
        }
    }

    pub(crate) fn code(&self) -> i16 {
        self.kafka().code()
    }

    /// The code for a request version that may or may not know PRODUCER_FENCED (KIP-588):
    /// older versions get INVALID_PRODUCER_EPOCH for it, as Kafka answers them.
    pub(crate) fn code_fenced(&self, knows_producer_fenced: bool) -> i16 {
        match self.kafka() {
            ResponseError::ProducerFenced if !knows_producer_fenced => {
                ResponseError::InvalidProducerEpoch.code()
            }
            other => other.code(),
        }
    }
}

fn storage_code(e: &StorageError) -> ResponseError {
    match e {
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        _ => ResponseError::KafkaStorageError,
    }
}

impl From<PartitionError> for BrokerError {
    fn from(e: PartitionError) -> Self {
        match e {
            PartitionError::Closed => BrokerError::NotAvailable,
            PartitionError::Storage(s) => BrokerError::Storage(s),
            e @ PartitionError::OutOfOrder { .. } => BrokerError::OutOfOrderSequence(e.to_string()),
            e @ PartitionError::StaleEpoch { .. } => {
                BrokerError::InvalidProducerEpoch(e.to_string())
            }
            e @ PartitionError::NotInTransaction { .. } => {
                BrokerError::InvalidTxnState(e.to_string())
            }
        }
    }
}

impl From<StorageError> for BrokerError {
    fn from(e: StorageError) -> Self {
        BrokerError::Storage(Arc::new(e))
    }
}

/// Code for "no error".
pub(crate) const NONE: i16 = 0;
