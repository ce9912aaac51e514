//! Planning `FROM a [INNER] JOIN b ON ...`: equality conjuncts between the two tables become
//! the join key, conditions on one table alone are pushed below the join (less state), and
//! the rest is left for the stage after it.

use std::time::Duration;

use sqlparser::ast::{self as ast, Spanned};
use sqlparser::tokenizer::Span;

use crate::plan::{Input, Pipeline, PipelineBuilder};

use super::ddl::TableDef;
use super::error::SqlError;
use super::expr::{Arith, Cmp, Compiler, Expr, Num, Scope, ScopeCol};
use super::ops::StageInput;
use super::planner::{
    bounded, decoder_for, input_of, parse_duration, plan_query, source_table, Ctx, Prepared,
    RowsOut, Target,
};
use super::regular_join::{JoinSide, SqlJoin, TimeBounds};
use super::scoped::{ForInput, Fork};
use crate::value::Value;

/// Which tables an expression reads: bit 0 left, bit 1 right.
pub(super) fn tables_read(e: &Expr, split: usize) -> u8 {
    match e {
        Expr::Col(i) => {
            if *i < split {
                1
            } else {
                2
            }
        }
        Expr::Lit(_) => 0,
        Expr::Arith(_, _, a, b)
        | Expr::Cmp(_, a, b)
        | Expr::And(a, b)
        | Expr::Or(a, b)
        | Expr::Like(a, b, _, _) => tables_read(a, split) | tables_read(b, split),
        Expr::Neg(_, a)
        | Expr::Not(a)
        | Expr::IsNull(a, _)
        | Expr::IsBool(a, _, _)
        | Expr::Cast(a, _, _) => tables_read(a, split),
        Expr::Case(bs, e) => bs.iter().fold(tables_read(e, split), |m, (c, r)| {
            m | tables_read(c, split) | tables_read(r, split)
        }),
        Expr::In(a, xs, _) => xs
            .iter()
            .fold(tables_read(a, split), |m, x| m | tables_read(x, split)),
        Expr::Call(_, xs) => xs.iter().fold(0, |m, x| m | tables_read(x, split)),
    }
}

/// `time column ± interval` of one side: (right side?, offset in ms).
fn time_term(e: &Expr, times: (Option<usize>, Option<usize>)) -> Option<(bool, i64)> {
    let col = |i: usize| {
        if Some(i) == times.0 {
            Some((false, 0))
        } else if Some(i) == times.1 {
            Some((true, 0))
        } else {
            None
        }
    };
    match e {
        Expr::Col(i) => col(*i),
        Expr::Arith(op @ (Arith::Add | Arith::Sub), Num::I64, a, b) => {
            let (side, c) = time_term(a, times)?;
            let Expr::Lit(Value::Int(k)) = **b else {
                return None;
            };
            Some((side, if *op == Arith::Add { c + k } else { c - k }))
        }
        _ => None,
    }
}

/// Bounds on `left time - right time` implied by `conds` (`times`: the row positions of
/// both sides' event-time columns).
fn time_bounds(conds: &[Expr], times: (Option<usize>, Option<usize>)) -> TimeBounds {
    let mut b = TimeBounds::default();
    for c in conds {
        let Expr::Cmp(op, x, y) = c else { continue };
        let (Some((xs, xc)), Some((ys, yc))) = (time_term(x, times), time_term(y, times)) else {
            continue;
        };
        // x op y with x = side_x + xc, y = side_y + yc; write it as l - r op' k.
        let (op, k) = match (xs, ys) {
            (false, true) => (*op, yc - xc),
            (true, false) => (
                match op {
                    Cmp::Ge => Cmp::Le,
                    Cmp::Gt => Cmp::Lt,
                    Cmp::Le => Cmp::Ge,
                    Cmp::Lt => Cmp::Gt,
                    other => *other,
                },
                xc - yc,
            ),
            _ => continue,
        };
        match op {
            Cmp::Ge | Cmp::Gt => b.lower = Some(b.lower.map_or(k, |l| l.max(k))),
            Cmp::Le | Cmp::Lt => b.upper = Some(b.upper.map_or(k, |u| u.min(k))),
            _ => {}
        }
    }
    b
}

