//! Session statements, the catalog, pipeline definitions, and the errors a user sees.

mod sql_support;

use eddy_processor::sql::{compile_pipeline, Catalog, Outcome, Session, SqlError};
use sql_support::BID_DDL;

const SINK: &str = "CREATE TABLE out_t (auction BIGINT, total BIGINT) WITH ('connector' = 'kafka', 'topic' = 'out', 'format' = 'json')";

fn session() -> Session {
    let mut s = Session::new(Catalog::default());
    let bid2 = BID_DDL
        .replace("CREATE TABLE bid (", "CREATE TABLE bid2 (")
        .replace("'topic' = 'bids'", "'topic' = 'bids2'");
    s.execute(&format!("{BID_DDL}; {bid2}; {SINK};"))
        .expect("DDL runs");
    s
}

/// The error of running `sql` in a session that has `bid` and `out_t`.
fn err(sql: &str) -> SqlError {
    match session().execute(sql) {
        Ok(_) => panic!("expected an error for: {sql}"),
        Err(e) => e,
    }
}

fn assert_err(sql: &str, line: u64, column: u64, fragment: &str) {
    let e = err(sql);
    assert!(
        e.message.contains(fragment),
        "'{e}' should contain '{fragment}' for: {sql}"
    );
    assert_eq!(
        (e.line, e.column),
        (line, column),
        "position of '{e}' for: {sql}"
    );
    assert!(
        e.to_string()
            .starts_with(&format!("line {line}, column {column}: ")),
        "{e}"
    );
}

