//! `INSERT INTO sink SELECT ...` → a pipeline.
//!
//! Shapes (each a straight line of operators over one input, so operator order and thus
//! checkpoint layout depend only on the SQL text):
//! - no aggregation: one [`Stage`] (decode, WHERE, projection, sink encoding); with a window
//!   TVF (TUMBLE/HOP/CUMULATE) the stage emits one row per window;
//! - aggregation: a stage computing group keys and aggregate arguments (`g0..`, `a0..`), the
//!   engine's [`WindowAggregate`] (window TVF, legacy `GROUP BY TUMBLE(...)`, or a running
//!   aggregate without windows, emitted as an upsert per key), and a stage evaluating HAVING
//!   and the SELECT list over `g0.., window_start, window_end, r0..`.
//!
//! Joins (planned later) fit the same scheme: inputs are tagged by index (as
//! `WindowJoin`/`TableJoin` already do), and a join operator's output feeds the stages.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sqlparser::ast::{self as ast, Spanned};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Span, Token};

use crate::aggregate::AggSpec;
use crate::plan::{Input, Pipeline, PipelineBuilder};
use crate::window::{LatePolicy, WindowKind, WindowSpec};

use super::agg::AggKind;
use super::ddl::{key_fields, TableDef};
use super::error::SqlError;
use super::expr::{
    self, coerce, contains_aggregate, func_name, interval_ms, plain_args, Arith, Compiler, Expr,
    Num, Scope, ScopeCol, Typed,
};
use super::lex::{rewrite_table_args, Stmt, TABLE_ARG};
use super::ops::{Decoder, OutCol, Stage, StageInput, StageSpec};
use super::types::SqlType;
use super::Catalog;

/// A planned INSERT.
#[derive(Debug)]
pub(crate) struct Planned {
    pub(crate) pipeline: Pipeline,
    pub(crate) sink: String,
    pub(crate) sources: Vec<String>,
}

/// The tables an INSERT names (sink first), for making pipelines self-contained.
pub(crate) fn tables_of(stmt: &Stmt) -> Result<Vec<String>, SqlError> {
    let ins = parse_insert(stmt)?;
    let (sink, _) = sink_name(&ins)?;
    let mut out = vec![sink];
    if let Some(q) = &ins.source {
        if let ast::SetExpr::Select(s) = &*q.body {
            for f in &s.from {
                if let Ok(src) = source_of(&f.relation) {
                    out.push(src.table.value.clone());
                }
            }
        }
    }
    Ok(out)
}

fn parse_insert(stmt: &Stmt) -> Result<ast::Insert, SqlError> {
    let dialect = GenericDialect {};
    let mut p = Parser::new(&dialect).with_tokens_with_locations(rewrite_table_args(&stmt.tokens));
    let s = p.parse_statement()?;
    let rest = p.peek_token();
    if rest.token != Token::EOF {
        return Err(SqlError::span(
            rest.span,
            format!("syntax error: unexpected '{}'", rest.token),
        ));
    }
    match s {
        ast::Statement::Insert(i) => Ok(i),
        _ => Err(SqlError::at(
            stmt.start,
            "expected an INSERT INTO ... SELECT statement",
        )),
    }
}

fn sink_name(ins: &ast::Insert) -> Result<(String, Span), SqlError> {
    match &ins.table {
        ast::TableObject::TableName(n) if n.0.len() == 1 => {
            let id = n.0[0]
                .as_ident()
                .ok_or_else(|| SqlError::span(n.span(), "the sink must be a table name"))?;
            Ok((id.value.clone(), id.span))
        }
        other => Err(SqlError::span(
            ins.insert_token.0.span,
            format!("INSERT INTO {other}: the sink must be a plain table name"),
        )),
    }
}

/// The FROM relation: a table, or a window TVF over one.
struct Source {
    table: ast::Ident,
    alias: Option<String>,
    /// The window TVF: (function name, its arguments after the table, partition keys, span).
    tvf: Option<(String, Vec<ast::Expr>, Vec<ast::Expr>, Span)>,
}

fn source_of(rel: &ast::TableFactor) -> Result<Source, SqlError> {
    match rel {
        ast::TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } if name.0.len() == 1 => {
            let id = name.0[0]
                .as_ident()
                .cloned()
                .ok_or_else(|| SqlError::span(name.span(), "expected a table name"))?;
            Ok(Source {
                table: id,
                alias: alias.as_ref().map(|a| a.name.value.clone()),
                tvf: None,
            })
        }
        ast::TableFactor::TableFunction {
            expr: ast::Expr::Function(f),
            alias,
        } => {
            let name = func_name(f);
            let span = f.span();
            if !matches!(name.as_str(), "TUMBLE" | "HOP" | "CUMULATE" | "SESSION") {
                return Err(SqlError::span(span, format!("table function {name} is not supported; use TUMBLE, HOP, CUMULATE or SESSION")));
            }
            let args = plain_args(f)?;
            let (first, rest) = args.split_first().ok_or_else(|| {
                SqlError::span(
                    span,
                    format!("{name} needs a table argument: {name}(TABLE t, DESCRIPTOR(ts), ...)"),
                )
            })?;
            let (table, keys) = match first {
                ast::Expr::Function(t) if t.name.to_string() == TABLE_ARG => {
                    let targs = plain_args(t)?;
                    let table = match targs.first() {
                        Some(ast::Expr::Identifier(id)) => id.clone(),
                        _ => {
                            return Err(SqlError::span(
                                t.span(),
                                format!("{name}: the first argument must be TABLE <table name>"),
                            ))
                        }
                    };
                    (table, targs[1..].iter().map(|e| (*e).clone()).collect())
                }
                other => {
                    return Err(SqlError::span(
                        other.span(),
                        format!(
                            "{name}: the first argument must be TABLE <table name>, not '{other}'"
                        ),
                    ))
                }
            };
            Ok(Source {
                table,
                alias: alias.as_ref().map(|a| a.name.value.clone()),
                tvf: Some((
                    name,
                    rest.iter().map(|e| (*e).clone()).collect(),
                    keys,
                    span,
                )),
            })
        }
        ast::TableFactor::Derived { .. } => Err(SqlError::span(
            rel.span(),
            "subqueries in FROM are not supported yet",
        )),
        other => Err(SqlError::span(
            other.span(),
            format!(
                "FROM {other} is not supported; read from a table or TABLE(TUMBLE(TABLE t, ...))"
            ),
        )),
    }
}

