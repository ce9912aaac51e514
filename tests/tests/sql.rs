//! Streaming SQL on the real binary: `eddy sql` against the broker's admin API, bids fed with
//! `eddy produce`, results read with `eddy consume` and checked against values computed here
//! from the generator (never from Eddy's own output). A SQL pipeline survives a clean
//! restart and SIGKILLs with exact output; the catalog persists; bad SQL gets its message.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use eddy_e2e::{eddy_bin, eddy_cmd, run_ok, run_with_stdin, Broker};

const PARTITIONS: i32 = 2;
const AUCTIONS: u64 = 40;

/// `eddy sql ... --admin <broker>`.
fn sql(broker: &Broker, args: &[&str]) -> Command {
    let mut c = Command::new(eddy_bin());
    c.arg("sql").args(args).arg("--admin").arg(broker.admin());
    c
}

/// Runs a SQL script file through `eddy sql -f`; its stdout.
fn sql_file(broker: &Broker, name: &str, text: &str) -> Result<String> {
    let path = broker
        .data_dir()
        .parent()
        .context("parent")?
        .join(format!("{name}.sql"));
    std::fs::write(&path, text)?;
    let out = run_ok(
        sql(broker, &["-f", path.to_str().context("path")?]),
        Duration::from_secs(60),
        "eddy sql -f",
    )?;
    Ok(String::from_utf8(out.stdout)?)
}

fn produce(broker: &Broker, topic: &str, partition: i32, lines: &str) -> Result<()> {
    let cmd = eddy_cmd(
        broker,
        &["produce", topic, "--partition", &partition.to_string()],
    );
    run_with_stdin(cmd, lines).map(|_| ())
}

fn consume_all(broker: &Broker, topic: &str) -> Result<Vec<serde_json::Value>> {
    let out = run_ok(
        eddy_cmd(broker, &["consume", topic, "--from-beginning", "--exit"]),
        Duration::from_secs(120),
        "eddy consume",
    )?;
    String::from_utf8(out.stdout)?
        .lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("output row {l}")))
        .collect()
}

fn create_topic(broker: &Broker, topic: &str, partitions: i32) -> Result<()> {
    run_ok(
        eddy_cmd(
            broker,
            &[
                "topic",
                "create",
                topic,
                "--partitions",
                &partitions.to_string(),
            ],
        ),
        Duration::from_secs(30),
        "create topic",
    )
    .map(|_| ())
}

/// `yyyy-MM-dd HH:mm:ss.SSS` (UTC) for epoch milliseconds, as Flink's JSON format reads it.
fn sql_timestamp(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1_000 % 60,
        rem % 1_000
    )
}

/// Parses `yyyy-MM-dd HH:mm:ss[.f...]` back to epoch milliseconds.
fn parse_sql_timestamp(s: &str) -> Option<i64> {
    let (date, time) = s.split_once(' ')?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(|x| x.parse::<i64>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next()??);
    let ms: i64 = format!("{frac:0<3}")[..3].parse().ok()?;
    // Days from civil (inverse of the above).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400_000 + h * 3_600_000 + mi * 60_000 + sec * 1_000 + ms)
}

/// Event times start two hours ago, on a whole 10 s boundary.
fn base_ts() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    (now - 2 * 3_600_000) / 10_000 * 10_000
}

/// Bid `i` of partition `p`: (auction, bidder, price, event time).
fn bid(base: i64, p: i32, i: u64) -> (u64, u64, u64, i64) {
    let auction = 1_000 + (i * 7 + p as u64 * 3) % AUCTIONS;
    let bidder = 5_000 + (i * 13 + p as u64) % 97;
    let price = 100 + (i * 31 + p as u64 * 17) % 9_900;
    let ts = base + i as i64 * 5 + i64::from(p);
    (auction, bidder, price, ts)
}

