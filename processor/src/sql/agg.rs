//! Aggregate functions with Flink's result types, run by the engine's window operator.
//! Accumulators are `Value`s, so they snapshot with the operator's state.
//!
//! Flink's rules kept here: SUM and AVG of INT/BIGINT stay integers (AVG is the truncated
//! integer quotient: AVG of 1 and 2 is 1), SUM of DECIMAL(p, s) is DECIMAL(38, s), AVG of
//! DECIMAL(p, s) is DECIMAL(38, max(6, s)) rounded half up, COUNT is BIGINT, MIN/MAX keep the
//! argument's type; NULL inputs are ignored and an empty SUM/AVG/MIN/MAX is NULL.

use std::sync::Arc;

use crate::aggregate::{Aggregate, Count, Max, Min};
use crate::value::Value;

use super::format::div_half_up;
use super::types::SqlType;

/// Which aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggKind {
    Count,
    CountDistinct,
    Sum,
    Min,
    Max,
    Avg,
}

impl AggKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            AggKind::Count | AggKind::CountDistinct => "COUNT",
            AggKind::Sum => "SUM",
            AggKind::Min => "MIN",
            AggKind::Max => "MAX",
            AggKind::Avg => "AVG",
        }
    }

    /// The result type for an argument of type `arg` (None for COUNT(*)), or why not.
    pub(crate) fn result_type(self, arg: Option<&SqlType>) -> Result<SqlType, String> {
        use SqlType as T;
        let Some(arg) = arg else { return Ok(T::BigInt) };
        let numeric = || {
            if arg.is_numeric() {
                Ok(())
            } else {
                Err(format!(
                    "{} needs a numeric argument, not {arg}",
                    self.name()
                ))
            }
        };
        Ok(match self {
            AggKind::Count | AggKind::CountDistinct => T::BigInt,
            AggKind::Sum => {
                numeric()?;
                match arg {
                    T::Decimal(_, s) => T::Decimal(38, *s),
                    t => t.clone(),
                }
            }
            AggKind::Avg => {
                numeric()?;
                match arg {
                    T::Decimal(_, s) => T::Decimal(38, (*s).max(6)),
                    t => t.clone(),
                }
            }
            AggKind::Min | AggKind::Max => {
                if matches!(arg, T::Array(_) | T::Interval | T::Null) {
                    return Err(format!(
                        "{} cannot compare values of type {arg}",
                        self.name()
                    ));
                }
                arg.clone()
            }
        })
    }

    /// The engine aggregate computing it.
    pub(crate) fn func(self, arg: Option<&SqlType>) -> Arc<dyn Aggregate> {
        let num = num_kind(arg);
        match self {
            AggKind::Count => Arc::new(Count),
            AggKind::CountDistinct => Arc::new(CountDistinct),
            AggKind::Min => Arc::new(Min),
            AggKind::Max => Arc::new(Max),
            AggKind::Sum => Arc::new(SqlSum(num)),
            AggKind::Avg => Arc::new(SqlAvg(num)),
        }
    }
}

/// How numbers add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumKind {
    /// INT: wraps at 32 bits.
    Int,
    /// BIGINT: wraps at 64 bits.
    Long,
    Float,
    /// Unscaled decimal of this scale.
    Dec(u8),
}

fn add(kind: NumKind, a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Null, x) | (x, Value::Null) => x.clone(),
        (Value::Int(x), Value::Int(y)) => match kind {
            NumKind::Int => Value::Int(i64::from((*x as i32).wrapping_add(*y as i32))),
            _ => Value::Int(x.wrapping_add(*y)),
        },
        (x, y) => Value::Float(x.as_f64().unwrap_or(0.0) + y.as_f64().unwrap_or(0.0)),
    }
}

/// SUM.
#[derive(Debug)]
struct SqlSum(NumKind);

impl Aggregate for SqlSum {
    fn init(&self) -> Value {
        Value::Null
    }
    fn add(&self, acc: &mut Value, input: &Value) {
        if !input.is_null() {
            *acc = add(self.0, acc, input);
        }
    }
    fn merge(&self, acc: &mut Value, other: &Value) {
        *acc = add(self.0, acc, other);
    }
    fn finish(&self, acc: &Value) -> Value {
        acc.clone()
    }
}

/// AVG: accumulator `[sum, count]`; the sum is summed as BIGINT for integers (as Flink's
/// integral AVG does), so an INT average cannot overflow at 32 bits.
#[derive(Debug)]
struct SqlAvg(NumKind);

