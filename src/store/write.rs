//! Writing analyses: one transaction per analysis, keyed on content sha256 + model-set hash +
//! settings hash with INSERT ... ON CONFLICT, so repeated and concurrent writes of the same
//! result leave one row and never error.

use super::films::resolve_film;
use super::keys::provenance_keys;
use super::{AnalysisId, FailedMedia, RecordOutcome, Store, StoreError, Timings, validate_sha256};
use crate::domain::{
    Analysis, AttributeEstimate, BoundingBox, Interval, MediaContext, MediaInfo, MediaRole, Person,
    PosterAnalysis, Provenance, TrailerAnalysis, UNKNOWN,
};
use crate::stats::poster::{PosterAttributeFigures, recorded_poster_figures};
use crate::stats::trailer::{TrailerAttributeFigures, recorded_trailer_figures};
use crate::stats::{CoderLabels, SoftSums};
use sqlx::{PgConnection, Postgres, Transaction};

/// One `regard.person` row: a poster face or a trailer person as the models perceived it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PersonRow {
    pub kind: &'static str,
    pub number: i32,
    pub gender: String,
    pub gender_confidence: Option<f32>,
    pub gender_p_female: Option<f32>,
    pub gender_p_male: Option<f32>,
    pub gender_unknown_reason: Option<String>,
    pub age_years: Option<f32>,
    pub age_band: Option<String>,
    pub origin: String,
    pub origin_source: &'static str,
    pub origin_confidence: Option<f32>,
    pub attributes: serde_json::Value,
    pub detection_score: Option<f32>,
    pub face_px: f32,
    pub bbox: BoundingBox,
    pub first_seen_s: Option<f64>,
    pub last_seen_s: Option<f64>,
    pub key_frame_s: Option<f64>,
    pub screen_time_s: Option<f64>,
    pub prominence_s: Option<f64>,
    pub frames: Option<i32>,
    pub tracks: Option<i32>,
}

/// One `regard.representation` row. Poster columns are `None` for trailers and vice versa.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RepresentationRow {
    pub attribute: String,
    pub category: String,
    pub kind: &'static str,
    pub label_source: &'static str,
    pub coded_persons: i32,
    pub total_faces: Option<i32>,
    pub unknown_faces: Option<i32>,
    pub faces: Option<i32>,
    pub soft_faces: Option<f64>,
    pub face_area_px: Option<f64>,
    pub face_area_share: Option<f64>,
    pub has_largest_face: Option<bool>,
    pub faces_upper_third: Option<i32>,
    pub faces_central_third: Option<i32>,
    pub total_persons: Option<i32>,
    pub unknown_persons: Option<i32>,
    pub persons: Option<i32>,
    pub soft_persons: Option<f64>,
    pub screen_time_s: Option<f64>,
    pub person_seconds: Option<f64>,
    pub frame_share: Option<f64>,
    pub prominence_s: Option<f64>,
    pub first_appearance_s: Option<f64>,
    /// 95% intervals of the soft shares (posters: faces and face area; trailers: persons and
    /// screen time).
    pub faces_share_ci: Option<Interval>,
    pub face_area_share_ci: Option<Interval>,
    pub persons_share_ci: Option<Interval>,
    pub screen_time_share_ci: Option<Interval>,
    /// What pooled intervals over many films need (`None` for `unknown` and for attributes
    /// without probabilities).
    pub soft: Option<SoftSums>,
}

fn count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn gender_columns(
    attrs: &[AttributeEstimate],
) -> (
    String,
    Option<f32>,
    Option<f32>,
    Option<f32>,
    Option<String>,
) {
    match attrs.iter().find(|a| a.attribute == "gender") {
        Some(g) => (
            g.label.clone(),
            Some(g.confidence),
            g.probabilities.get("female").copied(),
            g.probabilities.get("male").copied(),
            g.unknown_reason
                .and_then(|r| serde_json::to_value(r).ok())
                .and_then(|v| v.as_str().map(String::from)),
        ),
        None => (UNKNOWN.to_string(), None, None, None, None),
    }
}

