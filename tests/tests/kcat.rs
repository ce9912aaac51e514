//! kcat (Debian's, librdkafka 2.0.2): 10,000 keyed records with headers per codec, consumed
//! back byte-identical and in order.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use eddy_e2e::{require_clients, require_tool, run_with_stdin, Broker};

fn kcat() -> Result<()> {
    require_tool("kcat", &["-V"], "scripts/test.sh installs Debian's kcat")
}

#[test]
fn kcat_round_trip_every_codec() -> Result<()> {
    require_clients!();
    kcat()?;
    let broker = Broker::start()?;
    let n = 10_000;
    let input: String = (0..n)
        .map(|i| format!("key-{i}:value {i} \u{e9}\u{4e2d} {}\n", "x".repeat(i % 50)))
        .collect();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("kcat-{codec}");
        let mut p = Command::new("kcat");
        p.args([
            "-b",
            &broker.bootstrap(),
            "-t",
            &topic,
            "-P",
            "-K",
            ":",
            "-z",
            codec,
        ])
        .args(["-H", "h1=one", "-H", "h2=two"]);
        run_with_stdin(p, &input)
            .with_context(|| format!("kcat produce ({codec}); broker log:\n{}", broker.log()))?;
        let mut c = Command::new("kcat");
        c.args(["-b", &broker.bootstrap(), "-t", &topic, "-C", "-e", "-q"])
            .args(["-f", "%k:%s|%h|%o\n"]);
        let out = broker.run_client(
            c,
            Duration::from_secs(60),
            &format!("kcat consume ({codec})"),
        )?;
        let got = String::from_utf8(out.stdout)?;
        let lines: Vec<&str> = got.lines().collect();
        if lines.len() != n {
            bail!("{codec}: consumed {} records, produced {n}", lines.len());
        }
        for (i, (line, want)) in lines.iter().zip(input.lines()).enumerate() {
            let expected = format!("{want}|h1=one,h2=two|{i}");
            if *line != expected {
                bail!("{codec}: record {i} differs:\n got  {line:?}\n want {expected:?}");
            }
        }
    }
    Ok(())
}
