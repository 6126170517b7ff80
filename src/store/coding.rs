//! Human coding. Perceived origin (and any attribute the association wants checked) is coded
//! by trained coders, as French representation studies do; no model infers it by default.
//! Coders get the persons the machine found (media, timestamps, box: no face image is stored),
//! return a CSV of labels from `regard.coding_scheme`, and the affected representation rows are
//! recomputed by `stats` with the rule "coder's label, else model's label, else unknown".

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
            written += sqlx::query(
                "INSERT INTO regard.coder_label (person_id, attribute, label, coder)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (person_id, attribute, coder) DO UPDATE
                    SET label = EXCLUDED.label, coded_at = now()
                    WHERE regard.coder_label.label <> EXCLUDED.label",
            )
            .bind(l.person_id)
            .bind(&l.attribute)
            .bind(&l.label)
            .bind(coder)
            .execute(&mut *tx)
            .await?
            .rows_affected();
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
/// the coders' labels (the latest decided label per person; a coder's `unknown` leaves the
/// model's estimate in place).
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
    let labels: Vec<(i32, String)> = sqlx::query_as(
        "SELECT DISTINCT ON (p.number) p.number, c.label
         FROM regard.coder_label c JOIN regard.person p USING (person_id)
         WHERE p.analysis_id = $1 AND c.attribute = $2 AND c.label <> 'unknown'
         ORDER BY p.number, c.coded_at DESC, c.coder_label_id DESC",
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
