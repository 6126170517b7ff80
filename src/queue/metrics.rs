//! Worker metrics for `/metrics`, in the Prometheus text format (0.0.4).
//!
//! Kept with `prometheus-client` (the Prometheus project's own Rust client): labelled families,
//! histograms and a standard encoder, instead of hand-written atomics and string formatting that
//! grew with every label. Every series a dashboard or an alert names exists from start-up (at
//! zero), so `rate()` and the dashboard test see it before the first job.

use super::topology::Topology;
use super::{BROKER_TIMEOUT, broker_op};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use prometheus_client::encoding::{EncodeLabelSet, prometheus_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The `Content-Type` of [`Metrics::render`].
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// How one delivery ended. Each is one label value of `regard_jobs_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobOutcome {
    /// Processed, result event published, acked.
    Completed,
    /// Transient failure: a copy went to a retry queue.
    Retried,
    /// Permanent failure: recorded and dead-lettered.
    Failed,
    /// Transient failures until the attempt limit: recorded and dead-lettered.
    RetriesExhausted,
    /// Not a job at all: dead-lettered with the parse error.
    Malformed,
    /// The worker shut down first: a copy went back to the jobs queue.
    Interrupted,
    /// The channel died before the outcome could be settled; the broker will redeliver.
    Unsettled,
}

impl JobOutcome {
    pub const ALL: [JobOutcome; 7] = [
        JobOutcome::Completed,
        JobOutcome::Retried,
        JobOutcome::Failed,
        JobOutcome::RetriesExhausted,
        JobOutcome::Malformed,
        JobOutcome::Interrupted,
        JobOutcome::Unsettled,
    ];

    pub fn label(self) -> &'static str {
        match self {
            JobOutcome::Completed => "completed",
            JobOutcome::Retried => "retried",
            JobOutcome::Failed => "failed",
            JobOutcome::RetriesExhausted => "retries_exhausted",
            JobOutcome::Malformed => "malformed",
            JobOutcome::Interrupted => "interrupted",
            JobOutcome::Unsettled => "unsettled",
        }
    }

    /// Whether the message ended in the dead letters.
    pub fn is_dead_letter(self) -> bool {
        matches!(
            self,
            JobOutcome::Failed | JobOutcome::RetriesExhausted | JobOutcome::Malformed
        )
    }
}

/// Values of the `kind` label: the job kinds, and `unknown` for messages that are not jobs.
pub const KINDS: [&str; 3] = ["poster", "trailer", "unknown"];

/// Stages of a job timed by the processor (`regard_job_stage_seconds{stage}`).
pub const STAGES: [&str; 3] = ["fetch", "analyse", "commit"];

/// Upper bounds of the job and stage duration histograms, in seconds: posters take under a
/// second, trailers minutes.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
];

/// Upper bounds of the queue-wait histogram, in seconds: from "picked at once" to hours behind.
pub const WAIT_BUCKETS: [f64; 11] = [
    1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0,
];

/// How often the worker reads the depth and consumers of its queues.
pub const QUEUE_POLL: Duration = Duration::from_secs(15);

