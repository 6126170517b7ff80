//! Human coding. Perceived origin (and any attribute the association wants checked) is coded
//! by trained coders, as French representation studies do; no model infers it by default.
//! Coders get the persons the machine found (media, timestamps, box: no face image is stored),
//! return a CSV of labels from `regard.coding_scheme`, and the affected representation rows are
//! recomputed with the rule "coder's label, else model's label, else unknown".

use super::write::{RepresentationRow, SoftSums, eligible_probability, insert_representation};
use super::{Store, StoreError};
use crate::domain::{Analysis, AttributeEstimate, Face, Interval, Person, UNKNOWN};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet, HashMap};

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

/// The label that counts for one face/person: a coder's decided label, else the model's.
struct Effective {
    label: String,
    coded: bool,
}

fn effective(model: Option<&str>, coder: Option<&str>) -> Effective {
    match (coder.filter(|c| *c != UNKNOWN), model) {
        (Some(c), _) => Effective {
            label: c.to_string(),
            coded: true,
        },
        (None, Some(m)) => Effective {
            label: m.to_string(),
            coded: false,
        },
        (None, None) => Effective {
            label: UNKNOWN.to_string(),
            coded: false,
        },
    }
}

/// Weight of one face/person in the soft count of `category`: 1 for a coder's label, the
/// model's probability otherwise, and 1 on `unknown` when there is neither.
fn soft_weight(
    e: &Effective,
    probabilities: Option<&BTreeMap<String, f32>>,
    category: &str,
) -> f64 {
    if e.coded {
        return f64::from(u8::from(e.label == category));
    }
    match probabilities.filter(|p| !p.is_empty()) {
        Some(p) => f64::from(p.get(category).copied().unwrap_or(0.0)),
        None => f64::from(u8::from(category == UNKNOWN)),
    }
}

/// The soft-share inputs of one category with coders' labels: an item coded by a person counts
/// with P = 1 or 0 (no classification doubt), an uncoded one with the model's P when the model
/// can speak for it (as in `stats`), else it is left out. Returns the sums and the intervals of
/// the unweighted and weighted shares.
fn coded_soft_share(
    items: &[(&Effective, Option<&AttributeEstimate>, f64)],
    attribute: &str,
    category: &str,
) -> (Option<SoftSums>, Option<Interval>, Option<Interval>) {
    if category == UNKNOWN || items.iter().all(|(e, est, _)| !e.coded && est.is_none()) {
        return (None, None, None);
    }
    let eligible: Vec<(f64, f64)> = items
        .iter()
        .filter_map(|(e, est, w)| {
            let p = if e.coded {
                Some(f64::from(u8::from(e.label == category)))
            } else {
                eligible_probability(*est, category)
            };
            p.map(|p| (p, *w))
        })
        .collect();
    let excluded = u32::try_from(items.len() - eligible.len()).unwrap_or(u32::MAX);
    let p: Vec<f64> = eligible.iter().map(|(p, _)| *p).collect();
    let w: Vec<f64> = eligible.iter().map(|(_, w)| *w).collect();
    let context = (attribute, category);
    let (_, interval) = crate::stats::soft_share(p.clone(), None, excluded, true, context);
    let (_, weighted) = crate::stats::soft_share(p, Some(w), excluded, true, context);
    (Some(SoftSums::of(eligible)), interval, weighted)
}

/// Categories to report: the coding scheme's, the model's, any label in use, and `unknown`.
fn categories(
    scheme: &[String],
    model_labels: &BTreeSet<String>,
    used: &[Effective],
) -> Vec<String> {
    let mut out: Vec<String> = scheme
        .iter()
        .filter(|c| c.as_str() != UNKNOWN)
        .cloned()
        .collect();
    for l in model_labels.iter().chain(used.iter().map(|e| &e.label)) {
        if l != UNKNOWN && !out.contains(l) {
            out.push(l.clone());
        }
    }
    out.push(UNKNOWN.to_string());
    out
}

