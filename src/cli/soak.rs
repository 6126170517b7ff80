//! `regard bench soak`: many jobs through real worker processes while faults pile up, then a
//! count of what became of every job. A measuring instrument, not a timed test: its table goes
//! into BENCHMARKS.md, and `tests/soak.rs` runs a small version.
//!
//! Everything runs against private services started here (a RabbitMQ node and a PostgreSQL
//! cluster in a temporary directory, on free ports), so that stopping the broker or the
//! database never touches a shared one. The run:
//!
//! 1. makes the media (distinct posters derived from the fixtures, the fixture trailers) and the
//!    messages (distinct jobs, the same bytes under other job ids, the same job id twice, poison);
//! 2. starts N `regard worker` processes and publishes every message, shuffled;
//! 3. injects the planned faults one after the other, each when the work done passes a random
//!    fraction (seeded RNG, printed seed): SIGKILL a worker (restarted), restart the broker,
//!    stop the database for a while, close every broker connection, terminate every database
//!    backend;
//! 4. waits until the queues are empty and no worker holds a job (bounded);
//! 5. stops the workers, reads the result events and dead letters, the ledger and the analyses,
//!    and checks that every job ended exactly once.

use crate::cli::SoakArgs;
use crate::queue::topology::{JOB_ROUTING_KEY, Topology};
use anyhow::{Context, bail};
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ seeded randomness

/// SplitMix64: a tiny seeded generator, so that a run can be repeated from its printed seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n ≥ 1).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Uniform in `[lo, hi)`.
    pub fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

// ------------------------------------------------------------------ private services

pub(super) fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("bind a free port")?;
    Ok(l.local_addr()?.port())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A throwaway PostgreSQL cluster: initdb in the run's directory, its own port and socket
/// directory. Run as the `postgres` user when we are root (PostgreSQL refuses root).
struct PrivatePg {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    root: bool,
}

impl PrivatePg {
    fn init(dir: PathBuf) -> anyhow::Result<PrivatePg> {
        let mut bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .context("PostgreSQL server binaries under /usr/lib/postgresql")?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        bins.sort();
        let bin = bins
            .pop()
            .context("no initdb under /usr/lib/postgresql/*/bin")?;
        std::fs::create_dir_all(&dir)?;
        let root = is_root();
        if root {
            let ok = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&dir)
                .status()?
                .success();
            anyhow::ensure!(ok, "cannot chown {} to postgres", dir.display());
        }
        let pg = PrivatePg {
            bin,
            dir,
            port: free_port()?,
            root,
        };
        let data = pg.data();
        let out = pg.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        )?;
        anyhow::ensure!(out.status.success(), "initdb: {}", text(&out));
        Ok(pg)
    }

    fn run(&self, tool: &str, args: &[&str]) -> anyhow::Result<Output> {
        let exe = self.bin.join(tool);
        let mut c = if self.root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        c.args(args)
            .env("LC_ALL", "C")
            .output()
            .with_context(|| format!("cannot run {tool}"))
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn start(&self) -> anyhow::Result<()> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("pg.log").display().to_string();
        let out = self.run(
            "pg_ctl",
            &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"],
        )?;
        anyhow::ensure!(out.status.success(), "pg_ctl start: {}", text(&out));
        Ok(())
    }

    fn stop(&self, mode: &str) -> anyhow::Result<()> {
        let out = self.run("pg_ctl", &["-D", &self.data(), "-m", mode, "-w", "stop"])?;
        anyhow::ensure!(out.status.success(), "pg_ctl stop: {}", text(&out));
        Ok(())
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        // May be stopped already, which is fine.
        let _ = self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }
}

/// A RabbitMQ node of our own: own node name, ports, cookie (HOME), data and logs in the run's
/// directory. The /usr/lib/rabbitmq/bin scripts run as whoever calls them (the /usr/sbin
/// wrappers switch to the rabbitmq user and lose this environment).
struct PrivateRabbit {
    name: String,
    port: u16,
    dist_port: u16,
    dir: PathBuf,
}

impl PrivateRabbit {
    fn new(dir: PathBuf, tag: &str) -> anyhow::Result<PrivateRabbit> {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("enabled_plugins"), "[].\n")?;
        std::fs::write(dir.join("rabbitmq.conf"), "")?;
        let epmd = Command::new("epmd")
            .arg("-names")
            .output()
            .context("epmd is not installed")?;
        anyhow::ensure!(
            epmd.status.success(),
            "epmd does not answer: {}",
            text(&epmd)
        );
        Ok(PrivateRabbit {
            name: format!("regard-soak-{tag}@localhost"),
            port: free_port()?,
            dist_port: free_port()?,
            dir,
        })
    }

    fn command(&self, tool: &str) -> Command {
        let direct = PathBuf::from("/usr/lib/rabbitmq/bin").join(tool);
        let mut c = Command::new(if direct.exists() {
            direct
        } else {
            PathBuf::from(tool)
        });
        let d = &self.dir;
        c.env("HOME", d)
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_PID_FILE", d.join("node.pid"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d.join("advanced.config"));
        c
    }

    fn ctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self
            .command("rabbitmqctl")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .context("cannot run rabbitmqctl")?;
        anyhow::ensure!(
            out.status.success(),
            "rabbitmqctl {}: {}",
            args.join(" "),
            text(&out)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn start(&self) -> anyhow::Result<()> {
        let out = self
            .command("rabbitmq-server")
            .arg("-detached")
            .output()
            .context("cannot run rabbitmq-server")?;
        anyhow::ensure!(
            out.status.success(),
            "rabbitmq-server -detached: {}",
            text(&out)
        );
        Ok(())
    }

    /// Waits until the node accepts AMQP connections.
    async fn wait_up(&self, limit: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            if let Ok(Ok(c)) = tokio::time::timeout(
                Duration::from_secs(5),
                Connection::connect(&self.url(), Default::default()),
            )
            .await
            {
                let _ = c.close(200, "up".into()).await;
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                bail!(
                    "private RabbitMQ node {} not up after {limit:?} (logs in {})",
                    self.name,
                    self.dir.join("log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn stop(&self) -> anyhow::Result<()> {
        self.ctl(&["stop"]).map(|_| ())
    }

    /// Messages (ready + unacknowledged) per queue, from the broker itself.
    fn queue_messages(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let out = self.ctl(&[
            "list_queues",
            "-q",
            "--no-table-headers",
            "name",
            "messages",
        ])?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                let name = parts.next()?.to_string();
                let n = parts.next()?.parse().ok()?;
                Some((name, n))
            })
            .collect())
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        let _ = self.ctl(&["stop"]);
    }
}

