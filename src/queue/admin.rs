//! Operator tools over AMQP (the broker here has no management UI): queue depths and
//! consumers, and the dead letters listed or sent back to the jobs queue.
//!
//! Dead letters are read with `basic.get` and settled the way the worker settles everything:
//! a copy is published (with confirms) to where it belongs — back to the dead letters when it is
//! only looked at, to the jobs exchange when it is requeued — and only then is the original
//! acked. Nothing is ever nacked, so looking never spends a delivery attempt, and a crash in
//! between duplicates a dead letter rather than losing it.

use super::topology::{
    HEADER_ATTEMPT, HEADER_DELIVERY_COUNT, HEADER_ERROR, HEADER_ERROR_CODE,
    HEADER_FAILURE_RECORDED, HEADER_INTERRUPTED, JOB_ROUTING_KEY, Topology, header_str, header_u32,
};
use super::{BROKER_TIMEOUT, QueueError, broker_op, connect};
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use serde::Serialize;

/// One queue as the broker reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    pub queue: String,
    /// What the queue is for: jobs, retry, dead.
    pub role: &'static str,
    /// `None` when the queue does not exist (the topology was not declared).
    pub messages: Option<u32>,
    pub consumers: Option<u32>,
}

/// What a dead letter says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub job_id: Option<String>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    /// Processing attempts the worker counted (`x-regard-attempt`).
    pub attempts: Option<u32>,
    /// When the message was first published (seconds since the epoch), if the publisher said.
    pub published_at: Option<u64>,
    pub bytes: usize,
}

/// What `dead-letters requeue` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RequeueSummary {
    /// Sent back to the jobs queue, with their failure headers removed.
    pub requeued: Vec<DeadLetter>,
    /// Looked at and left in the dead letters (another code, or past the limit).
    pub kept: usize,
}

/// Every queue of the topology: jobs, each retry delay, dead letters.
fn queues(topology: &Topology) -> Vec<(String, &'static str)> {
    let mut delays = topology.retry_delays.clone();
    delays.sort();
    delays.dedup();
    let mut out = vec![(topology.jobs_queue(), "jobs")];
    out.extend(
        delays
            .into_iter()
            .map(|d| (topology.retry_queue(d), "retry")),
    );
    out.push((topology.dead_queue(), "dead"));
    out
}

async fn open(url: &str, name: &str) -> Result<(Connection, Channel), QueueError> {
    let conn = connect(url, name).await?;
    let channel = broker_op("channel.open", conn.create_channel()).await?;
    Ok((conn, channel))
}

/// Depth and consumers of each queue, by passive declares (a missing queue closes the channel,
/// so each missing one gets a fresh channel).
pub async fn status(url: &str, topology: &Topology) -> Result<Vec<QueueDepth>, QueueError> {
    let (conn, mut channel) = open(url, "regard queue status").await?;
    let mut out = Vec::new();
    for (queue, role) in queues(topology) {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let declared = tokio::time::timeout(
            BROKER_TIMEOUT,
            channel.queue_declare(queue.as_str().into(), passive, FieldTable::default()),
        )
        .await
        .map_err(|_| QueueError::Timeout {
            op: "queue.declare (passive)",
            timeout: BROKER_TIMEOUT,
        })?;
        match declared {
            Ok(q) => out.push(QueueDepth {
                queue,
                role,
                messages: Some(q.message_count()),
                consumers: Some(q.consumer_count()),
            }),
            Err(_) => {
                out.push(QueueDepth {
                    queue,
                    role,
                    messages: None,
                    consumers: None,
                });
                channel = broker_op("channel.open", conn.create_channel()).await?;
            }
        }
    }
    close(conn).await;
    Ok(out)
}

async fn close(conn: Connection) {
    if let Err(e) = conn.close(200, "done".into()).await {
        tracing::debug!(error = %e, "closing the broker connection failed");
    }
}

fn describe(message: &lapin::message::BasicGetMessage) -> DeadLetter {
    let props = &message.delivery.properties;
    let headers = props.headers().as_ref();
    DeadLetter {
        job_id: props
            .message_id()
            .as_ref()
            .map(|s| s.to_string())
            .or_else(|| {
                serde_json::from_slice::<serde_json::Value>(&message.delivery.data)
                    .ok()
                    .and_then(|v| v.get("job_id")?.as_str().map(str::to_string))
            }),
        error_code: header_str(headers, HEADER_ERROR_CODE),
        error: header_str(headers, HEADER_ERROR),
        attempts: header_u32(headers, HEADER_ATTEMPT),
        published_at: *props.timestamp(),
        bytes: message.delivery.data.len(),
    }
}

/// Publish `body` with `props` and wait for the broker's confirm.
async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    key: &str,
    body: &[u8],
    props: BasicProperties,
) -> Result<(), QueueError> {
    let confirm = broker_op(
        "basic.publish",
        channel.basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            body,
            props,
        ),
    )
    .await?;
    let confirmation = broker_op("publisher confirm", confirm).await?;
    if confirmation.is_ack() {
        Ok(())
    } else {
        Err(QueueError::Refused("copy nacked by the broker".into()))
    }
}

