//! Twenty SIGKILLs at random moments while an acks=all producer runs, restarting each time:
//! afterwards every acknowledged record is present exactly once, in order, at its
//! acknowledged offset, and `eddy check` finds no damage.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use eddy_e2e::{
    check_acked_present, client_script, eddy_bin, python, read_acked, require_clients, run_ok,
    Broker,
};

#[test]
fn twenty_kill9s_lose_nothing_acknowledged() -> Result<()> {
    require_clients!();
    let rounds: u64 = std::env::var("EDDY_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut broker = Broker::start_with(&["--set", "num.partitions=1"])?;
    let tmp = tempfile::tempdir()?;
    let acked_path = tmp.path().join("acked.txt");
    // A small deterministic generator for the kill moments, seeded from the clock and
    // printed so a failure can be replayed.
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    eprintln!("crash loop seed {seed}");
    for round in 0..rounds {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let wait_ms = 300 + seed % 1200;
        let mut producer = Command::new(python()?)
            .arg(client_script("python/crash_producer.py"))
            .arg(broker.bootstrap())
            .arg("loop-topic")
            .arg(&acked_path)
            .arg(format!("r{round:02}-"))
            .arg("20000")
            .spawn()
            .context("start the producer")?;
        std::thread::sleep(Duration::from_millis(wait_ms));
        broker.kill9();
        std::thread::sleep(Duration::from_millis(200));
        let _ = producer.kill();
        let _ = producer.wait();
        broker.restart()?;
    }
    broker.stop()?;
    let check = run_ok(
        {
            let mut c = Command::new(eddy_bin());
            c.arg("check").arg("--data-dir").arg(broker.data_dir());
            c
        },
        Duration::from_secs(60),
        "eddy check",
    )?;
    eprintln!("{}", String::from_utf8_lossy(&check.stdout));
    broker.restart()?;
    let acked = read_acked(&acked_path)?;
    if acked.len() < 500 {
        bail!(
            "only {} records acknowledged over {rounds} rounds; too few to mean anything",
            acked.len()
        );
    }
    let order = check_acked_present(&broker, "loop-topic", &acked, str::to_string)?;
    // Within each round, values appear in send order.
    let mut last: HashMap<String, u64> = HashMap::new();
    for v in &order {
        let (round, n) = v.split_once('-').context("value format")?;
        let n: u64 = n.parse()?;
        if let Some(prev) = last.insert(round.to_string(), n) {
            if n <= prev {
                bail!("{round}: {n} after {prev}");
            }
        }
    }
    eprintln!("{} acknowledged records over {rounds} kill -9 rounds, all present once and in order ({} in the log)", acked.len(), order.len());
    Ok(())
}