fn bids_between(base: i64, p: i32, from: u64, to: u64) -> String {
    let mut s = String::with_capacity((to - from) as usize * 150);
    for i in from..to {
        let (auction, bidder, price, ts) = bid(base, p, i);
        s.push_str(&format!(
            "{{\"auction\":{auction},\"bidder\":{bidder},\"price\":{price},\"channel\":\"ch{}\",\"url\":\"https://e.x/{i}\",\"date_time\":\"{}\",\"extra\":\"\"}}\n",
            i % 3,
            sql_timestamp(ts)
        ));
    }
    s
}

/// A bid an hour later on each partition moves the watermark past every real window; its
/// own windows never close.
fn end_bid(base: i64) -> String {
    format!(
        "{{\"auction\":999999,\"bidder\":0,\"price\":0,\"channel\":\"end\",\"url\":\"\",\"date_time\":\"{}\",\"extra\":\"\"}}\n",
        sql_timestamp(base + 3_600_000)
    )
}

const DDL: &str = "
CREATE TABLE bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
  date_time TIMESTAMP(3), extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH ('connector' = 'kafka', 'topic' = 'bids', 'format' = 'json');

CREATE TABLE hot_items (auction BIGINT, num BIGINT, window_end TIMESTAMP(3))
  WITH ('connector' = 'kafka', 'topic' = 'hot-items', 'format' = 'json');
";

