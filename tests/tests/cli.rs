//! The `eddy` client CLI: round trips with kcat both ways, `eddy bench` JSON, clear errors.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};
use eddy_e2e::{eddy_bin, eddy_cmd, require_clients, run, run_ok, run_with_stdin, Broker};

fn eddy(broker: &Broker, args: &[&str]) -> Command {
    eddy_cmd(broker, args)
}

fn with_stdin(cmd: Command, input: &str) -> Result<std::process::Output> {
    run_with_stdin(cmd, input)
}

#[test]
fn topic_admin_and_kcat_round_trips() -> Result<()> {
    require_clients!();
    let broker = Broker::start()?;
    run_ok(
        eddy(
            &broker,
            &[
                "topic",
                "create",
                "cli-t",
                "-p",
                "3",
                "-c",
                "retention.ms=60000",
            ],
        ),
        Duration::from_secs(30),
        "topic create",
    )?;
    let list = run_ok(
        eddy(&broker, &["topic", "list"]),
        Duration::from_secs(30),
        "topic list",
    )?;
    if !String::from_utf8_lossy(&list.stdout).contains("cli-t\t3 partition(s)") {
        bail!("topic list: {}", String::from_utf8_lossy(&list.stdout));
    }
    // eddy produce -> kcat consume, with keys and headers.
    let input: String = (0..500).map(|i| format!("k{i}=value {i}\n")).collect();
    with_stdin(
        eddy(
            &broker,
            &[
                "produce",
                "cli-t",
                "--key-separator",
                "=",
                "--header",
                "src=cli",
                "--compression",
                "zstd",
            ],
        ),
        &input,
    )?;
    let mut kc = Command::new("kcat");
    kc.args([
        "-b",
        &broker.bootstrap(),
        "-t",
        "cli-t",
        "-C",
        "-e",
        "-q",
        "-f",
        "%k=%s|%h\n",
    ]);
    let got = run_ok(kc, Duration::from_secs(30), "kcat consume")?;
    let mut got: Vec<String> = String::from_utf8(got.stdout)?
        .lines()
        .map(String::from)
        .collect();
    let mut want: Vec<String> = input.lines().map(|l| format!("{l}|src=cli")).collect();
    got.sort();
    want.sort();
    if got != want {
        bail!(
            "kcat read {} records back, first {:?}",
            got.len(),
            got.first()
        );
    }
    // kcat produce -> eddy consume (json), one partition so order is checkable.
    let mut kp = Command::new("kcat");
    kp.args([
        "-b",
        &broker.bootstrap(),
        "-t",
        "cli-k",
        "-P",
        "-K",
        ":",
        "-H",
        "a=1",
    ]);
    let input2: String = (0..300).map(|i| format!("key{i}:v{i}\n")).collect();
    with_stdin(kp, &input2)?;
    let out = run_ok(
        eddy(
            &broker,
            &[
                "consume",
                "cli-k",
                "--from-beginning",
                "-e",
                "--format",
                "json",
            ],
        ),
        Duration::from_secs(30),
        "eddy consume",
    )?;
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    if lines.len() != 300 {
        bail!("eddy consume printed {} records", lines.len());
    }
    for (i, j) in lines.iter().enumerate() {
        if j["key"] != format!("key{i}")
            || j["value"] != format!("v{i}")
            || j["offset"] != i as i64
            || j["headers"]["a"] != "1"
        {
            bail!("record {i}: {j}");
        }
    }
    let desc = run_ok(
        eddy(&broker, &["topic", "describe", "cli-k"]),
        Duration::from_secs(30),
        "describe",
    )?;
    let d = String::from_utf8(desc.stdout)?;
    if !d.contains("0\t0\t0\t300") || !d.contains("retention.ms=") {
        bail!("describe output: {d}");
    }
    run_ok(
        eddy(&broker, &["topic", "delete", "cli-t"]),
        Duration::from_secs(30),
        "delete",
    )?;
    Ok(())
}

