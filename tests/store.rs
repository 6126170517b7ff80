//! The PostgreSQL store against the real server (REGARD_TEST_DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/postgres). Each test creates its own database and drops
//! it at the end, so tests run in parallel.

mod common;

use regard::domain::{
    Analysis, AttributeEstimate, BoundingBox, DecodeReport, Face, FestivalSelection, Film,
    MediaContext, MediaInfo, MediaRole, ModelRef, Person, PosterAnalysis, PosterAttributeStats,
    PosterCategoryStats, Provenance, TimelineFrame, TrailerAnalysis, TrailerAttributeStats,
    TrailerCategoryStats,
};
use regard::store::{FailedMedia, FilmFilter, Store, StoreError, Timings, sha256_hex};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh database, dropped (with its connections) when the test ends, even on panic.
struct TestDb {
    name: String,
    admin: PgConnectOptions,
    options: PgConnectOptions,
    store: Store,
}

impl TestDb {
    async fn new() -> TestDb {
        let url = std::env::var("REGARD_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.into());
        let admin = PgConnectOptions::from_str(&url).unwrap_or_else(|e| {
            panic!("REGARD_TEST_DATABASE_URL {url:?} is not a PostgreSQL URL: {e}")
        });
        let mut conn = admin.connect().await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {url} ({e}). Start it (see DEVELOPERS.md) or set \
                 REGARD_TEST_DATABASE_URL; these tests never skip."
            )
        });
        let name = format!("regard_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.expect("close admin connection");
        let options = admin.clone().database(&name);
        let store = Store::connect_with(options.clone())
            .await
            .expect("connect to test database");
        TestDb {
            name,
            admin,
            options,
            store,
        }
    }

    async fn migrated() -> TestDb {
        let db = TestDb::new().await;
        db.store.migrate().await.expect("migrate");
        db
    }

    async fn another_store(&self) -> Store {
        Store::connect_with(self.options.clone())
            .await
            .expect("second store")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        common::drop_database(self.admin.clone(), self.name.clone());
    }
}

// ---------- building analyses with known faces and persons ----------

fn provenance(detector_sha_seed: &str) -> Provenance {
    let settings = regard::config::AnalysisSettings::default().as_provenance();
    Provenance {
        pipeline_version: "0.1.0".into(),
        algorithm_version: regard::ALGORITHM_VERSION,
        runtime_sha256: sha256_hex(b"onnxruntime"),
        models: vec![
            ModelRef {
                name: "yunet".into(),
                role: "detector".into(),
                file: "yunet.onnx".into(),
                sha256: sha256_hex(detector_sha_seed.as_bytes()),
            },
            ModelRef {
                name: "gender-v1".into(),
                role: "gender".into(),
                file: "gender-v1.onnx".into(),
                sha256: sha256_hex(b"gender-v1"),
            },
        ],
        settings,
    }
}

fn gender(p_female: f32, face_px: f32) -> AttributeEstimate {
    let probabilities = BTreeMap::from([
        ("female".to_string(), p_female),
        ("male".to_string(), 1.0 - p_female),
    ]);
    AttributeEstimate::decide("gender", probabilities, 0.75, face_px, 40.0)
}

fn face(x: f32, y: f32, size: f32, p_female: f32) -> Face {
    Face {
        bbox: BoundingBox {
            x,
            y,
            width: size,
            height: size,
        },
        landmarks: [[0.0; 2]; 5],
        detection_score: 0.9,
        size_px: size,
        attributes: vec![
            gender(p_female, size),
            AttributeEstimate::not_configured("origin"),
        ],
        age: None,
    }
}

fn media(seed: &str, w: u32, h: u32, duration_s: Option<f64>) -> MediaInfo {
    MediaInfo {
        source: format!("https://example.org/{seed}"),
        content_sha256: sha256_hex(seed.as_bytes()),
        bytes: 1000,
        format: if duration_s.is_some() {
            "mp4/h264".into()
        } else {
            "jpeg".into()
        },
        width: w,
        height: h,
        duration_s,
        frame_rate: duration_s.map(|_| 24.0),
    }
}

fn poster_stats(
    faces: &[Face],
    w: f32,
    h: f32,
    attribute: &str,
    labels: &[&str],
) -> PosterAttributeStats {
    let label = |f: &Face| {
        f.attribute(attribute)
            .map_or("unknown".to_string(), |a| a.label.clone())
    };
    let total_area: f32 = faces.iter().map(|f| f.bbox.area()).sum();
    let largest = faces
        .iter()
        .max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()));
    let categories = labels
        .iter()
        .map(|&c| {
            let members: Vec<&Face> = faces.iter().filter(|f| label(f) == c).collect();
            let area: f32 = members.iter().map(|f| f.bbox.area()).sum();
            PosterCategoryStats {
                category: c.into(),
                faces: members.len() as u32,
                soft_count: faces
                    .iter()
                    .map(|f| f64::from(f.attribute(attribute).map_or(0.0, |a| a.probability(c))))
                    .sum(),
                face_area_share: if total_area > 0.0 {
                    f64::from(area / total_area)
                } else {
                    0.0
                },
                has_largest_face: largest.is_some_and(|f| label(f) == c),
                faces_upper_third: members
                    .iter()
                    .filter(|f| f.bbox.center().1 < h / 3.0)
                    .count() as u32,
                faces_central_third: members
                    .iter()
                    .filter(|f| {
                        let (x, y) = f.bbox.center();
                        x >= w / 3.0 && x < 2.0 * w / 3.0 && y >= h / 3.0 && y < 2.0 * h / 3.0
                    })
                    .count() as u32,
                share: 0.0,
                share_interval: None,
                face_area_share_soft: 0.0,
                face_area_share_interval: None,
            }
        })
        .collect();
    PosterAttributeStats {
        attribute: attribute.into(),
        total_faces: faces.len() as u32,
        unknown: faces.iter().filter(|f| label(f) == "unknown").count() as u32,
        categories,
    }
}

fn poster(seed: &str, faces: Vec<Face>, prov: Provenance) -> Analysis {
    let (w, h) = (1000.0, 1500.0);
    let statistics = vec![
        poster_stats(&faces, w, h, "gender", &["female", "male", "unknown"]),
        poster_stats(&faces, w, h, "origin", &["unknown"]),
        // No age model: every face in the unknown band, as the pipeline records it.
        poster_stats(&faces, w, h, "age_band", &["18-29", "30-44", "unknown"]),
    ];
    Analysis::Poster(PosterAnalysis {
        media: media(seed, 1000, 1500, None),
        faces,
        statistics,
        provenance: prov,
    })
}

fn person(id: u32, p_female: f32, frames: &[usize], sample_rate: f64) -> Person {
    let screen = frames.len() as f64 / sample_rate;
    let first = frames[0] as f64 / sample_rate;
    Person {
        id,
        attributes: vec![
            gender(p_female, 80.0),
            AttributeEstimate::not_configured("origin"),
        ],
        age: None,
        first_seen_s: first,
        last_seen_s: *frames.last().unwrap() as f64 / sample_rate,
        screen_time_s: screen,
        prominence_s: screen * 0.1,
        frames: frames.len() as u32,
        tracks: 1,
        key_frame_s: first,
        key_box: BoundingBox {
            x: 100.0,
            y: 100.0,
            width: 80.0,
            height: 80.0,
        },
        median_face_px: 80.0,
    }
}

