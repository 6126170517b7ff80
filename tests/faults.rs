//! Faults injected at named points of the job path (`runner::failpoint`, cargo feature
//! `failpoints`), in real `regard worker` processes against the real RabbitMQ and PostgreSQL.
//! Each point is made to crash the process, to fail, or to stall; whatever happens, every job
//! ends with one stored analysis per distinct content, one ledger row that says succeeded, at
//! least one `completed` event, and nothing left in the queues or the dead letters.

mod common;
mod world;

use serde_json::Value;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::Duration;
use world::*;

/// The points in job order, as `runner::failpoint` names them.
const POINTS: &[&str] = &[
    "after_fetch",
    "after_analysis",
    "after_commit",
    "before_event",
    "before_ack",
];

/// Points at which the result is already committed: a later delivery must reuse it.
fn committed_at(point: &str) -> bool {
    matches!(point, "after_commit" | "before_event" | "before_ack")
}

fn enqueue_posters(w: &World, files: &[String], prefix: &str) -> Vec<String> {
    let mut csv = String::from("kind,source,title,job_id\n");
    let mut ids = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let id = format!("{prefix}-{i}");
        csv += &format!("poster,{f},Film {i},{id}\n");
        ids.push(id);
    }
    let file = w.setup.logs.join(format!("{prefix}.csv"));
    std::fs::write(&file, csv).unwrap();
    let out = w.setup.enqueue(&["--file", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    ids
}

/// The `completed` events of each job, in arrival order.
fn completed_by_job(events: &[Value]) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["outcome"] == "completed") {
        out.entry(e["job_id"].as_str().unwrap().to_string())
            .or_default()
            .push(e.clone());
    }
    out
}

/// Waits until every job of `ids` has a `completed` event; returns all events seen.
async fn until_completed(w: &mut World, ids: &[String], limit: Duration, what: &str) -> Vec<Value> {
    let until = tokio::time::Instant::now() + limit;
    let mut events = Vec::new();
    loop {
        let done = completed_by_job(&events);
        if ids.iter().all(|id| done.contains_key(id)) {
            break;
        }
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let more = w.broker.events(1, left, what).await;
        events.extend(more);
    }
    // Duplicates of a redelivery come right after; collect them too.
    events.extend(w.broker.more_events(Duration::from_secs(2)).await);
    events
}

/// One analysis per job (each has its own bytes), each ledger row succeeded and pointing at
/// it, no job waiting and no dead letter.
async fn assert_each_once(w: &World, pool: &PgPool, ids: &[String], what: &str) {
    // Byte order on both sides ("job-10" before "job-2"), whatever the database's collation.
    let mut ids = ids.to_vec();
    ids.sort();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT job_id, status FROM regard.analysis ORDER BY job_id COLLATE \"C\"")
            .fetch_all(pool)
            .await
            .unwrap();
    let want: Vec<(String, String)> = ids
        .iter()
        .map(|id| (id.clone(), "succeeded".to_string()))
        .collect();
    assert_eq!(rows, want, "{what}: one succeeded analysis per job");
    let ledger: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT j.job_id, j.status, j.analysis_id = a.analysis_id
         FROM regard.job j LEFT JOIN regard.analysis a ON a.job_id = j.job_id
         ORDER BY j.job_id COLLATE \"C\"",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let want: Vec<(String, String, bool)> = ids
        .iter()
        .map(|id| (id.clone(), "succeeded".to_string(), true))
        .collect();
    assert_eq!(ledger, want, "{what}: one ledger row per job, succeeded");
    assert_eq!(w.broker.waiting_jobs().await, 0, "{what}: no job left");
    assert_eq!(
        w.broker
            .message_count(&w.broker.topology.dead_queue())
            .await,
        0,
        "{what}: no dead letter"
    );
}

/// Of a job's completed events, exactly one says the analysis was new; a job redelivered after
/// the commit has others that reuse the stored one (same analysis id).
fn assert_one_new_result(point: &str, done: &BTreeMap<String, Vec<Value>>) {
    for (id, events) in done {
        let new: Vec<&Value> = events
            .iter()
            .filter(|e| e["summary"]["new"] == true)
            .collect();
        let first_id = &events[0]["summary"]["analysis_id"];
        assert!(
            events
                .iter()
                .all(|e| &e["summary"]["analysis_id"] == first_id),
            "{point}/{id}: one analysis id: {events:#?}"
        );
        assert!(
            new.len() <= 1,
            "{point}/{id}: committed once as new: {events:#?}"
        );
        if new.is_empty() {
            assert!(
                events.iter().all(|e| e["summary"]["reused"] == true),
                "{point}/{id}: an event without a new result reuses the stored one: {events:#?}"
            );
        }
    }
}

