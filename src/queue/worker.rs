//! The worker loop: consume jobs, run the [`Processor`], settle every delivery exactly once.
//!
//! Settling means one of: ack (done); copy to a retry queue then ack (transient failure); copy to
//! the dead letters then ack (permanent failure, malformed message, attempts exhausted); copy back
//! to the jobs queue then ack (shutdown deadline passed). Copies are published with confirms
//! before the ack, so a crash in between duplicates a job (harmless: results are idempotent)
//! and never loses one. A per-delivery lock makes the worker's own paths mutually exclusive.
//!
//! A delivery that can be neither acked nor forwarded (a publish or an ack that fails or times
//! out on a live channel) is nacked back to the queue, or, when even that fails, its channels
//! are closed so that the broker returns it: it never holds a prefetch slot until the broker's
//! consumer timeout. A transient failure while the processor is not ready (the database is
//! unreachable) spends no attempt: the job goes back to the jobs queue as it came and the
//! worker stops consuming until the processor is ready again, so an outage of any length
//! dead-letters nothing.

use super::http;
use super::job::Job;
use super::metrics::{JobOutcome, Metrics};
use super::topology::{
    self, HEADER_ATTEMPT, HEADER_DELIVERY_COUNT, HEADER_ERROR, HEADER_ERROR_CODE,
    HEADER_FAILURE_RECORDED, HEADER_INTERRUPTED, JOB_ROUTING_KEY, RetryDecision, Topology,
};
use super::{BROKER_TIMEOUT, QueueError, broker_op, connect, redact};
use crate::runner::failpoint;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

/// Why a job failed, and whether trying again later may help. The real processor builds these
/// from the pipeline's and the store's classified errors (`code()`, `is_retryable()`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct JobError {
    code: String,
    message: String,
    retryable: bool,
}

impl JobError {
    /// Worth another attempt later (database down, network hiccup, broker refusal).
    pub fn transient(code: impl Into<String>, message: impl Into<String>) -> Self {
        JobError {
            code: code.into(),
            message: message.into(),
            retryable: true,
        }
    }
    /// The same job will fail the same way (corrupt media, source outside the roots).
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        JobError {
            code: code.into(),
            message: message.into(),
            retryable: false,
        }
    }
    pub fn code(&self) -> &str {
        &self.code
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

/// What a successful job reports in its result event (analysis id, content sha256, counts...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobDone {
    pub summary: serde_json::Value,
}

/// Bounded CPU concurrency for blocking work (decoding, inference): one permit per job slot.
/// Prefetch already bounds deliveries, but after a reconnect the jobs of the old connection may
/// still be running while new ones arrive; the permits keep the CPU work bounded regardless.
#[derive(Debug, Clone)]
pub struct CpuSlots {
    permits: Arc<Semaphore>,
}

impl CpuSlots {
    pub fn new(slots: usize) -> Self {
        CpuSlots {
            permits: Arc::new(Semaphore::new(slots.max(1))),
        }
    }

    /// Runs `work` on the blocking pool once a slot is free, in the caller's tracing span.
    /// A panic inside `work` becomes a permanent `panic` error.
    pub async fn run<F, R>(&self, work: F) -> Result<R, JobError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| JobError::transient("worker_stopping", "CPU slots closed"))?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(work))
            .await
            .map_err(|e| join_error("blocking work", e))
    }

    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

fn join_error(what: &str, e: tokio::task::JoinError) -> JobError {
    if e.is_panic() {
        let text = crate::panics::message(e.into_panic().as_ref());
        JobError::permanent("panic", format!("{what} panicked: {text}"))
    } else {
        JobError::transient("cancelled", format!("{what} was cancelled"))
    }
}

/// What the processor knows about this delivery.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// 1 for the first try; n+1 after n transient failures.
    pub attempt: u32,
    /// The broker's count of failed deliveries of this very message (`x-delivery-count`):
    /// crashes and lost connections, not our retries (those are fresh copies).
    pub delivery_count: u32,
    /// The broker's redelivered flag.
    pub redelivered: bool,
    /// Times a shutting-down worker handed this job back unfinished.
    pub interrupted: u32,
    /// Slots for blocking CPU work.
    pub cpu: CpuSlots,
    /// Counters the processor bumps (frames decoded, faces found, inference seconds).
    pub metrics: Arc<Metrics>,
    /// The job's kind, for the `kind` label of what the processor reports.
    pub kind: &'static str,
}

impl JobContext {
    /// One stage of this job (`fetch`, `analyse`, `commit`) took `seconds`.
    pub fn stage(&self, stage: &'static str, seconds: f64) {
        self.metrics.stage(self.kind, stage, seconds);
    }
}

