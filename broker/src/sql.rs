//! The broker's SQL catalog and statement execution behind `POST /v1/sql`.
//!
//! Tables created with `CREATE TABLE` live in `<data-dir>/catalog.json`, so every `eddy sql`
//! session (and a restarted broker) sees them. An `INSERT INTO ... SELECT` becomes a
//! persistent pipeline whose stored definition is self-contained SQL (the tables it reads and
//! writes, its `SET`s and the `INSERT`): it restarts from that text even if a table is later
//! dropped from the catalog. A bare SELECT is only planned here ([`SqlService::plan_query`]);
//! [`crate::queries`] runs it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use eddy_processor::sql::{Catalog, Outcome, Session, SqlQuery};
use serde_json::{json, Value};

use crate::pipelines::{Definition, PipelineError, Pipelines};

/// Why a SQL request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SqlServiceError {
    /// The statement is invalid or unsupported; nothing of it took effect.
    #[error("{0}")]
    Sql(String),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("cannot store the SQL catalog at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug)]
pub(crate) struct SqlService {
    path: PathBuf,
    /// Held across one request's statements so concurrent sessions never lose an update.
    catalog: Mutex<Catalog>,
    pipelines: Arc<Pipelines>,
}

impl SqlService {
    /// Loads the catalog (an unreadable one is an error: the broker must not silently forget
    /// tables).
    pub(crate) fn load(
        data_dir: &std::path::Path,
        pipelines: Arc<Pipelines>,
    ) -> anyhow::Result<SqlService> {
        let path = data_dir.join("catalog.json");
        let catalog = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!("the SQL catalog {} is unreadable: {e}", path.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Catalog::default(),
            Err(e) => anyhow::bail!("cannot read the SQL catalog {}: {e}", path.display()),
        };
        Ok(SqlService {
            path,
            catalog: Mutex::new(catalog),
            pipelines,
        })
    }

    /// Plans a bare SELECT against the catalog with `settings` (as `SET 'k' = 'v'` would);
    /// nothing is started or stored.
    pub(crate) fn plan_query(
        &self,
        sql: &str,
        settings: &BTreeMap<String, String>,
    ) -> Result<SqlQuery, SqlServiceError> {
        let catalog = self
            .catalog
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut session = Session::new(catalog);
        apply_settings(&mut session, settings)?;
        session
            .plan_query(sql)
            .map_err(|e| SqlServiceError::Sql(e.to_string()))
    }

    /// Runs a script after `settings` (as `SET 'k' = 'v'` statements would, but without
    /// results, and keeping the script's lines and columns as written); answers one JSON
    /// result per statement.
    pub(crate) async fn execute(
        &self,
        script: &str,
        settings: &BTreeMap<String, String>,
    ) -> Result<Vec<Value>, SqlServiceError> {
        let outcomes = {
            let mut catalog = self
                .catalog
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut session = Session::new(catalog.clone());
            apply_settings(&mut session, settings)?;
            let outcomes = session
                .execute(script)
                .map_err(|e| SqlServiceError::Sql(e.to_string()))?;
            // Every pipeline the script defines must be creatable before the catalog changes:
            // a refused INSERT leaves nothing of the script behind.
            let mut names = std::collections::HashSet::new();
            for o in &outcomes {
                if let Outcome::Pipeline(p) = o {
                    self.pipelines.check(&Definition::Sql {
                        name: p.name.clone(),
                        sql: p.sql.clone(),
                    })?;
                    if !names.insert(p.name.as_str()) {
                        return Err(PipelineError::Conflict(p.name.clone()).into());
                    }
                }
            }
            // Compared as stored, so the catalog type needs no equality of its own.
            let store = |c: &Catalog| {
                serde_json::to_vec_pretty(c).map_err(|e| SqlServiceError::Sql(e.to_string()))
            };
            let after = store(session.catalog())?;
            if after != store(&catalog)? {
                crate::topics::write_atomic(&self.path, &after).map_err(|source| {
                    SqlServiceError::Io {
                        path: self.path.clone(),
                        source,
                    }
                })?;
                *catalog = session.catalog().clone();
            }
            outcomes
        };
        let mut results = Vec::with_capacity(outcomes.len());
        for o in outcomes {
            results.push(match o {
                Outcome::Done(message) => json!({ "kind": "done", "message": message }),
                Outcome::Rows { columns, rows } => {
                    json!({ "kind": "rows", "columns": columns, "rows": rows })
                }
                Outcome::Pipeline(p) => {
                    let name = p.name.clone();
                    let created = self
                        .pipelines
                        .create(Definition::Sql {
                            name: p.name,
                            sql: p.sql,
                        })
                        .await?;
                    json!({ "kind": "pipeline", "name": name, "created": created,
                            "input_topics": p.input_topics, "output_topic": p.output_topic })
                }
            });
        }
        Ok(results)
    }
}

/// Sets each option in `session` as `SET 'k' = 'v'` would (so they are checked alike).
fn apply_settings(
    session: &mut Session,
    settings: &BTreeMap<String, String>,
) -> Result<(), SqlServiceError> {
    for (k, v) in settings {
        let quote = |s: &str| s.replace('\'', "''");
        session
            .execute(&format!("SET '{}' = '{}'", quote(k), quote(v)))
            .map_err(|e| SqlServiceError::Sql(format!("setting '{k}': {}", e.message)))?;
    }
    Ok(())
}
