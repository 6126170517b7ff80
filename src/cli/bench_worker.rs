//! `regard bench worker`: worker throughput. N distinct poster jobs go through `regard worker`
//! processes (started from this executable) against the local RabbitMQ and PostgreSQL, timed
//! from the first enqueue to the last analysis committed; one Markdown row per configuration.
//!
//! A configuration `WxS` runs W worker processes with S job slots each, with ONNX Runtime
//! threads per slot = cores / (W × S), at least 1, so that the whole never asks for more threads
//! than there are cores. The jobs are copies of one poster that differ only by a JPEG comment:
//! the same pixels and faces, another content hash, so every job is an analysis of its own.
//!
//! Nothing shared is touched: each configuration gets a database of its own (created, then
//! dropped with its connections), and the queues and exchanges carry a prefix of their own
//! (deleted at the end, also when a configuration fails).

use crate::cli::BenchWorkerArgs;
use crate::cli::soak::{Fleet, with_jpeg_comment};
use crate::queue::topology::Topology;
use anyhow::{Context, bail};
use sqlx::Connection as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One measured configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub workers: usize,
    pub slots: usize,
    pub ort_threads: usize,
    pub wall_s: f64,
    pub failed: i64,
    /// Mean of the analyses' own `analyse` stage, in seconds.
    pub mean_analysis_s: f64,
}

/// `1x1,2x1,1x2` → `[(1, 1), (2, 1), (1, 2)]`.
pub fn parse_configs(text: &str) -> anyhow::Result<Vec<(usize, usize)>> {
    text.split(',')
        .map(|c| {
            let c = c.trim().to_ascii_lowercase();
            let (w, s) = c
                .split_once('x')
                .with_context(|| format!("configuration {c:?} is not WORKERSxSLOTS, e.g. 2x1"))?;
            let parse = |v: &str| -> anyhow::Result<usize> {
                let n: usize = v
                    .parse()
                    .with_context(|| format!("configuration {c:?}: {v:?} is not a count"))?;
                anyhow::ensure!(n >= 1, "configuration {c:?}: counts start at 1");
                Ok(n)
            };
            Ok((parse(w)?, parse(s)?))
        })
        .collect()
}

/// The URL of database `name` on the server of `admin_url`.
fn database_url(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let (base, rest) = admin_url
        .rsplit_once('/')
        .with_context(|| format!("{admin_url} names no database"))?;
    let query = rest.split_once('?').map(|(_, q)| format!("?{q}"));
    Ok(format!("{base}/{name}{}", query.unwrap_or_default()))
}

/// The Markdown table of the rows.
pub fn render(rows: &[Row], jobs: usize) -> String {
    let mut out = String::from(
        "| workers | slots each | ORT threads per slot | wall time (s) | jobs/s | mean analysis per job (s) | failed |\n\
         |---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.3} | {} |\n",
            r.workers,
            r.slots,
            r.ort_threads,
            r.wall_s,
            jobs as f64 / r.wall_s,
            r.mean_analysis_s,
            r.failed
        ));
    }
    out
}