/// The work done for one job: analyse, commit results, report. Implemented by the pipeline +
/// store processor in the binary and by test processors.
pub trait Processor: Send + Sync + 'static {
    /// Runs the job. `Ok` means the results are committed: the delivery is acked after it.
    fn process(
        &self,
        job: &Job,
        ctx: &JobContext,
    ) -> impl Future<Output = Result<JobDone, JobError>> + Send;

    /// Records a final failure (permanent, or transient `attempts` times) before the message goes
    /// to the dead letters. A retryable error here sends the job back to retry instead.
    fn record_failure(
        &self,
        job: &Job,
        error: &JobError,
        attempts: u32,
    ) -> impl Future<Output = Result<(), JobError>> + Send;

    /// `Ok` when the processor can work (database reachable, models loaded).
    fn ready(&self) -> impl Future<Output = Result<(), String>> + Send;

    /// A transient failure sent the job to a retry queue; the next attempt is due at `next`.
    fn retrying(
        &self,
        _job: &Job,
        _error: &JobError,
        _next: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A job in flight at shutdown was handed back to the jobs queue unfinished: waiting
    /// again (its analysis, if it still finishes here, is dropped).
    fn handed_back(&self, _job_id: &str) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A message that is not a job went to the dead letters, under `job_id` (the id it
    /// carried, or one derived from its bytes).
    fn malformed(
        &self,
        _job_id: &str,
        _code: &str,
        _message: &str,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Sends the shutdown request (the CLI wires SIGTERM and SIGINT to it).
#[derive(Debug, Clone)]
pub struct ShutdownTrigger(Arc<watch::Sender<bool>>);

/// Watches for the shutdown request.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn shutdown_channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(Arc::new(tx)), Shutdown(rx))
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Triggers on SIGTERM or SIGINT (Ctrl-C).
    pub fn on_signals(self) -> JoinHandle<()> {
        tokio::spawn(async move {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                match signal(SignalKind::terminate()) {
                    Ok(mut term) => {
                        tokio::select! {
                            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the worker");
                        // An error here means no Ctrl-C either: shut down rather than run unstoppable.
                        if let Err(error) = tokio::signal::ctrl_c().await {
                            tracing::error!(%error, "cannot listen for Ctrl-C");
                        }
                    }
                }
            }
            #[cfg(not(unix))]
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::error!(%error, "cannot listen for Ctrl-C");
            }
            self.trigger();
        })
    }
}

impl Shutdown {
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown is requested (immediately if it already was, or if the trigger
    /// was dropped: nobody can ask any more, so stopping is the safe reading).
    pub async fn wait(&mut self) {
        // An error means the sender is gone; treat it as a request to stop.
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub amqp_url: String,
    pub topology: Topology,
    /// Jobs processed at once: the prefetch count and the number of CPU slots.
    pub job_slots: u16,
    /// After a shutdown request, how long in-flight jobs may take before they are handed back.
    pub shutdown_deadline: Duration,
    /// First and longest wait between reconnection attempts (doubling in between).
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Shown in the broker's connection list.
    pub connection_name: String,
    /// A job slot busy for longer than this is stuck: `/readyz` answers 503 and says so. Set it
    /// from the job's own deadline with [`WorkerConfig::stuck_after_deadline`].
    pub stuck_after: Duration,
}

impl WorkerConfig {
    pub fn new(amqp_url: impl Into<String>, topology: Topology) -> Self {
        WorkerConfig {
            amqp_url: amqp_url.into(),
            topology,
            job_slots: 1,
            shutdown_deadline: Duration::from_secs(60),
            reconnect_min: Duration::from_millis(200),
            // Short enough that a worker is back within seconds of a broker restart; each
            // attempt is one TCP connect, and the outage log stays quiet.
            reconnect_max: Duration::from_secs(5),
            connection_name: format!("regard worker {}", crate::PIPELINE_VERSION),
            stuck_after: Self::stuck_after_deadline(Duration::from_secs(1200)),
        }
    }

    /// When a slot counts as stuck for jobs bounded by `deadline` (fetch plus analysis): the
    /// deadline plus a quarter of it, at least 10 s, for the commit and the broker round trips.
    pub fn stuck_after_deadline(deadline: Duration) -> Duration {
        deadline + (deadline / 4).max(Duration::from_secs(10))
    }
}

/// How often a worker that stopped taking jobs during a database outage asks whether the
/// database answers again.
const OUTAGE_POLL: Duration = Duration::from_secs(1);

/// What happened at shutdown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Jobs handed back to the jobs queue because they did not finish before the deadline
    /// (or had been prefetched but not started).
    pub handed_back: usize,
}

/// One delivery in flight. The lock is held while settling, so the job's own settlement and
/// the shutdown hand-back never both happen.
struct Pending {
    settled: tokio::sync::Mutex<bool>,
    redelivered: bool,
    data: Vec<u8>,
    properties: BasicProperties,
    acker: lapin::Acker,
    publish: Channel,
    job_id: Option<String>,
    /// When the processor started on it (for `/readyz`'s stuck-slot check).
    began: OnceLock<Instant>,
    /// Asks the session that received this delivery to close its channels: the broker then
    /// returns every delivery of theirs that is still unsettled.
    recycle: Arc<Notify>,
}

type Registry = Arc<Mutex<HashMap<u64, Arc<Pending>>>>;

/// Aborts the wrapped task when dropped, so aborting a handler also stops its processor task.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Shared<P> {
    config: WorkerConfig,
    processor: Arc<P>,
    metrics: Arc<Metrics>,
    cpu: CpuSlots,
    /// Deliveries in flight.
    registry: Registry,
    /// Set by a job that found the database unreachable: the session stops taking jobs until
    /// the processor is ready again.
    outage: AtomicBool,
    outage_seen: Notify,
}

impl<P: Processor> Shared<P> {
    /// The longest-running job, when it has run for longer than a job may.
    fn stuck_slot(&self) -> Option<Duration> {
        lock(&self.registry)
            .values()
            .filter_map(|p| p.began.get().map(Instant::elapsed))
            .max()
            .filter(|busy| *busy > self.config.stuck_after)
    }

    /// `/readyz`: no stuck slot, and the processor can work.
    async fn ready(&self) -> Result<(), String> {
        if let Some(busy) = self.stuck_slot() {
            return Err(format!(
                "a job slot has been busy for {}s, longer than a job may take ({}s): stuck",
                busy.as_secs(),
                self.config.stuck_after.as_secs()
            ));
        }
        self.processor.ready().await
    }
}

/// The queue worker, generic over what it does with a job.
pub struct Worker<P: Processor> {
    shared: Arc<Shared<P>>,
    http: Option<AbortOnDrop<()>>,
}

impl<P: Processor> Worker<P> {
    pub fn new(config: WorkerConfig, processor: Arc<P>) -> Result<Self, QueueError> {
        config.topology.validate().map_err(QueueError::Config)?;
        if config.job_slots == 0 {
            return Err(QueueError::Config("job slots must be at least 1".into()));
        }
        let cpu = CpuSlots::new(config.job_slots as usize);
        let shared = Shared {
            config,
            processor,
            metrics: Arc::new(Metrics::new()),
            cpu,
            registry: Arc::default(),
            outage: AtomicBool::new(false),
            outage_seen: Notify::new(),
        };
        shared.metrics.set_slots(shared.config.job_slots);
        Ok(Worker {
            shared: Arc::new(shared),
            http: None,
        })
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// Binds `/healthz`, `/readyz` and `/metrics` (port 0 picks a free port) and serves them
    /// until the worker is dropped. Returns the bound address.
    pub async fn serve_http(&mut self, addr: SocketAddr) -> Result<SocketAddr, QueueError> {
        let http_err = |source| QueueError::Http {
            addr: addr.to_string(),
            source,
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(http_err)?;
        let bound = listener.local_addr().map_err(http_err)?;
        let shared = self.shared.clone();
        let ready = move || {
            let shared = shared.clone();
            async move { shared.ready().await }
        };
        let task = tokio::spawn(http::serve(listener, self.shared.metrics.clone(), ready));
        self.http = Some(AbortOnDrop(task));
        tracing::info!(%bound, "serving /healthz, /readyz and /metrics");
        Ok(bound)
    }

    /// Consumes until `shutdown`, reconnecting whenever the broker is lost. Returns after
    /// in-flight jobs finished or were handed back.
    pub async fn run(self, mut shutdown: Shutdown) -> Result<RunReport, QueueError> {
        let shared = self.shared.clone();
        let cfg = &shared.config;
        let registry = shared.registry.clone();
        let mut handlers = JoinSet::new();
        let next_id = AtomicU64::new(0);
        let mut backoff = cfg.reconnect_min;
        let mut first = true;
        let mut last_session: Option<Session> = None;
        let mut report = RunReport::default();
        let mut outage = OutageLog::default();

        'sessions: while !shutdown.is_triggered() {
            let mut session = tokio::select! {
                opened = Session::open(cfg) => match opened {
                    Ok(s) => s,
                    Err(error) => {
                        outage.failed(&error.to_string(), backoff);
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = shutdown.wait() => break 'sessions,
                        }
                        backoff = (backoff * 2).min(cfg.reconnect_max);
                        continue 'sessions;
                    }
                },
                _ = shutdown.wait() => break 'sessions,
            };
            backoff = cfg.reconnect_min;
            outage.recovered();
            if !first {
                shared.metrics.reconnected();
            }
            first = false;
            shared.metrics.set_connected(true);
            // Queue depth and consumers for /metrics, on a channel of their own; stops with
            // the session.
            let queues_refresh = Arc::new(tokio::sync::Notify::new());
            let _queues = match broker_op("channel.open", session.conn.create_channel()).await {
                Ok(channel) => Some(AbortOnDrop(tokio::spawn(super::metrics::watch_queues(
                    channel,
                    cfg.topology.clone(),
                    shared.metrics.clone(),
                    queues_refresh.clone(),
                )))),
                Err(error) => {
                    tracing::warn!(%error, "no channel for queue metrics");
                    None
                }
            };
            // No consumer while the database is unreachable; the first tick starts one at once
            // unless a job saw the database down.
            let mut consumer: Option<lapin::Consumer> = None;
            let mut resume = tokio::time::interval(OUTAGE_POLL);
            let mut health = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    delivery = next_delivery(&mut consumer) => match delivery {
                        Some(Ok(delivery)) => {
                            let id = next_id.fetch_add(1, Ordering::Relaxed);
                            let pending = Arc::new(Pending::new(
                                delivery,
                                session.publish.clone(),
                                session.recycle.clone(),
                            ));
                            lock(&registry).insert(id, pending.clone());
                            let (shared, registry) = (shared.clone(), registry.clone());
                            handlers.spawn(async move {
                                handle(&shared, &pending).await;
                                lock(&registry).remove(&id);
                            });
                        }
                        Some(Err(error)) => {
                            tracing::warn!(%error, "consumer failed; reconnecting");
                            break;
                        }
                        None => {
                            tracing::warn!("consumer ended; reconnecting");
                            break;
                        }
                    },
                    _ = shared.outage_seen.notified(), if consumer.is_some() => {
                        if shared.outage.load(Ordering::SeqCst) {
                            let mut stopped = consumer.take().expect("a consumer to stop");
                            match session.stop_consuming(&mut stopped, &shared.metrics, &cfg.topology, HandBack::Outage).await {
                                Some(handed_back) => tracing::warn!(
                                    handed_back,
                                    "database unreachable: not taking jobs until it answers again"
                                ),
                                None => break,
                            }
                        }
                    }
                    _ = resume.tick(), if consumer.is_none() => {
                        let down = shared.outage.load(Ordering::SeqCst);
                        if down && shared.processor.ready().await.is_err() {
                            continue;
                        }
                        shared.outage.store(false, Ordering::SeqCst);
                        match session.consume(cfg).await {
                            Ok(c) => {
                                consumer = Some(c);
                                queues_refresh.notify_one();
                            }
                            Err(error) => {
                                tracing::warn!(%error, "cannot start consuming; reconnecting");
                                break;
                            }
                        }
                        tracing::info!(
                            broker = %redact(&cfg.amqp_url),
                            queue = %cfg.topology.jobs_queue(),
                            slots = cfg.job_slots,
                            after_outage = down,
                            "consuming jobs"
                        );
                    }
                    Some(joined) = handlers.join_next() => {
                        if let Err(error) = joined {
                            tracing::error!(%error, "job handler task failed");
                        }
                    }
                    _ = health.tick() => {
                        if !session.is_healthy() {
                            tracing::warn!("broker connection or channel lost; reconnecting");
                            break;
                        }
                    }
                    _ = session.recycle.notified() => {
                        tracing::warn!("a delivery could not be settled on this channel: closing it, so that the broker returns it");
                        break;
                    }
                    _ = shutdown.wait() => {
                        shared.metrics.set_draining();
                        if let Some(mut c) = consumer.take() {
                            report.handed_back += session
                                .stop_consuming(&mut c, &shared.metrics, &cfg.topology, HandBack::Shutdown)
                                .await
                                .unwrap_or(0);
                        }
                        last_session = Some(session);
                        break 'sessions;
                    }
                }
            }
            shared.metrics.set_connected(false);
            session.close("reconnecting").await;
        }

        // Draining: wait for in-flight jobs up to the deadline, then hand back the rest.
        shared.metrics.set_draining();
        let deadline = Instant::now() + cfg.shutdown_deadline;
        tracing::info!(in_flight = lock(&registry).len(), deadline = ?cfg.shutdown_deadline, "shutting down");
        let drained = tokio::time::timeout_at(deadline.into(), async {
            while let Some(joined) = handlers.join_next().await {
                if let Err(error) = joined {
                    tracing::error!(%error, "job handler task failed");
                }
            }
        })
        .await;
        if drained.is_err() {
            let left: Vec<Arc<Pending>> = lock(&registry).values().cloned().collect();
            for pending in left {
                if hand_back(&shared.metrics, &cfg.topology, &pending, HandBack::Shutdown).await {
                    report.handed_back += 1;
                    if let Some(job_id) = pending.job_id.as_deref() {
                        shared.processor.handed_back(job_id).await;
                    }
                }
            }
            handlers.abort_all();
            while handlers.join_next().await.is_some() {}
        }
        shared.metrics.set_connected(false);
        if let Some(session) = last_session {
            session.close("worker shutting down").await;
        }
        tracing::info!(handed_back = report.handed_back, "worker stopped");
        Ok(report)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned registry only means a handler panicked while holding it; the map is still valid.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The next delivery, or never while there is no consumer.
async fn next_delivery(
    consumer: &mut Option<lapin::Consumer>,
) -> Option<Result<lapin::message::Delivery, lapin::Error>> {
    match consumer {
        Some(c) => c.next().await,
        None => std::future::pending().await,
    }
}

impl Pending {
    fn new(delivery: lapin::message::Delivery, publish: Channel, recycle: Arc<Notify>) -> Self {
        let job_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.to_string());
        Pending {
            settled: tokio::sync::Mutex::new(false),
            redelivered: delivery.redelivered,
            data: delivery.data,
            properties: delivery.properties,
            acker: delivery.acker,
            publish,
            job_id,
            began: OnceLock::new(),
            recycle,
        }
    }

    /// Time since the job was first enqueued (the message timestamp, in seconds; retries and
    /// hand-backs keep it).
    fn queued_for(&self) -> Option<Duration> {
        let enqueued = (*self.properties.timestamp())?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        now.checked_sub(Duration::from_secs(enqueued))
    }

    fn headers(&self) -> Option<&FieldTable> {
        self.properties.headers().as_ref()
    }

    fn context(&self, shared: &Shared<impl Processor>, kind: &'static str) -> JobContext {
        let failures = topology::header_u32(self.headers(), HEADER_ATTEMPT).unwrap_or(0);
        JobContext {
            attempt: failures.saturating_add(1),
            delivery_count: topology::header_u32(self.headers(), HEADER_DELIVERY_COUNT)
                .unwrap_or(0),
            redelivered: self.redelivered,
            interrupted: topology::header_u32(self.headers(), HEADER_INTERRUPTED).unwrap_or(0),
            cpu: shared.cpu.clone(),
            metrics: shared.metrics.clone(),
            kind,
        }
    }

    /// The headers of a copy: ours updated, the broker's delivery count dropped (the copy is a
    /// new message and must start its count afresh).
    fn copy_headers(&self, set: &[(&str, AMQPValue)]) -> FieldTable {
        let mut headers = FieldTable::default();
        if let Some(old) = self.headers() {
            for (k, v) in old.inner() {
                if k.as_str() != HEADER_DELIVERY_COUNT {
                    headers.insert(k.clone(), v.clone());
                }
            }
        }
        for (k, v) in set {
            headers.insert(ShortString::from(*k), v.clone());
        }
        headers
    }

    /// Publishes a copy with confirms; `mandatory` so a missing queue is an error, not a loss.
    async fn publish_copy(
        &self,
        exchange: String,
        key: String,
        headers: FieldTable,
    ) -> Result<(), QueueError> {
        failpoint::hit(failpoint::BEFORE_COPY)
            .await
            .map_err(|_| QueueError::Timeout {
                op: "publisher confirm",
                timeout: BROKER_TIMEOUT,
            })?;
        let props = self
            .properties
            .clone()
            .with_headers(headers)
            .with_delivery_mode(2);
        let confirm = broker_op(
            "basic.publish",
            self.publish.basic_publish(
                exchange.into(),
                key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &self.data,
                props,
            ),
        )
        .await?;
        let confirmation = broker_op("publisher confirm", confirm).await?;
        if !confirmation.is_ack() {
            return Err(QueueError::Refused("publish nacked".into()));
        }
        if confirmation.take_message().is_some() {
            return Err(QueueError::Refused(
                "unroutable: is the topology declared?".into(),
            ));
        }
        Ok(())
    }

    /// Acks; a failed ack is logged and counted, never fatal: the delivery is given back
    /// ([`Pending::give_back`]), the broker redelivers it and the store's idempotency absorbs
    /// the duplicate.
    async fn ack(&self, metrics: &Metrics) -> bool {
        let job_id = self.job_id.as_deref().unwrap_or("-");
        if failpoint::hit(failpoint::BEFORE_ACK).await.is_err() {
            metrics.ack_failed();
            tracing::warn!(job_id, "ack not sent (failure point)");
            self.give_back().await;
            return false;
        }
        let failed =
            match tokio::time::timeout(BROKER_TIMEOUT, self.acker.ack(BasicAckOptions::default()))
                .await
            {
                Ok(Ok(true)) => return true,
                Ok(Ok(false)) => "ack not sent: channel closed or already settled".to_string(),
                Ok(Err(error)) => format!("ack failed: {error}"),
                Err(_) => format!("ack timed out after {BROKER_TIMEOUT:?}"),
            };
        metrics.ack_failed();
        tracing::warn!(job_id, reason = %failed, "delivery not acked; the broker will redeliver it");
        self.give_back().await;
        false
    }

    /// Settles a delivery that could be neither acked nor forwarded, in bounded time: a nack
    /// that returns it to the queue, or, when the nack cannot be sent or is not answered,
    /// closing the session's channels (the broker then returns every unsettled delivery of
    /// theirs). Never leaves it holding a prefetch slot until the broker's consumer timeout.
    async fn give_back(&self) {
        let job_id = self.job_id.as_deref().unwrap_or("-");
        if self.acker.poisoned() {
            // The channel is gone: the broker has returned the delivery already.
            return;
        }
        if self.acker.usable() {
            let nack = self.acker.nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            });
            match tokio::time::timeout(BROKER_TIMEOUT, nack).await {
                Ok(Ok(true)) => {
                    tracing::info!(job_id, "delivery returned to the queue");
                    return;
                }
                Ok(Ok(false)) => tracing::warn!(job_id, "nack not sent"),
                Ok(Err(error)) => tracing::warn!(job_id, %error, "nack failed"),
                Err(_) => tracing::warn!(job_id, "nack timed out"),
            }
        }
        self.recycle.notify_one();
    }

    /// Copy, then ack. `Unsettled` when the copy could not be published: the original is
    /// given back ([`Pending::give_back`]).
    async fn forward_then_ack(
        &self,
        metrics: &Metrics,
        exchange: String,
        key: String,
        headers: FieldTable,
        outcome: JobOutcome,
    ) -> JobOutcome {
        match self.publish_copy(exchange, key, headers).await {
            Ok(()) => {
                if self.ack(metrics).await {
                    outcome
                } else {
                    JobOutcome::Unsettled
                }
            }
            Err(error) => {
                metrics.ack_failed();
                tracing::warn!(job_id = self.job_id.as_deref().unwrap_or("-"), %error, "could not forward the message; giving it back to the broker");
                self.give_back().await;
                JobOutcome::Unsettled
            }
        }
    }
}

