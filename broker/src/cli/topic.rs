//! `eddy topic create|list|describe|delete`.

use std::collections::BTreeMap;

use super::outln;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum TopicCmd {
    /// Create a topic.
    Create {
        name: String,
        #[arg(short, long, default_value_t = 1)]
        partitions: i32,
        /// Topic config, e.g. `-c retention.ms=60000` (repeatable).
        #[arg(short, long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
    },
    /// List topics.
    List,
    /// Show a topic's partitions, offsets and configs.
    Describe { name: String },
    /// Delete a topic.
    Delete { name: String },
}

pub(crate) async fn run(bootstrap: &str, cmd: TopicCmd) -> anyhow::Result<()> {
    let cluster = super::connect(bootstrap).await?;
    match cmd {
        TopicCmd::Create {
            name,
            partitions,
            config,
        } => {
            let mut cfg = BTreeMap::new();
            for c in config {
                let (k, v) = c
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("config '{c}' is not KEY=VALUE"))?;
                cfg.insert(k.to_string(), v.to_string());
            }
            cluster.create_topic(&name, partitions, &cfg).await?;
            outln!("created topic {name} with {partitions} partition(s)");
        }
        TopicCmd::List => {
            for t in cluster.refresh(None).await? {
                let internal = if t.internal { " (internal)" } else { "" };
                outln!("{}\t{} partition(s){internal}", t.name, t.leaders.len());
            }
        }
        TopicCmd::Describe { name } => {
            let infos = cluster.refresh(Some(&[name.as_str()])).await?;
            let t = infos
                .into_iter()
                .find(|t| t.name == name)
                .ok_or_else(|| anyhow::anyhow!("topic '{name}' does not exist"))?;
            outln!(
                "topic {}  id {}  partitions {}",
                t.name,
                t.id,
                t.leaders.len()
            );
            outln!("partition\tleader\tlog-start\tlog-end");
            for (p, leader) in t.leaders.iter().enumerate() {
                let p = p as i32;
                let start = cluster.list_offset(&name, p, -2).await?;
                let end = cluster.list_offset(&name, p, -1).await?;
                outln!("{p}\t{leader}\t{start}\t{end}");
            }
            outln!("configs:");
            for (k, v, is_default) in cluster.topic_configs(&name).await? {
                let d = if is_default { " (default)" } else { "" };
                outln!("  {k}={v}{d}");
            }
        }
        TopicCmd::Delete { name } => {
            cluster.delete_topic(&name).await?;
            outln!("deleted topic {name}");
        }
    }
    Ok(())
}
