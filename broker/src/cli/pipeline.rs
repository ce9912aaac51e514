//! `eddy pipeline`: create, list, describe and drop the pipelines a broker runs, through the
//! broker's admin HTTP API (`--admin`, the broker's `--http` address).

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::Value;

use super::admin::{segment, AdminClient, DEFAULT_ADMIN};
use super::outln;

#[derive(Debug, Subcommand)]
pub(crate) enum PipelineCmd {
    /// Create a pipeline from a JSON definition (see `eddy_processor::spec`).
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
        PipelineCmd::Drop { name, admin } => {
            AdminClient::new(&admin).delete(&format!("/v1/pipelines/{}", segment(&name)))?;
            outln!("pipeline '{name}' dropped");
        }
    }
    Ok(())
}