fn origin_columns(attrs: &[AttributeEstimate]) -> (String, &'static str, Option<f32>) {
    match attrs.iter().find(|a| a.attribute == "origin") {
        Some(o) if !o.is_unknown() => (o.label.clone(), "model", Some(o.confidence)),
        Some(o) => (
            UNKNOWN.to_string(),
            "unknown",
            (!o.probabilities.is_empty()).then_some(o.confidence),
        ),
        None => (UNKNOWN.to_string(), "unknown", None),
    }
}

pub(crate) fn poster_person_rows(poster: &PosterAnalysis) -> Vec<PersonRow> {
    poster
        .faces
        .iter()
        .enumerate()
        .map(|(i, face)| {
            let (gender, gender_confidence, gender_p_female, gender_p_male, gender_unknown_reason) =
                gender_columns(&face.attributes);
            let (origin, origin_source, origin_confidence) = origin_columns(&face.attributes);
            PersonRow {
                kind: "poster_face",
                number: i32::try_from(i + 1).unwrap_or(i32::MAX),
                gender,
                gender_confidence,
                gender_p_female,
                gender_p_male,
                gender_unknown_reason,
                age_years: face.age.as_ref().map(|a| a.years),
                age_band: face.age.as_ref().map(|a| a.band.clone()),
                origin,
                origin_source,
                origin_confidence,
                attributes: serde_json::to_value(&face.attributes).unwrap_or_default(),
                detection_score: Some(face.detection_score),
                face_px: face.size_px,
                bbox: face.bbox,
                first_seen_s: None,
                last_seen_s: None,
                key_frame_s: None,
                screen_time_s: None,
                prominence_s: None,
                frames: None,
                tracks: None,
            }
        })
        .collect()
}

pub(crate) fn trailer_person_rows(trailer: &TrailerAnalysis) -> Vec<PersonRow> {
    trailer
        .persons
        .iter()
        .map(|p: &Person| {
            let (gender, gender_confidence, gender_p_female, gender_p_male, gender_unknown_reason) =
                gender_columns(&p.attributes);
            let (origin, origin_source, origin_confidence) = origin_columns(&p.attributes);
            PersonRow {
                kind: "trailer_person",
                number: count(p.id),
                gender,
                gender_confidence,
                gender_p_female,
                gender_p_male,
                gender_unknown_reason,
                age_years: p.age.as_ref().map(|a| a.years),
                age_band: p.age.as_ref().map(|a| a.band.clone()),
                origin,
                origin_source,
                origin_confidence,
                attributes: serde_json::to_value(&p.attributes).unwrap_or_default(),
                detection_score: None,
                face_px: p.median_face_px,
                bbox: p.key_box,
                first_seen_s: Some(p.first_seen_s),
                last_seen_s: Some(p.last_seen_s),
                key_frame_s: Some(p.key_frame_s),
                screen_time_s: Some(p.screen_time_s),
                prominence_s: Some(p.prominence_s),
                frames: Some(count(p.frames)),
                tracks: Some(count(p.tracks)),
            }
        })
        .collect()
}

/// The columns every row has; `coded` items make the row's labels come from a coder.
fn row(attribute: &str, category: &str, kind: &'static str, coded: u32) -> RepresentationRow {
    RepresentationRow {
        attribute: attribute.to_string(),
        category: category.to_string(),
        kind,
        label_source: if coded > 0 { "coder" } else { "model" },
        coded_persons: count(coded),
        ..RepresentationRow::default()
    }
}

fn poster_rows(f: &PosterAttributeFigures) -> Vec<RepresentationRow> {
    f.categories
        .iter()
        .map(|c| {
            let s = &c.stats;
            RepresentationRow {
                total_faces: Some(count(f.total_faces)),
                unknown_faces: Some(count(f.unknown)),
                faces: Some(count(s.faces)),
                soft_faces: Some(s.soft_count),
                face_area_px: Some(c.face_area_px),
                face_area_share: Some(s.face_area_share),
                has_largest_face: Some(s.has_largest_face),
                faces_upper_third: Some(count(s.faces_upper_third)),
                faces_central_third: Some(count(s.faces_central_third)),
                faces_share_ci: s.share_interval,
                face_area_share_ci: s.face_area_share_interval,
                soft: c.soft,
                ..row(&f.attribute, &s.category, "poster", f.coded)
            }
        })
        .collect()
}

