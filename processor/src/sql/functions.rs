//! Scalar functions in Flink's names and with Flink's types.

use sqlparser::ast::DateTimeField;
use sqlparser::tokenizer::Span;

use crate::value::Value;

use super::error::SqlError;
use super::expr::{arith, coerce, common_type, Arith, Expr, Num, Typed};
use super::format::{civil, days_from_civil};
use super::types::SqlType;

/// A field of a timestamp (EXTRACT, YEAR(), HOUR(), ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeField {
    Year,
    Quarter,
    Month,
    Week,
    Day,
    DayOfWeek,
    DayOfYear,
    Hour,
    Minute,
    Second,
    Millisecond,
    Epoch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Both,
    Leading,
    Trailing,
}

/// A scalar function.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Func {
    Upper,
    Lower,
    CharLength,
    Substring,
    /// NULL if any argument is NULL.
    Concat,
    /// Skips NULL arguments.
    ConcatWs,
    Trim(Side),
    Replace,
    /// SPLIT_INDEX(s, delimiter, n): the n-th (0-based) piece, NULL past the end.
    SplitIndex,
    Position,
    Abs(Num),
    /// FLOOR/CEIL of a number: (ceil?, scale of a decimal input).
    Round(bool, Option<u8>),
    DateFormat,
    Extract(TimeField),
    /// FLOOR/CEIL(ts TO unit): (ceil?, unit).
    TimeRound(bool, TimeUnit),
    Coalesce,
    If,
    NullIf,
    /// Epoch seconds (0) or milliseconds (3) to TIMESTAMP(3).
    EpochToTimestamp(bool),
}

/// Units timestamps can be rounded to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeUnit {
    Millis(i64),
    Month,
    Year,
}

fn want(
    args: &[Typed],
    n: std::ops::RangeInclusive<usize>,
    name: &str,
    span: Span,
) -> Result<(), SqlError> {
    if n.contains(&args.len()) {
        return Ok(());
    }
    let expected = if n.start() == n.end() {
        format!("{}", n.start())
    } else {
        format!("{} to {}", n.start(), n.end())
    };
    Err(SqlError::span(
        span,
        format!("{name} takes {expected} argument(s), not {}", args.len()),
    ))
}

fn check(t: &Typed, ok: bool, what: &str, name: &str, span: Span) -> Result<(), SqlError> {
    if ok || t.ty == SqlType::Null {
        Ok(())
    } else {
        Err(SqlError::span(
            span,
            format!("{name} needs {what}, not {}", t.ty),
        ))
    }
}

fn is_str(t: &Typed) -> bool {
    t.ty == SqlType::String
}

fn is_ts(t: &Typed) -> bool {
    matches!(t.ty, SqlType::Timestamp(_))
}