impl Aggregate for SqlAvg {
    fn init(&self) -> Value {
        Value::List(vec![Value::Null, Value::Int(0)])
    }
    fn add(&self, acc: &mut Value, input: &Value) {
        if input.is_null() {
            return;
        }
        if let Value::List(p) = acc {
            if let [s, c] = p.as_mut_slice() {
                let kind = if self.0 == NumKind::Int {
                    NumKind::Long
                } else {
                    self.0
                };
                *s = add(kind, s, input);
                *c = Value::Int(c.as_i64().unwrap_or(0) + 1);
            }
        }
    }
    fn merge(&self, acc: &mut Value, other: &Value) {
        if let (Value::List(a), Value::List(b)) = (acc, other) {
            if let ([s, c], [s2, c2]) = (a.as_mut_slice(), b.as_slice()) {
                let kind = if self.0 == NumKind::Int {
                    NumKind::Long
                } else {
                    self.0
                };
                *s = add(kind, s, s2);
                *c = Value::Int(c.as_i64().unwrap_or(0) + c2.as_i64().unwrap_or(0));
            }
        }
    }
    fn finish(&self, acc: &Value) -> Value {
        let Value::List(p) = acc else {
            return Value::Null;
        };
        let (Some(sum), Some(count)) = (p.first(), p.get(1).and_then(Value::as_i64)) else {
            return Value::Null;
        };
        if count == 0 || sum.is_null() {
            return Value::Null;
        }
        match (self.0, sum) {
            (NumKind::Float, s) => Value::Float(s.as_f64().unwrap_or(0.0) / count as f64),
            (NumKind::Int, Value::Int(s)) => Value::Int(i64::from((s / count) as i32)),
            (NumKind::Long, Value::Int(s)) => Value::Int(s / count),
            (NumKind::Dec(scale), Value::Int(s)) => {
                let out = scale.max(6);
                let up = 10i128.pow(u32::from(out - scale));
                i128::from(*s)
                    .checked_mul(up)
                    .and_then(|n| div_half_up(n, i128::from(count)))
                    .and_then(|q| i64::try_from(q).ok())
                    .map_or(Value::Null, Value::Int)
            }
            _ => Value::Null,
        }
    }
}

/// COUNT(DISTINCT x): the accumulator is the sorted list of distinct non-null values.
#[derive(Debug)]
struct CountDistinct;

fn insert_sorted(list: &mut Vec<Value>, v: &Value) {
    if let Err(pos) = list.binary_search_by(|x| x.total_cmp(v)) {
        list.insert(pos, v.clone());
    }
}

impl Aggregate for CountDistinct {
    fn init(&self) -> Value {
        Value::List(Vec::new())
    }
    fn add(&self, acc: &mut Value, input: &Value) {
        if let (false, Value::List(l)) = (input.is_null(), acc) {
            insert_sorted(l, input);
        }
    }
    fn merge(&self, acc: &mut Value, other: &Value) {
        if let (Value::List(a), Value::List(b)) = (acc, other) {
            for v in b {
                insert_sorted(a, v);
            }
        }
    }
    fn finish(&self, acc: &Value) -> Value {
        match acc {
            Value::List(l) => Value::Int(l.len() as i64),
            _ => Value::Int(0),
        }
    }
}

/// An aggregate that can also take an input back, for a GROUP BY over an updating input
/// (Flink's retractable aggregates): COUNT, SUM and AVG subtract, while MIN, MAX and
/// COUNT(DISTINCT) keep the multiset of values (value → how many rows hold it), so the next
/// extreme is known when the current one is retracted. Accumulators are `Value`s, so they
/// snapshot with the operator's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retractable {
    kind: AggKind,
    num: NumKind,
}

impl AggKind {
    /// The retractable form of the aggregate for an argument of type `arg`.
    pub(crate) fn retractable(self, arg: Option<&SqlType>) -> Retractable {
        Retractable {
            kind: self,
            num: num_kind(arg),
        }
    }
}

fn num_kind(arg: Option<&SqlType>) -> NumKind {
    match arg {
        Some(SqlType::Int) => NumKind::Int,
        Some(SqlType::Double) => NumKind::Float,
        Some(SqlType::Decimal(_, s)) => NumKind::Dec(*s),
        _ => NumKind::Long,
    }
}

fn negate(v: &Value) -> Value {
    match v {
        Value::Int(x) => Value::Int(x.wrapping_neg()),
        Value::Float(x) => Value::Float(-x),
        other => other.clone(),
    }
}