#[test]
fn bench_json_is_sane() -> Result<()> {
    let broker = Broker::start()?;
    let out = run_ok(
        eddy(
            &broker,
            &[
                "bench",
                "produce",
                "--topic",
                "b",
                "--messages",
                "20000",
                "--size",
                "200",
                "--acks",
                "all",
                "--partitions",
                "2",
                "--json",
            ],
        ),
        Duration::from_secs(120),
        "bench produce",
    )?;
    let j: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let num = |k: &str| j[k].as_f64().unwrap_or(-1.0);
    if j["messages"] != 20000
        || num("msgs_per_s") <= 0.0
        || j["errors"] != 0
        || j["bytes"] != 4_000_000
    {
        bail!("bench produce: {j}");
    }
    let lat = &j["latency_ms"];
    let (p50, p99, max) = (
        lat["p50"].as_f64().unwrap_or(-1.0),
        lat["p99"].as_f64().unwrap_or(-1.0),
        lat["max"].as_f64().unwrap_or(-1.0),
    );
    if !(p50 > 0.0 && p50 <= p99 && p99 <= max) {
        bail!("latency percentiles not ordered: {lat}");
    }
    let out = run_ok(
        eddy(
            &broker,
            &[
                "bench",
                "consume",
                "--topic",
                "b",
                "--messages",
                "20000",
                "--json",
            ],
        ),
        Duration::from_secs(120),
        "bench consume",
    )?;
    let j: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    if j["messages"] != 20000 || j["mb_per_s"].as_f64().unwrap_or(0.0) <= 0.0 {
        bail!("bench consume: {j}");
    }
    let out = run_ok(
        eddy(
            &broker,
            &[
                "bench",
                "e2e",
                "--topic",
                "e",
                "--messages",
                "2000",
                "--rate",
                "2000",
                "--size",
                "64",
                "--json",
            ],
        ),
        Duration::from_secs(120),
        "bench e2e",
    )?;
    let j: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    if j["messages"] != 2000 || j["latency_ms"]["p50"].as_f64().unwrap_or(-1.0) <= 0.0 {
        bail!("bench e2e: {j}");
    }
    // A workload file supplies the settings; a flag overrides one of them.
    let dir = tempfile::tempdir()?;
    let wl = dir.path().join("w.toml");
    std::fs::write(&wl, "topic = \"wl\"\nmessages = 3000\nsize = 300\nrate = 3000\npartitions = 2\nacks = \"all\"\n")?;
    let out = run_ok(
        eddy(
            &broker,
            &[
                "bench",
                "produce",
                "--workload",
                wl.to_str().unwrap_or_default(),
                "--messages",
                "1500",
                "--json",
            ],
        ),
        Duration::from_secs(120),
        "bench produce --workload",
    )?;
    let j: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    if j["messages"] != 1500 || j["bytes"] != 450_000 {
        bail!("workload run: {j}");
    }
    std::fs::write(&wl, "bogus = 1\n")?;
    let mut c = eddy(
        &broker,
        &[
            "bench",
            "produce",
            "--workload",
            wl.to_str().unwrap_or_default(),
        ],
    );
    let out = run(&mut c, Duration::from_secs(30))?;
    if out.status.success() || !String::from_utf8_lossy(&out.stderr).contains("bogus") {
        bail!("a bad workload file must fail naming the key");
    }
    Ok(())
}

#[test]
fn errors_are_one_clear_line() -> Result<()> {
    let broker = Broker::start()?;
    // Nothing listens on port 1.
    let mut c = Command::new(eddy_bin());
    c.args(["-b", "127.0.0.1:1", "topic", "list"]);
    let out = run(&mut c, Duration::from_secs(30))?;
    let err = String::from_utf8(out.stderr)?;
    if out.status.success()
        || err.lines().count() != 1
        || !err.contains("cannot reach a broker at 127.0.0.1:1")
    {
        bail!(
            "unreachable broker: status {:?}, stderr {err:?}",
            out.status.code()
        );
    }
    let mut c = eddy(&broker, &["consume", "no-such-topic", "-e"]);
    let out = run(&mut c, Duration::from_secs(30))?;
    let err = String::from_utf8(out.stderr)?;
    if out.status.success()
        || err.lines().count() != 1
        || !err.contains("no-such-topic")
        || !err.contains("does not exist")
    {
        bail!(
            "unknown topic: status {:?}, stderr {err:?}",
            out.status.code()
        );
    }
    Ok(())
}