impl Pending {
    /// A copy to the jobs queue with the same headers (the attempt count unchanged), then ack.
    async fn requeue(&self, metrics: &Metrics, topology: &Topology) -> JobOutcome {
        self.forward_then_ack(
            metrics,
            topology.jobs_exchange(),
            JOB_ROUTING_KEY.into(),
            self.copy_headers(&[]),
            JobOutcome::Interrupted,
        )
        .await
    }
}

/// Why a job goes back to the jobs queue unfinished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HandBack {
    /// The worker is stopping: the job was interrupted (counted in `x-regard-interrupted`).
    Shutdown,
    /// Prefetched but never started, as consumption pauses for a database outage: nothing
    /// happened to the job, so nothing is counted.
    Outage,
}

/// Hands an unfinished job back to the jobs queue without spending a delivery attempt.
async fn hand_back(
    metrics: &Metrics,
    topology: &Topology,
    pending: &Pending,
    why: HandBack,
) -> bool {
    let mut settled = pending.settled.lock().await;
    if *settled {
        return false;
    }
    *settled = true;
    let headers = match why {
        HandBack::Shutdown => {
            let interrupted =
                topology::header_u32(pending.headers(), HEADER_INTERRUPTED).unwrap_or(0) + 1;
            pending.copy_headers(&[(HEADER_INTERRUPTED, AMQPValue::LongUInt(interrupted))])
        }
        HandBack::Outage => pending.copy_headers(&[]),
    };
    let outcome = pending
        .forward_then_ack(
            metrics,
            topology.jobs_exchange(),
            JOB_ROUTING_KEY.into(),
            headers,
            JobOutcome::Interrupted,
        )
        .await;
    let kind = Job::parse(&pending.data).map_or("unknown", |job| job.kind_name());
    metrics.job_finished(outcome, kind, None);
    let job_id = pending.job_id.as_deref().unwrap_or("-");
    match why {
        HandBack::Shutdown => {
            tracing::info!(
                job_id,
                outcome = outcome.label(),
                "job handed back at shutdown"
            )
        }
        HandBack::Outage => tracing::info!(
            job_id,
            outcome = outcome.label(),
            "job handed back unstarted while the database is unreachable"
        ),
    }
    outcome == JobOutcome::Interrupted
}