/// A trailer from (p_female, frames seen) per person; person ids from 1.
fn trailer(
    seed: &str,
    spec: &[(f32, std::ops::Range<usize>)],
    sampled_frames: u32,
    prov: Provenance,
) -> Analysis {
    let rate = 2.0;
    let persons: Vec<Person> = spec
        .iter()
        .enumerate()
        .map(|(i, (p, frames))| person(i as u32 + 1, *p, &frames.clone().collect::<Vec<_>>(), rate))
        .collect();
    let timeline: Vec<TimelineFrame> = (0..sampled_frames as usize)
        .map(|k| TimelineFrame {
            slots: 1,
            t: k as f64 / rate,
            persons: spec
                .iter()
                .enumerate()
                .filter(|(_, (_, r))| r.contains(&k))
                .map(|(i, _)| i as u32 + 1)
                .collect(),
            gender_counts: BTreeMap::new(),
        })
        .collect();
    let stats = |attribute: &str, labels: &[&str]| {
        let label = |p: &Person| {
            p.attribute(attribute)
                .map_or("unknown".to_string(), |a| a.label.clone())
        };
        TrailerAttributeStats {
            attribute: attribute.into(),
            total_persons: persons.len() as u32,
            unknown_persons: persons.iter().filter(|p| label(p) == "unknown").count() as u32,
            categories: labels
                .iter()
                .map(|&c| {
                    let members: Vec<&Person> = persons.iter().filter(|p| label(p) == c).collect();
                    let frames = timeline
                        .iter()
                        .filter(|f| {
                            f.persons
                                .iter()
                                .any(|id| members.iter().any(|m| m.id == *id))
                        })
                        .count();
                    TrailerCategoryStats {
                        category: c.into(),
                        persons: members.len() as u32,
                        soft_persons: persons
                            .iter()
                            .map(|p| {
                                f64::from(p.attribute(attribute).map_or(0.0, |a| a.probability(c)))
                            })
                            .sum(),
                        screen_time_s: frames as f64 / rate,
                        person_seconds: members.iter().map(|p| p.screen_time_s).sum(),
                        frame_share: frames as f64 / f64::from(sampled_frames),
                        prominence_s: members.iter().map(|p| p.prominence_s).sum(),
                        first_appearance_s: members
                            .iter()
                            .map(|p| p.first_seen_s)
                            .min_by(f64::total_cmp),
                        share: 0.0,
                        share_interval: None,
                        screen_time_share: 0.0,
                        screen_time_share_interval: None,
                    }
                })
                .collect(),
        }
    };
    let statistics = vec![
        stats("gender", &["female", "male", "unknown"]),
        stats("origin", &["unknown"]),
        stats("age_band", &["18-29", "30-44", "unknown"]),
    ];
    Analysis::Trailer(TrailerAnalysis {
        media: media(seed, 1920, 1080, Some(f64::from(sampled_frames) / rate)),
        analysed_duration_s: f64::from(sampled_frames) / rate,
        sampled_frames,
        sample_rate: rate,
        shot_cuts_s: vec![10.0],
        decode: DecodeReport::default(),
        persons,
        statistics,
        timeline,
        provenance: prov,
    })
}

fn ctx(
    title: &str,
    year: i32,
    imdb: Option<&str>,
    festival: Option<(&str, i32, &str)>,
) -> MediaContext {
    MediaContext {
        film: Some(Film {
            title: title.into(),
            year: Some(year),
            imdb_id: imdb.map(String::from),
            ..Film::default()
        }),
        festival: festival.map(|(f, e, s)| FestivalSelection {
            festival: f.into(),
            edition: e,
            section: Some(s.into()),
        }),
        job_id: None,
    }
}

/// Film, attribute, category, poster faces, persons share, screen-time share (as text).
type FigureRow = (String, String, String, i64, Option<String>, Option<String>);

const CANNES: &str = "Festival de Cannes";

fn alpha_ctx() -> MediaContext {
    ctx(
        "Alpha",
        2026,
        Some("tt0000001"),
        Some((CANNES, 2026, "Compétition")),
    )
}

/// Alpha's poster: two women, one man, one face too small to decide (20 px).
fn alpha_poster(prov: Provenance) -> Analysis {
    let faces = vec![
        face(400.0, 100.0, 100.0, 0.95),
        face(100.0, 600.0, 50.0, 0.9),
        face(600.0, 600.0, 100.0, 0.05),
        face(900.0, 1400.0, 20.0, 0.6),
    ];
    poster("alpha-poster", faces, prov)
}

/// Alpha's trailer: a woman 10 s, a man 20 s, an undecided person 5 s (2 samples/s).
fn alpha_trailer(prov: Provenance) -> Analysis {
    trailer(
        "alpha-trailer",
        &[(0.9, 0..20), (0.1, 0..40), (0.5, 40..50)],
        60,
        prov,
    )
}

async fn seed(store: &Store) {
    let t = Timings::default();
    let p = provenance("yunet-2023mar");
    store
        .record_analysis(&alpha_poster(p.clone()), &alpha_ctx(), &t)
        .await
        .unwrap();
    store
        .record_analysis(&alpha_trailer(p.clone()), &alpha_ctx(), &t)
        .await
        .unwrap();
    let beta = ctx("Beta", 2026, None, Some((CANNES, 2026, "Compétition")));
    let beta_faces = vec![
        face(100.0, 100.0, 100.0, 0.1),
        face(300.0, 300.0, 50.0, 0.2),
    ];
    store
        .record_analysis(&poster("beta-poster", beta_faces, p.clone()), &beta, &t)
        .await
        .unwrap();
    let gamma = ctx(
        "Gamma",
        2025,
        None,
        Some((CANNES, 2025, "Un Certain Regard")),
    );
    store
        .record_analysis(
            &poster(
                "gamma-poster",
                vec![face(10.0, 10.0, 80.0, 0.97)],
                p.clone(),
            ),
            &gamma,
            &t,
        )
        .await
        .unwrap();
    let gamma_trailer = trailer(
        "gamma-trailer",
        &[(0.92, 0..12), (0.88, 10..18)],
        20,
        p.clone(),
    );
    store
        .record_analysis(&gamma_trailer, &gamma, &t)
        .await
        .unwrap();
    let delta = ctx("Delta", 2026, None, None);
    store
        .record_analysis(&poster("delta-poster", vec![], p.clone()), &delta, &t)
        .await
        .unwrap();
    let broken = FailedMedia {
        source: "https://example.org/broken.jpg".into(),
        content_sha256: None,
        kind: Some(MediaRole::Poster),
    };
    store
        .record_failure(
            &broken,
            &p,
            &delta,
            "fetch_http_404",
            "HTTP 404 for https://example.org/broken.jpg",
        )
        .await
        .unwrap();
}