impl Retractable {
    /// The empty accumulator.
    pub(crate) fn init(&self) -> Value {
        match self.kind {
            AggKind::Count => Value::Int(0),
            // [sum, count of non-null inputs]
            AggKind::Sum | AggKind::Avg => Value::List(vec![Value::Null, Value::Int(0)]),
            // [[value, rows], ...] sorted by value
            AggKind::Min | AggKind::Max | AggKind::CountDistinct => Value::List(Vec::new()),
        }
    }

    /// Adds `input` (`adding`) or takes it back; NULL inputs are ignored either way.
    pub(crate) fn apply(&self, acc: &mut Value, input: &Value, adding: bool) {
        if input.is_null() {
            return;
        }
        let step = if adding { 1 } else { -1 };
        match self.kind {
            AggKind::Count => *acc = Value::Int(acc.as_i64().unwrap_or(0) + step),
            AggKind::Sum | AggKind::Avg => {
                let Value::List(p) = acc else { return };
                let [s, c] = p.as_mut_slice() else { return };
                // AVG sums INT as BIGINT (as SqlAvg does); SUM of INT wraps at 32 bits.
                let kind = match (self.kind, self.num) {
                    (AggKind::Avg, NumKind::Int) => NumKind::Long,
                    (_, k) => k,
                };
                let n = c.as_i64().unwrap_or(0) + step;
                *c = Value::Int(n);
                *s = if n == 0 {
                    // Nothing left: no rounding residue of floats survives.
                    Value::Null
                } else if adding {
                    add(kind, s, input)
                } else {
                    add(kind, s, &negate(input))
                };
            }
            AggKind::Min | AggKind::Max | AggKind::CountDistinct => {
                let Value::List(set) = acc else { return };
                let at = set.binary_search_by(|e| match e {
                    Value::List(pair) => pair
                        .first()
                        .map_or(std::cmp::Ordering::Less, |v| v.total_cmp(input)),
                    _ => std::cmp::Ordering::Less,
                });
                match at {
                    Ok(i) => {
                        let n = match &set[i] {
                            Value::List(pair) => pair.get(1).and_then(Value::as_i64).unwrap_or(0),
                            _ => 0,
                        } + step;
                        if n <= 0 {
                            set.remove(i);
                        } else {
                            set[i] = Value::List(vec![input.clone(), Value::Int(n)]);
                        }
                    }
                    // Taking back a value never added (e.g. expired state): nothing to do.
                    Err(_) if !adding => {}
                    Err(i) => set.insert(i, Value::List(vec![input.clone(), Value::Int(1)])),
                }
            }
        }
    }

