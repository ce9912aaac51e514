//! Restart, crash and corruption: what was acknowledged survives, byte for byte.

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use eddy_e2e::{client_script, python, python_script, require_clients, Broker};

fn dump(broker: &Broker, topic: &str) -> Result<String> {
    let out = python_script(broker, "dump_topic.py", &[topic], Duration::from_secs(120))?;
    Ok(String::from_utf8(out.stdout)?)
}

#[test]
fn restart_keeps_offsets_and_timestamps() -> Result<()> {
    require_clients!();
    let mut broker = Broker::start()?;
    python_script(
        &broker,
        "produce_n.py",
        &["restart-topic", "5000", "3"],
        Duration::from_secs(120),
    )?;
    let before = dump(&broker, "restart-topic")?;
    if before.lines().count() != 5000 {
        bail!(
            "expected 5000 records before restart, got {}",
            before.lines().count()
        );
    }
    broker.stop()?; // asserts exit code 0
    broker.restart()?;
    let after = dump(&broker, "restart-topic")?;
    if before != after {
        bail!("records differ after a clean restart");
    }
    Ok(())
}

#[test]
fn kill9_keeps_every_acknowledged_record_once_in_order() -> Result<()> {
    require_clients!();
    let mut broker = Broker::start_with(&["--set", "num.partitions=1"])?;
    let tmp = tempfile::tempdir()?;
    let acked = tmp.path().join("acked.txt");
    let mut producer = Command::new(python()?)
        .arg(client_script("python/crash_producer.py"))
        .arg(broker.bootstrap())
        .arg("crash-topic")
        .arg(&acked)
        .spawn()
        .context("start the producer")?;
    std::thread::sleep(Duration::from_secs(3));
    broker.kill9();
    std::thread::sleep(Duration::from_millis(500));
    let _ = producer.kill();
    let _ = producer.wait();
    let acked_text = std::fs::read_to_string(&acked)?;
    let acked: Vec<(String, i64)> = acked_text
        .lines()
        .filter_map(|l| {
            let (v, o) = l.split_once(' ')?;
            Some((v.to_string(), o.parse().ok()?))
        })
        .collect();
    if acked.len() < 100 {
        bail!(
            "only {} records were acknowledged before the crash; the test needs more",
            acked.len()
        );
    }
    broker.restart()?;
    let text = dump(&broker, "crash-topic")?;
    let mut by_offset = std::collections::BTreeMap::new();
    let mut seen = std::collections::HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (off, value) = (f[1].parse::<i64>()?, f[4].to_string());
        *seen.entry(value.clone()).or_insert(0) += 1;
        by_offset.insert(off, value);
    }
    for (value, offset) in &acked {
        match by_offset.get(offset) {
            Some(v) if v == value => {}
            other => {
                bail!("acknowledged {value} at offset {offset}, found {other:?} after the crash")
            }
        }
        if seen.get(value) != Some(&1) {
            bail!("acknowledged {value} appears {:?} times", seen.get(value));
        }
    }
    // Offsets are contiguous and values in send order.
    let values: Vec<u64> = by_offset
        .values()
        .filter_map(|v| v[1..].parse().ok())
        .collect();
    if values.windows(2).any(|w| w[0] >= w[1]) {
        bail!("records out of order after the crash");
    }
    eprintln!(
        "{} acknowledged records all present after kill -9 ({} in the log)",
        acked.len(),
        by_offset.len()
    );
    Ok(())
}

/// Finds the active (newest) `.log` segment of `topic`'s partition 0 by walking the data
/// directory, so the test does not depend on how deep storage nests partition directories.
fn active_segment(broker: &Broker, topic: &str) -> Result<std::path::PathBuf> {
    let part_dir = format!("{topic}-0");
    let mut logs = Vec::new();
    let mut dirs = vec![broker.data_dir().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("list {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "log")
                && path
                    .parent()
                    .and_then(|p| p.file_name())
                    .is_some_and(|n| n == part_dir.as_str())
            {
                logs.push(path);
            }
        }
    }
    // Segment files are named by their zero-padded base offset: the newest sorts last.
    logs.sort();
    logs.pop().with_context(|| {
        format!(
            "no .log segment for {part_dir} under {}",
            broker.data_dir().display()
        )
    })
}