fn trailer_rows(f: &TrailerAttributeFigures) -> Vec<RepresentationRow> {
    f.categories
        .iter()
        .map(|c| {
            let s = &c.stats;
            RepresentationRow {
                total_persons: Some(count(f.total_persons)),
                unknown_persons: Some(count(f.unknown_persons)),
                persons: Some(count(s.persons)),
                soft_persons: Some(s.soft_persons),
                screen_time_s: Some(s.screen_time_s),
                person_seconds: Some(s.person_seconds),
                frame_share: Some(s.frame_share),
                prominence_s: Some(s.prominence_s),
                first_appearance_s: s.first_appearance_s,
                persons_share_ci: s.share_interval,
                screen_time_share_ci: s.screen_time_share_interval,
                soft: c.soft,
                ..row(&f.attribute, &s.category, "trailer", f.coded)
            }
        })
        .collect()
}

/// The rows of one attribute of a recorded analysis: the figures `stats` computes from its
/// faces or persons and the coders' labels.
pub(crate) fn attribute_rows(
    analysis: &Analysis,
    attribute: &str,
    coder: &CoderLabels,
) -> Vec<RepresentationRow> {
    match analysis {
        Analysis::Poster(p) => poster_rows(&recorded_poster_figures(p, attribute, coder)),
        Analysis::Trailer(t) => trailer_rows(&recorded_trailer_figures(t, attribute, coder)),
    }
}

/// The rows of a new analysis: every attribute its statistics list, no coder label yet.
fn representation_rows(analysis: &Analysis) -> Vec<RepresentationRow> {
    let attributes: Vec<&str> = match analysis {
        Analysis::Poster(p) => p.statistics.iter().map(|s| s.attribute.as_str()).collect(),
        Analysis::Trailer(t) => t.statistics.iter().map(|s| s.attribute.as_str()).collect(),
    };
    attributes
        .into_iter()
        .flat_map(|a| attribute_rows(analysis, a, &CoderLabels::none()))
        .collect()
}

fn validate_provenance(p: &Provenance) -> Result<(), StoreError> {
    if p.pipeline_version.trim().is_empty() {
        return Err(StoreError::invalid(
            "provenance",
            "pipeline_version is empty",
        ));
    }
    for m in &p.models {
        validate_sha256(&format!("sha256 of model {:?}", m.name), &m.sha256)?;
    }
    Ok(())
}