fn text_header(s: &str) -> AMQPValue {
    // Header values are bounded so a huge error text cannot bloat every copy.
    let mut end = s.len().min(1024);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    topology::long_string(&s[..end])
}

/// Logs a broker outage without flooding: the first failure, a changed error, and then at most
/// one line a minute with the number of attempts (wrong credentials would otherwise log on
/// every reconnection attempt for ever).
#[derive(Default)]
struct OutageLog {
    failures: u32,
    last: Option<(Instant, String)>,
}

impl OutageLog {
    const EVERY: Duration = Duration::from_secs(60);

    /// Returns whether this failure was logged.
    fn failed(&mut self, error: &str, retry_in: Duration) -> bool {
        self.failures += 1;
        let due = match &self.last {
            None => true,
            Some((at, message)) => message != error || at.elapsed() >= Self::EVERY,
        };
        if due {
            tracing::warn!(%error, failures = self.failures, retry_in = ?retry_in, "broker unavailable");
            self.last = Some((Instant::now(), error.to_string()));
        }
        due
    }

    fn recovered(&mut self) {
        if self.failures > 0 {
            tracing::info!(failures = self.failures, "broker reachable again");
        }
        *self = OutageLog::default();
    }
}

/// Parses, processes and settles one delivery.
async fn handle<P: Processor>(shared: &Shared<P>, pending: &Pending) {
    let metrics = &shared.metrics;
    let topology = &shared.config.topology;
    let job = match Job::parse(&pending.data) {
        Ok(job) => job,
        Err(rejection) => {
            let mut settled = pending.settled.lock().await;
            if *settled {
                return;
            }
            *settled = true;
            let job_id = malformed_id(pending);
            let message = rejection.to_string();
            tracing::warn!(job_id = %job_id, code = rejection.code(), %rejection, "malformed message: dead-lettering");
            shared
                .processor
                .malformed(&job_id, rejection.code(), &message)
                .await;
            let event = serde_json::json!({
                "version": 1,
                "job_id": job_id,
                "kind": null,
                "outcome": "malformed",
                "dead_lettered": true,
                "error_code": rejection.code(),
                "error": message,
                "finished_at": chrono::Utc::now().to_rfc3339(),
                "pipeline_version": crate::PIPELINE_VERSION,
            });
            if let Err(e) =
                publish_event(pending, topology, &job_id, "unknown", "malformed", &event).await
            {
                tracing::warn!(error = %e, "malformed-message event not published");
            }
            metrics.job_error("unknown", rejection.code());
            let headers = pending.copy_headers(&[
                (HEADER_ERROR_CODE, text_header(rejection.code())),
                (HEADER_ERROR, text_header(&message)),
            ]);
            let outcome = pending
                .forward_then_ack(
                    metrics,
                    topology.dead_exchange(),
                    String::new(),
                    headers,
                    JobOutcome::Malformed,
                )
                .await;
            metrics.job_finished(outcome, "unknown", None);
            return;
        }
    };
    let ctx = pending.context(shared, job.kind_name());
    let span =
        tracing::info_span!("job", job_id = %job.id, kind = job.kind_name(), attempt = ctx.attempt);
    async {
        if shared.outage.load(Ordering::SeqCst) {
            // Prefetched just before the consumer stopped: not even tried.
            let mut settled = pending.settled.lock().await;
            if !*settled {
                *settled = true;
                let outcome = pending.requeue(metrics, topology).await;
                metrics.job_finished(outcome, job.kind_name(), None);
            }
            return;
        }
        metrics.job_started(job.kind_name(), pending.queued_for());
        let started = Instant::now();
        let _ = pending.began.set(started);
        // The processor runs in its own task so that a panic fails this job only.
        let task = {
            let (processor, job, ctx) = (shared.processor.clone(), job.clone(), ctx.clone());
            AbortOnDrop(tokio::spawn(
                async move { processor.process(&job, &ctx).await }.in_current_span(),
            ))
        };
        let mut task = task;
        let result = match (&mut task.0).await {
            Ok(r) => r,
            Err(e) => Err(join_error("processor", e)),
        };
        let duration = started.elapsed();
        metrics.job_left();

        let mut settled = pending.settled.lock().await;
        if *settled {
            tracing::info!("finished after being handed back at shutdown; result dropped");
            return;
        }
        *settled = true;
        let outcome = match result {
            Ok(done) => {
                let event = result_event(&job, &ctx, "completed", Some(&done.summary), None);
                let published = match failpoint::hit(failpoint::BEFORE_EVENT).await {
                    Ok(()) => publish_result(pending, topology, &job, "completed", &event).await,
                    Err(_) => Err(QueueError::Timeout {
                        op: "publisher confirm",
                        timeout: BROKER_TIMEOUT,
                    }),
                };
                match published {
                    Ok(()) => {
                        if pending.ack(metrics).await {
                            JobOutcome::Completed
                        } else {
                            JobOutcome::Unsettled
                        }
                    }
                    Err(error) => {
                        // The result is committed: the next delivery finds it in the store
                        // and publishes the event without analysing again.
                        metrics.ack_failed();
                        tracing::warn!(%error, "result event not published; the job goes back to the queue");
                        pending.give_back().await;
                        JobOutcome::Unsettled
                    }
                }
            }
            Err(error) => settle_failure(shared, pending, &job, &ctx, error).await,
        };
        metrics.job_finished(outcome, job.kind_name(), Some(duration));
        tracing::info!(outcome = outcome.label(), seconds = duration.as_secs_f64(), "job settled");
    }
    .instrument(span)
    .await
}

