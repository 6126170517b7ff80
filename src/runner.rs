//! One path from a source to a recorded figure, for `regard analyze` and the queue worker alike:
//! fetch → reuse a stored result, or analyse → record. Model loading, provenance, stage names
//! and the failure classification are defined here once; the callers only decide where the
//! work comes from and how its outcome is reported.

use crate::config::{AnalysisSettings, Limits};
use crate::domain::{Analysis, MediaContext, MediaRole, Provenance};
use crate::media::fetch::{FetchPolicy, FetchedMedia, Fetcher};
use crate::pipeline::{AnalysisOutput, JOB_TIMEOUT, PictureData, Pipeline, Progress, Stop, Work};
use crate::store::{
    FailedMedia, JobOrigin, JobReceipt, JobUpdate, RecordOutcome, Store, StoreError, Timings,
    provenance_keys,
};
use crate::vision::{ModelManifest, Vision, VisionOptions};
use chrono::Utc;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Stage names, as recorded in `analysis.stage_timings_s` and exported as metrics.
pub mod stage {
    pub const FETCH: &str = "fetch";
    pub const ANALYSE: &str = "analyse";
    /// Seconds inside ONNX Runtime, a part of [`ANALYSE`].
    pub const INFERENCE: &str = "inference";
    /// Writing the result (and the job ledger) to the database.
    pub const COMMIT: &str = "commit";
}

/// Named points in the job path where a test injects a fault. Compiled in only with the cargo
/// feature `failpoints` (the `fail` crate); without it [`failpoint::hit`] is an empty function.
/// A worker reads them from `FAILPOINTS` at start, e.g. `after_commit=1*return(crash)`:
/// `return(crash)` aborts the process, `return(sleep:MS)` waits MS milliseconds, any other
/// `return` fails at that point with a transient `failpoint` error (for the worker's points:
/// the broker operation that follows times out). `1*` limits the fault to the first hit.
pub mod failpoint {
    /// The media is fetched and hashed; nothing is analysed yet.
    pub const AFTER_FETCH: &str = "after_fetch";
    /// The analysis is done; nothing is committed yet.
    pub const AFTER_ANALYSIS: &str = "after_analysis";
    /// The result and the job's ledger row are committed; the worker knows nothing yet.
    pub const AFTER_COMMIT: &str = "after_commit";
    /// The job is done; its result event is about to be published.
    pub const BEFORE_EVENT: &str = "before_event";
    /// The result event is published; the delivery is about to be acked.
    pub const BEFORE_ACK: &str = "before_ack";
    /// A copy (retry, dead letter, hand-back) is about to be published.
    pub const BEFORE_COPY: &str = "before_copy";
    /// The result is committed; the job's ledger row is about to say so. Failing here fails
    /// that write the way a connection the server just terminated does (an I/O error).
    pub const BEFORE_LEDGER: &str = "before_ledger";

    /// Every point, for the `FAILPOINTS` parser and the tests.
    pub const ALL: &[&str] = &[
        AFTER_FETCH,
        AFTER_ANALYSIS,
        AFTER_COMMIT,
        BEFORE_EVENT,
        BEFORE_ACK,
        BEFORE_COPY,
        BEFORE_LEDGER,
    ];

