//! A bare `SELECT` in `eddy sql`: sent to the broker's `POST /v1/query`, its rows printed as
//! they arrive in a table like the Flink SQL client's "tableau" result mode (an `op` column
//! with `+I`, `-U`, `+U`, `-D`, then the query's columns). Ctrl-C cancels the query in the
//! broker (`DELETE /v1/queries/{id}`) and returns to the prompt.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::admin::AdminClient;
use super::outln;

/// Set by SIGINT; cleared when a query starts.
static INTERRUPTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// From now on SIGINT (Ctrl-C) no longer ends the process: it sets a flag that a running
/// query polls. Returns once the handler is in place.
pub(crate) fn catch_interrupts() -> anyhow::Result<()> {
    if INTERRUPTED.get().is_some() {
        return Ok(());
    }
    let flag = Arc::new(AtomicBool::new(false));
    let _ = INTERRUPTED.set(Arc::clone(&flag));
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("sigint".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let mut sig = match signal(SignalKind::interrupt()) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                while sig.recv().await.is_some() {
                    flag.store(true, Ordering::SeqCst);
                }
            });
        })?;
    ready_rx
        .recv()
        .map_err(|_| anyhow::anyhow!("cannot catch Ctrl-C"))?
        .map_err(|e| anyhow::anyhow!("cannot catch Ctrl-C: {e}"))
}

fn interrupted() -> bool {
    INTERRUPTED.get().is_some_and(|f| f.load(Ordering::SeqCst))
}

/// How a query's output ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// LIMIT reached, bounded input read, or the broker stopped it.
    ByItself,
    /// Ctrl-C.
    Interrupted,
}

