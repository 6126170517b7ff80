//! `regard worker`, `regard enqueue` and `regard queue setup`: wiring and printing. The work
//! itself is [`crate::queue::JobProcessor`] over a [`Runner`].

use crate::cli::WorkerCommandArgs;
use crate::config::AnalysisSettings;
use crate::media::fetch::FetchPolicy;
use crate::queue::cli::{EnqueueArgs, QueueSetupArgs};
use crate::queue::{
    EnqueueSummary, JobProcessor, Publisher, QueueError, Refused, Worker, shutdown_channel,
};
use crate::runner::{Runner, load_pipelines};
use crate::store::{Store, StoreError};
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
    let config = args.queue.config();
    let store = connect_and_migrate(
        &args.db.database_url,
        args.db.statement_timeout,
        args.startup_wait,
    )
    .await?;
    let settings = args.settings.apply(AnalysisSettings::default());
    let limits = args.limits.limits();
    let models = args.models.options();
    let slots = usize::from(config.job_slots.max(1));
    let policy = FetchPolicy {
        local_roots: Some(args.media_roots.clone()),
        allow_private: args.allow_private.clone(),
        limits: limits.clone(),
        download_dir: None,
    };
    let pipelines = tokio::task::spawn_blocking(move || {
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
