//! OVER aggregations (`SUM(price) OVER (PARTITION BY auction ORDER BY ts ROWS BETWEEN 10
//! PRECEDING AND CURRENT ROW)`, `RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND CURRENT ROW`,
//! or unbounded): as in Flink, ordered by the event-time attribute, each row is emitted once
//! the watermark passes its time, with the aggregates over its frame; rows that arrive behind
//! the watermark are late and dropped. RANGE frames include the row's peers (same time).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlparser::ast::{self as ast, Spanned};

use crate::aggregate::Aggregate;
use crate::error::ProcessorError;
use crate::event::{Collector, Event};
use crate::operator::Operator;
use crate::plan::PipelineBuilder;
use crate::value::Value;

use super::agg::AggKind;
use super::error::SqlError;
use super::expr::{func_name, interval_ms, Compiler, Expr, Scope, Typed};
use super::ops::{OutCol, Stage, StageInput, StageSpec};
use super::planner::{
    iso, outputs_for, plain_decimals, select_items_with, Ctx, Prepared, RowsOut, Target,
};
use super::types::SqlType;

/// The frame of an OVER window, ending at the current row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frame {
    /// All earlier rows of the partition.
    Unbounded,
    /// The `n` preceding rows.
    Rows(usize),
    /// Rows at most this many milliseconds older (and the row's peers).
    Range(i64),
}

/// Per partition: the rows the frame may still need, `(time, aggregate inputs)`, and for an
/// unbounded frame the running accumulators.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Part {
    history: Vec<(i64, Vec<Value>)>,
    accs: Vec<Value>,
}

/// A row waiting for the watermark: (partition JSON, row), under (time, arrival).
type Waiting = (String, Vec<Value>);

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    pending: Vec<((i64, u64), Waiting)>,
    parts: BTreeMap<String, Part>,
    seq: u64,
    watermark: Option<i64>,
    late: u64,
}

/// The operator. Input rows are `row (width w) ++ partition keys (p) ++ aggregate inputs`;
/// output rows are `row ++ aggregate results`.
pub(crate) struct OverAggregate {
    width: usize,
    partition: usize,
    frame: Frame,
    aggs: Vec<Arc<dyn Aggregate>>,
    pending: BTreeMap<(i64, u64), Waiting>,
    parts: BTreeMap<String, Part>,
    seq: u64,
    watermark: Option<i64>,
    late: u64,
}

impl fmt::Debug for OverAggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OverAggregate")
            .field("frame", &self.frame)
            .finish()
    }
}

/// The aggregates over the rows of a frame.
fn frame_results(aggs: &[Arc<dyn Aggregate>], frame_rows: &[&Vec<Value>]) -> Vec<Value> {
    aggs.iter()
        .enumerate()
        .map(|(j, a)| {
            let mut acc = a.init();
            for r in frame_rows {
                a.add(&mut acc, r.get(j).unwrap_or(&Value::Null));
            }
            a.finish(&acc)
        })
        .collect()
}