/// A known kind label, so a stray value cannot add series.
fn kind_label(kind: &str) -> &'static str {
    KINDS
        .iter()
        .copied()
        .find(|k| *k == kind)
        .unwrap_or("unknown")
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    outcome: &'static str,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    kind: &'static str,
    stage: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    code: String,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    algorithm: String,
    model_set: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Everything `/metrics` shows. Shared by the worker loop, the HTTP server and the processor.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    jobs: Family<JobLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    retries: Counter,
    dead_letters: Counter,
    duration: Histograms<KindLabels>,
    stages: Histograms<StageLabels>,
    wait: Histograms<KindLabels>,
    in_flight: Gauge,
    slots: Gauge,
    connected: Gauge,
    draining: Gauge,
    draining_flag: AtomicBool,
    ack_failures: Counter,
    reconnects: Counter,
    frames_decoded: Counter,
    faces_found: Counter,
    inference_seconds: Counter<f64, AtomicU64>,
    queue_messages: Family<QueueLabels, Gauge>,
    queue_consumers: Family<QueueLabels, Gauge>,
    build_info: Family<BuildLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        fn durations() -> Histogram {
            Histogram::new(DURATION_BUCKETS)
        }
        fn waits() -> Histogram {
            Histogram::new(WAIT_BUCKETS)
        }
        let m = Metrics {
            registry: Registry::default(),
            jobs: Family::default(),
            errors: Family::default(),
            retries: Counter::default(),
            dead_letters: Counter::default(),
            duration: Family::new_with_constructor(durations as fn() -> Histogram),
            stages: Family::new_with_constructor(durations as fn() -> Histogram),
            wait: Family::new_with_constructor(waits as fn() -> Histogram),
            in_flight: Gauge::default(),
            slots: Gauge::default(),
            connected: Gauge::default(),
            draining: Gauge::default(),
            draining_flag: AtomicBool::new(false),
            ack_failures: Counter::default(),
            reconnects: Counter::default(),
            frames_decoded: Counter::default(),
            faces_found: Counter::default(),
            inference_seconds: Counter::default(),
            queue_messages: Family::default(),
            queue_consumers: Family::default(),
            build_info: Family::default(),
        };
        // Series exist at zero from the start.
        // (get_or_create returns a read guard; dropping it at once releases the family.)
        for kind in KINDS {
            for outcome in JobOutcome::ALL {
                drop(m.jobs.get_or_create(&JobLabels {
                    outcome: outcome.label(),
                    kind,
                }));
            }
        }
        for kind in ["poster", "trailer"] {
            drop(m.duration.get_or_create(&KindLabels { kind }));
            drop(m.wait.get_or_create(&KindLabels { kind }));
            for stage in STAGES {
                drop(m.stages.get_or_create(&StageLabels { kind, stage }));
            }
        }
        m.register()
    }

    fn register(mut self) -> Self {
        let r = &mut self.registry;
        // Counters get `_total` from the encoder; units append `_seconds`.
        r.register(
            "regard_jobs",
            "Job deliveries settled, by outcome and kind (unknown: not a job)",
            self.jobs.clone(),
        );
        r.register(
            "regard_job_errors",
            "Failed attempts by error code and kind, retried or final (codes are the program's own, a bounded set)",
            self.errors.clone(),
        );
        r.register(
            "regard_job_retries",
            "Jobs sent to a retry queue after a transient failure",
            self.retries.clone(),
        );
        r.register(
            "regard_dead_letters",
            "Messages the worker sent to the dead letters",
            self.dead_letters.clone(),
        );
        r.register_with_unit(
            "regard_job_duration",
            "Processing time of one job, by kind",
            Unit::Seconds,
            self.duration.clone(),
        );
        r.register_with_unit(
            "regard_job_stage",
            "Time spent in one stage of a job (fetch, analyse, commit), by kind",
            Unit::Seconds,
            self.stages.clone(),
        );
        r.register_with_unit(
            "regard_job_wait",
            "Time from enqueueing (the message timestamp, kept across retries) to the start of processing",
            Unit::Seconds,
            self.wait.clone(),
        );
        r.register(
            "regard_jobs_in_flight",
            "Jobs being processed now",
            self.in_flight.clone(),
        );
        r.register(
            "regard_job_slots",
            "Jobs this worker processes at once (prefetch and CPU slots)",
            self.slots.clone(),
        );
        r.register(
            "regard_broker_connected",
            "1 while the worker holds a consuming channel",
            self.connected.clone(),
        );
        r.register(
            "regard_worker_draining",
            "1 once shutdown began: no new jobs, in-flight ones finishing",
            self.draining.clone(),
        );
        r.register(
            "regard_ack_failures",
            "Acks or settling publishes that could not be sent (the broker redelivers)",
            self.ack_failures.clone(),
        );
        r.register(
            "regard_broker_reconnects",
            "Connections re-established after the broker was lost",
            self.reconnects.clone(),
        );
        r.register(
            "regard_frames_decoded",
            "Video frames decoded by the processor",
            self.frames_decoded.clone(),
        );
        r.register(
            "regard_faces_found",
            "Faces detected by the processor",
            self.faces_found.clone(),
        );
        r.register_with_unit(
            "regard_inference",
            "Time spent in model inference",
            Unit::Seconds,
            self.inference_seconds.clone(),
        );
        r.register(
            "regard_queue_messages",
            "Messages ready in each queue of the topology, as the broker reported at the last poll",
            self.queue_messages.clone(),
        );
        r.register(
            "regard_queue_consumers",
            "Consumers of each queue of the topology, as the broker reported at the last poll",
            self.queue_consumers.clone(),
        );
        r.register(
            "regard_build_info",
            "Always 1: the pipeline version, algorithm version and model-set sha256 results are keyed on",
            self.build_info.clone(),
        );
        self
    }

    /// One delivery settled. `kind` is the job's kind (`unknown` for anything else);
    /// `duration` is the processing time, when the processor ran.
    pub fn job_finished(&self, outcome: JobOutcome, kind: &str, duration: Option<Duration>) {
        let kind = kind_label(kind);
        self.jobs
            .get_or_create(&JobLabels {
                outcome: outcome.label(),
                kind,
            })
            .inc();
        if outcome == JobOutcome::Retried {
            self.retries.inc();
        }
        if outcome.is_dead_letter() {
            self.dead_letters.inc();
        }
        if let Some(d) = duration {
            self.duration
                .get_or_create(&KindLabels { kind })
                .observe(d.as_secs_f64());
        }
    }

    /// One attempt failed with `code` (a transient one may still be retried).
    pub fn job_error(&self, kind: &str, code: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                code: code.to_string(),
                kind: kind_label(kind),
            })
            .inc();
    }

    /// Settled deliveries with this outcome, all kinds together.
    pub fn jobs(&self, outcome: JobOutcome) -> u64 {
        KINDS
            .iter()
            .filter_map(|kind| {
                self.jobs
                    .get(&JobLabels {
                        outcome: outcome.label(),
                        kind,
                    })
                    .map(|c| c.get())
            })
            .sum()
    }

    pub fn dead_letters(&self) -> u64 {
        self.dead_letters.get()
    }

    /// A job of `kind` began after waiting `wait` since it was enqueued.
    pub(crate) fn job_started(&self, kind: &str, wait: Option<Duration>) {
        self.in_flight.inc();
        if let Some(w) = wait {
            self.wait
                .get_or_create(&KindLabels {
                    kind: kind_label(kind),
                })
                .observe(w.as_secs_f64());
        }
    }

    pub(crate) fn job_left(&self) {
        self.in_flight.dec();
    }

    /// Jobs being processed now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.get()
    }

    /// One stage of a job of `kind` took `seconds`.
    pub fn stage(&self, kind: &str, stage: &'static str, seconds: f64) {
        if seconds.is_finite() && seconds >= 0.0 {
            self.stages
                .get_or_create(&StageLabels {
                    kind: kind_label(kind),
                    stage,
                })
                .observe(seconds);
        }
    }

    pub(crate) fn set_slots(&self, slots: u16) {
        self.slots.set(i64::from(slots));
    }

    /// An ack, or a publish that precedes it, could not be sent.
    pub fn ack_failed(&self) {
        self.ack_failures.inc();
    }

    pub fn ack_failures(&self) -> u64 {
        self.ack_failures.get()
    }

    pub(crate) fn reconnected(&self) {
        self.reconnects.inc();
    }

    pub fn reconnects(&self) -> u64 {
        self.reconnects.get()
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        self.connected.set(i64::from(connected));
    }

    /// The worker holds a consuming channel right now.
    pub fn connected(&self) -> bool {
        self.connected.get() == 1
    }

    /// Shutdown began: readiness fails from now on, so no new traffic is sent this way.
    pub(crate) fn set_draining(&self) {
        self.draining_flag.store(true, Ordering::Relaxed);
        self.draining.set(1);
    }

    pub fn draining(&self) -> bool {
        self.draining_flag.load(Ordering::Relaxed)
    }

    /// Names the build in `regard_build_info`: the model-set sha256 the store keys results on
    /// (`store::provenance_keys`), next to the pipeline and algorithm versions.
    pub fn set_build_info(&self, model_set_sha256: &str) {
        self.build_info.clear();
        self.build_info
            .get_or_create(&BuildLabels {
                version: crate::PIPELINE_VERSION.to_string(),
                algorithm: crate::ALGORITHM_VERSION.to_string(),
                model_set: model_set_sha256.to_string(),
            })
            .set(1);
    }

    fn set_queue(&self, queue: &str, messages: u32, consumers: u32) {
        let labels = QueueLabels {
            queue: queue.to_string(),
        };
        self.queue_messages
            .get_or_create(&labels)
            .set(i64::from(messages));
        self.queue_consumers
            .get_or_create(&labels)
            .set(i64::from(consumers));
    }

    /// Processor counters.
    pub fn frames_decoded(&self, n: u64) {
        self.frames_decoded.inc_by(n);
    }
    pub fn faces_found(&self, n: u64) {
        self.faces_found.inc_by(n);
    }
    pub fn inference_seconds(&self, s: f64) {
        if s.is_finite() && s > 0.0 {
            self.inference_seconds.inc_by(s);
        }
    }

    /// The Prometheus text exposition (format 0.0.4, [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(error) = prometheus_text::encode(&mut out, &self.registry) {
            // Only a failing writer errs, and a String does not fail; say so if it ever does.
            tracing::error!(%error, "metrics encoding failed");
        }
        out
    }
}

