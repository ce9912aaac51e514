//! Client-side subcommands of `eddy`: topic admin, produce, consume and bench. They speak
//! the Kafka protocol through `eddy-client`, so they work against any Kafka-compatible
//! cluster.

pub(crate) mod admin;
pub(crate) mod bench;
pub(crate) mod bench_pipeline;
pub(crate) mod bench_sql;
pub(crate) mod data;
pub(crate) mod group;
pub(crate) mod pipeline;
pub(crate) mod sql;
pub(crate) mod sql_query;
pub(crate) mod topic;

use std::sync::Arc;

use eddy_client::{Cluster, Compression};

/// `println!` that ends the process quietly when stdout is closed (`eddy topic list | head`)
/// instead of panicking on the broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}
pub(crate) use outln;

/// Connects to the bootstrap servers, with a one-line error when none answers.
pub(crate) async fn connect(bootstrap: &str) -> anyhow::Result<Arc<Cluster>> {
    Cluster::connect(bootstrap, "eddy-cli")
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach a broker at {bootstrap}: {e}"))
}

pub(crate) fn parse_compression(s: &str) -> anyhow::Result<Compression> {
    Ok(match s {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => {
            anyhow::bail!("unknown compression '{other}': use none, gzip, snappy, lz4 or zstd")
        }
    })
}

pub(crate) fn parse_acks(s: &str) -> anyhow::Result<i16> {
    Ok(match s {
        "all" | "-1" => -1,
        "0" => 0,
        "1" => 1,
        other => anyhow::bail!("invalid acks '{other}': use 0, 1 or all"),
    })
}