async fn scalar_i64(store: &Store, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Equal up to the f32 precision of the stored probabilities.
fn near(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

/// A share and its 95% interval: the interval holds the share and is not empty or degenerate.
fn brackets(row: &sqlx::postgres::PgRow, share: &str) {
    let value: f64 = row.get(share);
    let low: f64 = row.get(format!("{share}_ci_low").as_str());
    let high: f64 = row.get(format!("{share}_ci_high").as_str());
    assert!(
        (0.0..=1.0).contains(&low) && low <= value && value <= high && high <= 1.0 && low < high,
        "{share} {value} outside or at the edge of its interval [{low}, {high}]"
    );
}

/// A value for a Metabase variable, typed as the question's header declares it.
#[derive(Clone, Copy, Debug)]
enum Var<'a> {
    Text(&'a str),
    Number(i32),
}

/// A saved question's SQL made runnable the way Metabase runs it: an optional `[[ ... ]]` block
/// is kept when all its variables have a value and dropped otherwise; a `{{x}}` outside one is
/// required. Each variable becomes a bind parameter. Panics on a missing required value or a
/// variable the header (`-- Variables: x (Text), ...`) does not declare with that type.
fn substitute<'a>(file: &str, sql: &str, values: &[(&str, Var<'a>)]) -> (String, Vec<Var<'a>>) {
    let header = sql
        .lines()
        .find(|l| l.starts_with("-- Variables:"))
        .unwrap_or("");
    let mut binds: Vec<(String, Var<'a>)> = Vec::new();
    let fill = |text: &str, binds: &mut Vec<(String, Var<'a>)>| -> Option<String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let end = rest[start..]
                .find("}}")
                .unwrap_or_else(|| panic!("{file}: unclosed {{{{"))
                + start;
            let name = rest[start + 2..end].trim();
            let value = values.iter().find(|(n, _)| *n == name)?.1;
            let kind = match value {
                Var::Text(_) => "Text",
                Var::Number(_) => "Number",
            };
            assert!(
                header.contains(&format!("{name} ({kind}")),
                "{file}: variable {name} is not declared as {kind} in its header {header:?}"
            );
            let index = match binds.iter().position(|(n, _)| n == name) {
                Some(i) => i,
                None => {
                    binds.push((name.to_string(), value));
                    binds.len() - 1
                }
            };
            out.push_str(&rest[..start]);
            out.push_str(&format!("${}", index + 1));
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        Some(out)
    };
    let mut out = String::new();
    let mut rest = sql;
    while let Some(start) = rest.find("[[") {
        let end = rest[start..]
            .find("]]")
            .unwrap_or_else(|| panic!("{file}: unclosed [["))
            + start;
        let required = fill(&rest[..start], &mut binds)
            .unwrap_or_else(|| panic!("{file}: a required variable has no value"));
        out.push_str(&required);
        let mut scratch = binds.clone();
        if let Some(block) = fill(&rest[start + 2..end], &mut scratch) {
            out.push_str(&block);
            binds = scratch;
        }
        rest = &rest[end + 2..];
    }
    let tail = fill(rest, &mut binds)
        .unwrap_or_else(|| panic!("{file}: a required variable has no value"));
    out.push_str(&tail);
    (out, binds.into_iter().map(|(_, v)| v).collect())
}

/// Runs a saved question with values for its variables (see `substitute`).
async fn question(
    store: &Store,
    file: &str,
    values: &[(&str, Var<'_>)],
) -> Vec<sqlx::postgres::PgRow> {
    run_question(store.pool(), file, values).await
}

async fn run_question<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    file: &str,
    values: &[(&str, Var<'_>)],
) -> Vec<sqlx::postgres::PgRow> {
    let sql = std::fs::read_to_string(format!("{QUESTIONS}/{file}"))
        .unwrap_or_else(|e| panic!("{QUESTIONS}/{file}: {e}"));
    let (sql, binds) = substitute(file, &sql, values);
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in binds {
        query = match b {
            Var::Text(t) => query.bind(t.to_string()),
            Var::Number(n) => query.bind(n),
        };
    }
    query
        .fetch_all(executor)
        .await
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

const QUESTIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/metabase/questions");

/// The saved questions' file names.
fn question_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(QUESTIONS)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    files.sort();
    files
}

/// A value for every variable of the saved questions; the first two are the required ones.
const CANNES_VALUES: [(&str, Var<'static>); 9] = [
    ("festival", Var::Text(CANNES)),
    ("attribute", Var::Text("gender")),
    ("edition", Var::Number(2026)),
    ("section", Var::Text("Compétition")),
    ("from_year", Var::Number(2025)),
    ("to_year", Var::Number(2026)),
    ("year", Var::Number(2026)),
    ("film", Var::Text("Alpha")),
    ("error_code", Var::Text("fetch_http_404")),
];

// ---------- tests ----------

#[tokio::test]
async fn migrations_apply_to_empty_then_migrated_database_and_concurrently() {
    let db = TestDb::new().await;
    let other = db.another_store().await;
    let (a, b) = tokio::join!(db.store.migrate(), other.migrate());
    a.expect("first concurrent migrate");
    b.expect("second concurrent migrate");
    db.store
        .migrate()
        .await
        .expect("migrate an already migrated database");

    let applied = scalar_i64(
        &db.store,
        "SELECT count(*) FROM regard._sqlx_migrations WHERE success",
    )
    .await;
    assert_eq!(applied, 6);
    let outside: i64 = scalar_i64(
        &db.store,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN ('regard', 'pg_catalog', 'information_schema')",
    )
    .await;
    assert_eq!(outside, 0, "regard must create nothing outside its schema");

    // A newer worker applied a migration this binary does not know: still starts.
    sqlx::query(
        "INSERT INTO regard._sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99999999, 'from a newer worker', true, '\\x00'::bytea, 0)",
    )
    .execute(db.store.pool())
    .await
    .unwrap();
    db.store
        .migrate()
        .await
        .expect("migrate with an unknown newer migration applied");
}

#[tokio::test]
async fn every_view_and_saved_question_returns_the_seeded_figures() {
    let db = TestDb::migrated().await;
    seed(&db.store).await;
    let s = &db.store;

    let views: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.views WHERE table_schema = 'regard' ORDER BY 1",
    )
    .fetch_all(s.pool())
    .await
    .unwrap();
    assert_eq!(views.len(), 14, "{views:?}");
    for v in &views {
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM regard.{v}")))
            .fetch_all(s.pool())
            .await
            .unwrap_or_else(|e| panic!("view {v}: {e}"));
        let commented: bool = sqlx::query_scalar(
            "SELECT obj_description(('regard.' || $1)::regclass, 'pg_class') IS NOT NULL",
        )
        .bind(v)
        .fetch_one(s.pool())
        .await
        .unwrap();
        assert!(commented, "view {v} has no COMMENT");
    }

    let cannes = ("festival", Var::Text(CANNES));
    let gender = ("attribute", Var::Text("gender"));

    // Cannes 2026 competition posters: Alpha (2 women, 1 man, 1 unknown) + Beta (2 men).
    let competition = [
        cannes,
        ("edition", Var::Number(2026)),
        ("section", Var::Text("Compétition")),
    ];
    let rows = question(s, "women_share_by_section.sql", &competition).await;
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.get::<i64, _>("films"), 2);
    assert_eq!(r.get::<Option<i64>, _>("women_faces"), Some(2));
    assert_eq!(r.get::<i64, _>("faces_decided"), 5);
    assert_eq!(r.get::<i64, _>("faces_unknown"), 1);
    assert!(close(r.get("women_decided_share"), 0.4));
    // The soft share leaves out the 20 px face only: Σ P over the other five faces.
    assert!(near(
        r.get("women_share"),
        (0.95 + 0.9 + 0.05 + 0.1 + 0.2) / 5.0
    ));
    brackets(r, "women_share");
    // Σ area·P over Σ area: areas 100², 50², 100² (Alpha), 100², 50² (Beta).
    let area_share =
        (10_000.0 * 0.95 + 2_500.0 * 0.9 + 10_000.0 * 0.05 + 10_000.0 * 0.1 + 2_500.0 * 0.2)
            / 35_000.0;
    assert!(near(r.get("women_face_area_share"), area_share));
    brackets(r, "women_face_area_share");
    assert!(close(r.get("unknown_face_area_px"), 400.0));
    assert_eq!(r.get::<i64, _>("trailers"), 1);
    assert_eq!(r.get::<i64, _>("trailer_persons_unknown"), 1);
    assert!(near(r.get("trailer_women_share"), (0.9 + 0.1 + 0.5) / 3.0));
    brackets(r, "trailer_women_share");
    // Screen time 10 s, 20 s and 5 s weighted by P.
    assert!(near(
        r.get("trailer_women_screen_time_share"),
        (0.9 * 10.0 + 0.1 * 20.0 + 0.5 * 5.0) / 35.0
    ));
    brackets(r, "trailer_women_screen_time_share");
    // Without the optional values: every edition and section of the festival, newest first.
    let rows = question(s, "women_share_by_section.sql", &[cannes]).await;
    let sections: Vec<(i32, Option<String>)> = rows
        .iter()
        .map(|r| (r.get("edition"), r.get("section")))
        .collect();
    assert_eq!(
        sections,
        [
            (2026, Some("Compétition".into())),
            (2025, Some("Un Certain Regard".into()))
        ]
    );
    assert_eq!(rows[1].get::<Option<i64>, _>("women_faces"), Some(1));
    let rows = question(
        s,
        "women_share_by_section.sql",
        &[("festival", Var::Text("Berlinale"))],
    )
    .await;
    assert!(
        rows.is_empty(),
        "another festival's value is bound, not Cannes"
    );

    // Per year: 2025 Gamma (2 women), 2026 Alpha (1 woman, 1 man, 1 unknown) and Beta, Delta.
    let rows = question(s, "women_share_by_year.sql", &[]).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<Option<i32>, _>("film_year"), Some(2025));
    assert!(close(rows[0].get("women_decided_share"), 1.0));
    assert!(near(rows[0].get("women_share"), (0.92 + 0.88) / 2.0));
    brackets(&rows[0], "women_share");
    assert!(close(rows[0].get("women_person_seconds"), 10.0));
    let y26 = &rows[1];
    assert_eq!(y26.get::<i64, _>("women"), 1);
    assert_eq!(y26.get::<i64, _>("persons_decided"), 2);
    assert_eq!(y26.get::<i64, _>("persons_unknown"), 1);
    assert!(close(y26.get("women_decided_share"), 0.5));
    assert!(close(y26.get("women_person_seconds"), 10.0));
    assert!(close(y26.get("person_seconds_decided"), 30.0));
    assert!(close(y26.get("person_seconds_unknown"), 5.0));
    assert!(close(y26.get("women_decided_screen_time_share"), 1.0 / 3.0));
    brackets(y26, "women_screen_time_share");
    assert_eq!(y26.get::<i64, _>("poster_women"), 2);
    brackets(y26, "poster_women_share");
    let rows = question(
        s,
        "women_share_by_year.sql",
        &[("from_year", Var::Number(2026))],
    )
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<Option<i32>, _>("film_year"), Some(2026));
    let rows = question(
        s,
        "women_share_by_year.sql",
        &[
            ("from_year", Var::Number(2020)),
            ("to_year", Var::Number(2025)),
        ],
    )
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<Option<i32>, _>("film_year"), Some(2025));

    // Per film, posters and trailers side by side.
    let rows = question(s, "women_per_film_posters_and_trailers.sql", &[]).await;
    let titles: Vec<String> = rows.iter().map(|r| r.get("film_title")).collect();
    assert_eq!(titles, ["Alpha", "Beta", "Delta", "Gamma"]);
    assert!(close(rows[0].get("poster_women_decided_share"), 2.0 / 3.0));
    assert!(near(
        rows[0].get("poster_women_share"),
        (0.95 + 0.9 + 0.05) / 3.0
    ));
    brackets(&rows[0], "poster_women_share");
    assert!(close(rows[0].get("trailer_women_decided_share"), 0.5));
    brackets(&rows[0], "trailer_women_share");
    assert!(close(rows[1].get("poster_women_decided_share"), 0.0));
    assert!(near(rows[1].get("poster_women_share"), 0.15));
    assert_eq!(
        rows[1].get::<Option<f64>, _>("trailer_women_share"),
        None,
        "Beta has no trailer"
    );
    assert_eq!(
        rows[2].get::<Option<f64>, _>("poster_women_share"),
        None,
        "Delta's poster has no face"
    );
    let rows = question(
        s,
        "women_per_film_posters_and_trailers.sql",
        &[("year", Var::Number(2026))],
    )
    .await;
    let titles: Vec<String> = rows.iter().map(|r| r.get("film_title")).collect();
    assert_eq!(titles, ["Alpha", "Beta", "Delta"]);
    let rows = question(
        s,
        "women_per_film_posters_and_trailers.sql",
        &[("year", Var::Number(2025)), ("film", Var::Text("Gamma"))],
    )
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<i64, _>("trailer_women"), 2);

    let rows = question(s, "perceived_origin_coded_by_film.sql", &[]).await;
    let alpha: Vec<_> = rows
        .iter()
        .filter(|r| r.get::<String, _>("film_title") == "Alpha")
        .collect();
    assert_eq!(
        alpha.len(),
        1,
        "no coder labels yet: origin is unknown only"
    );
    assert_eq!(alpha[0].get::<i64, _>("poster_faces_unknown"), 4);
    assert_eq!(alpha[0].get::<i64, _>("trailer_persons_unknown"), 3);
    assert_eq!(alpha[0].get::<Option<f64>, _>("poster_share"), None);
    assert_eq!(alpha[0].get::<String, _>("origin_label"), "Inconnu");
    // Every code the views or the coding scheme use has a French and an English label.
    let unlabelled: Vec<String> = sqlx::query_scalar(
        "SELECT c.attribute || '/' || c.category
         FROM (SELECT attribute, category FROM regard.latest_representation
               UNION SELECT attribute, label FROM regard.coding_scheme
               UNION SELECT 'attribute', attribute FROM regard.latest_representation) c
         WHERE NOT EXISTS (SELECT 1 FROM regard.label l WHERE (l.attribute, l.category, l.lang) = (c.attribute, c.category, 'fr'))
            OR NOT EXISTS (SELECT 1 FROM regard.label l WHERE (l.attribute, l.category, l.lang) = (c.attribute, c.category, 'en'))
         ORDER BY 1",
    )
    .fetch_all(s.pool())
    .await
    .unwrap();
    assert!(
        unlabelled.is_empty(),
        "codes without fr and en labels: {unlabelled:?}"
    );
    let en: String = sqlx::query_scalar(
        "SELECT label_en FROM regard.category_label WHERE attribute = 'gender' AND category = 'female'",
    )
    .fetch_one(s.pool())
    .await
    .unwrap();
    assert_eq!(en, "Woman");
    let rows = question(
        s,
        "perceived_origin_coded_by_film.sql",
        &[("film", Var::Text("Alpha"))],
    )
    .await;
    assert_eq!(rows.len(), 1);

    // Age bands: no age model in the seed, so every face and person is in the unknown row.
    let rows = question(s, "age_bands_by_section.sql", &competition).await;
    let bands: Vec<String> = rows.iter().map(|r| r.get("age_band")).collect();
    assert_eq!(
        bands.last().map(String::as_str),
        Some("unknown"),
        "{bands:?}"
    );
    assert!(bands.len() > 1, "{bands:?}");
    let unknown = rows.last().unwrap();
    assert_eq!(unknown.get::<String, _>("age_band_label"), "Inconnu");
    assert_eq!(rows[0].get::<String, _>("age_band_label"), "18-29 ans");
    assert_eq!(unknown.get::<i64, _>("poster_faces_unknown"), 6);
    assert_eq!(unknown.get::<i64, _>("trailer_persons_unknown"), 3);
    for band in &rows[..rows.len() - 1] {
        assert_eq!(band.get::<i64, _>("poster_faces"), 0);
        assert_eq!(band.get::<Option<f64>, _>("poster_faces_share"), None);
    }
    let all = question(s, "age_bands_by_section.sql", &[cannes]).await;
    assert_eq!(all.len(), 2 * rows.len(), "two sections, the same bands");

    // Coding progress: nothing coded yet; Alpha 4 faces + 3 persons, Beta 2 faces.
    let rows = question(
        s,
        "coding_progress_by_section.sql",
        &[
            cannes,
            ("attribute", Var::Text("origin")),
            ("edition", Var::Number(2026)),
        ],
    )
    .await;
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.get::<i64, _>("poster_faces"), 6);
    assert_eq!(r.get::<i64, _>("trailer_persons"), 3);
    assert_eq!(r.get::<i64, _>("coded_persons"), 0);
    assert!(close(r.get("coded_share"), 0.0));
    assert_eq!(r.get::<i64, _>("still_unknown"), 9);
    let rows = question(s, "coding_progress_by_section.sql", &[cannes, gender]).await;
    assert_eq!(rows.len(), 2);
    // Gender: Alpha's 20 px face and its undecided trailer person stay unknown.
    assert_eq!(rows[0].get::<i64, _>("still_unknown"), 2);

    let rows = question(s, "failed_analyses.sql", &[]).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<String, _>("error_code"), "fetch_http_404");
    assert_eq!(
        rows[0].get::<Option<String>, _>("film_title").as_deref(),
        Some("Delta")
    );
    let rows = question(
        s,
        "failed_analyses.sql",
        &[("error_code", Var::Text("kind_mismatch"))],
    )
    .await;
    assert!(rows.is_empty());
    let rows = question(
        s,
        "failed_analyses.sql",
        &[("error_code", Var::Text("fetch_http_404"))],
    )
    .await;
    assert_eq!(rows.len(), 1);

    let rows = question(s, "quality_summary.sql", &[]).await;
    let q = &rows[0];
    assert_eq!(q.get::<i64, _>("analysed_media"), 6);
    assert_eq!(q.get::<i64, _>("failed_analyses"), 1);
    assert_eq!(q.get::<i64, _>("posters_without_face"), 1);
    assert_eq!(q.get::<i64, _>("trailers_without_person"), 0);
    assert_eq!(q.get::<i64, _>("faces_and_persons"), 12);
    assert_eq!(q.get::<i64, _>("gender_unknown"), 2);
    assert!(close(q.get("gender_unknown_share"), 2.0 / 12.0));

    // Every saved question runs with its required values and with every optional one (the loop
    // catches files added later without assertions).
    let required = &CANNES_VALUES[..2];
    let mut files = 0;
    for name in question_files() {
        let sql = std::fs::read_to_string(format!("{QUESTIONS}/{name}")).unwrap();
        let with_all = question(s, &name, &CANNES_VALUES).await;
        let with_required = question(s, &name, required).await;
        assert!(
            with_required.len() >= with_all.len(),
            "{name}: optional filters can only narrow"
        );
        let (filtered, _) = substitute(&name, &sql, &CANNES_VALUES);
        let (unfiltered, _) = substitute(&name, &sql, required);
        assert_eq!(
            filtered == unfiltered,
            !sql.contains("[["),
            "{name}: optional blocks must be kept with values and dropped without"
        );
        assert!(
            !filtered.contains("{{") && !filtered.contains("[["),
            "{name}"
        );
        files += 1;
    }
    assert_eq!(files, 8);

    // The edition view counts each film once; the person view says where labels come from.
    let women: i64 = scalar_i64(
        s,
        "SELECT poster_faces FROM regard.festival_edition_representation
         WHERE festival = 'Festival de Cannes' AND edition = 2025 AND attribute = 'gender' AND category = 'female'",
    )
    .await;
    assert_eq!(women, 1);
    let model_decided = scalar_i64(
        s,
        "SELECT count(*) FROM regard.person_labels WHERE gender_source = 'model'",
    )
    .await;
    assert_eq!(model_decided, 10);
}

