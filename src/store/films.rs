//! Film identity: which film row a job's film is.
//!
//! A film is identified by its IMDb id, else its TMDb id, else another declared external id,
//! else its normalised title and year. An id that arrives later for a known film attaches to
//! it; two rows that a job shows to be one film (its IMDb id names one, its TMDb id the other)
//! are merged, keeping every link. Rows whose ids contradict each other are never merged by
//! the rules (`regard films merge` is for what they cannot decide).
//!
//! Title rule: the title given with the strongest identity wins (IMDb 3, TMDb 2, another id 1,
//! title only 0; the first one seen at equal strength stays); every other title is kept in
//! `aliases`.

use super::keys::{film_key, title_key};
use super::{Store, StoreError};
use crate::domain::Film;
use sqlx::{PgConnection, Postgres, Transaction};

/// How strongly `film` is identified (see the module's title rule).
pub fn strength(film: &Film) -> i16 {
    if imdb(film).is_some() {
        3
    } else if film.tmdb_id.is_some() {
        2
    } else if !film.external_ids.is_empty() {
        1
    } else {
        0
    }
}

fn imdb(film: &Film) -> Option<String> {
    film.imdb_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_lowercase)
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct FilmRow {
    film_id: i64,
    imdb_id: Option<String>,
    tmdb_id: Option<i64>,
    title_strength: i16,
}

/// Two rows may be one film only if no id they both have differs.
fn compatible(a: &FilmRow, b: &FilmRow) -> bool {
    let differ = |x: &Option<String>, y: &Option<String>| matches!((x, y), (Some(x), Some(y)) if !x.eq_ignore_ascii_case(y));
    !differ(&a.imdb_id, &b.imdb_id)
        && !matches!((a.tmdb_id, b.tmdb_id), (Some(x), Some(y)) if x != y)
}

/// The film row for `film`, created or completed as the identity rules say. Locks the rows it
/// touches (concurrent jobs of the same film wait for each other).
pub(super) async fn resolve_film(
    tx: &mut Transaction<'_, Postgres>,
    film: &Film,
) -> Result<i64, StoreError> {
    // Serialise identity decisions: two jobs naming the same film by different ids must not
    // each create a row.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('regard.film identity'))")
        .execute(&mut **tx)
        .await?;
    let imdb = imdb(film);
    let external = serde_json::to_value(&film.external_ids).unwrap_or_default();
    let key = title_key(film);
    let strength = strength(film);
    // Films this one names by an id, and films of the same title and year.
    let rows: Vec<(FilmRow, bool)> =
        sqlx::query_as::<_, (i64, Option<String>, Option<i64>, i16, bool)>(
            "SELECT film_id, imdb_id, tmdb_id, title_strength,
                coalesce(($1::text IS NOT NULL AND lower(imdb_id) = $1)
                 OR ($2::bigint IS NOT NULL AND tmdb_id = $2)
                 OR ($3::jsonb <> '{}'::jsonb AND external_ids @> $3), false) AS by_id
         FROM regard.film
         WHERE ($1::text IS NOT NULL AND lower(imdb_id) = $1)
            OR ($2::bigint IS NOT NULL AND tmdb_id = $2)
            OR ($3::jsonb <> '{}'::jsonb AND external_ids @> $3)
            OR title_key = $4
         ORDER BY title_strength DESC, film_id
         FOR UPDATE",
        )
        .bind(&imdb)
        .bind(film.tmdb_id)
        .bind(&external)
        .bind(&key)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|(film_id, imdb_id, tmdb_id, title_strength, by_id)| {
            (
                FilmRow {
                    film_id,
                    imdb_id,
                    tmdb_id,
                    title_strength,
                },
                by_id,
            )
        })
        .collect();
    let incoming = FilmRow {
        film_id: 0,
        imdb_id: imdb.clone(),
        tmdb_id: film.tmdb_id,
        title_strength: strength,
    };
    let (keep, absorb) = choose(&incoming, &rows);
    let film_id = match keep {
        Some(id) => {
            for other in absorb {
                merge_into(tx, id, other).await?;
            }
            update_film(tx, id, film, &imdb, &external, &key, strength).await?;
            id
        }
        None => insert_film(tx, film, &imdb, &external, &key, strength).await?,
    };
    Ok(film_id)
}

