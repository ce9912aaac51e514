//! Windows in queries: the window TVFs (`TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), size))` and
//! HOP, CUMULATE, SESSION) and Flink's legacy group windows (`GROUP BY TUMBLE(ts, size)` with
//! `TUMBLE_START(ts, size)` etc.), checked against the table's time attribute.

use sqlparser::ast::{self as ast, Spanned};
use sqlparser::tokenizer::Span;

use crate::window::WindowKind;

use super::ddl::TableDef;
use super::error::SqlError;
use super::expr::{func_name, interval_ms, plain_args, Arith, Expr, Num, Typed};
use super::types::SqlType;

fn interval_arg(e: &ast::Expr, what: &str, func: &str) -> Result<i64, SqlError> {
    match e {
        ast::Expr::Interval(i) => {
            let ms = interval_ms(i, e.span())?;
            if ms <= 0 {
                return Err(SqlError::span(e.span(), format!("{func}: the {what} must be positive, not {e}")));
            }
            Ok(ms)
        }
        other => Err(SqlError::span(other.span(), format!("{func}: the {what} must be an INTERVAL literal such as INTERVAL '10' SECOND, not '{other}'"))),
    }
}

/// Checks that `e` names the table's time attribute (`DESCRIPTOR(ts)` or, for legacy group
/// windows, `ts`).
pub(super) fn time_attr(
    e: &ast::Expr,
    t: &TableDef,
    func: &str,
    descriptor: bool,
) -> Result<(), SqlError> {
    let ident = match e {
        ast::Expr::Function(f) if descriptor && func_name(f) == "DESCRIPTOR" => {
            match plain_args(f)?.as_slice() {
                [ast::Expr::Identifier(id)] => id.clone(),
                _ => {
                    return Err(SqlError::span(
                        e.span(),
                        format!("{func}: DESCRIPTOR takes one column name"),
                    ))
                }
            }
        }
        ast::Expr::Identifier(id) if !descriptor => id.clone(),
        ast::Expr::CompoundIdentifier(parts) if !descriptor && parts.len() == 2 => parts[1].clone(),
        other => {
            let want = if descriptor {
                "DESCRIPTOR(<time column>)"
            } else {
                "the time column"
            };
            return Err(SqlError::span(
                other.span(),
                format!("{func}: expected {want}, not '{other}'"),
            ));
        }
    };
    match &t.watermark {
        Some(w) if w.column == ident.value => Ok(()),
        Some(w) => Err(SqlError::span(ident.span, format!("{func}: '{}' is not a time attribute of '{}'; its event time is '{}'", ident.value, t.name, w.column))),
        None => Err(SqlError::span(ident.span, format!("{func}: '{}' is not a time attribute: declare WATERMARK FOR {} AS {} - INTERVAL '1' SECOND in table '{}'", ident.value, ident.value, ident.value, t.name))),
    }
}

/// The window of a TVF.
pub(super) fn tvf_window(
    name: &str,
    args: &[ast::Expr],
    keys: &[ast::Expr],
    span: Span,
    t: &TableDef,
) -> Result<WindowKind, SqlError> {
    let n = |want: usize, usage: &str| {
        if args.len() == want {
            Ok(())
        } else {
            Err(SqlError::span(
                span,
                format!("{name} takes {usage}; offsets are not supported"),
            ))
        }
    };
    if name != "SESSION" && !keys.is_empty() {
        return Err(SqlError::span(
            span,
            format!("{name} does not take PARTITION BY"),
        ));
    }
    let desc = args
        .first()
        .ok_or_else(|| SqlError::span(span, format!("{name} needs DESCRIPTOR(<time column>)")))?;
    time_attr(desc, t, name, true)?;
    let kind = match name {
        "TUMBLE" => {
            n(2, "(TABLE t, DESCRIPTOR(ts), size)")?;
            WindowKind::Tumbling {
                size: interval_arg(&args[1], "size", name)?,
            }
        }
        "HOP" => {
            n(3, "(TABLE t, DESCRIPTOR(ts), slide, size)")?;
            WindowKind::Hopping {
                slide: interval_arg(&args[1], "slide", name)?,
                size: interval_arg(&args[2], "size", name)?,
            }
        }
        "CUMULATE" => {
            n(3, "(TABLE t, DESCRIPTOR(ts), step, size)")?;
            WindowKind::Cumulating {
                step: interval_arg(&args[1], "step", name)?,
                size: interval_arg(&args[2], "size", name)?,
            }
        }
        _ => {
            n(2, "(TABLE t [PARTITION BY keys], DESCRIPTOR(ts), gap)")?;
            WindowKind::Session {
                gap: interval_arg(&args[1], "gap", name)?,
            }
        }
    };
    kind.validate().map_err(|e| {
        SqlError::span(
            span,
            format!(
                "{name}: {}",
                e.to_string().trim_start_matches("invalid pipeline: ")
            ),
        )
    })?;
    Ok(kind)
}

