//! What operators watch, end to end: the real `regard worker` binary against the real RabbitMQ
//! and PostgreSQL, scraped by a real Prometheus (Debian's `prometheus`, started privately on a
//! free port), and the Grafana dashboard and alert rules checked against the worker's real
//! `/metrics`. Each test has its own database and queue prefix and removes them at the end.

mod common;

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel, Connection};
use regard::queue::Topology;
use regard::queue::topology::JOB_ROUTING_KEY;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection as _};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// One worker at a time: both tests run CPU-bound workers on a small machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn amqp_url() -> String {
    std::env::var("REGARD_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn admin_db_url() -> String {
    std::env::var("REGARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().unwrap().port()
}

/// GET over plain HTTP/1.0 (so no chunked bodies); `None` while nothing answers.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// Polls `check` every 200 ms until it returns `Some`, or panics with `what` after `limit`.
async fn eventually<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < until, "timed out after {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A child process killed and reaped when dropped (a failed test leaves nothing running).
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_alive(&mut self, what: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{what} exited ({status}):\n{}", self.log());
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            if let Err(e) = self.child.kill() {
                eprintln!("could not kill {}: {e}", self.child.id());
            }
            if let Err(e) = self.child.wait() {
                eprintln!("could not reap {}: {e}", self.child.id());
            }
        }
    }
}

/// One test's database, queues, media folder and worker process.
struct World {
    db_name: String,
    admin: PgConnectOptions,
    pool: PgPool,
    topology: Topology,
    conn: Connection,
    channel: Channel,
    dir: tempfile::TempDir,
    worker: Process,
    port: u16,
}

