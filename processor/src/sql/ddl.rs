//! CREATE TABLE in Flink's dialect, and what a table is in the catalog.
//!
//! A table is a Kafka topic with a JSON value. Flink-only parts of the statement
//! (`WATERMARK FOR ... AS ...`, computed columns `c AS expr`, `PRIMARY KEY (...) NOT
//! ENFORCED`) are parsed here with sqlparser's building blocks (identifiers, types,
//! expressions), so every part keeps its position for error messages.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlparser::ast::Spanned;
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Token};

use super::error::SqlError;
use super::expr::{Arith, Compiler, Expr, Scope, ScopeCol, Typed};
use super::lex::{rewrite_table_args, Stmt};
use super::types::SqlType;

/// One column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    pub ty: SqlType,
    /// `NOT NULL` was declared.
    #[serde(default)]
    pub not_null: bool,
    /// SQL of a computed column (`name AS expr`); computed columns are not in the JSON.
    #[serde(default)]
    pub computed: Option<String>,
}

/// `WATERMARK FOR column AS column - INTERVAL ...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatermarkDef {
    pub column: String,
    /// Allowed out-of-orderness in milliseconds.
    pub delay_ms: i64,
    /// The expression as written.
    pub expr: String,
}

/// A table: a topic, its columns and its options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDef {
    pub name: String,
    pub columns: Vec<ColumnDef>,
    #[serde(default)]
    pub watermark: Option<WatermarkDef>,
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// The WITH options, keys as written.
    pub options: BTreeMap<String, String>,
    /// The CREATE TABLE statement as written (pipelines embed it to be self-contained).
    pub ddl: String,
}

/// Options a table accepts besides `properties.*` (Flink's Kafka connector and json format
/// names; those that do not change what Eddy does are accepted and ignored).
const KNOWN_OPTIONS: &[&str] = &[
    "connector",
    "topic",
    "format",
    "value.format",
    "key.format",
    "key.fields",
    "key.fields-prefix",
    "value.fields-include",
    "scan.startup.mode",
    "scan.startup.timestamp-millis",
    "scan.bounded.mode",
    "scan.topic-partition-discovery.interval",
    "sink.partitioner",
    "sink.delivery-guarantee",
    "sink.transactional-id-prefix",
    "sink.parallelism",
    "sink.buffer-flush.max-rows",
    "sink.buffer-flush.interval",
    "json.ignore-parse-errors",
    "json.fail-on-missing-field",
    "json.timestamp-format.standard",
    "json.encode.ignore-null-fields",
    "json.encode.decimal-as-plain-number",
    "value.json.encode.decimal-as-plain-number",
    "value.json.ignore-parse-errors",
    "value.json.timestamp-format.standard",
    "key.json.ignore-parse-errors",
    "dead-letter.topic",
];

impl TableDef {
    /// The topic the table reads and writes.
    pub fn topic(&self) -> &str {
        self.options.get("topic").map_or("", String::as_str)
    }

    pub(crate) fn option(&self, k: &str) -> Option<&str> {
        self.options.get(k).map(String::as_str)
    }

    /// `scan.startup.timestamp-millis` when it is a valid epoch-millisecond count.
    pub(crate) fn startup_timestamp(&self) -> Option<i64> {
        self.option("scan.startup.timestamp-millis")?
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|ms| *ms >= 0)
    }

    /// Is this an upsert table (upsert-kafka)?
    pub(crate) fn is_upsert(&self) -> bool {
        self.option("connector") == Some("upsert-kafka")
    }

    /// Columns stored in the JSON value (not computed), with their positions in a row.
    pub(crate) fn physical(&self) -> impl Iterator<Item = (usize, &ColumnDef)> {
        self.columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.computed.is_none())
    }

    /// Column names for messages.
    pub(crate) fn column_names(&self) -> String {
        self.columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The columns as a scope (qualified by `qualifier`), positions = declaration order.
    pub(crate) fn scope(&self, qualifier: &str) -> Scope {
        Scope {
            cols: self
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| ScopeCol {
                    name: c.name.clone(),
                    qualifier: Some(qualifier.to_string()),
                    ty: c.ty.clone(),
                    index: i,
                })
                .collect(),
        }
    }

    /// Compiles the computed columns (in order) against the physical ones.
    pub(crate) fn computed_exprs(&self) -> Result<Vec<(usize, Typed)>, SqlError> {
        let scope = self.scope(&self.name);
        let mut out = Vec::new();
        for (i, c) in self.columns.iter().enumerate() {
            if let Some(sql) = &c.computed {
                let ast = Parser::new(&GenericDialect {})
                    .try_with_sql(sql)?
                    .parse_expr()?;
                out.push((i, Compiler::plain(&scope).compile(&ast)?));
            }
        }
        Ok(out)
    }

    /// Flink's DESCRIBE rows: name, type, null, key, extras, watermark.
    pub(crate) fn describe(&self) -> Vec<Vec<String>> {
        self.columns
            .iter()
            .map(|c| {
                let rowtime = self.watermark.as_ref().is_some_and(|w| w.column == c.name);
                vec![
                    c.name.clone(),
                    if rowtime {
                        format!("{} *ROWTIME*", c.ty)
                    } else {
                        c.ty.to_string()
                    },
                    if c.not_null || self.primary_key.contains(&c.name) {
                        "FALSE"
                    } else {
                        "TRUE"
                    }
                    .to_string(),
                    if self.primary_key.contains(&c.name) {
                        format!("PRI({})", self.primary_key.join(", "))
                    } else {
                        String::new()
                    },
                    c.computed
                        .as_ref()
                        .map(|e| format!("AS {e}"))
                        .unwrap_or_default(),
                    self.watermark
                        .as_ref()
                        .filter(|_| rowtime)
                        .map(|w| w.expr.clone())
                        .unwrap_or_default(),
                ]
            })
            .collect()
    }
}

