//! `regard worker` end to end: the real binary as worker processes, the real RabbitMQ
//! (REGARD_TEST_AMQP_URL) and PostgreSQL (REGARD_TEST_DATABASE_URL), the real models and the
//! committed fixtures. Each test has its own database and queue prefix and removes them at the
//! end; the database-outage test runs a private PostgreSQL cluster and never touches the shared
//! one. Services that are down fail the tests loudly.
//!
//! The tests take turns (one lock): each runs CPU-bound worker processes, and on two cores
//! parallel tests would only make every timing bound meaningless.

mod common;
mod world;

use regard::queue::topology::{HEADER_ERROR, HEADER_ERROR_CODE, header_str};
use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use sqlx::postgres::PgPoolOptions;
use sqlx::{ConnectOptions, Connection as _};
use std::collections::HashSet;
use std::str::FromStr;
use std::time::{Duration, Instant};
use world::*;

// ------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posters_and_trailers_enqueued_from_a_file_end_in_the_database_and_as_events() {
    let _turn = SERIAL.lock().await;
    let mut w = World::new("e2e").await;
    let posters = [
        "posters/duo_1000x1500.jpg",
        "posters/women_1000x1500.jpg",
        "posters/bench_1000x1500.jpg",
    ];
    let trailers = [
        "trailers/t1_640x360.mp4",
        "trailers/t2_854x480.mp4",
        "trailers/t3_640x360.mp4",
    ];
    let mut csv = String::from("kind,source,title,year,festival,edition,section,job_id\n");
    for (i, p) in posters.iter().enumerate() {
        csv += &format!(
            "poster,{},Film {i},2026,Festival de Cannes,2026,Compétition,poster-{i}\n",
            w.media(p)
        );
    }
    for (i, t) in trailers.iter().enumerate() {
        csv += &format!("trailer,{},Film {i},2026,,,,trailer-{i}\n", w.media(t));
    }
    // A refused line: the others are still enqueued, and the exit code says something was refused.
    csv += "poster,relative/poster.jpg,Bad,,,,,bad-1\n";
    let file = w.setup.logs.join("jobs.csv");
    std::fs::write(&file, csv).unwrap();

    // Two slots in one process: two pipelines from the pool work at once.
    let mut worker = w.setup.worker("w1", &[("REGARD_JOB_SLOTS", "2")]);
    let out = w.setup.enqueue(&["--file", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("6 job(s) enqueued"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("jobs.csv:8: ") && stderr(&out).contains("absolute"),
        "the refused line is named: {}",
        stderr(&out)
    );
    worker.ready().await;

    let events = by_job(
        &w.broker
            .events(6, Duration::from_secs(150), "six jobs")
            .await,
    );
    for (id, e) in &events {
        assert_eq!(e["outcome"], "completed", "{id}: {e:#}");
        let s = &e["summary"];
        assert_eq!(s["new"], true, "{id}");
        assert_eq!(s["media_sha256"].as_str().unwrap().len(), 64);
        let kind = if id.starts_with("poster") {
            "poster"
        } else {
            "trailer"
        };
        assert_eq!(e["kind"], kind);
        assert_eq!(s["kind"], kind);
        let share = s["women_share"].as_f64();
        assert!(
            share.is_none_or(|v| (0.0..=1.0).contains(&v)),
            "{id}: {s:#}"
        );
    }
    // The poster with two faces: a man and a woman (fixtures/truth.json).
    assert_eq!(events["poster-0"]["summary"]["faces"], 2);
    assert!(
        events["trailer-1"]["summary"]["sampled_frames"]
            .as_u64()
            .unwrap()
            > 20
    );

    let pool = w.pool();
    let rows: Vec<(String, String, String, Option<i32>)> = sqlx::query_as(
        "SELECT job_id, kind, status, sampled_frames FROM regard.analysis ORDER BY job_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        ids,
        [
            "poster-0",
            "poster-1",
            "poster-2",
            "trailer-0",
            "trailer-1",
            "trailer-2"
        ]
    );
    assert!(rows.iter().all(|r| r.2 == "succeeded"), "{rows:?}");
    for (id, kind, _, frames) in &rows {
        assert_eq!(
            kind,
            if id.starts_with("poster") {
                "poster"
            } else {
                "trailer"
            }
        );
        assert_eq!(frames.is_some(), kind == "trailer", "{id}");
    }
    let festival: Option<String> = sqlx::query_scalar(
        "SELECT context->'festival'->>'section' FROM regard.analysis WHERE job_id = 'poster-1'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(festival.as_deref(), Some("Compétition"));
    let stored_ids: Vec<i64> = events
        .values()
        .map(|e| e["summary"]["analysis_id"].as_i64().unwrap())
        .collect();
    let n = scalar_i64(
        pool,
        &format!(
            "SELECT count(*) FROM regard.analysis WHERE analysis_id IN ({})",
            stored_ids
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
    )
    .await;
    assert_eq!(n, 6, "the events name the stored analyses");

    // Processor counters reach /metrics.
    for kind in ["poster", "trailer"] {
        assert_eq!(
            worker.metric(&format!(
                "regard_jobs_total{{outcome=\"completed\",kind=\"{kind}\"}}"
            )),
            Some(3.0),
            "{kind}"
        );
    }
    let frames = worker.metric("regard_frames_decoded_total").unwrap();
    assert!(
        frames > 3.0 + 60.0,
        "3 posters + 3 trailers at 2/s: {frames}"
    );
    assert!(worker.metric("regard_faces_found_total").unwrap() >= 2.0);
    assert!(worker.metric("regard_inference_seconds_total").unwrap() > 0.0);
    assert_eq!(worker.http("/healthz").map(|r| r.0), Some(200));
    worker.stop(Duration::from_secs(20)).await;
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_corrupt_media_and_private_urls_are_dead_lettered_with_a_reason() {
    let _turn = SERIAL.lock().await;
    let mut w = World::new("bad").await;
    let jpeg = std::fs::read(common::root().join("fixtures/posters/duo_1000x1500.jpg")).unwrap();
    let corrupt = w.write("corrupt.jpg", &jpeg[..jpeg.len() / 3]);
    let good = w.media("posters/duo_1000x1500.jpg");
    let outside = common::root()
        .join("fixtures/posters/women_1000x1500.jpg")
        .display()
        .to_string();
    let mut worker = w.setup.worker("w1", &[]);
    worker.ready().await;

    w.broker
        .publish_raw(b"{\"version\": 1, \"this is\": not json")
        .await;
    for (id, source) in [
        ("corrupt", corrupt.as_str()),
        ("private", "http://10.255.255.1/poster.jpg"),
        ("outside", outside.as_str()),
        ("good", good.as_str()),
    ] {
        let out = w.setup.enqueue(&[
            "--kind", "poster", "--source", source, "--title", "T", "--job-id", id,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let events = by_job(
        &w.broker
            .events(
                5,
                Duration::from_secs(60),
                "four jobs and the malformed message",
            )
            .await,
    );
    assert_eq!(
        events["good"]["outcome"], "completed",
        "the worker carried on"
    );
    let malformed: Vec<&Value> = events
        .values()
        .filter(|e| e["outcome"] == "malformed")
        .collect();
    assert_eq!(malformed.len(), 1, "{events:#?}");
    assert_eq!(malformed[0]["error_code"], "job_not_json");
    assert_eq!(malformed[0]["dead_lettered"], true);
    let expected = [
        ("corrupt", "corrupt_media"),
        ("private", "private_address"),
        ("outside", "outside_roots"),
    ];
    for (id, code) in expected {
        assert_eq!(events[id]["outcome"], "failed");
        assert_eq!(events[id]["error_code"], code, "{:#}", events[id]);
    }

    let dead = w.broker.dead_letters().await;
    let mut codes: Vec<(String, String)> = dead
        .iter()
        .map(|m| {
            let h = m.properties.headers().as_ref();
            let code = header_str(h, HEADER_ERROR_CODE).expect("a reason code");
            let reason = header_str(h, HEADER_ERROR).expect("a reason");
            assert!(!reason.is_empty());
            (code, reason)
        })
        .collect();
    codes.sort();
    let got: Vec<&str> = codes.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        got,
        [
            "corrupt_media",
            "job_not_json",
            "outside_roots",
            "private_address"
        ],
        "{codes:#?}"
    );
    assert!(codes[3].1.contains("10.255.255.1"), "{}", codes[3].1);

    // Failures are recorded, the corrupt file with its content hash.
    let failed: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT job_id, error_code, media_id IS NOT NULL FROM regard.analysis
         WHERE status = 'failed' ORDER BY job_id",
    )
    .fetch_all(w.pool())
    .await
    .unwrap();
    assert_eq!(
        failed,
        [
            ("corrupt".into(), "corrupt_media".into(), true),
            ("outside".into(), "outside_roots".into(), false),
            ("private".into(), "private_address".into(), false),
        ]
    );
    worker.assert_alive();
    assert_eq!(worker.metric("regard_dead_letters_total"), Some(4.0));
    worker.stop(Duration::from_secs(20)).await;
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_job_delivered_twice_leaves_one_analysis() {
    let _turn = SERIAL.lock().await;
    let mut w = World::new("twice").await;
    let poster = w.media("posters/women_1000x1500.jpg");
    let line = serde_json::json!({
        "version": 1, "job_id": "same-job", "kind": "poster", "source": poster,
        "film": {"title": "Twice", "year": 2025}
    })
    .to_string();
    let file = w.setup.logs.join("twice.jsonl");
    std::fs::write(&file, format!("{line}\n{line}\n")).unwrap();
    let mut worker = w.setup.worker("w1", &[]);
    let out = w.setup.enqueue(&["--file", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    worker.ready().await;
    let events = w
        .broker
        .events(2, Duration::from_secs(60), "both deliveries")
        .await;
    assert!(
        events
            .iter()
            .all(|e| e["job_id"] == "same-job" && e["outcome"] == "completed")
    );
    let news: Vec<&Value> = events.iter().map(|e| &e["summary"]["new"]).collect();
    assert_eq!(
        news,
        [&Value::Bool(true), &Value::Bool(false)],
        "{events:#?}"
    );
    assert_eq!(
        events[0]["summary"]["analysis_id"],
        events[1]["summary"]["analysis_id"]
    );
    assert_eq!(
        scalar_i64(w.pool(), "SELECT count(*) FROM regard.analysis").await,
        1
    );
    assert_eq!(worker.metric("regard_ack_failures_total"), Some(0.0));
    worker.stop(Duration::from_secs(20)).await;
    w.finish().await;
}

/// The ledger keeps every job id: six duplicate jobs of one poster are six rows sharing one
/// analysis; a job whose file is of the other kind fails, links nothing to its film, and the
/// film appears in no representation view; a malformed message has a row too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_has_a_ledger_row_and_a_failed_job_links_nothing() {
    let _turn = SERIAL.lock().await;
    let mut w = World::new("ledger").await;
    let poster = w.media("posters/women_1000x1500.jpg");
    let trailer = w.media("trailers/t1_640x360.mp4");
    let mut lines: Vec<String> = (1..=6)
        .map(|i| {
            serde_json::json!({
                "version": 1, "job_id": format!("dup-{i}"), "kind": "poster", "source": poster,
                "film": {"title": "Duplicates", "year": 2025}
            })
            .to_string()
        })
        .collect();
    lines.push(
        serde_json::json!({
            "version": 1, "job_id": "wrong-kind", "kind": "poster", "source": trailer,
            "film": {"title": "Mismatch", "year": 2025, "imdb_id": "tt7000001"},
            "festival": {"festival": "Festival de Test", "edition": 2025, "section": "Compétition"}
        })
        .to_string(),
    );
    let file = w.setup.logs.join("ledger.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let mut worker = w.setup.worker("w1", &[]);
    worker.ready().await;
    assert!(
        w.setup
            .enqueue(&["--file", file.to_str().unwrap()])
            .status
            .success()
    );
    w.broker
        .publish_raw(b"{\"version\": 1, \"job_id\": \"broken-1\", \"kind\": 7}")
        .await;
    let events = by_job(
        &w.broker
            .events(8, Duration::from_secs(90), "eight messages")
            .await,
    );
    assert_eq!(
        events["wrong-kind"]["error_code"], "kind_mismatch",
        "{events:#?}"
    );
    assert_eq!(events["broken-1"]["outcome"], "malformed", "{events:#?}");

    // Six rows, one analysis, each found by `regard jobs show`.
    let analyses: Vec<(String, Option<i64>)> = sqlx::query_as(
        "SELECT status, analysis_id FROM regard.job WHERE job_id LIKE 'dup-%' ORDER BY job_id",
    )
    .fetch_all(w.pool())
    .await
    .unwrap();
    assert_eq!(analyses.len(), 6);
    assert!(
        analyses
            .iter()
            .all(|(s, a)| s == "succeeded" && *a == analyses[0].1 && a.is_some()),
        "{analyses:?}"
    );
    assert_eq!(
        scalar_i64(
            w.pool(),
            "SELECT count(*) FROM regard.analysis WHERE status = 'succeeded'"
        )
        .await,
        1
    );
    for i in 1..=6 {
        let out = w
            .setup
            .command(&["jobs", "show", &format!("dup-{i}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("succeeded"), "{text}");
        assert!(
            text.contains(&format!("analysis      {}", analyses[0].1.unwrap())),
            "{text}"
        );
    }
    let out = w
        .setup
        .command(&["jobs", "list", "--status", "dead_lettered"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("wrong-kind") && text.contains("broken-1"),
        "{text}"
    );
    assert!(text.contains("2 job(s)"), "{text}");
    let missing = w
        .setup
        .command(&["jobs", "show", "no-such-job"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));

    // The kind-mismatch job: a failed, dead-lettered row, no film link, no figure.
    let (status, code, analysis): (String, String, Option<i64>) = sqlx::query_as(
        "SELECT status, error_code, analysis_id FROM regard.job WHERE job_id = 'wrong-kind'",
    )
    .fetch_one(w.pool())
    .await
    .unwrap();
    assert_eq!(
        (status.as_str(), code.as_str()),
        ("dead_lettered", "kind_mismatch")
    );
    let failed: String =
        sqlx::query_scalar("SELECT status FROM regard.analysis WHERE analysis_id = $1")
            .bind(analysis.expect("the failure is recorded"))
            .fetch_one(w.pool())
            .await
            .unwrap();
    assert_eq!(failed, "failed");
    assert_eq!(
        scalar_i64(w.pool(), "SELECT count(*) FROM regard.film_media fm JOIN regard.film f USING (film_id) WHERE f.title = 'Mismatch'").await,
        0
    );
    assert_eq!(
        scalar_i64(w.pool(), "SELECT count(*) FROM regard.film_selection").await,
        0,
        "no festival selection either"
    );
    let media_kind: Option<String> = sqlx::query_scalar(
        "SELECT m.kind FROM regard.media m JOIN regard.analysis a USING (media_id) WHERE a.analysis_id = $1",
    )
    .bind(analysis.unwrap())
    .fetch_one(w.pool())
    .await
    .unwrap();
    assert_ne!(
        media_kind.as_deref(),
        Some("poster"),
        "the claimed kind is not the media's"
    );
    assert_eq!(
        scalar_i64(
            w.pool(),
            "SELECT count(*) FROM regard.film_representation WHERE film_title = 'Mismatch'"
        )
        .await,
        0
    );
    assert_eq!(
        scalar_i64(
            w.pool(),
            "SELECT count(*) FROM regard.festival_section_representation"
        )
        .await,
        0
    );
    let films: i64 = scalar_i64(w.pool(), "SELECT count(*) FROM regard.film_representation").await;
    assert!(films > 0, "the duplicates' film is there");
    let (unresolved,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM regard.quality_failed_jobs WHERE NOT resolved")
            .fetch_one(w.pool())
            .await
            .unwrap();
    assert_eq!(unresolved, 2, "the kind mismatch and the malformed message");
    worker.stop(Duration::from_secs(20)).await;
    w.finish().await;
}

/// Neither a stalled download nor a locked table holds a slot for ever: the stalled source
/// fails on the fetch deadline, a job meeting a locked table fails on the statement timeout
/// and is retried, and once the lock is gone it completes; the one slot keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_source_and_a_locked_table_free_the_slot_on_time() {
    let _turn = SERIAL.lock().await;
    let mut w = World::new("stall").await;
    // A server that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let mut worker = w.setup.worker(
        "w1",
        &[
            ("REGARD_FETCH_TIMEOUT_SECONDS", "2"),
            ("REGARD_DB_STATEMENT_TIMEOUT", "2"),
            ("REGARD_ALLOW_PRIVATE", "127.0.0.1/32"),
        ],
    );
    worker.ready().await;
    let stalled = format!("http://127.0.0.1:{port}/poster.jpg");
    let good = w.media("posters/duo_1000x1500.jpg");
    let started = Instant::now();
    for (id, source) in [
        ("stalled", stalled.as_str()),
        ("after-stall", good.as_str()),
    ] {
        let out = w.setup.enqueue(&[
            "--kind", "poster", "--source", source, "--title", "S", "--job-id", id,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let first = w
        .broker
        .events(1, Duration::from_secs(30), "the stalled job")
        .await;
    assert_eq!(first[0]["job_id"], "stalled", "{first:#?}");
    assert!(
        first[0]["error_code"]
            .as_str()
            .is_some_and(|c| c.contains("timeout")),
        "{first:#?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "on time: {:?}",
        started.elapsed()
    );
    let done = w
        .broker
        .final_events(2, Duration::from_secs(60), "the job after the stall")
        .await;
    assert!(
        done.iter()
            .any(|e| e["job_id"] == "after-stall" && e["outcome"] == "completed"),
        "the slot was freed: {done:#?}"
    );

    // Lock the results table, as a long migration or a stuck session would.
    let mut locker = PgConnectOptions::from_str(&w.setup.db_url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE regard.analysis IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let other = w.media("posters/women_1000x1500.jpg");
    let locked_at = Instant::now();
    let out = w.setup.enqueue(&[
        "--kind", "poster", "--source", &other, "--title", "L", "--job-id", "locked",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let retrying = loop {
        let e = w
            .broker
            .events(1, Duration::from_secs(30), "the locked job")
            .await
            .remove(0);
        if e["job_id"] == "locked" {
            break e;
        }
    };
    assert_eq!(retrying["outcome"], "retrying", "{retrying:#}");
    assert_eq!(
        retrying["error_code"], "database_unavailable",
        "{retrying:#}"
    );
    assert!(
        locked_at.elapsed() < Duration::from_secs(20),
        "on time: {:?}",
        locked_at.elapsed()
    );
    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();
    locker.close().await.unwrap();
    let after = loop {
        let e = w
            .broker
            .final_events(1, Duration::from_secs(60), "the locked job, unlocked")
            .await
            .remove(0);
        if e["job_id"] == "locked" {
            break e;
        }
    };
    assert_eq!(after["outcome"], "completed", "{after:#}");
    worker.assert_alive();
    server.abort();
    worker.stop(Duration::from_secs(20)).await;
    w.finish().await;
}

/// A redelivered trailer job finds its result in the store: the second delivery decodes no
/// frame, runs no model, and its event reports the stored analysis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_trailer_is_not_decoded_again() {
    let _turn = SERIAL.lock().await;
    let mut w = World::new("redeliver").await;
    let trailer = w.media("trailers/t1_640x360.mp4");
    let job = |id: &str| {
        serde_json::json!({
            "version": 1, "job_id": id, "kind": "trailer", "source": trailer,
            "film": {"title": "Again", "year": 2025}
        })
        .to_string()
    };
    let mut worker = w.setup.worker("w1", &[]);
    worker.ready().await;
    let file = w.setup.logs.join("first.jsonl");
    std::fs::write(&file, format!("{}\n", job("trailer-first"))).unwrap();
    assert!(
        w.setup
            .enqueue(&["--file", file.to_str().unwrap()])
            .status
            .success()
    );
    let first = w
        .broker
        .events(1, Duration::from_secs(120), "the first delivery")
        .await;
    assert_eq!(
        first[0]["summary"]["reused"],
        Value::Bool(false),
        "{first:#?}"
    );
    let frames = worker
        .metric("regard_frames_decoded_total")
        .expect("frames metric");
    assert!(frames > 0.0, "the first delivery decodes the trailer");

    // The same job again (a redelivery after a lost ack looks exactly like this), and a
    // duplicate job with another id for the same bytes.
    let file = w.setup.logs.join("again.jsonl");
    std::fs::write(
        &file,
        format!("{}\n{}\n", job("trailer-first"), job("trailer-duplicate")),
    )
    .unwrap();
    assert!(
        w.setup
            .enqueue(&["--file", file.to_str().unwrap()])
            .status
            .success()
    );
    let again = w
        .broker
        .events(2, Duration::from_secs(60), "the repeated deliveries")
        .await;
    for e in &again {
        assert_eq!(e["outcome"], "completed", "{e:#}");
        assert_eq!(e["summary"]["reused"], Value::Bool(true), "{e:#}");
        assert_eq!(e["summary"]["new"], Value::Bool(false), "{e:#}");
        assert_eq!(
            e["summary"]["analysis_id"],
            first[0]["summary"]["analysis_id"]
        );
        assert_eq!(e["summary"]["persons"], first[0]["summary"]["persons"]);
        assert_eq!(
            e["summary"]["women_share"],
            first[0]["summary"]["women_share"]
        );
    }
    assert_eq!(
        worker.metric("regard_frames_decoded_total"),
        Some(frames),
        "no frame decoded for the repeated deliveries"
    );
    assert_eq!(
        scalar_i64(w.pool(), "SELECT count(*) FROM regard.analysis").await,
        1
    );
    worker.stop(Duration::from_secs(20)).await;
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_trailer_is_replaced_and_the_job_leaves_one_analysis() {
    let _turn = SERIAL.lock().await;
    let mut w = World::new("kill").await;
    let trailer = w.media("trailers/t2_854x480.mp4");
    let mut first = w.setup.worker("first", &[]);
    first.ready().await;
    // Five frames a second (a per-job setting) makes the trailer long enough to interrupt.
    let out = w.setup.enqueue(&[
        "--kind",
        "trailer",
        "--source",
        &trailer,
        "--title",
        "Killed",
        "--job-id",
        "slow-trailer",
        "--sample-rate",
        "5",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    first.busy().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert_eq!(
        scalar_i64(w.pool(), "SELECT count(*) FROM regard.analysis").await,
        0,
        "killed before committing"
    );

    let mut second = w.setup.worker("second", &[]);
    second.ready().await;
    let events = w
        .broker
        .events(1, Duration::from_secs(120), "the redelivered trailer")
        .await;
    assert_eq!(events[0]["job_id"], "slow-trailer");
    assert_eq!(events[0]["outcome"], "completed", "{:#}", events[0]);
    let extra = w.broker.more_events(Duration::from_secs(2)).await;
    assert!(extra.is_empty(), "one result only: {extra:#?}");
    let rows: Vec<(String, Option<f64>)> =
        sqlx::query_as("SELECT job_id, sample_rate FROM regard.analysis")
            .fetch_all(w.pool())
            .await
            .unwrap();
    assert_eq!(rows, [("slow-trailer".to_string(), Some(5.0))]);
    assert_eq!(w.broker.waiting_jobs().await, 0);
    second.stop(Duration::from_secs(20)).await;
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_back_or_finishes_the_job_and_exits_zero() {
    let _turn = SERIAL.lock().await;
    let mut w = World::new("term").await;
    let trailer = w.media("trailers/t2_854x480.mp4");
    let jobs_queue = w.broker.topology.jobs_queue();

    // A deadline shorter than the job: handed back, and the process leaves at once even though
    // the analysis is still running on a blocking thread.
    let mut hasty = w
        .setup
        .worker("hasty", &[("REGARD_SHUTDOWN_DEADLINE", "1")]);
    hasty.ready().await;
    let out = w.setup.enqueue(&[
        "--kind",
        "trailer",
        "--source",
        &trailer,
        "--title",
        "Term",
        "--job-id",
        "term-trailer",
        "--sample-rate",
        "5",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    hasty.busy().await;
    let t = Instant::now();
    hasty.stop(Duration::from_secs(10)).await;
    println!("handed back and exited in {:.1?}", t.elapsed());
    assert_eq!(
        w.broker.message_count(&jobs_queue).await,
        1,
        "the job is back"
    );
    assert_eq!(
        scalar_i64(w.pool(), "SELECT count(*) FROM regard.analysis").await,
        0
    );
    // The ledger says where the job is: waiting in the queue again, not running, one attempt
    // started and none finished.
    let (status, attempts, finished): (String, i32, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as(
            "SELECT status, attempts, finished_at FROM regard.job WHERE job_id = 'term-trailer'",
        )
        .fetch_one(w.pool())
        .await
        .unwrap();
    assert_eq!((status.as_str(), attempts, finished), ("queued", 1, None));

    // A deadline long enough: the job in flight finishes, is committed and acked, then exit 0.
    let mut patient = w
        .setup
        .worker("patient", &[("REGARD_SHUTDOWN_DEADLINE", "120")]);
    patient.ready().await;
    patient.busy().await;
    let t = Instant::now();
    patient.stop(Duration::from_secs(120)).await;
    println!("finished the job and exited in {:.1?}", t.elapsed());
    let events = w
        .broker
        .events(1, Duration::from_secs(5), "the finished trailer")
        .await;
    assert_eq!(events[0]["job_id"], "term-trailer");
    assert_eq!(events[0]["outcome"], "completed");
    assert_eq!(
        scalar_i64(w.pool(), "SELECT count(*) FROM regard.analysis").await,
        1
    );
    assert_eq!(w.broker.waiting_jobs().await, 0);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_200_poster_jobs_and_do_each_once() {
    let _turn = SERIAL.lock().await;
    let mut w = World::new("two").await;
    let n = 200;
    let files = poster_variants(&w.setup.media_root, n);
    let mut csv = String::from("kind,source,title,job_id\n");
    for (i, f) in files.iter().enumerate() {
        csv += &format!("poster,{f},Film {i},job-{i:03}\n");
    }
    let file = w.setup.logs.join("jobs.csv");
    std::fs::write(&file, csv).unwrap();
    let mut a = w.setup.worker("a", &[]);
    let mut b = w.setup.worker("b", &[]);
    a.ready().await;
    b.ready().await;
    let t = Instant::now();
    let out = w.setup.enqueue(&["--file", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let events = w
        .broker
        .events(n, Duration::from_secs(200), "200 posters")
        .await;
    println!("{n} posters, two workers: {:.1?}", t.elapsed());
    let ids: HashSet<&str> = events
        .iter()
        .map(|e| e["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), n, "every job once");
    assert!(
        events
            .iter()
            .all(|e| e["outcome"] == "completed" && e["summary"]["new"] == true)
    );
    let extra = w.broker.more_events(Duration::from_secs(1)).await;
    assert!(extra.is_empty(), "no job twice: {extra:#?}");
    let pool = w.pool();
    assert_eq!(
        scalar_i64(pool, "SELECT count(*) FROM regard.analysis").await,
        n as i64
    );
    assert_eq!(
        scalar_i64(pool, "SELECT count(DISTINCT job_id) FROM regard.analysis").await,
        n as i64
    );
    let done_a = a
        .metric("regard_jobs_total{outcome=\"completed\",kind=\"poster\"}")
        .unwrap();
    let done_b = b
        .metric("regard_jobs_total{outcome=\"completed\",kind=\"poster\"}")
        .unwrap();
    println!("worker a: {done_a} jobs, worker b: {done_b} jobs");
    assert_eq!(done_a + done_b, n as f64);
    assert!(done_a > 0.0 && done_b > 0.0, "both workers took jobs");
    a.stop(Duration::from_secs(20)).await;
    b.stop(Duration::from_secs(20)).await;
    w.finish().await;
}

/// A database outage far longer than the retry schedule allows (two attempts, 0.5 s apart):
/// the worker stops taking jobs while the database is unreachable, says so on /readyz, spends
/// no attempt and dead-letters nothing, then takes them again and completes each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_pauses_consumption_and_dead_letters_nothing() {
    let _turn = SERIAL.lock().await;
    let pg = tokio::task::spawn_blocking(|| {
        let pg = PrivatePg::init();
        pg.start();
        pg
    })
    .await
    .unwrap();
    let mut w = World::with_db("outage", None, pg.url(), 2).await;
    let files = poster_variants(&w.setup.media_root, 3);
    let mut worker = w.setup.worker("w1", &[]);
    worker.ready().await;

    pg.stop();
    let stopped = Instant::now();
    let probe = &worker;
    eventually(
        Duration::from_secs(20),
        "readiness reports the database",
        || async move {
            probe
                .http("/readyz")
                .filter(|(s, b)| *s == 503 && b.contains("database"))
                .map(|_| ())
        },
    )
    .await;
    for (i, f) in files.iter().enumerate() {
        let id = format!("outage-{i}");
        let out = w.setup.enqueue(&[
            "--kind", "poster", "--source", f, "--title", "Outage", "--job-id", &id,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    // The first job finds the database down; the worker hands it back and stops consuming.
    let broker = &w.broker;
    eventually(
        Duration::from_secs(20),
        "all three jobs waiting, none taken",
        || async move {
            let in_flight = probe.metric("regard_jobs_in_flight").unwrap_or(0.0) as u32;
            let waiting = broker.message_count(&broker.topology.jobs_queue()).await;
            (waiting == 3 && in_flight == 0).then_some(())
        },
    )
    .await;
    assert!(
        worker
            .log()
            .contains("not taking jobs until it answers again"),
        "{}",
        worker.log()
    );
    // Ten seconds of outage: the old schedule would have dead-lettered every job by now.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(stopped.elapsed())).await;
    let during = w.broker.more_events(Duration::from_secs(1)).await;
    assert!(
        during.iter().all(|e| e["outcome"] != "failed"),
        "nothing fails for an outage: {during:#?}"
    );
    assert_eq!(
        w.broker
            .message_count(&w.broker.topology.dead_queue())
            .await,
        0
    );
    assert_eq!(
        w.broker
            .message_count(&w.broker.topology.jobs_queue())
            .await,
        3,
        "the jobs wait in the jobs queue, not in a retry queue"
    );
    let (status, body) = worker.http("/readyz").expect("readyz answers");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database"), "{body}");
    worker.assert_alive();
    // Jobs handed back for the outage were not interrupted by a shutdown (nor counted so).
    assert!(
        !worker.log().contains("handed back at shutdown"),
        "{}",
        worker.log()
    );

    pg.start();
    let events = w
        .broker
        .final_events(3, Duration::from_secs(60), "jobs after the outage")
        .await;
    let ids: HashSet<&str> = events
        .iter()
        .map(|e| e["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{events:#?}");
    assert!(events.iter().all(|e| e["outcome"] == "completed"));
    assert!(
        events.iter().all(|e| e["attempt"] == 1),
        "the outage spent no attempt: {events:#?}"
    );
    let extra = w.broker.more_events(Duration::from_secs(2)).await;
    assert!(extra.is_empty(), "each once: {extra:#?}");
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&pg.url())
        .await
        .unwrap();
    assert_eq!(
        scalar_i64(
            &pool,
            "SELECT count(*) FROM regard.analysis WHERE status = 'succeeded'"
        )
        .await,
        3
    );
    assert_eq!(
        scalar_i64(&pool, "SELECT count(*) FROM regard.analysis").await,
        3
    );
    assert_eq!(
        scalar_i64(
            &pool,
            "SELECT count(*) FROM regard.job WHERE status = 'succeeded'"
        )
        .await,
        3
    );
    pool.close().await;
    assert_eq!(w.broker.waiting_jobs().await, 0);
    assert_eq!(
        w.broker
            .message_count(&w.broker.topology.dead_queue())
            .await,
        0
    );
    worker.ready().await;
    worker.stop(Duration::from_secs(20)).await;
    w.finish().await;
    tokio::task::spawn_blocking(move || drop(pg)).await.unwrap();
}

/// A job that outlives `REGARD_JOB_TIMEOUT` fails at the deadline with `job_timeout`, a
/// retryable failure recorded in the ledger; its analysis thread stops at its next frame and
/// gives the one pipeline back, so the next job on the same one-slot worker completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_timeout_fails_on_time_and_the_next_job_completes() {
    let _turn = SERIAL.lock().await;
    let mut w = World::new("jobtimeout").await;
    let timeout_s = 5;
    // Every frame of a 23 s trailer (25 per second): far longer than 5 s of analysis anywhere.
    let mut worker = w.setup.worker(
        "w1",
        &[
            ("REGARD_JOB_TIMEOUT", &timeout_s.to_string()),
            ("REGARD_SAMPLE_RATE", "25"),
        ],
    );
    worker.ready().await;
    let trailer = w.media("trailers/t2_854x480.mp4");
    let poster = w.media("faces/astronaut.png");
    let started = Instant::now();
    for (id, kind, source) in [
        ("slow-trailer", "trailer", trailer.as_str()),
        ("next-poster", "poster", poster.as_str()),
    ] {
        let out = w.setup.enqueue(&[
            "--kind", kind, "--source", source, "--title", "T", "--job-id", id,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let first = w
        .broker
        .events(1, Duration::from_secs(60), "the trailer's timeout")
        .await
        .remove(0);
    let elapsed = started.elapsed();
    assert_eq!(first["job_id"], "slow-trailer", "{first:#}");
    assert_eq!(first["outcome"], "retrying", "retryable: {first:#}");
    assert_eq!(first["error_code"], "job_timeout", "{first:#}");
    assert!(
        elapsed >= Duration::from_secs(timeout_s) && elapsed < Duration::from_secs(timeout_s + 15),
        "failed at its deadline: {elapsed:?}"
    );
    let (status, code): (String, String) =
        sqlx::query_as("SELECT status, error_code FROM regard.job WHERE job_id = 'slow-trailer'")
            .fetch_one(w.pool())
            .await
            .unwrap();
    // Retrying, or already running its next attempt.
    assert!(
        matches!(status.as_str(), "retrying" | "running") && code == "job_timeout",
        "{status} {code}"
    );

    // The slot is free: the poster waiting behind the trailer completes on the same worker,
    // within its own 5 s (it would wait for the trailer's thread if that kept the pipeline).
    let next = loop {
        let e = w
            .broker
            .events(1, Duration::from_secs(60), "the poster after the timeout")
            .await
            .remove(0);
        if e["job_id"] == "next-poster" {
            break e;
        }
    };
    assert_eq!(next["outcome"], "completed", "{next:#}");
    assert_eq!(
        scalar_i64(
            w.pool(),
            "SELECT count(*) FROM regard.analysis WHERE status = 'succeeded'"
        )
        .await,
        1,
        "the poster only: a trailer stopped by its timeout stores no partial result"
    );
    worker.assert_alive();
    assert_eq!(worker.http("/readyz").map(|(code, _)| code), Some(200));
    worker.stop(Duration::from_secs(20)).await;
    w.finish().await;
}
