//! Planning aggregations: group keys and aggregate arguments are computed by a first stage,
//! the engine's window aggregate groups them (per window, or as a running aggregate), and a
//! last stage evaluates HAVING and the SELECT list over `g0.., window_start, window_end,
//! r0..` (group keys, window bounds, aggregate results). Over an updating input (a changelog
//! from a GROUP BY subquery) the stages carry row kinds and a retracting aggregate takes
//! the engine's place; an unwindowed GROUP BY read by an outer query emits a changelog.

use std::sync::Arc;

use sqlparser::ast::{self as ast, Spanned};
use sqlparser::tokenizer::Span;

use crate::aggregate::AggSpec;
use crate::plan::PipelineBuilder;
use crate::window::{LatePolicy, WindowKind, WindowSpec};

use super::agg::AggKind;
use super::ddl::TableDef;
use super::error::SqlError;
use super::expr::{self, contains_aggregate, func_name, Compiler, Expr, Scope, Typed};
use super::ops::{OutCol, Stage, StageInput, StageSpec};
use super::planner::{iso, item_name, outputs_for, plain_decimals, RowsOut, Target};
use super::retract::RetractAggregate;
use super::types::SqlType;
use super::windows::{legacy_window, rowtime, window_aux, Aux, LegacyWindow};

/// A registered aggregate call.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct AggCall {
    pub(super) kind: AggKind,
    pub(super) arg: Option<Typed>,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn plan_aggregate(
    mut builder: PipelineBuilder,
    select: &ast::Select,
    scope: &Scope,
    table: Option<&TableDef>,
    width: usize,
    tvf: Option<(WindowKind, Vec<ast::Expr>, Span)>,
    input: StageInput,
    filter: Option<Expr>,
    dead_letter: Option<Arc<str>>,
    sink: &TableDef,
    target: &Target<'_>,
    window_in: Option<(usize, usize)>,
    updating_in: bool,
) -> Result<(PipelineBuilder, RowsOut), SqlError> {
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
            if let Some((name, kind, texts)) = legacy_window(f, table, g.span())? {
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
    // Window propagation: rows of a windowed subquery grouped by its window_start and
    // window_end. Its rows carry event time window_end - 1, so a 1 ms tumbling window fires
    // each group once, when the watermark passes the subquery's window (as Flink does).
    let propagated = match window_in {
        Some((s, e)) if window.is_none() => {
            let at = |i: usize| keys.iter().position(|g| g.e == Expr::Col(i));
            at(s).zip(at(e))
        }
        _ => None,
    };
    if propagated.is_some() {
        window = Some((WindowKind::Tumbling { size: 1 }, None));
    }
    let kind = window
        .as_ref()
        .map_or(WindowKind::Global, |(kind, _)| *kind);
    let legacy = window.as_ref().and_then(|(_, l)| l.clone());
    let windowed = window.is_some();
    if windowed && updating_in {
        return Err(SqlError::span(
            select.select_token.0.span,
            "a window aggregation over an updating subquery (an unwindowed GROUP BY) is not supported (nor in Flink); use an unwindowed GROUP BY",
        ));
    }

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
            ast::SelectItem::UnnamedExpr(e) => (item_name(e), e),
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
    let compared = aggs.len();
    if aggs.is_empty() {
        // GROUP BY without aggregates (a distinct projection): count to drive the operator;
        // the count is not part of the result, so a group is emitted once.
        aggs.push(AggCall {
            kind: AggKind::Count,
            arg: None,
        });
    }

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
        input,
        filter,
        windows: None,
        outputs: pre,
        key: Vec::new(),
        skip_nulls: false,
        iso_timestamps: false,
        plain_decimals: false,
        dead_letter,
        upsert: None,
        // Over a changelog the row kinds pass on to the retracting aggregate.
        as_row: updating_in,
        changelog_in: updating_in,
        changelog_out: updating_in,
    }));
    if updating_in {
        // Stage 2 over a changelog: an aggregate that takes rows back. Its input rows are
        // [g.., a..] with the arguments of the aggregates that have one, in order.
        let mut next = k;
        let specs = aggs
            .iter()
            .map(|a| {
                let ty = a.arg.as_ref().map(|x| &x.ty);
                let at = a.arg.as_ref().map(|_| {
                    next += 1;
                    next - 1
                });
                (a.kind.retractable(ty), at)
            })
            .collect();
        builder = builder.op(RetractAggregate::new(k, specs));
    } else {
        // Stage 2: the engine's aggregate.
        builder = builder.window(engine_aggregate(&aggs, kind, k));
    }
    // Stage 3: HAVING and the SELECT list, encoded for the sink.
    let out = outputs_for(
        items,
        target,
        sink,
        (!windowed).then(|| (0..k).collect()),
        propagated.or(windowed.then_some((k, k + 1))),
    )
    .map_err(|e| e.or_at(select.select_token.0.span.start))?;
    let input = if updating_in {
        StageInput::Row
    } else {
        let mut fields: Vec<Arc<str>> = (0..k).map(|i| Arc::from(format!("g{i}"))).collect();
        fields.push(Arc::from("window_start"));
        fields.push(Arc::from("window_end"));
        fields.extend((0..aggs.len()).map(|j| Arc::from(format!("r{j}"))));
        StageInput::Fields(fields)
    };
    // An unwindowed GROUP BY is an updating result: upserted into the sink, or a changelog
    // for an outer query.
    let updating = !windowed && !out.to_sink;
    builder = builder.op(Stage::new(StageSpec {
        name: "sql_project",
        input,
        filter: having,
        windows: None,
        outputs: out.outputs,
        key: out.key,
        skip_nulls: out.to_sink && sink.option("json.encode.ignore-null-fields") == Some("true"),
        iso_timestamps: out.to_sink && iso(sink),
        plain_decimals: out.to_sink && plain_decimals(sink),
        dead_letter: None,
        upsert: (!windowed).then_some((k, compared)),
        as_row: !out.to_sink,
        changelog_in: updating_in,
        changelog_out: updating,
    }));
    Ok((
        builder,
        RowsOut {
            cols: out.cols,
            window: out.window,
            // A window's row leaves once, when the watermark passes its end.
            time: out.window_end.filter(|_| windowed),
            sources: Vec::new(),
            updating,
        },
    ))
}

