//! Arbitrary token soup never panics the SQL front end: every script gives outcomes or an
//! error with a message.

mod sql_support;

use eddy_processor::sql::{Catalog, Session};
use proptest::prelude::*;
use sql_support::BID_DDL;

const WORDS: &[&str] = &[
    "SELECT",
    "INSERT",
    "INTO",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "HAVING",
    "JOIN",
    "LEFT",
    "ON",
    "AND",
    "OR",
    "NOT",
    "AS",
    "TABLE",
    "TUMBLE",
    "HOP",
    "SESSION",
    "CUMULATE",
    "DESCRIPTOR",
    "INTERVAL",
    "'10'",
    "SECOND",
    "COUNT",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
    "(",
    ")",
    ",",
    "*",
    "+",
    "-",
    "/",
    "=",
    "<",
    ">=",
    "bid",
    "out_t",
    "auction",
    "price",
    "`dateTime`",
    "window_start",
    "window_end",
    "1",
    "0.5",
    "'x'",
    "NULL",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "CAST",
    "BIGINT",
    "DECIMAL(10, 2)",
    "OVER",
    "PARTITION",
    "ROW_NUMBER",
    "ORDER",
    "ROWS",
    "PRECEDING",
    "CURRENT",
    "ROW",
    "DISTINCT",
    "FOR",
    "SYSTEM_TIME",
    "OF",
    "EXPLAIN",
    "SET",
    "'pipeline.name'",
    ";",
    "CREATE",
    "DROP",
    "DESCRIBE",
    "SHOW",
    "TABLES",
    "WATERMARK",
    "WITH",
    "PRIMARY",
    "KEY",
    "ENFORCED",
    "BETWEEN",
    "IN",
    "LIKE",
    "IS",
];

fn session() -> Session {
    let mut s = Session::new(Catalog::default());
    s.execute(&format!(
        "{BID_DDL}; CREATE TABLE out_t (auction BIGINT, total BIGINT) WITH ('connector' = 'kafka', 'topic' = 'out', 'format' = 'json')"
    ))
    .expect("DDL runs");
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn token_soup_never_panics(picks in proptest::collection::vec(0..WORDS.len(), 0..40)) {
        let script: Vec<&str> = picks.iter().map(|i| WORDS[*i]).collect();
        let script = script.join(" ");
        if let Err(e) = session().execute(&script) {
            prop_assert!(!e.message.is_empty());
        }
        // The same words after a valid prefix reach the planner more often.
        let planned = format!("INSERT INTO out_t SELECT auction, {script}");
        if let Err(e) = session().execute(&planned) {
            prop_assert!(!e.message.is_empty());
        }
    }
}
