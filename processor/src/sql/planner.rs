//! `INSERT INTO sink SELECT ...` → a pipeline.
//!
//! A plan is one straight line of operators, so operator order and thus checkpoint layout
//! depend only on the SQL text. Shapes:
//! - no aggregation: one [`Stage`] (decode, WHERE, projection, sink encoding); with a window
//!   TVF (TUMBLE/HOP/CUMULATE) the stage emits one row per window;
//! - aggregation: a stage computing group keys and aggregate arguments (`g0..`, `a0..`), the
//!   engine's [`WindowAggregate`] (window TVF, legacy `GROUP BY TUMBLE(...)`, or a running
//!   aggregate without windows, emitted as an upsert per key), and a stage evaluating HAVING
//!   and the SELECT list over `g0.., window_start, window_end, r0..`.
//!
//! - a join (`join_plan`, `temporal`): inputs are tagged by index; a subquery side's
//!   operators run only on its input's events (`scoped::ForInput`); the join emits rows
//!   (`Value::List`) that the stages above read;
//! - a subquery in FROM (`derived`): its last stage emits rows instead of sink records; window
//!   Top-N ranks them per window. An unwindowed GROUP BY subquery emits a changelog
//!   (`changelog`) that an outer unwindowed GROUP BY aggregates with retractions
//!   (`retract::RetractAggregate` in place of the engine's aggregate).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sqlparser::ast::{self as ast, Spanned};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Span, Token};

use crate::plan::{Pipeline, PipelineBuilder};
use crate::window::WindowKind;

use super::ddl::TableDef;
use super::error::SqlError;
use super::expr::{contains_aggregate, Compiler, Expr, Scope, Typed};
use super::lex::{rewrite_table_args, strip_temporal, Stmt, Temporal};
use super::ops::{Decoder, Stage, StageSpec};
pub(super) use super::sink::outputs_for;
use super::sink::sink_targets;
pub(super) use super::sources::{bounded, input_of, source_table, Prepared};
use super::sources::{single_source, source_of};
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
    let (ins, _) = parse_insert(stmt)?;
    let (sink, _) = sink_name(&ins)?;
    let mut out = vec![sink];
    if let Some(q) = &ins.source {
        tables_in(q, &mut out);
    }
    Ok(out)
}

/// Tables a query reads, subqueries and joins included.
fn tables_in(q: &ast::Query, out: &mut Vec<String>) {
    let ast::SetExpr::Select(s) = &*q.body else {
        return;
    };
    for f in &s.from {
        let joined = f.joins.iter().map(|j| &j.relation);
        for rel in std::iter::once(&f.relation).chain(joined) {
            if let ast::TableFactor::Derived { subquery, .. } = rel {
                tables_in(subquery, out);
            } else if let Ok(src) = source_of(rel) {
                out.push(src.table.value.clone());
            }
        }
    }
}

/// Parses one statement (FOR SYSTEM_TIME AS OF clauses taken out and returned, window table
/// arguments rewritten); anything after it is a syntax error.
fn parse_one(stmt: &Stmt) -> Result<(ast::Statement, Vec<Temporal>), SqlError> {
    let (tokens, temporal) = strip_temporal(&stmt.tokens)?;
    let dialect = GenericDialect {};
    let mut p = Parser::new(&dialect).with_tokens_with_locations(rewrite_table_args(&tokens));
    let s = p.parse_statement()?;
    let rest = p.peek_token();
    if rest.token != Token::EOF {
        return Err(SqlError::span(
            rest.span,
            format!("syntax error: unexpected '{}'", rest.token),
        ));
    }
    Ok((s, temporal))
}

