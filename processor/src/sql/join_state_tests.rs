//! Join state under watermarks, driven operator by operator as the runner does (no I/O), so
//! the state can be measured while a query runs.

use std::collections::BTreeMap;

use crate::event::{Collector, Event};
use crate::operator::Operator;
use crate::value::Value;

use super::compile_pipeline;

const BASE: i64 = 1_704_067_200_000; // 2024-01-01 00:00:00 UTC

/// Nexmark q7 as `eddy bench sql` runs it.
const Q7: &str = "CREATE TABLE bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
  `dateTime` TIMESTAMP(3), extra VARCHAR,
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
) WITH ('connector' = 'kafka', 'topic' = 'bids', 'format' = 'json',
        'scan.bounded.mode' = 'latest-offset');
CREATE TABLE q7 (auction BIGINT, price BIGINT, bidder BIGINT, `dateTime` TIMESTAMP(3), extra VARCHAR)
  WITH ('connector' = 'kafka', 'topic' = 'q7', 'format' = 'json');
INSERT INTO q7
SELECT B.auction, B.price, B.bidder, B.`dateTime`, B.extra
FROM bid B
JOIN (
  SELECT MAX(price) AS maxprice, window_end as `dateTime`
  FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
  GROUP BY window_start, window_end
) B1
ON B.price = B1.maxprice
WHERE B.`dateTime` BETWEEN B1.`dateTime` - INTERVAL '10' SECOND AND B1.`dateTime`;";

/// Runs `events` through operators `from..`; what leaves the last one.
fn push(ops: &mut [Box<dyn Operator>], from: usize, mut events: Vec<Event>) -> Vec<Event> {
    for op in ops.iter_mut().skip(from) {
        let mut out = Collector::default();
        for e in events {
            op.process(e, &mut out);
        }
        events = out.take();
    }
    events
}

/// Delivers a watermark to each operator in turn, what it fires going downstream first.
fn watermark(ops: &mut [Box<dyn Operator>], wm: i64) -> Vec<Event> {
    let mut all = Vec::new();
    for i in 0..ops.len() {
        let mut out = Collector::default();
        ops[i].on_watermark(wm, &mut out);
        let fired = out.take();
        all.extend(push(ops, i + 1, fired));
    }
    all
}

fn state_bytes(ops: &[Box<dyn Operator>]) -> usize {
    ops.iter()
        .map(|o| o.snapshot().ok().flatten().map_or(0, |s| s.len()))
        .sum()
}

fn ts_text(ms: i64) -> String {
    super::timestamp_text(ms)
}

#[test]
fn q7_join_state_stays_bounded_by_the_watermark_and_results_match() {
    let mut p = compile_pipeline("q7", Q7).expect("q7 plans");
    // 40,000 bids, one every 15 ms: 600 s of event time, 60 windows. Prices repeat, so a
    // window's maximum is found in other windows too. Every 2,000th bid sits exactly on a
    // window boundary with the top price, which a bid 4.5 s earlier also has: it matches
    // both the window ending at its time (l = r) and its own window.
    let n = 40_000i64;
    let bids: Vec<(i64, i64, i64)> = (0..n)
        .map(|i| {
            let price = if i % 2_000 == 0 || i % 2_000 == 1_700 {
                5_000
            } else {
                1 + (i * 7_919) % 3_001
            };
            (1_000 + i % 37, price, BASE + i * 15)
        })
        .collect();
    let mut out = Vec::new();
    let mut sizes = Vec::new();
    let mut max_time = i64::MIN;
    for (chunk_no, chunk) in bids.chunks(500).enumerate() {
        let events: Vec<Event> = chunk
            .iter()
            .map(|&(auction, price, t)| {
                let json = format!(
                    r#"{{"auction":{auction},"bidder":7,"price":{price},"channel":"c","url":"u","dateTime":"{}","extra":"x"}}"#,
                    ts_text(t)
                );
                max_time = max_time.max(t);
                Event::new(Value::from_json(json.as_bytes()).expect("json"), t)
            })
            .collect();
        out.extend(push(&mut p.ops, 0, events));
        out.extend(watermark(&mut p.ops, max_time - 4_000));
        if chunk_no % 10 == 9 {
            sizes.push(state_bytes(&p.ops));
        }
    }
    out.extend(watermark(&mut p.ops, i64::MAX));
    // Held state follows the window and the interval (about 14 s of bids), not the input:
    // the last measurement is no bigger than the first plus slack.
    let (first, last) = (sizes[0], sizes[sizes.len() - 1]);
    assert!(sizes.len() >= 8);
    assert!(
        last <= first + first / 2,
        "join state grew with the input: {sizes:?} bytes"
    );
    assert!(
        state_bytes(&p.ops) < first / 10,
        "the final watermark empties the state"
    );
    // The same result computed in plain Rust.
    let mut max: BTreeMap<i64, i64> = BTreeMap::new();
    for &(_, price, t) in &bids {
        let m = max.entry(t - t.rem_euclid(10_000)).or_insert(0);
        *m = (*m).max(price);
    }
    let mut want = Vec::new();
    for (start, m) in &max {
        for &(auction, price, t) in &bids {
            if price == *m && t >= *start && t <= start + 10_000 {
                want.push(format!(
                    r#"{{"auction":{auction},"price":{price},"bidder":7,"dateTime":"{}","extra":"x"}}"#,
                    super::format::format_timestamp(t, None)
                ));
            }
        }
    }
    let mut got: Vec<String> = out
        .iter()
        .map(|e| String::from_utf8_lossy(&e.value.to_json()).into_owned())
        .collect();
    want.sort();
    got.sort();
    assert!(
        want.iter().any(|w| w.contains(":00\"")),
        "some matches sit on a window boundary"
    );
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
}
