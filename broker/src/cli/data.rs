//! `eddy produce` and `eddy consume`.

use std::io::{BufRead, Write};

use bytes::Bytes;
use clap::Args;
use eddy_client::{Consumer, ConsumerConfig, OutRecord, Producer, ProducerConfig, StartAt};

#[derive(Debug, Args)]
pub(crate) struct ProduceArgs {
    topic: String,
    /// Split each line into key and value at the first occurrence of this string.
    #[arg(long)]
    key_separator: Option<String>,
    /// Header added to every record, `k=v` (repeatable).
    #[arg(long = "header", value_name = "K=V")]
    headers: Vec<String>,
    #[arg(long, default_value = "none")]
    compression: String,
    #[arg(long, default_value = "all")]
    acks: String,
    /// Write to this partition instead of partitioning by key.
    #[arg(short, long)]
    partition: Option<i32>,
}

pub(crate) async fn produce(bootstrap: &str, a: ProduceArgs) -> anyhow::Result<()> {
    let cluster = super::connect(bootstrap).await?;
    cluster.topic_or_create(&a.topic).await?;
    let headers: Vec<(String, Option<Bytes>)> = a
        .headers
        .iter()
        .map(|h| match h.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), Some(Bytes::copy_from_slice(v.as_bytes())))),
            None => Err(anyhow::anyhow!("header '{h}' is not K=V")),
        })
        .collect::<Result<_, _>>()?;
    let config = ProducerConfig {
        acks: super::parse_acks(&a.acks)?,
        compression: super::parse_compression(&a.compression)?,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(cluster, config);
    let stdin = std::io::stdin();
    let mut deliveries = Vec::new();
    let mut count = 0u64;
    for line in stdin.lock().lines() {
        let line = line?;
        let (key, value) = match &a.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(Bytes::copy_from_slice(k.as_bytes())), v.to_string()),
                None => (None, line.clone()),
            },
            None => (None, line.clone()),
        };
        let d = producer
            .send(OutRecord {
                topic: a.topic.clone(),
                partition: a.partition,
                key,
                value: Some(Bytes::from(value.into_bytes())),
                headers: headers.clone(),
                timestamp: None,
            })
            .await?;
        deliveries.push(d);
        count += 1;
        if deliveries.len() >= 10_000 {
            for d in deliveries.drain(..) {
                d.await.map_err(|_| anyhow::anyhow!("producer stopped"))??;
            }
        }
    }
    producer.flush().await?;
    for d in deliveries {
        d.await.map_err(|_| anyhow::anyhow!("producer stopped"))??;
    }
    eprintln!("produced {count} record(s) to {}", a.topic);
    Ok(())
}

#[derive(Debug, Args)]
pub(crate) struct ConsumeArgs {
    topic: String,
    /// Stop after this many records.
    #[arg(short = 'n', long)]
    count: Option<u64>,
    /// Start at the earliest offset (default: only new records).
    #[arg(long)]
    from_beginning: bool,
    /// Start at this offset (with --partition, or on every partition).
    #[arg(long)]
    offset: Option<i64>,
    /// Read only this partition.
    #[arg(short, long)]
    partition: Option<i32>,
    /// Exit when the end of every partition is reached.
    #[arg(short, long)]
    exit: bool,
    /// Consume as a member of this consumer group (committing offsets).
    #[arg(long)]
    group: Option<String>,
    /// Output format: text (the value) or json (key, value, headers, partition, offset, timestamp).
    #[arg(long, default_value = "text")]
    format: String,
}

pub(crate) async fn consume(bootstrap: &str, a: ConsumeArgs) -> anyhow::Result<()> {
    match consume_inner(bootstrap, a).await {
        // The reader went away (`eddy consume t | head`): that is a normal end.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other,
    }
}

