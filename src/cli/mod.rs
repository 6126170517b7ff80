//! Command-line interface: flags and `REGARD_*` environment variables, and the commands that
//! print. The library below returns values; only this module writes to stdout.

pub mod analyze;
pub mod bench;
pub mod bench_worker;
pub mod coding;
pub mod evaluate;
pub mod jobs;
pub mod persons;
pub mod queue;
pub mod queue_args;
pub mod soak;
pub mod worker;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "regard",
    version,
    about = "Measures who is seen on film posters and in trailers."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "REGARD_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
}

static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Log records on stderr are JSON: user-facing error lines go through the log then, so that
/// every stderr line stays a JSON record. Set once by `main`.
pub fn set_json_logs(on: bool) {
    JSON_LOGS.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Print a user-facing error line: `error: …` on stderr, or a JSON log record in JSON mode.
pub fn report_error(message: &str) {
    if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::error!(error = %message, "error");
    } else {
        eprintln!("error: {message}");
    }
}

/// Logs every panic through tracing (one JSON record in JSON mode) with its message, place and
/// thread, instead of raw text on stderr. Panics that are caught (a decoder on hostile data)
/// are logged too: a panic is a bug even when the worker survives it.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = crate::panics::message(info.payload());
        let location = info
            .location()
            .map_or_else(|| "unknown".to_owned(), |l| l.to_string());
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        // RUST_BACKTRACE decides, as with the default hook.
        let backtrace = std::backtrace::Backtrace::capture();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            tracing::error!(panic = %message, %location, thread, %backtrace, "panic");
        } else {
            tracing::error!(panic = %message, %location, thread, "panic");
        }
    }));
}

/// Leaves the process at once with `code`, deleting temp downloads and private copies first:
/// `process::exit` runs no destructors.
pub fn exit_now(code: i32) -> ! {
    crate::vision::finish_background_loads();
    let removed = crate::media::fetch::remove_temp_files();
    if removed > 0 {
        tracing::info!(removed, "temporary media files removed on exit");
    }
    std::process::exit(code)
}

/// For commands without their own signal handling (all but the worker): SIGINT and SIGTERM
/// end the process as before (exit 130 and 143), without leaving temp files behind.
pub fn exit_on_signals() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::warn!("cannot listen for SIGINT/SIGTERM; temp files may outlive a signal");
            return;
        };
        let code = tokio::select! {
            _ = int.recv() => 130,
            _ = term.recv() => 143,
        };
        exit_now(code);
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Analyse posters and trailers (files, directories or http(s) URLs) and print the results.
    Analyze(AnalyzeArgs),
    /// Consume analysis jobs from RabbitMQ and write results to PostgreSQL (until SIGTERM).
    Worker(Box<WorkerCommandArgs>),
    /// Publish analysis jobs: one from flags, or many from a JSONL or CSV file.
    Enqueue(Box<crate::cli::queue_args::EnqueueArgs>),
    /// Manage the RabbitMQ exchanges and queues.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Apply the database migrations (schema `regard`).
    Migrate(DbArgs),
    /// Human coding: export the persons still to code, import a coder's labels.
    #[command(subcommand)]
    Persons(PersonsCommand),
    /// Coders in a browser: the coding web application, coder accounts, origin figures.
    #[command(subcommand)]
    Coding(crate::cli::coding::CodingCommand),
    /// Delete per-person rows (faces, persons, their coder labels, coders' work queues) of
    /// analyses older than an age; the representation figures and every aggregate view keep
    /// their values.
    Retention(RetentionArgs),
    /// The job ledger: every job id received (queue or CLI) and what became of it.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Film identity: merge two film rows the identity rules could not tell apart.
    #[command(subcommand)]
    Films(FilmsCommand),
    /// Measure accuracy over a labelled set and write EVALUATION.md.
    Evaluate(EvaluateArgs),
    /// Benchmarks whose figures go into BENCHMARKS.md.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// Which models to load and how to run them.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// The model manifest; model files are looked up next to it.
    #[arg(long, default_value = "models/manifest.toml", env = "REGARD_MODELS")]
    pub models: PathBuf,
    /// ONNX Runtime threads (0: one per core): the detector's and embedder's intra-op threads,
    /// and the threads the face models (one-thread sessions) run on side by side.
    #[arg(long, default_value_t = 0, env = "REGARD_ORT_THREADS")]
    pub ort_threads: usize,
    /// Allow a classifier for a sensitive attribute declared in the manifest (e.g. origin).
    /// Off by default: see the README on perceived origin.
    #[arg(
        long = "enable-sensitive",
        value_name = "ATTRIBUTE",
        env = "REGARD_ENABLE_SENSITIVE",
        value_delimiter = ','
    )]
    pub enable_sensitive: Vec<String>,
}