// ------------------------------------------------------------------ the corpus

/// Kinds of poison message: each must end dead-lettered, with a final event and a ledger row.
pub const POISON_KINDS: [&str; 6] = [
    "not_json",
    "bad_kind",
    "bad_version",
    "missing_file",
    "outside_media_root",
    "corrupt_file",
];

/// What a job id should end as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Messages sent under this job id.
    pub messages: usize,
    /// SHA-256 of the media bytes, for a job that must succeed.
    pub content: Option<String>,
    /// The poison kind, for a job that must be dead-lettered.
    pub poison: Option<&'static str>,
    pub trailer: bool,
}

struct Message {
    id: String,
    body: Vec<u8>,
}

struct Corpus {
    messages: Vec<Message>,
    expected: BTreeMap<String, Expected>,
    distinct_contents: usize,
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The same JPEG with a comment segment after SOI: same pixels, other bytes.
pub(super) fn with_jpeg_comment(jpeg: &[u8], comment: &str) -> Vec<u8> {
    let len = (comment.len() + 2) as u16;
    let mut out = Vec::with_capacity(jpeg.len() + comment.len() + 4);
    out.extend_from_slice(&jpeg[..2]);
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(comment.as_bytes());
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Pixel-distinct base posters: every fixture poster re-encoded, mirrored, and cropped.
fn base_posters(fixtures: &Path, rng: &mut Rng) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(fixtures.join("posters"))
        .with_context(|| format!("{}/posters", fixtures.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    names.sort();
    anyhow::ensure!(!names.is_empty(), "no fixture posters");
    let mut out = Vec::new();
    for name in &names {
        let image = image::open(name).with_context(|| name.display().to_string())?;
        // Large fixtures are halved first: the soak measures the job path, not the detector.
        let image = if image.width() > 1500 {
            image.resize(
                image.width() / 2,
                image.height() / 2,
                image::imageops::FilterType::Triangle,
            )
        } else {
            image
        };
        let (w, h) = (image.width(), image.height());
        let cx = (rng.between(0.0, 0.08) * w as f64) as u32;
        let cy = (rng.between(0.0, 0.08) * h as f64) as u32;
        let variants = [
            image.clone(),
            image.fliph(),
            image.crop_imm(cx, cy, w - cx - w / 12, h - cy - h / 12),
        ];
        for (i, v) in variants.iter().enumerate() {
            let mut bytes = Vec::new();
            let quality = [88, 82, 76][i];
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality)
                .encode_image(&v.to_rgb8())
                .context("re-encode a poster")?;
            out.push(bytes);
        }
    }
    Ok(out)
}

fn job_json(id: &str, kind: &str, source: &str, title: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "version": 1,
        "job_id": id,
        "kind": kind,
        "source": source,
        "film": {"title": title},
    }))
    .unwrap_or_default()
}

/// How many messages of each sort a run of `jobs` messages has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    pub distinct_posters: usize,
    pub trailers: usize,
    /// The bytes of an earlier job under another job id.
    pub same_bytes_other_id: usize,
    /// An earlier message sent again, job id and all.
    pub same_id_twice: usize,
    pub poison: usize,
}

impl Mix {
    pub fn for_jobs(jobs: usize, trailers: usize) -> Mix {
        let poison = (jobs * 4 / 100).max(POISON_KINDS.len());
        let same_bytes_other_id = (jobs * 5 / 100).max(2);
        let same_id_twice = (jobs * 2 / 100).max(2);
        let distinct_posters = jobs
            .saturating_sub(poison + same_bytes_other_id + same_id_twice + trailers)
            .max(1);
        Mix {
            distinct_posters,
            trailers,
            same_bytes_other_id,
            same_id_twice,
            poison,
        }
    }

    pub fn total(&self) -> usize {
        self.distinct_posters
            + self.trailers
            + self.same_bytes_other_id
            + self.same_id_twice
            + self.poison
    }
}

