//! SQL pipelines at run time: records that do not fit the table, and a pipeline stopped and
//! restarted from its recompiled SQL continuing its window state exactly.

mod sql_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use eddy_processor::sql::{Catalog, Outcome, Session, SqlPipeline};
use eddy_processor::{run, Backend, LocalHost, PipelineStatus, RunState};
use sql_support::*;
use tokio::sync::watch;

fn pipeline_of(script: &str) -> SqlPipeline {
    let out = Session::new(Catalog::default())
        .execute(script)
        .unwrap_or_else(|e| panic!("{e}"));
    out.into_iter()
        .find_map(|o| match o {
            Outcome::Pipeline(p) => Some(p),
            _ => None,
        })
        .expect("an INSERT")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_that_do_not_fit_are_skipped_nulled_or_dead_lettered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = eddy_processor::StorageHost::new(dir.path().join("logs"));
    host.create_topic("in", 1).expect("topic");
    host.create_topic("dead", 1).expect("topic");
    let t = BASE_MS;
    let rows = [
        r#"{"id":1,"n":10,"ts":"2024-01-01 00:00:01"}"#,
        r#"not json at all"#,
        r#"{"id":2,"n":"eleven","ts":"2024-01-01 00:00:02"}"#,
        r#"{"id":3,"ts":"2024-01-01T00:00:03.5Z"}"#,
        r#"{"id":4,"n":"12","ts":1704067204000}"#,
        r#"[1,2,3]"#,
    ];
    produce(
        &host,
        "in",
        0,
        &rows
            .iter()
            .enumerate()
            .map(|(i, r)| (t + i as i64, r.to_string()))
            .collect::<Vec<_>>(),
    );
    let table = |name: &str, extra: &str| {
        format!(
            "CREATE TABLE {name} (id INT, n BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) WITH ('connector' = 'kafka', 'topic' = 'in', 'format' = 'json', 'scan.bounded.mode' = 'latest-offset'{extra})"
        )
    };
    let sink = |topic: &str| {
        format!("CREATE TABLE out_t (id INT, n BIGINT, ts TIMESTAMP(3)) WITH ('connector' = 'kafka', 'topic' = '{topic}', 'format' = 'json')")
    };
    let (strict, status) = run_sql_status(
        &host,
        &dir.path().join("a"),
        &format!(
            "{};{};INSERT INTO out_t SELECT id, n, ts FROM t",
            table("t", ""),
            sink("strict")
        ),
        1,
    )
    .await;
    assert_eq!(
        strict
            .iter()
            .filter_map(|r| r.value.clone())
            .collect::<Vec<_>>(),
        vec![
            r#"{"id":1,"n":10,"ts":"2024-01-01 00:00:01"}"#.to_string(),
            r#"{"id":3,"n":null,"ts":"2024-01-01 00:00:03.5"}"#.to_string(),
            r#"{"id":4,"n":12,"ts":"2024-01-01 00:00:04"}"#.to_string(),
        ],
        "a missing field is NULL; a wrong type skips the record; numbers in strings are read"
    );
    assert_eq!(
        status.bad_records, 3,
        "not JSON, a wrong type and a JSON array are each counted as bad"
    );
    let lenient = run_sql(
        &host,
        &dir.path().join("b"),
        &format!(
            "{};{};INSERT INTO out_t SELECT id, n, ts FROM t",
            table("t", ", 'json.ignore-parse-errors' = 'true'"),
            sink("lenient")
        ),
        1,
    )
    .await;
    assert_eq!(
        lenient.len(),
        4,
        "with json.ignore-parse-errors a bad field is NULL"
    );
    assert_eq!(
        lenient[1].value.as_deref(),
        Some(r#"{"id":2,"n":null,"ts":"2024-01-01 00:00:02"}"#)
    );
    let dead = run_sql(
        &host,
        &dir.path().join("c"),
        &format!(
            "{};{};INSERT INTO out_t SELECT id, n, ts FROM t",
            table("t", ", 'dead-letter.topic' = 'dead'"),
            sink("dl")
        ),
        1,
    )
    .await;
    assert_eq!(dead.len(), 3);
    let strict_fields = run_sql(
        &host,
        &dir.path().join("d"),
        &format!(
            "{};{};INSERT INTO out_t SELECT id, n, ts FROM t",
            table("t", ", 'json.fail-on-missing-field' = 'true'"),
            sink("all-fields")
        ),
        1,
    )
    .await;
    let ids: Vec<String> = strict_fields
        .iter()
        .filter_map(|r| r.value.clone())
        .collect();
    assert_eq!(
        ids.len(),
        2,
        "with json.fail-on-missing-field the record without n is skipped: {ids:?}"
    );
    let letters: Vec<String> = read_all(&host, "dead")
        .into_iter()
        .filter_map(|r| r.value)
        .collect();
    assert_eq!(letters, vec![r#"{"id":2,"n":"eleven","ts":"2024-01-01 00:00:02"}"#.to_string()], "undecodable JSON values go to the dead-letter topic (non-JSON records are dropped by the source)");
}

/// Runs the bounded `p` with its state in `state` until it finishes.
async fn run_to_end(
    host: &Arc<eddy_processor::StorageHost>,
    p: &SqlPipeline,
    state: std::path::PathBuf,
) {
    let status = Arc::new(PipelineStatus::default());
    let (_tx, stop) = watch::channel(false);
    let backend = Backend::Local(Arc::clone(host) as Arc<dyn LocalHost>);
    run(
        p.compile().expect("compiles"),
        backend,
        state,
        Arc::clone(&status),
        stop,
    )
    .await
    .expect("runs");
    assert_eq!(status.snapshot().state, RunState::Finished);
}

/// Runs `p` (unbounded) until it has read `n` records, then stops it.
async fn run_until_read(
    host: &Arc<eddy_processor::StorageHost>,
    p: &SqlPipeline,
    state: &std::path::Path,
    n: usize,
) {
    let status = Arc::new(PipelineStatus::default());
    let (stop_tx, stop) = watch::channel(false);
    let backend = Backend::Local(Arc::clone(host) as Arc<dyn LocalHost>);
    let task = tokio::spawn(run(
        p.compile().expect("compiles"),
        backend,
        state.to_path_buf(),
        Arc::clone(&status),
        stop,
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while status.snapshot().records_in < n as u64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first part is read"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_tx.send(true).expect("stop");
    task.await.expect("joins").expect("runs");
}

/// Tumbling sums per auction; the table is unbounded unless `bounded`.
fn tumble_sql(bounded: bool) -> String {
    let ddl = if bounded {
        BID_DDL.to_string()
    } else {
        BID_DDL.replace("'scan.bounded.mode' = 'latest-offset',", "")
    };
    format!(
        "{ddl};
CREATE TABLE sums (auction BIGINT, window_start TIMESTAMP(3), total BIGINT, n BIGINT) WITH ('connector' = 'kafka', 'topic' = 'sums', 'format' = 'json');
SET 'pipeline.name' = 'sums';
SET 'execution.checkpointing.interval' = '20 ms';
INSERT INTO sums SELECT auction, window_start, SUM(price), COUNT(*) FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '5' SECOND)) GROUP BY auction, window_start, window_end"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_pipeline_restarted_from_its_sql_continues_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let all = bids(2_000, 3, 41);
    let (first, second) = all.split_at(1_200);
    let host = host_with_bids(dir.path(), first);
    host.create_topic("sums", 2).expect("topic");
    let state = dir.path().join("state");

    // Run unbounded until the first part is read and committed, then stop.
    run_until_read(&host, &pipeline_of(&tumble_sql(false)), &state, first.len()).await;
    let mid = read_all(&host, "sums").len();
    assert!(
        mid > 0,
        "windows closed by the watermark were written before the stop"
    );

    // More input; the recompiled pipeline (now bounded) restores the open windows.
    write_bids(&host, "bids", 3, second);
    run_to_end(&host, &pipeline_of(&tumble_sql(true)), state).await;

    let mut want: BTreeMap<(i64, i64), (i64, i64)> = BTreeMap::new();
    for b in &all {
        let e = want
            .entry((b.auction, b.date_time - b.date_time.rem_euclid(5_000)))
            .or_default();
        e.0 += b.price;
        e.1 += 1;
    }
    let mut want: Vec<String> = want
        .iter()
        .map(|((a, s), (t, n))| {
            format!(
                r#"{{"auction":{a},"window_start":"{}","total":{t},"n":{n}}}"#,
                flink_ts(*s)
            )
        })
        .collect();
    want.sort();
    let out = read_all(&host, "sums");
    assert!(out.len() > mid);
    assert_eq!(
        sorted_values(&out),
        want,
        "every window exactly once across the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_options_shape_keys_and_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = eddy_processor::StorageHost::new(dir.path().join("logs"));
    host.create_topic("in", 1).expect("topic");
    produce(
        &host,
        "in",
        0,
        &[
            (
                BASE_MS,
                r#"{"id":1,"name":"a","ts":"2024-01-01 00:00:01.250"}"#.to_string(),
            ),
            (
                BASE_MS,
                r#"{"id":2,"ts":"2024-01-01 00:00:02"}"#.to_string(),
            ),
        ],
    );
    let source = "CREATE TABLE t (id INT, name STRING, ts TIMESTAMP(3)) WITH ('connector' = 'kafka', 'topic' = 'in', 'format' = 'json', 'scan.bounded.mode' = 'latest-offset')";
    // A column list (the others are NULL), key fields kept out of the value, nulls omitted,
    // ISO-8601 timestamps.
    let script = format!(
        "{source};
CREATE TABLE s (id INT, name STRING, ts TIMESTAMP(3), note STRING) WITH ('connector' = 'kafka', 'topic' = 'shaped', 'format' = 'json',
  'key.format' = 'json', 'key.fields' = 'id', 'value.fields-include' = 'EXCEPT_KEY',
  'json.encode.ignore-null-fields' = 'true', 'json.timestamp-format.standard' = 'ISO-8601');
INSERT INTO s (id, name, ts) SELECT id, name, ts FROM t"
    );
    let out = run_sql(&host, &dir.path().join("a"), &script, 1).await;
    let got: Vec<(Option<String>, Option<String>)> =
        out.into_iter().map(|r| (r.key, r.value)).collect();
    assert_eq!(
        got,
        vec![
            (
                Some(r#"{"id":1}"#.to_string()),
                Some(r#"{"name":"a","ts":"2024-01-01T00:00:01.25"}"#.to_string())
            ),
            (
                Some(r#"{"id":2}"#.to_string()),
                Some(r#"{"ts":"2024-01-01T00:00:02"}"#.to_string())
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_startup_timestamp_starts_each_partition_at_that_record_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = eddy_processor::StorageHost::new(dir.path().join("logs"));
    host.create_topic("in", 2).expect("topic");
    // Partition p holds ids p, p+2, p+4, ... with record timestamps 1 s apart per id; the
    // event time in the value runs the other way, so only the record timestamp can pick.
    let n = 400i64;
    for p in 0..2 {
        let values: Vec<(i64, String)> = (0..n)
            .filter(|id| id % 2 == p)
            .map(|id| {
                (
                    BASE_MS + id * 1000,
                    format!(r#"{{"id":{id},"ts":{}}}"#, BASE_MS - id),
                )
            })
            .collect();
        produce(&host, "in", p as i32, &values);
    }
    let from_id = 257;
    let script = format!(
        "CREATE TABLE t (id BIGINT, ts BIGINT) WITH ('connector' = 'kafka', 'topic' = 'in', \
         'format' = 'json', 'scan.bounded.mode' = 'latest-offset', \
         'scan.startup.mode' = 'timestamp', 'scan.startup.timestamp-millis' = '{}');
         CREATE TABLE o (id BIGINT) WITH ('connector' = 'kafka', 'topic' = 'o', 'format' = 'json');
         INSERT INTO o SELECT id FROM t",
        BASE_MS + from_id * 1000 - 500
    );
    let out = run_sql(&host, &dir.path().join("a"), &script, 1).await;
    let mut ids: Vec<i64> = out
        .iter()
        .filter_map(|r| r.value.as_deref())
        .map(|v| {
            v.trim_start_matches(r#"{"id":"#)
                .trim_end_matches('}')
                .parse()
                .expect("an id")
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (from_id..n).collect::<Vec<_>>());

    // A time after every record starts at the end: nothing is read.
    let late = script
        .replace(
            &format!("{}", BASE_MS + from_id * 1000 - 500),
            &format!("{}", BASE_MS + n * 1000),
        )
        .replace("'topic' = 'o'", "'topic' = 'o2'");
    assert!(run_sql(&host, &dir.path().join("b"), &late, 1)
        .await
        .is_empty());

    // The mode without its timestamp is refused at CREATE time.
    let err = Session::new(Catalog::default())
        .execute(
            "CREATE TABLE t (id BIGINT) WITH ('connector' = 'kafka', 'topic' = 'in', \
             'format' = 'json', 'scan.startup.mode' = 'timestamp')",
        )
        .expect_err("refused");
    assert!(
        err.to_string().contains("scan.startup.timestamp-millis"),
        "{err}"
    );
}

/// DECIMAL output keeps the declared scale, as Flink's json format writes a BigDecimal
/// (`toString()`: scientific once the first digit is below 10^-6), or always plain with
/// 'json.encode.decimal-as-plain-number'. Expectations written by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decimals_are_written_with_their_scale_as_flink_writes_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = eddy_processor::StorageHost::new(dir.path().join("logs"));
    host.create_topic("amounts", 1).expect("topic");
    let rows = [
        r#"{"id":1,"d":0.000000027,"p":908}"#,
        r#"{"id":2,"d":"0","p":1}"#,
        r#"{"id":3,"d":12.5,"p":10}"#,
        r#"{"id":4,"d":-0.000001,"p":-3}"#,
    ];
    let values: Vec<(i64, String)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (BASE_MS + i as i64, r.to_string()))
        .collect();
    produce(&host, "amounts", 0, &values);
    let script = |topic: &str, plain: &str| {
        format!(
            "CREATE TABLE amounts (id INT, d DECIMAL(11, 9), p BIGINT) WITH ('connector' = 'kafka', 'topic' = 'amounts', 'format' = 'json', 'scan.bounded.mode' = 'latest-offset');
CREATE TABLE out_t (id INT, d DECIMAL(11, 9), euro DECIMAL(23, 3)) WITH ('connector' = 'kafka', 'topic' = '{topic}', 'format' = 'json'{plain});
INSERT INTO out_t SELECT id, d, 0.908 * p FROM amounts;"
        )
    };
    let got = run_sql(&host, dir.path(), &script("sci", ""), 1).await;
    assert_eq!(
        sorted_values(&got),
        vec![
            r#"{"id":1,"d":2.7E-8,"euro":824.464}"#,
            r#"{"id":2,"d":0E-9,"euro":0.908}"#,
            r#"{"id":3,"d":12.500000000,"euro":9.080}"#,
            r#"{"id":4,"d":-0.000001000,"euro":-2.724}"#,
        ]
    );
    let plain = ", 'json.encode.decimal-as-plain-number' = 'true'";
    let got = run_sql(&host, &dir.path().join("p"), &script("plain", plain), 1).await;
    assert_eq!(
        sorted_values(&got),
        vec![
            r#"{"id":1,"d":0.000000027,"euro":824.464}"#,
            r#"{"id":2,"d":0.000000000,"euro":0.908}"#,
            r#"{"id":3,"d":12.500000000,"euro":9.080}"#,
            r#"{"id":4,"d":-0.000001000,"euro":-2.724}"#,
        ]
    );
}

/// A GROUP BY over a GROUP BY (how many auctions have n bids), unbounded unless `bounded`.
fn histogram_sql(bounded: bool) -> String {
    let ddl = if bounded {
        BID_DDL.to_string()
    } else {
        BID_DDL.replace("'scan.bounded.mode' = 'latest-offset',", "")
    };
    format!(
        "{ddl};
CREATE TABLE histogram (bids BIGINT, auctions BIGINT, PRIMARY KEY (bids) NOT ENFORCED)
WITH ('connector' = 'upsert-kafka', 'topic' = 'histogram', 'key.format' = 'json', 'value.format' = 'json');
SET 'pipeline.name' = 'histogram';
SET 'execution.checkpointing.interval' = '20 ms';
INSERT INTO histogram SELECT bids, COUNT(*) AS auctions
FROM (SELECT auction, COUNT(*) AS bids FROM bid GROUP BY auction) GROUP BY bids"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_group_by_restarted_from_its_sql_keeps_its_retraction_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let all = bids(2_000, 3, 43);
    let (first, second) = all.split_at(1_200);
    let host = host_with_bids(dir.path(), first);
    host.create_topic("histogram", 2).expect("topic");
    let state = dir.path().join("state");
    run_until_read(
        &host,
        &pipeline_of(&histogram_sql(false)),
        &state,
        first.len(),
    )
    .await;
    let mid = read_all(&host, "histogram").len();
    assert!(mid > 0, "updates were written before the stop");

    // More input; the restarted pipeline must retract from the counts it had before.
    write_bids(&host, "bids", 3, second);
    run_to_end(&host, &pipeline_of(&histogram_sql(true)), state).await;

    let mut per_auction: BTreeMap<i64, i64> = BTreeMap::new();
    for b in &all {
        *per_auction.entry(b.auction).or_default() += 1;
    }
    let mut want: BTreeMap<String, String> = BTreeMap::new();
    for n in per_auction.values() {
        let key = format!(r#"{{"bids":{n}}}"#);
        let count = per_auction.values().filter(|m| *m == n).count();
        want.insert(key, format!(r#"{{"bids":{n},"auctions":{count}}}"#));
    }
    // The final upsert table: the last record per key, tombstones removing keys.
    let out = read_all(&host, "histogram");
    assert!(out.len() > mid);
    let mut got: BTreeMap<String, Option<String>> = BTreeMap::new();
    for r in &out {
        got.insert(r.key.clone().expect("keyed"), r.value.clone());
    }
    let got: BTreeMap<String, String> =
        got.into_iter().filter_map(|(k, v)| Some((k, v?))).collect();
    assert_eq!(got, want, "the histogram of all bids across the restart");
}
