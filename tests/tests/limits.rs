//! Resource limits under load: the broker's memory with thousands of connections, a client
//! that never reads its responses, and the request-byte budgets (`connection.max.inflight.bytes`,
//! `queued.max.request.bytes`). `max.connections` is tested in `bad_input.rs`.
//!
//! Memory is the broker's VmRSS / VmHWM from `/proc/PID/status`. The bounds are documented
//! in README.md ("Limits and memory") and docs/design.md ("Resource bounds").
//!
//! `EDDY_CONN_SECS=60 cargo test -p eddy-e2e --test limits -- --nocapture` runs the
//! many-connections test's active phase longer (default 10 s).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use eddy_client::{
    conn::Connection, Cluster, Consumer, ConsumerConfig, OutRecord, Producer, ProducerConfig,
    StartAt,
};
use eddy_e2e::Broker;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiVersionsRequest, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse,
    RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

/// Idle connections in the many-connections test.
const IDLE: usize = 2_000;
/// Active (producing and fetching) connections in the many-connections test.
const ACTIVE: usize = 200;
/// The documented bound on the broker's peak RSS with 2,000 idle and 200 active connections
/// (README.md, "Limits and memory"): about twice the highest peak measured (56-78 MiB for the
/// debug binary, 63-64 MiB for the release one, over 10-60 s).
const MANY_CONNECTIONS_RSS_BOUND_MIB: u64 = 160;

/// Produce and Fetch at versions whose responses have a v0 header (correlation id only).
const PRODUCE_V: i16 = 7;
const FETCH_V: i16 = 4;

/// Raises this process's soft open-file limit to at least `need` (the broker started
/// afterwards inherits it). Returns the limit when it cannot be raised that far.
fn raise_fd_limit(need: u64) -> Result<Option<u64>> {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    if soft >= need {
        return Ok(None);
    }
    if hard < need {
        return Ok(Some(hard));
    }
    rlimit::setrlimit(rlimit::Resource::NOFILE, need, hard)
        .with_context(|| format!("raising the open-file soft limit from {soft} to {need}"))?;
    Ok(None)
}

/// One request frame (length prefix included).
fn frame<R: Request + Encodable>(req: &R, version: i16, corr: i32) -> Result<Vec<u8>> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(corr)
        .with_client_id(Some(StrBytes::from_static_str("limits-test")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, R::header_version(version))
        .map_err(|e| anyhow!("encoding a request header: {e}"))?;
    req.encode(&mut buf, version)
        .map_err(|e| anyhow!("encoding a request: {e}"))?;
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.to_vec())
}

/// Reads one response with a v0 header: (correlation id, body).
fn read_response(s: &mut TcpStream) -> Result<(i32, Bytes)> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)
        .context("reading a response length")?;
    let n = i32::from_be_bytes(len);
    if !(4..=256 * 1024 * 1024).contains(&n) {
        bail!("bad response length {n}");
    }
    let mut buf = vec![0u8; n as usize];
    s.read_exact(&mut buf).context("reading a response body")?;
    let corr = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    Ok((corr, Bytes::from(buf).slice(4..)))
}

/// A one-record batch whose value is `size` bytes.
fn batch(size: usize) -> Bytes {
    let value = vec![b'v'; size];
    Bytes::from(eddy_protocol::batch::build_batch(
        0,
        1_700_000_000_000,
        &[&value],
    ))
}

fn produce_request(topic: &str, batch: Bytes, acks: i16) -> ProduceRequest {
    let mut pd = PartitionProduceData::default();
    pd.index = 0;
    pd.records = Some(batch);
    let mut td = TopicProduceData::default();
    td.name = TopicName(StrBytes::from_string(topic.to_string()));
    td.partition_data = vec![pd];
    let mut r = ProduceRequest::default();
    r.acks = acks;
    r.timeout_ms = 30_000;
    r.topic_data = vec![td];
    r
}

fn fetch_request(topic: &str, offset: i64, max_wait_ms: i32, max_bytes: i32) -> FetchRequest {
    let mut fp = FetchPartition::default();
    fp.partition = 0;
    fp.fetch_offset = offset;
    fp.partition_max_bytes = max_bytes;
    let mut ft = FetchTopic::default();
    ft.topic = TopicName(StrBytes::from_string(topic.to_string()));
    ft.partitions = vec![fp];
    let mut r = FetchRequest::default();
    r.replica_id = (-1).into();
    r.max_wait_ms = max_wait_ms;
    r.min_bytes = 1;
    r.max_bytes = max_bytes;
    r.topics = vec![ft];
    r
}

