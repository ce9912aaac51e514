//! Pipelines end to end over a `StorageHost` (real partition logs, no broker): results,
//! restarts, and exactly-once output across aborts at arbitrary points.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eddy_client::consumer::decode_into;
use eddy_processor::{
    run, AggSpec, Backend, BoxFuture, Input, LatePolicy, LocalHost, PipelineBuilder,
    PipelineStatus, RunState, StorageHost, Value, WindowKind, WindowSpec,
};
use eddy_protocol::batch::BatchBuilder;
use tokio::sync::watch;

/// Writes `n` events per partition: `{"user": "u<i%users>", "amount": i, "ts": ...}` with
/// increasing event times.
fn fill(host: &StorageHost, topic: &str, partitions: i32, n: i64, users: i64) {
    for p in 0..partitions {
        let mut i = 0;
        while i < n {
            let mut b = BatchBuilder::default();
            for _ in 0..100.min(n - i) {
                let ts = i * 37 + i64::from(p) * 5;
                let v = format!(
                    r#"{{"user":"u{}","amount":{},"ts":{}}}"#,
                    (i + i64::from(p)) % users,
                    i,
                    ts
                );
                b.push(ts, None, Some(v.as_bytes()), &[]);
                i += 1;
            }
            host.append_plain(topic, p, b.finish()).expect("append");
        }
    }
}

/// Every record of every partition of `topic`: (partition, key, value, timestamp).
fn read_all(
    host: &StorageHost,
    topic: &str,
    partitions: i32,
) -> Vec<(i32, Option<String>, String, i64)> {
    let mut out = Vec::new();
    for p in 0..partitions {
        let reader = host.reader(topic, p).expect("reader");
        let mut pos = reader.log_start_offset();
        while pos < reader.log_end_offset() {
            let r = reader.read(pos, 1 << 20).expect("read");
            let mut recs = Vec::new();
            pos = decode_into(topic, p, pos, r.bytes, &mut recs).expect("decode");
            for r in recs {
                out.push((
                    p,
                    r.key.map(|k| String::from_utf8_lossy(&k).into_owned()),
                    String::from_utf8_lossy(&r.value.unwrap_or_default()).into_owned(),
                    r.timestamp,
                ));
            }
        }
    }
    out
}

fn windowed(name: &str, bounded: bool) -> eddy_processor::Pipeline {
    let b = PipelineBuilder::new(name)
        .source(Input::topic("events").event_time_field("ts"))
        .checkpoint_interval(Duration::from_millis(3))
        .read_bytes(4096)
        .filter(|e| {
            e.value
                .get("amount")
                .and_then(Value::as_i64)
                .is_some_and(|a| a % 7 != 0)
        })
        .map(|mut e| {
            let doubled = e.value.get("amount").and_then(Value::as_i64).unwrap_or(0) * 2;
            e.value.set("amount", Value::Int(doubled));
            e
        })
        .window(WindowSpec {
            kind: WindowKind::Tumbling { size: 1_000 },
            group_by: vec!["user".into()],
            aggregates: vec![
                AggSpec::count("n"),
                AggSpec::sum("total", "amount"),
                AggSpec::max("biggest", "amount"),
            ],
            allowed_lateness: 0,
            late: LatePolicy::Drop,
        })
        .sink("totals");
    if bounded { b.bounded() } else { b }
        .build()
        .expect("valid pipeline")
}

fn host_with_input(dir: &std::path::Path, n: i64) -> Arc<StorageHost> {
    let host = StorageHost::new(dir.join("logs"));
    host.create_topic("events", 3).expect("topic");
    host.create_topic("totals", 2).expect("topic");
    fill(&host, "events", 3, n, 5);
    host
}

async fn run_bounded(host: &Arc<StorageHost>, state: &std::path::Path, name: &str) -> RunState {
    let status = Arc::new(PipelineStatus::default());
    let (_stop_tx, stop) = watch::channel(false);
    let backend = Backend::Local(Arc::clone(host) as Arc<dyn LocalHost>);
    run(
        windowed(name, true),
        backend,
        state.to_path_buf(),
        Arc::clone(&status),
        stop,
    )
    .await
    .expect("pipeline runs");
    status.snapshot().state
}

