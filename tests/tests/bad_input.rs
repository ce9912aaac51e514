//! Hostile input on some connections must close those connections (or get a Kafka error)
//! while a well-behaved client on another connection keeps producing and consuming.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use eddy_e2e::{require_clients, run_with_stdin, Broker};

/// Sends `bytes` (optionally half-closing) and expects the broker to close the connection
/// within 5 s without sending a response.
fn expect_closed(broker: &Broker, what: &str, bytes: &[u8], half_close: bool) -> Result<()> {
    let mut s = TcpStream::connect(broker.addr())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(bytes)?;
    if half_close {
        s.shutdown(Shutdown::Write)?;
    }
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => Ok(()),
        Ok(n) => bail!("{what}: broker answered {n} bytes instead of closing"),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
        Err(e) => bail!("{what}: connection not closed within 5 s ({e})"),
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

fn header(api: i16, version: i16, corr: i32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&api.to_be_bytes());
    h.extend_from_slice(&version.to_be_bytes());
    h.extend_from_slice(&corr.to_be_bytes());
    h.extend_from_slice(&4i16.to_be_bytes());
    h.extend_from_slice(b"evil");
    h
}

#[test]
fn hostile_connections_are_closed_while_others_are_served() -> Result<()> {
    require_clients!();
    let broker = Broker::start()?;
    let bootstrap = broker.bootstrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    // A well-behaved kcat producer/consumer cycling the whole time.
    let good = std::thread::spawn(move || -> Result<u32> {
        let mut rounds = 0;
        while !stop2.load(Ordering::Relaxed) || rounds < 3 {
            let topic = format!("good-{rounds}");
            let input: String = (0..200).map(|i| format!("m{i}\n")).collect();
            let mut p = Command::new("kcat");
            p.args(["-b", &bootstrap, "-t", &topic, "-P"]);
            run_with_stdin(p, &input).context("good producer failed")?;
            let out = Command::new("kcat")
                .args(["-b", &bootstrap, "-t", &topic, "-C", "-e", "-q"])
                .output()?;
            if String::from_utf8_lossy(&out.stdout) != input {
                bail!("good consumer read something else in round {rounds}");
            }
            rounds += 1;
        }
        Ok(rounds)
    });

    let start = Instant::now();
    expect_closed(
        &broker,
        "HTTP garbage",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        false,
    )?;
    expect_closed(
        &broker,
        "2 GiB length prefix",
        &0x7fff_ffffi32.to_be_bytes(),
        false,
    )?;
    expect_closed(&broker, "negative length", &(-5i32).to_be_bytes(), false)?;
    let mut truncated = 100i32.to_be_bytes().to_vec();
    truncated.extend_from_slice(&header(18, 0, 1));
    expect_closed(&broker, "truncated frame then half-close", &truncated, true)?;
    expect_closed(
        &broker,
        "unknown API key",
        &frame(&header(999, 0, 2)),
        false,
    )?;
    // Metadata v1 whose topic array claims 2^31-1 entries.
    let mut body = header(3, 1, 3);
    body.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
    expect_closed(&broker, "huge array count", &frame(&body), false)?;
    // Produce at a version past what we support.
    expect_closed(&broker, "Produce v99", &frame(&header(0, 99, 4)), false)?;
    // Random bytes with a plausible length.
    let noise: Vec<u8> = (0..500u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut f = (noise.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&noise);
    expect_closed(&broker, "random body", &f, false)?;

    // ApiVersions at an unknown version gets the v0 fallback answer, not a closed socket.
    let mut s = TcpStream::connect(broker.addr())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(&frame(&header(18, 99, 77)))?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut resp)?;
    if resp[0..4] != 77i32.to_be_bytes() || resp[4..6] != 35i16.to_be_bytes() {
        bail!(
            "ApiVersions fallback: unexpected answer {:?}",
            &resp[..6.min(resp.len())]
        );
    }

    stop.store(true, Ordering::Relaxed);
    let rounds = good
        .join()
        .map_err(|_| anyhow::anyhow!("good client panicked"))??;
    eprintln!(
        "good client completed {rounds} produce/consume rounds during {:?} of hostile input",
        start.elapsed()
    );
    let mut broker = broker;
    if !broker.is_alive() {
        bail!("the broker died");
    }
    let log = broker.log();
    if !log.contains("closing the connection") {
        bail!("the broker did not log why it closed connections:\n{log}");
    }
    Ok(())
}

#[test]
fn connections_beyond_max_connections_are_closed() -> Result<()> {
    let broker = Broker::start_with(&["--set", "max.connections=5"])?;
    // The harness's readiness probe is itself a connection; let the broker see it close.
    std::thread::sleep(Duration::from_millis(300));
    let idle: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect(broker.addr()))
        .collect::<Result<_, _>>()?;
    // Let the broker register them.
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = TcpStream::connect(broker.addr())?;
    extra.set_read_timeout(Some(Duration::from_secs(5)))?;
    let _ = extra.write_all(&frame(&header(18, 0, 1)));
    let mut buf = [0u8; 16];
    match extra.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => bail!(
            "the sixth connection should be closed, got {other:?}; log:\n{}",
            broker.log()
        ),
    }
    if !broker.log().contains("max.connections reached") {
        bail!("no log line for the refused connection:\n{}", broker.log());
    }
    // The first five are served all along.
    let mut idle = idle;
    for (i, s) in idle.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(&frame(&header(18, 0, 100 + i as i32)))?;
        let mut len = [0u8; 4];
        s.read_exact(&mut len)
            .with_context(|| format!("ApiVersions on admitted connection {i}"))?;
        let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
        s.read_exact(&mut resp)?;
        if resp[0..4] != (100 + i as i32).to_be_bytes() {
            bail!("admitted connection {i} got an answer to someone else");
        }
    }
    // Once one closes, a new connection is served again.
    drop(idle);
    std::thread::sleep(Duration::from_millis(300));
    let mut s = TcpStream::connect(broker.addr())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(&frame(&header(18, 0, 9)))?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)
        .context("ApiVersions after connections were freed")?;
    Ok(())
}
