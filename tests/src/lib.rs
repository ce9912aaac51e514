//! Harness for end-to-end tests: starts the real `eddy` binary on a free 127.0.0.1 port with
//! a temporary data directory and runs real Kafka clients against it.
//!
//! Clients are found through environment variables that `scripts/test.sh` sets after
//! installing them (`EDDY_PYTHON`, `EDDY_JS_DIR`, `EDDY_JAVA_CP`); with none set, the default
//! locations under `~/.cache` are tried. A missing client fails the test with a clear message
//! unless `EDDY_SKIP_CLIENTS=1`, in which case the test returns early and says so.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Path to the `eddy` binary under test: `EDDY_BIN`, else next to the test executable's
/// directory (`target/<profile>/eddy`).
pub fn eddy_bin() -> PathBuf {
    if let Ok(p) = std::env::var("EDDY_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test> -> target/<profile>/eddy
    exe.parent()
        .and_then(Path::parent)
        .map(|d| d.join("eddy"))
        .unwrap_or_else(|| PathBuf::from("eddy"))
}

fn home_cache() -> PathBuf {
    std::env::var("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/root"))
        .join(".cache")
}

/// Whether client tests should be skipped (only when explicitly asked).
pub fn skip_clients() -> bool {
    std::env::var("EDDY_SKIP_CLIENTS")
        .map(|v| v == "1")
        .unwrap_or(false)
}

