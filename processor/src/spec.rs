//! Pipelines as data: a JSON definition the broker persists and restarts, compiled onto the
//! same operators as the Rust API. (The SQL front end compiles to plans directly.)
//!
//! ```json
//! {
//!   "name": "big-spenders",
//!   "inputs": [{"topic": "orders", "event_time": "ts"}],
//!   "watermark_delay_ms": 2000,
//!   "idle_timeout_ms": 10000,
//!   "steps": [
//!     {"filter": {"field": "amount", "op": ">=", "value": 100}},
//!     {"window": {"tumbling_ms": 60000, "group_by": ["customer"],
//!                 "aggregates": [{"fn": "count", "as": "orders"},
//!                                {"fn": "sum", "field": "amount", "as": "total"}]}}
//!   ],
//!   "output": "spend-per-minute"
//! }
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::aggregate::AggSpec;
use crate::error::ProcessorError;
use crate::join::{JoinType, TableJoinSpec, WindowJoinSpec};
use crate::plan::{Input, Pipeline, PipelineBuilder};
use crate::value::Value;
use crate::window::{LatePolicy, WindowKind, WindowSpec};

/// A pipeline definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    pub name: String,
    pub inputs: Vec<InputSpec>,
    #[serde(default)]
    pub watermark_delay_ms: u64,
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
    #[serde(default)]
    pub checkpoint_interval_ms: Option<u64>,
    #[serde(default)]
    pub steps: Vec<Step>,
    pub output: String,
    /// Process what the inputs hold at start, fire every window, commit and finish.
    #[serde(default)]
    pub bounded: bool,
}

/// One input topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub topic: String,
    /// Value field holding the event time; absent: the record timestamp.
    #[serde(default)]
    pub event_time: Option<String>,
    /// `earliest` (default), `latest`, or `timestamp:MILLIS` (the first record whose
    /// timestamp is at or after MILLIS, epoch milliseconds).
    #[serde(default)]
    pub start: Option<String>,
}

/// One operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Keep events whose field compares true.
    Filter(Condition),
    /// Keep only these fields (dotted paths; output uses the last segment).
    Project(Vec<String>),
    /// Key the output by these fields.
    KeyBy(Vec<String>),
    /// Aggregate over windows.
    Window(WindowStep),
    /// Join two inputs within windows.
    WindowJoin(WindowJoinStep),
    /// Enrich a stream with a table input's latest value per key.
    TableJoin(TableJoinStep),
}

/// A window join of input `left_input` (default 0) with `right_input` (default 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowJoinStep {
    #[serde(default)]
    pub tumbling_ms: Option<i64>,
    #[serde(default)]
    pub hopping: Option<Hopping>,
    #[serde(default)]
    pub left_input: Option<usize>,
    #[serde(default)]
    pub right_input: Option<usize>,
    pub left_key: Vec<String>,
    pub right_key: Vec<String>,
    /// Left outer join (default inner).
    #[serde(default)]
    pub outer: bool,
}

/// A stream-table join.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableJoinStep {
    /// Input index of the stream side (default 0).
    #[serde(default)]
    pub stream_input: Option<usize>,
    pub table_input: usize,
    /// Table key fields; absent: the record key.
    #[serde(default)]
    pub table_key: Vec<String>,
    pub stream_key: Vec<String>,
    #[serde(rename = "as")]
    pub output: String,
    #[serde(default)]
    pub outer: bool,
}

/// `field op value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub field: String,
    /// One of `=`, `!=`, `<`, `<=`, `>`, `>=`.
    pub op: String,
    pub value: serde_json::Value,
}

/// A windowed aggregation; exactly one of the window fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowStep {
    #[serde(default)]
    pub tumbling_ms: Option<i64>,
    #[serde(default)]
    pub hopping: Option<Hopping>,
    #[serde(default)]
    pub session_gap_ms: Option<i64>,
    /// A running aggregate without windows.
    #[serde(default)]
    pub global: bool,
    #[serde(default)]
    pub group_by: Vec<String>,
    pub aggregates: Vec<AggregateStep>,
    #[serde(default)]
    pub allowed_lateness_ms: i64,
    /// Topic for late events (default: count and drop).
    #[serde(default)]
    pub late_topic: Option<String>,
}

