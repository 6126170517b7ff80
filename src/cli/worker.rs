//! `regard worker`: the queue worker with the real work plugged in. A job is fetched (local
//! roots, private-address allow-list), analysed by one of a bounded pool of pipelines on a CPU
//! slot, and committed with [`Store::record_analysis`]; only then is the delivery acked.
//!
//! Failures keep the classification of the layer that knows: the fetcher's and the pipeline's
//! `is_retryable()`, the store's (a database that is down is transient: the job goes back to a
//! retry queue, never to the dead letters, and nothing is acked as done).

use crate::cli::WorkerCommandArgs;
use crate::config::{AnalysisSettings, Limits};
use crate::domain::{Analysis, Interval, MediaContext, MediaRole, ModelRef, Provenance};
use crate::media::fetch::{FetchPolicy, FetchedMedia, Fetcher};
use crate::pipeline::{AnalysisOutput, Pipeline, PipelineError};
use crate::queue::cli::{EnqueueArgs, QueueSetupArgs};
use crate::queue::{
    EnqueueSummary, Job, JobContext, JobDone, JobError, Processor, Publisher, QueueError, Refused,
    Worker, shutdown_channel,
};
use crate::store::{FailedMedia, RecordOutcome, Store, StoreError, Timings};
use crate::vision::{ModelManifest, Vision, VisionOptions};
use anyhow::Context;
use chrono::Utc;
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Longest wait for the database's answer to the pre-flight and readiness pings. A server that
/// is down refuses at once; this bounds a server that hangs.
const DB_PING_TIMEOUT: Duration = Duration::from_secs(3);
/// Commit attempts within one job before the job itself is sent to retry: a brief database
/// blip should not cost a whole re-analysis.
const COMMIT_ATTEMPTS: u32 = 3;
const COMMIT_BACKOFF: Duration = Duration::from_millis(500);
/// Content hashes remembered for failure records, at most (entries leave when the job ends).
const MAX_REMEMBERED_HASHES: usize = 4096;

/// How the processor is built.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// The model manifest (`models/manifest.toml`).
    pub manifest: PathBuf,
    /// Sensitive attributes the operator enabled (none by default).
    pub enable_sensitive: Vec<String>,
    /// The worker's settings; a job may override some within bounds.
    pub settings: AnalysisSettings,
    pub limits: Limits,
    /// Local sources must lie under one of these; empty: local paths are refused.
    pub media_roots: Vec<PathBuf>,
    /// Private networks URLs may reach; empty: public addresses only.
    pub allow_private: Vec<IpNet>,
    /// Jobs analysed at once: one pipeline (one set of model sessions) per slot.
    pub slots: usize,
    /// ONNX Runtime intra-op threads per session; 0 picks `cores / slots`.
    pub ort_threads: usize,
}

/// Threads per slot so that `slots × threads ≤ cores` (at least 1). An explicit request wins.
/// Pure.
pub fn threads_per_slot(cores: usize, slots: usize, requested: usize) -> usize {
    if requested > 0 {
        requested
    } else {
        (cores / slots.max(1)).max(1)
    }
}

/// A fixed set of pipelines lent out one per running job, so concurrent jobs never queue on
/// one session's mutex.
struct PipelinePool {
    free: Mutex<Vec<Pipeline>>,
    permits: Arc<Semaphore>,
}

/// A pipeline on loan; goes back to the pool when dropped (also on panic).
struct Lease {
    pool: Arc<PipelinePool>,
    pipeline: Option<Pipeline>,
    _permit: OwnedSemaphorePermit,
}

impl PipelinePool {
    fn new(pipelines: Vec<Pipeline>) -> Arc<Self> {
        Arc::new(PipelinePool {
            permits: Arc::new(Semaphore::new(pipelines.len())),
            free: Mutex::new(pipelines),
        })
    }

    async fn lease(self: &Arc<Self>) -> Result<Lease, JobError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| JobError::transient("worker_stopping", "pipeline pool closed"))?;
        // A permit guarantees a free pipeline: permits and pipelines are counted together.
        let pipeline = lock(&self.free).pop().ok_or_else(|| {
            JobError::transient("pipeline_pool", "no free pipeline despite a permit")
        })?;
        Ok(Lease {
            pool: self.clone(),
            pipeline: Some(pipeline),
            _permit: permit,
        })
    }
}