/// What a CREATE TABLE statement asks for.
#[derive(Debug)]
pub(crate) struct CreateTable {
    pub(crate) table: TableDef,
    pub(crate) if_not_exists: bool,
    pub(crate) at: Location,
}

fn is_word(t: &Token, w: &str) -> bool {
    matches!(t, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w))
}

/// Parses and checks `CREATE [TEMPORARY] TABLE [IF NOT EXISTS] name (...) WITH (...)`.
pub(crate) fn parse_create_table(stmt: &Stmt) -> Result<CreateTable, SqlError> {
    let dialect = GenericDialect {};
    let mut p = Parser::new(&dialect).with_tokens_with_locations(rewrite_table_args(&stmt.tokens));
    p.expect_keyword(Keyword::CREATE)?;
    let _ = p.parse_keyword(Keyword::TEMPORARY);
    p.expect_keyword(Keyword::TABLE)?;
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name_tok = p.peek_token();
    let name = p.parse_object_name(false)?;
    if name.0.len() != 1 {
        return Err(SqlError::span(name_tok.span, format!("table name '{name}' must not be qualified (catalogs and databases are not supported)")));
    }
    let name = name.0[0]
        .as_ident()
        .map(|i| i.value.clone())
        .unwrap_or_default();
    p.expect_token(&Token::LParen)?;
    let mut columns: Vec<ColumnDef> = Vec::new();
    let mut watermark_ast = None;
    let mut primary_key = Vec::new();
    let mut computed_at = Vec::new();
    loop {
        let t = p.peek_token();
        if is_word(&t.token, "WATERMARK") {
            p.next_token();
            p.expect_keyword(Keyword::FOR)?;
            let col = p.parse_identifier()?;
            p.expect_keyword(Keyword::AS)?;
            let e = p.parse_expr()?;
            watermark_ast = Some((col, e, t.span));
        } else if is_word(&t.token, "PRIMARY") || is_word(&t.token, "CONSTRAINT") {
            if p.parse_keyword(Keyword::CONSTRAINT) {
                p.parse_identifier()?;
            }
            p.expect_keywords(&[Keyword::PRIMARY, Keyword::KEY])?;
            p.expect_token(&Token::LParen)?;
            primary_key = p
                .parse_comma_separated(|p| p.parse_identifier())?
                .into_iter()
                .map(|i| i.value)
                .collect();
            p.expect_token(&Token::RParen)?;
            if !p.parse_keywords(&[Keyword::NOT, Keyword::ENFORCED]) {
                return Err(SqlError::span(t.span, "Flink requires PRIMARY KEY (...) NOT ENFORCED: the key is not checked, it only says how results are upserted"));
            }
        } else {
            let col = p.parse_identifier()?;
            if columns.iter().any(|c| c.name == col.value) {
                return Err(SqlError::span(
                    col.span,
                    format!("column '{}' is declared twice", col.value),
                ));
            }
            if p.parse_keyword(Keyword::AS) {
                let e = p.parse_expr()?;
                computed_at.push((columns.len(), e.span()));
                columns.push(ColumnDef {
                    name: col.value,
                    ty: SqlType::Null,
                    not_null: false,
                    computed: Some(e.to_string()),
                });
            } else {
                let ty_tok = p.peek_token();
                let dt = p.parse_data_type()?;
                let ty = SqlType::from_ast(&dt, ty_tok.span)?;
                let mut not_null = false;
                if p.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
                    not_null = true;
                } else {
                    let _ = p.parse_keyword(Keyword::NULL);
                }
                if is_word(&p.peek_token().token, "METADATA") {
                    return Err(SqlError::span(
                        p.peek_token().span,
                        "METADATA columns are not supported yet",
                    ));
                }
                if p.parse_keyword(Keyword::COMMENT) {
                    p.parse_literal_string()?;
                }
                columns.push(ColumnDef {
                    name: col.value,
                    ty,
                    not_null,
                    computed: None,
                });
            }
        }
        if !p.consume_token(&Token::Comma) {
            break;
        }
    }
    p.expect_token(&Token::RParen)?;
    if p.parse_keyword(Keyword::COMMENT) {
        p.parse_literal_string()?;
    }
    if p.parse_keywords(&[Keyword::PARTITIONED, Keyword::BY]) {
        return Err(SqlError::span(
            p.peek_token().span,
            "PARTITIONED BY is not supported (Kafka tables are not partitioned by columns)",
        ));
    }
    let with_tok = p.peek_token();
    let mut options = BTreeMap::new();
    if p.parse_keyword(Keyword::WITH) {
        p.expect_token(&Token::LParen)?;
        loop {
            let k = p.parse_literal_string()?;
            p.expect_token(&Token::Eq)?;
            let v = p.parse_literal_string()?;
            options.insert(k, v);
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        p.expect_token(&Token::RParen)?;
    }
    let rest = p.peek_token();
    if rest.token != Token::EOF {
        return Err(SqlError::span(
            rest.span,
            format!(
                "syntax error: unexpected '{}' after the CREATE TABLE statement",
                rest.token
            ),
        ));
    }
    let mut table = TableDef {
        name,
        columns,
        watermark: None,
        primary_key,
        options,
        ddl: stmt.text.clone(),
    };
    // Computed columns: type them against the physical columns.
    let computed = table.computed_exprs().map_err(|e| e.or_at(stmt.start))?;
    for ((i, t), (_, span)) in computed.into_iter().zip(&computed_at) {
        if t.ty == SqlType::Null || t.ty == SqlType::Interval {
            return Err(SqlError::span(
                *span,
                format!(
                    "computed column '{}' has no usable type ({})",
                    table.columns[i].name, t.ty
                ),
            ));
        }
        table.columns[i].ty = t.ty;
    }
    if let Some((col, e, span)) = watermark_ast {
        table.watermark = Some(watermark(&table, &col, &e, span.start)?);
    }
    for k in &table.primary_key {
        if !table.columns.iter().any(|c| &c.name == k) {
            return Err(SqlError::at(
                stmt.start,
                format!(
                    "PRIMARY KEY column '{k}' is not a column of '{}'; columns: {}",
                    table.name,
                    table.column_names()
                ),
            ));
        }
    }
    check_options(&table).map_err(|e| e.or_at(with_tok.span.start))?;
    Ok(CreateTable {
        table,
        if_not_exists,
        at: stmt.start,
    })
}