impl Store {
    /// Store one succeeded analysis with its context (film, festival), in one transaction.
    /// Writing the same result again (same content, model set, settings), even concurrently,
    /// returns the stored one with `new == false`. A stored failure of the same key is replaced.
    pub async fn record_analysis(
        &self,
        analysis: &Analysis,
        ctx: &MediaContext,
        timings: &Timings,
    ) -> Result<RecordOutcome, StoreError> {
        let media = analysis.media();
        validate_sha256(
            &format!("content sha256 of {}", media.source),
            &media.content_sha256,
        )?;
        let provenance = analysis.provenance();
        validate_provenance(provenance)?;
        let keys = provenance_keys(provenance);
        let (kind, persons) = match analysis {
            Analysis::Poster(p) => ("poster", poster_person_rows(p)),
            Analysis::Trailer(t) => ("trailer", trailer_person_rows(t)),
        };
        let representation = representation_rows(analysis);
        let (analysed_duration_s, sampled_frames, sample_rate, shot_cuts, partial, decode) =
            match analysis {
                Analysis::Poster(_) => (None, None, None, None, false, None),
                Analysis::Trailer(t) => (
                    Some(t.analysed_duration_s),
                    Some(count(t.sampled_frames)),
                    Some(t.sample_rate),
                    Some(i32::try_from(t.shot_cuts_s.len()).unwrap_or(i32::MAX)),
                    t.decode.truncated
                        || t.decode.capped
                        || t.decode.deadline_hit
                        || t.decode.corrupt_packets > 0,
                    Some(serde_json::to_value(&t.decode).unwrap_or_default()),
                ),
            };
        let result = serde_json::to_value(analysis)
            .map_err(|e| StoreError::invalid("analysis", e.to_string()))?;
        let context = serde_json::to_value(ctx)
            .map_err(|e| StoreError::invalid("media context", e.to_string()))?;

        let mut tx = self.pool.begin().await?;
        let media_id = upsert_media(&mut tx, media, Some(kind)).await?;
        link_context(&mut tx, ctx, media_id, &media.source).await?;

        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO regard.analysis (
                media_id, source, kind, status, pipeline_version, runtime_sha256,
                model_set_sha256, settings_sha256, models, settings, job_id, context,
                started_at, finished_at, stage_timings_s, analysed_duration_s, sampled_frames,
                sample_rate, shot_cuts, partial, decode_report, person_count, result)
             VALUES ($1, $2, $3, 'succeeded', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                     $15, $16, $17, $18, $19, $20, $21, $22)
             ON CONFLICT (media_id, model_set_sha256, settings_sha256) DO UPDATE SET
                source = EXCLUDED.source, kind = EXCLUDED.kind, status = 'succeeded',
                error_code = NULL, error_message = NULL,
                pipeline_version = EXCLUDED.pipeline_version, runtime_sha256 = EXCLUDED.runtime_sha256,
                models = EXCLUDED.models, settings = EXCLUDED.settings, job_id = EXCLUDED.job_id,
                context = EXCLUDED.context, started_at = EXCLUDED.started_at,
                finished_at = EXCLUDED.finished_at, stage_timings_s = EXCLUDED.stage_timings_s,
                analysed_duration_s = EXCLUDED.analysed_duration_s,
                sampled_frames = EXCLUDED.sampled_frames, sample_rate = EXCLUDED.sample_rate,
                shot_cuts = EXCLUDED.shot_cuts, partial = EXCLUDED.partial,
                decode_report = EXCLUDED.decode_report, person_count = EXCLUDED.person_count,
                result = EXCLUDED.result, recorded_at = now()
             -- A success is never overwritten: the first stored result of a key stays.
             WHERE regard.analysis.status = 'failed'
             RETURNING analysis_id",
        )
        .bind(media_id)
        .bind(&media.source)
        .bind(kind)
        .bind(&provenance.pipeline_version)
        .bind(&provenance.runtime_sha256)
        .bind(&keys.model_set_sha256)
        .bind(&keys.settings_sha256)
        .bind(serde_json::to_value(&provenance.models).unwrap_or_default())
        .bind(serde_json::to_value(&provenance.settings).unwrap_or_default())
        .bind(ctx.job_id.as_deref())
        .bind(&context)
        .bind(timings.started_at)
        .bind(timings.finished_at)
        .bind(serde_json::to_value(&timings.stages_s).unwrap_or_default())
        .bind(analysed_duration_s)
        .bind(sampled_frames)
        .bind(sample_rate)
        .bind(shot_cuts)
        .bind(partial)
        .bind(decode)
        .bind(i32::try_from(persons.len()).unwrap_or(i32::MAX))
        .bind(&result)
        .fetch_optional(&mut *tx)
        .await?;

        let Some(id) = inserted else {
            // An equal success already exists (perhaps committed by a concurrent writer that we
            // waited for): keep it, add nothing.
            let id: i64 = sqlx::query_scalar(
                "SELECT analysis_id FROM regard.analysis
                 WHERE media_id = $1 AND model_set_sha256 = $2 AND settings_sha256 = $3",
            )
            .bind(media_id)
            .bind(&keys.model_set_sha256)
            .bind(&keys.settings_sha256)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(RecordOutcome {
                analysis_id: AnalysisId(id),
                new: false,
            });
        };

