//! Shared by the SQL tests: a deterministic Nexmark-style generator writing JSON to topics of
//! a `StorageHost`, and running a SQL script's pipeline bounded over them.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use eddy_client::consumer::decode_into;
use eddy_processor::sql::{Catalog, Outcome, Session};
use eddy_processor::{run, Backend, LocalHost, PipelineStatus, RunState, StorageHost};
use eddy_protocol::batch::BatchBuilder;
use tokio::sync::watch;

/// 2024-01-01 00:00:00 UTC.
pub const BASE_MS: i64 = 1_704_067_200_000;

/// A small deterministic PRNG (SplitMix64), so the test needs no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> i64 {
        (self.next() % n) as i64
    }
}

/// One bid (Flink's Nexmark schema).
#[derive(Debug, Clone)]
pub struct Bid {
    pub auction: i64,
    pub bidder: i64,
    pub price: i64,
    pub channel: String,
    pub url: String,
    /// Event time, epoch milliseconds.
    pub date_time: i64,
    pub extra: String,
    /// The partition it is written to.
    pub partition: i32,
}

pub const CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

/// Civil date-time text of `ms`, written independently of the engine's formatter:
/// `yyyy-MM-dd HH:mm:ss.SSS` (three fraction digits, as producers often write it).
pub fn ts_text(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rest = ms.rem_euclid(86_400_000);
    // Days around the test dates, counted from 2023-12-01 (no leap day in between).
    let mut d = days - 19_692; // 2023-12-01
    let (mut year, mut month) = (2023, 12);
    let lengths = |y: i64, m: i64| match m {
        2 if y % 4 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    assert!(d >= 0, "test dates are after 2023-12-01");
    while d >= lengths(year, month) {
        d -= lengths(year, month);
        month += 1;
        if month == 13 {
            month = 1;
            year += 1;
        }
    }
    format!(
        "{year}-{month:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        d + 1,
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

/// How Flink's json format writes a TIMESTAMP(3): the fraction without trailing zeros, none
/// when zero.
pub fn flink_ts(ms: i64) -> String {
    let full = ts_text(ms);
    let (secs, frac) = full.split_once('.').expect("has a fraction");
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        secs.to_string()
    } else {
        format!("{secs}.{frac}")
    }
}

/// `n` bids in event-time order, spread over `partitions` partitions (each partition is in
/// order, so no bid is late); every ~150 bids time jumps 12-30 s, so sessions end.
pub fn bids(n: usize, partitions: i32, seed: u64) -> Vec<Bid> {
    let mut r = Rng::new(seed);
    let mut t = BASE_MS + 123;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        t += r.below(300);
        if r.below(150) == 0 {
            t += 12_000 + r.below(18_000);
        }
        // Some times on whole seconds, to check the formatting of zero fractions.
        let date_time = if i % 17 == 0 { t - t % 1000 + 1000 } else { t };
        t = t.max(date_time);
        out.push(Bid {
            auction: 1000 + r.below(300),
            bidder: 2000 + r.below(25),
            price: 1 + r.below(20_000),
            channel: CHANNELS[r.below(4) as usize].to_string(),
            url: format!("https://www.nexmark.com/item/{}", r.below(1000)),
            date_time,
            extra: if i % 5 == 0 {
                String::new()
            } else {
                format!("x{}", r.below(100))
            },
            partition: (i % partitions as usize) as i32,
        });
    }
    out
}

pub fn bid_json(b: &Bid) -> String {
    format!(
        r#"{{"auction":{},"bidder":{},"price":{},"channel":"{}","url":"{}","dateTime":"{}","extra":"{}"}}"#,
        b.auction,
        b.bidder,
        b.price,
        b.channel,
        b.url,
        ts_text(b.date_time),
        b.extra
    )
}

/// Appends values (no key) to a partition, in batches of 100.
pub fn produce(host: &StorageHost, topic: &str, partition: i32, values: &[(i64, String)]) {
    for chunk in values.chunks(100) {
        let mut b = BatchBuilder::default();
        for (ts, v) in chunk {
            b.push(*ts, None, Some(v.as_bytes()), &[]);
        }
        host.append_plain(topic, partition, b.finish())
            .expect("append");
    }
}

/// Writes the bids to `topic` (created with `partitions` partitions).
pub fn write_bids(host: &StorageHost, topic: &str, partitions: i32, bids: &[Bid]) {
    for p in 0..partitions {
        let values: Vec<(i64, String)> = bids
            .iter()
            .filter(|b| b.partition == p)
            .map(|b| (b.date_time, bid_json(b)))
            .collect();
        produce(host, topic, p, &values);
    }
}

/// One output record.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub key: Option<String>,
    pub value: Option<String>,
    pub timestamp: i64,
}

