//! Which media to analyse again after a model or algorithm change: those whose latest
//! succeeded analysis (the one the views show) was made by another model set.

use super::{Store, StoreError};
use crate::domain::{FestivalSelection, Film, MediaRole};
use std::collections::BTreeMap;

/// Narrows a re-analysis to a season: films selected at a festival (and edition), or of a year.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReanalysisFilter {
    /// Festival name, as stored (exact, case-insensitive).
    pub festival: Option<String>,
    pub edition: Option<i32>,
    /// The film's year.
    pub film_year: Option<i32>,
}

/// One media to analyse again, with what its job needs.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaToReanalyse {
    pub media_id: i64,
    pub content_sha256: String,
    pub kind: MediaRole,
    /// Where its latest succeeded analysis read it.
    pub source: String,
    /// The model set of that analysis.
    pub model_set_sha256: String,
    pub film: Film,
    /// One of the film's selections (the filter's, else the latest edition); the film's other
    /// selections are rows of their own and stay linked.
    pub festival: Option<FestivalSelection>,
}

#[derive(sqlx::FromRow)]
struct Row {
    media_id: i64,
    content_sha256: String,
    kind: String,
    source: String,
    model_set_sha256: String,
    title: String,
    year: Option<i32>,
    imdb_id: Option<String>,
    tmdb_id: Option<i64>,
    external_ids: serde_json::Value,
    festival: Option<String>,
    edition: Option<i32>,
    section: Option<String>,
}

impl Store {
    /// Every media whose latest succeeded analysis has a model set other than `current`
    /// (the model set hash covers the models, the runtime and the algorithm version), in media
    /// order. A media linked to several films is listed once, with the film it was first
    /// linked to among those the filter admits; a media linked to no film is not listed (a job
    /// needs a film, and only successes link one).
    pub async fn media_to_reanalyse(
        &self,
        current_model_set: &str,
        filter: &ReanalysisFilter,
    ) -> Result<Vec<MediaToReanalyse>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT la.media_id, la.content_sha256, la.media_kind AS kind, la.source,
                    la.model_set_sha256, f.title, f.year, f.imdb_id, f.tmdb_id, f.external_ids,
                    s.festival, s.edition, s.section
             FROM regard.latest_analysis la
             JOIN LATERAL (
                 SELECT f.* FROM regard.film_media fm JOIN regard.film f USING (film_id)
                 WHERE fm.media_id = la.media_id
                   AND ($2::integer IS NULL OR f.year = $2)
                   AND (($3::text IS NULL AND $4::integer IS NULL) OR EXISTS (
                       SELECT 1 FROM regard.film_selection fs
                       JOIN regard.festival_edition fe USING (festival_edition_id)
                       WHERE fs.film_id = f.film_id
                         AND ($3::text IS NULL OR lower(fe.festival) = lower($3))
                         AND ($4::integer IS NULL OR fe.edition = $4)))
                 ORDER BY fm.first_seen_at, f.film_id
                 LIMIT 1
             ) f ON true
             LEFT JOIN LATERAL (
                 SELECT fe.festival, fe.edition, sec.section
                 FROM regard.film_selection fs
                 JOIN regard.festival_edition fe USING (festival_edition_id)
                 LEFT JOIN regard.festival_section sec
                        ON sec.festival_section_id = fs.festival_section_id
                 WHERE fs.film_id = f.film_id
                   AND ($3::text IS NULL OR lower(fe.festival) = lower($3))
                   AND ($4::integer IS NULL OR fe.edition = $4)
                 ORDER BY fe.edition DESC, fe.festival, sec.section NULLS FIRST
                 LIMIT 1
             ) s ON true
             WHERE la.model_set_sha256 <> $1
             ORDER BY la.media_id",
        )
        .bind(current_model_set)
        .bind(filter.film_year)
        .bind(filter.festival.as_deref())
        .bind(filter.edition)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(media).collect()
    }
}

fn media(row: Row) -> Result<MediaToReanalyse, StoreError> {
    let kind = match row.kind.as_str() {
        "poster" => MediaRole::Poster,
        "trailer" => MediaRole::Trailer,
        other => {
            return Err(StoreError::invalid(
                format!("kind of media {}", row.media_id),
                format!("{other:?} is neither poster nor trailer"),
            ));
        }
    };
    let external_ids: BTreeMap<String, String> =
        serde_json::from_value(row.external_ids).map_err(|e| {
            StoreError::invalid(
                format!("external ids of media {}", row.media_id),
                e.to_string(),
            )
        })?;
    Ok(MediaToReanalyse {
        media_id: row.media_id,
        content_sha256: row.content_sha256,
        kind,
        source: row.source,
        model_set_sha256: row.model_set_sha256,
        film: Film {
            title: row.title,
            year: row.year,
            imdb_id: row.imdb_id,
            tmdb_id: row.tmdb_id,
            external_ids,
        },
        festival: match (row.festival, row.edition) {
            (Some(festival), Some(edition)) => Some(FestivalSelection {
                festival,
                edition,
                section: row.section,
            }),
            _ => None,
        },
    })
}