/// Checks a watermark declaration and extracts its delay.
fn watermark(
    t: &TableDef,
    col: &sqlparser::ast::Ident,
    e: &sqlparser::ast::Expr,
    at: Location,
) -> Result<WatermarkDef, SqlError> {
    let Some((index, c)) = t
        .columns
        .iter()
        .enumerate()
        .find(|(_, c)| c.name == col.value)
    else {
        return Err(SqlError::span(
            col.span,
            format!(
                "WATERMARK FOR '{}': no such column; columns: {}",
                col.value,
                t.column_names()
            ),
        ));
    };
    if !matches!(c.ty, SqlType::Timestamp(_)) {
        return Err(SqlError::span(
            col.span,
            format!(
                "WATERMARK FOR '{}': the column is {}, but a watermark needs a TIMESTAMP(3) column",
                c.name, c.ty
            ),
        ));
    }
    if c.computed.is_some() {
        return Err(SqlError::span(col.span, format!("WATERMARK FOR '{}': watermarks on computed columns are not supported yet; declare the event time as a TIMESTAMP(3) field of the JSON", c.name)));
    }
    let scope = t.scope(&t.name);
    let typed = Compiler::plain(&scope).compile(e)?;
    let delay = match typed.e {
        Expr::Col(i) if i == index => 0,
        Expr::Arith(Arith::Sub, _, ref a, ref b) if **a == Expr::Col(index) => match **b {
            Expr::Lit(crate::value::Value::Int(ms)) if typed.ty == c.ty && ms >= 0 => ms,
            _ => -1,
        },
        _ => -1,
    };
    if delay < 0 {
        return Err(SqlError::at(
            at,
            format!("watermark expression '{e}' is not supported; write WATERMARK FOR {0} AS {0} - INTERVAL 'n' SECOND (or AS {0})", c.name),
        ));
    }
    Ok(WatermarkDef {
        column: c.name.clone(),
        delay_ms: delay,
        expr: e.to_string(),
    })
}

