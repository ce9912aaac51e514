//! Nexmark queries in Flink SQL (as close to the Flink text as the supported subset allows),
//! run bounded over generated bids; every result is compared with one computed here in
//! plain Rust from the generator's bids, not from Eddy's output.

mod sql_support;

use std::collections::{BTreeMap, BTreeSet};

use eddy_processor::Value;
use sql_support::*;

const N: usize = 3_000;

fn sink(name: &str, cols: &str, topic: &str) -> String {
    format!("CREATE TABLE {name} ({cols}) WITH ('connector' = 'kafka', 'topic' = '{topic}', 'format' = 'json')")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q0_pass_through_writes_every_bid_as_flink_would() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bids = bids(N, 3, 7);
    let host = host_with_bids(dir.path(), &bids);
    let script = format!(
        "{BID_DDL};\n{};\nINSERT INTO nexmark_q0\nSELECT auction, bidder, price, `dateTime`, extra FROM bid;",
        sink("nexmark_q0", "auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3), extra VARCHAR", "q0")
    );
    let out = run_sql(&host, dir.path(), &script, 2).await;
    let mut want: Vec<String> = bids
        .iter()
        .map(|b| {
            format!(
                r#"{{"auction":{},"bidder":{},"price":{},"dateTime":"{}","extra":"{}"}}"#,
                b.auction,
                b.bidder,
                b.price,
                flink_ts(b.date_time),
                b.extra
            )
        })
        .collect();
    want.sort();
    assert_eq!(sorted_values(&out), want);
    assert!(
        out.iter().all(|r| r.key.is_none()),
        "a kafka sink without key fields writes no key"
    );
    assert!(
        want.iter().any(|v| v.contains(":00\",")),
        "some times have no fraction"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q1_currency_conversion_is_exact_decimal_arithmetic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bids = bids(N, 3, 11);
    let host = host_with_bids(dir.path(), &bids);
    let script = format!(
        "{BID_DDL};\n{};\nINSERT INTO nexmark_q1
SELECT
    auction,
    bidder,
    0.908 * price as price, -- convert dollar to euro
    `dateTime`,
    extra
FROM bid;",
        sink("nexmark_q1", "auction BIGINT, bidder BIGINT, price DECIMAL(23, 3), `dateTime` TIMESTAMP(3), extra VARCHAR", "q1")
    );
    let out = run_sql(&host, dir.path(), &script, 1).await;
    // 0.908 * price is exact: price * 908 thousandths. Flink writes the DECIMAL(23, 3) as a
    // JSON number with its scale: 908.000, 1.816 (BigDecimal.toString).
    let euro = |p: i64| {
        let m = p * 908;
        format!("{}.{:03}", m / 1000, m % 1000)
    };
    let mut want: Vec<String> = bids
        .iter()
        .map(|b| {
            format!(
                r#"{{"auction":{},"bidder":{},"price":{},"dateTime":"{}","extra":"{}"}}"#,
                b.auction,
                b.bidder,
                euro(b.price),
                flink_ts(b.date_time),
                b.extra
            )
        })
        .collect();
    want.sort();
    assert_eq!(sorted_values(&out), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q2_selection_by_mod() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bids = bids(N, 3, 13);
    let host = host_with_bids(dir.path(), &bids);
    let script = format!(
        "{BID_DDL};\n{};\nINSERT INTO nexmark_q2\nSELECT auction, price FROM bid WHERE MOD(auction, 123) = 0;",
        sink("nexmark_q2", "auction BIGINT, price BIGINT", "q2")
    );
    let out = run_sql(&host, dir.path(), &script, 1).await;
    let mut want: Vec<String> = bids
        .iter()
        .filter(|b| b.auction % 123 == 0)
        .map(|b| format!(r#"{{"auction":{},"price":{}}}"#, b.auction, b.price))
        .collect();
    want.sort();
    assert!(!want.is_empty(), "the generator hits multiples of 123");
    assert_eq!(sorted_values(&out), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q11_user_sessions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bids = bids(N, 3, 17);
    let host = host_with_bids(dir.path(), &bids);
    let script = format!(
        "{BID_DDL};\n{};\nINSERT INTO nexmark_q11
SELECT
    B.bidder,
    count(*) as bid_count,
    SESSION_START(B.`dateTime`, INTERVAL '10' SECOND) as starttime,
    SESSION_END(B.`dateTime`, INTERVAL '10' SECOND) as endtime
FROM bid B
GROUP BY B.bidder, SESSION(B.`dateTime`, INTERVAL '10' SECOND);",
        sink(
            "nexmark_q11",
            "bidder BIGINT, bid_count BIGINT, starttime TIMESTAMP(3), endtime TIMESTAMP(3)",
            "q11"
        )
    );
    let out = run_sql(&host, dir.path(), &script, 2).await;
    // Sessions per bidder: windows [t, t + 10 s) merge when they overlap or touch.
    let mut per: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for b in &bids {
        per.entry(b.bidder).or_default().push(b.date_time);
    }
    let mut want = Vec::new();
    for (bidder, mut ts) in per {
        ts.sort();
        let (mut start, mut end, mut n) = (ts[0], ts[0] + 10_000, 0);
        for t in ts {
            if t > end {
                want.push(format!(
                    r#"{{"bidder":{bidder},"bid_count":{n},"starttime":"{}","endtime":"{}"}}"#,
                    flink_ts(start),
                    flink_ts(end)
                ));
                start = t;
                n = 0;
            }
            end = end.max(t + 10_000);
            n += 1;
        }
        want.push(format!(
            r#"{{"bidder":{bidder},"bid_count":{n},"starttime":"{}","endtime":"{}"}}"#,
            flink_ts(start),
            flink_ts(end)
        ));
    }
    want.sort();
    assert!(
        want.len() > 50,
        "the generator's pauses split sessions ({})",
        want.len()
    );
    assert_eq!(sorted_values(&out), want);

    // The same with the SESSION window TVF (Flink 1.19+ syntax).
    let script = format!(
        "{BID_DDL};\n{};\nINSERT INTO sessions_tvf
SELECT bidder, COUNT(*) AS bid_count, window_start AS starttime, window_end AS endtime
FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
GROUP BY bidder, window_start, window_end",
        sink(
            "sessions_tvf",
            "bidder BIGINT, bid_count BIGINT, starttime TIMESTAMP(3), endtime TIMESTAMP(3)",
            "sessions-tvf"
        )
    );
    let out = run_sql(&host, &dir.path().join("tvf"), &script, 2).await;
    assert_eq!(sorted_values(&out), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_counts_per_auction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bids = bids(N, 3, 19);
    let host = host_with_bids(dir.path(), &bids);
    let script = format!(
        "{BID_DDL};\n{};\nINSERT INTO hot_items SELECT auction, COUNT(*) AS num, window_end
FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end",
        sink(
            "hot_items",
            "auction BIGINT, num BIGINT, window_end TIMESTAMP(3)",
            "hot"
        )
    );
    let out = run_sql(&host, dir.path(), &script, 2).await;
    let mut counts: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for b in &bids {
        // Windows of 10 s every 2 s: starts at multiples of 2 s in (t - 10 s, t].
        let mut start = b.date_time - b.date_time.rem_euclid(2_000);
        while start > b.date_time - 10_000 {
            *counts.entry((b.auction, start + 10_000)).or_default() += 1;
            start -= 2_000;
        }
    }
    let mut want: Vec<String> = counts
        .iter()
        .map(|((a, end), n)| {
            format!(
                r#"{{"auction":{a},"num":{n},"window_end":"{}"}}"#,
                flink_ts(*end)
            )
        })
        .collect();
    want.sort();
    assert_eq!(sorted_values(&out), want);
    // Each window's record carries window_time (end - 1 ms) as its timestamp.
    for r in &out {
        let v = Value::from_json(r.value.as_deref().unwrap_or("").as_bytes()).expect("json");
        let end = v
            .get("window_end")
            .and_then(Value::as_str)
            .expect("window_end");
        assert_eq!(flink_ts(r.timestamp + 1), end);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tumble_with_sum_avg_min_max_count_distinct() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bids = bids(N, 3, 23);
    let host = host_with_bids(dir.path(), &bids);
    let script = format!(
        "{BID_DDL};\n{};\nINSERT INTO stats
SELECT channel, window_start, window_end, COUNT(*) AS bids, SUM(price) AS total,
       AVG(price) AS avg_price, MIN(price), MAX(price), COUNT(DISTINCT bidder) AS bidders,
       AVG(CAST(price AS DOUBLE)) AS avg_double
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
GROUP BY channel, window_start, window_end",
        sink(
            "stats",
            "channel STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), bids BIGINT, total BIGINT, avg_price BIGINT, min_price BIGINT, max_price BIGINT, bidders BIGINT, avg_double DOUBLE",
            "stats"
        )
    );
    let out = run_sql(&host, dir.path(), &script, 1).await;
    #[derive(Default)]
    struct Acc {
        n: i64,
        sum: i64,
        min: i64,
        max: i64,
        bidders: BTreeSet<i64>,
    }
    let mut m: BTreeMap<(String, i64), Acc> = BTreeMap::new();
    for b in &bids {
        let start = b.date_time - b.date_time.rem_euclid(10_000);
        let a = m.entry((b.channel.clone(), start)).or_insert(Acc {
            min: i64::MAX,
            ..Acc::default()
        });
        a.n += 1;
        a.sum += b.price;
        a.min = a.min.min(b.price);
        a.max = a.max.max(b.price);
        a.bidders.insert(b.bidder);
    }
    assert_eq!(out.len(), m.len());
    let got: BTreeMap<(String, String), Value> = out
        .iter()
        .map(|r| {
            let v = Value::from_json(r.value.as_deref().unwrap_or("").as_bytes()).expect("json");
            let k = (
                v.get("channel")
                    .and_then(Value::as_str)
                    .expect("channel")
                    .to_string(),
                v.get("window_start")
                    .and_then(Value::as_str)
                    .expect("start")
                    .to_string(),
            );
            (k, v)
        })
        .collect();
    for ((channel, start), a) in &m {
        let v = &got[&(channel.clone(), flink_ts(*start))];
        let int = |f: &str| v.get(f).and_then(Value::as_i64).expect(f);
        assert_eq!(
            v.get("window_end").and_then(Value::as_str),
            Some(flink_ts(start + 10_000).as_str())
        );
        assert_eq!(int("bids"), a.n);
        assert_eq!(int("total"), a.sum);
        assert_eq!(
            int("avg_price"),
            a.sum / a.n,
            "AVG of BIGINT is the truncated integer quotient"
        );
        assert_eq!(int("min_price"), a.min);
        assert_eq!(int("max_price"), a.max);
        assert_eq!(int("bidders"), a.bidders.len() as i64);
        let avg = v
            .get("avg_double")
            .and_then(Value::as_f64)
            .expect("avg_double");
        assert!((avg - a.sum as f64 / a.n as f64).abs() < 1e-9);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cumulate_counts_grow_within_each_day_slice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bids = bids(N, 3, 29);
    let host = host_with_bids(dir.path(), &bids);
    let script = format!(
        "{BID_DDL};\n{};\nINSERT INTO cumulative
SELECT window_start, window_end, COUNT(*) AS bids, SUM(price) AS total
FROM TABLE(CUMULATE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
GROUP BY window_start, window_end",
        sink(
            "cumulative",
            "window_start TIMESTAMP(3), window_end TIMESTAMP(3), bids BIGINT, total BIGINT",
            "cumulative"
        )
    );
    let out = run_sql(&host, dir.path(), &script, 1).await;
    let mut m: BTreeMap<(i64, i64), (i64, i64)> = BTreeMap::new();
    for b in &bids {
        let start = b.date_time - b.date_time.rem_euclid(10_000);
        let mut end = start + 2_000;
        while end <= start + 10_000 {
            if end > b.date_time {
                let e = m.entry((start, end)).or_default();
                e.0 += 1;
                e.1 += b.price;
            }
            end += 2_000;
        }
    }
    let mut want: Vec<String> = m
        .iter()
        .map(|((s, e), (n, t))| {
            format!(
                r#"{{"window_start":"{}","window_end":"{}","bids":{n},"total":{t}}}"#,
                flink_ts(*s),
                flink_ts(*e)
            )
        })
        .collect();
    want.sort();
    assert_eq!(sorted_values(&out), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwindowed_group_by_upserts_per_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bids = bids(N, 3, 31);
    let host = host_with_bids(dir.path(), &bids);
    let script = format!(
        "{BID_DDL};
CREATE TABLE auction_stats (
    auction BIGINT,
    bids BIGINT,
    max_price BIGINT,
    PRIMARY KEY (auction) NOT ENFORCED
) WITH ('connector' = 'upsert-kafka', 'topic' = 'auction-stats', 'key.format' = 'json', 'value.format' = 'json');
SET 'pipeline.name' = 'auction-stats';
INSERT INTO auction_stats SELECT auction, COUNT(*) AS bids, MAX(price) AS max_price FROM bid GROUP BY auction"
    );
    let out = run_sql(&host, dir.path(), &script, 3).await;
    let mut want: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for b in &bids {
        let e = want.entry(b.auction).or_default();
        e.0 += 1;
        e.1 = e.1.max(b.price);
    }
    assert_eq!(out.len(), bids.len(), "one update per input row");
    // The last record per key (in its partition's order) is the final result.
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    for r in &out {
        last.insert(
            r.key.clone().expect("keyed"),
            r.value.clone().expect("value"),
        );
    }
    let got: BTreeMap<i64, (i64, i64)> = last
        .iter()
        .map(|(k, v)| {
            let key = Value::from_json(k.as_bytes()).expect("json key");
            let v = Value::from_json(v.as_bytes()).expect("json value");
            let auction = key
                .get("auction")
                .and_then(Value::as_i64)
                .expect("key is {\"auction\": n}");
            assert_eq!(v.get("auction").and_then(Value::as_i64), Some(auction));
            (
                auction,
                (
                    v.get("bids").and_then(Value::as_i64).expect("bids"),
                    v.get("max_price").and_then(Value::as_i64).expect("max"),
                ),
            )
        })
        .collect();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q10_style_projection_functions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bids = bids(600, 3, 37);
    let host = host_with_bids(dir.path(), &bids);
    let script = format!(
        "{BID_DDL};\n{};\nINSERT INTO projected
SELECT auction, bidder, price, `dateTime`, extra,
       DATE_FORMAT(`dateTime`, 'yyyy-MM-dd'), DATE_FORMAT(`dateTime`, 'HH:mm'),
       UPPER(channel) || '/' || LOWER(channel),
       CASE WHEN price > 10000 THEN 'high' WHEN price BETWEEN 5000 AND 10000 THEN 'mid' ELSE 'low' END,
       CHAR_LENGTH(url), SUBSTRING(url FROM 1 FOR 5), channel IN ('Google', 'Apple'), url LIKE '%/item/1%',
       CAST(price AS DECIMAL(10, 2)) / 3, price / 3, EXTRACT(SECOND FROM `dateTime`), TRIM(BOTH 'x' FROM extra),
       extra IS NULL OR extra = ''
FROM bid WHERE NOT (bidder < 2003)",
        sink(
            "projected",
            "auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3), extra VARCHAR, `day` VARCHAR, `hm` VARCHAR, ch STRING, band STRING, url_len INT, scheme STRING, big_channel BOOLEAN, item1 BOOLEAN, third DECIMAL(20, 6), int_third BIGINT, sec BIGINT, trimmed STRING, no_extra BOOLEAN",
            "projected"
        )
    );
    let out = run_sql(&host, dir.path(), &script, 1).await;
    let mut want: Vec<String> = bids
        .iter()
        .filter(|b| b.bidder >= 2003)
        .map(|b| {
            let full = ts_text(b.date_time);
            let band = if b.price > 10_000 { "high" } else if b.price >= 5_000 { "mid" } else { "low" };
            // DECIMAL(10, 2) / INT has scale max(6, 2 + 10 + 1) = 13; the sink's DECIMAL(20, 6)
            // rounds it half up: round(price * 10^6 / 3) (thirds never sit on a half).
            let n = b.price as i128 * 1_000_000;
            let third_u = (2 * n + 3) / 6;
            // Written with the sink's scale, as Flink writes a BigDecimal: 1025.000000.
            let third = format!("{}.{:06}", third_u / 1_000_000, third_u % 1_000_000);
            format!(
                r#"{{"auction":{},"bidder":{},"price":{},"dateTime":"{}","extra":"{}","day":"{}","hm":"{}","ch":"{}/{}","band":"{band}","url_len":{},"scheme":"https","big_channel":{},"item1":{},"third":{},"int_third":{},"sec":{},"trimmed":"{}","no_extra":{}}}"#,
                b.auction,
                b.bidder,
                b.price,
                flink_ts(b.date_time),
                b.extra,
                &full[..10],
                &full[11..16],
                b.channel.to_uppercase(),
                b.channel.to_lowercase(),
                b.url.chars().count(),
                b.channel == "Google" || b.channel == "Apple",
                b.url.contains("/item/1"),
                third,
                b.price / 3,
                full[17..19].parse::<i64>().expect("seconds"),
                b.extra.trim_matches('x'),
                b.extra.is_empty(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(sorted_values(&out), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q3_local_item_suggestion_joins_auctions_with_sellers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (people, auctions) = people_and_auctions(200, 1_500, 43);
    let host = host_with_people_and_auctions(dir.path(), &people, &auctions);
    let script = format!(
        "{PERSON_DDL};\n{AUCTION_DDL};\n{};\nINSERT INTO nexmark_q3
SELECT
    P.name, P.city, P.state, A.id
FROM
    auction AS A INNER JOIN person AS P on A.seller = P.id
WHERE
    A.category = 10 and (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');",
        sink(
            "nexmark_q3",
            "name VARCHAR, city VARCHAR, state VARCHAR, id BIGINT",
            "q3"
        )
    );
    let out = run_sql(&host, dir.path(), &script, 1).await;
    let by_id: BTreeMap<i64, &Person> = people.iter().map(|p| (p.id, p)).collect();
    let mut want: Vec<String> = auctions
        .iter()
        .filter(|a| a.category == 10)
        .filter_map(|a| by_id.get(&a.seller).map(|p| (a, p)))
        .filter(|(_, p)| ["OR", "ID", "CA"].contains(&p.state.as_str()))
        .map(|(a, p)| {
            format!(
                r#"{{"name":"{}","city":"{}","state":"{}","id":{}}}"#,
                p.name, p.city, p.state, a.id
            )
        })
        .collect();
    want.sort();
    assert!(
        want.len() > 20,
        "the generator produces matches ({})",
        want.len()
    );
    assert_eq!(sorted_values(&out), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwindowed_having_deletes_groups_it_drops_and_unchanged_groups_emit_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bids = bids(N, 3, 47);
    let host = host_with_bids(dir.path(), &bids);
    let script = format!(
        "{BID_DDL};
CREATE TABLE low_max (auction BIGINT, max_price BIGINT, PRIMARY KEY (auction) NOT ENFORCED)
WITH ('connector' = 'upsert-kafka', 'topic' = 'low-max', 'key.format' = 'json', 'value.format' = 'json');
INSERT INTO low_max SELECT auction, MAX(price) FROM bid GROUP BY auction HAVING MAX(price) < 19000"
    );
    let out = run_sql(&host, dir.path(), &script, 2).await;
    let mut max: BTreeMap<i64, i64> = BTreeMap::new();
    for b in &bids {
        let m = max.entry(b.auction).or_insert(0);
        *m = (*m).max(b.price);
    }
    let mut last: BTreeMap<i64, Option<i64>> = BTreeMap::new();
    let mut per_key: BTreeMap<i64, Vec<Option<i64>>> = BTreeMap::new();
    for r in &out {
        let key = Value::from_json(r.key.as_deref().expect("keyed").as_bytes()).expect("json key");
        let auction = key.get("auction").and_then(Value::as_i64).expect("auction");
        let v = r.value.as_deref().map(|v| {
            Value::from_json(v.as_bytes())
                .expect("json")
                .get("max_price")
                .and_then(Value::as_i64)
                .expect("max")
        });
        last.insert(auction, v);
        per_key.entry(auction).or_default().push(v);
    }
    for (auction, m) in &max {
        if *m < 19_000 {
            assert_eq!(
                last.get(auction),
                Some(&Some(*m)),
                "auction {auction}: its max"
            );
        } else {
            assert!(
                matches!(last.get(auction), None | Some(None)),
                "auction {auction}: deleted or never shown"
            );
        }
    }
    assert!(
        last.values().any(Option::is_none),
        "some groups were deleted by a tombstone"
    );
    // MAX changes less often than rows arrive: unchanged results are not re-emitted.
    for (auction, vs) in &per_key {
        let shown: Vec<i64> = vs.iter().flatten().copied().collect();
        assert!(
            shown.windows(2).all(|w| w[0] < w[1]),
            "auction {auction}: only changes are emitted: {vs:?}"
        );
    }
    assert!(out.len() < bids.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_top_n_over_an_aggregation_and_over_a_tvf() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bids = bids(N, 3, 53);
    let host = host_with_bids(dir.path(), &bids);
    let script = format!(
        "{BID_DDL};\n{};\nINSERT INTO top_auctions
SELECT window_start, window_end, auction, num, rownum FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY num DESC, auction ASC) AS rownum
  FROM (
    SELECT window_start, window_end, auction, COUNT(*) AS num
    FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
    GROUP BY window_start, window_end, auction
  )
) WHERE rownum <= 3",
        sink("top_auctions", "window_start TIMESTAMP(3), window_end TIMESTAMP(3), auction BIGINT, num BIGINT, rownum BIGINT", "top")
    );
    let out = run_sql(&host, dir.path(), &script, 1).await;
    let mut counts: BTreeMap<i64, BTreeMap<i64, i64>> = BTreeMap::new();
    for b in &bids {
        *counts
            .entry(b.date_time - b.date_time.rem_euclid(10_000))
            .or_default()
            .entry(b.auction)
            .or_default() += 1;
    }
    let mut want = Vec::new();
    for (start, per) in &counts {
        let mut v: Vec<(i64, i64)> = per.iter().map(|(a, n)| (*a, *n)).collect();
        v.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
        for (rank, (a, n)) in v.iter().take(3).enumerate() {
            want.push(format!(
                r#"{{"window_start":"{}","window_end":"{}","auction":{a},"num":{n},"rownum":{}}}"#,
                flink_ts(*start),
                flink_ts(start + 10_000),
                rank + 1
            ));
        }
    }
    want.sort();
    assert_eq!(sorted_values(&out), want);

    // Top-N straight over the window TVF: the two highest bids of each window.
    let script = format!(
        "{BID_DDL};\n{};\nINSERT INTO top_bids
SELECT window_start, auction, price, rownum FROM (
  SELECT auction, price, window_start, window_end,
         ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY price DESC, auction) AS rownum
  FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
) WHERE rownum <= 2",
        sink("top_bids", "window_start TIMESTAMP(3), auction BIGINT, price BIGINT, rownum BIGINT", "top-bids")
    );
    let out = run_sql(&host, &dir.path().join("second"), &script, 1).await;
    let mut per: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for b in &bids {
        per.entry(b.date_time - b.date_time.rem_euclid(10_000))
            .or_default()
            .push((b.price, b.auction));
    }
    let mut want = Vec::new();
    for (start, mut v) in per {
        v.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
        for (rank, (p, a)) in v.iter().take(2).enumerate() {
            want.push(format!(
                r#"{{"window_start":"{}","auction":{a},"price":{p},"rownum":{}}}"#,
                flink_ts(start),
                rank + 1
            ));
        }
    }
    want.sort();
    assert_eq!(sorted_values(&out), want);
}

/// People and auctions written to their topics.
fn host_with_people_and_auctions(
    dir: &std::path::Path,
    people: &[Person],
    auctions: &[Auction],
) -> std::sync::Arc<eddy_processor::StorageHost> {
    let host = eddy_processor::StorageHost::new(dir.join("logs"));
    host.create_topic("persons", 2).expect("topic");
    host.create_topic("auctions", 3).expect("topic");
    for p in 0..2 {
        let rows: Vec<(i64, String)> = people
            .iter()
            .filter(|x| x.id % 2 == p as i64)
            .map(|x| (x.date_time, person_json(x)))
            .collect();
        produce(&host, "persons", p, &rows);
    }
    for p in 0..3 {
        let rows: Vec<(i64, String)> = auctions
            .iter()
            .filter(|a| a.id % 3 == p as i64)
            .map(|a| (a.date_time, auction_json(a)))
            .collect();
        produce(&host, "auctions", p, &rows);
    }
    host
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q8_monitor_new_users_joins_two_windowed_aggregations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (people, auctions) = people_and_auctions(200, 1_500, 59);
    let host = host_with_people_and_auctions(dir.path(), &people, &auctions);
    let window = |t: i64| t - t.rem_euclid(10_000);
    let sellers: BTreeSet<(i64, i64)> = auctions
        .iter()
        .map(|a| (a.seller, window(a.date_time)))
        .collect();
    let mut want: Vec<String> = people
        .iter()
        .filter(|p| sellers.contains(&(p.id, window(p.date_time))))
        .map(|p| {
            format!(
                r#"{{"id":{},"name":"{}","starttime":"{}"}}"#,
                p.id,
                p.name,
                flink_ts(window(p.date_time))
            )
        })
        .collect();
    want.sort();
    assert!(
        want.len() > 10,
        "the generator has new users selling at once ({})",
        want.len()
    );
    let sink_ddl = sink(
        "nexmark_q8",
        "id BIGINT, name VARCHAR, starttime TIMESTAMP(3)",
        "q8",
    );
    // Flink's q8 with legacy group windows, then the window TVF form.
    let legacy = format!(
        "{PERSON_DDL};\n{AUCTION_DDL};\n{sink_ddl};\nINSERT INTO nexmark_q8
SELECT P.id, P.name, P.starttime
FROM (
  SELECT P.id, P.name,
         TUMBLE_START(P.`dateTime`, INTERVAL '10' SECOND) AS starttime,
         TUMBLE_END(P.`dateTime`, INTERVAL '10' SECOND) AS endtime
  FROM person P
  GROUP BY P.id, P.name, TUMBLE(P.`dateTime`, INTERVAL '10' SECOND)
) P
JOIN (
  SELECT A.seller,
         TUMBLE_START(A.`dateTime`, INTERVAL '10' SECOND) AS starttime,
         TUMBLE_END(A.`dateTime`, INTERVAL '10' SECOND) AS endtime
  FROM auction A
  GROUP BY A.seller, TUMBLE(A.`dateTime`, INTERVAL '10' SECOND)
) A
ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime;"
    );
    let out = run_sql(&host, dir.path(), &legacy, 1).await;
    assert_eq!(sorted_values(&out), want);
    let tvf = format!(
        "{PERSON_DDL};\n{AUCTION_DDL};\n{};\nINSERT INTO nexmark_q8_tvf
SELECT P.id, P.name, P.starttime
FROM (
  SELECT id, name, window_start AS starttime, window_end AS endtime
  FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
  GROUP BY id, name, window_start, window_end
) P
JOIN (
  SELECT seller, window_start AS starttime, window_end AS endtime
  FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
  GROUP BY seller, window_start, window_end
) A
ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime;",
        sink(
            "nexmark_q8_tvf",
            "id BIGINT, name VARCHAR, starttime TIMESTAMP(3)",
            "q8-tvf"
        )
    );
    let out = run_sql(&host, &dir.path().join("tvf"), &tvf, 1).await;
    assert_eq!(sorted_values(&out), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comma_join_with_a_time_range_condition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (people, auctions) = people_and_auctions(50, 400, 61);
    let host = host_with_people_and_auctions(dir.path(), &people, &auctions);
    let bids = bids(1_500, 3, 67);
    host.create_topic("bids", 3).expect("topic");
    write_bids(&host, "bids", 3, &bids);
    // Nexmark q4/q6's inner part: bids during their auction's lifetime.
    let script = format!(
        "{BID_DDL};\n{AUCTION_DDL};\n{};\nINSERT INTO winning
SELECT A.id, B.price, A.category
FROM auction A, bid B
WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires AND B.price > 100",
        sink(
            "winning",
            "id BIGINT, price BIGINT, category BIGINT",
            "winning"
        )
    );
    let out = run_sql(&host, dir.path(), &script, 1).await;
    let mut want = Vec::new();
    for a in &auctions {
        for b in bids.iter().filter(|b| b.auction == a.id && b.price > 100) {
            if b.date_time >= a.date_time && b.date_time <= a.expires {
                want.push(format!(
                    r#"{{"id":{},"price":{},"category":{}}}"#,
                    a.id, b.price, a.category
                ));
            }
        }
    }
    want.sort();
    assert!(want.len() > 20, "bids fall into auctions ({})", want.len());
    assert_eq!(sorted_values(&out), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_join_of_two_window_tvfs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (people, auctions) = people_and_auctions(200, 1_500, 71);
    let host = host_with_people_and_auctions(dir.path(), &people, &auctions);
    let script = format!(
        "{PERSON_DDL};\n{AUCTION_DDL};\n{};\nINSERT INTO joined
SELECT P.id, A.id, P.window_start
FROM (SELECT * FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(`dateTime`), INTERVAL '5' SECOND))) P
JOIN (SELECT * FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(`dateTime`), INTERVAL '5' SECOND))) A
ON P.id = A.seller AND P.window_start = A.window_start AND P.window_end = A.window_end",
        sink(
            "joined",
            "person BIGINT, auction BIGINT, window_start TIMESTAMP(3)",
            "joined"
        )
    );
    let out = run_sql(&host, dir.path(), &script, 1).await;
    let window = |t: i64| t - t.rem_euclid(5_000);
    let mut want = Vec::new();
    for p in &people {
        for a in auctions
            .iter()
            .filter(|a| a.seller == p.id && window(a.date_time) == window(p.date_time))
        {
            want.push(format!(
                r#"{{"person":{},"auction":{},"window_start":"{}"}}"#,
                p.id,
                a.id,
                flink_ts(window(p.date_time))
            ));
        }
    }
    want.sort();
    assert!(
        want.len() > 5,
        "matches in the same window ({})",
        want.len()
    );
    assert_eq!(sorted_values(&out), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporal_join_uses_the_version_valid_at_each_bid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bids = bids(2_000, 3, 73);
    let host = host_with_bids(dir.path(), &bids);
    // Fee changes per channel every 7 s of event time, from 3 s after the first bid (so the
    // first bids find no version); a compacted topic keyed by channel.
    host.create_topic("fees", 2).expect("topic");
    let end = bids.last().map_or(BASE_MS, |b| b.date_time) + 10_000;
    let mut fees: Vec<(String, i64, i64)> = Vec::new();
    let mut t = BASE_MS + 3_000;
    let mut n = 0;
    while t < end {
        for (i, ch) in CHANNELS.iter().enumerate() {
            n += 1;
            fees.push((ch.to_string(), t + i as i64, n % 17 + 1));
        }
        t += 7_000;
    }
    for p in 0..2 {
        let rows: Vec<(i64, String)> = fees
            .iter()
            .filter(|(ch, _, _)| CHANNELS.iter().position(|c| c == ch).unwrap_or(0) % 2 == p)
            .map(|(ch, t, fee)| {
                (
                    *t,
                    format!(
                        r#"{{"channel":"{ch}","fee":{fee},"updated":"{}"}}"#,
                        ts_text(*t)
                    ),
                )
            })
            .collect();
        produce(&host, "fees", p as i32, &rows);
    }
    let fees_ddl = "CREATE TABLE channel_fees (channel STRING, fee BIGINT, updated TIMESTAMP(3),
        PRIMARY KEY (channel) NOT ENFORCED, WATERMARK FOR updated AS updated)
        WITH ('connector' = 'upsert-kafka', 'topic' = 'fees', 'key.format' = 'json', 'value.format' = 'json', 'scan.bounded.mode' = 'latest-offset')";
    let version = |b: &Bid| {
        fees.iter()
            .filter(|(ch, t, _)| *ch == b.channel && *t <= b.date_time)
            .max_by_key(|(_, t, _)| *t)
            .map(|(_, _, fee)| *fee)
    };
    for (join, outer) in [("JOIN", false), ("LEFT JOIN", true)] {
        let script = format!(
            "{BID_DDL};\n{fees_ddl};\n{};\nINSERT INTO charged
SELECT B.auction, B.price, B.channel, F.fee, B.price * F.fee
FROM bid AS B
{join} channel_fees FOR SYSTEM_TIME AS OF B.`dateTime` AS F
ON B.channel = F.channel",
            sink(
                "charged",
                "auction BIGINT, price BIGINT, channel STRING, fee BIGINT, total BIGINT",
                if outer { "charged-outer" } else { "charged" }
            )
        );
        let out = run_sql(&host, &dir.path().join(join.replace(' ', "-")), &script, 1).await;
        let mut want: Vec<String> = bids
            .iter()
            .filter_map(|b| match (version(b), outer) {
                (Some(fee), _) => Some(format!(
                    r#"{{"auction":{},"price":{},"channel":"{}","fee":{fee},"total":{}}}"#,
                    b.auction,
                    b.price,
                    b.channel,
                    b.price * fee
                )),
                (None, true) => Some(format!(
                    r#"{{"auction":{},"price":{},"channel":"{}","fee":null,"total":null}}"#,
                    b.auction, b.price, b.channel
                )),
                (None, false) => None,
            })
            .collect();
        want.sort();
        assert!(
            bids.iter().any(|b| version(b).is_none()),
            "some bids come before any fee"
        );
        assert_eq!(sorted_values(&out), want, "{join}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_distinct_emits_each_combination_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bids = bids(N, 3, 79);
    let host = host_with_bids(dir.path(), &bids);
    let script = format!(
        "{BID_DDL};\n{};\nINSERT INTO pairs SELECT DISTINCT bidder, channel FROM bid WHERE price > 15000",
        sink("pairs", "bidder BIGINT, channel STRING", "pairs")
    );
    let out = run_sql(&host, dir.path(), &script, 2).await;
    let want: BTreeSet<String> = bids
        .iter()
        .filter(|b| b.price > 15_000)
        .map(|b| format!(r#"{{"bidder":{},"channel":"{}"}}"#, b.bidder, b.channel))
        .collect();
    assert_eq!(out.len(), want.len(), "each pair once");
    assert_eq!(sorted_values(&out), want.into_iter().collect::<Vec<_>>());
    assert!(
        out.iter().all(|r| r
            .key
            .as_deref()
            .is_some_and(|k| k.starts_with("{\"bidder\":"))),
        "keyed by the pair"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_aggregations_with_rows_range_and_unbounded_frames() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bids = bids(N, 3, 83);
    let host = host_with_bids(dir.path(), &bids);
    let mut by_auction: BTreeMap<i64, Vec<&Bid>> = BTreeMap::new();
    for b in &bids {
        by_auction.entry(b.auction).or_default().push(b);
    }
    for v in by_auction.values() {
        assert!(
            v.windows(2).all(|w| w[0].date_time < w[1].date_time),
            "no ties within an auction: ROWS frames are deterministic"
        );
    }
    let script = format!(
        "{BID_DDL};\n{};\nINSERT INTO over_rows
SELECT auction, price,
  COUNT(*) OVER (PARTITION BY auction ORDER BY `dateTime` ROWS BETWEEN 2 PRECEDING AND CURRENT ROW),
  MAX(price) OVER (PARTITION BY auction ORDER BY `dateTime` ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)
FROM bid",
        sink("over_rows", "auction BIGINT, price BIGINT, n BIGINT, max_price BIGINT", "over-rows")
    );
    let out = run_sql(&host, dir.path(), &script, 1).await;
    let mut want = Vec::new();
    for v in by_auction.values() {
        for (i, b) in v.iter().enumerate() {
            let frame = &v[i.saturating_sub(2)..=i];
            let max = frame.iter().map(|x| x.price).max().unwrap_or(0);
            want.push(format!(
                r#"{{"auction":{},"price":{},"n":{},"max_price":{max}}}"#,
                b.auction,
                b.price,
                frame.len()
            ));
        }
    }
    want.sort();
    assert_eq!(sorted_values(&out), want);

    let script = format!(
        "{BID_DDL};\n{};\nINSERT INTO over_range
SELECT auction, price,
  SUM(price) OVER (PARTITION BY auction ORDER BY `dateTime` RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW) AS recent,
  COUNT(*) OVER (PARTITION BY auction ORDER BY `dateTime` RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW)
FROM bid WHERE price > 100",
        sink("over_range", "auction BIGINT, price BIGINT, recent BIGINT, n BIGINT", "over-range")
    );
    let out = run_sql(&host, &dir.path().join("range"), &script, 1).await;
    let mut want = Vec::new();
    for v in by_auction.values() {
        let v: Vec<&&Bid> = v.iter().filter(|b| b.price > 100).collect();
        for b in &v {
            let frame: Vec<&&&Bid> = v
                .iter()
                .filter(|x| x.date_time >= b.date_time - 10_000 && x.date_time <= b.date_time)
                .collect();
            let sum: i64 = frame.iter().map(|x| x.price).sum();
            want.push(format!(
                r#"{{"auction":{},"price":{},"recent":{sum},"n":{}}}"#,
                b.auction,
                b.price,
                frame.len()
            ));
        }
    }
    want.sort();
    assert_eq!(sorted_values(&out), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q5_hot_items_self_join_of_window_aggregations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bids = bids(N, 3, 89);
    let host = host_with_bids(dir.path(), &bids);
    let script = format!(
        "{BID_DDL};\n{};\nINSERT INTO nexmark_q5
SELECT AuctionBids.auction, AuctionBids.num
 FROM (
   SELECT
     auction,
     count(*) AS num,
     window_start AS starttime,
     window_end AS endtime
     FROM TABLE(
             HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
     GROUP BY auction, window_start, window_end
 ) AS AuctionBids
 JOIN (
   SELECT
     max(CountBids.num) AS maxn,
     CountBids.starttime,
     CountBids.endtime
   FROM (
     SELECT
       count(*) AS num,
       window_start AS starttime,
       window_end AS endtime
     FROM TABLE(
                HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
     GROUP BY auction, window_start, window_end
     ) AS CountBids
   GROUP BY CountBids.starttime, CountBids.endtime
 ) AS MaxBids
 ON AuctionBids.starttime = MaxBids.starttime AND
    AuctionBids.endtime = MaxBids.endtime AND
    AuctionBids.num >= MaxBids.maxn;",
        sink("nexmark_q5", "auction BIGINT, num BIGINT", "q5")
    );
    let out = run_sql(&host, dir.path(), &script, 1).await;
    let mut counts: BTreeMap<i64, BTreeMap<i64, i64>> = BTreeMap::new();
    for b in &bids {
        let mut start = b.date_time - b.date_time.rem_euclid(2_000);
        while start > b.date_time - 10_000 {
            *counts
                .entry(start)
                .or_default()
                .entry(b.auction)
                .or_default() += 1;
            start -= 2_000;
        }
    }
    let mut want = Vec::new();
    for per in counts.values() {
        let max = per.values().copied().max().unwrap_or(0);
        for (a, n) in per.iter().filter(|(_, n)| **n >= max) {
            want.push(format!(r#"{{"auction":{a},"num":{n}}}"#));
        }
    }
    want.sort();
    assert_eq!(sorted_values(&out), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q7_highest_bid_joins_bids_with_their_window_maximum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bids = bids(N, 3, 97);
    let host = host_with_bids(dir.path(), &bids);
    let script = format!(
        "{BID_DDL};\n{};\nINSERT INTO nexmark_q7
SELECT B.auction, B.price, B.bidder, B.`dateTime`, B.extra
from bid B
JOIN (
  SELECT MAX(price) AS maxprice, window_end as `dateTime`
  FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
  GROUP BY window_start, window_end
) B1
ON B.price = B1.maxprice
WHERE B.`dateTime` BETWEEN B1.`dateTime`  - INTERVAL '10' SECOND AND B1.`dateTime`;",
        sink(
            "nexmark_q7",
            "auction BIGINT, price BIGINT, bidder BIGINT, `dateTime` TIMESTAMP(3), extra VARCHAR",
            "q7"
        )
    );
    let out = run_sql(&host, dir.path(), &script, 1).await;
    let mut max: BTreeMap<i64, i64> = BTreeMap::new();
    for b in &bids {
        let e = max
            .entry(b.date_time - b.date_time.rem_euclid(10_000))
            .or_insert(0);
        *e = (*e).max(b.price);
    }
    let mut want = Vec::new();
    for (start, m) in &max {
        for b in bids
            .iter()
            .filter(|b| b.price == *m && b.date_time >= *start && b.date_time <= start + 10_000)
        {
            want.push(format!(
                r#"{{"auction":{},"price":{},"bidder":{},"dateTime":"{}","extra":"{}"}}"#,
                b.auction,
                b.price,
                b.bidder,
                flink_ts(b.date_time),
                b.extra
            ));
        }
    }
    want.sort();
    assert!(!want.is_empty());
    assert_eq!(sorted_values(&out), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q15_bidding_statistics_with_filtered_aggregates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bids = bids(N, 3, 101);
    let host = host_with_bids(dir.path(), &bids);
    let script = format!(
        "{BID_DDL};\n{};\nINSERT INTO nexmark_q15
SELECT
     DATE_FORMAT(`dateTime`, 'yyyy-MM-dd') as `day`,
     count(*) AS total_bids,
     count(*) filter (where price < 10000) AS rank1_bids,
     count(*) filter (where price >= 10000 and price < 1000000) AS rank2_bids,
     count(*) filter (where price >= 1000000) AS rank3_bids,
     count(distinct bidder) AS total_bidders,
     count(distinct bidder) filter (where price < 10000) AS rank1_bidders,
     count(distinct bidder) filter (where price >= 10000 and price < 1000000) AS rank2_bidders,
     count(distinct bidder) filter (where price >= 1000000) AS rank3_bidders,
     count(distinct auction) AS total_auctions,
     count(distinct auction) filter (where price < 10000) AS rank1_auctions,
     count(distinct auction) filter (where price >= 10000 and price < 1000000) AS rank2_auctions,
     count(distinct auction) filter (where price >= 1000000) AS rank3_auctions
FROM bid
GROUP BY DATE_FORMAT(`dateTime`, 'yyyy-MM-dd');",
        sink(
            "nexmark_q15",
            "`day` VARCHAR, total_bids BIGINT, rank1_bids BIGINT, rank2_bids BIGINT, rank3_bids BIGINT, total_bidders BIGINT, rank1_bidders BIGINT, rank2_bidders BIGINT, rank3_bidders BIGINT, total_auctions BIGINT, rank1_auctions BIGINT, rank2_auctions BIGINT, rank3_auctions BIGINT",
            "q15"
        )
    );
    let out = run_sql(&host, dir.path(), &script, 1).await;
    let last = out.last().expect("updates").clone();
    assert_eq!(last.key.as_deref(), Some(r#"{"day":"2024-01-01"}"#));
    let ranks = |lo: i64, hi: i64| bids.iter().filter(move |b| b.price >= lo && b.price < hi);
    let distinct = |it: Box<dyn Iterator<Item = i64> + '_>| it.collect::<BTreeSet<i64>>().len();
    let (r1, r2, r3) = ((0, 10_000), (10_000, 1_000_000), (1_000_000, i64::MAX));
    let want = format!(
        r#"{{"day":"2024-01-01","total_bids":{},"rank1_bids":{},"rank2_bids":{},"rank3_bids":{},"total_bidders":{},"rank1_bidders":{},"rank2_bidders":{},"rank3_bidders":{},"total_auctions":{},"rank1_auctions":{},"rank2_auctions":{},"rank3_auctions":{}}}"#,
        bids.len(),
        ranks(r1.0, r1.1).count(),
        ranks(r2.0, r2.1).count(),
        ranks(r3.0, r3.1).count(),
        distinct(Box::new(bids.iter().map(|b| b.bidder))),
        distinct(Box::new(ranks(r1.0, r1.1).map(|b| b.bidder))),
        distinct(Box::new(ranks(r2.0, r2.1).map(|b| b.bidder))),
        distinct(Box::new(ranks(r3.0, r3.1).map(|b| b.bidder))),
        distinct(Box::new(bids.iter().map(|b| b.auction))),
        distinct(Box::new(ranks(r1.0, r1.1).map(|b| b.auction))),
        distinct(Box::new(ranks(r2.0, r2.1).map(|b| b.auction))),
        distinct(Box::new(ranks(r3.0, r3.1).map(|b| b.auction))),
    );
    assert_eq!(last.value.as_deref(), Some(want.as_str()));
    assert_eq!(out.len(), bids.len(), "total_bids changes with every bid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q22_split_urls_and_q17_auction_statistics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bids = bids(1_500, 3, 103);
    let host = host_with_bids(dir.path(), &bids);
    // q22: directories of the URL.
    let script = format!(
        "{BID_DDL};\n{};\nINSERT INTO nexmark_q22
SELECT
    auction, bidder, price, channel,
    SPLIT_INDEX(url, '/', 3) as dir1,
    SPLIT_INDEX(url, '/', 4) as dir2,
    SPLIT_INDEX(url, '/', 5) as dir3 FROM bid;",
        sink("nexmark_q22", "auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, dir1 VARCHAR, dir2 VARCHAR, dir3 VARCHAR", "q22")
    );
    let out = run_sql(&host, &dir.path().join("q22"), &script, 1).await;
    let json = |s: Option<&str>| s.map_or("null".to_string(), |x| format!("\"{x}\""));
    let mut want: Vec<String> = bids
        .iter()
        .map(|b| {
            let parts: Vec<&str> = b.url.split('/').collect();
            format!(
                r#"{{"auction":{},"bidder":{},"price":{},"channel":"{}","dir1":{},"dir2":{},"dir3":{}}}"#,
                b.auction,
                b.bidder,
                b.price,
                b.channel,
                json(parts.get(3).copied()),
                json(parts.get(4).copied()),
                json(parts.get(5).copied())
            )
        })
        .collect();
    want.sort();
    assert_eq!(sorted_values(&out), want);

    // q17: per auction and day, an updating result; the last update per key is final.
    let script = format!(
        "{BID_DDL};\n{};\nINSERT INTO nexmark_q17
SELECT
     auction,
     DATE_FORMAT(`dateTime`, 'yyyy-MM-dd') as `day`,
     count(*) AS total_bids,
     count(*) filter (where price < 10000) AS rank1_bids,
     count(*) filter (where price >= 10000 and price < 1000000) AS rank2_bids,
     count(*) filter (where price >= 1000000) AS rank3_bids,
     min(price) AS min_price,
     max(price) AS max_price,
     avg(price) AS avg_price,
     sum(price) AS sum_price
FROM bid
GROUP BY auction, DATE_FORMAT(`dateTime`, 'yyyy-MM-dd');",
        sink(
            "nexmark_q17",
            "auction BIGINT, `day` VARCHAR, total_bids BIGINT, rank1_bids BIGINT, rank2_bids BIGINT, rank3_bids BIGINT, min_price BIGINT, max_price BIGINT, avg_price BIGINT, sum_price BIGINT",
            "q17"
        )
    );
    let out = run_sql(&host, &dir.path().join("q17"), &script, 2).await;
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    for r in &out {
        last.insert(
            r.key.clone().expect("keyed"),
            r.value.clone().expect("value"),
        );
    }
    let mut per: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for b in &bids {
        per.entry(b.auction).or_default().push(b.price);
    }
    let want: BTreeMap<String, String> = per
        .iter()
        .map(|(a, ps)| {
            let sum: i64 = ps.iter().sum();
            let n = ps.len() as i64;
            (
                format!(r#"{{"auction":{a},"day":"2024-01-01"}}"#),
                format!(
                    r#"{{"auction":{a},"day":"2024-01-01","total_bids":{n},"rank1_bids":{},"rank2_bids":{},"rank3_bids":0,"min_price":{},"max_price":{},"avg_price":{},"sum_price":{sum}}}"#,
                    ps.iter().filter(|p| **p < 10_000).count(),
                    ps.iter().filter(|p| **p >= 10_000).count(),
                    ps.iter().min().copied().unwrap_or(0),
                    ps.iter().max().copied().unwrap_or(0),
                    sum / n
                ),
            )
        })
        .collect();
    assert_eq!(last, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_tvfs_without_aggregation_give_a_row_per_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bids = bids(500, 3, 107);
    let host = host_with_bids(dir.path(), &bids);
    let script = format!(
        "{BID_DDL};\n{};\nINSERT INTO hopped
SELECT auction, window_start, window_end, window_time
FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '6' SECOND))
WHERE price > 5000",
        sink("hopped", "auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), window_time TIMESTAMP(3)", "hopped")
    );
    let out = run_sql(&host, dir.path(), &script, 1).await;
    let mut want = Vec::new();
    for b in bids.iter().filter(|b| b.price > 5000) {
        let mut start = b.date_time - b.date_time.rem_euclid(2_000);
        while start > b.date_time - 6_000 {
            want.push(format!(
                r#"{{"auction":{},"window_start":"{}","window_end":"{}","window_time":"{}"}}"#,
                b.auction,
                flink_ts(start),
                flink_ts(start + 6_000),
                flink_ts(start + 5_999)
            ));
            start -= 2_000;
        }
    }
    want.sort();
    assert_eq!(sorted_values(&out), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q18_last_bid_per_bidder_and_auction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bids = bids(N, 3, 109);
    let host = host_with_bids(dir.path(), &bids);
    let script = format!(
        "{BID_DDL};
CREATE TABLE nexmark_q18 (
    auction  BIGINT, bidder  BIGINT, price  BIGINT, channel  VARCHAR, url  VARCHAR,
    `dateTime`  TIMESTAMP(3), extra  VARCHAR, PRIMARY KEY (auction, bidder) NOT ENFORCED
) WITH ('connector' = 'upsert-kafka', 'topic' = 'q18', 'key.format' = 'json', 'value.format' = 'json');
INSERT INTO nexmark_q18
SELECT auction, bidder, price, channel, url, `dateTime`, extra
 FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY `dateTime` DESC) AS rank_number
       FROM bid)
 WHERE rank_number <= 1;"
    );
    let out = run_sql(&host, dir.path(), &script, 2).await;
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    for r in &out {
        last.insert(
            r.key.clone().expect("keyed"),
            r.value.clone().expect("value"),
        );
    }
    let mut want: BTreeMap<(i64, i64), &Bid> = BTreeMap::new();
    for b in &bids {
        let e = want.entry((b.auction, b.bidder)).or_insert(b);
        assert!(
            e.date_time != b.date_time || std::ptr::eq(*e, b),
            "no ties per key"
        );
        if b.date_time > e.date_time {
            *e = b;
        }
    }
    let want: BTreeMap<String, String> = want
        .iter()
        .map(|((a, bd), b)| {
            (
                format!(r#"{{"auction":{a},"bidder":{bd}}}"#),
                format!(
                    r#"{{"auction":{a},"bidder":{bd},"price":{},"channel":"{}","url":"{}","dateTime":"{}","extra":"{}"}}"#,
                    b.price,
                    b.channel,
                    b.url,
                    flink_ts(b.date_time),
                    b.extra
                ),
            )
        })
        .collect();
    assert_eq!(last, want);
}

/// The final upsert table of an output: the last record per key (in its partition's order),
/// key (as JSON) → value (None: deleted by a tombstone).
fn final_table(out: &[Record]) -> BTreeMap<String, Option<Value>> {
    let mut last = BTreeMap::new();
    for r in out {
        let v = r
            .value
            .as_deref()
            .map(|v| Value::from_json(v.as_bytes()).expect("json value"));
        last.insert(r.key.clone().expect("keyed"), v);
    }
    last
}

/// The live rows of a final table by an integer key field, as `cols` of each value.
fn live_rows(
    table: &BTreeMap<String, Option<Value>>,
    key: &str,
    cols: &[&str],
) -> BTreeMap<i64, Vec<Option<i64>>> {
    table
        .iter()
        .filter_map(|(k, v)| {
            let v = v.as_ref()?;
            let id = Value::from_json(k.as_bytes()).expect("json key");
            let id = id.get(key).and_then(Value::as_i64).expect("integer key");
            assert_eq!(
                v.get(key).and_then(Value::as_i64),
                Some(id),
                "value holds its key"
            );
            Some((
                id,
                cols.iter()
                    .map(|c| v.get(c).and_then(Value::as_i64))
                    .collect(),
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q4_average_price_per_category_over_retracted_auction_maxima() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (people, auctions) = people_and_auctions(50, 400, 113);
    let host = host_with_people_and_auctions(dir.path(), &people, &auctions);
    let bids = bids(2_000, 3, 127);
    host.create_topic("bids", 3).expect("topic");
    write_bids(&host, "bids", 3, &bids);
    // Nexmark q4 as Flink runs it, with this suite's column names.
    let script = format!(
        "{BID_DDL};\n{AUCTION_DDL};
CREATE TABLE nexmark_q4 (id BIGINT, final BIGINT, PRIMARY KEY (id) NOT ENFORCED)
WITH ('connector' = 'upsert-kafka', 'topic' = 'q4', 'key.format' = 'json', 'value.format' = 'json');
INSERT INTO nexmark_q4
SELECT Q.category, AVG(Q.final)
FROM (
    SELECT MAX(B.price) AS final, A.category
    FROM auction A, bid B
    WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires
    GROUP BY A.id, A.category
) Q
GROUP BY Q.category"
    );
    let out = run_sql(&host, dir.path(), &script, 2).await;
    // Independently: the winning price of each auction, then the truncated integer average
    // per category (Flink's AVG of BIGINT is a BIGINT).
    let mut winning: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for a in &auctions {
        for b in bids.iter().filter(|b| b.auction == a.id) {
            if b.date_time >= a.date_time && b.date_time <= a.expires {
                let w = winning.entry(a.id).or_insert((a.category, b.price));
                w.1 = w.1.max(b.price);
            }
        }
    }
    let mut per_category: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (category, price) in winning.values() {
        let c = per_category.entry(*category).or_default();
        c.0 += price;
        c.1 += 1;
    }
    let want: BTreeMap<i64, Vec<Option<i64>>> = per_category
        .iter()
        .map(|(c, (sum, n))| (*c, vec![Some(sum / n)]))
        .collect();
    assert!(winning.len() > 30, "auctions with bids: {}", winning.len());
    assert!(want.len() >= 3, "categories: {want:?}");
    let table = final_table(&out);
    assert_eq!(live_rows(&table, "id", &["final"]), want);
    // A new maximum of an auction retracts its old one from the average: the result per
    // category changes more often than there are categories.
    assert!(out.len() > 2 * want.len(), "updates: {}", out.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_group_by_counts_of_counts_deletes_emptied_groups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bids = bids(N, 3, 131);
    let host = host_with_bids(dir.path(), &bids);
    let script = format!(
        "{BID_DDL};
CREATE TABLE histogram (bids BIGINT, auctions BIGINT, PRIMARY KEY (bids) NOT ENFORCED)
WITH ('connector' = 'upsert-kafka', 'topic' = 'histogram', 'key.format' = 'json', 'value.format' = 'json');
INSERT INTO histogram
SELECT bids, COUNT(*) AS auctions
FROM (SELECT auction, COUNT(*) AS bids FROM bid GROUP BY auction)
GROUP BY bids"
    );
    let out = run_sql(&host, dir.path(), &script, 2).await;
    let mut per_auction: BTreeMap<i64, i64> = BTreeMap::new();
    for b in &bids {
        *per_auction.entry(b.auction).or_default() += 1;
    }
    let mut histogram: BTreeMap<i64, i64> = BTreeMap::new();
    for n in per_auction.values() {
        *histogram.entry(*n).or_default() += 1;
    }
    let want: BTreeMap<i64, Vec<Option<i64>>> = histogram
        .iter()
        .map(|(n, c)| (*n, vec![Some(*c)]))
        .collect();
    let table = final_table(&out);
    assert_eq!(live_rows(&table, "bids", &["auctions"]), want);
    // Every auction passed through the counts 1, 2, ... below its final one: those groups
    // emptied out and were deleted.
    let deleted = table.values().filter(|v| v.is_none()).count();
    assert!(deleted > 0, "emptied groups end in a tombstone");
    assert_eq!(
        deleted + want.len(),
        table.len(),
        "every key is live or deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outer_min_max_sum_avg_over_an_inner_having_that_deletes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bids = bids(N, 3, 137);
    let host = host_with_bids(dir.path(), &bids);
    let script = format!(
        "{BID_DDL};
CREATE TABLE spread (m BIGINT, n BIGINT, lo BIGINT, hi BIGINT, total BIGINT, mean BIGINT,
    PRIMARY KEY (m) NOT ENFORCED)
WITH ('connector' = 'upsert-kafka', 'topic' = 'spread', 'key.format' = 'json', 'value.format' = 'json');
INSERT INTO spread
SELECT m, COUNT(*), MIN(mx), MAX(mx), SUM(mx), AVG(mx)
FROM (
    SELECT auction, MOD(auction, 7) AS m, MAX(price) AS mx
    FROM bid GROUP BY auction, MOD(auction, 7) HAVING MAX(price) < 19000
) WHERE mx > 1000
GROUP BY m"
    );
    let out = run_sql(&host, dir.path(), &script, 2).await;
    let mut max: BTreeMap<i64, i64> = BTreeMap::new();
    for b in &bids {
        let m = max.entry(b.auction).or_insert(0);
        *m = (*m).max(b.price);
    }
    let mut groups: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (auction, mx) in &max {
        if *mx < 19_000 && *mx > 1000 {
            groups.entry(auction % 7).or_default().push(*mx);
        }
    }
    let want: BTreeMap<i64, Vec<Option<i64>>> = groups
        .iter()
        .map(|(m, xs)| {
            let sum: i64 = xs.iter().sum();
            let n = xs.len() as i64;
            (
                *m,
                vec![
                    Some(n),
                    xs.iter().min().copied(),
                    xs.iter().max().copied(),
                    Some(sum),
                    Some(sum / n),
                ],
            )
        })
        .collect();
    assert!(
        max.values().filter(|m| **m >= 19_000).count() > 5,
        "some auctions leave the inner result"
    );
    let table = final_table(&out);
    assert_eq!(
        live_rows(&table, "m", &["n", "lo", "hi", "total", "mean"]),
        want
    );
}