/// A crash (abort) at each point of the first job: the next worker finishes it and the other
/// one, nothing is analysed twice once committed, and every job has its event. The crash
/// between the commit and the ack is `after_commit` / `before_event` / `before_ack`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_point_of_the_job_path_loses_nothing_and_doubles_nothing() {
    let _turn = SERIAL.lock().await;
    for point in POINTS {
        let mut w = World::new(&format!("crash-{}", point.replace('_', "-"))).await;
        let files = poster_variants(&w.setup.media_root, 2);
        let spec = format!("{point}=1*return(crash)");
        let mut crashing = w.setup.worker("crashing", &[("FAILPOINTS", spec.as_str())]);
        crashing.ready().await;
        let ids = enqueue_posters(&w, &files, "job");
        let status = crashing.exit_status(Duration::from_secs(60)).await;
        assert!(!status.success(), "{point}: the worker aborted: {status}");
        assert!(
            crashing.log().contains(&format!("point=\"{point}\""))
                || crashing.log().contains(&format!("point={point}")),
            "{point}: the failure point fired:\n{}",
            crashing.log()
        );
        let pool = w.pool().clone();
        let analysed: i64 = sqlx::query_scalar("SELECT count(*) FROM regard.analysis")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(
            analysed,
            i64::from(committed_at(point)),
            "{point}: committed before the crash or not at all"
        );

        let mut next = w.setup.worker("next", &[]);
        next.ready().await;
        let events = until_completed(&mut w, &ids, Duration::from_secs(120), point).await;
        let done = completed_by_job(&events);
        assert_one_new_result(point, &done);
        if committed_at(point) {
            let redone = &done["job-0"];
            assert!(
                redone.iter().any(|e| e["summary"]["reused"] == true),
                "{point}: the redelivered job reuses the committed result: {redone:#?}"
            );
        }
        assert_each_once(&w, &pool, &ids, point).await;
        next.stop(Duration::from_secs(20)).await;
        w.finish().await;
    }
}

/// Every point fails once (a transient error in the runner; a timed-out publish or a lost ack
/// in the worker, on a live channel), including the copy to a retry queue. With one slot, a
/// delivery left unsettled would stall the worker until the broker's consumer timeout: each
/// is given back in bounded time, and every job completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_point_failing_once_still_completes_each_job_once() {
    let _turn = SERIAL.lock().await;
    let mut w = World::new("fail-once").await;
    let files = poster_variants(&w.setup.media_root, 3);
    let spec: Vec<String> = POINTS
        .iter()
        .chain(&["before_copy"])
        .map(|p| format!("{p}=1*return(error)"))
        .collect();
    let spec = spec.join(";");
    let mut worker = w.setup.worker("w1", &[("FAILPOINTS", spec.as_str())]);
    worker.ready().await;
    let ids = enqueue_posters(&w, &files, "job");
    let events = until_completed(&mut w, &ids, Duration::from_secs(90), "fail-once").await;
    let log = worker.log();
    for point in POINTS.iter().chain(&["before_copy"]) {
        assert!(
            log.contains(&format!("point=\"{point}\"")) || log.contains(&format!("point={point}")),
            "{point} fired:\n{log}"
        );
    }
    let done = completed_by_job(&events);
    assert_one_new_result("fail-once", &done);
    let pool = w.pool().clone();
    assert_each_once(&w, &pool, &ids, "fail-once").await;
    assert!(
        worker
            .metric("regard_jobs_total{outcome=\"unsettled\",kind=\"poster\"}")
            .unwrap_or(0.0)
            >= 2.0,
        "the event and copy failures were given back: {:?}",
        worker.http("/metrics")
    );
    worker.assert_alive();
    worker.stop(Duration::from_secs(20)).await;
    w.finish().await;
}