/// The dead letters' properties with the worker's failure bookkeeping removed: a requeued job
/// starts again from its first attempt.
fn fresh_properties(props: &BasicProperties) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(old) = props.headers() {
        for (k, v) in old.inner() {
            let name = k.as_str();
            let bookkeeping = [
                HEADER_ATTEMPT,
                HEADER_ERROR,
                HEADER_ERROR_CODE,
                HEADER_FAILURE_RECORDED,
                HEADER_INTERRUPTED,
                HEADER_DELIVERY_COUNT,
            ]
            .contains(&name)
                || name.starts_with("x-death")
                || name.starts_with("x-first-death")
                || name.starts_with("x-last-death");
            if !bookkeeping {
                headers.insert(k.clone(), v.clone());
            }
        }
    }
    props.clone().with_headers(headers)
}

/// Walks the dead letters once (at most as many as the queue held at the start): `decide`
/// says for each whether it goes back to the jobs queue.
async fn walk(
    url: &str,
    topology: &Topology,
    name: &str,
    mut decide: impl FnMut(&DeadLetter) -> bool,
) -> Result<(Vec<DeadLetter>, Vec<DeadLetter>), QueueError> {
    let (conn, channel) = open(url, name).await?;
    broker_op(
        "confirm.select",
        channel.confirm_select(ConfirmSelectOptions::default()),
    )
    .await?;
    let dead_queue = topology.dead_queue();
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let depth = broker_op(
        "queue.declare (passive)",
        channel.queue_declare(dead_queue.as_str().into(), passive, FieldTable::default()),
    )
    .await
    .map_err(|e| QueueError::Config(format!("{dead_queue}: {e}; run `regard queue setup`")))?
    .message_count();
    let (mut moved, mut kept) = (Vec::new(), Vec::new());
    for _ in 0..depth {
        let got = broker_op(
            "basic.get",
            channel.basic_get(
                dead_queue.as_str().into(),
                BasicGetOptions { no_ack: false },
            ),
        )
        .await?;
        let Some(message) = got else { break };
        let letter = describe(&message);
        let props = &message.delivery.properties;
        if decide(&letter) {
            publish_confirmed(
                &channel,
                &topology.jobs_exchange(),
                JOB_ROUTING_KEY,
                &message.delivery.data,
                fresh_properties(props),
            )
            .await?;
            moved.push(letter);
        } else {
            publish_confirmed(
                &channel,
                &topology.dead_exchange(),
                "",
                &message.delivery.data,
                props.clone(),
            )
            .await?;
            kept.push(letter);
        }
        broker_op(
            "basic.ack",
            message.delivery.acker.ack(BasicAckOptions::default()),
        )
        .await?;
    }
    close(conn).await;
    Ok((moved, kept))
}

/// The dead letters (optionally of one error code), at most `limit`, left where they are.
pub async fn dead_letters(
    url: &str,
    topology: &Topology,
    code: Option<&str>,
    limit: usize,
) -> Result<Vec<DeadLetter>, QueueError> {
    let (_, kept) = walk(url, topology, "regard queue dead-letters list", |_| false).await?;
    Ok(kept
        .into_iter()
        .filter(|d| code.is_none_or(|c| d.error_code.as_deref() == Some(c)))
        .take(limit)
        .collect())
}

/// Send dead letters (optionally only those of one error code, at most `limit`) back to the
/// jobs queue, as new first attempts.
pub async fn requeue(
    url: &str,
    topology: &Topology,
    code: Option<&str>,
    limit: usize,
) -> Result<RequeueSummary, QueueError> {
    let mut taken = 0usize;
    let (moved, kept) = walk(url, topology, "regard queue dead-letters requeue", |d| {
        let wanted = code.is_none_or(|c| d.error_code.as_deref() == Some(c)) && taken < limit;
        taken += usize::from(wanted);
        wanted
    })
    .await?;
    Ok(RequeueSummary {
        requeued: moved,
        kept: kept.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::AMQPValue;

    #[test]
    fn a_requeued_job_loses_its_failure_bookkeeping_and_keeps_the_rest() {
        let mut h = FieldTable::default();
        h.insert(HEADER_ATTEMPT.into(), AMQPValue::LongUInt(5));
        h.insert(HEADER_ERROR_CODE.into(), AMQPValue::LongString("x".into()));
        h.insert("x-death".into(), AMQPValue::LongUInt(1));
        h.insert("x-scraper".into(), AMQPValue::LongString("kept".into()));
        let props = BasicProperties::default()
            .with_headers(h)
            .with_message_id("job-1".into());
        let fresh = fresh_properties(&props);
        let keys: Vec<String> = fresh
            .headers()
            .as_ref()
            .unwrap()
            .inner()
            .keys()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(keys, ["x-scraper"]);
        assert_eq!(fresh.message_id().as_ref().unwrap().as_str(), "job-1");
    }

    #[test]
    fn status_lists_every_queue_once() {
        let t = Topology::with_prefix("p");
        let names: Vec<String> = queues(&t).into_iter().map(|(q, _)| q).collect();
        assert_eq!(names.first().unwrap(), &t.jobs_queue());
        assert_eq!(names.last().unwrap(), &t.dead_queue());
        let mut dedup = names.clone();
        dedup.dedup();
        assert_eq!(dedup, names);
    }
}
