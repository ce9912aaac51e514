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
//! | `POST /v1/sql`               | run `{"sql": "..."}`: DDL, SET, INSERT INTO      |

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use eddy_processor::PipelineSpec;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::pipelines::{Definition, PipelineError, Pipelines};
use crate::sql::{SqlService, SqlServiceError};

/// What the handlers share.
#[derive(Debug, Clone)]
pub(crate) struct Admin {
    pub(crate) pipelines: Arc<Pipelines>,
    pub(crate) sql: Arc<SqlService>,
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
}

async fn run_sql(State(admin): State<Admin>, body: axum::body::Bytes) -> ApiResult {
    let req: SqlRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"sql\": \"...\"}}: {e}"),
        )
    })?;
    let results = admin.sql.execute(&req.sql).await?;
    Ok(Json(json!({ "results": results })).into_response())
}
