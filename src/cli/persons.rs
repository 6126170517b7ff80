//! `regard persons export|import` and `regard retention`: the database chores around human
//! coding and privacy, on top of [`crate::store`].

use crate::cli::{PersonsExportArgs, PersonsImportArgs, RetentionArgs};
use crate::store::{FilmFilter, Store, StoreError};
use anyhow::Context;
use std::io::Write;
use std::time::Duration;

/// Write the persons still to code as CSV to `out`. Returns how many rows were written.
pub async fn export<W: Write>(args: &PersonsExportArgs, out: W) -> anyhow::Result<usize> {
    let store = Store::connect(&args.db.database_url).await?;
    let filter = FilmFilter {
        film_id: None,
        imdb_id: args.imdb_id.clone(),
        title_contains: args.film_title.clone(),
        year: args.year,
    };
    let persons = store.persons_to_code(&filter, &args.attribute).await?;
    let mut csv = csv::Writer::from_writer(out);
    if persons.is_empty() {
        // Still a valid file to fill in: the header alone.
        csv.write_record(CSV_HEADER)?;
    }
    for p in &persons {
        csv.serialize(p)?;
    }
    csv.flush().context("cannot write the CSV")?;
    Ok(persons.len())
}

/// The header of an export, the field names of [`crate::store::PersonToCode`] in order.
const CSV_HEADER: [&str; 19] = [
    "person_id",
    "attribute",
    "label",
    "film_id",
    "film_title",
    "film_year",
    "media_kind",
    "media_source",
    "content_sha256",
    "analysis_id",
    "number",
    "first_seen_s",
    "last_seen_s",
    "key_frame_s",
    "box_x",
    "box_y",
    "box_width",
    "box_height",
    "model_label",
];

/// `regard persons export`: CSV on stdout, a count on stderr.
pub async fn run_export(args: PersonsExportArgs) -> anyhow::Result<bool> {
    let n = export(&args, std::io::stdout().lock()).await?;
    eprintln!(
        "{n} face(s)/person(s) to code for {:?}; fill in the label column",
        args.attribute
    );
    Ok(true)
}

/// `regard persons import`: false (exit 1) when the file was rejected; nothing is imported then.
pub async fn run_import(args: PersonsImportArgs) -> anyhow::Result<bool> {
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let store = Store::connect(&args.db.database_url).await?;
    match store
        .import_labels(std::io::BufReader::new(file), &args.coder)
        .await
    {
        Ok(summary) => {
            println!(
                "{}: {} label(s) written, {} row(s) without a label skipped, {} media figure(s) recomputed",
                args.file.display(),
                summary.labels,
                summary.skipped_empty,
                summary.recomputed
            );
            Ok(true)
        }
        Err(StoreError::LabelsRejected(errors)) => {
            for e in &errors {
                eprintln!("{}:{e}", args.file.display());
            }
            eprintln!(
                "{}: rejected ({} problem(s)), nothing imported",
                args.file.display(),
                errors.len()
            );
            Ok(false)
        }
        Err(e @ StoreError::Invalid { .. }) => {
            eprintln!("{}: {e}; nothing imported", args.file.display());
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// `regard retention`: delete per-person rows older than the age, keep the aggregates.
pub async fn run_retention(args: RetentionArgs) -> anyhow::Result<bool> {
    let store = Store::connect(&args.db.database_url).await?;
    let age = Duration::from_secs(u64::from(args.older_than) * 24 * 3600);
    let summary = store.purge_persons_older_than(age).await?;
    let queued = store.purge_coding_queues_older_than(age).await?;
    println!(
        "retention ({} day(s)): {} face/person row(s) deleted, {} stored result(s) stripped of per-person data, {} coder work queue row(s) removed; representation figures kept",
        args.older_than, summary.persons_deleted, summary.analyses_stripped, queued
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PersonToCode;

    #[test]
    fn an_empty_export_has_the_same_header_as_a_full_one() {
        let person = PersonToCode {
            person_id: 1,
            attribute: "origin".into(),
            label: String::new(),
            film_id: None,
            film_title: None,
            film_year: None,
            media_kind: "poster".into(),
            media_source: "p.jpg".into(),
            content_sha256: "00".into(),
            analysis_id: 1,
            number: 1,
            first_seen_s: None,
            last_seen_s: None,
            key_frame_s: None,
            box_x: 0.0,
            box_y: 0.0,
            box_width: 1.0,
            box_height: 1.0,
            model_label: "unknown".into(),
        };
        let mut csv = csv::Writer::from_writer(Vec::new());
        csv.serialize(&person).unwrap();
        let text = String::from_utf8(csv.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().next().unwrap(), CSV_HEADER.join(","));
    }
}
