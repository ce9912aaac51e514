//! Log compaction with a real client: many versions of 1,000 keys plus tombstones; after the
//! cleaner ran, a consumer from the beginning sees exactly the latest value of each live key
//! at the offset it was written at, no deleted key, and the log passes `eddy check`. Also the
//! committed offsets in the compacted `__consumer_offsets` survive a restart.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use eddy_e2e::{eddy_bin, python_script, require_clients, run_ok, Broker};

#[derive(Debug, PartialEq)]
struct Row {
    offset: i64,
    key: String,
    value: Option<String>,
}

fn dump(broker: &Broker) -> Result<Vec<Row>> {
    let out = python_script(
        broker,
        "compaction_check.py",
        &["dump", "compacted"],
        Duration::from_secs(120),
    )?;
    String::from_utf8(out.stdout)?
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)?;
            Ok(Row {
                offset: v["offset"].as_i64().context("offset")?,
                key: v["key"].as_str().context("key")?.to_string(),
                value: v["value"].as_str().map(str::to_string),
            })
        })
        .collect()
}

#[test]
fn compaction_keeps_exactly_the_latest_value_of_each_live_key() -> Result<()> {
    require_clients!();
    let mut broker = Broker::start_with(&["--set", "log.cleaner.backoff.ms=300"])?;
    let out = python_script(
        &broker,
        "compaction_check.py",
        &["write", "compacted", "8", "1000"],
        Duration::from_secs(300),
    )?;
    let written: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let latest: BTreeMap<String, (String, i64)> = written["latest"]
        .as_object()
        .context("latest")?
        .iter()
        .map(|(k, v)| {
            Ok((
                k.clone(),
                (
                    v[0].as_str().context("value")?.to_string(),
                    v[1].as_i64().context("offset")?,
                ),
            ))
        })
        .collect::<Result<_>>()?;
    let deleted: BTreeMap<String, i64> = written["deleted"]
        .as_object()
        .context("deleted")?
        .iter()
        .filter_map(|(k, o)| Some((k.clone(), o.as_i64()?)))
        .collect();
    assert_eq!(latest.len(), 900);
    assert_eq!(deleted.len(), 100);

    // Wait for the cleaner: every superseded version gone, and tombstones older than
    // delete.retention.ms (100 ms) removed too. (As in Kafka, a tombstone may outlive that
    // while it ends the cleanable part of the log; it is still the key's latest record.)
    let deadline = Instant::now() + Duration::from_secs(60);
    let rows = loop {
        let rows = dump(&broker)?;
        let values = rows
            .iter()
            .filter(|r| !r.key.starts_with("filler-") && r.value.is_some())
            .count();
        let tombstones = rows.iter().filter(|r| r.value.is_none()).count();
        if (values == latest.len() && tombstones <= 1) || Instant::now() > deadline {
            eprintln!("{values} values and {tombstones} tombstone(s) left of 8,100 records");
            break rows;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let mut seen = BTreeMap::new();
    let mut last_offset = -1;
    for r in rows.iter().filter(|r| !r.key.starts_with("filler-")) {
        if r.offset <= last_offset {
            bail!("offsets go backwards at {}", r.offset);
        }
        last_offset = r.offset;
        if let Some(at) = deleted.get(&r.key) {
            if r.value.is_some() || r.offset != *at {
                bail!(
                    "deleted key {} is still there (value {:?} at {})",
                    r.key,
                    r.value,
                    r.offset
                );
            }
            continue; // its tombstone, at its original offset
        }
        let Some((want, at)) = latest.get(&r.key) else {
            bail!("unexpected key {}", r.key);
        };
        if r.value.as_deref() != Some(want.as_str()) || r.offset != *at {
            bail!("{} has {:?} at {}, expected {want} at {at} (only the latest value, at its original offset)", r.key, r.value, r.offset);
        }
        if seen.insert(r.key.clone(), r.offset).is_some() {
            bail!("{} appears twice", r.key);
        }
    }
    let tombstones = rows.iter().filter(|r| r.value.is_none()).count();
    if tombstones > 1 {
        bail!("{tombstones} expired tombstones were not removed");
    }
    if seen.len() != latest.len() {
        bail!(
            "{} of {} live keys present after cleaning\n{}",
            seen.len(),
            latest.len(),
            broker.log_tail(20)
        );
    }
    let fillers = rows.iter().filter(|r| r.key.starts_with("filler-")).count();
    if fillers != 2000 {
        bail!("{fillers} of 2000 distinct filler records present: the cleaner removed live keys");
    }
    if !broker.log().contains("log cleaned") {
        bail!("the broker never logged a cleaning run");
    }

    broker.stop()?;
    let mut check = Command::new(eddy_bin());
    check.arg("check").arg("--data-dir").arg(broker.data_dir());
    let report = run_ok(check, Duration::from_secs(60), "eddy check")?;
    eprintln!("{}", String::from_utf8_lossy(&report.stdout));
    broker.restart()?;
    let again = dump(&broker)?;
    if again != rows {
        bail!("the compacted log reads differently after a restart");
    }
    Ok(())
}
