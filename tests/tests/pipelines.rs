//! In-broker pipelines on the real binary: installed with `eddy pipeline create`, fed with
//! `eddy produce`, checked with `eddy consume`; exactly-once output across SIGKILLs.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use eddy_e2e::{eddy_bin, eddy_cmd, run_ok, run_with_stdin, Broker};

fn eddy(broker: &Broker, args: &[&str]) -> Command {
    eddy_cmd(broker, args)
}

fn produce(broker: &Broker, topic: &str, partition: i32, lines: &str) -> Result<()> {
    let cmd = eddy(
        broker,
        &["produce", topic, "--partition", &partition.to_string()],
    );
    run_with_stdin(cmd, lines).map(|_| ())
}

/// Every value in `topic`, read to its current end.
fn consume_all(broker: &Broker, topic: &str) -> Result<Vec<String>> {
    let out = run_ok(
        eddy(broker, &["consume", topic, "--from-beginning", "--exit"]),
        Duration::from_secs(120),
        "eddy consume",
    )?;
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .map(str::to_string)
        .collect())
}

const USERS: u64 = 50;
const PARTITIONS: i32 = 3;

/// Event times start two hours ago (recent enough that the output, whose timestamps are
/// window ends, is not due for the default 7-day retention), rounded to a second.
fn base_ts() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    (now - 2 * 3_600_000) / 1000 * 1000
}

/// Events of partition `p`: event times increase by 7 ms per event, users rotate.
fn events(base: u64, p: i32, n: u64) -> String {
    let mut s = events_between(base, p, 0, n);
    s.push_str(&end_event(base));
    s
}

/// Events `from..to` of partition `p`.
fn events_between(base: u64, p: i32, from: u64, to: u64) -> String {
    let mut s = String::with_capacity((to - from) as usize * 40);
    for i in from..to {
        let ts = base + i * 7 + p as u64;
        s.push_str(&format!(
            "{{\"user\":\"u{}\",\"ts\":{ts},\"amount\":{}}}\n",
            (i + p as u64) % USERS,
            i % 100
        ));
    }
    s
}

/// Events `from..to` of every partition into "clicks".
fn produce_part(broker: &Broker, base: u64, from: u64, to: u64) -> Result<()> {
    for p in 0..PARTITIONS {
        produce(broker, "clicks", p, &events_between(base, p, from, to))?;
    }
    Ok(())
}

/// A non-zero seed from the clock (printed by the tests that use it, to replay a failure).
fn time_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1
}

/// One xorshift64 step: random moments for the crash tests.
fn xorshift(seed: &mut u64) {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
}

/// A far-future event (one per partition) moves the watermark past every real window.
fn end_event(base: u64) -> String {
    format!(
        "{{\"user\":\"end\",\"ts\":{},\"amount\":0}}\n",
        base + 3_600_000
    )
}

/// (user, window_start) → (count, sum) computed from the generator.
fn expected(base: u64, n: u64) -> BTreeMap<(String, i64), (i64, i64)> {
    let mut m = BTreeMap::new();
    for p in 0..PARTITIONS {
        for i in 0..n {
            let ts = base as i64 + (i * 7) as i64 + i64::from(p);
            let e = m
                .entry((format!("u{}", (i + p as u64) % USERS), ts - ts % 1000))
                .or_insert((0, 0));
            e.0 += 1;
            e.1 += (i % 100) as i64;
        }
    }
    m
}

/// One output row: (user, window_start) and (count, sum).
type Row = ((String, i64), (i64, i64));

fn parse(rows: &[String]) -> Result<Vec<Row>> {
    rows.iter()
        .map(|r| {
            let v: serde_json::Value =
                serde_json::from_str(r).with_context(|| format!("output row {r}"))?;
            let user = v["user"].as_str().context("user")?.to_string();
            let start = v["window_start"].as_i64().context("window_start")?;
            Ok((
                (user, start),
                (
                    v["n"].as_i64().context("n")?,
                    v["total"].as_i64().context("total")?,
                ),
            ))
        })
        .collect()
}

const SPEC: &str = r#"{
  "name": "per-user",
  "inputs": [{"topic": "clicks", "event_time": "ts"}],
  "watermark_delay_ms": 0,
  "checkpoint_interval_ms": 200,
  "steps": [
    {"filter": {"field": "user", "op": "!=", "value": "end"}},
    {"window": {"tumbling_ms": 1000, "group_by": ["user"],
                "aggregates": [{"fn": "count", "as": "n"}, {"fn": "sum", "field": "amount", "as": "total"}]}}
  ],
  "output": "per-user-counts"
}"#;