#[test]
fn group_list_describe_and_reset() -> Result<()> {
    require_clients!();
    let broker = Broker::start()?;
    // Commits offsets 5, 7, 9 on the three partitions of durable-offsets (20 records each).
    eddy_e2e::python_script(
        &broker,
        "group_offsets.py",
        &["commit"],
        Duration::from_secs(120),
    )?;
    let list = run_ok(
        eddy(&broker, &["group", "list"]),
        Duration::from_secs(30),
        "group list",
    )?;
    if !String::from_utf8_lossy(&list.stdout).contains("durable-group\tEmpty") {
        bail!("group list: {}", String::from_utf8_lossy(&list.stdout));
    }
    let desc = run_ok(
        eddy(&broker, &["group", "describe", "durable-group"]),
        Duration::from_secs(30),
        "group describe",
    )?;
    let d = String::from_utf8(desc.stdout)?;
    for (p, committed) in [(0, 5), (1, 7), (2, 9)] {
        let row = format!(
            "durable-offsets\t{p}\t{committed}\t20\t{}\t-",
            20 - committed
        );
        if !d.contains(&row) {
            bail!("describe lacks {row:?}:\n{d}");
        }
    }
    run_ok(
        eddy(
            &broker,
            &[
                "group",
                "reset",
                "durable-group",
                "--topic",
                "durable-offsets",
                "--to-latest",
            ],
        ),
        Duration::from_secs(30),
        "group reset",
    )?;
    let desc = run_ok(
        eddy(&broker, &["group", "describe", "durable-group"]),
        Duration::from_secs(30),
        "group describe",
    )?;
    let d = String::from_utf8(desc.stdout)?;
    for p in 0..3 {
        let row = format!("durable-offsets\t{p}\t20\t20\t0\t-");
        if !d.contains(&row) {
            bail!("after reset, describe lacks {row:?}:\n{d}");
        }
    }
    let mut c = eddy(&broker, &["group", "describe", "no-such-group"]);
    let out = run(&mut c, Duration::from_secs(30))?;
    if out.status.success() || !String::from_utf8_lossy(&out.stderr).contains("does not exist") {
        bail!("describing an unknown group should fail clearly");
    }
    Ok(())
}

#[test]
fn consume_with_group_resumes_after_the_last_printed_record() -> Result<()> {
    let broker = Broker::start()?;
    run_ok(
        eddy(&broker, &["topic", "create", "gc", "-p", "3"]),
        Duration::from_secs(30),
        "create",
    )?;
    let input: String = (0..90).map(|i| format!("r{i}\n")).collect();
    with_stdin(eddy(&broker, &["produce", "gc"]), &input)?;
    let first = run_ok(
        eddy(
            &broker,
            &[
                "consume",
                "gc",
                "--group",
                "g1",
                "--from-beginning",
                "-n",
                "50",
            ],
        ),
        Duration::from_secs(60),
        "consume -n 50",
    )?;
    let second = run_ok(
        eddy(
            &broker,
            &["consume", "gc", "--group", "g1", "--from-beginning", "-e"],
        ),
        Duration::from_secs(60),
        "consume -e",
    )?;
    let a: Vec<String> = String::from_utf8(first.stdout)?
        .lines()
        .map(String::from)
        .collect();
    let b: Vec<String> = String::from_utf8(second.stdout)?
        .lines()
        .map(String::from)
        .collect();
    if a.len() != 50 || a.len() + b.len() != 90 {
        bail!(
            "first run printed {}, second {}; expected 50 + 40",
            a.len(),
            b.len()
        );
    }
    let mut all: Vec<String> = a.into_iter().chain(b).collect();
    all.sort();
    all.dedup();
    if all.len() != 90 {
        bail!(
            "records repeated or lost across the two group runs: {} distinct",
            all.len()
        );
    }
    Ok(())
}
