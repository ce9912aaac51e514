//! The Flink SQL front end: a session runs DDL and SET statements against a catalog of
//! tables (Kafka topics with JSON values) and plans `INSERT INTO ... SELECT` into a
//! [`Pipeline`] that runs on the engine, locally in the broker or against any Kafka cluster.
//!
//! ```
//! use eddy_processor::sql::{Catalog, Outcome, Session};
//!
//! let mut s = Session::new(Catalog::default());
//! let out = s.execute(
//!     "CREATE TABLE bid (auction BIGINT, price BIGINT, dateTime TIMESTAMP(3),
//!        WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND)
//!      WITH ('connector' = 'kafka', 'topic' = 'bids', 'format' = 'json');
//!      CREATE TABLE hot (auction BIGINT, num BIGINT, window_end TIMESTAMP(3))
//!      WITH ('connector' = 'kafka', 'topic' = 'hot', 'format' = 'json');
//!      INSERT INTO hot SELECT auction, COUNT(*) AS num, window_end
//!      FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
//!      GROUP BY auction, window_start, window_end;",
//! ).expect("valid SQL");
//! let Outcome::Pipeline(p) = &out[2] else { panic!("an INSERT plans a pipeline") };
//! assert_eq!((p.name.as_str(), p.output_topic.as_str()), ("insert-into-hot", "hot"));
//! let plan = p.compile().expect("compiles");
//! # let _ = plan;
//! ```
//!
//! Statements: `CREATE [TEMPORARY] TABLE [IF NOT EXISTS]`, `DROP TABLE [IF EXISTS]`,
//! `SHOW TABLES`, `DESCRIBE t`, `SET 'k' = 'v'`, `RESET ['k']`, `INSERT INTO t SELECT ...`,
//! `EXPLAIN INSERT ...`. A bare `SELECT` is planned on its own with [`Session::plan_query`]
//! and run with [`crate::run_query`], its rows streamed to a client (`eddy sql`). The subset and its differences from Flink are in `docs/sql.md`.
//! What is not supported is refused when the statement is planned, naming the construct and
//! its line and column.

mod agg;
mod changelog;
mod ddl;
mod derived;
mod error;
mod eval;
mod expr;
mod format;
mod functions;
mod grouping;
mod join_plan;
#[cfg(test)]
mod join_state_tests;
mod lex;
mod ops;
mod over;
mod planner;
mod query;
mod regular_join;
mod retract;
mod scoped;
mod sink;
mod sources;
mod temporal;
mod topn;
mod types;
mod typing;
mod windows;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

pub use ddl::{ColumnDef, TableDef, WatermarkDef};
pub use error::SqlError;
pub use query::{ChangeKind, Changelog, SqlQuery};
pub use types::SqlType;

use crate::plan::Pipeline;
use lex::{rewrite_table_args, Stmt};

/// The tables a session knows, by name. The broker persists it as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    tables: BTreeMap<String, TableDef>,
}

impl Catalog {
    /// A table by name (names are case-sensitive, as in Flink).
    pub fn table(&self, name: &str) -> Option<&TableDef> {
        self.tables.get(name)
    }

    /// All tables, by name.
    pub fn tables(&self) -> impl Iterator<Item = &TableDef> {
        self.tables.values()
    }