impl ModelArgs {
    pub fn options(&self) -> crate::runner::ModelOptions {
        crate::runner::ModelOptions {
            manifest: self.models.clone(),
            ort_threads: self.ort_threads,
            enable_sensitive: self.enable_sensitive.clone(),
        }
    }
}

/// The flags of the settings (recorded with every result) and of the limits, generated from the
/// one table in `crate::config`.
pub use crate::config::{LimitArgs, SettingsArgs};

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// One job: source, film, status, attempts, times, error and the analysis it resolved to.
    Show(JobsShowArgs),
    /// Jobs, newest first.
    List(JobsListArgs),
}

#[derive(Debug, Args)]
pub struct JobsShowArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The job id.
    pub job_id: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct JobsListArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Only jobs in this state.
    #[arg(long, value_parser = ["queued", "running", "retrying", "succeeded", "failed", "dead_lettered"])]
    pub status: Option<String>,
    /// Only jobs received since this time (RFC 3339, e.g. 2026-05-12T00:00:00Z, or a date).
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many jobs.
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum FilmsCommand {
    /// Merge film DROP into film KEEP: every media link and festival selection moves, ids and
    /// titles are folded in (titles as aliases). Refused when their IMDb or TMDb ids differ.
    Merge(FilmsMergeArgs),
}

#[derive(Debug, Args)]
pub struct FilmsMergeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The film id that stays.
    pub keep: i64,
    /// The film id merged into it and removed.
    pub drop: i64,
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// PostgreSQL URL.
    #[arg(long = "db", env = "REGARD_DATABASE_URL")]
    pub database_url: String,
    /// Longest one SQL statement may run or wait for a lock, in seconds.
    #[arg(long = "db-statement-timeout", env = "REGARD_DB_STATEMENT_TIMEOUT", default_value = "60", value_parser = crate::cli::queue_args::parse_seconds)]
    pub statement_timeout: std::time::Duration,
}

#[derive(Debug, Subcommand)]
pub enum PersonsCommand {
    /// Print a CSV (stdout) of the faces and persons of the latest analyses that have no coder
    /// label yet for an attribute: person id, film, media, timestamps, box. No image. Fill in
    /// the `label` column and give the file back to `regard persons import`.
    Export(PersonsExportArgs),
    /// Import a coder's labels (CSV with `person_id`, `attribute`, `label`; other columns are
    /// ignored, empty labels skipped). Every line is checked first: on any problem nothing is
    /// imported, each problem is printed with its line, and the exit code is 1.
    Import(PersonsImportArgs),
}

#[derive(Debug, Args)]
pub struct PersonsExportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Only films whose title contains this (case-insensitive).
    #[arg(long)]
    pub film_title: Option<String>,
    /// Only the film with this IMDb id.
    #[arg(long)]
    pub imdb_id: Option<String>,
    /// Only films of this year.
    #[arg(long)]
    pub year: Option<i32>,
    /// The attribute to code (a `regard.coding_scheme` attribute).
    #[arg(long, default_value = "origin")]
    pub attribute: String,
}

#[derive(Debug, Args)]
pub struct PersonsImportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Who coded the labels (recorded with each label).
    #[arg(long)]
    pub coder: String,
    /// The filled-in CSV.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct RetentionArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Age in days: per-person rows of analyses recorded longer ago are deleted (0: all).
    #[arg(long, value_name = "DAYS")]
    pub older_than: u32,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Files, directories (their media files, sorted) or http(s) URLs.
    #[arg(required = true)]
    pub inputs: Vec<String>,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Write pictures to check the results: annotated posters, trailer contact sheets and timelines.
    #[arg(long, value_name = "DIR")]
    pub annotate: Option<PathBuf>,
    /// Also write results to this PostgreSQL database.
    #[arg(long = "db", env = "REGARD_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Film title to file the results under (with --db).
    #[arg(long)]
    pub film_title: Option<String>,
    /// Film year (with --db).
    #[arg(long)]
    pub film_year: Option<i32>,
    /// Film IMDb id, e.g. tt0111161 (with --db; identifies the film better than its title).
    #[arg(long)]
    pub imdb_id: Option<String>,
    /// Festival the film was selected at (with --db, --edition and a film).
    #[arg(long, requires = "edition")]
    pub festival: Option<String>,
    /// Festival edition (year), e.g. 2026.
    #[arg(long, requires = "festival")]
    pub edition: Option<i32>,
    /// Festival section, e.g. "Compétition".
    #[arg(long, requires = "festival")]
    pub section: Option<String>,
    /// Allow http(s) URLs to private, loopback or link-local addresses.
    #[arg(long)]
    pub allow_private_urls: bool,
    #[command(flatten)]
    pub models: ModelArgs,
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Time poster analysis (decode, detect, classify): p50/p95 ms per poster.
    Posters(BenchArgs),
    /// Time a 2-minute 1080p H.264 trailer against plain FFmpeg decoding of every frame.
    Trailer(BenchTrailerArgs),
    /// Many jobs through worker processes on a private broker and database while faults are
    /// injected; checks every job ended exactly once (exit 1 if any was lost or doubled).
    Soak(Box<SoakArgs>),
    /// Worker throughput: distinct poster jobs through `regard worker` processes on the local
    /// RabbitMQ and PostgreSQL (a database and queues of its own), per WORKERSxSLOTS configuration.
    Worker(BenchWorkerArgs),
}