fn build_corpus(mix: Mix, fixtures: &Path, media: &Path, rng: &mut Rng) -> anyhow::Result<Corpus> {
    std::fs::create_dir_all(media)?;
    let mut messages = Vec::new();
    let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
    let mut valid: Vec<(String, String, String, bool)> = Vec::new(); // id, source, sha, trailer
    let mut add = |id: String, body: Vec<u8>, e: Expected, messages: &mut Vec<Message>| {
        expected
            .entry(id.clone())
            .and_modify(|x: &mut Expected| x.messages += 1)
            .or_insert(e);
        messages.push(Message { id, body });
    };

    let bases = base_posters(fixtures, rng)?;
    for i in 0..mix.distinct_posters {
        let bytes = with_jpeg_comment(&bases[i % bases.len()], &format!("regard soak {i}"));
        let path = media.join(format!("poster-{i:05}.jpg"));
        std::fs::write(&path, &bytes)?;
        let id = format!("soak-p-{i:05}");
        let source = path.display().to_string();
        let sha = sha256(&bytes);
        let body = job_json(&id, "poster", &source, &format!("Soak poster {i}"));
        let e = Expected {
            messages: 1,
            content: Some(sha.clone()),
            poison: None,
            trailer: false,
        };
        add(id.clone(), body, e, &mut messages);
        valid.push((id, source, sha, false));
    }
    let mut trailers: Vec<PathBuf> = std::fs::read_dir(fixtures.join("trailers"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    trailers.sort();
    anyhow::ensure!(
        mix.trailers == 0 || !trailers.is_empty(),
        "no fixture trailers"
    );
    for i in 0..mix.trailers {
        let from = &trailers[i % trailers.len()];
        let mut bytes = std::fs::read(from)?;
        if i >= trailers.len() {
            // Another copy of a fixture trailer with other bytes: MP4 players ignore a
            // trailing free box.
            let tag = format!("regard soak {i}");
            bytes.extend_from_slice(&((8 + tag.len()) as u32).to_be_bytes());
            bytes.extend_from_slice(b"free");
            bytes.extend_from_slice(tag.as_bytes());
        }
        let path = media.join(format!("trailer-{i:02}.mp4"));
        std::fs::write(&path, &bytes)?;
        let id = format!("soak-t-{i:02}");
        let source = path.display().to_string();
        let sha = sha256(&bytes);
        let body = job_json(&id, "trailer", &source, &format!("Soak trailer {i}"));
        let e = Expected {
            messages: 1,
            content: Some(sha.clone()),
            poison: None,
            trailer: true,
        };
        add(id.clone(), body, e, &mut messages);
        valid.push((id, source, sha, true));
    }
    for i in 0..mix.same_bytes_other_id {
        // Mostly posters; the first one is a trailer when there is one.
        let pick = if i == 0 && mix.trailers > 0 {
            mix.distinct_posters
        } else {
            rng.below(mix.distinct_posters)
        };
        let (_, source, sha, trailer) = valid[pick].clone();
        let id = format!("soak-dup-{i:04}");
        let kind = if trailer { "trailer" } else { "poster" };
        let body = job_json(&id, kind, &source, &format!("Soak duplicate {i}"));
        let e = Expected {
            messages: 1,
            content: Some(sha),
            poison: None,
            trailer,
        };
        add(id, body, e, &mut messages);
    }
    for _ in 0..mix.same_id_twice {
        let pick = rng.below(mix.distinct_posters);
        let (id, body) = (messages[pick].id.clone(), messages[pick].body.clone());
        // Only the count of an existing entry changes.
        let e = Expected {
            messages: 1,
            content: Some(valid[pick].2.clone()),
            poison: None,
            trailer: false,
        };
        add(id, body, e, &mut messages);
    }
    let corrupt = media.join("corrupt.jpg");
    std::fs::write(&corrupt, b"\xFF\xD8 this is not really a JPEG")?;
    for i in 0..mix.poison {
        let kind = POISON_KINDS[i % POISON_KINDS.len()];
        let id = format!("soak-poison-{kind}-{i:03}");
        let missing = media.join(format!("missing-{i}.jpg")).display().to_string();
        let body = match kind {
            "not_json" => format!("{id}: this is {{ not JSON").into_bytes(),
            "bad_kind" => job_json(&id, "song", &missing, "Poison"),
            "bad_version" => {
                let mut v: serde_json::Value =
                    serde_json::from_slice(&job_json(&id, "poster", &missing, "Poison"))?;
                v["version"] = 2.into();
                serde_json::to_vec(&v)?
            }
            "missing_file" => job_json(&id, "poster", &missing, "Poison"),
            "outside_media_root" => job_json(&id, "poster", "/etc/hostname", "Poison"),
            _ => job_json(&id, "poster", &corrupt.display().to_string(), "Poison"),
        };
        let e = Expected {
            messages: 1,
            content: None,
            poison: Some(kind),
            trailer: false,
        };
        add(id, body, e, &mut messages);
    }
    let distinct_contents = valid.len();
    rng.shuffle(&mut messages);
    Ok(Corpus {
        messages,
        expected,
        distinct_contents,
    })
}

// ------------------------------------------------------------------ worker processes

pub(super) struct WorkerProc {
    pub(super) child: Child,
    pub(super) port: u16,
    log: PathBuf,
}

impl WorkerProc {
    /// The kind of the job the worker's log shows started and not settled, if any.
    fn job_in_progress(&self) -> Option<String> {
        let log = std::fs::read_to_string(&self.log).ok()?;
        let started = log.rfind("job started")?;
        if log
            .rfind("job settled")
            .is_some_and(|settled| settled > started)
        {
            return None;
        }
        let line = log[started..].lines().next()?;
        let kind = line.split("kind=\"").nth(1)?.split('"').next()?;
        Some(kind.to_string())
    }
}

/// `regard worker` processes started from this executable, each logging to a file of its own.
pub(super) struct Fleet {
    pub(super) exe: PathBuf,
    pub(super) cwd: PathBuf,
    pub(super) env: Vec<(String, String)>,
    pub(super) logs: PathBuf,
    pub(super) workers: Vec<WorkerProc>,
    pub(super) started: usize,
}

impl Fleet {
    fn spawn(&mut self) -> anyhow::Result<WorkerProc> {
        let port = free_port()?;
        self.started += 1;
        let log = self.logs.join(format!("worker-{:03}.log", self.started));
        let mut c = Command::new(&self.exe);
        c.arg("worker")
            .current_dir(&self.cwd)
            .env("REGARD_HTTP_LISTEN", format!("127.0.0.1:{port}"))
            .env_remove("REGARD_ALLOW_PRIVATE")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        let child = c.spawn().context("cannot start regard worker")?;
        Ok(WorkerProc { child, port, log })
    }

    pub(super) fn start_all(&mut self, n: usize) -> anyhow::Result<()> {
        for _ in 0..n {
            let w = self.spawn()?;
            self.workers.push(w);
        }
        Ok(())
    }

    /// Wait until every worker answers `/readyz` (an error when one exits first or `limit`
    /// passes).
    pub(super) async fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let ready_by = Instant::now() + limit;
        for i in 0..self.workers.len() {
            while http_get(self.workers[i].port, "/readyz").is_none() {
                if let Some(status) = self.workers[i].child.try_wait()? {
                    bail!(
                        "worker {i} exited before it was ready ({status}); logs in {}",
                        self.logs.display()
                    );
                }
                anyhow::ensure!(
                    Instant::now() < ready_by,
                    "worker {i} not ready after {} s; logs in {}",
                    limit.as_secs(),
                    self.logs.display()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    /// SIGKILL worker `i` (no chance to clean up or hand anything back).
    fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        let w = &mut self.workers[i];
        if w.child.try_wait()?.is_none() {
            w.child.kill()?;
        }
        w.child.wait()?;
        Ok(())
    }

    fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let w = self.spawn()?;
        self.workers[i] = w;
        Ok(())
    }

    /// Workers that exited on their own (a crash, not one of our kills).
    fn reap_crashed(&mut self) -> anyhow::Result<usize> {
        let mut crashed = 0;
        for i in 0..self.workers.len() {
            if let Some(status) = self.workers[i].child.try_wait()? {
                eprintln!("soak: worker {i} exited on its own ({status}); restarting it");
                crashed += 1;
                self.restart(i)?;
            }
        }
        Ok(crashed)
    }

    fn metric(&self, i: usize, name: &str) -> Option<f64> {
        let body = http_get(self.workers[i].port, "/metrics")?;
        body.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// Jobs in flight over all workers; None when a worker does not answer.
    fn in_flight(&self) -> Option<f64> {
        (0..self.workers.len())
            .map(|i| self.metric(i, "regard_jobs_in_flight"))
            .sum()
    }

    /// SIGTERM every worker and wait for them; returns the exit codes.
    pub(super) fn stop_all(&mut self, limit: Duration) -> Vec<Option<i32>> {
        for w in &self.workers {
            let _ = Command::new("kill")
                .args(["-TERM", &w.child.id().to_string()])
                .status();
        }
        let until = Instant::now() + limit;
        let mut codes = Vec::new();
        for w in &mut self.workers {
            loop {
                match w.child.try_wait() {
                    Ok(Some(s)) => {
                        codes.push(s.code());
                        break;
                    }
                    Ok(None) if Instant::now() < until => {
                        std::thread::sleep(Duration::from_millis(100))
                    }
                    _ => {
                        let _ = w.child.kill();
                        let _ = w.child.wait();
                        codes.push(None);
                        break;
                    }
                }
            }
        }
        codes
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for w in &mut self.workers {
            if matches!(w.child.try_wait(), Ok(None)) {
                let _ = w.child.kill();
                let _ = w.child.wait();
            }
        }
    }
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status: u16 = text.split(' ').nth(1)?.parse().ok()?;
    (status == 200).then(|| text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()))?
}

// ------------------------------------------------------------------ faults

/// One kind of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// SIGKILL a worker at a random point, then start a new one.
    KillWorker,
    /// Stop the RabbitMQ node and start it again.
    RestartBroker,
    /// Stop PostgreSQL for `--db-stop-seconds`, then start it again.
    StopDatabase,
    /// `rabbitmqctl close_all_connections`.
    CloseBrokerConnections,
    /// `pg_terminate_backend` on every other database connection.
    TerminateDbConnections,
}

impl Fault {
    pub fn label(self) -> &'static str {
        match self {
            Fault::KillWorker => "SIGKILL a worker (restarted)",
            Fault::RestartBroker => "broker restart",
            Fault::StopDatabase => "database stopped",
            Fault::CloseBrokerConnections => "broker connections closed",
            Fault::TerminateDbConnections => "database connections terminated",
        }
    }
}

/// The faults in a random order, each with the fraction of the work after which it fires.
pub fn plan_faults(counts: &[(Fault, usize)], rng: &mut Rng) -> Vec<(f64, Fault)> {
    let mut faults: Vec<Fault> = counts
        .iter()
        .flat_map(|(f, n)| std::iter::repeat_n(*f, *n))
        .collect();
    rng.shuffle(&mut faults);
    let mut at: Vec<f64> = faults.iter().map(|_| rng.between(0.03, 0.85)).collect();
    at.sort_by(f64::total_cmp);
    at.into_iter().zip(faults).collect()
}

// ------------------------------------------------------------------ what happened

/// A result event as read from the results queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub job_id: String,
    pub outcome: String,
    pub reused: bool,
    pub new: bool,
}