fn to_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

pub(crate) fn poster_rows_with_labels(
    faces: &[Face],
    width: f64,
    height: f64,
    attribute: &str,
    coder: &HashMap<i32, String>,
    scheme: &[String],
) -> Vec<RepresentationRow> {
    let eff: Vec<Effective> = faces
        .iter()
        .enumerate()
        .map(|(i, f)| {
            effective(
                f.attribute(attribute).map(|a| a.label.as_str()),
                coder.get(&to_i32(i + 1)).map(String::as_str),
            )
        })
        .collect();
    let model_labels: BTreeSet<String> = faces
        .iter()
        .filter_map(|f| f.attribute(attribute))
        .flat_map(|a| a.probabilities.keys().cloned())
        .collect();
    let total_area: f64 = faces.iter().map(|f| f64::from(f.bbox.area())).sum();
    let largest = faces
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.bbox.area().total_cmp(&b.1.bbox.area()))
        .map(|(i, _)| i);
    let unknown = eff.iter().filter(|e| e.label == UNKNOWN).count();
    let coded = eff.iter().filter(|e| e.coded).count();
    categories(scheme, &model_labels, &eff)
        .into_iter()
        .map(|category| {
            let members: Vec<usize> = (0..faces.len())
                .filter(|&i| eff[i].label == category)
                .collect();
            let area: f64 = members
                .iter()
                .map(|&i| f64::from(faces[i].bbox.area()))
                .sum();
            let items: Vec<(&Effective, Option<&AttributeEstimate>, f64)> = faces
                .iter()
                .zip(&eff)
                .map(|(f, e)| (e, f.attribute(attribute), f64::from(f.bbox.area())))
                .collect();
            let (soft, share_ci, area_ci) = coded_soft_share(&items, attribute, &category);
            let (upper, central) = members.iter().fold((0, 0), |(u, c), &i| {
                let (cx, cy) = faces[i].bbox.center();
                let (cx, cy) = (f64::from(cx), f64::from(cy));
                let upper = height > 0.0 && cy < height / 3.0;
                let central = width > 0.0
                    && height > 0.0
                    && (width / 3.0..2.0 * width / 3.0).contains(&cx)
                    && (height / 3.0..2.0 * height / 3.0).contains(&cy);
                (u + i32::from(upper), c + i32::from(central))
            });
            RepresentationRow {
                attribute: attribute.to_string(),
                kind: "poster",
                label_source: if coded > 0 { "coder" } else { "model" },
                coded_persons: to_i32(coded),
                total_faces: Some(to_i32(faces.len())),
                unknown_faces: Some(to_i32(unknown)),
                faces: Some(to_i32(members.len())),
                soft_faces: Some(
                    faces
                        .iter()
                        .zip(&eff)
                        .map(|(f, e)| {
                            soft_weight(
                                e,
                                f.attribute(attribute).map(|a| &a.probabilities),
                                &category,
                            )
                        })
                        .sum(),
                ),
                face_area_px: Some(area),
                face_area_share: Some(if total_area > 0.0 {
                    area / total_area
                } else {
                    0.0
                }),
                has_largest_face: Some(largest.is_some_and(|i| eff[i].label == category)),
                faces_upper_third: Some(upper),
                faces_central_third: Some(central),
                faces_share_ci: share_ci,
                face_area_share_ci: area_ci,
                soft,
                category,
                ..RepresentationRow::default()
            }
        })
        .collect()
}