impl OverAggregate {
    /// Emits the rows of one partition that share time `ts`, in arrival order.
    fn emit_peers(&mut self, ts: i64, pkey: &str, rows: Vec<Vec<Value>>, out: &mut Collector) {
        let inputs_at = self.width + self.partition;
        let frame = self.frame;
        let aggs = self.aggs.clone();
        let part = self.parts.entry(pkey.to_string()).or_insert_with(|| Part {
            history: Vec::new(),
            accs: aggs.iter().map(|a| a.init()).collect(),
        });
        let inputs: Vec<Vec<Value>> = rows
            .iter()
            .map(|r| r.get(inputs_at..).unwrap_or(&[]).to_vec())
            .collect();
        let mut results: Vec<Vec<Value>> = Vec::new();
        match frame {
            Frame::Unbounded => {
                // RANGE UNBOUNDED (Flink's default): peers see each other.
                for inp in &inputs {
                    for (j, a) in aggs.iter().enumerate() {
                        a.add(&mut part.accs[j], inp.get(j).unwrap_or(&Value::Null));
                    }
                }
                let r: Vec<Value> = aggs
                    .iter()
                    .enumerate()
                    .map(|(j, a)| a.finish(&part.accs[j]))
                    .collect();
                results = vec![r; rows.len()];
            }
            Frame::Range(ms) => {
                part.history.retain(|(t, _)| *t >= ts.saturating_sub(ms));
                part.history.extend(inputs.iter().map(|i| (ts, i.clone())));
                let frame_rows: Vec<&Vec<Value>> = part.history.iter().map(|(_, r)| r).collect();
                let r = frame_results(&aggs, &frame_rows);
                results = vec![r; rows.len()];
            }
            Frame::Rows(n) => {
                for inp in inputs {
                    let part = self.parts.get_mut(pkey).expect("inserted above");
                    part.history.push((ts, inp));
                    let excess = part.history.len().saturating_sub(n + 1);
                    part.history.drain(..excess);
                    let frame_rows: Vec<&Vec<Value>> =
                        part.history.iter().map(|(_, r)| r).collect();
                    let r = frame_results(&aggs, &frame_rows);
                    results.push(r);
                }
            }
        }
        for (row, res) in rows.into_iter().zip(results) {
            let mut o: Vec<Value> = row.into_iter().take(self.width).collect();
            o.extend(res);
            out.emit(Event::new(Value::List(o), ts));
        }
    }
}

impl Operator for OverAggregate {
    fn name(&self) -> &str {
        "sql_over_aggregate"
    }

    fn process(&mut self, event: Event, _out: &mut Collector) {
        let Value::List(row) = event.value else {
            return;
        };
        if self.watermark.is_some_and(|wm| event.timestamp <= wm) {
            self.late += 1;
            return;
        }
        let part = row
            .get(self.width..self.width + self.partition)
            .unwrap_or(&[])
            .to_vec();
        let pkey = String::from_utf8_lossy(&Value::List(part).to_json()).into_owned();
        self.seq += 1;
        self.pending
            .insert((event.timestamp, self.seq), (pkey, row));
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Collector) {
        if self.watermark.is_some_and(|w| w >= watermark) {
            return;
        }
        self.watermark = Some(watermark);
        // Rows at or before the watermark, grouped by (time, partition) in arrival order.
        let mut ready: BTreeMap<(i64, String), Vec<Vec<Value>>> = BTreeMap::new();
        let mut order: Vec<(i64, String)> = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            let ts = entry.key().0;
            if ts > watermark {
                break;
            }
            let (pkey, row) = entry.remove();
            let k = (ts, pkey);
            if !ready.contains_key(&k) {
                order.push(k.clone());
            }
            ready.entry(k).or_default().push(row);
        }
        for k in order {
            if let Some(rows) = ready.remove(&k) {
                self.emit_peers(k.0, &k.1, rows, out);
            }
        }
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>, ProcessorError> {
        let s = State {
            pending: self.pending.iter().map(|(k, v)| (*k, v.clone())).collect(),
            parts: self.parts.clone(),
            seq: self.seq,
            watermark: self.watermark,
            late: self.late,
        };
        serde_json::to_vec(&s)
            .map(Some)
            .map_err(|e| ProcessorError::State {
                operator: "sql_over_aggregate".into(),
                reason: e.to_string(),
            })
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), ProcessorError> {
        let s: State = serde_json::from_slice(state).map_err(|e| ProcessorError::State {
            operator: "sql_over_aggregate".into(),
            reason: e.to_string(),
        })?;
        self.pending = s.pending.into_iter().collect();
        self.parts = s.parts;
        self.seq = s.seq;
        self.watermark = s.watermark;
        self.late = s.late;
        Ok(())
    }

    fn late_records(&self) -> u64 {
        self.late
    }
}

