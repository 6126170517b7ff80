//! The queue machinery against a real RabbitMQ (REGARD_TEST_AMQP_URL, default the local broker).
//! Each test uses its own name prefix and deletes its queues and exchanges at the end; a broker
//! that is down fails the tests loudly. The broker-restart test runs a private RabbitMQ node.

mod common;
mod world;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use regard::queue::topology::{
    HEADER_ATTEMPT, HEADER_DELIVERY_COUNT, HEADER_ERROR, HEADER_ERROR_CODE, HEADER_INTERRUPTED,
    JOB_ROUTING_KEY, header_str, header_u32,
};
use regard::queue::{
    Job, JobContext, JobDone, JobError, JobOutcome, Processor, Publisher, Topology, Worker,
    WorkerConfig, shutdown_channel,
};
use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use world::PrivateRabbit;

fn amqp_url() -> String {
    std::env::var("REGARD_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn unique(name: &str) -> String {
    format!(
        "regard-test-{name}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

// ---------------------------------------------------------------- test processor

/// One call of `process`, as the processor saw it.
#[derive(Debug, Clone)]
struct Call {
    job_id: String,
    attempt: u32,
    delivery_count: u32,
    redelivered: bool,
    interrupted: u32,
    at: Instant,
}

/// Behaves according to the job id's prefix: `ok-`, `perm-` (corrupt media), `flaky-` (fails
/// twice, then succeeds), `down-` (database always down), `panic-`, `slow-` (0.5 s), `stuck-`
/// (30 s unless `stuck_is_fast`).
#[derive(Default)]
struct TestProcessor {
    calls: Mutex<Vec<Call>>,
    completed: Mutex<Vec<String>>,
    failures: Mutex<Vec<(String, String, u32)>>,
    not_ready: AtomicBool,
    handed_back: Mutex<Vec<String>>,
    stuck_is_fast: bool,
    slow: Option<Duration>,
}

impl TestProcessor {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
    fn calls_for(&self, id: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.job_id == id)
            .collect()
    }
    fn completed(&self) -> Vec<String> {
        self.completed.lock().unwrap().clone()
    }
}

impl Processor for TestProcessor {
    async fn handed_back(&self, job_id: &str) {
        self.handed_back.lock().unwrap().push(job_id.to_string());
    }

    async fn process(&self, job: &Job, ctx: &JobContext) -> Result<JobDone, JobError> {
        let id = job.id.as_str().to_string();
        self.calls.lock().unwrap().push(Call {
            job_id: id.clone(),
            attempt: ctx.attempt,
            delivery_count: ctx.delivery_count,
            redelivered: ctx.redelivered,
            interrupted: ctx.interrupted,
            at: Instant::now(),
        });
        ctx.metrics.faces_found(2);
        let (kind, _) = id.split_once('-').unwrap_or((&id, ""));
        match kind {
            "ok" => {}
            "perm" => return Err(JobError::permanent("media_corrupt", "truncated JPEG")),
            "flaky" if ctx.attempt < 3 => {
                return Err(JobError::transient(
                    "database_unavailable",
                    "connection refused",
                ));
            }
            "flaky" => {}
            "down" => {
                return Err(JobError::transient(
                    "database_unavailable",
                    "connection refused",
                ));
            }
            "panic" => panic!("decoder invariant broken for {id}"),
            "slow" => tokio::time::sleep(self.slow.unwrap_or(Duration::from_millis(500))).await,
            "stuck" if !self.stuck_is_fast => tokio::time::sleep(Duration::from_secs(30)).await,
            "stuck" => {}
            // Counted blocking work through the slots.
            "cpu" => {
                let n = ctx.cpu.run(|| (0..1000u64).sum::<u64>()).await?;
                assert_eq!(n, 499_500);
            }
            other => return Err(JobError::permanent("unknown_test_kind", other)),
        }
        self.completed.lock().unwrap().push(id.clone());
        Ok(JobDone {
            summary: serde_json::json!({ "faces": 2, "job": id }),
        })
    }

    async fn record_failure(
        &self,
        job: &Job,
        error: &JobError,
        attempts: u32,
    ) -> Result<(), JobError> {
        self.failures.lock().unwrap().push((
            job.id.to_string(),
            error.code().to_string(),
            attempts,
        ));
        Ok(())
    }

    async fn ready(&self) -> Result<(), String> {
        if self.not_ready.load(Ordering::Relaxed) {
            Err("database unreachable".into())
        } else {
            Ok(())
        }
    }
}

// ---------------------------------------------------------------- fixture

struct Fixture {
    url: String,
    topology: Topology,
    conn: Connection,
    channel: Channel,
}

impl Fixture {
    async fn new(name: &str) -> Fixture {
        Self::at(amqp_url(), name).await
    }

    async fn at(url: String, name: &str) -> Fixture {
        let topology = Topology {
            prefix: unique(name),
            delivery_limit: 5,
            retry_delays: vec![Duration::from_millis(300), Duration::from_millis(600)],
            max_attempts: 3,
            ..Topology::default()
        };
        let conn = regard::queue::connect(&url, "regard tests")
            .await
            .unwrap_or_else(|e| panic!("RabbitMQ must be running for these tests: {e}"));
        let channel = conn.create_channel().await.unwrap();
        regard::queue::setup(&url, &topology).await.unwrap();
        Fixture {
            url,
            topology,
            conn,
            channel,
        }
    }

    fn config(&self, slots: u16) -> WorkerConfig {
        let mut c = WorkerConfig::new(self.url.clone(), self.topology.clone());
        c.job_slots = slots;
        c.shutdown_deadline = Duration::from_secs(5);
        c.reconnect_min = Duration::from_millis(100);
        c.reconnect_max = Duration::from_secs(1);
        c
    }

    /// A private queue bound to every result event.
    async fn results(&self) -> lapin::Consumer {
        let q = self
            .channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        self.channel
            .queue_bind(
                q.name().clone(),
                self.topology.results_exchange().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        self.channel
            .basic_consume(
                q.name().clone(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
    }

    async fn publish_raw(&self, body: &[u8], headers: FieldTable) {
        self.channel
            .basic_publish(
                self.topology.jobs_exchange().into(),
                JOB_ROUTING_KEY.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_headers(headers),
            )
            .await
            .unwrap();
    }

    /// Every message now in a queue (acked), oldest first.
    async fn drain(&self, queue: &str) -> Vec<lapin::message::BasicGetMessage> {
        let mut out = Vec::new();
        while let Some(m) = self
            .channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .unwrap()
        {
            m.delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .unwrap();
            out.push(m);
        }
        out
    }

    async fn message_count(&self, queue: &str) -> u32 {
        let q = self
            .channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        q.message_count()
    }

    /// The same fixture on a new connection (after a broker restart).
    async fn reconnect(self) -> Fixture {
        let conn = regard::queue::connect(&self.url, "regard tests")
            .await
            .unwrap();
        let channel = conn.create_channel().await.unwrap();
        Fixture {
            conn,
            channel,
            ..self
        }
    }

    async fn cleanup(self) {
        self.topology.delete(&self.channel).await.unwrap();
        self.conn.close(200, "test done".into()).await.unwrap();
    }
}

fn job(id: &str) -> Job {
    Job::parse(
        serde_json::json!({
            "version": 1, "job_id": id, "kind": "poster",
            "source": format!("/srv/media/{id}.jpg"), "film": {"title": format!("Film {id}")}
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

struct Running {
    trigger: regard::queue::ShutdownTrigger,
    task: tokio::task::JoinHandle<
        Result<regard::queue::worker::RunReport, regard::queue::QueueError>,
    >,
    metrics: Arc<regard::queue::Metrics>,
}

fn start(worker: Worker<TestProcessor>) -> Running {
    let (trigger, shutdown) = shutdown_channel();
    let metrics = worker.metrics();
    let task = tokio::spawn(worker.run(shutdown));
    Running {
        trigger,
        task,
        metrics,
    }
}

impl Running {
    async fn stop(self) -> regard::queue::worker::RunReport {
        self.trigger.trigger();
        timeout(Duration::from_secs(20), self.task)
            .await
            .expect("worker stops in time")
            .unwrap()
            .unwrap()
    }
}

async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn next_event(results: &mut lapin::Consumer) -> (String, serde_json::Value) {
    let d = timeout(Duration::from_secs(10), results.next())
        .await
        .expect("a result event")
        .unwrap()
        .unwrap();
    (
        d.routing_key.to_string(),
        serde_json::from_slice(&d.data).unwrap(),
    )
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn enqueued_jobs_are_processed_and_announced() {
    let fx = Fixture::new("process").await;
    let mut results = fx.results().await;
    let processor = Arc::new(TestProcessor::default());
    let running = start(Worker::new(fx.config(2), processor.clone()).unwrap());

    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("jobs.jsonl");
    let lines = [
        String::from_utf8(job("ok-a").to_json()).unwrap(),
        "{\"version\": 1, \"job_id\": \"bad\"}".to_string(),
        String::from_utf8(job("cpu-b").to_json()).unwrap(),
    ];
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    let csv = dir.path().join("jobs.csv");
    std::fs::write(
        &csv,
        "kind,source,title,job_id\nposter,/srv/m/c.jpg,C,ok-c\ntrailer,not/absolute.mp4,D,ok-d\n",
    )
    .unwrap();

    let publisher = Publisher::connect(&fx.url, &fx.topology).await.unwrap();
    let s1 = publisher.enqueue_file(&jsonl).await.unwrap();
    assert_eq!(s1.accepted, 2);
    assert_eq!(s1.refused.len(), 1);
    assert_eq!(s1.refused[0].line, 2);
    assert!(
        s1.refused[0].reason.contains("job_id") || s1.refused[0].reason.contains("missing"),
        "{:?}",
        s1.refused
    );
    let s2 = publisher.enqueue_file(&csv).await.unwrap();
    assert_eq!(
        (s2.accepted, s2.refused.len(), s2.refused[0].line),
        (1, 1, 3)
    );
    publisher.publish(&job("ok-e")).await.unwrap();
    publisher.close().await.unwrap();

    let mut seen = HashSet::new();
    for _ in 0..4 {
        let (key, event) = next_event(&mut results).await;
        assert_eq!(key, "analysis.poster.completed");
        assert_eq!(event["outcome"], "completed");
        assert_eq!(event["summary"]["faces"], 2);
        seen.insert(event["job_id"].as_str().unwrap().to_string());
    }
    assert_eq!(
        seen,
        HashSet::from(["ok-a", "cpu-b", "ok-c", "ok-e"].map(String::from))
    );
    let mut done = processor.completed();
    done.sort();
    assert_eq!(done, ["cpu-b", "ok-a", "ok-c", "ok-e"]);

    let report = running.stop().await;
    assert_eq!(report.handed_back, 0);
    assert_eq!(processor.calls().len(), 4);
    assert_eq!(fx.message_count(&fx.topology.jobs_queue()).await, 0);
    fx.cleanup().await;
}

#[tokio::test]
async fn malformed_and_permanently_failing_jobs_are_dead_lettered_with_reasons() {
    let fx = Fixture::new("dead").await;
    let mut results = fx.results().await;
    let processor = Arc::new(TestProcessor::default());
    let running = start(Worker::new(fx.config(1), processor.clone()).unwrap());

    fx.publish_raw(b"this is not json", FieldTable::default())
        .await;
    fx.publish_raw(&job("perm-1").to_json(), FieldTable::default())
        .await;
    fx.publish_raw(&job("ok-after").to_json(), FieldTable::default())
        .await;

    wait_until("ok-after processed", Duration::from_secs(10), || {
        processor.completed().contains(&"ok-after".to_string())
    })
    .await;
    // The malformed message has its event too, under an id derived from its bytes.
    let (key, event) = next_event(&mut results).await;
    assert_eq!(key, "analysis.unknown.malformed");
    assert_eq!(
        (
            event["error_code"].as_str(),
            event["dead_lettered"].as_bool()
        ),
        (Some("job_not_json"), Some(true))
    );
    assert!(
        event["job_id"].as_str().unwrap().starts_with("malformed-"),
        "{event}"
    );
    let (key, event) = next_event(&mut results).await;
    assert_eq!(key, "analysis.poster.failed");
    assert_eq!(
        (event["job_id"].as_str(), event["error_code"].as_str()),
        (Some("perm-1"), Some("media_corrupt"))
    );
    assert_eq!(event["dead_lettered"], true);
    assert_eq!(
        next_event(&mut results).await.0,
        "analysis.poster.completed"
    );

    wait_until("two dead letters", Duration::from_secs(10), || {
        running.metrics.dead_letters() == 2
    })
    .await;
    let dead = fx.drain(&fx.topology.dead_queue()).await;
    assert_eq!(dead.len(), 2);
    let h0 = dead[0].delivery.properties.headers().clone();
    assert_eq!(
        header_str(h0.as_ref(), HEADER_ERROR_CODE).as_deref(),
        Some("job_not_json")
    );
    assert!(
        header_str(h0.as_ref(), HEADER_ERROR)
            .unwrap()
            .contains("not valid JSON")
    );
    assert_eq!(dead[0].delivery.data, b"this is not json");
    let h1 = dead[1].delivery.properties.headers().clone();
    assert_eq!(
        header_str(h1.as_ref(), HEADER_ERROR_CODE).as_deref(),
        Some("media_corrupt")
    );
    assert_eq!(
        header_str(h1.as_ref(), HEADER_ERROR).as_deref(),
        Some("truncated JPEG")
    );
    assert_eq!(
        Job::parse(&dead[1].delivery.data).unwrap().id.as_str(),
        "perm-1"
    );
    assert_eq!(
        *processor.failures.lock().unwrap(),
        [("perm-1".to_string(), "media_corrupt".to_string(), 1)]
    );
    assert_eq!(running.metrics.jobs(JobOutcome::Malformed), 1);
    assert_eq!(running.metrics.jobs(JobOutcome::Failed), 1);
    running.stop().await;
    fx.cleanup().await;
}

#[tokio::test]
async fn transient_failures_are_retried_after_a_delay_then_succeed_or_are_dead_lettered() {
    let fx = Fixture::new("retry").await;
    let processor = Arc::new(TestProcessor::default());
    let running = start(Worker::new(fx.config(2), processor.clone()).unwrap());
    let publisher = Publisher::connect(&fx.url, &fx.topology).await.unwrap();
    publisher.publish(&job("flaky-1")).await.unwrap();
    publisher.publish(&job("down-1")).await.unwrap();

    wait_until("flaky-1 completed", Duration::from_secs(15), || {
        processor.completed().contains(&"flaky-1".to_string())
    })
    .await;
    let calls = processor.calls_for("flaky-1");
    assert_eq!(
        calls.iter().map(|c| c.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // Retries wait in the retry queues: 300 ms, then 600 ms.
    let gap1 = calls[1].at - calls[0].at;
    let gap2 = calls[2].at - calls[1].at;
    assert!(gap1 >= Duration::from_millis(300), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(600), "{gap2:?}");
    // Copies, so the broker's delivery count never moved.
    assert!(
        calls
            .iter()
            .all(|c| c.delivery_count == 0 && !c.redelivered),
        "{calls:?}"
    );

    wait_until("down-1 dead-lettered", Duration::from_secs(15), || {
        running.metrics.jobs(JobOutcome::RetriesExhausted) == 1
    })
    .await;
    assert_eq!(processor.calls_for("down-1").len(), 3);
    let dead = fx.drain(&fx.topology.dead_queue()).await;
    assert_eq!(dead.len(), 1);
    let h = dead[0].delivery.properties.headers().clone();
    assert_eq!(header_u32(h.as_ref(), HEADER_ATTEMPT), Some(3));
    assert_eq!(
        header_str(h.as_ref(), HEADER_ERROR_CODE).as_deref(),
        Some("database_unavailable")
    );
    assert!(
        header_str(h.as_ref(), HEADER_ERROR)
            .unwrap()
            .starts_with("gave up after 3 attempts")
    );
    assert_eq!(
        *processor.failures.lock().unwrap(),
        [("down-1".to_string(), "database_unavailable".to_string(), 3)]
    );
    assert_eq!(running.metrics.jobs(JobOutcome::Retried), 4);
    assert!(
        running
            .metrics
            .render()
            .contains("regard_job_retries_total 4\n")
    );
    publisher.close().await.unwrap();
    running.stop().await;
    fx.cleanup().await;
}

#[tokio::test]
async fn a_panicking_processor_fails_that_job_only() {
    let fx = Fixture::new("panic").await;
    let processor = Arc::new(TestProcessor::default());
    let running = start(Worker::new(fx.config(1), processor.clone()).unwrap());
    let publisher = Publisher::connect(&fx.url, &fx.topology).await.unwrap();
    for id in ["ok-before", "panic-1", "ok-after"] {
        publisher.publish(&job(id)).await.unwrap();
    }
    wait_until("both ok jobs", Duration::from_secs(10), || {
        processor.completed().len() == 2
    })
    .await;
    wait_until("the panic dead-lettered", Duration::from_secs(10), || {
        running.metrics.dead_letters() == 1
    })
    .await;
    let dead = fx.drain(&fx.topology.dead_queue()).await;
    let h = dead[0].delivery.properties.headers().clone();
    assert_eq!(
        header_str(h.as_ref(), HEADER_ERROR_CODE).as_deref(),
        Some("panic")
    );
    assert!(
        header_str(h.as_ref(), HEADER_ERROR)
            .unwrap()
            .contains("decoder invariant broken for panic-1")
    );
    assert_eq!(
        processor.calls_for("panic-1").len(),
        1,
        "a panic is not retried"
    );
    publisher.publish(&job("ok-later")).await.unwrap();
    wait_until("the worker carries on", Duration::from_secs(10), || {
        processor.completed().len() == 3
    })
    .await;
    publisher.close().await.unwrap();
    running.stop().await;
    fx.cleanup().await;
}

#[tokio::test]
async fn the_same_job_delivered_twice_is_processed_twice_without_ack_errors() {
    let fx = Fixture::new("twice").await;
    let processor = Arc::new(TestProcessor::default());
    let running = start(Worker::new(fx.config(2), processor.clone()).unwrap());
    let publisher = Publisher::connect(&fx.url, &fx.topology).await.unwrap();
    publisher.publish(&job("ok-dup")).await.unwrap();
    publisher.publish(&job("ok-dup")).await.unwrap();
    wait_until("two completions", Duration::from_secs(10), || {
        running.metrics.jobs(JobOutcome::Completed) == 2
    })
    .await;
    assert_eq!(processor.calls_for("ok-dup").len(), 2);
    assert_eq!(running.metrics.ack_failures(), 0);
    assert_eq!(running.metrics.jobs(JobOutcome::Unsettled), 0);
    publisher.close().await.unwrap();
    running.stop().await;
    assert_eq!(
        fx.message_count(&fx.topology.jobs_queue()).await,
        0,
        "both deliveries acked"
    );
    fx.cleanup().await;
}

#[tokio::test]
async fn shutdown_finishes_short_jobs_and_hands_back_long_ones_without_spending_an_attempt() {
    let fx = Fixture::new("shutdown").await;
    let mut results = fx.results().await;
    let processor = Arc::new(TestProcessor::default());
    let mut config = fx.config(2);
    config.shutdown_deadline = Duration::from_millis(1500);
    let running = start(Worker::new(config, processor.clone()).unwrap());
    let publisher = Publisher::connect(&fx.url, &fx.topology).await.unwrap();
    publisher.publish(&job("slow-1")).await.unwrap();
    publisher.publish(&job("stuck-1")).await.unwrap();
    wait_until("both jobs started", Duration::from_secs(10), || {
        processor.calls().len() == 2
    })
    .await;

    let asked = Instant::now();
    let report = running.stop().await;
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(4), "shutdown took {took:?}");
    assert!(
        took >= Duration::from_millis(1400),
        "shutdown waited for the deadline: {took:?}"
    );
    assert_eq!(report.handed_back, 1);
    assert_eq!(processor.completed(), ["slow-1"]);
    assert_eq!(
        *processor.handed_back.lock().unwrap(),
        ["stuck-1"],
        "the processor hears of the job handed back (its ledger row: queued)"
    );
    let (key, event) = next_event(&mut results).await;
    assert_eq!(
        (key.as_str(), event["job_id"].as_str()),
        ("analysis.poster.completed", Some("slow-1"))
    );

    // The handed-back job is in the queue again, as a fresh message.
    assert_eq!(fx.message_count(&fx.topology.jobs_queue()).await, 1);
    let second = Arc::new(TestProcessor {
        stuck_is_fast: true,
        ..Default::default()
    });
    let running = start(Worker::new(fx.config(1), second.clone()).unwrap());
    wait_until("stuck-1 consumed again", Duration::from_secs(10), || {
        second.completed() == ["stuck-1"]
    })
    .await;
    let again = &second.calls_for("stuck-1")[0];
    assert_eq!(again.attempt, 1, "a shutdown is not a failed attempt");
    assert_eq!(
        again.delivery_count, 0,
        "the broker's x-delivery-count was not spent"
    );
    assert!(!again.redelivered);
    assert_eq!(again.interrupted, 1);
    running.stop().await;
    assert_eq!(fx.message_count(&fx.topology.dead_queue()).await, 0);
    publisher.close().await.unwrap();
    fx.cleanup().await;
}

/// Why the worker hands jobs back as copies instead of nack/requeue or closing its channel:
/// this measures what the broker does to `x-delivery-count` in each case.
#[tokio::test]
async fn broker_counts_returned_deliveries_but_not_republished_copies() {
    let fx = Fixture::new("facts").await;
    let queue = fx.topology.jobs_queue();
    fx.publish_raw(b"probe", FieldTable::default()).await;
    let count = |m: &lapin::message::BasicGetMessage| {
        header_u32(
            m.delivery.properties.headers().as_ref(),
            HEADER_DELIVERY_COUNT,
        )
        .unwrap_or(0)
    };

    // Returned by closing the channel that held it unacked.
    let other = fx.conn.create_channel().await.unwrap();
    let m = get_one(&other, &queue).await;
    assert_eq!(count(&m), 0);
    other.close(200, "drop it".into()).await.unwrap();
    let m = get_one(&fx.channel, &queue).await;
    let after_close = count(&m);
    assert_eq!(
        after_close, 1,
        "closing the channel spends a delivery attempt"
    );

    // Returned with nack + requeue.
    m.delivery
        .acker
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let m = get_one(&fx.channel, &queue).await;
    let after_nack = count(&m);
    eprintln!(
        "x-delivery-count after channel close: {after_close}, after a further nack+requeue: {after_nack}"
    );

    // A copy published before acking starts afresh.
    let mut headers = FieldTable::default();
    headers.insert(HEADER_INTERRUPTED.into(), AMQPValue::LongUInt(1));
    fx.publish_raw(&m.delivery.data, headers).await;
    m.delivery
        .acker
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    let copy = get_one(&fx.channel, &queue).await;
    assert_eq!(count(&copy), 0);
    assert!(!copy.delivery.redelivered);
    copy.delivery
        .acker
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    fx.cleanup().await;
}

/// The next message of a queue, waiting for it to arrive.
async fn get_one(channel: &Channel, queue: &str) -> lapin::message::BasicGetMessage {
    timeout(Duration::from_secs(5), async {
        loop {
            if let Some(m) = channel
                .basic_get(queue.into(), BasicGetOptions::default())
                .await
                .unwrap()
            {
                break m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a message in time")
}

#[tokio::test]
async fn health_readiness_and_metrics_answer_over_http() {
    let fx = Fixture::new("http").await;
    let processor = Arc::new(TestProcessor::default());
    let mut worker = Worker::new(fx.config(1), processor.clone()).unwrap();
    let addr = worker
        .serve_http("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();

    assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
    let not_yet = get(addr, "/readyz").await;
    assert!(
        not_yet.starts_with("HTTP/1.1 503") && not_yet.contains("broker not connected"),
        "{not_yet}"
    );

    let running = start(worker);
    let mut ready = String::new();
    for _ in 0..100 {
        ready = get(addr, "/readyz").await;
        if ready.starts_with("HTTP/1.1 200") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        ready.starts_with("HTTP/1.1 200") && ready.ends_with("ready\n"),
        "{ready}"
    );
    processor.not_ready.store(true, Ordering::Relaxed);
    let db_down = get(addr, "/readyz").await;
    assert!(
        db_down.starts_with("HTTP/1.1 503") && db_down.contains("database unreachable"),
        "{db_down}"
    );

    let publisher = Publisher::connect(&fx.url, &fx.topology).await.unwrap();
    publisher.publish(&job("ok-m")).await.unwrap();
    wait_until("ok-m settled", Duration::from_secs(10), || {
        running.metrics.jobs(JobOutcome::Completed) == 1
    })
    .await;
    let metrics = get(addr, "/metrics").await;
    assert!(
        metrics.contains("Content-Type: text/plain; version=0.0.4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("regard_jobs_total{outcome=\"completed\",kind=\"poster\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("regard_job_duration_seconds_count{kind=\"poster\"} 1\n"));
    assert!(metrics.contains("regard_faces_found_total 2\n"));
    assert!(metrics.contains("regard_broker_connected 1\n"));
    assert!(get(addr, "/nothing").await.starts_with("HTTP/1.1 404"));
    publisher.close().await.unwrap();
    running.stop().await;
    fx.cleanup().await;
}

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    timeout(Duration::from_secs(10), async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    })
    .await
    .expect("http answer in time")
}

// ---------------------------------------------------------------- broker restart

#[tokio::test]
async fn the_worker_reconnects_after_a_broker_restart_and_finishes_every_job() {
    let node = PrivateRabbit::start_new().await;
    let fx = Fixture::at(node.url(), "restart").await;
    let processor = Arc::new(TestProcessor {
        slow: Some(Duration::from_millis(300)),
        ..Default::default()
    });
    let running = start(Worker::new(fx.config(1), processor.clone()).unwrap());
    let publisher = Publisher::connect(&fx.url, &fx.topology).await.unwrap();
    let ids: Vec<String> = (0..6).map(|i| format!("slow-{i}")).collect();
    for id in &ids {
        publisher.publish(&job(id)).await.unwrap();
    }
    wait_until("a first job done", Duration::from_secs(10), || {
        !processor.completed().is_empty()
    })
    .await;
    drop(publisher);

    let stopped_at = Instant::now();
    node.stop();
    wait_until("the worker notices", Duration::from_secs(10), || {
        !running.metrics.connected()
    })
    .await;
    let done_before = processor.completed().len();
    node.start().await;

    wait_until("every job done", Duration::from_secs(120), || {
        let done: HashSet<String> = processor.completed().into_iter().collect();
        ids.iter().all(|id| done.contains(id))
    })
    .await;
    eprintln!(
        "restart: {done_before} of 6 done before the stop, all 6 done {:?} after it; reconnects {}",
        stopped_at.elapsed(),
        running.metrics.reconnects()
    );
    assert!(
        done_before < 6,
        "the broker stopped before the work was done"
    );
    assert!(running.metrics.reconnects() >= 1);
    assert!(running.metrics.connected());
    running.stop().await;
    let fx = fx.reconnect().await;
    assert_eq!(fx.message_count(&fx.topology.jobs_queue()).await, 0);
    assert_eq!(fx.message_count(&fx.topology.dead_queue()).await, 0);
    node.stop();
}

/// The published JSON Schema gives the same verdicts as `Job::parse` (checked in the unit tests)
/// on `schemas/examples/`: valid-* accepted, invalid-* refused. Python's `jsonschema` validates.
#[test]
fn the_json_schema_accepts_exactly_the_valid_examples() {
    let root = env!("CARGO_MANIFEST_DIR");
    let script = r#"
import glob, json, os, sys
import jsonschema
root = sys.argv[1]
schema = json.load(open(os.path.join(root, "schemas/job.v1.schema.json")))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema)
bad = []
files = sorted(glob.glob(os.path.join(root, "schemas/examples/*.json")))
for f in files:
    name = os.path.basename(f)
    if v.is_valid(json.load(open(f))) != name.startswith("valid-"):
        bad.append(name)
print(len(files), "examples;", "disagreeing:", bad)
sys.exit(1 if bad or len(files) < 20 else 0)
"#;
    let out = Command::new("python3")
        .args(["-c", script, root])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "schema check failed (needs python3 with jsonschema):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The result event schema on `schemas/examples/result-event/`: valid-* accepted, invalid-*
/// refused, by Python's `jsonschema` like the job schema. Events from a real worker are checked
/// against the same schema in `tests/results_contract.rs`.
#[test]
fn the_result_event_schema_accepts_exactly_the_valid_examples() {
    let root = env!("CARGO_MANIFEST_DIR");
    let script = r#"
import glob, json, os, sys
import jsonschema
root = sys.argv[1]
schema = json.load(open(os.path.join(root, "schemas/result-event.v1.schema.json")))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
bad = []
files = sorted(glob.glob(os.path.join(root, "schemas/examples/result-event/*.json")))
for f in files:
    name = os.path.basename(f)
    if v.is_valid(json.load(open(f))) != name.startswith("valid-"):
        bad.append(name)
valid = sum(os.path.basename(f).startswith("valid-") for f in files)
print(len(files), "examples;", "disagreeing:", bad)
sys.exit(1 if bad or valid < 5 or len(files) < 15 else 0)
"#;
    let out = Command::new("python3")
        .args(["-c", script, root])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "result event schema check failed (needs python3 with jsonschema):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