/// A row of the job ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerRow {
    pub status: String,
    /// The content the ledger's analysis is of (succeeded jobs).
    pub content: Option<String>,
}

/// Everything read back after the run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub events: Vec<Event>,
    /// Job id of each dead letter.
    pub dead_letters: Vec<String>,
    pub ledger: BTreeMap<String, LedgerRow>,
    /// Succeeded analyses per content (SHA-256).
    pub analyses: BTreeMap<String, usize>,
}

/// The outcome table, and each anomaly with its job id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub messages: usize,
    pub job_ids: usize,
    pub distinct_contents: usize,
    pub analysed: usize,
    pub reused: usize,
    /// Completed events of work done twice (not reused, yet not the analysis that was stored).
    pub analysed_again: usize,
    pub failed_poison: usize,
    pub lost: usize,
    pub doubled: usize,
    pub dead_lettered_not_poison: usize,
    pub ledger_wrong: usize,
    /// Jobs whose final event arrived twice although the work was done once: the broker got the
    /// event, but its confirm (or the ack) was lost to a broker restart or a dropped connection,
    /// so the redelivered job announced its stored result again.
    pub events_twice: usize,
    pub retrying_events: usize,
    pub anomalies: Vec<String>,
}

impl Tally {
    /// Nothing lost, nothing done twice, nothing misfiled; with `strict_events`, no event twice.
    pub fn ok(&self, strict_events: bool) -> bool {
        self.lost == 0
            && self.doubled == 0
            && self.dead_lettered_not_poison == 0
            && self.ledger_wrong == 0
            && (!strict_events || self.events_twice == 0)
    }
}

