//! Transactions against the real broker with confluent-kafka (librdkafka): commit and abort
//! across partitions with read_committed and read_uncommitted consumers, fencing of a
//! zombie producer, exactly-once consume-transform-produce through worker SIGKILLs, and an
//! open transaction across a broker SIGKILL resolved by its timeout. Also the Java client
//! (transactions, fencing, the Admin transaction APIs) and the APIs at the protocol level
//! with exact error codes.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use eddy_e2e::{client_script, java_cp, python, python_script, require_clients, Broker};

#[test]
fn committed_and_aborted_transactions_across_three_partitions() -> Result<()> {
    require_clients!();
    let broker = Broker::start()?;
    python_script(
        &broker,
        "txn_commit_abort.py",
        &[],
        Duration::from_secs(180),
    )?;
    Ok(())
}

#[test]
fn a_second_producer_with_the_same_transactional_id_fences_the_first() -> Result<()> {
    require_clients!();
    let broker = Broker::start()?;
    python_script(&broker, "txn_fencing.py", &[], Duration::from_secs(120))?;
    Ok(())
}

#[test]
fn java_client_transactions_fencing_and_admin_apis() -> Result<()> {
    require_clients!();
    let broker = Broker::start()?;
    let mut cmd = Command::new("java");
    cmd.arg("-cp")
        .arg(java_cp()?)
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .arg("JavaTxnTest")
        .arg(broker.bootstrap());
    broker.run_client(cmd, Duration::from_secs(180), "java transactions")?;
    Ok(())
}

/// Kills the child (SIGKILL) and reaps it.
fn kill9(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The last number in the worker's progress file (records transformed and committed).
fn progress(path: &std::path::Path) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
        .unwrap_or(0)
}

