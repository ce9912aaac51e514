//! The admin HTTP API (`--http`, default 127.0.0.1:9644): pipelines and SQL.
//!
//! JSON in, JSON out; every error is `{"error": "<a sentence>"}` with a 4xx/5xx status.
//! `eddy pipeline` and `eddy sql` are thin clients of it; the routes are documented in the
//! README ("Admin HTTP API").
//!
//! | method and path              | what                                             |
//! |------------------------------|--------------------------------------------------|
//! | `GET /v1/health`             | `{"status": "ok"}`                               |
//! | `GET /v1/pipelines`          | every pipeline with its kind and last status     |
//! | `POST /v1/pipelines`         | create from a JSON definition (body)             |
//! | `GET /v1/pipelines/{name}`   | definition and status                            |
//! | `DELETE /v1/pipelines/{name}`| stop, then remove definition and state           |
//! | `POST /v1/sql`               | run `{"sql", "settings"}`: DDL, SET, INSERT INTO |
//! | `POST /v1/query`             | run a bare SELECT, rows streamed back as NDJSON  |
//! | `GET /v1/queries`            | the running queries with their progress          |
//! | `DELETE /v1/queries/{id}`    | stop a running query                             |

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use eddy_processor::PipelineSpec;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use eddy_processor::sql::Changelog;
use eddy_processor::RunState;

use crate::pipelines::{Definition, PipelineError, Pipelines};
use crate::queries::{Queries, Started};
use crate::sql::{SqlService, SqlServiceError};

/// What the handlers share.
#[derive(Debug, Clone)]
pub(crate) struct Admin {
    pub(crate) pipelines: Arc<Pipelines>,
    pub(crate) sql: Arc<SqlService>,
    pub(crate) queries: Arc<Queries>,
}

/// An error response: status and a sentence.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> ApiError {
        let status = match &e {
            PipelineError::Invalid(_) => StatusCode::BAD_REQUEST,
            PipelineError::NotFound(_) => StatusCode::NOT_FOUND,
            PipelineError::Conflict(_) => StatusCode::CONFLICT,
            PipelineError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

type ApiResult = Result<Response, ApiError>;

pub(crate) fn router(admin: Admin) -> Router {
    Router::new()
        .route(
            "/v1/health",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/v1/pipelines", get(list).post(create))
        .route("/v1/pipelines/{name}", get(describe).delete(drop_pipeline))
        .route("/v1/sql", post(run_sql))
        .route("/v1/query", post(run_query))
        .route(
            "/v1/queries",
            get(|State(admin): State<Admin>| async move {
                Json(json!({ "queries": admin.queries.list() }))
            }),
        )
        .route("/v1/queries/{id}", axum::routing::delete(cancel_query))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "no such route; see the README's \"Admin HTTP API\"".into(),
            )
        })
        .with_state(admin)
}

/// Serves until `shutdown` fires.
pub(crate) async fn run(listener: TcpListener, admin: Admin, mut shutdown: watch::Receiver<bool>) {
    let served = axum::serve(listener, router(admin)).with_graceful_shutdown(async move {
        let _ = shutdown.changed().await;
    });
    if let Err(e) = served.await {
        tracing::error!(error = %e, "the admin HTTP API stopped");
    }
}

fn summary(def: &Definition, status: Option<Value>) -> Value {
    let mut out = json!({ "name": def.name(), "kind": def.kind() });
    match status {
        Some(Value::Object(fields)) => {
            for (k, v) in fields {
                if k != "name" {
                    out[k] = v;
                }
            }
        }
        _ => out["state"] = json!("starting"),
    }
    out
}

async fn list(State(admin): State<Admin>) -> Json<Value> {
    let rows: Vec<Value> = admin
        .pipelines
        .list()
        .into_iter()
        .map(|(def, status)| summary(&def, status))
        .collect();
    Json(json!({ "pipelines": rows }))
}

async fn describe(State(admin): State<Admin>, Path(name): Path<String>) -> ApiResult {
    let (def, status) = admin.pipelines.describe(&name)?;
    let mut out = summary(&def, status);
    out["definition"] = json!(def.text());
    Ok(Json(out).into_response())
}

async fn create(State(admin): State<Admin>, body: axum::body::Bytes) -> ApiResult {
    let spec = PipelineSpec::from_json(&body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let name = spec.name.clone();
    let created = admin.pipelines.create(Definition::Spec(spec)).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "name": name, "created": created }))).into_response())
}

async fn drop_pipeline(State(admin): State<Admin>, Path(name): Path<String>) -> ApiResult {
    admin.pipelines.drop_pipeline(&name).await?;
    Ok(Json(json!({ "dropped": name })).into_response())
}

