//! Aggregate functions. Accumulators are [`Value`]s so every aggregate's state snapshots the
//! same way; user-defined aggregates implement [`Aggregate`].

use std::fmt;
use std::sync::Arc;

use crate::value::Value;

/// An aggregate function over the events of a group (and window).
pub trait Aggregate: Send + Sync + fmt::Debug {
    /// The empty accumulator.
    fn init(&self) -> Value;
    /// Folds one input into the accumulator. `input` is the aggregated field's value, or
    /// `Bool(true)` when the aggregate has no input field (COUNT(*)).
    fn add(&self, acc: &mut Value, input: &Value);
    /// Folds another accumulator in (session windows merge).
    fn merge(&self, acc: &mut Value, other: &Value);
    /// The result for an accumulator.
    fn finish(&self, acc: &Value) -> Value;
}

/// COUNT(*) / COUNT(field): counts non-null inputs.
#[derive(Debug, Clone, Copy)]
pub struct Count;
/// SUM: integers stay integers until a float is added; null inputs are ignored; the sum of
/// no values is null (SQL).
#[derive(Debug, Clone, Copy)]
pub struct Sum;
/// MIN by [`Value::total_cmp`], ignoring nulls.
#[derive(Debug, Clone, Copy)]
pub struct Min;
/// MAX by [`Value::total_cmp`], ignoring nulls.
#[derive(Debug, Clone, Copy)]
pub struct Max;
/// AVG as a float; null when there were no numeric inputs.
#[derive(Debug, Clone, Copy)]
pub struct Avg;

fn add_numbers(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Null, x) | (x, Value::Null) => x.clone(),
        (Value::Int(x), Value::Int(y)) => match x.checked_add(*y) {
            Some(s) => Value::Int(s),
            None => Value::Float(*x as f64 + *y as f64),
        },
        (x, y) => Value::Float(x.as_f64().unwrap_or(0.0) + y.as_f64().unwrap_or(0.0)),
    }
}

impl Aggregate for Count {
    fn init(&self) -> Value {
        Value::Int(0)
    }
    fn add(&self, acc: &mut Value, input: &Value) {
        if !input.is_null() {
            *acc = Value::Int(acc.as_i64().unwrap_or(0) + 1);
        }
    }
    fn merge(&self, acc: &mut Value, other: &Value) {
        *acc = Value::Int(acc.as_i64().unwrap_or(0) + other.as_i64().unwrap_or(0));
    }
    fn finish(&self, acc: &Value) -> Value {
        acc.clone()
    }
}

impl Aggregate for Sum {
    fn init(&self) -> Value {
        Value::Null
    }
    fn add(&self, acc: &mut Value, input: &Value) {
        if input.as_f64().is_some() {
            *acc = add_numbers(acc, input);
        }
    }
    fn merge(&self, acc: &mut Value, other: &Value) {
        *acc = add_numbers(acc, other);
    }
    fn finish(&self, acc: &Value) -> Value {
        acc.clone()
    }
}

fn keep_if(acc: &mut Value, input: &Value, want: std::cmp::Ordering) {
    if !input.is_null() && (acc.is_null() || input.total_cmp(acc) == want) {
        *acc = input.clone();
    }
}

impl Aggregate for Min {
    fn init(&self) -> Value {
        Value::Null
    }
    fn add(&self, acc: &mut Value, input: &Value) {
        keep_if(acc, input, std::cmp::Ordering::Less);
    }
    fn merge(&self, acc: &mut Value, other: &Value) {
        self.add(acc, other);
    }
    fn finish(&self, acc: &Value) -> Value {
        acc.clone()
    }
}

impl Aggregate for Max {
    fn init(&self) -> Value {
        Value::Null
    }
    fn add(&self, acc: &mut Value, input: &Value) {
        keep_if(acc, input, std::cmp::Ordering::Greater);
    }
    fn merge(&self, acc: &mut Value, other: &Value) {
        self.add(acc, other);
    }
    fn finish(&self, acc: &Value) -> Value {
        acc.clone()
    }
}