#[test]
fn consume_transform_produce_is_exactly_once_through_a_worker_kill() -> Result<()> {
    require_clients!();
    const N: u64 = 3000;
    let broker = Broker::start()?;
    let n = N.to_string();
    python_script(
        &broker,
        "txn_ctp.py",
        &["setup", &n],
        Duration::from_secs(120),
    )?;
    let tmp = tempfile::tempdir()?;
    let progress_path = tmp.path().join("progress.txt");
    // Two kills: each lands while the worker pauses inside a transaction whose output is
    // already in the log, so the restart must abort it and redo that input.
    for (round, at) in [(1, N / 4), (2, N / 2)] {
        let worker = Command::new(python()?)
            .arg(client_script("python/txn_ctp.py"))
            .arg(broker.bootstrap())
            .args(["work", &n])
            .arg(&progress_path)
            .arg("150")
            .spawn()
            .context("start the worker")?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while progress(&progress_path) < at {
            if Instant::now() > deadline {
                kill9(worker);
                bail!(
                    "worker round {round} made no progress past {} of {N}\n{}",
                    progress(&progress_path),
                    broker.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Inside the next transaction's pause (the output is flushed, not committed).
        std::thread::sleep(Duration::from_millis(60));
        kill9(worker);
        eprintln!(
            "killed the worker (round {round}) after {} records",
            progress(&progress_path)
        );
    }
    python_script(
        &broker,
        "txn_ctp.py",
        &["work", &n, &progress_path.display().to_string(), "0"],
        Duration::from_secs(240),
    )?;
    let out = python_script(
        &broker,
        "txn_ctp.py",
        &["verify", &n],
        Duration::from_secs(120),
    )?;
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

#[test]
fn open_transaction_across_a_broker_kill_is_aborted_on_timeout() -> Result<()> {
    require_clients!();
    const TIMEOUT_MS: &str = "20000";
    let mut broker = Broker::start_with(&[
        "--set",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms=200",
    ])?;
    python_script(
        &broker,
        "txn_crash.py",
        &["open", TIMEOUT_MS],
        Duration::from_secs(60),
    )?;
    broker.kill9();
    broker.restart()?;
    python_script(
        &broker,
        "txn_crash.py",
        &["after", TIMEOUT_MS],
        Duration::from_secs(120),
    )?;
    let log = broker.log();
    if !log.contains("aborting a transaction that exceeded its timeout") {
        bail!(
            "the broker did not log the timeout abort:\n{}",
            broker.log_tail(60)
        );
    }
    // The outcome is durable: after a clean restart the LSO is still at the end.
    broker.restart()?;
    python_script(
        &broker,
        "txn_crash.py",
        &["resolved", TIMEOUT_MS],
        Duration::from_secs(60),
    )?;
    Ok(())
}

/// Transaction APIs at the protocol level, with exact error codes: InitProducerId and its
/// timeout check, the produce gate (only partitions added to the ongoing transaction),
/// AddPartitionsToTxn errors, ListTransactions / DescribeTransactions / DescribeProducers,
/// the LSO in ListOffsets and Fetch, fencing codes per version, and the aborted list.
#[test]
fn protocol_level_transaction_apis() -> Result<()> {
    let broker = Broker::start()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(raw::run(broker.bootstrap()))
        .map_err(|e| anyhow::anyhow!("{e:#}\n--- broker log ---\n{}", broker.log_tail(40)))
}

mod raw {
    use std::collections::BTreeMap;

    use anyhow::{ensure, Context, Result};
    use bytes::Bytes;
    use eddy_client::conn::Connection;
    use eddy_client::Cluster;
    use eddy_protocol::batch::{build_batch, set_producer};
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;

    const TOPIC: &str = "txn-raw";
    const TID: &str = "raw-txn";
    // Kafka error codes.
    const INVALID_PRODUCER_EPOCH: i16 = 47;
    const INVALID_TXN_STATE: i16 = 48;
    const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
    const OPERATION_NOT_ATTEMPTED: i16 = 55;
    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    const PRODUCER_FENCED: i16 = 90;
    const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

    fn sb(s: &str) -> StrBytes {
        StrBytes::from_string(s.to_string())
    }

    fn txn_batch(pid: i64, epoch: i16, seq: i32, value: &[u8]) -> Bytes {
        let mut b = build_batch(0, 1_000, &[value]);
        b[22] |= 0x10; // transactional; set_producer recomputes the CRC
        set_producer(&mut b, pid, epoch, seq);
        Bytes::from(b)
    }

    async fn init(c: &Connection, timeout_ms: i32) -> Result<InitProducerIdResponse> {
        let mut r = InitProducerIdRequest::default();
        r.transactional_id = Some(TransactionalId(sb(TID)));
        r.transaction_timeout_ms = timeout_ms;
        r.producer_id = (-1).into();
        r.producer_epoch = -1;
        Ok(c.send_at(&r, 4).await?)
    }

    async fn produce(c: &Connection, partition: i32, batch: Bytes) -> Result<(i16, i64)> {
        let mut pd = PartitionProduceData::default();
        pd.index = partition;
        pd.records = Some(batch);
        let mut td = TopicProduceData::default();
        td.name = TopicName(sb(TOPIC));
        td.partition_data = vec![pd];
        let mut r = ProduceRequest::default();
        r.transactional_id = Some(TransactionalId(sb(TID)));
        r.acks = -1;
        r.timeout_ms = 10_000;
        r.topic_data = vec![td];
        let resp: ProduceResponse = c.send_at(&r, 9).await?;
        let p = &resp.responses[0].partition_responses[0];
        Ok((p.error_code, p.base_offset))
    }

    async fn add_partitions(
        c: &Connection,
        version: i16,
        pid: i64,
        epoch: i16,
        topics: &[(&str, &[i32])],
    ) -> Result<Vec<i16>> {
        let mut r = AddPartitionsToTxnRequest::default();
        r.v3_and_below_transactional_id = TransactionalId(sb(TID));
        r.v3_and_below_producer_id = pid.into();
        r.v3_and_below_producer_epoch = epoch;
        for (t, ps) in topics {
            let mut tt = AddPartitionsToTxnTopic::default();
            tt.name = TopicName(sb(t));
            tt.partitions = ps.to_vec();
            r.v3_and_below_topics.push(tt);
        }
        let resp: AddPartitionsToTxnResponse = c.send_at(&r, version).await?;
        Ok(resp
            .results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| {
                t.results_by_partition
                    .iter()
                    .map(|p| p.partition_error_code)
            })
            .collect())
    }

    async fn end(c: &Connection, version: i16, pid: i64, epoch: i16, commit: bool) -> Result<i16> {
        let mut r = EndTxnRequest::default();
        r.transactional_id = TransactionalId(sb(TID));
        r.producer_id = pid.into();
        r.producer_epoch = epoch;
        r.committed = commit;
        let resp: EndTxnResponse = c.send_at(&r, version).await?;
        Ok(resp.error_code)
    }

    async fn latest(c: &Connection, isolation: i8) -> Result<i64> {
        let mut p = ListOffsetsPartition::default();
        p.partition_index = 0;
        p.timestamp = -1;
        let mut t = ListOffsetsTopic::default();
        t.name = TopicName(sb(TOPIC));
        t.partitions = vec![p];
        let mut r = ListOffsetsRequest::default();
        r.replica_id = (-1).into();
        r.isolation_level = isolation;
        r.topics = vec![t];
        let resp: ListOffsetsResponse = c.send_at(&r, 5).await?;
        Ok(resp.topics[0].partitions[0].offset)
    }

    /// (records bytes, high watermark, last stable offset, aborted (pid, first offset)).
    async fn fetch(
        c: &Connection,
        isolation: i8,
    ) -> Result<(usize, i64, i64, Option<Vec<(i64, i64)>>)> {
        let mut p = FetchPartition::default();
        p.partition = 0;
        p.fetch_offset = 0;
        p.partition_max_bytes = 1 << 20;
        let mut t = FetchTopic::default();
        t.topic = TopicName(sb(TOPIC));
        t.partitions = vec![p];
        let mut r = FetchRequest::default();
        r.replica_id = (-1).into();
        r.max_wait_ms = 0;
        r.min_bytes = 0;
        r.max_bytes = 1 << 20;
        r.isolation_level = isolation;
        r.topics = vec![t];
        let resp: FetchResponse = c.send_at(&r, 11).await?;
        let pd = &resp.responses[0].partitions[0];
        ensure!(pd.error_code == 0, "fetch error {}", pd.error_code);
        Ok((
            pd.records.as_ref().map_or(0, |b| b.len()),
            pd.high_watermark,
            pd.last_stable_offset,
            pd.aborted_transactions.as_ref().map(|v| {
                v.iter()
                    .map(|a| (a.producer_id.0, a.first_offset))
                    .collect()
            }),
        ))
    }

    async fn describe(c: &Connection) -> Result<DescribeTransactionsResponse> {
        let mut r = DescribeTransactionsRequest::default();
        r.transactional_ids = vec![TransactionalId(sb(TID)), TransactionalId(sb("nope"))];
        Ok(c.send_at(&r, 0).await?)
    }

    async fn producers(c: &Connection) -> Result<Vec<(i64, i32, i32, i64)>> {
        let mut t = TopicRequest::default();
        t.name = TopicName(sb(TOPIC));
        t.partition_indexes = vec![0];
        let mut r = DescribeProducersRequest::default();
        r.topics = vec![t];
        let resp: DescribeProducersResponse = c.send_at(&r, 0).await?;
        let p = &resp.topics[0].partitions[0];
        ensure!(
            p.error_code == 0,
            "DescribeProducers error {}",
            p.error_code
        );
        Ok(p.active_producers
            .iter()
            .map(|s| {
                (
                    s.producer_id.0,
                    s.producer_epoch,
                    s.last_sequence,
                    s.current_txn_start_offset,
                )
            })
            .collect())
    }

    pub(super) async fn run(bootstrap: String) -> Result<()> {
        let cluster = Cluster::connect(&bootstrap, "txn-raw-test").await?;
        cluster.create_topic(TOPIC, 2, &BTreeMap::new()).await?;
        let c = Connection::connect(&bootstrap, "txn-raw-test").await?;

        let bad = init(&c, 1_000_000_000).await?;
        ensure!(
            bad.error_code == INVALID_TRANSACTION_TIMEOUT,
            "huge timeout: {bad:?}"
        );
        let first = init(&c, 60_000).await?;
        ensure!(first.error_code == 0, "init: {first:?}");
        let (pid, epoch) = (first.producer_id.0, first.producer_epoch);
        ensure!(epoch == 0, "a new transactional id starts at epoch 0");

        // Not added to a transaction yet: refused.
        let (code, _) = produce(&c, 0, txn_batch(pid, epoch, 0, b"early")).await?;
        ensure!(
            code == INVALID_TXN_STATE,
            "produce before AddPartitionsToTxn: {code}"
        );
        // An unknown partition fails the whole request; nothing is added.
        let codes =
            add_partitions(&c, 3, pid, epoch, &[(TOPIC, &[0]), ("no-such-topic", &[0])]).await?;
        ensure!(
            codes == vec![OPERATION_NOT_ATTEMPTED, UNKNOWN_TOPIC_OR_PARTITION],
            "{codes:?}"
        );
        let (code, _) = produce(&c, 0, txn_batch(pid, epoch, 0, b"early")).await?;
        ensure!(code == INVALID_TXN_STATE, "nothing was added: {code}");
        let codes = add_partitions(&c, 3, pid, epoch, &[(TOPIC, &[0])]).await?;
        ensure!(codes == vec![0], "{codes:?}");
        let (code, base) = produce(&c, 0, txn_batch(pid, epoch, 0, b"in-txn")).await?;
        ensure!(
            code == 0 && base == 0,
            "produce in the transaction: {code} at {base}"
        );
        let (code, _) = produce(&c, 1, txn_batch(pid, epoch, 0, b"other")).await?;
        ensure!(
            code == INVALID_TXN_STATE,
            "partition 1 was not added: {code}"
        );

        // Operators see the open transaction.
        let mut lr = ListTransactionsRequest::default();
        lr.duration_filter = -1;
        let listed: ListTransactionsResponse = c.send_at(&lr, 1).await?;
        let mine: Vec<_> = listed
            .transaction_states
            .iter()
            .filter(|t| t.transactional_id.as_str() == TID)
            .collect();
        ensure!(
            mine.len() == 1
                && mine[0].transaction_state.as_str() == "Ongoing"
                && mine[0].producer_id.0 == pid,
            "ListTransactions: {listed:?}"
        );
        lr.state_filters = vec![sb("CompleteCommit"), sb("Bogus")];
        let filtered: ListTransactionsResponse = c.send_at(&lr, 1).await?;
        ensure!(
            filtered
                .transaction_states
                .iter()
                .all(|t| t.transactional_id.as_str() != TID),
            "state filter: {filtered:?}"
        );
        ensure!(
            filtered
                .unknown_state_filters
                .iter()
                .any(|s| s.as_str() == "Bogus"),
            "{filtered:?}"
        );
        let d = describe(&c).await?;
        let (ours, nope) = (&d.transaction_states[0], &d.transaction_states[1]);
        ensure!(
            ours.error_code == 0
                && ours.transaction_state.as_str() == "Ongoing"
                && ours.transaction_timeout_ms == 60_000
                && ours.transaction_start_time_ms > 0
                && ours.producer_id.0 == pid
                && ours.producer_epoch == epoch
                && ours.topics.len() == 1
                && ours.topics[0].partitions == vec![0],
            "DescribeTransactions: {ours:?}"
        );
        ensure!(nope.error_code == TRANSACTIONAL_ID_NOT_FOUND, "{nope:?}");
        let ps = producers(&c).await?;
        ensure!(ps == vec![(pid, 0, 0, 0)], "DescribeProducers: {ps:?}");

        // The LSO holds read_committed readers before the open transaction.
        ensure!(latest(&c, 1).await? == 0, "ListOffsets read_committed");
        ensure!(latest(&c, 0).await? == 1, "ListOffsets read_uncommitted");
        let (bytes, hw, lso, aborted) = fetch(&c, 1).await?;
        ensure!(bytes == 0 && hw == 1 && lso == 0 && aborted == Some(vec![]),
            "read_committed fetch of an open transaction: {bytes} bytes, hw {hw}, lso {lso}, {aborted:?}");
        let (bytes, _, lso, aborted) = fetch(&c, 0).await?;
        ensure!(
            bytes > 0 && lso == 0 && aborted.is_none(),
            "read_uncommitted: {bytes} {lso} {aborted:?}"
        );

        // A second producer takes over: the open transaction is aborted at a bumped epoch
        // and the new producer gets the epoch after that.
        let second = init(&c, 60_000).await?;
        ensure!(
            second.error_code == 0 && second.producer_id.0 == pid && second.producer_epoch == 2,
            "second init: {second:?}"
        );
        // The old epoch is fenced, with the code each version knows.
        let codes = add_partitions(&c, 1, pid, epoch, &[(TOPIC, &[1])]).await?;
        ensure!(
            codes == vec![INVALID_PRODUCER_EPOCH],
            "AddPartitionsToTxn v1: {codes:?}"
        );
        let codes = add_partitions(&c, 3, pid, epoch, &[(TOPIC, &[1])]).await?;
        ensure!(
            codes == vec![PRODUCER_FENCED],
            "AddPartitionsToTxn v3: {codes:?}"
        );
        let code = end(&c, 3, pid, epoch, true).await?;
        ensure!(
            code == PRODUCER_FENCED,
            "EndTxn v3 of the fenced epoch: {code}"
        );
        let code = end(&c, 1, pid, epoch, true).await?;
        ensure!(
            code == INVALID_PRODUCER_EPOCH,
            "EndTxn v1 of the fenced epoch: {code}"
        );
        let (code, _) = produce(&c, 0, txn_batch(pid, epoch, 1, b"zombie")).await?;
        ensure!(
            code == INVALID_PRODUCER_EPOCH,
            "produce at the fenced epoch: {code}"
        );
        // Nothing is ongoing for the new epoch.
        let code = end(&c, 3, pid, 2, true).await?;
        ensure!(
            code == INVALID_TXN_STATE,
            "EndTxn without a transaction: {code}"
        );

        // The abort marker is at offset 1: the LSO is the end; read_committed gets the
        // aborted list so clients drop the aborted batch.
        let (bytes, hw, lso, aborted) = fetch(&c, 1).await?;
        ensure!(
            bytes > 0 && hw == 2 && lso == 2 && aborted == Some(vec![(pid, 0)]),
            "after the abort: {bytes} bytes, hw {hw}, lso {lso}, {aborted:?}"
        );
        ensure!(
            latest(&c, 1).await? == 2,
            "ListOffsets read_committed after the abort"
        );
        let ps = producers(&c).await?;
        ensure!(
            ps.len() == 1 && ps[0].0 == pid && ps[0].1 == 1 && ps[0].3 == -1,
            "the abort marker's epoch fences the partition too: {ps:?}"
        );

        // A committed transaction at the new epoch (sequence restarts at 0).
        let codes = add_partitions(&c, 3, pid, 2, &[(TOPIC, &[0, 1])]).await?;
        ensure!(codes == vec![0, 0], "{codes:?}");
        let (code, base) = produce(&c, 0, txn_batch(pid, 2, 0, b"committed")).await?;
        ensure!(
            code == 0 && base == 2,
            "produce at the new epoch: {code} at {base}"
        );
        ensure!(end(&c, 3, pid, 2, true).await? == 0, "commit");
        // A retried EndTxn is answered as done; the opposite decision is refused.
        ensure!(end(&c, 3, pid, 2, true).await? == 0, "retried commit");
        ensure!(
            end(&c, 3, pid, 2, false).await? == INVALID_TXN_STATE,
            "abort after commit"
        );
        let (_, hw, lso, aborted) = fetch(&c, 1).await?;
        ensure!(
            hw == 4 && lso == 4 && aborted == Some(vec![(pid, 0)]),
            "after the commit: hw {hw}, lso {lso}, {aborted:?}"
        );
        let d = describe(&c).await.context("describe after commit")?;
        ensure!(
            d.transaction_states[0].transaction_state.as_str() == "CompleteCommit",
            "{:?}",
            d.transaction_states[0]
        );
        Ok(())
    }
}
