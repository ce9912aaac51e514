//! Idempotent producers: connections cut mid-stream must not duplicate or lose records.

use std::time::Duration;

use anyhow::Result;
use eddy_e2e::{python_script, require_clients, Broker};

#[test]
fn idempotent_producer_through_connection_cuts_is_exactly_once() -> Result<()> {
    require_clients!();
    // Every client connection goes through the test's proxy, so the broker advertises it.
    let proxy_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let advertise = format!("127.0.0.1:{proxy_port}");
    let broker = Broker::start_with(&["--advertise", &advertise])?;
    python_script(
        &broker,
        "idempotent_cut.py",
        &[&proxy_port.to_string()],
        Duration::from_secs(240),
    )?;
    Ok(())
}