fn setup(broker: &Broker) -> Result<()> {
    for (t, p) in [("clicks", PARTITIONS), ("per-user-counts", 2)] {
        run_ok(
            eddy(
                broker,
                &["topic", "create", t, "--partitions", &p.to_string()],
            ),
            Duration::from_secs(30),
            "create topic",
        )?;
    }
    install(broker, "per-user", SPEC)
}

/// Writes `spec` to a file and installs it with `eddy pipeline create`.
fn install(broker: &Broker, name: &str, spec: &str) -> Result<()> {
    let path = broker
        .data_dir()
        .parent()
        .context("parent")?
        .join(format!("{name}.json"));
    std::fs::write(&path, spec)?;
    let mut c = Command::new(eddy_bin());
    c.args(["pipeline", "create", "-f"])
        .arg(&path)
        .arg("--admin")
        .arg(broker.admin());
    run_ok(c, Duration::from_secs(30), "eddy pipeline create")?;
    Ok(())
}

fn describe(broker: &Broker) -> Result<serde_json::Value> {
    describe_named(broker, "per-user")
}

/// `eddy pipeline describe NAME` as JSON.
fn describe_named(broker: &Broker, name: &str) -> Result<serde_json::Value> {
    let mut c = Command::new(eddy_bin());
    c.args(["pipeline", "describe", name, "--admin"])
        .arg(broker.admin());
    let out = run_ok(c, Duration::from_secs(30), "eddy pipeline describe")?;
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Waits until the output holds `want` rows (or times out), then a little longer to catch
/// anything extra.
fn wait_for_rows(broker: &Broker, want: usize, timeout: Duration) -> Result<Vec<String>> {
    let deadline = Instant::now() + timeout;
    loop {
        let rows = consume_all(broker, "per-user-counts")?;
        if rows.len() >= want || Instant::now() > deadline {
            std::thread::sleep(Duration::from_millis(1_500));
            return consume_all(broker, "per-user-counts");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn check_exact(rows: &[String], base: u64, n: u64) -> Result<()> {
    let want = expected(base, n);
    let got = parse(rows)?;
    let mut seen = BTreeMap::new();
    for (k, v) in &got {
        if seen.insert(k.clone(), *v).is_some() {
            bail!("window {k:?} was emitted twice");
        }
    }
    if seen != want {
        let missing = want.keys().filter(|k| !seen.contains_key(*k)).count();
        let wrong = want
            .iter()
            .filter(|(k, v)| seen.get(*k).is_some_and(|s| s != *v))
            .count();
        bail!(
            "output differs: {} rows, {} expected, {missing} missing, {wrong} with wrong values",
            seen.len(),
            want.len()
        );
    }
    Ok(())
}

#[test]
fn pipeline_counts_per_user_window_and_reports_status() -> Result<()> {
    let broker = Broker::start()?;
    setup(&broker)?;
    let (base, n) = (base_ts(), 3_000);
    for p in 0..PARTITIONS {
        produce(&broker, "clicks", p, &events(base, p, n))?;
    }
    let rows = wait_for_rows(&broker, expected(base, n).len(), Duration::from_secs(60))?;
    check_exact(&rows, base, n).with_context(|| broker.log_tail(30))?;
    let status = describe(&broker)?;
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(
        status["records_in"],
        (n + 1) * PARTITIONS as u64,
        "{status}"
    );
    assert_eq!(status["lag"]["clicks/0"], 0, "{status}");
    Ok(())
}

/// `cargo test exactly_once` selects this. The broker is SIGKILLed at random moments while
/// the pipeline works through the input; afterwards each (user, window) result is present
/// exactly once with the right values — what a crash-free run produces.
#[test]
fn exactly_once_windowed_count_survives_broker_kill9() -> Result<()> {
    let n: u64 = std::env::var("EDDY_EO_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(334_000);
    let mut broker = Broker::start()?;
    setup(&broker)?;
    let base = base_ts();
    let mut seed = time_seed();
    eprintln!(
        "exactly-once kill seed {seed}, {} events",
        n * PARTITIONS as u64
    );
    // The input arrives in five parts; after each, the broker is SIGKILLed at a random
    // moment while the pipeline works through it, and restarted.
    let rounds = 5;
    let mut kills = 0;
    for round in 0..rounds {
        let (from, to) = (n * round / rounds, n * (round + 1) / rounds);
        produce_part(&broker, base, from, to)?;
        xorshift(&mut seed);
        std::thread::sleep(Duration::from_millis(300 + seed % 900));
        broker.kill9();
        kills += 1;
        broker.restart()?;
    }
    for p in 0..PARTITIONS {
        produce(&broker, "clicks", p, &end_event(base))?;
    }
    let rows = wait_for_rows(&broker, expected(base, n).len(), Duration::from_secs(300))?;
    eprintln!("{kills} kills; {} output rows", rows.len());
    check_exact(&rows, base, n).with_context(|| broker.log_tail(40))?;
    Ok(())
}

fn consume_partition(broker: &Broker, topic: &str, p: i32) -> Result<Vec<String>> {
    let out = run_ok(
        eddy(
            broker,
            &[
                "consume",
                topic,
                "--from-beginning",
                "--exit",
                "--partition",
                &p.to_string(),
            ],
        ),
        Duration::from_secs(120),
        "eddy consume",
    )?;
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .map(str::to_string)
        .collect())
}

/// The same plan in the broker (local source and sink) and as a client of the broker over
/// TCP (remote source and sink) writes identical output, partition by partition.
#[test]
fn local_and_remote_runs_of_one_plan_give_identical_output() -> Result<()> {
    let broker = Broker::start()?;
    setup(&broker)?;
    run_ok(
        eddy(
            &broker,
            &["topic", "create", "remote-counts", "--partitions", "2"],
        ),
        Duration::from_secs(30),
        "create topic",
    )?;
    let (base, n) = (base_ts(), 5_000);
    for p in 0..PARTITIONS {
        produce(&broker, "clicks", p, &events(base, p, n))?;
    }
    let want = expected(base, n).len();
    let local = wait_for_rows(&broker, want, Duration::from_secs(60))?;
    check_exact(&local, base, n)?;

    let mut spec = eddy_processor::PipelineSpec::from_json(SPEC.as_bytes())?;
    spec.name = "per-user-remote".into();
    spec.output = "remote-counts".into();
    let pipeline = spec.compile()?;
    let state = tempfile::tempdir()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let cluster = eddy_client::Cluster::connect(&broker.bootstrap(), "remote-test").await?;
        let status = std::sync::Arc::new(eddy_processor::PipelineStatus::default());
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let run = tokio::spawn(eddy_processor::run(
            pipeline,
            eddy_processor::Backend::Remote(cluster),
            state.path().to_path_buf(),
            std::sync::Arc::clone(&status),
            stop,
        ));
        let deadline = Instant::now() + Duration::from_secs(60);
        while status.snapshot().records_in < (n + 1) * PARTITIONS as u64
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = stop_tx.send(true);
        run.await??;
        anyhow::Ok(())
    })?;
    for p in 0..2 {
        let l = consume_partition(&broker, "per-user-counts", p)?;
        let r = consume_partition(&broker, "remote-counts", p)?;
        assert!(!l.is_empty());
        assert_eq!(l, r, "partition {p}: local and remote outputs differ");
    }
    Ok(())
}

/// A pipeline that cannot run (its output topic is missing) is reported as failed with the
/// reason, retried, and never disturbs the broker or the other pipelines.
#[test]
fn a_failing_pipeline_is_reported_and_the_broker_keeps_serving() -> Result<()> {
    let broker = Broker::start()?;
    setup(&broker)?;
    let bad = SPEC
        .replace("\"per-user\"", "\"broken\"")
        .replace("per-user-counts", "no-such-topic");
    install(&broker, "broken", &bad)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let s = describe_named(&broker, "broken")?;
        if s["state"] == "failed" || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(status["state"], "failed", "{status}");
    assert!(
        status["error"]
            .as_str()
            .unwrap_or("")
            .contains("no-such-topic"),
        "{status}"
    );
    // The good pipeline and the broker carry on.
    let (base, n) = (base_ts(), 1_000);
    for p in 0..PARTITIONS {
        produce(&broker, "clicks", p, &events(base, p, n))?;
    }
    let rows = wait_for_rows(&broker, expected(base, n).len(), Duration::from_secs(60))?;
    check_exact(&rows, base, n)?;
    Ok(())
}

/// The pipeline lifecycle through the admin HTTP API and the CLI on top of it: create (and
/// create again: a no-op), a refused redefinition, an invalid definition, list, describe,
/// drop (definition and state gone, nothing left running), and errors for unknown names.
#[test]
fn admin_api_creates_lists_describes_and_drops_pipelines() -> Result<()> {
    let broker = Broker::start()?;
    setup(&broker)?;
    let admin = broker.admin();
    let cli = |args: &[&str]| {
        let mut c = Command::new(eddy_bin());
        c.args(args).arg("--admin").arg(&admin);
        c
    };
    install(&broker, "per-user", SPEC)?;
    // The same definition again is accepted without a change.
    let again = run_ok(
        {
            let path = broker
                .data_dir()
                .parent()
                .context("parent")?
                .join("per-user.json");
            cli(&["pipeline", "create", "-f", path.to_str().context("path")?])
        },
        Duration::from_secs(30),
        "create again",
    )?;
    assert!(String::from_utf8_lossy(&again.stdout).contains("already exists"));
    // A different definition under the same name is refused: its state belongs to the old plan.
    let changed = SPEC.replace("per-user-counts", "other-output");
    let path = broker
        .data_dir()
        .parent()
        .context("parent")?
        .join("changed.json");
    std::fs::write(&path, &changed)?;
    let out = cli(&["pipeline", "create", "-f", path.to_str().context("path")?]).output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already exists with a different definition"),
        "{err}"
    );
    // An invalid definition is refused with the reason and nothing is stored.
    std::fs::write(
        &path,
        r#"{"name": "bad", "inputs": [], "output": "x", "steps": [{"explode": 1}]}"#,
    )?;
    let out = cli(&["pipeline", "create", "-f", path.to_str().context("path")?]).output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("explode"), "{err}");

    let out = run_ok(cli(&["pipeline", "list"]), Duration::from_secs(30), "list")?;
    let list = String::from_utf8(out.stdout)?;
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.starts_with("per-user\tjson\t"), "{list}");

    // Describe shows the definition; wait until the status says it runs.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let s = describe(&broker)?;
        if s["state"] == "running" || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status["state"], "running", "{status}");
    assert!(status["definition"]
        .as_str()
        .unwrap_or("")
        .contains("per-user-counts"));

    run_ok(
        cli(&["pipeline", "drop", "per-user"]),
        Duration::from_secs(60),
        "drop",
    )?;
    assert!(!broker.data_dir().join("pipelines/per-user").exists());
    assert!(!broker.data_dir().join("pipelines/per-user.json").exists());
    let out = run_ok(cli(&["pipeline", "list"]), Duration::from_secs(30), "list")?;
    assert_eq!(String::from_utf8(out.stdout)?.trim(), "no pipelines");
    // Dropped means stopped: new input produces no output.
    let before = consume_all(&broker, "per-user-counts")?.len();
    let base = base_ts();
    produce(&broker, "clicks", 0, &events(base, 0, 500))?;
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(consume_all(&broker, "per-user-counts")?.len(), before);

    for args in [
        ["pipeline", "describe", "per-user"],
        ["pipeline", "drop", "per-user"],
    ] {
        let out = cli(&args).output()?;
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no pipeline named 'per-user'"), "{err}");
    }
    // No broker at the address: a clear one-line error.
    let out = Command::new(eddy_bin())
        .args(["pipeline", "list", "--admin", "127.0.0.1:1"])
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the admin API"));
    Ok(())
}

