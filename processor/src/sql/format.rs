//! Flink's `json` format for the supported types, and the text forms of timestamps and
//! decimals that casts and functions share.
//!
//! Input: missing fields and JSON null are NULL; TIMESTAMP(3) accepts Flink's default
//! `"yyyy-MM-dd HH:mm:ss[.fff]"` (`json.timestamp-format.standard` = 'SQL') and, for
//! robustness, ISO-8601 with `T` and epoch milliseconds; numbers in strings are accepted as
//! Flink's Jackson-based decoder does. Output: TIMESTAMP(3) is written the way Flink's
//! `SQL_TIMESTAMP_FORMAT` writes it (`appendFraction(NANO_OF_SECOND, 0, 9, true)`: the fraction
//! only when it is not zero, with as few digits as needed: `"2024-01-01 00:00:10"`,
//! `"2024-01-01 00:00:10.5"`). DECIMAL(p, s) is written as a JSON number with its declared
//! scale, as Flink's encoder writes a `BigDecimal` (Jackson's `BigDecimal.toString()`):
//! `908.000`, and scientific notation when the exponent is below -6 (`0.000000027` is
//! `2.7E-8`, a zero at scale 9 is `0E-9`); with `json.encode.decimal-as-plain-number` =
//! 'true' always plain (`BigDecimal.toPlainString()`).

use std::sync::Arc;

use crate::value::Value;

use super::types::SqlType;

/// Why a field could not be decoded (the record is skipped or the field set to NULL).
#[derive(Debug)]
pub(crate) struct BadField;

/// Decodes one JSON field into the row representation of `ty`.
pub(crate) fn decode_field(v: &Value, ty: &SqlType) -> Result<Value, BadField> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let text = v.as_str().map(str::trim);
    Ok(match ty {
        SqlType::Boolean => match (v, text) {
            (Value::Bool(b), _) => Value::Bool(*b),
            (_, Some(t)) if t.eq_ignore_ascii_case("true") => Value::Bool(true),
            (_, Some(t)) if t.eq_ignore_ascii_case("false") => Value::Bool(false),
            _ => return Err(BadField),
        },
        SqlType::Int | SqlType::BigInt => {
            let n = match (v, text) {
                (Value::Int(i), _) => *i,
                (Value::Float(f), _) if f.is_finite() && f.fract() == 0.0 => *f as i64,
                (_, Some(t)) => t.parse::<i64>().map_err(|_| BadField)?,
                _ => return Err(BadField),
            };
            if *ty == SqlType::Int && i32::try_from(n).is_err() {
                return Err(BadField);
            }
            Value::Int(n)
        }
        SqlType::Double => match (v, text) {
            (Value::Int(i), _) => Value::Float(*i as f64),
            (Value::Float(f), _) => Value::Float(*f),
            (_, Some(t)) => Value::Float(t.parse::<f64>().map_err(|_| BadField)?),
            _ => return Err(BadField),
        },
        SqlType::Decimal(p, s) => {
            let unscaled = match (v, text) {
                (Value::Int(i), _) => parse_decimal(&i.to_string(), *s),
                // The shortest text of the double is what the producer wrote.
                (Value::Float(f), _) => parse_decimal(&f.to_string(), *s),
                (_, Some(t)) => parse_decimal(t, *s),
                _ => None,
            };
            match unscaled {
                Some(u) if fits_precision(u, *p) => Value::Int(u),
                _ => return Err(BadField),
            }
        }
        SqlType::String => match v {
            Value::Str(s) => Value::Str(Arc::clone(s)),
            other => Value::str(&String::from_utf8_lossy(&other.to_json())),
        },
        SqlType::Timestamp(_) => match crate::plan::parse_event_time(v) {
            Some(ms) => Value::Int(ms),
            None => return Err(BadField),
        },
        SqlType::Array(inner) => match v {
            Value::List(items) => Value::List(
                items
                    .iter()
                    .map(|i| decode_field(i, inner))
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(BadField),
        },
        SqlType::Interval | SqlType::Null => return Err(BadField),
    })
}

/// Encodes a row value of type `ty` as Flink's json format writes it; `plain_decimals`:
/// 'json.encode.decimal-as-plain-number'.
pub(crate) fn encode_field(v: &Value, ty: &SqlType, plain_decimals: bool) -> Value {
    match (v, ty) {
        (Value::Null, _) => Value::Null,
        (Value::Int(ms), SqlType::Timestamp(_)) => Value::str(&format_timestamp(*ms, None)),
        (Value::Int(u), SqlType::Decimal(_, s)) => Value::Number(Arc::from(if plain_decimals {
            format_decimal(*u, *s)
        } else {
            decimal_text(*u, *s)
        })),
        (Value::List(items), SqlType::Array(inner)) => Value::List(
            items
                .iter()
                .map(|i| encode_field(i, inner, plain_decimals))
                .collect(),
        ),
        (other, _) => other.clone(),
    }
}