/// Retry, or record and dead-letter.
async fn settle_failure<P: Processor>(
    shared: &Shared<P>,
    pending: &Pending,
    job: &Job,
    ctx: &JobContext,
    error: JobError,
) -> JobOutcome {
    let metrics = &shared.metrics;
    let topology = &shared.config.topology;
    let failures = ctx.attempt;
    metrics.job_error(job.kind_name(), error.code());
    if error.is_retryable()
        && let Err(reason) = shared.processor.ready().await
    {
        return wait_out_outage(shared, pending, &error, &reason).await;
    }
    let error_headers = |attempts: u32| {
        vec![
            (HEADER_ATTEMPT, AMQPValue::LongUInt(attempts)),
            (HEADER_ERROR_CODE, text_header(error.code())),
            (HEADER_ERROR, text_header(error.message())),
        ]
    };
    let retry = |delay: Duration| {
        let (error, error_headers) = (&error, &error_headers);
        async move {
            let headers = pending.copy_headers(&error_headers(failures));
            tracing::warn!(code = error.code(), %error, retry_in = ?delay, "transient failure: retrying later");
            let next = chrono::Utc::now()
                + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
            shared.processor.retrying(job, error, next).await;
            let mut event =
                result_event(job, ctx, "retrying", None, Some((error, error.message())));
            event["next_attempt_at"] = next.to_rfc3339().into();
            if let Err(e) = publish_result(pending, topology, job, "retrying", &event).await {
                tracing::warn!(error = %e, "retrying event not published");
            }
            pending
                .forward_then_ack(
                    metrics,
                    topology.retry_exchange(),
                    topology::retry_key(delay),
                    headers,
                    JobOutcome::Retried,
                )
                .await
        }
    };
    let give_up =
        error.is_retryable() && topology.after_failures(failures) == RetryDecision::GiveUp;
    if error.is_retryable()
        && let RetryDecision::RetryAfter(delay) = topology.after_failures(failures)
    {
        return retry(delay).await;
    }
    // Final: record it, then dead-letter it.
    let recorded = match shared.processor.record_failure(job, &error, failures).await {
        Ok(()) => true,
        Err(record_error) => {
            tracing::warn!(%record_error, "could not record the failure");
            if record_error.is_retryable()
                && let Err(reason) = shared.processor.ready().await
            {
                return wait_out_outage(shared, pending, &record_error, &reason).await;
            }
            if record_error.is_retryable()
                && let RetryDecision::RetryAfter(delay) = topology.after_failures(failures)
            {
                return retry(delay).await;
            }
            false
        }
    };
    let (outcome, reason) = if give_up {
        (
            JobOutcome::RetriesExhausted,
            format!("gave up after {failures} attempts: {}", error.message()),
        )
    } else {
        (JobOutcome::Failed, error.message().to_string())
    };
    tracing::warn!(code = error.code(), %reason, "job failed: dead-lettering");
    let mut set = error_headers(failures);
    set[2].1 = text_header(&reason);
    if !recorded {
        set.push((HEADER_FAILURE_RECORDED, AMQPValue::Boolean(false)));
    }
    let headers = pending.copy_headers(&set);
    let mut event = result_event(job, ctx, "failed", None, Some((&error, &reason)));
    event["dead_lettered"] = true.into();
    if let Err(e) = publish_result(pending, topology, job, "failed", &event).await {
        tracing::warn!(error = %e, "failure event not published");
    }
    pending
        .forward_then_ack(
            metrics,
            topology.dead_exchange(),
            String::new(),
            headers,
            outcome,
        )
        .await
}

