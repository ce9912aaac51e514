//! Typed expressions: sqlparser's AST is resolved against a scope (names → row positions),
//! type-checked with Flink's rules and turned into [`Expr`], which [`super::eval`] runs.

use sqlparser::ast::{
    self as ast, BinaryOperator, CastKind, DateTimeField, Spanned, UnaryOperator,
};
use sqlparser::tokenizer::Span;

use crate::value::Value;

use super::error::SqlError;
use super::format::parse_decimal;
use super::functions::{self, Func};
use super::types::SqlType;
pub(crate) use super::typing::{arith, castable, coerce, common_type, compare, literal, num_of};

/// How an arithmetic operator computes (decided at compile time from the operand types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Num {
    /// INT: wraps at 32 bits as Java's int does.
    I32,
    /// BIGINT (and TIMESTAMP ± INTERVAL in milliseconds): wraps at 64 bits.
    I64,
    F64,
    /// DECIMAL: operand scales and the result's precision and scale.
    Dec {
        ls: u8,
        rs: u8,
        p: u8,
        s: u8,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A compiled expression over a row (`&[Value]`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Col(usize),
    Lit(Value),
    Arith(Arith, Num, Box<Expr>, Box<Expr>),
    Neg(Num, Box<Expr>),
    /// Operands have the same row representation (casts were inserted).
    Cmp(Cmp, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    IsNull(Box<Expr>, bool),
    /// `IS [NOT] TRUE/FALSE`: (expr, wanted, negated).
    IsBool(Box<Expr>, bool, bool),
    Cast(Box<Expr>, SqlType, SqlType),
    Case(Vec<(Expr, Expr)>, Box<Expr>),
    In(Box<Expr>, Vec<Expr>, bool),
    Like(Box<Expr>, Box<Expr>, Option<char>, bool),
    Call(Func, Vec<Expr>),
}

/// An expression and its type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Typed {
    pub(crate) e: Expr,
    pub(crate) ty: SqlType,
}

impl Typed {
    pub(crate) fn new(e: Expr, ty: SqlType) -> Typed {
        Typed { e, ty }
    }
}

/// One name visible to expressions.
#[derive(Debug, Clone)]
pub(crate) struct ScopeCol {
    pub(crate) name: String,
    /// Table name or alias that qualifies it (`B.price`).
    pub(crate) qualifier: Option<String>,
    pub(crate) ty: SqlType,
    pub(crate) index: usize,
}

/// The names an expression may use.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    pub(crate) cols: Vec<ScopeCol>,
}

impl Scope {
    fn resolve(&self, parts: &[ast::Ident], span: Span) -> Result<Typed, SqlError> {
        let (qual, name) = match parts {
            [n] => (None, n),
            [q, n] => (Some(q), n),
            _ => {
                return Err(SqlError::span(
                    span,
                    format!(
                        "column reference '{}' has too many parts; use column or table.column",
                        parts
                            .iter()
                            .map(|p| p.value.as_str())
                            .collect::<Vec<_>>()
                            .join(".")
                    ),
                ))
            }
        };
        if let Some(q) = qual {
            if !self
                .cols
                .iter()
                .any(|c| c.qualifier.as_deref() == Some(q.value.as_str()))
            {
                return Err(SqlError::span(
                    q.span,
                    format!("table or alias '{}' is not in the FROM clause", q.value),
                ));
            }
        }
        let mut matching = self.cols.iter().filter(|c| {
            c.name == name.value
                && qual.is_none_or(|q| c.qualifier.as_deref() == Some(q.value.as_str()))
        });
        if let (Some(a), Some(b)) = (matching.next(), matching.next()) {
            return Err(SqlError::span(
                name.span,
                format!(
                    "column '{}' is ambiguous; qualify it ({}.{} or {}.{})",
                    name.value,
                    a.qualifier.as_deref().unwrap_or("?"),
                    name.value,
                    b.qualifier.as_deref().unwrap_or("?"),
                    name.value
                ),
            ));
        }
        let found = self.cols.iter().find(|c| {
            c.name == name.value
                && qual.is_none_or(|q| c.qualifier.as_deref() == Some(q.value.as_str()))
        });
        match found {
            Some(c) => Ok(Typed::new(Expr::Col(c.index), c.ty.clone())),
            None => {
                let known: Vec<&str> = self.cols.iter().map(|c| c.name.as_str()).collect();
                let hint = self
                    .cols
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(&name.value))
                    .map(|c| format!(" (names are case-sensitive: did you mean '{}'?)", c.name))
                    .unwrap_or_default();
                Err(SqlError::span(
                    name.span,
                    format!(
                        "column '{}' not found{hint}; known columns: {}",
                        name.value,
                        known.join(", ")
                    ),
                ))
            }
        }
    }
}