/// Hopping window sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hopping {
    pub size_ms: i64,
    pub slide_ms: i64,
}

/// `fn(field) AS as`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateStep {
    #[serde(rename = "fn")]
    pub func: String,
    #[serde(default)]
    pub field: Option<String>,
    #[serde(rename = "as")]
    pub output: String,
}

impl PipelineSpec {
    /// Parses JSON; errors name the problem and its line and column.
    pub fn from_json(bytes: &[u8]) -> Result<PipelineSpec, ProcessorError> {
        serde_json::from_slice(bytes).map_err(|e| ProcessorError::InvalidPlan(e.to_string()))
    }

    /// Compiles onto the engine's operators, checking everything up front.
    pub fn compile(&self) -> Result<Pipeline, ProcessorError> {
        let bad = |m: String| Err(ProcessorError::InvalidPlan(m));
        let mut b = PipelineBuilder::new(&self.name)
            .watermark_delay(Duration::from_millis(self.watermark_delay_ms));
        if let Some(ms) = self.idle_timeout_ms {
            b = b.idle_timeout(Duration::from_millis(ms));
        }
        if let Some(ms) = self.checkpoint_interval_ms {
            b = b.checkpoint_interval(Duration::from_millis(ms));
        }
        let fields = self.fields_read();
        for i in &self.inputs {
            let mut input = Input::topic(&i.topic);
            if let Some(f) = &fields {
                input = input.fields(f);
            }
            if let Some(f) = &i.event_time {
                input = input.event_time_field(f);
            }
            match i.start.as_deref() {
                None | Some("earliest") => {}
                Some("latest") => input = input.from_latest(),
                Some(other) => match other
                    .strip_prefix("timestamp:")
                    .and_then(|m| m.parse::<i64>().ok())
                {
                    Some(ms) if ms >= 0 => input = input.from_timestamp(ms),
                    _ => {
                        return bad(format!(
                            "input '{}': start '{other}' is not 'earliest', 'latest' or \
                             'timestamp:MILLIS'",
                            i.topic
                        ))
                    }
                },
            }
            b = b.source(input);
        }
        for (n, step) in self.steps.iter().enumerate() {
            let at = |m: String| ProcessorError::InvalidPlan(format!("step {}: {m}", n + 1));
            b = match step {
                Step::Filter(c) => {
                    let want = compare_op(&c.op)
                        .ok_or_else(|| at(format!("unknown comparison '{}'", c.op)))?;
                    let field = c.field.clone();
                    let value: Value =
                        serde_json::from_value(c.value.clone()).map_err(|e| at(e.to_string()))?;
                    b.filter(move |e| {
                        e.value
                            .path(&field)
                            .is_some_and(|v| !v.is_null() && want.contains(&v.total_cmp(&value)))
                    })
                }
                Step::Project(fields) => {
                    if fields.is_empty() {
                        return Err(at("project needs at least one field".into()));
                    }
                    // Output names (last path segment) are built once, not per event.
                    let paths = fields.clone();
                    let names: Vec<std::sync::Arc<str>> = fields
                        .iter()
                        .map(|f| f.rsplit('.').next().unwrap_or(f).into())
                        .collect();
                    b.map(move |mut e| {
                        let projected = paths
                            .iter()
                            .zip(&names)
                            .map(|(p, n)| {
                                (
                                    std::sync::Arc::clone(n),
                                    e.value.path(p).cloned().unwrap_or_default(),
                                )
                            })
                            .collect();
                        e.value = Value::Object(projected);
                        e
                    })
                }
                Step::KeyBy(fields) => {
                    if fields.is_empty() {
                        return Err(at("key_by needs at least one field".into()));
                    }
                    let fields = fields.clone();
                    b.key_by(move |e| {
                        let vals: Vec<Value> = fields
                            .iter()
                            .map(|f| e.value.path(f).cloned().unwrap_or_default())
                            .collect();
                        match <[Value; 1]>::try_from(vals) {
                            Ok([one]) => one,
                            Err(many) => Value::List(many),
                        }
                    })
                }
                Step::WindowJoin(j) => {
                    let window = match (j.tumbling_ms, &j.hopping) {
                        (Some(size), None) => WindowKind::Tumbling { size },
                        (None, Some(h)) => WindowKind::Hopping {
                            size: h.size_ms,
                            slide: h.slide_ms,
                        },
                        _ => {
                            return Err(at(
                                "a window join needs exactly one of tumbling_ms or hopping".into(),
                            ))
                        }
                    };
                    b.window_join(WindowJoinSpec {
                        window,
                        left_input: j.left_input.unwrap_or(0),
                        right_input: j.right_input.unwrap_or(1),
                        left_key: j.left_key.clone(),
                        right_key: j.right_key.clone(),
                        join_type: if j.outer {
                            JoinType::LeftOuter
                        } else {
                            JoinType::Inner
                        },
                    })
                }
                Step::TableJoin(j) => b.table_join(TableJoinSpec {
                    stream_input: j.stream_input.unwrap_or(0),
                    table_input: j.table_input,
                    table_key: j.table_key.clone(),
                    stream_key: j.stream_key.clone(),
                    output_field: j.output.clone(),
                    join_type: if j.outer {
                        JoinType::LeftOuter
                    } else {
                        JoinType::Inner
                    },
                }),
                Step::Window(w) => {
                    let kinds = [
                        w.tumbling_ms.map(|size| WindowKind::Tumbling { size }),
                        w.hopping.as_ref().map(|h| WindowKind::Hopping {
                            size: h.size_ms,
                            slide: h.slide_ms,
                        }),
                        w.session_gap_ms.map(|gap| WindowKind::Session { gap }),
                        w.global.then_some(WindowKind::Global),
                    ];
                    let mut set = kinds.into_iter().flatten();
                    let (Some(kind), None) = (set.next(), set.next()) else {
                        return Err(at("a window needs exactly one of tumbling_ms, hopping, session_gap_ms or global".into()));
                    };
                    let mut aggregates = Vec::new();
                    for a in &w.aggregates {
                        let field = a.field.as_deref();
                        aggregates.push(match (a.func.to_ascii_lowercase().as_str(), field) {
                            ("count", _) => AggSpec::new(&a.output, field, crate::aggregate::Count),
                            ("sum", Some(f)) => AggSpec::sum(&a.output, f),
                            ("min", Some(f)) => AggSpec::min(&a.output, f),
                            ("max", Some(f)) => AggSpec::max(&a.output, f),
                            ("avg", Some(f)) => AggSpec::avg(&a.output, f),
                            (f @ ("sum" | "min" | "max" | "avg"), None) => {
                                return Err(at(format!("aggregate '{f}' needs a field")))
                            }
                            (other, _) => {
                                return Err(at(format!("unknown aggregate function '{other}'")))
                            }
                        });
                    }
                    let late = match &w.late_topic {
                        Some(t) => {
                            b = b.side_output("late", t);
                            LatePolicy::SideOutput("late".into())
                        }
                        None => LatePolicy::Drop,
                    };
                    b.window(WindowSpec {
                        kind,
                        group_by: w.group_by.clone(),
                        aggregates,
                        allowed_lateness: w.allowed_lateness_ms,
                        late,
                    })
                }
            };
        }
        if self.bounded {
            b = b.bounded();
        }
        b.sink(&self.output).build()
    }
}

