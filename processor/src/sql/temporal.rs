//! Event-time temporal joins (Flink's `JOIN versioned FOR SYSTEM_TIME AS OF probe.ts AS v
//! ON probe.k = v.pk`): each probe row is joined with the version of the versioned table
//! (a compacted or upsert-kafka topic with a primary key and a watermark) valid at the probe
//! row's event time, and emitted once the watermark passes that time, so the result does not
//! depend on which topic happened to be read first. `LEFT JOIN` keeps probe rows without a
//! version (NULLs). The output is append-only.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sqlparser::ast::{self as ast, Spanned};
use sqlparser::tokenizer::Span;

use crate::error::ProcessorError;
use crate::event::{Collector, Event};
use crate::operator::Operator;
use crate::plan::PipelineBuilder;
use crate::value::Value;

use super::ddl::TableDef;
use super::error::SqlError;
use super::eval::eval;
use super::expr::{Cmp, Compiler, Expr};
use super::lex::Temporal;
use super::ops::{Decoder, StageInput};
use super::planner::{decoder_for, input_of, Ctx, Prepared};

/// Versions of one key: (valid from, row).
type Versions = Vec<(i64, Vec<Value>)>;

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    versions: BTreeMap<String, Versions>,
    /// Probe rows waiting for the watermark: ((event time, arrival), row).
    pending: Vec<((i64, u64), Vec<Value>)>,
    seq: u64,
    watermark: Option<i64>,
}

/// The operator: input 0 probes, input 1 is the versioned table; emits `left ++ right` rows.
pub(crate) struct TemporalJoin {
    probe: Decoder,
    probe_keys: Vec<Expr>,
    table: Decoder,
    table_keys: Vec<Expr>,
    table_width: usize,
    outer: bool,
    versions: BTreeMap<String, Versions>,
    pending: BTreeMap<(i64, u64), Vec<Value>>,
    seq: u64,
    watermark: Option<i64>,
}

impl fmt::Debug for TemporalJoin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemporalJoin")
            .field("outer", &self.outer)
            .finish()
    }
}

fn key_json(keys: &[Expr], row: &[Value]) -> Option<String> {
    let k: Vec<Value> = keys.iter().map(|e| eval(e, row)).collect();
    if k.iter().any(Value::is_null) {
        return None;
    }
    Some(String::from_utf8_lossy(&Value::List(k).to_json()).into_owned())
}

impl TemporalJoin {
    fn join(&self, ts: i64, row: Vec<Value>, out: &mut Collector) {
        let version = key_json(&self.probe_keys, &row).and_then(|k| {
            let vs = self.versions.get(&k)?;
            let at = vs.partition_point(|(t, _)| *t <= ts);
            vs.get(at.checked_sub(1)?).map(|(_, r)| r.clone())
        });
        let right = match (version, self.outer) {
            (Some(r), _) => r,
            (None, true) => vec![Value::Null; self.table_width],
            (None, false) => return,
        };
        let joined: Vec<Value> = row.into_iter().chain(right).collect();
        out.emit(Event::new(Value::List(joined), ts));
    }
}

impl Operator for TemporalJoin {
    fn name(&self) -> &str {
        "sql_temporal_join"
    }

