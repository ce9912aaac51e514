//! Where a query's rows go: onto the sink's columns (types checked, the record key chosen),
//! or on to an outer query as rows.

use std::sync::Arc;

use sqlparser::ast::{self as ast, Spanned};
use sqlparser::tokenizer::Span;

use super::ddl::{key_fields, TableDef};
use super::error::SqlError;
use super::expr::{coerce, Expr, Typed};
use super::ops::OutCol;
use super::planner::{Cols, Target};
use super::types::SqlType;

/// The last stage's outputs for a target.
pub(super) struct Outputs {
    pub(super) outputs: Vec<OutCol>,
    pub(super) key: Vec<usize>,
    /// Names and types (for a Row target).
    pub(super) cols: Cols,
    /// Where window_start and window_end are among the outputs (for a Row target).
    pub(super) window: Option<(usize, usize)>,
    /// Where window_end is among the outputs, selected with or without window_start.
    pub(super) window_end: Option<usize>,
    pub(super) to_sink: bool,
}

/// Maps the SELECT list onto the target.
pub(super) fn outputs_for(
    items: Vec<(String, Typed, Span)>,
    target: &Target<'_>,
    sink: &TableDef,
    group_refs: Option<Vec<usize>>,
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
                window_end: None,
                to_sink: true,
            })
        }
        Target::Query(updating) => {
            // The query's own columns, encoded as a sink would; an updating result gets its
            // group (or deduplication) keys as hidden outputs forming the record key, so the
            // client can tell which earlier row a change replaces.
            updating.set(group_refs.is_some());
            let cols = items
                .iter()
                .map(|(n, t, _)| (n.clone(), t.ty.clone()))
                .collect();
            let mut outputs: Vec<OutCol> = items
                .into_iter()
                .map(|(n, t, _)| OutCol {
                    name: Arc::from(n.as_str()),
                    encode: Some(t.ty.clone()),
                    expr: t.e,
                    in_value: true,
                })
                .collect();
            let mut key = Vec::new();
            for r in group_refs.unwrap_or_default() {
                key.push(outputs.len());
                outputs.push(OutCol {
                    name: Arc::from(format!("k{r}")),
                    expr: Expr::Col(r),
                    encode: None,
                    in_value: false,
                });
            }
            Ok(Outputs {
                outputs,
                key,
                cols,
                window: None,
                window_end: None,
                to_sink: true,
            })
        }
        Target::Row => {
            let at = |i: usize| items.iter().position(|(_, t, _)| t.e == Expr::Col(i));
            let window = window_in.and_then(|(s, e)| Some((at(s)?, at(e)?)));
            let window_end = window_in.and_then(|(_, e)| at(e));
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
                window_end,
                to_sink: false,
            })
        }
    }
}

/// Sink columns the query fills, in query order: (position in the sink's physical columns).
pub(super) fn sink_targets(ins: &ast::Insert, sink: &TableDef) -> Result<Vec<usize>, SqlError> {
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
    group_refs: Option<Vec<usize>>,
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
        if let Some(refs) = group_refs {
            // An updating result is upserted: key it by the columns holding its key (the
            // group keys, or a deduplication's partition keys).
            let is_ref = |e: &Expr| matches!(e, Expr::Col(i) if refs.contains(i));
            key = exprs
                .iter()
                .enumerate()
                .filter(|(_, e)| match e {
                    Some(Expr::Cast(inner, ..)) => is_ref(inner),
                    Some(e) => is_ref(e),
                    None => false,
                })
                .map(|(i, _)| i)
                .collect();
            if key.is_empty() && !refs.is_empty() {
                return Err(SqlError::new(format!(
                    "the result is an updating table, upserted by key; select its key columns (the GROUP BY or PARTITION BY columns) or declare PRIMARY KEY (...) NOT ENFORCED on '{}'",
                    sink.name
                )));
            }
        }
    }
    Ok((outputs, key))
}