/// The error code of the single partition of a Produce response.
fn produce_error(body: Bytes) -> Result<i16> {
    let mut body = body;
    let r = ProduceResponse::decode(&mut body, PRODUCE_V)
        .map_err(|e| anyhow!("decoding a Produce response: {e}"))?;
    let p = r
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .context("Produce response without a partition")?;
    Ok(p.error_code)
}

/// (error code, bytes of records) of the single partition of a Fetch response.
fn fetch_result(body: Bytes) -> Result<(i16, usize)> {
    let mut body = body;
    let r = FetchResponse::decode(&mut body, FETCH_V)
        .map_err(|e| anyhow!("decoding a Fetch response: {e}"))?;
    let p = r
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .context("Fetch response without a partition")?;
    Ok((p.error_code, p.records.as_ref().map_or(0, Bytes::len)))
}

/// Bytes in partition 0's log files of `topic` (what the broker has appended so far).
fn log_bytes(broker: &Broker, topic: &str) -> Result<u64> {
    let dir = broker.data_dir().join(format!("{topic}-0"));
    let mut n = 0;
    for e in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e?;
        if e.file_name().to_string_lossy().ends_with(".log") {
            n += e.metadata()?.len();
        }
    }
    Ok(n)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

#[test]
fn two_thousand_idle_and_two_hundred_active_connections_stay_under_the_memory_bound() -> Result<()>
{
    let secs: u64 = std::env::var("EDDY_CONN_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    // Both this process and the broker hold one descriptor per connection, plus files.
    let need = (IDLE + ACTIVE) as u64 + 1_000;
    if let Some(hard) = raise_fd_limit(need)? {
        eprintln!(
            "SKIPPED: this test needs {need} open files per process but the hard limit \
             (ulimit -Hn) is {hard}; raise it to run the test"
        );
        return Ok(());
    }
    // Default settings: max.connections (10,000) must admit all 2,200 connections.
    let broker = Broker::start()?;
    let bootstrap = broker.bootstrap();
    let (rss_start, _) = broker.rss_kib()?;
    let rt = runtime()?;
    rt.block_on(async {
        let admin = Cluster::connect(&bootstrap, "admin").await?;
        admin.create_topic("mem", 10, &BTreeMap::new()).await?;

        // Idle connections: each negotiates API versions, then stays silent.
        let mut idle = Vec::with_capacity(IDLE);
        for chunk in 0..IDLE / 100 {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..100 {
                let b = bootstrap.clone();
                set.spawn(async move { Connection::connect(&b, &format!("idle-{chunk}-{i}")).await });
            }
            while let Some(c) = set.join_next().await {
                idle.push(c?.context("an idle connection's ApiVersions round trip")?);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (rss_idle, _) = broker.rss_kib()?;

        // Active connections: each produces (acks=1) and fetches on one connection.
        let stop = Arc::new(AtomicBool::new(false));
        let produced = Arc::new(AtomicU64::new(0));
        let consumed = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let mut active = Vec::new();
        for i in 0..ACTIVE {
            let cluster = Cluster::connect(&bootstrap, &format!("active-{i}")).await?;
            let (stop, produced, consumed, errors) =
                (stop.clone(), produced.clone(), consumed.clone(), errors.clone());
            active.push(tokio::spawn(async move {
                let partition = (i % 10) as i32;
                let p = Producer::new(
                    cluster.clone(),
                    ProducerConfig { acks: 1, ..ProducerConfig::default() },
                );
                let mut c = Consumer::new(
                    cluster,
                    ConsumerConfig {
                        max_wait: Duration::from_millis(100),
                        max_bytes: 1024 * 1024,
                        partition_max_bytes: 1024 * 1024,
                        ..ConsumerConfig::default()
                    },
                );
                if c.assign("mem", partition, StartAt::Earliest).await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let mut acks = Vec::new();
                    for _ in 0..10 {
                        let r = OutRecord {
                            topic: "mem".into(),
                            partition: Some(partition),
                            key: Some(format!("k{i}-{n}").into_bytes().into()),
                            value: Some(vec![b'x'; 512].into()),
                            ..OutRecord::default()
                        };
                        n += 1;
                        match p.send(r).await {
                            Ok(a) => acks.push(a),
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    for a in acks {
                        match a.await {
                            Ok(Ok(_)) => {
                                produced.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    match c.poll().await {
                        Ok(recs) => {
                            consumed.fetch_add(recs.len() as u64, Ordering::Relaxed);
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        let start = Instant::now();
        let mut samples = Vec::new();
        while start.elapsed() < Duration::from_secs(secs) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            samples.push(broker.rss_kib()?.0 / 1024);
        }
        stop.store(true, Ordering::Relaxed);
        for a in active {
            a.await?;
        }
        // The idle connections are still open and served.
        for (i, c) in idle.iter().enumerate().step_by(50) {
            c.send(&ApiVersionsRequest::default())
                .await
                .with_context(|| format!("ApiVersions on idle connection {i} after the load"))?;
        }
        let (rss, peak) = broker.rss_kib()?;
        let (produced, consumed, errors) = (
            produced.load(Ordering::Relaxed),
            consumed.load(Ordering::Relaxed),
            errors.load(Ordering::Relaxed),
        );
        eprintln!(
            "broker RSS: {} MiB at start, {} MiB with {IDLE} idle connections, {} MiB now / \
             {} MiB peak (VmHWM) after {secs} s with {ACTIVE} active ones (bound \
             {MANY_CONNECTIONS_RSS_BOUND_MIB} MiB); {produced} records produced, {consumed} \
             consumed, {errors} errors; RSS samples (MiB): {samples:?}",
            rss_start / 1024,
            rss_idle / 1024,
            rss / 1024,
            peak / 1024,
        );
        if errors > 0 {
            bail!("{errors} produce or fetch errors with {IDLE} idle and {ACTIVE} active connections\n{}", broker.log_tail(40));
        }
        if produced == 0 || consumed == 0 {
            bail!("the active clients made no progress ({produced} produced, {consumed} consumed)");
        }
        if peak / 1024 > MANY_CONNECTIONS_RSS_BOUND_MIB {
            bail!(
                "broker peak RSS {} MiB exceeds the documented bound of \
                 {MANY_CONNECTIONS_RSS_BOUND_MIB} MiB with {IDLE} idle and {ACTIVE} active connections",
                peak / 1024
            );
        }
        drop(idle);
        anyhow::Ok(())
    })
}

/// Seeds `topic` (one partition) with `batches` one-record batches of `size` bytes.
fn seed(broker: &Broker, topic: &str, batches: usize, size: usize) -> Result<()> {
    let mut s = TcpStream::connect(broker.addr())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    for i in 0..batches {
        s.write_all(&frame(
            &produce_request(topic, batch(size), -1),
            PRODUCE_V,
            i as i32,
        )?)?;
        let (_, body) = read_response(&mut s)?;
        let code = produce_error(body)?;
        if code != 0 {
            bail!("seeding {topic}: produce error {code}");
        }
    }
    Ok(())
}

/// A client pipelines a thousand Fetch (256 KiB answers) and Produce requests and does not
/// read a byte of the answers. The broker must stop reading from it (its request writes
/// block) without holding the answers in memory, keep serving another client, and when the
/// slow client finally reads, answer every request in order.
///
/// The broker-wide request budget is small (2 MiB) and the stuck client's produces alone
/// would fill it: produces free their reservation once appended, so the stuck client must not
/// starve the other one.
#[test]
fn a_client_that_never_reads_is_paused_then_answered_in_order() -> Result<()> {
    const REQUESTS: usize = 1_500;
    /// Every fifth request is a Produce of this many bytes; 300 of them (77 MB) are far more
    /// than the socket buffers of both ends can hold.
    const PRODUCE_BYTES: usize = 256 * 1024;
    /// Growth of the broker's RSS while the slow client's answers back up: about 300 MB of
    /// Fetch answers are owed, so anything but a small, constant amount means they are being
    /// built ahead of the socket.
    const GROWTH_BOUND_MIB: u64 = 64;
    let broker = Broker::start_with(&["--set", "queued.max.request.bytes=2097152"])?;
    let rt = runtime()?;
    rt.block_on(async {
        let admin = Cluster::connect(&broker.bootstrap(), "admin").await?;
        for t in ["seed", "slow", "good"] {
            admin.create_topic(t, 1, &BTreeMap::new()).await?;
        }
        anyhow::Ok(())
    })?;
    // 256 KiB to fetch: every Fetch below is answered with all of it.
    seed(&broker, "seed", 1, 256 * 1024)?;
    let (rss_before, _) = broker.rss_kib()?;

    let slow = TcpStream::connect(broker.addr())?;
    let mut slow_wr = slow.try_clone()?;
    let written = Arc::new(AtomicUsize::new(0));
    let w = written.clone();
    let writer = std::thread::spawn(move || -> Result<()> {
        for i in 0..REQUESTS {
            let corr = i as i32 + 1;
            let f = if i % 5 == 4 {
                frame(
                    &produce_request("slow", batch(PRODUCE_BYTES), 1),
                    PRODUCE_V,
                    corr,
                )?
            } else {
                frame(&fetch_request("seed", 0, 0, 1024 * 1024), FETCH_V, corr)?
            };
            slow_wr
                .write_all(&f)
                .context("the slow client's request write failed")?;
            w.store(i + 1, Ordering::Relaxed);
        }
        Ok(())
    });
    // Wait until the slow client's writes stop making progress: the broker stopped reading.
    let mut last = 0;
    let mut still_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = written.load(Ordering::Relaxed);
        if writer.is_finished() {
            bail!(
                "the broker read all {REQUESTS} requests of a client that reads no answers \
                 (no backpressure)"
            );
        }
        if now != last {
            last = now;
            still_since = Instant::now();
        } else if still_since.elapsed() > Duration::from_secs(3) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the slow client's writes never stopped: {now} of {REQUESTS} written");
        }
    }
    let paused_at = written.load(Ordering::Relaxed);
    let (rss_paused, _) = broker.rss_kib()?;

    // Another client produces and consumes normally meanwhile.
    let good = rt
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(60), async {
                let cluster = Cluster::connect(&broker.bootstrap(), "good").await?;
                let p = Producer::new(cluster.clone(), ProducerConfig::default());
                let mut acks = Vec::new();
                for i in 0..500 {
                    let r = OutRecord {
                        topic: "good".into(),
                        value: Some(format!("g{i}").into_bytes().into()),
                        ..OutRecord::default()
                    };
                    acks.push(p.send(r).await?);
                }
                for a in acks {
                    a.await.context("delivery dropped")??;
                }
                let mut c = Consumer::new(cluster, ConsumerConfig::default());
                c.assign("good", 0, StartAt::Earliest).await?;
                let mut got = Vec::new();
                while got.len() < 500 {
                    for r in c.poll().await? {
                        got.push(
                            String::from_utf8_lossy(r.value.as_deref().unwrap_or(&[])).to_string(),
                        );
                    }
                }
                let want: Vec<String> = (0..500).map(|i| format!("g{i}")).collect();
                if got != want {
                    bail!("the good client read back something else");
                }
                anyhow::Ok(got.len())
            })
            .await
        })
        .map_err(|_| {
            anyhow!(
                "a client that reads nothing starved another client for 60 s (the request budget \
             stayed held?)"
            )
        })??;
    let (rss_after_good, _) = broker.rss_kib()?;
    if written.load(Ordering::Relaxed) != paused_at {
        bail!("the broker resumed reading the slow client although it still reads nothing");
    }

    // Now the slow client reads: every answer, in request order.
    let mut slow = slow;
    slow.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut fetched = 0usize;
    for i in 0..REQUESTS {
        let (corr, body) =
            read_response(&mut slow).with_context(|| format!("answer {} of {REQUESTS}", i + 1))?;
        if corr != i as i32 + 1 {
            bail!("answer {} has correlation id {corr}: out of order", i + 1);
        }
        if i % 5 == 4 {
            let code = produce_error(body)?;
            if code != 0 {
                bail!("the slow client's produce {corr} failed with error {code}");
            }
        } else {
            let (code, bytes) = fetch_result(body)?;
            if code != 0 || bytes < 256 * 1024 {
                bail!("the slow client's fetch {corr}: error {code}, {bytes} bytes");
            }
            fetched += bytes;
        }
    }
    writer
        .join()
        .map_err(|_| anyhow!("the slow writer panicked"))??;
    let (_, peak) = broker.rss_kib()?;
    let growth = rss_paused
        .saturating_sub(rss_before)
        .max(rss_after_good.saturating_sub(rss_before));
    eprintln!(
        "slow reader: the broker stopped reading after {paused_at} of {REQUESTS} requests; \
         RSS {} MiB before, {} MiB paused, {} MiB after the good client's {good} records, \
         {} MiB peak after {} MiB of answers were read",
        rss_before / 1024,
        rss_paused / 1024,
        rss_after_good / 1024,
        peak / 1024,
        fetched / (1024 * 1024),
    );
    if growth / 1024 > GROWTH_BOUND_MIB {
        bail!(
            "broker RSS grew by {} MiB while a client's answers backed up (bound \
             {GROWTH_BOUND_MIB} MiB)",
            growth / 1024
        );
    }
    Ok(())
}

/// Writes `frames` on a new connection from a thread (the writes may block while the broker
/// does not read); returns the connection for reading the answers.
fn send_all(
    broker: &Broker,
    frames: Vec<Vec<u8>>,
) -> Result<(TcpStream, std::thread::JoinHandle<Result<()>>)> {
    let s = TcpStream::connect(broker.addr())?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut wr = s.try_clone()?;
    let t = std::thread::spawn(move || -> Result<()> {
        for f in frames {
            wr.write_all(&f).context("writing a request")?;
        }
        Ok(())
    });
    Ok((s, t))
}

/// Waits (up to 30 s) until `topic`'s log holds at least `bytes`.
fn wait_for_log(broker: &Broker, topic: &str, bytes: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while log_bytes(broker, topic)? < bytes {
        if Instant::now() > deadline {
            bail!(
                "{topic}'s log holds {} bytes, expected at least {bytes}\n{}",
                log_bytes(broker, topic)?,
                broker.log_tail(30)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

const BIG: usize = 600 * 1024;

/// A broker whose storage fault hook is armed with a control file (see `storage/src/io.rs`);
/// `None` (after saying so) when the binary has no hook (a release build).
fn broker_with_fault_hook(args: &[&str]) -> Result<Option<(Broker, tempfile::TempDir)>> {
    let tmp = tempfile::tempdir()?;
    let control = tmp.path().join("faults").to_string_lossy().to_string();
    let broker = Broker::start_with_env(args, &[("EDDY_FAULT_FILE", &control)])?;
    if !broker.log().contains("storage fault injection is enabled") {
        eprintln!(
            "SKIPPED: {} has no storage fault hook (a release build?); this budget test did \
             not run",
            eddy_e2e::eddy_bin().display()
        );
        return Ok(None);
    }
    Ok(Some((broker, tmp)))
}

/// Makes every fsync of partition `stall-0` wait until [`unstall`].
fn stall(tmp: &tempfile::TempDir) -> Result<()> {
    Ok(std::fs::write(
        tmp.path().join("faults"),
        "fsync-hang /stall-0/\n",
    )?)
}

fn unstall(tmp: &tempfile::TempDir) -> Result<()> {
    Ok(std::fs::remove_file(tmp.path().join("faults"))?)
}

fn create_topics(broker: &Broker, topics: &[&str]) -> Result<()> {
    runtime()?.block_on(async {
        let c = Cluster::connect(&broker.bootstrap(), "admin").await?;
        for t in topics {
            c.create_topic(t, 1, &BTreeMap::new()).await?;
        }
        anyhow::Ok(())
    })
}

/// `connection.max.inflight.bytes`: a connection whose unfinished requests hold its budget is
/// not read further. A 600 KiB acks=all produce to a partition whose disk stalls (fsync
/// hangs) holds 600 KiB of a 1 MiB budget, so the next 600 KiB produce on that connection,
/// to a healthy partition, is not read (not appended) until the disk moves again.
#[test]
fn per_connection_budget_stops_reading_until_requests_finish() -> Result<()> {
    let Some((broker, faults)) =
        broker_with_fault_hook(&["--set", "connection.max.inflight.bytes=1048576"])?
    else {
        return Ok(());
    };
    create_topics(&broker, &["stall", "free"])?;
    stall(&faults)?;
    let (mut s, writer) = send_all(
        &broker,
        vec![
            frame(&produce_request("stall", batch(BIG), -1), PRODUCE_V, 1)?,
            frame(&produce_request("free", batch(BIG), 1), PRODUCE_V, 2)?,
            frame(&produce_request("free", batch(BIG), 1), PRODUCE_V, 3)?,
        ],
    )?;
    wait_for_log(&broker, "stall", BIG as u64)?;
    std::thread::sleep(Duration::from_millis(1500));
    let held = log_bytes(&broker, "free")?;
    if held > 0 {
        bail!(
            "the broker read past connection.max.inflight.bytes: {held} bytes appended to \
             another partition while a 1 MiB budget was held by an unfinished 600 KiB produce"
        );
    }
    unstall(&faults)?;
    for want in 1..=3 {
        let (corr, body) = read_response(&mut s)?;
        let code = produce_error(body)?;
        if corr != want || code != 0 {
            bail!("produce answer: correlation id {corr} (expected {want}), error {code}");
        }
    }
    writer.join().map_err(|_| anyhow!("writer panicked"))??;
    wait_for_log(&broker, "free", 2 * BIG as u64)?;
    eprintln!("per-connection budget: nothing behind the stalled produce was read; all 3 answered once the disk moved");
    Ok(())
}

/// `queued.max.request.bytes`: an unfinished request on one connection holds the broker-wide
/// budget, so another connection's large request is not read until it finishes. Then eight
/// clients pipelining 900 KiB acks=all produces through a 1 MiB budget all succeed, with the
/// broker's RSS bounded.
#[test]
fn broker_wide_budget_pauses_other_connections_and_large_produces_all_succeed() -> Result<()> {
    /// Peak RSS bound for this test (documented in README.md).
    const RSS_BOUND_MIB: u64 = 64;
    const CLIENTS: usize = 8;
    const PER_CLIENT: usize = 10;
    let Some((broker, faults)) =
        broker_with_fault_hook(&["--set", "queued.max.request.bytes=1048576"])?
    else {
        return Ok(());
    };
    let mut topics = vec!["stall".to_string(), "free".to_string()];
    topics.extend((0..CLIENTS).map(|i| format!("load-{i}")));
    create_topics(
        &broker,
        &topics.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    stall(&faults)?;
    let (mut a, wa) = send_all(
        &broker,
        vec![frame(
            &produce_request("stall", batch(BIG), -1),
            PRODUCE_V,
            1,
        )?],
    )?;
    wait_for_log(&broker, "stall", BIG as u64)?;
    let (mut b, wb) = send_all(
        &broker,
        vec![frame(
            &produce_request("free", batch(BIG), 1),
            PRODUCE_V,
            1,
        )?],
    )?;
    std::thread::sleep(Duration::from_millis(1500));
    let held = log_bytes(&broker, "free")?;
    if held > 0 {
        bail!(
            "the broker read another connection's 600 KiB request although \
             queued.max.request.bytes (1 MiB) was held by an unfinished 600 KiB produce"
        );
    }
    unstall(&faults)?;
    for (name, s) in [("a", &mut a), ("b", &mut b)] {
        let (corr, body) = read_response(s)?;
        let code = produce_error(body)?;
        if corr != 1 || code != 0 {
            bail!("{name}'s produce: correlation id {corr}, error {code}");
        }
    }
    wa.join().map_err(|_| anyhow!("writer panicked"))??;
    wb.join().map_err(|_| anyhow!("writer panicked"))??;

    // Load: every client pipelines all its large produces at once.
    let (rss_before, _) = broker.rss_kib()?;
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let topic = format!("load-{i}");
        let frames = (0..PER_CLIENT)
            .map(|n| {
                frame(
                    &produce_request(&topic, batch(900 * 1024), -1),
                    PRODUCE_V,
                    n as i32,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        clients.push(send_all(&broker, frames)?);
    }
    for (i, (mut s, w)) in clients.into_iter().enumerate() {
        for n in 0..PER_CLIENT {
            let (corr, body) =
                read_response(&mut s).with_context(|| format!("client {i}'s answer {n}"))?;
            let code = produce_error(body)?;
            if corr != n as i32 || code != 0 {
                bail!("client {i}'s produce {n}: correlation id {corr}, error {code}");
            }
        }
        w.join().map_err(|_| anyhow!("writer panicked"))??;
    }
    let (rss, peak) = broker.rss_kib()?;
    eprintln!(
        "broker-wide budget: nothing of the other connection was read while the budget was \
         held; {CLIENTS} clients x {PER_CLIENT} produces of 900 KiB through a 1 MiB budget: \
         RSS {} MiB before, {} MiB after, {} MiB peak (bound {RSS_BOUND_MIB} MiB)",
        rss_before / 1024,
        rss / 1024,
        peak / 1024
    );
    if peak / 1024 > RSS_BOUND_MIB {
        bail!(
            "broker peak RSS {} MiB exceeds {RSS_BOUND_MIB} MiB",
            peak / 1024
        );
    }
    Ok(())
}

/// `fetch.max.bytes` caps one Fetch response whatever the client asks for (`max_bytes` of
/// i32::MAX, or 0), so a client cannot make the broker build a response of the whole log.
#[test]
fn fetch_max_bytes_caps_a_fetch_whatever_the_client_asks() -> Result<()> {
    const CAP: usize = 1024 * 1024;
    let fetched = |broker: &Broker, max_bytes: i32| -> Result<usize> {
        let mut s = TcpStream::connect(broker.addr())?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut req = fetch_request("big", 0, 0, i32::MAX);
        req.max_bytes = max_bytes;
        s.write_all(&frame(&req, FETCH_V, 7)?)?;
        let (_, body) = read_response(&mut s)?;
        let (code, bytes) = fetch_result(body)?;
        if code != 0 {
            bail!("fetch error {code}");
        }
        Ok(bytes)
    };
    let capped = Broker::start_with(&[
        "--set",
        &format!("fetch.max.bytes={CAP}"),
        "--set",
        "message.max.bytes=2097152",
    ])?;
    let uncapped = Broker::start()?;
    for b in [&capped, &uncapped] {
        create_topics(b, &["big"])?;
        // 3 MiB in 12 batches of 256 KiB.
        seed(b, "big", 12, 256 * 1024)?;
    }
    for max_bytes in [i32::MAX, 0] {
        let got = fetched(&capped, max_bytes)?;
        if got == 0 || got > CAP {
            bail!("a fetch asking for max_bytes={max_bytes} returned {got} bytes with fetch.max.bytes={CAP}");
        }
        let all = fetched(&uncapped, max_bytes)?;
        if all < 3 * CAP {
            bail!("with the default fetch.max.bytes, max_bytes={max_bytes} returned only {all} bytes of 3 MiB");
        }
        eprintln!(
            "max_bytes={max_bytes}: {got} bytes with fetch.max.bytes={CAP}, {all} with the default"
        );
    }
    // One batch larger than the cap still goes out, so a consumer always progresses.
    let mut s = TcpStream::connect(capped.addr())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    create_topics(&capped, &["huge"])?;
    s.write_all(&frame(
        &produce_request("huge", batch(CAP + 100 * 1024), 1),
        PRODUCE_V,
        1,
    )?)?;
    let (_, body) = read_response(&mut s)?;
    let code = produce_error(body)?;
    if code != 0 {
        bail!("producing a 1.1 MB batch failed with {code}");
    }
    s.write_all(&frame(&fetch_request("huge", 0, 0, i32::MAX), FETCH_V, 2)?)?;
    let (_, body) = read_response(&mut s)?;
    let (code, bytes) = fetch_result(body)?;
    if code != 0 || bytes <= CAP {
        bail!("a batch larger than fetch.max.bytes: error {code}, {bytes} bytes returned");
    }
    Ok(())
}

/// The broker raises its soft open-file limit to the hard one (systems often start processes
/// at 1,024, far below `max.connections`) and warns when even that is too low.
#[test]
fn the_broker_raises_its_open_file_limit_and_warns_when_it_is_too_low() -> Result<()> {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    if hard < 1024 {
        eprintln!("SKIPPED: the hard open-file limit is {hard}; nothing to raise from 512");
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let log_path = tmp.path().join("broker.log");
    let log = std::fs::File::create(&log_path)?;
    // Start with a soft limit of 512 and ask for more connections than the hard limit allows.
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -S -n 512 && exec \"$0\" \"$@\"")
        .arg(eddy_e2e::eddy_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path().join("data"))
        .args(["--set", &format!("max.connections={}", hard + 1)])
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = std::fs::read_to_string(&log_path)?;
        if text.contains("eddy listening") {
            break text;
        }
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            let _ = child.kill();
            bail!("the broker did not start:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id()))?;
    let _ = child.kill();
    let _ = child.wait();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .context("no open-files line in /proc/PID/limits")?;
    let soft: u64 = line
        .split_whitespace()
        .nth(3)
        .context("soft limit column")?
        .parse()?;
    if soft != hard {
        bail!("the broker's soft open-file limit is {soft}, expected the hard limit {hard}");
    }
    if !text.contains("the open-file limit is below max.connections") {
        bail!("no warning about an open-file limit below max.connections:\n{text}");
    }
    Ok(())
}
