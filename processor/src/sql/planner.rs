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
use sqlparser::tokenizer::{Location, Span, Token};

use crate::plan::{Input, Pipeline, PipelineBuilder};
use crate::window::WindowKind;

use super::ddl::{key_fields, TableDef};
use super::error::SqlError;
use super::expr::{
    coerce, contains_aggregate, func_name, plain_args, Compiler, Expr, Scope, ScopeCol, Typed,
};
use super::lex::{rewrite_table_args, strip_temporal, Stmt, Temporal, TABLE_ARG};
use super::ops::{Decoder, OutCol, Stage, StageInput, StageSpec};
use super::types::SqlType;
use super::windows::tvf_window;
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

fn parse_insert(stmt: &Stmt) -> Result<(ast::Insert, Vec<Temporal>), SqlError> {
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
            version: Some(v), ..
        } => Err(SqlError::span(
            rel.span(),
            format!("temporal joins ({v}) are not supported yet"),
        )),
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
        ast::TableFactor::MatchRecognize { .. } => Err(SqlError::span(
            rel.span(),
            "MATCH_RECOGNIZE is not supported yet",
        )),
        other => Err(SqlError::span(
            other.span(),
            format!(
                "FROM {other} is not supported; read from a table or TABLE(TUMBLE(TABLE t, ...))"
            ),
        )),
    }
}
/// Where a query's rows go: the sink (its columns in query order), or on to an outer query
/// as rows (`Value::List`).
pub(super) enum Target<'a> {
    Sink(&'a [usize]),
    Row,
}

/// The names and types of the rows a subquery produces.
pub(super) type Cols = Vec<(String, SqlType)>;

/// What a query planned for a [`Target::Row`] produces.
pub(super) struct RowsOut {
    pub(super) cols: Cols,
    /// Positions of window_start and window_end among `cols`, when both are selected as
    /// they are (window joins and Top-N need them).
    pub(super) window: Option<(usize, usize)>,
    pub(super) sources: Vec<String>,
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
    if let Some(d) = &select.distinct {
        return Err(SqlError::span(
            select.select_token.0.span,
            format!("SELECT {d} is not supported yet"),
        ));
    }
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
    } = prep;
    let sink = ctx.sink;
    let (cols, window);
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
        let out = outputs_for(items, &target, sink, None, window_in)
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
            dead_letter,
            upsert: None,
            as_row: !out.to_sink,
        }));
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
        )?;
        builder = b;
        cols = rows.cols;
        window = rows.window;
    }
    Ok((
        builder,
        RowsOut {
            cols,
            window,
            sources,
        },
    ))
}

/// The last stage's outputs for a target.
pub(super) struct Outputs {
    pub(super) outputs: Vec<OutCol>,
    pub(super) key: Vec<usize>,
    /// Names and types (for a Row target).
    pub(super) cols: Cols,
    /// Where window_start and window_end are among the outputs (for a Row target).
    pub(super) window: Option<(usize, usize)>,
    pub(super) to_sink: bool,
}

/// Maps the SELECT list onto the target.
pub(super) fn outputs_for(
    items: Vec<(String, Typed, Span)>,
    target: &Target<'_>,
    sink: &TableDef,
    group_refs: Option<usize>,
    window_in: Option<(usize, usize)>,
) -> Result<Outputs, SqlError> {
    match target {
        Target::Sink(cols) => {
            let (outputs, key) = sink_outputs(items, cols, sink, group_refs)?;
            Ok(Outputs {
                outputs,
                key,
                cols: Vec::new(),
                window: None,
                to_sink: true,
            })
        }
        Target::Row => {
            let at = |i: usize| items.iter().position(|(_, t, _)| t.e == Expr::Col(i));
            let window = window_in.and_then(|(s, e)| Some((at(s)?, at(e)?)));
            let cols = items
                .iter()
                .map(|(n, t, _)| (n.clone(), t.ty.clone()))
                .collect();
            let outputs = items
                .into_iter()
                .map(|(n, t, _)| OutCol {
                    name: Arc::from(n.as_str()),
                    expr: t.e,
                    encode: None,
                    in_value: true,
                })
                .collect();
            Ok(Outputs {
                outputs,
                key: Vec::new(),
                cols,
                window,
                to_sink: false,
            })
        }
    }
}

fn first_words(s: &ast::SetExpr) -> String {
    s.to_string()
        .split_whitespace()
        .take(4)
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn iso(t: &TableDef) -> bool {
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
pub(super) fn sink_outputs(
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

/// What the stages after the sources work on: the scope, how a stage gets its row, the
/// WHERE condition left for it, and the window TVF if any.
pub(super) struct Prepared<'a> {
    pub(super) scope: Scope,
    pub(super) input: StageInput,
    pub(super) filter: Option<Expr>,
    pub(super) dead_letter: Option<Arc<str>>,
    pub(super) tvf: Option<(WindowKind, Vec<ast::Expr>, Span)>,
    /// The single source table (None after a join, whose output has no time attribute).
    pub(super) table: Option<&'a TableDef>,
    /// Row width before the TVF's window columns.
    pub(super) width: usize,
    pub(super) sources: Vec<String>,
    /// Positions of window_start and window_end in the row the stages read.
    pub(super) window: Option<(usize, usize)>,
}

/// Looks up a source table and checks it can be read.
pub(super) fn source_table<'a>(
    catalog: &'a Catalog,
    id: &ast::Ident,
    sink: &TableDef,
    sink_span: Span,
) -> Result<&'a TableDef, SqlError> {
    let table = catalog.tables.get(&id.value).ok_or_else(|| {
        SqlError::span(
            id.span,
            format!(
                "table '{}' does not exist; known tables: {}",
                id.value,
                catalog.names()
            ),
        )
    })?;
    if table.is_upsert() {
        return Err(SqlError::span(
            id.span,
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
    Ok(table)
}

/// The engine input for a table.
pub(super) fn input_of(t: &TableDef) -> Input {
    let mut input = Input::topic(t.topic());
    if let Some(w) = &t.watermark {
        input = input.event_time_field(&w.column);
    }
    if t.option("scan.startup.mode") == Some("latest-offset") {
        input = input.from_latest();
    }
    input
}

pub(super) fn bounded(t: &TableDef) -> bool {
    t.option("scan.bounded.mode") == Some("latest-offset")
}

fn single_source<'a>(
    mut builder: PipelineBuilder,
    relation: &ast::TableFactor,
    select: &ast::Select,
    catalog: &'a Catalog,
    sink: &TableDef,
    sink_span: Span,
    at: sqlparser::tokenizer::Location,
) -> Result<(PipelineBuilder, Prepared<'a>), SqlError> {
    let src = source_of(relation)?;
    let table = source_table(catalog, &src.table, sink, sink_span)?;

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

    if let Some(w) = &table.watermark {
        builder = builder.watermark_delay(Duration::from_millis(w.delay_ms as u64));
    }
    builder = builder.source(input_of(table));
    if bounded(table) {
        builder = builder.bounded();
    }
    let dead_letter: Option<Arc<str>> = table
        .option("dead-letter.topic")
        .map(|_| Arc::from("dead-letter"));
    if let Some(t) = table.option("dead-letter.topic") {
        builder = builder.side_output("dead-letter", t);
    }

    let window = tvf_kind.as_ref().map(|_| (width, width + 1));
    Ok((
        builder,
        Prepared {
            scope,
            input: StageInput::Table(decoder),
            filter,
            dead_letter,
            tvf: tvf_kind,
            table: Some(table),
            width,
            sources: vec![table.topic().to_string()],
            window,
        },
    ))
}