#[derive(Debug, Args)]
pub struct BenchWorkerArgs {
    /// Poster jobs per configuration (copies of --poster that differ by a JPEG comment).
    #[arg(long, default_value_t = 200)]
    pub jobs: usize,
    /// Comma-separated WORKERSxSLOTS: worker processes × job slots each.
    #[arg(long, default_value = "1x1,2x1,1x2")]
    pub configs: String,
    /// The poster (a JPEG).
    #[arg(long, default_value = "fixtures/posters/duo_1000x1500.jpg")]
    pub poster: PathBuf,
    /// The broker the workers use (queues get a prefix of their own, deleted at the end).
    #[arg(
        long,
        env = "REGARD_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// A database on the PostgreSQL server to use, from which one database per configuration
    /// is created and then dropped.
    #[arg(
        long,
        env = "REGARD_BENCH_ADMIN_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub admin_database_url: String,
    /// Longest wait for one configuration's jobs, from the enqueue, in seconds.
    #[arg(long, default_value = "900", value_parser = crate::cli::queue_args::parse_seconds)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct SoakArgs {
    /// Messages to publish (distinct posters, trailers, duplicates and poison).
    #[arg(long, default_value_t = 1000)]
    pub jobs: usize,
    /// Trailer jobs among them (copies of the fixture trailers).
    #[arg(long, default_value_t = 4)]
    pub trailers: usize,
    /// Worker processes.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Job slots per worker.
    #[arg(long, default_value_t = 1)]
    pub slots: u16,
    /// Seed of the random choices (default: from the clock; printed either way).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Workers killed with SIGKILL (and restarted).
    #[arg(long, default_value_t = 10)]
    pub kills: usize,
    /// Broker restarts.
    #[arg(long, default_value_t = 2)]
    pub broker_restarts: usize,
    /// Database stops.
    #[arg(long, default_value_t = 2)]
    pub db_stops: usize,
    /// How long the database stays down each time, in seconds.
    #[arg(long = "db-stop-seconds", default_value = "15", value_parser = crate::cli::queue_args::parse_seconds)]
    pub db_stop: std::time::Duration,
    /// Dropped connections: broker connections closed and database backends terminated, in turn.
    #[arg(long, default_value_t = 4)]
    pub connection_drops: usize,
    /// The workers' delivery limit (crashes a message may live through).
    #[arg(long, default_value_t = 20)]
    pub delivery_limit: u32,
    /// The workers' attempts before a transient failure is final (high: an outage is no reason
    /// to dead-letter).
    #[arg(long, default_value_t = 1000)]
    pub max_attempts: u32,
    /// Longest wait for the queues to drain, from the first publish, in seconds.
    #[arg(long = "drain-timeout", default_value = "1800", value_parser = crate::cli::queue_args::parse_seconds)]
    pub drain_timeout: std::time::Duration,
    /// Keep the working directory (media, logs, broker and database data) even on success.
    #[arg(long)]
    pub keep: bool,
    /// Also fail when a job's final event arrived twice (the work itself done once): events
    /// are at least once when a broker restart eats a publisher confirm.
    #[arg(long)]
    pub strict_events: bool,
    #[command(flatten)]
    pub models: ModelArgs,
}