impl World {
    async fn start(name: &str) -> World {
        let admin = PgConnectOptions::from_str(&admin_db_url()).expect("REGARD_TEST_DATABASE_URL");
        let mut conn = admin.connect().await.unwrap_or_else(|e| {
            panic!("PostgreSQL must be running for these tests ({e}); they never skip")
        });
        let db_name = format!("regard_otest_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        conn.close().await.unwrap();
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(admin.clone().database(&db_name))
            .await
            .expect("connect to the test database");
        let (base, _) = admin_db_url()
            .rsplit_once('/')
            .map(|(b, d)| (b.to_string(), d.to_string()))
            .expect("a database URL has a path");

        let topology = Topology {
            prefix: format!(
                "regard-otest-{name}-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            delivery_limit: 5,
            retry_delays: vec![Duration::from_millis(500)],
            max_attempts: 2,
            ..Topology::default()
        };
        let url = amqp_url();
        let conn = regard::queue::connect(&url, "regard observability tests")
            .await
            .unwrap_or_else(|e| panic!("RabbitMQ must be running for these tests: {e}"));
        let channel = conn.create_channel().await.unwrap();
        regard::queue::setup(&url, &topology).await.unwrap();

        let dir = tempfile::tempdir().unwrap();
        let media = dir.path().join("media");
        std::fs::create_dir(&media).unwrap();
        for f in ["posters/duo_1000x1500.jpg", "trailers/t2_854x480.mp4"] {
            let from = common::root().join("fixtures").join(f);
            std::fs::copy(&from, media.join(Path::new(f).file_name().unwrap())).unwrap();
        }
        let port = free_port();
        let log = dir.path().join("worker.log");
        let child = Command::new(env!("CARGO_BIN_EXE_regard"))
            .current_dir(common::root())
            .arg("worker")
            .env("REGARD_AMQP_URL", &url)
            .env("REGARD_QUEUE_PREFIX", &topology.prefix)
            .env("REGARD_DELIVERY_LIMIT", "5")
            .env("REGARD_RETRY_DELAYS", "0.5")
            .env("REGARD_MAX_ATTEMPTS", "2")
            .env("REGARD_DATABASE_URL", format!("{base}/{db_name}"))
            .env("REGARD_MEDIA_ROOTS", media.canonicalize().unwrap())
            .env("REGARD_HTTP_LISTEN", format!("127.0.0.1:{port}"))
            .env("REGARD_JOB_SLOTS", "1")
            .env("REGARD_ORT_THREADS", "1")
            .env("REGARD_SHUTDOWN_DEADLINE", "120")
            .env_remove("REGARD_ALLOW_PRIVATE")
            .env("REGARD_LOG", "warn,regard=info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("regard worker starts");
        let mut w = World {
            db_name,
            admin,
            pool,
            topology,
            conn,
            channel,
            dir,
            worker: Process { child, log },
            port,
        };
        let until = Instant::now() + Duration::from_secs(90);
        loop {
            w.worker.assert_alive("worker");
            if let Some((200, _)) = http_get(w.port, "/readyz") {
                break;
            }
            assert!(
                Instant::now() < until,
                "worker not ready:\n{}",
                w.worker.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        w
    }

    fn media(&self, name: &str) -> String {
        self.dir
            .path()
            .join("media")
            .join(name)
            .canonicalize()
            .unwrap()
            .display()
            .to_string()
    }

    /// `regard enqueue` one job, as an operator would.
    fn enqueue(&self, kind: &str, source: &str, id: &str) {
        let out = Command::new(env!("CARGO_BIN_EXE_regard"))
            .current_dir(common::root())
            .args(["enqueue", "--kind", kind, "--source", source])
            .args(["--title", "Observed", "--job-id", id, "--sample-rate", "5"])
            .env("REGARD_AMQP_URL", amqp_url())
            .env("REGARD_QUEUE_PREFIX", &self.topology.prefix)
            .env("REGARD_DELIVERY_LIMIT", "5")
            .env("REGARD_RETRY_DELAYS", "0.5")
            .env("REGARD_MAX_ATTEMPTS", "2")
            .output()
            .expect("regard enqueue runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    async fn publish_raw(&self, body: &[u8]) {
        self.channel
            .basic_publish(
                self.topology.jobs_exchange().into(),
                JOB_ROUTING_KEY.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    fn metrics(&self) -> String {
        match http_get(self.port, "/metrics") {
            Some((200, body)) => body,
            other => panic!("/metrics: {other:?}"),
        }
    }

    /// A sample of /metrics by its exact name and labels.
    fn sample(&self, series: &str) -> Option<f64> {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    async fn finish(mut self) {
        self.worker.assert_alive("worker");
        // Stopped first: a running worker would re-declare the queues deleted under it.
        self.worker.child.kill().expect("kill the worker");
        self.worker.child.wait().expect("reap the worker");
        self.topology.delete(&self.channel).await.unwrap();
        self.conn.close(200, "test done".into()).await.unwrap();
        self.pool.close().await;
        common::drop_database(self.admin.clone(), self.db_name.clone());
    }
}

/// Sample names of a Prometheus text exposition (`name{labels} value` or `name value`).
fn sample_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// Every `regard_…` metric name in a text (PromQL, YAML, JSON).
fn regard_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("regard_") {
        let boundary = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if boundary {
            out.insert(name.clone());
        }
        rest = &rest[at + name.len()..];
    }
    out
}

/// A private Prometheus scraping one target every second.
struct Prometheus {
    process: Process,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(target_port: u16) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: regard-worker\n    static_configs:\n      \
                 - targets: ['127.0.0.1:{target_port}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = dir.path().join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("Debian's prometheus is installed (scripts/bootstrap)");
        let mut p = Prometheus {
            process: Process { child, log },
            port,
            _dir: dir,
        };
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            p.process.assert_alive("prometheus");
            if let Some((200, _)) = http_get(port, "/-/ready") {
                return p;
            }
            assert!(
                Instant::now() < until,
                "prometheus not ready:\n{}",
                p.process.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// An instant query's result vector.
    fn query(&self, promql: &str) -> Vec<Value> {
        let mut encoded = String::new();
        for b in promql.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                encoded.push(b as char);
            } else {
                encoded += &format!("%{b:02X}");
            }
        }
        let (status, body) = http_get(self.port, &format!("/api/v1/query?query={encoded}"))
            .expect("prometheus answers");
        assert_eq!(status, 200, "{promql}: {body}");
        let v: Value = serde_json::from_str(&body).expect("JSON from the query API");
        assert_eq!(v["status"], "success", "{body}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

fn value_of(sample: &Value) -> f64 {
    sample["value"][1].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_jobs_by_outcome_and_kind_and_readiness_drops_while_draining() {
    let _turn = SERIAL.lock().await;
    let mut w = World::start("prom").await;
    w.enqueue("poster", &w.media("duo_1000x1500.jpg"), "obs-poster");
    w.publish_raw(b"{\"version\": 1, \"this is\": not json")
        .await;
    eventually(
        Duration::from_secs(60),
        "poster and malformed settled",
        || {
            let done = w.sample("regard_jobs_total{outcome=\"completed\",kind=\"poster\"}")?;
            let bad = w.sample("regard_jobs_total{outcome=\"malformed\",kind=\"unknown\"}")?;
            (done == 1.0 && bad == 1.0).then_some(())
        },
    )
    .await;

    let prometheus = Prometheus::start(w.port).await;
    let jobs = eventually(Duration::from_secs(30), "a scrape with the jobs", || {
        let r = prometheus.query("regard_jobs_total{job=\"regard-worker\"}");
        (!r.is_empty()).then_some(r)
    })
    .await;
    let mut nonzero: Vec<(String, String, f64)> = jobs
        .iter()
        .filter(|s| value_of(s) != 0.0)
        .map(|s| {
            let m = &s["metric"];
            (
                m["outcome"].as_str().unwrap().to_string(),
                m["kind"].as_str().unwrap().to_string(),
                value_of(s),
            )
        })
        .collect();
    nonzero.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(
        nonzero,
        [
            ("completed".to_string(), "poster".to_string(), 1.0),
            ("malformed".to_string(), "unknown".to_string(), 1.0),
        ],
        "{jobs:#?}"
    );
    assert_eq!(
        jobs.len(),
        7 * 3,
        "every outcome × kind series exists, at zero"
    );
    let by_kind = prometheus.query("sum by (kind) (regard_jobs_total{outcome=\"completed\"})");
    assert_eq!(by_kind.len(), 3, "{by_kind:#?}");
    for s in &by_kind {
        let want = if s["metric"]["kind"] == "poster" {
            1.0
        } else {
            0.0
        };
        assert_eq!(value_of(s), want, "{s}");
    }

    // Build info names the model set the analysis was stored under.
    let info = prometheus.query("regard_build_info");
    assert_eq!(info.len(), 1, "{info:#?}");
    let stored: String = sqlx::query_scalar(
        "SELECT model_set_sha256 FROM regard.analysis WHERE job_id = 'obs-poster'",
    )
    .fetch_one(&w.pool)
    .await
    .unwrap();
    assert_eq!(info[0]["metric"]["model_set"], stored.as_str());
    assert_eq!(info[0]["metric"]["version"], regard::PIPELINE_VERSION);
    assert_eq!(
        info[0]["metric"]["algorithm"],
        regard::ALGORITHM_VERSION.to_string()
    );
    // Per-stage time of the one poster, and the queues as the worker read them.
    for stage in ["fetch", "analyse", "commit"] {
        let r = prometheus.query(&format!(
            "regard_job_stage_seconds_count{{kind=\"poster\",stage=\"{stage}\"}}"
        ));
        assert_eq!(r.iter().map(value_of).collect::<Vec<_>>(), [1.0], "{stage}");
    }
    let consumers = prometheus.query(&format!(
        "regard_queue_consumers{{queue=\"{}\"}}",
        w.topology.jobs_queue()
    ));
    assert_eq!(
        consumers.iter().map(value_of).collect::<Vec<_>>(),
        [1.0],
        "this worker consumes the jobs queue"
    );
    // The worker reads queue depths every 15 s: the next read sees the malformed message.
    let dead_queue = format!(
        "regard_queue_messages{{queue=\"{}\"}}",
        w.topology.dead_queue()
    );
    eventually(
        Duration::from_secs(40),
        "the malformed message counted in the dead-letter queue",
        || {
            let r = prometheus.query(&dead_queue);
            (r.iter().map(value_of).collect::<Vec<_>>() == [1.0]).then_some(())
        },
    )
    .await;

    // SIGTERM with a trailer in flight: /readyz answers 503 at once, /healthz stays 200, and
    // the worker finishes the job before it exits 0.
    w.enqueue("trailer", &w.media("t2_854x480.mp4"), "obs-trailer");
    eventually(Duration::from_secs(60), "the trailer in flight", || {
        (w.sample("regard_jobs_in_flight")? == 1.0).then_some(())
    })
    .await;
    assert_eq!(http_get(w.port, "/readyz").map(|r| r.0), Some(200));
    let pid = w.worker.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let (status, body) = eventually(Duration::from_secs(5), "readiness drops", || {
        http_get(w.port, "/readyz").filter(|r| r.0 == 503)
    })
    .await;
    assert!(body.contains("draining"), "{status}: {body}");
    w.worker.assert_alive("draining worker");
    assert_eq!(http_get(w.port, "/healthz").map(|r| r.0), Some(200));
    assert_eq!(w.sample("regard_worker_draining"), Some(1.0));
    let until = Instant::now() + Duration::from_secs(150);
    let exit = loop {
        if let Some(status) = w.worker.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < until,
            "worker still draining:\n{}",
            w.worker.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(exit.code(), Some(0), "{}", w.worker.log());
    let trailer: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM regard.analysis WHERE job_id = 'obs-trailer' AND status = 'succeeded'",
    )
    .fetch_one(&w.pool)
    .await
    .unwrap();
    assert_eq!(trailer, 1, "the job in flight finished during the drain");
    drop(prometheus);
    w.topology.delete(&w.channel).await.unwrap();
    w.conn.close(200, "test done".into()).await.unwrap();
    w.pool.close().await;
    common::drop_database(w.admin.clone(), w.db_name.clone());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_the_alerts_name_is_exported() {
    let _turn = SERIAL.lock().await;
    let w = World::start("dash").await;
    // A poster and a malformed message: every family has samples (errors need a failure), and
    // the queue gauges appear with the first poll.
    w.enqueue("poster", &w.media("duo_1000x1500.jpg"), "dash-poster");
    w.publish_raw(b"not a job").await;
    let exported = eventually(
        Duration::from_secs(60),
        "jobs settled and queues read",
        || {
            let text = w.metrics();
            let names = sample_names(&text);
            (w.sample("regard_jobs_total{outcome=\"completed\",kind=\"poster\"}") == Some(1.0)
                && names.contains("regard_job_errors_total")
                && names.contains("regard_queue_messages"))
            .then_some(names)
        },
    )
    .await;

    let root = common::root();
    let board: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/dashboards/regard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let exprs: Vec<String> = board["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().expect("a query").to_string())
        .collect();
    assert!(exprs.len() >= 10, "{} queries", exprs.len());
    let mut named = BTreeSet::new();
    for e in &exprs {
        let names = regard_names(e);
        assert!(
            !names.is_empty(),
            "a query that names no regard metric: {e}"
        );
        named.extend(names);
    }
    let rules = std::fs::read_to_string(root.join("deploy/prometheus/regard.rules.yaml")).unwrap();
    let in_rules = regard_names(&rules);
    assert!(in_rules.len() >= 5, "{in_rules:?}");
    named.extend(in_rules);
    let missing: Vec<&String> = named.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "named by the dashboard or the alerts but not exported: {missing:?}\nexported: {exported:?}"
    );
    // The panels the operators asked for are there.
    for wanted in [
        "regard_jobs_total",
        "regard_job_duration_seconds_bucket",
        "regard_job_errors_total",
        "regard_queue_messages",
        "regard_jobs_in_flight",
    ] {
        assert!(named.contains(wanted), "no panel or rule uses {wanted}");
    }
    w.finish().await;
}

#[test]
fn metric_names_are_found_in_promql_and_expositions() {
    assert_eq!(
        regard_names("sum by (le) (rate(regard_job_wait_seconds_bucket[5m])) / x_regard_no"),
        BTreeSet::from(["regard_job_wait_seconds_bucket".to_string()])
    );
    assert_eq!(
        sample_names("# HELP a b\nregard_a_total{x=\"1\"} 2\nregard_b 1\n"),
        BTreeSet::from(["regard_a_total".to_string(), "regard_b".to_string()])
    );
}