/// Which row the incoming film is, and which other rows it shows to be the same film.
/// `rows` are sorted strongest first; `true` marks a row matched by an id, `false` one matched
/// by title and year only. Pure.
fn choose(incoming: &FilmRow, rows: &[(FilmRow, bool)]) -> (Option<i64>, Vec<i64>) {
    let ok: Vec<&(FilmRow, bool)> = rows
        .iter()
        .filter(|(r, _)| compatible(r, incoming))
        .collect();
    let by_id: Vec<&FilmRow> = ok.iter().filter(|(_, id)| *id).map(|(r, _)| r).collect();
    let title_only: Vec<&FilmRow> = ok
        .iter()
        .filter(|(r, id)| !*id && r.title_strength == 0)
        .map(|(r, _)| r)
        .collect();
    let identified_by_title: Vec<&FilmRow> = ok
        .iter()
        .filter(|(r, id)| !*id && r.title_strength > 0)
        .map(|(r, _)| r)
        .collect();
    let keep = match (by_id.first(), identified_by_title.as_slice()) {
        (Some(first), _) => *first,
        // No id matched: one identified film of that title and year is this film; two or more
        // cannot be told apart by title (a title-only row stands for the title).
        (None, [only]) => *only,
        (None, _) => match title_only.first() {
            Some(first) => *first,
            None => return (None, Vec::new()),
        },
    };
    let absorb = by_id
        .iter()
        .chain(title_only.iter())
        .filter(|r| r.film_id != keep.film_id && compatible(r, keep))
        .map(|r| r.film_id)
        .collect();
    (Some(keep.film_id), absorb)
}

async fn insert_film(
    tx: &mut PgConnection,
    film: &Film,
    imdb: &Option<String>,
    external: &serde_json::Value,
    key: &str,
    strength: i16,
) -> Result<i64, StoreError> {
    let id = sqlx::query_scalar(
        "INSERT INTO regard.film (film_key, title, year, imdb_id, tmdb_id, external_ids,
                                  title_key, title_strength)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING film_id",
    )
    .bind(film_key(film))
    .bind(film.title.trim())
    .bind(film.year)
    .bind(imdb)
    .bind(film.tmdb_id)
    .bind(external)
    .bind(key)
    .bind(strength)
    .fetch_one(&mut *tx)
    .await?;
    Ok(id)
}

/// Add what the job knows to the film: missing ids, the year, and its title (as the title if
/// given with a stronger identity, else as an alias).
async fn update_film(
    tx: &mut PgConnection,
    film_id: i64,
    film: &Film,
    imdb: &Option<String>,
    external: &serde_json::Value,
    key: &str,
    strength: i16,
) -> Result<(), StoreError> {
    let title = film.title.trim();
    sqlx::query(
        "UPDATE regard.film f SET
            imdb_id = coalesce(f.imdb_id, $2),
            tmdb_id = coalesce(f.tmdb_id, $3),
            external_ids = $4 || f.external_ids,
            year = coalesce(f.year, $5),
            aliases = CASE
                WHEN $6 = '' OR lower($6) = lower(f.title) OR f.aliases ? $6 THEN f.aliases
                WHEN $8 > f.title_strength THEN f.aliases || to_jsonb(f.title)
                ELSE f.aliases || to_jsonb($6::text) END,
            title = CASE WHEN $6 <> '' AND $8 > f.title_strength THEN $6 ELSE f.title END,
            title_key = CASE WHEN $6 <> '' AND $8 > f.title_strength THEN $7 ELSE coalesce(f.title_key, $7) END,
            title_strength = greatest(f.title_strength, $8),
            updated_at = now()
         WHERE f.film_id = $1",
    )
    .bind(film_id)
    .bind(imdb)
    .bind(film.tmdb_id)
    .bind(external)
    .bind(film.year)
    .bind(title)
    .bind(key)
    .bind(strength)
    .execute(&mut *tx)
    .await?;
    refresh_key(tx, film_id).await
}