#[derive(Debug, Args)]
pub struct BenchTrailerArgs {
    /// The trailer to time (default: one made from the fixture trailers with the ffmpeg
    /// command line, 120 s of 1920×1080 H.264 with x264's defaults, cached in .cache/bench/).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Timed repetitions of each side.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// FFmpeg frame threads of the decoder (default: as the worker and `analyze` choose, as many
    /// as the model threads of a slot), to compare thread splits.
    #[arg(long)]
    pub decoder_threads: Option<usize>,
    #[command(flatten)]
    pub models: ModelArgs,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Timed repetitions per poster.
    #[arg(long, default_value_t = 30)]
    pub runs: usize,
    /// Cold runs per poster: a new `regard analyze` process each, timed from start to exit.
    #[arg(long, default_value_t = 5)]
    pub cold_runs: usize,
    /// Posters to time (default: the two benchmark posters of the fixtures).
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub models: ModelArgs,
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// The truth file; media paths in it are relative to its folder.
    #[arg(long, default_value = "fixtures/truth.json")]
    pub truth: PathBuf,
    /// Also write the report (Markdown) to this file.
    #[arg(long)]
    pub write: Option<PathBuf>,
    /// Markdown appended to the written report (e.g. how the thresholds were chosen).
    #[arg(long)]
    pub append: Option<PathBuf>,
    /// Fail (exit 1) when the results fall below the floors in this file.
    #[arg(long)]
    pub floor: Option<PathBuf>,
    #[command(flatten)]
    pub models: ModelArgs,
    #[command(flatten)]
    pub settings: SettingsArgs,
}

/// `regard queue ...`
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Declare the exchanges and queues (idempotent), then exit.
    Setup(crate::cli::queue_args::QueueSetupArgs),
    /// Messages and consumers of the jobs, retry and dead-letter queues.
    Status(QueueStatusArgs),
    /// List the dead letters, or send them back to the jobs queue.
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
}

#[derive(Debug, Args)]
pub struct QueueStatusArgs {
    #[command(flatten)]
    pub topology: crate::cli::queue_args::TopologyArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// Job id, error code, error and attempts of each dead letter (they stay where they are).
    List(DeadLettersArgs),
    /// Send dead letters back to the jobs queue as first attempts (after fixing their cause).
    Requeue(DeadLettersArgs),
}

#[derive(Debug, Args)]
pub struct DeadLettersArgs {
    #[command(flatten)]
    pub topology: crate::cli::queue_args::TopologyArgs,
    /// Only dead letters with this error code (e.g. fetch_timeout).
    #[arg(long)]
    pub code: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `regard worker`: the queue options plus what the analysis needs.
#[derive(Debug, Clone, Args)]
pub struct WorkerCommandArgs {
    #[command(flatten)]
    pub queue: crate::cli::queue_args::WorkerArgs,
    #[command(flatten)]
    pub db: DbArgs,
    /// How long to wait for the database at start-up, in seconds (containers start in any order).
    #[arg(long, env = "REGARD_STARTUP_WAIT", default_value = "60", value_parser = crate::cli::queue_args::parse_seconds)]
    pub startup_wait: std::time::Duration,
    /// Directories local job sources must lie under (comma-separated in the environment).
    /// None: jobs may only name http(s) URLs.
    #[arg(long = "media-root", env = "REGARD_MEDIA_ROOTS", value_delimiter = ',')]
    pub media_roots: Vec<PathBuf>,
    /// Private networks job URLs may reach, e.g. 10.0.0.0/8 for an internal image server
    /// (comma-separated in the environment). None: public addresses only.
    #[arg(
        long = "allow-private",
        env = "REGARD_ALLOW_PRIVATE",
        value_delimiter = ','
    )]
    pub allow_private: Vec<ipnet::IpNet>,
    #[command(flatten)]
    pub models: ModelArgs,
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set in the child process of [`a_panic_is_one_json_log_record`].
    const PANIC_CHILD: &str = "REGARD_TEST_PANIC_HOOK_CHILD";

    /// Does nothing unless run as that test's child: then logs JSON to stderr as `main` does,
    /// installs the hook and panics on a thread of its own.
    #[test]
    fn panic_hook_child() {
        if std::env::var_os(PANIC_CHILD).is_none() {
            return;
        }
        tracing_subscriber::fmt()
            .json()
            .with_writer(std::io::stderr)
            .init();
        install_panic_hook();
        let panicked = std::thread::Builder::new()
            .name("doomed".into())
            .spawn(|| panic!("the poster had {} faces", 3))
            .unwrap()
            .join();
        assert!(panicked.is_err());
    }

    #[test]
    fn a_panic_is_one_json_log_record() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "cli::tests::panic_hook_child", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(PANIC_CHILD, "1")
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one record and nothing else: {stderr}");
        let record: serde_json::Value =
            serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {stderr}"));
        assert_eq!(record["level"], "ERROR", "{record}");
        let fields = &record["fields"];
        assert_eq!(fields["message"], "panic");
        assert_eq!(fields["panic"], "the poster had 3 faces");
        assert_eq!(fields["thread"], "doomed");
        assert!(
            fields["location"]
                .as_str()
                .unwrap()
                .contains("src/cli/mod.rs"),
            "{record}"
        );
    }
}
