//! The results contract against a real RabbitMQ: every event a worker publishes (completed,
//! retrying, failed and dead-lettered, malformed) waits in the durable results queue for a
//! scraper that connects afterwards, and validates against `schemas/result-event.v1.schema.json`.

use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions};
use lapin::types::FieldTable;
use regard::queue::topology::JOB_ROUTING_KEY;
use regard::queue::{
    Job, JobContext, JobDone, JobError, Processor, Publisher, QueueError, Topology, Worker,
    WorkerConfig, shutdown_channel,
};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// `ok-` succeeds, `perm-` fails for good, `flaky-` fails once transiently then succeeds.
#[derive(Default)]
struct ContractProcessor {
    settled: Mutex<Vec<String>>,
}

impl Processor for ContractProcessor {
    async fn process(&self, job: &Job, ctx: &JobContext) -> Result<JobDone, JobError> {
        let id = job.id.as_str();
        if id.starts_with("perm-") {
            self.settled.lock().unwrap().push(id.into());
            return Err(JobError::permanent("media_corrupt", "truncated JPEG"));
        }
        if id.starts_with("flaky-") && ctx.attempt < 2 {
            return Err(JobError::transient(
                "database_unavailable",
                "connection refused",
            ));
        }
        self.settled.lock().unwrap().push(id.into());
        // The shape `processor::summary` gives a poster.
        Ok(JobDone {
            summary: serde_json::json!({
                "analysis_id": 7, "new": true, "reused": false,
                "media_sha256": "ab".repeat(32), "inference_s": 0.25, "kind": "poster",
                "faces": 2, "faces_gender_unknown": 0, "women_share": 0.5,
                "women_share_interval": [0.09, 0.91],
            }),
        })
    }

    async fn record_failure(&self, _: &Job, _: &JobError, _: u32) -> Result<(), JobError> {
        Ok(())
    }