/// Java's `BigDecimal.toString()` of `unscaled × 10^-scale`: plain with exactly `scale`
/// fraction digits, unless the adjusted exponent (the power of ten of the first digit) is
/// below -6; then one digit, the rest as a fraction, and `E-n` (`2.7E-8`, `0E-9`).
pub(crate) fn decimal_text(unscaled: i64, scale: u8) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let adjusted = digits.len() as i64 - 1 - i64::from(scale);
    if adjusted >= -6 {
        return format_decimal(unscaled, scale);
    }
    let sign = if unscaled < 0 { "-" } else { "" };
    let (first, rest) = digits.split_at(1);
    let dot = if rest.is_empty() { "" } else { "." };
    format!("{sign}{first}{dot}{rest}E{adjusted}")
}

/// Does an unscaled value have at most `p` digits?
pub(crate) fn fits_precision(unscaled: i64, p: u8) -> bool {
    p >= 19 || unscaled.unsigned_abs() < 10u64.pow(u32::from(p))
}

/// Parses decimal text (`-12.345`, `1e3`) into an unscaled value at `scale`, rounding half
/// up (away from zero) as Flink's decimal casts do.
pub(crate) fn parse_decimal(text: &str, scale: u8) -> Option<i64> {
    let t = text.trim();
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i32>().ok()?),
        None => (t, 0),
    };
    let (neg, digits) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // value = all_digits * 10^(exp - frac.len()); we want value * 10^scale.
    let shift = exp - frac.len() as i32 + i32::from(scale);
    let mut n: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        n = n.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    let n = if shift >= 0 {
        n.checked_mul(10i128.checked_pow(shift as u32)?)?
    } else {
        let d = 10i128
            .checked_pow(shift.unsigned_abs())
            .unwrap_or(i128::MAX);
        (n + d / 2) / d
    };
    let n = if neg { -n } else { n };
    i64::try_from(n).ok()
}

/// Decimal text with exactly `scale` fraction digits (Java's `BigDecimal.toPlainString`).
pub(crate) fn format_decimal(unscaled: i64, scale: u8) -> String {
    if scale == 0 {
        return unscaled.to_string();
    }
    let digits = unscaled.unsigned_abs().to_string();
    let s = usize::from(scale);
    let padded = format!("{digits:0>width$}", width = s + 1);
    let (int, frac) = padded.split_at(padded.len() - s);
    let sign = if unscaled < 0 { "-" } else { "" };
    format!("{sign}{int}.{frac}")
}

/// Rescales an unscaled decimal from scale `from` to `to`, rounding half up.
pub(crate) fn rescale(unscaled: i64, from: u8, to: u8) -> Option<i64> {
    let v = i128::from(unscaled);
    let r = if to >= from {
        v.checked_mul(10i128.checked_pow(u32::from(to - from))?)?
    } else {
        div_half_up(v, 10i128.checked_pow(u32::from(from - to))?)?
    };
    i64::try_from(r).ok()
}

/// `a / b` rounded half away from zero (BigDecimal's HALF_UP).
pub(crate) fn div_half_up(a: i128, b: i128) -> Option<i128> {
    if b == 0 {
        return None;
    }
    let q = a.checked_div(b)?;
    let r = a.checked_rem(b)?;
    if r.checked_mul(2)?.abs() >= b.abs() {
        Some(if (a < 0) != (b < 0) { q - 1 } else { q + 1 })
    } else {
        Some(q)
    }
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The fields of a timestamp in milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Civil {
    pub(crate) year: i64,
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) second: u32,
    pub(crate) millis: u32,
    /// ISO day of week, Monday = 1.
    pub(crate) weekday: u32,
    /// Day of the year, 1-based.
    pub(crate) yday: u32,
}

pub(crate) fn civil(ms: i64) -> Civil {
    let days = ms.div_euclid(86_400_000);
    let rest = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let jan1 = days_from_civil(year, 1, 1);
    Civil {
        year,
        month,
        day,
        hour: (rest / 3_600_000) as u32,
        minute: (rest / 60_000 % 60) as u32,
        second: (rest / 1000 % 60) as u32,
        millis: (rest % 1000) as u32,
        weekday: ((days + 3).rem_euclid(7) + 1) as u32,
        yday: (days - jan1 + 1) as u32,
    }
}

