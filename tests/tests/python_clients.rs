//! confluent-kafka (librdkafka 2.x) and kafka-python against the real broker.

use std::time::Duration;

use anyhow::Result;
use eddy_e2e::{python_script, require_clients, Broker};

#[test]
fn confluent_kafka_acks_all_six_partitions() -> Result<()> {
    require_clients!();
    let broker = Broker::start()?;
    python_script(
        &broker,
        "confluent_produce_consume.py",
        &[],
        Duration::from_secs(120),
    )?;
    Ok(())
}

#[test]
fn kafka_python_admin_produce_consume() -> Result<()> {
    require_clients!();
    let broker = Broker::start()?;
    python_script(
        &broker,
        "kafka_python_admin.py",
        &[],
        Duration::from_secs(120),
    )?;
    Ok(())
}

#[test]
fn confluent_admin_extras_and_log_append_time() -> Result<()> {
    require_clients!();
    let broker = Broker::start()?;
    python_script(&broker, "admin_extras.py", &[], Duration::from_secs(120))?;
    Ok(())
}