    async fn ready(&self) -> Result<(), String> {
        Ok(())
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

/// Validates each event with Python's `jsonschema` (as the job schema is); returns the verdicts.
fn schema_errors(events: &[serde_json::Value]) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let script = r#"
import json, os, sys
import jsonschema
schema = json.load(open(os.path.join(sys.argv[1], "schemas/result-event.v1.schema.json")))
v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
bad = []
for line in sys.stdin:
    event = json.loads(line)
    errors = [e.message for e in v.iter_errors(event)]
    if errors:
        bad.append((event.get("job_id"), event.get("outcome"), errors[:3]))
print(bad if bad else "")
sys.exit(1 if bad else 0)
"#;
    let mut child = Command::new("python3")
        .args(["-c", script, root])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut stdin = child.stdin.take().unwrap();
    for e in events {
        writeln!(stdin, "{e}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        String::new()
    } else {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

#[tokio::test]
async fn a_scraper_connecting_after_the_jobs_ran_receives_every_event_and_each_is_valid() {
    let url = amqp_url();
    let topology = Topology {
        prefix: unique("contract"),
        retry_delays: vec![Duration::from_millis(300)],
        max_attempts: 3,
        ..Topology::default()
    };
    let results_queue = topology.results_queue().expect("kept by default");
    assert_eq!(results_queue, format!("{}.results.events", topology.prefix));
    regard::queue::setup(&url, &topology).await.unwrap();
    // Declaring again (as every worker does) is harmless.
    regard::queue::setup(&url, &topology).await.unwrap();

    let processor = Arc::new(ContractProcessor::default());
    let mut config = WorkerConfig::new(url.clone(), topology.clone());
    config.shutdown_deadline = Duration::from_secs(5);
    let worker = Worker::new(config, processor.clone()).unwrap();
    let (trigger, shutdown) = shutdown_channel();
    let running = tokio::spawn(worker.run(shutdown));

    let publisher = Publisher::connect(&url, &topology).await.unwrap();
    for id in ["ok-1", "perm-1", "flaky-1"] {
        publisher.publish(&job(id)).await.unwrap();
    }
    publisher.close().await.unwrap();
    let conn = regard::queue::connect(&url, "regard contract test")
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .basic_publish(
            topology.jobs_exchange().into(),
            JOB_ROUTING_KEY.into(),
            BasicPublishOptions::default(),
            b"{\"version\": 1, \"job_id\": \"half-a-job\"}",
            BasicProperties::default(),
        )
        .await
        .unwrap();

    let start = Instant::now();
    while processor.settled.lock().unwrap().len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "jobs not settled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("worker stops")
        .unwrap()
        .unwrap();

    // Only now does the scraper connect.
    let mut consumer = channel
        .basic_consume(
            results_queue.as_str().into(),
            "scraper".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut events = Vec::new();
    while events.len() < 5 {
        let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .unwrap_or_else(|_| panic!("only {} events: {events:?}", events.len()))
            .unwrap()
            .unwrap();
        d.acker.ack(BasicAckOptions::default()).await.unwrap();
        let event: serde_json::Value = serde_json::from_slice(&d.data).unwrap();
        assert_eq!(
            d.routing_key.as_str(),
            format!(
                "analysis.{}.{}",
                event["kind"].as_str().unwrap_or("unknown"),
                event["outcome"].as_str().unwrap()
            )
        );
        events.push(event);
    }
    let mut seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["job_id"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    let expected = [
        ("flaky-1", "completed"),
        ("flaky-1", "retrying"),
        ("half-a-job", "malformed"),
        ("ok-1", "completed"),
        ("perm-1", "failed"),
    ]
    .map(|(a, b)| (a.to_string(), b.to_string()));
    assert_eq!(seen, expected);
    let retrying = events.iter().find(|e| e["outcome"] == "retrying").unwrap();
    assert_eq!(retrying["error_code"], "database_unavailable");
    assert!(retrying["next_attempt_at"].is_string(), "{retrying}");
    let failed = events.iter().find(|e| e["outcome"] == "failed").unwrap();
    assert_eq!(
        (&failed["error_code"], &failed["dead_lettered"]),
        (&"media_corrupt".into(), &true.into())
    );
    let errors = schema_errors(&events);
    assert!(errors.is_empty(), "events off the schema: {errors}");
    // The check can fail: a completed event without its summary is refused.
    let mut broken = events
        .iter()
        .find(|e| e["outcome"] == "completed")
        .unwrap()
        .clone();
    broken.as_object_mut().unwrap().remove("summary");
    assert!(!schema_errors(&[broken]).is_empty());

    topology.delete(&channel).await.unwrap();
    conn.close(200, "test done".into()).await.unwrap();
}

#[tokio::test]
async fn switching_the_results_queue_off_declares_none() {
    let url = amqp_url();
    let topology = Topology {
        prefix: unique("noresults"),
        results_queue: regard::queue::topology::ResultsQueue::Off,
        ..Topology::default()
    };
    regard::queue::setup(&url, &topology).await.unwrap();
    let conn = regard::queue::connect(&url, "regard contract test")
        .await
        .unwrap();
    let probe = conn.create_channel().await.unwrap();
    let missing = probe
        .queue_declare(
            format!("{}.results.events", topology.prefix).into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    assert!(missing.is_err(), "a results queue was declared");
    let channel = conn.create_channel().await.unwrap();
    topology.delete(&channel).await.unwrap();
    conn.close(200, "test done".into()).await.unwrap();
}

#[tokio::test]
async fn enqueue_without_the_topology_says_to_run_queue_setup() {
    let topology = Topology::with_prefix(unique("nosetup"));
    let err = match Publisher::connect(&amqp_url(), &topology).await {
        Ok(_) => panic!("connected although nothing is declared"),
        Err(e) => e,
    };
    assert!(matches!(err, QueueError::Config(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("regard queue setup"), "{text}");
    assert!(text.contains(&topology.jobs_exchange()), "{text}");
    assert!(!text.contains("NOT_FOUND"), "{text}");
}