/// The processor cannot work (the database is unreachable): the job goes back to the jobs
/// queue as it came, without spending an attempt, and the session stops taking jobs until the
/// processor is ready again. An outage, however long, dead-letters nothing.
async fn wait_out_outage<P: Processor>(
    shared: &Shared<P>,
    pending: &Pending,
    error: &JobError,
    reason: &str,
) -> JobOutcome {
    tracing::warn!(code = error.code(), %error, %reason, "not ready: job handed back without spending an attempt");
    shared.outage.store(true, Ordering::SeqCst);
    shared.outage_seen.notify_one();
    pending
        .requeue(&shared.metrics, &shared.config.topology)
        .await
}

/// The result event body (JSON, version 1).
fn result_event(
    job: &Job,
    ctx: &JobContext,
    outcome: &str,
    summary: Option<&serde_json::Value>,
    failure: Option<(&JobError, &str)>,
) -> serde_json::Value {
    let mut event = serde_json::json!({
        "version": 1,
        "job_id": job.id.as_str(),
        "kind": job.kind_name(),
        "source": job.source.as_string(),
        "film_title": job.film.title,
        "outcome": outcome,
        "attempt": ctx.attempt,
        "finished_at": chrono::Utc::now().to_rfc3339(),
        "pipeline_version": crate::PIPELINE_VERSION,
    });
    if let Some(summary) = summary {
        event["summary"] = summary.clone();
    }
    if let Some((error, reason)) = failure {
        event["error_code"] = error.code().into();
        event["error"] = reason.into();
    }
    event
}

