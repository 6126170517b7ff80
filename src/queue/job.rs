//! The job contract (version 1): what a producer puts on the queue, parsed once into typed values.
//!
//! The published JSON Schema is `schemas/job.v1.schema.json`; the parser here and that schema
//! are held to the same verdicts by tests over `schemas/examples/*.json`.

use crate::domain::{FestivalSelection, Film, MediaRole};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// The only contract version this worker reads.
pub const JOB_VERSION: u64 = 1;
/// Largest job message accepted, in bytes: a job is metadata, never media.
pub const MAX_JOB_BYTES: usize = 64 * 1024;
const MAX_ID_CHARS: usize = 128;
const MAX_SOURCE_CHARS: usize = 4096;
const MAX_TEXT_CHARS: usize = 500;
const MAX_EXTERNAL_IDS: usize = 16;
const YEARS: std::ops::RangeInclusive<i32> = 1870..=2100;

/// Why a message is not a job. Every rejection is permanent: the same bytes never parse later.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobRejection {
    #[error("job message is {0} bytes, more than the {MAX_JOB_BYTES} allowed")]
    TooLarge(usize),
    #[error("job message is not valid JSON: {0}")]
    NotJson(String),
    #[error("job message has no `version` number")]
    MissingVersion,
    #[error("job version {0} is not supported (this worker reads version {JOB_VERSION})")]
    UnsupportedVersion(serde_json::Value),
    #[error("job message does not match the version 1 contract: {0}")]
    Shape(String),
    #[error("job field `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl JobRejection {
    /// Stable code for the `x-regard-error-code` header and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            JobRejection::TooLarge(_) => "job_too_large",
            JobRejection::NotJson(_) => "job_not_json",
            JobRejection::MissingVersion | JobRejection::UnsupportedVersion(_) => {
                "job_unsupported_version"
            }
            JobRejection::Shape(_) => "job_malformed",
            JobRejection::Invalid { .. } => "job_invalid",
        }
    }

    fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        JobRejection::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// A job id: 1–128 characters from `[A-Za-z0-9._:-]`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(String);

