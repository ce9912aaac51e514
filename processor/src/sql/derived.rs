//! Subqueries in FROM: the inner query's rows (`Value::List`) feed the outer query. The one
//! stateful shape recognized here is Flink's window Top-N:
//!
//! ```sql
//! SELECT * FROM (
//!   SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY price DESC) AS rownum
//!   FROM <a windowed aggregation, or a window TVF>
//! ) WHERE rownum <= 3
//! ```

use sqlparser::ast::{self as ast, Spanned};

use crate::plan::PipelineBuilder;

use super::error::SqlError;
use super::expr::{func_name, Compiler, Expr, Scope, ScopeCol};
use super::ops::StageInput;
use super::planner::{plan_query, plan_select, Cols, Ctx, Prepared, Target};
use super::topn::{Dedup, TopN, TopNSpec};
use super::types::SqlType;

fn scope_of(cols: &Cols, qualifier: Option<&str>) -> Scope {
    Scope {
        cols: cols
            .iter()
            .enumerate()
            .map(|(i, (n, t))| ScopeCol {
                name: n.clone(),
                qualifier: qualifier.map(str::to_string),
                ty: t.clone(),
                index: i,
            })
            .collect(),
    }
}

/// `ROW_NUMBER() OVER (...) [AS name]` in a SELECT list: (position, the call, its name).
fn row_number(select: &ast::Select) -> Option<(usize, &ast::Function, String)> {
    select.projection.iter().enumerate().find_map(|(i, item)| {
        let (e, name) = match item {
            ast::SelectItem::ExprWithAlias { expr, alias } => (expr, alias.value.clone()),
            ast::SelectItem::UnnamedExpr(e) => (e, e.to_string()),
            _ => return None,
        };
        match e {
            ast::Expr::Function(f) if func_name(f) == "ROW_NUMBER" && f.over.is_some() => {
                Some((i, f, name))
            }
            _ => None,
        }
    })
}

/// Top-level AND conjuncts of a WHERE.
fn conjuncts<'a>(e: &'a ast::Expr, out: &mut Vec<&'a ast::Expr>) {
    match e {
        ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        ast::Expr::Nested(inner) => conjuncts(inner, out),
        other => out.push(other),
    }
}

/// `rownum <= N`, `rownum < N`, `rownum = 1` (or mirrored): N.
fn rank_limit(e: &ast::Expr, rn: &str) -> Option<usize> {
    let ast::Expr::BinaryOp { left, op, right } = e else {
        return None;
    };
    let is_rn = |x: &ast::Expr| match x {
        ast::Expr::Identifier(i) => i.value == rn,
        ast::Expr::CompoundIdentifier(p) => p.last().is_some_and(|i| i.value == rn),
        _ => false,
    };
    let num = |x: &ast::Expr| match x {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => n.parse::<usize>().ok(),
            _ => None,
        },
        _ => None,
    };
    use ast::BinaryOperator as B;
    match (is_rn(left), op, is_rn(right)) {
        (true, B::LtEq, false) => num(right),
        (true, B::Lt, false) => num(right).map(|n| n.saturating_sub(1)),
        (true, B::Eq, false) => num(right).filter(|n| *n == 1),
        (false, B::GtEq, true) => num(left),
        (false, B::Gt, true) => num(left).map(|n| n.saturating_sub(1)),
        _ => None,
    }
}

/// Plans `FROM (subquery) [alias]` for the outer `select`.
pub(super) fn plan_derived<'a>(
    builder: PipelineBuilder,
    sub: &ast::Query,
    alias: Option<&ast::TableAlias>,
    outer: &ast::Select,
    ctx: &Ctx<'a>,
) -> Result<(PipelineBuilder, Prepared<'a>), SqlError> {
    let qualifier = alias.map(|a| a.name.value.as_str());
    let inner = match &*sub.body {
        ast::SetExpr::Select(s) => Some(s),
        _ => None,
    };
    let Some((pos, f, rn)) = inner.and_then(|s| row_number(s)) else {
        // A plain subquery: its rows, the outer WHERE over them.
        let (builder, rows) = plan_query(builder, sub, ctx, Target::Row)?;
        let scope = scope_of(&rows.cols, qualifier);
        let filter = outer
            .selection
            .as_ref()
            .map(|w| Compiler::plain(&scope).condition(w))
            .transpose()?;
        let width = rows.cols.len();
        let mut p = prepared(scope, filter, width, rows.sources, rows.window);
        p.updating = rows.updating;
        return Ok((builder, p));
    };
    let inner = inner.expect("row_number found an inner SELECT");
    if sub.order_by.is_some() || sub.limit_clause.is_some() || sub.with.is_some() {
        return Err(SqlError::span(
            f.span(),
            "the Top-N subquery must not have WITH, ORDER BY or LIMIT",
        ));
    }
    let Some(ast::WindowType::WindowSpec(spec)) = &f.over else {
        return Err(SqlError::span(
            f.span(),
            "ROW_NUMBER needs OVER (PARTITION BY window_start, window_end ORDER BY ...)",
        ));
    };
    // The rows to rank: the subquery without its ROW_NUMBER column.
    let mut middle = (**inner).clone();
    middle.projection.remove(pos);
    let (mut builder, rows) = plan_select(builder, &middle, ctx, Target::Row)?;
    if rows.updating {
        return Err(SqlError::span(
            f.span(),
            "ROW_NUMBER() over an updating result (an unwindowed GROUP BY) is not supported yet",
        ));
    }
    let (cols, sources) = (rows.cols, rows.sources);
    let scope = scope_of(&cols, None);
    let mut partition = Vec::new();
    let (mut has_start, mut has_end) = (false, false);
    for p in &spec.partition_by {
        let t = Compiler::plain(&scope).compile(p)?;
        has_start |= rows.window.is_some_and(|(s, _)| t.e == Expr::Col(s));
        has_end |= rows.window.is_some_and(|(_, e)| t.e == Expr::Col(e));
        partition.push(t.e);
    }
    let (true, true, Some((_, window_end))) = (has_start, has_end, rows.window) else {
        return deduplicate(
            builder, &middle, outer, spec, f, ctx, rn, cols, sources, partition, qualifier,
        );
    };
    if spec.order_by.is_empty() || spec.window_frame.is_some() {
        return Err(SqlError::span(
            f.span(),
            "ROW_NUMBER() OVER needs ORDER BY and no window frame",
        ));
    }
    let mut order = Vec::new();
    for o in &spec.order_by {
        let t = Compiler::plain(&scope).compile(&o.expr)?;
        let desc = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
        order.push((t.e, desc));
    }
    // The outer WHERE must limit the rank.
    let mut conds = Vec::new();
    if let Some(w) = &outer.selection {
        conjuncts(w, &mut conds);
    }
    let Some(limit_at) = conds.iter().position(|c| rank_limit(c, &rn).is_some()) else {
        return Err(SqlError::span(
            outer.select_token.0.span,
            format!("window Top-N needs WHERE {rn} <= N in the outer query"),
        ));
    };
    let n = rank_limit(conds.remove(limit_at), &rn).unwrap_or(0);
    builder = builder.op(TopN::new(TopNSpec {
        window_end,
        partition,
        order,
        n,
    }));
    let mut out_cols = cols;
    out_cols.push((rn, SqlType::BigInt));
    let scope = scope_of(&out_cols, qualifier);
    let mut filter: Option<Expr> = None;
    for c in conds {
        let e = Compiler::plain(&scope).condition(c)?;
        filter = Some(match filter {
            Some(f) => Expr::And(Box::new(f), Box::new(e)),
            None => e,
        });
    }
    let width = out_cols.len();
    Ok((
        builder,
        prepared(scope, filter, width, sources, rows.window),
    ))
}