#[tokio::test]
async fn every_column_of_every_view_has_a_comment() {
    let db = TestDb::migrated().await;
    let views: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT c.relname::text, obj_description(c.oid, 'pg_class')
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'regard' AND c.relkind = 'v' ORDER BY 1",
    )
    .fetch_all(db.store.pool())
    .await
    .unwrap();
    assert_eq!(views.len(), 14, "{views:?}");
    let bare: Vec<&str> = views
        .iter()
        .filter(|(_, c)| c.as_deref().is_none_or(|c| c.trim().is_empty()))
        .map(|(v, _)| v.as_str())
        .collect();
    assert!(bare.is_empty(), "views without a COMMENT: {bare:?}");

    let (columns, bare): (i64, Vec<String>) = {
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT c.relname || '.' || a.attname, col_description(c.oid, a.attnum)
             FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             WHERE n.nspname = 'regard' AND c.relkind = 'v'
             ORDER BY c.relname, a.attnum",
        )
        .fetch_all(db.store.pool())
        .await
        .unwrap();
        let bare = rows
            .iter()
            .filter(|(_, c)| c.as_deref().is_none_or(|c| c.trim().is_empty()))
            .map(|(col, _)| col.clone())
            .collect();
        (rows.len() as i64, bare)
    };
    assert!(columns > 250, "only {columns} view columns found");
    assert!(
        bare.is_empty(),
        "{} of {columns} view columns have no COMMENT: {bare:?}",
        bare.len()
    );
}