    /// Reads `FAILPOINTS` (`name=actions;name=actions`) once. Refuses an unknown point name,
    /// so that a typo in a test cannot silently test nothing.
    #[cfg(feature = "failpoints")]
    pub fn setup() -> Result<(), String> {
        static ONCE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
        ONCE.get_or_init(|| {
            let Ok(spec) = std::env::var("FAILPOINTS") else {
                return Ok(());
            };
            for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
                let (name, actions) = entry
                    .split_once('=')
                    .ok_or_else(|| format!("FAILPOINTS: `{entry}` is not name=actions"))?;
                if !ALL.contains(&name.trim()) {
                    return Err(format!("FAILPOINTS: unknown point `{name}`"));
                }
                fail::cfg(name.trim(), actions.trim())?;
                tracing::warn!(
                    point = name.trim(),
                    actions = actions.trim(),
                    "failure point armed"
                );
            }
            Ok(())
        })
        .clone()
    }

    #[cfg(not(feature = "failpoints"))]
    pub fn setup() -> Result<(), String> {
        Ok(())
    }

    /// Passes through point `name`: `Err` when a test set it to fail here.
    #[cfg(feature = "failpoints")]
    pub async fn hit(name: &'static str) -> Result<(), String> {
        let Some(arg) = fail::eval(name, |arg| arg.unwrap_or_default()) else {
            return Ok(());
        };
        if arg == "crash" {
            tracing::warn!(point = name, "failure point: aborting the process");
            std::process::abort();
        }
        if let Some(ms) = arg.strip_prefix("sleep:").and_then(|ms| ms.parse().ok()) {
            tracing::warn!(point = name, ms, "failure point: sleeping");
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            return Ok(());
        }
        tracing::warn!(point = name, "failure point: failing");
        Err(format!("failure point {name}"))
    }

    #[cfg(not(feature = "failpoints"))]
    #[inline(always)]
    pub async fn hit(_name: &'static str) -> Result<(), String> {
        Ok(())
    }
}

/// Longest wait for the database's answer to the pre-flight ping. A server that is down
/// refuses at once; this bounds a server that hangs.
const DB_PING_TIMEOUT: Duration = Duration::from_secs(3);

/// Commit attempts within one run before the failure is reported: a brief database blip
/// should not cost a whole re-analysis.
const COMMIT_ATTEMPTS: u32 = 3;
const COMMIT_BACKOFF: Duration = Duration::from_millis(500);

/// Which models to load and how to run them (the library's view of `--models`,
/// `--ort-threads`, `--enable-sensitive`).
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// The model manifest; model files are looked up next to it.
    pub manifest: PathBuf,
    /// ONNX Runtime intra-op threads per session; 0 picks `cores / copies`.
    pub ort_threads: usize,
    /// Sensitive attributes the operator enabled (none by default).
    pub enable_sensitive: Vec<String>,
}

/// Threads per copy so that `copies × threads ≤ cores` (at least 1). An explicit request wins.
pub fn threads_per_slot(cores: usize, slots: usize, requested: usize) -> usize {
    if requested > 0 {
        requested
    } else {
        (cores / slots.max(1)).max(1)
    }
}

/// Load `copies` pipelines (one set of model sessions each). Refuses to start on a missing
/// model file or an altered runtime or eagerly loaded model, naming it. Blocking.
///
/// Each file is hashed once, as its bytes are loaded (not first by a separate pass over the
/// manifest): on a cold start the hashing was a large part of the time. The embedder is loaded,
/// and so hashed, at the first trailer (see [`crate::vision::onnx::LazyEmbedder`]).
pub fn load_pipelines(
    models: &ModelOptions,
    settings: &AnalysisSettings,
    limits: &Limits,
    copies: usize,
    embeddings: bool,
) -> anyhow::Result<Vec<Pipeline>> {
    let copies = copies.max(1);
    let (manifest, options) = vision_options(models, copies, embeddings)?;
    let threads = options.intra_threads;
    (0..copies)
        .map(|_| {
            let vision = Vision::load(&manifest, &options)?;
            Ok(Pipeline::new(
                vision,
                settings.clone(),
                limits.clone(),
                threads,
            ))
        })
        .collect()
}

/// One pipeline whose model sessions load on a thread of their own while the caller goes on
/// (reads and decodes its first input): [`Vision::load_in_background`]. The files are checked
/// before it returns; the first analysis waits for the sessions. For a one-shot command, where
/// the load is a third of a poster's run; a worker loads with [`load_pipelines`] and starts
/// consuming only once every session is made.
pub fn load_pipeline_in_background(
    models: &ModelOptions,
    settings: &AnalysisSettings,
    limits: &Limits,
    embeddings: bool,
) -> anyhow::Result<Pipeline> {
    let (manifest, options) = vision_options(models, 1, embeddings)?;
    let threads = options.intra_threads;
    let vision = Vision::load_in_background(&manifest, &options)?;
    Ok(Pipeline::new(
        vision,
        settings.clone(),
        limits.clone(),
        threads,
    ))
}