/// A result event that cannot be published (its publish times out on a live channel) goes
/// back to the queue, and the next delivery publishes it from the stored result: the trailer
/// is decoded once, and its event reports the stored analysis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpublished_result_event_is_sent_again_without_analysing_again() {
    let _turn = SERIAL.lock().await;
    let mut w = World::new("event-retry").await;
    let trailer = w.media("trailers/t1_640x360.mp4");
    let mut worker = w
        .setup
        .worker("w1", &[("FAILPOINTS", "before_event=1*return(error)")]);
    worker.ready().await;
    let out = w.setup.enqueue(&[
        "--kind",
        "trailer",
        "--source",
        &trailer,
        "--title",
        "Event",
        "--job-id",
        "event-trailer",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ids = ["event-trailer".to_string()];
    let events = until_completed(&mut w, &ids, Duration::from_secs(120), "the event").await;
    let done = completed_by_job(&events);
    let sent = &done["event-trailer"];
    assert_eq!(sent.len(), 1, "one event: {sent:#?}");
    assert_eq!(sent[0]["summary"]["reused"], true, "{:#}", sent[0]);
    let frames = sent[0]["summary"]["sampled_frames"].as_f64().unwrap();
    assert!(frames > 0.0);
    assert_eq!(
        worker.metric("regard_frames_decoded_total"),
        Some(frames),
        "the trailer was decoded once"
    );
    assert_eq!(
        worker.metric("regard_jobs_total{outcome=\"unsettled\",kind=\"trailer\"}"),
        Some(1.0)
    );
    let pool = w.pool().clone();
    assert_each_once(&w, &pool, &ids, "event-retry").await;
    worker.stop(Duration::from_secs(20)).await;
    w.finish().await;
}

/// A slot busy for longer than a job may take makes `/readyz` answer 503 with the reason; when
/// the job ends, the worker is ready again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_slot_makes_the_worker_unready_until_it_frees() {
    let _turn = SERIAL.lock().await;
    let mut w = World::new("stuck").await;
    let files = poster_variants(&w.setup.media_root, 1);
    // A job may take 1 s + 5 s (fetch, analysis) plus 10 s of margin: stuck after 16 s.
    let mut worker = w.setup.worker(
        "w1",
        &[
            ("FAILPOINTS", "before_ack=1*return(sleep:24000)"),
            ("REGARD_FETCH_TIMEOUT_SECONDS", "1"),
            ("REGARD_DEADLINE_SECONDS", "5"),
        ],
    );
    worker.ready().await;
    let ids = enqueue_posters(&w, &files, "stuck");
    let probe = &worker;
    let body = eventually(
        Duration::from_secs(30),
        "/readyz reports the stuck slot",
        || async move {
            probe
                .http("/readyz")
                .filter(|(status, body)| *status == 503 && body.contains("stuck"))
                .map(|(_, body)| body)
        },
    )
    .await;
    assert!(body.contains("busy for"), "{body}");
    let events = until_completed(&mut w, &ids, Duration::from_secs(30), "the slow job").await;
    assert_eq!(completed_by_job(&events)["stuck-0"].len(), 1);
    worker.ready().await;
    let pool = w.pool().clone();
    assert_each_once(&w, &pool, &ids, "stuck").await;
    worker.stop(Duration::from_secs(20)).await;
    w.finish().await;
}