#[tokio::test]
async fn the_metabase_role_reads_the_views_and_no_table() {
    let db = TestDb::migrated().await;
    seed(&db.store).await;
    let privileges: Vec<(String, String, bool, bool)> = sqlx::query_as(
        "SELECT c.relname::text, c.relkind::text,
                has_table_privilege('regard_metabase', c.oid, 'SELECT'),
                has_table_privilege('regard_metabase', c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'regard' AND c.relkind IN ('r', 'v', 'm', 'p') ORDER BY 1",
    )
    .fetch_all(db.store.pool())
    .await
    .unwrap();
    let views = privileges.iter().filter(|p| p.1 == "v").count();
    assert_eq!(views, 14);
    for (name, kind, select, write) in &privileges {
        assert_eq!(
            *select,
            kind == "v",
            "regard_metabase SELECT on {name} ({kind}) should be {}",
            kind == "v"
        );
        assert!(!write, "regard_metabase can write to {name}");
    }

    // As Metabase would: on its own connection, the views answer and the tables refuse.
    let mut conn = db.options.connect().await.unwrap();
    sqlx::query("SET ROLE regard_metabase")
        .execute(&mut conn)
        .await
        .unwrap();
    let women: i64 = sqlx::query_scalar(
        "SELECT poster_faces FROM regard.festival_section_representation
         WHERE festival = 'Festival de Cannes' AND edition = 2026 AND section = 'Compétition'
           AND attribute = 'gender' AND category = 'female'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("regard_metabase reads a view");
    assert_eq!(women, 2);
    // Every saved question reads views only, so it runs as regard_metabase.
    for name in question_files() {
        run_question(&mut conn, &name, &CANNES_VALUES).await;
    }
    for table in ["regard.analysis", "regard.person", "regard.job"] {
        let err = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {table}")))
            .fetch_all(&mut conn)
            .await
            .expect_err("regard_metabase must not read a table");
        let code = err.as_database_error().and_then(|e| e.code());
        assert_eq!(code.as_deref(), Some("42501"), "{table}: {err}");
    }
    conn.close().await.unwrap();
}

#[tokio::test]
async fn the_same_result_written_twice_or_concurrently_is_stored_once() {
    let db = TestDb::migrated().await;
    let other = db.another_store().await;
    let analysis = alpha_trailer(provenance("yunet-2023mar"));
    let t = Timings::default();
    let c = alpha_ctx();
    let (a, b) = tokio::join!(
        db.store.record_analysis(&analysis, &c, &t),
        other.record_analysis(&analysis, &c, &t)
    );
    let (a, b) = (a.expect("writer a"), b.expect("writer b"));
    assert_eq!(a.analysis_id, b.analysis_id);
    assert!(
        a.new ^ b.new,
        "exactly one writer stores the result: {a:?} {b:?}"
    );
    let again = db
        .store
        .record_analysis(&analysis, &alpha_ctx(), &t)
        .await
        .unwrap();
    assert_eq!((again.analysis_id, again.new), (a.analysis_id, false));

    // Same bytes at another URL: still the same result.
    let mut moved = analysis.clone();
    if let Analysis::Trailer(t) = &mut moved {
        t.media.source = "https://mirror.example.org/alpha.mp4".into();
    }
    assert!(
        !db.store
            .record_analysis(&moved, &alpha_ctx(), &t)
            .await
            .unwrap()
            .new
    );

    assert_eq!(
        scalar_i64(&db.store, "SELECT count(*) FROM regard.analysis").await,
        1
    );
    assert_eq!(
        scalar_i64(&db.store, "SELECT count(*) FROM regard.person").await,
        3
    );
    assert_eq!(
        scalar_i64(&db.store, "SELECT count(*) FROM regard.representation").await,
        7,
        "gender 3 rows, origin 1, age_band 3"
    );
    assert_eq!(
        scalar_i64(&db.store, "SELECT count(*) FROM regard.film").await,
        1
    );
    assert_eq!(
        scalar_i64(&db.store, "SELECT count(*) FROM regard.film_selection").await,
        1
    );
}

#[tokio::test]
async fn a_new_model_set_adds_an_analysis_and_the_views_use_the_latest() {
    let db = TestDb::migrated().await;
    let t = Timings::default();
    let old = db
        .store
        .record_analysis(&alpha_poster(provenance("yunet-2023mar")), &alpha_ctx(), &t)
        .await
        .unwrap();
    // The new detector finds only the two women.
    let newer = poster(
        "alpha-poster",
        vec![
            face(400.0, 100.0, 100.0, 0.95),
            face(100.0, 600.0, 50.0, 0.9),
        ],
        provenance("yunet-2026"),
    );
    let new = db
        .store
        .record_analysis(&newer, &alpha_ctx(), &t)
        .await
        .unwrap();
    assert!(new.new);
    assert_ne!(old.analysis_id, new.analysis_id);
    assert_eq!(
        scalar_i64(
            &db.store,
            "SELECT count(*) FROM regard.analysis WHERE status = 'succeeded'"
        )
        .await,
        2
    );

    let (latest, women, decided): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT analysis_id FROM regard.latest_analysis), poster_faces, poster_faces_decided
         FROM regard.film_representation WHERE attribute = 'gender' AND category = 'female'",
    )
    .fetch_one(db.store.pool())
    .await
    .unwrap();
    assert_eq!(latest, new.analysis_id.0);
    assert_eq!((women, decided), (2, 2));
}

#[tokio::test]
async fn failures_are_recorded_replaced_by_a_success_and_never_replace_one() {
    let db = TestDb::migrated().await;
    let s = &db.store;
    let prov = provenance("yunet-2023mar");
    let analysis = alpha_poster(prov.clone());
    let sha = analysis.media().content_sha256.clone();
    let failed = FailedMedia {
        source: analysis.media().source.clone(),
        content_sha256: Some(sha),
        kind: Some(MediaRole::Poster),
    };

    let f1 = s
        .record_failure(
            &failed,
            &prov,
            &alpha_ctx(),
            "decode_error",
            "truncated JPEG",
        )
        .await
        .unwrap();
    assert!(f1.new);
    let f2 = s
        .record_failure(
            &failed,
            &prov,
            &alpha_ctx(),
            "decode_error",
            "truncated JPEG again",
        )
        .await
        .unwrap();
    assert_eq!((f2.analysis_id, f2.new), (f1.analysis_id, false));
    let (status, attempts): (String, i32) =
        sqlx::query_as("SELECT status, attempts FROM regard.analysis")
            .fetch_one(s.pool())
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts), ("failed", 2));

    let ok = s
        .record_analysis(&analysis, &alpha_ctx(), &Timings::default())
        .await
        .unwrap();
    assert_eq!(
        (ok.analysis_id, ok.new),
        (f1.analysis_id, true),
        "the success replaces the failure in place"
    );
    let after = s
        .record_failure(&failed, &prov, &alpha_ctx(), "timeout", "deadline")
        .await
        .unwrap();
    assert_eq!((after.analysis_id, after.new), (ok.analysis_id, false));
    let (status, code): (String, Option<String>) =
        sqlx::query_as("SELECT status, error_code FROM regard.analysis")
            .fetch_one(s.pool())
            .await
            .unwrap();
    assert_eq!((status.as_str(), code), ("succeeded", None));
    assert_eq!(scalar_i64(s, "SELECT count(*) FROM regard.person").await, 4);

    // A download that failed before hashing: retries keep one row per URL.
    let unhashed = FailedMedia {
        source: "https://example.org/gone.jpg".into(),
        content_sha256: None,
        kind: None,
    };
    s.record_failure(
        &unhashed,
        &prov,
        &MediaContext::default(),
        "fetch_http_404",
        "404",
    )
    .await
    .unwrap();
    s.record_failure(
        &unhashed,
        &prov,
        &MediaContext::default(),
        "fetch_http_404",
        "404",
    )
    .await
    .unwrap();
    assert_eq!(
        scalar_i64(s, "SELECT count(*) FROM regard.quality_failed_analyses").await,
        1
    );

    let bad = FailedMedia {
        source: "x".into(),
        content_sha256: Some("not-a-sha".into()),
        kind: None,
    };
    let err = s
        .record_failure(&bad, &prov, &MediaContext::default(), "e", "m")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid { .. }) && !err.is_retryable(),
        "{err}"
    );
}

