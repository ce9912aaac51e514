//! Eddy's dataflow engine: pipelines that run inside the broker, read partitions straight
//! from storage, aggregate over event-time windows and write results back exactly once.
//!
//! # Shape
//! A [`Pipeline`] is sources → operators → a sink topic (plus side-output topics for late
//! records). Build one with [`PipelineBuilder`]; run it with [`run`] on a [`Backend`]:
//! `Local` (a [`LocalHost`]: the broker, or [`StorageHost`] over plain logs) reads batches
//! straight from `LogReader`s and appends through the host's partition writers; `Remote` reads
//! and writes any Kafka-compatible cluster through `eddy-client`, so the same plan runs
//! against Apache Kafka or Redpanda. [`run_query`] runs a plan ephemerally on a local host
//! (a bare SQL SELECT): no state directory, no checkpoints, its output sent to a channel.
//!
//! Operators implement [`Operator`]: `process` for data, `on_watermark` for time,
//! `snapshot`/`restore` for state. Events carry the raw key, a decoded [`Value`] (JSON today;
//! the engine never assumes JSON beyond the source's decode step), event time and headers.
//! One task per pipeline drives the operators; a reader task per input partition decodes
//! batches off the reactor and feeds it through a bounded channel.
//!
//! # Event time and watermarks
//! See [`watermark`] and [`window`]: per-partition `max - delay`, minimum over non-idle
//! partitions, windows fire once when the watermark passes their last millisecond, late
//! events within `allowed_lateness` update and re-emit, later ones are counted and dropped or
//! routed to a side topic. Semantics follow Flink's so that the SQL front end can match it.
//!
//! # Exactly-once (design notes)
//! Choice: **barrier-style checkpoints whose staged output is part of the checkpoint, delivered
//! idempotently under a per-pipeline producer id**. A checkpoint is taken by the pipeline task
//! itself between records, so it is trivially aligned (one task, no in-flight data).
//!
//! 1. Between checkpoints output is only *staged* in memory, already encoded as record
//!    batches per output partition. Nothing reaches a topic, so consumers never see output
//!    that a crash would roll back.
//! 2. At a checkpoint each staged batch gets the pipeline's producer id (allocated once by the
//!    host, kept in the checkpoint) and the next sequence numbers of its partition. Then one
//!    file is written atomically (tmp + fsync + rename + dir fsync): source positions,
//!    watermark state, operator snapshots, next sequences **and the staged batches**.
//! 3. Only then are the batches appended (durably, as acks=all).
//!
//! After a crash the pipeline loads the last checkpoint and first re-delivers its staged
//! batches: the host knows the last sequence the pipeline's producer id wrote to each
//! partition, so batches that made it before the crash are skipped and the rest written —
//! the commit phase can always be finished because its data is in the checkpoint. This is the
//! window where two-phase-commit engines lose data when a pre-committed Kafka transaction
//! times out before the job recovers (Flink's `transaction.timeout.ms` pitfall): here nothing
//! expires. Input after the checkpoint's positions is replayed into restored operator state;
//! its output was never delivered (it was only staged), so it is produced exactly once.
//!
//! Cost: output becomes visible once per checkpoint interval (1 s by default, like Flink's
//! exactly-once sinks), and each output byte is written twice (checkpoint and log). Staged
//! output above 32 MiB forces an early checkpoint.
//!
//! The remote backend works the same way against any Kafka-compatible cluster: the producer
//! id comes from InitProducerId (idempotent, no transactional id), the staged batches go out
//! as they are in Produce requests with acks=all, and after a crash the partition leader is
//! asked how far the producer got (DescribeProducers, KIP-664, Kafka 2.8+). Limits: a cluster
//! without DescribeProducers gets the resumed checkpoint's output again (at-least-once for
//! that one checkpoint, logged), and a cluster that expired the producer's state
//! (`producer.id.expiration.ms`, a day by default) before the pipeline came back cannot say
//! which of that checkpoint's batches it has.

pub mod aggregate;
mod checkpoint;
pub mod error;
pub mod event;
pub mod host;
pub mod join;
pub mod operator;
pub mod plan;
mod runtime;
mod source;
pub mod spec;
pub mod sql;
pub mod value;
pub mod watermark;
pub mod window;

pub use aggregate::{AggSpec, Aggregate};
pub use error::ProcessorError;
pub use event::{Collector, Event};
pub use host::{BoxFuture, CommittedView, LocalHost, StorageHost};
pub use join::{JoinType, TableJoin, TableJoinSpec, WindowJoin, WindowJoinSpec};
pub use operator::Operator;
pub use plan::{EventTime, Input, Pipeline, PipelineBuilder, StartFrom};
pub use runtime::{run, run_query, Backend, PipelineStatus, RunState, StatusSnapshot};
pub use spec::PipelineSpec;
pub use value::Value;
pub use window::{LatePolicy, WindowAggregate, WindowKind, WindowSpec};
