//! Kafka wire protocol for Eddy: frame limits, request decoding, response encoding, the
//! supported-API table, and a zero-copy view of v2 record batches.
//!
//! Pure: no tokio, no files. Everything here takes bytes and returns values.

pub mod apis;
pub mod batch;
pub mod codec;
pub mod compress;
pub mod records;

pub use kafka_protocol;