    pub(crate) fn names(&self) -> String {
        if self.tables.is_empty() {
            "none".into()
        } else {
            self.tables.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    }
}

/// What a statement did.
#[derive(Debug)]
pub enum Outcome {
    /// A DDL or SET statement took effect: "Table 'bid' created." etc.
    Done(String),
    /// A result to show (SHOW TABLES, DESCRIBE, SET without arguments).
    Rows {
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// An INSERT was planned; the caller starts it.
    Pipeline(SqlPipeline),
}

/// A planned `INSERT INTO ... SELECT`, as the broker persists and restarts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlPipeline {
    /// From `SET 'pipeline.name'`, else `insert-into-<sink table>`.
    pub name: String,
    /// Self-contained SQL: the CREATE TABLE statements of the tables it reads and writes,
    /// the session's SET statements and the INSERT; [`compile_pipeline`] turns it into a plan.
    pub sql: String,
    /// The topic it writes.
    pub output_topic: String,
    /// The topics it reads.
    pub input_topics: Vec<String>,
}

impl SqlPipeline {
    /// The runnable plan (the same SQL always gives the same plan and operator order).
    pub fn compile(&self) -> Result<Pipeline, SqlError> {
        compile_pipeline(&self.name, &self.sql)
    }
}

/// Compiles a persisted pipeline definition (the `sql` of a [`SqlPipeline`]: CREATE TABLE
/// statements, SET statements and exactly one INSERT) into a runnable plan named `name`.
pub fn compile_pipeline(name: &str, sql: &str) -> Result<Pipeline, SqlError> {
    let mut session = Session::new(Catalog::default());
    let mut planned = None;
    for stmt in lex::split(sql)? {
        if stmt.leading_words(1).first().map(String::as_str) == Some("INSERT") {
            if planned.is_some() {
                return Err(SqlError::at(
                    stmt.start,
                    "a pipeline definition holds exactly one INSERT",
                ));
            }
            planned = Some(planner::plan_insert(
                &stmt,
                &session.catalog,
                &session.options,
                name,
            )?);
        } else {
            session.statement(&stmt)?;
        }
    }
    planned.map(|p| p.pipeline).ok_or_else(|| {
        SqlError::new("the pipeline definition has no INSERT INTO ... SELECT statement")
    })
}

/// A catalog plus the options set with `SET`.
#[derive(Debug, Clone, Default)]
pub struct Session {
    catalog: Catalog,
    options: BTreeMap<String, String>,
}

impl Session {
    /// A session over `catalog` with no options set.
    pub fn new(catalog: Catalog) -> Session {
        Session {
            catalog,
            options: BTreeMap::new(),
        }
    }

    /// The tables.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The options set with `SET` (e.g. `pipeline.name`).
    pub fn options(&self) -> &BTreeMap<String, String> {
        &self.options
    }

    /// Runs one or more `;`-separated statements. It stops at the first error and then
    /// nothing of the script takes effect: the catalog and options are as before the call
    /// (so a corrected script can simply be run again).
    pub fn execute(&mut self, script: &str) -> Result<Vec<Outcome>, SqlError> {
        let before = (self.catalog.clone(), self.options.clone());
        let result =
            lex::split(script).and_then(|stmts| stmts.iter().map(|s| self.statement(s)).collect());
        if result.is_err() {
            (self.catalog, self.options) = before;
        }
        result
    }

    /// Plans `sql`, which must be exactly one `SELECT` statement, against the catalog with
    /// the session's options; nothing is started and the session is unchanged. Errors carry
    /// the line and column in `sql`, as for an INSERT.
    pub fn plan_query(&self, sql: &str) -> Result<SqlQuery, SqlError> {
        let stmts = lex::split(sql)?;
        let stmt = match stmts.as_slice() {
            [one] => one,
            [] => return Err(SqlError::new("no statement given; expected a SELECT query")),
            [_, second, ..] => {
                return Err(SqlError::at(
                    second.start,
                    "expected exactly one SELECT query; run other statements separately",
                ))
            }
        };
        let first = stmt.leading_words(1);
        if !matches!(first.first().map(String::as_str), Some("SELECT" | "WITH")) {
            return Err(SqlError::at(
                stmt.start,
                format!(
                    "expected a SELECT query, not {}",
                    first.first().map_or("", String::as_str)
                ),
            ));
        }
        let planned = planner::plan_select_query(stmt, &self.catalog, &self.options, "query")?;
        Ok(SqlQuery {
            columns: planned.columns,
            updating: planned.updating,
            limit: planned.limit,
            input_topics: planned.sources,
            pipeline: planned.pipeline,
        })
    }

