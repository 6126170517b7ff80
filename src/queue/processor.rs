//! The worker's real work: a queue job handed to the [`Runner`] (fetch → reuse or analyse →
//! record), its failure classified once, and the result event's summary.

use super::job::Job;
use super::worker::{JobContext, JobDone, JobError, Processor};
use crate::domain::{Analysis, Interval, MediaContext};
use crate::runner::{Done, Failure, Runner, stage};
use crate::store::{FailedMedia, JobOrigin, RecordOutcome};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What is known of a failed job's media, kept for its failure record (at most this many
/// jobs; entries leave when the job ends).
const MAX_REMEMBERED: usize = 4096;

/// Runs queue jobs with a [`Runner`] that has a store.
pub struct JobProcessor {
    runner: Runner,
    /// Media of each job that failed transiently, for the record written when its attempts
    /// are over.
    failed_media: Mutex<HashMap<String, FailedMedia>>,
}

impl JobProcessor {
    pub fn new(runner: Runner) -> anyhow::Result<Self> {
        anyhow::ensure!(
            runner.store().is_some(),
            "the queue worker needs a database"
        );
        // Tests arm failure points in the job path through FAILPOINTS (feature `failpoints`).
        crate::runner::failpoint::setup().map_err(anyhow::Error::msg)?;
        Ok(JobProcessor {
            runner,
            failed_media: Mutex::new(HashMap::new()),
        })
    }

    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    fn remember(&self, job: &Job, media: FailedMedia) {
        let mut map = lock(&self.failed_media);
        if map.len() >= MAX_REMEMBERED {
            // Only jobs that failed transiently and went elsewhere linger; dropping them costs
            // a failure record without its hash, nothing more.
            map.clear();
        }
        map.insert(job.id.to_string(), media);
    }
}

/// The context a job's results are filed under.
pub fn media_context(job: &Job) -> MediaContext {
    MediaContext {
        film: Some(job.film.clone()),
        festival: job.festival.clone(),
        job_id: Some(job.id.to_string()),
    }
}

fn job_error(f: &Failure) -> JobError {
    if f.retryable {
        JobError::transient(f.code, f.message.clone())
    } else {
        JobError::permanent(f.code, f.message.clone())
    }
}

impl Processor for JobProcessor {
    async fn process(&self, job: &Job, ctx: &JobContext) -> Result<JobDone, JobError> {
        let request = crate::runner::Request {
            source: job.source.as_string(),
            expected_kind: Some(job.kind),
            context: media_context(job),
            origin: JobOrigin::Queue,
            settings: job.settings.apply(self.runner.settings().clone()),
            pictures: false,
        };
        tracing::info!(
            source = %request.source,
            kind = job.kind_name(),
            attempt = ctx.attempt,
            "job started"
        );
        let done = match self.runner.run(&request, progress_log()).await {
            Ok(done) => done,
            Err(failure) => {
                self.remember(job, failure.media.clone());
                return Err(job_error(&failure));
            }
        };
        lock(&self.failed_media).remove(job.id.as_str());
        for (stage, seconds) in &done.timings.stages_s {
            if let Some(stage) = [stage::FETCH, stage::ANALYSE, stage::COMMIT]
                .into_iter()
                .find(|s| s == stage)
            {
                ctx.stage(stage, *seconds);
            }
        }
        let work = done.work;
        ctx.metrics.frames_decoded(work.frames);
        ctx.metrics.faces_found(work.faces);
        ctx.metrics.inference_seconds(work.inference_s);
        let outcome = done
            .stored
            .expect("a runner with a store records every result");
        tracing::info!(
            analysis_id = outcome.analysis_id.0,
            new = outcome.new,
            reused = done.reused,
            frames = work.frames,
            faces = work.faces,
            "analysis committed"
        );
        Ok(JobDone {
            summary: summary(&done, &outcome),
        })
    }

