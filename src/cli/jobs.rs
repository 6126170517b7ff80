//! `regard jobs show|list` (the job ledger) and `regard films merge`.

use crate::cli::{FilmsCommand, JobsCommand};
use crate::store::{JobRecord, JobStatus, Store};
use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};

pub async fn run(command: JobsCommand) -> anyhow::Result<bool> {
    match command {
        JobsCommand::Show(args) => {
            let store = Store::connect(&args.db.database_url).await?;
            match store.job(&args.job_id).await? {
                Some(job) if args.json => {
                    println!("{}", serde_json::to_string_pretty(&job)?);
                    Ok(true)
                }
                Some(job) => {
                    print!("{}", show(&job));
                    Ok(true)
                }
                None => {
                    eprintln!("error: no job {:?} in the ledger", args.job_id);
                    Ok(false)
                }
            }
        }
        JobsCommand::List(args) => {
            let status = args
                .status
                .as_deref()
                .map(|s| JobStatus::parse(s).expect("clap only lets the ledger's states through"));
            let since = args.since.as_deref().map(parse_since).transpose()?;
            let store = Store::connect(&args.db.database_url).await?;
            let jobs = store.jobs(status, since, args.limit.max(1)).await?;
            if args.json {
                for job in &jobs {
                    println!("{}", serde_json::to_string(job)?);
                }
            } else {
                print!("{}", list(&jobs));
            }
            Ok(true)
        }
    }
}

pub async fn run_films(command: FilmsCommand) -> anyhow::Result<bool> {
    match command {
        FilmsCommand::Merge(args) => {
            let store = Store::connect(&args.db.database_url).await?;
            store.migrate().await?;
            store.merge_films(args.keep, args.drop).await?;
            println!("film {} merged into film {}", args.drop, args.keep);
            Ok(true)
        }
    }
}

/// An RFC 3339 time, or a date (midnight UTC).
fn parse_since(s: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .with_context(|| format!("--since {s:?}: give an RFC 3339 time or a YYYY-MM-DD date"))?;
    Ok(day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
}

fn or_dash<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "–".to_string(), T::to_string)
}

/// The text of `regard jobs show`. Pure.
pub fn show(job: &JobRecord) -> String {
    let film = job
        .film
        .as_ref()
        .map_or_else(|| "–".to_string(), |f| f.to_string());
    let festival = job
        .festival
        .as_ref()
        .map_or_else(|| "–".to_string(), |f| f.to_string());
    let rows = [
        ("job", job.job_id.clone()),
        ("origin", job.origin.clone()),
        ("status", job.status.clone()),
        ("kind", or_dash(&job.kind)),
        ("source", or_dash(&job.source)),
        ("film", film),
        ("festival", festival),
        ("attempts", job.attempts.to_string()),
        ("received", job.received_at.to_rfc3339()),
        ("started", or_dash(&job.started_at.map(|t| t.to_rfc3339()))),
        (
            "finished",
            or_dash(&job.finished_at.map(|t| t.to_rfc3339())),
        ),
        (
            "next attempt",
            or_dash(&job.next_attempt_at.map(|t| t.to_rfc3339())),
        ),
        ("error", or_dash(&job.error_code)),
        ("message", or_dash(&job.error_message)),
        ("analysis", or_dash(&job.analysis_id)),
    ];
    rows.iter().map(|(k, v)| format!("{k:<13} {v}\n")).collect()
}

/// The table of `regard jobs list`. Pure.
pub fn list(jobs: &[JobRecord]) -> String {
    let mut out = format!(
        "{:<36} {:<13} {:<7} {:>8} {:<25} {:<22} {:>8}\n",
        "job", "status", "kind", "attempts", "received", "error", "analysis"
    );
    for j in jobs {
        out.push_str(&format!(
            "{:<36} {:<13} {:<7} {:>8} {:<25} {:<22} {:>8}\n",
            j.job_id,
            j.status,
            or_dash(&j.kind),
            j.attempts,
            j.received_at.format("%Y-%m-%d %H:%M:%S UTC"),
            or_dash(&j.error_code),
            or_dash(&j.analysis_id),
        ));
    }
    out.push_str(&format!("{} job(s)\n", jobs.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_date_or_a_time() {
        assert_eq!(
            parse_since("2026-05-12").unwrap().to_rfc3339(),
            "2026-05-12T00:00:00+00:00"
        );
        assert_eq!(
            parse_since("2026-05-12T10:30:00+02:00")
                .unwrap()
                .to_rfc3339(),
            "2026-05-12T08:30:00+00:00"
        );
        assert!(parse_since("last tuesday").is_err());
    }
}