/// Type-checks a call of `name` (upper case) and builds it.
pub(crate) fn compile_call(
    name: &str,
    mut args: Vec<Typed>,
    span: Span,
) -> Result<Typed, SqlError> {
    use SqlType as T;
    let call = |f: Func, args: Vec<Typed>, ty: SqlType| {
        Ok(Typed::new(
            Expr::Call(f, args.into_iter().map(|a| a.e).collect()),
            ty,
        ))
    };
    match name {
        "UPPER" | "LOWER" | "CHAR_LENGTH" | "CHARACTER_LENGTH" => {
            want(&args, 1..=1, name, span)?;
            check(&args[0], is_str(&args[0]), "a string", name, span)?;
            match name {
                "UPPER" => call(Func::Upper, args, T::String),
                "LOWER" => call(Func::Lower, args, T::String),
                _ => call(Func::CharLength, args, T::Int),
            }
        }
        "SUBSTRING" | "SUBSTR" => {
            want(&args, 2..=3, name, span)?;
            check(&args[0], is_str(&args[0]), "a string", name, span)?;
            for a in &args[1..] {
                check(a, a.ty.is_integer(), "integer positions", name, span)?;
            }
            call(Func::Substring, args, T::String)
        }
        "CONCAT" | "CONCAT_WS" => {
            want(&args, 1..=usize::MAX, name, span)?;
            for a in &args {
                check(a, is_str(a), "strings", name, span)?;
            }
            call(if name == "CONCAT" { Func::Concat } else { Func::ConcatWs }, args, T::String)
        }
        "TRIM" | "LTRIM" | "RTRIM" | "BTRIM" => {
            want(&args, 1..=2, name, span)?;
            for a in &args {
                check(a, is_str(a), "strings", name, span)?;
            }
            if args.len() == 1 {
                args.push(Typed::new(Expr::Lit(Value::str(" ")), T::String));
            }
            let side = match name {
                "LTRIM" => Side::Leading,
                "RTRIM" => Side::Trailing,
                _ => Side::Both,
            };
            call(Func::Trim(side), args, T::String)
        }
        "REPLACE" => {
            want(&args, 3..=3, name, span)?;
            for a in &args {
                check(a, is_str(a), "strings", name, span)?;
            }
            call(Func::Replace, args, T::String)
        }
        "SPLIT_INDEX" => {
            want(&args, 3..=3, name, span)?;
            check(&args[0], is_str(&args[0]), "a string", name, span)?;
            check(&args[1], is_str(&args[1]), "a delimiter string", name, span)?;
            check(&args[2], args[2].ty.is_integer(), "an integer index", name, span)?;
            call(Func::SplitIndex, args, T::String)
        }
        "POSITION" | "LOCATE" => {
            want(&args, 2..=2, name, span)?;
            for a in &args {
                check(a, is_str(a), "strings", name, span)?;
            }
            call(Func::Position, args, T::Int)
        }
        "MOD" => {
            want(&args, 2..=2, name, span)?;
            let b = args.pop().expect("two arguments");
            let a = args.pop().expect("two arguments");
            for t in [&a, &b] {
                check(t, t.ty.is_integer() || matches!(t.ty, T::Decimal(..)), "exact numbers", name, span)?;
            }
            arith(Arith::Mod, a, b, span)
        }
        "ABS" => {
            want(&args, 1..=1, name, span)?;
            check(&args[0], args[0].ty.is_numeric(), "a number", name, span)?;
            let ty = args[0].ty.clone();
            call(Func::Abs(super::expr::num_of(&ty)), args, ty)
        }
        "FLOOR" | "CEIL" | "CEILING" => {
            want(&args, 1..=1, name, span)?;
            check(&args[0], args[0].ty.is_numeric(), "a number", name, span)?;
            let ceil = name != "FLOOR";
            let (ty, scale) = match args[0].ty {
                T::Decimal(p, s) => (T::Decimal((p - s + 1).clamp(1, 38), 0), Some(s)),
                ref t => (t.clone(), None),
            };
            call(Func::Round(ceil, scale), args, ty)
        }
        "DATE_FORMAT" => {
            want(&args, 2..=2, name, span)?;
            if is_str(&args[0]) {
                // DATE_FORMAT('2024-01-01 10:00:00', ...) reads the string as a timestamp.
                let a = args.remove(0);
                args.insert(0, coerce(a, &T::Timestamp(3)));
            }
            check(&args[0], is_ts(&args[0]), "a TIMESTAMP", name, span)?;
            check(&args[1], is_str(&args[1]), "a format string", name, span)?;
            call(Func::DateFormat, args, T::String)
        }
        "YEAR" | "QUARTER" | "MONTH" | "WEEK" | "DAYOFMONTH" | "DAYOFWEEK" | "DAYOFYEAR" | "HOUR" | "MINUTE" | "SECOND" => {
            want(&args, 1..=1, name, span)?;
            check(&args[0], is_ts(&args[0]), "a TIMESTAMP", name, span)?;
            let f = match name {
                "YEAR" => TimeField::Year,
                "QUARTER" => TimeField::Quarter,
                "MONTH" => TimeField::Month,
                "WEEK" => TimeField::Week,
                "DAYOFMONTH" => TimeField::Day,
                "DAYOFWEEK" => TimeField::DayOfWeek,
                "DAYOFYEAR" => TimeField::DayOfYear,
                "HOUR" => TimeField::Hour,
                "MINUTE" => TimeField::Minute,
                _ => TimeField::Second,
            };
            call(Func::Extract(f), args, T::BigInt)
        }
        "COALESCE" | "IFNULL" => {
            want(&args, 1..=usize::MAX, name, span)?;
            let ty = common_of(&args, name, span)?;
            let args = args.into_iter().map(|a| coerce(a, &ty)).collect();
            call(Func::Coalesce, args, ty)
        }
        "IF" => {
            want(&args, 3..=3, name, span)?;
            check(&args[0], args[0].ty == T::Boolean, "a BOOLEAN condition", name, span)?;
            let ty = common_of(&args[1..], name, span)?;
            let mut it = args.into_iter();
            let c = it.next().expect("three arguments");
            let rest: Vec<Typed> = it.map(|a| coerce(a, &ty)).collect();
            call(Func::If, std::iter::once(c).chain(rest).collect(), ty)
        }
        "NULLIF" => {
            want(&args, 2..=2, name, span)?;
            let ty = common_of(&args, name, span)?;
            let ty0 = args[0].ty.clone();
            let args = args.into_iter().map(|a| coerce(a, &ty)).collect();
            call(Func::NullIf, args, if ty0 == T::Null { ty } else { ty0 })
        }
        "TO_TIMESTAMP" => {
            want(&args, 1..=1, name, span)?;
            check(&args[0], is_str(&args[0]), "a string in 'yyyy-MM-dd HH:mm:ss' form (a format argument is not supported)", name, span)?;
            Ok(coerce(args.remove(0), &T::Timestamp(3)))
        }
        "TO_TIMESTAMP_LTZ" => {
            want(&args, 2..=2, name, span)?;
            check(&args[0], args[0].ty.is_integer(), "epoch seconds or milliseconds", name, span)?;
            let millis = match &args[1].e {
                Expr::Lit(Value::Int(0)) => false,
                Expr::Lit(Value::Int(3)) => true,
                _ => return Err(SqlError::span(span, "TO_TIMESTAMP_LTZ needs precision 0 (seconds) or 3 (milliseconds)")),
            };
            args.truncate(1);
            call(Func::EpochToTimestamp(millis), args, T::Timestamp(3))
        }
        "TUMBLE_START" | "TUMBLE_END" | "TUMBLE_ROWTIME" | "HOP_START" | "HOP_END" | "HOP_ROWTIME" | "SESSION_START" | "SESSION_END" | "SESSION_ROWTIME" => Err(SqlError::span(
            span,
            format!("{name} is only allowed in the SELECT list of a query grouped by the matching window function"),
        )),
        "TUMBLE" | "HOP" | "SESSION" | "CUMULATE" => Err(SqlError::span(
            span,
            format!("{name}(...) here is not supported: use FROM TABLE({name}(TABLE t, DESCRIPTOR(ts), ...)) or GROUP BY {name}(ts, ...)"),
        )),
        "ROW_NUMBER" | "RANK" | "DENSE_RANK" | "LAG" | "LEAD" => Err(SqlError::span(span, format!("{name} (OVER windows, Top-N) is not supported yet"))),
        _ => Err(SqlError::span(span, format!("function {name} is not supported"))),
    }
}

