//! A full disk: produce gets KAFKA_STORAGE_ERROR (never a false acknowledgement), nothing
//! acknowledged is damaged, the broker keeps serving, and once space is freed the partition
//! reopens by itself and accepts writes again.
//!
//! Runs the broker on a small tmpfs, which needs permission to mount (root in the CI
//! container); where mounting is refused the test says so and passes without running.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use eddy_e2e::{
    check_acked_present, eddy_bin, python_script, read_acked, require_clients, run_ok, Broker,
};

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn produce(
    broker: &Broker,
    acked: &std::path::Path,
    prefix: &str,
    count: u32,
    size: u32,
) -> Result<serde_json::Value> {
    let out = python_script(
        broker,
        "disk_full_producer.py",
        &[
            "full-topic",
            &acked.to_string_lossy(),
            prefix,
            &count.to_string(),
            &size.to_string(),
        ],
        Duration::from_secs(120),
    )?;
    let line = String::from_utf8(out.stdout)?;
    serde_json::from_str(line.trim()).with_context(|| format!("producer output {line:?}"))
}

#[test]
fn disk_full_answers_storage_error_and_recovers_when_space_returns() -> Result<()> {
    require_clients!();
    let tmp = tempfile::tempdir()?;
    let mnt = tmp.path().join("small-disk");
    std::fs::create_dir_all(&mnt)?;
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(&mnt)
        .status();
    if !mounted.is_ok_and(|s| s.success()) {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here (needs root); the disk-full test did not run"
        );
        return Ok(());
    }
    let _mount = Mount(mnt.clone());
    // A filler to delete later: "freeing space" on the full disk.
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0u8; 8 << 20])?;
    let data = mnt.join("data");
    let mut broker = Broker::start_in(Some(&data), &["--set", "log.segment.bytes=2097152"])?;
    let acked = tmp.path().join("acked.txt");

    // ~32 MB into a 24 MB disk that already holds 8 MB: the disk fills up.
    let first = produce(&broker, &acked, "a", 16_000, 2_000)?;
    eprintln!("while filling: {first}");
    let storage_errors = first["errors"]["56"].as_u64().unwrap_or(0);
    if storage_errors == 0 {
        bail!(
            "no KAFKA_STORAGE_ERROR (56) while the disk was full: {first}\n{}",
            broker.log_tail(20)
        );
    }
    if !broker.is_alive() {
        bail!("the broker died on a full disk:\n{}", broker.log_tail(30));
    }
    // Still full: writes keep failing with the same error, and the broker answers.
    let still = produce(&broker, &acked, "b", 50, 2_000)?;
    if still["acked"].as_u64() != Some(0) {
        bail!("records were acknowledged while the disk was still full: {still}");
    }

    std::fs::remove_file(&filler)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut round = 0;
    loop {
        round += 1;
        let r = produce(&broker, &acked, &format!("c{round}-"), 200, 1_000)?;
        if r["acked"].as_u64() == Some(200) {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "writes did not recover within 30 s of freeing space: {r}\n{}",
                broker.log_tail(30)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    broker.stop()?;
    let mut check = Command::new(eddy_bin());
    check.arg("check").arg("--data-dir").arg(&data);
    let report = run_ok(check, Duration::from_secs(60), "eddy check")?;
    eprintln!("{}", String::from_utf8_lossy(&report.stdout));
    broker.restart()?;
    let acked = read_acked(&acked)?;
    // The producer recorded the first 40 characters of each (padded) value.
    check_acked_present(&broker, "full-topic", &acked, |v| {
        v.chars()
            .take(40)
            .collect::<String>()
            .trim_end_matches('.')
            .to_string()
    })?;
    eprintln!("{} acknowledged records intact after a full disk; {storage_errors} storage errors while full", acked.len());
    Ok(())
}