fn interval_arg(e: &ast::Expr, what: &str, func: &str) -> Result<i64, SqlError> {
    match e {
        ast::Expr::Interval(i) => {
            let ms = interval_ms(i, e.span())?;
            if ms <= 0 {
                return Err(SqlError::span(e.span(), format!("{func}: the {what} must be positive, not {e}")));
            }
            Ok(ms)
        }
        other => Err(SqlError::span(other.span(), format!("{func}: the {what} must be an INTERVAL literal such as INTERVAL '10' SECOND, not '{other}'"))),
    }
}

/// Checks that `e` names the table's time attribute (`DESCRIPTOR(ts)` or, for legacy group
/// windows, `ts`).
fn time_attr(e: &ast::Expr, t: &TableDef, func: &str, descriptor: bool) -> Result<(), SqlError> {
    let ident = match e {
        ast::Expr::Function(f) if descriptor && func_name(f) == "DESCRIPTOR" => {
            match plain_args(f)?.as_slice() {
                [ast::Expr::Identifier(id)] => id.clone(),
                _ => {
                    return Err(SqlError::span(
                        e.span(),
                        format!("{func}: DESCRIPTOR takes one column name"),
                    ))
                }
            }
        }
        ast::Expr::Identifier(id) if !descriptor => id.clone(),
        ast::Expr::CompoundIdentifier(parts) if !descriptor && parts.len() == 2 => parts[1].clone(),
        other => {
            let want = if descriptor {
                "DESCRIPTOR(<time column>)"
            } else {
                "the time column"
            };
            return Err(SqlError::span(
                other.span(),
                format!("{func}: expected {want}, not '{other}'"),
            ));
        }
    };
    match &t.watermark {
        Some(w) if w.column == ident.value => Ok(()),
        Some(w) => Err(SqlError::span(ident.span, format!("{func}: '{}' is not a time attribute of '{}'; its event time is '{}'", ident.value, t.name, w.column))),
        None => Err(SqlError::span(ident.span, format!("{func}: '{}' is not a time attribute: declare WATERMARK FOR {} AS {} - INTERVAL '1' SECOND in table '{}'", ident.value, ident.value, ident.value, t.name))),
    }
}

/// The window of a TVF.
fn tvf_window(
    name: &str,
    args: &[ast::Expr],
    keys: &[ast::Expr],
    span: Span,
    t: &TableDef,
) -> Result<WindowKind, SqlError> {
    let n = |want: usize, usage: &str| {
        if args.len() == want {
            Ok(())
        } else {
            Err(SqlError::span(
                span,
                format!("{name} takes {usage}; offsets are not supported"),
            ))
        }
    };
    if name != "SESSION" && !keys.is_empty() {
        return Err(SqlError::span(
            span,
            format!("{name} does not take PARTITION BY"),
        ));
    }
    let desc = args
        .first()
        .ok_or_else(|| SqlError::span(span, format!("{name} needs DESCRIPTOR(<time column>)")))?;
    time_attr(desc, t, name, true)?;
    let kind = match name {
        "TUMBLE" => {
            n(2, "(TABLE t, DESCRIPTOR(ts), size)")?;
            WindowKind::Tumbling {
                size: interval_arg(&args[1], "size", name)?,
            }
        }
        "HOP" => {
            n(3, "(TABLE t, DESCRIPTOR(ts), slide, size)")?;
            WindowKind::Hopping {
                slide: interval_arg(&args[1], "slide", name)?,
                size: interval_arg(&args[2], "size", name)?,
            }
        }
        "CUMULATE" => {
            n(3, "(TABLE t, DESCRIPTOR(ts), step, size)")?;
            WindowKind::Cumulating {
                step: interval_arg(&args[1], "step", name)?,
                size: interval_arg(&args[2], "size", name)?,
            }
        }
        _ => {
            n(2, "(TABLE t [PARTITION BY keys], DESCRIPTOR(ts), gap)")?;
            WindowKind::Session {
                gap: interval_arg(&args[1], "gap", name)?,
            }
        }
    };
    kind.validate().map_err(|e| {
        SqlError::span(
            span,
            format!(
                "{name}: {}",
                e.to_string().trim_start_matches("invalid pipeline: ")
            ),
        )
    })?;
    Ok(kind)
}