pub(crate) fn trailer_rows_with_labels(
    persons: &[Person],
    timeline: &[crate::domain::TimelineFrame],
    sample_rate: f64,
    sampled_frames: u32,
    attribute: &str,
    coder: &HashMap<i32, String>,
    scheme: &[String],
) -> Vec<RepresentationRow> {
    let eff: Vec<Effective> = persons
        .iter()
        .map(|p| {
            effective(
                p.attribute(attribute).map(|a| a.label.as_str()),
                coder.get(&to_i32(p.id as usize)).map(String::as_str),
            )
        })
        .collect();
    let label_of: HashMap<u32, &str> = persons
        .iter()
        .zip(&eff)
        .map(|(p, e)| (p.id, e.label.as_str()))
        .collect();
    let model_labels: BTreeSet<String> = persons
        .iter()
        .filter_map(|p| p.attribute(attribute))
        .flat_map(|a| a.probabilities.keys().cloned())
        .collect();
    let unknown = eff.iter().filter(|e| e.label == UNKNOWN).count();
    let coded = eff.iter().filter(|e| e.coded).count();
    categories(scheme, &model_labels, &eff)
        .into_iter()
        .map(|category| {
            let members: Vec<&Person> = persons
                .iter()
                .zip(&eff)
                .filter(|(_, e)| e.label == category)
                .map(|(p, _)| p)
                .collect();
            let items: Vec<(&Effective, Option<&AttributeEstimate>, f64)> = persons
                .iter()
                .zip(&eff)
                .map(|(p, e)| (e, p.attribute(attribute), p.screen_time_s))
                .collect();
            let (soft, share_ci, time_ci) = coded_soft_share(&items, attribute, &category);
            let frames_seen = timeline
                .iter()
                .filter(|f| {
                    f.persons
                        .iter()
                        .any(|id| label_of.get(id) == Some(&category.as_str()))
                })
                .count();
            RepresentationRow {
                attribute: attribute.to_string(),
                kind: "trailer",
                label_source: if coded > 0 { "coder" } else { "model" },
                coded_persons: to_i32(coded),
                total_persons: Some(to_i32(persons.len())),
                unknown_persons: Some(to_i32(unknown)),
                persons: Some(to_i32(members.len())),
                soft_persons: Some(
                    persons
                        .iter()
                        .zip(&eff)
                        .map(|(p, e)| {
                            soft_weight(
                                e,
                                p.attribute(attribute).map(|a| &a.probabilities),
                                &category,
                            )
                        })
                        .sum(),
                ),
                screen_time_s: Some(if sample_rate > 0.0 {
                    frames_seen as f64 / sample_rate
                } else {
                    0.0
                }),
                person_seconds: Some(members.iter().map(|p| p.screen_time_s).sum()),
                frame_share: Some(if sampled_frames > 0 {
                    frames_seen as f64 / f64::from(sampled_frames)
                } else {
                    0.0
                }),
                prominence_s: Some(members.iter().map(|p| p.prominence_s).sum()),
                first_appearance_s: members
                    .iter()
                    .map(|p| p.first_seen_s)
                    .min_by(f64::total_cmp),
                persons_share_ci: share_ci,
                screen_time_share_ci: time_ci,
                soft,
                category,
                ..RepresentationRow::default()
            }
        })
        .collect()
}