    fn statement(&mut self, stmt: &Stmt) -> Result<Outcome, SqlError> {
        let words = stmt.leading_words(3);
        let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
        match (w(0), w(1), w(2)) {
            ("CREATE", "TABLE", _) | ("CREATE", "TEMPORARY", "TABLE") => {
                let c = ddl::parse_create_table(stmt)?;
                let name = c.table.name.clone();
                if self.catalog.tables.contains_key(&name) {
                    if c.if_not_exists {
                        return Ok(Outcome::Done(format!("Table '{name}' already exists; nothing changed.")));
                    }
                    return Err(SqlError::at(c.at, format!("table '{name}' already exists; use CREATE TABLE IF NOT EXISTS or DROP TABLE {name} first")));
                }
                self.catalog.tables.insert(name.clone(), c.table);
                Ok(Outcome::Done(format!("Table '{name}' created.")))
            }
            ("CREATE", what, _) => Err(SqlError::at(stmt.start, format!("CREATE {what} is not supported; only CREATE TABLE is"))),
            ("DROP", _, _) => self.drop(stmt),
            ("SHOW", "TABLES", _) if stmt.tokens.len() == 2 => Ok(Outcome::Rows {
                columns: vec!["table name".into()],
                rows: self.catalog.tables.keys().map(|k| vec![k.clone()]).collect(),
            }),
            ("DESCRIBE" | "DESC", _, _) => {
                let mut p = parser(stmt);
                p.next_token();
                let name = p.parse_identifier()?;
                expect_end(&mut p)?;
                let t = self.catalog.tables.get(&name.value).ok_or_else(|| {
                    SqlError::span(name.span, format!("table '{}' does not exist; known tables: {}", name.value, self.catalog.names()))
                })?;
                Ok(Outcome::Rows {
                    columns: ["name", "type", "null", "key", "extras", "watermark"].map(String::from).to_vec(),
                    rows: t.describe(),
                })
            }
            ("SET", _, _) => self.set(stmt),
            ("RESET", _, _) => {
                let mut p = parser(stmt);
                p.next_token();
                if p.peek_token().token == Token::EOF {
                    self.options.clear();
                    return Ok(Outcome::Done("All options reset.".into()));
                }
                let k = p.parse_literal_string()?;
                expect_end(&mut p)?;
                self.options.remove(&k);
                Ok(Outcome::Done(format!("Option '{k}' reset.")))
            }
            ("INSERT", _, _) => {
                let sink = planner::tables_of(stmt)?.into_iter().next().unwrap_or_default();
                let name = self.options.get("pipeline.name").cloned().unwrap_or_else(|| default_name(&sink));
                let planned = planner::plan_insert(stmt, &self.catalog, &self.options, &name)?;
                Ok(Outcome::Pipeline(SqlPipeline {
                    sql: self.pipeline_sql(stmt)?,
                    name,
                    output_topic: planned.sink,
                    input_topics: planned.sources,
                }))
            }
            ("EXPLAIN", _, _) => {
                // EXPLAIN INSERT ...: plan it and show the steps without starting anything.
                let inner = Stmt {
                    tokens: stmt.tokens[1..].to_vec(),
                    text: stmt.text.clone(),
                    start: stmt.tokens.get(1).map_or(stmt.start, |t| t.span.start),
                };
                if inner.leading_words(1).first().map(String::as_str) != Some("INSERT") {
                    return Err(SqlError::at(inner.start, "EXPLAIN needs an INSERT INTO ... SELECT statement"));
                }
                let planned = planner::plan_insert(&inner, &self.catalog, &self.options, "explain")?;
                Ok(Outcome::Rows {
                    columns: vec!["step".into(), "what".into()],
                    rows: explain(&planned.pipeline),
                })
            }
            ("SELECT" | "WITH", _, _) => Err(SqlError::at(stmt.start, "a query needs a sink in a script: a bare SELECT streams its rows to a client (the `eddy sql` prompt, or POST /v1/query); to write a topic use INSERT INTO <table> SELECT ...")),
            ("BEGIN", _, _) | ("EXECUTE", _, _) | ("END", _, _) => Err(SqlError::at(stmt.start, "statement sets are not supported; run one INSERT per pipeline")),
            (other, _, _) => Err(SqlError::at(stmt.start, format!("{other} statements are not supported; use CREATE TABLE, DROP TABLE, SHOW TABLES, DESCRIBE, SET, RESET or INSERT INTO ... SELECT"))),
        }
    }