/// The film key follows the strongest id the row has.
async fn refresh_key(tx: &mut PgConnection, film_id: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE regard.film SET film_key = CASE
            WHEN imdb_id IS NOT NULL THEN 'imdb:' || lower(imdb_id)
            WHEN tmdb_id IS NOT NULL THEN 'tmdb:' || tmdb_id
            ELSE film_key END
         WHERE film_id = $1",
    )
    .bind(film_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Move every link of `drop` to `keep`, fold its ids and titles in, and delete it.
async fn merge_into(tx: &mut PgConnection, keep: i64, drop: i64) -> Result<(), StoreError> {
    if keep == drop {
        return Ok(());
    }
    for sql in [
        "INSERT INTO regard.film_media (film_id, media_id, source)
         SELECT $1, media_id, source FROM regard.film_media WHERE film_id = $2
         ON CONFLICT (film_id, media_id) DO NOTHING",
        "INSERT INTO regard.film_selection (film_id, festival_edition_id, festival_section_id)
         SELECT $1, festival_edition_id, festival_section_id FROM regard.film_selection
         WHERE film_id = $2
         ON CONFLICT (film_id, festival_edition_id, (coalesce(festival_section_id, 0))) DO NOTHING",
        "UPDATE regard.film k SET
            imdb_id = coalesce(k.imdb_id, d.imdb_id),
            tmdb_id = coalesce(k.tmdb_id, d.tmdb_id),
            external_ids = d.external_ids || k.external_ids,
            year = coalesce(k.year, d.year),
            title = CASE WHEN d.title_strength > k.title_strength THEN d.title ELSE k.title END,
            title_key = CASE WHEN d.title_strength > k.title_strength THEN d.title_key ELSE k.title_key END,
            title_strength = greatest(k.title_strength, d.title_strength),
            aliases = (
                SELECT coalesce(jsonb_agg(DISTINCT t), '[]'::jsonb)
                FROM (SELECT jsonb_array_elements_text(k.aliases || d.aliases
                             || to_jsonb(k.title) || to_jsonb(d.title)) AS t) titles
                WHERE t <> CASE WHEN d.title_strength > k.title_strength THEN d.title ELSE k.title END
            ),
            updated_at = now()
         FROM regard.film d WHERE k.film_id = $1 AND d.film_id = $2",
        "DELETE FROM regard.film_media WHERE film_id = $2",
        "DELETE FROM regard.film_selection WHERE film_id = $2",
    ] {
        sqlx::query(sql).bind(keep).bind(drop).execute(&mut *tx).await?;
    }
    // The dropped row's key must be free before the kept row may take an id-based key.
    sqlx::query("DELETE FROM regard.film WHERE film_id = $1")
        .bind(drop)
        .execute(&mut *tx)
        .await?;
    refresh_key(tx, keep).await
}

impl Store {
    /// Merge film `drop` into film `keep` (`regard films merge`): every media link and festival
    /// selection moves, ids and titles are folded in, `drop` disappears. Refused when the two
    /// have different IMDb or TMDb ids.
    pub async fn merge_films(&self, keep: i64, drop: i64) -> Result<(), StoreError> {
        if keep == drop {
            return Err(StoreError::invalid(
                "films",
                "cannot merge a film into itself",
            ));
        }
        let mut tx = self.pool.begin().await?;
        let rows: Vec<FilmRow> = sqlx::query_as(
            "SELECT film_id, imdb_id, tmdb_id, title_strength FROM regard.film
             WHERE film_id = ANY($1) ORDER BY film_id FOR UPDATE",
        )
        .bind(vec![keep, drop])
        .fetch_all(&mut *tx)
        .await?;
        if rows.len() != 2 {
            return Err(StoreError::invalid(
                "films",
                format!("film {keep} or {drop} does not exist"),
            ));
        }
        if !compatible(&rows[0], &rows[1]) {
            return Err(StoreError::invalid(
                "films",
                format!("films {keep} and {drop} have different IMDb or TMDb ids"),
            ));
        }
        merge_into(&mut tx, keep, drop).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strength_follows_the_strongest_id() {
        let mut f = Film {
            title: "La  Chimera".into(),
            year: Some(2023),
            ..Film::default()
        };
        assert_eq!((strength(&f), title_key(&f)), (0, "la chimera|2023".into()));
        f.external_ids.insert("allocine".into(), "123".into());
        assert_eq!(strength(&f), 1);
        f.tmdb_id = Some(837335);
        assert_eq!(strength(&f), 2);
        f.imdb_id = Some(" TT14540444 ".into());
        assert_eq!((strength(&f), imdb(&f)), (3, Some("tt14540444".into())));
    }

    fn row(id: i64, imdb: Option<&str>, tmdb: Option<i64>, strength: i16) -> FilmRow {
        FilmRow {
            film_id: id,
            imdb_id: imdb.map(String::from),
            tmdb_id: tmdb,
            title_strength: strength,
        }
    }

    #[test]
    fn the_strongest_compatible_match_is_the_film_and_absorbs_the_others() {
        let incoming = row(0, Some("tt1"), Some(9), 3);
        let rows = [
            (row(1, Some("tt1"), None, 3), true),
            (row(2, None, Some(9), 2), true),
            (row(3, None, None, 0), false),
        ];
        assert_eq!(choose(&incoming, &rows), (Some(1), vec![2, 3]));
        // A title-only job among two identified films of that title: no choice, a title row.
        let title = row(0, None, None, 0);
        let two = [
            (row(1, Some("tt1"), None, 3), false),
            (row(2, Some("tt2"), None, 3), false),
        ];
        assert_eq!(choose(&title, &two), (None, vec![]));
        let with_title_row = [
            two[0].clone(),
            two[1].clone(),
            (row(3, None, None, 0), false),
        ];
        assert_eq!(choose(&title, &with_title_row), (Some(3), vec![]));
        // One identified film of that title and year, with no contradicting id: this film.
        assert_eq!(
            choose(&row(0, None, Some(7), 2), &two[..1]),
            (Some(1), vec![])
        );
        // A contradicting id is another film.
        assert_eq!(
            choose(&row(0, Some("tt9"), None, 3), &two[..1]),
            (None, vec![])
        );
    }

    #[test]
    fn rows_with_different_ids_are_never_one_film() {
        let row = |imdb: Option<&str>, tmdb: Option<i64>| FilmRow {
            film_id: 1,
            imdb_id: imdb.map(String::from),
            tmdb_id: tmdb,
            title_strength: 0,
        };
        assert!(compatible(&row(Some("tt1"), None), &row(None, Some(9))));
        assert!(compatible(
            &row(Some("tt1"), Some(9)),
            &row(Some("TT1"), None)
        ));
        assert!(!compatible(
            &row(Some("tt1"), None),
            &row(Some("tt2"), None)
        ));
        assert!(!compatible(&row(None, Some(9)), &row(Some("tt1"), Some(8))));
    }
}