/// A hook that may compile a node itself (aggregates, grouped expressions); `None` lets the
/// compiler handle it.
pub(crate) type Hook<'a> = &'a mut dyn FnMut(&ast::Expr) -> Result<Option<Typed>, SqlError>;

/// Compiles expressions against a scope.
pub(crate) struct Compiler<'a> {
    pub(crate) scope: &'a Scope,
    pub(crate) hook: Option<Hook<'a>>,
}

/// Names of the aggregate functions we plan (anything else is a scalar function).
pub(crate) fn is_aggregate_name(name: &str) -> bool {
    matches!(
        name.to_ascii_uppercase().as_str(),
        "COUNT" | "SUM" | "MIN" | "MAX" | "AVG"
    )
}

/// `TUMBLE_START` and friends: only meaningful after a legacy group window.
pub(crate) fn is_window_aux(name: &str) -> bool {
    name.split_once('_').is_some_and(|(p, s)| {
        matches!(p, "TUMBLE" | "HOP" | "SESSION")
            && matches!(s, "START" | "END" | "ROWTIME" | "PROCTIME")
    })
}

/// Function name of a call, upper-cased.
pub(crate) fn func_name(f: &ast::Function) -> String {
    f.name.to_string().to_ascii_uppercase()
}

/// Plain (unnamed, non-wildcard) arguments of a call.
pub(crate) fn plain_args(f: &ast::Function) -> Result<Vec<&ast::Expr>, SqlError> {
    let list = match &f.args {
        ast::FunctionArguments::None => return Ok(Vec::new()),
        ast::FunctionArguments::List(l) => l,
        ast::FunctionArguments::Subquery(_) => {
            return Err(SqlError::span(
                f.span(),
                "subqueries as function arguments are not supported",
            ))
        }
    };
    list.args
        .iter()
        .map(|a| match a {
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Ok(e),
            other => Err(SqlError::span(
                f.span(),
                format!("argument '{other}' of {} is not supported here", f.name),
            )),
        })
        .collect()
}

/// Does `e` contain an aggregate call? (Walks the expression kinds the compiler supports;
/// anything else is refused by the compiler anyway.)
pub(crate) fn contains_aggregate(e: &ast::Expr) -> bool {
    use ast::Expr as E;
    let any = |xs: &[&ast::Expr]| xs.iter().any(|x| contains_aggregate(x));
    match e {
        E::Function(f) => {
            let name = func_name(f);
            is_aggregate_name(&name)
                || is_window_aux(&name)
                || plain_args(f).map(|a| any(&a)).unwrap_or(false)
        }
        E::Nested(x)
        | E::UnaryOp { expr: x, .. }
        | E::IsNull(x)
        | E::IsNotNull(x)
        | E::IsTrue(x)
        | E::IsNotTrue(x)
        | E::IsFalse(x)
        | E::IsNotFalse(x)
        | E::Cast { expr: x, .. }
        | E::Extract { expr: x, .. }
        | E::Ceil { expr: x, .. }
        | E::Floor { expr: x, .. } => contains_aggregate(x),
        E::BinaryOp { left, right, .. } => any(&[left, right]),
        E::Between {
            expr, low, high, ..
        } => any(&[expr, low, high]),
        E::In {
            expr,
            target: ast::InTarget::List(list),
            ..
        } => contains_aggregate(expr) || list.iter().any(contains_aggregate),
        E::Like { expr, pattern, .. } => any(&[expr, pattern]),
        E::Position { expr, r#in } => any(&[expr, r#in]),
        E::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            contains_aggregate(expr)
                || substring_from.as_deref().is_some_and(contains_aggregate)
                || substring_for.as_deref().is_some_and(contains_aggregate)
        }
        E::Trim {
            expr, trim_what, ..
        } => contains_aggregate(expr) || trim_what.as_deref().is_some_and(contains_aggregate),
        E::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            operand.as_deref().is_some_and(contains_aggregate)
                || conditions
                    .iter()
                    .any(|c| contains_aggregate(&c.condition) || contains_aggregate(&c.result))
                || else_result.as_deref().is_some_and(contains_aggregate)
        }
        _ => false,
    }
}

