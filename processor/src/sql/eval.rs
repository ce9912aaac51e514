//! Runs compiled expressions over a row. Errors at run time (division by zero, a failed
//! CAST, decimal overflow) give NULL rather than stopping the pipeline.

use std::cmp::Ordering;

use crate::value::Value;

use super::expr::{Arith, Cmp, Expr, Num};
use super::format::{
    self, div_half_up, fits_precision, format_decimal, format_timestamp, java_double,
    parse_decimal, rescale,
};
use super::functions;
use super::types::SqlType;

/// Evaluates `e` over `row`.
pub(crate) fn eval(e: &Expr, row: &[Value]) -> Value {
    match e {
        Expr::Col(i) => row.get(*i).cloned().unwrap_or(Value::Null),
        Expr::Lit(v) => v.clone(),
        Expr::Arith(op, num, a, b) => {
            let (x, y) = (eval(a, row), eval(b, row));
            if x.is_null() || y.is_null() {
                return Value::Null;
            }
            arith(*op, *num, &x, &y)
        }
        Expr::Neg(num, a) => match (eval(a, row), num) {
            (Value::Int(i), Num::I32) => Value::Int(i64::from((i as i32).wrapping_neg())),
            (Value::Int(i), _) => Value::Int(i.wrapping_neg()),
            (Value::Float(f), _) => Value::Float(-f),
            _ => Value::Null,
        },
        Expr::Cmp(c, a, b) => {
            let (x, y) = (eval(a, row), eval(b, row));
            if x.is_null() || y.is_null() {
                return Value::Null;
            }
            let o = x.total_cmp(&y);
            Value::Bool(match c {
                Cmp::Eq => o == Ordering::Equal,
                Cmp::Ne => o != Ordering::Equal,
                Cmp::Lt => o == Ordering::Less,
                Cmp::Le => o != Ordering::Greater,
                Cmp::Gt => o == Ordering::Greater,
                Cmp::Ge => o != Ordering::Less,
            })
        }
        Expr::And(a, b) => match eval(a, row) {
            Value::Bool(false) => Value::Bool(false),
            x => match (x, eval(b, row)) {
                (_, Value::Bool(false)) => Value::Bool(false),
                (Value::Bool(true), Value::Bool(true)) => Value::Bool(true),
                _ => Value::Null,
            },
        },
        Expr::Or(a, b) => match eval(a, row) {
            Value::Bool(true) => Value::Bool(true),
            x => match (x, eval(b, row)) {
                (_, Value::Bool(true)) => Value::Bool(true),
                (Value::Bool(false), Value::Bool(false)) => Value::Bool(false),
                _ => Value::Null,
            },
        },
        Expr::Not(a) => match eval(a, row) {
            Value::Bool(b) => Value::Bool(!b),
            _ => Value::Null,
        },
        Expr::IsNull(a, neg) => Value::Bool(eval(a, row).is_null() != *neg),
        Expr::IsBool(a, want, neg) => Value::Bool((eval(a, row) == Value::Bool(*want)) != *neg),
        Expr::Cast(a, from, to) => cast(&eval(a, row), from, to),
        Expr::Case(branches, els) => {
            for (cond, res) in branches {
                if eval(cond, row) == Value::Bool(true) {
                    return eval(res, row);
                }
            }
            eval(els, row)
        }
        Expr::In(a, items, neg) => {
            let v = eval(a, row);
            if v.is_null() {
                return Value::Null;
            }
            let mut saw_null = false;
            for i in items {
                let x = eval(i, row);
                if x.is_null() {
                    saw_null = true;
                } else if x.total_cmp(&v) == Ordering::Equal {
                    return Value::Bool(!neg);
                }
            }
            if saw_null {
                Value::Null
            } else {
                Value::Bool(*neg)
            }
        }
        Expr::Like(a, p, esc, neg) => match (eval(a, row), eval(p, row)) {
            (Value::Str(s), Value::Str(p)) => Value::Bool(like(&s, &p, *esc) != *neg),
            _ => Value::Null,
        },
        Expr::Call(f, args) => {
            let vals: Vec<Value> = args.iter().map(|a| eval(a, row)).collect();
            functions::call(f, vals)
        }
    }
}

