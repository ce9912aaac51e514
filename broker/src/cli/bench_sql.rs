//! `eddy bench sql`: Nexmark-style queries in Flink SQL, run in the broker over generated
//! bids, reported as events per second of wall time and per CPU-second (per core).
//!
//! Starts its own broker with a temporary data directory, loads `--events` bids (JSON in the
//! Nexmark bid schema, ~150 bytes each) and runs each query as a bounded in-broker pipeline
//! (`'scan.bounded.mode' = 'latest-offset'`), one after the other.

use std::sync::Arc;

use clap::Args;
use eddy_client::{Cluster, OutRecord};

use super::bench_pipeline::{load_with, wait_finished, Embedded};
use super::outln;

#[derive(Debug, Args)]
pub(crate) struct SqlBench {
    /// Bids to generate.
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Partitions of the bid topic.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Queries to run (q0, q1, q2, q4, q5, q7, q11, hop). q4 (not in the default set) also
    /// reads 1,000 generated auctions.
    #[arg(long, value_delimiter = ',', default_value = "q0,q1,q2,q5,q7,q11,hop")]
    queries: Vec<String>,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

const BID_TOPIC: &str = "nexmark-bids";

const BID_DDL: &str = "CREATE TABLE bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
  `dateTime` TIMESTAMP(3), extra VARCHAR,
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
) WITH ('connector' = 'kafka', 'topic' = 'nexmark-bids', 'format' = 'json',
        'scan.bounded.mode' = 'latest-offset');";

const AUCTION_TOPIC: &str = "nexmark-auctions";

/// Auctions (for q4): ids 1,000 to 1,999, the auctions the bids go to.
const AUCTIONS: u64 = 1_000;

const AUCTION_DDL: &str = "CREATE TABLE auction (
  id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, reserve BIGINT,
  `dateTime` TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra VARCHAR,
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
) WITH ('connector' = 'kafka', 'topic' = 'nexmark-auctions', 'format' = 'json',
        'scan.bounded.mode' = 'latest-offset');";

/// (sink columns, query) in Nexmark's Flink SQL. `hop` is the README's hot-items count (the
/// HOP window aggregate alone; q5 also joins the counts to their maximum).
fn query(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "q0" => (
            "auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3), extra VARCHAR",
            "SELECT auction, bidder, price, `dateTime`, extra FROM bid",
        ),
        "q1" => (
            "auction BIGINT, bidder BIGINT, price DECIMAL(23, 3), `dateTime` TIMESTAMP(3), extra VARCHAR",
            "SELECT auction, bidder, 0.908 * price as price, `dateTime`, extra FROM bid",
        ),
        "q2" => (
            "auction BIGINT, price BIGINT",
            "SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0",
        ),
        "q11" => (
            "bidder BIGINT, bid_count BIGINT, starttime TIMESTAMP(3), endtime TIMESTAMP(3)",
            "SELECT B.bidder, count(*) as bid_count,
                    SESSION_START(B.`dateTime`, INTERVAL '10' SECOND) as starttime,
                    SESSION_END(B.`dateTime`, INTERVAL '10' SECOND) as endtime
             FROM bid B
             GROUP BY B.bidder, SESSION(B.`dateTime`, INTERVAL '10' SECOND)",
        ),
        "q5" => (
            "auction BIGINT, num BIGINT",
            "SELECT AuctionBids.auction, AuctionBids.num
             FROM (
               SELECT auction, count(*) AS num, window_start AS starttime, window_end AS endtime
               FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
               GROUP BY auction, window_start, window_end
             ) AS AuctionBids
             JOIN (
               SELECT max(CountBids.num) AS maxn, CountBids.starttime, CountBids.endtime
               FROM (
                 SELECT count(*) AS num, window_start AS starttime, window_end AS endtime
                 FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
                 GROUP BY auction, window_start, window_end
               ) AS CountBids
               GROUP BY CountBids.starttime, CountBids.endtime
             ) AS MaxBids
             ON AuctionBids.starttime = MaxBids.starttime AND
                AuctionBids.endtime = MaxBids.endtime AND
                AuctionBids.num >= MaxBids.maxn",
        ),
        "q7" => (
            "auction BIGINT, price BIGINT, bidder BIGINT, `dateTime` TIMESTAMP(3), extra VARCHAR",
            "SELECT B.auction, B.price, B.bidder, B.`dateTime`, B.extra
             FROM bid B
             JOIN (
               SELECT MAX(price) AS maxprice, window_end as `dateTime`
               FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
               GROUP BY window_start, window_end
             ) B1
             ON B.price = B1.maxprice
             WHERE B.`dateTime` BETWEEN B1.`dateTime` - INTERVAL '10' SECOND AND B1.`dateTime`",
        ),
        "q4" => (
            "id BIGINT, final BIGINT",
            "SELECT Q.category, AVG(Q.final)
             FROM (
               SELECT MAX(B.price) AS final, A.category
               FROM auction A, bid B
               WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires
               GROUP BY A.id, A.category
             ) Q
             GROUP BY Q.category",
        ),
        "hop" => (
            "auction BIGINT, num BIGINT, window_end TIMESTAMP(3)",
            "SELECT auction, COUNT(*) AS num, window_end
             FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
             GROUP BY auction, window_start, window_end",
        ),
        _ => return None,
    })
}