    fn process(&mut self, event: Event, out: &mut Collector) {
        if event.input == 1 {
            let Some(row) = self.table.decode(&event.value) else {
                return; // tombstones and rows that do not fit: no version
            };
            if let Some(k) = key_json(&self.table_keys, &row) {
                let vs = self.versions.entry(k).or_default();
                let at = vs.partition_point(|(t, _)| *t <= event.timestamp);
                vs.insert(at, (event.timestamp, row));
            }
            return;
        }
        let Some(row) = self.probe.decode(&event.value) else {
            tracing::warn!("skipping a record whose JSON does not match the table's columns");
            return;
        };
        if self.watermark.is_some_and(|wm| event.timestamp <= wm) {
            return self.join(event.timestamp, row, out);
        }
        self.seq += 1;
        self.pending.insert((event.timestamp, self.seq), row);
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Collector) {
        if self.watermark.is_some_and(|w| w >= watermark) {
            return;
        }
        self.watermark = Some(watermark);
        while let Some(entry) = self.pending.first_entry() {
            let ts = entry.key().0;
            if ts > watermark {
                break;
            }
            let row = entry.remove();
            self.join(ts, row, out);
        }
        // Versions superseded before the watermark cannot be looked up any more (except by
        // late rows): keep the last one at or before it.
        for vs in self.versions.values_mut() {
            let at = vs.partition_point(|(t, _)| *t <= watermark);
            if at > 1 {
                vs.drain(..at - 1);
            }
        }
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>, ProcessorError> {
        let s = State {
            versions: self.versions.clone(),
            pending: self.pending.iter().map(|(k, v)| (*k, v.clone())).collect(),
            seq: self.seq,
            watermark: self.watermark,
        };
        serde_json::to_vec(&s)
            .map(Some)
            .map_err(|e| ProcessorError::State {
                operator: "sql_temporal_join".into(),
                reason: e.to_string(),
            })
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), ProcessorError> {
        let s: State = serde_json::from_slice(state).map_err(|e| ProcessorError::State {
            operator: "sql_temporal_join".into(),
            reason: e.to_string(),
        })?;
        self.versions = s.versions;
        self.pending = s.pending.into_iter().collect();
        self.seq = s.seq;
        self.watermark = s.watermark;
        Ok(())
    }
}

fn table_named<'a>(
    rel: &ast::TableFactor,
    ctx: &Ctx<'a>,
) -> Result<(&'a TableDef, String, Span), SqlError> {
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
            let t = ctx.catalog.table(&id.value).ok_or_else(|| {
                SqlError::span(
                    id.span,
                    format!(
                        "table '{}' does not exist; known tables: {}",
                        id.value,
                        ctx.catalog.names()
                    ),
                )
            })?;
            if t.topic() == ctx.sink.topic() {
                return Err(SqlError::span(
                    ctx.sink_span,
                    format!(
                        "table '{}' reads topic '{}', which the INSERT also writes",
                        t.name,
                        t.topic()
                    ),
                ));
            }
            Ok((
                t,
                alias
                    .as_ref()
                    .map_or(t.name.clone(), |a| a.name.value.clone()),
                id.span,
            ))
        }
        other => Err(SqlError::span(
            other.span(),
            "a temporal join joins two tables by name",
        )),
    }
}