/// An INTERVAL literal's length in milliseconds.
pub(crate) fn interval_ms(i: &ast::Interval, span: Span) -> Result<i64, SqlError> {
    let bad = |m: &str| SqlError::span(span, format!("interval {i} is not valid: {m}"));
    let text = match &*i.value {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::Number(s, _) => s.clone(),
            _ => return Err(bad("write it as INTERVAL '10' SECOND")),
        },
        _ => return Err(bad("write it as INTERVAL '10' SECOND")),
    };
    if i.last_field.is_some() {
        return Err(bad(
            "interval ranges (e.g. DAY TO SECOND) are not supported; use one unit",
        ));
    }
    let unit: i64 = match &i.leading_field {
        Some(DateTimeField::Millisecond | DateTimeField::Milliseconds) => 1,
        Some(DateTimeField::Second | DateTimeField::Seconds) => 1_000,
        Some(DateTimeField::Minute | DateTimeField::Minutes) => 60_000,
        Some(DateTimeField::Hour | DateTimeField::Hours) => 3_600_000,
        Some(DateTimeField::Day | DateTimeField::Days) => 86_400_000,
        None => return Err(bad("it needs a unit, e.g. INTERVAL '10' SECOND")),
        Some(other) => {
            return Err(bad(&format!(
                "unit {other} is not supported; use MILLISECOND, SECOND, MINUTE, HOUR or DAY"
            )))
        }
    };
    // Fractions are allowed for seconds ('1.5' SECOND), as in Flink.
    let ms = parse_decimal(&text, 3)
        .filter(|_| !text.trim().is_empty())
        .ok_or_else(|| bad(&format!("'{text}' is not a number")))?;
    let total = i128::from(ms) * i128::from(unit) / 1000;
    i64::try_from(total).map_err(|_| bad("it is too long"))
}

