//! `eddy sql`: run Flink SQL statements in the broker through its admin API, from a file
//! (`-f`) or typed at a prompt (statements end with `;`).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;
use serde_json::Value;

use super::admin::{AdminClient, DEFAULT_ADMIN};
use super::outln;

#[derive(Debug, Args)]
pub(crate) struct SqlArgs {
    /// A file of `;`-separated statements; without it, statements are read from the prompt
    /// (or standard input).
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

/// All statements of a file in one request: they take effect together or not at all.
pub(crate) fn run_file(client: &AdminClient, file: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let results = execute(client, &text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    results.iter().for_each(print_result);
    Ok(())
}

fn execute(client: &AdminClient, sql: &str) -> anyhow::Result<Vec<Value>> {
    let body = serde_json::to_vec(&serde_json::json!({ "sql": sql }))?;
    let r = client.post("/v1/sql", &body)?;
    Ok(r["results"].as_array().cloned().unwrap_or_default())
}

/// One statement at a time. `SET`s are kept here and sent ahead of every later statement,
/// since each request runs in a fresh session on the broker.
fn interactive(client: &AdminClient) -> anyhow::Result<()> {
    let tty = std::io::stdin().is_terminal();
    let mut sets: Vec<String> = Vec::new();
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
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            if matches!(word.as_str(), "QUIT" | "EXIT") {
                return finish(failed);
            }
            let mut script = sets.join("\n");
            script.push('\n');
            script.push_str(&stmt);
            match execute(client, &script) {
                Ok(results) => {
                    results.iter().skip(sets.len()).for_each(print_result);
                    if word == "SET" {
                        sets.push(stmt);
                    }
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