/// Plans `left [LEFT] JOIN right FOR SYSTEM_TIME AS OF left.ts ON ...`.
#[allow(clippy::too_many_arguments)]
pub(super) fn plan_temporal<'a>(
    mut builder: PipelineBuilder,
    left: &ast::TableFactor,
    right: &ast::TableFactor,
    on: &ast::Expr,
    outer: bool,
    select: &ast::Select,
    ctx: &Ctx<'a>,
    temporal: &Temporal,
) -> Result<(PipelineBuilder, Prepared<'a>), SqlError> {
    let (probe, pq, _) = table_named(left, ctx)?;
    let (versioned, vq, vspan) = table_named(right, ctx)?;
    if probe.is_upsert() {
        return Err(SqlError::span(left.span(), format!("the probe side '{}' of a temporal join must be an append-only table, not upsert-kafka", probe.name)));
    }
    // The AS OF column must be the probe table's time attribute.
    let time_ok = match temporal.time.as_slice() {
        [c] => Some(c),
        [q, c] if *q == pq => Some(c),
        _ => None,
    }
    .zip(probe.watermark.as_ref())
    .is_some_and(|(c, w)| *c == w.column);
    if !time_ok {
        return Err(SqlError::at(
            temporal.at,
            format!("FOR SYSTEM_TIME AS OF {}: only the event-time attribute of '{pq}' (its WATERMARK column) is supported", temporal.time.join(".")),
        ));
    }
    if versioned.primary_key.is_empty() || versioned.watermark.is_none() {
        return Err(SqlError::span(
            vspan,
            format!("'{}' is joined FOR SYSTEM_TIME AS OF, so it must be a versioned table: declare PRIMARY KEY (...) NOT ENFORCED and a WATERMARK", versioned.name),
        ));
    }
    if probe.topic() == versioned.topic() {
        return Err(SqlError::span(
            vspan,
            format!(
                "joining topic '{}' with itself is not supported yet",
                probe.topic()
            ),
        ));
    }
    if pq == vq {
        return Err(SqlError::span(
            vspan,
            format!("both sides of the join are called '{pq}'; give them different aliases"),
        ));
    }
    let split = probe.columns.len();
    let mut scope = probe.scope(&pq);
    let mut rs = versioned.scope(&vq);
    for c in &mut rs.cols {
        c.index += split;
    }
    scope.cols.extend(rs.cols);
    let width = scope.cols.len();
    // ON: probe column = primary key column, for every key column; nothing else.
    let mut conds = Vec::new();
    super::join_plan::conjuncts(Compiler::plain(&scope).condition(on)?, &mut conds);
    let mut pairs: Vec<(usize, Expr)> = Vec::new();
    for c in conds {
        let pair = match c {
            Expr::Cmp(Cmp::Eq, a, b) => match (*a, *b) {
                (Expr::Col(i), other) | (other, Expr::Col(i))
                    if i >= split && super::join_plan::tables_read(&other, split) == 1 =>
                {
                    Some((i - split, other))
                }
                _ => None,
            },
            _ => None,
        };
        match pair {
            Some(p) => pairs.push(p),
            None => return Err(SqlError::span(on.span(), "a temporal join's ON must equate the versioned table's PRIMARY KEY columns with the probe row (other conditions belong in WHERE)")),
        }
    }
    let mut probe_keys = Vec::new();
    let mut table_keys = Vec::new();
    for k in &versioned.primary_key {
        // Checked at CREATE TABLE, but a catalog can also come from a file.
        let Some(i) = versioned.columns.iter().position(|c| &c.name == k) else {
            return Err(SqlError::span(
                vspan,
                format!(
                    "PRIMARY KEY column '{k}' is not a column of '{}'",
                    versioned.name
                ),
            ));
        };
        let Some((_, e)) = pairs.iter().find(|(j, _)| *j == i) else {
            return Err(SqlError::span(on.span(), format!("a temporal join's ON must equate every PRIMARY KEY column of '{}'; '{k}' is missing", versioned.name)));
        };
        probe_keys.push(e.clone());
        table_keys.push(Expr::Col(i));
    }
    let filter = select
        .selection
        .as_ref()
        .map(|w| Compiler::plain(&scope).condition(w))
        .transpose()?;
    let delay = [probe, versioned]
        .iter()
        .filter_map(|t| t.watermark.as_ref().map(|w| w.delay_ms))
        .max()
        .unwrap_or(0);
    builder = builder
        .watermark_delay(std::time::Duration::from_millis(delay as u64))
        .source(input_of(probe))
        .source(input_of(versioned));
    if super::planner::bounded(probe) != super::planner::bounded(versioned) {
        return Err(SqlError::span(
            vspan,
            "both tables of a join must have the same 'scan.bounded.mode'",
        ));
    }
    if super::planner::bounded(probe) {
        builder = builder.bounded();
    }
    builder = builder.op(TemporalJoin {
        probe: decoder_for(probe)?,
        probe_keys,
        table: decoder_for(versioned)?,
        table_keys,
        table_width: versioned.columns.len(),
        outer,
        versions: BTreeMap::new(),
        pending: BTreeMap::new(),
        seq: 0,
        watermark: None,
    });
    Ok((
        builder,
        Prepared {
            scope,
            input: StageInput::Row,
            filter,
            dead_letter: None,
            tvf: None,
            table: None,
            width,
            sources: vec![probe.topic().to_string(), versioned.topic().to_string()],
            window: None,
            upsert_key: None,
            updating: false,
        },
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::sql::types::SqlType;

    fn decoder(second: &str) -> Decoder {
        Decoder {
            fields: vec![
                (0, Arc::from("k"), SqlType::String),
                (1, Arc::from(second), SqlType::BigInt),
            ],
            width: 2,
            computed: Vec::new(),
            lenient: false,
            require_all: false,
        }
    }

    fn op() -> TemporalJoin {
        TemporalJoin {
            probe: decoder("n"),
            probe_keys: vec![Expr::Col(0)],
            table: decoder("v"),
            table_keys: vec![Expr::Col(0)],
            table_width: 2,
            outer: true,
            versions: BTreeMap::new(),
            pending: BTreeMap::new(),
            seq: 0,
            watermark: None,
        }
    }

    fn ev(input: usize, json: &str, ts: i64) -> Event {
        Event::new(Value::from_json(json.as_bytes()).expect("json"), ts).from_input(input)
    }

    #[test]
    fn probes_see_the_version_of_their_time_across_a_restore() {
        let mut a = op();
        let mut out = Collector::default();
        a.process(ev(1, r#"{"k":"x","v":1}"#, 10), &mut out);
        a.process(ev(0, r#"{"k":"x","n":100}"#, 15), &mut out);
        a.process(ev(0, r#"{"k":"x","n":101}"#, 5), &mut out);
        a.process(ev(1, r#"{"k":"x","v":2}"#, 20), &mut out);
        a.process(ev(0, r#"{"k":"x","n":102}"#, 25), &mut out);
        assert!(out.take().is_empty(), "probes wait for the watermark");
        let snap = a.snapshot().expect("snapshot").expect("stateful");
        let mut b = op();
        b.restore(&snap).expect("restore");
        let mut got = Vec::new();
        for j in [&mut a, &mut b] {
            j.on_watermark(30, &mut out);
            got.push(out.take().into_iter().map(|e| e.value).collect::<Vec<_>>());
        }
        assert_eq!(got[0], got[1]);
        let row = |n: i64, v: Value| {
            Value::List(vec![
                Value::str("x"),
                Value::Int(n),
                if v.is_null() {
                    Value::Null
                } else {
                    Value::str("x")
                },
                v,
            ])
        };
        assert_eq!(
            got[0],
            vec![
                row(101, Value::Null),
                row(100, Value::Int(1)),
                row(102, Value::Int(2))
            ]
        );
    }
}
