//! The database commands against the real PostgreSQL (REGARD_TEST_DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/postgres): `regard analyze --db` on the fixtures fills the
//! views, coders' labels go out and back in with `regard persons export|import`, `regard
//! retention` keeps the figures; and the views' pooled intervals behave (narrower with more
//! films, wider with ambiguous faces, close to the Rust bootstrap). Each test gets its own
//! database, dropped at the end. No skipping: a down server fails the test.

mod common;

use regard::domain::{
    Analysis, AttributeEstimate, BoundingBox, Face, FestivalSelection, Film, MediaContext,
    MediaInfo, ModelRef, PosterAnalysis, Provenance,
};
use regard::stats::interval::share_interval;
use regard::stats::poster::poster_statistics;
use regard::store::{Store, Timings, sha256_hex};
use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::{ConnectOptions, Connection, Row};
use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::str::FromStr;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh database, dropped (with its connections) when the test ends, even on panic.
struct TestDb {
    name: String,
    url: String,
    admin: PgConnectOptions,
    store: Store,
}

impl TestDb {
    async fn new() -> TestDb {
        let admin_url =
            std::env::var("REGARD_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.into());
        let admin = PgConnectOptions::from_str(&admin_url).unwrap_or_else(|e| {
            panic!("REGARD_TEST_DATABASE_URL {admin_url:?} is not a PostgreSQL URL: {e}")
        });
        let mut conn = admin.connect().await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin_url} ({e}). Start it (see DEVELOPERS.md) \
                 or set REGARD_TEST_DATABASE_URL; these tests never skip."
            )
        });
        let name = format!("regard_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.expect("close admin connection");
        let options = admin.clone().database(&name);
        let url = format!(
            "postgres://{}@{}:{}/{name}",
            options.get_username(),
            options.get_host(),
            options.get_port()
        );
        let store = Store::connect_with(options)
            .await
            .expect("connect to test database");
        TestDb {
            name,
            url,
            admin,
            store,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        common::drop_database(self.admin.clone(), self.name.clone());
    }
}