async fn publish_result(
    pending: &Pending,
    topology: &Topology,
    job: &Job,
    outcome: &str,
    event: &serde_json::Value,
) -> Result<(), QueueError> {
    publish_event(
        pending,
        topology,
        job.id.as_str(),
        job.kind_name(),
        outcome,
        event,
    )
    .await
}

/// The id a malformed message is recorded under: the message id it carried, else a `job_id`
/// its body names, else one derived from its bytes (the same message redelivered gets the
/// same id).
fn malformed_id(pending: &Pending) -> String {
    if let Some(id) = pending.job_id.as_deref().filter(|s| !s.trim().is_empty()) {
        return id.chars().take(200).collect();
    }
    let named = serde_json::from_slice::<serde_json::Value>(&pending.data)
        .ok()
        .and_then(|v| {
            v.get("job_id")
                .and_then(|id| id.as_str())
                .map(str::to_string)
        })
        .filter(|s| !s.trim().is_empty());
    match named {
        Some(id) => id.chars().take(200).collect(),
        None => {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(&pending.data);
            format!("malformed-{}", &hex::encode(digest)[..16])
        }
    }
}

async fn publish_event(
    pending: &Pending,
    topology: &Topology,
    job_id: &str,
    kind: &str,
    outcome: &str,
    event: &serde_json::Value,
) -> Result<(), QueueError> {
    let body = serde_json::to_vec(event).unwrap_or_default();
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(job_id.into())
        .with_type("regard.analysis-event.v1".into());
    let key = topology::result_routing_key(kind, outcome);
    let confirm = broker_op(
        "basic.publish",
        pending.publish.basic_publish(
            topology.results_exchange().into(),
            key.into(),
            BasicPublishOptions::default(),
            &body,
            props,
        ),
    )
    .await?;
    let confirmation = broker_op("publisher confirm", confirm).await?;
    if confirmation.is_ack() {
        Ok(())
    } else {
        Err(QueueError::Refused("result event nacked".into()))
    }
}

