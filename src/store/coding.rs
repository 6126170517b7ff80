//! Human coding. Perceived origin (and any attribute the association wants checked) is coded
//! by trained coders, as French representation studies do; no model infers it by default.
//! Coders get the persons the machine found (media, timestamps, box: no face image is stored),
//! either as a CSV to fill in or in the browser (`crate::coding`), give labels from
//! `regard.coding_scheme`, and the affected representation rows are recomputed by `stats` with
//! the rule "adjudicated or agreed coder label, else a single coder's, else the model's, else
//! unknown". Every label is recorded with coder, time and scheme version, and every change in
//! the audit trail `regard.coder_label_event`.

use super::write::{attribute_rows, insert_representation};
use super::{Store, StoreError};
use crate::domain::Analysis;
use crate::stats::CoderLabels;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::{BTreeSet, HashMap};

/// Which films' persons to list. Every set field must match; the default matches every film
/// (and media filed under no film).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilmFilter {
    pub film_id: Option<i64>,
    pub imdb_id: Option<String>,
    /// Case-insensitive substring of the title.
    pub title_contains: Option<String>,
    pub year: Option<i32>,
}

/// One face or person still to be coded for an attribute. Serialises to one CSV row whose
/// `person_id`, `attribute` and empty `label` columns are what `import_labels` reads back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonToCode {
    pub person_id: i64,
    pub attribute: String,
    pub label: String,
    pub film_id: Option<i64>,
    pub film_title: Option<String>,
    pub film_year: Option<i32>,
    pub media_kind: String,
    pub media_source: String,
    pub content_sha256: String,
    pub analysis_id: i64,
    /// Face number on the poster / person number in the trailer.
    pub number: i32,
    pub first_seen_s: Option<f64>,
    pub last_seen_s: Option<f64>,
    /// Where to look in a trailer: the frame where the face is largest.
    pub key_frame_s: Option<f64>,
    pub box_x: f32,
    pub box_y: f32,
    pub box_width: f32,
    pub box_height: f32,
    /// The model's label for the attribute (`unknown` when no model is configured).
    pub model_label: String,
}

/// A rejected line of a label CSV. Line numbers count the header as line 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct LabelLineError {
    pub line: u64,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportSummary {
    /// Labels written (new or changed for this coder).
    pub labels: u64,
    /// Rows with an empty label: not coded yet, left alone.
    pub skipped_empty: u64,
    /// (analysis, attribute) pairs whose representation rows were recomputed.
    pub recomputed: u64,
}

#[derive(Debug, Deserialize)]
struct LabelRecord {
    person_id: String,
    attribute: String,
    label: String,
}

struct ParsedLabel {
    line: u64,
    person_id: i64,
    attribute: String,
    label: String,
}

