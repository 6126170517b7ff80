//! Publishing jobs: one from flags, or many from a JSONL or CSV file, with publisher confirms.
//!
//! CSV files have a header row naming their columns, in any order:
//! `kind,source,title,year,imdb_id,tmdb_id,festival,edition,section,job_id`.
//! `kind`, `source` and `title` are required; empty cells are absent values; `job_id` is
//! generated when absent; `festival` and `edition` go together. Unknown columns are refused.
//! JSONL files hold one version 1 job message per line (blank lines and `#` comments skipped).

use super::job::{Job, JobId, JobRejection};
use super::topology::{JOB_ROUTING_KEY, Topology};
use super::{QueueError, broker_op, connect};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection};
use serde_json::{Map, Value, json};
use std::path::Path;

/// Largest job file read, in bytes.
pub const MAX_JOB_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Jobs published before waiting for their confirms.
const CONFIRM_BATCH: usize = 256;

/// The columns a CSV job file may have.
pub const CSV_COLUMNS: [&str; 10] = [
    "kind", "source", "title", "year", "imdb_id", "tmdb_id", "festival", "edition", "section",
    "job_id",
];

/// A line of an input file that was not enqueued, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// 1-based line number in the file (for CSV, the line where the record starts).
    pub line: u64,
    pub reason: String,
}

/// What an enqueue run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnqueueSummary {
    pub accepted: usize,
    pub refused: Vec<Refused>,
}

/// Jobs read from a file, each with its line number, and the lines refused.
pub type ReadJobs = (Vec<(u64, Job)>, Vec<Refused>);

/// Reads JSONL text into jobs and refusals. Pure.
pub fn read_jsonl(text: &str) -> ReadJobs {
    let mut jobs = Vec::new();
    let mut refused = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i as u64 + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match Job::parse(trimmed.as_bytes()) {
            Ok(job) => jobs.push((line_no, job)),
            Err(e) => refused.push(Refused {
                line: line_no,
                reason: e.to_string(),
            }),
        }
    }
    (jobs, refused)
}

/// Reads CSV (with a header row) into jobs and refusals. Pure apart from reading `input`.
pub fn read_csv(input: impl std::io::Read) -> Result<ReadJobs, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| format!("CSV header row: {e}"))?
        .clone();
    for h in &headers {
        if !CSV_COLUMNS.contains(&h) {
            return Err(format!(
                "unknown CSV column {h:?}; known columns: {}",
                CSV_COLUMNS.join(",")
            ));
        }
    }
    for required in ["kind", "source", "title"] {
        if !headers.iter().any(|h| h == required) {
            return Err(format!("CSV column {required:?} is missing"));
        }
    }
    let mut jobs = Vec::new();
    let mut refused = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                refused.push(Refused {
                    line,
                    reason: format!("unreadable CSV record: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let cells: Map<String, Value> = headers
            .iter()
            .zip(record.iter())
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        match job_from_cells(&cells) {
            Ok(job) => jobs.push((line, job)),
            Err(reason) => refused.push(Refused { line, reason }),
        }
    }
    Ok((jobs, refused))
}

/// Builds the version 1 message from CSV cells and parses it, so CSV jobs pass exactly the
/// checks queue messages do.
fn job_from_cells(cells: &Map<String, Value>) -> Result<Job, String> {
    let text = |k: &str| cells.get(k).and_then(Value::as_str).map(str::to_string);
    let int = |k: &str| -> Result<Option<i64>, String> {
        text(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| format!("column {k}: {v:?} is not an integer"))
            })
            .transpose()
    };
    let mut film = Map::new();
    film.insert("title".into(), json!(text("title")));
    if let Some(y) = int("year")? {
        film.insert("year".into(), json!(y));
    }
    if let Some(id) = text("imdb_id") {
        film.insert("imdb_id".into(), json!(id));
    }
    if let Some(id) = int("tmdb_id")? {
        film.insert("tmdb_id".into(), json!(id));
    }
    let mut message = json!({
        "version": 1,
        "job_id": text("job_id").unwrap_or_else(|| JobId::generate().to_string()),
        "kind": text("kind"),
        "source": text("source"),
        "film": film,
    });
    match (text("festival"), int("edition")?) {
        (None, None) => {
            if text("section").is_some() {
                return Err("column section needs festival and edition".into());
            }
        }
        (Some(f), Some(e)) => {
            message["festival"] = json!({"festival": f, "edition": e});
            if let Some(s) = text("section") {
                message["festival"]["section"] = json!(s);
            }
        }
        _ => return Err("columns festival and edition go together".into()),
    }
    let bytes = serde_json::to_vec(&message).map_err(|e| e.to_string())?;
    Job::parse(&bytes).map_err(|e: JobRejection| e.to_string())
}