/// (year, month, day) → days since 1970-01-01.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let (m, d) = (i64::from(m), i64::from(d));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `yyyy-MM-dd HH:mm:ss` plus the fraction: with `digits = None` as Flink's JSON writer does
/// (minimal digits, none when zero); with `Some(n)` exactly n digits (CAST to STRING).
pub(crate) fn format_timestamp(ms: i64, digits: Option<u8>) -> String {
    let c = civil(ms);
    let mut s = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    );
    let frac = format!("{:03}", c.millis);
    match digits {
        None if c.millis != 0 => {
            s.push('.');
            s.push_str(frac.trim_end_matches('0'));
        }
        Some(n) if n > 0 => {
            s.push('.');
            s.push_str(&frac[..usize::from(n.min(3))]);
        }
        _ => {}
    }
    s
}

/// Java's `Double.toString`: plain between 10^-3 and 10^7, else `d.dddE±n`; what Flink's
/// CAST(double AS STRING) prints.
pub(crate) fn java_double(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let a = f.abs();
    if a == 0.0 || (1e-3..1e7).contains(&a) {
        let s = format!("{f}");
        return if s.contains('.') { s } else { format!("{s}.0") };
    }
    let s = format!("{f:e}"); // e.g. 1.5e10, 1e-5
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let m = if m.contains('.') {
        m.to_string()
    } else {
        format!("{m}.0")
    };
    format!("{m}E{e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_like_flinks_json_format() {
        assert_eq!(
            format_timestamp(1_704_067_210_000, None),
            "2024-01-01 00:00:10"
        );
        assert_eq!(
            format_timestamp(1_704_067_210_500, None),
            "2024-01-01 00:00:10.5"
        );
        assert_eq!(
            format_timestamp(1_704_067_210_120, None),
            "2024-01-01 00:00:10.12"
        );
        assert_eq!(
            format_timestamp(1_704_067_210_123, None),
            "2024-01-01 00:00:10.123"
        );
        assert_eq!(
            format_timestamp(1_704_067_210_000, Some(3)),
            "2024-01-01 00:00:10.000"
        );
        assert_eq!(format_timestamp(-1, None), "1969-12-31 23:59:59.999");
        let c = civil(1_704_067_210_000);
        assert_eq!((c.weekday, c.yday), (1, 1), "2024-01-01 was a Monday");
    }

    #[test]
    fn decimals_parse_round_and_print_exactly() {
        assert_eq!(parse_decimal("12.345", 2), Some(1235));
        assert_eq!(parse_decimal("-12.345", 2), Some(-1235));
        assert_eq!(parse_decimal("1e3", 1), Some(10_000));
        assert_eq!(parse_decimal("0.908", 3), Some(908));
        assert_eq!(parse_decimal("x", 3), None);
        assert_eq!(format_decimal(908_000, 3), "908.000");
        // BigDecimal.toString(): plain down to an adjusted exponent of -6, then scientific.
        assert_eq!(decimal_text(908_000, 3), "908.000");
        assert_eq!(decimal_text(-5, 2), "-0.05");
        assert_eq!(decimal_text(1_000, 9), "0.000001000");
        assert_eq!(decimal_text(27, 9), "2.7E-8");
        assert_eq!(decimal_text(-27, 9), "-2.7E-8");
        assert_eq!(decimal_text(1, 7), "1E-7");
        assert_eq!(decimal_text(0, 9), "0E-9");
        assert_eq!(decimal_text(0, 6), "0.000000");
        assert_eq!(decimal_text(0, 0), "0");
        assert_eq!(
            decimal_text(454_621_864_049_246_170, 0),
            "454621864049246170"
        );
        assert_eq!(format_decimal(-5, 2), "-0.05");
        assert_eq!(rescale(1235, 2, 1), Some(124));
        assert_eq!(rescale(-1235, 2, 1), Some(-124));
        assert_eq!(div_half_up(7, 2), Some(4));
        assert_eq!(div_half_up(-7, 2), Some(-4));
    }

    #[test]
    fn doubles_print_like_java() {
        assert_eq!(java_double(1.0), "1.0");
        assert_eq!(java_double(0.5), "0.5");
        assert_eq!(java_double(1e10), "1.0E10");
        assert_eq!(java_double(1.5e-5), "1.5E-5");
    }
}