#[tokio::test]
async fn coder_labels_change_the_origin_figures_and_a_bad_file_imports_nothing() {
    let db = TestDb::migrated().await;
    let s = &db.store;
    seed(s).await;

    let todo = s
        .persons_to_code(
            &FilmFilter {
                title_contains: Some("alph".into()),
                ..FilmFilter::default()
            },
            "origin",
        )
        .await
        .unwrap();
    assert_eq!(todo.len(), 7, "4 poster faces + 3 trailer persons of Alpha");
    assert!(
        todo.iter()
            .all(|p| p.model_label == "unknown" && p.film_title.as_deref() == Some("Alpha"))
    );
    let id = |kind: &str, number: i32| {
        todo.iter()
            .find(|p| p.media_kind == kind && p.number == number)
            .map(|p| p.person_id)
            .unwrap()
    };
    let trailer_woman = todo
        .iter()
        .find(|p| p.media_kind == "trailer" && p.number == 1)
        .unwrap();
    assert_eq!(trailer_woman.key_frame_s, Some(0.0));

    // Unknown person, label outside the scheme, duplicate: all reported, nothing imported.
    let bad = format!(
        "person_id,attribute,label\n{},origin,placeholder_a\n999999,origin,placeholder_a\n{},origin,invented\n{},origin,placeholder_b\n",
        id("trailer", 1),
        id("trailer", 2),
        id("trailer", 1),
    );
    let err = s
        .import_labels(bad.as_bytes(), "coder-1")
        .await
        .unwrap_err();
    let StoreError::LabelsRejected(lines) = &err else {
        panic!("{err}")
    };
    assert_eq!(
        lines.iter().map(|l| l.line).collect::<Vec<_>>(),
        [3, 4, 5],
        "{err}"
    );
    assert_eq!(
        scalar_i64(s, "SELECT count(*) FROM regard.coder_label").await,
        0
    );

    // The export format comes back filled in; extra columns are ignored, empty labels skipped.
    let mut csv = csv::Writer::from_writer(Vec::new());
    for mut p in todo.clone() {
        p.label = match (p.media_kind.as_str(), p.number) {
            ("trailer", 1) | ("poster", 1) => "placeholder_a".into(),
            ("trailer", 2) => "placeholder_b".into(),
            _ => String::new(),
        };
        csv.serialize(&p).unwrap();
    }
    let summary = s
        .import_labels(csv.into_inner().unwrap().as_slice(), "coder-1")
        .await
        .unwrap();
    assert_eq!(
        (summary.labels, summary.skipped_empty, summary.recomputed),
        (3, 4, 2)
    );

    let rows = question(s, "perceived_origin_coded_by_film.sql", &[]).await;
    let alpha: BTreeMap<String, (i64, i64, i64, i64)> = rows
        .iter()
        .filter(|r| r.get::<String, _>("film_title") == "Alpha")
        .map(|r| {
            (
                r.get("perceived_origin"),
                (
                    r.get("poster_faces"),
                    r.get("trailer_persons"),
                    r.get("trailer_persons_unknown"),
                    r.get("coded_persons"),
                ),
            )
        })
        .collect();
    assert_eq!(alpha["placeholder_a"], (1, 1, 1, 3));
    assert_eq!(alpha["placeholder_b"], (0, 1, 1, 3));
    assert_eq!(alpha["unknown"], (3, 1, 1, 3));
    let share: f64 = sqlx::query_scalar(
        "SELECT trailer_screen_time_share FROM regard.film_representation
         WHERE film_title = 'Alpha' AND attribute = 'origin' AND category = 'placeholder_a'",
    )
    .fetch_one(s.pool())
    .await
    .unwrap();
    assert!(close(share, 10.0 / 30.0));
    let coded = scalar_i64(
        s,
        "SELECT count(*) FROM regard.person_labels WHERE origin_source = 'coder'",
    )
    .await;
    assert_eq!(coded, 3);
    let left = s
        .persons_to_code(&FilmFilter::default(), "origin")
        .await
        .unwrap();
    assert_eq!(left.len(), 12 - 3);
}

#[tokio::test]
async fn retention_deletes_persons_but_keeps_the_representation_figures() {
    let db = TestDb::migrated().await;
    let s = &db.store;
    seed(s).await;
    let figures = "SELECT film_title, attribute, category, poster_faces, trailer_persons_share::text, trailer_screen_time_share::text
                   FROM regard.film_representation ORDER BY 1, 2, 3";
    let before: Vec<FigureRow> = sqlx::query_as(figures).fetch_all(s.pool()).await.unwrap();

    // Age the Gamma analyses by 400 days; a 365-day retention removes only their persons.
    sqlx::query(
        "UPDATE regard.analysis SET recorded_at = now() - interval '400 days'
         WHERE media_id IN (SELECT media_id FROM regard.film_media JOIN regard.film USING (film_id) WHERE title = 'Gamma')",
    )
    .execute(s.pool())
    .await
    .unwrap();
    let purged = s
        .purge_persons_older_than(Duration::from_secs(365 * 86_400))
        .await
        .unwrap();
    assert_eq!((purged.persons_deleted, purged.analyses_stripped), (3, 2));
    assert_eq!(
        scalar_i64(s, "SELECT count(*) FROM regard.person").await,
        12 - 3
    );
    let stripped = scalar_i64(
        s,
        "SELECT count(*) FROM regard.analysis WHERE persons_purged_at IS NOT NULL
         AND NOT (result ? 'faces') AND NOT (result ? 'persons') AND NOT (result ? 'timeline')",
    )
    .await;
    assert_eq!(stripped, 2);

    let all = s.purge_persons_older_than(Duration::ZERO).await.unwrap();
    assert_eq!(all.persons_deleted, 9);
    assert_eq!(scalar_i64(s, "SELECT count(*) FROM regard.person").await, 0);
    let after: Vec<FigureRow> = sqlx::query_as(figures).fetch_all(s.pool()).await.unwrap();
    assert!(!before.is_empty());
    assert_eq!(before, after);
}

#[tokio::test]
async fn no_table_can_hold_an_image_or_an_embedding() {
    let db = TestDb::migrated().await;
    let suspicious: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = 'regard'
           -- sqlx's own bookkeeping: the checksum of each migration file.
           AND NOT (table_name = '_sqlx_migrations' AND column_name = 'checksum')
           AND (data_type IN ('bytea', 'ARRAY', 'USER-DEFINED')
                OR column_name ~* '(embedding|vector|descriptor|crop|chip|image|pixels|thumbnail)')",
    )
    .fetch_all(db.store.pool())
    .await
    .unwrap();
    assert!(suspicious.is_empty(), "{suspicious:?}");
    let columns = scalar_i64(
        &db.store,
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'regard'",
    )
    .await;
    assert!(
        columns > 50,
        "the query must look at regard's columns ({columns})"
    );
}

#[tokio::test]
async fn a_down_server_is_a_clear_retryable_error() {
    let err = Store::connect("postgres://postgres:secret@127.0.0.1:1/postgres")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("127.0.0.1:1/postgres") && !text.contains("secret"),
        "{text}"
    );
    assert!(err.is_retryable());
}

// ---------- coder labels equal to the model's change no figure ----------