/// The expected output computed directly from the generator's definition.
fn expected_counts(n: i64) -> BTreeMap<(String, i64), (i64, i64, i64)> {
    let mut m = BTreeMap::new();
    for p in 0..3i64 {
        for i in 0..n {
            if i % 7 == 0 {
                continue;
            }
            let ts = i * 37 + p * 5;
            let e = m
                .entry((format!("u{}", (i + p) % 5), ts - ts % 1000))
                .or_insert((0, 0, 0));
            e.0 += 1;
            e.1 += 2 * i;
            e.2 = e.2.max(2 * i);
        }
    }
    m
}

fn as_counts(
    rows: &[(i32, Option<String>, String, i64)],
) -> BTreeMap<(String, i64), (i64, i64, i64)> {
    rows.iter()
        .map(|(_, _, v, _)| {
            let v = Value::from_json(v.as_bytes()).expect("json output");
            let g = |f: &str| v.get(f).and_then(Value::as_i64).expect("field");
            let user = v
                .get("user")
                .and_then(Value::as_str)
                .expect("user")
                .to_string();
            (
                (user, g("window_start")),
                (g("n"), g("total"), g("biggest")),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windowed_count_matches_a_hand_computed_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = host_with_input(dir.path(), 2_000);
    let state = run_bounded(&host, &dir.path().join("state"), "totals").await;
    assert_eq!(state, RunState::Finished);
    let rows = read_all(&host, "totals", 2);
    let got = as_counts(&rows);
    assert_eq!(rows.len(), got.len(), "one row per (user, window)");
    assert_eq!(got, expected_counts(2_000));
    // Keyed by user, partitioned with the Java client's murmur2.
    for (p, key, v, ts) in &rows {
        let key = key.as_deref().expect("keyed by user");
        assert!(v.contains(&format!(r#""user":"{key}""#)));
        assert_eq!(
            *p,
            eddy_client::partitioner::partition_for_key(key.as_bytes(), 2)
        );
        let start = Value::from_json(v.as_bytes())
            .expect("json")
            .get("window_start")
            .and_then(Value::as_i64);
        assert_eq!(Some(*ts - 999), start, "timestamp = window end - 1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_pipeline_restarted_emits_nothing_new() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = host_with_input(dir.path(), 500);
    run_bounded(&host, &dir.path().join("state"), "totals").await;
    let first = read_all(&host, "totals", 2);
    run_bounded(&host, &dir.path().join("state"), "totals").await;
    assert_eq!(read_all(&host, "totals", 2), first);
}

/// A host that "crashes" the pipeline at its n-th delivery: the append fails after the
/// checkpoint holding the batch was written, the very window a commit protocol must survive.
struct CrashingHost {
    inner: Arc<StorageHost>,
    appends_left: AtomicI64,
}

impl LocalHost for CrashingHost {
    fn partitions(&self, topic: &str) -> Option<i32> {
        self.inner.partitions(topic)
    }
    fn subscribe(
        &self,
        topic: &str,
        partition: i32,
    ) -> Option<(eddy_storage::LogReader, watch::Receiver<i64>)> {
        self.inner.subscribe(topic, partition)
    }
    fn append(
        &self,
        topic: &str,
        partition: i32,
        batch: Vec<u8>,
    ) -> BoxFuture<Result<i64, String>> {
        if self.appends_left.fetch_sub(1, Ordering::SeqCst) <= 0 {
            return Box::pin(async { Err("simulated crash".to_string()) });
        }
        self.inner.append(topic, partition, batch)
    }
    fn last_sequence(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
    ) -> BoxFuture<Option<i32>> {
        self.inner.last_sequence(topic, partition, producer_id)
    }
    fn allocate_producer_id(&self) -> BoxFuture<Result<i64, String>> {
        self.inner.allocate_producer_id()
    }
}

fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Interrupts the pipeline over and over, restarting it from its state directory each time,
/// and checks the final output is exactly a clean run's. Two kinds of interruption: a failed
/// delivery after a random number of appends (lands in the commit phase, between checkpoint
/// and delivery or between delivered batches), and aborting the task at a random moment (any
/// await point).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_output_survives_crashes_in_the_commit_phase_and_anywhere() {
    let n = 12_000;
    let clean_dir = tempfile::tempdir().expect("tempdir");
    let clean = host_with_input(clean_dir.path(), n);
    run_bounded(&clean, &clean_dir.path().join("state"), "totals").await;
    let reference = read_all(&clean, "totals", 2);
    assert_eq!(as_counts(&reference), expected_counts(n));

    let dir = tempfile::tempdir().expect("tempdir");
    let host = host_with_input(dir.path(), n);
    let state = dir.path().join("state");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let (mut crashes, mut aborts) = (0, 0);
    for round in 0..400 {
        // Even rounds crash at the n-th delivery; odd rounds are aborted after a random delay.
        let crash = round % 2 == 0;
        let budget = if crash {
            2 + (next(&mut seed) % 3) as i64
        } else {
            i64::MAX
        };
        let crashing = Arc::new(CrashingHost {
            inner: Arc::clone(&host),
            appends_left: AtomicI64::new(budget),
        });
        let status = Arc::new(PipelineStatus::default());
        let (_stop_tx, stop) = watch::channel(false);
        let backend = Backend::Local(crashing as Arc<dyn LocalHost>);
        let task = tokio::spawn(run(
            windowed("totals", true),
            backend,
            state.clone(),
            status,
            stop,
        ));
        let outcome = if crash {
            Some(task.await.expect("join"))
        } else {
            tokio::time::sleep(Duration::from_micros(next(&mut seed) % 6_000)).await;
            if task.is_finished() {
                Some(task.await.expect("join"))
            } else {
                task.abort();
                let _ = task.await;
                aborts += 1;
                None
            }
        };
        match outcome {
            Some(Ok(())) => break,
            Some(Err(e)) => {
                assert!(e.to_string().contains("simulated crash"), "{e}");
                crashes += 1;
            }
            None => {}
        }
    }
    eprintln!("{crashes} crashes, {aborts} aborts");
    assert!(
        crashes >= 3 && aborts >= 2,
        "the test must interrupt the pipeline (crashes {crashes}, aborts {aborts})"
    );
    assert_eq!(
        run_bounded(&host, &state, "totals").await,
        RunState::Finished
    );
    let got = read_all(&host, "totals", 2);
    assert_eq!(
        got, reference,
        "output after {crashes} crashes and {aborts} aborts differs from a clean run"
    );
}

/// A two-input plan over real logs: orders enriched from a customers table, then joined with
/// payments in 1 s windows. Checks that each source's events reach the join as their side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_in_a_pipeline_see_each_input_as_its_side() {
    use eddy_processor::{JoinType, TableJoinSpec, WindowJoinSpec};
    let dir = tempfile::tempdir().expect("tempdir");
    let host = StorageHost::new(dir.path().join("logs"));
    for t in ["customers", "orders", "payments", "out"] {
        host.create_topic(t, 1).expect("topic");
    }
    let mut c = BatchBuilder::default();
    c.push(0, Some(b"c1"), Some(br#"{"name":"Ada"}"#), &[]);
    c.push(0, Some(b"c2"), Some(br#"{"name":"Bob"}"#), &[]);
    host.append_plain("customers", 0, c.finish())
        .expect("append");
    let mut o = BatchBuilder::default();
    for (id, cust, ts) in [
        (1, "c1", 100),
        (2, "c2", 200),
        (3, "c9", 300),
        (4, "c1", 1_500),
    ] {
        let v = format!(r#"{{"order":{id},"customer":"{cust}","ts":{ts}}}"#);
        o.push(ts, None, Some(v.as_bytes()), &[]);
    }
    host.append_plain("orders", 0, o.finish()).expect("append");
    let mut p = BatchBuilder::default();
    for (id, ts) in [(1, 150), (2, 1_200), (4, 1_600)] {
        let v = format!(r#"{{"order":{id},"paid":true,"ts":{ts}}}"#);
        p.push(ts, None, Some(v.as_bytes()), &[]);
    }
    host.append_plain("payments", 0, p.finish())
        .expect("append");
    let pipeline = PipelineBuilder::new("joined")
        .source(Input::topic("orders").event_time_field("ts"))
        .source(Input::topic("payments").event_time_field("ts"))
        .source(Input::topic("customers"))
        .bounded()
        .table_join(TableJoinSpec {
            stream_input: 0,
            table_input: 2,
            table_key: vec![],
            stream_key: vec!["customer".into()],
            output_field: "customer_info".into(),
            join_type: JoinType::Inner,
        })
        .window_join(WindowJoinSpec {
            window: WindowKind::Tumbling { size: 1_000 },
            left_input: 0,
            right_input: 1,
            left_key: vec!["order".into()],
            right_key: vec!["order".into()],
            join_type: JoinType::Inner,
        })
        .sink("out")
        .build()
        .expect("valid");
    let status = Arc::new(PipelineStatus::default());
    let (_tx, stop) = watch::channel(false);
    run(
        pipeline,
        Backend::Local(Arc::clone(&host) as Arc<dyn LocalHost>),
        dir.path().join("state"),
        status,
        stop,
    )
    .await
    .expect("runs");
    let rows: Vec<Value> = read_all(&host, "out", 1)
        .into_iter()
        .map(|(_, _, v, _)| Value::from_json(v.as_bytes()).expect("json"))
        .collect();
    // Order 1 (c1, paid in the same window) and order 4 (c1, paid at 1600) join; order 2 was
    // paid in the next window; order 3's customer is unknown, so the table join dropped it.
    let got: Vec<(i64, &str)> = rows
        .iter()
        .map(|r| {
            (
                r.path("left.order").and_then(Value::as_i64).unwrap_or(-1),
                r.path("left.customer_info.name")
                    .and_then(Value::as_str)
                    .unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(got, vec![(1, "Ada"), (4, "Ada")]);
}

/// Values no operator changed are written as they were read (spacing and all); a changed
/// value is encoded again; a spec's plan decodes only the fields it reads yet writes whole
/// values; and an operator that does not declare `preserves_values` cannot leak stale bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_values_pass_through_as_read_and_changed_ones_are_encoded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = StorageHost::new(dir.path().join("logs"));
    for t in ["in", "kept", "mapped", "spec", "custom"] {
        host.create_topic(t, 1).expect("topic");
    }
    let mut b = BatchBuilder::default();
    for i in 0..10 {
        let v =
            format!(r#"{{ "n" : {i}, "tag": "t{i}", "ts": {i}, "extra": [1, {{"x": 2.50}}] }}"#);
        b.push(i, None, Some(v.as_bytes()), &[]);
    }
    host.append_plain("in", 0, b.finish()).expect("append");
    let odd =
        |e: &eddy_processor::Event| e.value.get("n").and_then(Value::as_i64).unwrap_or(0) % 2 == 1;
    /// Sets a field and emits the same event, without declaring `preserves_values`.
    #[derive(Debug)]
    struct Touch;
    impl eddy_processor::Operator for Touch {
        fn name(&self) -> &str {
            "touch"
        }
        fn process(&mut self, mut e: eddy_processor::Event, out: &mut eddy_processor::Collector) {
            e.value.set("touched", Value::Bool(true));
            out.emit(e);
        }
    }
    let plans = [
        PipelineBuilder::new("kept").source(Input::topic("in")).filter(odd).sink("kept").bounded().build().expect("valid"),
        PipelineBuilder::new("mapped")
            .source(Input::topic("in"))
            .filter(odd)
            .map(|mut e| {
                e.value.set("n", Value::Int(0));
                e
            })
            .sink("mapped").bounded().build().expect("valid"),
        eddy_processor::PipelineSpec::from_json(
            br#"{"name": "spec", "inputs": [{"topic": "in", "event_time": "ts"}],
                 "steps": [{"filter": {"field": "n", "op": ">", "value": 7}}], "output": "spec", "bounded": true}"#,
        )
        .expect("spec")
        .compile()
        .expect("compiles"),
        PipelineBuilder::new("custom").source(Input::topic("in").fields(&["n"])).op(Touch).sink("custom").bounded().build().expect("valid"),
    ];
    for p in plans {
        let name = p.name().to_string();
        let status = Arc::new(PipelineStatus::default());
        let (_stop_tx, stop) = watch::channel(false);
        let backend = Backend::Local(Arc::clone(&host) as Arc<dyn LocalHost>);
        run(p, backend, dir.path().join(name), status, stop)
            .await
            .expect("runs");
    }
    let values =
        |t: &str| -> Vec<String> { read_all(&host, t, 1).into_iter().map(|r| r.2).collect() };
    let kept = values("kept");
    assert_eq!(kept.len(), 5);
    assert_eq!(
        kept[0],
        r#"{ "n" : 1, "tag": "t1", "ts": 1, "extra": [1, {"x": 2.50}] }"#
    );
    assert_eq!(
        values("mapped")[0],
        r#"{"n":0,"tag":"t1","ts":1,"extra":[1,{"x":2.5}]}"#
    );
    assert_eq!(
        values("spec"),
        vec![
            r#"{ "n" : 8, "tag": "t8", "ts": 8, "extra": [1, {"x": 2.50}] }"#.to_string(),
            r#"{ "n" : 9, "tag": "t9", "ts": 9, "extra": [1, {"x": 2.50}] }"#.to_string()
        ]
    );
    assert_eq!(values("custom")[3], r#"{"n":3,"touched":true}"#);
}