/// Run the binary from the crate root (so that models/ and fixtures/ resolve); the database URL
/// only comes from the flags.
fn regard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_regard"))
        .current_dir(common::root())
        .env_remove("REGARD_DATABASE_URL")
        .args(args)
        .output()
        .expect("regard runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn rows(store: &Store, sql: &str) -> Vec<PgRow> {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn count(store: &Store, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Faces of a fixture poster per perceived gender in the truth file, and how many are at
/// least 32 px high (those are always found).
fn truth_faces(poster: &str) -> (i64, i64, i64) {
    let truth = common::truth();
    let image = &truth.images[poster];
    let female = image.faces.iter().filter(|f| f.gender == "female").count() as i64;
    let male = image.faces.iter().filter(|f| f.gender == "male").count() as i64;
    let big = image.faces.iter().filter(|f| f.bbox[3] >= 32.0).count() as i64;
    (female, male, big)
}

const WOMEN_POSTER: &str = "posters/women_1000x1500.jpg";
const DUO_POSTER: &str = "posters/duo_1000x1500.jpg";

#[tokio::test]
async fn analyze_db_fills_the_views_then_coding_and_retention_do_their_part() {
    let db = TestDb::new().await;
    let s = &db.store;
    let women = format!("fixtures/{WOMEN_POSTER}");
    let duo = format!("fixtures/{DUO_POSTER}");
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.jpg");
    std::fs::write(&broken, b"this is not a picture\n").unwrap();

    // Film Alpha: a poster and a trailer, selected in competition.
    let out = regard(&[
        "analyze",
        "--db",
        &db.url,
        "--film-title",
        "Alpha",
        "--film-year",
        "2026",
        "--imdb-id",
        "tt0000001",
        "--festival",
        "Festival de Cannes",
        "--edition",
        "2026",
        "--section",
        "Compétition",
        &women,
        "fixtures/trailers/t1_640x360.mp4",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Film Beta: a poster and a file that is not media (exit 1, the failure is recorded).
    let out = regard(&[
        "analyze",
        "--db",
        &db.url,
        "--film-title",
        "Beta",
        "--festival",
        "Festival de Cannes",
        "--edition",
        "2026",
        "--section",
        "Compétition",
        &duo,
        broken.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("2 input(s): 1 analysed, 1 failed"));

    // Per film: the poster's face counts are the truth's (every face of these posters is big
    // enough to be decided), each share has its interval, and the trailer is there too.
    for (title, poster) in [("Alpha", WOMEN_POSTER), ("Beta", DUO_POSTER)] {
        let (female, male, big) = truth_faces(poster);
        let film = rows(
            s,
            &format!(
                "SELECT category, posters, poster_faces, poster_faces_unknown,
                        poster_faces_share_soft, poster_faces_share_ci_low, poster_faces_share_ci_high,
                        poster_face_area_share_soft, poster_face_area_share_ci_low,
                        poster_face_area_share_ci_high, trailers, trailer_persons
                 FROM regard.film_representation
                 WHERE film_title = '{title}' AND attribute = 'gender' ORDER BY category"
            ),
        )
        .await;
        let cats: Vec<String> = film.iter().map(|r| r.get("category")).collect();
        assert_eq!(cats, ["female", "male", "unknown"], "{title}");
        let faces: Vec<i64> = film.iter().map(|r| r.get("poster_faces")).collect();
        let unknown: i64 = film[0].get("poster_faces_unknown");
        assert_eq!(unknown, faces[2], "{title}");
        // Faces below the reliable size may be unknown, never mislabelled.
        assert!(faces[0] <= female && faces[1] <= male, "{title}: {faces:?}");
        let found: i64 = faces.iter().sum();
        assert!(big <= found && found <= female + male, "{title}: {faces:?}");
        if title == "Alpha" {
            assert_eq!(
                (faces[0], faces[1]),
                (female, male),
                "all four faces decided"
            );
            assert_eq!(film[0].get::<i64, _>("trailers"), 1);
            assert_eq!(
                film[0].get::<i64, _>("trailer_persons"),
                1,
                "t1 has one woman"
            );
        }
        for r in &film[..2] {
            for (share, low, high) in [
                (
                    "poster_faces_share_soft",
                    "poster_faces_share_ci_low",
                    "poster_faces_share_ci_high",
                ),
                (
                    "poster_face_area_share_soft",
                    "poster_face_area_share_ci_low",
                    "poster_face_area_share_ci_high",
                ),
            ] {
                let (v, lo, hi): (f64, f64, f64) = (r.get(share), r.get(low), r.get(high));
                assert!(
                    (0.0..=1.0).contains(&lo) && lo <= v + 1e-9 && v <= hi + 1e-9 && hi <= 1.0,
                    "{title} {share}: {v} not in [{lo}, {hi}]"
                );
            }
        }
    }

    // Pooled over the section: two films, an interval on every share, unknowns beside them.
    let section = rows(
        s,
        "SELECT films, poster_faces, poster_faces_unknown, poster_faces_share_soft,
                poster_faces_share_ci_low, poster_faces_share_ci_high,
                poster_face_area_share_ci_low, trailer_persons_share_ci_low,
                trailer_screen_time_share_ci_high
         FROM regard.festival_section_representation
         WHERE festival = 'Festival de Cannes' AND edition = 2026 AND section = 'Compétition'
           AND attribute = 'gender' AND category = 'female'",
    )
    .await;
    assert_eq!(section.len(), 1);
    let r = &section[0];
    assert_eq!(r.get::<i64, _>("films"), 2);
    let (f1, _, _) = truth_faces(WOMEN_POSTER);
    let (f2, _, _) = truth_faces(DUO_POSTER);
    assert!(r.get::<i64, _>("poster_faces") <= f1 + f2);
    let (v, lo, hi): (f64, f64, f64) = (
        r.get("poster_faces_share_soft"),
        r.get("poster_faces_share_ci_low"),
        r.get("poster_faces_share_ci_high"),
    );
    assert!(lo < v && v < hi, "{v} in [{lo}, {hi}]");
    for c in [
        "poster_face_area_share_ci_low",
        "trailer_persons_share_ci_low",
        "trailer_screen_time_share_ci_high",
    ] {
        assert!(r.get::<Option<f64>, _>(c).is_some(), "{c} is filled");
    }

    // The failure is on record with its stable code.
    let failed = rows(
        s,
        "SELECT error_code, source FROM regard.quality_failed_analyses",
    )
    .await;
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].get::<String, _>("source"),
        broken.to_str().unwrap()
    );
    assert!(!failed[0].get::<String, _>("error_code").is_empty());
    // Timings are recorded with each result.
    assert_eq!(
        count(
            s,
            "SELECT count(*) FROM regard.analysis
             WHERE status = 'succeeded' AND started_at IS NOT NULL AND stage_timings_s ? 'analyse'"
        )
        .await,
        3
    );

    // ---- Coding perceived origin: export, fill in, import. ----
    let out = regard(&[
        "persons",
        "export",
        "--db",
        &db.url,
        "--imdb-id",
        "tt0000001",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let csv_text = text(&out.stdout);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header = reader.headers().unwrap().clone();
    for column in [
        "person_id",
        "attribute",
        "label",
        "film_title",
        "media_source",
        "media_kind",
        "first_seen_s",
        "box_x",
        "box_height",
    ] {
        assert!(header.iter().any(|h| h == column), "{column} in {header:?}");
    }
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let alpha_persons = count(
        s,
        "SELECT count(*) FROM regard.person p
         JOIN regard.analysis a USING (analysis_id)
         JOIN regard.film_media fm ON fm.media_id = a.media_id
         JOIN regard.film f ON f.film_id = fm.film_id
         WHERE f.title = 'Alpha'",
    )
    .await;
    assert_eq!(records.len() as i64, alpha_persons, "{csv_text}");
    let posters: Vec<&csv::StringRecord> = records
        .iter()
        .filter(|r| &r[col("media_kind")] == "poster")
        .collect();
    assert_eq!(posters.len(), 4);
    assert!(records.iter().all(|r| &r[col("attribute")] == "origin"
        && r[col("label")].is_empty()
        && &r[col("film_title")] == "Alpha"));

    // A file with a label outside the scheme and an unknown person: nothing imported, exit 1.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        format!(
            "person_id,attribute,label\n{},origin,placeholder_a\n{},origin,not_in_scheme\n999999,origin,placeholder_b\n",
            &posters[0][col("person_id")],
            &posters[1][col("person_id")]
        ),
    )
    .unwrap();
    let out = regard(&[
        "persons",
        "import",
        "--db",
        &db.url,
        "--coder",
        "ana",
        bad.to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(":line 3:") && stderr.contains("not_in_scheme"),
        "{stderr}"
    );
    assert!(
        stderr.contains(":line 4:") && stderr.contains("999999"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing imported"), "{stderr}");
    assert_eq!(count(s, "SELECT count(*) FROM regard.coder_label").await, 0);

    // The export filled in: two poster faces placeholder_a, two placeholder_b, the rest left.
    let mut good = csv::Writer::from_path(dir.path().join("good.csv")).unwrap();
    good.write_record(&header).unwrap();
    let mut coded = 0;
    for r in &records {
        let mut fields: Vec<String> = r.iter().map(String::from).collect();
        if &r[col("media_kind")] == "poster" {
            let label = if coded < 2 {
                "placeholder_a"
            } else {
                "placeholder_b"
            };
            fields[col("label")] = label.to_string();
            coded += 1;
        }
        good.write_record(&fields).unwrap();
    }
    good.flush().unwrap();
    drop(good);
    let out = regard(&[
        "persons",
        "import",
        "--db",
        &db.url,
        "--coder",
        "ana",
        dir.path().join("good.csv").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("4 label(s) written"),
        "{}",
        text(&out.stdout)
    );

    let origin = rows(
        s,
        "SELECT category, poster_faces, poster_faces_unknown, coded_persons,
                poster_faces_share_soft, poster_faces_share_ci_low, poster_faces_share_ci_high
         FROM regard.film_representation
         WHERE film_title = 'Alpha' AND attribute = 'origin' ORDER BY category",
    )
    .await;
    let by_cat: BTreeMap<String, &PgRow> = origin.iter().map(|r| (r.get("category"), r)).collect();
    let a = by_cat["placeholder_a"];
    assert_eq!(a.get::<i64, _>("poster_faces"), 2);
    assert_eq!(a.get::<i64, _>("poster_faces_unknown"), 0);
    assert_eq!(a.get::<i64, _>("coded_persons"), 4);
    // Coded faces carry no classification doubt: the interval is the point.
    for c in [
        "poster_faces_share_soft",
        "poster_faces_share_ci_low",
        "poster_faces_share_ci_high",
    ] {
        assert!((a.get::<f64, _>(c) - 0.5).abs() < 1e-9, "{c}");
    }
    assert_eq!(by_cat["placeholder_b"].get::<i64, _>("poster_faces"), 2);
    // The coded persons are no longer offered for coding.
    let out = regard(&["persons", "export", "--db", &db.url, "--film-title", "alph"]);
    let left = csv::Reader::from_reader(out.stdout.as_slice())
        .records()
        .count() as i64;
    assert_eq!(left, alpha_persons - 4);

    // ---- Retention: nothing is old enough at 30 days; at 0 days persons go, figures stay. ----
    let figures = "SELECT string_agg(concat_ws(',', film_title, attribute, category, poster_faces,
                       poster_faces_share_soft, poster_faces_share_ci_low, trailer_persons,
                       trailer_screen_time_share_soft, trailer_screen_time_share_ci_high), ';'
                       ORDER BY film_title, attribute, category)
                   FROM regard.film_representation";
    let before: String = sqlx::query_scalar(figures)
        .fetch_one(s.pool())
        .await
        .unwrap();
    let persons = count(s, "SELECT count(*) FROM regard.person").await;
    let out = regard(&["retention", "--db", &db.url, "--older-than", "30"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        count(s, "SELECT count(*) FROM regard.person").await,
        persons
    );
    let out = regard(&["retention", "--db", &db.url, "--older-than", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("{persons} face/person row(s) deleted")),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(count(s, "SELECT count(*) FROM regard.person").await, 0);
    assert_eq!(count(s, "SELECT count(*) FROM regard.coder_label").await, 0);
    let after: String = sqlx::query_scalar(figures)
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(before, after, "aggregates survive retention");
    let pooled: Option<f64> = sqlx::query_scalar(
        "SELECT poster_faces_share_ci_low FROM regard.festival_section_representation
         WHERE attribute = 'gender' AND category = 'female'",
    )
    .fetch_one(s.pool())
    .await
    .unwrap();
    assert!(pooled.is_some(), "pooled intervals need no per-person row");
}

#[tokio::test]
async fn context_flags_without_a_database_or_a_film_are_refused() {
    for (args, needle) in [
        (vec!["--film-title", "Alpha"], "--db"),
        (
            vec![
                "--db",
                "postgres://nobody@127.0.0.1:1/x",
                "--film-year",
                "2020",
            ],
            "--film-year needs",
        ),
        (
            vec![
                "--db",
                "postgres://nobody@127.0.0.1:1/x",
                "--festival",
                "Cannes",
                "--edition",
                "2026",
            ],
            "--festival needs the film",
        ),
    ] {
        let out = regard(
            &[
                &["analyze"],
                &args[..],
                &["fixtures/posters/duo_1000x1500.jpg"],
            ]
            .concat(),
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    // A down server is named, fast, before any model is loaded.
    let out = regard(&[
        "analyze",
        "--db",
        "postgres://postgres@127.0.0.1:1/regard",
        "fixtures/posters/duo_1000x1500.jpg",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
}

// ---------- pooled intervals in the views ----------

/// xorshift64*: deterministic test data without a dependency.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn provenance() -> Provenance {
    Provenance {
        pipeline_version: "0.1.0".into(),
        algorithm_version: regard::ALGORITHM_VERSION,
        runtime_sha256: sha256_hex(b"onnxruntime"),
        models: vec![ModelRef {
            name: "gender-v1".into(),
            role: "gender".into(),
            file: "gender-v1.onnx".into(),
            sha256: sha256_hex(b"gender-v1"),
        }],
        settings: regard::config::AnalysisSettings::default().as_provenance(),
    }
}

fn face(i: usize, p_female: f32) -> Face {
    let size = 100.0 + 20.0 * (i % 4) as f32;
    let probabilities = BTreeMap::from([
        ("female".to_string(), p_female),
        ("male".to_string(), 1.0 - p_female),
    ]);
    Face {
        bbox: BoundingBox {
            x: 10.0 + 130.0 * (i % 7) as f32,
            y: 10.0 + 150.0 * (i / 7) as f32,
            width: size,
            height: size,
        },
        landmarks: [[0.0; 2]; 5],
        detection_score: 0.9,
        size_px: size,
        attributes: vec![
            AttributeEstimate::decide("gender", probabilities, 0.75, size, 40.0),
            AttributeEstimate::not_configured("origin"),
        ],
        age: None,
    }
}

/// One poster per film: the film's faces with their P(female).
fn poster(seed: &str, p_female: &[f32]) -> Analysis {
    let faces: Vec<Face> = p_female
        .iter()
        .enumerate()
        .map(|(i, &p)| face(i, p))
        .collect();
    let labels = vec![(
        "gender".to_string(),
        vec!["female".to_string(), "male".to_string()],
    )];
    let statistics = poster_statistics(&faces, 1000, 1500, &labels, &[]);
    Analysis::Poster(PosterAnalysis {
        media: MediaInfo {
            source: format!("https://example.org/{seed}.jpg"),
            content_sha256: sha256_hex(seed.as_bytes()),
            bytes: 1000,
            format: "jpeg".into(),
            width: 1000,
            height: 1500,
            duration_s: None,
            frame_rate: None,
        },
        faces,
        statistics,
        provenance: provenance(),
    })
}

/// Films whose share of women varies (a real between-film spread): `confident` faces have
/// P = 0.97 or 0.03, ambiguous ones 0.55 or 0.45 (same expected share of women either way).
fn films(rng: &mut Rng, n: usize, confident: bool) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            let rate = 0.15 + 0.5 * rng.unit();
            let faces = 3 + (rng.unit() * 6.0) as usize;
            (0..faces)
                .map(|_| {
                    let woman = rng.unit() < rate;
                    match (woman, confident) {
                        (true, true) => 0.97,
                        (false, true) => 0.03,
                        (true, false) => 0.55,
                        (false, false) => 0.45,
                    }
                })
                .collect()
        })
        .collect()
}

async fn record_festival(store: &Store, festival: &str, films: &[Vec<f32>]) {
    for (i, p) in films.iter().enumerate() {
        let title = format!("{festival} film {i}");
        let ctx = MediaContext {
            film: Some(Film {
                title: title.clone(),
                year: Some(2026),
                ..Film::default()
            }),
            festival: Some(FestivalSelection {
                festival: festival.into(),
                edition: 2026,
                section: None,
            }),
            job_id: None,
        };
        store
            .record_analysis(&poster(&title, p), &ctx, &Timings::default())
            .await
            .expect("record synthetic poster");
    }
}

#[derive(Debug)]
struct Pooled {
    share: f64,
    low: f64,
    high: f64,
    area_low: f64,
    area_high: f64,
}

impl Pooled {
    fn width(&self) -> f64 {
        self.high - self.low
    }
}

async fn pooled(store: &Store, festival: &str) -> Pooled {
    let r = sqlx::query(
        "SELECT poster_faces_share_soft, poster_faces_share_ci_low, poster_faces_share_ci_high,
                poster_face_area_share_ci_low, poster_face_area_share_ci_high
         FROM regard.festival_edition_representation
         WHERE festival = $1 AND attribute = 'gender' AND category = 'female'",
    )
    .bind(festival)
    .fetch_one(store.pool())
    .await
    .unwrap_or_else(|e| panic!("{festival}: {e}"));
    Pooled {
        share: r.get(0),
        low: r.get(1),
        high: r.get(2),
        area_low: r.get(3),
        area_high: r.get(4),
    }
}

#[tokio::test]
async fn pooled_intervals_narrow_with_more_films_widen_with_ambiguity_and_match_the_bootstrap() {
    let db = TestDb::new().await;
    let s = &db.store;
    s.migrate().await.expect("migrate");
    let mut rng = Rng(0x5eed_2026);
    let confident_20 = films(&mut rng, 20, true);
    let confident_2: Vec<Vec<f32>> = confident_20[..2].to_vec();
    // The same films, faces seen ambiguously: the labels no longer say much.
    let ambiguous_20: Vec<Vec<f32>> = confident_20
        .iter()
        .map(|f| {
            f.iter()
                .map(|&p| if p > 0.5 { 0.55 } else { 0.45 })
                .collect()
        })
        .collect();
    let confident_200 = films(&mut rng, 200, true);
    record_festival(s, "Two", &confident_2).await;
    record_festival(s, "Twenty", &confident_20).await;
    record_festival(s, "Ambiguous", &ambiguous_20).await;
    record_festival(s, "Many", &confident_200).await;

    let two = pooled(s, "Two").await;
    let twenty = pooled(s, "Twenty").await;
    let ambiguous = pooled(s, "Ambiguous").await;
    let many = pooled(s, "Many").await;
    eprintln!(
        "2 films {two:?}\n20 films {twenty:?}\n20 ambiguous {ambiguous:?}\n200 films {many:?}"
    );
    for p in [&two, &twenty, &ambiguous, &many] {
        assert!(
            0.0 <= p.low && p.low < p.share && p.share < p.high && p.high <= 1.0,
            "{p:?}"
        );
        assert!(p.area_low < p.area_high, "{p:?}");
    }
    assert!(twenty.width() < two.width(), "{twenty:?} vs {two:?}");
    assert!(
        many.width() < twenty.width() * 0.6,
        "{many:?} vs {twenty:?}"
    );
    assert!(
        ambiguous.width() > twenty.width() * 1.2,
        "{ambiguous:?} vs {twenty:?}"
    );

    // The SQL normal approximation against the Rust bootstrap on the same films: close.
    for (name, films, sql) in [
        ("Twenty", &confident_20, &twenty),
        ("Many", &confident_200, &many),
    ] {
        let units: Vec<Vec<f64>> = films
            .iter()
            .map(|f| f.iter().map(|&p| f64::from(p)).collect())
            .collect();
        let boot = share_interval(&units, None, 0, 7).unwrap();
        eprintln!("{name}: bootstrap {boot:?}");
        assert!((boot.share - sql.share).abs() < 1e-6, "{name}");
        let tolerance = 0.25 * (boot.high - boot.low);
        assert!(
            (boot.low - sql.low).abs() < tolerance && (boot.high - sql.high).abs() < tolerance,
            "{name}: SQL [{}, {}] vs bootstrap [{}, {}]",
            sql.low,
            sql.high,
            boot.low,
            boot.high
        );
    }
}