/// A legacy group window in GROUP BY (`TUMBLE(ts, size)`, `HOP(ts, slide, size)`,
/// `SESSION(ts, gap)`), with its name and its arguments as written (for matching the
/// `*_START`/`*_END` functions).
fn legacy_window(
    f: &ast::Function,
    t: &TableDef,
) -> Result<Option<(String, WindowKind, Vec<String>)>, SqlError> {
    let name = func_name(f);
    if !matches!(name.as_str(), "TUMBLE" | "HOP" | "SESSION" | "CUMULATE") {
        return Ok(None);
    }
    let span = f.span();
    if name == "CUMULATE" {
        return Err(SqlError::span(span, "GROUP BY CUMULATE(...) does not exist; use FROM TABLE(CUMULATE(TABLE t, DESCRIPTOR(ts), step, size))"));
    }
    let args = plain_args(f)?;
    let ts = args
        .first()
        .ok_or_else(|| SqlError::span(span, format!("{name} needs the time column")))?;
    time_attr(ts, t, &name, false)?;
    let kind = match (name.as_str(), args.len()) {
        ("TUMBLE", 2) => WindowKind::Tumbling {
            size: interval_arg(args[1], "size", &name)?,
        },
        ("HOP", 3) => WindowKind::Hopping {
            slide: interval_arg(args[1], "slide", &name)?,
            size: interval_arg(args[2], "size", &name)?,
        },
        ("SESSION", 2) => WindowKind::Session {
            gap: interval_arg(args[1], "gap", &name)?,
        },
        _ => {
            return Err(SqlError::span(
                span,
                format!("GROUP BY {name}(...) has the wrong number of arguments"),
            ))
        }
    };
    kind.validate().map_err(|e| {
        SqlError::span(
            span,
            format!(
                "{name}: {}",
                e.to_string().trim_start_matches("invalid pipeline: ")
            ),
        )
    })?;
    let texts = args.iter().skip(1).map(|a| a.to_string()).collect();
    Ok(Some((name, kind, texts)))
}

/// A legacy group window's function name and its arguments after the time column, as
/// written (`*_START`/`*_END` calls must repeat them).
type LegacyWindow = (String, Vec<String>);

/// A registered aggregate call.
#[derive(Debug, Clone, PartialEq)]
struct AggCall {
    kind: AggKind,
    arg: Option<Typed>,
}

