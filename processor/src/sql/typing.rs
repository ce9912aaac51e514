//! Flink's typing rules for operators: literal types, common types for comparisons and CASE,
//! implicit conversions, which casts exist, and the result types of arithmetic (exact
//! integer and DECIMAL rules; DOUBLE wins).

use sqlparser::ast;
use sqlparser::tokenizer::Span;

use crate::value::Value;

use super::error::SqlError;
use super::expr::{Arith, Cmp, Expr, Num, Typed};
use super::format::parse_decimal;
use super::types::{SqlType, MAX_DECIMAL_PRECISION};

pub(crate) fn literal(v: &ast::Value, span: Span) -> Result<Typed, SqlError> {
    Ok(match v {
        ast::Value::Number(text, _) => {
            if text.contains(['e', 'E']) {
                let f: f64 = text
                    .parse()
                    .map_err(|_| SqlError::span(span, format!("'{text}' is not a number")))?;
                Typed::new(Expr::Lit(Value::Float(f)), SqlType::Double)
            } else if let Some((int, frac)) = text.split_once('.') {
                let s = frac.len() as u8;
                let digits = int.trim_start_matches('0').len() + frac.len();
                let p = (digits.max(s as usize).max(1)) as u8;
                let u = parse_decimal(text, s).ok_or_else(|| {
                    SqlError::span(
                        span,
                        format!(
                            "decimal literal {text} is too large (at most 18 digits are supported)"
                        ),
                    )
                })?;
                Typed::new(
                    Expr::Lit(Value::Int(u)),
                    SqlType::Decimal(p.min(MAX_DECIMAL_PRECISION), s),
                )
            } else {
                let n: i64 = text.parse().map_err(|_| {
                    SqlError::span(span, format!("integer literal {text} is too large"))
                })?;
                let ty = if i32::try_from(n).is_ok() {
                    SqlType::Int
                } else {
                    SqlType::BigInt
                };
                Typed::new(Expr::Lit(Value::Int(n)), ty)
            }
        }
        ast::Value::SingleQuotedString(s) => Typed::new(Expr::Lit(Value::str(s)), SqlType::String),
        ast::Value::Boolean(b) => Typed::new(Expr::Lit(Value::Bool(*b)), SqlType::Boolean),
        ast::Value::Null => Typed::new(Expr::Lit(Value::Null), SqlType::Null),
        other => {
            return Err(SqlError::span(
                span,
                format!("literal {other} is not supported"),
            ))
        }
    })
}

pub(crate) fn num_of(t: &SqlType) -> Num {
    match t {
        SqlType::Int => Num::I32,
        SqlType::Double => Num::F64,
        SqlType::Decimal(p, s) => Num::Dec {
            ls: *s,
            rs: *s,
            p: *p,
            s: *s,
        },
        _ => Num::I64,
    }
}

/// The type both operands can be converted to for comparing or combining (CASE, IN).
pub(crate) fn common_type(a: &SqlType, b: &SqlType) -> Option<SqlType> {
    use SqlType as T;
    Some(match (a, b) {
        (x, y) if x == y => x.clone(),
        (T::Null, x) | (x, T::Null) => x.clone(),
        (T::Double, y) | (y, T::Double) if y.is_numeric() => T::Double,
        (T::Int, T::BigInt) | (T::BigInt, T::Int) => T::BigInt,
        (x, y) if x.is_numeric() && y.is_numeric() => {
            let ((p1, s1), (p2, s2)) = (x.as_decimal()?, y.as_decimal()?);
            let s = s1.max(s2);
            let p = ((p1 - s1).max(p2 - s2) + s).min(MAX_DECIMAL_PRECISION);
            T::Decimal(p, s)
        }
        (T::Timestamp(p), T::Timestamp(q)) => T::Timestamp(*p.max(q)),
        (T::Timestamp(p), T::String) | (T::String, T::Timestamp(p)) => T::Timestamp(*p),
        _ => return None,
    })
}

/// Converts `t` to `to` (a no-op when the row representation is the same).
pub(crate) fn coerce(t: Typed, to: &SqlType) -> Typed {
    if &t.ty == to || t.ty == SqlType::Null {
        return Typed::new(t.e, to.clone());
    }
    let same_repr = matches!(
        (&t.ty, to),
        (SqlType::Int, SqlType::BigInt) | (SqlType::Timestamp(_), SqlType::Timestamp(_))
    );
    if same_repr {
        return Typed::new(t.e, to.clone());
    }
    Typed::new(Expr::Cast(Box::new(t.e), t.ty, to.clone()), to.clone())
}

/// Which casts Flink allows (explicitly).
pub(crate) fn castable(from: &SqlType, to: &SqlType) -> bool {
    use SqlType as T;
    match (from, to) {
        (a, b) if a == b => true,
        (T::Null, _) => true,
        (a, b) if a.is_numeric() && b.is_numeric() => true,
        (T::String, _) | (_, T::String) => {
            !matches!(from, T::Array(_)) && !matches!(to, T::Array(_)) && *from != T::Interval
        }
        (T::Boolean, b) | (b, T::Boolean) => b.is_integer(),
        (T::Timestamp(_), T::Timestamp(_)) => true,
        (T::Timestamp(_), T::BigInt) | (T::BigInt, T::Timestamp(_)) => true,
        _ => false,
    }
}

/// Builds a comparison, converting both sides to a common type.
pub(crate) fn compare(c: Cmp, a: Typed, b: Typed, span: Span) -> Result<Expr, SqlError> {
    let t = common_type(&a.ty, &b.ty)
        .ok_or_else(|| SqlError::span(span, format!("cannot compare {} with {}", a.ty, b.ty)))?;
    if matches!(t, SqlType::Array(_)) {
        return Err(SqlError::span(span, "arrays cannot be compared"));
    }
    Ok(Expr::Cmp(
        c,
        Box::new(coerce(a, &t).e),
        Box::new(coerce(b, &t).e),
    ))
}

