//! SQL types (Flink's names and rules for the subset we support) and how their values are
//! held in a row: BOOLEAN as `Bool`, INT/BIGINT as `Int`, DOUBLE as `Float`, DECIMAL(p, s) as
//! `Int` holding the unscaled value (exact arithmetic; the scale is known from the type),
//! STRING as `Str`, TIMESTAMP(3) as `Int` epoch milliseconds (no time zone: the wall clock is
//! read as UTC), INTERVAL as `Int` milliseconds, ARRAY as `List`.

use std::fmt;

use serde::{Deserialize, Serialize};
use sqlparser::ast::{DataType, ExactNumberInfo, TimezoneInfo};
use sqlparser::tokenizer::Span;

use super::error::SqlError;

/// The largest DECIMAL precision a type may have (Flink's). Rows hold the unscaled value in
/// an `i64`, so values beyond 18 digits become NULL.
pub(crate) const MAX_DECIMAL_PRECISION: u8 = 38;

/// A column or expression type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SqlType {
    Boolean,
    Int,
    BigInt,
    Double,
    /// Precision and scale.
    Decimal(u8, u8),
    /// VARCHAR / STRING (lengths are accepted and not enforced, as in Flink's JSON format).
    String,
    /// TIMESTAMP(p) with p <= 3.
    Timestamp(u8),
    /// Day-time interval in milliseconds (literals only).
    Interval,
    /// The type of a bare NULL literal.
    Null,
    Array(Box<SqlType>),
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::Boolean => f.write_str("BOOLEAN"),
            SqlType::Int => f.write_str("INT"),
            SqlType::BigInt => f.write_str("BIGINT"),
            SqlType::Double => f.write_str("DOUBLE"),
            SqlType::Decimal(p, s) => write!(f, "DECIMAL({p}, {s})"),
            SqlType::String => f.write_str("STRING"),
            SqlType::Timestamp(p) => write!(f, "TIMESTAMP({p})"),
            SqlType::Interval => f.write_str("INTERVAL SECOND(3)"),
            SqlType::Null => f.write_str("NULL"),
            SqlType::Array(t) => write!(f, "ARRAY<{t}>"),
        }
    }
}

impl SqlType {
    /// INT, BIGINT, DECIMAL or DOUBLE.
    pub(crate) fn is_numeric(&self) -> bool {
        matches!(
            self,
            SqlType::Int | SqlType::BigInt | SqlType::Decimal(..) | SqlType::Double
        )
    }

    /// INT or BIGINT.
    pub(crate) fn is_integer(&self) -> bool {
        matches!(self, SqlType::Int | SqlType::BigInt)
    }

    /// The decimal type an exact number widens to (Flink: INT is DECIMAL(10, 0), BIGINT
    /// DECIMAL(19, 0)).
    pub(crate) fn as_decimal(&self) -> Option<(u8, u8)> {
        match self {
            SqlType::Int => Some((10, 0)),
            SqlType::BigInt => Some((19, 0)),
            SqlType::Decimal(p, s) => Some((*p, *s)),
            _ => None,
        }
    }

    /// Converts a parsed type; unsupported types are refused naming the type.
    pub(crate) fn from_ast(t: &DataType, at: Span) -> Result<SqlType, SqlError> {
        let unsupported = || {
            SqlError::span(
                at,
                format!(
                    "type {t} is not supported; use BOOLEAN, INT, BIGINT, DOUBLE, DECIMAL(p, s), \
                     STRING/VARCHAR, TIMESTAMP(3) or ARRAY<...> of these"
                ),
            )
        };
        Ok(match t {
            DataType::Boolean | DataType::Bool => SqlType::Boolean,
            DataType::Int(_) | DataType::Integer(_) => SqlType::Int,
            DataType::BigInt(_) => SqlType::BigInt,
            DataType::Double(_) | DataType::DoublePrecision => SqlType::Double,
            DataType::Decimal(info) | DataType::Numeric(info) | DataType::Dec(info) => {
                let (p, s) = match info {
                    ExactNumberInfo::None => (10, 0),
                    ExactNumberInfo::Precision(p) => (*p, 0),
                    ExactNumberInfo::PrecisionAndScale(p, s) => {
                        (*p, u64::try_from(*s).map_err(|_| unsupported())?)
                    }
                };
                if p == 0 || p > u64::from(MAX_DECIMAL_PRECISION) || s > p {
                    return Err(SqlError::span(
                        at,
                        format!("DECIMAL({p}, {s}) is not valid: precision must be 1 to 38 and scale at most the precision"),
                    ));
                }
                SqlType::Decimal(p as u8, s as u8)
            }
            DataType::Varchar(_)
            | DataType::String(_)
            | DataType::Text
            | DataType::CharVarying(_)
            | DataType::CharacterVarying(_) => SqlType::String,
            DataType::Timestamp(p, tz) => {
                if !matches!(tz, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) {
                    return Err(unsupported());
                }
                let p = p.unwrap_or(6);
                if p > 3 {
                    return Err(SqlError::span(
                        at,
                        format!("TIMESTAMP({p}) is not supported: use TIMESTAMP(3) (millisecond precision)"),
                    ));
                }
                SqlType::Timestamp(p as u8)
            }
            DataType::Array(sqlparser::ast::ArrayElemTypeDef::AngleBracket(inner)) => {
                SqlType::Array(Box::new(SqlType::from_ast(inner, at)?))
            }
            _ => return Err(unsupported()),
        })
    }
}