/// A person as the tracker makes it on a variable-frame-rate trailer: its screen time counts
/// the sampling slots of the frames it is seen in, not the frames.
fn vfr_person(
    id: u32,
    p_female: f32,
    face_px: f32,
    seen: &[usize],
    tl: &[TimelineFrame],
) -> Person {
    let interval = 0.5;
    let slots: u32 = seen.iter().map(|&k| tl[k].slots).sum();
    let screen = f64::from(slots) * interval;
    Person {
        id,
        attributes: vec![
            gender(p_female, face_px),
            AttributeEstimate::not_configured("origin"),
        ],
        age: Some(regard::domain::AgeEstimate {
            years: 30.0 + id as f32,
            band: "30-44".into(),
            model: None,
            by_model: Vec::new(),
        }),
        first_seen_s: tl[seen[0]].t,
        last_seen_s: tl[*seen.last().unwrap()].t,
        screen_time_s: screen,
        prominence_s: screen * 0.02 * f64::from(id),
        frames: seen.len() as u32,
        tracks: 1,
        key_frame_s: tl[seen[0]].t,
        key_box: BoundingBox {
            x: 10.0 * id as f32,
            y: 20.0,
            width: face_px,
            height: face_px,
        },
        median_face_px: face_px,
    }
}

/// A trailer whose decoded frames stand for 1 to 4 sampling slots each (2 samples/s), with two
/// certain women, a certain man, an ambiguous person and a face too small to judge. Its
/// statistics are those of `stats` (as the pipeline writes them).
fn vfr_trailer(prov: Provenance) -> Analysis {
    let slots = [1u32, 3, 1, 2, 1, 4, 1, 1, 2, 1, 3, 1];
    let mut t = 0.0;
    let mut timeline: Vec<TimelineFrame> = slots
        .iter()
        .map(|&s| {
            let frame = TimelineFrame {
                t,
                slots: s,
                persons: vec![],
                gender_counts: BTreeMap::new(),
            };
            t += f64::from(s) * 0.5;
            frame
        })
        .collect();
    let seen: [(u32, f32, f32, &[usize]); 5] = [
        (1, 1.0, 90.0, &[0, 1, 2, 3]),
        (2, 0.0, 120.0, &[1, 2, 5, 6, 7]),
        (3, 0.6, 100.0, &[5, 8]),
        (4, 0.95, 20.0, &[9, 10]),
        (5, 1.0, 60.0, &[10, 11]),
    ];
    for (id, _, _, frames) in &seen {
        for &k in *frames {
            timeline[k].persons.push(*id);
        }
    }
    let persons: Vec<Person> = seen
        .iter()
        .map(|(id, p, px, frames)| vfr_person(*id, *p, *px, frames, &timeline))
        .collect();
    let settings = regard::config::AnalysisSettings::default();
    let statistics = regard::stats::trailer::trailer_statistics(
        &persons,
        &timeline,
        0.5,
        &[("gender".into(), vec!["female".into(), "male".into()])],
        &settings.age_bands(),
    );
    let duration: f64 = slots.iter().map(|&s| f64::from(s) * 0.5).sum();
    Analysis::Trailer(TrailerAnalysis {
        media: media("vfr-trailer", 1280, 720, Some(duration)),
        analysed_duration_s: duration,
        sampled_frames: timeline.len() as u32,
        sample_rate: 2.0,
        shot_cuts_s: vec![],
        decode: DecodeReport::default(),
        persons,
        statistics,
        timeline,
        provenance: prov,
    })
}

/// A poster of the same film, statistics from `stats`: certain woman and man, an ambiguous
/// face, a face too small to judge.
fn certain_poster(prov: Provenance) -> Analysis {
    let faces = vec![
        face(400.0, 100.0, 200.0, 1.0),
        face(100.0, 700.0, 120.0, 0.0),
        face(600.0, 650.0, 90.0, 0.55),
        face(900.0, 1400.0, 20.0, 1.0),
    ];
    let settings = regard::config::AnalysisSettings::default();
    let statistics = regard::stats::poster::poster_statistics(
        &faces,
        1000,
        1500,
        &[("gender".into(), vec!["female".into(), "male".into()])],
        &settings.age_bands(),
    );
    Analysis::Poster(PosterAnalysis {
        media: media("certain-poster", 1000, 1500, None),
        faces,
        statistics,
        provenance: prov,
    })
}

