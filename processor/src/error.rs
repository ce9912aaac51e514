//! Errors of the processor.

use thiserror::Error;

/// What can go wrong building or running a pipeline.
#[derive(Debug, Error)]
pub enum ProcessorError {
    /// The plan is not valid; the message names what and where.
    #[error("invalid pipeline: {0}")]
    InvalidPlan(String),
    /// A topic the pipeline reads or writes does not exist.
    #[error("topic '{0}' does not exist; create it before starting the pipeline")]
    UnknownTopic(String),
    /// Reading the local log failed.
    #[error("reading {topic}-{partition} failed: {source}")]
    Storage {
        topic: String,
        partition: i32,
        #[source]
        source: eddy_storage::StorageError,
    },
    /// Stored input could not be decoded.
    #[error("input {topic}-{partition} could not be read: {reason}")]
    Input {
        topic: String,
        partition: i32,
        reason: String,
    },
    /// Writing output failed.
    #[error("writing to {topic}-{partition} failed: {reason}")]
    Sink {
        topic: String,
        partition: i32,
        reason: String,
    },
    /// A remote cluster request failed.
    #[error("remote cluster: {0}")]
    Remote(#[from] eddy_client::ClientError),
    /// Reading or writing the pipeline's checkpoint failed.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: String, reason: String },
    /// Operator state could not be encoded or decoded.
    #[error("operator state of '{operator}': {reason}")]
    State { operator: String, reason: String },
}
