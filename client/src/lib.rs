//! A small async Kafka client built on the same codecs as the broker. It works against any
//! Kafka-compatible cluster: the `eddy` CLI, `eddy bench` and remote pipelines use it.

pub mod batches;
pub mod cluster;
pub mod committed;
pub mod conn;
pub mod consumer;
pub mod error;
pub mod group_consumer;
pub mod groups;
pub mod partitioner;
pub mod producer;

pub use cluster::{Cluster, TopicInfo};
pub use consumer::{ConsumedRecord, Consumer, ConsumerConfig, StartAt};
pub use error::ClientError;
pub use group_consumer::{GroupConfig, GroupConsumer};
pub use groups::{GroupInfo, GroupMember};
pub use kafka_protocol::records::Compression;
pub use producer::{Delivery, OutRecord, Producer, ProducerConfig};
