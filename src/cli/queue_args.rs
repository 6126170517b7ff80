//! Arguments of `regard worker`, `regard enqueue` and `regard queue setup`. Every option can
//! also come from a `REGARD_*` environment variable (containers are configured that way).

use crate::config::JobSettingsArgs;
use crate::domain::{FestivalSelection, Film, MediaRole};
use crate::queue::job::{Job, JobId, JobRejection, JobSource};
use crate::queue::topology::{ResultsQueue, Topology};
use crate::queue::worker::WorkerConfig;
use clap::{Args, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where the broker is and how the queues are named.
#[derive(Debug, Clone, Args)]
pub struct TopologyArgs {
    /// AMQP URL of the RabbitMQ broker (vhost URL-encoded: `%2f` is `/`).
    #[arg(long, env = "REGARD_AMQP_URL", default_value = DEFAULT_AMQP_URL)]
    pub amqp_url: String,
    /// Prefix of every exchange and queue name.
    #[arg(long, env = "REGARD_QUEUE_PREFIX", default_value_t = defaults().worker.topology.prefix.clone())]
    pub queue_prefix: String,
    /// Deliveries the broker allows one message (crashes, lost connections) before dead-lettering it.
    #[arg(long, env = "REGARD_DELIVERY_LIMIT", default_value_t = defaults().worker.topology.delivery_limit)]
    pub delivery_limit: u32,
    /// Waits before the 2nd, 3rd... attempt after a transient failure, in seconds (the last repeats).
    #[arg(long, env = "REGARD_RETRY_DELAYS", value_delimiter = ',', default_value = defaults().retry_delays.as_str(), value_parser = parse_seconds)]
    pub retry_delays: Vec<Duration>,
    /// Processing attempts in all before a transient failure goes to the dead letters.
    #[arg(long, env = "REGARD_MAX_ATTEMPTS", default_value_t = defaults().worker.topology.max_attempts)]
    pub max_attempts: u32,
    /// Durable queue kept bound to every result event, so none is lost before a scraper
    /// connects (default `<prefix>.results.events`; an empty value switches it off).
    #[arg(
        long,
        env = "REGARD_RESULTS_QUEUE",
        conflicts_with = "no_results_queue"
    )]
    pub results_queue: Option<String>,
    /// Keep no results queue: events go only to queues scrapers bind themselves.
    #[arg(long, env = "REGARD_NO_RESULTS_QUEUE")]
    pub no_results_queue: bool,
}

/// The local broker with RabbitMQ's default account.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The flags' defaults: those of [`WorkerConfig::new`] and [`Topology::default`], with the
/// durations written out once as the `&'static str` clap wants.
struct Defaults {
    worker: WorkerConfig,
    retry_delays: String,
    shutdown_deadline: String,
    reconnect_max: String,
}

fn defaults() -> &'static Defaults {
    static DEFAULTS: std::sync::OnceLock<Defaults> = std::sync::OnceLock::new();
    DEFAULTS.get_or_init(|| {
        let worker = WorkerConfig::new(DEFAULT_AMQP_URL, Topology::default());
        let delays: Vec<String> = worker
            .topology
            .retry_delays
            .iter()
            .map(|d| seconds_text(*d))
            .collect();
        Defaults {
            retry_delays: delays.join(","),
            shutdown_deadline: seconds_text(worker.shutdown_deadline),
            reconnect_max: seconds_text(worker.reconnect_max),
            worker,
        }
    })
}

/// Seconds as [`parse_seconds`] reads them back, e.g. `60` or `0.5`.
pub fn seconds_text(d: Duration) -> String {
    d.as_secs_f64().to_string()
}

impl TopologyArgs {
    pub fn topology(&self) -> Topology {
        Topology {
            prefix: self.queue_prefix.clone(),
            delivery_limit: self.delivery_limit,
            retry_delays: self.retry_delays.clone(),
            max_attempts: self.max_attempts,
            results_queue: match (&self.results_queue, self.no_results_queue) {
                (_, true) => ResultsQueue::Off,
                (Some(name), false) if name.trim().is_empty() => ResultsQueue::Off,
                (Some(name), false) => ResultsQueue::Named(name.trim().to_string()),
                (None, false) => ResultsQueue::Prefixed,
            },
        }
    }
}