        for p in &persons {
            insert_person(&mut tx, id, p).await?;
        }
        for r in &representation {
            insert_representation(&mut tx, id, r).await?;
        }
        tx.commit().await?;
        Ok(RecordOutcome {
            analysis_id: AnalysisId(id),
            new: true,
        })
    }

    /// Record a failed analysis. Retries of the same key update the failure (attempts + 1);
    /// a failure never replaces a stored success (then `new == false` and the success's id).
    pub async fn record_failure(
        &self,
        media: &FailedMedia,
        provenance: &Provenance,
        ctx: &MediaContext,
        error_code: &str,
        message: &str,
    ) -> Result<RecordOutcome, StoreError> {
        if media.source.trim().is_empty() {
            return Err(StoreError::invalid("failed media", "source is empty"));
        }
        if error_code.trim().is_empty() {
            return Err(StoreError::invalid(
                "failure",
                format!("error code is empty for {}", media.source),
            ));
        }
        if let Some(sha) = &media.content_sha256 {
            validate_sha256(&format!("content sha256 of {}", media.source), sha)?;
        }
        let keys = provenance_keys(provenance);
        let kind = media.kind.map(MediaRole::as_str);
        let context = serde_json::to_value(ctx)
            .map_err(|e| StoreError::invalid("media context", e.to_string()))?;

        let mut tx = self.pool.begin().await?;
        let media_id = match &media.content_sha256 {
            Some(sha) => {
                let info = MediaInfo {
                    source: media.source.clone(),
                    content_sha256: sha.clone(),
                    bytes: 0,
                    format: String::new(),
                    width: 0,
                    height: 0,
                    duration_s: None,
                    frame_rate: None,
                };
                // A failure links nothing to a film or festival, and says nothing of the
                // media's kind: both come only from a succeeded analysis of the bytes.
                let id = upsert_media(&mut tx, &info, None).await?;
                Some(id)
            }
            None => None,
        };
        let conflict_target = if media_id.is_some() {
            "(media_id, model_set_sha256, settings_sha256)"
        } else {
            "(source, model_set_sha256, settings_sha256) WHERE media_id IS NULL"
        };
        let sql = format!(
            "INSERT INTO regard.analysis (
                media_id, source, kind, status, error_code, error_message, pipeline_version,
                runtime_sha256, model_set_sha256, settings_sha256, models, settings, job_id, context)
             VALUES ($1, $2, $3, 'failed', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT {conflict_target} DO UPDATE SET
                error_code = EXCLUDED.error_code, error_message = EXCLUDED.error_message,
                kind = coalesce(EXCLUDED.kind, regard.analysis.kind), job_id = EXCLUDED.job_id,
                context = EXCLUDED.context, attempts = regard.analysis.attempts + 1,
                recorded_at = now()
             WHERE regard.analysis.status = 'failed'
             RETURNING analysis_id, (xmax = 0) AS inserted"
        );
        let row: Option<(i64, bool)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(media_id)
            .bind(&media.source)
            .bind(kind)
            .bind(error_code)
            .bind(message)
            .bind(&provenance.pipeline_version)
            .bind(&provenance.runtime_sha256)
            .bind(&keys.model_set_sha256)
            .bind(&keys.settings_sha256)
            .bind(serde_json::to_value(&provenance.models).unwrap_or_default())
            .bind(serde_json::to_value(&provenance.settings).unwrap_or_default())
            .bind(ctx.job_id.as_deref())
            .bind(&context)
            .fetch_optional(&mut *tx)
            .await?;
        let outcome = match row {
            Some((id, inserted)) => RecordOutcome {
                analysis_id: AnalysisId(id),
                new: inserted,
            },
            None => {
                // The key already holds a success: the failure is not recorded over it.
                let id: i64 = sqlx::query_scalar(
                    "SELECT analysis_id FROM regard.analysis
                     WHERE media_id = $1 AND model_set_sha256 = $2 AND settings_sha256 = $3",
                )
                .bind(media_id)
                .bind(&keys.model_set_sha256)
                .bind(&keys.settings_sha256)
                .fetch_one(&mut *tx)
                .await?;
                RecordOutcome {
                    analysis_id: AnalysisId(id),
                    new: false,
                }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }
}

/// Insert the media row or fill in what an earlier, poorer record (a failure) lacked.
async fn upsert_media(
    tx: &mut Transaction<'_, Postgres>,
    media: &MediaInfo,
    kind: Option<&str>,
) -> Result<i64, StoreError> {
    let known = |v: u32| (v > 0).then(|| i32::try_from(v).unwrap_or(i32::MAX));
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO regard.media (content_sha256, kind, first_source, format, bytes, width, height,
                                   duration_s, frame_rate)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (content_sha256) DO UPDATE SET
            kind = coalesce(EXCLUDED.kind, regard.media.kind),
            format = coalesce(regard.media.format, EXCLUDED.format),
            bytes = coalesce(regard.media.bytes, EXCLUDED.bytes),
            width = coalesce(regard.media.width, EXCLUDED.width),
            height = coalesce(regard.media.height, EXCLUDED.height),
            duration_s = coalesce(regard.media.duration_s, EXCLUDED.duration_s),
            frame_rate = coalesce(regard.media.frame_rate, EXCLUDED.frame_rate)
         RETURNING media_id",
    )
    .bind(&media.content_sha256)
    .bind(kind)
    .bind(&media.source)
    .bind((!media.format.is_empty()).then_some(media.format.as_str()))
    .bind((media.bytes > 0).then(|| i64::try_from(media.bytes).unwrap_or(i64::MAX)))
    .bind(known(media.width))
    .bind(known(media.height))
    .bind(media.duration_s)
    .bind(media.frame_rate)
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}

