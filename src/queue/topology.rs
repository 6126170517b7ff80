//! Exchanges, queues and headers, all named from one prefix so that several deployments (or
//! parallel tests) share a broker without meeting.
//!
//! ```text
//!  producer ──► {p}.jobs (direct, key "job") ──► {p}.jobs  quorum queue, x-delivery-limit
//!                   ▲                                │  delivery limit reached (crash loops)
//!                   │ TTL expired (dead-lettered)    ▼
//!  {p}.retry.<ms>  quorum queues with x-message-ttl   {p}.dead (fanout) ──► {p}.dead queue
//!                   ▲                                 ▲
//!  worker: transient failure → copy to {p}.retry      │ worker: permanent failure, malformed
//!          (key "<ms>", x-regard-attempt + 1)         │ message or attempts exhausted
//!  worker: every outcome → {p}.results (topic, key "analysis.<kind>.<outcome>") ──► "#" ──►
//!          {p}.results.events  durable quorum queue (unless switched off), kept for scrapers
//! ```
//!
//! The results queue exists so that events published before any scraper connected are kept;
//! the event body is described by `schemas/result-event.v1.schema.json`.
//!
//! The worker never nacks. Every settlement other than a plain ack is "publish a copy with
//! confirms, then ack the original": a copy carries our headers (attempt count, error code and
//! reason), and a copy starts with a fresh broker delivery count, so a retry or a shutdown
//! requeue does not spend the `x-delivery-limit` budget. That budget is left for what the worker
//! cannot see: a process killed mid-job or a lost connection, which the broker counts.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use std::time::Duration;

/// Routing key of job messages on the jobs exchange.
pub const JOB_ROUTING_KEY: &str = "job";
/// Failed attempts so far (absent = 0). Set by the worker on copies it sends to retry.
pub const HEADER_ATTEMPT: &str = "x-regard-attempt";
/// Times the job was handed back because its worker shut down before it finished.
pub const HEADER_INTERRUPTED: &str = "x-regard-interrupted";
/// Machine-readable reason of the last failure (e.g. `job_malformed`, `media_corrupt`).
pub const HEADER_ERROR_CODE: &str = "x-regard-error-code";
/// Human-readable reason of the last failure.
pub const HEADER_ERROR: &str = "x-regard-error";
/// Set to `false` on a dead letter whose failure the processor could not record.
pub const HEADER_FAILURE_RECORDED: &str = "x-regard-failure-recorded";
/// The broker's count of failed deliveries of this message (quorum queues only).
pub const HEADER_DELIVERY_COUNT: &str = "x-delivery-count";

/// Names and limits of the broker objects.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    /// Prefix of every exchange and queue name, e.g. `regard`.
    pub prefix: String,
    /// Deliveries the broker allows a message before dead-lettering it (quorum `x-delivery-limit`).
    /// Only crashes and lost connections count: the worker's own retries are fresh copies.
    pub delivery_limit: u32,
    /// Wait before attempt n+1 after n transient failures: `retry_delays[min(n, len) - 1]`.
    pub retry_delays: Vec<Duration>,
    /// Processing attempts in all (first try included) before a transient failure is final.
    pub max_attempts: u32,
    /// The durable queue bound to every result event.
    pub results_queue: ResultsQueue,
}

/// Which durable queue keeps the result events until a scraper reads them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ResultsQueue {
    /// `{prefix}.results.events`: follows the prefix, so parallel deployments never share it.
    #[default]
    Prefixed,
    /// A name of its own (e.g. one a scraper already consumes).
    Named(String),
    /// No queue: events reach only the queues scrapers bind themselves, and are dropped when
    /// none is bound.
    Off,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            prefix: "regard".into(),
            delivery_limit: 10,
            retry_delays: [10, 60, 300, 900].map(Duration::from_secs).to_vec(),
            max_attempts: 5,
            results_queue: ResultsQueue::Prefixed,
        }
    }
}

/// What to do with a job after `failures` transient failures in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    RetryAfter(Duration),
    GiveUp,
}

