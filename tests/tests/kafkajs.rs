//! kafkajs: only non-flexible protocol versions.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use eddy_e2e::{js_dir, require_clients, Broker};

#[test]
fn kafkajs_admin_produce_and_group_consume() -> Result<()> {
    require_clients!();
    let broker = Broker::start()?;
    let dir = js_dir()?;
    let mut cmd = Command::new("node");
    cmd.current_dir(&dir)
        .arg(dir.join("kafkajs_test.js"))
        .arg(broker.bootstrap());
    broker.run_client(cmd, Duration::from_secs(120), "kafkajs test")?;
    Ok(())
}