fn corruption_case(flip: bool) -> Result<()> {
    let mut broker = Broker::start()?;
    let topic = if flip {
        "corrupt-flip"
    } else {
        "corrupt-trunc"
    };
    python_script(
        &broker,
        "produce_n.py",
        &[topic, "2000", "1", "100"],
        Duration::from_secs(120),
    )?;
    let before = dump(&broker, topic)?;
    broker.stop()?;
    let seg = active_segment(&broker, topic)?;
    let len = std::fs::metadata(&seg)?.len();
    if flip {
        let mut bytes = std::fs::read(&seg)?;
        let at = bytes.len() - 3;
        bytes[at] ^= 0xff;
        std::fs::File::create(&seg)?.write_all(&bytes)?;
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&seg)?
            .set_len(len - 7)?;
    }
    // The offline checker reports the damage (and changes nothing).
    let check = Command::new(eddy_e2e::eddy_bin())
        .arg("check")
        .arg("--data-dir")
        .arg(broker.data_dir())
        .output()?;
    let text = String::from_utf8_lossy(&check.stdout);
    if check.status.code() != Some(1)
        || !text.contains("DAMAGE")
        || !text.contains(&seg.display().to_string())
    {
        bail!(
            "eddy check should report the damaged segment and exit 1: {:?}\n{text}",
            check.status.code()
        );
    }
    broker.restart()?;
    let after = dump(&broker, topic)?;
    let before_lines: Vec<&str> = before.lines().collect();
    let after_lines: Vec<&str> = after.lines().collect();
    // The producer flushed every 100 records, so the damaged last batch holds at most 100:
    // recovery must cut that batch and nothing before it.
    if after_lines.len() >= before_lines.len() || after_lines.len() + 100 < before_lines.len() {
        bail!(
            "expected exactly the damaged tail batch (at most 100 records) to be cut: {} records before, {} after",
            before_lines.len(),
            after_lines.len()
        );
    }
    if before_lines[..after_lines.len()] != after_lines[..] {
        bail!("records before the damage changed");
    }
    let log = broker.log();
    if !log.to_lowercase().contains("truncat") {
        bail!("the broker log does not mention the truncation:\n{log}");
    }
    // The partition keeps working after recovery.
    python_script(
        &broker,
        "produce_n.py",
        &[&format!("{topic}-more"), "10"],
        Duration::from_secs(60),
    )?;
    Ok(())
}

#[test]
fn truncated_tail_is_cut_and_logged() -> Result<()> {
    require_clients!();
    corruption_case(false)
}

#[test]
fn flipped_byte_in_tail_is_cut_and_logged() -> Result<()> {
    require_clients!();
    corruption_case(true)
}

#[test]
fn bad_config_is_one_line_and_exit_code_2() -> Result<()> {
    let out = Command::new(eddy_e2e::eddy_bin())
        .args(["serve", "--set", "num.partitions=zero"])
        .output()?;
    if out.status.code() != Some(2) {
        bail!("exit code {:?}, expected 2", out.status.code());
    }
    let err = String::from_utf8(out.stderr)?;
    if err.lines().count() != 1 || !err.contains("num.partitions") {
        bail!("expected one line naming the key, got: {err:?}");
    }
    let out = Command::new(eddy_e2e::eddy_bin())
        .args(["serve", "--bogus"])
        .output()?;
    if out.status.code() != Some(2) {
        bail!(
            "unknown flag: exit code {:?}, expected 2",
            out.status.code()
        );
    }
    let err = String::from_utf8(out.stderr)?;
    if err.lines().count() != 1 || !err.contains("--bogus") {
        bail!("expected one line naming the flag, got: {err:?}");
    }
    Ok(())
}

#[test]
fn retention_deletes_old_segments_in_the_running_broker() -> Result<()> {
    require_clients!();
    let broker = Broker::start_with(&["--set", "log.retention.check.interval.ms=200"])?;
    python_script(&broker, "retention.py", &[], Duration::from_secs(120))?;
    Ok(())
}
