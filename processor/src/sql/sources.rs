//! The FROM clause's single source: a table, or a window TVF over one, decoded by the first
//! stage; and what the stages after the sources work on ([`Prepared`]).

use std::sync::Arc;
use std::time::Duration;

use sqlparser::ast::{self as ast, Spanned};
use sqlparser::tokenizer::Span;

use crate::plan::{Input, PipelineBuilder};
use crate::window::WindowKind;

use super::ddl::TableDef;
use super::error::SqlError;
use super::expr::{func_name, plain_args, Compiler, Expr, Scope, ScopeCol};
use super::lex::TABLE_ARG;
use super::ops::StageInput;
use super::planner::{decoder_for, is_aggregating, uses_cols_from};
use super::types::SqlType;
use super::windows::tvf_window;
use super::Catalog;

/// The FROM relation: a table, or a window TVF over one.
pub(super) struct Source {
    pub(super) table: ast::Ident,
    pub(super) alias: Option<String>,
    /// The window TVF: (function name, its arguments after the table, partition keys, span).
    tvf: Option<(String, Vec<ast::Expr>, Vec<ast::Expr>, Span)>,
}

pub(super) fn source_of(rel: &ast::TableFactor) -> Result<Source, SqlError> {
    match rel {
        ast::TableFactor::Table {
            version: Some(v), ..
        } => Err(SqlError::span(
            rel.span(),
            format!("temporal joins ({v}) are not supported yet"),
        )),
        ast::TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } if name.0.len() == 1 => {
            let id = name.0[0]
                .as_ident()
                .cloned()
                .ok_or_else(|| SqlError::span(name.span(), "expected a table name"))?;
            Ok(Source {
                table: id,
                alias: alias.as_ref().map(|a| a.name.value.clone()),
                tvf: None,
            })
        }
        ast::TableFactor::TableFunction {
            expr: ast::Expr::Function(f),
            alias,
        } => {
            let name = func_name(f);
            let span = f.span();
            if !matches!(name.as_str(), "TUMBLE" | "HOP" | "CUMULATE" | "SESSION") {
                return Err(SqlError::span(span, format!("table function {name} is not supported; use TUMBLE, HOP, CUMULATE or SESSION")));
            }
            let args = plain_args(f)?;
            let (first, rest) = args.split_first().ok_or_else(|| {
                SqlError::span(
                    span,
                    format!("{name} needs a table argument: {name}(TABLE t, DESCRIPTOR(ts), ...)"),
                )
            })?;
            let (table, keys) = match first {
                ast::Expr::Function(t) if t.name.to_string() == TABLE_ARG => {
                    let targs = plain_args(t)?;
                    let table = match targs.first() {
                        Some(ast::Expr::Identifier(id)) => id.clone(),
                        _ => {
                            return Err(SqlError::span(
                                t.span(),
                                format!("{name}: the first argument must be TABLE <table name>"),
                            ))
                        }
                    };
                    (table, targs[1..].iter().map(|e| (*e).clone()).collect())
                }
                other => {
                    return Err(SqlError::span(
                        other.span(),
                        format!(
                            "{name}: the first argument must be TABLE <table name>, not '{other}'"
                        ),
                    ))
                }
            };
            Ok(Source {
                table,
                alias: alias.as_ref().map(|a| a.name.value.clone()),
                tvf: Some((
                    name,
                    rest.iter().map(|e| (*e).clone()).collect(),
                    keys,
                    span,
                )),
            })
        }
        ast::TableFactor::MatchRecognize { .. } => Err(SqlError::span(
            rel.span(),
            "MATCH_RECOGNIZE is not supported yet",
        )),
        other => Err(SqlError::span(
            other.span(),
            format!(
                "FROM {other} is not supported; read from a table or TABLE(TUMBLE(TABLE t, ...))"
            ),
        )),
    }
}
/// What the stages after the sources work on: the scope, how a stage gets its row, the
/// WHERE condition left for it, and the window TVF if any.
pub(super) struct Prepared<'a> {
    pub(super) scope: Scope,
    pub(super) input: StageInput,
    pub(super) filter: Option<Expr>,
    pub(super) dead_letter: Option<Arc<str>>,
    pub(super) tvf: Option<(WindowKind, Vec<ast::Expr>, Span)>,
    /// The single source table (None after a join, whose output has no time attribute).
    pub(super) table: Option<&'a TableDef>,
    /// Row width before the TVF's window columns.
    pub(super) width: usize,
    pub(super) sources: Vec<String>,
    /// Positions of window_start and window_end in the row the stages read.
    pub(super) window: Option<(usize, usize)>,
    /// The rows are an updating result keyed by these positions (a deduplication).
    pub(super) upsert_key: Option<Vec<usize>>,
    /// The rows are a changelog (an unwindowed GROUP BY subquery's updating result): each
    /// carries its row kind.
    pub(super) updating: bool,
}

