//! `regard enqueue --reanalyze` against the real PostgreSQL and RabbitMQ: after a model-set
//! change it enqueues exactly the media whose latest success is of the old set.

mod common;

use lapin::options::{BasicAckOptions, BasicGetOptions};
use regard::domain::{
    Analysis, FestivalSelection, Film, MediaContext, MediaInfo, MediaRole, ModelRef,
    PosterAnalysis, Provenance,
};
use regard::queue::{Job, JobSource, Topology};
use regard::store::{ReanalysisFilter, Store, Timings, provenance_keys, sha256_hex};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::process::Command;
use std::str::FromStr;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh database, dropped (with its connections) when the test ends, even on panic.
struct TestDb {
    name: String,
    admin: PgConnectOptions,
    url: String,
    store: Store,
}

impl TestDb {
    async fn migrated() -> TestDb {
        let url = std::env::var("REGARD_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.into());
        let admin = PgConnectOptions::from_str(&url).expect("a PostgreSQL URL");
        let mut conn = admin
            .connect()
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL must be running at {url}: {e}"));
        let name = format!("regard_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.expect("close admin connection");
        let store = Store::connect_with(admin.clone().database(&name))
            .await
            .expect("connect to test database");
        store.migrate().await.expect("migrate");
        let db_url = match url.rfind('/') {
            Some(i) if !url[..i].ends_with('/') => format!("{}/{name}", &url[..i]),
            _ => format!("{}/{name}", url.trim_end_matches('/')),
        };
        TestDb {
            name,
            admin,
            url: db_url,
            store,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        common::drop_database(self.admin.clone(), self.name.clone());
    }
}

/// A model set named by its detector's bytes.
fn provenance(detector: &str) -> Provenance {
    Provenance {
        pipeline_version: "0.1.0".into(),
        algorithm_version: regard::ALGORITHM_VERSION,
        runtime_sha256: sha256_hex(b"onnxruntime"),
        models: vec![ModelRef {
            name: "yunet".into(),
            role: "detector".into(),
            file: "yunet.onnx".into(),
            sha256: sha256_hex(detector.as_bytes()),
        }],
        settings: regard::config::AnalysisSettings::default().as_provenance(),
    }
}

fn source(seed: &str) -> String {
    format!("https://example.org/{seed}.jpg")
}

/// A poster without faces: only its identity and provenance matter here.
fn poster(seed: &str, prov: Provenance) -> Analysis {
    Analysis::Poster(PosterAnalysis {
        media: MediaInfo {
            source: source(seed),
            content_sha256: sha256_hex(seed.as_bytes()),
            bytes: 1000,
            format: "jpeg".into(),
            width: 1000,
            height: 1500,
            duration_s: None,
            frame_rate: None,
        },
        faces: Vec::new(),
        statistics: Vec::new(),
        provenance: prov,
    })
}

fn ctx(title: &str, year: i32, festival: &str, edition: i32) -> MediaContext {
    MediaContext {
        film: Some(Film {
            title: title.into(),
            year: Some(year),
            ..Film::default()
        }),
        festival: Some(FestivalSelection {
            festival: festival.into(),
            edition,
            section: Some("Compétition".into()),
        }),
        job_id: None,
    }
}

/// Seed, film, year, festival, edition, and the model sets it was analysed with, in order.
type Seeded<'a> = (&'a str, &'a str, i32, &'a str, i32, &'a [&'a Provenance]);

fn regard(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_regard"))
        .current_dir(common::root())
        .args(args)
        .output()
        .expect("regard runs")
}

#[tokio::test]
async fn reanalyze_enqueues_exactly_the_media_of_the_old_model_set() {
    let db = TestDb::migrated().await;
    let (a, b) = (provenance("yunet-old"), provenance("yunet-new"));
    let current = provenance_keys(&b).model_set_sha256;
    let t = Timings::default();
    let seeded: [Seeded; 5] = [
        ("alpha", "Alpha", 2026, "Festival de Cannes", 2026, &[&a]),
        ("beta", "Beta", 2026, "Festival de Cannes", 2026, &[&a, &b]),
        ("gamma", "Gamma", 2025, "Festival de Cannes", 2025, &[&a]),
        ("delta", "Delta", 2025, "Berlinale", 2026, &[&a]),
        ("eps", "Epsilon", 2026, "Festival de Cannes", 2026, &[&b]),
    ];
    for (seed, title, year, festival, edition, sets) in seeded {
        for prov in sets {
            db.store
                .record_analysis(
                    &poster(seed, (*prov).clone()),
                    &ctx(title, year, festival, edition),
                    &t,
                )
                .await
                .unwrap();
        }
    }
    let titles = |filter: ReanalysisFilter| {
        let store = db.store.clone();
        let current = current.clone();
        async move {
            store
                .media_to_reanalyse(&current, &filter)
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.film.title)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        titles(ReanalysisFilter::default()).await,
        ["Alpha", "Gamma", "Delta"]
    );
    let cannes = |edition| ReanalysisFilter {
        festival: Some("festival de cannes".into()),
        edition,
        film_year: None,
    };
    assert_eq!(titles(cannes(None)).await, ["Alpha", "Gamma"]);
    assert_eq!(titles(cannes(Some(2026))).await, ["Alpha"]);
    let of_2025 = ReanalysisFilter {
        film_year: Some(2025),
        ..ReanalysisFilter::default()
    };
    assert_eq!(titles(of_2025).await, ["Gamma", "Delta"]);
    // With the old set current, only the media whose latest success is the new one remain.
    let old = provenance_keys(&a).model_set_sha256;
    let back: Vec<String> = db
        .store
        .media_to_reanalyse(&old, &ReanalysisFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.film.title)
        .collect();
    assert_eq!(back, ["Beta", "Epsilon"]);

    // The command publishes one job per media to a fresh topology.
    let amqp = std::env::var("REGARD_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let topology = Topology {
        prefix: format!(
            "regard-test-reanalyze-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
        ..Topology::default()
    };
    regard::queue::setup(&amqp, &topology).await.unwrap();
    let conn = regard::queue::connect(&amqp, "regard tests").await.unwrap();
    let channel = conn.create_channel().await.unwrap();
    let common_args = [
        "enqueue",
        "--reanalyze",
        "--db",
        &db.url,
        "--model-set",
        &current,
        "--amqp-url",
        &amqp,
        "--queue-prefix",
        &topology.prefix,
    ];
    let dry = regard(&[&common_args[..], &["--dry-run"]].concat());
    let dry_out = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.status.success(), "{dry:?}");
    assert!(dry_out.contains("3 media to re-analyse"), "{dry_out}");
    let cannes_run = regard(
        &[
            &common_args[..],
            &["--festival", "Festival de Cannes", "--edition", "2025"],
        ]
        .concat(),
    );
    assert!(cannes_run.status.success(), "{cannes_run:?}");
    let cannes_out = String::from_utf8_lossy(&cannes_run.stdout);
    assert!(cannes_out.contains("1 media to re-analyse"), "{cannes_out}");
    assert!(cannes_out.contains("1 job(s) enqueued"), "{cannes_out}");

    let mut jobs = Vec::new();
    while let Some(m) = channel
        .basic_get(topology.jobs_queue().into(), BasicGetOptions::default())
        .await
        .unwrap()
    {
        m.delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .unwrap();
        jobs.push(Job::parse(&m.delivery.data).expect("a valid job"));
    }
    topology.delete(&channel).await.unwrap();
    conn.close(200, "test done".into()).await.unwrap();
    assert_eq!(jobs.len(), 1, "the dry run published nothing");
    let job = &jobs[0];
    assert_eq!(job.kind, MediaRole::Poster);
    assert_eq!(job.source, JobSource::parse(&source("gamma")).unwrap());
    assert_eq!(job.film.title, "Gamma");
    assert_eq!(job.film.year, Some(2025));
    let festival = job.festival.as_ref().expect("the film's selection");
    assert_eq!(
        (festival.festival.as_str(), festival.edition),
        ("Festival de Cannes", 2025)
    );
    assert_eq!(
        job.id.as_str(),
        format!(
            "reanalyze-{}-{}",
            &sha256_hex(b"gamma")[..12],
            &current[..8]
        )
    );
}

/// The model set computed from the manifest alone is the one the loaded pipeline records.
#[test]
fn the_current_model_set_is_the_loaded_pipelines() {
    let models = regard::runner::ModelOptions {
        manifest: common::root().join("models/manifest.toml"),
        ort_threads: 1,
        enable_sensitive: Vec::new(),
    };
    let computed = regard::cli::worker::current_model_set(&models).unwrap();
    let loaded = provenance_keys(&common::pipeline().provenance()).model_set_sha256;
    assert_eq!(computed, loaded);
}