/// Does the SELECT list use an aggregate with OVER?
pub(super) fn has_over(select: &ast::Select) -> bool {
    select.projection.iter().any(|i| match i {
        ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
            uses_over(e)
        }
        _ => false,
    })
}

fn uses_over(e: &ast::Expr) -> bool {
    match e {
        ast::Expr::Function(f) => f.over.is_some(),
        ast::Expr::BinaryOp { left, right, .. } => uses_over(left) || uses_over(right),
        ast::Expr::Nested(x)
        | ast::Expr::UnaryOp { expr: x, .. }
        | ast::Expr::Cast { expr: x, .. } => uses_over(x),
        _ => false,
    }
}

/// The window spec, checked: partition expressions and the frame.
fn window_of<'s>(
    f: &'s ast::Function,
    scope: &Scope,
    rowtime: usize,
) -> Result<(&'s ast::WindowSpec, Frame), SqlError> {
    let span = f.span();
    let Some(ast::WindowType::WindowSpec(spec)) = &f.over else {
        return Err(SqlError::span(
            span,
            "named windows (OVER w) are not supported; write OVER (...)",
        ));
    };
    let order_ok = match spec.order_by.as_slice() {
        [o] => {
            let t = Compiler::plain(scope).compile(&o.expr)?;
            t.e == Expr::Col(rowtime) && !matches!(o.options.sort, Some(ast::OrderBySort::Desc))
        }
        _ => false,
    };
    if !order_ok {
        return Err(SqlError::span(span, "an OVER window must ORDER BY the table's event-time attribute (ascending), as in Flink"));
    }
    let frame = match &spec.window_frame {
        None => Frame::Unbounded,
        Some(w) => {
            if !matches!(w.end_bound, None | Some(ast::WindowFrameBound::CurrentRow)) {
                return Err(SqlError::span(
                    span,
                    "an OVER window must end at CURRENT ROW",
                ));
            }
            match (&w.units, &w.start_bound) {
                (_, ast::WindowFrameBound::Preceding(None)) => Frame::Unbounded,
                (ast::WindowFrameUnits::Rows, ast::WindowFrameBound::Preceding(Some(n))) => match &**n {
                    ast::Expr::Value(v) => match &v.value {
                        ast::Value::Number(t, _) => Frame::Rows(t.parse().map_err(|_| SqlError::span(span, format!("ROWS {t} PRECEDING needs a whole number")))?),
                        _ => return Err(SqlError::span(span, "ROWS n PRECEDING needs a number")),
                    },
                    _ => return Err(SqlError::span(span, "ROWS n PRECEDING needs a number")),
                },
                (ast::WindowFrameUnits::Range, ast::WindowFrameBound::Preceding(Some(i))) => match &**i {
                    ast::Expr::Interval(iv) => Frame::Range(interval_ms(iv, i.span())?),
                    _ => return Err(SqlError::span(span, "RANGE ... PRECEDING needs an INTERVAL, e.g. INTERVAL '1' HOUR")),
                },
                (_, ast::WindowFrameBound::CurrentRow) => Frame::Rows(0),
                _ => return Err(SqlError::span(span, "this OVER frame is not supported; use ROWS n PRECEDING, RANGE INTERVAL ... PRECEDING or UNBOUNDED PRECEDING")),
            }
        }
    };
    Ok((spec, frame))
}