impl std::ops::Deref for Lease {
    type Target = Pipeline;
    fn deref(&self) -> &Pipeline {
        self.pipeline
            .as_ref()
            .expect("a lease holds its pipeline until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(p) = self.pipeline.take() {
            lock(&self.pool.free).push(p);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data behind these locks stays valid if a holder panicked.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Fetch → analyse → commit, for the queue worker.
pub struct PipelineProcessor {
    pool: Arc<PipelinePool>,
    fetcher: Fetcher,
    store: Store,
    settings: AnalysisSettings,
    runtime_sha256: String,
    models: Vec<ModelRef>,
    /// Content hash of each job's media once fetched, for its failure record.
    hashes: Mutex<HashMap<String, String>>,
}

impl PipelineProcessor {
    /// Loads `config.slots` copies of the models (verified against the manifest). Blocking.
    pub fn load(config: &ProcessorConfig, store: Store) -> anyhow::Result<Self> {
        let manifest = ModelManifest::load(&config.manifest)?;
        manifest.verify()?;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let slots = config.slots.max(1);
        let threads = threads_per_slot(cores, slots, config.ort_threads);
        let options = VisionOptions {
            intra_threads: threads,
            enable_sensitive: config.enable_sensitive.clone(),
            embeddings: true,
        };
        let mut pipelines = Vec::with_capacity(slots);
        for _ in 0..slots {
            let vision = Vision::load(&manifest, &options)?;
            pipelines.push(Pipeline::new(
                vision,
                config.settings.clone(),
                config.limits.clone(),
                threads,
            ));
        }
        let first = pipelines[0].provenance();
        tracing::info!(slots, threads_per_slot = threads, "models loaded");
        let policy = FetchPolicy {
            local_roots: Some(config.media_roots.clone()),
            allow_private: config.allow_private.clone(),
            limits: config.limits.clone(),
            download_dir: None,
        };
        Ok(PipelineProcessor {
            pool: PipelinePool::new(pipelines),
            fetcher: Fetcher::new(policy),
            store,
            settings: config.settings.clone(),
            runtime_sha256: first.runtime_sha256,
            models: first.models,
            hashes: Mutex::new(HashMap::new()),
        })
    }

    /// Provenance of results with these settings: the failure records' key.
    fn provenance(&self, settings: &AnalysisSettings) -> Provenance {
        Provenance {
            pipeline_version: crate::PIPELINE_VERSION.to_string(),
            runtime_sha256: self.runtime_sha256.clone(),
            models: self.models.clone(),
            settings: settings.as_provenance(),
        }
    }

    async fn ping_database(&self) -> Result<(), String> {
        let ping = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(self.store.pool());
        match tokio::time::timeout(DB_PING_TIMEOUT, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("database unreachable: {e}")),
            Err(_) => Err(format!(
                "database did not answer within {DB_PING_TIMEOUT:?}"
            )),
        }
    }

    fn remember_hash(&self, job: &Job, sha256: &str) {
        let mut hashes = lock(&self.hashes);
        if hashes.len() >= MAX_REMEMBERED_HASHES {
            // Only jobs that failed transiently and went elsewhere linger; dropping them costs
            // a failure record without its hash, nothing more.
            hashes.clear();
        }
        hashes.insert(job.id.to_string(), sha256.to_string());
    }

    async fn commit(
        &self,
        analysis: &Analysis,
        ctx: &MediaContext,
        timings: &Timings,
    ) -> Result<RecordOutcome, JobError> {
        let mut attempt = 1;
        loop {
            match self.store.record_analysis(analysis, ctx, timings).await {
                Ok(outcome) => return Ok(outcome),
                Err(e) if e.is_retryable() && attempt < COMMIT_ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "commit failed; trying again");
                    tokio::time::sleep(COMMIT_BACKOFF * attempt).await;
                    attempt += 1;
                }
                Err(e) => return Err(store_error(&e)),
            }
        }
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

fn store_error(e: &StoreError) -> JobError {
    if e.is_retryable() {
        JobError::transient("database_unavailable", e.to_string())
    } else {
        JobError::permanent("store_rejected", e.to_string())
    }
}

fn pipeline_error(e: &PipelineError) -> JobError {
    if e.is_retryable() {
        JobError::transient(e.code(), e.to_string())
    } else {
        JobError::permanent(e.code(), e.to_string())
    }
}

/// A poster job must point at an image and a trailer job at a video: a mismatch is a mistake
/// in the job list, and filing the result under the wrong kind would skew the figures.
fn check_kind(job: &Job, media: &FetchedMedia) -> Result<(), JobError> {
    let is_video = media.format.is_video();
    match (job.kind, is_video) {
        (MediaRole::Poster, false) | (MediaRole::Trailer, true) => Ok(()),
        _ => Err(JobError::permanent(
            "kind_mismatch",
            format!(
                "{}: the job says {} but the file is {}",
                media.source,
                job.kind_name(),
                if is_video { "a video" } else { "an image" }
            ),
        )),
    }
}

fn interval_json(i: &Option<Interval>) -> serde_json::Value {
    match i {
        Some(i) => serde_json::json!([i.low, i.high]),
        None => serde_json::Value::Null,
    }
}

/// The result event's summary: what was stored and the headline figure. Pure.
pub fn summary(
    analysis: &Analysis,
    outcome: &RecordOutcome,
    inference_s: f64,
) -> serde_json::Value {
    let media = analysis.media();
    let mut s = serde_json::json!({
        "analysis_id": outcome.analysis_id.0,
        "new": outcome.new,
        "media_sha256": media.content_sha256,
        "inference_s": inference_s,
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

impl Processor for PipelineProcessor {
    async fn process(&self, job: &Job, ctx: &JobContext) -> Result<JobDone, JobError> {
        let started_at = Utc::now();
        // A database that is down fails the job before minutes of analysis are spent on it.
        self.ping_database()
            .await
            .map_err(|m| JobError::transient("database_unavailable", m))?;
        let settings = job.settings.apply(self.settings.clone());
        let source = job.source.as_string();

        let t = Instant::now();
        let media = self.fetcher.fetch(&source).await.map_err(|e| {
            if e.is_retryable() {
                JobError::transient(e.code(), e.to_string())
            } else {
                JobError::permanent(e.code(), e.to_string())
            }
        })?;
        let fetch_s = t.elapsed().as_secs_f64();
        ctx.stage("fetch", fetch_s);
        self.remember_hash(job, &media.sha256);
        check_kind(job, &media)?;

        let lease = self.pool.lease().await?;
        let t = Instant::now();
        let output: AnalysisOutput = ctx
            .cpu
            .run(move || {
                let result = lease.analyze_with_settings(&media, &settings, false, &|_| {});
                // The download (if any) is deleted here, on the blocking thread.
                drop(media);
                result
            })
            .await?
            .map_err(|e| pipeline_error(&e))?;
        let analyse_s = t.elapsed().as_secs_f64();
        ctx.stage("analyse", analyse_s);
        let work = output.work;
        ctx.metrics.frames_decoded(work.frames);
        ctx.metrics.faces_found(work.faces);
        ctx.metrics.inference_seconds(work.inference_s);

        let timings = Timings {
            started_at: Some(started_at),
            finished_at: Some(Utc::now()),
            stages_s: BTreeMap::from([
                ("fetch".to_string(), fetch_s),
                ("analyse".to_string(), analyse_s),
                ("inference".to_string(), work.inference_s),
            ]),
        };
        let t = Instant::now();
        let outcome = self
            .commit(&output.analysis, &media_context(job), &timings)
            .await?;
        ctx.stage("commit", t.elapsed().as_secs_f64());
        lock(&self.hashes).remove(job.id.as_str());
        tracing::info!(
            analysis_id = outcome.analysis_id.0,
            new = outcome.new,
            frames = work.frames,
            faces = work.faces,
            "analysis committed"
        );
        Ok(JobDone {
            summary: summary(&output.analysis, &outcome, work.inference_s),
        })
    }

    async fn record_failure(
        &self,
        job: &Job,
        error: &JobError,
        attempts: u32,
    ) -> Result<(), JobError> {
        let settings = job.settings.apply(self.settings.clone());
        let media = FailedMedia {
            source: job.source.as_string(),
            content_sha256: lock(&self.hashes).get(job.id.as_str()).cloned(),
            kind: Some(job.kind),
        };
        let message = if attempts > 1 {
            format!("{} (after {attempts} attempts)", error.message())
        } else {
            error.message().to_string()
        };
        self.store
            .record_failure(
                &media,
                &self.provenance(&settings),
                &media_context(job),
                error.code(),
                &message,
            )
            .await
            .map_err(|e| store_error(&e))?;
        lock(&self.hashes).remove(job.id.as_str());
        Ok(())
    }

    async fn ready(&self) -> Result<(), String> {
        // Models are loaded before the processor exists; the database may come and go.
        self.ping_database().await
    }
}

/// Connects to the database and applies the migrations, retrying while the server is down
/// (containers start in any order) for at most `wait`. Migrating from several workers at
/// once is safe: the store serialises migrations with an advisory lock.
pub async fn connect_and_migrate(url: &str, wait: Duration) -> anyhow::Result<Store> {
    let give_up = Instant::now() + wait;
    let mut backoff = Duration::from_millis(250);
    loop {
        let attempt = async {
            let store = Store::connect(url).await?;
            store.migrate().await?;
            Ok::<_, StoreError>(store)
        };
        match attempt.await {
            Ok(store) => return Ok(store),
            Err(e) if e.is_retryable() && Instant::now() + backoff < give_up => {
                tracing::warn!(error = %e, retry_in = ?backoff, "database not ready");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e).context("database"),
        }
    }
}

/// Runs `regard worker` until SIGTERM/SIGINT. Returns whether it stopped cleanly.
pub async fn run(args: WorkerCommandArgs) -> anyhow::Result<bool> {
    let config = args.queue.config();
    let store = connect_and_migrate(&args.db.database_url, args.startup_wait).await?;
    let processor_config = ProcessorConfig {
        manifest: args.models.models.clone(),
        enable_sensitive: args.models.enable_sensitive.clone(),
        settings: args.settings.apply(AnalysisSettings::default()),
        limits: args.limits.limits(),
        media_roots: args.media_roots.clone(),
        allow_private: args.allow_private.clone(),
        slots: config.job_slots as usize,
        ort_threads: args.models.ort_threads,
    };
    let processor =
        tokio::task::spawn_blocking(move || PipelineProcessor::load(&processor_config, store))
            .await
            .context("model loading task failed")??;
    let model_set = crate::store::provenance_keys(&processor.provenance(&processor.settings));
    let mut worker = Worker::new(config, Arc::new(processor))?;
    worker.metrics().set_build_info(&model_set.model_set_sha256);
    worker.serve_http(args.queue.http_listen).await?;
    let (trigger, shutdown) = shutdown_channel();
    let signals = trigger.on_signals();
    let report = worker.run(shutdown).await?;
    signals.abort();
    tracing::info!(handed_back = report.handed_back, "worker exited");
    Ok(true)
}

/// Runs `regard enqueue`: prints what was published and every refusal (with its line).
/// Returns false when anything was refused.
pub async fn enqueue(args: EnqueueArgs) -> anyhow::Result<bool> {
    let topology = args.topology.topology();
    let summary = match &args.file {
        Some(path) => {
            let publisher = Publisher::connect(&args.topology.amqp_url, &topology).await?;
            let summary = publisher.enqueue_file(path).await?;
            publisher.close().await?;
            summary
        }
        None => match args.job() {
            Ok(job) => {
                let publisher = Publisher::connect(&args.topology.amqp_url, &topology).await?;
                let published = publisher.publish(&job).await;
                publisher.close().await?;
                match published {
                    Ok(()) => {
                        println!("job {}", job.id);
                        EnqueueSummary {
                            accepted: 1,
                            refused: Vec::new(),
                        }
                    }
                    Err(QueueError::Refused(reason)) => EnqueueSummary {
                        accepted: 0,
                        refused: vec![Refused { line: 0, reason }],
                    },
                    Err(e) => return Err(e.into()),
                }
            }
            Err(rejection) => EnqueueSummary {
                accepted: 0,
                refused: vec![Refused {
                    line: 0,
                    reason: rejection.to_string(),
                }],
            },
        },
    };
    for r in &summary.refused {
        match (&args.file, r.line) {
            (Some(path), line) if line > 0 => {
                eprintln!("refused: {}:{line}: {}", path.display(), r.reason)
            }
            _ => eprintln!("refused: {}", r.reason),
        }
    }
    println!(
        "{} job(s) enqueued on {}, {} refused",
        summary.accepted,
        topology.jobs_queue(),
        summary.refused.len()
    );
    Ok(summary.refused.is_empty())
}

/// Runs `regard queue setup`.
pub async fn queue_setup(args: QueueSetupArgs) -> anyhow::Result<bool> {
    let topology = args.topology.topology();
    crate::queue::setup(&args.topology.amqp_url, &topology).await?;
    println!("topology declared with prefix {:?}", topology.prefix);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_times_threads_fit_the_cores() {
        assert_eq!(threads_per_slot(2, 1, 0), 2);
        assert_eq!(threads_per_slot(2, 2, 0), 1);
        assert_eq!(threads_per_slot(8, 3, 0), 2);
        assert_eq!(threads_per_slot(2, 4, 0), 1, "never zero threads");
        assert_eq!(threads_per_slot(2, 2, 3), 3, "an explicit request wins");
    }
}