/// Seconds (decimals allowed) as a duration.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v.is_finite() && v > 0.0 && v < 4.0e6) {
        return Err(format!("{s} seconds is out of range"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// `regard queue setup`: declare exchanges and queues, then exit.
#[derive(Debug, Clone, Args)]
pub struct QueueSetupArgs {
    #[command(flatten)]
    pub topology: TopologyArgs,
}

/// `regard worker`: consume jobs until SIGTERM/SIGINT.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub topology: TopologyArgs,
    /// Jobs processed at once (prefetch count and CPU slots).
    #[arg(long, env = "REGARD_JOB_SLOTS", default_value_t = defaults().worker.job_slots)]
    pub job_slots: u16,
    /// After SIGTERM, seconds in-flight jobs may take before they are handed back to the queue.
    #[arg(long, env = "REGARD_SHUTDOWN_DEADLINE", default_value = defaults().shutdown_deadline.as_str(), value_parser = parse_seconds)]
    pub shutdown_deadline: Duration,
    /// Longest wait between reconnection attempts to the broker, in seconds.
    #[arg(long, env = "REGARD_RECONNECT_MAX", default_value = defaults().reconnect_max.as_str(), value_parser = parse_seconds)]
    pub reconnect_max: Duration,
    /// Address of the /healthz, /readyz and /metrics endpoints.
    #[arg(long, env = "REGARD_HTTP_LISTEN", default_value = "0.0.0.0:9464")]
    pub http_listen: SocketAddr,
}

impl WorkerArgs {
    pub fn config(&self) -> WorkerConfig {
        let mut c = WorkerConfig::new(self.topology.amqp_url.clone(), self.topology.topology());
        c.job_slots = self.job_slots;
        c.shutdown_deadline = self.shutdown_deadline;
        c.reconnect_max = self.reconnect_max.max(c.reconnect_min);
        c
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    Poster,
    Trailer,
}

/// `regard enqueue`: publish one job from flags, or many from `--file`.
#[derive(Debug, Clone, Args)]
pub struct EnqueueArgs {
    #[command(flatten)]
    pub topology: TopologyArgs,
    /// A .jsonl/.ndjson file (one job message per line) or a .csv file with a header row
    /// (columns: kind,source,title,year,imdb_id,tmdb_id,festival,edition,section,job_id).
    #[arg(long, env = "REGARD_ENQUEUE_FILE", conflicts_with_all = ["kind", "source", "title"])]
    pub file: Option<PathBuf>,
    /// Poster or trailer (single job).
    #[arg(
        long,
        env = "REGARD_JOB_KIND",
        value_enum,
        required_unless_present_any = ["file", "reanalyze"]
    )]
    pub kind: Option<KindArg>,
    /// http(s) URL or absolute path of the media file (single job).
    #[arg(long, env = "REGARD_JOB_SOURCE", required_unless_present_any = ["file", "reanalyze"])]
    pub source: Option<String>,
    /// Film title (single job).
    #[arg(long, env = "REGARD_JOB_TITLE", required_unless_present_any = ["file", "reanalyze"])]
    pub title: Option<String>,
    /// Film year.
    #[arg(long, env = "REGARD_JOB_YEAR")]
    pub year: Option<i32>,
    /// IMDb id, e.g. tt17009710.
    #[arg(long, env = "REGARD_JOB_IMDB_ID")]
    pub imdb_id: Option<String>,
    /// TMDb id.
    #[arg(long, env = "REGARD_JOB_TMDB_ID")]
    pub tmdb_id: Option<i64>,
    /// Festival name, e.g. "Festival de Cannes" (a job needs --edition with it; with
    /// --reanalyze, only films selected there).
    #[arg(long, env = "REGARD_JOB_FESTIVAL")]
    pub festival: Option<String>,
    /// Festival edition (year).
    #[arg(long, env = "REGARD_JOB_EDITION")]
    pub edition: Option<i32>,
    /// Festival section, e.g. "Un Certain Regard".
    #[arg(long, env = "REGARD_JOB_SECTION", requires = "festival")]
    pub section: Option<String>,
    /// Job id (default: a random UUID).
    #[arg(long, env = "REGARD_JOB_ID")]
    pub job_id: Option<String>,
    /// The settings this job overrides (`--sample-rate`, ...; `REGARD_JOB_*`).
    #[command(flatten)]
    pub settings: JobSettingsArgs,
    /// Enqueue every media whose latest succeeded analysis was made by another model set
    /// (models, ONNX Runtime or algorithm version) than the current one; narrowed by
    /// --festival, --edition and --year (the film's year).
    #[arg(long, requires = "database_url", conflicts_with_all = ["file", "kind", "source", "title", "imdb_id", "tmdb_id", "section", "job_id"])]
    pub reanalyze: bool,
    /// PostgreSQL URL (with --reanalyze).
    #[arg(long = "db", env = "REGARD_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The current model-set sha256, instead of computing it from --models and
    /// --enable-sensitive (which must be the worker's).
    #[arg(long, requires = "reanalyze")]
    pub model_set: Option<String>,
    /// With --reanalyze: list the media, publish nothing.
    #[arg(long, requires = "reanalyze")]
    pub dry_run: bool,
    /// The worker's models, whose model set --reanalyze compares with.
    #[command(flatten)]
    pub models: crate::cli::ModelArgs,
}