fn parse_insert(stmt: &Stmt) -> Result<(ast::Insert, Vec<Temporal>), SqlError> {
    let (s, temporal) = parse_one(stmt)?;
    match s {
        ast::Statement::Insert(i) => Ok((i, temporal)),
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
/// Where a query's rows go: the sink (its columns in query order), on to an outer query
/// as rows (`Value::List`), or to the client of a bare SELECT (its own columns, encoded as
/// a sink would; the cell is set when the result is updating).
pub(super) enum Target<'a> {
    Sink(&'a [usize]),
    Row,
    Query(&'a std::cell::Cell<bool>),
}

/// The names and types of the rows a subquery produces.
pub(super) type Cols = Vec<(String, SqlType)>;

/// What a query planned for a [`Target::Row`] produces.
pub(super) struct RowsOut {
    pub(super) cols: Cols,
    /// Positions of window_start and window_end among `cols`, when both are selected as
    /// they are (window joins and Top-N need them).
    pub(super) window: Option<(usize, usize)>,
    /// Position among `cols` of a time column that every row still to come has after the
    /// watermark of the moment (window_end of a window aggregation: each window is emitted
    /// once, when the watermark passes its end). Interval conditions on it bound join state.
    pub(super) time: Option<usize>,
    pub(super) sources: Vec<String>,
    /// The rows are a changelog (see `changelog`): an updating result.
    pub(super) updating: bool,
}

/// What planning needs besides the query.
pub(super) struct Ctx<'a> {
    pub(super) catalog: &'a Catalog,
    pub(super) sink: &'a TableDef,
    pub(super) sink_span: Span,
    pub(super) options: &'a BTreeMap<String, String>,
    pub(super) at: Location,
    /// `FOR SYSTEM_TIME AS OF` clauses cut from the statement.
    pub(super) temporal: Vec<Temporal>,
    /// How many of them a join planned (the rest were in a place we do not support).
    pub(super) temporal_used: std::cell::Cell<usize>,
}

/// Plans `stmt` (an INSERT) against the catalog with the session's SET options.
pub(crate) fn plan_insert(
    stmt: &Stmt,
    catalog: &Catalog,
    options: &BTreeMap<String, String>,
    name: &str,
) -> Result<Planned, SqlError> {
    let (ins, temporal) = parse_insert(stmt)?;
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
    let sink_cols = sink_targets(&ins, sink)?;
    let ctx = Ctx {
        catalog,
        sink,
        sink_span,
        options,
        at,
        temporal,
        temporal_used: std::cell::Cell::new(0),
    };
    let builder = apply_options(PipelineBuilder::new(name), options)?;
    let (builder, rows) = plan_query(builder, q, &ctx, Target::Sink(&sink_cols))?;
    let sources = rows.sources;
    if let Some(t) = ctx.temporal.get(ctx.temporal_used.get()) {
        return Err(SqlError::at(
            t.at,
            "FOR SYSTEM_TIME AS OF is supported only on the right-hand table of a JOIN",
        ));
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
        sources,
    })
}

/// A planned bare SELECT (see [`super::SqlQuery`]).
pub(crate) struct PlannedQuery {
    pub(crate) pipeline: Pipeline,
    pub(crate) columns: Cols,
    pub(crate) updating: bool,
    pub(crate) limit: Option<u64>,
    pub(crate) sources: Vec<String>,
}

/// The sink topic a query's plan names: never written (the query's rows go to its client),
/// and not a valid topic name, so it cannot be mistaken for one of its sources.
pub(crate) const QUERY_SINK: &str = "(query results)";

/// Plans `stmt` (a bare SELECT) against the catalog with the session's SET options. A
/// `LIMIT n` is taken off the query and returned for the caller to apply.
pub(crate) fn plan_select_query(
    stmt: &Stmt,
    catalog: &Catalog,
    options: &BTreeMap<String, String>,
    name: &str,
) -> Result<PlannedQuery, SqlError> {
    let (s, temporal) = parse_one(stmt)?;
    let ast::Statement::Query(mut q) = s else {
        return Err(SqlError::at(stmt.start, "expected a SELECT query"));
    };
    let at = stmt.start;
    let limit = match q.limit_clause.take() {
        None => None,
        Some(ast::LimitClause::LimitOffset {
            limit: None,
            offset: None,
            limit_by,
        }) if limit_by.is_empty() => None,
        Some(ast::LimitClause::LimitOffset {
            limit: Some(e),
            offset: None,
            limit_by,
        }) if limit_by.is_empty() => Some(limit_value(&e)?),
        Some(other) => {
            return Err(SqlError::at(
                at,
                format!(
                    "'{}' is not supported; use LIMIT n (no OFFSET)",
                    other.to_string().trim()
                ),
            ))
        }
    };
    if let Some(o) = &q.order_by {
        return Err(SqlError::span(
            o.span(),
            "ORDER BY is not supported in a streaming query",
        ));
    }
    let sink = TableDef {
        name: String::new(),
        columns: Vec::new(),
        watermark: None,
        primary_key: Vec::new(),
        options: BTreeMap::new(),
        ddl: String::new(),
    };
    let ctx = Ctx {
        catalog,
        sink: &sink,
        sink_span: Span::empty(),
        options,
        at,
        temporal,
        temporal_used: std::cell::Cell::new(0),
    };
    let updating = std::cell::Cell::new(false);
    let builder = apply_options(PipelineBuilder::new(name), options)?;
    let (builder, rows) = plan_query(builder, &q, &ctx, Target::Query(&updating))?;
    if let Some(t) = ctx.temporal.get(ctx.temporal_used.get()) {
        return Err(SqlError::at(
            t.at,
            "FOR SYSTEM_TIME AS OF is supported only on the right-hand table of a JOIN",
        ));
    }
    let pipeline = builder.sink(QUERY_SINK).build().map_err(|e| {
        SqlError::at(
            at,
            e.to_string()
                .trim_start_matches("invalid pipeline: ")
                .to_string(),
        )
    })?;
    Ok(PlannedQuery {
        pipeline,
        columns: rows.cols,
        updating: updating.get(),
        limit,
        sources: rows.sources,
    })
}

/// `LIMIT n`: a non-negative integer literal.
fn limit_value(e: &ast::Expr) -> Result<u64, SqlError> {
    if let ast::Expr::Value(v) = e {
        if let ast::Value::Number(n, _) = &v.value {
            if let Ok(n) = n.parse::<u64>() {
                return Ok(n);
            }
        }
    }
    Err(SqlError::span(
        e.span(),
        format!("LIMIT {e}: expected a non-negative whole number"),
    ))
}

/// Plans a query (a single SELECT) whose rows go to `target`.
pub(super) fn plan_query(
    builder: PipelineBuilder,
    q: &ast::Query,
    ctx: &Ctx<'_>,
    target: Target<'_>,
) -> Result<(PipelineBuilder, RowsOut), SqlError> {
    let at = ctx.at;
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
    plan_select(builder, select, ctx, target)
}

/// Plans one SELECT whose rows go to `target`.
pub(super) fn plan_select(
    builder: PipelineBuilder,
    select: &ast::Select,
    ctx: &Ctx<'_>,
    target: Target<'_>,
) -> Result<(PipelineBuilder, RowsOut), SqlError> {
    let at = ctx.at;
    let distinct_select;
    let select = match &select.distinct {
        None | Some(ast::Distinct::All) => select,
        Some(ast::Distinct::Distinct) => {
            // SELECT DISTINCT a, b is GROUP BY a, b without aggregates (as Flink plans it).
            let grouped =
                matches!(&select.group_by, ast::GroupByExpr::Expressions(v, _) if !v.is_empty());
            let mut exprs = Vec::new();
            for item in &select.projection {
                match item {
                    ast::SelectItem::UnnamedExpr(e)
                    | ast::SelectItem::ExprWithAlias { expr: e, .. }
                        if !grouped =>
                    {
                        exprs.push(e.clone())
                    }
                    other => {
                        return Err(SqlError::span(
                            other.span(),
                            "SELECT DISTINCT is supported with listed columns and no GROUP BY",
                        ))
                    }
                }
            }
            let mut s = select.clone();
            s.distinct = None;
            s.group_by = ast::GroupByExpr::Expressions(exprs, Vec::new());
            distinct_select = s;
            &distinct_select
        }
        Some(d) => {
            return Err(SqlError::span(
                select.select_token.0.span,
                format!("SELECT {d} is not supported"),
            ))
        }
    };
    if let Some(qual) = &select.qualify {
        return Err(SqlError::span(
            qual.span(),
            "QUALIFY is not supported; filter ROW_NUMBER() in an outer query (window Top-N)",
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
        [left, right] => {
            let (b, prep) = super::join_plan::plan_comma_join(builder, left, right, select, ctx)?;
            return finish_select(b, select, ctx, target, prep);
        }
        [_, _, third, ..] => {
            return Err(SqlError::span(
                third.relation.span(),
                "joins of more than two tables are not supported yet",
            ))
        }
    };
    let (builder, prep) = if !from.joins.is_empty() {
        super::join_plan::plan_join(builder, from, select, ctx)?
    } else if let ast::TableFactor::Derived {
        subquery, alias, ..
    } = &from.relation
    {
        super::derived::plan_derived(builder, subquery, alias.as_ref(), select, ctx)?
    } else {
        single_source(
            builder,
            &from.relation,
            select,
            ctx.catalog,
            ctx.sink,
            ctx.sink_span,
            at,
        )?
    };
    finish_select(builder, select, ctx, target, prep)
}

/// The stages after the sources: the SELECT list (or the aggregation) over `prep`.
fn finish_select(
    mut builder: PipelineBuilder,
    select: &ast::Select,
    ctx: &Ctx<'_>,
    target: Target<'_>,
    prep: Prepared<'_>,
) -> Result<(PipelineBuilder, RowsOut), SqlError> {
    let Prepared {
        scope,
        input,
        filter,
        dead_letter,
        tvf: tvf_kind,
        table,
        width,
        sources,
        window: window_in,
        upsert_key,
        updating,
    } = prep;
    let sink = ctx.sink;
    let (cols, window, out_updating);
    let mut time = None;
    if super::over::has_over(select) {
        let prep = Prepared {
            scope,
            input,
            filter,
            dead_letter,
            tvf: tvf_kind,
            table,
            width,
            sources,
            window: window_in,
            upsert_key,
            updating,
        };
        return super::over::plan_over(builder, select, ctx, target, prep);
    }
    if upsert_key.is_some() && is_aggregating(select) {
        return Err(SqlError::span(
            select.select_token.0.span,
            "aggregating a deduplicated (updating) result is not supported yet",
        ));
    }
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
        if updating && matches!(target, Target::Sink(_)) {
            return Err(SqlError::span(
                select.select_token.0.span,
                "an unwindowed GROUP BY inside a subquery is an updating result, which an outer query can so far only aggregate with an unwindowed GROUP BY; writing its rows as they are is not supported yet (move the GROUP BY to the outermost query)",
            ));
        }
        if upsert_key.is_some() && matches!(target, Target::Row) {
            return Err(SqlError::span(
                select.select_token.0.span,
                "a deduplication inside a subquery is an updating result, which outer queries cannot read yet",
            ));
        }
        let out = outputs_for(items, &target, sink, upsert_key, window_in)
            .map_err(|e| e.or_at(select.select_token.0.span.start))?;
        cols = out.cols;
        window = out.window;
        builder = builder.op(Stage::new(StageSpec {
            name: "sql_select",
            input,
            filter,
            windows,
            outputs: out.outputs,
            key: out.key,
            skip_nulls: out.to_sink
                && sink.option("json.encode.ignore-null-fields") == Some("true"),
            iso_timestamps: out.to_sink && iso(sink),
            plain_decimals: out.to_sink && plain_decimals(sink),
            dead_letter,
            upsert: None,
            as_row: !out.to_sink,
            // A filter and projection pass the row kinds of a changelog through.
            changelog_in: updating,
            changelog_out: updating,
        }));
        out_updating = updating;
    } else {
        let (b, rows) = super::grouping::plan_aggregate(
            builder,
            select,
            &scope,
            table,
            width,
            tvf_kind,
            input,
            filter,
            dead_letter,
            sink,
            &target,
            window_in,
            updating,
        )?;
        builder = b;
        cols = rows.cols;
        window = rows.window;
        time = rows.time;
        out_updating = rows.updating;
    }
    Ok((
        builder,
        RowsOut {
            cols,
            window,
            time,
            sources,
            updating: out_updating,
        },
    ))
}
fn first_words(s: &ast::SetExpr) -> String {
    s.to_string()
        .split_whitespace()
        .take(4)
        .collect::<Vec<_>>()
        .join(" ")
}

/// 'json.encode.decimal-as-plain-number' = 'true' (DECIMALs never in scientific notation).
pub(super) fn plain_decimals(t: &TableDef) -> bool {
    t.option("json.encode.decimal-as-plain-number")
        .or(t.option("value.json.encode.decimal-as-plain-number"))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

pub(super) fn iso(t: &TableDef) -> bool {
    t.option("json.timestamp-format.standard")
        .or(t.option("value.json.timestamp-format.standard"))
        == Some("ISO-8601")
}

pub(super) fn is_aggregating(s: &ast::Select) -> bool {
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

pub(super) fn uses_cols_from(e: &Expr, from: usize) -> bool {
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

pub(super) fn decoder_for(t: &TableDef) -> Result<Decoder, SqlError> {
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
        require_all: t.option("json.fail-on-missing-field") == Some("true"),
    })
}

/// The name of an unaliased SELECT item, as Flink derives it: a column's name, else the
/// expression's text.
pub(super) fn item_name(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Identifier(i) => i.value.clone(),
        ast::Expr::CompoundIdentifier(p) => p.last().map(|i| i.value.clone()).unwrap_or_default(),
        other => other.to_string(),
    }
}

/// The SELECT list compiled with `c` (`*` expands to the scope's columns).
pub(super) fn select_items_with(
    s: &ast::Select,
    scope: &Scope,
    c: &mut Compiler<'_>,
) -> Result<Vec<(String, Typed, Span)>, SqlError> {
    select_items(s, scope, c)
}

fn select_items(
    s: &ast::Select,
    scope: &Scope,
    c: &mut Compiler<'_>,
) -> Result<Vec<(String, Typed, Span)>, SqlError> {
    let mut out = Vec::new();
    for item in &s.projection {
        match item {
            ast::SelectItem::UnnamedExpr(e) => {
                let name = item_name(e);
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
