//! Worker metrics in the Prometheus text format, kept with atomics: a handful of counters and one
//! histogram do not justify a metrics crate.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

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

    fn index(self) -> usize {
        JobOutcome::ALL.iter().position(|o| *o == self).unwrap_or(0)
    }

    /// Whether the message ended in the dead letters.
    pub fn is_dead_letter(self) -> bool {
        matches!(
            self,
            JobOutcome::Failed | JobOutcome::RetriesExhausted | JobOutcome::Malformed
        )
    }
}

/// Upper bounds of the job duration histogram, in seconds: posters take under a second,
/// trailers minutes.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
];

#[derive(Debug, Default)]
struct F64Counter(AtomicU64);

impl F64Counter {
    fn add(&self, v: f64) {
        if !v.is_finite() || v <= 0.0 {
            return;
        }
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(current) + v).to_bits();
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Everything `/metrics` shows. Shared by the worker loop, the HTTP server and the processor.
#[derive(Debug, Default)]
pub struct Metrics {
    jobs: [AtomicU64; 7],
    duration_buckets: [AtomicU64; DURATION_BUCKETS.len()],
    duration_count: AtomicU64,
    duration_sum: F64Counter,
    in_flight: AtomicU64,
    ack_failures: AtomicU64,
    reconnects: AtomicU64,
    connected: AtomicBool,
    frames_decoded: AtomicU64,
    faces_found: AtomicU64,
    inference_seconds: F64Counter,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// One delivery settled. `duration` is the processing time, when the processor ran.
    pub fn job_finished(&self, outcome: JobOutcome, duration: Option<Duration>) {
        self.jobs[outcome.index()].fetch_add(1, Ordering::Relaxed);
        if let Some(d) = duration {
            let s = d.as_secs_f64();
            for (i, upper) in DURATION_BUCKETS.iter().enumerate() {
                if s <= *upper {
                    self.duration_buckets[i].fetch_add(1, Ordering::Relaxed);
                }
            }
            self.duration_count.fetch_add(1, Ordering::Relaxed);
            self.duration_sum.add(s);
        }
    }

    pub fn jobs(&self, outcome: JobOutcome) -> u64 {
        self.jobs[outcome.index()].load(Ordering::Relaxed)
    }

    pub fn dead_letters(&self) -> u64 {
        JobOutcome::ALL
            .iter()
            .filter(|o| o.is_dead_letter())
            .map(|o| self.jobs(*o))
            .sum()
    }

    pub(crate) fn job_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn job_left(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// An ack, or a publish that precedes it, could not be sent.
    pub fn ack_failed(&self) {
        self.ack_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn ack_failures(&self) -> u64 {
        self.ack_failures.load(Ordering::Relaxed)
    }

    pub(crate) fn reconnected(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    /// The worker holds a consuming channel right now.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Processor counters.
    pub fn frames_decoded(&self, n: u64) {
        self.frames_decoded.fetch_add(n, Ordering::Relaxed);
    }
    pub fn faces_found(&self, n: u64) {
        self.faces_found.fetch_add(n, Ordering::Relaxed);
    }
    pub fn inference_seconds(&self, s: f64) {
        self.inference_seconds.add(s);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "# HELP regard_jobs_total Job deliveries settled, by outcome."
        );
        let _ = writeln!(out, "# TYPE regard_jobs_total counter");
        for o in JobOutcome::ALL {
            let _ = writeln!(
                out,
                "regard_jobs_total{{outcome=\"{}\"}} {}",
                o.label(),
                self.jobs(o)
            );
        }
        let _ = writeln!(
            out,
            "# HELP regard_job_retries_total Jobs sent to a retry queue after a transient failure."
        );
        let _ = writeln!(out, "# TYPE regard_job_retries_total counter");
        let _ = writeln!(
            out,
            "regard_job_retries_total {}",
            self.jobs(JobOutcome::Retried)
        );
        let _ = writeln!(
            out,
            "# HELP regard_dead_letters_total Messages the worker sent to the dead letters."
        );
        let _ = writeln!(out, "# TYPE regard_dead_letters_total counter");
        let _ = writeln!(out, "regard_dead_letters_total {}", self.dead_letters());
        let _ = writeln!(
            out,
            "# HELP regard_job_duration_seconds Processing time of one job."
        );
        let _ = writeln!(out, "# TYPE regard_job_duration_seconds histogram");
        for (i, upper) in DURATION_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "regard_job_duration_seconds_bucket{{le=\"{upper}\"}} {}",
                load(&self.duration_buckets[i])
            );
        }
        let count = load(&self.duration_count);
        let _ = writeln!(
            out,
            "regard_job_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "regard_job_duration_seconds_sum {}",
            self.duration_sum.get()
        );
        let _ = writeln!(out, "regard_job_duration_seconds_count {count}");
        let gauges = [
            (
                "regard_jobs_in_flight",
                "Jobs being processed now.",
                load(&self.in_flight),
            ),
            (
                "regard_broker_connected",
                "1 while the worker holds a consuming channel.",
                self.connected() as u64,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let counters = [
            (
                "regard_ack_failures_total",
                "Acks or settling publishes that could not be sent (the broker redelivers).",
                load(&self.ack_failures),
            ),
            (
                "regard_broker_reconnects_total",
                "Connections re-established after the broker was lost.",
                load(&self.reconnects),
            ),
            (
                "regard_frames_decoded_total",
                "Video frames decoded by the processor.",
                load(&self.frames_decoded),
            ),
            (
                "regard_faces_found_total",
                "Faces detected by the processor.",
                load(&self.faces_found),
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        let name = "regard_inference_seconds_total";
        let _ = writeln!(
            out,
            "# HELP {name} Time spent in model inference.\n# TYPE {name} counter\n{name} {}",
            self.inference_seconds.get()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::new();
        m.job_finished(JobOutcome::Completed, Some(Duration::from_millis(300)));
        m.job_finished(JobOutcome::Completed, Some(Duration::from_secs(7)));
        m.job_finished(JobOutcome::Malformed, None);
        let text = m.render();
        assert!(
            text.contains("regard_job_duration_seconds_bucket{le=\"0.25\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("regard_job_duration_seconds_bucket{le=\"0.5\"} 1\n"));
        assert!(text.contains("regard_job_duration_seconds_bucket{le=\"10\"} 2\n"));
        assert!(text.contains("regard_job_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("regard_job_duration_seconds_sum 7.3\n"));
        assert!(text.contains("regard_jobs_total{outcome=\"completed\"} 2\n"));
        assert!(text.contains("regard_dead_letters_total 1\n"));
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
        assert!(text.contains("regard_inference_seconds_total 0.75\n"));
    }
}