/// File the media under its film and the film under its festival selection, when given.
pub(super) async fn link_context(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &MediaContext,
    media_id: i64,
    source: &str,
) -> Result<(), StoreError> {
    let Some(film) = &ctx.film else { return Ok(()) };
    if film.title.trim().is_empty() && film.imdb_id.is_none() && film.tmdb_id.is_none() {
        return Err(StoreError::invalid(
            "film",
            format!("no title and no id for {source}"),
        ));
    }
    let film_id = resolve_film(tx, film).await?;
    sqlx::query(
        "INSERT INTO regard.film_media (film_id, media_id, source) VALUES ($1, $2, $3)
         ON CONFLICT (film_id, media_id) DO NOTHING",
    )
    .bind(film_id)
    .bind(media_id)
    .bind(source)
    .execute(&mut **tx)
    .await?;

    let Some(fest) = &ctx.festival else {
        return Ok(());
    };
    if fest.festival.trim().is_empty() {
        return Err(StoreError::invalid(
            "festival",
            format!("empty festival name for {source}"),
        ));
    }
    let edition_id: i64 = sqlx::query_scalar(
        "INSERT INTO regard.festival_edition (festival, edition) VALUES ($1, $2)
         ON CONFLICT (festival, edition) DO UPDATE SET festival = EXCLUDED.festival
         RETURNING festival_edition_id",
    )
    .bind(fest.festival.trim())
    .bind(fest.edition)
    .fetch_one(&mut **tx)
    .await?;
    let section_id: Option<i64> = match fest
        .section
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(section) => Some(
            sqlx::query_scalar(
                "INSERT INTO regard.festival_section (festival_edition_id, section) VALUES ($1, $2)
                 ON CONFLICT (festival_edition_id, section) DO UPDATE SET section = EXCLUDED.section
                 RETURNING festival_section_id",
            )
            .bind(edition_id)
            .bind(section)
            .fetch_one(&mut **tx)
            .await?,
        ),
        None => None,
    };
    sqlx::query(
        "INSERT INTO regard.film_selection (film_id, festival_edition_id, festival_section_id)
         VALUES ($1, $2, $3)
         ON CONFLICT (film_id, festival_edition_id, (coalesce(festival_section_id, 0))) DO NOTHING",
    )
    .bind(film_id)
    .bind(edition_id)
    .bind(section_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_person(
    conn: &mut PgConnection,
    analysis_id: i64,
    p: &PersonRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO regard.person (
            analysis_id, kind, number, gender, gender_confidence, gender_p_female, gender_p_male,
            gender_unknown_reason, age_years, age_band, origin, origin_source, origin_confidence,
            attributes, detection_score, face_px, box_x, box_y, box_width, box_height,
            face_area_px, first_seen_s, last_seen_s, key_frame_s, screen_time_s, prominence_s,
            frames, tracks)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                 $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)",
    )
    .bind(analysis_id)
    .bind(p.kind)
    .bind(p.number)
    .bind(&p.gender)
    .bind(p.gender_confidence)
    .bind(p.gender_p_female)
    .bind(p.gender_p_male)
    .bind(p.gender_unknown_reason.as_deref())
    .bind(p.age_years)
    .bind(p.age_band.as_deref())
    .bind(&p.origin)
    .bind(p.origin_source)
    .bind(p.origin_confidence)
    .bind(&p.attributes)
    .bind(p.detection_score)
    .bind(p.face_px)
    .bind(p.bbox.x)
    .bind(p.bbox.y)
    .bind(p.bbox.width)
    .bind(p.bbox.height)
    .bind(f64::from(p.bbox.area()))
    .bind(p.first_seen_s)
    .bind(p.last_seen_s)
    .bind(p.key_frame_s)
    .bind(p.screen_time_s)
    .bind(p.prominence_s)
    .bind(p.frames)
    .bind(p.tracks)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn insert_representation(
    conn: &mut PgConnection,
    analysis_id: i64,
    r: &RepresentationRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO regard.representation (
            analysis_id, attribute, category, kind, label_source, coded_persons,
            total_faces, unknown_faces, faces, soft_faces, face_area_px, face_area_share,
            has_largest_face, faces_upper_third, faces_central_third,
            total_persons, unknown_persons, persons, soft_persons, screen_time_s, person_seconds,
            frame_share, prominence_s, first_appearance_s,
            faces_share_ci_low, faces_share_ci_high, face_area_share_ci_low, face_area_share_ci_high,
            persons_share_ci_low, persons_share_ci_high, screen_time_share_ci_low,
            screen_time_share_ci_high, soft_n, soft_sum, soft_var, soft_weight, soft_weighted_sum,
            soft_weighted_var)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                 $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34,
                 $35, $36, $37, $38)",
    )
    .bind(analysis_id)
    .bind(&r.attribute)
    .bind(&r.category)
    .bind(r.kind)
    .bind(r.label_source)
    .bind(r.coded_persons)
    .bind(r.total_faces)
    .bind(r.unknown_faces)
    .bind(r.faces)
    .bind(r.soft_faces)
    .bind(r.face_area_px)
    .bind(r.face_area_share)
    .bind(r.has_largest_face)
    .bind(r.faces_upper_third)
    .bind(r.faces_central_third)
    .bind(r.total_persons)
    .bind(r.unknown_persons)
    .bind(r.persons)
    .bind(r.soft_persons)
    .bind(r.screen_time_s)
    .bind(r.person_seconds)
    .bind(r.frame_share)
    .bind(r.prominence_s)
    .bind(r.first_appearance_s)
    .bind(r.faces_share_ci.map(|i| i.low))
    .bind(r.faces_share_ci.map(|i| i.high))
    .bind(r.face_area_share_ci.map(|i| i.low))
    .bind(r.face_area_share_ci.map(|i| i.high))
    .bind(r.persons_share_ci.map(|i| i.low))
    .bind(r.persons_share_ci.map(|i| i.high))
    .bind(r.screen_time_share_ci.map(|i| i.low))
    .bind(r.screen_time_share_ci.map(|i| i.high))
    .bind(r.soft.map(|s| s.n))
    .bind(r.soft.map(|s| s.sum))
    .bind(r.soft.map(|s| s.var))
    .bind(r.soft.map(|s| s.weight))
    .bind(r.soft.map(|s| s.weighted_sum))
    .bind(r.soft.map(|s| s.weighted_var))
    .execute(conn)
    .await?;
    Ok(())
}