/// Every row of `relation`, as JSON text without the columns that say who labelled.
async fn snapshot(s: &Store, relation: &str) -> Vec<String> {
    let sql = format!(
        "SELECT (to_jsonb(v) - 'label_source' - 'coded_persons')::text AS row FROM {relation} v
         ORDER BY 1"
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_all(s.pool())
        .await
        .unwrap_or_else(|e| panic!("{relation}: {e}"))
}

const FIGURE_RELATIONS: [&str; 6] = [
    "regard.representation",
    "regard.latest_representation",
    "regard.film_representation",
    "regard.festival_section_representation",
    "regard.festival_edition_representation",
    "regard.year_representation",
];

/// Rows of `before` and `after` that differ, paired by position, for a readable failure.
fn differences(before: &[String], after: &[String]) -> String {
    let mut out = String::new();
    if before.len() != after.len() {
        out += &format!("{} rows before, {} after\n", before.len(), after.len());
    }
    for b in before.iter().filter(|b| !after.contains(b)) {
        out += &format!("- {b}\n");
    }
    for a in after.iter().filter(|a| !before.contains(a)) {
        out += &format!("+ {a}\n");
    }
    out
}

#[tokio::test]
async fn coder_labels_equal_to_the_model_change_no_figure_of_a_vfr_trailer() {
    let db = TestDb::migrated().await;
    let s = &db.store;
    let t = Timings::default();
    let p = provenance("yunet-2023mar");
    let ctx = ctx("Omega", 2026, None, Some((CANNES, 2026, "Compétition")));
    let trailer = vfr_trailer(p.clone());
    let Analysis::Trailer(tr) = &trailer else {
        unreachable!()
    };
    assert!(
        tr.timeline.iter().any(|f| f.slots > 1),
        "the fixture must be variable frame rate"
    );
    let poster = certain_poster(p);
    s.record_analysis(&trailer, &ctx, &t).await.unwrap();
    s.record_analysis(&poster, &ctx, &t).await.unwrap();
    // The stored result is what coder labels are recomputed from: it must read back as it was.
    let stored: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT result FROM regard.analysis ORDER BY analysis_id")
            .fetch_all(s.pool())
            .await
            .unwrap();
    let stored: Vec<Analysis> = stored
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    assert_eq!(stored, [trailer.clone(), poster.clone()]);

    // The rows hold the figures the analysis itself reports (one engine for both).
    let mut rows: Vec<(String, String, f64, f64, f64, Option<f64>)> = sqlx::query_as(
        "SELECT attribute, category, screen_time_s, frame_share, soft_persons, persons_share_ci_low
         FROM regard.representation WHERE kind = 'trailer'",
    )
    .fetch_all(s.pool())
    .await
    .unwrap();
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let mut reported: Vec<(String, String, f64, f64, f64, Option<f64>)> = tr
        .statistics
        .iter()
        .flat_map(|a| {
            a.categories.iter().map(|c| {
                let low = c.share_interval.map(|i| i.low);
                let f = (c.screen_time_s, c.frame_share, c.soft_persons, low);
                (a.attribute.clone(), c.category.clone(), f.0, f.1, f.2, f.3)
            })
        })
        .collect();
    reported.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(rows, reported);

    let mut before = Vec::new();
    for relation in FIGURE_RELATIONS {
        before.push(snapshot(s, relation).await);
    }
    assert!(before.iter().all(|rows| !rows.is_empty()));

    // Each person gets, from a coder, exactly the label the model gave (`unknown` included).
    let mut csv = csv::Writer::from_writer(Vec::new());
    let mut decided = 0;
    for attribute in ["gender", "origin"] {
        for mut person in s
            .persons_to_code(&FilmFilter::default(), attribute)
            .await
            .unwrap()
        {
            person.label = person.model_label.clone();
            decided += usize::from(person.label != "unknown");
            csv.serialize(&person).unwrap();
        }
    }
    assert_eq!(
        decided,
        3 + 2,
        "trailer: 2 women, 1 man; poster: 1 woman, 1 man"
    );
    let summary = s
        .import_labels(csv.into_inner().unwrap().as_slice(), "coder-1")
        .await
        .unwrap();
    assert_eq!((summary.labels, summary.recomputed), (2 * 9, 4));

    for (relation, before) in FIGURE_RELATIONS.iter().zip(&before) {
        let after = snapshot(s, relation).await;
        assert!(
            before == &after,
            "{relation} changed:\n{}",
            differences(before, &after)
        );
    }
    // What did change: who labelled. Gender is coded (a coder decided), origin is not (every
    // coder label is `unknown`, which never erases the model).
    let sources: Vec<(String, String, String, i32)> = sqlx::query_as(
        "SELECT DISTINCT kind, attribute, label_source, coded_persons FROM regard.representation
         WHERE attribute IN ('gender', 'origin') ORDER BY 1, 2",
    )
    .fetch_all(s.pool())
    .await
    .unwrap();
    let expected = [
        ("poster", "gender", "coder", 2),
        ("poster", "origin", "model", 0),
        ("trailer", "gender", "coder", 3),
        ("trailer", "origin", "model", 0),
    ]
    .map(|(k, a, l, n)| (k.to_string(), a.to_string(), l.to_string(), n));
    assert_eq!(sources, expected);
}

// ---------- film identity ----------

fn film_ctx(title: &str, year: Option<i32>, imdb: Option<&str>, tmdb: Option<i64>) -> MediaContext {
    MediaContext {
        film: Some(Film {
            title: title.into(),
            year,
            imdb_id: imdb.map(String::from),
            tmdb_id: tmdb,
            ..Film::default()
        }),
        festival: None,
        job_id: None,
    }
}

/// (film_id, title, imdb, tmdb, aliases as JSON text) of a film.
type FilmLine = (i64, String, Option<String>, Option<i64>, String);
type FilmRow = (i64, String, Option<String>, Option<i64>, serde_json::Value);

/// Every film, and the poster count of `year_representation` for gender/female.
async fn films(store: &Store) -> (Vec<FilmLine>, i64) {
    let rows: Vec<FilmRow> = sqlx::query_as(
        "SELECT film_id, title, imdb_id, tmdb_id, aliases FROM regard.film ORDER BY film_id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let posters: Option<i64> = sqlx::query_scalar(
        "SELECT sum(posters)::bigint FROM regard.year_representation
         WHERE attribute = 'gender' AND category = 'female'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    (
        rows.into_iter()
            .map(|(id, t, i, m, a)| (id, t, i, m, a.to_string()))
            .collect(),
        posters.unwrap_or(0),
    )
}

#[tokio::test]
async fn an_id_that_arrives_later_attaches_to_the_film_already_known() {
    let db = TestDb::migrated().await;
    let s = &db.store;
    let t = Timings::default();
    let p = provenance("yunet-2023mar");
    let one = vec![face(400.0, 100.0, 100.0, 0.95)];
    // TMDb only, then IMDb + TMDb (another poster of the same film).
    s.record_analysis(
        &poster("id-a", one.clone(), p.clone()),
        &film_ctx("Zeta", Some(2024), None, Some(999)),
        &t,
    )
    .await
    .unwrap();
    s.record_analysis(
        &poster("id-b", one.clone(), p.clone()),
        &film_ctx(
            "Zeta (director's cut)",
            Some(2024),
            Some("tt0999"),
            Some(999),
        ),
        &t,
    )
    .await
    .unwrap();
    let (rows, posters) = films(s).await;
    assert_eq!(rows.len(), 1, "one film: {rows:?}");
    let (_, title, imdb, tmdb, aliases) = &rows[0];
    assert_eq!((imdb.as_deref(), *tmdb), (Some("tt0999"), Some(999)));
    assert_eq!(
        title, "Zeta (director's cut)",
        "the title given with the IMDb id wins"
    );
    assert_eq!(aliases, r#"["Zeta"]"#, "the other title is kept");
    assert_eq!(posters, 2, "each poster counted once");

    // Title only, then the same title and year with an IMDb id.
    s.record_analysis(
        &poster("id-c", one.clone(), p.clone()),
        &film_ctx("  Eta ", Some(2025), None, None),
        &t,
    )
    .await
    .unwrap();
    s.record_analysis(
        &poster("id-d", one.clone(), p.clone()),
        &film_ctx("eta", Some(2025), Some("tt0777"), None),
        &t,
    )
    .await
    .unwrap();
    // A later title-only job of that film finds it too (no new row), and a job that names
    // the film by TMDb id only after it is known by IMDb joins it as well.
    s.record_analysis(
        &poster("id-e", one.clone(), p.clone()),
        &film_ctx("ETA", Some(2025), None, None),
        &t,
    )
    .await
    .unwrap();
    let (rows, posters) = films(s).await;
    assert_eq!(rows.len(), 2, "Zeta and Eta: {rows:?}");
    let eta = rows
        .iter()
        .find(|r| r.2.as_deref() == Some("tt0777"))
        .expect("Eta");
    assert_eq!(eta.1, "eta", "the title given with the IMDb id wins");
    assert_eq!(posters, 5);
    let media_of_eta: i64 =
        sqlx::query_scalar("SELECT count(*) FROM regard.film_media WHERE film_id = $1")
            .bind(eta.0)
            .fetch_one(s.pool())
            .await
            .unwrap();
    assert_eq!(media_of_eta, 3);

    // Two rows a job shows to be one film are merged, keeping every link.
    s.record_analysis(
        &poster("id-f", one.clone(), p.clone()),
        &film_ctx("Theta", Some(2023), Some("tt0555"), None),
        &t,
    )
    .await
    .unwrap();
    s.record_analysis(
        &poster("id-g", one.clone(), p.clone()),
        &film_ctx("Theta", Some(2023), None, Some(555)),
        &t,
    )
    .await
    .unwrap();
    // (Title+year match attached the TMDb-only job to the IMDb film already.)
    s.record_analysis(
        &poster("id-h", one.clone(), p.clone()),
        &film_ctx("Iota", Some(2023), None, Some(444)),
        &t,
    )
    .await
    .unwrap();
    s.record_analysis(
        &poster("id-i", one.clone(), p.clone()),
        &film_ctx("Iota", Some(2022), Some("tt0444"), None),
        &t,
    )
    .await
    .unwrap();
    let before = films(s).await.0.len();
    s.record_analysis(
        &poster("id-j", one.clone(), p.clone()),
        &film_ctx("Iota", Some(2023), Some("tt0444"), Some(444)),
        &t,
    )
    .await
    .unwrap();
    let (rows, posters) = films(s).await;
    assert_eq!(
        rows.len(),
        before - 1,
        "the IMDb row and the TMDb row became one: {rows:?}"
    );
    let iota = rows
        .iter()
        .find(|r| r.2.as_deref() == Some("tt0444"))
        .expect("Iota");
    assert_eq!(iota.3, Some(444));
    let media_of_iota: i64 =
        sqlx::query_scalar("SELECT count(*) FROM regard.film_media WHERE film_id = $1")
            .bind(iota.0)
            .fetch_one(s.pool())
            .await
            .unwrap();
    assert_eq!(media_of_iota, 3, "every link kept");
    assert_eq!(posters, 10, "ten posters, each counted once");

    // Contradicting ids are never merged, by the rules or by hand.
    let kappa = film_ctx("Kappa", Some(2020), Some("tt0111"), None);
    s.record_analysis(&poster("id-k", one.clone(), p.clone()), &kappa, &t)
        .await
        .unwrap();
    s.record_analysis(
        &poster("id-l", one.clone(), p.clone()),
        &film_ctx("Kappa", Some(2020), Some("tt0112"), None),
        &t,
    )
    .await
    .unwrap();
    let (rows, _) = films(s).await;
    let kappas: Vec<i64> = rows
        .iter()
        .filter(|r| r.1 == "Kappa")
        .map(|r| r.0)
        .collect();
    assert_eq!(
        kappas.len(),
        2,
        "a remake with its own IMDb id is another film"
    );
    let refused = s.merge_films(kappas[0], kappas[1]).await.unwrap_err();
    assert!(refused.to_string().contains("different IMDb"), "{refused}");

    // What the rules cannot decide, `films merge` does.
    s.record_analysis(
        &poster("id-m", one.clone(), p.clone()),
        &film_ctx("Lambda", Some(2021), None, None),
        &t,
    )
    .await
    .unwrap();
    s.record_analysis(
        &poster("id-n", one, p),
        &film_ctx("Lambda: la suite", Some(2021), None, Some(333)),
        &t,
    )
    .await
    .unwrap();
    let (rows, posters_before) = films(s).await;
    let lambda = rows.iter().find(|r| r.1 == "Lambda").unwrap().0;
    let suite = rows.iter().find(|r| r.1 == "Lambda: la suite").unwrap().0;
    s.merge_films(suite, lambda).await.unwrap();
    let (after, posters) = films(s).await;
    assert_eq!(after.len(), rows.len() - 1);
    let merged = after.iter().find(|r| r.0 == suite).unwrap();
    assert_eq!(merged.4, r#"["Lambda"]"#);
    assert_eq!(posters, posters_before, "a merge counts nothing twice");
}