/// Compares what was sent with what was observed. Pure.
pub fn tally(expected: &BTreeMap<String, Expected>, observed: &Observed) -> Tally {
    let mut t = Tally {
        job_ids: expected.len(),
        messages: expected.values().map(|e| e.messages).sum(),
        ..Tally::default()
    };
    let mut finals: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in &observed.events {
        if e.outcome == "retrying" {
            t.retrying_events += 1;
        } else {
            finals.entry(e.job_id.as_str()).or_default().push(e);
        }
    }
    let mut dead: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &observed.dead_letters {
        *dead.entry(id.as_str()).or_default() += 1;
    }
    let contents: BTreeSet<&str> = expected
        .values()
        .filter_map(|e| e.content.as_deref())
        .collect();
    t.distinct_contents = contents.len();
    for sha in &contents {
        match observed.analyses.get(*sha).copied().unwrap_or(0) {
            0 => {
                t.lost += 1;
                t.anomalies
                    .push(format!("lost: content {sha} has no succeeded analysis"));
            }
            1 => t.analysed += 1,
            n => {
                t.doubled += 1;
                t.anomalies
                    .push(format!("doubled: content {sha} has {n} succeeded analyses"));
            }
        }
    }
    for (id, e) in expected {
        let events = finals.remove(id.as_str()).unwrap_or_default();
        let dead_n = dead.remove(id.as_str()).unwrap_or(0);
        let mut lost = false;
        let mut doubled = false;
        let same_outcome = events.windows(2).all(|w| w[0].outcome == w[1].outcome);
        if events.len() < e.messages {
            lost = true;
            t.anomalies.push(format!(
                "lost: {id}: {} final events for {} messages",
                events.len(),
                e.messages
            ));
        } else if events.len() > e.messages && same_outcome {
            t.events_twice += 1;
            t.anomalies.push(format!(
                "event twice: {id}: {} {:?} events for {} messages",
                events.len(),
                events[0].outcome,
                e.messages
            ));
        } else if events.len() > e.messages {
            doubled = true;
            t.anomalies.push(format!(
                "doubled: {id}: {} final events for {} messages ({})",
                events.len(),
                e.messages,
                events
                    .iter()
                    .map(|e| e.outcome.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let ledger = observed.ledger.get(id);
        match (&e.poison, &e.content) {
            (Some(kind), _) => {
                let final_ok = !events.is_empty()
                    && events
                        .iter()
                        .all(|e| e.outcome == "failed" || e.outcome == "malformed");
                if !final_ok && !events.is_empty() {
                    t.anomalies.push(format!(
                        "poison {id} ({kind}) ended {:?}",
                        events[0].outcome
                    ));
                }
                if dead_n < e.messages {
                    lost = true;
                    t.anomalies.push(format!(
                        "lost: poison {id} ({kind}): {dead_n} dead letters for {} messages",
                        e.messages
                    ));
                } else if dead_n > e.messages {
                    doubled = true;
                    t.anomalies.push(format!(
                        "doubled: poison {id} ({kind}): {dead_n} dead letters"
                    ));
                }
                match ledger {
                    Some(row) if row.status == "dead_lettered" => {}
                    other => {
                        t.ledger_wrong += 1;
                        t.anomalies.push(format!(
                            "ledger: poison {id} ({kind}) is {:?}, not dead_lettered",
                            other.map(|r| r.status.as_str())
                        ));
                    }
                }
                if final_ok && dead_n == e.messages {
                    t.failed_poison += 1;
                }
            }
            (None, Some(sha)) => {
                for ev in &events {
                    if ev.outcome != "completed" {
                        t.anomalies
                            .push(format!("{id}: valid job ended {:?}", ev.outcome));
                    } else if ev.reused {
                        t.reused += 1;
                    } else if !ev.new {
                        t.analysed_again += 1;
                    }
                }
                if dead_n > 0 {
                    t.dead_lettered_not_poison += 1;
                    t.anomalies
                        .push(format!("dead-lettered: valid job {id} ({dead_n}×)"));
                }
                match ledger {
                    Some(row)
                        if row.status == "succeeded" && row.content.as_deref() == Some(sha) => {}
                    other => {
                        t.ledger_wrong += 1;
                        t.anomalies.push(format!(
                            "ledger: {id} is {:?} (content {:?}), not succeeded with its content",
                            other.map(|r| r.status.as_str()),
                            other.and_then(|r| r.content.as_deref())
                        ));
                    }
                }
            }
            (None, None) => {}
        }
        t.lost += usize::from(lost);
        t.doubled += usize::from(doubled);
    }
    for (id, events) in finals {
        t.doubled += 1;
        t.anomalies.push(format!(
            "doubled: {} final events for a job id never sent: {id}",
            events.len()
        ));
    }
    for (id, n) in dead {
        t.dead_lettered_not_poison += 1;
        t.anomalies
            .push(format!("dead-lettered: {n}× a job id never sent: {id}"));
    }
    t
}

/// The Markdown tables of a run.
pub fn render(t: &Tally, faults: &BTreeMap<Fault, (usize, usize)>) -> String {
    let mut s = String::new();
    s += "| fault | planned | injected |\n|---|---:|---:|\n";
    for (f, (planned, done)) in faults {
        s += &format!("| {} | {planned} | {done} |\n", f.label());
    }
    s += "\n| messages | job ids | distinct contents | analysed once | reused | analysed again (wasted) | failed (poison) | lost | doubled | dead-lettered, not poison | ledger wrong | final event twice | retrying events |\n";
    s += "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    s += &format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
        t.messages,
        t.job_ids,
        t.distinct_contents,
        t.analysed,
        t.reused,
        t.analysed_again,
        t.failed_poison,
        t.lost,
        t.doubled,
        t.dead_lettered_not_poison,
        t.ledger_wrong,
        t.events_twice,
        t.retrying_events
    );
    s
}

// ------------------------------------------------------------------ broker access

/// A connection of our own to the private broker, reopened after a restart.
struct Admin {
    url: String,
    conn: Option<(Connection, Channel)>,
}

impl Admin {
    async fn channel(&mut self) -> anyhow::Result<&Channel> {
        let healthy = self
            .conn
            .as_ref()
            .is_some_and(|(c, ch)| c.status().connected() && ch.status().connected());
        if !healthy {
            let conn = crate::queue::connect(&self.url, "regard soak").await?;
            let ch = conn.create_channel().await?;
            self.conn = Some((conn, ch));
        }
        Ok(&self.conn.as_ref().expect("just opened").1)
    }

    async fn count(&mut self, queue: &str) -> anyhow::Result<u32> {
        let ch = self.channel().await?;
        let q = tokio::time::timeout(
            Duration::from_secs(10),
            ch.queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await
        .context("queue.declare timed out")??;
        Ok(q.message_count())
    }

    /// Ready messages in the jobs queue and every retry queue.
    async fn waiting(&mut self, topology: &Topology) -> anyhow::Result<u32> {
        let mut n = self.count(&topology.jobs_queue()).await?;
        for d in &topology.retry_delays {
            n += self.count(&topology.retry_queue(*d)).await?;
        }
        Ok(n)
    }

    async fn publish(&mut self, topology: &Topology, messages: &[Message]) -> anyhow::Result<()> {
        let ch = self.channel().await?;
        ch.confirm_select(Default::default()).await?;
        for chunk in messages.chunks(200) {
            let mut confirms = Vec::new();
            for m in chunk {
                let props = BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_message_id(m.id.as_str().into());
                confirms.push(
                    ch.basic_publish(
                        topology.jobs_exchange().into(),
                        JOB_ROUTING_KEY.into(),
                        BasicPublishOptions {
                            mandatory: true,
                            ..Default::default()
                        },
                        &m.body,
                        props,
                    )
                    .await?,
                );
            }
            for c in confirms {
                let c = c.await?;
                anyhow::ensure!(
                    c.is_ack() && c.take_message().is_none(),
                    "the broker refused a job"
                );
            }
        }
        Ok(())
    }

    /// Takes every message off `queue` (acked): message id and body.
    async fn drain(&mut self, queue: &str) -> anyhow::Result<Vec<(Option<String>, Vec<u8>)>> {
        let ch = self.channel().await?;
        let mut out = Vec::new();
        while let Some(m) = ch
            .basic_get(queue.into(), BasicGetOptions::default())
            .await?
        {
            let id = m
                .delivery
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.to_string());
            out.push((id, m.delivery.data.clone()));
            m.delivery.acker.ack(BasicAckOptions::default()).await?;
        }
        Ok(out)
    }
}

// ------------------------------------------------------------------ the run

async fn db_execute(url: &str, sql: &str) -> anyhow::Result<u64> {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let n = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await?
        .rows_affected();
    conn.close().await?;
    Ok(n)
}

async fn observe(db_url: &str, admin: &mut Admin, topology: &Topology) -> anyhow::Result<Observed> {
    let mut observed = Observed::default();
    let results = topology
        .results_queue()
        .context("the soak needs the results queue")?;
    for (id, body) in admin.drain(&results).await? {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let job_id = v["job_id"]
            .as_str()
            .map(str::to_string)
            .or(id)
            .unwrap_or_default();
        observed.events.push(Event {
            job_id,
            outcome: v["outcome"].as_str().unwrap_or("?").to_string(),
            reused: v["summary"]["reused"] == true,
            new: v["summary"]["new"] == true,
        });
    }
    for (id, body) in admin.drain(&topology.dead_queue()).await? {
        let from_body = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["job_id"].as_str().map(str::to_string));
        observed
            .dead_letters
            .push(id.or(from_body).unwrap_or_else(|| "?".into()));
    }
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(db_url)
        .await?;
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT j.job_id, j.status, m.content_sha256 FROM regard.job j \
         LEFT JOIN regard.analysis a ON a.analysis_id = j.analysis_id AND a.status = 'succeeded' \
         LEFT JOIN regard.media m ON m.media_id = a.media_id",
    )
    .fetch_all(&pool)
    .await?;
    for (id, status, content) in rows {
        observed.ledger.insert(id, LedgerRow { status, content });
    }
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT m.content_sha256, count(*) FROM regard.analysis a \
         JOIN regard.media m USING (media_id) WHERE a.status = 'succeeded' GROUP BY 1",
    )
    .fetch_all(&pool)
    .await?;
    for (sha, n) in rows {
        observed.analyses.insert(sha, n as usize);
    }
    pool.close().await;
    Ok(observed)
}

