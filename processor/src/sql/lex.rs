//! Splitting a script into statements and the one Flink-only rewrite the parser needs.
//!
//! We tokenize the whole script once with sqlparser's tokenizer, so every token keeps its
//! line and column in the script and error messages point into what the user wrote.
//! Window table functions take a table argument (`TUMBLE(TABLE bid, ...)`, `SESSION(TABLE bid
//! PARTITION BY bidder, ...)`) that sqlparser cannot parse; [`rewrite_table_args`] turns it
//! into an ordinary call `__table(bid[, keys...])` with the same token positions.

use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer, Word};

use super::error::SqlError;

/// The function name the table argument of a window function is rewritten to.
pub(crate) const TABLE_ARG: &str = "__table";

/// One statement of a script.
#[derive(Debug, Clone)]
pub(crate) struct Stmt {
    /// Its tokens (whitespace and comments dropped), positions in the script.
    pub(crate) tokens: Vec<TokenWithSpan>,
    /// Its text as written (from the first to the last token).
    pub(crate) text: String,
    pub(crate) start: Location,
}

impl Stmt {
    /// Upper-cased keyword-ish words at the start, for dispatch.
    pub(crate) fn leading_words(&self, n: usize) -> Vec<String> {
        self.tokens
            .iter()
            .take(n)
            .map(|t| match &t.token {
                Token::Word(w) => w.value.to_ascii_uppercase(),
                other => other.to_string(),
            })
            .collect()
    }
}

/// Byte offset of a (line, column) location (columns count characters).
fn offset(line_starts: &[usize], text: &str, loc: Location) -> usize {
    let Some(&start) = line_starts.get((loc.line as usize).saturating_sub(1)) else {
        return text.len();
    };
    text[start..]
        .char_indices()
        .nth((loc.column as usize).saturating_sub(1))
        .map_or(text.len(), |(i, _)| start + i)
}

/// Splits a script at `;` into statements (empty ones skipped).
pub(crate) fn split(script: &str) -> Result<Vec<Stmt>, SqlError> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, script)
        .tokenize_with_location()
        .map_err(|e| SqlError::at(e.location, format!("syntax error: {}", e.message)))?;
    let mut line_starts = vec![0];
    line_starts.extend(script.match_indices('\n').map(|(i, _)| i + 1));
    let mut out = Vec::new();
    let mut cur: Vec<TokenWithSpan> = Vec::new();
    let mut flush = |cur: &mut Vec<TokenWithSpan>| {
        if let (Some(first), Some(last)) = (cur.first(), cur.last()) {
            let a = offset(&line_starts, script, first.span.start);
            let b = offset(&line_starts, script, last.span.end).max(a);
            out.push(Stmt {
                text: script[a..b].to_string(),
                start: first.span.start,
                tokens: std::mem::take(cur),
            });
        }
    };
    for t in tokens {
        match &t.token {
            Token::Whitespace(_) => {}
            Token::SemiColon => flush(&mut cur),
            Token::EOF => {}
            _ => cur.push(t),
        }
    }
    flush(&mut cur);
    Ok(out)
}

fn word(value: &str, like: &TokenWithSpan) -> TokenWithSpan {
    TokenWithSpan {
        token: Token::Word(Word {
            value: value.to_string(),
            quote_style: None,
            keyword: Keyword::NoKeyword,
        }),
        span: like.span,
    }
}

fn tok(t: Token, like: &TokenWithSpan) -> TokenWithSpan {
    TokenWithSpan {
        token: t,
        span: like.span,
    }
}

fn is_kw(t: Option<&TokenWithSpan>, k: Keyword) -> bool {
    matches!(t, Some(TokenWithSpan { token: Token::Word(w), .. }) if w.keyword == k)
}

