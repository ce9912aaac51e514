//! Client errors.

use thiserror::Error;

#[derive(Debug, Error, Clone)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("connection to {addr} closed: {reason}")]
    Disconnected { addr: String, reason: String },
    #[error("no broker answered (tried {0})")]
    NoBroker(String),
    #[error("the broker does not support {api} (needs v{min} or newer)")]
    Unsupported { api: String, min: i16 },
    #[error("cannot encode {api} request: {reason}")]
    Encode { api: String, reason: String },
    #[error("cannot decode {api} response: {reason}")]
    Decode { api: String, reason: String },
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("partition {partition} of topic '{topic}' does not exist")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("{context}: {name} (Kafka error {code}){}", message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka {
        context: String,
        code: i16,
        name: String,
        message: Option<String>,
    },
    #[error("timed out after {0} ms")]
    Timeout(u64),
    #[error("the producer is closed")]
    Closed,
}

impl ClientError {
    /// A Kafka error code returned by a broker, with context.
    pub fn kafka(context: impl Into<String>, code: i16, message: Option<String>) -> ClientError {
        let name = kafka_protocol::error::ResponseError::try_from_code(code)
            .map(|e| format!("{e:?}"))
            .unwrap_or_else(|| format!("error {code}"));
        ClientError::Kafka {
            context: context.into(),
            code,
            name,
            message,
        }
    }

    /// The Kafka error code, if this came from a broker.
    pub fn code(&self) -> Option<i16> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }
}