impl Aggregate for Avg {
    /// `[sum, count]`.
    fn init(&self) -> Value {
        Value::List(vec![Value::Float(0.0), Value::Int(0)])
    }
    fn add(&self, acc: &mut Value, input: &Value) {
        if let (Some(x), Value::List(parts)) = (input.as_f64(), acc) {
            if let [s, c] = parts.as_mut_slice() {
                *s = Value::Float(s.as_f64().unwrap_or(0.0) + x);
                *c = Value::Int(c.as_i64().unwrap_or(0) + 1);
            }
        }
    }
    fn merge(&self, acc: &mut Value, other: &Value) {
        if let (Value::List(a), Value::List(b)) = (acc, other) {
            if let ([s, c], [s2, c2]) = (a.as_mut_slice(), b.as_slice()) {
                *s = Value::Float(s.as_f64().unwrap_or(0.0) + s2.as_f64().unwrap_or(0.0));
                *c = Value::Int(c.as_i64().unwrap_or(0) + c2.as_i64().unwrap_or(0));
            }
        }
    }
    fn finish(&self, acc: &Value) -> Value {
        match acc {
            Value::List(p) => match (
                p.first().and_then(Value::as_f64),
                p.get(1).and_then(Value::as_i64),
            ) {
                (Some(s), Some(c)) if c > 0 => Value::Float(s / c as f64),
                _ => Value::Null,
            },
            _ => Value::Null,
        }
    }
}

/// One aggregate column of a window or group-by: `output = func(input)`.
#[derive(Debug, Clone)]
pub struct AggSpec {
    /// Field name in the output object.
    pub output: Arc<str>,
    /// Dotted path of the input field; `None` for COUNT(*).
    pub input: Option<String>,
    /// The function.
    pub func: Arc<dyn Aggregate>,
}

impl AggSpec {
    /// `COUNT(*) AS output`.
    pub fn count(output: &str) -> AggSpec {
        AggSpec::new(output, None, Count)
    }
    /// `SUM(input) AS output`.
    pub fn sum(output: &str, input: &str) -> AggSpec {
        AggSpec::new(output, Some(input), Sum)
    }
    /// `MIN(input) AS output`.
    pub fn min(output: &str, input: &str) -> AggSpec {
        AggSpec::new(output, Some(input), Min)
    }
    /// `MAX(input) AS output`.
    pub fn max(output: &str, input: &str) -> AggSpec {
        AggSpec::new(output, Some(input), Max)
    }
    /// `AVG(input) AS output`.
    pub fn avg(output: &str, input: &str) -> AggSpec {
        AggSpec::new(output, Some(input), Avg)
    }
    /// Any aggregate, including user-defined ones.
    pub fn new(output: &str, input: Option<&str>, func: impl Aggregate + 'static) -> AggSpec {
        AggSpec {
            output: Arc::from(output),
            input: input.map(str::to_string),
            func: Arc::new(func),
        }
    }

    pub(crate) fn input_of<'a>(&self, v: &'a Value) -> &'a Value {
        const ALL: &Value = &Value::Bool(true);
        match &self.input {
            None => ALL,
            Some(path) => v.path(path).unwrap_or(&Value::Null),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: &dyn Aggregate, inputs: &[Value]) -> Value {
        let mut acc = f.init();
        for i in inputs {
            f.add(&mut acc, i);
        }
        f.finish(&acc)
    }

    #[test]
    fn builtins_follow_sql_null_rules() {
        let xs = [
            Value::Int(3),
            Value::Null,
            Value::Int(-1),
            Value::Float(2.5),
        ];
        assert_eq!(run(&Count, &xs), Value::Int(3));
        assert_eq!(run(&Sum, &xs), Value::Float(4.5));
        assert_eq!(run(&Sum, &[Value::Int(1), Value::Int(2)]), Value::Int(3));
        assert_eq!(run(&Sum, &[Value::Null]), Value::Null);
        assert_eq!(run(&Min, &xs), Value::Int(-1));
        assert_eq!(run(&Max, &xs), Value::Int(3));
        assert_eq!(run(&Avg, &xs), Value::Float(4.5 / 3.0));
        assert_eq!(run(&Avg, &[]), Value::Null);
        assert_eq!(
            run(&Max, &[Value::str("a"), Value::str("c")]),
            Value::str("c")
        );
    }

    #[test]
    fn merge_equals_adding_everything_to_one_accumulator() {
        let fs: [&dyn Aggregate; 5] = [&Count, &Sum, &Min, &Max, &Avg];
        let a = [Value::Int(5), Value::Int(1)];
        let b = [Value::Int(7), Value::Float(0.5)];
        for f in fs {
            let (mut x, mut y) = (f.init(), f.init());
            a.iter().for_each(|v| f.add(&mut x, v));
            b.iter().for_each(|v| f.add(&mut y, v));
            f.merge(&mut x, &y);
            let all: Vec<Value> = a.iter().chain(&b).cloned().collect();
            assert_eq!(f.finish(&x), run(f, &all), "{f:?}");
        }
    }

    #[test]
    fn sum_overflow_falls_back_to_float() {
        assert_eq!(
            run(&Sum, &[Value::Int(i64::MAX), Value::Int(1)]),
            Value::Float(i64::MAX as f64 + 1.0)
        );
    }
}