/// Plans a SELECT with OVER aggregates over a single table with an event-time attribute.
pub(super) fn plan_over(
    mut builder: PipelineBuilder,
    select: &ast::Select,
    ctx: &Ctx<'_>,
    target: Target<'_>,
    prep: Prepared<'_>,
) -> Result<(PipelineBuilder, RowsOut), SqlError> {
    let span = select.select_token.0.span;
    let (Some(table), None) = (prep.table, &prep.tvf) else {
        return Err(SqlError::span(span, "OVER aggregations are supported over one table (not after joins, subqueries or window TVFs)"));
    };
    let Some(rowtime) = table
        .watermark
        .as_ref()
        .and_then(|w| table.columns.iter().position(|c| c.name == w.column))
    else {
        return Err(SqlError::span(
            span,
            format!(
                "OVER aggregations need an event-time attribute: declare a WATERMARK in '{}'",
                table.name
            ),
        ));
    };
    if !matches!(&select.group_by, ast::GroupByExpr::Expressions(v, _) if v.is_empty())
        || select.having.is_some()
    {
        return Err(SqlError::span(
            span,
            "OVER aggregations cannot be combined with GROUP BY or HAVING",
        ));
    }
    let scope = prep.scope;
    let width = prep.width;
    // Collect the OVER calls; all must share one window.
    let mut calls: Vec<(AggKind, Option<Typed>)> = Vec::new();
    let mut window: Option<(Vec<Expr>, Frame)> = None;
    let mut result_types: Vec<SqlType> = Vec::new();
    let mut hook = |x: &ast::Expr| -> Result<Option<Typed>, SqlError> {
        let ast::Expr::Function(f) = x else {
            return Ok(None);
        };
        if f.over.is_none() {
            return Ok(None);
        }
        let (spec, frame) = window_of(f, &scope, rowtime)?;
        let part: Vec<Expr> = spec
            .partition_by
            .iter()
            .map(|p| Compiler::plain(&scope).compile(p).map(|t| t.e))
            .collect::<Result<_, _>>()?;
        match &window {
            Some((p, fr)) if *p != part || *fr != frame => {
                return Err(SqlError::span(
                    f.span(),
                    "all OVER aggregates of a query must use the same window",
                ))
            }
            Some(_) => {}
            None => window = Some((part, frame)),
        }
        let mut plain = f.clone();
        plain.over = None;
        let call = super::grouping::aggregate_call(&plain, &scope)?;
        let ty = call
            .kind
            .result_type(call.arg.as_ref().map(|a| &a.ty))
            .map_err(|m| SqlError::span(f.span(), format!("{m}: '{x}'")))?;
        calls.push((call.kind, call.arg));
        result_types.push(ty.clone());
        Ok(Some(Typed::new(Expr::Col(width + calls.len() - 1), ty)))
    };
    if row_number(select) {
        return Err(SqlError::span(
            span,
            "ROW_NUMBER() OVER is supported only as window Top-N (filtered by rownum in an outer query)",
        ));
    }
    let items = select_items_with(
        select,
        &scope,
        &mut Compiler {
            scope: &scope,
            hook: Some(&mut hook),
        },
    )?;
    let Some((part, frame)) = window else {
        return Err(SqlError::span(
            span,
            "an OVER aggregate must be a SELECT item (optionally inside arithmetic or CAST)",
        ));
    };
    // Stage 1: decode, WHERE, then row ++ partition keys ++ aggregate inputs.
    let mut pre: Vec<OutCol> = (0..width)
        .map(|i| OutCol {
            name: format!("c{i}").into(),
            expr: Expr::Col(i),
            encode: None,
            in_value: true,
        })
        .collect();
    for (i, p) in part.iter().enumerate() {
        pre.push(OutCol {
            name: format!("p{i}").into(),
            expr: p.clone(),
            encode: None,
            in_value: true,
        });
    }
    for (j, (_, arg)) in calls.iter().enumerate() {
        let e = arg
            .as_ref()
            .map_or(Expr::Lit(Value::Bool(true)), |a| a.e.clone());
        pre.push(OutCol {
            name: format!("a{j}").into(),
            expr: e,
            encode: None,
            in_value: true,
        });
    }
    builder = builder.op(Stage::new(StageSpec {
        name: "sql_over_prepare",
        input: prep.input,
        filter: prep.filter,
        windows: None,
        outputs: pre,
        key: Vec::new(),
        skip_nulls: false,
        iso_timestamps: false,
        plain_decimals: false,
        dead_letter: prep.dead_letter,
        upsert: None,
        as_row: true,
        changelog_in: false,
        changelog_out: false,
    }));
    builder = builder.op(OverAggregate {
        width,
        partition: part.len(),
        frame,
        aggs: calls
            .iter()
            .map(|(k, a)| k.func(a.as_ref().map(|x| &x.ty)))
            .collect(),
        pending: BTreeMap::new(),
        parts: BTreeMap::new(),
        seq: 0,
        watermark: None,
        late: 0,
    });
    let sink = ctx.sink;
    let out = outputs_for(items, &target, sink, None, None).map_err(|e| e.or_at(span.start))?;
    builder = builder.op(Stage::new(StageSpec {
        name: "sql_over_project",
        input: StageInput::Row,
        filter: None,
        windows: None,
        outputs: out.outputs,
        key: out.key,
        skip_nulls: out.to_sink && sink.option("json.encode.ignore-null-fields") == Some("true"),
        iso_timestamps: out.to_sink && iso(sink),
        plain_decimals: out.to_sink && plain_decimals(sink),
        dead_letter: None,
        upsert: None,
        as_row: !out.to_sink,
        changelog_in: false,
        changelog_out: false,
    }));
    Ok((
        builder,
        RowsOut {
            cols: out.cols,
            window: out.window,
            time: None,
            sources: prep.sources,
            updating: false,
        },
    ))
}