/// The Python interpreter of the client venv.
pub fn python() -> Result<PathBuf> {
    let p = std::env::var("EDDY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| home_cache().join("eddy-venv/bin/python"));
    if !p.exists() {
        bail!(
            "Python client venv not found at {} (run scripts/test.sh, or set EDDY_PYTHON)",
            p.display()
        );
    }
    Ok(p)
}

/// The directory holding `node_modules/kafkajs`.
pub fn js_dir() -> Result<PathBuf> {
    let p = std::env::var("EDDY_JS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("tests/clients/js"));
    require_tool("node", &["--version"], "scripts/test.sh installs Node.js")?;
    if !p.join("node_modules/kafkajs").exists() {
        bail!(
            "kafkajs not installed in {} (run scripts/test.sh, or set EDDY_JS_DIR)",
            p.display()
        );
    }
    Ok(p)
}

/// Classpath with kafka-clients and the compiled Java test client.
pub fn java_cp() -> Result<String> {
    let cp = std::env::var("EDDY_JAVA_CP").unwrap_or_else(|_| {
        let d = home_cache().join("eddy-java");
        format!("{}/classes:{}/lib/*", d.display(), d.display())
    });
    require_tool("java", &["-version"], "scripts/test.sh installs a JDK")?;
    let classes = cp.split(':').next().unwrap_or("");
    if !Path::new(classes).join("JavaClientTest.class").exists() {
        bail!("Java test client not built in {classes} (run scripts/test.sh, or set EDDY_JAVA_CP)");
    }
    Ok(cp)
}

/// The repository root (the tests crate lives in `<root>/tests`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A client script under `tests/clients/`.
pub fn client_script(rel: &str) -> PathBuf {
    repo_root().join("tests/clients").join(rel)
}

/// The port from the broker's "<marker>PORT" log line (e.g. "eddy listening on 127.0.0.1:").
fn logged_port(log: &str, marker: &str) -> Option<u16> {
    let at = log.find(marker)?;
    let rest = &log[at + marker.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A running broker. Killed on drop.
#[derive(Debug)]
pub struct Broker {
    child: Option<Child>,
    port: u16,
    /// The admin HTTP API's port (bound like `port`: free on first start, kept after).
    http_port: u16,
    data: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    log_path: PathBuf,
    args: Vec<String>,
    /// Extra environment variables for the broker process (e.g. a test hook).
    env: Vec<(String, String)>,
    starts: u32,
}

impl Broker {
    /// Starts a broker with a fresh data directory and test-friendly settings
    /// (no initial group rebalance delay).
    pub fn start() -> Result<Broker> {
        Self::start_with(&[])
    }

    /// Starts a broker with extra `serve` arguments (e.g. `["--set", "num.partitions=3"]`).
    pub fn start_with(args: &[&str]) -> Result<Broker> {
        Self::start_in(None, args)
    }

    /// Like [`Broker::start_with`] with the data directory at `data` (e.g. on a small file
    /// system) instead of a fresh temporary one.
    pub fn start_in(data: Option<&Path>, args: &[&str]) -> Result<Broker> {
        Self::start_full(data, args, &[])
    }

    /// Like [`Broker::start_with`] with extra environment variables for the broker process.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Result<Broker> {
        Self::start_full(None, args, env)
    }

    fn start_full(data: Option<&Path>, args: &[&str], env: &[(&str, &str)]) -> Result<Broker> {
        let tmp = tempfile::Builder::new().prefix("eddy-e2e-").tempdir()?;
        let data = data.map_or_else(|| tmp.path().join("data"), Path::to_path_buf);
        let log_path = tmp.path().join("broker.log");
        let mut b = Broker {
            child: None,
            // 0 until the first start: the broker binds a free port itself and logs it, so
            // tests running in parallel can never race for the same port.
            port: 0,
            http_port: 0,
            data,
            _tmp: Some(tmp),
            log_path,
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            starts: 0,
        };
        b.spawn()?;
        Ok(b)
    }

    fn spawn(&mut self) -> Result<()> {
        let bin = eddy_bin();
        if !bin.exists() {
            bail!("eddy binary not found at {} (build it with `cargo build --bin eddy` or set EDDY_BIN)", bin.display());
        }
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        writeln!(&log, "===== start #{} =====", self.starts)?;
        let mut cmd = Command::new(&bin);
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--http")
            .arg(format!("127.0.0.1:{}", self.http_port))
            .arg("--data-dir")
            .arg(&self.data)
            .args(["--set", "group.initial.rebalance.delay.ms=0"])
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let marker = format!("===== start #{} =====", self.starts);
        loop {
            if self.port == 0 || self.http_port == 0 {
                let log = self.log();
                let this_start = log.rsplit(&marker).next().unwrap_or("");
                if let Some(port) = logged_port(this_start, "eddy listening on 127.0.0.1:") {
                    self.port = port;
                }
                let admin = "eddy admin API listening on http://127.0.0.1:";
                if let Some(port) = logged_port(this_start, admin) {
                    self.http_port = port;
                }
            }
            if self.port != 0 && self.http_port != 0 && TcpStream::connect(self.addr()).is_ok() {
                if let Some(c) = self.child.as_mut() {
                    if let Some(status) = c.try_wait()? {
                        bail!(
                            "eddy exited during start-up ({status}); log:\n{}",
                            self.log()
                        );
                    }
                }
                return Ok(());
            }
            if let Some(c) = self.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    bail!(
                        "eddy exited during start-up ({status}); log:\n{}",
                        self.log()
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "eddy did not accept connections within 20 s; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The admin HTTP API's address, as `--admin` takes it.
    pub fn admin(&self) -> String {
        format!("127.0.0.1:{}", self.http_port)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The broker's resident set size in KiB from `/proc/PID/status`: (VmRSS now, VmHWM
    /// peak since start).
    pub fn rss_kib(&self) -> Result<(u64, u64)> {
        let pid = self.pid().context("the broker is not running")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let field = |name: &str| -> Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("{name} in /proc/{pid}/status"))?;
            Ok(line.split_whitespace().nth(1).context("value")?.parse()?)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// The broker's log (stdout and stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last `n` lines of the broker's log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Runs a client against this broker like [`run_ok`]; a failure also shows the end of
    /// the broker's log, so a broker-side error is visible next to the client's.
    pub fn run_client(&self, cmd: Command, timeout: Duration, what: &str) -> Result<Output> {
        run_ok(cmd, timeout, what).map_err(|e| {
            anyhow::anyhow!(
                "{e:#}\n--- broker log (last 80 lines) ---\n{}",
                self.log_tail(80)
            )
        })
    }

    /// SIGTERM, then waits (up to 20 s) and checks the exit code is 0.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let st = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        if !st.success() {
            bail!("could not send SIGTERM");
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!(
                        "eddy exited with {status} after SIGTERM; log:\n{}",
                        self.log()
                    );
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!(
                    "eddy did not exit within 20 s of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the broker again on the same port and data directory.
    pub fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            self.stop()?;
        }
        self.spawn()
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs a command to completion with a timeout; fails with its output if it fails.
pub fn run_ok(mut cmd: Command, timeout: Duration, what: &str) -> Result<Output> {
    let out = run(&mut cmd, timeout).with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// Runs a command with a timeout (killing it when it expires), capturing its output.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let mut stderr = child.stderr.take().context("stderr")?;
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let so = out_t.join().unwrap_or_default();
            let se = err_t.join().unwrap_or_default();
            bail!(
                "timed out after {timeout:?}:\n--- stdout ---\n{}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&so),
                String::from_utf8_lossy(&se)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    })
}

/// Runs a Python client script from `tests/clients/python` with the broker address.
pub fn python_script(
    broker: &Broker,
    script: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<Output> {
    let py = python()?;
    let mut cmd = Command::new(py);
    cmd.arg(client_script(&format!("python/{script}")))
        .arg(broker.bootstrap())
        .args(args)
        .env("EDDY_BOOTSTRAP", broker.bootstrap());
    broker.run_client(cmd, timeout, script)
}

/// Fails with an install hint unless `tool --version`-style `probe` runs.
pub fn require_tool(tool: &str, probe: &[&str], hint: &str) -> Result<()> {
    match Command::new(tool)
        .args(probe)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(st) if st.success() => Ok(()),
        Ok(st) => bail!("`{tool} {}` failed ({st}); {hint}", probe.join(" ")),
        Err(e) => bail!("{tool} is not installed ({e}); {hint}"),
    }
}

/// Returns early from a client test when clients are explicitly skipped.
#[macro_export]
macro_rules! require_clients {
    () => {
        if $crate::skip_clients() {
            eprintln!("EDDY_SKIP_CLIENTS=1: skipping a real-client test");
            return Ok(());
        }
    };
}

/// An `eddy` client command against `broker` (`eddy -b HOST:PORT ARGS...`).
pub fn eddy_cmd(broker: &Broker, args: &[&str]) -> Command {
    let mut c = Command::new(eddy_bin());
    c.arg("-b").arg(broker.bootstrap()).args(args);
    c
}

/// Runs `cmd` with `input` on its stdin; fails with its stderr unless it exits 0.
pub fn run_with_stdin(mut cmd: Command, input: &str) -> Result<Output> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out)
}

/// Reads `value offset` lines written by the producer clients for acknowledged records.
pub fn read_acked(path: &Path) -> Result<Vec<(String, i64)>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .filter_map(|l| {
            let (v, o) = l.rsplit_once(' ')?;
            Some((v.to_string(), o.parse().ok()?))
        })
        .collect())
}

/// Checks that every acknowledged `(value, offset)` is in partition 0 of `topic` exactly
/// once, at its offset. `value_of` maps a stored value to the form the producer recorded.
/// Returns the values in log order.
pub fn check_acked_present(
    broker: &Broker,
    topic: &str,
    acked: &[(String, i64)],
    value_of: impl Fn(&str) -> String,
) -> Result<Vec<String>> {
    let dump = python_script(broker, "dump_topic.py", &[topic], Duration::from_secs(120))?;
    let mut at: std::collections::HashMap<i64, String> = std::collections::HashMap::new();
    let mut count: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    let mut order = Vec::new();
    for line in String::from_utf8(dump.stdout)?.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let off: i64 = f.get(1).context("offset column")?.parse()?;
        let v = value_of(f.get(4).context("value column")?);
        *count.entry(v.clone()).or_default() += 1;
        order.push(v.clone());
        at.insert(off, v);
    }
    for (v, off) in acked {
        if at.get(off) != Some(v) {
            bail!(
                "acknowledged {v} at offset {off}; the log has {:?} there",
                at.get(off)
            );
        }
        if count.get(v) != Some(&1) {
            bail!("acknowledged {v} appears {:?} times", count.get(v));
        }
    }
    Ok(order)
}