/// Plans `stmt` (an INSERT) against the catalog with the session's SET options.
pub(crate) fn plan_insert(
    stmt: &Stmt,
    catalog: &Catalog,
    options: &BTreeMap<String, String>,
    name: &str,
) -> Result<Planned, SqlError> {
    let ins = parse_insert(stmt)?;
    let at = stmt.start;
    if ins.overwrite {
        return Err(SqlError::at(
            at,
            "INSERT OVERWRITE is not supported; use INSERT INTO",
        ));
    }
    let (sink_name, sink_span) = sink_name(&ins)?;
    let sink = catalog.tables.get(&sink_name).ok_or_else(|| {
        SqlError::span(
            sink_span,
            format!(
                "table '{sink_name}' does not exist; known tables: {}",
                catalog.names()
            ),
        )
    })?;
    let q = ins
        .source
        .as_deref()
        .ok_or_else(|| SqlError::at(at, "INSERT needs a SELECT query"))?;
    if q.with.is_some() {
        return Err(SqlError::at(
            at,
            "WITH (common table expressions) is not supported yet",
        ));
    }
    if let Some(o) = &q.order_by {
        return Err(SqlError::at(
            at,
            format!("ORDER BY is not supported in a streaming INSERT ({o})"),
        ));
    }
    if q.limit_clause.is_some() || q.fetch.is_some() {
        return Err(SqlError::at(
            at,
            "LIMIT/FETCH is not supported in a streaming INSERT",
        ));
    }
    let select = match &*q.body {
        ast::SetExpr::Select(s) => s,
        ast::SetExpr::Values(_) => {
            return Err(SqlError::at(
                at,
                "INSERT ... VALUES is not supported; produce records to the topic instead",
            ))
        }
        other => {
            return Err(SqlError::span(
                other.span(),
                format!(
                    "only a single SELECT is supported, not '{}'",
                    first_words(other)
                ),
            ))
        }
    };
    if let Some(d) = &select.distinct {
        return Err(SqlError::span(
            select.select_token.0.span,
            format!("SELECT {d} is not supported yet"),
        ));
    }
    if let Some(qual) = &select.qualify {
        return Err(SqlError::span(
            qual.span(),
            "QUALIFY (Top-N) is not supported yet",
        ));
    }
    if !select.named_window.is_empty() {
        return Err(SqlError::at(
            at,
            "WINDOW clauses (OVER windows) are not supported yet",
        ));
    }
    let from = match select.from.as_slice() {
        [one] => one,
        [] => {
            return Err(SqlError::span(
                select.select_token.0.span,
                "a query needs FROM <table>",
            ))
        }
        [_, second, ..] => {
            return Err(SqlError::span(
                second.relation.span(),
                "several tables in FROM (implicit joins) are not supported yet",
            ))
        }
    };
    if let Some(j) = from.joins.first() {
        return Err(SqlError::span(
            j.relation.span(),
            "JOIN is not supported yet; only queries over one table are",
        ));
    }
    let src = source_of(&from.relation)?;
    let table = catalog.tables.get(&src.table.value).ok_or_else(|| {
        SqlError::span(
            src.table.span,
            format!(
                "table '{}' does not exist; known tables: {}",
                src.table.value,
                catalog.names()
            ),
        )
    })?;
    if table.is_upsert() {
        return Err(SqlError::span(
            src.table.span,
            format!(
                "reading the upsert-kafka table '{}' (a changelog) is not supported yet",
                table.name
            ),
        ));
    }
    if table.topic() == sink.topic() {
        return Err(SqlError::span(
            sink_span,
            format!(
                "table '{}' reads topic '{}', which the INSERT also writes",
                table.name,
                sink.topic()
            ),
        ));
    }

    // The input scope: the table's columns, then the TVF's window columns.
    let qualifier = src.alias.clone().unwrap_or_else(|| table.name.clone());
    let mut scope = table.scope(&qualifier);
    let width = table.columns.len();
    let mut tvf_kind = None;
    if let Some((fname, args, keys, span)) = &src.tvf {
        let kind = tvf_window(fname, args, keys, *span, table)?;
        for (i, n) in ["window_start", "window_end", "window_time"]
            .iter()
            .enumerate()
        {
            scope.cols.push(ScopeCol {
                name: n.to_string(),
                qualifier: Some(qualifier.clone()),
                ty: SqlType::Timestamp(3),
                index: width + i,
            });
        }
        tvf_kind = Some((kind, keys.clone(), *span));
    }

    let decoder = decoder_for(table).map_err(|e| e.or_at(at))?;
    let filter = match &select.selection {
        Some(w) => {
            let c = Compiler::plain(&scope).condition(w)?;
            if tvf_kind.is_some() && uses_cols_from(&c, width) && is_aggregating(select) {
                return Err(SqlError::span(w.span(), "WHERE on window_start/window_end of an aggregated window TVF is not supported; use HAVING"));
            }
            Some(c)
        }
        None => None,
    };

    let mut builder = PipelineBuilder::new(name);
    let mut input = Input::topic(table.topic());
    if let Some(w) = &table.watermark {
        input = input.event_time_field(&w.column);
        builder = builder.watermark_delay(Duration::from_millis(w.delay_ms as u64));
    }
    if table.option("scan.startup.mode") == Some("latest-offset") {
        input = input.from_latest();
    }
    builder = builder.source(input);
    builder = apply_options(builder, options)?;
    if table.option("scan.bounded.mode") == Some("latest-offset") {
        builder = builder.bounded();
    }
    let dead_letter: Option<Arc<str>> = table
        .option("dead-letter.topic")
        .map(|_| Arc::from("dead-letter"));
    if let Some(t) = table.option("dead-letter.topic") {
        builder = builder.side_output("dead-letter", t);
    }

    let sink_cols = sink_targets(&ins, sink)?;
    if !is_aggregating(select) {
        // One stage: decode, filter, (windows), project.
        let mut windows = None;
        if let Some((kind, _, span)) = &tvf_kind {
            if matches!(kind, WindowKind::Session { .. }) {
                return Err(SqlError::span(*span, "SESSION windows need GROUP BY window_start, window_end (there is no row-wise SESSION)"));
            }
            windows = Some(*kind);
        }
        let items = select_items(select, &scope, &mut Compiler::plain(&scope))?;
        let (outputs, key) = sink_outputs(items, &sink_cols, sink, None)?;
        builder = builder.op(Stage::new(StageSpec {
            name: "sql_select",
            input: StageInput::Table(decoder),
            filter,
            windows,
            outputs,
            key,
            skip_nulls: sink.option("json.encode.ignore-null-fields") == Some("true"),
            iso_timestamps: iso(sink),
            dead_letter,
        }));
    } else {
        builder = plan_aggregate(
            builder,
            select,
            &scope,
            table,
            width,
            tvf_kind,
            decoder,
            filter,
            dead_letter,
            sink,
            &sink_cols,
            &qualifier,
        )?;
    }
    let pipeline = builder.sink(sink.topic()).build().map_err(|e| {
        SqlError::at(
            at,
            e.to_string()
                .trim_start_matches("invalid pipeline: ")
                .to_string(),
        )
    })?;
    Ok(Planned {
        pipeline,
        sink: sink.topic().to_string(),
        sources: vec![table.topic().to_string()],
    })
}

fn first_words(s: &ast::SetExpr) -> String {
    s.to_string()
        .split_whitespace()
        .take(4)
        .collect::<Vec<_>>()
        .join(" ")
}

fn iso(t: &TableDef) -> bool {
    t.option("json.timestamp-format.standard")
        .or(t.option("value.json.timestamp-format.standard"))
        == Some("ISO-8601")
}

fn is_aggregating(s: &ast::Select) -> bool {
    let grouped = match &s.group_by {
        ast::GroupByExpr::Expressions(v, _) => !v.is_empty(),
        ast::GroupByExpr::All(_) => true,
    };
    grouped
        || s.having.is_some()
        || s.projection.iter().any(|i| match i {
            ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                contains_aggregate(e)
            }
            _ => false,
        })
}