/// Every record of `topic`, partition by partition.
pub fn read_all(host: &StorageHost, topic: &str) -> Vec<Record> {
    let mut out = Vec::new();
    let parts = host.partitions(topic).expect("topic exists");
    for p in 0..parts {
        let reader = host.reader(topic, p).expect("reader");
        let mut pos = reader.log_start_offset();
        while pos < reader.log_end_offset() {
            let r = reader.read(pos, 1 << 20).expect("read");
            let mut recs = Vec::new();
            pos = decode_into(topic, p, pos, r.bytes, &mut recs).expect("decode");
            for r in recs {
                out.push(Record {
                    partition: p,
                    key: r.key.map(|k| String::from_utf8_lossy(&k).into_owned()),
                    value: r.value.map(|v| String::from_utf8_lossy(&v).into_owned()),
                    timestamp: r.timestamp,
                });
            }
        }
    }
    out
}

/// The DDL of the Nexmark `bid` table over topic `bids`, bounded at the log end as of start.
pub const BID_DDL: &str = "CREATE TABLE bid (
    auction  BIGINT,
    bidder  BIGINT,
    price  BIGINT,
    channel  VARCHAR,
    url  VARCHAR,
    `dateTime`  TIMESTAMP(3),
    extra  VARCHAR,
    WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
) WITH (
    'connector' = 'kafka',
    'topic' = 'bids',
    'properties.bootstrap.servers' = 'localhost:9092',
    'scan.startup.mode' = 'earliest-offset',
    'scan.bounded.mode' = 'latest-offset',
    'format' = 'json'
)";

/// Runs `script` (DDL + one INSERT) in a fresh session, creates the output topic with
/// `out_partitions` partitions, runs the pipeline bounded and returns the output records.
pub async fn run_sql(
    host: &Arc<StorageHost>,
    dir: &std::path::Path,
    script: &str,
    out_partitions: i32,
) -> Vec<Record> {
    run_sql_status(host, dir, script, out_partitions).await.0
}

/// [`run_sql`], also answering the pipeline's final status.
pub async fn run_sql_status(
    host: &Arc<StorageHost>,
    dir: &std::path::Path,
    script: &str,
    out_partitions: i32,
) -> (Vec<Record>, eddy_processor::StatusSnapshot) {
    let mut session = Session::new(Catalog::default());
    let outcomes = session.execute(script).unwrap_or_else(|e| panic!("{e}"));
    let p = outcomes
        .into_iter()
        .find_map(|o| match o {
            Outcome::Pipeline(p) => Some(p),
            _ => None,
        })
        .expect("the script has an INSERT");
    host.create_topic(&p.output_topic, out_partitions)
        .expect("output topic");
    let pipeline = p.compile().unwrap_or_else(|e| panic!("{e}"));
    let status = Arc::new(PipelineStatus::default());
    let (_stop_tx, stop) = watch::channel(false);
    let backend = Backend::Local(Arc::clone(host) as Arc<dyn LocalHost>);
    run(
        pipeline,
        backend,
        dir.join("state").join(&p.name),
        Arc::clone(&status),
        stop,
    )
    .await
    .expect("pipeline runs");
    let snapshot = status.snapshot();
    assert_eq!(snapshot.state, RunState::Finished);
    (read_all(host, &p.output_topic), snapshot)
}

/// A host with the bids written to topic `bids` (3 partitions).
pub fn host_with_bids(dir: &std::path::Path, bids: &[Bid]) -> Arc<StorageHost> {
    let host = StorageHost::new(dir.join("logs"));
    host.create_topic("bids", 3).expect("topic");
    write_bids(&host, "bids", 3, bids);
    host
}

