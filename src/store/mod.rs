//! PostgreSQL: migrations, idempotent writes of analyses, coder labels, retention.
//!
//! Everything regard stores lives in the `regard` schema (the database is shared with the
//! association's other data), including sqlx's `_sqlx_migrations` table. No face image and no
//! embedding is ever written: persons are boxes, timestamps and probabilities.

mod coding;
mod films;
mod keys;
mod ledger;
mod reanalysis;
mod reuse;
mod write;

pub use coding::{
    CoderAccount, CoderProgress, CodingScheme, Disagreement, FaceSource, FilmFilter, ImportSummary,
    LabelLineError, OriginFigure, PersonToCode, QueueFilter, QueuedPerson, SchemeCategory,
    SchemeProgress, Undone,
};
pub use films::strength as film_strength;
pub use keys::{ProvenanceKeys, canonical_json, film_key, provenance_keys, sha256_hex, title_key};
pub use ledger::{JobOrigin, JobReceipt, JobRecord, JobStatus, JobUpdate};
pub use reanalysis::{MediaToReanalyse, ReanalysisFilter};

use crate::domain::MediaRole;
use chrono::{DateTime, Utc};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

/// Longest any one SQL statement may run (or wait for a lock) by default.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The schema that holds every regard table and view.
pub const SCHEMA: &str = "regard";

/// Errors of the store. `is_retryable` tells the worker whether the same write may succeed later.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to PostgreSQL at {target}: {source}")]
    Connect { target: String, source: sqlx::Error },
    #[error("invalid PostgreSQL URL: {0}")]
    InvalidUrl(sqlx::Error),
    #[error("database migrations failed: {0}")]
    Migrate(#[from] MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("coder labels rejected, nothing imported ({} problem(s)): {}", .0.len(), summarize(.0))]
    LabelsRejected(Vec<LabelLineError>),
}

fn summarize(errors: &[LabelLineError]) -> String {
    let shown: Vec<String> = errors.iter().take(5).map(ToString::to_string).collect();
    let more = errors.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{}; and {more} more", shown.join("; "))
    } else {
        shown.join("; ")
    }
}

impl StoreError {
    fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        StoreError::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Connection loss, pool exhaustion, serialization failures and deadlocks are worth a retry;
    /// bad input and constraint violations are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            // A refused login (SQLSTATE 28...) stays refused; a server that is down may come back.
            StoreError::Connect { source, .. } => sqlx_retryable(source),
            StoreError::Database(e) => sqlx_retryable(e),
            StoreError::Migrate(MigrateError::Execute(e)) => sqlx_retryable(e),
            _ => false,
        }
    }
}

fn sqlx_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 40001 serialization; 40P01 deadlock; 53: resources;
            // 57P01..03: server shutting down or restarting; 57014: statement timeout (a
            // locked table); 55P03: lock not available.
            code.starts_with("08")
                || code == "40001"
                || code == "40P01"
                || code.starts_with("53")
                || matches!(
                    code.as_ref(),
                    "57P01" | "57P02" | "57P03" | "57014" | "55P03"
                )
        }),
        _ => false,
    }
}

/// Database id of an analysis row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct AnalysisId(pub i64);

/// What a write did: `new` is false when an equal result (same content, model set and
/// settings) was already stored and kept, or when a failure met an existing success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordOutcome {
    pub analysis_id: AnalysisId,
    pub new: bool,
}

/// When the analysis ran and how long its stages took (recorded, not part of the result key).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Seconds per stage, e.g. "fetch", "decode", "detect".
    pub stages_s: BTreeMap<String, f64>,
}

/// A media file whose analysis failed, with what is known about it.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedMedia {
    /// Path or URL as given.
    pub source: String,
    /// Known when the bytes were read before the failure.
    pub content_sha256: Option<String>,
    pub kind: Option<MediaRole>,
}

/// What retention removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeSummary {
    pub persons_deleted: u64,
    pub analyses_stripped: u64,
}