/// Moves column references down by `by` (right-side expressions onto the right row).
fn shift(e: Expr, by: usize) -> Expr {
    let b = |x: Box<Expr>| Box::new(shift(*x, by));
    match e {
        Expr::Col(i) => Expr::Col(i - by),
        Expr::Lit(v) => Expr::Lit(v),
        Expr::Arith(o, n, x, y) => Expr::Arith(o, n, b(x), b(y)),
        Expr::Cmp(c, x, y) => Expr::Cmp(c, b(x), b(y)),
        Expr::And(x, y) => Expr::And(b(x), b(y)),
        Expr::Or(x, y) => Expr::Or(b(x), b(y)),
        Expr::Like(x, y, esc, n) => Expr::Like(b(x), b(y), esc, n),
        Expr::Neg(n, x) => Expr::Neg(n, b(x)),
        Expr::Not(x) => Expr::Not(b(x)),
        Expr::IsNull(x, n) => Expr::IsNull(b(x), n),
        Expr::IsBool(x, w, n) => Expr::IsBool(b(x), w, n),
        Expr::Cast(x, f, t) => Expr::Cast(b(x), f, t),
        Expr::Case(bs, x) => Expr::Case(
            bs.into_iter()
                .map(|(c, r)| (shift(c, by), shift(r, by)))
                .collect(),
            b(x),
        ),
        Expr::In(x, xs, n) => Expr::In(b(x), xs.into_iter().map(|y| shift(y, by)).collect(), n),
        Expr::Call(f, xs) => Expr::Call(f, xs.into_iter().map(|y| shift(y, by)).collect()),
    }
}

/// Top-level AND conjuncts.
pub(super) fn conjuncts(e: Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::And(a, b) => {
            conjuncts(*a, out);
            conjuncts(*b, out);
        }
        other => out.push(other),
    }
}

fn and_all(mut xs: Vec<Expr>) -> Option<Expr> {
    let first = xs.pop()?;
    Some(
        xs.into_iter()
            .rev()
            .fold(first, |acc, x| Expr::And(Box::new(x), Box::new(acc))),
    )
}

/// One side of a join: a table read directly, or a subquery's rows.
enum SideSrc<'a> {
    Table(&'a TableDef),
    Rows(Box<(Pipeline, RowsOut)>),
}

struct Side<'a> {
    src: SideSrc<'a>,
    qualifier: String,
    span: Span,
}

impl Side<'_> {
    fn scope(&self) -> Scope {
        match &self.src {
            SideSrc::Table(t) => t.scope(&self.qualifier),
            SideSrc::Rows(b) => Scope {
                cols: b
                    .1
                    .cols
                    .iter()
                    .enumerate()
                    .map(|(i, (n, t))| ScopeCol {
                        name: n.clone(),
                        qualifier: Some(self.qualifier.clone()),
                        ty: t.clone(),
                        index: i,
                    })
                    .collect(),
            },
        }
    }

    fn bounded(&self) -> bool {
        match &self.src {
            SideSrc::Table(t) => bounded(t),
            SideSrc::Rows(b) => b.0.bounded,
        }
    }

    fn delay(&self) -> i64 {
        match &self.src {
            SideSrc::Table(t) => t.watermark.as_ref().map_or(0, |w| w.delay_ms),
            SideSrc::Rows(b) => b.0.watermark_delay,
        }
    }

    /// The column whose values rows arrive in after the watermark: a table's event-time
    /// column, or a subquery's window_end (see [`RowsOut::time`]).
    fn time(&self) -> Option<usize> {
        match &self.src {
            SideSrc::Table(t) => t
                .watermark
                .as_ref()
                .and_then(|w| t.columns.iter().position(|c| c.name == w.column)),
            SideSrc::Rows(b) => b.1.time,
        }
    }

    fn window(&self) -> Option<(usize, usize)> {
        match &self.src {
            SideSrc::Table(_) => None,
            SideSrc::Rows(b) => b.1.window,
        }
    }
}