/// Replace the representation rows of one analysis and attribute by figures that use the
/// coders' labels; intervals and soft sums are recomputed with coded items certain.
async fn recompute_representation(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    analysis_id: i64,
    attribute: &str,
) -> Result<(), StoreError> {
    let (result, width, height): (Option<serde_json::Value>, Option<i32>, Option<i32>) =
        sqlx::query_as(
            "SELECT a.result, m.width, m.height FROM regard.analysis a
         JOIN regard.media m USING (media_id) WHERE a.analysis_id = $1 FOR UPDATE OF a",
        )
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
    let coder: HashMap<i32, String> = sqlx::query_as::<_, (i32, String)>(
        "SELECT DISTINCT ON (p.number) p.number, c.label
         FROM regard.coder_label c JOIN regard.person p USING (person_id)
         WHERE p.analysis_id = $1 AND c.attribute = $2 AND c.label <> 'unknown'
         ORDER BY p.number, c.coded_at DESC, c.coder_label_id DESC",
    )
    .bind(analysis_id)
    .bind(attribute)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    let scheme: Vec<String> = sqlx::query_scalar(
        "SELECT label FROM regard.coding_scheme WHERE attribute = $1 ORDER BY position, label",
    )
    .bind(attribute)
    .fetch_all(&mut **tx)
    .await?;
    let rows = match &analysis {
        Analysis::Poster(p) => poster_rows_with_labels(
            &p.faces,
            f64::from(width.unwrap_or(p.media.width as i32)),
            f64::from(height.unwrap_or(p.media.height as i32)),
            attribute,
            &coder,
            &scheme,
        ),
        Analysis::Trailer(t) => trailer_rows_with_labels(
            &t.persons,
            &t.timeline,
            t.sample_rate,
            t.sampled_frames,
            attribute,
            &coder,
            &scheme,
        ),
    };
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
    fn a_coder_label_wins_but_a_coder_unknown_does_not_erase_the_model() {
        let e = effective(Some("female"), Some("male"));
        assert_eq!((e.label.as_str(), e.coded), ("male", true));
        let e = effective(Some("female"), Some(UNKNOWN));
        assert_eq!((e.label.as_str(), e.coded), ("female", false));
        let e = effective(None, None);
        assert_eq!((e.label.as_str(), e.coded), (UNKNOWN, false));
    }

    fn gender(p_female: f32, face_px: f32) -> AttributeEstimate {
        let probabilities = BTreeMap::from([
            ("female".to_string(), p_female),
            ("male".to_string(), 1.0 - p_female),
        ]);
        AttributeEstimate::decide("gender", probabilities, 0.75, face_px, 40.0)
    }

    #[test]
    fn coded_items_are_certain_and_too_small_faces_stay_out_of_the_soft_sums() {
        let model = Effective {
            label: "female".into(),
            coded: false,
        };
        let coded_male = Effective {
            label: "male".into(),
            coded: true,
        };
        let ambiguous = gender(0.6, 100.0);
        let confident = gender(0.9, 100.0);
        let tiny = gender(0.9, 20.0);
        let items = [
            (&model, Some(&ambiguous), 2.0),
            (&coded_male, Some(&confident), 3.0),
            (&model, Some(&tiny), 5.0),
            (&model, None, 7.0),
        ];
        let (sums, share_ci, weighted_ci) = coded_soft_share(&items, "gender", "female");
        let sums = sums.expect("sums");
        // Items 1 (model, P = 0.6) and 2 (coded male, P = 0); the tiny and the unjudged are out.
        assert_eq!(sums.n, 2.0);
        assert!((sums.sum - 0.6).abs() < 1e-6);
        assert!(
            (sums.var - 0.24).abs() < 1e-6,
            "only the model's face is in doubt"
        );
        assert_eq!(sums.weight, 5.0);
        assert!((sums.weighted_sum - 1.2).abs() < 1e-6);
        assert!((sums.weighted_var - 4.0 * 0.24).abs() < 1e-6);
        let ci = share_ci.expect("interval");
        // The share is 0.3; the coded face is certain, so it can only be 0 or 0.5.
        assert_eq!((ci.low, ci.high), (0.0, 0.5));
        assert!(weighted_ci.is_some());
        assert_eq!(
            coded_soft_share(&items, "gender", UNKNOWN),
            (None, None, None)
        );
    }

    #[test]
    fn categories_keep_the_scheme_order_and_end_with_unknown() {
        let scheme = vec![UNKNOWN.to_string(), "b".to_string(), "a".to_string()];
        let model = BTreeSet::from(["z".to_string()]);
        let used = [Effective {
            label: "c".into(),
            coded: true,
        }];
        assert_eq!(
            categories(&scheme, &model, &used),
            ["b", "a", "z", "c", UNKNOWN]
        );
    }

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