/// Runs the soak; returns false when a job was lost, doubled or misfiled.
pub async fn run(args: SoakArgs) -> anyhow::Result<bool> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    println!("soak: seed {seed} (repeat with --seed {seed})");
    let mut rng = Rng::new(seed);
    let mix = Mix::for_jobs(args.jobs, args.trailers);
    let cwd = std::env::current_dir()?;
    let fixtures = cwd.join("fixtures");
    let manifest = std::fs::canonicalize(&args.models.models)
        .with_context(|| format!("model manifest {}", args.models.models.display()))?;
    let work = tempfile::Builder::new()
        .prefix("regard-soak-")
        .tempdir()
        .context("temporary directory")?;
    let dir = work.path().to_path_buf();
    // The database runs as `postgres` when we are root: it must be able to reach its directory.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    }
    println!("soak: working in {}", dir.display());

    let started = Instant::now();
    let media = dir.join("media");
    let corpus = build_corpus(mix, &fixtures, &media, &mut rng)?;
    println!(
        "soak: {} messages ({} distinct posters, {} trailers, {} same bytes under another id, {} same id twice, {} poison) made in {:.1} s",
        corpus.messages.len(),
        mix.distinct_posters,
        mix.trailers,
        mix.same_bytes_other_id,
        mix.same_id_twice,
        mix.poison,
        started.elapsed().as_secs_f64()
    );

    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let pg = tokio::task::block_in_place(|| {
        let pg = PrivatePg::init(dir.join("pg"))?;
        pg.start()?;
        Ok::<_, anyhow::Error>(pg)
    })?;
    let rabbit = PrivateRabbit::new(dir.join("rabbit"), &tag)?;
    tokio::task::block_in_place(|| rabbit.start())?;
    let up = rabbit.wait_up(Duration::from_secs(180)).await?;
    println!(
        "soak: private PostgreSQL on port {}, RabbitMQ node {} on port {} (up after {:.1} s)",
        pg.port,
        rabbit.name,
        rabbit.port,
        up.as_secs_f64()
    );
    let topology = Topology {
        prefix: format!("soak-{tag}"),
        delivery_limit: args.delivery_limit,
        retry_delays: vec![Duration::from_secs(1), Duration::from_secs(2)],
        max_attempts: args.max_attempts,
        ..Topology::default()
    };
    crate::queue::setup(&rabbit.url(), &topology).await?;
    crate::cli::worker::connect_and_migrate(
        &pg.url(),
        Duration::from_secs(60),
        Duration::from_secs(60),
    )
    .await?
    .pool()
    .close()
    .await;

    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let env: Vec<(String, String)> = [
        ("REGARD_AMQP_URL", rabbit.url()),
        ("REGARD_QUEUE_PREFIX", topology.prefix.clone()),
        ("REGARD_DELIVERY_LIMIT", topology.delivery_limit.to_string()),
        ("REGARD_RETRY_DELAYS", "1,2".to_string()),
        ("REGARD_MAX_ATTEMPTS", topology.max_attempts.to_string()),
        ("REGARD_DATABASE_URL", pg.url()),
        (
            "REGARD_MEDIA_ROOTS",
            media.canonicalize()?.display().to_string(),
        ),
        ("REGARD_MODELS", manifest.display().to_string()),
        ("REGARD_JOB_SLOTS", args.slots.to_string()),
        ("REGARD_ORT_THREADS", "1".to_string()),
        ("REGARD_SHUTDOWN_DEADLINE", "30".to_string()),
        ("REGARD_RECONNECT_MAX", "2".to_string()),
        ("REGARD_STARTUP_WAIT", "120".to_string()),
        ("REGARD_LOG", "warn,regard=info".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut fleet = Fleet {
        exe: std::env::current_exe()?,
        cwd: cwd.clone(),
        env,
        logs: logs.clone(),
        workers: Vec::new(),
        started: 0,
    };
    fleet.start_all(args.workers)?;
    fleet.wait_ready(Duration::from_secs(180)).await?;
    println!("soak: {} workers ready", args.workers);

    let mut admin = Admin {
        url: rabbit.url(),
        conn: None,
    };
    let t0 = Instant::now();
    admin.publish(&topology, &corpus.messages).await?;
    let total = corpus.messages.len() as f64;
    println!(
        "soak: {} messages published in {:.1} s",
        corpus.messages.len(),
        t0.elapsed().as_secs_f64()
    );

    // Faults, each when the work done passes its fraction.
    let counts = [
        (Fault::KillWorker, args.kills),
        (Fault::RestartBroker, args.broker_restarts),
        (Fault::StopDatabase, args.db_stops),
        (
            Fault::CloseBrokerConnections,
            args.connection_drops.div_ceil(2),
        ),
        (Fault::TerminateDbConnections, args.connection_drops / 2),
    ];
    let mut faults: BTreeMap<Fault, (usize, usize)> =
        counts.iter().map(|(f, n)| (*f, (*n, 0))).collect();
    let plan = plan_faults(&counts, &mut rng);
    let mut crashed = 0;
    let mut kills_mid_job: BTreeMap<String, usize> = BTreeMap::new();
    let deadline = t0 + args.drain_timeout;
    let mut last_waiting = u32::MAX;
    for (at, fault) in &plan {
        loop {
            crashed += tokio::task::block_in_place(|| fleet.reap_crashed())?;
            let waiting = admin.waiting(&topology).await.unwrap_or(last_waiting);
            last_waiting = waiting;
            let done = 1.0 - f64::from(waiting.min(total as u32)) / total;
            if done >= *at || waiting == 0 || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let elapsed = t0.elapsed().as_secs_f64();
        match fault {
            Fault::KillWorker => {
                // A random point: not exactly when the threshold was seen.
                tokio::time::sleep(Duration::from_millis(rng.below(2000) as u64)).await;
                // Mostly a worker in the middle of a job (a trailer when one is running).
                let busy: Vec<(usize, String)> = (0..fleet.workers.len())
                    .filter_map(|i| fleet.workers[i].job_in_progress().map(|k| (i, k)))
                    .collect();
                let trailer = busy.iter().find(|(_, k)| k == "trailer");
                let i = match (trailer, busy.is_empty() || rng.below(4) == 0) {
                    (Some((i, _)), _) => *i,
                    (None, false) => busy[rng.below(busy.len())].0,
                    (None, true) => rng.below(fleet.workers.len()),
                };
                let during = fleet.workers[i].job_in_progress();
                tokio::task::block_in_place(|| fleet.kill(i))?;
                match &during {
                    Some(kind) => *kills_mid_job.entry(kind.clone()).or_default() += 1,
                    None => *kills_mid_job.entry("idle".into()).or_default() += 1,
                }
                tokio::time::sleep(Duration::from_millis(200 + rng.below(3000) as u64)).await;
                tokio::task::block_in_place(|| fleet.restart(i))?;
                println!(
                    "soak: {elapsed:>6.1} s  SIGKILL worker {i} ({}), restarted",
                    during.map_or("idle".to_string(), |k| format!("mid-{k}"))
                );
            }
            Fault::RestartBroker => {
                tokio::task::block_in_place(|| rabbit.stop())?;
                let down = Duration::from_millis(1000 + rng.below(4000) as u64);
                tokio::time::sleep(down).await;
                tokio::task::block_in_place(|| rabbit.start())?;
                let up = rabbit.wait_up(Duration::from_secs(180)).await?;
                println!(
                    "soak: {elapsed:>6.1} s  broker stopped, started {:.1} s later, up after {:.1} s",
                    down.as_secs_f64(),
                    up.as_secs_f64()
                );
            }
            Fault::StopDatabase => {
                let mode = if rng.below(2) == 0 {
                    "fast"
                } else {
                    "immediate"
                };
                tokio::task::block_in_place(|| pg.stop(mode))?;
                tokio::time::sleep(args.db_stop).await;
                tokio::task::block_in_place(|| pg.start())?;
                println!(
                    "soak: {elapsed:>6.1} s  database stopped ({mode}) for {:.0} s, started again",
                    args.db_stop.as_secs_f64()
                );
            }
            Fault::CloseBrokerConnections => {
                tokio::task::block_in_place(|| {
                    rabbit.ctl(&["close_all_connections", "regard soak fault"])
                })?;
                println!("soak: {elapsed:>6.1} s  every broker connection closed");
            }
            Fault::TerminateDbConnections => {
                let n = db_execute(
                    &pg.url(),
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
                )
                .await?;
                println!("soak: {elapsed:>6.1} s  {n} database connections terminated");
            }
        }
        if let Some(entry) = faults.get_mut(fault) {
            entry.1 += 1;
        }
    }

    // Drained: nothing waiting, nothing held by a worker (the broker's own count of ready and
    // unacknowledged messages agrees), twice in a row.
    let mut queues: BTreeSet<String> = BTreeSet::from([topology.jobs_queue()]);
    for d in &topology.retry_delays {
        queues.insert(topology.retry_queue(*d));
    }
    let mut quiet = 0;
    let drained = loop {
        crashed += tokio::task::block_in_place(|| fleet.reap_crashed())?;
        let waiting = admin.waiting(&topology).await.ok();
        let in_flight = fleet.in_flight();
        if waiting == Some(0) && in_flight == Some(0.0) {
            let held: u64 = tokio::task::block_in_place(|| rabbit.queue_messages())?
                .iter()
                .filter(|(q, _)| queues.contains(*q))
                .map(|(_, n)| n)
                .sum();
            quiet = if held == 0 { quiet + 1 } else { 0 };
            if quiet >= 2 {
                break true;
            }
        } else {
            quiet = 0;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let wall = t0.elapsed().as_secs_f64();
    let codes = tokio::task::block_in_place(|| fleet.stop_all(Duration::from_secs(60)));
    if drained {
        println!("soak: queues drained {wall:.1} s after the first publish");
    } else {
        println!(
            "soak: NOT DRAINED after {:.0} s (--drain-timeout): jobs are stuck",
            args.drain_timeout.as_secs_f64()
        );
    }
    let unclean = codes.iter().filter(|c| **c != Some(0)).count();
    println!(
        "soak: workers stopped with SIGTERM (exit codes {codes:?}); {crashed} exited on their own during the run"
    );

    let observed = observe(&pg.url(), &mut admin, &topology).await?;
    let t = tally(&corpus.expected, &observed);
    debug_assert_eq!(t.distinct_contents, corpus.distinct_contents);
    println!();
    print!("{}", render(&t, &faults));
    println!(
        "\nSIGKILLs by what the worker was doing (from its log): {}",
        kills_mid_job
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "\n{} workers × {} slot(s), {} messages, seed {seed}, {wall:.0} s from the first publish to drained",
        args.workers,
        args.slots,
        corpus.messages.len()
    );
    let shown = 40;
    for a in t.anomalies.iter().take(shown) {
        println!("anomaly: {a}");
    }
    if t.anomalies.len() > shown {
        println!("… and {} more anomalies", t.anomalies.len() - shown);
    }
    let ok = t.ok(args.strict_events) && drained && unclean == 0 && crashed == 0;
    if !ok || args.keep {
        let kept = work.keep();
        println!("soak: logs and data kept in {}", kept.display());
    }
    drop(fleet);
    tokio::task::block_in_place(|| {
        drop(rabbit);
        drop(pg);
    });
    println!("soak: {}", if ok { "PASS" } else { "FAIL" });
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(sha: &str, messages: usize) -> Expected {
        Expected {
            messages,
            content: Some(sha.into()),
            poison: None,
            trailer: false,
        }
    }

    fn event(id: &str, outcome: &str, reused: bool) -> Event {
        Event {
            job_id: id.into(),
            outcome: outcome.into(),
            reused,
            new: !reused,
        }
    }

    fn ok_world() -> (BTreeMap<String, Expected>, Observed) {
        let mut expected = BTreeMap::new();
        expected.insert("a".to_string(), valid("s1", 2));
        expected.insert("b".to_string(), valid("s1", 1));
        expected.insert(
            "p".to_string(),
            Expected {
                messages: 1,
                content: None,
                poison: Some("not_json"),
                trailer: false,
            },
        );
        let ledger = |status: &str, content: Option<&str>| LedgerRow {
            status: status.into(),
            content: content.map(str::to_string),
        };
        let observed = Observed {
            events: vec![
                event("a", "completed", false),
                event("a", "retrying", false),
                event("a", "completed", true),
                event("b", "completed", true),
                event("p", "malformed", false),
            ],
            dead_letters: vec!["p".into()],
            ledger: [
                ("a".to_string(), ledger("succeeded", Some("s1"))),
                ("b".to_string(), ledger("succeeded", Some("s1"))),
                ("p".to_string(), ledger("dead_lettered", None)),
            ]
            .into(),
            analyses: [("s1".to_string(), 1)].into(),
        };
        (expected, observed)
    }

    #[test]
    fn a_clean_run_counts_analysed_reused_and_poison() {
        let (expected, observed) = ok_world();
        let t = tally(&expected, &observed);
        assert!(t.ok(true), "{:?}", t.anomalies);
        assert_eq!((t.messages, t.job_ids, t.distinct_contents), (4, 3, 1));
        assert_eq!((t.analysed, t.reused, t.failed_poison), (1, 2, 1));
        assert_eq!(t.retrying_events, 1);
    }

    #[test]
    fn a_missing_event_or_analysis_is_lost() {
        let (expected, mut observed) = ok_world();
        observed.events.retain(|e| e.job_id != "b");
        let t = tally(&expected, &observed);
        assert_eq!((t.lost, t.doubled), (1, 0));
        assert!(!t.ok(false));
        let (expected, mut observed) = ok_world();
        observed.analyses.clear();
        assert_eq!(tally(&expected, &observed).lost, 1);
        let (expected, mut observed) = ok_world();
        observed.dead_letters.clear();
        assert_eq!(tally(&expected, &observed).lost, 1);
    }

    #[test]
    fn an_extra_event_or_analysis_is_doubled() {
        let (expected, mut observed) = ok_world();
        observed.events.push(event("b", "completed", true));
        let t = tally(&expected, &observed);
        assert_eq!((t.lost, t.doubled, t.events_twice), (0, 0, 1));
        assert!(t.ok(false) && !t.ok(true));
        let (expected, mut observed) = ok_world();
        observed.events.push(event("b", "failed", false));
        let t = tally(&expected, &observed);
        assert_eq!((t.lost, t.doubled), (0, 1));
        let (expected, mut observed) = ok_world();
        observed.analyses.insert("s1".into(), 2);
        assert_eq!(tally(&expected, &observed).doubled, 1);
    }

    #[test]
    fn a_valid_job_in_the_dead_letters_or_a_wrong_ledger_fails_the_run() {
        let (expected, mut observed) = ok_world();
        observed.dead_letters.push("a".into());
        let t = tally(&expected, &observed);
        assert_eq!(t.dead_lettered_not_poison, 1);
        assert!(!t.ok(false));
        let (expected, mut observed) = ok_world();
        observed.ledger.remove("p");
        let t = tally(&expected, &observed);
        assert_eq!(t.ledger_wrong, 1);
        assert!(!t.ok(false));
    }

    #[test]
    fn the_mix_adds_up_and_the_rng_repeats() {
        for jobs in [100, 1000] {
            let m = Mix::for_jobs(jobs, 4);
            assert_eq!(m.total(), jobs);
            assert!(m.poison >= POISON_KINDS.len());
        }
        let a: Vec<u64> = (0..5)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..5)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        let plan = plan_faults(
            &[(Fault::KillWorker, 3), (Fault::StopDatabase, 1)],
            &mut Rng::new(1),
        );
        assert_eq!(plan.len(), 4);
        assert!(plan.windows(2).all(|w| w[0].0 <= w[1].0));
    }
}