/// The manifest and how to load it for `copies` pipelines sharing the machine's cores.
fn vision_options(
    models: &ModelOptions,
    copies: usize,
    embeddings: bool,
) -> anyhow::Result<(ModelManifest, VisionOptions)> {
    let manifest = ModelManifest::load(&models.manifest)?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let options = VisionOptions {
        intra_threads: threads_per_slot(cores, copies, models.ort_threads),
        enable_sensitive: models.enable_sensitive.clone(),
        embeddings,
    };
    Ok((manifest, options))
}

/// One pipeline, as [`load_pipelines`] with one copy.
pub fn load_pipeline(
    models: &ModelOptions,
    settings: &AnalysisSettings,
    limits: &Limits,
    embeddings: bool,
) -> anyhow::Result<Pipeline> {
    let mut pipelines = load_pipelines(models, settings, limits, 1, embeddings)?;
    pipelines
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no pipeline loaded"))
}

/// Where a run failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Fetch,
    Analyse,
    Record,
}

/// A run that did not produce a recorded result. The code is stable (it is stored and
/// counted); `retryable` says whether the same run may succeed later (the input is not at
/// fault).
#[derive(Debug)]
pub struct Failure {
    pub stage: Stage,
    pub code: &'static str,
    pub message: String,
    pub retryable: bool,
    /// What is known of the media, for the failure record.
    pub media: FailedMedia,
    /// The result when only recording it failed: the figures exist but are not stored.
    pub analysis: Option<Box<Analysis>>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// What to run.
#[derive(Debug, Clone)]
pub struct Request {
    /// Path or http(s) URL.
    pub source: String,
    /// The kind the caller claims (a queue job's `kind`): a file of the other kind fails with
    /// `kind_mismatch` rather than being filed under the wrong kind.
    pub expected_kind: Option<MediaRole>,
    /// The film and festival selection the result is filed under, and the job id (its ledger
    /// row, when the runner has a store).
    pub context: MediaContext,
    pub origin: JobOrigin,
    pub settings: AnalysisSettings,
    /// Keep what the report layer needs to draw pictures (forces an analysis: a stored result
    /// has no frames).
    pub pictures: bool,
}

/// A run that ended with a result (recorded, when the runner has a store).
pub struct Done {
    pub analysis: Analysis,
    pub pictures: Option<PictureData>,
    /// The stored analysis, when the runner has a store.
    pub stored: Option<RecordOutcome>,
    /// True when the store already held this result: nothing was decoded or analysed.
    pub reused: bool,
    pub work: Work,
    pub timings: Timings,
}

/// Turns requests into recorded results. Holds a fixed pool of pipelines (one per concurrent
/// run), the fetcher and, optionally, the store.
pub struct Runner {
    pool: Arc<PipelinePool>,
    fetcher: Fetcher,
    store: Option<Store>,
    /// The pipelines' own settings (a queue job may override some).
    settings: AnalysisSettings,
    /// Provenance of the pipelines with their own settings; a request's settings replace them.
    provenance: Provenance,
    /// One run's limit, end to end (`job_timeout`); `None`: no limit.
    job_timeout: Option<Duration>,
}

/// A ledger write that is a note on the side of the job's path (retrying, handed back,
/// malformed): given [`DB_PING_TIMEOUT`] at most, and a warning when it does not happen.
async fn ledger_note(job_id: &str, write: impl Future<Output = Result<(), StoreError>>) {
    match tokio::time::timeout(DB_PING_TIMEOUT, write).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(job_id = %job_id, error = %e, "job ledger not updated"),
        Err(_) => tracing::warn!(job_id = %job_id, "job ledger not updated: database too slow"),
    }
}