pub async fn run(args: BenchWorkerArgs) -> anyhow::Result<()> {
    let configs = parse_configs(&args.configs)?;
    anyhow::ensure!(args.jobs >= 1, "--jobs must be at least 1");
    let exe = std::env::current_exe().context("this executable")?;
    let cwd = std::env::current_dir()?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let work = tempfile::Builder::new()
        .prefix("regard-bench-worker-")
        .tempdir()?;
    let media = work.path().join("media");
    let logs = work.path().join("logs");
    std::fs::create_dir_all(&media)?;
    std::fs::create_dir_all(&logs)?;
    let poster = std::fs::read(&args.poster)
        .with_context(|| format!("{}: cannot read", args.poster.display()))?;
    if !poster.starts_with(&[0xFF, 0xD8]) {
        bail!("{} is not a JPEG", args.poster.display());
    }
    let mut csv = String::from("kind,source,title\n");
    for i in 0..args.jobs {
        let path = media.join(format!("variant-{i:04}.jpg"));
        std::fs::write(
            &path,
            with_jpeg_comment(&poster, &format!("regard bench variant {i}")),
        )?;
        csv.push_str(&format!("poster,{},Bench {i}\n", path.display()));
    }
    let csv_path = work.path().join("jobs.csv");
    std::fs::write(&csv_path, csv)?;

    let prefix = format!(
        "regard-bench-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let env: Vec<(String, String)> = [
        ("REGARD_AMQP_URL", args.amqp_url.clone()),
        ("REGARD_QUEUE_PREFIX", prefix.clone()),
        ("REGARD_MEDIA_ROOTS", media.display().to_string()),
        ("REGARD_LOG", "warn,regard=warn".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    eprintln!(
        "bench worker: queues {prefix}.*, logs in {}",
        logs.display()
    );
    let setup = subcommand(&exe, &cwd, &env, &["queue", "setup"]);
    let mut rows = Vec::new();
    let measured = async {
        setup?;
        for &(workers, slots) in &configs {
            let row = run_config(
                &Config {
                    exe: &exe,
                    cwd: &cwd,
                    env: &env,
                    logs: &logs,
                    admin_url: &args.admin_database_url,
                    csv: &csv_path,
                    jobs: args.jobs,
                    timeout: args.timeout,
                },
                workers,
                slots,
                (cores / (workers * slots)).max(1),
            )
            .await?;
            eprintln!(
                "bench worker: {workers} worker(s) × {slots} slot(s): {:.2} jobs/s",
                args.jobs as f64 / row.wall_s
            );
            rows.push(row);
        }
        anyhow::Ok(())
    }
    .await;
    let deleted = delete_topology(&args.amqp_url, &prefix).await;
    measured?;
    deleted.context("deleting the bench queues")?;
    println!(
        "{} poster jobs ({}, distinct bytes), {cores} cores, {}\n",
        args.jobs,
        args.poster.display(),
        exe.strip_prefix(&cwd).unwrap_or(&exe).display()
    );
    print!("{}", render(&rows, args.jobs));
    Ok(())
}

/// What every configuration shares.
struct Config<'a> {
    exe: &'a Path,
    cwd: &'a Path,
    env: &'a [(String, String)],
    logs: &'a Path,
    admin_url: &'a str,
    csv: &'a Path,
    jobs: usize,
    timeout: Duration,
}

/// Run a `regard` subcommand with the bench's environment; an error with its stderr if it fails.
fn subcommand(
    exe: &Path,
    cwd: &Path,
    env: &[(String, String)],
    args: &[&str],
) -> anyhow::Result<()> {
    let out = Command::new(exe)
        .args(args)
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env_remove("REGARD_ALLOW_PRIVATE")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("regard {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "regard {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

async fn run_config(
    c: &Config<'_>,
    workers: usize,
    slots: usize,
    ort_threads: usize,
) -> anyhow::Result<Row> {
    let name = format!(
        "regard_bench_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut admin = sqlx::PgConnection::connect(c.admin_url)
        .await
        .with_context(|| format!("PostgreSQL at {}", c.admin_url))?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    eprintln!("bench worker: database {name}");
    let url = database_url(c.admin_url, &name)?;
    let measured = measure(c, &url, workers, slots, ort_threads).await;
    let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
    let row = measured?;
    dropped.with_context(|| format!("dropping database {name}"))?;
    Ok(row)
}

async fn measure(
    c: &Config<'_>,
    url: &str,
    workers: usize,
    slots: usize,
    ort_threads: usize,
) -> anyhow::Result<Row> {
    let mut env = c.env.to_vec();
    env.extend(
        [
            ("REGARD_DATABASE_URL", url.to_string()),
            ("REGARD_JOB_SLOTS", slots.to_string()),
            ("REGARD_ORT_THREADS", ort_threads.to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    let mut fleet = Fleet {
        exe: c.exe.to_path_buf(),
        cwd: c.cwd.to_path_buf(),
        env: env.clone(),
        logs: PathBuf::from(c.logs),
        workers: Vec::new(),
        started: 0,
    };
    fleet.start_all(workers)?;
    fleet.wait_ready(Duration::from_secs(180)).await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    let started = Instant::now();
    subcommand(
        c.exe,
        c.cwd,
        c.env,
        &["enqueue", "--file", &c.csv.display().to_string()],
    )?;
    let count = |status: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM regard.analysis WHERE status = $1")
                .bind(status)
                .fetch_one(&pool)
                .await
        }
    };
    loop {
        let done = count("succeeded").await? + count("failed").await?;
        if done as usize >= c.jobs {
            break;
        }
        for (i, w) in fleet.workers.iter_mut().enumerate() {
            if let Some(status) = w.child.try_wait()? {
                bail!(
                    "worker {i} exited during the run ({status}); logs in {}",
                    c.logs.display()
                );
            }
        }
        if started.elapsed() > c.timeout {
            bail!(
                "{workers}x{slots}: {done} of {} analyses after {} s; logs in {}",
                c.jobs,
                c.timeout.as_secs(),
                c.logs.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall_s = started.elapsed().as_secs_f64();
    let failed = count("failed").await?;
    let mean_analysis_s: f64 = sqlx::query_scalar(
        "SELECT coalesce(avg((stage_timings_s->>'analyse')::float8), 0) FROM regard.analysis",
    )
    .fetch_one(&pool)
    .await?;
    pool.close().await;
    let codes = fleet.stop_all(Duration::from_secs(60));
    if let Some((i, code)) = codes.iter().enumerate().find(|(_, c)| **c != Some(0)) {
        bail!(
            "worker {i} did not stop cleanly on SIGTERM (exit {code:?}); logs in {}",
            c.logs.display()
        );
    }
    Ok(Row {
        workers,
        slots,
        ort_threads,
        wall_s,
        failed,
        mean_analysis_s,
    })
}

/// Delete the bench's queues and exchanges (the workers declared them with the default
/// settings, under `prefix`).
async fn delete_topology(amqp_url: &str, prefix: &str) -> anyhow::Result<()> {
    let conn = crate::queue::connect(amqp_url, "regard bench worker").await?;
    let channel = conn.create_channel().await?;
    Topology::with_prefix(prefix).delete(&channel).await?;
    let _ = conn.close(200, "bench done".into()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_parse_and_bad_ones_are_refused() {
        assert_eq!(
            parse_configs("1x1, 2X1,1x2").unwrap(),
            [(1, 1), (2, 1), (1, 2)]
        );
        for bad in ["", "2", "0x1", "1x", "ax1", "1x1,"] {
            assert!(parse_configs(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_database_url_keeps_the_server_and_its_options() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "b").unwrap(),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(
            database_url("postgres://u@h/postgres?sslmode=disable", "b").unwrap(),
            "postgres://u@h/b?sslmode=disable"
        );
    }

    #[test]
    fn the_table_gives_jobs_per_second_from_the_wall_time() {
        let row = Row {
            workers: 1,
            slots: 2,
            ort_threads: 1,
            wall_s: 10.0,
            failed: 0,
            mean_analysis_s: 0.0671,
        };
        let table = render(&[row], 200);
        assert!(
            table.ends_with("| 1 | 2 | 1 | 10.00 | 20.00 | 0.067 | 0 |\n"),
            "{table}"
        );
    }
}
