//! Planning `FROM a [INNER] JOIN b ON ...`: equality conjuncts between the two tables become
//! the join key, conditions on one table alone are pushed below the join (less state), and
//! the rest is left for the stage after it.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlparser::ast::{self as ast, Spanned};
use sqlparser::tokenizer::Span;

use crate::plan::PipelineBuilder;

use super::ddl::TableDef;
use super::error::SqlError;
use super::expr::{Cmp, Compiler, Expr, Scope};
use super::ops::StageInput;
use super::planner::{bounded, decoder_for, input_of, parse_duration, source_table, Prepared};
use super::regular_join::{JoinSide, SqlJoin};
use super::Catalog;

/// Which tables an expression reads: bit 0 left, bit 1 right.
fn sides(e: &Expr, split: usize) -> u8 {
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
        | Expr::Like(a, b, _, _) => sides(a, split) | sides(b, split),
        Expr::Neg(_, a)
        | Expr::Not(a)
        | Expr::IsNull(a, _)
        | Expr::IsBool(a, _, _)
        | Expr::Cast(a, _, _) => sides(a, split),
        Expr::Case(bs, e) => bs.iter().fold(sides(e, split), |m, (c, r)| {
            m | sides(c, split) | sides(r, split)
        }),
        Expr::In(a, xs, _) => xs.iter().fold(sides(a, split), |m, x| m | sides(x, split)),
        Expr::Call(_, xs) => xs.iter().fold(0, |m, x| m | sides(x, split)),
    }
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
fn conjuncts(e: Expr, out: &mut Vec<Expr>) {
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

fn table_of<'a>(
    rel: &ast::TableFactor,
    catalog: &'a Catalog,
    sink: &TableDef,
    sink_span: Span,
) -> Result<(&'a TableDef, String), SqlError> {
    match rel {
        ast::TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } if name.0.len() == 1 => {
            let id = name.0[0]
                .as_ident()
                .ok_or_else(|| SqlError::span(name.span(), "expected a table name"))?;
            let t = source_table(catalog, id, sink, sink_span)?;
            Ok((
                t,
                alias
                    .as_ref()
                    .map_or(t.name.clone(), |a| a.name.value.clone()),
            ))
        }
        other => Err(SqlError::span(
            other.span(),
            format!("joining '{other}' is not supported yet; join two tables by name"),
        )),
    }
}

/// Plans the join of `from`'s two tables; the stages after it read `Value::List` rows.
pub(super) fn plan_join<'a>(
    mut builder: PipelineBuilder,
    from: &ast::TableWithJoins,
    select: &ast::Select,
    catalog: &'a Catalog,
    sink: &TableDef,
    sink_span: Span,
    options: &BTreeMap<String, String>,
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
    let (left, lq) = table_of(&from.relation, catalog, sink, sink_span)?;
    let (right, rq) = table_of(&j.relation, catalog, sink, sink_span)?;
    if lq == rq {
        return Err(SqlError::span(
            j.relation.span(),
            format!("both sides of the join are called '{lq}'; give them different aliases"),
        ));
    }
    let split = left.columns.len();
    let mut scope = left.scope(&lq);
    let mut rs = right.scope(&rq);
    for c in &mut rs.cols {
        c.index += split;
    }
    scope.cols.extend(rs.cols);
    let width = scope.cols.len();
    let scope = Scope { cols: scope.cols };

    // Key pairs from ON; everything else is a condition.
    let mut conds = Vec::new();
    conjuncts(Compiler::plain(&scope).condition(on)?, &mut conds);
    let (mut lkeys, mut rkeys, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    for c in conds {
        match c {
            Expr::Cmp(Cmp::Eq, a, b) if sides(&a, split) == 1 && sides(&b, split) == 2 => {
                lkeys.push(*a);
                rkeys.push(shift(*b, split));
            }
            Expr::Cmp(Cmp::Eq, a, b) if sides(&a, split) == 2 && sides(&b, split) == 1 => {
                lkeys.push(*b);
                rkeys.push(shift(*a, split));
            }
            other => rest.push(other),
        }
    }
    if lkeys.is_empty() {
        return Err(SqlError::span(
            on.span(),
            "a join needs an equality between columns of the two tables in ON (e.g. ON a.id = b.a_id)",
        ));
    }
    if let Some(w) = &select.selection {
        conjuncts(Compiler::plain(&scope).condition(w)?, &mut rest);
    }
    // Push single-table conditions below the join.
    let (mut lf, mut rf, mut post) = (Vec::new(), Vec::new(), Vec::new());
    for c in rest {
        match sides(&c, split) {
            1 => lf.push(c),
            2 => rf.push(shift(c, split)),
            _ => post.push(c),
        }
    }
    let ttl = match options.get("table.exec.state.ttl") {
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
    if bounded(left) != bounded(right) {
        return Err(SqlError::span(
            j.relation.span(),
            "both tables of a join must have the same 'scan.bounded.mode'",
        ));
    }
    let delay = [left, right]
        .iter()
        .filter_map(|t| t.watermark.as_ref().map(|w| w.delay_ms))
        .max()
        .unwrap_or(0);
    builder = builder
        .watermark_delay(Duration::from_millis(delay as u64))
        .source(input_of(left))
        .source(input_of(right));
    if bounded(left) {
        builder = builder.bounded();
    }
    let side = |t: &TableDef, filter: Vec<Expr>, keys: Vec<Expr>| -> Result<JoinSide, SqlError> {
        Ok(JoinSide {
            decoder: decoder_for(t)?,
            filter: and_all(filter),
            keys,
        })
    };
    builder = builder.op(SqlJoin::new(
        side(left, lf, lkeys)?,
        side(right, rf, rkeys)?,
        ttl,
    ));
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
            sources: vec![left.topic().to_string(), right.topic().to_string()],
            window: None,
        },
    ))
}