impl JobId {
    pub fn parse(s: &str) -> Result<JobId, JobRejection> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
        if s.is_empty() || s.chars().count() > MAX_ID_CHARS {
            return Err(JobRejection::invalid(
                "job_id",
                "must be 1 to 128 characters",
            ));
        }
        if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) || !s.chars().all(ok_char) {
            return Err(JobRejection::invalid(
                "job_id",
                format!("{s:?} must start with a letter or digit and use only A-Z a-z 0-9 . _ : -"),
            ));
        }
        Ok(JobId(s.to_string()))
    }

    /// A fresh random id, for jobs enqueued without one.
    pub fn generate() -> JobId {
        JobId(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the media file is. Local paths are only syntactically checked here (absolute, no `..`);
/// the fetcher decides whether they lie under the configured roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobSource {
    Url(String),
    LocalPath(PathBuf),
}

impl JobSource {
    pub fn parse(s: &str) -> Result<JobSource, JobRejection> {
        if s.is_empty() || s.chars().count() > MAX_SOURCE_CHARS {
            return Err(JobRejection::invalid(
                "source",
                "must be 1 to 4096 characters",
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(JobRejection::invalid(
                "source",
                "contains control characters",
            ));
        }
        let lower = s.to_ascii_lowercase();
        if let Some(rest) = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"))
        {
            // Credentials never travel in a job, so any `@` in the authority is refused.
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            if authority.is_empty()
                || authority.starts_with(':')
                || authority.contains('@')
                || s.contains(char::is_whitespace)
            {
                return Err(JobRejection::invalid(
                    "source",
                    format!("{s:?} is not a usable URL (host required, no credentials, no spaces)"),
                ));
            }
            return Ok(JobSource::Url(s.to_string()));
        }
        if s.contains("://") {
            return Err(JobRejection::invalid(
                "source",
                format!("{s:?}: only http(s) URLs and absolute local paths are accepted"),
            ));
        }
        let path = Path::new(s);
        if !s.starts_with('/') {
            return Err(JobRejection::invalid(
                "source",
                format!("{s:?} is not an absolute path"),
            ));
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(JobRejection::invalid(
                "source",
                format!("{s:?} contains `..`"),
            ));
        }
        Ok(JobSource::LocalPath(path.to_path_buf()))
    }

    /// The source as the job gave it (URL or path).
    pub fn as_string(&self) -> String {
        match self {
            JobSource::Url(u) => u.clone(),
            JobSource::LocalPath(p) => p.display().to_string(),
        }
    }
}

/// Per-job settings: which a job may override and within which bounds is declared in the
/// settings table (`crate::config`), with the settings themselves.
pub use crate::config::SettingsOverrides;

/// One analysis to run, as parsed from a version 1 message.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub kind: MediaRole,
    pub source: JobSource,
    pub film: Film,
    pub festival: Option<FestivalSelection>,
    pub settings: SettingsOverrides,
}

/// The wire form, field for field. `deny_unknown_fields` everywhere: a typo is an error, not a
/// silently ignored setting.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireJob {
    version: u64,
    job_id: String,
    kind: MediaRole,
    source: String,
    film: WireFilm,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    festival: Option<WireFestival>,
    #[serde(default, skip_serializing_if = "SettingsOverrides::is_empty")]
    settings: SettingsOverrides,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireFilm {
    title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    year: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    imdb_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tmdb_id: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    external_ids: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireFestival {
    festival: String,
    edition: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    section: Option<String>,
}

fn check_text(field: &'static str, s: &str) -> Result<String, JobRejection> {
    let t = s.trim();
    if t.is_empty() || s.chars().count() > MAX_TEXT_CHARS {
        return Err(JobRejection::invalid(
            field,
            "must be 1 to 500 characters, not only spaces",
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(JobRejection::invalid(field, "contains control characters"));
    }
    Ok(t.to_string())
}

fn check_year(field: &'static str, y: i32) -> Result<i32, JobRejection> {
    if YEARS.contains(&y) {
        Ok(y)
    } else {
        Err(JobRejection::invalid(
            field,
            format!("{y} is outside 1870..=2100"),
        ))
    }
}

/// `tt` followed by 7 to 10 digits.
pub fn is_imdb_id(s: &str) -> bool {
    s.strip_prefix("tt")
        .is_some_and(|d| (7..=10).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

fn is_external_id_key(k: &str) -> bool {
    (1..=32).contains(&k.len())
        && k.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl WireFilm {
    fn into_film(self) -> Result<Film, JobRejection> {
        let year = self.year.map(|y| check_year("film.year", y)).transpose()?;
        if let Some(id) = &self.imdb_id
            && !is_imdb_id(id)
        {
            return Err(JobRejection::invalid(
                "film.imdb_id",
                format!("{id:?} is not tt + 7-10 digits"),
            ));
        }
        if let Some(id) = self.tmdb_id
            && id < 1
        {
            return Err(JobRejection::invalid(
                "film.tmdb_id",
                format!("{id} is not a positive id"),
            ));
        }
        if self.external_ids.len() > MAX_EXTERNAL_IDS {
            return Err(JobRejection::invalid(
                "film.external_ids",
                "more than 16 entries",
            ));
        }
        for (k, v) in &self.external_ids {
            if !is_external_id_key(k) {
                return Err(JobRejection::invalid(
                    "film.external_ids",
                    format!("key {k:?} must be 1-32 characters of a-z 0-9 _"),
                ));
            }
            check_text("film.external_ids", v)?;
        }
        Ok(Film {
            title: check_text("film.title", &self.title)?,
            year,
            imdb_id: self.imdb_id,
            tmdb_id: self.tmdb_id,
            external_ids: self.external_ids,
        })
    }
}

impl Job {
    /// Parses one message body. Never panics, whatever the bytes.
    pub fn parse(bytes: &[u8]) -> Result<Job, JobRejection> {
        if bytes.len() > MAX_JOB_BYTES {
            return Err(JobRejection::TooLarge(bytes.len()));
        }
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| JobRejection::NotJson(e.to_string()))?;
        // The version is read first so that a v2 message says "unsupported version", not
        // "unknown field".
        match value.get("version") {
            None => return Err(JobRejection::MissingVersion),
            Some(v) if v.as_u64() == Some(JOB_VERSION) => {}
            Some(v) => return Err(JobRejection::UnsupportedVersion(v.clone())),
        }
        let wire: WireJob =
            serde_json::from_value(value).map_err(|e| JobRejection::Shape(e.to_string()))?;
        Job::from_wire(wire)
    }

    fn from_wire(wire: WireJob) -> Result<Job, JobRejection> {
        wire.settings
            .check()
            .map_err(|reason| JobRejection::invalid("settings", reason))?;
        let festival = match wire.festival {
            None => None,
            Some(f) => Some(FestivalSelection {
                festival: check_text("festival.festival", &f.festival)?,
                edition: check_year("festival.edition", f.edition)?,
                section: f
                    .section
                    .map(|s| check_text("festival.section", &s))
                    .transpose()?,
            }),
        };
        Ok(Job {
            id: JobId::parse(&wire.job_id)?,
            kind: wire.kind,
            source: JobSource::parse(&wire.source)?,
            film: wire.film.into_film()?,
            festival,
            settings: wire.settings,
        })
    }

    /// The version 1 message for this job (what [`Job::parse`] reads back to an equal job).
    pub fn to_json(&self) -> Vec<u8> {
        let wire = WireJob {
            version: JOB_VERSION,
            job_id: self.id.0.clone(),
            kind: self.kind,
            source: self.source.as_string(),
            film: WireFilm {
                title: self.film.title.clone(),
                year: self.film.year,
                imdb_id: self.film.imdb_id.clone(),
                tmdb_id: self.film.tmdb_id,
                external_ids: self.film.external_ids.clone(),
            },
            festival: self.festival.as_ref().map(|f| WireFestival {
                festival: f.festival.clone(),
                edition: f.edition,
                section: f.section.clone(),
            }),
            settings: self.settings.clone(),
        };
        // Serialising plain structs of strings and numbers cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// `poster` or `trailer`, for routing keys and logs.
    pub fn kind_name(&self) -> &'static str {
        self.kind.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AnalysisSettings;
    use serde_json::json;

    fn base() -> serde_json::Value {
        json!({
            "version": 1,
            "job_id": "cannes-2026-0001",
            "kind": "poster",
            "source": "https://example.org/posters/1.jpg",
            "film": {"title": "La Chimera", "year": 2023, "imdb_id": "tt14545138", "tmdb_id": 837335}
        })
    }

    fn parse(v: &serde_json::Value) -> Result<Job, JobRejection> {
        Job::parse(&serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn a_minimal_job_parses_into_typed_values() {
        let job = parse(&base()).unwrap();
        assert_eq!(job.id.as_str(), "cannes-2026-0001");
        assert_eq!(job.kind, MediaRole::Poster);
        assert_eq!(
            job.source,
            JobSource::Url("https://example.org/posters/1.jpg".into())
        );
        assert_eq!(job.film.year, Some(2023));
        assert!(job.festival.is_none() && job.settings.is_empty());
    }

    #[test]
    fn to_json_round_trips() {
        let mut v = base();
        v["festival"] =
            json!({"festival": "Festival de Cannes", "edition": 2026, "section": "Compétition"});
        v["settings"] = json!({"sample_rate": 1.5});
        v["film"]["external_ids"] = json!({"allocine": "12345"});
        let job = parse(&v).unwrap();
        assert_eq!(Job::parse(&job.to_json()).unwrap(), job);
    }

    #[test]
    fn unknown_fields_are_rejected_at_every_level() {
        for path in [
            &["extra"][..],
            &["film", "director"],
            &["settings", "nms_iou"],
        ] {
            let mut v = base();
            v["settings"] = json!({});
            let mut target = &mut v;
            for p in &path[..path.len() - 1] {
                target = &mut target[*p];
            }
            target[path[path.len() - 1]] = json!(1);
            let err = parse(&v).unwrap_err();
            assert_eq!(err.code(), "job_malformed", "{path:?}: {err}");
            assert!(err.to_string().contains(path[path.len() - 1]), "{err}");
        }
    }

    #[test]
    fn versions_other_than_1_are_refused_by_name() {
        let mut v = base();
        v["version"] = json!(2);
        assert_eq!(
            parse(&v).unwrap_err(),
            JobRejection::UnsupportedVersion(json!(2))
        );
        v.as_object_mut().unwrap().remove("version");
        assert_eq!(parse(&v).unwrap_err(), JobRejection::MissingVersion);
    }

    #[test]
    fn settings_outside_bounds_are_refused() {
        for (name, bad, good) in [
            ("sample_rate", 0.4, 0.5),
            ("sample_rate", 5.01, 5.0),
            ("min_reliable_face_px", 15.0, 16.0),
            ("min_reliable_face_px", 201.0, 200.0),
        ] {
            let mut v = base();
            v["settings"] = json!({ name: bad });
            let err = parse(&v).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
            v["settings"] = json!({ name: good });
            assert!(parse(&v).is_ok(), "{name}={good}");
        }
    }

    #[test]
    fn overrides_apply_to_the_worker_settings() {
        let o = SettingsOverrides {
            sample_rate: Some(1.0),
            min_reliable_face_px: Some(64.0),
            ..Default::default()
        };
        let s = o.apply(AnalysisSettings::default());
        assert_eq!(s.sample_rate, 1.0);
        assert_eq!(s.min_reliable_face_px, 64.0);
        assert_eq!(
            s.min_attribute_confidence,
            AnalysisSettings::default().min_attribute_confidence
        );
    }

    #[test]
    fn sources_are_urls_or_absolute_paths() {
        assert!(matches!(
            JobSource::parse("/srv/media/a.mp4"),
            Ok(JobSource::LocalPath(_))
        ));
        assert!(matches!(
            JobSource::parse("HTTPS://Example.org/a.jpg"),
            Ok(JobSource::Url(_))
        ));
        for bad in [
            "media/a.jpg",
            "/srv/../etc/passwd",
            "file:///etc/passwd",
            "ftp://x/y",
            "http://",
            "https:///a",
            "http://a b/c",
            "http://user:pw@host/a",
            "",
        ] {
            let err = JobSource::parse(bad).unwrap_err();
            assert_eq!(err.code(), "job_invalid", "{bad:?}");
        }
    }

    #[test]
    fn ids_and_metadata_are_checked() {
        for (field, value) in [
            ("job_id", json!("")),
            ("job_id", json!("-leading-dash")),
            ("job_id", json!("has space")),
            ("job_id", json!("x".repeat(129))),
        ] {
            let mut v = base();
            v[field] = value;
            assert_eq!(parse(&v).unwrap_err().code(), "job_invalid");
        }
        for (field, value) in [
            ("imdb_id", json!("1234567")),
            ("imdb_id", json!("tt12")),
            ("tmdb_id", json!(0)),
            ("year", json!(1700)),
            ("title", json!("  ")),
        ] {
            let mut v = base();
            v["film"][field] = value;
            let err = parse(&v).unwrap_err();
            assert!(err.to_string().contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        for bytes in [
            &b""[..],
            b"null",
            b"[]",
            b"{\"version\":1}",
            b"\xff\xfe",
            b"{\"version\":\"1\"}",
        ] {
            assert!(Job::parse(bytes).is_err());
        }
        let big = vec![b' '; MAX_JOB_BYTES + 1];
        assert_eq!(Job::parse(&big).unwrap_err().code(), "job_too_large");
    }
}

/// The parser and the published schema agree on every example in `schemas/examples/`:
/// `valid-*.json` must parse, `invalid-*.json` must be refused (by both; the schema half is
/// checked in `tests/queue.rs` with Python's `jsonschema`).
#[cfg(test)]
mod schema_examples {
    use super::Job;
    use std::path::PathBuf;

    pub(crate) fn examples() -> Vec<(String, Vec<u8>)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/examples");
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn the_parser_accepts_exactly_the_valid_examples() {
        let examples = examples();
        assert!(
            examples
                .iter()
                .filter(|(n, _)| n.starts_with("valid-"))
                .count()
                >= 5
        );
        assert!(
            examples
                .iter()
                .filter(|(n, _)| n.starts_with("invalid-"))
                .count()
                >= 15
        );
        for (name, bytes) in &examples {
            let parsed = Job::parse(bytes);
            if name.starts_with("valid-") {
                let job = parsed.unwrap_or_else(|e| panic!("{name} refused: {e}"));
                assert_eq!(
                    Job::parse(&job.to_json()).as_ref(),
                    Ok(&job),
                    "{name} round trip"
                );
            } else {
                assert!(
                    name.starts_with("invalid-"),
                    "{name}: examples are valid-* or invalid-*"
                );
                assert!(parsed.is_err(), "{name} was accepted");
            }
        }
    }
}