/// A broker restart is routine: with the binary's default log filter the worker writes no
/// ERROR line for it (neither ours nor lapin's), reconnects, and finishes every job once. The
/// idle gap between the broker's return and the next job is printed (a measurement, not a
/// bound).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_logs_no_error_and_every_job_completes_once() {
    let _turn = SERIAL.lock().await;
    let node = PrivateRabbit::start_new().await;
    let db = TestDb::new().await;
    let db_url = db.url.clone();
    let mut w = World::with_broker(&node.url(), "restart", Some(db), db_url, 3).await;
    let files = poster_variants(&w.setup.media_root, 12);
    // Default reconnection settings and log filter: what a deployment runs. Each job waits
    // 1 s after its fetch, so that the broker stops with work left: a debug build analyses
    // these posters in 0.1 s each; all 8 of an earlier version of this test were done before
    // `rabbitmqctl stop` returned, and all 12 of the next, with 300 ms each, once on a fast
    // machine under load (the stop itself took seconds).
    let mut worker = w.setup.worker(
        "w1",
        &[
            ("REGARD_LOG", ""),
            ("REGARD_RECONNECT_MAX", ""),
            ("FAILPOINTS", "after_fetch=return(sleep:1000)"),
        ],
    );
    worker.ready().await;
    let ids = enqueue_posters(&w, &files, "restart");
    let completed = "regard_jobs_total{outcome=\"completed\",kind=\"poster\"}";
    let probe = &worker;
    eventually(Duration::from_secs(60), "a first job done", || async move {
        probe.metric(completed).filter(|n| *n >= 1.0)
    })
    .await;
    node.stop();
    let stopped = std::time::Instant::now();
    eventually(
        Duration::from_secs(20),
        "the worker notices",
        || async move {
            probe
                .http("/readyz")
                .filter(|(s, b)| *s == 503 && b.contains("broker"))
        },
    )
    .await;
    let done_before = worker.metric(completed).unwrap_or(0.0);
    assert!(
        done_before < ids.len() as f64,
        "every job was done before the broker stopped: nothing tests the restart"
    );
    // Down long enough for the reconnection backoff to grow.
    tokio::time::sleep(Duration::from_secs(8)).await;
    node.start().await;
    let up = std::time::Instant::now();
    let probe = &worker;
    // Bounded generously: on a loaded machine the private node itself can take tens of
    // seconds to accept connections again. The gap is printed below.
    eventually(
        Duration::from_secs(180),
        "a job done after the restart",
        || async move { probe.metric(completed).filter(|n| *n > done_before) },
    )
    .await;
    let gap = up.elapsed();
    let all = ids.len() as f64;
    eventually(Duration::from_secs(120), "every job done", || async move {
        probe.metric(completed).filter(|n| *n >= all)
    })
    .await;
    println!(
        "broker down {:.1?}; first job completed {:.1?} after it was back ({done_before} of {} done before the stop)",
        up - stopped,
        gap,
        ids.len()
    );
    let pool = w.pool().clone();
    // The old connection is gone: look at the queues through a new one.
    let topology = w.broker.topology.clone();
    w.broker = Broker::connect(&node.url(), topology).await;
    assert_each_once(&w, &pool, &ids, "restart").await;
    let log = worker.log();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(
        errors.is_empty(),
        "no ERROR line for a routine restart:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("broker unavailable")),
        "the restart is logged at WARN:\n{log}"
    );
    worker.stop(Duration::from_secs(20)).await;
    w.finish().await;
    node.stop();
}

/// The result is committed and the ledger write fails like a terminated connection. Once: the
/// write is tried again at once and the job completes as new, without a redelivery. Twice: the
/// job fails with a retryable error instead of being acknowledged with its row left `running`;
/// the next delivery finds the stored result, reuses it and writes the row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_write_lost_after_the_commit_is_written_again_and_never_left_running() {
    let _turn = SERIAL.lock().await;
    for failures in [1, 2] {
        let what = format!("ledger-{failures}");
        let mut w = World::new(&what).await;
        let files = poster_variants(&w.setup.media_root, 1);
        let spec = format!("before_ledger={failures}*return(error)");
        let mut worker = w.setup.worker("w1", &[("FAILPOINTS", spec.as_str())]);
        worker.ready().await;
        let ids = enqueue_posters(&w, &files, "job");
        let events = until_completed(&mut w, &ids, Duration::from_secs(90), &what).await;
        let log = worker.log();
        // The delivery that met the failures tried once more at once; a redelivery met none.
        assert_eq!(
            log.matches("job ledger not updated; trying again").count(),
            1,
            "{what}: one immediate second try:\n{log}"
        );
        let done = completed_by_job(&events);
        assert_one_new_result(&what, &done);
        let sent = &done["job-0"];
        if failures == 1 {
            assert_eq!(sent.len(), 1, "{what}: {sent:#?}");
            assert_eq!(sent[0]["summary"]["new"], true, "{what}: {:#}", sent[0]);
        } else {
            assert!(
                sent.iter().all(|e| e["summary"]["reused"] == true),
                "{what}: the redelivery reuses the committed result: {sent:#?}"
            );
            assert!(
                log.contains("the job ledger could not say so"),
                "{what}: the failed job names why:\n{log}"
            );
        }
        let pool = w.pool().clone();
        assert_each_once(&w, &pool, &ids, &what).await;
        worker.stop(Duration::from_secs(20)).await;
        w.finish().await;
    }
}
