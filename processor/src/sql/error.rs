//! The SQL front end's error: a sentence naming the construct, with its place in the script.

use sqlparser::parser::ParserError;
use sqlparser::tokenizer::{Location, Span};
use thiserror::Error;

/// A statement could not be run or planned. `Display` reads "line 3, column 8: ...", so a
/// user can find the construct; `line` is 0 when the problem has no single place (e.g. a
/// missing `WITH` option).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", self.render())]
pub struct SqlError {
    /// 1-based line of the construct (0: no position).
    pub line: u64,
    /// 1-based column of the construct.
    pub column: u64,
    /// What is wrong, as a sentence.
    pub message: String,
}

impl SqlError {
    /// An error without a position.
    pub(crate) fn new(message: impl Into<String>) -> SqlError {
        SqlError {
            line: 0,
            column: 0,
            message: message.into(),
        }
    }

    /// An error at `loc` (a zero location means unknown).
    pub(crate) fn at(loc: Location, message: impl Into<String>) -> SqlError {
        SqlError {
            line: loc.line,
            column: loc.column,
            message: message.into(),
        }
    }

    /// An error at the start of `span`.
    pub(crate) fn span(span: Span, message: impl Into<String>) -> SqlError {
        SqlError::at(span.start, message)
    }

    /// Gives an error without a position the place `loc` (the statement's start).
    pub(crate) fn or_at(mut self, loc: Location) -> SqlError {
        if self.line == 0 {
            self.line = loc.line;
            self.column = loc.column;
        }
        self
    }

    fn render(&self) -> String {
        if self.line == 0 {
            self.message.clone()
        } else {
            format!(
                "line {}, column {}: {}",
                self.line, self.column, self.message
            )
        }
    }
}

/// sqlparser reports "sql parser error: Expected: X, found: Y at Line: 3, Column: 8"; keep the
/// place as our position and the rest as a sentence.
impl From<ParserError> for SqlError {
    fn from(e: ParserError) -> SqlError {
        let text = match &e {
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => m.clone(),
            ParserError::RecursionLimitExceeded => {
                "the statement is nested too deeply to parse".to_string()
            }
        };
        let (msg, line, column) = match text.rfind(" at Line: ") {
            Some(i) => {
                let place = &text[i + " at Line: ".len()..];
                let mut parts = place.split(", Column: ");
                let line = parts
                    .next()
                    .and_then(|l| l.trim().parse().ok())
                    .unwrap_or(0);
                let column = parts
                    .next()
                    .and_then(|c| c.trim().parse().ok())
                    .unwrap_or(0);
                (text[..i].to_string(), line, column)
            }
            None => (text, 0, 0),
        };
        let msg = msg
            .replace("Expected: ", "expected ")
            .replace(", found: ", ", found ");
        SqlError {
            line,
            column,
            message: format!("syntax error: {msg}"),
        }
    }
}
