//! The official Java client (kafka-clients 3.9.1; idempotent producer by default).

use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use eddy_e2e::{java_cp, require_clients, Broker};

fn java(broker: &Broker, mode: &str) -> Result<()> {
    let mut cmd = Command::new("java");
    cmd.arg("-cp")
        .arg(java_cp()?)
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .arg("JavaClientTest")
        .arg(broker.bootstrap())
        .arg(mode);
    broker
        .run_client(
            cmd,
            Duration::from_secs(180),
            &format!("java client ({mode})"),
        )
        .map(|_| ())
}

#[test]
fn java_idempotent_producer_admin_and_assigned_consumer() -> Result<()> {
    require_clients!();
    let broker = Broker::start()?;
    java(&broker, "basic")
}

#[test]
fn java_non_idempotent_producer() -> Result<()> {
    require_clients!();
    let broker = Broker::start()?;
    java(&broker, "plain")
}

#[test]
fn java_consumer_group_commits_and_resumes() -> Result<()> {
    require_clients!();
    let broker = Broker::start()?;
    java(&broker, "group")
}