fn common_of(args: &[Typed], name: &str, span: Span) -> Result<SqlType, SqlError> {
    let mut ty = SqlType::Null;
    for a in args {
        ty = common_type(&ty, &a.ty).ok_or_else(|| {
            SqlError::span(
                span,
                format!("{name} mixes {ty} and {}, which have no common type", a.ty),
            )
        })?;
    }
    Ok(ty)
}

/// EXTRACT(field FROM ts).
pub(crate) fn extract(field: &DateTimeField, t: Typed, span: Span) -> Result<Typed, SqlError> {
    use DateTimeField as D;
    let f = match field {
        D::Year | D::Years => TimeField::Year,
        D::Quarter => TimeField::Quarter,
        D::Month | D::Months => TimeField::Month,
        D::Week(_) | D::Weeks => TimeField::Week,
        D::Day | D::Days => TimeField::Day,
        D::Dow | D::DayOfWeek => TimeField::DayOfWeek,
        D::Doy | D::DayOfYear => TimeField::DayOfYear,
        D::Hour | D::Hours => TimeField::Hour,
        D::Minute | D::Minutes => TimeField::Minute,
        D::Second | D::Seconds => TimeField::Second,
        D::Millisecond | D::Milliseconds => TimeField::Millisecond,
        D::Epoch => TimeField::Epoch,
        other => {
            return Err(SqlError::span(
                span,
                format!("EXTRACT({other} FROM ...) is not supported"),
            ))
        }
    };
    if !matches!(t.ty, SqlType::Timestamp(_) | SqlType::Null) {
        return Err(SqlError::span(
            span,
            format!("EXTRACT needs a TIMESTAMP, not {}", t.ty),
        ));
    }
    Ok(Typed::new(
        Expr::Call(Func::Extract(f), vec![t.e]),
        SqlType::BigInt,
    ))
}