/// Is the condition TRUE (not FALSE, not NULL)?
pub(crate) fn is_true(e: &Expr, row: &[Value]) -> bool {
    eval(e, row) == Value::Bool(true)
}

fn arith(op: Arith, num: Num, x: &Value, y: &Value) -> Value {
    match num {
        Num::F64 => {
            let (a, b) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            Value::Float(match op {
                Arith::Add => a + b,
                Arith::Sub => a - b,
                Arith::Mul => a * b,
                Arith::Div => a / b,
                Arith::Mod => a % b,
            })
        }
        Num::I32 | Num::I64 => {
            let (a, b) = match (x, y) {
                (Value::Int(a), Value::Int(b)) => (*a, *b),
                _ => return Value::Null,
            };
            let r = match op {
                Arith::Add => a.wrapping_add(b),
                Arith::Sub => a.wrapping_sub(b),
                Arith::Mul => a.wrapping_mul(b),
                Arith::Div | Arith::Mod if b == 0 => return Value::Null,
                Arith::Div => a.wrapping_div(b),
                Arith::Mod => a.wrapping_rem(b),
            };
            if num == Num::I32 {
                Value::Int(i64::from(r as i32))
            } else {
                Value::Int(r)
            }
        }
        Num::Dec { ls, rs, p, s } => {
            let (a, b) = match (x, y) {
                (Value::Int(a), Value::Int(b)) => (i128::from(*a), i128::from(*b)),
                _ => return Value::Null,
            };
            let up = |v: i128, from: u8, to: u8| {
                v.checked_mul(10i128.checked_pow(u32::from(to.saturating_sub(from)))?)
            };
            // Computed exactly at scale `n`, then rounded half up to the result's scale `s`
            // (smaller when Flink's rules cap the precision at 38).
            let (r, n) = match op {
                Arith::Add | Arith::Sub | Arith::Mod => {
                    let n = ls.max(rs);
                    let (Some(a), Some(b)) = (up(a, ls, n), up(b, rs, n)) else {
                        return Value::Null;
                    };
                    let r = match op {
                        Arith::Add => a.checked_add(b),
                        Arith::Sub => a.checked_sub(b),
                        _ if b == 0 => None,
                        _ => a.checked_rem(b),
                    };
                    (r, n)
                }
                // Scales add up exactly.
                Arith::Mul => (a.checked_mul(b), ls + rs),
                // a / b at scale s: a * 10^(s + rs - ls) / b, rounded half up.
                Arith::Div => {
                    let shift = i32::from(s) + i32::from(rs) - i32::from(ls);
                    let r = if shift >= 0 {
                        up(a, 0, shift as u8).and_then(|n| div_half_up(n, b))
                    } else {
                        10i128
                            .checked_pow(shift.unsigned_abs())
                            .and_then(|d| b.checked_mul(d))
                            .and_then(|d| div_half_up(a, d))
                    };
                    (r, s)
                }
            };
            let r = r.and_then(|r| {
                if n > s {
                    div_half_up(r, 10i128.checked_pow(u32::from(n - s))?)
                } else {
                    up(r, n, s)
                }
            });
            match r.and_then(|r| i64::try_from(r).ok()) {
                Some(r) if fits_precision(r, p) => Value::Int(r),
                _ => Value::Null,
            }
        }
    }
}

