//! `eddy pipeline`: define, list, describe and drop the pipelines a broker runs.
//!
//! Definitions are files in the broker's data directory (see `pipelines.rs`), so these
//! commands take `--data-dir` and work whether or not the broker is running; a running broker
//! picks changes up within a second.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use eddy_processor::PipelineSpec;

use super::outln;
use eddy_broker::pipelines::{install, pipelines_dir, read_status};

#[derive(Debug, Subcommand)]
pub(crate) enum PipelineCmd {
    /// Validate a JSON pipeline definition and install it (replacing one of the same name).
    Create {
        /// The definition (see `eddy_processor::spec`).
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
        #[arg(long, value_name = "DIR", default_value = "./eddy-data")]
        data_dir: PathBuf,
    },
    /// List installed pipelines with their state.
    List {
        #[arg(long, value_name = "DIR", default_value = "./eddy-data")]
        data_dir: PathBuf,
    },
    /// Status of one pipeline: state, records in/out, rates, watermark, lag, late records.
    Describe {
        name: String,
        #[arg(long, value_name = "DIR", default_value = "./eddy-data")]
        data_dir: PathBuf,
    },
    /// Stop a pipeline and remove its definition and state.
    Drop {
        name: String,
        #[arg(long, value_name = "DIR", default_value = "./eddy-data")]
        data_dir: PathBuf,
    },
}

pub(crate) fn run(cmd: PipelineCmd) -> anyhow::Result<()> {
    match cmd {
        PipelineCmd::Create { file, data_dir } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let spec = PipelineSpec::from_json(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            spec.compile()
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            install(&data_dir, &spec.name, &bytes)?;
            outln!(
                "pipeline '{}' installed; a running broker starts it within a second",
                spec.name
            );
        }
        PipelineCmd::List { data_dir } => {
            for name in names(&data_dir) {
                let state = read_status(&data_dir, &name)
                    .and_then(|s| s.get("state").and_then(|v| v.as_str()).map(str::to_string))
                    .unwrap_or_else(|| "not started".into());
                outln!("{name}\t{state}");
            }
        }
        PipelineCmd::Describe { name, data_dir } => {
            if !names(&data_dir).contains(&name) {
                anyhow::bail!("no pipeline named '{name}' in {}", data_dir.display());
            }
            match read_status(&data_dir, &name) {
                Some(s) => outln!("{}", serde_json::to_string_pretty(&s)?),
                None => outln!("{{\"name\": \"{name}\", \"state\": \"not started\"}}"),
            }
        }
        PipelineCmd::Drop { name, data_dir } => {
            let dir = pipelines_dir(&data_dir);
            let file = dir.join(format!("{name}.json"));
            if !file.exists() {
                anyhow::bail!("no pipeline named '{name}' in {}", data_dir.display());
            }
            std::fs::remove_file(&file)?;
            // Give a running broker time to stop it before its state goes.
            std::thread::sleep(std::time::Duration::from_millis(2_500));
            let state = dir.join(&name);
            if state.exists() {
                std::fs::remove_dir_all(&state)?;
            }
            outln!("pipeline '{name}' dropped");
        }
    }
    Ok(())
}

fn names(data_dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(pipelines_dir(data_dir))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == "json").then(|| p.file_stem()?.to_str().map(str::to_string))?
        })
        .collect();
    out.sort();
    out
}