impl Topology {
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        Topology {
            prefix: prefix.into(),
            ..Topology::default()
        }
    }

    pub fn jobs_exchange(&self) -> String {
        format!("{}.jobs", self.prefix)
    }
    pub fn jobs_queue(&self) -> String {
        format!("{}.jobs", self.prefix)
    }
    pub fn retry_exchange(&self) -> String {
        format!("{}.retry", self.prefix)
    }
    /// Retry queues are named by their delay, so changing the delays declares new queues instead
    /// of failing on the old queues' different TTL.
    pub fn retry_queue(&self, delay: Duration) -> String {
        format!("{}.retry.{}", self.prefix, retry_key(delay))
    }
    pub fn dead_exchange(&self) -> String {
        format!("{}.dead", self.prefix)
    }
    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }
    pub fn results_exchange(&self) -> String {
        format!("{}.results", self.prefix)
    }
    /// The durable queue bound to every result event, if one is kept.
    pub fn results_queue(&self) -> Option<String> {
        match &self.results_queue {
            ResultsQueue::Prefixed => Some(format!("{}.results.events", self.prefix)),
            ResultsQueue::Named(name) => Some(name.clone()),
            ResultsQueue::Off => None,
        }
    }

    /// Checks the values before anything is declared.
    pub fn validate(&self) -> Result<(), String> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if self.prefix.is_empty() || self.prefix.len() > 200 || !self.prefix.chars().all(ok_char) {
            return Err(format!(
                "queue prefix {:?} must be 1-200 characters of A-Z a-z 0-9 . _ -",
                self.prefix
            ));
        }
        if self.retry_delays.is_empty() {
            return Err("at least one retry delay is needed".into());
        }
        if let Some(d) = self
            .retry_delays
            .iter()
            .find(|d| d.as_millis() == 0 || d.as_millis() > u32::MAX as u128)
        {
            return Err(format!(
                "retry delay {d:?} must be between 1 ms and 49 days"
            ));
        }
        if let ResultsQueue::Named(name) = &self.results_queue
            && (name.is_empty() || name.len() > 255 || name.starts_with("amq."))
        {
            return Err(format!(
                "results queue {name:?} must be 1-255 bytes and not start with amq."
            ));
        }
        if self.max_attempts == 0 || self.delivery_limit == 0 {
            return Err("max attempts and delivery limit must be at least 1".into());
        }
        Ok(())
    }

    /// After `failures` transient failures (≥ 1), retry or give up. Pure: tested without a broker.
    pub fn after_failures(&self, failures: u32) -> RetryDecision {
        if failures >= self.max_attempts {
            return RetryDecision::GiveUp;
        }
        let i = (failures.max(1) as usize - 1).min(self.retry_delays.len() - 1);
        RetryDecision::RetryAfter(self.retry_delays[i])
    }

    /// Declares everything (idempotent as long as the arguments did not change).
    pub async fn declare(&self, channel: &lapin::Channel) -> Result<(), lapin::Error> {
        use lapin::ExchangeKind;
        use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
        let durable_x = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let durable_q = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let exchanges = [
            (self.jobs_exchange(), ExchangeKind::Direct),
            (self.retry_exchange(), ExchangeKind::Direct),
            (self.dead_exchange(), ExchangeKind::Fanout),
            (self.results_exchange(), ExchangeKind::Topic),
        ];
        for (name, kind) in exchanges {
            channel
                .exchange_declare(name.into(), kind, durable_x, FieldTable::default())
                .await?;
        }

        let mut dead = FieldTable::default();
        dead.insert("x-queue-type".into(), long_string("quorum"));
        channel
            .queue_declare(self.dead_queue().into(), durable_q, dead)
            .await?;
        channel
            .queue_bind(
                self.dead_queue().into(),
                self.dead_exchange().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;

        let mut jobs = quorum_args();
        jobs.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(self.delivery_limit.min(i32::MAX as u32) as i32),
        );
        jobs.insert(
            "x-dead-letter-exchange".into(),
            long_string(&self.dead_exchange()),
        );
        channel
            .queue_declare(self.jobs_queue().into(), durable_q, jobs)
            .await?;
        channel
            .queue_bind(
                self.jobs_queue().into(),
                self.jobs_exchange().into(),
                JOB_ROUTING_KEY.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;

        for delay in self.distinct_delays() {
            let mut retry = quorum_args();
            retry.insert(
                "x-message-ttl".into(),
                AMQPValue::LongUInt(delay.as_millis() as u32),
            );
            retry.insert(
                "x-dead-letter-exchange".into(),
                long_string(&self.jobs_exchange()),
            );
            retry.insert(
                "x-dead-letter-routing-key".into(),
                long_string(JOB_ROUTING_KEY),
            );
            channel
                .queue_declare(self.retry_queue(delay).into(), durable_q, retry)
                .await?;
            channel
                .queue_bind(
                    self.retry_queue(delay).into(),
                    self.retry_exchange().into(),
                    retry_key(delay).into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }

        // No length limit: a queue that refused events would stall the worker's acks. Plain
        // quorum (no dead-lettering), so the arguments stay the same from one version to the next.
        if let Some(results) = self.results_queue() {
            let mut args = FieldTable::default();
            args.insert("x-queue-type".into(), long_string("quorum"));
            channel
                .queue_declare(results.as_str().into(), durable_q, args)
                .await?;
            channel
                .queue_bind(
                    results.into(),
                    self.results_exchange().into(),
                    "#".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }

    /// Deletes every queue and exchange of this prefix (tests, or retiring a deployment).
    pub async fn delete(&self, channel: &lapin::Channel) -> Result<(), lapin::Error> {
        use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
        let mut queues = vec![self.jobs_queue(), self.dead_queue()];
        queues.extend(self.results_queue());
        queues.extend(
            self.distinct_delays()
                .into_iter()
                .map(|d| self.retry_queue(d)),
        );
        for q in queues {
            channel
                .queue_delete(q.into(), QueueDeleteOptions::default())
                .await?;
        }
        for x in [
            self.jobs_exchange(),
            self.retry_exchange(),
            self.dead_exchange(),
            self.results_exchange(),
        ] {
            channel
                .exchange_delete(x.into(), ExchangeDeleteOptions::default())
                .await?;
        }
        Ok(())
    }

    fn distinct_delays(&self) -> Vec<Duration> {
        let mut d = self.retry_delays.clone();
        d.sort();
        d.dedup();
        d
    }
}

/// Routing key of the retry queue for one delay, e.g. `5000ms`.
pub fn retry_key(delay: Duration) -> String {
    format!("{}ms", delay.as_millis())
}

/// Results routing key, e.g. `analysis.poster.completed`.
pub fn result_routing_key(kind: &str, outcome: &str) -> String {
    format!("analysis.{kind}.{outcome}")
}

/// Quorum queues, with at-least-once dead-lettering so that a message moving from a retry queue
/// back to the jobs queue (or to the dead letters) is never dropped on the way; that strategy
/// requires `reject-publish` overflow.
fn quorum_args() -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-queue-type".into(), long_string("quorum"));
    t.insert(
        "x-dead-letter-strategy".into(),
        long_string("at-least-once"),
    );
    t.insert("x-overflow".into(), long_string("reject-publish"));
    t
}

pub(crate) fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

/// Reads a header as an unsigned count, whatever integer type the sender used.
pub fn header_u32(headers: Option<&FieldTable>, name: &str) -> Option<u32> {
    let value = headers?.inner().get(&ShortString::from(name))?;
    let n: i128 = match value {
        AMQPValue::ShortShortInt(v) => *v as i128,
        AMQPValue::ShortShortUInt(v) => *v as i128,
        AMQPValue::ShortInt(v) => *v as i128,
        AMQPValue::ShortUInt(v) => *v as i128,
        AMQPValue::LongInt(v) => *v as i128,
        AMQPValue::LongUInt(v) => *v as i128,
        AMQPValue::LongLongInt(v) => *v as i128,
        AMQPValue::Timestamp(v) => *v as i128,
        _ => return None,
    };
    u32::try_from(n.max(0)).ok()
}

/// Reads a header as text.
pub fn header_str(headers: Option<&FieldTable>, name: &str) -> Option<String> {
    match headers?.inner().get(&ShortString::from(name))? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_then_give_up() {
        let t = Topology {
            retry_delays: vec![Duration::from_secs(1), Duration::from_secs(5)],
            max_attempts: 4,
            ..Topology::default()
        };
        assert_eq!(
            t.after_failures(1),
            RetryDecision::RetryAfter(Duration::from_secs(1))
        );
        assert_eq!(
            t.after_failures(2),
            RetryDecision::RetryAfter(Duration::from_secs(5))
        );
        assert_eq!(
            t.after_failures(3),
            RetryDecision::RetryAfter(Duration::from_secs(5))
        );
        assert_eq!(t.after_failures(4), RetryDecision::GiveUp);
        let once = Topology {
            max_attempts: 1,
            ..t
        };
        assert_eq!(once.after_failures(1), RetryDecision::GiveUp);
    }

    #[test]
    fn names_share_the_prefix() {
        let t = Topology::with_prefix("fest-a");
        assert_eq!(t.jobs_queue(), "fest-a.jobs");
        assert_eq!(
            t.retry_queue(Duration::from_millis(1500)),
            "fest-a.retry.1500ms"
        );
        assert_eq!(t.results_exchange(), "fest-a.results");
        assert_eq!(t.results_queue().as_deref(), Some("fest-a.results.events"));
        let named = Topology {
            results_queue: ResultsQueue::Named("scraper-in".into()),
            ..t.clone()
        };
        assert_eq!(named.results_queue().as_deref(), Some("scraper-in"));
        let off = Topology {
            results_queue: ResultsQueue::Off,
            ..t
        };
        assert_eq!(off.results_queue(), None);
        assert_eq!(
            result_routing_key("poster", "completed"),
            "analysis.poster.completed"
        );
    }

    #[test]
    fn bad_topologies_are_refused_before_declaring() {
        assert!(Topology::with_prefix("ok_prefix-1").validate().is_ok());
        assert!(Topology::with_prefix("").validate().is_err());
        assert!(Topology::with_prefix("no spaces").validate().is_err());
        let no_delays = Topology {
            retry_delays: vec![],
            ..Topology::default()
        };
        assert!(no_delays.validate().is_err());
        let zero = Topology {
            retry_delays: vec![Duration::ZERO],
            ..Topology::default()
        };
        assert!(zero.validate().is_err());
    }

    #[test]
    fn headers_read_any_integer_width() {
        let mut t = FieldTable::default();
        t.insert("a".into(), AMQPValue::LongLongInt(3));
        t.insert("b".into(), AMQPValue::ShortShortUInt(2));
        t.insert("c".into(), long_string("text"));
        t.insert("d".into(), AMQPValue::LongInt(-4));
        assert_eq!(header_u32(Some(&t), "a"), Some(3));
        assert_eq!(header_u32(Some(&t), "b"), Some(2));
        assert_eq!(header_u32(Some(&t), "c"), None);
        assert_eq!(header_u32(Some(&t), "d"), Some(0));
        assert_eq!(header_u32(None, "a"), None);
        assert_eq!(header_str(Some(&t), "c").as_deref(), Some("text"));
    }
}
