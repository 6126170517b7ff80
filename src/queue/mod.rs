//! RabbitMQ: the job contract, the topology and the worker loop.
//!
//! - [`job`]: the version 1 job message, parsed once at the edge ([`Job::parse`]).
//! - [`topology`]: exchange/queue names from a prefix, declared by the worker and `queue setup`;
//!   the retry and dead-letter design is described there.
//! - [`worker`]: consumes jobs, runs a [`Processor`], settles each delivery exactly once.
//! - [`processor`]: the real [`Processor`]: a job handed to the [`crate::runner::Runner`].
//! - [`enqueue`]: publishes jobs (one, or a JSONL/CSV file) with publisher confirms.
//! - [`http`] and [`metrics`]: `/healthz`, `/readyz`, `/metrics`.

pub mod admin;
pub mod enqueue;
pub mod http;
pub mod job;
pub mod metrics;
pub mod processor;
pub mod topology;
pub mod worker;

pub use enqueue::{EnqueueSummary, Publisher, Refused};
pub use job::{Job, JobId, JobRejection, JobSource, SettingsOverrides};
pub use metrics::{JobOutcome, Metrics};
pub use processor::JobProcessor;
pub use topology::Topology;
pub use worker::{
    CpuSlots, JobContext, JobDone, JobError, Processor, Shutdown, ShutdownTrigger, Worker,
    WorkerConfig, shutdown_channel,
};

use std::time::Duration;

/// Errors of the queue subsystem itself (broker, files, configuration). Failures of a job are
/// [`JobError`]s and never stop the worker.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("broker at {url}: {source}")]
    Connect { url: String, source: lapin::Error },
    #[error("broker operation `{op}` failed: {source}")]
    Broker {
        op: &'static str,
        source: lapin::Error,
    },
    #[error("broker did not answer `{op}` within {timeout:?}")]
    Timeout { op: &'static str, timeout: Duration },
    #[error("broker refused the message ({0})")]
    Refused(String),
    #[error("invalid queue configuration: {0}")]
    Config(String),
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("http listener on {addr}: {source}")]
    Http {
        addr: String,
        source: std::io::Error,
    },
}

impl QueueError {
    /// Whether trying again later may succeed (the broker may come back; a bad file will not).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            QueueError::Connect { .. } | QueueError::Broker { .. } | QueueError::Timeout { .. }
        )
    }
}

/// Longest wait for one broker round trip (declare, publish confirm, ack) before giving up on it.
pub(crate) const BROKER_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs one broker operation under [`BROKER_TIMEOUT`].
pub(crate) async fn broker_op<T>(
    op: &'static str,
    fut: impl std::future::Future<Output = Result<T, lapin::Error>>,
) -> Result<T, QueueError> {
    match tokio::time::timeout(BROKER_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(QueueError::Broker { op, source }),
        Err(_) => Err(QueueError::Timeout {
            op,
            timeout: BROKER_TIMEOUT,
        }),
    }
}

/// Opens a connection (bounded in time) with a name visible in the broker's connection list.
pub async fn connect(url: &str, name: &str) -> Result<lapin::Connection, QueueError> {
    let props = lapin::ConnectionProperties::default().with_connection_name(name.into());
    match tokio::time::timeout(BROKER_TIMEOUT, lapin::Connection::connect(url, props)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(source)) => Err(QueueError::Connect {
            url: redact(url),
            source,
        }),
        Err(_) => Err(QueueError::Timeout {
            op: "connect",
            timeout: BROKER_TIMEOUT,
        }),
    }
}

/// `regard queue setup`: declares the whole topology once, then closes.
pub async fn setup(url: &str, topology: &Topology) -> Result<(), QueueError> {
    topology.validate().map_err(QueueError::Config)?;
    let conn = connect(url, "regard queue setup").await?;
    let channel = broker_op("channel.open", conn.create_channel()).await?;
    broker_op("declare topology", topology.declare(&channel))
        .await
        .map_err(|e| explain_declare(e, topology))?;
    broker_op("connection.close", conn.close(200, "setup done".into())).await?;
    Ok(())
}

/// A queue declared before with other arguments (a changed `--delivery-limit` or retry
/// delays) cannot be redeclared: the broker keeps the first declaration and answers
/// PRECONDITION_FAILED. Say so, and what to do.
pub fn explain_declare(e: QueueError, topology: &Topology) -> QueueError {
    match &e {
        QueueError::Broker { source, .. } if source.to_string().contains("PRECONDITION_FAILED") => {
            QueueError::Config(format!(
                "the broker already has the queues of prefix {:?} with other arguments ({source}). \
                 RabbitMQ keeps a queue's first declaration: either keep the old values \
                 (--delivery-limit, --retry-delays), or let the queue drain, delete it \
                 (`rabbitmqctl delete_queue NAME`; dead letters: `regard queue dead-letters \
                 requeue` first) and run `regard queue setup` again, or move to a new \
                 --queue-prefix",
                topology.prefix
            ))
        }
        _ => e,
    }
}

/// The URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            super::redact("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(super::redact("amqp://127.0.0.1"), "amqp://127.0.0.1");
    }
}