fn uses_cols_from(e: &Expr, from: usize) -> bool {
    match e {
        Expr::Col(i) => *i >= from,
        Expr::Lit(_) => false,
        Expr::Arith(_, _, a, b)
        | Expr::Cmp(_, a, b)
        | Expr::And(a, b)
        | Expr::Or(a, b)
        | Expr::Like(a, b, _, _) => uses_cols_from(a, from) || uses_cols_from(b, from),
        Expr::Neg(_, a)
        | Expr::Not(a)
        | Expr::IsNull(a, _)
        | Expr::IsBool(a, _, _)
        | Expr::Cast(a, _, _) => uses_cols_from(a, from),
        Expr::Case(bs, e) => {
            uses_cols_from(e, from)
                || bs
                    .iter()
                    .any(|(c, r)| uses_cols_from(c, from) || uses_cols_from(r, from))
        }
        Expr::In(a, xs, _) => uses_cols_from(a, from) || xs.iter().any(|x| uses_cols_from(x, from)),
        Expr::Call(_, xs) => xs.iter().any(|x| uses_cols_from(x, from)),
    }
}

/// SET options that shape the pipeline.
fn apply_options(
    mut b: PipelineBuilder,
    options: &BTreeMap<String, String>,
) -> Result<PipelineBuilder, SqlError> {
    if let Some(v) = options.get("table.exec.source.idle-timeout") {
        let d = parse_duration(v).ok_or_else(|| SqlError::new(format!("SET 'table.exec.source.idle-timeout' = '{v}': not a duration (e.g. '10 s', '500 ms')")))?;
        if !d.is_zero() {
            b = b.idle_timeout(d);
        }
    }
    if let Some(v) = options.get("execution.checkpointing.interval") {
        let d = parse_duration(v).filter(|d| !d.is_zero()).ok_or_else(|| SqlError::new(format!("SET 'execution.checkpointing.interval' = '{v}': not a positive duration (e.g. '1 s')")))?;
        b = b.checkpoint_interval(d);
    }
    Ok(b)
}

/// Flink durations: `500`, `500 ms`, `10 s`, `1 min`, `1 h` (a bare number is milliseconds).
pub(crate) fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let n: u64 = v[..split].parse().ok()?;
    let ms = match v[split..].trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => n,
        "s" | "sec" | "secs" | "second" | "seconds" => n.checked_mul(1000)?,
        "min" | "m" | "minute" | "minutes" => n.checked_mul(60_000)?,
        "h" | "hour" | "hours" => n.checked_mul(3_600_000)?,
        "d" | "day" | "days" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

fn decoder_for(t: &TableDef) -> Result<Decoder, SqlError> {
    Ok(Decoder {
        fields: t
            .physical()
            .map(|(i, c)| (i, Arc::from(c.name.as_str()), c.ty.clone()))
            .collect(),
        width: t.columns.len(),
        computed: t
            .computed_exprs()?
            .into_iter()
            .map(|(i, t)| (i, t.e))
            .collect(),
        lenient: t
            .option("json.ignore-parse-errors")
            .or(t.option("value.json.ignore-parse-errors"))
            == Some("true"),
    })
}

/// The SELECT list compiled with `c` (`*` expands to the scope's columns).
fn select_items(
    s: &ast::Select,
    scope: &Scope,
    c: &mut Compiler<'_>,
) -> Result<Vec<(String, Typed, Span)>, SqlError> {
    let mut out = Vec::new();
    for item in &s.projection {
        match item {
            ast::SelectItem::UnnamedExpr(e) => {
                let name = match e {
                    ast::Expr::Identifier(i) => i.value.clone(),
                    ast::Expr::CompoundIdentifier(p) => {
                        p.last().map(|i| i.value.clone()).unwrap_or_default()
                    }
                    other => other.to_string(),
                };
                out.push((name, c.compile(e)?, e.span()));
            }
            ast::SelectItem::ExprWithAlias { expr, alias } => {
                out.push((alias.value.clone(), c.compile(expr)?, expr.span()))
            }
            ast::SelectItem::Wildcard(_) => {
                for col in &scope.cols {
                    let id = ast::Ident::new(col.name.clone());
                    out.push((
                        col.name.clone(),
                        c.compile(&ast::Expr::Identifier(id))?,
                        s.select_token.0.span,
                    ));
                }
            }
            other => {
                return Err(SqlError::span(
                    other.span(),
                    format!("select item '{other}' is not supported"),
                ))
            }
        }
    }
    Ok(out)
}

