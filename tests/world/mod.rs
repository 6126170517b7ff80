//! What the end-to-end queue tests share (tests/worker.rs, tests/faults.rs): a fresh database
//! and queue prefix per test, the real `regard` binary as worker processes, a results consumer,
//! and a private PostgreSQL cluster for outages.
#![allow(dead_code)]

use crate::common;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use regard::queue::Topology;
use regard::queue::topology::JOB_ROUTING_KEY;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection as _};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub const RETRY_DELAYS: &str = "0.5,1";

pub fn amqp_url() -> String {
    std::env::var("REGARD_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub fn admin_db_url() -> String {
    std::env::var("REGARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().unwrap().port()
}

/// Polls `check` every 100 ms until it returns `Some`, or panics with `what` after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
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
pub struct TestDb {
    pub name: String,
    pub admin: PgConnectOptions,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn new() -> TestDb {
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

pub async fn scalar_i64(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

// ------------------------------------------------------------------ broker

/// The test's queue names, a connection to inspect them and a queue bound to the results.
pub struct Broker {
    pub topology: Topology,
    pub conn: Connection,
    pub channel: Channel,
    pub results: lapin::Consumer,
}

impl Broker {
    pub async fn new(name: &str, max_attempts: u32) -> Broker {
        Broker::at(&amqp_url(), name, max_attempts).await
    }

    /// New queue names on the broker at `url`.
    pub async fn at(url: &str, name: &str, max_attempts: u32) -> Broker {
        let topology = Topology {
            prefix: format!("regard-wtest-{name}-{}", short_id()),
            delivery_limit: 5,
            retry_delays: vec![Duration::from_millis(500), Duration::from_secs(1)],
            max_attempts,
            ..Topology::default()
        };
        Broker::connect(url, topology).await
    }

    /// The queues of `topology` (declared if need be) on the broker at `url`.
    pub async fn connect(url: &str, topology: Topology) -> Broker {
        let url = url.to_string();
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
    pub async fn events(&mut self, n: usize, limit: Duration, what: &str) -> Vec<Value> {
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
    pub async fn final_events(&mut self, n: usize, limit: Duration, what: &str) -> Vec<Value> {
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

    pub async fn more_events(&mut self, wait: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(Some(Ok(d))) = tokio::time::timeout(wait, self.results.next()).await {
            out.push(serde_json::from_slice(&d.data).unwrap());
        }
        out
    }

    pub async fn message_count(&self, queue: &str) -> u32 {
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
    pub async fn waiting_jobs(&self) -> u32 {
        let mut n = self.message_count(&self.topology.jobs_queue()).await;
        for d in &self.topology.retry_delays {
            n += self.message_count(&self.topology.retry_queue(*d)).await;
        }
        n
    }

    pub async fn dead_letters(&self) -> Vec<lapin::message::BasicGetMessage> {
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

    pub async fn publish_raw(&self, body: &[u8]) {
        self.publish_with(body, BasicProperties::default()).await;
    }

    /// Publishes `body` as job `id` (the message id names it, even when the body cannot).
    pub async fn publish_as(&self, id: &str, body: &[u8]) {
        let props = BasicProperties::default()
            .with_message_id(id.into())
            .with_delivery_mode(2);
        self.publish_with(body, props).await;
    }

    async fn publish_with(&self, body: &[u8], props: BasicProperties) {
        let confirm = self
            .channel
            .basic_publish(
                self.topology.jobs_exchange().into(),
                JOB_ROUTING_KEY.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .unwrap();
        confirm.await.unwrap();
    }

    pub async fn cleanup(self) {
        self.topology.delete(&self.channel).await.unwrap();
        self.conn.close(200, "test done".into()).await.unwrap();
    }
}

// ------------------------------------------------------------------ processes

/// What every `regard` process of a test shares: broker names, database, media root.
#[derive(Clone)]
pub struct Setup {
    pub amqp_url: String,
    pub prefix: String,
    pub max_attempts: u32,
    pub db_url: String,
    pub media_root: PathBuf,
    pub logs: PathBuf,
}

impl Setup {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_regard"));
        c.current_dir(common::root())
            .args(args)
            .env("REGARD_AMQP_URL", &self.amqp_url)
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

    pub fn enqueue(&self, args: &[&str]) -> Output {
        self.command(&[&["enqueue"], args].concat())
            .output()
            .expect("regard enqueue runs")
    }

    /// Starts `regard worker` (one slot, one inference thread unless `extra` says otherwise).
    pub fn worker(&self, name: &str, extra: &[(&str, &str)]) -> WorkerProcess {
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
        // An empty value removes the variable (REGARD_LOG: the binary's default filter).
        for (k, v) in extra {
            if v.is_empty() {
                c.env_remove(k);
            } else {
                c.env(k, v);
            }
        }
        WorkerProcess {
            child: c.spawn().expect("regard worker starts"),
            port,
            log,
        }
    }
}

pub struct WorkerProcess {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl WorkerProcess {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn http(&self, path: &str) -> Option<(u16, String)> {
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
    pub fn metric(&self, prefix: &str) -> Option<f64> {
        let (_, body) = self.http("/metrics")?;
        body.lines()
            .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    pub fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("worker exited ({status}):\n{}", self.log());
        }
    }

    pub async fn ready(&mut self) {
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
    pub async fn busy(&mut self) {
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

    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -{name} {}", self.child.id());
    }

    /// Waits for the process to end; panics after `limit`.
    pub async fn exit_status(&mut self, limit: Duration) -> std::process::ExitStatus {
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
    pub async fn stop(mut self, limit: Duration) {
        self.signal("TERM");
        let status = self.exit_status(limit).await;
        assert_eq!(status.code(), Some(0), "worker exit:\n{}", self.log());
    }
}

/// The last `n` lines of a text file, for a failed test's output.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("({path:?}: {e})"));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A failed test says what the worker was doing, not only what it waited for.
            eprintln!(
                "--- last lines of the worker's log {:?}:\n{}\n---",
                self.log,
                tail(&self.log, 150)
            );
        }
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

pub struct World {
    pub setup: Setup,
    pub broker: Broker,
    pub db: Option<TestDb>,
    /// Holds the media root and the logs.
    pub _dir: tempfile::TempDir,
}

impl World {
    pub async fn new(name: &str) -> World {
        let db = TestDb::new().await;
        let url = db.url.clone();
        World::with_db(name, Some(db), url, 3).await
    }

    pub async fn with_db(
        name: &str,
        db: Option<TestDb>,
        db_url: String,
        max_attempts: u32,
    ) -> World {
        World::with_broker(&amqp_url(), name, db, db_url, max_attempts).await
    }

    /// A world on the broker at `amqp_url` (a private node).
    pub async fn with_broker(
        amqp_url: &str,
        name: &str,
        db: Option<TestDb>,
        db_url: String,
        max_attempts: u32,
    ) -> World {
        let broker = Broker::at(amqp_url, name, max_attempts).await;
        let dir = tempfile::tempdir().unwrap();
        let media_root = dir.path().join("media");
        std::fs::create_dir(&media_root).unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        World {
            setup: Setup {
                amqp_url: amqp_url.to_string(),
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

    pub fn pool(&self) -> &PgPool {
        &self.db.as_ref().expect("a shared-server database").pool
    }

    /// Copies a fixture into the media root; returns its path there.
    pub fn media(&self, fixture: &str) -> String {
        let from = common::root().join("fixtures").join(fixture);
        let to = self
            .setup
            .media_root
            .join(Path::new(fixture).file_name().unwrap());
        std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        to.display().to_string()
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.setup.media_root.join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }

    pub async fn finish(self) {
        self.broker.cleanup().await;
    }
}

pub fn by_job(events: &[Value]) -> BTreeMap<String, Value> {
    events
        .iter()
        .map(|e| (e["job_id"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// 200 distinct posters: one fixture with a different JPEG comment each (same pixels, different
/// bytes, so the store keeps 200 analyses).
pub fn poster_variants(dir: &Path, n: usize) -> Vec<String> {
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

// ------------------------------------------------------------------ private PostgreSQL

/// A throwaway PostgreSQL cluster (initdb in a temp dir, its own port and socket directory),
/// stopped and removed on drop. Run as the `postgres` user when the tests run as root, since
/// PostgreSQL refuses to run as root.
pub struct PrivatePg {
    pub bin: PathBuf,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl PrivatePg {
    pub fn bin_dir() -> PathBuf {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        dirs.sort();
        dirs.pop()
            .expect("an initdb under /usr/lib/postgresql/*/bin")
    }

    pub fn is_root() -> bool {
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false)
    }

    pub fn run(&self, tool: &str, args: &[&str]) -> Output {
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

    pub fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    pub fn init() -> PrivatePg {
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

    pub fn start(&self) {
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

    pub fn stop(&self) {
        let out = self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
        assert!(out.status.success(), "pg_ctl stop: {}", stderr(&out));
    }

    pub fn url(&self) -> String {
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

// ------------------------------------------------------------------ private RabbitMQ

/// A RabbitMQ node of our own (its own port, data and logs in a temp dir), so the shared broker
/// is never stopped; stopped on drop.
pub struct PrivateRabbit {
    pub name: String,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

fn rabbit_bin(tool: &str) -> PathBuf {
    // The /usr/sbin wrappers switch to the rabbitmq user (losing our environment) when run as
    // root; the scripts behind them run as whoever calls them.
    let direct = PathBuf::from("/usr/lib/rabbitmq/bin").join(tool);
    if direct.exists() {
        direct
    } else {
        PathBuf::from(tool)
    }
}

impl PrivateRabbit {
    fn command(&self, tool: &str) -> Command {
        let d = self.dir.path();
        let mut c = Command::new(rabbit_bin(tool));
        c.env("HOME", d) // the Erlang cookie lives here, shared by server and rabbitmqctl
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env(
                "RABBITMQ_DIST_PORT",
                (self.port as u32 + 20000).min(65000).to_string(),
            )
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_PID_FILE", d.join("node.pid"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d.join("advanced.config"));
        c
    }

    pub async fn start_new() -> PrivateRabbit {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(dir.path().join("rabbitmq.conf"), "").unwrap();
        let node = PrivateRabbit {
            name: format!("regard-faults-{}@localhost", short_id()),
            port: free_port(),
            dir,
        };
        node.start().await;
        node
    }

    /// Starts the node and waits until its AMQP port accepts connections.
    pub async fn start(&self) {
        let out = self
            .command("rabbitmq-server")
            .arg("-detached")
            .output()
            .expect("rabbitmq-server runs");
        assert!(
            out.status.success(),
            "rabbitmq-server -detached: {}",
            stderr(&out)
        );
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(150),
                "private RabbitMQ node did not open port {} (logs in {:?})",
                self.port,
                self.dir.path()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn stop(&self) {
        let out = self
            .command("rabbitmqctl")
            .args(["-n", &self.name, "stop"])
            .output()
            .expect("rabbitmqctl runs");
        assert!(out.status.success(), "rabbitmqctl stop: {}", stderr(&out));
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.dir.path().join("log");
            for entry in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "log") {
                    eprintln!(
                        "--- last lines of the private broker's {path:?}:\n{}\n---",
                        tail(&path, 60)
                    );
                }
            }
        }
        // Best effort: the node may already be stopped, which is fine.
        let _ = self
            .command("rabbitmqctl")
            .args(["-n", &self.name, "stop"])
            .output();
    }
}