/// Looks up a source table and checks it can be read.
pub(super) fn source_table<'a>(
    catalog: &'a Catalog,
    id: &ast::Ident,
    sink: &TableDef,
    sink_span: Span,
) -> Result<&'a TableDef, SqlError> {
    let table = catalog.tables.get(&id.value).ok_or_else(|| {
        SqlError::span(
            id.span,
            format!(
                "table '{}' does not exist; known tables: {}",
                id.value,
                catalog.names()
            ),
        )
    })?;
    if table.is_upsert() {
        return Err(SqlError::span(
            id.span,
            format!(
                "reading the upsert-kafka table '{}' (a changelog) is not supported yet",
                table.name
            ),
        ));
    }
    if table.topic() == sink.topic() {
        return Err(SqlError::span(
            sink_span,
            format!(
                "table '{}' reads topic '{}', which the INSERT also writes",
                table.name,
                sink.topic()
            ),
        ));
    }
    Ok(table)
}

/// The engine input for a table.
pub(super) fn input_of(t: &TableDef) -> Input {
    let mut input = Input::topic(t.topic());
    if let Some(w) = &t.watermark {
        input = input.event_time_field(&w.column);
    }
    match t.option("scan.startup.mode") {
        Some("latest-offset") => input = input.from_latest(),
        Some("timestamp") => {
            if let Some(ms) = t.startup_timestamp() {
                input = input.from_timestamp(ms);
            }
        }
        _ => {}
    }
    input
}

pub(super) fn bounded(t: &TableDef) -> bool {
    t.option("scan.bounded.mode") == Some("latest-offset")
}

pub(super) fn single_source<'a>(
    mut builder: PipelineBuilder,
    relation: &ast::TableFactor,
    select: &ast::Select,
    catalog: &'a Catalog,
    sink: &TableDef,
    sink_span: Span,
    at: sqlparser::tokenizer::Location,
) -> Result<(PipelineBuilder, Prepared<'a>), SqlError> {
    let src = source_of(relation)?;
    let table = source_table(catalog, &src.table, sink, sink_span)?;

    // The input scope: the table's columns, then the TVF's window columns.
    let qualifier = src.alias.clone().unwrap_or_else(|| table.name.clone());
    let mut scope = table.scope(&qualifier);
    let width = table.columns.len();
    let mut tvf_kind = None;
    if let Some((fname, args, keys, span)) = &src.tvf {
        let kind = tvf_window(fname, args, keys, *span, table)?;
        for (i, n) in ["window_start", "window_end", "window_time"]
            .iter()
            .enumerate()
        {
            scope.cols.push(ScopeCol {
                name: n.to_string(),
                qualifier: Some(qualifier.clone()),
                ty: SqlType::Timestamp(3),
                index: width + i,
            });
        }
        tvf_kind = Some((kind, keys.clone(), *span));
    }

    let decoder = decoder_for(table).map_err(|e| e.or_at(at))?;
    let filter = match &select.selection {
        Some(w) => {
            let c = Compiler::plain(&scope).condition(w)?;
            if tvf_kind.is_some() && uses_cols_from(&c, width) && is_aggregating(select) {
                return Err(SqlError::span(w.span(), "WHERE on window_start/window_end of an aggregated window TVF is not supported; use HAVING"));
            }
            Some(c)
        }
        None => None,
    };

    if let Some(w) = &table.watermark {
        builder = builder.watermark_delay(Duration::from_millis(w.delay_ms as u64));
    }
    builder = builder.source(input_of(table));
    if bounded(table) {
        builder = builder.bounded();
    }
    let dead_letter: Option<Arc<str>> = table
        .option("dead-letter.topic")
        .map(|_| Arc::from("dead-letter"));
    if let Some(t) = table.option("dead-letter.topic") {
        builder = builder.side_output("dead-letter", t);
    }

    let window = tvf_kind.as_ref().map(|_| (width, width + 1));
    Ok((
        builder,
        Prepared {
            scope,
            input: StageInput::Table(decoder),
            filter,
            dead_letter,
            tvf: tvf_kind,
            table: Some(table),
            width,
            sources: vec![table.topic().to_string()],
            window,
            upsert_key: None,
            updating: false,
        },
    ))
}