/// Parse and check the CSV itself (no database): columns, ids, duplicates.
fn parse_labels<R: std::io::Read>(
    reader: R,
) -> Result<(Vec<ParsedLabel>, u64, Vec<LabelLineError>), StoreError> {
    let mut csv = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(reader);
    let headers = csv
        .headers()
        .map_err(|e| StoreError::invalid("label CSV", e.to_string()))?
        .clone();
    for required in ["person_id", "attribute", "label"] {
        if !headers.iter().any(|h| h == required) {
            return Err(StoreError::invalid(
                "label CSV",
                format!("missing column {required:?}"),
            ));
        }
    }
    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    let mut skipped = 0;
    let mut seen: HashMap<(i64, String), u64> = HashMap::new();
    for record in csv.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                errors.push(LabelLineError {
                    line,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let row: LabelRecord = match record.deserialize(Some(&headers)) {
            Ok(r) => r,
            Err(e) => {
                errors.push(LabelLineError {
                    line,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        if row.label.is_empty() {
            skipped += 1;
            continue;
        }
        let Ok(person_id) = row.person_id.parse::<i64>() else {
            errors.push(LabelLineError {
                line,
                reason: format!("person_id {:?} is not a number", row.person_id),
            });
            continue;
        };
        if row.attribute.is_empty() {
            errors.push(LabelLineError {
                line,
                reason: "attribute is empty".into(),
            });
            continue;
        }
        if let Some(first) = seen.insert((person_id, row.attribute.clone()), line) {
            errors.push(LabelLineError {
                line,
                reason: format!(
                    "person {person_id} already labelled for {:?} on line {first}",
                    row.attribute
                ),
            });
            continue;
        }
        parsed.push(ParsedLabel {
            line,
            person_id,
            attribute: row.attribute,
            label: row.label,
        });
    }
    Ok((parsed, skipped, errors))
}

/// A queued person as the queue query returns it: person, film title and year, media kind,
/// person number, current label.
type QueueRow = (i64, Option<String>, Option<i32>, String, i32, String);
/// Where a face is: media kind, source, content sha256, box (x, y, w, h), key frame time,
/// person number, trailer timeline.
type FaceSourceRow = (
    String,
    String,
    String,
    f32,
    f32,
    f32,
    f32,
    Option<f64>,
    i32,
    Option<serde_json::Value>,
);
/// A disputed person: person, film title, media kind, person number, coders, their labels.
type DisagreementRow = (i64, Option<String>, String, i32, Vec<String>, Vec<String>);

impl Store {
    /// Persons of the latest analyses of the matching films that have no coder label yet for
    /// `attribute`, film by film, media by media, in order of number.
    pub async fn persons_to_code(
        &self,
        filter: &FilmFilter,
        attribute: &str,
    ) -> Result<Vec<PersonToCode>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT ON (p.person_id)
                    p.person_id, f.film_id, f.title, f.year, la.media_kind, la.source,
                    la.content_sha256, p.analysis_id, p.number, p.first_seen_s, p.last_seen_s,
                    p.key_frame_s, p.box_x, p.box_y, p.box_width, p.box_height,
                    coalesce((SELECT e ->> 'label' FROM jsonb_array_elements(p.attributes) e
                              WHERE e ->> 'attribute' = $1 LIMIT 1), 'unknown') AS model_label
             FROM regard.person p
             JOIN regard.latest_analysis la ON la.analysis_id = p.analysis_id
             LEFT JOIN regard.film_media fm ON fm.media_id = la.media_id
             LEFT JOIN regard.film f ON f.film_id = fm.film_id
             WHERE NOT EXISTS (SELECT 1 FROM regard.coder_label c
                               WHERE c.person_id = p.person_id AND c.attribute = $1)
               AND ($2::bigint IS NULL OR f.film_id = $2)
               AND ($3::text IS NULL OR f.imdb_id = $3)
               AND ($4::text IS NULL OR f.title ILIKE '%' || $4 || '%')
               AND ($5::integer IS NULL OR f.year = $5)
             ORDER BY p.person_id, f.film_id",
        )
        .bind(attribute)
        .bind(filter.film_id)
        .bind(filter.imdb_id.as_deref())
        .bind(filter.title_contains.as_deref())
        .bind(filter.year)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<PersonToCode> = rows
            .into_iter()
            .map(|r| PersonToCode {
                person_id: r.get(0),
                attribute: attribute.to_string(),
                label: String::new(),
                film_id: r.get(1),
                film_title: r.get(2),
                film_year: r.get(3),
                media_kind: r.get(4),
                media_source: r.get(5),
                content_sha256: r.get(6),
                analysis_id: r.get(7),
                number: r.get(8),
                first_seen_s: r.get(9),
                last_seen_s: r.get(10),
                key_frame_s: r.get(11),
                box_x: r.get(12),
                box_y: r.get(13),
                box_width: r.get(14),
                box_height: r.get(15),
                model_label: r.get(16),
            })
            .collect();
        out.sort_by(|a, b| {
            (a.film_title.as_deref(), a.analysis_id, a.number).cmp(&(
                b.film_title.as_deref(),
                b.analysis_id,
                b.number,
            ))
        });
        Ok(out)
    }

    /// Import a coder's labels from CSV (columns `person_id`, `attribute`, `label`; others are
    /// ignored, so the export of `persons_to_code` can be filled in and sent back). Every line
    /// is checked first (person exists, label in the coding scheme, no duplicate); if any line
    /// is wrong nothing is imported and every problem is reported with its line.
    pub async fn import_labels<R: std::io::Read>(
        &self,
        reader: R,
        coder: &str,
    ) -> Result<ImportSummary, StoreError> {
        let coder = coder.trim();
        if coder.is_empty() {
            return Err(StoreError::invalid("coder", "the coder's name is empty"));
        }
        let (labels, skipped_empty, mut errors) = parse_labels(reader)?;

        let ids: Vec<i64> = labels.iter().map(|l| l.person_id).collect();
        let persons: HashMap<i64, i64> = sqlx::query_as::<_, (i64, i64)>(
            "SELECT person_id, analysis_id FROM regard.person WHERE person_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .collect();
        let scheme: BTreeSet<(String, String)> = sqlx::query_as::<_, (String, String)>(
            "SELECT attribute, label FROM regard.coding_scheme",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .collect();
        for l in &labels {
            if !persons.contains_key(&l.person_id) {
                errors.push(LabelLineError {
                    line: l.line,
                    reason: format!("unknown person_id {}", l.person_id),
                });
            }
            if !scheme.contains(&(l.attribute.clone(), l.label.clone())) {
                errors.push(LabelLineError {
                    line: l.line,
                    reason: format!(
                        "label {:?} is not in the coding scheme of {:?}",
                        l.label, l.attribute
                    ),
                });
            }
        }
        if !errors.is_empty() {
            errors.sort_by_key(|e| e.line);
            return Err(StoreError::LabelsRejected(errors));
        }

        let mut tx = self.pool.begin().await?;
        let mut affected: BTreeSet<(i64, String)> = BTreeSet::new();
        let mut written = 0;
        for l in &labels {
            written += write_label(
                &mut tx,
                l.person_id,
                &l.attribute,
                &l.label,
                coder,
                "import",
            )
            .await?;
            affected.insert((persons[&l.person_id], l.attribute.clone()));
        }
        for (analysis_id, attribute) in &affected {
            recompute_representation(&mut tx, *analysis_id, attribute).await?;
        }
        tx.commit().await?;
        Ok(ImportSummary {
            labels: written,
            skipped_empty,
            recomputed: affected.len() as u64,
        })
    }
}

/// Replace the representation rows of one analysis and attribute by the figures of `stats` with
/// the coders' labels (the one that counts per person, see `regard.person_coded_label`; a
/// coder's `unknown` and a dispute leave the model's estimate in place).
async fn recompute_representation(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    analysis_id: i64,
    attribute: &str,
) -> Result<(), StoreError> {
    let result: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT result FROM regard.analysis WHERE analysis_id = $1 FOR UPDATE")
            .bind(analysis_id)
            .fetch_one(&mut **tx)
            .await?;
    let analysis: Analysis = result
        .ok_or_else(|| {
            StoreError::invalid(format!("analysis {analysis_id}"), "has no stored result")
        })
        .and_then(|v| {
            serde_json::from_value(v).map_err(|e| {
                StoreError::invalid(
                    format!("stored result of analysis {analysis_id}"),
                    e.to_string(),
                )
            })
        })?;
    // The label that counts (adjudicated > agreed > single; disputed: none).
    let labels: Vec<(i32, String)> = sqlx::query_as(
        "SELECT p.number, c.label
         FROM regard.person_coded_label c JOIN regard.person p USING (person_id)
         WHERE p.analysis_id = $1 AND c.attribute = $2 AND c.label <> 'unknown'
         ORDER BY p.number",
    )
    .bind(analysis_id)
    .bind(attribute)
    .fetch_all(&mut **tx)
    .await?;
    let scheme: Vec<String> = sqlx::query_scalar(
        "SELECT label FROM regard.coding_scheme WHERE attribute = $1 ORDER BY position, label",
    )
    .bind(attribute)
    .fetch_all(&mut **tx)
    .await?;
    let coder = CoderLabels {
        labels: labels
            .into_iter()
            .filter_map(|(number, label)| Some((u32::try_from(number).ok()?, label)))
            .collect(),
        scheme,
    };
    let rows = attribute_rows(&analysis, attribute, &coder);
    sqlx::query("DELETE FROM regard.representation WHERE analysis_id = $1 AND attribute = $2")
        .bind(analysis_id)
        .bind(attribute)
        .execute(&mut **tx)
        .await?;
    for r in &rows {
        insert_representation(tx, analysis_id, r).await?;
    }
    Ok(())
}

/// Insert or change one coder's label (with the scheme's current version) and log it in the
/// audit trail. Returns 1 when the label is new or changed, 0 when it was already so.
async fn write_label(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    person_id: i64,
    attribute: &str,
    label: &str,
    coder: &str,
    action: &str,
) -> Result<u64, StoreError> {
    let written = sqlx::query(
        "INSERT INTO regard.coder_label (person_id, attribute, label, coder, scheme_version)
         VALUES ($1, $2, $3, $4,
                 coalesce((SELECT version FROM regard.coding_scheme_version WHERE attribute = $2), 1))
         ON CONFLICT (person_id, attribute, coder) DO UPDATE
            SET label = EXCLUDED.label, coded_at = now(), scheme_version = EXCLUDED.scheme_version
            WHERE regard.coder_label.label <> EXCLUDED.label",
    )
    .bind(person_id)
    .bind(attribute)
    .bind(label)
    .bind(coder)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if written > 0 {
        log_event(tx, person_id, attribute, coder, action, Some(label)).await?;
    }
    Ok(written)
}

async fn log_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    person_id: i64,
    attribute: &str,
    coder: &str,
    action: &str,
    label: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO regard.coder_label_event (person_id, attribute, coder, action, label, scheme_version)
         VALUES ($1, $2, $3, $4, $5,
                 coalesce((SELECT version FROM regard.coding_scheme_version WHERE attribute = $2), 1))",
    )
    .bind(person_id)
    .bind(attribute)
    .bind(coder)
    .bind(action)
    .bind(label)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn recompute_for_person(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    person_id: i64,
    attribute: &str,
) -> Result<(), StoreError> {
    let analysis_id: i64 =
        sqlx::query_scalar("SELECT analysis_id FROM regard.person WHERE person_id = $1")
            .bind(person_id)
            .fetch_one(&mut **tx)
            .await?;
    recompute_representation(tx, analysis_id, attribute).await
}

/// A coder account (`regard coding add-coder`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoderAccount {
    pub coder_id: i64,
    pub name: String,
    pub password_hash: String,
    pub is_admin: bool,
}

/// One coding scheme: an attribute and its categories in order, at a version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CodingScheme {
    pub attribute: String,
    /// Display name (French label of the attribute, else the code).
    pub title: String,
    pub version: i32,
    pub categories: Vec<SchemeCategory>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchemeCategory {
    pub label: String,
    /// Display label (French, else English, else the code).
    pub display: String,
    pub description: String,
}

/// Which persons go into a work queue. Every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct QueueFilter {
    pub festival: Option<String>,
    pub edition: Option<i32>,
    pub section: Option<String>,
    pub film_id: Option<i64>,
}

/// A person in a coder's queue, with what the page shows beside the face.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueuedPerson {
    pub person_id: i64,
    pub film_title: Option<String>,
    pub film_year: Option<i32>,
    pub media_kind: String,
    pub number: i32,
    pub model_label: String,
}

/// Where a person's face is: enough to render it from the source media, nothing stored.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceSource {
    pub person_id: i64,
    pub media_kind: String,
    pub source: String,
    pub content_sha256: String,
    /// Face box (posters: image pixels; trailers: the key frame's box in sampled-frame pixels).
    pub bbox: crate::domain::BoundingBox,
    /// Trailers: the frame where the face is largest.
    pub key_frame_s: Option<f64>,
    /// Trailers: the sampling rate of the analysis (the box belongs to its frames).
    pub sample_rate: Option<f64>,
    /// Trailers: every sampled time the person is on screen.
    pub seen_at_s: Vec<f64>,
}

