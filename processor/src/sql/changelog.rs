//! Changelog rows between SQL operators, as Flink's `RowKind`: an updating result (an
//! unwindowed GROUP BY in a subquery) flows on as inserts, update-before / update-after
//! pairs and deletes, so an outer GROUP BY can take an old row's contribution back before
//! adding the new one.
//!
//! Whether a stream is a changelog is known when the query is planned (as Flink derives its
//! changelog mode), so only operators reading or writing an updating stream use this
//! encoding: the row (`Value::List`) with the kind's code appended as its last element.

use crate::value::Value;

/// What a row of a changelog does to the result it describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowKind {
    /// A new row (+I).
    Insert,
    /// The previous content of an updated row (-U): take it back.
    UpdateBefore,
    /// The new content of an updated row (+U).
    UpdateAfter,
    /// A row that is gone (-D).
    Delete,
}

impl RowKind {
    fn code(self) -> i64 {
        match self {
            RowKind::Insert => 0,
            RowKind::UpdateBefore => 1,
            RowKind::UpdateAfter => 2,
            RowKind::Delete => 3,
        }
    }

    fn from_code(c: i64) -> RowKind {
        match c {
            1 => RowKind::UpdateBefore,
            2 => RowKind::UpdateAfter,
            3 => RowKind::Delete,
            _ => RowKind::Insert,
        }
    }

    /// Does the row take a previous row back (-U, -D)?
    pub(crate) fn is_retraction(self) -> bool {
        matches!(self, RowKind::UpdateBefore | RowKind::Delete)
    }
}

/// The changelog row `row` of kind `kind`.
pub(crate) fn encode(mut row: Vec<Value>, kind: RowKind) -> Value {
    row.push(Value::Int(kind.code()));
    Value::List(row)
}

/// Takes the kind off a changelog row (a row without one reads as an insert).
pub(crate) fn split(row: &mut Vec<Value>) -> RowKind {
    match row.pop() {
        Some(Value::Int(c)) => RowKind::from_code(c),
        Some(other) => {
            row.push(other);
            RowKind::Insert
        }
        None => RowKind::Insert,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_rows() {
        for kind in [
            RowKind::Insert,
            RowKind::UpdateBefore,
            RowKind::UpdateAfter,
            RowKind::Delete,
        ] {
            let Value::List(mut row) = encode(vec![Value::str("a"), Value::Int(7)], kind) else {
                panic!("a list")
            };
            assert_eq!(split(&mut row), kind);
            assert_eq!(row, vec![Value::str("a"), Value::Int(7)]);
        }
    }
}