/// Reads ready messages and consumers of the jobs, retry and dead-letter queues every
/// [`QUEUE_POLL`] with passive declares on `channel` (its own: a queue deleted under us closes
/// the channel it was asked on). Runs until aborted or the channel fails.
pub(crate) async fn watch_queues(
    channel: lapin::Channel,
    topology: Topology,
    metrics: Arc<Metrics>,
    refresh: Arc<tokio::sync::Notify>,
) {
    let mut queues = vec![topology.jobs_queue()];
    let mut delays = topology.retry_delays.clone();
    delays.sort();
    delays.dedup();
    queues.extend(delays.into_iter().map(|d| topology.retry_queue(d)));
    queues.push(topology.dead_queue());
    let mut tick = tokio::time::interval(QUEUE_POLL);
    loop {
        // Every QUEUE_POLL, and at once when asked (the worker asks when it starts consuming,
        // so that its own consumer is counted without waiting for the next poll).
        tokio::select! {
            _ = tick.tick() => {}
            _ = refresh.notified() => {}
        }
        for queue in &queues {
            let declared = broker_op(
                "queue.declare (passive)",
                channel.queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                ),
            )
            .await;
            match declared {
                Ok(q) => metrics.set_queue(queue, q.message_count(), q.consumer_count()),
                Err(error) => {
                    tracing::warn!(%queue, %error, timeout = ?BROKER_TIMEOUT, "cannot read queue depth; queue metrics stop until the next connection");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_counted_by_outcome_and_kind() {
        let m = Metrics::new();
        m.job_finished(
            JobOutcome::Completed,
            "poster",
            Some(Duration::from_millis(300)),
        );
        m.job_finished(
            JobOutcome::Completed,
            "trailer",
            Some(Duration::from_secs(7)),
        );
        m.job_finished(JobOutcome::Malformed, "unknown", None);
        m.job_finished(JobOutcome::Retried, "nonsense", None);
        m.job_error("trailer", "media_corrupt");
        m.job_error("trailer", "media_corrupt");
        let text = m.render();
        assert!(
            text.contains("regard_job_errors_total{code=\"media_corrupt\",kind=\"trailer\"} 2\n")
        );
        assert!(
            text.contains("regard_jobs_total{outcome=\"completed\",kind=\"poster\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("regard_jobs_total{outcome=\"completed\",kind=\"trailer\"} 1\n"));
        assert!(text.contains("regard_jobs_total{outcome=\"malformed\",kind=\"unknown\"} 1\n"));
        assert!(
            text.contains("regard_jobs_total{outcome=\"retried\",kind=\"unknown\"} 1\n"),
            "a stray kind is folded into unknown: {text}"
        );
        assert!(text.contains("regard_dead_letters_total 1\n"));
        assert!(text.contains("regard_job_retries_total 1\n"));
        assert_eq!(m.jobs(JobOutcome::Completed), 2);
        assert!(
            text.contains("regard_job_duration_seconds_bucket{kind=\"poster\",le=\"0.25\"} 0\n")
        );
        assert!(
            text.contains("regard_job_duration_seconds_bucket{kind=\"poster\",le=\"0.5\"} 1\n")
        );
        assert!(text.contains("regard_job_duration_seconds_bucket{kind=\"trailer\",le=\"5\"} 0\n"));
        assert!(
            text.contains("regard_job_duration_seconds_bucket{kind=\"trailer\",le=\"10\"} 1\n")
        );
        assert!(
            text.contains("regard_job_duration_seconds_bucket{kind=\"trailer\",le=\"+Inf\"} 1\n")
        );
        assert!(text.contains("regard_job_duration_seconds_sum{kind=\"trailer\"} 7.0\n"));
        assert!(text.contains("regard_job_duration_seconds_count{kind=\"poster\"} 1\n"));
        assert!(text.contains("# TYPE regard_jobs_total counter\n"));
        assert!(text.contains("# TYPE regard_job_duration_seconds histogram\n"));
    }

    #[test]
    fn gauges_stages_and_build_info_render() {
        let m = Metrics::new();
        m.set_slots(2);
        m.job_started("trailer", Some(Duration::from_secs(90)));
        m.job_started("poster", None);
        m.job_left();
        m.stage("trailer", "fetch", 0.2);
        m.stage("trailer", "commit", f64::NAN);
        m.set_queue("regard.jobs", 12, 3);
        m.set_build_info("ab12");
        assert!(!m.draining());
        m.set_draining();
        let text = m.render();
        assert!(text.contains("regard_jobs_in_flight 1\n"), "{text}");
        assert!(text.contains("regard_job_slots 2\n"));
        assert!(text.contains("regard_worker_draining 1\n"));
        assert!(text.contains("regard_job_wait_seconds_count{kind=\"trailer\"} 1\n"));
        assert!(text.contains("regard_job_wait_seconds_bucket{kind=\"trailer\",le=\"60\"} 0\n"));
        assert!(
            text.contains("regard_job_stage_seconds_count{kind=\"trailer\",stage=\"fetch\"} 1\n")
        );
        assert!(
            text.contains("regard_job_stage_seconds_count{kind=\"trailer\",stage=\"commit\"} 0\n"),
            "NaN is not observed"
        );
        assert!(text.contains("regard_queue_messages{queue=\"regard.jobs\"} 12\n"));
        assert!(text.contains("regard_queue_consumers{queue=\"regard.jobs\"} 3\n"));
        let build = format!(
            "regard_build_info{{version=\"{}\",algorithm=\"{}\",model_set=\"ab12\"}} 1\n",
            crate::PIPELINE_VERSION,
            crate::ALGORITHM_VERSION
        );
        assert!(text.contains(&build), "{text}");
        m.set_build_info("cd34");
        assert!(!m.render().contains("ab12"), "one build_info series only");
    }

    #[test]
    fn processor_counters_add_up() {
        let m = Metrics::new();
        m.frames_decoded(120);
        m.frames_decoded(5);
        m.faces_found(3);
        m.inference_seconds(0.5);
        m.inference_seconds(0.25);
        m.inference_seconds(f64::NAN);
        let text = m.render();
        assert!(text.contains("regard_frames_decoded_total 125\n"));
        assert!(text.contains("regard_faces_found_total 3\n"));
        assert!(
            text.contains("regard_inference_seconds_total 0.75\n"),
            "{text}"
        );
    }
}