/// One coder's labels of one scheme: how far they got.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoderProgress {
    pub coder: String,
    pub labels: i64,
    pub unsure: i64,
    pub last_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A scheme's coding progress over the latest analyses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchemeProgress {
    pub attribute: String,
    pub persons: i64,
    pub coded_once: i64,
    pub coded_twice: i64,
    pub disputed: i64,
    pub adjudicated: i64,
    pub coders: Vec<CoderProgress>,
}

/// A person two coders labelled differently, not adjudicated yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Disagreement {
    pub person_id: i64,
    pub film_title: Option<String>,
    pub media_kind: String,
    pub number: i32,
    /// (coder, label), in the order they were given.
    pub labels: Vec<(String, String)>,
}

/// One row of `regard.festival_origin_representation`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OriginFigure {
    pub festival: String,
    pub edition: i32,
    pub media_kind: String,
    pub category: String,
    pub persons: i64,
    pub decided: i64,
    pub total: i64,
    pub share: Option<f64>,
    pub share_ci_low: Option<f64>,
    pub share_ci_high: Option<f64>,
    pub coverage: Option<f64>,
    pub incomplete: bool,
}

/// The person whose label an undo removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undone {
    pub person_id: i64,
}

impl Store {
    /// Create a coder, or set a new password hash (and role) for an existing one.
    pub async fn upsert_coder(
        &self,
        name: &str,
        password_hash: &str,
        is_admin: bool,
    ) -> Result<i64, StoreError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(StoreError::invalid("coder", "the coder's name is empty"));
        }
        Ok(sqlx::query_scalar(
            "INSERT INTO regard.coder (name, password_hash, is_admin) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE
                SET password_hash = EXCLUDED.password_hash, is_admin = EXCLUDED.is_admin
             RETURNING coder_id",
        )
        .bind(name)
        .bind(password_hash)
        .bind(is_admin)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn coder_by_name(&self, name: &str) -> Result<Option<CoderAccount>, StoreError> {
        let row: Option<(i64, String, String, bool)> = sqlx::query_as(
            "SELECT coder_id, name, password_hash, is_admin FROM regard.coder WHERE name = $1",
        )
        .bind(name.trim())
        .fetch_optional(&self.pool)
        .await?;
        Ok(
            row.map(|(coder_id, name, password_hash, is_admin)| CoderAccount {
                coder_id,
                name,
                password_hash,
                is_admin,
            }),
        )
    }

    /// Start a session for a coder; it ends at log-out or after `ttl`.
    pub async fn start_session(
        &self,
        coder_id: i64,
        ttl: std::time::Duration,
    ) -> Result<uuid::Uuid, StoreError> {
        let id = uuid::Uuid::new_v4();
        sqlx::query(
            "INSERT INTO regard.coder_session (session_id, coder_id, expires_at)
             VALUES ($1, $2, now() + make_interval(secs => $3))",
        )
        .bind(id)
        .bind(coder_id)
        .bind(ttl.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// The coder of a live session (not ended, not expired).
    pub async fn session_coder(
        &self,
        session_id: uuid::Uuid,
    ) -> Result<Option<CoderAccount>, StoreError> {
        let row: Option<(i64, String, String, bool)> = sqlx::query_as(
            "SELECT c.coder_id, c.name, c.password_hash, c.is_admin
             FROM regard.coder_session s JOIN regard.coder c USING (coder_id)
             WHERE s.session_id = $1 AND s.ended_at IS NULL AND s.expires_at > now()",
        )
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(
            row.map(|(coder_id, name, password_hash, is_admin)| CoderAccount {
                coder_id,
                name,
                password_hash,
                is_admin,
            }),
        )
    }

    pub async fn end_session(&self, session_id: uuid::Uuid) -> Result<(), StoreError> {
        sqlx::query("UPDATE regard.coder_session SET ended_at = now() WHERE session_id = $1")
            .bind(session_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every coding scheme with its categories (unknown first: it is the coder's "unsure").
    pub async fn coding_schemes(&self) -> Result<Vec<CodingScheme>, StoreError> {
        let rows: Vec<(String, String, String, String, i32, String)> = sqlx::query_as(
            "SELECT s.attribute, coalesce(la.label, s.attribute), s.label,
                    coalesce(l.label, s.label), coalesce(v.version, 1), s.description
             FROM regard.coding_scheme s
             LEFT JOIN regard.coding_scheme_version v USING (attribute)
             LEFT JOIN regard.category_label l ON l.attribute = s.attribute AND l.category = s.label
             LEFT JOIN regard.category_label la ON la.attribute = 'attribute' AND la.category = s.attribute
             ORDER BY s.attribute = 'origin' DESC, s.attribute, s.position, s.label",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<CodingScheme> = Vec::new();
        for (attribute, title, label, display, version, description) in rows {
            if out.last().is_none_or(|s| s.attribute != attribute) {
                out.push(CodingScheme {
                    attribute: attribute.clone(),
                    title,
                    version,
                    categories: Vec::new(),
                });
            }
            if let Some(scheme) = out.last_mut() {
                scheme.categories.push(SchemeCategory {
                    label,
                    display,
                    description,
                });
            }
        }
        Ok(out)
    }

    /// Fill a coder's queue for `attribute` with the persons of the latest analyses matching
    /// `filter` that this coder has not labelled and that fewer than two coders have labelled,
    /// film by film. Replaces the coder's previous queue for the attribute. Returns its length.
    pub async fn fill_queue(
        &self,
        coder: &CoderAccount,
        attribute: &str,
        filter: &QueueFilter,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM regard.coding_queue WHERE coder_id = $1 AND attribute = $2")
            .bind(coder.coder_id)
            .bind(attribute)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query(
            "INSERT INTO regard.coding_queue (coder_id, attribute, person_id, position)
             SELECT $1, $2, q.person_id, row_number() OVER (ORDER BY q.title, q.analysis_id, q.number)
             FROM (
                SELECT DISTINCT ON (p.person_id) p.person_id, f.title, p.analysis_id, p.number
                FROM regard.person p
                JOIN regard.latest_analysis la ON la.analysis_id = p.analysis_id
                LEFT JOIN regard.film_media fm ON fm.media_id = la.media_id
                LEFT JOIN regard.film f ON f.film_id = fm.film_id
                LEFT JOIN regard.film_selection fs ON fs.film_id = f.film_id
                LEFT JOIN regard.festival_edition fe ON fe.festival_edition_id = fs.festival_edition_id
                LEFT JOIN regard.festival_section sec ON sec.festival_section_id = fs.festival_section_id
                WHERE ($4::text IS NULL OR fe.festival = $4)
                  AND ($5::integer IS NULL OR fe.edition = $5)
                  AND ($6::text IS NULL OR sec.section = $6)
                  AND ($7::bigint IS NULL OR f.film_id = $7)
                  AND NOT EXISTS (SELECT 1 FROM regard.coder_label c
                                  WHERE c.person_id = p.person_id AND c.attribute = $2 AND c.coder = $3)
                  AND (SELECT count(*) FROM regard.coder_label c
                       WHERE c.person_id = p.person_id AND c.attribute = $2) < 2
                ORDER BY p.person_id
             ) q",
        )
        .bind(coder.coder_id)
        .bind(attribute)
        .bind(&coder.name)
        .bind(filter.festival.as_deref().filter(|s| !s.is_empty()))
        .bind(filter.edition)
        .bind(filter.section.as_deref().filter(|s| !s.is_empty()))
        .bind(filter.film_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// The next persons of a coder's queue (skipped ones last), at most `limit`.
    pub async fn next_in_queue(
        &self,
        coder: &CoderAccount,
        attribute: &str,
        limit: i64,
    ) -> Result<Vec<QueuedPerson>, StoreError> {
        let rows: Vec<QueueRow> = sqlx::query_as(
            "SELECT p.person_id, f.title, f.year, a.kind, p.number,
                    coalesce((SELECT e ->> 'label' FROM jsonb_array_elements(p.attributes) e
                              WHERE e ->> 'attribute' = $2 LIMIT 1),
                             CASE $2 WHEN 'gender' THEN p.gender WHEN 'age_band' THEN p.age_band END,
                             'unknown')
             FROM regard.coding_queue q
             JOIN regard.person p USING (person_id)
             JOIN regard.analysis a ON a.analysis_id = p.analysis_id
             LEFT JOIN LATERAL (SELECT fi.title, fi.year FROM regard.film_media fm
                                JOIN regard.film fi USING (film_id)
                                WHERE fm.media_id = a.media_id ORDER BY fi.film_id LIMIT 1) f ON true
             WHERE q.coder_id = $1 AND q.attribute = $2 AND NOT q.skipped
             ORDER BY q.position
             LIMIT $3",
        )
        .bind(coder.coder_id)
        .bind(attribute)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(person_id, film_title, film_year, media_kind, number, model_label)| {
                    QueuedPerson {
                        person_id,
                        film_title,
                        film_year,
                        media_kind,
                        number,
                        model_label,
                    }
                },
            )
            .collect())
    }

    /// How many persons are left in a coder's queue (not skipped).
    pub async fn queue_left(
        &self,
        coder: &CoderAccount,
        attribute: &str,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM regard.coding_queue
             WHERE coder_id = $1 AND attribute = $2 AND NOT skipped",
        )
        .bind(coder.coder_id)
        .bind(attribute)
        .fetch_one(&self.pool)
        .await?)
    }

    /// A coder's label for a person of their queue: checked against the scheme, recorded with
    /// the scheme version and in the audit trail; the person leaves the queue and the figures of
    /// its analysis are recomputed.
    pub async fn record_coder_label(
        &self,
        coder: &CoderAccount,
        attribute: &str,
        person_id: i64,
        label: &str,
    ) -> Result<(), StoreError> {
        self.check_in_scheme(attribute, label).await?;
        let mut tx = self.pool.begin().await?;
        let queued = sqlx::query(
            "DELETE FROM regard.coding_queue WHERE coder_id = $1 AND attribute = $2 AND person_id = $3",
        )
        .bind(coder.coder_id)
        .bind(attribute)
        .bind(person_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if queued == 0 {
            return Err(StoreError::invalid(
                format!("person {person_id}"),
                format!("is not in {}'s {attribute} queue", coder.name),
            ));
        }
        write_label(&mut tx, person_id, attribute, label, &coder.name, "label").await?;
        recompute_for_person(&mut tx, person_id, attribute).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Skip a person: it stays in the queue, after every person not skipped.
    pub async fn skip_person(
        &self,
        coder: &CoderAccount,
        attribute: &str,
        person_id: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE regard.coding_queue SET skipped = true
             WHERE coder_id = $1 AND attribute = $2 AND person_id = $3",
        )
        .bind(coder.coder_id)
        .bind(attribute)
        .bind(person_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Undo a coder's latest label of a scheme: the label goes (the audit trail keeps it and
    /// records the undo), the person comes back first in the queue, the figures are recomputed.
    pub async fn undo_last_label(
        &self,
        coder: &CoderAccount,
        attribute: &str,
    ) -> Result<Option<Undone>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let last: Option<(i64, String)> = sqlx::query_as(
            "DELETE FROM regard.coder_label WHERE coder_label_id = (
                SELECT coder_label_id FROM regard.coder_label
                WHERE coder = $1 AND attribute = $2
                ORDER BY coded_at DESC, coder_label_id DESC LIMIT 1 FOR UPDATE)
             RETURNING person_id, label",
        )
        .bind(&coder.name)
        .bind(attribute)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((person_id, label)) = last else {
            return Ok(None);
        };
        log_event(
            &mut tx,
            person_id,
            attribute,
            &coder.name,
            "undo",
            Some(&label),
        )
        .await?;
        sqlx::query(
            "INSERT INTO regard.coding_queue (coder_id, attribute, person_id, position)
             VALUES ($1, $2, $3, (SELECT coalesce(min(position), 1) - 1 FROM regard.coding_queue
                                  WHERE coder_id = $1 AND attribute = $2))
             ON CONFLICT (coder_id, attribute, person_id) DO UPDATE
                SET position = EXCLUDED.position, skipped = false",
        )
        .bind(coder.coder_id)
        .bind(attribute)
        .bind(person_id)
        .execute(&mut *tx)
        .await?;
        recompute_for_person(&mut tx, person_id, attribute).await?;
        tx.commit().await?;
        Ok(Some(Undone { person_id }))
    }

    async fn check_in_scheme(&self, attribute: &str, label: &str) -> Result<(), StoreError> {
        let known: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM regard.coding_scheme WHERE attribute = $1 AND label = $2)",
        )
        .bind(attribute)
        .bind(label)
        .fetch_one(&self.pool)
        .await?;
        if known {
            Ok(())
        } else {
            Err(StoreError::invalid(
                "label",
                format!("{label:?} is not in the coding scheme of {attribute:?}"),
            ))
        }
    }

    /// A coder sees the faces of the persons of their queue and of their own labels; an admin
    /// (who adjudicates) every person's.
    pub async fn may_see_person(
        &self,
        coder: &CoderAccount,
        person_id: i64,
    ) -> Result<bool, StoreError> {
        if coder.is_admin {
            return Ok(true);
        }
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM regard.coding_queue WHERE coder_id = $1 AND person_id = $3)
                 OR EXISTS (SELECT 1 FROM regard.coder_label WHERE coder = $2 AND person_id = $3)",
        )
        .bind(coder.coder_id)
        .bind(&coder.name)
        .bind(person_id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Where to render a person's face from.
    pub async fn face_source(&self, person_id: i64) -> Result<Option<FaceSource>, StoreError> {
        let row: Option<FaceSourceRow> = sqlx::query_as(
            "SELECT a.kind, a.source, m.content_sha256, p.box_x, p.box_y, p.box_width,
                        p.box_height, p.key_frame_s, p.number,
                        CASE WHEN a.kind = 'trailer' THEN
                            jsonb_build_object('sample_rate', a.sample_rate,
                                               'timeline', a.result -> 'timeline') END
                 FROM regard.person p
                 JOIN regard.analysis a USING (analysis_id)
                 JOIN regard.media m ON m.media_id = a.media_id
                 WHERE p.person_id = $1",
        )
        .bind(person_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some((kind, source, sha, x, y, w, h, key_frame_s, number, trailer)) = row else {
            return Ok(None);
        };
        let mut sample_rate = None;
        let mut seen_at_s = Vec::new();
        if let Some(t) = trailer {
            sample_rate = t.get("sample_rate").and_then(serde_json::Value::as_f64);
            let frames: Vec<crate::domain::TimelineFrame> = t
                .get("timeline")
                .cloned()
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default();
            seen_at_s = frames
                .iter()
                .filter(|f| f.persons.iter().any(|p| i64::from(*p) == i64::from(number)))
                .map(|f| f.t)
                .collect();
        }
        Ok(Some(FaceSource {
            person_id,
            media_kind: kind,
            source,
            content_sha256: sha,
            bbox: crate::domain::BoundingBox {
                x,
                y,
                width: w,
                height: h,
            },
            key_frame_s,
            sample_rate,
            seen_at_s,
        }))
    }

    /// Progress of a scheme over the persons of the latest analyses.
    pub async fn scheme_progress(&self, attribute: &str) -> Result<SchemeProgress, StoreError> {
        let (persons, coded_once, coded_twice, disputed, adjudicated): (i64, i64, i64, i64, i64) =
            sqlx::query_as(
                "SELECT count(*),
                        count(*) FILTER (WHERE n >= 1), count(*) FILTER (WHERE n >= 2),
                        count(*) FILTER (WHERE basis = 'disputed'),
                        count(*) FILTER (WHERE basis = 'adjudicated')
                 FROM (SELECT p.person_id,
                              (SELECT count(*) FROM regard.coder_label c
                               WHERE c.person_id = p.person_id AND c.attribute = $1) AS n,
                              pcl.basis
                       FROM regard.person p
                       JOIN regard.latest_analysis la ON la.analysis_id = p.analysis_id
                       LEFT JOIN regard.person_coded_label pcl
                              ON pcl.person_id = p.person_id AND pcl.attribute = $1) x",
            )
            .bind(attribute)
            .fetch_one(&self.pool)
            .await?;
        let coders: Vec<(String, i64, i64, Option<chrono::DateTime<chrono::Utc>>)> =
            sqlx::query_as(
                "SELECT coder, count(*), count(*) FILTER (WHERE label = 'unknown'), max(coded_at)
                 FROM regard.coder_label WHERE attribute = $1 GROUP BY coder ORDER BY coder",
            )
            .bind(attribute)
            .fetch_all(&self.pool)
            .await?;
        Ok(SchemeProgress {
            attribute: attribute.to_string(),
            persons,
            coded_once,
            coded_twice,
            disputed,
            adjudicated,
            coders: coders
                .into_iter()
                .map(|(coder, labels, unsure, last_at)| CoderProgress {
                    coder,
                    labels,
                    unsure,
                    last_at,
                })
                .collect(),
        })
    }

    /// Every person with two or more coder labels for `attribute`: the labels in the order they
    /// were given (the first two are the two coders agreement is measured between).
    pub async fn coded_units(&self, attribute: &str) -> Result<Vec<Vec<String>>, StoreError> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT person_id, label FROM regard.coder_label
             WHERE attribute = $1
               AND person_id IN (SELECT person_id FROM regard.coder_label WHERE attribute = $1
                                 GROUP BY person_id HAVING count(*) >= 2)
             ORDER BY person_id, coded_at, coder_label_id",
        )
        .bind(attribute)
        .fetch_all(&self.pool)
        .await?;
        let mut units: Vec<Vec<String>> = Vec::new();
        let mut last = None;
        for (person, label) in rows {
            if last != Some(person) {
                units.push(Vec::new());
                last = Some(person);
            }
            if let Some(u) = units.last_mut() {
                u.push(label);
            }
        }
        Ok(units)
    }

    /// Persons whose coders disagree and that no admin adjudicated yet.
    pub async fn disagreements(
        &self,
        attribute: &str,
        limit: i64,
    ) -> Result<Vec<Disagreement>, StoreError> {
        let rows: Vec<DisagreementRow> =
            sqlx::query_as(
                "SELECT p.person_id,
                        (SELECT fi.title FROM regard.film_media fm JOIN regard.film fi USING (film_id)
                         WHERE fm.media_id = a.media_id ORDER BY fi.film_id LIMIT 1),
                        a.kind, p.number,
                        array_agg(c.coder ORDER BY c.coded_at, c.coder_label_id),
                        array_agg(c.label ORDER BY c.coded_at, c.coder_label_id)
                 FROM regard.person_coded_label pcl
                 JOIN regard.person p USING (person_id)
                 JOIN regard.analysis a ON a.analysis_id = p.analysis_id
                 JOIN regard.coder_label c ON c.person_id = p.person_id AND c.attribute = pcl.attribute
                 WHERE pcl.attribute = $1 AND pcl.basis = 'disputed'
                 GROUP BY p.person_id, a.media_id, a.kind, p.number
                 ORDER BY p.person_id
                 LIMIT $2",
            )
            .bind(attribute)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(person_id, film_title, media_kind, number, coders, labels)| Disagreement {
                    person_id,
                    film_title,
                    media_kind,
                    number,
                    labels: coders.into_iter().zip(labels).collect(),
                },
            )
            .collect())
    }

    /// An admin's decision for a disputed person: recorded (with the scheme version, in the
    /// audit trail) and counted in the figures from now on.
    pub async fn adjudicate(
        &self,
        adjudicator: &CoderAccount,
        attribute: &str,
        person_id: i64,
        label: &str,
    ) -> Result<(), StoreError> {
        if !adjudicator.is_admin {
            return Err(StoreError::invalid(
                "adjudication",
                format!("{} is not an admin", adjudicator.name),
            ));
        }
        self.check_in_scheme(attribute, label).await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO regard.adjudication (person_id, attribute, label, adjudicator, scheme_version)
             VALUES ($1, $2, $3, $4,
                     coalesce((SELECT version FROM regard.coding_scheme_version WHERE attribute = $2), 1))
             ON CONFLICT (person_id, attribute) DO UPDATE
                SET label = EXCLUDED.label, adjudicator = EXCLUDED.adjudicator,
                    scheme_version = EXCLUDED.scheme_version, decided_at = now()",
        )
        .bind(person_id)
        .bind(attribute)
        .bind(label)
        .bind(&adjudicator.name)
        .execute(&mut *tx)
        .await?;
        log_event(
            &mut tx,
            person_id,
            attribute,
            &adjudicator.name,
            "adjudicate",
            Some(label),
        )
        .await?;
        recompute_for_person(&mut tx, person_id, attribute).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Perceived origin per festival edition (poster faces and trailer persons), with coverage
    /// and interval: `regard.festival_origin_representation`.
    pub async fn origin_figures(
        &self,
        festival: Option<&str>,
        edition: Option<i32>,
    ) -> Result<Vec<OriginFigure>, StoreError> {
        let rows = sqlx::query(
            "SELECT festival, edition, media_kind, category, persons, decided, total, share,
                    share_ci_low, share_ci_high, coverage, incomplete
             FROM regard.festival_origin_representation
             WHERE ($1::text IS NULL OR festival = $1) AND ($2::integer IS NULL OR edition = $2)
             ORDER BY festival, edition, media_kind, category = 'unknown', category",
        )
        .bind(festival)
        .bind(edition)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| OriginFigure {
                festival: r.get(0),
                edition: r.get(1),
                media_kind: r.get(2),
                category: r.get(3),
                persons: r.get(4),
                decided: r.get(5),
                total: r.get(6),
                share: r.get(7),
                share_ci_low: r.get(8),
                share_ci_high: r.get(9),
                coverage: r.get(10),
                incomplete: r.get(11),
            })
            .collect())
    }

    /// Retention of the coding application: work queues filled longer ago than `age` and
    /// sessions that ended or expired. (Queue rows of deleted persons go with them.) Returns
    /// the queue rows deleted.
    pub async fn purge_coding_queues_older_than(
        &self,
        age: std::time::Duration,
    ) -> Result<u64, StoreError> {
        let secs = age.as_secs_f64();
        let mut tx = self.pool.begin().await?;
        let queued = sqlx::query(
            "DELETE FROM regard.coding_queue WHERE added_at < now() - make_interval(secs => $1)",
        )
        .bind(secs)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "DELETE FROM regard.coder_session WHERE ended_at IS NOT NULL OR expires_at < now()",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_csv_reports_every_bad_line_with_its_number() {
        let csv = "label,person_id,attribute,note\nx,12,origin,ok\n,13,origin,not coded\ny,abc,origin,\nz,12,origin,dup\n";
        let (parsed, skipped, errors) = parse_labels(csv.as_bytes()).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(skipped, 1);
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [4, 5], "{errors:?}");
        assert!(errors[1].reason.contains("line 2"), "{}", errors[1]);
        let missing = parse_labels("person_id,label\n1,x\n".as_bytes());
        assert!(matches!(missing, Err(StoreError::Invalid { .. })));
    }
}