/// CAST with Flink's results; impossible conversions give NULL.
pub(crate) fn cast(v: &Value, from: &SqlType, to: &SqlType) -> Value {
    use SqlType as T;
    if v.is_null() || from == to {
        return v.clone();
    }
    match (from, to, v) {
        (T::Int | T::BigInt, T::Int, Value::Int(i)) => Value::Int(i64::from(*i as i32)),
        (T::Int | T::BigInt, T::BigInt, Value::Int(i)) => Value::Int(*i),
        (T::Int | T::BigInt, T::Double, Value::Int(i)) => Value::Float(*i as f64),
        (T::Int | T::BigInt, T::Decimal(p, s), Value::Int(i)) => dec(rescale(*i, 0, *s), *p),
        (T::Decimal(_, s), T::Int | T::BigInt, Value::Int(u)) => {
            // Truncates toward zero, as Flink's decimal-to-integer cast does.
            // Scales past 18 digits divide everything a row can hold down to 0.
            let t = 10i64.checked_pow(u32::from(*s)).map_or(0, |d| u / d);
            if *to == T::Int {
                Value::Int(i64::from(t as i32))
            } else {
                Value::Int(t)
            }
        }
        (T::Decimal(_, s), T::Double, Value::Int(u)) => {
            Value::Float(*u as f64 / 10f64.powi(i32::from(*s)))
        }
        (T::Decimal(_, s1), T::Decimal(p, s2), Value::Int(u)) => dec(rescale(*u, *s1, *s2), *p),
        (T::Double, T::Int, Value::Float(f)) => Value::Int(i64::from(*f as i32)),
        (T::Double, T::BigInt, Value::Float(f)) => Value::Int(*f as i64),
        (T::Double, T::Decimal(p, s), Value::Float(f)) if f.is_finite() => {
            dec(parse_decimal(&f.to_string(), *s), *p)
        }
        (T::Boolean, T::Int | T::BigInt, Value::Bool(b)) => Value::Int(i64::from(*b)),
        (T::Int | T::BigInt, T::Boolean, Value::Int(i)) => Value::Bool(*i != 0),
        (T::Timestamp(_), T::Timestamp(_), _) => v.clone(),
        (T::Timestamp(_), T::BigInt, Value::Int(ms)) => Value::Int(ms.div_euclid(1000)),
        (T::BigInt, T::Timestamp(_), Value::Int(s)) => Value::Int(s.saturating_mul(1000)),
        (_, T::String, _) => Value::str(&to_text(v, from)),
        (T::String, _, Value::Str(s)) => from_text(s, to),
        _ => Value::Null,
    }
}

fn dec(u: Option<i64>, p: u8) -> Value {
    match u {
        Some(u) if fits_precision(u, p) => Value::Int(u),
        _ => Value::Null,
    }
}

/// The text of a value as CAST(... AS STRING) gives it in Flink.
pub(crate) fn to_text(v: &Value, ty: &SqlType) -> String {
    match (ty, v) {
        (SqlType::Boolean, Value::Bool(b)) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        (SqlType::Double, Value::Float(f)) => java_double(*f),
        (SqlType::Decimal(_, s), Value::Int(u)) => format_decimal(*u, *s),
        (SqlType::Timestamp(p), Value::Int(ms)) => format_timestamp(*ms, Some(*p)),
        (_, Value::Str(s)) => s.to_string(),
        (_, other) => other.to_string(),
    }
}

fn from_text(s: &str, to: &SqlType) -> Value {
    let t = s.trim();
    match to {
        SqlType::Int => t
            .parse::<i32>()
            .map_or(Value::Null, |i| Value::Int(i64::from(i))),
        SqlType::BigInt => t.parse::<i64>().map_or(Value::Null, Value::Int),
        SqlType::Double => t.parse::<f64>().map_or(Value::Null, Value::Float),
        SqlType::Decimal(p, sc) => dec(parse_decimal(t, *sc), *p),
        SqlType::Boolean => match t.to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" => Value::Bool(true),
            "false" | "f" | "no" | "n" | "0" => Value::Bool(false),
            _ => Value::Null,
        },
        SqlType::Timestamp(_) => {
            // A date alone is midnight.
            let full = if t.len() == 10 {
                format!("{t} 00:00:00")
            } else {
                t.to_string()
            };
            format::decode_field(&Value::str(&full), to).unwrap_or(Value::Null)
        }
        _ => Value::Null,
    }
}

