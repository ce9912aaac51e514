//! `eddy sql`: run Flink SQL statements in the broker through its admin API, from a file
//! (`-f`) or typed at a prompt (statements end with `;`). A bare SELECT streams its rows to
//! the terminal (`sql_query`).

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;
use serde_json::Value;

use super::admin::{AdminClient, DEFAULT_ADMIN};
use super::{outln, sql_query};

#[derive(Debug, Args)]
pub(crate) struct SqlArgs {
    /// A file of `;`-separated statements; without it, statements are read from the prompt
    /// (or standard input). A bare SELECT may end the file: it streams its rows until its
    /// LIMIT, the end of a bounded table, or Ctrl-C.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// The broker's admin API (`eddy serve --http`).
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_ADMIN)]
    admin: String,
}

pub(crate) fn run(args: SqlArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&args.admin);
    match &args.file {
        Some(file) => run_file(&client, file),
        None => interactive(&client),
    }
}

/// All statements of a file in one request: they take effect together or not at all. A bare
/// SELECT may be the file's last statement: the statements before it run first (together,
/// as above), then the query streams its rows until its LIMIT, the end of a bounded input,
/// or Ctrl-C.
pub(crate) fn run_file(client: &AdminClient, file: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let (mut statements, rest) = split_statements(&text);
    if !rest.trim().is_empty() {
        statements.push(rest.trim().to_string()); // the last statement may lack its ';'
    }
    let query = match statements.last() {
        Some(q) if is_query(q) => {
            // Blank out what precedes it (keeping lines and columns) so that errors point into
            // the file.
            let start = text.rfind(q.as_str()).unwrap_or(0);
            let before = &text[..start];
            let padded: String = before
                .chars()
                .map(|c| if c == '\n' { '\n' } else { ' ' })
                .chain(q.chars())
                .collect();
            Some((before.to_string(), padded))
        }
        _ => None,
    };
    if let Some(q) = statements.iter().rev().skip(1).find(|s| is_query(s)) {
        anyhow::bail!(
            "{}: a bare SELECT streams until it is interrupted, so it may only be the file's last statement: {}",
            file.display(),
            q.lines().next().unwrap_or("")
        );
    }
    let Some((before, query)) = query else {
        let results = execute(client, &text, &BTreeMap::new())
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        results.iter().for_each(print_result);
        return Ok(());
    };
    let mut settings = BTreeMap::new();
    if statements.len() > 1 {
        let results = execute(client, &before, &BTreeMap::new())
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        results.iter().for_each(print_result);
        for s in &statements[..statements.len() - 1] {
            remember_set(&mut settings, s);
        }
    }
    sql_query::catch_interrupts()?;
    sql_query::run(client, &query, &settings)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    Ok(())
}

/// A bare SELECT (or WITH ... SELECT), which streams its rows.
fn is_query(stmt: &str) -> bool {
    let word = stmt
        .split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(word.as_str(), "SELECT" | "WITH")
}

/// Keeps the options of a `SET 'k' = 'v'` / `RESET ['k']` statement (others are ignored).
fn remember_set(settings: &mut BTreeMap<String, String>, stmt: &str) {
    match sql_query::parse_set(stmt) {
        Some((Some(k), Some(v))) => {
            settings.insert(k, v);
        }
        Some((Some(k), None)) => {
            settings.remove(&k);
        }
        Some((None, _)) => settings.clear(),
        None => {}
    }
}