const HOT_ITEMS: &str = "
SET 'pipeline.name' = 'hot-items';
INSERT INTO hot_items
SELECT auction, COUNT(*) AS num, window_end
FROM TABLE(HOP(TABLE bid, DESCRIPTOR(date_time), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;
";

/// (auction, window_end ms) → bids, for HOP(2 s slide, 10 s size) over the generator.
fn expected_hot(base: i64, n: u64) -> BTreeMap<(u64, i64), u64> {
    let mut m = BTreeMap::new();
    for p in 0..PARTITIONS {
        for i in 0..n {
            let (auction, _, _, ts) = bid(base, p, i);
            let last_start = ts - ts.rem_euclid(2_000);
            let mut start = last_start;
            while start > ts - 10_000 {
                *m.entry((auction, start + 10_000)).or_insert(0) += 1;
                start -= 2_000;
            }
        }
    }
    m
}

fn check_hot(rows: &[serde_json::Value], base: i64, n: u64) -> Result<()> {
    let want = expected_hot(base, n);
    let mut got = BTreeMap::new();
    for r in rows {
        let auction = r["auction"]
            .as_u64()
            .with_context(|| format!("auction in {r}"))?;
        let end = r["window_end"]
            .as_str()
            .and_then(parse_sql_timestamp)
            .with_context(|| format!("window_end in {r}"))?;
        let num = r["num"].as_u64().with_context(|| format!("num in {r}"))?;
        if got.insert((auction, end), num).is_some() {
            bail!("window ({auction}, {end}) was emitted twice");
        }
    }
    if got != want {
        let missing = want.keys().filter(|k| !got.contains_key(*k)).count();
        let extra = got.keys().filter(|k| !want.contains_key(*k)).count();
        let wrong = want
            .iter()
            .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
            .count();
        bail!(
            "{} rows, {} expected: {missing} missing, {extra} unexpected, {wrong} with wrong counts",
            got.len(),
            want.len()
        );
    }
    Ok(())
}

fn wait_for_rows(
    broker: &Broker,
    topic: &str,
    want: usize,
    timeout: Duration,
) -> Result<Vec<serde_json::Value>> {
    let deadline = Instant::now() + timeout;
    loop {
        let rows = consume_all(broker, topic)?;
        if rows.len() >= want || Instant::now() > deadline {
            std::thread::sleep(Duration::from_millis(1_500));
            return consume_all(broker, topic);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn describe(broker: &Broker, name: &str) -> Result<serde_json::Value> {
    let mut c = Command::new(eddy_bin());
    c.args(["pipeline", "describe", name, "--admin"])
        .arg(broker.admin());
    let out = run_ok(c, Duration::from_secs(30), "eddy pipeline describe")?;
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The issue's example: a HOP window count per auction, created with `eddy sql -f`, running
/// in the broker through a clean restart and two SIGKILLs; every (auction, window) is
/// emitted exactly once with the count computed from the generator.
#[test]
fn sql_hop_count_survives_restart_and_kill9_with_exact_output() -> Result<()> {
    let mut broker = Broker::start()?;
    create_topic(&broker, "bids", PARTITIONS)?;
    create_topic(&broker, "hot-items", 1)?;
    let out = sql_file(&broker, "hot", &format!("{DDL}{HOT_ITEMS}"))?;
    assert!(out.contains("Pipeline 'hot-items' started"), "{out}");
    let d = describe(&broker, "hot-items")?;
    assert_eq!(d["kind"], "sql", "{d}");
    assert!(
        d["definition"].as_str().unwrap_or("").contains("HOP"),
        "{d}"
    );

    let base = base_ts();
    let n: u64 = 30_000;
    let parts = 3;
    for part in 0..parts {
        let (from, to) = (n * part / parts, n * (part + 1) / parts);
        for p in 0..PARTITIONS {
            produce(&broker, "bids", p, &bids_between(base, p, from, to))?;
        }
        std::thread::sleep(Duration::from_millis(700));
        if part == 0 {
            broker.stop()?;
        } else {
            broker.kill9();
        }
        broker.restart()?;
    }
    for p in 0..PARTITIONS {
        produce(&broker, "bids", p, &end_bid(base))?;
    }
    let want = expected_hot(base, n).len();
    let rows = wait_for_rows(&broker, "hot-items", want, Duration::from_secs(120))?;
    eprintln!("{} output rows after a restart and two kills", rows.len());
    check_hot(&rows, base, n).with_context(|| broker.log_tail(30))?;
    let d = describe(&broker, "hot-items")?;
    assert_eq!(d["state"], "running", "{d}");
    Ok(())
}

/// Tables persist in the broker's catalog across sessions and restarts; SHOW TABLES and
/// DESCRIBE show them; DROP TABLE removes one.
#[test]
fn sql_catalog_persists_and_describes_tables() -> Result<()> {
    let mut broker = Broker::start()?;
    let out = sql_file(&broker, "ddl", DDL)?;
    assert!(out.contains("Table 'bid' created"), "{out}");
    broker.stop()?;
    broker.restart()?;
    let out = run_with_stdin(
        sql(&broker, &[]),
        "SHOW TABLES;\nDESCRIBE bid;\nDROP TABLE hot_items;\nSHOW TABLES;\n",
    )?;
    let text = String::from_utf8(out.stdout)?;
    let first = text.find("hot_items").context("hot_items listed")?;
    assert!(text[..first].contains("bid"), "{text}");
    assert!(text.contains("date_time"), "{text}");
    assert!(text.contains("TIMESTAMP(3)"), "{text}");
    let after_drop = text.rfind("table name").context("second SHOW TABLES")?;
    assert!(!text[after_drop..].contains("hot_items"), "{text}");
    assert!(text[after_drop..].contains("bid"), "{text}");
    Ok(())
}

/// Bad SQL is refused with a message naming the problem and where it is; nothing is
/// created; the broker keeps serving.
#[test]
fn sql_errors_name_the_construct_and_nothing_starts() -> Result<()> {
    let broker = Broker::start()?;
    sql_file(&broker, "ddl", DDL)?;
    let cases: [(&str, &[&str]); 3] = [
        (
            "INSERT INTO hot_items SELECT auction, COUNT(*) AS num, nope FROM bid GROUP BY auction, nope;",
            &["nope"],
        ),
        (
            "INSERT INTO hot_items SELECT auction, SUM(url) AS num, date_time FROM bid GROUP BY auction, date_time;",
            &["SUM"],
        ),
        (
            "INSERT INTO hot_items SELECT * FROM bid MATCH_RECOGNIZE (PARTITION BY auction ORDER BY date_time MEASURES A.price AS p PATTERN (A) DEFINE A AS A.price > 0);",
            &["MATCH_RECOGNIZE"],
        ),
    ];
    for (stmt, needles) in cases {
        let path: PathBuf = broker
            .data_dir()
            .parent()
            .context("parent")?
            .join("bad.sql");
        std::fs::write(&path, stmt)?;
        let out = sql(&broker, &["-f", path.to_str().context("path")?]).output()?;
        assert!(!out.status.success(), "{stmt} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        for n in needles {
            assert!(
                err.contains(n),
                "error for {stmt:?} does not name {n}: {err}"
            );
        }
        assert!(
            err.contains("line"),
            "error for {stmt:?} has no position: {err}"
        );
    }
    let mut c = Command::new(eddy_bin());
    c.args(["pipeline", "list", "--admin"]).arg(broker.admin());
    let out = run_ok(c, Duration::from_secs(30), "list")?;
    assert_eq!(String::from_utf8(out.stdout)?.trim(), "no pipelines");
    Ok(())
}

/// A script whose INSERT would replace a running pipeline of the same name is refused with
/// 409 and leaves nothing behind: not the tables it creates before the INSERT either.
#[test]
fn sql_script_with_a_conflicting_pipeline_name_changes_nothing() -> Result<()> {
    let broker = Broker::start()?;
    sql_file(&broker, "hot", &format!("{DDL}{HOT_ITEMS}"))?;
    let script = format!(
        "CREATE TABLE extra (a BIGINT) WITH ('connector' = 'kafka', 'topic' = 'extra', 'format' = 'json');
{}",
        HOT_ITEMS.replace("INTERVAL '2' SECOND", "INTERVAL '5' SECOND")
    );
    let path = broker
        .data_dir()
        .parent()
        .context("parent")?
        .join("conflict.sql");
    std::fs::write(&path, &script)?;
    let out = sql(&broker, &["-f", path.to_str().context("path")?]).output()?;
    assert!(!out.status.success(), "a second 'hot-items' was accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("'hot-items' already exists"),
        "the error names the pipeline: {err}"
    );
    let out = run_with_stdin(sql(&broker, &[]), "SHOW TABLES;\n")?;
    let tables = String::from_utf8(out.stdout)?;
    assert!(tables.contains("hot_items"), "{tables}");
    assert!(
        !tables.contains("extra"),
        "the refused script's table was kept: {tables}"
    );
    // The same script under a free name goes through, table and all.
    std::fs::write(&path, script.replace("'hot-items'", "'hot-items-5s'"))?;
    let out = run_ok(
        sql(&broker, &["-f", path.to_str().context("path")?]),
        Duration::from_secs(60),
        "eddy sql -f",
    )?;
    let text = String::from_utf8(out.stdout)?;
    assert!(text.contains("hot-items-5s"), "{text}");
    let out = run_with_stdin(sql(&broker, &[]), "SHOW TABLES;\n")?;
    assert!(String::from_utf8(out.stdout)?.contains("extra"));
    Ok(())
}

#[test]
fn timestamp_helpers_round_trip() {
    for ms in [0, 1_000, 86_399_999, 1_700_000_000_123, 951_782_400_000] {
        assert_eq!(parse_sql_timestamp(&sql_timestamp(ms)), Some(ms));
    }
    assert_eq!(sql_timestamp(0), "1970-01-01 00:00:00.000");
    assert_eq!(sql_timestamp(951_782_400_000), "2000-02-29 00:00:00.000");
    assert_eq!(
        parse_sql_timestamp("2000-02-29 00:00:01"),
        Some(951_782_401_000)
    );
}

/// `eddy pipeline run -f FILE.sql --bootstrap-server`: the same SQL as a standalone process
/// against a cluster over the Kafka protocol (the scale-out path) gives the same result.
#[test]
fn sql_pipeline_runs_standalone_against_a_cluster() -> Result<()> {
    let broker = Broker::start()?;
    create_topic(&broker, "bids", PARTITIONS)?;
    create_topic(&broker, "hot-items", 1)?;
    let base = base_ts();
    let n: u64 = 5_000;
    for p in 0..PARTITIONS {
        produce(&broker, "bids", p, &bids_between(base, p, 0, n))?;
        produce(&broker, "bids", p, &end_bid(base))?;
    }
    let dir = broker.data_dir().parent().context("parent")?.to_path_buf();
    let file = dir.join("standalone.sql");
    std::fs::write(&file, format!("{DDL}{HOT_ITEMS}"))?;
    let mut child = Command::new(eddy_bin())
        .args(["pipeline", "run", "-f"])
        .arg(&file)
        .arg("--bootstrap-server")
        .arg(broker.bootstrap())
        .arg("--state-dir")
        .arg(dir.join("standalone-state"))
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let want = expected_hot(base, n).len();
    let rows = wait_for_rows(&broker, "hot-items", want, Duration::from_secs(90));
    // Ctrl-C: a final checkpoint and a clean exit.
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut err)?;
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "eddy pipeline run: {err}"
    );
    assert!(err.contains("pipeline 'hot-items' running"), "{err}");
    check_hot(&rows?, base, n)?;
    // Nothing runs in the broker: the pipeline was this process's.
    let mut c = Command::new(eddy_bin());
    c.args(["pipeline", "list", "--admin"]).arg(broker.admin());
    let out = run_ok(c, Duration::from_secs(30), "list")?;
    assert_eq!(String::from_utf8(out.stdout)?.trim(), "no pipelines");
    Ok(())
}

/// `eddy bench sql` runs every query it offers to completion over every generated bid (a
/// small run: the figures belong in BENCHMARKS.md, not in a test).
#[test]
fn bench_sql_runs_each_query_over_every_event() -> Result<()> {
    let out = run_ok(
        {
            let mut c = Command::new(eddy_bin());
            c.args(["bench", "sql", "--events", "3000", "--json"]);
            c
        },
        Duration::from_secs(120),
        "eddy bench sql",
    )?;
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
    let names: Vec<&str> = rows.iter().filter_map(|r| r["query"].as_str()).collect();
    assert_eq!(names, ["q0", "q1", "q2", "q5", "q7", "q11", "hop"]);
    for r in &rows {
        assert_eq!(r["events"], 3000, "{r}");
        assert!(r["events_per_s"].as_f64().is_some_and(|v| v > 0.0), "{r}");
    }
    Ok(())
}

/// `eddy bench sql --queries q4` (not in the default set) loads auctions besides the bids and
/// runs Nexmark q4 over all of both.
#[test]
fn bench_sql_runs_q4_over_bids_and_auctions() -> Result<()> {
    let out = run_ok(
        {
            let mut c = Command::new(eddy_bin());
            c.args([
                "bench",
                "sql",
                "--events",
                "3000",
                "--queries",
                "q4",
                "--json",
            ]);
            c
        },
        Duration::from_secs(120),
        "eddy bench sql --queries q4",
    )?;
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
    let names: Vec<&str> = rows.iter().filter_map(|r| r["query"].as_str()).collect();
    assert_eq!(names, ["q4"]);
    assert_eq!(rows[0]["events"], 3000, "{}", rows[0]);
    assert!(
        rows[0]["events_per_s"].as_f64().is_some_and(|v| v > 0.0),
        "{}",
        rows[0]
    );
    Ok(())
}

// ---- Bare SELECT: `POST /v1/query` and the `eddy sql` prompt ----

const CLICKS_DDL: &str = "
CREATE TABLE clicks (user_id BIGINT, url VARCHAR, ts TIMESTAMP(3))
  WITH ('connector' = 'kafka', 'topic' = 'clicks', 'format' = 'json');
CREATE TABLE new_clicks (user_id BIGINT, url VARCHAR, ts TIMESTAMP(3))
  WITH ('connector' = 'kafka', 'topic' = 'clicks', 'format' = 'json',
        'scan.startup.mode' = 'latest-offset');
CREATE TABLE sink_t (user_id BIGINT)
  WITH ('connector' = 'kafka', 'topic' = 'sink', 'format' = 'json');
";

fn click(user: u64, i: u64) -> String {
    format!(
        "{{\"user_id\":{user},\"url\":\"/p/{i}\",\"ts\":\"{}\"}}\n",
        sql_timestamp(1_700_000_000_000 + i as i64 * 1_000)
    )
}

/// A streaming answer of `POST /v1/query`: its HTTP status and a line reader.
type Lines = std::io::Lines<std::io::BufReader<ureq::BodyReader<'static>>>;

fn post_query(broker: &Broker, sql: &str) -> Result<(u16, Lines)> {
    use std::io::BufRead;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let body = serde_json::to_vec(&serde_json::json!({ "sql": sql }))?;
    let resp = agent
        .post(format!("http://{}/v1/query", broker.admin()))
        .header("content-type", "application/json")
        .send(&body[..])?;
    let status = resp.status().as_u16();
    Ok((
        status,
        std::io::BufReader::new(resp.into_body().into_reader()).lines(),
    ))
}

fn next_json(lines: &mut Lines) -> Result<serde_json::Value> {
    let line = lines.next().context("the answer ended early")??;
    serde_json::from_str(&line).with_context(|| format!("answer line {line}"))
}

fn admin_get(broker: &Broker, path: &str) -> Result<serde_json::Value> {
    let mut resp = ureq::get(format!("http://{}{path}", broker.admin())).call()?;
    Ok(resp.body_mut().read_json()?)
}

fn running_queries(broker: &Broker) -> Result<usize> {
    Ok(admin_get(broker, "/v1/queries")?["queries"]
        .as_array()
        .context("queries")?
        .len())
}

/// Waits until no query runs in the broker; false after `timeout`.
fn queries_gone(broker: &Broker, timeout: Duration) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if running_queries(broker)? == 0 {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(false)
}

/// Reads `n` rows; each is (op, row).
fn rows(lines: &mut Lines, n: usize) -> Result<Vec<(String, serde_json::Value)>> {
    (0..n)
        .map(|_| {
            let v = next_json(lines)?;
            let op = v["op"]
                .as_str()
                .with_context(|| format!("a row, got {v}"))?;
            Ok((op.to_string(), v["row"].clone()))
        })
        .collect()
}

/// A bare SELECT runs in the broker and streams rows: those the topic held and those
/// produced while it runs; it is not a pipeline and writes nothing; closing the connection
/// stops it; LIMIT ends it; a table with `scan.startup.mode` = `latest-offset` starts at the
/// end; an updating query's changes carry +I/-U/+U; bad SQL gets line and column; a
/// broker shutdown ends it.
#[test]
fn sql_select_streams_rows_and_stops_with_its_client() -> Result<()> {
    let mut broker = Broker::start()?;
    create_topic(&broker, "clicks", 2)?;
    sql_file(&broker, "ddl", CLICKS_DDL)?;
    produce(&broker, "clicks", 0, &(click(1, 0) + &click(2, 1)))?;
    produce(&broker, "clicks", 1, &click(1, 2))?;

    let (status, mut lines) = post_query(
        &broker,
        "SELECT url, user_id * 10 AS u10 FROM clicks WHERE user_id > 0",
    )?;
    assert_eq!(status, 200);
    let header = next_json(&mut lines)?;
    assert_eq!(
        header["columns"],
        serde_json::json!([{"name": "url", "type": "STRING"}, {"name": "u10", "type": "BIGINT"}]),
        "{header}"
    );
    assert_eq!(header["updating"], false, "{header}");
    let mut got: Vec<String> = rows(&mut lines, 3)?
        .into_iter()
        .map(|(op, r)| format!("{op} {r}"))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            r#"+I ["/p/0",10]"#,
            r#"+I ["/p/1",20]"#,
            r#"+I ["/p/2",10]"#
        ]
    );
    // Records produced after the query started show up too.
    produce(&broker, "clicks", 1, &click(7, 3))?;
    let late = rows(&mut lines, 1)?;
    assert_eq!(late[0].1, serde_json::json!(["/p/3", 70]));
    // Ephemeral: listed as a query, not as a pipeline, nothing in the data directory.
    assert_eq!(running_queries(&broker)?, 1);
    let pipelines = admin_get(&broker, "/v1/pipelines")?;
    assert_eq!(pipelines["pipelines"], serde_json::json!([]), "{pipelines}");
    assert!(!broker.data_dir().join("pipelines").exists());
    // Disconnecting stops it.
    drop(lines);
    assert!(
        queries_gone(&broker, Duration::from_secs(10))?,
        "the query still runs after its client left: {}",
        admin_get(&broker, "/v1/queries")?
    );

    // LIMIT ends the query by itself; the answer ends.
    let (_, mut lines) = post_query(&broker, "SELECT user_id FROM clicks LIMIT 2")?;
    next_json(&mut lines)?;
    assert_eq!(rows(&mut lines, 2)?.len(), 2);
    assert_eq!(next_json(&mut lines)?, serde_json::json!({"end": "limit"}));
    assert!(lines.next().is_none(), "more after the end");
    assert!(queries_gone(&broker, Duration::from_secs(10))?);

    // latest-offset: only what is produced after the start.
    let (_, mut lines) = post_query(&broker, "SELECT url FROM new_clicks")?;
    next_json(&mut lines)?;
    // Its sources have taken their start positions once it reports running.
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin_get(&broker, "/v1/queries")?["queries"][0]["state"] != "running" {
        assert!(Instant::now() < deadline, "the query did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    produce(&broker, "clicks", 0, &click(3, 4))?;
    assert_eq!(rows(&mut lines, 1)?[0].1, serde_json::json!(["/p/4"]));
    drop(lines);

    // An updating query: a change replaces the row it updates.
    let (_, mut lines) = post_query(
        &broker,
        "SELECT user_id, COUNT(*) AS n FROM clicks GROUP BY user_id",
    )?;
    assert_eq!(next_json(&mut lines)?["updating"], true);
    let mut table: BTreeMap<u64, u64> = BTreeMap::new();
    let want: BTreeMap<u64, u64> = [(1, 2), (2, 1), (3, 1), (7, 1)].into();
    while table != want {
        let (op, row) = rows(&mut lines, 1)?.remove(0);
        let (user, n) = (
            row[0].as_u64().context("user")?,
            row[1].as_u64().context("n")?,
        );
        match op.as_str() {
            "+I" => assert!(table.insert(user, n).is_none(), "+I of a present key"),
            "-U" => assert_eq!(table.remove(&user), Some(n), "-U of another row"),
            "+U" => assert!(table.insert(user, n).is_none(), "+U without -U"),
            other => bail!("unexpected op {other}"),
        }
    }
    drop(lines);

    // Errors: 400 with line and column, nothing started.
    let (status, mut lines) = post_query(&broker, "SELECT user_id,\n  nope FROM clicks")?;
    assert_eq!(status, 400);
    let err = next_json(&mut lines)?;
    let msg = err["error"].as_str().context("error")?;
    assert!(
        msg.starts_with("line 2, column 3:") && msg.contains("nope"),
        "{msg}"
    );
    assert!(queries_gone(&broker, Duration::from_secs(10))?);

    // A broker shutting down ends a running query's answer (it does not wait for the client).
    let (_, mut lines) = post_query(&broker, "SELECT url FROM clicks")?;
    next_json(&mut lines)?;
    assert_eq!(rows(&mut lines, 5)?.len(), 5);
    let stopping = Instant::now();
    broker.stop()?;
    assert_eq!(
        next_json(&mut lines)?,
        serde_json::json!({"end": "stopped"})
    );
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopping.elapsed()
    );
    Ok(())
}

/// `eddy sql` through a pipe: a SELECT prints a table of rows as they arrive; SIGINT stops
/// it (also in the broker) and the prompt runs the next statements; errors carry line and
/// column. In a file, a trailing SELECT streams until its LIMIT.
#[test]
fn eddy_sql_prompt_streams_a_select_until_ctrl_c() -> Result<()> {
    use std::io::{BufRead, Write};
    let broker = Broker::start()?;
    create_topic(&broker, "clicks", 1)?;
    sql_file(&broker, "ddl", CLICKS_DDL)?;
    produce(&broker, "clicks", 0, &(click(41, 0) + &click(42, 1)))?;

    let mut child = sql(&broker, &[])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let stdout = child.stdout.take().context("stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let wait_line = |pred: &dyn Fn(&str) -> bool, what: &str| -> Result<Vec<String>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
                let hit = pred(&l);
                seen.push(l);
                if hit {
                    return Ok(seen);
                }
            }
        }
        bail!("no {what} within 30 s; output so far:\n{}", seen.join("\n"))
    };
    writeln!(stdin, "SELECT user_id, url\n  FROM clicks;")?;
    stdin.flush()?;
    let shown = wait_line(&|l| l.contains("/p/1"), "second row")?;
    let header = shown
        .iter()
        .find(|l| l.contains("user_id"))
        .context("header")?;
    assert!(header.contains("op") && header.contains("url"), "{header}");
    assert!(
        shown
            .iter()
            .any(|l| l.contains("+I") && l.contains("41") && l.contains("/p/0")),
        "{shown:?}"
    );
    // Still running and still streaming.
    produce(&broker, "clicks", 0, &click(43, 2))?;
    wait_line(&|l| l.contains("/p/2"), "row produced during the query")?;
    assert_eq!(running_queries(&broker)?, 1);

    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()?;
    assert!(st.success());
    wait_line(&|l| l.contains("Query stopped"), "stop message")?;
    assert!(queries_gone(&broker, Duration::from_secs(10))?);

    writeln!(
        stdin,
        "SHOW TABLES;\nSELECT url,\n   nope FROM clicks;\nSET 'pipeline.name' = 'p';"
    )?;
    // A SET kept by the prompt does not shift the place of a later error.
    writeln!(stdin, "INSERT INTO sink_t SELECT nope FROM clicks;\nQUIT;")?;
    wait_line(
        &|l| l.trim() == "new_clicks",
        "SHOW TABLES after the interrupt",
    )?;
    // QUIT ends the prompt (its input is still open).
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("eddy sql did not end at QUIT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().context("stderr")?, &mut err)?;
    assert!(err.contains("line 2, column 4"), "{err}");
    assert!(err.contains("line 1, column 27"), "{err}");
    assert!(
        !status.success(),
        "a failed statement must fail a piped session"
    );

    // -f: the statements before run, then the SELECT streams until its LIMIT.
    let out = sql_file(
        &broker,
        "select",
        "SET 'pipeline.name' = 'x';\nSELECT url FROM clicks\nWHERE user_id > 41 LIMIT 2;\n",
    )?;
    assert!(out.contains("Option 'pipeline.name' set"), "{out}");
    assert!(out.contains("/p/1") && out.contains("/p/2"), "{out}");
    assert!(out.contains("Received a total of 2 row(s)."), "{out}");
    // Its errors point into the file (here a last statement without its ';').
    let path = broker
        .data_dir()
        .parent()
        .context("parent")?
        .join("bad_select.sql");
    std::fs::write(&path, "SET 'a' = 'b';\n\nSELECT url,\n  nope FROM clicks\n")?;
    let out = sql(&broker, &["-f", path.to_str().context("path")?]).output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("line 4, column 3") && err.contains("nope"),
        "{err}"
    );
    Ok(())
}
