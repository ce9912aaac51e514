//! `eddy group list|describe|reset`.

use std::collections::{BTreeMap, BTreeSet};

use super::outln;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum GroupCmd {
    /// List consumer groups with their state.
    List,
    /// Members, assignments, committed offsets, log end offsets and lag per partition.
    Describe { group: String },
    /// Move a group's committed offsets (only while the group has no members).
    Reset {
        group: String,
        #[arg(long)]
        topic: String,
        #[arg(long, group = "to")]
        to_earliest: bool,
        #[arg(long, group = "to")]
        to_latest: bool,
        #[arg(long, group = "to", value_name = "N")]
        to_offset: Option<i64>,
    },
}

pub(crate) async fn run(bootstrap: &str, cmd: GroupCmd) -> anyhow::Result<()> {
    let cluster = super::connect(bootstrap).await?;
    match cmd {
        GroupCmd::List => {
            for (id, ptype, state) in cluster.list_groups().await? {
                let ptype = if ptype.is_empty() {
                    "-"
                } else {
                    ptype.as_str()
                };
                outln!("{id}\t{state}\t{ptype}");
            }
        }
        GroupCmd::Describe { group } => {
            let info = cluster.describe_group(&group).await?;
            let offsets = cluster.group_offsets(&group).await?;
            if info.state == "Dead" && offsets.is_empty() {
                anyhow::bail!("group '{group}' does not exist");
            }
            outln!(
                "group {}  state {}  protocol {} {}",
                info.group,
                info.state,
                info.protocol_type,
                info.protocol
            );
            let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
            outln!("members:");
            for m in &info.members {
                let instance = m
                    .instance_id
                    .as_deref()
                    .map(|i| format!(" instance={i}"))
                    .unwrap_or_default();
                outln!(
                    "  {} client={} host={}{instance} partitions={}",
                    m.member_id,
                    m.client_id,
                    m.host,
                    m.assignment.len()
                );
                for tp in &m.assignment {
                    owner.insert(tp.clone(), m.member_id.clone());
                }
            }
            let parts: BTreeSet<(String, i32)> = offsets
                .keys()
                .cloned()
                .chain(owner.keys().cloned())
                .collect();
            outln!("topic\tpartition\tcommitted\tlog-end\tlag\tmember");
            for (t, p) in parts {
                let committed = offsets.get(&(t.clone(), p)).map(|(o, _)| *o);
                let end = cluster.list_offset(&t, p, -1).await.ok();
                let lag = match (committed, end) {
                    (Some(c), Some(e)) => (e - c).max(0).to_string(),
                    _ => "-".into(),
                };
                let show = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
                let member = owner
                    .get(&(t.clone(), p))
                    .cloned()
                    .unwrap_or_else(|| "-".into());
                outln!(
                    "{t}\t{p}\t{}\t{}\t{lag}\t{member}",
                    show(committed),
                    show(end)
                );
            }
        }
        GroupCmd::Reset {
            group,
            topic,
            to_earliest,
            to_latest,
            to_offset,
        } => {
            let target = match (to_earliest, to_latest, to_offset) {
                (true, _, _) => -2,
                (_, true, _) => -1,
                (_, _, Some(n)) if n >= 0 => n,
                (_, _, Some(n)) => anyhow::bail!("--to-offset must be >= 0, got {n}"),
                _ => anyhow::bail!("say where to: --to-earliest, --to-latest or --to-offset N"),
            };
            let info = cluster.describe_group(&group).await?;
            if !info.members.is_empty() {
                anyhow::bail!(
                    "group '{group}' has {} active member(s); stop its consumers before resetting offsets",
                    info.members.len()
                );
            }
            let t = cluster.topic(&topic).await?;
            let mut offsets = BTreeMap::new();
            for p in 0..t.leaders.len() as i32 {
                let off = if target < 0 {
                    cluster.list_offset(&topic, p, target).await?
                } else {
                    let start = cluster.list_offset(&topic, p, -2).await?;
                    let end = cluster.list_offset(&topic, p, -1).await?;
                    target.clamp(start, end)
                };
                offsets.insert((topic.clone(), p), off);
            }
            cluster.commit_group_offsets(&group, &offsets).await?;
            for ((t, p), o) in offsets {
                outln!("{group}\t{t}\t{p}\t{o}");
            }
        }
    }
    Ok(())
}