#[derive(Debug, serde::Serialize)]
struct Row {
    query: String,
    events: u64,
    seconds: f64,
    events_per_s: f64,
    cpu_seconds: f64,
    events_per_cpu_s: f64,
}

pub(crate) async fn run(b: SqlBench) -> anyhow::Result<()> {
    for q in &b.queries {
        anyhow::ensure!(
            query(q).is_some(),
            "unknown query '{q}': choose from q0, q1, q2, q4, q5, q7, q11, hop"
        );
    }
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("data");
    let embedded = Embedded::start(&data_dir).await?;
    let cluster = Arc::clone(&embedded.cluster);
    cluster
        .create_topic(BID_TOPIC, b.partitions, &Default::default())
        .await?;
    load(&cluster, b.events).await?;
    let with_auctions = b.queries.iter().any(|q| q == "q4");
    if with_auctions {
        cluster
            .create_topic(AUCTION_TOPIC, 1, &Default::default())
            .await?;
        load_auctions(&cluster, b.events).await?;
    }
    let mut rows = Vec::new();
    for q in &b.queries {
        let row = run_query(&cluster, &data_dir, q, b.partitions, b.events).await?;
        if !b.json {
            outln!(
                "{:>4}: {:>11.0} events/s   {:>11.0} events per CPU-second   ({:.1} s, {:.1} CPU-s)",
                row.query,
                row.events_per_s,
                row.events_per_cpu_s,
                row.seconds,
                row.cpu_seconds
            );
        }
        rows.push(row);
    }
    if b.json {
        outln!("{}", serde_json::to_string(&rows)?);
    }
    embedded.stop().await
}

/// Runs query `q` as a bounded in-broker pipeline over the `events` loaded bids.
async fn run_query(
    cluster: &Arc<Cluster>,
    data_dir: &std::path::Path,
    q: &str,
    partitions: i32,
    events: u64,
) -> anyhow::Result<Row> {
    let (columns, select) = query(q).ok_or_else(|| anyhow::anyhow!("unknown query {q}"))?;
    let out = format!("nexmark-{q}");
    cluster
        .create_topic(&out, partitions, &Default::default())
        .await?;
    let name = format!("bench-{q}");
    // Queries reading auctions read them too.
    let (tables, records_in) = if select.contains("FROM auction") {
        (format!("{BID_DDL}\n{AUCTION_DDL}"), events + AUCTIONS)
    } else {
        (BID_DDL.to_string(), events)
    };
    let sql = format!(
        "{tables}\nCREATE TABLE sink ({columns}) WITH ('connector' = 'kafka', 'topic' = '{out}', 'format' = 'json');\nINSERT INTO sink {select};"
    );
    eddy_processor::sql::compile_pipeline(&name, &sql).map_err(|e| anyhow::anyhow!("{q}: {e}"))?;
    let cpu_before = cpu_seconds();
    eddy_broker::pipelines::install_sql(data_dir, &name, &sql)?;
    let seconds = wait_finished(data_dir, &name, records_in).await?;
    let cpu = cpu_seconds() - cpu_before;
    Ok(Row {
        query: q.to_string(),
        events,
        seconds,
        events_per_s: events as f64 / seconds,
        cpu_seconds: cpu,
        events_per_cpu_s: events as f64 / cpu.max(0.001),
    })
}