impl Runner {
    /// A runner over these pipelines (at least one; all loaded from the same manifest).
    pub fn new(pipelines: Vec<Pipeline>, policy: FetchPolicy, store: Option<Store>) -> Self {
        let first = pipelines
            .first()
            .expect("a runner needs at least one pipeline");
        let (settings, provenance) = (first.settings().clone(), first.provenance());
        let job_timeout = Some(policy.limits.job_timeout).filter(|t| !t.is_zero());
        Runner {
            job_timeout,
            pool: PipelinePool::new(pipelines),
            fetcher: Fetcher::new(policy),
            store,
            settings,
            provenance,
        }
    }

    /// The settings requests start from.
    pub fn settings(&self) -> &AnalysisSettings {
        &self.settings
    }

    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// Runs at once, at most.
    pub fn slots(&self) -> usize {
        self.pool.size
    }

    /// The provenance of results made with `settings`: what the result key is computed from.
    pub fn provenance(&self, settings: &AnalysisSettings) -> Provenance {
        Provenance {
            settings: settings.as_provenance(),
            ..self.provenance.clone()
        }
    }

    /// Whether the database answers (always true without a store).
    pub async fn ping_database(&self) -> Result<(), String> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let ping = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(store.pool());
        match tokio::time::timeout(DB_PING_TIMEOUT, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("database unreachable: {e}")),
            Err(_) => Err(format!(
                "database did not answer within {DB_PING_TIMEOUT:?}"
            )),
        }
    }

    /// Fetch → reuse or analyse → record. `progress` hears how far a trailer got. A run that
    /// outlives the job timeout fails with `job_timeout` (retryable) at the deadline; its
    /// analysis thread stops at its next frame and gives its pipeline back.
    pub async fn run(
        &self,
        request: &Request,
        progress: Arc<dyn Fn(Progress) + Send + Sync>,
    ) -> Result<Done, Failure> {
        let Some(limit) = self.job_timeout else {
            return self.run_until(request, progress, Stop::never()).await;
        };
        let stop = Stop::at(Instant::now() + limit);
        match tokio::time::timeout(limit, self.run_until(request, progress, stop.clone())).await {
            Ok(outcome) => outcome,
            Err(_) => {
                stop.raise();
                let failed = FailedMedia {
                    source: request.source.clone(),
                    content_sha256: None,
                    kind: request.expected_kind,
                };
                Err(failure(
                    Stage::Analyse,
                    JOB_TIMEOUT,
                    format!(
                        "{}: the job did not finish within its time limit of {} s",
                        request.source,
                        limit.as_secs()
                    ),
                    true,
                    &failed,
                ))
            }
        }
    }

    async fn run_until(
        &self,
        request: &Request,
        progress: Arc<dyn Fn(Progress) + Send + Sync>,
        stop: Stop,
    ) -> Result<Done, Failure> {
        let started_at = Utc::now();
        let mut failed = FailedMedia {
            source: request.source.clone(),
            content_sha256: None,
            kind: request.expected_kind,
        };
        // A database that is down fails the run before minutes of analysis are spent on it.
        if let Err(message) = self.ping_database().await {
            return Err(failure(
                Stage::Record,
                "database_unavailable",
                message,
                true,
                &failed,
            ));
        }
        self.ledger_started(request).await.map_err(|e| {
            failure(
                Stage::Record,
                store_code(&e),
                format!("{}: cannot write the job ledger: {e}", request.source),
                e.is_retryable(),
                &failed,
            )
        })?;

        let clock = Instant::now();
        let media = self.fetcher.fetch(&request.source).await.map_err(|e| {
            failure(
                Stage::Fetch,
                e.code(),
                e.to_string(),
                e.is_retryable(),
                &failed,
            )
        })?;
        let mut stages =
            BTreeMap::from([(stage::FETCH.to_string(), clock.elapsed().as_secs_f64())]);
        failed.content_sha256 = Some(media.sha256.clone());
        failpoint::hit(failpoint::AFTER_FETCH)
            .await
            .map_err(|m| failure(Stage::Fetch, "failpoint", m, true, &failed))?;
        // The kind recorded is what the bytes are, never what the job claimed.
        let actual = if media.format.is_video() {
            MediaRole::Trailer
        } else {
            MediaRole::Poster
        };
        failed.kind = Some(actual);
        check_kind(request.expected_kind, actual, &media)
            .map_err(|m| failure(Stage::Fetch, "kind_mismatch", m, false, &failed))?;

        if !request.pictures
            && let Some(done) = self
                .reuse(request, &media, &failed, started_at, &stages)
                .await?
        {
            return Ok(done);
        }

        let clock = Instant::now();
        let output = self.analyse(media, request, progress, stop).await.map_err(
            |(code, message, retryable)| failure(Stage::Analyse, code, message, retryable, &failed),
        )?;
        stages.insert(stage::ANALYSE.to_string(), clock.elapsed().as_secs_f64());
        stages.insert(stage::INFERENCE.to_string(), output.work.inference_s);
        failpoint::hit(failpoint::AFTER_ANALYSIS)
            .await
            .map_err(|m| failure(Stage::Analyse, "failpoint", m, true, &failed))?;
        let AnalysisOutput {
            analysis,
            pictures,
            work,
            ..
        } = output;

        let mut timings = Timings {
            started_at: Some(started_at),
            finished_at: Some(Utc::now()),
            stages_s: stages,
        };
        let stored = match &self.store {
            None => None,
            Some(store) => {
                let clock = Instant::now();
                match record(store, &analysis, &request.context, &timings).await {
                    Ok(outcome) => {
                        timings
                            .stages_s
                            .insert(stage::COMMIT.to_string(), clock.elapsed().as_secs_f64());
                        Some(outcome)
                    }
                    Err(e) => {
                        let mut f = failure(
                            Stage::Record,
                            store_code(&e),
                            format!("{}: cannot store the result: {e}", request.source),
                            e.is_retryable(),
                            &failed,
                        );
                        f.analysis = Some(Box::new(analysis));
                        return Err(f);
                    }
                }
            }
        };
        if let Some(outcome) = &stored
            && let Err(mut f) = self.ledger_succeeded(request, outcome, &failed).await
        {
            f.analysis = Some(Box::new(analysis));
            return Err(f);
        }
        failpoint::hit(failpoint::AFTER_COMMIT)
            .await
            .map_err(|m| failure(Stage::Record, "failpoint", m, true, &failed))?;
        Ok(Done {
            analysis,
            pictures,
            stored,
            reused: false,
            work,
            timings,
        })
    }

    /// The request's ledger row says it is running (when there is a store and a job id).
    async fn ledger_started(&self, request: &Request) -> Result<(), StoreError> {
        let (Some(store), Some(job_id)) = (&self.store, &request.context.job_id) else {
            return Ok(());
        };
        store
            .job_started(&JobReceipt {
                job_id,
                origin: request.origin,
                source: Some(&request.source),
                kind: request.expected_kind,
                film: request.context.film.as_ref(),
                festival: request.context.festival.as_ref(),
            })
            .await
    }

    /// The request's ledger row points at its analysis. The result is committed already. A
    /// write that fails on a transient error (a connection the server just terminated) is tried
    /// once more on a fresh connection; if it still fails, the job fails with a retryable error
    /// instead of being acknowledged with its ledger row left `running`: the next delivery
    /// finds the stored result and writes the row (the soak caught a row left behind).
    async fn ledger_succeeded(
        &self,
        request: &Request,
        outcome: &RecordOutcome,
        failed: &FailedMedia,
    ) -> Result<(), Failure> {
        let (Some(store), Some(job_id)) = (&self.store, &request.context.job_id) else {
            return Ok(());
        };
        let update = JobUpdate::Succeeded {
            analysis: outcome.analysis_id,
        };
        let write = || async {
            failpoint::hit(failpoint::BEFORE_LEDGER)
                .await
                .map_err(|m| StoreError::Database(sqlx::Error::Io(std::io::Error::other(m))))?;
            store.job_update(job_id, &update).await
        };
        let mut result = write().await;
        if let Err(e) = &result
            && e.is_retryable()
        {
            tracing::warn!(job_id = %job_id, error = %e, "job ledger not updated; trying again");
            result = write().await;
        }
        result.map_err(|e| {
            failure(
                Stage::Record,
                store_code(&e),
                format!(
                    "{}: the result is stored (analysis {}) but the job ledger could not say so: {e}",
                    request.source, outcome.analysis_id.0
                ),
                e.is_retryable(),
                failed,
            )
        })
    }

    /// A job's ledger row says it will be tried again at `next`.
    pub async fn ledger_retrying(
        &self,
        job_id: &str,
        code: &str,
        message: &str,
        next: chrono::DateTime<Utc>,
    ) {
        let Some(store) = &self.store else { return };
        let update = JobUpdate::Retrying {
            code,
            message,
            next_attempt_at: next,
        };
        // Often the database itself is why the job is retried: never wait for it long.
        ledger_note(job_id, store.job_update(job_id, &update)).await;
    }

    /// A job's ledger row says it waits in the jobs queue again (handed back at a shutdown).
    pub async fn ledger_queued(&self, job_id: &str) {
        let Some(store) = &self.store else { return };
        // The worker is stopping: never hold its exit for the database.
        ledger_note(job_id, store.job_update(job_id, &JobUpdate::Queued)).await;
    }

    /// A message that is not a job, recorded under `job_id` as dead-lettered.
    pub async fn ledger_malformed(&self, job_id: &str, code: &str, message: &str) {
        let Some(store) = &self.store else { return };
        ledger_note(job_id, store.job_malformed(job_id, code, message)).await;
    }

    /// The stored result for these bytes under this request's key, filed under the request's
    /// context, when the store has one.
    async fn reuse(
        &self,
        request: &Request,
        media: &FetchedMedia,
        failed: &FailedMedia,
        started_at: chrono::DateTime<Utc>,
        stages: &BTreeMap<String, f64>,
    ) -> Result<Option<Done>, Failure> {
        let Some(store) = &self.store else {
            return Ok(None);
        };
        let keys = provenance_keys(&self.provenance(&request.settings));
        let store_failure = |e: StoreError| {
            failure(
                Stage::Record,
                store_code(&e),
                format!("{}: cannot look up a stored result: {e}", request.source),
                e.is_retryable(),
                failed,
            )
        };
        let Some((id, analysis)) = store
            .stored_success(&media.sha256, &keys)
            .await
            .map_err(store_failure)?
        else {
            return Ok(None);
        };
        let outcome = store
            .attach(id, &request.context, &request.source)
            .await
            .map_err(store_failure)?;
        tracing::info!(
            analysis_id = outcome.analysis_id.0,
            "result already stored: not analysed again"
        );
        self.ledger_succeeded(request, &outcome, failed).await?;
        Ok(Some(Done {
            analysis,
            pictures: None,
            stored: Some(outcome),
            reused: true,
            work: Work::default(),
            timings: Timings {
                started_at: Some(started_at),
                finished_at: Some(Utc::now()),
                stages_s: stages.clone(),
            },
        }))
    }

    /// Runs the pipeline on a blocking thread, in the caller's tracing span, once a pipeline
    /// is free.
    async fn analyse(
        &self,
        media: FetchedMedia,
        request: &Request,
        progress: Arc<dyn Fn(Progress) + Send + Sync>,
        stop: Stop,
    ) -> Result<AnalysisOutput, (&'static str, String, bool)> {
        let lease = self.pool.lease().await;
        let settings = request.settings.clone();
        let pictures = request.pictures;
        let span = tracing::Span::current();
        let joined = tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let result =
                    lease.analyze_until(&media, &settings, pictures, &|p| progress(p), &stop);
                // A download is deleted here, on the blocking thread.
                drop(media);
                result
            })
        })
        .await;
        match joined {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(e)) => Err((e.code(), e.to_string(), e.is_retryable())),
            Err(e) => Err((
                "internal_panic",
                format!("{}: analysis task failed: {e}", request.source),
                false,
            )),
        }
    }

    /// Record a failure for good under the key `settings` would have given, and the job's
    /// ledger row (the worker calls this once a job's attempts are over, before the message
    /// goes to the dead letters; `analyze --db` right away).
    pub async fn record_failure(
        &self,
        media: &FailedMedia,
        settings: &AnalysisSettings,
        context: &MediaContext,
        code: &str,
        message: &str,
        dead_lettered: bool,
    ) -> Result<RecordOutcome, StoreError> {
        let store = self.store.as_ref().ok_or_else(|| StoreError::Invalid {
            what: "runner".into(),
            reason: "no database configured".into(),
        })?;
        let outcome = store
            .record_failure(media, &self.provenance(settings), context, code, message)
            .await?;
        if let Some(job_id) = &context.job_id {
            let update = JobUpdate::Failed {
                dead_lettered,
                code,
                message,
                analysis: Some(outcome.analysis_id),
            };
            store.job_update(job_id, &update).await?;
        }
        Ok(outcome)
    }
}