/// `cargo test exactly_once` selects this too. A pipeline running remotely (a client of the
/// broker over TCP, as against any Kafka cluster) is aborted at random moments (its task is
/// dropped mid-flight, like a crashed process) and restarted from its state directory. The
/// plan passes every event through, so most of its time goes to delivering output and the
/// aborts land in the commit phase too; every event must come out exactly once.
#[test]
fn exactly_once_remote_pipeline_survives_aborted_runs() -> Result<()> {
    let n: u64 = 60_000;
    let broker = Broker::start()?;
    for (t, p) in [("clicks", PARTITIONS), ("remote-out", 2)] {
        run_ok(
            eddy(
                &broker,
                &["topic", "create", t, "--partitions", &p.to_string()],
            ),
            Duration::from_secs(30),
            "create topic",
        )?;
    }
    let spec = eddy_processor::PipelineSpec::from_json(
        br#"{"name": "pass-remote", "inputs": [{"topic": "clicks", "event_time": "ts"}],
            "checkpoint_interval_ms": 20,
            "steps": [{"filter": {"field": "user", "op": "!=", "value": "end"}}],
            "output": "remote-out"}"#,
    )?;
    let state = tempfile::tempdir()?;
    let rt = tokio::runtime::Runtime::new()?;
    let cluster = rt.block_on(eddy_client::Cluster::connect(
        &broker.bootstrap(),
        "remote-eo",
    ))?;
    let start = |stop: tokio::sync::watch::Receiver<bool>| -> Result<_> {
        let status = std::sync::Arc::new(eddy_processor::PipelineStatus::default());
        let task = rt.spawn(eddy_processor::run(
            spec.compile()?,
            eddy_processor::Backend::Remote(std::sync::Arc::clone(&cluster)),
            state.path().to_path_buf(),
            std::sync::Arc::clone(&status),
            stop,
        ));
        Ok((task, status))
    };
    let base = base_ts();
    let mut seed = time_seed();
    eprintln!("remote exactly-once abort seed {seed}");
    let (_never, never_stop) = tokio::sync::watch::channel(false);
    let rounds = 12;
    let mut mid_work = 0;
    for round in 0..rounds {
        let (from, to) = (n * round / rounds, n * (round + 1) / rounds);
        produce_part(&broker, base, from, to)?;
        xorshift(&mut seed);
        let (task, status) = start(never_stop.clone())?;
        std::thread::sleep(Duration::from_millis(30 + seed % 400));
        let before = status.snapshot();
        task.abort();
        if let Ok(Err(e)) = rt.block_on(task) {
            bail!("the remote pipeline failed: {e}");
        }
        if before.records_out > 0 && before.records_in < to * PARTITIONS as u64 {
            mid_work += 1;
        }
    }
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let (task, _status) = start(stop)?;
    let want = n * PARTITIONS as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut rows = consume_all(&broker, "remote-out")?;
    while (rows.len() as u64) < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        rows = consume_all(&broker, "remote-out")?;
    }
    std::thread::sleep(Duration::from_millis(500));
    let _ = stop_tx.send(true);
    rt.block_on(task)??;
    let rows = consume_all(&broker, "remote-out")?;
    eprintln!(
        "{rounds} aborts ({mid_work} while output was flowing); {} output rows",
        rows.len()
    );
    let mut seen = std::collections::BTreeSet::new();
    for r in &rows {
        let v: serde_json::Value = serde_json::from_str(r).with_context(|| format!("row {r}"))?;
        let ts = v["ts"].as_u64().context("ts")?;
        if !seen.insert(ts) {
            let out = run_ok(
                eddy(
                    &broker,
                    &[
                        "consume",
                        "remote-out",
                        "--from-beginning",
                        "--exit",
                        "--format",
                        "json",
                    ],
                ),
                Duration::from_secs(120),
                "consume json",
            )?;
            let text = String::from_utf8_lossy(&out.stdout);
            let needle = format!("{ts}");
            let hits: Vec<&str> = text.lines().filter(|l| l.contains(&needle)).collect();
            eprintln!("DUP {hits:#?}");
            let input = consume_all(&broker, "clicks")?;
            let uniq: std::collections::BTreeSet<&String> = input.iter().collect();
            eprintln!("INPUT {} records, {} distinct", input.len(), uniq.len());
            bail!("event {r} was delivered twice");
        }
    }
    let expect: std::collections::BTreeSet<u64> = (0..PARTITIONS)
        .flat_map(|p| (0..n).map(move |i| base + i * 7 + p as u64))
        .collect();
    if seen != expect {
        bail!(
            "{} events missing, {} unexpected",
            expect.difference(&seen).count(),
            seen.difference(&expect).count()
        );
    }
    Ok(())
}