#[test]
fn ddl_show_describe_drop_and_set() {
    let mut s = Session::new(Catalog::default());
    let out = s
        .execute(&format!(
            "{BID_DDL};\n{SINK};\nSHOW TABLES;\nDESCRIBE bid;\nSET 'pipeline.name' = 'p1';\nSET"
        ))
        .expect("runs");
    let texts: Vec<String> = out
        .iter()
        .map(|o| match o {
            Outcome::Done(m) => m.clone(),
            Outcome::Rows { columns, rows } => format!("{columns:?} {rows:?}"),
            Outcome::Pipeline(p) => p.name.clone(),
        })
        .collect();
    assert_eq!(texts[0], "Table 'bid' created.");
    assert_eq!(texts[1], "Table 'out_t' created.");
    assert_eq!(texts[2], r#"["table name"] [["bid"], ["out_t"]]"#);
    assert!(texts[3].contains(r#"["dateTime", "TIMESTAMP(3) *ROWTIME*", "TRUE", "", "", "`dateTime` - INTERVAL '4' SECOND"]"#), "{}", texts[3]);
    assert!(
        texts[3].starts_with(r#"["name", "type", "null", "key", "extras", "watermark"]"#),
        "{}",
        texts[3]
    );
    assert_eq!(texts[4], "Option 'pipeline.name' set to 'p1'.");
    assert_eq!(texts[5], r#"["key", "value"] [["pipeline.name", "p1"]]"#);
    let out = s.execute("DROP TABLE out_t; DROP TABLE IF EXISTS out_t; CREATE TABLE IF NOT EXISTS bid (a INT) WITH ('connector'='kafka','topic'='x','format'='json')").expect("runs");
    assert!(matches!(&out[0], Outcome::Done(m) if m == "Table 'out_t' dropped."));
    assert!(matches!(&out[1], Outcome::Done(m) if m.contains("does not exist; nothing changed")));
    assert!(matches!(&out[2], Outcome::Done(m) if m.contains("already exists; nothing changed")));
    // The catalog round-trips through JSON (the broker persists it).
    let json = serde_json::to_string(s.catalog()).expect("serializes");
    let back: Catalog = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(&back, s.catalog());
    assert_eq!(back.table("bid").map(|t| t.topic()), Some("bids"));
}

#[test]
fn a_failed_script_changes_nothing() {
    let mut s = session();
    let before = s.catalog().clone();
    let e = s
        .execute("CREATE TABLE t2 (a INT) WITH ('connector'='kafka','topic'='t2','format'='json');\nSET 'x' = 'y';\nINSERT INTO nope SELECT * FROM bid")
        .expect_err("unknown sink");
    assert_eq!(
        e.to_string(),
        "line 3, column 13: table 'nope' does not exist; known tables: bid, bid2, out_t, t2"
    );
    assert_eq!(s.catalog(), &before);
    assert!(s.options().is_empty());
}

#[test]
fn inserts_become_self_contained_deterministic_pipelines() {
    let mut s = session();
    let out = s
        .execute("SET 'execution.checkpointing.interval' = '2 s';\nINSERT INTO out_t SELECT auction, SUM(price) FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end")
        .expect("plans");
    let Some(Outcome::Pipeline(p)) = out.into_iter().nth(1) else {
        panic!("a pipeline")
    };
    assert_eq!(p.name, "insert-into-out_t");
    assert_eq!(p.output_topic, "out");
    assert_eq!(p.input_topics, vec!["bids".to_string()]);
    assert!(p.sql.starts_with("CREATE TABLE out_t"), "{}", p.sql);
    assert!(
        p.sql.contains("CREATE TABLE bid (")
            && p.sql
                .contains("SET 'execution.checkpointing.interval' = '2 s';"),
        "{}",
        p.sql
    );
    // The definition compiles alone, the same way every time.
    let a = format!("{:?}", compile_pipeline(&p.name, &p.sql).expect("compiles"));
    let b = format!("{:?}", p.compile().expect("compiles"));
    assert_eq!(a, b);
    assert!(
        a.contains("sql_prepare") && a.contains("WindowAggregate") && a.contains("sql_project"),
        "{a}"
    );
    let e = compile_pipeline("p", "SET 'a' = 'b'").expect_err("no insert");
    assert!(e.to_string().contains("no INSERT INTO"), "{e}");
}

#[test]
fn unsupported_constructs_are_named_with_their_place() {
    assert_err(
        "INSERT INTO out_t SELECT * FROM bid MATCH_RECOGNIZE (PARTITION BY auction ORDER BY `dateTime` MEASURES A.price AS p PATTERN (A) DEFINE A AS A.price > 0)",
        1,
        33,
        "MATCH_RECOGNIZE is not supported yet",
    );
    assert_err(
        "INSERT INTO out_t\nSELECT b.auction, a.price FROM bid b LEFT JOIN bid2 a ON a.auction = b.auction",
        2,
        48,
        "LEFT JOIN is not supported yet",
    );
    assert_err(
        "INSERT INTO out_t SELECT auction, a.price FROM bid b JOIN bid2 a ON a.auction = b.auction",
        1,
        26,
        "column 'auction' is ambiguous; qualify it (b.auction or a.auction)",
    );
    assert_err(
        "INSERT INTO out_t SELECT b.auction, a.price FROM bid b JOIN bid2 a ON a.price > b.price",
        1,
        71,
        "a join needs an equality between columns of the two tables",
    );
    assert_err(
        "INSERT INTO out_t SELECT auction, price FROM bid ORDER BY price",
        1,
        1,
        "ORDER BY is not supported",
    );
    assert_err(
        "INSERT INTO out_t SELECT auction, price FROM bid UNION ALL SELECT auction, price FROM bid",
        1,
        19,
        "only a single SELECT is supported, not 'SELECT auction, price FROM'",
    );
    assert_err(
        "CREATE VIEW v AS SELECT * FROM bid",
        1,
        1,
        "CREATE VIEW is not supported",
    );
    assert_err("SELECT * FROM bid", 1, 1, "a query needs a sink");
}

#[test]
fn subqueries_plan_and_regular_top_n_is_refused() {
    let mut s = session();
    s.execute("INSERT INTO out_t SELECT a, p FROM (SELECT auction AS a, price * 2 AS p FROM bid WHERE price > 10) AS t WHERE t.p < 100")
        .expect("a plain subquery plans");
    let e = err("INSERT INTO out_t SELECT auction, price FROM (SELECT auction, price, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rn FROM bid) WHERE rn <= 1");
    assert!(e.message.contains("regular Top-N is not yet"), "{e}");
    let e = err("INSERT INTO out_t SELECT auction, n FROM (SELECT auction, COUNT(*) AS n FROM bid GROUP BY auction)");
    assert!(
        e.message
            .contains("unwindowed GROUP BY inside a subquery is an updating result"),
        "{e}"
    );
    let e = err("INSERT INTO out_t SELECT auction, num FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY num DESC) AS rownum FROM (SELECT window_start, window_end, auction, COUNT(*) AS num FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND)) GROUP BY window_start, window_end, auction))");
    assert!(
        e.message.contains("window Top-N needs WHERE rownum <= N"),
        "{e}"
    );
}

#[test]
fn updating_subqueries_feed_an_outer_group_by_and_nothing_else_yet() {
    let mut s = session();
    let out = s
        .execute("EXPLAIN INSERT INTO out_t SELECT n, COUNT(*) FROM (SELECT auction, COUNT(*) AS n FROM bid GROUP BY auction) GROUP BY n")
        .expect("a GROUP BY over a GROUP BY plans");
    let Outcome::Rows { rows, .. } = &out[0] else {
        panic!("EXPLAIN gives rows")
    };
    let steps: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert!(
        steps.iter().any(|s| s.contains("sql_retract_aggregate")),
        "{steps:?}"
    );
    let inner = "(SELECT auction, COUNT(*) AS n FROM bid GROUP BY auction)";
    let e = err(&format!("INSERT INTO out_t SELECT a.auction, b.price FROM {inner} a JOIN bid b ON a.auction = b.auction"));
    assert!(
        e.message.contains(
            "a JOIN with an updating subquery (an unwindowed GROUP BY) is not supported yet"
        ),
        "{e}"
    );
    let e = err(&format!("INSERT INTO out_t SELECT auction, n FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY n DESC) AS rn FROM {inner}) WHERE rn <= 1"));
    assert!(
        e.message.contains("ROW_NUMBER() over an updating result"),
        "{e}"
    );
}

#[test]
fn explain_shows_the_steps() {
    let out = session()
        .execute("EXPLAIN INSERT INTO out_t SELECT auction, COUNT(*) FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end")
        .expect("explains");
    let Some(Outcome::Rows { rows, .. }) = out.first() else {
        panic!("rows")
    };
    let steps: Vec<String> = rows.iter().map(|r| r.join(": ")).collect();
    assert_eq!(
        steps,
        vec![
            "source: topic 'bids', event time from 'dateTime'",
            "operator: sql_prepare",
            "operator: window_aggregate",
            "operator: sql_project",
            "sink: topic 'out'",
        ]
    );
}

#[test]
fn temporal_joins_are_checked() {
    assert_err(
        "INSERT INTO out_t SELECT b.auction, b.price FROM bid AS b JOIN bid FOR SYSTEM_TIME AS OF b.`dateTime` AS a ON a.auction = b.auction",
        1,
        64,
        "'bid' is joined FOR SYSTEM_TIME AS OF, so it must be a versioned table: declare PRIMARY KEY (...) NOT ENFORCED and a WATERMARK",
    );
    assert_err(
        "INSERT INTO out_t SELECT auction, price FROM bid FOR SYSTEM_TIME AS OF `dateTime`",
        1,
        50,
        "FOR SYSTEM_TIME AS OF is supported only on the right-hand table of a JOIN",
    );
}

#[test]
fn self_joins_read_the_topic_once() {
    let out = session()
        .execute("EXPLAIN INSERT INTO out_t SELECT b.auction, a.price FROM bid b JOIN bid a ON a.auction = b.auction")
        .expect("a self-join plans");
    let Some(Outcome::Rows { rows, .. }) = out.first() else {
        panic!("rows")
    };
    let steps: Vec<String> = rows.iter().map(|r| r.join(": ")).collect();
    assert_eq!(steps[0], "source: topic 'bids', event time from 'dateTime'");
    assert_eq!(steps[1], "operator: sql_fork");
    assert_eq!(steps.iter().filter(|s| s.starts_with("source")).count(), 1);
}

#[test]
fn unknown_columns_list_the_known_ones() {
    assert_err(
        "INSERT INTO out_t SELECT auction, prise FROM bid",
        1,
        35,
        "column 'prise' not found; known columns: auction, bidder, price, channel, url, dateTime, extra",
    );
    assert_err(
        "INSERT INTO out_t SELECT auction, price FROM bid WHERE datetime > 0",
        1,
        56,
        "did you mean 'dateTime'?",
    );
    assert_err(
        "INSERT INTO out_t SELECT x.auction, price FROM bid",
        1,
        26,
        "table or alias 'x' is not in the FROM clause",
    );
}

#[test]
fn type_errors_name_the_types() {
    assert_err(
        "INSERT INTO out_t SELECT auction, SUM(url) FROM bid GROUP BY auction",
        1,
        35,
        "SUM needs a numeric argument, not STRING: 'SUM(url)'",
    );
    assert_err(
        "INSERT INTO out_t SELECT auction, price FROM bid WHERE url > 5",
        1,
        56,
        "cannot compare STRING with INT",
    );
    assert_err(
        "INSERT INTO out_t SELECT auction, url FROM bid",
        1,
        35,
        "query column 'url' is STRING, but sink column 'total' of 'out_t' is BIGINT",
    );
    assert_err(
        "INSERT INTO out_t SELECT auction FROM bid",
        1,
        19,
        "INSERT INTO out_t writes 2 column(s) (auction, total), but the query produces 1",
    );
    assert_err(
        "INSERT INTO out_t SELECT auction, price + url FROM bid",
        1,
        35,
        "operator + cannot be applied to BIGINT and STRING",
    );
    assert_err(
        "INSERT INTO out_t SELECT auction, bidder FROM bid GROUP BY auction",
        1,
        35,
        "column 'bidder' is neither in GROUP BY nor inside an aggregate function",
    );
    assert_err(
        "INSERT INTO out_t SELECT auction, price FROM bid WHERE price",
        1,
        56,
        "but a BOOLEAN condition is needed",
    );
}

#[test]
fn table_definitions_are_checked() {
    let e = Session::new(Catalog::default())
        .execute("CREATE TABLE t (a INT)\nWITH ('connector' = 'kafka', 'format' = 'json')")
        .expect_err("no topic");
    assert_eq!(
        e.to_string(),
        "line 2, column 1: table 't': the WITH clause needs 'topic' = '<topic name>'"
    );
    let e = Session::new(Catalog::default())
        .execute("CREATE TABLE t (a INT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL 'x' SECOND) WITH ('connector' = 'kafka', 'topic' = 't', 'format' = 'json')")
        .expect_err("bad interval");
    assert!(
        e.to_string()
            .contains("interval INTERVAL 'x' SECOND is not valid: 'x' is not a number"),
        "{e}"
    );
    let e = Session::new(Catalog::default())
        .execute("CREATE TABLE t (a INT, ts TIMESTAMP(3), WATERMARK FOR a AS a) WITH ('connector' = 'kafka', 'topic' = 't', 'format' = 'json')")
        .expect_err("watermark on INT");
    assert!(e.to_string().contains("needs a TIMESTAMP(3) column"), "{e}");
    let e = Session::new(Catalog::default())
        .execute("CREATE TABLE t (a INT) WITH ('connector' = 'blackhole')")
        .expect_err("connector");
    assert!(
        e.to_string()
            .contains("connector 'blackhole' is not supported"),
        "{e}"
    );
    let e = Session::new(Catalog::default())
        .execute("CREATE TABLE t (a INT) WITH ('connector' = 'kafka', 'topic' = 't', 'format' = 'json', 'scan.startup.mode' = 'specific-offsets')")
        .expect_err("specific-offsets start");
    assert!(
        e.to_string()
            .contains("'scan.startup.mode' = 'specific-offsets' is not supported yet"),
        "{e}"
    );
    // 'timestamp' is supported, but only with its epoch milliseconds.
    let e = Session::new(Catalog::default())
        .execute("CREATE TABLE t (a INT) WITH ('connector' = 'kafka', 'topic' = 't', 'format' = 'json', 'scan.startup.mode' = 'timestamp', 'scan.startup.timestamp-millis' = 'soon')")
        .expect_err("timestamp start without millis");
    assert!(
        e.to_string()
            .contains("needs 'scan.startup.timestamp-millis'"),
        "{e}"
    );
    let e = Session::new(Catalog::default())
        .execute("CREATE TABLE t (a INT, b TINYINT) WITH ('connector' = 'kafka', 'topic' = 't', 'format' = 'json')")
        .expect_err("type");
    assert_eq!((e.line, e.column), (1, 26), "{e}");
    assert!(e.message.contains("type TINYINT is not supported"), "{e}");
}

#[test]
fn windows_are_checked() {
    assert_err(
        "INSERT INTO out_t SELECT auction, COUNT(*) FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(price), INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end",
        1,
        84,
        "TUMBLE: 'price' is not a time attribute of 'bid'; its event time is 'dateTime'",
    );
    assert_err(
        "INSERT INTO out_t SELECT auction, COUNT(*) FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND)) GROUP BY auction",
        1,
        55,
        "must GROUP BY window_start, window_end",
    );
    assert_err(
        "INSERT INTO out_t SELECT auction, COUNT(*) FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '3' SECOND, INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end",
        1,
        55,
        "a hopping window's size must be a multiple of its slide",
    );
    assert_err(
        "INSERT INTO out_t SELECT auction, COUNT(*) FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' YEAR)) GROUP BY auction, window_start, window_end",
        1,
        106,
        "unit YEAR is not supported",
    );
}
