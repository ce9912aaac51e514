//! `eddy pipeline`: create, list, describe and drop the pipelines a broker runs, through the
//! broker's admin HTTP API (`--admin`, the broker's `--http` address).

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::Value;

use super::admin::{segment, AdminClient, DEFAULT_ADMIN};
use super::outln;

#[derive(Debug, Subcommand)]
pub(crate) enum PipelineCmd {
    /// Create a pipeline from a JSON definition (see `eddy_processor::spec`), or from a
    /// `.sql` file of Flink SQL (as `eddy sql -f`).
    Create {
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
        /// The broker's admin API (`eddy serve --http`).
        #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_ADMIN)]
        admin: String,
    },
    /// List the broker's pipelines with their state.
    List {
        #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_ADMIN)]
        admin: String,
    },
    /// Status of one pipeline: state, records in/out, rates, watermark, lag, late records.
    Describe {
        name: String,
        #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_ADMIN)]
        admin: String,
    },
    /// Run the INSERT statements of a SQL file in this process against any Kafka-compatible
    /// cluster (the scale-out path), until Ctrl-C.
    Run {
        /// (The cluster is the global `--bootstrap-server`.)
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
        /// Where each pipeline keeps its checkpoints (one directory per pipeline).
        #[arg(long, value_name = "DIR", default_value = "./eddy-pipelines")]
        state_dir: PathBuf,
    },
    /// Stop a pipeline and remove its definition and state.
    Drop {
        name: String,
        #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_ADMIN)]
        admin: String,
    },
}

pub(crate) fn run(cmd: PipelineCmd) -> anyhow::Result<()> {
    match cmd {
        PipelineCmd::Create { file, admin } => {
            if file.extension().is_some_and(|e| e == "sql") {
                return super::sql::run_file(&AdminClient::new(&admin), &file);
            }
            let bytes = std::fs::read(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let r = AdminClient::new(&admin)
                .post("/v1/pipelines", &bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let name = r["name"].as_str().unwrap_or("?");
            if r["created"] == Value::Bool(true) {
                outln!("pipeline '{name}' created");
            } else {
                outln!("pipeline '{name}' already exists with this definition");
            }
        }
        PipelineCmd::List { admin } => {
            let r = AdminClient::new(&admin).get("/v1/pipelines")?;
            let rows = r["pipelines"].as_array().cloned().unwrap_or_default();
            if rows.is_empty() {
                outln!("no pipelines");
            }
            for p in rows {
                let state = p["state"].as_str().unwrap_or("?");
                let error = p["error"]
                    .as_str()
                    .map(|e| format!("\t{e}"))
                    .unwrap_or_default();
                outln!(
                    "{}\t{}\t{state}\tin {}\tout {}{error}",
                    p["name"].as_str().unwrap_or("?"),
                    p["kind"].as_str().unwrap_or("?"),
                    p["records_in"].as_u64().unwrap_or(0),
                    p["records_out"].as_u64().unwrap_or(0),
                );
            }
        }
        PipelineCmd::Describe { name, admin } => {
            let r = AdminClient::new(&admin).get(&format!("/v1/pipelines/{}", segment(&name)))?;
            outln!("{}", serde_json::to_string_pretty(&r)?);
        }
        PipelineCmd::Run { .. } => {
            anyhow::bail!("internal: `pipeline run` is dispatched by main")
        }
        PipelineCmd::Drop { name, admin } => {
            AdminClient::new(&admin).delete(&format!("/v1/pipelines/{}", segment(&name)))?;
            outln!("pipeline '{name}' dropped");
        }
    }
    Ok(())
}

/// `eddy pipeline run`: the SQL file's `INSERT`s as pipelines in this process, against any
/// Kafka-compatible cluster (the scale-out path), until Ctrl-C or SIGTERM.
pub(crate) async fn run_standalone(
    file: PathBuf,
    bootstrap: String,
    state_dir: PathBuf,
) -> anyhow::Result<()> {
    use std::sync::Arc;

    use eddy_processor::sql::{Catalog, Outcome, Session};
    use eddy_processor::{Backend, PipelineStatus};

    let text = std::fs::read_to_string(&file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let mut session = Session::new(Catalog::default());
    let outcomes = session
        .execute(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mut plans = Vec::new();
    for o in outcomes {
        if let Outcome::Pipeline(p) = o {
            let plan = p
                .compile()
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            plans.push((p.name, plan));
        }
    }
    anyhow::ensure!(
        !plans.is_empty(),
        "{} has no INSERT INTO ... SELECT: nothing to run",
        file.display()
    );
    let cluster = super::connect(&bootstrap).await?;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for (name, plan) in plans {
        let status = Arc::new(PipelineStatus::default());
        eprintln!("pipeline '{name}' running against {bootstrap}");
        let task = tokio::spawn(eddy_processor::run(
            plan,
            Backend::Remote(Arc::clone(&cluster)),
            state_dir.join(&name),
            Arc::clone(&status),
            stop.clone(),
        ));
        tasks.push((name, status, task));
    }
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
    tick.tick().await;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = tick.tick() => {
                for (name, status, _) in &tasks {
                    let s = status.snapshot();
                    eprintln!(
                        "{name}: in {} out {} late {} bad {} watermark {:?}",
                        s.records_in, s.records_out, s.late_records, s.bad_records, s.watermark
                    );
                }
                if tasks.iter().all(|(_, _, t)| t.is_finished()) {
                    break;
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    let mut failed = None;
    for (name, _, task) in tasks {
        match task.await {
            Ok(Ok(())) => eprintln!("pipeline '{name}' stopped"),
            Ok(Err(e)) => failed = Some(format!("pipeline '{name}' failed: {e}")),
            Err(e) => failed = Some(format!("pipeline '{name}' panicked: {e}")),
        }
    }
    match failed {
        Some(e) => anyhow::bail!(e),
        None => Ok(()),
    }
}
