//! The job ledger: one row per job id ever received, from the queue or the CLI, with what
//! became of it. Every write is an upsert keyed on the job id, so a redelivery updates the
//! same row (attempts + 1) and writing the same state twice changes nothing.

use super::{AnalysisId, Store, StoreError};
use crate::domain::{FestivalSelection, Film, MediaRole};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Where a job came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOrigin {
    Queue,
    Cli,
}

impl JobOrigin {
    fn as_str(self) -> &'static str {
        match self {
            JobOrigin::Queue => "queue",
            JobOrigin::Cli => "cli",
        }
    }
}

/// The states of a job. `Failed` is final for CLI inputs; queue jobs that fail for good are
/// `DeadLettered` (their message is in the dead-letter queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Retrying,
    Succeeded,
    Failed,
    DeadLettered,
}

impl JobStatus {
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Retrying,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::DeadLettered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Retrying => "retrying",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::DeadLettered => "dead_lettered",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }

    fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::DeadLettered
        )
    }
}

/// What a job said about itself when it was received.
#[derive(Debug, Clone)]
pub struct JobReceipt<'a> {
    pub job_id: &'a str,
    pub origin: JobOrigin,
    pub source: Option<&'a str>,
    pub kind: Option<MediaRole>,
    pub film: Option<&'a Film>,
    pub festival: Option<&'a FestivalSelection>,
}

/// How a job ended, or where it stands.
#[derive(Debug, Clone)]
pub enum JobUpdate<'a> {
    Succeeded {
        analysis: AnalysisId,
    },
    /// A transient failure: another attempt comes at `next_attempt_at`.
    Retrying {
        code: &'a str,
        message: &'a str,
        next_attempt_at: DateTime<Utc>,
    },
    /// Failed for good (`dead_lettered`: the message went to the dead letters).
    Failed {
        dead_lettered: bool,
        code: &'a str,
        message: &'a str,
        analysis: Option<AnalysisId>,
    },
    /// Handed back unfinished at a shutdown: waiting in the jobs queue again.
    Queued,
}

/// One ledger row, as `regard jobs show` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct JobRecord {
    pub job_id: String,
    pub origin: String,
    pub source: Option<String>,
    pub kind: Option<String>,
    pub film: Option<serde_json::Value>,
    pub festival: Option<serde_json::Value>,
    pub status: String,
    pub attempts: i32,
    pub received_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub analysis_id: Option<i64>,
}

const COLUMNS: &str = "job_id, origin, source, kind, film, festival, status, attempts, received_at, \
     started_at, finished_at, next_attempt_at, error_code, error_message, analysis_id";

impl Store {
    /// A job is being started: its row is created (first time) or marked running again with
    /// one more attempt. A job already finished stays as it was apart from the attempt count
    /// (a redelivery of a settled job will settle it again).
    pub async fn job_started(&self, job: &JobReceipt<'_>) -> Result<(), StoreError> {
        let film = job
            .film
            .map(serde_json::to_value)
            .transpose()
            .ok()
            .flatten();
        let festival = job
            .festival
            .map(serde_json::to_value)
            .transpose()
            .ok()
            .flatten();
        sqlx::query(
            "INSERT INTO regard.job (job_id, origin, source, kind, film, festival, status,
                                     attempts, started_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'running', 1, now())
             ON CONFLICT (job_id) DO UPDATE SET
                status = 'running', attempts = regard.job.attempts + 1, started_at = now(),
                next_attempt_at = NULL,
                source = coalesce(EXCLUDED.source, regard.job.source),
                kind = coalesce(EXCLUDED.kind, regard.job.kind),
                film = coalesce(EXCLUDED.film, regard.job.film),
                festival = coalesce(EXCLUDED.festival, regard.job.festival),
                updated_at = now()",
        )
        .bind(job.job_id)
        .bind(job.origin.as_str())
        .bind(job.source)
        .bind(job.kind.map(MediaRole::as_str))
        .bind(film)
        .bind(festival)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Record where a job stands. A success is never turned back into a failure or a retry
    /// (a late duplicate delivery of a job that already succeeded changes nothing).
    pub async fn job_update(&self, job_id: &str, update: &JobUpdate<'_>) -> Result<(), StoreError> {
        let (status, code, message, next, analysis) = match update {
            JobUpdate::Succeeded { analysis } => {
                (JobStatus::Succeeded, None, None, None, Some(analysis.0))
            }
            JobUpdate::Retrying {
                code,
                message,
                next_attempt_at,
            } => (
                JobStatus::Retrying,
                Some(*code),
                Some(*message),
                Some(*next_attempt_at),
                None,
            ),
            JobUpdate::Failed {
                dead_lettered,
                code,
                message,
                analysis,
            } => (
                if *dead_lettered {
                    JobStatus::DeadLettered
                } else {
                    JobStatus::Failed
                },
                Some(*code),
                Some(*message),
                None,
                analysis.map(|a| a.0),
            ),
            JobUpdate::Queued => (JobStatus::Queued, None, None, None, None),
        };
        let finished = status.is_final();
        sqlx::query(
            "UPDATE regard.job SET
                status = $2,
                error_code = CASE WHEN $2 = 'succeeded' THEN NULL ELSE coalesce($3, error_code) END,
                error_message = CASE WHEN $2 = 'succeeded' THEN NULL ELSE coalesce($4, error_message) END,
                next_attempt_at = $5,
                analysis_id = coalesce($6, analysis_id),
                finished_at = CASE WHEN $7 THEN now() ELSE finished_at END,
                updated_at = now()
             WHERE job_id = $1 AND (status <> 'succeeded' OR $2 = 'succeeded')",
        )
        .bind(job_id)
        .bind(status.as_str())
        .bind(code)
        .bind(message)
        .bind(next)
        .bind(analysis)
        .bind(finished)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A message that is not a job: one dead-lettered row under whatever id it carried.
    pub async fn job_malformed(
        &self,
        job_id: &str,
        code: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO regard.job (job_id, origin, status, attempts, started_at, finished_at,
                                     error_code, error_message)
             VALUES ($1, 'queue', 'dead_lettered', 1, now(), now(), $2, $3)
             ON CONFLICT (job_id) DO UPDATE SET
                attempts = regard.job.attempts + 1, updated_at = now(),
                status = CASE WHEN regard.job.status = 'succeeded' THEN regard.job.status
                              ELSE 'dead_lettered' END,
                error_code = EXCLUDED.error_code, error_message = EXCLUDED.error_message,
                finished_at = now()",
        )
        .bind(job_id)
        .bind(code)
        .bind(message)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One job by id.
    pub async fn job(&self, job_id: &str) -> Result<Option<JobRecord>, StoreError> {
        let row = sqlx::query_as::<_, JobRecord>(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM regard.job WHERE job_id = $1"
        )))
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row)
    }

    /// Jobs, newest first, optionally of one status and received since a time.
    pub async fn jobs(
        &self,
        status: Option<JobStatus>,
        since: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let rows = sqlx::query_as::<_, JobRecord>(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM regard.job
             WHERE ($1::text IS NULL OR status = $1)
               AND ($2::timestamptz IS NULL OR received_at >= $2)
             ORDER BY received_at DESC, job_id LIMIT $3"
        )))
        .bind(status.map(JobStatus::as_str))
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
}