impl PipelineSpec {
    /// The value fields the steps read, when every step says (joins pass whole values on,
    /// so they need every field): sources then decode just these.
    fn fields_read(&self) -> Option<Vec<String>> {
        let mut fields = Vec::new();
        for step in &self.steps {
            match step {
                Step::Filter(c) => fields.push(c.field.clone()),
                Step::Project(fs) | Step::KeyBy(fs) => fields.extend(fs.iter().cloned()),
                Step::Window(w) => {
                    fields.extend(w.group_by.iter().cloned());
                    fields.extend(w.aggregates.iter().filter_map(|a| a.field.clone()));
                }
                Step::WindowJoin(_) | Step::TableJoin(_) => return None,
            }
        }
        Some(fields)
    }
}

fn compare_op(op: &str) -> Option<&'static [std::cmp::Ordering]> {
    use std::cmp::Ordering::*;
    Some(match op {
        "=" | "==" => &[Equal],
        "!=" | "<>" => &[Less, Greater],
        "<" => &[Less],
        "<=" => &[Less, Equal],
        ">" => &[Greater],
        ">=" => &[Greater, Equal],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_compiles() {
        let doc = include_str!("spec.rs");
        let start = doc.find("//! {").expect("example");
        let json: String = doc[start..]
            .lines()
            .take_while(|l| l.starts_with("//!") && !l.contains("```"))
            .map(|l| l.trim_start_matches("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        let spec = PipelineSpec::from_json(json.as_bytes()).expect("parses");
        spec.compile().expect("compiles");
    }

    #[test]
    fn project_keeps_the_named_fields_under_their_last_segment_and_sets_the_inputs_fields() {
        let json = br#"{"name":"p","inputs":[{"topic":"a","event_time":"ts"}],"output":"b",
            "steps":[{"project":["x","n.y","missing"]}]}"#;
        let mut p = PipelineSpec::from_json(json)
            .expect("json")
            .compile()
            .expect("compiles");
        assert_eq!(
            p.inputs[0].fields,
            Some(vec![
                "x".to_string(),
                "n".to_string(),
                "missing".to_string()
            ])
        );
        let v = Value::from_json(br#"{"x":1,"n":{"y":"deep"},"z":2}"#).expect("json");
        let mut out = crate::event::Collector::default();
        p.ops[0].process(crate::Event::new(v, 0), &mut out);
        let got = out.take().pop().expect("one event").value;
        assert_eq!(
            got,
            Value::object([
                ("x", Value::Int(1)),
                ("y", Value::str("deep")),
                ("missing", Value::Null)
            ])
        );
        let join = br#"{"name":"p","inputs":[{"topic":"a"},{"topic":"c"}],"output":"b",
            "steps":[{"window_join":{"tumbling_ms":10,"left_key":["k"],"right_key":["k"]}}]}"#;
        let p = PipelineSpec::from_json(join)
            .expect("json")
            .compile()
            .expect("compiles");
        assert_eq!(p.inputs[0].fields, None, "joins pass whole values on");
    }

    #[test]
    fn mistakes_are_refused_with_their_place() {
        let base = r#"{"name":"p","inputs":[{"topic":"a"}],"output":"b","steps":[STEP]}"#;
        for (step, msg) in [
            (
                r#"{"filter":{"field":"x","op":"~","value":1}}"#,
                "step 1: unknown comparison '~'",
            ),
            (
                r#"{"window":{"aggregates":[{"fn":"count","as":"n"}]}}"#,
                "step 1: a window needs exactly one",
            ),
            (
                r#"{"window":{"tumbling_ms":10,"aggregates":[{"fn":"median","field":"x","as":"n"}]}}"#,
                "unknown aggregate function 'median'",
            ),
            (
                r#"{"window":{"tumbling_ms":10,"aggregates":[{"fn":"sum","as":"n"}]}}"#,
                "aggregate 'sum' needs a field",
            ),
            (r#"{"explode":{}}"#, "unknown variant `explode`"),
        ] {
            let json = base.replace("STEP", step);
            let e = PipelineSpec::from_json(json.as_bytes())
                .and_then(|s| s.compile())
                .expect_err("refused");
            assert!(e.to_string().contains(msg), "{e} should contain {msg}");
        }
    }
}