/// One connection: a consuming channel (acks) and a publishing channel (confirms).
struct Session {
    conn: Connection,
    consume: Channel,
    publish: Channel,
    consumer_tag: String,
    /// Notified when a delivery of this session could not be settled (see [`Pending::give_back`]).
    recycle: Arc<Notify>,
}

impl Session {
    async fn open(cfg: &WorkerConfig) -> Result<Session, QueueError> {
        let conn = connect(&cfg.amqp_url, &cfg.connection_name).await?;
        // On error `conn` is dropped here, which closes it.
        let (consume, publish) = Self::prepare(cfg, &conn).await?;
        Ok(Session {
            conn,
            consume,
            publish,
            consumer_tag: String::new(),
            recycle: Arc::new(Notify::new()),
        })
    }

    async fn prepare(
        cfg: &WorkerConfig,
        conn: &Connection,
    ) -> Result<(Channel, Channel), QueueError> {
        let publish = broker_op("channel.open", conn.create_channel()).await?;
        broker_op("declare topology", cfg.topology.declare(&publish))
            .await
            .map_err(|e| super::explain_declare(e, &cfg.topology))?;
        broker_op(
            "confirm.select",
            publish.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        let consume = broker_op("channel.open", conn.create_channel()).await?;
        // Prefetch is set on every new channel: recovery would not restore it for us.
        broker_op(
            "basic.qos",
            consume.basic_qos(cfg.job_slots, BasicQosOptions::default()),
        )
        .await?;
        Ok((consume, publish))
    }

    /// Starts (or, after an outage, restarts) taking jobs.
    async fn consume(&mut self, cfg: &WorkerConfig) -> Result<lapin::Consumer, QueueError> {
        self.consumer_tag = format!("regard-{}", uuid::Uuid::new_v4());
        broker_op(
            "basic.consume",
            self.consume.basic_consume(
                cfg.topology.jobs_queue().into(),
                self.consumer_tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
    }

    fn is_healthy(&self) -> bool {
        self.conn.status().connected()
            && self.consume.status().connected()
            && self.publish.status().connected()
    }

    /// Cancels the consumer, then hands back whatever was prefetched but not yet started.
    /// `None` when the broker did not take the cancel (the session is then best closed).
    async fn stop_consuming(
        &self,
        consumer: &mut lapin::Consumer,
        metrics: &Metrics,
        topology: &Topology,
        why: HandBack,
    ) -> Option<usize> {
        if let Err(error) = broker_op(
            "basic.cancel",
            self.consume.basic_cancel(
                self.consumer_tag.as_str().into(),
                BasicCancelOptions::default(),
            ),
        )
        .await
        {
            tracing::warn!(%error, "could not cancel the consumer");
            return None;
        }
        let mut handed_back = 0;
        // After cancel-ok the stream yields what was already buffered, then ends.
        while let Ok(Some(Ok(delivery))) =
            tokio::time::timeout(Duration::from_secs(2), consumer.next()).await
        {
            let pending = Pending::new(delivery, self.publish.clone(), self.recycle.clone());
            handed_back += usize::from(hand_back(metrics, topology, &pending, why).await);
        }
        Some(handed_back)
    }

    async fn close(self, why: &str) {
        if self.conn.status().connected()
            && let Err(error) =
                broker_op("connection.close", self.conn.close(200, why.into())).await
        {
            tracing::debug!(%error, "closing the connection failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_logged_once_a_minute_or_when_the_error_changes() {
        let mut log = OutageLog::default();
        let d = Duration::from_secs(1);
        assert!(log.failed("ACCESS_REFUSED", d), "the first failure");
        assert!(
            !log.failed("ACCESS_REFUSED", d),
            "the same error again: quiet"
        );
        assert!(!log.failed("ACCESS_REFUSED", d));
        assert!(log.failed("connection refused", d), "another error");
        log.last = log.last.take().map(|(at, m)| (at - OutageLog::EVERY, m));
        assert!(log.failed("connection refused", d), "a minute later");
        assert_eq!(log.failures, 5);
        log.recovered();
        assert!(log.failed("connection refused", d), "a new outage");
    }
}
