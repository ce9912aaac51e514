//! The `eddy` command line.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use eddy_broker::BrokerConfig;

#[derive(Debug, Parser)]
#[command(
    name = "eddy",
    version,
    about = "Eddy: a Kafka-compatible broker with a built-in stream processor"
)]
struct Cli {
    /// Kafka bootstrap servers for client commands (topic, produce, consume, bench,
    /// pipeline run).
    #[arg(
        short = 'b',
        long = "bootstrap-server",
        global = true,
        env = "EDDY_BROKERS",
        default_value = "127.0.0.1:9092",
        value_name = "HOST:PORT"
    )]
    bootstrap: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker (defaults: listen on 127.0.0.1:9092, data in ./eddy-data).
    Serve(ServeArgs),
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topic(cli::topic::TopicCmd),
    /// Verify every segment and index of a stopped broker's data directory (read-only);
    /// exits 1 on damage.
    Check {
        #[arg(long, value_name = "DIR", default_value = "./eddy-data")]
        data_dir: String,
    },
    /// List, describe and reset consumer groups.
    #[command(subcommand)]
    Group(cli::group::GroupCmd),
    /// Produce lines from stdin as records.
    Produce(cli::data::ProduceArgs),
    /// Print records of a topic.
    Consume(cli::data::ConsumeArgs),
    /// Install, list, describe and drop in-broker pipelines.
    #[command(subcommand)]
    Pipeline(cli::pipeline::PipelineCmd),
    /// Run Flink SQL statements in the broker (from a file or a prompt).
    Sql(cli::sql::SqlArgs),
    /// Benchmark produce, consume and end-to-end latency.
    #[command(subcommand)]
    Bench(cli::bench::BenchCmd),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// TOML config file; keys as in `--set` (e.g. `"log.retention.ms" = 60000`).
    #[arg(long, value_name = "FILE")]
    config: Option<String>,
    /// Address to listen on for Kafka clients.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Address returned to clients in Metadata (default: the listen address).
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// Directory for topic metadata and partition logs.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// Address of the admin HTTP API (pipelines, SQL), or `off` [default: 127.0.0.1:9644].
    #[arg(long, value_name = "HOST:PORT")]
    http: Option<String>,
    /// Any setting, by its name: `--set num.partitions=3` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

fn build_config(args: &ServeArgs) -> Result<BrokerConfig, String> {
    let mut c = BrokerConfig::default();
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {path}: {e}"))?;
        c.apply_toml(path, &text).map_err(|e| e.to_string())?;
    }
    for pair in &args.set {
        c.set_pair(pair).map_err(|e| e.to_string())?;
    }
    let flags = [
        ("listen", &args.listen),
        ("advertise", &args.advertise),
        ("data-dir", &args.data_dir),
        ("http", &args.http),
    ];
    for (key, value) in flags {
        if let Some(v) = value {
            c.set(key, v).map_err(|e| e.to_string())?;
        }
    }
    c.check().map_err(|e| e.to_string())?;
    Ok(c)
}

async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Logging to stderr (`EDDY_LOG` overrides `default_level`; colour only on a terminal) and
/// the multi-threaded runtime every command runs on.
fn runtime(default_level: &str) -> Result<tokio::runtime::Runtime, ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EDDY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("eddy: cannot start the runtime: {e}");
            ExitCode::from(1)
        })
}

/// Runs a client command on a fresh runtime; errors are one line and exit code 1.
fn client<F: std::future::Future<Output = anyhow::Result<()>>>(f: impl FnOnce() -> F) -> ExitCode {
    let rt = match runtime("warn") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(f()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eddy: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if e.use_stderr() => {
            // One line naming the bad flag or value; `eddy --help` has the rest.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("eddy: {first} (see `eddy --help`)");
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    let bootstrap = cli.bootstrap.clone();
    match cli.command {
        Command::Topic(cmd) => client(|| cli::topic::run(&bootstrap, cmd)),
        Command::Check { data_dir } => {
            match eddy_broker::check::check_data_dir(std::path::Path::new(&data_dir)) {
                Ok(report) => {
                    println!("{report}");
                    if report.is_clean() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("eddy: cannot check {data_dir}: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Group(cmd) => client(|| cli::group::run(&bootstrap, cmd)),
        Command::Produce(a) => client(|| cli::data::produce(&bootstrap, a)),
        Command::Consume(a) => client(|| cli::data::consume(&bootstrap, a)),
        Command::Bench(cmd) => client(|| cli::bench::run(&bootstrap, cmd)),
        Command::Pipeline(cli::pipeline::PipelineCmd::Run { file, state_dir }) => {
            client(|| cli::pipeline::run_standalone(file, bootstrap, state_dir))
        }
        Command::Sql(args) => match cli::sql::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("eddy: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Pipeline(cmd) => match cli::pipeline::run(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("eddy: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Serve(args) => {
            let config = match build_config(&args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("eddy: {e}");
                    return ExitCode::from(2);
                }
            };
            let rt = match runtime("info") {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            match rt.block_on(eddy_broker::serve(config, stop_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("eddy: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// clap's own consistency checks over every subcommand (duplicate flags and the like
    /// otherwise only show up as a panic when that subcommand runs).
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
