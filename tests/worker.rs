//! `regard worker` end to end: the real binary as worker processes, the real RabbitMQ
//! (REGARD_TEST_AMQP_URL) and PostgreSQL (REGARD_TEST_DATABASE_URL), the real models and the
//! committed fixtures. Each test has its own database and queue prefix and removes them at the
//! end; the database-outage test runs a private PostgreSQL cluster and never touches the shared
//! one. Services that are down fail the tests loudly.
//!
//! The tests take turns (one lock): each runs CPU-bound worker processes, and on two cores
//! parallel tests would only make every timing bound meaningless.

mod common;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use regard::queue::Topology;
use regard::queue::topology::{HEADER_ERROR, HEADER_ERROR_CODE, JOB_ROUTING_KEY, header_str};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection as _};
use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const RETRY_DELAYS: &str = "0.5,1";

fn amqp_url() -> String {
    std::env::var("REGARD_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn admin_db_url() -> String {
    std::env::var("REGARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().unwrap().port()
}

/// Polls `check` every 100 ms until it returns `Some`, or panics with `what` after `limit`.
async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < until, "timed out after {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ------------------------------------------------------------------ database

/// A fresh database on the shared server, dropped at the end (even on panic).
struct TestDb {
    name: String,
    admin: PgConnectOptions,
    url: String,
    pool: PgPool,
}

impl TestDb {
    async fn new() -> TestDb {
        let url = admin_db_url();
        let admin = PgConnectOptions::from_str(&url).expect("REGARD_TEST_DATABASE_URL");
        let mut conn = admin.connect().await.unwrap_or_else(|e| {
            panic!("PostgreSQL must be running at {url} for these tests ({e}); they never skip")
        });
        let name = format!("regard_wtest_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        conn.close().await.expect("close the admin connection");
        let options = admin.clone().database(&name);
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .expect("connect to the test database");
        let (base, _) = url.rsplit_once('/').expect("a database URL has a path");
        TestDb {
            url: format!("{base}/{name}"),
            name,
            admin,
            pool,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        common::drop_database(self.admin.clone(), self.name.clone());
    }
}

async fn scalar_i64(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

// ------------------------------------------------------------------ broker

/// The test's queue names, a connection to inspect them and a queue bound to the results.
struct Broker {
    topology: Topology,
    conn: Connection,
    channel: Channel,
    results: lapin::Consumer,
}

impl Broker {
    async fn new(name: &str, max_attempts: u32) -> Broker {
        let topology = Topology {
            prefix: format!("regard-wtest-{name}-{}", short_id()),
            delivery_limit: 5,
            retry_delays: vec![Duration::from_millis(500), Duration::from_secs(1)],
            max_attempts,
            ..Topology::default()
        };
        let url = amqp_url();
        let conn = regard::queue::connect(&url, "regard worker tests")
            .await
            .unwrap_or_else(|e| panic!("RabbitMQ must be running for these tests: {e}"));
        let channel = conn.create_channel().await.unwrap();
        regard::queue::setup(&url, &topology).await.unwrap();
        let q = channel
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
        channel
            .queue_bind(
                q.name().clone(),
                topology.results_exchange().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let results = channel
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
            .unwrap();
        Broker {
            topology,
            conn,
            channel,
            results,
        }
    }

    /// The next `n` result events, or a panic naming `what` after `limit`.
    async fn events(&mut self, n: usize, limit: Duration, what: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let until = tokio::time::Instant::now() + limit;
        while out.len() < n {
            match tokio::time::timeout_at(until, self.results.next()).await {
                Ok(Some(Ok(d))) => out.push(serde_json::from_slice(&d.data).unwrap()),
                Ok(other) => panic!("results consumer ended: {other:?}"),
                Err(_) => panic!(
                    "{what}: {} of {n} result events after {limit:?}: {out:#?}",
                    out.len()
                ),
            }
        }
        out
    }

    /// Events arriving within `wait` (to show that nothing more comes).
    /// The next `n` events that end a job (completed, failed, malformed), skipping the
    /// `retrying` events a job sends on its way.
    async fn final_events(&mut self, n: usize, limit: Duration, what: &str) -> Vec<Value> {
        let until = tokio::time::Instant::now() + limit;
        let mut out = Vec::new();
        while out.len() < n {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            let e = self.events(1, left, what).await.remove(0);
            if e["outcome"] != "retrying" {
                out.push(e);
            }
        }
        out
    }

    async fn more_events(&mut self, wait: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(Some(Ok(d))) = tokio::time::timeout(wait, self.results.next()).await {
            out.push(serde_json::from_slice(&d.data).unwrap());
        }
        out
    }

    async fn message_count(&self, queue: &str) -> u32 {
        self.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count()
    }

    /// Ready messages in the jobs queue and the retry queues.
    async fn waiting_jobs(&self) -> u32 {
        let mut n = self.message_count(&self.topology.jobs_queue()).await;
        for d in &self.topology.retry_delays {
            n += self.message_count(&self.topology.retry_queue(*d)).await;
        }
        n
    }

    async fn dead_letters(&self) -> Vec<lapin::message::BasicGetMessage> {
        let mut out = Vec::new();
        while let Some(m) = self
            .channel
            .basic_get(
                self.topology.dead_queue().into(),
                BasicGetOptions::default(),
            )
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

    async fn publish_raw(&self, body: &[u8]) {
        let confirm = self
            .channel
            .basic_publish(
                self.topology.jobs_exchange().into(),
                JOB_ROUTING_KEY.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default(),
            )
            .await
            .unwrap();
        confirm.await.unwrap();
    }

    async fn cleanup(self) {
        self.topology.delete(&self.channel).await.unwrap();
        self.conn.close(200, "test done".into()).await.unwrap();
    }
}

// ------------------------------------------------------------------ processes

/// What every `regard` process of a test shares: broker names, database, media root.
#[derive(Clone)]
struct Setup {
    prefix: String,
    max_attempts: u32,
    db_url: String,
    media_root: PathBuf,
    logs: PathBuf,
}

impl Setup {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_regard"));
        c.current_dir(common::root())
            .args(args)
            .env("REGARD_AMQP_URL", amqp_url())
            .env("REGARD_QUEUE_PREFIX", &self.prefix)
            .env("REGARD_DELIVERY_LIMIT", "5")
            .env("REGARD_RETRY_DELAYS", RETRY_DELAYS)
            .env("REGARD_MAX_ATTEMPTS", self.max_attempts.to_string())
            .env("REGARD_DATABASE_URL", &self.db_url)
            .env("REGARD_MEDIA_ROOTS", &self.media_root)
            .env_remove("REGARD_ALLOW_PRIVATE")
            .env("REGARD_LOG", "warn,regard=info")
            .env("NO_COLOR", "1");
        c
    }

    fn enqueue(&self, args: &[&str]) -> Output {
        self.command(&[&["enqueue"], args].concat())
            .output()
            .expect("regard enqueue runs")
    }

    /// Starts `regard worker` (one slot, one inference thread unless `extra` says otherwise).
    fn worker(&self, name: &str, extra: &[(&str, &str)]) -> WorkerProcess {
        let port = free_port();
        let log = self.logs.join(format!("{name}.log"));
        let mut c = self.command(&["worker"]);
        c.env("REGARD_HTTP_LISTEN", format!("127.0.0.1:{port}"))
            .env("REGARD_JOB_SLOTS", "1")
            .env("REGARD_ORT_THREADS", "1")
            .env("REGARD_SHUTDOWN_DEADLINE", "30")
            .env("REGARD_RECONNECT_MAX", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in extra {
            c.env(k, v);
        }
        WorkerProcess {
            child: c.spawn().expect("regard worker starts"),
            port,
            log,
        }
    }
}

struct WorkerProcess {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl WorkerProcess {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn http(&self, path: &str) -> Option<(u16, String)> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let status = text.split(' ').nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n")?.1.to_string();
        Some((status, body))
    }

    /// A value from /metrics (first sample whose name and labels start with `prefix`).
    fn metric(&self, prefix: &str) -> Option<f64> {
        let (_, body) = self.http("/metrics")?;
        body.lines()
            .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("worker exited ({status}):\n{}", self.log());
        }
    }

    async fn ready(&mut self) {
        let limit = Duration::from_secs(60);
        let until = Instant::now() + limit;
        loop {
            self.assert_alive();
            if let Some((200, _)) = self.http("/readyz") {
                return;
            }
            assert!(
                Instant::now() < until,
                "worker not ready after {limit:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the worker is processing a job.
    async fn busy(&mut self) {
        let limit = Duration::from_secs(30);
        let until = Instant::now() + limit;
        loop {
            self.assert_alive();
            if self.metric("regard_jobs_in_flight") == Some(1.0) {
                return;
            }
            assert!(Instant::now() < until, "no job in flight:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -{name} {}", self.child.id());
    }

    /// Waits for the process to end; panics after `limit`.
    async fn exit_status(&mut self, limit: Duration) -> std::process::ExitStatus {
        let until = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < until,
                "worker still running {limit:?} later:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then the exit status must be 0 within `limit`.
    async fn stop(mut self, limit: Duration) {
        self.signal("TERM");
        let status = self.exit_status(limit).await;
        assert_eq!(status.code(), Some(0), "worker exit:\n{}", self.log());
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // Left running by a failed test: kill it so it does not outlive the test.
            if let Err(e) = self.child.kill() {
                eprintln!("could not kill worker {}: {e}", self.child.id());
            }
            if let Err(e) = self.child.wait() {
                eprintln!("could not reap worker {}: {e}", self.child.id());
            }
        }
    }
}

// ------------------------------------------------------------------ one test's world

struct World {
    setup: Setup,
    broker: Broker,
    db: Option<TestDb>,
    /// Holds the media root and the logs.
    _dir: tempfile::TempDir,
}

impl World {
    async fn new(name: &str) -> World {
        let db = TestDb::new().await;
        let url = db.url.clone();
        World::with_db(name, Some(db), url, 3).await
    }

    async fn with_db(name: &str, db: Option<TestDb>, db_url: String, max_attempts: u32) -> World {
        let broker = Broker::new(name, max_attempts).await;
        let dir = tempfile::tempdir().unwrap();
        let media_root = dir.path().join("media");
        std::fs::create_dir(&media_root).unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        World {
            setup: Setup {
                prefix: broker.topology.prefix.clone(),
                max_attempts,
                db_url,
                media_root: media_root.canonicalize().unwrap(),
                logs,
            },
            broker,
            db,
            _dir: dir,
        }
    }

    fn pool(&self) -> &PgPool {
        &self.db.as_ref().expect("a shared-server database").pool
    }

    /// Copies a fixture into the media root; returns its path there.
    fn media(&self, fixture: &str) -> String {
        let from = common::root().join("fixtures").join(fixture);
        let to = self
            .setup
            .media_root
            .join(Path::new(fixture).file_name().unwrap());
        std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        to.display().to_string()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.setup.media_root.join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }

    async fn finish(self) {
        self.broker.cleanup().await;
    }
}

fn by_job(events: &[Value]) -> BTreeMap<String, Value> {
    events
        .iter()
        .map(|e| (e["job_id"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

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

/// 200 distinct posters: one fixture with a different JPEG comment each (same pixels, different
/// bytes, so the store keeps 200 analyses).
fn poster_variants(dir: &Path, n: usize) -> Vec<String> {
    let jpeg = std::fs::read(common::root().join("fixtures/posters/duo_1000x1500.jpg")).unwrap();
    assert_eq!(&jpeg[..2], [0xFF, 0xD8], "a JPEG starts with SOI");
    (0..n)
        .map(|i| {
            let text = format!("regard test variant {i}");
            let len = (text.len() + 2) as u16;
            let mut bytes = Vec::with_capacity(jpeg.len() + 64);
            bytes.extend_from_slice(&jpeg[..2]);
            bytes.extend_from_slice(&[0xFF, 0xFE]);
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend_from_slice(text.as_bytes());
            bytes.extend_from_slice(&jpeg[2..]);
            let path = dir.join(format!("variant-{i:03}.jpg"));
            std::fs::write(&path, bytes).unwrap();
            path.display().to_string()
        })
        .collect()
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

// ------------------------------------------------------------------ private PostgreSQL

/// A throwaway PostgreSQL cluster (initdb in a temp dir, its own port and socket directory),
/// stopped and removed on drop. Run as the `postgres` user when the tests run as root, since
/// PostgreSQL refuses to run as root.
struct PrivatePg {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePg {
    fn bin_dir() -> PathBuf {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        dirs.sort();
        dirs.pop()
            .expect("an initdb under /usr/lib/postgresql/*/bin")
    }

    fn is_root() -> bool {
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false)
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(tool);
        let mut c = if Self::is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        c.args(args)
            .env("LC_ALL", "C")
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"))
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn init() -> PrivatePg {
        let dir = tempfile::Builder::new()
            .prefix("regard-pg-")
            .tempdir()
            .unwrap();
        if Self::is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:", &dir.path().display().to_string()])
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown the private cluster directory to postgres");
        }
        let pg = PrivatePg {
            bin: Self::bin_dir(),
            dir,
            port: free_port(),
        };
        let out = pg.run(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        );
        assert!(out.status.success(), "initdb: {}", stderr(&out));
        pg
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("pg.log").display().to_string();
        let out = self.run(
            "pg_ctl",
            &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            stderr(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn stop(&self) {
        let out = self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
        assert!(out.status.success(), "pg_ctl stop: {}", stderr(&out));
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        // Stopping an already stopped cluster fails harmlessly; only report other failures.
        let out = self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
        let text = stderr(&out);
        if !out.status.success() && !text.contains("not running") && !text.contains("PID file") {
            eprintln!("could not stop the private PostgreSQL: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_keeps_the_jobs_until_it_is_back_then_each_completes_once() {
    let _turn = SERIAL.lock().await;
    let pg = tokio::task::spawn_blocking(|| {
        let pg = PrivatePg::init();
        pg.start();
        pg
    })
    .await
    .unwrap();
    // Retries every 0.5–1 s and practically never give up: the outage must not cost a job.
    let mut w = World::with_db("outage", None, pg.url(), 1000).await;
    let files = poster_variants(&w.setup.media_root, 3);
    let mut worker = w.setup.worker("w1", &[]);
    worker.ready().await;

    pg.stop();
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
    // While the database is down: jobs go round the retry queues, none completes, none is dead.
    eventually(
        Duration::from_secs(20),
        "jobs being retried",
        || async move {
            probe
                .metric("regard_job_retries_total")
                .filter(|n| *n >= 3.0)
        },
    )
    .await;
    let broker = &w.broker;
    eventually(
        Duration::from_secs(20),
        "all three jobs waiting",
        || async move {
            let in_flight = probe.metric("regard_jobs_in_flight").unwrap_or(0.0) as u32;
            (broker.waiting_jobs().await + in_flight == 3).then_some(())
        },
    )
    .await;
    let during = w.broker.more_events(Duration::from_secs(2)).await;
    assert!(
        during
            .iter()
            .all(|e| e["outcome"] == "retrying" && e["next_attempt_at"].is_string()),
        "nothing completes without a database, and a scraper hears of each retry: {during:#?}"
    );
    assert_eq!(
        w.broker
            .message_count(&w.broker.topology.dead_queue())
            .await,
        0
    );
    worker.assert_alive();

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
        events.iter().all(|e| e["attempt"].as_u64().unwrap() > 1),
        "{events:#?}"
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
    pool.close().await;
    assert_eq!(w.broker.waiting_jobs().await, 0);
    assert_eq!(
        w.broker
            .message_count(&w.broker.topology.dead_queue())
            .await,
        0
    );
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