/// A legacy group window in GROUP BY (`TUMBLE(ts, size)`, `HOP(ts, slide, size)`,
/// `SESSION(ts, gap)`), with its name and its arguments as written (for matching the
/// `*_START`/`*_END` functions).
pub(super) fn legacy_window(
    f: &ast::Function,
    t: Option<&TableDef>,
    span: Span,
) -> Result<Option<(String, WindowKind, Vec<String>)>, SqlError> {
    let name = func_name(f);
    if !matches!(name.as_str(), "TUMBLE" | "HOP" | "SESSION" | "CUMULATE") {
        return Ok(None);
    }
    let Some(t) = t else {
        return Err(SqlError::span(
            span,
            format!("GROUP BY {name}(...) after a regular join is not supported: a join's output has no time attribute (as in Flink)"),
        ));
    };
    if name == "CUMULATE" {
        return Err(SqlError::span(span, "GROUP BY CUMULATE(...) does not exist; use FROM TABLE(CUMULATE(TABLE t, DESCRIPTOR(ts), step, size))"));
    }
    let args = plain_args(f)?;
    let ts = args
        .first()
        .ok_or_else(|| SqlError::span(span, format!("{name} needs the time column")))?;
    time_attr(ts, t, &name, false)?;
    let kind = match (name.as_str(), args.len()) {
        ("TUMBLE", 2) => WindowKind::Tumbling {
            size: interval_arg(args[1], "size", &name)?,
        },
        ("HOP", 3) => WindowKind::Hopping {
            slide: interval_arg(args[1], "slide", &name)?,
            size: interval_arg(args[2], "size", &name)?,
        },
        ("SESSION", 2) => WindowKind::Session {
            gap: interval_arg(args[1], "gap", &name)?,
        },
        _ => {
            return Err(SqlError::span(
                span,
                format!("GROUP BY {name}(...) has the wrong number of arguments"),
            ))
        }
    };
    kind.validate().map_err(|e| {
        SqlError::span(
            span,
            format!(
                "{name}: {}",
                e.to_string().trim_start_matches("invalid pipeline: ")
            ),
        )
    })?;
    let texts = args.iter().skip(1).map(|a| a.to_string()).collect();
    Ok(Some((name, kind, texts)))
}

/// A legacy group window's function name and its arguments after the time column, as
/// written (`*_START`/`*_END` calls must repeat them).
pub(super) type LegacyWindow = (String, Vec<String>);

/// `window_time` / `*_ROWTIME`: the window's last millisecond.
pub(super) fn rowtime(we: usize) -> Typed {
    Typed::new(
        Expr::Arith(
            Arith::Sub,
            Num::I64,
            Box::new(Expr::Col(we)),
            Box::new(Expr::Lit(crate::value::Value::Int(1))),
        ),
        SqlType::Timestamp(3),
    )
}

pub(super) enum Aux {
    Start,
    End,
    Rowtime,
}

/// `TUMBLE_START(ts, size)` and friends: must match the GROUP BY window.
pub(super) fn window_aux(
    name: &str,
    f: &ast::Function,
    legacy: &Option<LegacyWindow>,
    span: Span,
) -> Result<Option<Aux>, SqlError> {
    let Some((prefix, suffix)) = name.split_once('_') else {
        return Ok(None);
    };
    if !matches!(prefix, "TUMBLE" | "HOP" | "SESSION")
        || !matches!(suffix, "START" | "END" | "ROWTIME" | "PROCTIME")
    {
        return Ok(None);
    }
    let Some((wname, texts)) = legacy else {
        return Err(SqlError::span(
            span,
            format!("{name} needs GROUP BY {prefix}(<time column>, ...)"),
        ));
    };
    let args = plain_args(f)?;
    let same = wname == prefix
        && args.len() == texts.len() + 1
        && args
            .iter()
            .skip(1)
            .map(|a| a.to_string())
            .eq(texts.iter().cloned());
    if !same {
        return Err(SqlError::span(
            span,
            format!(
                "{name}(...) does not match the GROUP BY window {wname}(..., {})",
                texts.join(", ")
            ),
        ));
    }
    Ok(Some(match suffix {
        "START" => Aux::Start,
        "END" => Aux::End,
        "ROWTIME" => Aux::Rowtime,
        _ => {
            return Err(SqlError::span(
                span,
                format!("{name}: processing time is not supported"),
            ))
        }
    }))
}