impl EnqueueArgs {
    /// The single job the flags describe, checked like any queue message.
    pub fn job(&self) -> Result<Job, JobRejection> {
        let missing = |field| JobRejection::Invalid {
            field,
            reason: "is required".into(),
        };
        let job = Job {
            id: match &self.job_id {
                Some(id) => JobId::parse(id)?,
                None => JobId::generate(),
            },
            kind: match self.kind.ok_or_else(|| missing("kind"))? {
                KindArg::Poster => MediaRole::Poster,
                KindArg::Trailer => MediaRole::Trailer,
            },
            source: JobSource::parse(self.source.as_deref().ok_or_else(|| missing("source"))?)?,
            film: Film {
                title: self.title.clone().ok_or_else(|| missing("film.title"))?,
                year: self.year,
                imdb_id: self.imdb_id.clone(),
                tmdb_id: self.tmdb_id,
                external_ids: Default::default(),
            },
            festival: match (&self.festival, self.edition) {
                (Some(f), Some(e)) => Some(FestivalSelection {
                    festival: f.clone(),
                    edition: e,
                    section: self.section.clone(),
                }),
                (None, None) if self.section.is_none() => None,
                _ => {
                    return Err(JobRejection::Invalid {
                        field: "festival",
                        reason: "needs --festival and --edition together".into(),
                    });
                }
            },
            settings: self.settings.overrides.clone(),
        };
        // Round-trip through the wire form so flags get exactly the message checks.
        Job::parse(&job.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(subcommand)]
        cmd: C,
    }
    #[derive(Debug, clap::Subcommand)]
    enum C {
        Worker(WorkerArgs),
        Enqueue(Box<EnqueueArgs>),
        Setup(QueueSetupArgs),
    }

    #[test]
    fn worker_flags_build_a_config() {
        let t = T::try_parse_from([
            "regard",
            "worker",
            "--job-slots",
            "3",
            "--retry-delays",
            "0.5,2",
            "--queue-prefix",
            "x",
        ])
        .unwrap();
        let C::Worker(w) = t.cmd else {
            panic!("not a worker command")
        };
        let c = w.config();
        assert_eq!(c.job_slots, 3);
        assert_eq!(
            c.topology.retry_delays,
            [Duration::from_millis(500), Duration::from_secs(2)]
        );
        assert_eq!(c.topology.jobs_queue(), "x.jobs");
        assert_eq!(
            c.topology.results_queue().as_deref(),
            Some("x.results.events")
        );
        let results = |args: &[&str]| {
            let t = T::try_parse_from(["regard", "setup"].iter().chain(args)).unwrap();
            let C::Setup(s) = t.cmd else {
                panic!("not a setup command")
            };
            s.topology.topology().results_queue()
        };
        assert_eq!(
            results(&["--results-queue", "scraper-in"]).as_deref(),
            Some("scraper-in")
        );
        assert_eq!(results(&["--results-queue", ""]), None);
        assert_eq!(results(&["--no-results-queue"]), None);
        assert!(
            T::try_parse_from([
                "regard",
                "setup",
                "--no-results-queue",
                "--results-queue",
                "q"
            ])
            .is_err()
        );
    }

