//! Shared set-up of the end-to-end tests: the real models, the committed fixtures and truth.
#![allow(dead_code)]

use regard::config::{AnalysisSettings, Limits};
use regard::domain::Analysis;
use regard::evaluate::Truth;
use regard::media::fetch::{FetchPolicy, Fetcher};
use regard::pipeline::{AnalysisOutput, Pipeline};
use regard::vision::{ModelManifest, Vision, VisionOptions};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One pipeline per test binary (sessions are costly to create): the default settings.
pub fn pipeline() -> &'static Pipeline {
    static PIPELINE: OnceLock<Pipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        let manifest = ModelManifest::load(&root().join("models/manifest.toml"))
            .expect("model manifest (run python3 scripts/setup_models.py)");
        manifest
            .verify()
            .expect("models in place (run python3 scripts/setup_models.py)");
        let vision = Vision::load(
            &manifest,
            &VisionOptions {
                intra_threads: 2,
                enable_sensitive: vec![],
                embeddings: true,
            },
        )
        .expect("models load");
        Pipeline::new(vision, AnalysisSettings::default(), Limits::default(), 2)
    })
}

pub fn truth() -> Truth {
    let text =
        std::fs::read_to_string(root().join("fixtures/truth.json")).expect("fixtures/truth.json");
    serde_json::from_str(&text).expect("valid truth file")
}

/// Analyse a fixture (path relative to fixtures/).
pub fn analyze_fixture(name: &str) -> Analysis {
    analyze_path(&root().join("fixtures").join(name), false).analysis
}

pub fn analyze_path(path: &Path, want_pictures: bool) -> AnalysisOutput {
    let fetcher = Fetcher::new(FetchPolicy::cli(Limits::default()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let media = runtime
        .block_on(fetcher.fetch(&path.display().to_string()))
        .expect("fixture readable");
    pipeline()
        .analyze(&media, want_pictures, &|_| {})
        .expect("fixture analysed")
}

/// Drop a test database from inside a `Drop` impl. Drop runs inside the test's runtime, so the
/// clean-up runs on a thread with its own runtime; a failure is reported, not hidden.
pub fn drop_database(admin: sqlx::postgres::PgConnectOptions, name: String) {
    use sqlx::ConnectOptions;
    let label = name.clone();
    let cleanup = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let mut conn = admin.connect().await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await?;
            sqlx::Connection::close(conn).await
        })
        .map_err(std::io::Error::other)
    });
    match cleanup.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("could not drop test database {label}: {e}"),
        Err(_) => eprintln!("cleanup of test database {label} panicked"),
    }
}

/// PNG's CRC-32 (for test images built byte by byte).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

pub fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    out.extend_from_slice(&crc_input);
    out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
}