impl Compiler<'_> {
    /// A compiler without a hook.
    pub(crate) fn plain(scope: &Scope) -> Compiler<'_> {
        Compiler { scope, hook: None }
    }

    /// Compiles `e`.
    pub(crate) fn compile(&mut self, e: &ast::Expr) -> Result<Typed, SqlError> {
        if let Some(h) = self.hook.as_mut() {
            if let Some(t) = h(e)? {
                return Ok(t);
            }
        }
        let span = e.span();
        use ast::Expr as E;
        match e {
            E::Identifier(id) => self.scope.resolve(std::slice::from_ref(id), id.span),
            E::CompoundIdentifier(parts) => self.scope.resolve(parts, span),
            E::Nested(inner) => self.compile(inner),
            E::Value(v) => literal(&v.value, v.span),
            E::Interval(i) => Ok(Typed::new(
                Expr::Lit(Value::Int(interval_ms(i, span)?)),
                SqlType::Interval,
            )),
            E::TypedString(ts) => {
                let ty = SqlType::from_ast(&ts.data_type, span)?;
                let text = match &ts.value.value {
                    ast::Value::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                };
                let v = super::eval::cast(&Value::str(&text), &SqlType::String, &ty);
                if v.is_null() {
                    return Err(SqlError::span(
                        span,
                        format!("'{text}' is not a valid {ty} literal"),
                    ));
                }
                Ok(Typed::new(Expr::Lit(v), ty))
            }
            E::UnaryOp { op, expr } => {
                let t = self.compile(expr)?;
                match op {
                    UnaryOperator::Not => Ok(Typed::new(
                        Expr::Not(Box::new(self.boolean(t, expr)?)),
                        SqlType::Boolean,
                    )),
                    UnaryOperator::Plus if t.ty.is_numeric() => Ok(t),
                    UnaryOperator::Minus if t.ty.is_numeric() => {
                        let num = num_of(&t.ty);
                        Ok(Typed::new(Expr::Neg(num, Box::new(t.e)), t.ty))
                    }
                    _ => Err(SqlError::span(
                        span,
                        format!("operator {op} cannot be applied to {}", t.ty),
                    )),
                }
            }
            E::BinaryOp { left, op, right } => self.binary(left, op, right, span),
            E::IsNull(x) | E::IsNotNull(x) => {
                let t = self.compile(x)?;
                Ok(Typed::new(
                    Expr::IsNull(Box::new(t.e), matches!(e, E::IsNotNull(_))),
                    SqlType::Boolean,
                ))
            }
            E::IsTrue(x) | E::IsNotTrue(x) | E::IsFalse(x) | E::IsNotFalse(x) => {
                let t = self.compile(x)?;
                let t = self.boolean(t, x)?;
                let want = matches!(e, E::IsTrue(_) | E::IsNotTrue(_));
                let neg = matches!(e, E::IsNotTrue(_) | E::IsNotFalse(_));
                Ok(Typed::new(
                    Expr::IsBool(Box::new(t), want, neg),
                    SqlType::Boolean,
                ))
            }
            E::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let v = self.compile(expr)?;
                let lo = self.compile(low)?;
                let hi = self.compile(high)?;
                let ge = compare(Cmp::Ge, v.clone(), lo, span)?;
                let le = compare(Cmp::Le, v, hi, span)?;
                let both = Expr::And(Box::new(ge), Box::new(le));
                Ok(Typed::new(
                    if *negated {
                        Expr::Not(Box::new(both))
                    } else {
                        both
                    },
                    SqlType::Boolean,
                ))
            }
            E::In {
                target: ast::InTarget::List(list),
                expr,
                negated,
                ..
            } => {
                let v = self.compile(expr)?;
                let mut items = Vec::new();
                let mut target = v.ty.clone();
                let compiled: Vec<Typed> = list
                    .iter()
                    .map(|x| self.compile(x))
                    .collect::<Result<_, _>>()?;
                for c in &compiled {
                    target = common_type(&target, &c.ty).ok_or_else(|| {
                        SqlError::span(
                            span,
                            format!(
                                "IN list mixes {} and {}, which cannot be compared",
                                v.ty, c.ty
                            ),
                        )
                    })?;
                }
                for c in compiled {
                    items.push(coerce(c, &target).e);
                }
                let v = coerce(v, &target);
                Ok(Typed::new(
                    Expr::In(Box::new(v.e), items, *negated),
                    SqlType::Boolean,
                ))
            }
            E::Like {
                negated,
                any,
                expr,
                pattern,
                escape_char,
            } => {
                if *any {
                    return Err(SqlError::span(span, "LIKE ANY is not supported"));
                }
                let v = self.string(expr)?;
                let p = self.string(pattern)?;
                let esc = match escape_char.as_deref() {
                    None => None,
                    Some(ast::Expr::Value(v)) => match &v.value {
                        ast::Value::SingleQuotedString(s) if s.chars().count() == 1 => {
                            s.chars().next()
                        }
                        _ => {
                            return Err(SqlError::span(
                                span,
                                "the LIKE escape must be a single character",
                            ))
                        }
                    },
                    Some(_) => {
                        return Err(SqlError::span(
                            span,
                            "the LIKE escape must be a string literal",
                        ))
                    }
                };
                Ok(Typed::new(
                    Expr::Like(Box::new(v.e), Box::new(p.e), esc, *negated),
                    SqlType::Boolean,
                ))
            }
            E::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let operand = operand.as_deref().map(|o| self.compile(o)).transpose()?;
                let mut whens = Vec::new();
                let mut results = Vec::new();
                for c in conditions {
                    let cond = self.compile(&c.condition)?;
                    let cond = match &operand {
                        Some(o) => Typed::new(
                            compare(Cmp::Eq, o.clone(), cond, c.condition.span())?,
                            SqlType::Boolean,
                        ),
                        None => cond,
                    };
                    whens.push(self.boolean(cond, &c.condition)?);
                    results.push(self.compile(&c.result)?);
                }
                let els = match else_result {
                    Some(x) => self.compile(x)?,
                    None => Typed::new(Expr::Lit(Value::Null), SqlType::Null),
                };
                let mut ty = els.ty.clone();
                for r in &results {
                    ty = common_type(&ty, &r.ty).ok_or_else(|| {
                        SqlError::span(
                            span,
                            format!(
                                "CASE branches have types {} and {}, which have no common type",
                                ty, r.ty
                            ),
                        )
                    })?;
                }
                let branches = whens
                    .into_iter()
                    .zip(results)
                    .map(|(w, r)| (w, coerce(r, &ty).e))
                    .collect();
                Ok(Typed::new(
                    Expr::Case(branches, Box::new(coerce(els, &ty).e)),
                    ty,
                ))
            }
            E::Cast {
                kind,
                expr,
                data_type,
                format,
            } => {
                if format.is_some() {
                    return Err(SqlError::span(span, "CAST ... FORMAT is not supported"));
                }
                // CAST, TRY_CAST and `::` all give NULL when a value does not convert.
                let _ = matches!(kind, CastKind::Cast | CastKind::TryCast);
                let t = self.compile(expr)?;
                let to = SqlType::from_ast(data_type, span)?;
                if !castable(&t.ty, &to) {
                    return Err(SqlError::span(
                        span,
                        format!("cannot cast {} to {to}", t.ty),
                    ));
                }
                Ok(Typed::new(Expr::Cast(Box::new(t.e), t.ty, to.clone()), to))
            }
            E::Function(f) => {
                let name = func_name(f);
                if f.over.is_some() {
                    return Err(SqlError::span(
                        span,
                        format!("{name}(...) OVER (...) is not supported"),
                    ));
                }
                if is_aggregate_name(&name) {
                    return Err(SqlError::span(
                        span,
                        format!("aggregate function {name} is only allowed in the SELECT list or HAVING of a query with GROUP BY or aggregates"),
                    ));
                }
                let args = plain_args(f)?;
                let args: Vec<Typed> = args
                    .into_iter()
                    .map(|a| self.compile(a))
                    .collect::<Result<_, _>>()?;
                functions::compile_call(&name, args, span)
            }
            E::Extract { field, expr, .. } => {
                let t = self.compile(expr)?;
                functions::extract(field, t, span)
            }
            E::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![self.compile(expr)?];
                if let Some(f) = substring_from {
                    args.push(self.compile(f)?);
                }
                if let Some(f) = substring_for {
                    args.push(self.compile(f)?);
                }
                functions::compile_call("SUBSTRING", args, span)
            }
            E::Trim {
                trim_where,
                trim_what,
                expr,
                trim_characters,
            } => {
                if trim_characters.is_some() {
                    return Err(SqlError::span(
                        span,
                        "TRIM(expr, chars) is not supported; use TRIM(BOTH 'x' FROM expr)",
                    ));
                }
                let v = self.compile(expr)?;
                let what = match trim_what {
                    Some(w) => self.compile(w)?,
                    None => Typed::new(Expr::Lit(Value::str(" ")), SqlType::String),
                };
                let name = match trim_where {
                    Some(ast::TrimWhereField::Leading) => "LTRIM",
                    Some(ast::TrimWhereField::Trailing) => "RTRIM",
                    _ => "TRIM",
                };
                functions::compile_call(name, vec![v, what], span)
            }
            E::Position { expr, r#in } => {
                let args = vec![self.compile(expr)?, self.compile(r#in)?];
                functions::compile_call("POSITION", args, span)
            }
            E::Ceil { expr, field } | E::Floor { expr, field } => {
                let name = if matches!(e, E::Ceil { .. }) {
                    "CEIL"
                } else {
                    "FLOOR"
                };
                match field {
                    ast::CeilFloorKind::DateTimeField(DateTimeField::NoDateTime) => {}
                    ast::CeilFloorKind::DateTimeField(f) => {
                        let t = self.compile(expr)?;
                        return functions::floor_ceil_time(name, f, t, span);
                    }
                    ast::CeilFloorKind::Scale(_) => {
                        return Err(SqlError::span(
                            span,
                            format!("{name}(x, scale) is not supported"),
                        ))
                    }
                }
                let t = self.compile(expr)?;
                functions::compile_call(name, vec![t], span)
            }
            other => Err(SqlError::span(
                span,
                format!("expression '{other}' is not supported"),
            )),
        }
    }

    fn boolean(&mut self, t: Typed, at: &ast::Expr) -> Result<Expr, SqlError> {
        match t.ty {
            SqlType::Boolean => Ok(t.e),
            SqlType::Null => Ok(Expr::Lit(Value::Null)),
            other => Err(SqlError::span(
                at.span(),
                format!("'{at}' is {other}, but a BOOLEAN condition is needed here"),
            )),
        }
    }

    fn string(&mut self, e: &ast::Expr) -> Result<Typed, SqlError> {
        let t = self.compile(e)?;
        match t.ty {
            SqlType::String | SqlType::Null => Ok(t),
            other => Err(SqlError::span(
                e.span(),
                format!("'{e}' is {other}, but a string is needed here"),
            )),
        }
    }

    /// Compiles a condition (WHERE, HAVING).
    pub(crate) fn condition(&mut self, e: &ast::Expr) -> Result<Expr, SqlError> {
        let t = self.compile(e)?;
        self.boolean(t, e)
    }

    fn binary(
        &mut self,
        l: &ast::Expr,
        op: &BinaryOperator,
        r: &ast::Expr,
        span: Span,
    ) -> Result<Typed, SqlError> {
        let a = self.compile(l)?;
        let b = self.compile(r)?;
        use BinaryOperator as B;
        let cmp = match op {
            B::Eq => Some(Cmp::Eq),
            B::NotEq => Some(Cmp::Ne),
            B::Lt => Some(Cmp::Lt),
            B::LtEq => Some(Cmp::Le),
            B::Gt => Some(Cmp::Gt),
            B::GtEq => Some(Cmp::Ge),
            _ => None,
        };
        if let Some(c) = cmp {
            return Ok(Typed::new(compare(c, a, b, span)?, SqlType::Boolean));
        }
        match op {
            B::And | B::Or => {
                let x = self.boolean(a, l)?;
                let y = self.boolean(b, r)?;
                let e = if matches!(op, B::And) {
                    Expr::And(Box::new(x), Box::new(y))
                } else {
                    Expr::Or(Box::new(x), Box::new(y))
                };
                Ok(Typed::new(e, SqlType::Boolean))
            }
            B::StringConcat => {
                for (t, x) in [(&a, l), (&b, r)] {
                    if !matches!(t.ty, SqlType::String | SqlType::Null) {
                        return Err(SqlError::span(
                            x.span(),
                            format!("'{x}' is {}, but || needs strings", t.ty),
                        ));
                    }
                }
                Ok(Typed::new(
                    Expr::Call(Func::Concat, vec![a.e, b.e]),
                    SqlType::String,
                ))
            }
            B::Plus => arith(Arith::Add, a, b, span),
            B::Minus => arith(Arith::Sub, a, b, span),
            B::Multiply => arith(Arith::Mul, a, b, span),
            B::Divide => arith(Arith::Div, a, b, span),
            B::Modulo => arith(Arith::Mod, a, b, span),
            other => Err(SqlError::span(
                span,
                format!("operator {other} is not supported"),
            )),
        }
    }
}
