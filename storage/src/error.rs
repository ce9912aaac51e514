//! The storage error type. Every `Display` is a sentence an operator can act on.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Why a storage operation failed.
#[derive(Debug, Error)]
pub enum StorageError {
    /// A read or a DeleteRecords asked for an offset the log does not hold.
    #[error(
        "offset {offset} is out of range: the log holds offsets {start} (inclusive) to {end} \
         (exclusive); ask for an offset in that range"
    )]
    OffsetOutOfRange {
        /// The offset that was asked for.
        offset: i64,
        /// The log start offset at the time of the request.
        start: i64,
        /// The log end offset (next offset to assign) at the time of the request.
        end: i64,
    },
    /// An operating-system call on a file or directory failed.
    #[error("could not {op} {path}: {source}; check the disk, its free space and permissions")]
    Io {
        /// What was being done, e.g. "write to" or "fsync".
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Stored data is damaged in a way recovery cannot repair by truncating the tail
    /// (for example an index pointing at something that is not a batch).
    #[error(
        "{path} is corrupt at byte {position}: {reason}; restart the broker so recovery can \
         check and rebuild the segment"
    )]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte position of the damage.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// The log latched after an earlier write or fsync failure. After a failed fsync the
    /// kernel may have dropped the dirty pages, so nothing written since the last successful
    /// flush can be trusted; retrying would hide data loss.
    #[error(
        "the log in {dir} stopped accepting writes after an earlier I/O failure ({cause}); \
         once the disk works, reopening the log recovers it from its files (the broker retries every second)"
    )]
    Failed {
        /// The partition directory.
        dir: PathBuf,
        /// The first failure, as text.
        cause: String,
    },
    /// The bytes handed to `append` are not exactly one well-framed v2 record batch.
    #[error("the record batch cannot be appended: {reason}; the producer sent a malformed batch")]
    InvalidBatch {
        /// What is wrong with it.
        reason: String,
    },
    /// Compaction could not produce or install its output. The log itself is unchanged (or,
    /// if the failure came from the disk while installing, latched as for any write failure).
    #[error("compaction of {dir} did not complete: {reason}; the log keeps its uncompacted data")]
    Compaction {
        /// The partition directory.
        dir: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A single batch larger than a segment can address (positions are 32-bit).
    #[error(
        "the record batch is {size} bytes, more than the {max} bytes a segment can hold; \
         lower the producer's batch size"
    )]
    BatchTooLarge {
        /// Size of the batch in bytes.
        size: u64,
        /// The largest batch accepted.
        max: u64,
    },
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Shorthand used across the crate.
pub(crate) type Result<T, E = StorageError> = std::result::Result<T, E>;