fn execute(
    client: &AdminClient,
    sql: &str,
    settings: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<Value>> {
    let body = serde_json::to_vec(&serde_json::json!({ "sql": sql, "settings": settings }))?;
    let r = client.post("/v1/sql", &body)?;
    Ok(r["results"].as_array().cloned().unwrap_or_default())
}

/// One statement at a time. `SET`s are kept here and sent as the settings of every later
/// statement, since each request runs in a fresh session on the broker. A bare SELECT
/// streams its rows until it ends or Ctrl-C, which cancels it and returns to the prompt
/// (Ctrl-C never ends the prompt: QUIT, EXIT or end of input do).
fn interactive(client: &AdminClient) -> anyhow::Result<()> {
    let tty = std::io::stdin().is_terminal();
    sql_query::catch_interrupts()?;
    let mut settings: BTreeMap<String, String> = BTreeMap::new();
    let mut pending = String::new();
    let mut failed = false;
    let prompt = |more: bool| {
        if tty {
            print!("{}", if more { "    -> " } else { "eddy> " });
            let _ = std::io::stdout().flush();
        }
    };
    prompt(false);
    for line in std::io::stdin().lock().lines() {
        pending.push_str(&line?);
        pending.push('\n');
        let (statements, rest) = split_statements(&pending);
        pending = rest;
        for stmt in statements {
            let word = stmt
                .split(|c: char| c.is_whitespace() || c == ';')
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            if matches!(word.as_str(), "QUIT" | "EXIT") {
                return finish(failed);
            }
            if is_query(&stmt) {
                if let Err(e) = sql_query::run(client, &stmt, &settings) {
                    eprintln!("error: {e}");
                    failed = true;
                }
                continue;
            }
            match execute(client, &stmt, &settings) {
                Ok(results) => {
                    results.iter().for_each(print_result);
                    remember_set(&mut settings, &stmt);
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    failed = true;
                }
            }
        }
        prompt(!pending.trim().is_empty());
    }
    if !pending.trim().is_empty() {
        eprintln!("error: the last statement has no terminating ';' and was not run");
        failed = true;
    }
    finish(failed)
}

fn finish(failed: bool) -> anyhow::Result<()> {
    if failed && !std::io::stdin().is_terminal() {
        anyhow::bail!("some statements failed");
    }
    Ok(())
}

/// Complete statements (each ending with its `;`) and the unfinished rest. Semicolons inside
/// quotes or `--` comments don't end a statement.
fn split_statements(text: &str) -> (Vec<String>, String) {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut prev = '\0';
    for (i, c) in text.char_indices() {
        if comment {
            if c == '\n' {
                comment = false;
            }
        } else if let Some(q) = quote {
            if c == q {
                quote = None;
            }
        } else if c == '\'' || c == '"' || c == '`' {
            quote = Some(c);
        } else if c == '-' && prev == '-' {
            comment = true;
        } else if c == ';' {
            let stmt = text[start..=i].trim();
            if stmt != ";" {
                out.push(stmt.to_string());
            }
            start = i + 1;
        }
        prev = c;
    }
    (out, text[start..].to_string())
}

fn print_result(r: &Value) {
    match r["kind"].as_str() {
        Some("done") => outln!("{}", r["message"].as_str().unwrap_or("OK")),
        Some("rows") => {
            let columns: Vec<String> = r["columns"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .map(|v| v.as_str().unwrap_or("").to_string())
                        .collect()
                })
                .unwrap_or_default();
            let rows: Vec<Vec<String>> = r["rows"]
                .as_array()
                .map(|rows| {
                    rows.iter()
                        .map(|row| {
                            row.as_array()
                                .map(|c| {
                                    c.iter()
                                        .map(|v| v.as_str().unwrap_or("").to_string())
                                        .collect()
                                })
                                .unwrap_or_default()
                        })
                        .collect()
                })
                .unwrap_or_default();
            print_table(&columns, &rows);
        }
        Some("pipeline") => {
            let name = r["name"].as_str().unwrap_or("?");
            if r["created"] == Value::Bool(true) {
                outln!(
                    "Pipeline '{name}' started in the broker (`eddy pipeline describe {name}`)."
                );
            } else {
                outln!("Pipeline '{name}' is already running this statement.");
            }
        }
        _ => outln!("{r}"),
    }
}

fn print_table(columns: &[String], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        parts.join(" | ").trim_end().to_string()
    };
    outln!("{}", line(columns));
    outln!(
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-")
    );
    for row in rows {
        outln!("{}", line(row));
    }
    outln!("{} row(s)", rows.len());
}

#[cfg(test)]
mod tests {
    use super::split_statements;

    #[test]
    fn statements_end_at_semicolons_outside_quotes_and_comments() {
        let (s, rest) = split_statements("SET 'a' = 'x;y';\nSELECT 1 -- no; end\n FROM t; CREATE");
        assert_eq!(s, vec!["SET 'a' = 'x;y';", "SELECT 1 -- no; end\n FROM t;"]);
        assert_eq!(rest.trim(), "CREATE");
    }
}