/// SQL LIKE: `%` any run, `_` one character, `esc` makes the next character literal.
pub(crate) fn like(s: &str, pattern: &str, esc: Option<char>) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum P {
        Any,
        One,
        Ch(char),
    }
    let mut ps = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        ps.push(match c {
            c if Some(c) == esc => match it.next() {
                Some(n) => P::Ch(n),
                None => P::Ch(c),
            },
            '%' => P::Any,
            '_' => P::One,
            c => P::Ch(c),
        });
    }
    let cs: Vec<char> = s.chars().collect();
    // Iterative matching with backtracking to the last `%`.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < cs.len() {
        match ps.get(j) {
            Some(P::Any) => {
                star = Some((j, i));
                j += 1;
            }
            Some(P::One) => {
                i += 1;
                j += 1;
            }
            Some(P::Ch(c)) if *c == cs[i] => {
                i += 1;
                j += 1;
            }
            _ => match star {
                Some((sj, si)) => {
                    j = sj + 1;
                    i = si + 1;
                    star = Some((sj, si + 1));
                }
                None => return false,
            },
        }
    }
    ps[j..].iter().all(|p| *p == P::Any)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_arithmetic_rounds_to_a_capped_result_scale() {
        let dec = |ls, rs, p, s| Num::Dec { ls, rs, p, s };
        // DECIMAL(38, 10) 1.5 * DECIMAL(10, 2) 2.25 = 3.375 exactly at scale 12; the result
        // type is DECIMAL(38, 6): 3.375000.
        let (a, b) = (Value::Int(15_000_000_000), Value::Int(225));
        assert_eq!(
            arith(Arith::Mul, dec(10, 2, 38, 6), &a, &b),
            Value::Int(3_375_000)
        );
        // 1.0000005 * 1.00 = 1.000000500000 → 1.000001 (half up at the sixth digit).
        let a = Value::Int(10_000_005_000);
        assert_eq!(
            arith(Arith::Mul, dec(10, 2, 38, 6), &a, &Value::Int(100)),
            Value::Int(1_000_001)
        );
        // DECIMAL(38, 10) + DECIMAL(38, 10) is DECIMAL(38, 9): 0.0000000005 + 0 → 0.000000001.
        assert_eq!(
            arith(
                Arith::Add,
                dec(10, 10, 38, 9),
                &Value::Int(5),
                &Value::Int(0)
            ),
            Value::Int(1)
        );
        // Without capping nothing changes: 1.5 + 2.25 = 3.75 at scale 2.
        assert_eq!(
            arith(
                Arith::Add,
                dec(1, 2, 10, 2),
                &Value::Int(15),
                &Value::Int(225)
            ),
            Value::Int(375)
        );
    }

    #[test]
    fn like_patterns() {
        assert!(like("hello", "h%o", None));
        assert!(like("hello", "_ello", None));
        assert!(!like("hello", "h_o", None));
        assert!(like("a%b", "a!%b", Some('!')));
        assert!(!like("axb", "a!%b", Some('!')));
        assert!(like("", "%", None));
        assert!(like("abcabc", "%abc", None));
    }

    #[test]
    fn casts_follow_flink() {
        use SqlType as T;
        assert_eq!(
            cast(&Value::Int(1235), &T::Decimal(10, 2), &T::Int),
            Value::Int(12)
        );
        assert_eq!(
            cast(&Value::Int(1235), &T::Decimal(10, 2), &T::Decimal(10, 1)),
            Value::Int(124)
        );
        assert_eq!(
            cast(&Value::str("12.5"), &T::String, &T::Decimal(5, 2)),
            Value::Int(1250)
        );
        assert_eq!(cast(&Value::str("x"), &T::String, &T::Int), Value::Null);
        assert_eq!(
            cast(&Value::Int(1250), &T::Decimal(5, 2), &T::String),
            Value::str("12.50")
        );
        assert_eq!(
            cast(&Value::Bool(true), &T::Boolean, &T::String),
            Value::str("TRUE")
        );
        assert_eq!(
            cast(&Value::Int(5), &T::Int, &T::Decimal(2, 1)),
            Value::Int(50)
        );
        assert_eq!(
            cast(&Value::Int(500), &T::Int, &T::Decimal(2, 1)),
            Value::Null,
            "overflow"
        );
    }
}
