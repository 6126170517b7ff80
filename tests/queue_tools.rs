//! `regard queue status` and `regard queue dead-letters list|requeue` against the real RabbitMQ
//! (REGARD_TEST_AMQP_URL, default the local broker), each test under its own prefix.

use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use regard::queue::Topology;
use regard::queue::topology::{HEADER_ATTEMPT, HEADER_ERROR, HEADER_ERROR_CODE};
use std::process::{Command, Output};

fn amqp_url() -> String {
    std::env::var("REGARD_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn regard(prefix: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_regard"))
        .args(args)
        .env("REGARD_AMQP_URL", amqp_url())
        .env("REGARD_QUEUE_PREFIX", prefix)
        .output()
        .expect("regard runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn channel() -> (Connection, Channel) {
    let conn = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "RabbitMQ is not reachable at {}: {e}; these tests never skip",
                amqp_url()
            )
        });
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    (conn, ch)
}

/// A dead letter as the worker leaves one: the job body, its id, the failure headers.
async fn dead_letter(ch: &Channel, t: &Topology, id: &str, code: &str) {
    let mut h = FieldTable::default();
    h.insert(HEADER_ERROR_CODE.into(), AMQPValue::LongString(code.into()));
    h.insert(
        HEADER_ERROR.into(),
        AMQPValue::LongString(format!("{id} failed with {code}").into()),
    );
    h.insert(HEADER_ATTEMPT.into(), AMQPValue::LongUInt(5));
    h.insert("x-scraper-batch".into(), AMQPValue::LongString("b7".into()));
    let body = serde_json::json!({"version": 1, "job_id": id, "kind": "poster",
        "source": format!("/srv/{id}.jpg"), "film": {"title": id}})
    .to_string();
    ch.basic_publish(
        t.dead_exchange().into(),
        "".into(),
        BasicPublishOptions::default(),
        body.as_bytes(),
        BasicProperties::default()
            .with_message_id(id.into())
            .with_headers(h),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

async fn count(ch: &Channel, queue: &str) -> u32 {
    ch.queue_declare(
        queue.into(),
        lapin::options::QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap()
    .message_count()
}

#[tokio::test]
async fn status_lists_the_queues_and_dead_letters_are_listed_then_requeued_by_code() {
    let prefix = format!(
        "regard-qt-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let t = Topology::with_prefix(prefix.clone());

    // Before setup: every queue missing, exit 1, the way out named.
    let before = regard(&prefix, &["queue", "status"]);
    assert_eq!(before.status.code(), Some(1), "{}", text(&before));
    assert!(
        text(&before).contains("run `regard queue setup`"),
        "{}",
        text(&before)
    );

    let setup = regard(&prefix, &["queue", "setup"]);
    assert!(setup.status.success(), "{}", text(&setup));
    let (conn, ch) = channel().await;
    for (id, code) in [
        ("a1", "fetch_timeout"),
        ("b1", "corrupt_media"),
        ("a2", "fetch_timeout"),
    ] {
        dead_letter(&ch, &t, id, code).await;
    }

    let status = regard(&prefix, &["queue", "status", "--json"]);
    assert!(status.status.success(), "{}", text(&status));
    let depths: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let of = |role: &str| -> Vec<&serde_json::Value> {
        depths
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["role"] == role)
            .collect()
    };
    assert_eq!(of("jobs")[0]["messages"], 0);
    assert_eq!(of("dead")[0]["messages"], 3);
    assert_eq!(of("dead")[0]["consumers"], 0);
    assert_eq!(
        of("retry").len(),
        4,
        "one per distinct retry delay: {depths:#}"
    );

    // Listing leaves every dead letter in place, however often it is done.
    for _ in 0..2 {
        let list = regard(
            &prefix,
            &["queue", "dead-letters", "list", "--code", "fetch_timeout"],
        );
        assert!(list.status.success(), "{}", text(&list));
        let out = text(&list);
        // Job ids are the first column; the queue's name (random hex) may hold "b1" too.
        let ids: Vec<&str> = out
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert!(
            ids.contains(&"a1") && ids.contains(&"a2") && !ids.contains(&"b1"),
            "{out}"
        );
        assert!(out.contains("2 dead letter(s)"), "{out}");
        assert_eq!(count(&ch, &t.dead_queue()).await, 3);
    }

    // Requeue one of the two fetch timeouts, then the rest of that code.
    let one = regard(
        &prefix,
        &[
            "queue",
            "dead-letters",
            "requeue",
            "--code",
            "fetch_timeout",
            "--limit",
            "1",
        ],
    );
    assert!(one.status.success(), "{}", text(&one));
    assert!(
        text(&one).contains("1 dead letter(s) requeued"),
        "{}",
        text(&one)
    );
    assert_eq!(count(&ch, &t.dead_queue()).await, 2);
    assert_eq!(count(&ch, &t.jobs_queue()).await, 1);
    let rest = regard(
        &prefix,
        &[
            "queue",
            "dead-letters",
            "requeue",
            "--code",
            "fetch_timeout",
        ],
    );
    assert!(
        text(&rest).contains("1 dead letter(s) requeued"),
        "{}",
        text(&rest)
    );
    assert_eq!(count(&ch, &t.jobs_queue()).await, 2);
    assert_eq!(
        count(&ch, &t.dead_queue()).await,
        1,
        "the corrupt file stays dead"
    );

    // A requeued job is a first attempt again: no failure headers, the rest kept.
    for _ in 0..2 {
        let m = ch
            .basic_get(t.jobs_queue().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("a requeued job");
        let headers = m.delivery.properties.headers().clone().unwrap_or_default();
        // The broker itself counts deliveries of quorum-queue messages; it starts again at 0.
        let names: Vec<String> = headers
            .inner()
            .keys()
            .map(|k| k.to_string())
            .filter(|k| k != "x-delivery-count")
            .collect();
        assert_eq!(names, ["x-scraper-batch"], "{names:?}");
        assert!(
            regard::queue::topology::header_u32(Some(&headers), "x-delivery-count").unwrap_or(0)
                == 0,
            "{headers:?}"
        );
        let id = m
            .delivery
            .properties
            .message_id()
            .as_ref()
            .unwrap()
            .to_string();
        assert!(id == "a1" || id == "a2", "{id}");
    }
    t.delete(&ch).await.unwrap();
    conn.close(200, "done".into()).await.unwrap();
}

#[tokio::test]
async fn a_changed_delivery_limit_is_refused_with_the_way_out() {
    let prefix = format!(
        "regard-qt-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let first = regard(&prefix, &["queue", "setup", "--delivery-limit", "10"]);
    assert!(first.status.success(), "{}", text(&first));
    let changed = regard(&prefix, &["queue", "setup", "--delivery-limit", "5"]);
    assert_eq!(changed.status.code(), Some(2), "{}", text(&changed));
    let out = text(&changed);
    assert!(out.contains("first declaration"), "{out}");
    assert!(
        out.contains("rabbitmqctl delete_queue") && out.contains("--queue-prefix"),
        "{out}"
    );
    let (conn, ch) = channel().await;
    Topology::with_prefix(prefix).delete(&ch).await.unwrap();
    conn.close(200, "done".into()).await.unwrap();
}