/// CPU time (user + system, all threads) this process has used. `/proc/self/stat` counts in
/// clock ticks of 1/100 s (USER_HZ, fixed at 100 on Linux).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// Produces `n` bids in the Nexmark bid schema: 1,000 hot auctions, 10,000 bidders, event
/// time advancing 1 ms per bid (so 10 M bids span under three hours).
async fn load(cluster: &Arc<Cluster>, n: u64) -> anyhow::Result<()> {
    let base = 1_700_000_000_000i64;
    load_with(cluster, n, |i| {
        let auction = 1_000 + (i * 7_919) % 1_000;
        let ts = base + i as i64;
        let value = format!(
            r#"{{"auction":{auction},"bidder":{},"price":{},"channel":"channel-{}","url":"https://www.nexmark.com/item.htm?query=1","dateTime":"{}","extra":""}}"#,
            2_000 + (i * 104_729) % 10_000,
            100 + (i * 31) % 99_900,
            i % 4,
            eddy_processor::sql::timestamp_text(ts)
        );
        OutRecord {
            topic: BID_TOPIC.into(),
            value: Some(value.into_bytes().into()),
            timestamp: Some(ts),
            partition: Some((i % 4) as i32),
            ..OutRecord::default()
        }
    })
    .await
}

/// Produces the auctions 1,000 to 1,999 (categories 10 to 14) for `n` bids: auction `j`
/// opens at bid `j * n / 1,000` and stays open for a tenth of the run, so each takes the
/// bids of its window and new maxima keep retracting old ones downstream.
async fn load_auctions(cluster: &Arc<Cluster>, n: u64) -> anyhow::Result<()> {
    let base = 1_700_000_000_000i64;
    let step = (n / AUCTIONS).max(1) as i64;
    let open = (n / 10).max(1) as i64;
    load_with(cluster, AUCTIONS, |j| {
        let ts = base + j as i64 * step;
        let value = format!(
            r#"{{"id":{},"itemName":"item-{j}","description":"","initialBid":1,"reserve":1,"dateTime":"{}","expires":"{}","seller":{},"category":{},"extra":""}}"#,
            1_000 + j,
            eddy_processor::sql::timestamp_text(ts),
            eddy_processor::sql::timestamp_text(ts + open),
            1 + j % 100,
            10 + j % 5
        );
        OutRecord {
            topic: AUCTION_TOPIC.into(),
            value: Some(value.into_bytes().into()),
            timestamp: Some(ts),
            partition: Some(0),
            ..OutRecord::default()
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated bids carry event times from 2023. A slow query (q7 at 10 M events took
    /// minutes) outlived the broker's first retention check, which deleted its unread input:
    /// the run "finished" having read 7.2 M of 10 M bids. Here retention is checked every
    /// 10 ms while the bids wait to be read.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bids_outlive_retention_checks_of_the_bench_broker() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let data_dir = dir.path().join("data");
        let embedded =
            Embedded::start_with(&data_dir, &[("log.retention.check.interval.ms", "10")]).await?;
        let cluster = Arc::clone(&embedded.cluster);
        cluster
            .create_topic(BID_TOPIC, 4, &Default::default())
            .await?;
        load(&cluster, 3_000).await?;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let row = run_query(&cluster, &data_dir, "q7", 4, 3_000).await?;
        assert_eq!(row.events, 3_000);
        embedded.stop().await
    }
}
