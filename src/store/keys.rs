//! Deterministic keys: which results are "the same result". Pure functions, no IO.
//!
//! The result key of an analysis is (content sha256, model-set hash, settings hash). The queue
//! uses the same hashes as its idempotency key, so they must not depend on map order, model
//! order or serde feature flags: they are sha256 of a canonical JSON written here.

use crate::domain::{Film, ModelRef, Provenance};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The two hashes that, with the content sha256, identify one result.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProvenanceKeys {
    /// sha256 of the canonical JSON of pipeline version, runtime sha256 and the sorted models.
    pub model_set_sha256: String,
    /// sha256 of the canonical JSON of the settings.
    pub settings_sha256: String,
}

/// Hash what produced a result. The algorithm version and the ONNX Runtime build count as part
/// of the "model set": either can change the figures, so a new one gives a new analysis. The
/// crate version does not: a release that leaves every figure as it was (the golden test
/// proves it) reuses the stored results, and one that changes a figure bumps the algorithm.
pub fn provenance_keys(provenance: &Provenance) -> ProvenanceKeys {
    let mut models: Vec<&ModelRef> = provenance.models.iter().collect();
    models.sort();
    let model_set = serde_json::json!({
        "algorithm_version": provenance.algorithm_version,
        "runtime_sha256": provenance.runtime_sha256,
        "models": models,
    });
    let settings = Value::Object(
        provenance
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    );
    ProvenanceKeys {
        model_set_sha256: sha256_hex(canonical_json(&model_set).as_bytes()),
        settings_sha256: sha256_hex(canonical_json(&settings).as_bytes()),
    }
}

/// JSON with object keys sorted at every level and no whitespace. Independent of whether
/// serde_json's `preserve_order` feature is enabled somewhere in the dependency graph.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The identity under which jobs about the same film are merged: the IMDb id, else the TMDb
/// id, else the title (case and spacing folded) with the year.
pub fn film_key(film: &Film) -> String {
    if let Some(imdb) = film
        .imdb_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        return format!("imdb:{}", imdb.to_lowercase());
    }
    if let Some(tmdb) = film.tmdb_id {
        return format!("tmdb:{tmdb}");
    }
    format!("title:{}", title_key(film))
}

/// The title-only identity of a film: its title with case and spacing folded, and its year
/// (`la chimera|2023`).
pub fn title_key(film: &Film) -> String {
    let title = film
        .title
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    match film.year {
        Some(year) => format!("{title}|{year}"),
        None => format!("{title}|"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn provenance() -> Provenance {
        let mut settings = BTreeMap::new();
        settings.insert("min_reliable_face_px".to_string(), serde_json::json!(40.0));
        settings.insert(
            "age_band_edges".to_string(),
            serde_json::json!([18, 30, 45, 60]),
        );
        Provenance {
            pipeline_version: "0.1.0".into(),
            algorithm_version: 1,
            runtime_sha256: "aa".into(),
            models: vec![
                ModelRef {
                    name: "yunet".into(),
                    role: "detector".into(),
                    file: "y.onnx".into(),
                    sha256: "11".into(),
                },
                ModelRef {
                    name: "gender".into(),
                    role: "gender".into(),
                    file: "g.onnx".into(),
                    sha256: "22".into(),
                },
            ],
            settings,
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = serde_json::json!({"b": {"z": 1, "a": [ {"y": 2, "x": 1} ]}, "a": "é"});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":"é","b":{"a":[{"x":1,"y":2}],"z":1}}"#
        );
    }

    #[test]
    fn model_order_does_not_change_the_keys() {
        let p = provenance();
        let mut q = p.clone();
        q.models.reverse();
        assert_eq!(provenance_keys(&p), provenance_keys(&q));
        assert_eq!(provenance_keys(&p).model_set_sha256.len(), 64);
    }

    #[test]
    fn a_new_model_sha_changes_only_the_model_set_key() {
        let p = provenance();
        let mut q = p.clone();
        q.models[0].sha256 = "33".into();
        let (a, b) = (provenance_keys(&p), provenance_keys(&q));
        assert_ne!(a.model_set_sha256, b.model_set_sha256);
        assert_eq!(a.settings_sha256, b.settings_sha256);
    }

    #[test]
    fn a_new_algorithm_changes_the_key_and_a_new_release_does_not() {
        let p = provenance();
        let mut algorithm = p.clone();
        algorithm.algorithm_version += 1;
        assert_ne!(
            provenance_keys(&p).model_set_sha256,
            provenance_keys(&algorithm).model_set_sha256
        );
        let mut release = p.clone();
        release.pipeline_version = "0.2.0".into();
        assert_eq!(provenance_keys(&p), provenance_keys(&release));
    }

    #[test]
    fn a_new_threshold_changes_only_the_settings_key() {
        let p = provenance();
        let mut q = p.clone();
        q.settings
            .insert("min_reliable_face_px".into(), serde_json::json!(48.0));
        let (a, b) = (provenance_keys(&p), provenance_keys(&q));
        assert_eq!(a.model_set_sha256, b.model_set_sha256);
        assert_ne!(a.settings_sha256, b.settings_sha256);
    }

    #[test]
    fn film_key_prefers_imdb_then_tmdb_then_title_and_year() {
        let mut f = Film {
            title: "  La  Chimera ".into(),
            year: Some(2023),
            ..Film::default()
        };
        assert_eq!(film_key(&f), "title:la chimera|2023");
        f.tmdb_id = Some(837335);
        assert_eq!(film_key(&f), "tmdb:837335");
        f.imdb_id = Some("tt14540444".into());
        assert_eq!(film_key(&f), "imdb:tt14540444");
    }
}