/// Pipelines read their inputs as `read_committed`, in the broker and remotely: records of an
/// aborted transaction never reach them, and nothing past an open transaction (not even
/// plain records written after it began) is read until it commits. A transactional
/// confluent-kafka producer writes the input.
#[test]
fn pipelines_read_only_committed_transactions() -> Result<()> {
    eddy_e2e::require_clients!();
    let broker = Broker::start()?;
    for (t, p) in [
        ("tx-in", 1),
        ("tx-out", 1),
        ("tx-out-remote", 1),
        ("tx-out-bounded", 1),
    ] {
        run_ok(
            eddy(
                &broker,
                &["topic", "create", t, "--partitions", &p.to_string()],
            ),
            Duration::from_secs(30),
            "create topic",
        )?;
    }
    let spec = |name: &str, output: &str| {
        format!(
            r#"{{"name": "{name}", "inputs": [{{"topic": "tx-in", "event_time": "ts"}}],
                "checkpoint_interval_ms": 100,
                "steps": [{{"filter": {{"field": "user", "op": "!=", "value": "end"}}}}],
                "output": "{output}"}}"#
        )
    };
    install(&broker, "tx-local", &spec("tx-local", "tx-out"))?;
    let remote =
        eddy_processor::PipelineSpec::from_json(spec("tx-remote", "tx-out-remote").as_bytes())?;
    let state = tempfile::tempdir()?;
    let rt = tokio::runtime::Runtime::new()?;
    let cluster = rt.block_on(eddy_client::Cluster::connect(
        &broker.bootstrap(),
        "tx-remote",
    ))?;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let remote_task = rt.spawn(eddy_processor::run(
        remote.compile()?,
        eddy_processor::Backend::Remote(cluster),
        state.path().to_path_buf(),
        std::sync::Arc::new(eddy_processor::PipelineStatus::default()),
        stop,
    ));

    let ready = state.path().join("ready");
    let go = state.path().join("go");
    let mut feeder = Command::new(eddy_e2e::python()?);
    feeder
        .arg(eddy_e2e::client_script("python/txn_pipeline_input.py"))
        .arg(broker.bootstrap())
        .arg("tx-in")
        .arg(&ready)
        .arg(&go)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = feeder.spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        if Instant::now() > deadline {
            let out = child.wait_with_output()?;
            bail!(
                "the feeder never got ready: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let ids = |topic: &str| -> Result<BTreeMap<String, usize>> {
        let mut m = BTreeMap::new();
        for r in consume_all(&broker, topic)? {
            let v: serde_json::Value = serde_json::from_str(&r)?;
            let kind = v["user"].as_str().context("user")?.to_string();
            *m.entry(kind).or_insert(0) += 1;
        }
        Ok(m)
    };
    let only_ok = BTreeMap::from([("ok".to_string(), 100)]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while (ids("tx-out")? != only_ok || ids("tx-out-remote")? != only_ok)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(300));
    }
    // Time for anything past the open transaction to (wrongly) show up.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ids("tx-out")?, only_ok, "in-broker, before the commit");
    assert_eq!(ids("tx-out-remote")?, only_ok, "remote, before the commit");

    // A bounded remote run ends at the last stable offset: it finishes with what is committed
    // now instead of waiting for the open transaction's outcome.
    let mut bounded =
        eddy_processor::PipelineSpec::from_json(spec("tx-bounded", "tx-out-bounded").as_bytes())?;
    bounded.bounded = true;
    let bounded_state = tempfile::tempdir()?;
    let finished = rt.block_on(async {
        let cluster = eddy_client::Cluster::connect(&broker.bootstrap(), "tx-bounded").await?;
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        tokio::time::timeout(
            Duration::from_secs(30),
            eddy_processor::run(
                bounded.compile()?,
                eddy_processor::Backend::Remote(cluster),
                bounded_state.path().to_path_buf(),
                std::sync::Arc::new(eddy_processor::PipelineStatus::default()),
                stop,
            ),
        )
        .await
        .map_err(|_| anyhow::anyhow!("a bounded run over an open transaction did not finish"))??;
        anyhow::Ok(())
    });
    finished?;
    assert_eq!(ids("tx-out-bounded")?, only_ok, "bounded remote run");

    std::fs::write(&go, b"")?;
    let out = child.wait_with_output()?;
    assert!(
        out.status.success(),
        "feeder: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = BTreeMap::from([
        ("late".to_string(), 50),
        ("ok".to_string(), 100),
        ("plain".to_string(), 10),
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while (ids("tx-out")? != all || ids("tx-out-remote")? != all) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(ids("tx-out")?, all, "in-broker, after the commit");
    assert_eq!(ids("tx-out-remote")?, all, "remote, after the commit");
    let _ = stop_tx.send(true);
    rt.block_on(remote_task)??;
    Ok(())
}