    #[test]
    fn enqueue_flags_are_checked_like_messages() {
        let t = T::try_parse_from([
            "regard",
            "enqueue",
            "--kind",
            "trailer",
            "--source",
            "/m/t.mp4",
            "--title",
            "T",
            "--sample-rate",
            "9",
        ])
        .unwrap();
        let C::Enqueue(e) = t.cmd else {
            panic!("not an enqueue command")
        };
        assert!(e.job().unwrap_err().to_string().contains("sample_rate"));
        let t = T::try_parse_from([
            "regard",
            "enqueue",
            "--kind",
            "poster",
            "--source",
            "https://e.org/p.jpg",
            "--title",
            "P",
            "--festival",
            "Cannes",
            "--edition",
            "2026",
            "--min-confidence",
            "0.9",
        ])
        .unwrap();
        let C::Enqueue(e) = t.cmd else {
            panic!("not an enqueue command")
        };
        let job = e.job().unwrap();
        assert_eq!(job.festival.unwrap().edition, 2026);
        assert_eq!(job.settings.min_attribute_confidence, Some(0.9));
        assert_eq!(job.settings.sample_rate, None);
        assert!(T::try_parse_from(["regard", "enqueue", "--kind", "poster"]).is_err());
        let t = T::try_parse_from([
            "regard",
            "enqueue",
            "--kind",
            "poster",
            "--source",
            "/m/p.jpg",
            "--title",
            "P",
            "--festival",
            "Cannes",
        ])
        .unwrap();
        let C::Enqueue(e) = t.cmd else {
            panic!("not an enqueue command")
        };
        assert!(e.job().unwrap_err().to_string().contains("--edition"));
        let t = T::try_parse_from([
            "regard",
            "enqueue",
            "--reanalyze",
            "--db",
            "postgres://h/d",
            "--festival",
            "Cannes",
        ])
        .unwrap();
        let C::Enqueue(e) = t.cmd else {
            panic!("not an enqueue command")
        };
        assert!(e.reanalyze && e.edition.is_none());
        assert!(T::try_parse_from(["regard", "enqueue", "--dry-run"]).is_err());
        assert!(
            T::try_parse_from([
                "regard",
                "enqueue",
                "--reanalyze",
                "--db",
                "x",
                "--title",
                "T"
            ])
            .is_err()
        );
        assert!(T::try_parse_from(["regard", "setup", "--retry-delays", "-1"]).is_err());
    }

    #[test]
    fn flags_not_given_are_the_typed_defaults() {
        let t = T::try_parse_from(["regard", "worker"]).unwrap();
        let C::Worker(w) = t.cmd else {
            panic!("not a worker command")
        };
        let given = w.config();
        let typed = WorkerConfig::new(DEFAULT_AMQP_URL, Topology::default());
        assert_eq!(given.amqp_url, typed.amqp_url);
        assert_eq!(given.topology, typed.topology);
        assert_eq!(given.job_slots, typed.job_slots);
        assert_eq!(given.shutdown_deadline, typed.shutdown_deadline);
        assert_eq!(given.reconnect_max, typed.reconnect_max);
        assert_eq!(seconds_text(Duration::from_millis(500)), "0.5");
        assert_eq!(
            parse_seconds(&seconds_text(Duration::from_secs(900))),
            Ok(Duration::from_secs(900))
        );
    }
}