/// Sink columns the query fills, in query order: (position in the sink's physical columns).
fn sink_targets(ins: &ast::Insert, sink: &TableDef) -> Result<Vec<usize>, SqlError> {
    let physical: Vec<(usize, &super::ddl::ColumnDef)> = sink.physical().collect();
    if ins.columns.is_empty() {
        return Ok((0..physical.len()).collect());
    }
    ins.columns
        .iter()
        .map(|n| {
            let name = n.to_string();
            physical
                .iter()
                .position(|(_, c)| c.name == name)
                .ok_or_else(|| {
                    SqlError::span(
                        n.span(),
                        format!(
                            "'{name}' is not a writable column of '{}'; columns: {}",
                            sink.name,
                            physical
                                .iter()
                                .map(|(_, c)| c.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })
        })
        .collect()
}

/// Can a query column of type `from` be written to a sink column of type `to`?
fn assignable(from: &SqlType, to: &SqlType) -> bool {
    from == to
        || *from == SqlType::Null
        || (from.is_numeric() && to.is_numeric())
        || matches!((from, to), (SqlType::Timestamp(_), SqlType::Timestamp(_)))
}

/// Maps query columns onto the sink: outputs in sink order (unfilled columns NULL), the key.
/// `group_refs`: for updating queries, the post-aggregation positions of the group keys (the
/// record key defaults to the sink columns filled straight from them).
fn sink_outputs(
    items: Vec<(String, Typed, Span)>,
    targets: &[usize],
    sink: &TableDef,
    group_refs: Option<usize>,
) -> Result<(Vec<OutCol>, Vec<usize>), SqlError> {
    let physical: Vec<&super::ddl::ColumnDef> = sink.physical().map(|(_, c)| c).collect();
    if items.len() != targets.len() {
        let cols: Vec<&str> = targets.iter().map(|t| physical[*t].name.as_str()).collect();
        return Err(SqlError::new(format!(
            "INSERT INTO {} writes {} column(s) ({}), but the query produces {}",
            sink.name,
            targets.len(),
            cols.join(", "),
            items.len()
        )));
    }
    let mut exprs: Vec<Option<Expr>> = vec![None; physical.len()];
    for ((qname, t, span), target) in items.into_iter().zip(targets) {
        let col = physical[*target];
        if !assignable(&t.ty, &col.ty) {
            return Err(SqlError::span(
                span,
                format!(
                    "query column '{qname}' is {}, but sink column '{}' of '{}' is {}",
                    t.ty, col.name, sink.name, col.ty
                ),
            ));
        }
        exprs[*target] = Some(coerce(t, &col.ty).e);
    }
    let keys = key_fields(sink);
    let except_key = sink.option("value.fields-include") == Some("EXCEPT_KEY");
    let outputs: Vec<OutCol> = physical
        .iter()
        .zip(exprs.iter())
        .map(|(c, e)| OutCol {
            name: Arc::from(c.name.as_str()),
            expr: e.clone().unwrap_or(Expr::Lit(crate::value::Value::Null)),
            encode: Some(c.ty.clone()),
            in_value: !(except_key && keys.contains(&c.name)),
        })
        .collect();
    let mut key: Vec<usize> = physical
        .iter()
        .enumerate()
        .filter(|(_, c)| keys.contains(&c.name))
        .map(|(i, _)| i)
        .collect();
    if key.is_empty() {
        if let Some(n_groups) = group_refs {
            // An updating result is upserted: key it by the columns holding group keys.
            key = exprs
                .iter()
                .enumerate()
                .filter(|(_, e)| matches!(e, Some(Expr::Col(i)) if *i < n_groups) || matches!(e, Some(Expr::Cast(inner, ..)) if matches!(**inner, Expr::Col(i) if i < n_groups)))
                .map(|(i, _)| i)
                .collect();
            if key.is_empty() && n_groups > 0 {
                return Err(SqlError::new(format!(
                    "the GROUP BY result is an updating table, upserted by key; select the GROUP BY columns or declare PRIMARY KEY (...) NOT ENFORCED on '{}'",
                    sink.name
                )));
            }
        }
    }
    Ok((outputs, key))
}

#[allow(clippy::too_many_arguments)]
fn plan_aggregate(
    mut builder: PipelineBuilder,
    select: &ast::Select,
    scope: &Scope,
    table: &TableDef,
    width: usize,
    tvf: Option<(WindowKind, Vec<ast::Expr>, Span)>,
    decoder: Decoder,
    filter: Option<Expr>,
    dead_letter: Option<Arc<str>>,
    sink: &TableDef,
    sink_cols: &[usize],
    qualifier: &str,
) -> Result<PipelineBuilder, SqlError> {
    let group_exprs: Vec<ast::Expr> = match &select.group_by {
        ast::GroupByExpr::Expressions(v, m) if m.is_empty() => v.clone(),
        _ => return Err(SqlError::span(
            select.select_token.0.span,
            "GROUP BY ALL and GROUP BY modifiers (ROLLUP, CUBE, GROUPING SETS) are not supported",
        )),
    };
    // Group keys (in the input scope), and the window.
    let mut keys: Vec<Typed> = Vec::new();
    let mut window: Option<(WindowKind, Option<LegacyWindow>)> =
        tvf.as_ref().map(|(k, _, _)| (*k, None));
    let (mut has_start, mut has_end) = (false, false);
    for g in &group_exprs {
        if let ast::Expr::Function(f) = g {
            if let Some((name, kind, texts)) = legacy_window(f, table)? {
                if window.is_some() {
                    return Err(SqlError::span(
                        g.span(),
                        "only one window per GROUP BY is supported",
                    ));
                }
                window = Some((kind, Some((name, texts))));
                continue;
            }
        }
        let t = Compiler::plain(scope).compile(g)?;
        match t.e {
            Expr::Col(i) if tvf.is_some() && i == width => has_start = true,
            Expr::Col(i) if tvf.is_some() && i == width + 1 => has_end = true,
            Expr::Col(i) if tvf.is_some() && i == width + 2 => {}
            _ => {
                if matches!(t.ty, SqlType::Array(_)) {
                    return Err(SqlError::span(
                        g.span(),
                        format!("cannot GROUP BY '{g}' of type {}", t.ty),
                    ));
                }
                if !keys.contains(&t) {
                    keys.push(t);
                }
            }
        }
    }
    if let Some((_, _, span)) = &tvf {
        if !(has_start && has_end) {
            return Err(SqlError::span(*span, "an aggregation over a window TVF must GROUP BY window_start, window_end (and any other keys)"));
        }
    }
    if let Some((WindowKind::Session { .. }, partition, span)) = &tvf {
        // Sessions are per group key in the engine: the partition keys must be the keys.
        let parts: Vec<Typed> = partition
            .iter()
            .map(|p| Compiler::plain(scope).compile(p))
            .collect::<Result<_, _>>()?;
        let same = parts.len() == keys.len() && parts.iter().all(|p| keys.contains(p));
        if !same {
            return Err(SqlError::span(*span, "SESSION windows are supported when the GROUP BY keys (besides window_start, window_end) are exactly the PARTITION BY keys"));
        }
    }
    let k = keys.len();
    let (ws, we) = (k, k + 1);
    let kind = window
        .as_ref()
        .map_or(WindowKind::Global, |(kind, _)| *kind);
    let legacy = window.as_ref().and_then(|(_, l)| l.clone());
    let windowed = window.is_some();

    // Compile SELECT and HAVING over the post-aggregation row [g.., ws, we, r..].
    let mut aggs: Vec<AggCall> = Vec::new();
    let compile_post = |e: &ast::Expr, aggs: &mut Vec<AggCall>| -> Result<Typed, SqlError> {
        let mut hook = |x: &ast::Expr| -> Result<Option<Typed>, SqlError> {
            if let ast::Expr::Function(f) = x {
                let name = func_name(f);
                if expr::is_aggregate_name(&name) {
                    let call = aggregate_call(f, scope)?;
                    let ty = call
                        .kind
                        .result_type(call.arg.as_ref().map(|a| &a.ty))
                        .map_err(|m| SqlError::span(x.span(), format!("{m}: '{x}'")))?;
                    let j = match aggs.iter().position(|a| *a == call) {
                        Some(j) => j,
                        None => {
                            aggs.push(call);
                            aggs.len() - 1
                        }
                    };
                    return Ok(Some(Typed::new(Expr::Col(k + 2 + j), ty)));
                }
                if let Some(aux) = window_aux(&name, f, &legacy, x.span())? {
                    return Ok(Some(match aux {
                        Aux::Start => Typed::new(Expr::Col(ws), SqlType::Timestamp(3)),
                        Aux::End => Typed::new(Expr::Col(we), SqlType::Timestamp(3)),
                        Aux::Rowtime => rowtime(we),
                    }));
                }
            }
            if contains_aggregate(x) {
                return Ok(None);
            }
            let t = Compiler::plain(scope).compile(x)?;
            if let Some(i) = keys.iter().position(|g| *g == t) {
                return Ok(Some(Typed::new(Expr::Col(i), t.ty)));
            }
            match t.e {
                Expr::Col(i) if tvf.is_some() && i == width => Ok(Some(Typed::new(Expr::Col(ws), t.ty))),
                Expr::Col(i) if tvf.is_some() && i == width + 1 => Ok(Some(Typed::new(Expr::Col(we), t.ty))),
                Expr::Col(i) if tvf.is_some() && i == width + 2 => Ok(Some(rowtime(we))),
                Expr::Lit(_) => Ok(Some(t)),
                Expr::Col(_) => Err(SqlError::span(
                    x.span(),
                    format!("column '{x}' is neither in GROUP BY nor inside an aggregate function; add it to GROUP BY or aggregate it (e.g. MAX({x}))"),
                )),
                _ => Ok(None),
            }
        };
        let mut c = Compiler {
            scope,
            hook: Some(&mut hook),
        };
        c.compile(e)
    };
    let mut items = Vec::new();
    for item in &select.projection {
        let (name, e) = match item {
            ast::SelectItem::UnnamedExpr(e) => (e.to_string(), e),
            ast::SelectItem::ExprWithAlias { expr, alias } => (alias.value.clone(), expr),
            other => {
                return Err(SqlError::span(
                    other.span(),
                    format!("'{other}' is not supported in an aggregating query; list the columns"),
                ))?
            }
        };
        let t = compile_post(e, &mut aggs)?;
        items.push((name, t, e.span()));
    }
    let having = match &select.having {
        Some(h) => {
            let t = compile_post(h, &mut aggs)?;
            match t.ty {
                SqlType::Boolean | SqlType::Null => Some(t.e),
                other => {
                    return Err(SqlError::span(
                        h.span(),
                        format!("HAVING needs a BOOLEAN condition, not {other}"),
                    ))
                }
            }
        }
        None => None,
    };
    if aggs.is_empty() {
        // GROUP BY without aggregates (a distinct projection): count to drive the operator.
        aggs.push(AggCall {
            kind: AggKind::Count,
            arg: None,
        });
    }
    let _ = qualifier;

    // Stage 1: group keys and aggregate arguments.
    let mut pre = Vec::new();
    for (i, g) in keys.iter().enumerate() {
        pre.push(OutCol {
            name: Arc::from(format!("g{i}")),
            expr: g.e.clone(),
            encode: None,
            in_value: true,
        });
    }
    for (j, a) in aggs.iter().enumerate() {
        if let Some(arg) = &a.arg {
            pre.push(OutCol {
                name: Arc::from(format!("a{j}")),
                expr: arg.e.clone(),
                encode: None,
                in_value: true,
            });
        }
    }
    builder = builder.op(Stage::new(StageSpec {
        name: "sql_prepare",
        input: StageInput::Table(decoder),
        filter,
        windows: None,
        outputs: pre,
        key: Vec::new(),
        skip_nulls: false,
        iso_timestamps: false,
        dead_letter,
    }));
    // Stage 2: the engine's aggregate.
    let aggregates = aggs
        .iter()
        .enumerate()
        .map(|(j, a)| {
            let input = a.arg.as_ref().map(|_| format!("a{j}"));
            AggSpec {
                output: Arc::from(format!("r{j}")),
                input,
                func: a.kind.func(a.arg.as_ref().map(|x| &x.ty)),
            }
        })
        .collect();
    builder = builder.window(WindowSpec {
        kind,
        group_by: (0..k).map(|i| format!("g{i}")).collect(),
        aggregates,
        allowed_lateness: 0,
        late: LatePolicy::Drop,
    });
    // Stage 3: HAVING and the SELECT list, encoded for the sink.
    let (outputs, key) = sink_outputs(items, sink_cols, sink, (!windowed).then_some(k))?;
    let mut fields: Vec<Arc<str>> = (0..k).map(|i| Arc::from(format!("g{i}"))).collect();
    fields.push(Arc::from("window_start"));
    fields.push(Arc::from("window_end"));
    fields.extend((0..aggs.len()).map(|j| Arc::from(format!("r{j}"))));
    builder = builder.op(Stage::new(StageSpec {
        name: "sql_project",
        input: StageInput::Fields(fields),
        filter: having,
        windows: None,
        outputs,
        key,
        skip_nulls: sink.option("json.encode.ignore-null-fields") == Some("true"),
        iso_timestamps: iso(sink),
        dead_letter: None,
    }));
    Ok(builder)
}

/// `window_time` / `*_ROWTIME`: the window's last millisecond.
fn rowtime(we: usize) -> Typed {
    Typed::new(
        Expr::Arith(
            Arith::Sub,
            Num::I64,
            Box::new(Expr::Col(we)),
            Box::new(Expr::Lit(crate::value::Value::Int(1))),
        ),
        SqlType::Timestamp(3),
    )
}

enum Aux {
    Start,
    End,
    Rowtime,
}

/// `TUMBLE_START(ts, size)` and friends: must match the GROUP BY window.
fn window_aux(
    name: &str,
    f: &ast::Function,
    legacy: &Option<LegacyWindow>,
    span: Span,
) -> Result<Option<Aux>, SqlError> {
    let Some((prefix, suffix)) = name.split_once('_') else {
        return Ok(None);
    };
    if !matches!(prefix, "TUMBLE" | "HOP" | "SESSION")
        || !matches!(suffix, "START" | "END" | "ROWTIME" | "PROCTIME")
    {
        return Ok(None);
    }
    let Some((wname, texts)) = legacy else {
        return Err(SqlError::span(
            span,
            format!("{name} needs GROUP BY {prefix}(<time column>, ...)"),
        ));
    };
    let args = plain_args(f)?;
    let same = wname == prefix
        && args.len() == texts.len() + 1
        && args
            .iter()
            .skip(1)
            .map(|a| a.to_string())
            .eq(texts.iter().cloned());
    if !same {
        return Err(SqlError::span(
            span,
            format!(
                "{name}(...) does not match the GROUP BY window {wname}(..., {})",
                texts.join(", ")
            ),
        ));
    }
    Ok(Some(match suffix {
        "START" => Aux::Start,
        "END" => Aux::End,
        "ROWTIME" => Aux::Rowtime,
        _ => {
            return Err(SqlError::span(
                span,
                format!("{name}: processing time is not supported"),
            ))
        }
    }))
}

/// An aggregate call: COUNT(*), COUNT([DISTINCT] x), SUM/MIN/MAX/AVG(x).
fn aggregate_call(f: &ast::Function, scope: &Scope) -> Result<AggCall, SqlError> {
    let name = func_name(f);
    let span = f.span();
    if f.filter.is_some() {
        return Err(SqlError::span(
            span,
            format!("{name}(...) FILTER (WHERE ...) is not supported yet"),
        ));
    }
    let ast::FunctionArguments::List(list) = &f.args else {
        return Err(SqlError::span(span, format!("{name} needs an argument")));
    };
    let distinct = matches!(
        list.duplicate_treatment,
        Some(ast::DuplicateTreatment::Distinct)
    );
    let kind = match (name.as_str(), distinct) {
        ("COUNT", false) => AggKind::Count,
        ("COUNT", true) => AggKind::CountDistinct,
        ("SUM", false) => AggKind::Sum,
        ("MIN", _) => AggKind::Min,
        ("MAX", _) => AggKind::Max,
        ("AVG", false) => AggKind::Avg,
        (n, true) => {
            return Err(SqlError::span(
                span,
                format!("{n}(DISTINCT ...) is not supported yet; COUNT(DISTINCT ...) is"),
            ))
        }
        (n, _) => {
            return Err(SqlError::span(
                span,
                format!("aggregate {n} is not supported"),
            ))
        }
    };
    let arg = match list.args.as_slice() {
        [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard)] if kind == AggKind::Count => {
            None
        }
        [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e))] => {
            if contains_aggregate(e) {
                return Err(SqlError::span(
                    e.span(),
                    format!("aggregate calls cannot be nested: '{e}'"),
                ));
            }
            Some(Compiler::plain(scope).compile(e)?)
        }
        _ => return Err(SqlError::span(span, format!("{name} takes one argument"))),
    };
    Ok(AggCall { kind, arg })
}
