//! `regard worker`, `regard enqueue` and `regard queue setup`: wiring and printing. The work
//! itself is [`crate::queue::JobProcessor`] over a [`Runner`].

use crate::cli::WorkerCommandArgs;
use crate::cli::queue_args::{EnqueueArgs, QueueSetupArgs};
use crate::config::AnalysisSettings;
use crate::media::fetch::FetchPolicy;
use crate::pipeline::manifest_provenance;
use crate::queue::{
    EnqueueSummary, JobProcessor, Publisher, QueueError, Refused, Worker, WorkerConfig,
    shutdown_channel,
};
use crate::queue::{Job, JobId, JobRejection, JobSource, SettingsOverrides};
use crate::runner::ModelOptions;
use crate::runner::{Runner, load_pipelines};
use crate::store::{MediaToReanalyse, ReanalysisFilter, Store, StoreError};
use crate::vision::{ModelManifest, VisionOptions};
use anyhow::Context;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connects to the database and applies the migrations, retrying while the server is down
/// (containers start in any order) for at most `wait`. Migrating from several workers at
/// once is safe: the store serialises migrations with an advisory lock.
pub async fn connect_and_migrate(
    url: &str,
    statement_timeout: Duration,
    wait: Duration,
) -> anyhow::Result<Store> {
    let give_up = Instant::now() + wait;
    let mut backoff = Duration::from_millis(250);
    loop {
        let attempt = async {
            let store = Store::connect_with_timeout(url, statement_timeout).await?;
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
    let mut config = args.queue.config();
    let store = connect_and_migrate(
        &args.db.database_url,
        args.db.statement_timeout,
        args.startup_wait,
    )
    .await?;
    let settings = args.settings.apply(AnalysisSettings::default());
    let limits = args.limits.limits();
    // A job is bounded by its fetch and its analysis deadline, and by the outer job timeout
    // when that is shorter; a slot busy for much longer is stuck, and /readyz says so.
    let mut job_bound = limits.fetch_timeout + limits.analysis_deadline;
    if !limits.job_timeout.is_zero() {
        job_bound = job_bound.min(limits.job_timeout);
    }
    config.stuck_after = WorkerConfig::stuck_after_deadline(job_bound);
    let models = args.models.options();
    let slots = usize::from(config.job_slots.max(1));
    let policy = FetchPolicy {
        local_roots: Some(args.media_roots.clone()),
        allow_private: args.allow_private.clone(),
        limits: limits.clone(),
        download_dir: None,
    };
    let pipelines = tokio::task::spawn_blocking(move || {
        // A long-lived worker checks every model file before it takes a job, the embedder too:
        // loading reads it only at the first trailer, and an altered file found then would fail
        // jobs instead of refusing to start.
        ModelManifest::load(&models.manifest)?.verify()?;
        load_pipelines(&models, &settings, &limits, slots, true)
    })
    .await
    .context("model loading task failed")??;
    tracing::info!(slots, "models loaded");
    let runner = Runner::new(pipelines, policy, Some(store));
    let model_set = crate::store::provenance_keys(&runner.provenance(runner.settings()));
    tracing::info!(
        version = crate::PIPELINE_VERSION,
        algorithm = crate::ALGORITHM_VERSION,
        model_set = %model_set.model_set_sha256,
        slots,
        "regard worker starting"
    );
    let processor = JobProcessor::new(runner)?;
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
    if args.reanalyze {
        return enqueue_reanalysis(args).await;
    }
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

/// The model-set sha256 a worker started with these models gives, from the verified manifest
/// alone (no ONNX session is created). The worker always loads the embedder.
pub fn current_model_set(models: &ModelOptions) -> anyhow::Result<String> {
    let manifest = ModelManifest::load(&models.manifest)?;
    manifest.verify()?;
    let options = VisionOptions {
        intra_threads: 1,
        enable_sensitive: models.enable_sensitive.clone(),
        embeddings: true,
    };
    // Settings do not enter the model-set hash; the defaults stand for any.
    let provenance = manifest_provenance(&manifest, &options, &AnalysisSettings::default());
    Ok(crate::store::provenance_keys(&provenance).model_set_sha256)
}

/// The job that analyses `media` again. Its id is derived from the content and the new model
/// set, so enqueuing twice gives duplicates of one id, which the worker files as one result.
pub fn reanalysis_job(
    media: &MediaToReanalyse,
    model_set: &str,
    settings: &SettingsOverrides,
) -> Result<Job, JobRejection> {
    let short = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    Ok(Job {
        id: JobId::parse(&format!(
            "reanalyze-{}-{}",
            short(&media.content_sha256, 12),
            short(model_set, 8)
        ))?,
        kind: media.kind,
        source: JobSource::parse(&media.source)?,
        film: media.film.clone(),
        festival: media.festival.clone(),
        settings: settings.clone(),
    })
}

/// `regard enqueue --reanalyze`: one job per media whose latest success is of another model set.
async fn enqueue_reanalysis(args: EnqueueArgs) -> anyhow::Result<bool> {
    let model_set = match &args.model_set {
        Some(sha) => sha.trim().to_lowercase(),
        None => current_model_set(&args.models.options()).context("current model set")?,
    };
    anyhow::ensure!(
        model_set.len() == 64 && model_set.chars().all(|c| c.is_ascii_hexdigit()),
        "--model-set must be a sha256 (64 hex digits), not {model_set:?}"
    );
    let url = args
        .database_url
        .as_deref()
        .context("--reanalyze needs --db")?;
    let store = connect_and_migrate(
        url,
        crate::store::DEFAULT_STATEMENT_TIMEOUT,
        Duration::from_secs(10),
    )
    .await?;
    let filter = ReanalysisFilter {
        festival: args.festival.clone(),
        edition: args.edition,
        film_year: args.year,
    };
    let media = store.media_to_reanalyse(&model_set, &filter).await?;
    println!(
        "{} media to re-analyse (current model set {})",
        media.len(),
        &model_set[..12]
    );
    let mut jobs = Vec::new();
    let mut refused = Vec::new();
    for (i, m) in media.iter().enumerate() {
        let line = i as u64 + 1;
        let selection = m
            .festival
            .as_ref()
            .map(|f| format!(" {} {}", f.festival, f.edition))
            .unwrap_or_default();
        println!(
            "{line}: {} {:?} {} ({}) from {}{selection}: {}",
            m.content_sha256,
            m.kind,
            m.film.title,
            m.film.year.map(|y| y.to_string()).unwrap_or_default(),
            &m.model_set_sha256[..m.model_set_sha256.len().min(12)],
            m.source
        );
        match reanalysis_job(m, &model_set, &args.settings.overrides) {
            Ok(job) => jobs.push((line, job)),
            Err(e) => refused.push(Refused {
                line,
                reason: e.to_string(),
            }),
        }
    }
    let topology = args.topology.topology();
    let mut summary = EnqueueSummary {
        accepted: 0,
        refused,
    };
    if !args.dry_run && !jobs.is_empty() {
        let publisher = Publisher::connect(&args.topology.amqp_url, &topology).await?;
        let published = publisher.publish_all(&jobs).await;
        publisher.close().await?;
        let published = published?;
        summary.accepted = published.accepted;
        summary.refused.extend(published.refused);
    }
    for r in &summary.refused {
        eprintln!("refused: {}: {}", r.line, r.reason);
    }
    if args.dry_run {
        println!("dry run: nothing enqueued");
    } else {
        println!(
            "{} job(s) enqueued on {}, {} refused",
            summary.accepted,
            topology.jobs_queue(),
            summary.refused.len()
        );
    }
    Ok(summary.refused.is_empty())
}

/// Runs `regard queue setup`.
pub async fn queue_setup(args: QueueSetupArgs) -> anyhow::Result<bool> {
    let topology = args.topology.topology();
    crate::queue::setup(&args.topology.amqp_url, &topology).await?;
    println!("topology declared with prefix {:?}", topology.prefix);
    match topology.results_queue() {
        Some(q) => {
            println!("result events kept in queue {q:?} (durable; consume it or switch it off)")
        }
        None => println!(
            "no results queue: events reach only queues bound to {:?}",
            topology.results_exchange()
        ),
    }
    Ok(true)
}