fn side_of<'a>(rel: &ast::TableFactor, ctx: &Ctx<'a>) -> Result<Side<'a>, SqlError> {
    let span = rel.span();
    match rel {
        ast::TableFactor::Table {
            version: Some(v), ..
        } => Err(SqlError::span(
            span,
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
                .ok_or_else(|| SqlError::span(name.span(), "expected a table name"))?;
            let t = source_table(ctx.catalog, id, ctx.sink, ctx.sink_span)?;
            Ok(Side {
                src: SideSrc::Table(t),
                qualifier: alias
                    .as_ref()
                    .map_or(t.name.clone(), |a| a.name.value.clone()),
                span,
            })
        }
        ast::TableFactor::Derived {
            subquery, alias, ..
        } => {
            let alias = alias.as_ref().ok_or_else(|| {
                SqlError::span(span, "a subquery joined with another needs an alias")
            })?;
            // Plan the subquery alone, then move its operators into the join's pipeline.
            let (b, rows) = plan_query(PipelineBuilder::new("side"), subquery, ctx, Target::Row)?;
            if rows.updating {
                return Err(SqlError::span(
                    span,
                    "a JOIN with an updating subquery (an unwindowed GROUP BY) is not supported yet: joins read append-only inputs; aggregate over a window, or join first and GROUP BY in the outer query",
                ));
            }
            let p = b
                .sink("__side")
                .build()
                .map_err(|e| SqlError::span(span, e.to_string()))?;
            if p.inputs.len() != 1 {
                return Err(SqlError::span(
                    span,
                    "a joined subquery must read one table (nested joins are not supported yet)",
                ));
            }
            Ok(Side {
                src: SideSrc::Rows(Box::new((p, rows))),
                qualifier: alias.name.value.clone(),
                span,
            })
        }
        other => Err(SqlError::span(
            other.span(),
            format!("joining '{other}' is not supported yet; join tables or subqueries"),
        )),
    }
}

/// Plans `FROM a [INNER] JOIN b ON ...`; the stages after it read `Value::List` rows.
pub(super) fn plan_join<'a>(
    builder: PipelineBuilder,
    from: &ast::TableWithJoins,
    select: &ast::Select,
    ctx: &Ctx<'a>,
) -> Result<(PipelineBuilder, Prepared<'a>), SqlError> {
    let j = match from.joins.as_slice() {
        [one] => one,
        [_, second, ..] => {
            return Err(SqlError::span(
                second.relation.span(),
                "joins of more than two tables are not supported yet",
            ))
        }
        [] => unreachable!("plan_join is only called with a join"),
    };
    // `JOIN t FOR SYSTEM_TIME AS OF ...`: a temporal join.
    let rel_at = match &j.relation {
        ast::TableFactor::Table { name, .. } => name
            .0
            .first()
            .and_then(|p| p.as_ident())
            .map(|i| i.span.start),
        _ => None,
    };
    if let Some(t) = ctx.temporal.iter().find(|t| Some(t.table_at) == rel_at) {
        let (on, outer) = match &j.join_operator {
            ast::JoinOperator::Join(ast::JoinConstraint::On(e))
            | ast::JoinOperator::Inner(ast::JoinConstraint::On(e)) => (e, false),
            ast::JoinOperator::Left(ast::JoinConstraint::On(e))
            | ast::JoinOperator::LeftOuter(ast::JoinConstraint::On(e)) => (e, true),
            _ => {
                return Err(SqlError::span(
                    j.relation.span(),
                    "a temporal join is [INNER] JOIN or LEFT JOIN ... ON",
                ))
            }
        };
        ctx.temporal_used.set(ctx.temporal_used.get() + 1);
        return super::temporal::plan_temporal(
            builder,
            &from.relation,
            &j.relation,
            on,
            outer,
            select,
            ctx,
            t,
        );
    }
    let on = match &j.join_operator {
        ast::JoinOperator::Join(ast::JoinConstraint::On(e))
        | ast::JoinOperator::Inner(ast::JoinConstraint::On(e)) => e,
        other => {
            let what = match other {
                ast::JoinOperator::Left(_) | ast::JoinOperator::LeftOuter(_) => "LEFT JOIN",
                ast::JoinOperator::Right(_) | ast::JoinOperator::RightOuter(_) => "RIGHT JOIN",
                ast::JoinOperator::FullOuter(_) => "FULL JOIN",
                ast::JoinOperator::CrossJoin(_) => "CROSS JOIN",
                _ => "this join",
            };
            return Err(SqlError::span(
                j.relation.span(),
                format!("{what} is not supported yet; only [INNER] JOIN ... ON a.k = b.k is (outer joins produce retractions)"),
            ));
        }
    };
    join_two(builder, &from.relation, &j.relation, Some(on), select, ctx)
}