/// Runs a bare SELECT and prints its rows until it ends or Ctrl-C. Errors (bad SQL with
/// its line and column, an unreachable broker, a failed query) are returned.
pub(crate) fn run(
    client: &AdminClient,
    sql: &str,
    settings: &BTreeMap<String, String>,
) -> anyhow::Result<Ended> {
    if let Some(f) = INTERRUPTED.get() {
        f.store(false, Ordering::SeqCst);
    }
    let body = serde_json::to_vec(&serde_json::json!({ "sql": sql, "settings": settings }))?;
    let reader = client.post_stream("/v1/query", &body)?;
    let mut lines = BufReader::new(reader).lines();
    let header: Value = match lines.next() {
        Some(line) => serde_json::from_str(&line?)?,
        None => anyhow::bail!("the broker closed the query without an answer"),
    };
    let id = header["query"].as_u64().unwrap_or(0);
    let table = Tableau::new(&header);
    table.print_header();
    // Lines are read on their own thread so that Ctrl-C is noticed while no row arrives.
    let (tx, rx) = mpsc::channel::<std::io::Result<String>>();
    std::thread::spawn(move || {
        for line in lines {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut rows = 0u64;
    let mut cancelled_at: Option<Instant> = None;
    let mut failure = None;
    loop {
        if cancelled_at.is_none() && interrupted() {
            // The broker stops the query and ends the response; keep reading until then.
            if let Err(e) = client.delete(&format!("/v1/queries/{id}")) {
                tracing::debug!(error = %e, "cancelling the query");
            }
            cancelled_at = Some(Instant::now());
        }
        if cancelled_at.is_some_and(|t| t.elapsed() > Duration::from_secs(5)) {
            break; // the connection is dropped with the reader thread
        }
        let line = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => line?,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let v: Value = serde_json::from_str(&line)?;
        if let Some(op) = v["op"].as_str() {
            rows += 1;
            table.print_row(op, v["row"].as_array().map_or(&[][..], Vec::as_slice));
        } else if let Some(e) = v["error"].as_str() {
            failure = Some(e.to_string());
        }
    }
    table.print_footer();
    if let Some(e) = failure {
        anyhow::bail!("the query failed after {rows} row(s): {e}");
    }
    if cancelled_at.is_some() {
        outln!("Query stopped (Ctrl-C); received a total of {rows} row(s).");
        Ok(Ended::Interrupted)
    } else {
        outln!("Received a total of {rows} row(s).");
        Ok(Ended::ByItself)
    }
}

/// Fixed-width columns: wide enough for the column name and a typical value of its type
/// (longer values widen their line rather than being cut).
#[derive(Debug)]
struct Tableau {
    names: Vec<String>,
    widths: Vec<usize>,
}

impl Tableau {
    fn new(header: &Value) -> Tableau {
        let cols = header["columns"].as_array().cloned().unwrap_or_default();
        let names: Vec<String> = std::iter::once("op".to_string())
            .chain(
                cols.iter()
                    .map(|c| c["name"].as_str().unwrap_or("").to_string()),
            )
            .collect();
        let widths = std::iter::once(2)
            .chain(cols.iter().map(|c| {
                let ty = c["type"].as_str().unwrap_or("");
                let name = c["name"].as_str().unwrap_or("").chars().count();
                name.max(type_width(ty))
            }))
            .collect();
        Tableau { names, widths }
    }

    fn border(&self) -> String {
        let parts: Vec<String> = self.widths.iter().map(|w| "-".repeat(w + 2)).collect();
        format!("+{}+", parts.join("+"))
    }

    fn line(&self, cells: &[String]) -> String {
        let parts: Vec<String> = cells
            .iter()
            .zip(&self.widths)
            .map(|(c, w)| format!(" {c:>w$} "))
            .collect();
        format!("|{}|", parts.join("|"))
    }

    fn print_header(&self) {
        outln!("{}", self.border());
        outln!("{}", self.line(&self.names));
        outln!("{}", self.border());
    }

    fn print_row(&self, op: &str, row: &[Value]) {
        let cells: Vec<String> = std::iter::once(op.to_string())
            .chain(row.iter().map(cell))
            .collect();
        outln!("{}", self.line(&cells));
    }

    fn print_footer(&self) {
        outln!("{}", self.border());
    }
}

/// A value as the Flink client shows it: NULL as `<NULL>`, text without quotes.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "<NULL>".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn type_width(ty: &str) -> usize {
    let base = ty.split('(').next().unwrap_or(ty).trim();
    match base {
        "BOOLEAN" => 6,
        "INT" | "INTEGER" => 11,
        "BIGINT" => 20,
        "TIMESTAMP" => 23,
        "DOUBLE" | "DECIMAL" => 12,
        _ => 10,
    }
}

/// `SET 'k' = 'v'` → (k, v), `RESET 'k'` → (k, None), `RESET` → None key; other statements
/// (or a bare `SET`, which lists the options) give nothing. Quotes in literals are doubled.
pub(crate) fn parse_set(stmt: &str) -> Option<(Option<String>, Option<String>)> {
    let s = stmt.trim().trim_end_matches(';').trim();
    let (word, rest) = s.split_at(s.find(char::is_whitespace).unwrap_or(s.len()));
    let literal = |t: &str| -> Option<(String, usize)> {
        let t_trim = t.trim_start();
        let skipped = t.len() - t_trim.len();
        let mut chars = t_trim.char_indices().peekable();
        if chars.next()?.1 != '\'' {
            return None;
        }
        let mut out = String::new();
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().map(|(_, c)| *c) == Some('\'') {
                    chars.next();
                    out.push('\'');
                } else {
                    return Some((out, skipped + i + 1));
                }
            } else {
                out.push(c);
            }
        }
        None
    };
    match word.to_ascii_uppercase().as_str() {
        "SET" => {
            let (k, used) = literal(rest)?;
            let after = rest[used..].trim_start().strip_prefix('=')?;
            let (v, used) = literal(after)?;
            after[used..]
                .trim()
                .is_empty()
                .then_some((Some(k), Some(v)))
        }
        "RESET" if rest.trim().is_empty() => Some((None, None)),
        "RESET" => {
            let (k, used) = literal(rest)?;
            rest[used..].trim().is_empty().then_some((Some(k), None))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_set;

    #[test]
    fn set_and_reset_statements_are_read_with_doubled_quotes() {
        let kv = |k: &str, v: &str| Some((Some(k.to_string()), Some(v.to_string())));
        assert_eq!(parse_set("SET 'a.b' = 'it''s';"), kv("a.b", "it's"));
        assert_eq!(parse_set("set 'x'='1'"), kv("x", "1"));
        assert_eq!(parse_set("RESET 'x';"), Some((Some("x".into()), None)));
        assert_eq!(parse_set("RESET;"), Some((None, None)));
        assert_eq!(parse_set("SET;"), None);
        assert_eq!(parse_set("SET 'x' = '1' junk"), None);
        assert_eq!(parse_set("SELECT 1"), None);
    }
}