/// The engine's window (or running) aggregate over the first stage's `g..`, `a..` fields.
fn engine_aggregate(aggs: &[AggCall], kind: WindowKind, k: usize) -> WindowSpec {
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
    WindowSpec {
        kind,
        group_by: (0..k).map(|i| format!("g{i}")).collect(),
        aggregates,
        allowed_lateness: 0,
        late: LatePolicy::Drop,
    }
}

/// An aggregate call: COUNT(*), COUNT([DISTINCT] x), SUM/MIN/MAX/AVG(x).
pub(super) fn aggregate_call(f: &ast::Function, scope: &Scope) -> Result<AggCall, SqlError> {
    let name = func_name(f);
    let span = f.span();
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
    // FILTER (WHERE c): aggregates skip NULL inputs, so rows failing `c` feed NULL.
    let arg = match &f.filter {
        None => arg,
        Some(cond) => {
            if contains_aggregate(cond) {
                return Err(SqlError::span(
                    cond.span(),
                    "a FILTER condition cannot aggregate",
                ));
            }
            let c = Compiler::plain(scope).condition(cond)?;
            let (e, ty) = match arg {
                Some(t) => (t.e, t.ty),
                None => (Expr::Lit(crate::value::Value::Bool(true)), SqlType::Boolean),
            };
            let masked = Expr::Case(vec![(c, e)], Box::new(Expr::Lit(crate::value::Value::Null)));
            // COUNT(*) counts the marker; other aggregates keep their argument's type.
            Some(Typed::new(masked, ty))
        }
    };
    Ok(AggCall { kind, arg })
}