fn check_options(t: &TableDef) -> Result<(), SqlError> {
    let bad = |m: String| Err(SqlError::new(format!("table '{}': {m}", t.name)));
    match t.option("connector") {
        Some("kafka") => {}
        Some("upsert-kafka") => {
            if t.primary_key.is_empty() {
                return bad("the 'upsert-kafka' connector needs a PRIMARY KEY (...) NOT ENFORCED".into());
            }
        }
        Some(other) => return bad(format!("connector '{other}' is not supported; Eddy tables are topics: use 'connector' = 'kafka' or 'upsert-kafka'")),
        None => return bad("the WITH clause needs 'connector' = 'kafka'".into()),
    }
    match t.option("topic") {
        None => return bad("the WITH clause needs 'topic' = '<topic name>'".into()),
        Some(topic) if topic.is_empty() || topic.contains(';') => {
            return bad(format!("'topic' = '{topic}' must name exactly one topic"))
        }
        Some(_) => {}
    }
    for k in ["format", "value.format", "key.format"] {
        if let Some(f) = t.option(k) {
            if f != "json" {
                return bad(format!("'{k}' = '{f}' is not supported; only 'json' is"));
            }
        }
    }
    if t.option("format").is_none() && t.option("value.format").is_none() {
        return bad("the WITH clause needs 'format' = 'json'".into());
    }
    match t.option("scan.startup.mode") {
        None | Some("earliest-offset" | "latest-offset" | "group-offsets") => {}
        Some("timestamp") => {
            if t.startup_timestamp().is_none() {
                return bad(
                    "'scan.startup.mode' = 'timestamp' needs 'scan.startup.timestamp-millis' \
                     = epoch milliseconds (a whole number, 0 or more)"
                        .into(),
                );
            }
        }
        Some("specific-offsets") => {
            return bad("'scan.startup.mode' = 'specific-offsets' is not supported yet; use 'earliest-offset', 'latest-offset' or 'timestamp'".into())
        }
        Some(m) => return bad(format!("'scan.startup.mode' = '{m}' is not one of 'earliest-offset', 'latest-offset', 'group-offsets', 'timestamp'")),
    }
    match t.option("scan.bounded.mode") {
        None | Some("unbounded" | "latest-offset") => {}
        Some(m) => {
            return bad(format!(
                "'scan.bounded.mode' = '{m}' is not supported; use 'latest-offset' or 'unbounded'"
            ))
        }
    }
    for k in ["json.ignore-parse-errors", "value.json.ignore-parse-errors"] {
        if let Some(v) = t.option(k) {
            if v != "true" && v != "false" {
                return bad(format!("'{k}' must be 'true' or 'false', not '{v}'"));
            }
        }
    }
    for k in [
        "json.timestamp-format.standard",
        "value.json.timestamp-format.standard",
    ] {
        if let Some(v) = t.option(k) {
            if v != "SQL" && v != "ISO-8601" {
                return bad(format!("'{k}' must be 'SQL' or 'ISO-8601', not '{v}'"));
            }
        }
    }
    if let Some(v) = t.option("value.fields-include") {
        if v != "ALL" && v != "EXCEPT_KEY" {
            return bad(format!(
                "'value.fields-include' must be 'ALL' or 'EXCEPT_KEY', not '{v}'"
            ));
        }
    }
    for k in key_fields(t) {
        if !t.columns.iter().any(|c| c.name == k) {
            return bad(format!(
                "'key.fields' names '{k}', which is not a column; columns: {}",
                t.column_names()
            ));
        }
    }
    let unknown: Vec<&String> = t
        .options
        .keys()
        .filter(|k| !k.starts_with("properties.") && !KNOWN_OPTIONS.contains(&k.as_str()))
        .collect();
    if !unknown.is_empty() {
        return bad(format!(
            "unsupported option(s) {}; supported: 'properties.*', {}",
            unknown
                .iter()
                .map(|k| format!("'{k}'"))
                .collect::<Vec<_>>()
                .join(", "),
            KNOWN_OPTIONS
                .iter()
                .map(|k| format!("'{k}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(())
}

/// The columns that form the record key: the primary key, else 'key.fields'.
pub(crate) fn key_fields(t: &TableDef) -> Vec<String> {
    if !t.primary_key.is_empty() {
        return t.primary_key.clone();
    }
    t.option("key.fields")
        .map(|f| {
            f.split(';')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}