/// The PostgreSQL store. Cheap to clone (a pool).
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    options: PgConnectOptions,
}

impl Store {
    /// Connect to `url` (`postgres://user@host:port/db`). Fails fast with the host named (the
    /// password is never printed) when the server is down.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_with_timeout(url, DEFAULT_STATEMENT_TIMEOUT).await
    }

    /// [`Store::connect`] with another bound on every statement (a locked table or a
    /// runaway query fails in this time, as a retryable error, instead of holding a job slot).
    pub async fn connect_with_timeout(
        url: &str,
        statement_timeout: Duration,
    ) -> Result<Store, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(StoreError::InvalidUrl)?;
        let ms = statement_timeout.as_millis().max(1).to_string();
        Store::connect_with(options.options([("statement_timeout", ms)])).await
    }

    pub async fn connect_with(options: PgConnectOptions) -> Result<Store, StoreError> {
        let options = options.application_name("regard");
        let target = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("")
        );
        // One direct connection first: a down server or a refused login fails at once with a
        // clear error, instead of the pool retrying until its acquire timeout.
        let probe = options
            .connect()
            .await
            .map_err(|source| StoreError::Connect {
                target: target.clone(),
                source,
            })?;
        if let Err(e) = probe.close().await {
            tracing::debug!(error = %e, "closing the probe connection failed");
        }
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(15))
            .connect_with(options.clone())
            .await
            .map_err(|source| StoreError::Connect { target, source })?;
        Ok(Store { pool, options })
    }

    /// The pool, for callers that need raw queries (tests, reports).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Apply pending migrations. Idempotent, and safe when several workers start at once:
    /// sqlx takes a session-level advisory lock (pg_advisory_lock, per database) before it
    /// creates the schema and the migrations table. A dedicated connection is used and closed
    /// so that the lock can never linger in the pool after an error.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.options.connect().await?;
        let result = migrator().run(&mut conn).await;
        // Closing releases the advisory lock even if the migration failed half-way; a close
        // error after a successful run does not undo the migration, so it is only logged.
        if let Err(e) = conn.close().await {
            tracing::warn!(error = %e, "closing the migration connection failed");
        }
        result.map_err(StoreError::from)
    }

    /// Delete per-person rows (faces, persons, their coder labels) of analyses recorded more
    /// than `age` ago, and strip per-person data from the stored result JSON. Representation
    /// rows and analyses stay, so every aggregate view keeps its figures.
    pub async fn purge_persons_older_than(
        &self,
        age: Duration,
    ) -> Result<PurgeSummary, StoreError> {
        let secs = age.as_secs_f64();
        let mut tx = self.pool.begin().await?;
        let persons = sqlx::query(
            "DELETE FROM regard.person p USING regard.analysis a
             WHERE p.analysis_id = a.analysis_id
               AND a.recorded_at < now() - make_interval(secs => $1)",
        )
        .bind(secs)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let analyses = sqlx::query(
            "UPDATE regard.analysis
             SET result = result - 'faces' - 'persons' - 'timeline', persons_purged_at = now()
             WHERE recorded_at < now() - make_interval(secs => $1)
               AND result IS NOT NULL AND persons_purged_at IS NULL",
        )
        .bind(secs)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(PurgeSummary {
            persons_deleted: persons,
            analyses_stripped: analyses,
        })
    }
}

/// The embedded migrations, with sqlx's bookkeeping table moved into the regard schema.
fn migrator() -> Migrator {
    let mut m = sqlx::migrate!("./migrations");
    m.create_schema(SCHEMA);
    m.dangerous_set_table_name("regard._sqlx_migrations");
    // During a rolling upgrade an older worker must still start after a newer one migrated:
    // migrations are additive, so versions this binary does not know are not an error.
    m.set_ignore_missing(true);
    m
}

fn validate_sha256(what: &str, value: &str) -> Result<(), StoreError> {
    let ok = value.len() == 64
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            what,
            format!("{value:?} is not a lowercase hex sha256"),
        ))
    }
}