/// Rewrites `TABLE name [PARTITION BY k | PARTITION BY (k1, k2)]` directly after `(` into
/// `__table(name[, k...])`, and appends an EOF token.
pub(crate) fn rewrite_table_args(tokens: &[TokenWithSpan]) -> Vec<TokenWithSpan> {
    let mut out = Vec::with_capacity(tokens.len() + 4);
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        let after_paren = matches!(
            out.last(),
            Some(TokenWithSpan {
                token: Token::LParen,
                ..
            })
        );
        if after_paren
            && is_kw(Some(t), Keyword::TABLE)
            && matches!(tokens.get(i + 1).map(|t| &t.token), Some(Token::Word(_)))
        {
            out.push(word(TABLE_ARG, t));
            out.push(tok(Token::LParen, t));
            i += 1;
            // The (possibly qualified) table name.
            out.push(tokens[i].clone());
            i += 1;
            while matches!(tokens.get(i).map(|t| &t.token), Some(Token::Period))
                && i + 1 < tokens.len()
            {
                out.extend(tokens[i..i + 2].iter().cloned());
                i += 2;
            }
            if is_kw(tokens.get(i), Keyword::PARTITION) && is_kw(tokens.get(i + 1), Keyword::BY) {
                i += 2;
                out.push(tok(Token::Comma, t));
                if matches!(tokens.get(i).map(|t| &t.token), Some(Token::LParen)) {
                    // A parenthesized key list: copy its contents.
                    i += 1;
                    while let Some(n) = tokens.get(i) {
                        i += 1;
                        if n.token == Token::RParen {
                            break;
                        }
                        out.push(n.clone());
                    }
                } else if let Some(n) = tokens.get(i) {
                    out.push(n.clone());
                    i += 1;
                    // A qualified key (b.bidder).
                    while matches!(tokens.get(i).map(|t| &t.token), Some(Token::Period)) {
                        out.extend(tokens[i..(i + 2).min(tokens.len())].iter().cloned());
                        i += 2;
                    }
                }
            }
            out.push(tok(Token::RParen, t));
            continue;
        }
        out.push(t.clone());
        i += 1;
    }
    let end = tokens
        .last()
        .map_or(sqlparser::tokenizer::Span::empty(), |t| t.span);
    out.push(TokenWithSpan {
        token: Token::EOF,
        span: end,
    });
    out
}

/// `FOR SYSTEM_TIME AS OF <column>` after a joined table (Flink's temporal join), which
/// sqlparser's generic dialect does not parse: cut out of the tokens and kept here.
#[derive(Debug, Clone)]
pub(crate) struct Temporal {
    /// Where the versioned table's name starts (identifies the relation after parsing).
    pub(crate) table_at: Location,
    /// The time column, as written (`o.order_time` → ["o", "order_time"]).
    pub(crate) time: Vec<String>,
    /// Where `FOR` is (for errors).
    pub(crate) at: Location,
}

/// Removes `FOR SYSTEM_TIME AS OF col` clauses, returning them.
pub(crate) fn strip_temporal(
    tokens: &[TokenWithSpan],
) -> Result<(Vec<TokenWithSpan>, Vec<Temporal>), SqlError> {
    let word = |i: usize, w: &str| matches!(tokens.get(i), Some(t) if matches!(&t.token, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w)));
    let mut out = Vec::with_capacity(tokens.len());
    let mut found = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if word(i, "FOR") && word(i + 1, "SYSTEM_TIME") {
            let at = tokens[i].span.start;
            if !(word(i + 2, "AS") && word(i + 3, "OF")) {
                return Err(SqlError::at(
                    at,
                    "expected FOR SYSTEM_TIME AS OF <time column>",
                ));
            }
            let table_at = out.last().map_or(at, |t: &TokenWithSpan| t.span.start);
            let mut j = i + 4;
            let mut time = Vec::new();
            while let Some(TokenWithSpan {
                token: Token::Word(w),
                ..
            }) = tokens.get(j)
            {
                time.push(w.value.clone());
                j += 1;
                if matches!(tokens.get(j).map(|t| &t.token), Some(Token::Period)) {
                    j += 1;
                } else {
                    break;
                }
            }
            if time.is_empty() {
                return Err(SqlError::at(at, "FOR SYSTEM_TIME AS OF needs the time column of the other table, e.g. o.order_time"));
            }
            found.push(Temporal { table_at, time, at });
            i = j;
            continue;
        }
        out.push(tokens[i].clone());
        i += 1;
    }
    Ok((out, found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_keep_their_text_and_positions() {
        let s = split("SET 'a' = 'b';\n\n  -- a comment\nSHOW TABLES;;").expect("splits");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].text, "SET 'a' = 'b'");
        assert_eq!(s[1].text, "SHOW TABLES");
        assert_eq!((s[1].start.line, s[1].start.column), (4, 1));
    }

    #[test]
    fn table_arguments_become_calls() {
        let s =
            split("SELECT * FROM TABLE(SESSION(TABLE bid PARTITION BY (a, b), DESCRIPTOR(ts), x))")
                .expect("splits");
        let t = rewrite_table_args(&s[0].tokens);
        let text: String = t
            .iter()
            .map(|t| t.token.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            text.contains("SESSION ( __table ( bid , a , b ) , DESCRIPTOR"),
            "{text}"
        );
    }
}