impl From<SqlServiceError> for ApiError {
    fn from(e: SqlServiceError) -> ApiError {
        match e {
            SqlServiceError::Pipeline(p) => p.into(),
            SqlServiceError::Sql(m) => ApiError(StatusCode::BAD_REQUEST, m),
            e @ SqlServiceError::Io { .. } => {
                ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    sql: String,
    /// Options set before the script runs, as `SET 'k' = 'v'` (the prompt keeps its SETs
    /// client-side; sent this way, errors keep the statement's own lines and columns).
    #[serde(default)]
    settings: BTreeMap<String, String>,
}

async fn run_sql(State(admin): State<Admin>, body: axum::body::Bytes) -> ApiResult {
    let req: SqlRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"sql\": \"...\"}}: {e}"),
        )
    })?;
    let results = admin.sql.execute(&req.sql, &req.settings).await?;
    Ok(Json(json!({ "results": results })).into_response())
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryRequest {
    sql: String,
    /// Options as `SET 'k' = 'v'` would set them (the prompt keeps its SETs client-side).
    #[serde(default)]
    settings: BTreeMap<String, String>,
}

/// Plans a bare SELECT (errors answer 400 before anything starts), then streams NDJSON:
/// a header line `{"query", "columns": [{"name", "type"}], "updating", "limit"}`, one
/// `{"op": "+I" | "-U" | "+U" | "-D", "row": [...]}` per result row as it is produced, and,
/// if the query ends by itself, a last `{"end": "limit" | "finished" | "stopped"}` or
/// `{"error": "..."}`. Closing the connection stops the query.
async fn run_query(State(admin): State<Admin>, body: Bytes) -> ApiResult {
    let req: QueryRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"sql\": \"SELECT ...\", \"settings\": {{...}}}}: {e}"),
        )
    })?;
    let query = admin.sql.plan_query(&req.sql, &req.settings)?;
    let columns: Vec<Value> = query
        .columns
        .iter()
        .map(|(name, ty)| json!({ "name": name, "type": ty.to_string() }))
        .collect();
    let (updating, left) = (query.updating, query.limit);
    let changelog = Changelog::new(&query);
    let started = admin.queries.start(req.sql, query);
    let header = json!({
        "query": started.id, "columns": columns, "updating": updating, "limit": left,
    });
    let mut lines = ResultLines {
        pending: VecDeque::new(),
        started: Some(started),
        changelog,
        left,
    };
    lines.push(&header);
    if left == Some(0) {
        lines.end("limit");
    }
    let stream = futures::stream::unfold(lines, |mut lines| async move {
        let next = lines.next().await?;
        Some((Ok::<Bytes, std::convert::Infallible>(next), lines))
    });
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn cancel_query(State(admin): State<Admin>, Path(id): Path<u64>) -> ApiResult {
    if admin.queries.cancel(id) {
        Ok(Json(json!({ "cancelled": id })).into_response())
    } else {
        Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no running query {id}"),
        ))
    }
}

/// The lines of a query's response, made as its rows arrive.
struct ResultLines {
    pending: VecDeque<Bytes>,
    /// `None` once the query is over (dropping it stops the query).
    started: Option<Started>,
    changelog: Changelog,
    /// Rows still to send under LIMIT.
    left: Option<u64>,
}

impl ResultLines {
    fn push(&mut self, v: &impl serde::Serialize) {
        let mut line = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
        line.push(b'\n');
        self.pending.push_back(Bytes::from(line));
    }

    /// Ends the query (if still running) with a last line.
    fn end(&mut self, how: &str) {
        self.started = None;
        self.push(&json!({ "end": how }));
    }

    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return Some(line);
            }
            let started = self.started.as_mut()?;
            match started.rows.recv().await {
                Some(event) => {
                    for (kind, row) in self.changelog.rows(event) {
                        if self.left == Some(0) {
                            break;
                        }
                        self.push(&json!({ "op": kind.as_str(), "row": row }));
                        if let Some(n) = &mut self.left {
                            *n -= 1;
                        }
                    }
                    if self.left == Some(0) {
                        self.end("limit");
                    }
                }
                None => {
                    let state = (&mut started.done).await.unwrap_or(RunState::Stopped);
                    self.started = None;
                    match state {
                        RunState::Failed(e) => self.push(&json!({ "error": e })),
                        RunState::Finished => self.push(&json!({ "end": "finished" })),
                        _ => self.push(&json!({ "end": "stopped" })),
                    }
                }
            }
        }
    }
}