/// FLOOR/CEIL(ts TO unit).
pub(crate) fn floor_ceil_time(
    name: &str,
    field: &DateTimeField,
    t: Typed,
    span: Span,
) -> Result<Typed, SqlError> {
    use DateTimeField as D;
    let unit = match field {
        D::Second | D::Seconds => TimeUnit::Millis(1_000),
        D::Minute | D::Minutes => TimeUnit::Millis(60_000),
        D::Hour | D::Hours => TimeUnit::Millis(3_600_000),
        D::Day | D::Days => TimeUnit::Millis(86_400_000),
        D::Month | D::Months => TimeUnit::Month,
        D::Year | D::Years => TimeUnit::Year,
        other => {
            return Err(SqlError::span(
                span,
                format!("{name}(... TO {other}) is not supported"),
            ))
        }
    };
    if !matches!(t.ty, SqlType::Timestamp(_)) {
        return Err(SqlError::span(
            span,
            format!("{name}(... TO {field}) needs a TIMESTAMP, not {}", t.ty),
        ));
    }
    let ty = t.ty.clone();
    Ok(Typed::new(
        Expr::Call(Func::TimeRound(name != "FLOOR", unit), vec![t.e]),
        ty,
    ))
}

/// Runs a function on evaluated arguments.
pub(crate) fn call(f: &Func, args: Vec<Value>) -> Value {
    let s = |i: usize| args.get(i).and_then(Value::as_str);
    let n = |i: usize| args.get(i).and_then(Value::as_i64);
    match f {
        Func::Coalesce => args
            .into_iter()
            .find(|a| !a.is_null())
            .unwrap_or(Value::Null),
        Func::If => {
            let mut it = args.into_iter();
            let c = it.next().unwrap_or_default();
            let (a, b) = (it.next().unwrap_or_default(), it.next().unwrap_or_default());
            if c == Value::Bool(true) {
                a
            } else {
                b
            }
        }
        Func::NullIf => match (args.first(), args.get(1)) {
            (Some(a), Some(b)) if !a.is_null() && a.total_cmp(b) == std::cmp::Ordering::Equal => {
                Value::Null
            }
            (Some(a), _) => a.clone(),
            _ => Value::Null,
        },
        Func::ConcatWs => {
            let Some(sep) = s(0) else { return Value::Null };
            let parts: Vec<&str> = args[1..].iter().filter_map(Value::as_str).collect();
            Value::str(&parts.join(sep))
        }
        _ if args.iter().any(Value::is_null) => Value::Null,
        Func::Upper => s(0).map_or(Value::Null, |x| Value::str(&x.to_uppercase())),
        Func::Lower => s(0).map_or(Value::Null, |x| Value::str(&x.to_lowercase())),
        Func::CharLength => s(0).map_or(Value::Null, |x| Value::Int(x.chars().count() as i64)),
        Func::Substring => {
            let Some(x) = s(0) else { return Value::Null };
            let chars: Vec<char> = x.chars().collect();
            let len = chars.len() as i64;
            let start = n(1).unwrap_or(1);
            // 1-based; a negative start counts from the end (as in Flink).
            let from = if start > 0 {
                start - 1
            } else if start < 0 {
                len.saturating_add(start).max(0)
            } else {
                0
            };
            let to = match n(2) {
                Some(l) if l < 0 => return Value::Null,
                Some(l) => from.saturating_add(l).min(len),
                None => len,
            };
            if from >= to {
                return Value::str("");
            }
            Value::str(&chars[from as usize..to as usize].iter().collect::<String>())
        }
        Func::Concat => Value::str(&args.iter().filter_map(Value::as_str).collect::<String>()),
        Func::Trim(side) => {
            let (Some(x), Some(chars)) = (s(0), s(1)) else {
                return Value::Null;
            };
            let set: Vec<char> = chars.chars().collect();
            let m = |c: char| set.contains(&c);
            Value::str(match side {
                Side::Both => x.trim_matches(m),
                Side::Leading => x.trim_start_matches(m),
                Side::Trailing => x.trim_end_matches(m),
            })
        }
        Func::Replace => match (s(0), s(1), s(2)) {
            (Some(x), Some(a), Some(b)) if !a.is_empty() => Value::str(&x.replace(a, b)),
            (Some(x), Some(_), Some(_)) => Value::str(x),
            _ => Value::Null,
        },
        Func::SplitIndex => match (s(0), s(1), n(2)) {
            (Some(x), Some(d), Some(i)) if !d.is_empty() && i >= 0 => {
                x.split(d).nth(i as usize).map_or(Value::Null, Value::str)
            }
            _ => Value::Null,
        },
        Func::Position => match (s(0), s(1)) {
            (Some(needle), Some(hay)) => Value::Int(match hay.find(needle) {
                Some(b) => hay[..b].chars().count() as i64 + 1,
                None => 0,
            }),
            _ => Value::Null,
        },
        Func::Abs(num) => match (&args[0], num) {
            (Value::Int(i), Num::I32) => Value::Int(i64::from((*i as i32).wrapping_abs())),
            (Value::Int(i), _) => Value::Int(i.wrapping_abs()),
            (Value::Float(f), _) => Value::Float(f.abs()),
            _ => Value::Null,
        },
        Func::Round(ceil, scale) => match (&args[0], scale) {
            (Value::Float(f), _) => Value::Float(if *ceil { f.ceil() } else { f.floor() }),
            (Value::Int(u), Some(s)) => {
                let Some(d) = 10i64.checked_pow(u32::from(*s)) else {
                    // |u| < 10^19 <= 10^s: the value is within (-1, 1).
                    return Value::Int(if *ceil && *u > 0 {
                        1
                    } else if !*ceil && *u < 0 {
                        -1
                    } else {
                        0
                    });
                };
                let q = u.div_euclid(d);
                Value::Int(if *ceil && u.rem_euclid(d) != 0 {
                    q + 1
                } else {
                    q
                })
            }
            (v, _) => v.clone(),
        },
        Func::DateFormat => match (n(0), s(1)) {
            (Some(ms), Some(fmt)) => Value::str(&date_format(ms, fmt)),
            _ => Value::Null,
        },
        Func::Extract(field) => {
            let Some(ms) = n(0) else { return Value::Null };
            let c = civil(ms);
            Value::Int(match field {
                TimeField::Year => c.year,
                TimeField::Quarter => i64::from((c.month - 1) / 3 + 1),
                TimeField::Month => i64::from(c.month),
                TimeField::Week => iso_week(ms),
                TimeField::Day => i64::from(c.day),
                // SQL: Sunday = 1 ... Saturday = 7.
                TimeField::DayOfWeek => i64::from(c.weekday % 7 + 1),
                TimeField::DayOfYear => i64::from(c.yday),
                TimeField::Hour => i64::from(c.hour),
                TimeField::Minute => i64::from(c.minute),
                TimeField::Second => i64::from(c.second),
                TimeField::Millisecond => i64::from(c.second * 1000 + c.millis),
                TimeField::Epoch => ms.div_euclid(1000),
            })
        }
        Func::TimeRound(ceil, unit) => {
            let Some(ms) = n(0) else { return Value::Null };
            let floor = match unit {
                TimeUnit::Millis(u) => ms - ms.rem_euclid(*u),
                TimeUnit::Month => {
                    let c = civil(ms);
                    days_from_civil(c.year, c.month, 1).saturating_mul(86_400_000)
                }
                TimeUnit::Year => days_from_civil(civil(ms).year, 1, 1).saturating_mul(86_400_000),
            };
            if !ceil || floor == ms {
                return Value::Int(floor);
            }
            Value::Int(match unit {
                TimeUnit::Millis(u) => floor.saturating_add(*u),
                TimeUnit::Month => {
                    let c = civil(ms);
                    let (y, m) = if c.month == 12 {
                        (c.year + 1, 1)
                    } else {
                        (c.year, c.month + 1)
                    };
                    days_from_civil(y, m, 1).saturating_mul(86_400_000)
                }
                TimeUnit::Year => {
                    days_from_civil(civil(ms).year + 1, 1, 1).saturating_mul(86_400_000)
                }
            })
        }
        Func::EpochToTimestamp(millis) => match n(0) {
            Some(v) if *millis => Value::Int(v),
            Some(v) => Value::Int(v.saturating_mul(1000)),
            None => Value::Null,
        },
    }
}