/// Builds an arithmetic operation with Flink's result types.
pub(crate) fn arith(op: Arith, a: Typed, b: Typed, span: Span) -> Result<Typed, SqlError> {
    use SqlType as T;
    let sym = match op {
        Arith::Add => "+",
        Arith::Sub => "-",
        Arith::Mul => "*",
        Arith::Div => "/",
        Arith::Mod => "%",
    };
    let bad = || {
        SqlError::span(
            span,
            format!("operator {sym} cannot be applied to {} and {}", a.ty, b.ty),
        )
    };
    // Time arithmetic.
    match (&a.ty, &b.ty, op) {
        (T::Timestamp(p), T::Interval, Arith::Add | Arith::Sub) => {
            return Ok(Typed::new(
                Expr::Arith(op, Num::I64, Box::new(a.e), Box::new(b.e)),
                T::Timestamp(*p),
            ))
        }
        (T::Interval, T::Timestamp(p), Arith::Add) => {
            return Ok(Typed::new(
                Expr::Arith(op, Num::I64, Box::new(b.e), Box::new(a.e)),
                T::Timestamp(*p),
            ))
        }
        (T::Interval, T::Interval, Arith::Add | Arith::Sub) => {
            return Ok(Typed::new(
                Expr::Arith(op, Num::I64, Box::new(a.e), Box::new(b.e)),
                T::Interval,
            ))
        }
        _ => {}
    }
    let (at, bt) = (a.ty.clone(), b.ty.clone());
    let at = if at == T::Null { bt.clone() } else { at };
    let bt = if bt == T::Null { at.clone() } else { bt };
    if !at.is_numeric() || !bt.is_numeric() {
        return Err(bad());
    }
    if at == T::Double || bt == T::Double {
        let (a, b) = (coerce(a, &T::Double), coerce(b, &T::Double));
        return Ok(Typed::new(
            Expr::Arith(op, Num::F64, Box::new(a.e), Box::new(b.e)),
            T::Double,
        ));
    }
    if at.is_integer() && bt.is_integer() {
        let (ty, num) = if at == T::Int && bt == T::Int {
            (T::Int, Num::I32)
        } else {
            (T::BigInt, Num::I64)
        };
        // MOD keeps the type of its second operand in Flink; with integers the value fits.
        return Ok(Typed::new(
            Expr::Arith(op, num, Box::new(a.e), Box::new(b.e)),
            ty,
        ));
    }
    let ((p1, s1), (p2, s2)) = (
        at.as_decimal().ok_or_else(bad)?,
        bt.as_decimal().ok_or_else(bad)?,
    );
    let (p1, s1, p2, s2) = (i32::from(p1), i32::from(s1), i32::from(p2), i32::from(s2));
    // Flink's LogicalTypeMerging: the exact result type, then capped at precision 38.
    let (p, s) = match op {
        Arith::Add | Arith::Sub => {
            let s = s1.max(s2);
            ((p1 - s1).max(p2 - s2) + s + 1, s)
        }
        Arith::Mul => (p1 + p2, s1 + s2),
        Arith::Div => {
            let s = 6.max(s1 + p2 + 1);
            (p1 - s1 + s2 + s, s)
        }
        Arith::Mod => {
            let s = s1.max(s2);
            ((p1 - s1).min(p2 - s2) + s, s)
        }
    };
    let (p, s) = adjust_precision_scale(p, s);
    // Integers travel as unscaled decimals with scale 0: same row representation.
    let num = Num::Dec {
        ls: s1 as u8,
        rs: s2 as u8,
        p,
        s,
    };
    Ok(Typed::new(
        Expr::Arith(op, num, Box::new(a.e), Box::new(b.e)),
        T::Decimal(p, s),
    ))
}

/// Flink's `adjustPrecisionScale`: a type within precision 38 stays; a wider one becomes
/// DECIMAL(38, s') keeping its integer digits where it can but at least min(s, 6) fraction
/// digits (so DECIMAL(38, 10) * DECIMAL(10, 2) is DECIMAL(38, 6)).
pub(crate) fn adjust_precision_scale(p: i32, s: i32) -> (u8, u8) {
    let max = i32::from(MAX_DECIMAL_PRECISION);
    if p <= max {
        return (p.max(1) as u8, s.clamp(0, max) as u8);
    }
    let int_digits = p - s;
    let s = (max - int_digits).max(s.min(6));
    (max as u8, s.clamp(0, max) as u8)
}

#[cfg(test)]
mod decimal_type_tests {
    use super::*;

    #[test]
    fn decimal_result_types_follow_flink_and_cap_at_38() {
        // Hand-computed from Flink's LogicalTypeMerging rules.
        assert_eq!(adjust_precision_scale(23, 3), (23, 3));
        // DECIMAL(38, 10) * DECIMAL(10, 2): (48, 12) → 36 integer digits, keep 6 fraction.
        assert_eq!(adjust_precision_scale(48, 12), (38, 6));
        // DECIMAL(38, 10) + DECIMAL(38, 10): (39, 10) → (38, 9).
        assert_eq!(adjust_precision_scale(39, 10), (38, 9));
        // A small scale is kept even when the integer digits overflow: (40, 2) → (38, 2).
        assert_eq!(adjust_precision_scale(40, 2), (38, 2));
        // DECIMAL(20, 2) / DECIMAL(10, 0): scale max(6, 2 + 10 + 1) = 13, precision 31.
        assert_eq!(adjust_precision_scale(20 - 2 + 13, 13), (31, 13));
    }
}