/// ROW_NUMBER() OVER outside the Top-N pattern.
fn row_number(select: &ast::Select) -> bool {
    select.projection.iter().any(|i| match i {
        ast::SelectItem::UnnamedExpr(ast::Expr::Function(f))
        | ast::SelectItem::ExprWithAlias {
            expr: ast::Expr::Function(f),
            ..
        } => func_name(f) == "ROW_NUMBER",
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Count;

    fn op(frame: Frame) -> OverAggregate {
        // Rows: [value] ++ [partition] ++ [aggregate input]; one COUNT.
        OverAggregate {
            width: 1,
            partition: 1,
            frame,
            aggs: vec![Arc::new(Count)],
            pending: BTreeMap::new(),
            parts: BTreeMap::new(),
            seq: 0,
            watermark: None,
            late: 0,
        }
    }

    fn ev(v: i64, ts: i64) -> Event {
        Event::new(
            Value::List(vec![Value::Int(v), Value::str("p"), Value::Bool(true)]),
            ts,
        )
    }

    fn counts(out: &mut Collector) -> Vec<(i64, i64)> {
        out.take()
            .into_iter()
            .map(|e| match e.value {
                Value::List(r) => (r[0].as_i64().unwrap_or(-1), r[1].as_i64().unwrap_or(-1)),
                _ => (-1, -1),
            })
            .collect()
    }

    #[test]
    fn frames_count_the_right_rows_across_a_restore() {
        for (frame, want) in [
            (Frame::Rows(1), vec![(1, 1), (2, 2), (3, 2), (4, 2)]),
            (Frame::Range(10), vec![(1, 1), (2, 2), (3, 3), (4, 2)]),
            (Frame::Unbounded, vec![(1, 1), (2, 2), (3, 3), (4, 4)]),
        ] {
            let mut a = op(frame);
            let mut out = Collector::default();
            a.process(ev(1, 0), &mut out);
            a.process(ev(2, 5), &mut out);
            a.on_watermark(5, &mut out);
            let mut got = counts(&mut out);
            let snap = a.snapshot().expect("snapshot").expect("stateful");
            let mut b = op(frame);
            b.restore(&snap).expect("restore");
            b.process(ev(3, 10), &mut out);
            b.process(ev(4, 20), &mut out);
            b.process(ev(0, 4), &mut out); // behind the watermark: late
            b.on_watermark(30, &mut out);
            got.extend(counts(&mut out));
            assert_eq!(got, want, "{frame:?}");
            assert_eq!(b.late_records(), 1);
        }
    }
}