async fn consume_inner(bootstrap: &str, a: ConsumeArgs) -> anyhow::Result<()> {
    if a.format != "text" && a.format != "json" {
        anyhow::bail!("unknown format '{}': use text or json", a.format);
    }
    let cluster = super::connect(bootstrap).await?;
    if let Some(group) = a.group.clone() {
        if a.partition.is_some() || a.offset.is_some() {
            anyhow::bail!("--group picks partitions and offsets itself; drop --partition/--offset");
        }
        cluster.topic(&a.topic).await?;
        let config = eddy_client::GroupConfig {
            reset: if a.from_beginning {
                StartAt::Earliest
            } else {
                StartAt::Latest
            },
            ..Default::default()
        };
        let mut member = eddy_client::GroupConsumer::new(
            cluster.clone(),
            &group,
            vec![a.topic.clone()],
            config,
            ConsumerConfig::default(),
        );
        let mut seen = 0u64;
        // Next offset per partition after the last record actually printed: what we commit,
        // so records fetched but not printed (-n reached) are not skipped next time.
        let mut done = std::collections::BTreeMap::new();
        loop {
            if a.count.is_some_and(|n| seen >= n) {
                break;
            }
            let records = member.poll().await?;
            let empty = records.is_empty();
            for r in records {
                if a.count.is_some_and(|n| seen >= n) {
                    break;
                }
                seen += 1;
                print_record(&a.format, &r)?;
                done.insert((r.topic.clone(), r.partition), r.offset + 1);
            }
            if let Err(e) = member.commit_offsets(&done).await {
                tracing::warn!(error = %e, "commit failed");
            }
            if a.exit && empty {
                let mut at_end = true;
                for (t, p) in member.assignment() {
                    let end = cluster.list_offset(&t, p, -1).await?;
                    let pos = member_position(&member, &t, p);
                    at_end &= pos >= end;
                }
                if at_end {
                    break;
                }
            }
        }
        member.commit_offsets(&done).await.ok();
        member.close().await?;
        return Ok(());
    }
    let info = cluster.topic(&a.topic).await?;
    let partitions: Vec<i32> = match a.partition {
        Some(p) => vec![p],
        None => (0..info.leaders.len() as i32).collect(),
    };
    let mut consumer = Consumer::new(cluster.clone(), ConsumerConfig::default());
    let mut ends = std::collections::BTreeMap::new();
    for p in &partitions {
        let start = match (a.offset, a.from_beginning) {
            (Some(o), _) => StartAt::Offset(o),
            (None, true) => StartAt::Earliest,
            (None, false) => StartAt::Latest,
        };
        consumer.assign(&a.topic, *p, start).await?;
        if a.exit {
            ends.insert(*p, cluster.list_offset(&a.topic, *p, -1).await?);
        }
    }
    let mut seen = 0u64;
    let stdout = std::io::stdout();
    loop {
        if let Some(n) = a.count {
            if seen >= n {
                break;
            }
        }
        if a.exit
            && consumer
                .positions()
                .iter()
                .all(|((_, p), pos)| ends.get(p).is_none_or(|e| pos >= e))
        {
            break;
        }
        let records = consumer.poll().await?;
        for r in records {
            if a.count.is_some_and(|n| seen >= n) {
                break;
            }
            seen += 1;
            print_record(&a.format, &r)?;
        }
        stdout.lock().flush()?;
    }
    Ok(())
}

fn member_position(member: &eddy_client::GroupConsumer, topic: &str, partition: i32) -> i64 {
    member.position(topic, partition).unwrap_or(i64::MAX)
}

fn print_record(format: &str, r: &eddy_client::ConsumedRecord) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if format == "json" {
        let text = |b: &Option<Bytes>| b.as_ref().map(|v| String::from_utf8_lossy(v).into_owned());
        let headers: serde_json::Map<String, serde_json::Value> = r
            .headers
            .iter()
            .map(|(k, v)| {
                let v = text(v)
                    .map(serde_json::Value::String)
                    .unwrap_or(serde_json::Value::Null);
                (k.clone(), v)
            })
            .collect();
        let j = serde_json::json!({
            "topic": r.topic, "partition": r.partition, "offset": r.offset,
            "timestamp": r.timestamp, "key": text(&r.key), "value": text(&r.value),
            "headers": headers,
        });
        writeln!(out, "{j}")?;
    } else {
        out.write_all(r.value.as_deref().unwrap_or(b""))?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