fn prepared<'a>(
    scope: Scope,
    filter: Option<Expr>,
    width: usize,
    sources: Vec<String>,
    window: Option<(usize, usize)>,
) -> Prepared<'a> {
    Prepared {
        scope,
        input: StageInput::Row,
        filter,
        dead_letter: None,
        tvf: None,
        table: None,
        width,
        sources,
        window,
        upsert_key: None,
        updating: false,
    }
}

/// Flink's deduplication: `ROW_NUMBER() OVER (PARTITION BY k ORDER BY <event time> [DESC])`
/// filtered by `rownum = 1` keeps the first (or, descending, the last) row per key: an
/// updating result, upserted by the partition keys.
#[allow(clippy::too_many_arguments)]
fn deduplicate<'a>(
    mut builder: PipelineBuilder,
    middle: &ast::Select,
    outer: &ast::Select,
    spec: &ast::WindowSpec,
    f: &ast::Function,
    ctx: &Ctx<'a>,
    rn: String,
    cols: Cols,
    sources: Vec<String>,
    partition: Vec<Expr>,
    qualifier: Option<&str>,
) -> Result<(PipelineBuilder, Prepared<'a>), SqlError> {
    let refuse = || {
        SqlError::span(
            f.span(),
            "only window Top-N (PARTITION BY window_start, window_end, ...) and deduplication (ORDER BY the event-time attribute, rownum = 1) are supported; regular Top-N is not yet",
        )
    };
    // The event-time attribute of the subquery's table, selected as it is.
    let rowtime = match middle.from.as_slice() {
        [ast::TableWithJoins {
            relation: ast::TableFactor::Table { name, .. },
            joins,
        }] if joins.is_empty() => name
            .0
            .first()
            .and_then(|p| p.as_ident())
            .and_then(|id| ctx.catalog.table(&id.value))
            .and_then(|t| t.watermark.as_ref())
            .map(|w| w.column.clone()),
        _ => None,
    };
    let scope = scope_of(&cols, None);
    let (time, keep_last) = match (spec.order_by.as_slice(), rowtime) {
        ([o], Some(rt)) => {
            let t = Compiler::plain(&scope).compile(&o.expr)?;
            match t.e {
                Expr::Col(i) if cols.get(i).is_some_and(|(n, _)| *n == rt) => {
                    (i, matches!(o.options.sort, Some(ast::OrderBySort::Desc)))
                }
                _ => return Err(refuse()),
            }
        }
        _ => return Err(refuse()),
    };
    let keys: Vec<usize> = partition
        .iter()
        .map(|p| match p {
            Expr::Col(i) => Some(*i),
            _ => None,
        })
        .collect::<Option<_>>()
        .ok_or_else(refuse)?;
    let mut conds = Vec::new();
    if let Some(w) = &outer.selection {
        conjuncts(w, &mut conds);
    }
    match conds.as_slice() {
        [c] if rank_limit(c, &rn) == Some(1) => {}
        _ => {
            return Err(SqlError::span(
                outer.select_token.0.span,
                format!("deduplication needs exactly WHERE {rn} = 1 (or <= 1) in the outer query"),
            ))
        }
    }
    builder = builder.op(Dedup::new(partition, time, keep_last));
    let mut out_cols = cols;
    out_cols.push((rn, SqlType::BigInt));
    let width = out_cols.len();
    let mut p = prepared(scope_of(&out_cols, qualifier), None, width, sources, None);
    p.upsert_key = Some(keys);
    Ok((builder, p))
}