    /// The result for an accumulator.
    pub(crate) fn finish(&self, acc: &Value) -> Value {
        let value_at = |i: Option<&Value>| match i {
            Some(Value::List(pair)) => pair.first().cloned().unwrap_or(Value::Null),
            _ => Value::Null,
        };
        match (self.kind, acc) {
            (AggKind::Count, a) => Value::Int(a.as_i64().unwrap_or(0).max(0)),
            (AggKind::Sum, Value::List(p)) => match p.get(1).and_then(Value::as_i64) {
                Some(n) if n > 0 => p.first().cloned().unwrap_or(Value::Null),
                _ => Value::Null,
            },
            (AggKind::Avg, a) => SqlAvg(self.num).finish(a),
            (AggKind::Min, Value::List(set)) => value_at(set.first()),
            (AggKind::Max, Value::List(set)) => value_at(set.last()),
            (AggKind::CountDistinct, Value::List(set)) => Value::Int(set.len() as i64),
            _ => Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: AggKind, ty: &SqlType, xs: &[Value]) -> Value {
        let f = kind.func(Some(ty));
        let mut acc = f.init();
        for x in xs {
            f.add(&mut acc, x);
        }
        f.finish(&acc)
    }

    #[test]
    fn flink_result_types_and_values() {
        let ints = [Value::Int(1), Value::Int(2), Value::Null];
        assert_eq!(
            run(AggKind::Avg, &SqlType::BigInt, &ints),
            Value::Int(1),
            "integer AVG truncates"
        );
        assert_eq!(run(AggKind::Sum, &SqlType::BigInt, &ints), Value::Int(3));
        assert_eq!(
            run(AggKind::Sum, &SqlType::BigInt, &[Value::Null]),
            Value::Null
        );
        // DECIMAL(10, 2): 1.00 and 2.01 average to 1.505000 at scale 6.
        assert_eq!(
            run(
                AggKind::Avg,
                &SqlType::Decimal(10, 2),
                &[Value::Int(100), Value::Int(201)]
            ),
            Value::Int(1_505_000)
        );
        assert_eq!(
            run(
                AggKind::CountDistinct,
                &SqlType::BigInt,
                &[Value::Int(3), Value::Int(3), Value::Int(1), Value::Null]
            ),
            Value::Int(2)
        );
        assert_eq!(
            AggKind::Avg.result_type(Some(&SqlType::Decimal(10, 2))),
            Ok(SqlType::Decimal(38, 6))
        );
        assert!(AggKind::Sum.result_type(Some(&SqlType::String)).is_err());
    }

    /// Folds `(value, add?)` steps into a retractable aggregate; the result after each step.
    fn steps(kind: AggKind, ty: &SqlType, xs: &[(i64, bool)]) -> Vec<Value> {
        let f = kind.retractable(Some(ty));
        let mut acc = f.init();
        xs.iter()
            .map(|(x, add)| {
                f.apply(&mut acc, &Value::Int(*x), *add);
                f.finish(&acc)
            })
            .collect()
    }

    fn ints(v: &[Option<i64>]) -> Vec<Value> {
        v.iter()
            .map(|x| x.map_or(Value::Null, Value::Int))
            .collect()
    }

    #[test]
    fn retracted_extremes_fall_back_to_the_next_value_held() {
        // 5, 9, 9, 2 in; then 9 out (another 9 is still held), 9 out, 2 out, 5 out.
        let xs = [
            (5, true),
            (9, true),
            (9, true),
            (2, true),
            (9, false),
            (9, false),
            (2, false),
            (5, false),
        ];
        assert_eq!(
            steps(AggKind::Max, &SqlType::BigInt, &xs),
            ints(&[
                Some(5),
                Some(9),
                Some(9),
                Some(9),
                Some(9),
                Some(5),
                Some(5),
                None
            ])
        );
        assert_eq!(
            steps(AggKind::Min, &SqlType::BigInt, &xs),
            ints(&[
                Some(5),
                Some(5),
                Some(5),
                Some(2),
                Some(2),
                Some(2),
                Some(5),
                None
            ])
        );
        assert_eq!(
            steps(AggKind::CountDistinct, &SqlType::BigInt, &xs),
            ints(&[
                Some(1),
                Some(2),
                Some(2),
                Some(3),
                Some(3),
                Some(2),
                Some(1),
                Some(0)
            ])
        );
        // Taking back a value never added changes nothing.
        assert_eq!(
            steps(AggKind::Max, &SqlType::BigInt, &[(4, true), (7, false)]),
            ints(&[Some(4), Some(4)])
        );
    }

    #[test]
    fn count_sum_and_avg_subtract_what_is_taken_back() {
        let xs = [
            (10, true),
            (3, true),
            (4, true),
            (10, false),
            (3, false),
            (4, false),
        ];
        assert_eq!(
            steps(AggKind::Count, &SqlType::BigInt, &xs),
            ints(&[Some(1), Some(2), Some(3), Some(2), Some(1), Some(0)])
        );
        // SUM and AVG of nothing left are NULL, as in Flink; AVG of BIGINT truncates.
        assert_eq!(
            steps(AggKind::Sum, &SqlType::BigInt, &xs),
            ints(&[Some(10), Some(13), Some(17), Some(7), Some(4), None])
        );
        assert_eq!(
            steps(AggKind::Avg, &SqlType::BigInt, &xs),
            ints(&[Some(10), Some(6), Some(5), Some(3), Some(4), None])
        );
        // NULL inputs count for nothing either way.
        let f = AggKind::Count.retractable(Some(&SqlType::BigInt));
        let mut acc = f.init();
        f.apply(&mut acc, &Value::Int(1), true);
        f.apply(&mut acc, &Value::Null, false);
        assert_eq!(f.finish(&acc), Value::Int(1));
        // INT sums wrap at 32 bits both ways, DOUBLE averages divide exactly.
        let f = AggKind::Sum.retractable(Some(&SqlType::Int));
        let mut acc = f.init();
        for (x, add) in [(i64::from(i32::MAX), true), (1, true), (1, false)] {
            f.apply(&mut acc, &Value::Int(x), add);
        }
        assert_eq!(f.finish(&acc), Value::Int(i64::from(i32::MAX)));
        let f = AggKind::Avg.retractable(Some(&SqlType::Double));
        let mut acc = f.init();
        for (x, add) in [(1.0, true), (2.0, true), (10.0, true), (10.0, false)] {
            f.apply(&mut acc, &Value::Float(x), add);
        }
        assert_eq!(f.finish(&acc), Value::Float(1.5));
    }
}