/// Output values, sorted (for comparing sets of results regardless of partition order).
pub fn sorted_values(records: &[Record]) -> Vec<String> {
    let mut v: Vec<String> = records.iter().filter_map(|r| r.value.clone()).collect();
    v.sort();
    v
}

/// A person (Flink's Nexmark schema).
#[derive(Debug, Clone)]
pub struct Person {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub credit_card: String,
    pub city: String,
    pub state: String,
    pub date_time: i64,
}

/// An auction (Flink's Nexmark schema).
#[derive(Debug, Clone)]
pub struct Auction {
    pub id: i64,
    pub item_name: String,
    pub initial_bid: i64,
    pub reserve: i64,
    pub date_time: i64,
    pub expires: i64,
    pub seller: i64,
    pub category: i64,
}

pub const STATES: [&str; 6] = ["OR", "ID", "CA", "WA", "AZ", "NY"];

/// People and auctions interleaved in time: person ids 1..=n_people, auctions whose sellers
/// are mostly existing people (some unknown ids), categories 10..=14.
pub fn people_and_auctions(
    n_people: usize,
    n_auctions: usize,
    seed: u64,
) -> (Vec<Person>, Vec<Auction>) {
    let mut r = Rng::new(seed);
    let mut t = BASE_MS;
    let people: Vec<Person> = (1..=n_people as i64)
        .map(|id| {
            t += r.below(500);
            Person {
                id,
                name: format!("person {id}"),
                email: format!("p{id}@example.com"),
                credit_card: format!("{:016}", r.below(1_000_000_000)),
                city: format!("city{}", r.below(20)),
                state: STATES[r.below(6) as usize].to_string(),
                date_time: t,
            }
        })
        .collect();
    let mut t = BASE_MS;
    let auctions = (0..n_auctions as i64)
        .map(|i| {
            t += r.below(300);
            Auction {
                id: 1000 + i,
                item_name: format!("item {i}"),
                initial_bid: r.below(1000),
                reserve: r.below(5000),
                date_time: t,
                expires: t + 60_000,
                seller: 1 + r.below(n_people as u64 + 20),
                category: 10 + r.below(5),
            }
        })
        .collect();
    (people, auctions)
}

pub fn person_json(p: &Person) -> String {
    format!(
        r#"{{"id":{},"name":"{}","emailAddress":"{}","creditCard":"{}","city":"{}","state":"{}","dateTime":"{}","extra":""}}"#,
        p.id,
        p.name,
        p.email,
        p.credit_card,
        p.city,
        p.state,
        ts_text(p.date_time)
    )
}

pub fn auction_json(a: &Auction) -> String {
    format!(
        r#"{{"id":{},"itemName":"{}","description":"d","initialBid":{},"reserve":{},"dateTime":"{}","expires":"{}","seller":{},"category":{},"extra":""}}"#,
        a.id,
        a.item_name,
        a.initial_bid,
        a.reserve,
        ts_text(a.date_time),
        ts_text(a.expires),
        a.seller,
        a.category
    )
}

pub const PERSON_DDL: &str = "CREATE TABLE person (
    id  BIGINT,
    name  VARCHAR,
    emailAddress  VARCHAR,
    creditCard  VARCHAR,
    city  VARCHAR,
    state  VARCHAR,
    `dateTime` TIMESTAMP(3),
    extra  VARCHAR,
    WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
) WITH ('connector' = 'kafka', 'topic' = 'persons', 'format' = 'json', 'scan.bounded.mode' = 'latest-offset')";

pub const AUCTION_DDL: &str = "CREATE TABLE auction (
    id  BIGINT,
    itemName  VARCHAR,
    description  VARCHAR,
    initialBid  BIGINT,
    reserve  BIGINT,
    `dateTime`  TIMESTAMP(3),
    expires  TIMESTAMP(3),
    seller  BIGINT,
    category  BIGINT,
    extra  VARCHAR,
    WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
) WITH ('connector' = 'kafka', 'topic' = 'auctions', 'format' = 'json', 'scan.bounded.mode' = 'latest-offset')";