/// ISO-8601 week of the year.
fn iso_week(ms: i64) -> i64 {
    let c = civil(ms);
    let days = ms.div_euclid(86_400_000);
    // The Thursday of this week decides the year.
    let thursday = days - i64::from(c.weekday) + 4;
    let ty = civil(thursday.saturating_mul(86_400_000)).year;
    let jan1 = days_from_civil(ty, 1, 1);
    (thursday - jan1) / 7 + 1
}

/// Formats with Java `SimpleDateFormat` letters (y M d H h m s S a E, quoted text).
pub(crate) fn date_format(ms: i64, fmt: &str) -> String {
    let c = civil(ms);
    let chars: Vec<char> = fmt.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        if ch == '\'' {
            // Quoted literal; '' is a quote.
            let mut j = i + 1;
            if chars.get(j) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            while j < chars.len() && chars[j] != '\'' {
                out.push(chars[j]);
                j += 1;
            }
            i = j + 1;
            continue;
        }
        if !ch.is_ascii_alphabetic() {
            out.push(ch);
            i += 1;
            continue;
        }
        let mut run = 1;
        while chars.get(i + run) == Some(&ch) {
            run += 1;
        }
        let num = |v: i64| format!("{v:0run$}");
        match ch {
            'y' if run == 2 => out.push_str(&format!("{:02}", c.year.rem_euclid(100))),
            'y' => out.push_str(&num(c.year)),
            'M' if run >= 3 => {
                const NAMES: [&str; 12] = [
                    "January",
                    "February",
                    "March",
                    "April",
                    "May",
                    "June",
                    "July",
                    "August",
                    "September",
                    "October",
                    "November",
                    "December",
                ];
                let name = NAMES[(c.month - 1) as usize];
                out.push_str(if run == 3 { &name[..3] } else { name });
            }
            'M' => out.push_str(&num(i64::from(c.month))),
            'd' => out.push_str(&num(i64::from(c.day))),
            'D' => out.push_str(&num(i64::from(c.yday))),
            'H' => out.push_str(&num(i64::from(c.hour))),
            'h' => out.push_str(&num(i64::from((c.hour + 11) % 12 + 1))),
            'm' => out.push_str(&num(i64::from(c.minute))),
            's' => out.push_str(&num(i64::from(c.second))),
            'S' => {
                let ms3 = format!("{:03}", c.millis);
                out.push_str(&if run <= 3 {
                    ms3[..run].to_string()
                } else {
                    format!("{ms3:0<run$}")
                });
            }
            'a' => out.push_str(if c.hour < 12 { "AM" } else { "PM" }),
            'E' => {
                const DAYS: [&str; 7] = [
                    "Monday",
                    "Tuesday",
                    "Wednesday",
                    "Thursday",
                    "Friday",
                    "Saturday",
                    "Sunday",
                ];
                let name = DAYS[(c.weekday - 1) as usize];
                out.push_str(if run <= 3 { &name[..3] } else { name });
            }
            other => {
                for _ in 0..run {
                    out.push(other);
                }
            }
        }
        i += run;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_format_uses_java_letters() {
        let ms = 1_704_103_510_123; // 2024-01-01 10:05:10.123
        assert_eq!(
            date_format(ms, "yyyy-MM-dd HH:mm:ss.SSS"),
            "2024-01-01 10:05:10.123"
        );
        assert_eq!(date_format(ms, "HH:mm"), "10:05");
        assert_eq!(date_format(ms, "yyyy-MM-dd'T'HH"), "2024-01-01T10");
        assert_eq!(date_format(ms, "EEE, d MMM yy"), "Mon, 1 Jan 24");
    }

    #[test]
    fn substring_and_extract() {
        let sub = |s: &str, a: i64, l: Option<i64>| {
            let mut args = vec![Value::str(s), Value::Int(a)];
            args.extend(l.map(Value::Int));
            call(&Func::Substring, args)
        };
        assert_eq!(sub("hello", 2, Some(3)), Value::str("ell"));
        assert_eq!(sub("hello", 2, None), Value::str("ello"));
        assert_eq!(sub("hello", -3, Some(2)), Value::str("ll"));
        let ms = Value::Int(1_704_103_510_123);
        assert_eq!(
            call(&Func::Extract(TimeField::Hour), vec![ms.clone()]),
            Value::Int(10)
        );
        assert_eq!(
            call(&Func::Extract(TimeField::DayOfWeek), vec![ms.clone()]),
            Value::Int(2)
        );
        assert_eq!(
            call(&Func::Extract(TimeField::Week), vec![ms]),
            Value::Int(1)
        );
    }
}