/// Plans `FROM a, b WHERE a.k = b.k ...` (an inner join written with a comma).
pub(super) fn plan_comma_join<'a>(
    builder: PipelineBuilder,
    left: &ast::TableWithJoins,
    right: &ast::TableWithJoins,
    select: &ast::Select,
    ctx: &Ctx<'a>,
) -> Result<(PipelineBuilder, Prepared<'a>), SqlError> {
    if let Some(j) = left.joins.first().or(right.joins.first()) {
        return Err(SqlError::span(
            j.relation.span(),
            "joins of more than two tables are not supported yet",
        ));
    }
    join_two(builder, &left.relation, &right.relation, None, select, ctx)
}

/// Plans an inner join of two relations; the equalities between them in ON and WHERE form
/// the key.
fn join_two<'a>(
    mut builder: PipelineBuilder,
    left: &ast::TableFactor,
    right: &ast::TableFactor,
    on: Option<&ast::Expr>,
    select: &ast::Select,
    ctx: &Ctx<'a>,
) -> Result<(PipelineBuilder, Prepared<'a>), SqlError> {
    let err_span = on.map_or(right.span(), |o| o.span());
    let sides = [side_of(left, ctx)?, side_of(right, ctx)?];
    if sides[0].qualifier == sides[1].qualifier {
        return Err(SqlError::span(
            sides[1].span,
            format!(
                "both sides of the join are called '{}'; give them different aliases",
                sides[0].qualifier
            ),
        ));
    }
    let mut scope = sides[0].scope();
    let split = scope.cols.len();
    let mut rs = sides[1].scope();
    for c in &mut rs.cols {
        c.index += split;
    }
    scope.cols.extend(rs.cols);
    let width = scope.cols.len();
    // Key pairs from ON and WHERE (the same for an inner join); the rest are conditions.
    let mut conds = Vec::new();
    if let Some(on) = on {
        conjuncts(Compiler::plain(&scope).condition(on)?, &mut conds);
    }
    if let Some(w) = &select.selection {
        conjuncts(Compiler::plain(&scope).condition(w)?, &mut conds);
    }
    // Interval conditions between the two sides' times bound the state: a table's event
    // time, or the window_end of a windowed subquery (Nexmark q7: bids joined to the
    // maximum of the window they fall in).
    let times = [sides[0].time(), sides[1].time()];
    let bounds = time_bounds(&conds, (times[0], times[1].map(|i| i + split)));
    let (mut lkeys, mut rkeys, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    for c in conds {
        match c {
            Expr::Cmp(Cmp::Eq, a, b)
                if tables_read(&a, split) == 1 && tables_read(&b, split) == 2 =>
            {
                lkeys.push(*a);
                rkeys.push(shift(*b, split));
            }
            Expr::Cmp(Cmp::Eq, a, b)
                if tables_read(&a, split) == 2 && tables_read(&b, split) == 1 =>
            {
                lkeys.push(*b);
                rkeys.push(shift(*a, split));
            }
            other => rest.push(other),
        }
    }
    if lkeys.is_empty() {
        return Err(SqlError::span(
            err_span,
            "a join needs an equality between columns of the two tables (e.g. ON a.id = b.a_id)",
        ));
    }
    // Push single-table conditions below the join.
    let (mut lf, mut rf, mut post) = (Vec::new(), Vec::new(), Vec::new());
    for c in rest {
        match tables_read(&c, split) {
            1 => lf.push(c),
            2 => rf.push(shift(c, split)),
            _ => post.push(c),
        }
    }
    let ttl = match ctx.options.get("table.exec.state.ttl") {
        Some(v) => Some(
            parse_duration(v)
                .ok_or_else(|| {
                    SqlError::new(format!(
                        "SET 'table.exec.state.ttl' = '{v}': not a duration (e.g. '1 h')"
                    ))
                })?
                .as_millis() as i64,
        )
        .filter(|ms| *ms > 0),
        None => None,
    };
    if sides[0].bounded() != sides[1].bounded() {
        return Err(SqlError::span(
            right.span(),
            "both tables of a join must have the same 'scan.bounded.mode'",
        ));
    }
    // A window join: the key equates both sides' window_end, so rows go with their window.
    let window_join = match (sides[0].window(), sides[1].window()) {
        (Some((_, le)), Some((_, re))) => lkeys
            .iter()
            .zip(&rkeys)
            .any(|(l, r)| *l == Expr::Col(le) && *r == Expr::Col(re)),
        _ => false,
    };
    let delay = sides.iter().map(Side::delay).max().unwrap_or(0);
    builder = builder.watermark_delay(Duration::from_millis(delay as u64));
    if sides[0].bounded() {
        builder = builder.bounded();
    }
    // The inputs; a topic read by both sides (a self-join) is read once and each record
    // forked to both sides, since the engine keeps read positions per topic-partition.
    let inputs: Vec<Input> = sides
        .iter()
        .map(|side| match &side.src {
            SideSrc::Table(t) => input_of(t),
            SideSrc::Rows(b) => b.0.inputs[0].clone(),
        })
        .collect();
    let shared = inputs[0].topic == inputs[1].topic;
    if shared {
        if inputs[0].event_time != inputs[1].event_time || inputs[0].start != inputs[1].start {
            return Err(SqlError::span(
                right.span(),
                format!(
                    "both sides read topic '{}' with different event times or start positions; a self-join needs one reading of the topic",
                    inputs[0].topic
                ),
            ));
        }
        builder = builder.source(inputs[0].clone()).op(Fork::new(0, 1));
    } else {
        for input in &inputs {
            builder = builder.source(input.clone());
        }
    }
    let mut sources = Vec::new();
    let mut join_sides = Vec::new();
    let side_parts = [(lf, lkeys), (rf, rkeys)];
    for (i, (side, (filter, keys))) in sides.into_iter().zip(side_parts).enumerate() {
        let window_end = side.window().filter(|_| window_join).map(|(_, e)| e);
        let time = times[i];
        match side.src {
            SideSrc::Table(t) => {
                sources.push(t.topic().to_string());
                join_sides.push(JoinSide {
                    decoder: Some(decoder_for(t)?),
                    window_end,
                    time,
                    filter: and_all(filter),
                    keys,
                });
            }
            SideSrc::Rows(b) => {
                let (p, rows) = *b;
                for (name, topic) in &p.side_outputs {
                    builder = builder.side_output(name, topic);
                }
                for op in p.ops {
                    builder = builder.op(ForInput::new(i, op));
                }
                sources.extend(rows.sources);
                join_sides.push(JoinSide {
                    decoder: None,
                    window_end,
                    time,
                    filter: and_all(filter),
                    keys,
                });
            }
        }
    }
    if shared {
        sources.dedup();
    }
    let right = join_sides.pop().expect("two sides");
    let left = join_sides.pop().expect("two sides");
    builder = builder.op(SqlJoin::new(left, right, ttl).with_bounds(bounds));
    Ok((
        builder,
        Prepared {
            scope,
            input: StageInput::Row,
            filter: and_all(post),
            dead_letter: None,
            tvf: None,
            table: None,
            width,
            sources,
            window: None,
            upsert_key: None,
            updating: false,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plus(e: Expr, ms: i64) -> Expr {
        Expr::Arith(
            Arith::Add,
            Num::I64,
            Box::new(e),
            Box::new(Expr::Lit(Value::Int(ms))),
        )
    }

    #[test]
    fn interval_conditions_become_bounds_on_the_time_difference() {
        // left time at 0, right time at 5: l BETWEEN r - 10 AND r + 3 → l - r in [-10, 3].
        let times = (Some(0), Some(5));
        let conds = vec![
            Expr::Cmp(
                Cmp::Ge,
                Box::new(Expr::Col(0)),
                Box::new(plus(Expr::Col(5), -10)),
            ),
            Expr::Cmp(
                Cmp::Le,
                Box::new(Expr::Col(0)),
                Box::new(plus(Expr::Col(5), 3)),
            ),
            Expr::Cmp(Cmp::Eq, Box::new(Expr::Col(1)), Box::new(Expr::Col(6))),
        ];
        assert_eq!(
            time_bounds(&conds, times),
            TimeBounds {
                lower: Some(-10),
                upper: Some(3)
            }
        );
        // r >= l  ⇔  l - r <= 0.
        let flipped = vec![Expr::Cmp(
            Cmp::Ge,
            Box::new(Expr::Col(5)),
            Box::new(Expr::Col(0)),
        )];
        assert_eq!(
            time_bounds(&flipped, times),
            TimeBounds {
                lower: None,
                upper: Some(0)
            }
        );
        assert_eq!(time_bounds(&conds, (None, Some(5))), TimeBounds::default());
    }
}