    fn drop(&mut self, stmt: &Stmt) -> Result<Outcome, SqlError> {
        let mut p = parser(stmt);
        p.expect_keyword(Keyword::DROP)?;
        let _ = p.parse_keyword(Keyword::TEMPORARY);
        if !p.parse_keyword(Keyword::TABLE) {
            return Err(SqlError::span(
                p.peek_token().span,
                "only DROP TABLE is supported",
            ));
        }
        let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        let name = p.parse_identifier()?;
        expect_end(&mut p)?;
        match self.catalog.tables.remove(&name.value) {
            Some(_) => Ok(Outcome::Done(format!("Table '{}' dropped.", name.value))),
            None if if_exists => Ok(Outcome::Done(format!(
                "Table '{}' does not exist; nothing changed.",
                name.value
            ))),
            None => Err(SqlError::span(
                name.span,
                format!(
                    "table '{}' does not exist; known tables: {}",
                    name.value,
                    self.catalog.names()
                ),
            )),
        }
    }

    fn set(&mut self, stmt: &Stmt) -> Result<Outcome, SqlError> {
        let mut p = parser(stmt);
        p.next_token();
        if p.peek_token().token == Token::EOF {
            return Ok(Outcome::Rows {
                columns: vec!["key".into(), "value".into()],
                rows: self
                    .options
                    .iter()
                    .map(|(k, v)| vec![k.clone(), v.clone()])
                    .collect(),
            });
        }
        let k = p.parse_literal_string()?;
        p.expect_token(&Token::Eq)?;
        let v = p.parse_literal_string()?;
        expect_end(&mut p)?;
        if k == "pipeline.name"
            && (v.is_empty()
                || !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(SqlError::at(stmt.start, format!("pipeline name '{v}' must be non-empty and use only letters, digits, '-', '_' and '.'")));
        }
        if matches!(
            k.as_str(),
            "table.exec.source.idle-timeout" | "execution.checkpointing.interval"
        ) && planner::parse_duration(&v).is_none()
        {
            return Err(SqlError::at(
                stmt.start,
                format!("'{k}' = '{v}' is not a duration (e.g. '10 s', '500 ms')"),
            ));
        }
        self.options.insert(k.clone(), v.clone());
        Ok(Outcome::Done(format!("Option '{k}' set to '{v}'.")))
    }

    /// The self-contained text of a pipeline: its tables' DDL, the SET options, the INSERT.
    fn pipeline_sql(&self, stmt: &Stmt) -> Result<String, SqlError> {
        let mut out = String::new();
        let mut seen = Vec::new();
        for t in planner::tables_of(stmt)? {
            if seen.contains(&t) {
                continue;
            }
            if let Some(def) = self.catalog.tables.get(&t) {
                out.push_str(&def.ddl);
                out.push_str(";\n");
            }
            seen.push(t);
        }
        for (k, v) in &self.options {
            out.push_str(&format!(
                "SET '{}' = '{}';\n",
                k.replace('\'', "''"),
                v.replace('\'', "''")
            ));
        }
        out.push_str(&stmt.text);
        out.push_str(";\n");
        Ok(out)
    }
}

/// The steps of a plan: its sources, operators and sink.
fn explain(p: &Pipeline) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for i in &p.inputs {
        let time = match &i.event_time {
            crate::plan::EventTime::Field(f) => format!("event time from '{f}'"),
            crate::plan::EventTime::RecordTimestamp => {
                "event time from the record timestamp".into()
            }
        };
        rows.push(vec![
            "source".into(),
            format!("topic '{}', {time}", i.topic),
        ]);
    }
    for op in &p.ops {
        rows.push(vec!["operator".into(), op.name().to_string()]);
    }
    rows.push(vec!["sink".into(), format!("topic '{}'", p.output)]);
    rows
}

fn default_name(sink: &str) -> String {
    let clean: String = sink
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("insert-into-{clean}")
}

fn parser(stmt: &Stmt) -> Parser<'static> {
    static DIALECT: GenericDialect = GenericDialect {};
    Parser::new(&DIALECT).with_tokens_with_locations(rewrite_table_args(&stmt.tokens))
}

fn expect_end(p: &mut Parser<'_>) -> Result<(), SqlError> {
    let t = p.peek_token();
    if t.token == Token::EOF {
        Ok(())
    } else {
        Err(SqlError::span(
            t.span,
            format!("syntax error: unexpected '{}'", t.token),
        ))
    }
}

/// Epoch milliseconds as `yyyy-MM-dd HH:mm:ss.SSS` (UTC): the TIMESTAMP(3) text Flink's
/// `json` format reads (for generators and tools that write table input).
pub fn timestamp_text(ms: i64) -> String {
    format::format_timestamp(ms, Some(3))
}