/// A connection for publishing jobs, with confirms on.
pub struct Publisher {
    conn: Connection,
    channel: Channel,
    topology: Topology,
}

impl Publisher {
    pub async fn connect(url: &str, topology: &Topology) -> Result<Publisher, QueueError> {
        topology.validate().map_err(QueueError::Config)?;
        let conn = connect(url, "regard enqueue").await?;
        check_jobs_exchange(&conn, topology).await?;
        let channel = broker_op("channel.open", conn.create_channel()).await?;
        broker_op(
            "confirm.select",
            channel.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        Ok(Publisher {
            conn,
            channel,
            topology: topology.clone(),
        })
    }

    /// Publishes one job and waits for the broker's confirm.
    pub async fn publish(&self, job: &Job) -> Result<(), QueueError> {
        let confirm = self.send(job).await?;
        Self::confirmed(confirm).await
    }

    /// Publishes many jobs, waiting for confirms in batches; returns the refusals.
    pub async fn publish_all(&self, jobs: &[(u64, Job)]) -> Result<EnqueueSummary, QueueError> {
        let mut summary = EnqueueSummary::default();
        for batch in jobs.chunks(CONFIRM_BATCH) {
            let mut confirms = Vec::with_capacity(batch.len());
            for (line, job) in batch {
                confirms.push((*line, self.send(job).await?));
            }
            for (line, confirm) in confirms {
                match Self::confirmed(confirm).await {
                    Ok(()) => summary.accepted += 1,
                    Err(QueueError::Refused(reason)) => {
                        summary.refused.push(Refused { line, reason })
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(summary)
    }

    /// Reads a `.jsonl`/`.ndjson` or `.csv` file and publishes its jobs.
    pub async fn enqueue_file(&self, path: &Path) -> Result<EnqueueSummary, QueueError> {
        let file_err = |reason: String| QueueError::File {
            path: path.display().to_string(),
            reason,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| file_err(e.to_string()))?
            .len();
        if size > MAX_JOB_FILE_BYTES {
            return Err(file_err(format!(
                "{size} bytes, more than the {MAX_JOB_FILE_BYTES} allowed"
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| file_err(e.to_string()))?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let (jobs, mut refused) = match ext.as_str() {
            "jsonl" | "ndjson" => {
                let text = String::from_utf8(bytes).map_err(|_| file_err("not UTF-8".into()))?;
                read_jsonl(&text)
            }
            "csv" => read_csv(bytes.as_slice()).map_err(file_err)?,
            _ => return Err(file_err("expected a .jsonl, .ndjson or .csv file".into())),
        };
        let mut summary = self.publish_all(&jobs).await?;
        refused.append(&mut summary.refused);
        refused.sort_by_key(|r| r.line);
        summary.refused = refused;
        Ok(summary)
    }

    pub async fn close(self) -> Result<(), QueueError> {
        broker_op(
            "connection.close",
            self.conn.close(200, "enqueue done".into()),
        )
        .await
    }

    async fn send(&self, job: &Job) -> Result<lapin::PublisherConfirm, QueueError> {
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(job.id.as_str().into())
            .with_type("regard.job.v1".into())
            .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64);
        broker_op(
            "basic.publish",
            self.channel.basic_publish(
                self.topology.jobs_exchange().into(),
                JOB_ROUTING_KEY.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &job.to_json(),
                props,
            ),
        )
        .await
    }

    async fn confirmed(confirm: lapin::PublisherConfirm) -> Result<(), QueueError> {
        let confirmation = broker_op("publisher confirm", confirm).await?;
        if !confirmation.is_ack() {
            return Err(QueueError::Refused("the broker nacked the job".into()));
        }
        if confirmation.take_message().is_some() {
            return Err(QueueError::Refused(
                "unroutable: the jobs queue is missing (run `regard queue setup`)".into(),
            ));
        }
        Ok(())
    }
}

/// Fails with advice when the jobs exchange is missing. Enqueue does not declare the topology
/// itself: the workers' delivery limit and retry delays belong to `regard queue setup` (or the
/// workers), and a publisher declaring with other values would meet PRECONDITION_FAILED.
/// The passive declare runs on a channel of its own, since a NOT_FOUND closes the channel.
async fn check_jobs_exchange(conn: &Connection, topology: &Topology) -> Result<(), QueueError> {
    use lapin::ErrorKind;
    use lapin::options::ExchangeDeclareOptions;
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    let probe = broker_op("channel.open", conn.create_channel()).await?;
    let exchange = topology.jobs_exchange();
    let declared = broker_op(
        "exchange.declare (passive)",
        probe.exchange_declare(
            exchange.as_str().into(),
            lapin::ExchangeKind::Direct,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        ),
    )
    .await;
    match declared {
        Ok(()) => broker_op("channel.close", probe.close(200, "checked".into())).await,
        Err(QueueError::Broker { source, .. })
            if matches!(source.kind(), ErrorKind::ProtocolError(e)
                if matches!(e.kind(), AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))) =>
        {
            Err(QueueError::Config(format!(
                "the jobs exchange {exchange} does not exist on this broker: run `regard queue setup` \
                 (with the same --queue-prefix {}) or start a worker first",
                topology.prefix
            )))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_lines_are_numbered_from_one() {
        let text = "# jobs\n\n{\"version\":1,\"job_id\":\"a\",\"kind\":\"poster\",\"source\":\"/m/a.jpg\",\"film\":{\"title\":\"A\"}}\nnot json\n";
        let (jobs, refused) = read_jsonl(text);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].0, 3);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].line, 4);
        assert!(
            refused[0].reason.contains("not valid JSON"),
            "{}",
            refused[0].reason
        );
    }

    #[test]
    fn csv_rows_become_jobs_or_refusals() {
        let csv = "kind,source,title,year,imdb_id,tmdb_id,festival,edition,section,job_id\n\
                   poster,https://example.org/a.jpg,Anatomie d'une chute,2023,tt17009710,915935,Festival de Cannes,2023,Compétition,c-1\n\
                   trailer,/srv/m/b.mp4,\"Titre, avec virgule\",,,,,,,\n\
                   poster,/srv/m/c.jpg,C,not-a-year,,,,,,\n\
                   poster,relative/d.jpg,D,,,,,,,\n\
                   poster,/srv/m/e.jpg,E,,,,Berlinale,,,\n";
        let (jobs, refused) = read_csv(csv.as_bytes()).unwrap();
        assert_eq!(jobs.len(), 2, "{refused:?}");
        let first = &jobs[0].1;
        assert_eq!(first.id.as_str(), "c-1");
        assert_eq!(
            first.festival.as_ref().unwrap().section.as_deref(),
            Some("Compétition")
        );
        assert_eq!(jobs[1].1.film.title, "Titre, avec virgule");
        assert_eq!(jobs[1].0, 3);
        let lines: Vec<u64> = refused.iter().map(|r| r.line).collect();
        assert_eq!(lines, [4, 5, 6]);
        assert!(refused[0].reason.contains("year"));
        assert!(refused[1].reason.contains("absolute"));
        assert!(refused[2].reason.contains("together"));
    }

    #[test]
    fn csv_with_unknown_or_missing_columns_is_refused_whole() {
        assert!(
            read_csv("kind,source,title,director\n".as_bytes())
                .unwrap_err()
                .contains("director")
        );
        assert!(
            read_csv("kind,source\n".as_bytes())
                .unwrap_err()
                .contains("title")
        );
    }
}