    async fn record_failure(
        &self,
        job: &Job,
        error: &JobError,
        attempts: u32,
    ) -> Result<(), JobError> {
        let settings = job.settings.apply(self.runner.settings().clone());
        let media = lock(&self.failed_media)
            .remove(job.id.as_str())
            .unwrap_or_else(|| FailedMedia {
                source: job.source.as_string(),
                content_sha256: None,
                kind: Some(job.kind),
            });
        let message = if attempts > 1 {
            format!("{} (after {attempts} attempts)", error.message())
        } else {
            error.message().to_string()
        };
        self.runner
            .record_failure(
                &media,
                &settings,
                &media_context(job),
                error.code(),
                &message,
                true,
            )
            .await
            .map(|_| ())
            .map_err(|e| {
                if e.is_retryable() {
                    JobError::transient("database_unavailable", e.to_string())
                } else {
                    JobError::permanent("store_rejected", e.to_string())
                }
            })
    }

    async fn ready(&self) -> Result<(), String> {
        // Models are loaded before the processor exists; the database may come and go.
        self.runner.ping_database().await
    }

    async fn retrying(&self, job: &Job, error: &JobError, next: chrono::DateTime<chrono::Utc>) {
        self.runner
            .ledger_retrying(job.id.as_str(), error.code(), error.message(), next)
            .await;
    }

    async fn handed_back(&self, job_id: &str) {
        self.runner.ledger_queued(job_id).await;
    }

    async fn malformed(&self, job_id: &str, code: &str, message: &str) {
        self.runner.ledger_malformed(job_id, code, message).await;
    }
}

/// Logs a trailer's progress at each quarter, so that a long job is visibly alive (posters
/// report no progress).
fn progress_log() -> Arc<dyn Fn(crate::pipeline::Progress) + Send + Sync> {
    let logged = std::sync::atomic::AtomicU32::new(0);
    Arc::new(move |p| {
        if p.total_s <= 0.0 {
            return;
        }
        let quarter = ((p.done_s / p.total_s) * 4.0).floor().clamp(0.0, 4.0) as u32;
        if quarter > logged.fetch_max(quarter, std::sync::atomic::Ordering::Relaxed) {
            tracing::info!(
                done_s = p.done_s.round(),
                total_s = p.total_s.round(),
                percent = quarter * 25,
                "trailer progress"
            );
        }
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data behind this lock stays valid if a holder panicked.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn interval_json(i: &Option<Interval>) -> serde_json::Value {
    match i {
        Some(i) => serde_json::json!([i.low, i.high]),
        None => serde_json::Value::Null,
    }
}

/// The result event's summary: what was stored and the headline figure. Pure.
pub fn summary(done: &Done, outcome: &RecordOutcome) -> serde_json::Value {
    let analysis = &done.analysis;
    let media = analysis.media();
    let mut s = serde_json::json!({
        "analysis_id": outcome.analysis_id.0,
        "new": outcome.new,
        "reused": done.reused,
        "media_sha256": media.content_sha256,
        "inference_s": done.work.inference_s,
    });
    match analysis {
        Analysis::Poster(p) => {
            let gender = p.statistics.iter().find(|a| a.attribute == "gender");
            let female = gender.and_then(|g| g.categories.iter().find(|c| c.category == "female"));
            s["kind"] = "poster".into();
            s["faces"] = p.faces.len().into();
            s["faces_gender_unknown"] = gender.map(|g| g.unknown).unwrap_or(0).into();
            s["women_share"] = female.map(|c| c.share).into();
            s["women_share_interval"] = female.map(|c| interval_json(&c.share_interval)).into();
        }
        Analysis::Trailer(t) => {
            let gender = t.statistics.iter().find(|a| a.attribute == "gender");
            let female = gender.and_then(|g| g.categories.iter().find(|c| c.category == "female"));
            s["kind"] = "trailer".into();
            s["persons"] = t.persons.len().into();
            s["persons_gender_unknown"] = gender.map(|g| g.unknown_persons).unwrap_or(0).into();
            s["sampled_frames"] = t.sampled_frames.into();
            s["women_share"] = female.map(|c| c.share).into();
            s["women_share_interval"] = female.map(|c| interval_json(&c.share_interval)).into();
            s["women_screen_time_share"] = female.map(|c| c.screen_time_share).into();
            s["partial"] = (t.decode.truncated
                || t.decode.capped
                || t.decode.deadline_hit
                || t.decode.corrupt_packets > 0)
                .into();
        }
    }
    s
}