fn store_code(e: &StoreError) -> &'static str {
    if e.is_retryable() {
        "database_unavailable"
    } else {
        "store_rejected"
    }
}

fn failure(
    stage: Stage,
    code: &'static str,
    message: String,
    retryable: bool,
    media: &FailedMedia,
) -> Failure {
    Failure {
        stage,
        code,
        message,
        retryable,
        media: media.clone(),
        analysis: None,
    }
}

/// A poster job must point at an image and a trailer job at a video: a mismatch is a mistake
/// in the job list, and filing the result under the wrong kind would skew the figures.
fn check_kind(
    expected: Option<MediaRole>,
    actual: MediaRole,
    media: &FetchedMedia,
) -> Result<(), String> {
    match expected {
        Some(expected) if expected != actual => Err(format!(
            "{}: the job says {} but the file is {}",
            media.source,
            expected.as_str(),
            match actual {
                MediaRole::Trailer => "a video",
                MediaRole::Poster => "an image",
            }
        )),
        _ => Ok(()),
    }
}

async fn record(
    store: &Store,
    analysis: &Analysis,
    ctx: &MediaContext,
    timings: &Timings,
) -> Result<RecordOutcome, StoreError> {
    let mut attempt = 1;
    loop {
        match store.record_analysis(analysis, ctx, timings).await {
            Ok(outcome) => return Ok(outcome),
            Err(e) if e.is_retryable() && attempt < COMMIT_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "commit failed; trying again");
                tokio::time::sleep(COMMIT_BACKOFF * attempt).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A fixed set of pipelines lent out one per running job, so concurrent runs never queue on
/// one session's mutex.
struct PipelinePool {
    free: Mutex<Vec<Pipeline>>,
    permits: Arc<Semaphore>,
    size: usize,
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
            size: pipelines.len(),
            free: Mutex::new(pipelines),
        })
    }

    async fn lease(self: &Arc<Self>) -> Lease {
        // The semaphore is never closed, and a permit guarantees a free pipeline: permits
        // and pipelines are counted together.
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the pipeline pool's semaphore is never closed");
        let pipeline = lock(&self.free).pop();
        assert!(pipeline.is_some(), "a permit without a free pipeline");
        Lease {
            pool: self.clone(),
            pipeline,
            _permit: permit,
        }
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
