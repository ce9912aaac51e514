//! Consumer groups with real clients: rebalances on member death (eager and cooperative),
//! static membership, commit and resume, committed offsets across restarts and crashes.

use std::time::Duration;

use anyhow::{bail, Result};
use eddy_e2e::{python_script, require_clients, Broker};

#[test]
fn eager_rebalance_after_member_is_killed() -> Result<()> {
    require_clients!();
    let broker = Broker::start()?;
    python_script(
        &broker,
        "group_rebalance.py",
        &["range"],
        Duration::from_secs(180),
    )?;
    Ok(())
}

#[test]
fn cooperative_sticky_keeps_survivor_partitions() -> Result<()> {
    require_clients!();
    let broker = Broker::start()?;
    python_script(
        &broker,
        "group_rebalance.py",
        &["cooperative-sticky"],
        Duration::from_secs(180),
    )?;
    Ok(())
}

#[test]
fn static_member_restart_causes_no_rebalance() -> Result<()> {
    require_clients!();
    let broker = Broker::start()?;
    python_script(&broker, "group_static.py", &[], Duration::from_secs(180))?;
    Ok(())
}

#[test]
fn kafka_python_group_commits_and_resumes() -> Result<()> {
    require_clients!();
    let broker = Broker::start()?;
    python_script(
        &broker,
        "group_resume_kafka_python.py",
        &[],
        Duration::from_secs(180),
    )?;
    Ok(())
}

#[test]
fn committed_offsets_survive_restart_and_kill9() -> Result<()> {
    require_clients!();
    let mut broker = Broker::start()?;
    let out = python_script(
        &broker,
        "group_offsets.py",
        &["commit"],
        Duration::from_secs(120),
    )?;
    let expected = String::from_utf8(out.stdout)?;
    broker.restart()?;
    let after_restart = python_script(
        &broker,
        "group_offsets.py",
        &["read"],
        Duration::from_secs(120),
    )?;
    if String::from_utf8(after_restart.stdout)? != expected {
        bail!(
            "committed offsets changed across a clean restart:\nwant {expected}\nbroker log:\n{}",
            broker.log()
        );
    }
    broker.kill9();
    broker.restart()?;
    let after_crash = python_script(
        &broker,
        "group_offsets.py",
        &["read"],
        Duration::from_secs(120),
    )?;
    if String::from_utf8(after_crash.stdout)? != expected {
        bail!(
            "committed offsets changed across kill -9:\nwant {expected}\nbroker log:\n{}",
            broker.log()
        );
    }
    Ok(())
}
