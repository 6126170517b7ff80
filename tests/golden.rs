//! Golden figures: every figure regard reports on the bundled fixtures, recorded with the
//! algorithm version that produced them (`fixtures/golden/figures.json`).
//!
//! Results are keyed on the algorithm version, not on the crate version, so a change that
//! alters any figure without bumping `regard::ALGORITHM_VERSION` would leave the old results
//! standing as "already there". This test catches it: figures that differ from the golden ones
//! under the same version fail, naming the version to bump to. After bumping,
//! `REGARD_BLESS=1 cargo test --test golden` records the new figures (it refuses to bless
//! changed figures under an unchanged version).

mod common;

use image::{Rgb, RgbImage};
use regard::config::AnalysisSettings;
use regard::domain::{AgeEstimate, AttributeEstimate, BoundingBox, Face};
use regard::track::{FrameObservation, FrameSignature, track_persons};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

const GOLDEN: &str = "fixtures/golden/figures.json";
/// Figures are recorded to this many decimals: far finer than anything reported, coarser
/// than the last bits of a float sum.
const DECIMALS: i32 = 4;
/// Two recorded figures are the same when they differ by at most `ABS + REL·|x|`. ONNX
/// Runtime picks its kernels by CPU (AVX2, AVX-512, …), and that moves the last recorded
/// decimal: an age of 35.41425 years is 35.4142 on one machine and 35.4143 on another (seen
/// between two of ours). A change of the algorithm moves figures by far more.
const ABS: f64 = 1e-3;
const REL: f64 = 1e-5;

fn same_figure(a: f64, b: f64) -> bool {
    (a - b).abs() <= ABS + REL * a.abs().max(b.abs())
}

/// Every media fixture: the posters, the source photos and the trailers.
fn fixtures() -> Vec<String> {
    let mut names = Vec::new();
    for dir in ["faces", "posters", "trailers"] {
        let mut files: Vec<String> = std::fs::read_dir(common::root().join("fixtures").join(dir))
            .expect("fixture folder")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|n| [".jpg", ".png", ".mp4"].iter().any(|ext| n.ends_with(ext)))
            .map(|n| format!("{dir}/{n}"))
            .collect();
        files.sort();
        names.extend(files);
    }
    names
}

/// The analysis as figures: what a report or the database shows, without the provenance
/// (recorded apart) and with the source path made relative to the fixtures.
fn figures(name: &str) -> Value {
    let analysis = common::analyze_fixture(name);
    let mut v = serde_json::to_value(&analysis).expect("analysis serialises");
    let obj = v.as_object_mut().expect("an analysis is an object");
    obj.remove("provenance");
    if let Some(media) = obj.get_mut("media").and_then(Value::as_object_mut) {
        media.insert("source".into(), Value::String(name.to_string()));
    }
    rounded(v)
}

fn rounded(v: Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => {
            let scale = 10f64.powi(DECIMALS);
            let x = (n.as_f64().unwrap_or(0.0) * scale).round() / scale;
            // -0.0 and 0.0 are the same figure.
            serde_json::json!(if x == 0.0 { 0.0 } else { x })
        }
        Value::Array(items) => Value::Array(items.into_iter().map(rounded).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, rounded(v))).collect())
        }
        other => other,
    }
}

/// Paths (`a.b[3].c`) where two values differ, at most `limit` of them.
fn differences(a: &Value, b: &Value, path: &str, out: &mut Vec<String>, limit: usize) {
    if out.len() >= limit {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => differences(p, q, &format!("{path}.{k}"), out, limit),
                    _ => out.push(format!("{path}.{k}: present on one side only")),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differences(p, q, &format!("{path}[{i}]"), out, limit);
            }
        }
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            if let (Some(p), Some(q)) = (x.as_f64(), y.as_f64())
                && !same_figure(p, q)
            {
                out.push(format!("{path}: {a} → {b}"));
            }
        }
        _ if a != b => out.push(format!("{path}: {a} → {b}")),
        _ => {}
    }
}

// ---------- scenes that sit on the tracker's gates ----------
//
// The fixture trailers are easy for the tracker: its gates (how far a face may jump or zoom
// between samples, how different two embeddings may be, how many samples a face may be missed)
// decide nothing there. These scenes sweep each gate from one side to the other, so that moving
// a gate changes who is counted as whom in at least one of them.

const SCENE_W: u32 = 1000;
const SCENE_H: u32 = 500;
const SCENE_INTERVAL: f64 = 0.5;
const SCENE_FACE: f32 = 80.0;

fn scene_face(cx: f32, cy: f32, size: f32) -> Face {
    let s = AnalysisSettings::default();
    let probs = BTreeMap::from([("female".to_string(), 0.9), ("male".to_string(), 0.1)]);
    Face {
        bbox: BoundingBox {
            x: cx - size / 2.0,
            y: cy - size / 2.0,
            width: size,
            height: size,
        },
        landmarks: [[0.0; 2]; 5],
        detection_score: 0.9,
        size_px: size,
        attributes: vec![AttributeEstimate::decide(
            "gender",
            probs,
            s.min_attribute_confidence,
            size,
            s.min_reliable_face_px,
        )],
        age: Some(AgeEstimate {
            years: 35.0,
            band: s.age_band(35.0),
            model: None,
            by_model: Vec::new(),
        }),
    }
}

/// A unit vector at `cosine` from the first axis.
fn embedding(cosine: f32) -> Vec<f32> {
    vec![cosine, (1.0 - cosine * cosine).max(0.0).sqrt(), 0.0, 0.0]
}

/// One shot (every frame looks the same), a face per entry (`None`: missed in that sample).
fn scene(faces: Vec<Option<(Face, Option<Vec<f32>>)>>) -> Value {
    let look = FrameSignature::from_image(&RgbImage::from_pixel(8, 8, Rgb([90, 120, 150])));
    let frames = faces.into_iter().enumerate().map(|(k, face)| {
        let (faces, embeddings): (Vec<Face>, Vec<Option<Vec<f32>>>) = face.into_iter().unzip();
        let embeddings: Vec<Vec<f32>> = embeddings.into_iter().flatten().collect();
        FrameObservation {
            t: k as f64 * SCENE_INTERVAL,
            slots: 1,
            width: SCENE_W,
            height: SCENE_H,
            signature: look.clone(),
            faces,
            // One shot: the re-identification gates never come into play.
            sharpness: vec![AnalysisSettings::default().reid_min_sharpness; embeddings.len()],
            embeddings,
        }
    });
    let result =
        track_persons(frames, SCENE_INTERVAL, &AnalysisSettings::default()).expect("scene tracked");
    let persons: Vec<Value> = result
        .persons
        .iter()
        .map(|p| {
            serde_json::json!({
                "frames": p.frames, "tracks": p.tracks,
                "first_seen_s": p.first_seen_s, "screen_time_s": p.screen_time_s,
            })
        })
        .collect();
    serde_json::json!({"persons": persons, "dropped_tracks": result.dropped_tracks})
}

fn gate_scenes() -> BTreeMap<String, Value> {
    let mut scenes = BTreeMap::new();
    let still = |cx: f32, size: f32| Some((scene_face(cx, 250.0, size), None));
    // A face still for three samples, then a jump of `shift` face sizes, then still again.
    for shift in [0.5f32, 1.0, 1.5, 1.9, 2.1, 2.5, 3.0, 4.0] {
        let jump = 200.0 + shift * SCENE_FACE;
        let faces = vec![still(200.0, SCENE_FACE); 3]
            .into_iter()
            .chain(vec![still(jump, SCENE_FACE); 3])
            .collect();
        scenes.insert(format!("scenes/jump_{shift}"), rounded(scene(faces)));
    }
    // The same, zooming by `ratio` instead.
    for ratio in [1.2f32, 1.5, 1.9, 2.1, 2.5, 3.0] {
        let faces = vec![still(500.0, SCENE_FACE); 3]
            .into_iter()
            .chain(vec![still(500.0, SCENE_FACE * ratio); 3])
            .collect();
        scenes.insert(format!("scenes/zoom_{ratio}"), rounded(scene(faces)));
    }
    // Still geometry, but the embedding turns by `cosine` after three samples.
    for cosine in [-0.2f32, 0.0, 0.1, 0.14, 0.16, 0.2, 0.3, 0.4, 0.6] {
        let faces = (0..6)
            .map(|k| {
                let e = embedding(if k < 3 { 1.0 } else { cosine });
                Some((scene_face(500.0, 250.0, SCENE_FACE), Some(e)))
            })
            .collect();
        scenes.insert(format!("scenes/turn_{cosine}"), rounded(scene(faces)));
    }
    // Missed for `gap` samples between two stretches of three.
    for gap in [1usize, 2, 3] {
        let faces = vec![still(500.0, SCENE_FACE); 3]
            .into_iter()
            .chain(vec![None; gap])
            .chain(vec![still(500.0, SCENE_FACE); 3])
            .collect();
        scenes.insert(format!("scenes/gap_{gap}"), rounded(scene(faces)));
    }
    scenes
}

#[test]
fn figures_change_only_with_a_new_algorithm_version() {
    let mut now: BTreeMap<String, Value> = fixtures()
        .into_iter()
        .map(|name| {
            let f = figures(&name);
            (name, f)
        })
        .collect();
    assert!(now.len() >= 10, "the fixtures are there: {:?}", now.keys());
    now.extend(gate_scenes());
    let path = common::root().join(GOLDEN);
    let golden: Option<Value> = std::fs::read_to_string(&path)
        .ok()
        .map(|t| serde_json::from_str(&t).expect("golden figures are JSON"));
    let version = regard::ALGORITHM_VERSION;
    let golden_version = golden
        .as_ref()
        .and_then(|g| g["algorithm_version"].as_u64())
        .map(|v| v as u32);
    let mut diffs = Vec::new();
    // A fixture the golden file does not hold yet is an addition, not a changed figure: its
    // figures are recorded without a new version (results of existing media are unchanged).
    let mut added: Vec<&String> = Vec::new();
    if let Some(g) = &golden {
        let known: BTreeMap<&String, &Value> = now
            .iter()
            .filter(|(k, _)| {
                let recorded = g["figures"].get(k.as_str()).is_some();
                if !recorded {
                    added.push(k);
                }
                recorded
            })
            .collect();
        let now_value = serde_json::to_value(&known).expect("figures serialise");
        differences(&g["figures"], &now_value, "", &mut diffs, 25);
    }
    let bless = std::env::var_os("REGARD_BLESS").is_some_and(|v| v == "1");

    if bless {
        assert!(
            diffs.is_empty() || golden_version.is_none_or(|g| version > g),
            "refusing to bless changed figures under the same algorithm version {version}: bump \
             regard::ALGORITHM_VERSION (src/lib.rs) to {} first. Changes:\n{}",
            version + 1,
            diffs.join("\n")
        );
        write_golden(&path, version, &now);
        return;
    }
    let golden_version = golden_version.unwrap_or_else(|| {
        panic!("{GOLDEN} is missing: run REGARD_BLESS=1 cargo test --test golden")
    });
    assert!(
        version >= golden_version,
        "ALGORITHM_VERSION went down ({golden_version} → {version})"
    );
    if version == golden_version {
        assert!(
            diffs.is_empty(),
            "{} figure(s) on the fixtures changed while ALGORITHM_VERSION stayed {version}. A \
             change that alters a reported figure must bump regard::ALGORITHM_VERSION \
             (src/lib.rs) to {}, so that results of the old algorithm are not taken for the \
             new one's; then record the new figures with `REGARD_BLESS=1 cargo test --test \
             golden`. First differences:\n{}",
            diffs.len(),
            version + 1,
            diffs.join("\n")
        );
        assert!(
            added.is_empty(),
            "{GOLDEN} has no figures for the new fixture(s) {added:?}: record them with \
             `REGARD_BLESS=1 cargo test --test golden`"
        );
    } else {
        panic!(
            "ALGORITHM_VERSION is {version} but {GOLDEN} holds version {golden_version}'s \
             figures: record them with `REGARD_BLESS=1 cargo test --test golden`"
        );
    }
}

fn write_golden(path: &Path, version: u32, figures: &BTreeMap<String, Value>) {
    let doc = serde_json::json!({
        "about": "Every figure of `regard analyze` on the fixtures (default settings, provenance \
                  left out, floats to 4 decimals), and the algorithm version that made them. \
                  Written by `REGARD_BLESS=1 cargo test --test golden`; read by that test.",
        "algorithm_version": version,
        "figures": figures,
    });
    std::fs::create_dir_all(path.parent().expect("golden folder")).expect("golden folder");
    std::fs::write(
        path,
        serde_json::to_string_pretty(&doc).expect("JSON") + "\n",
    )
    .expect("golden written");
}

#[test]
fn rounding_hides_float_noise_but_not_a_changed_figure() {
    let a = rounded(serde_json::json!({"p": 0.980_000_019_073_486_3, "n": 3, "z": -0.0}));
    let b = rounded(serde_json::json!({"p": 0.98, "n": 3, "z": 0.0}));
    assert_eq!(a, b);
    // Another CPU's kernels: the last recorded decimal moves, the figure is the same.
    let other_cpu = rounded(serde_json::json!({"p": 0.9801, "age": 35.4143, "n": 3, "z": 0.0}));
    let here = rounded(serde_json::json!({"p": 0.98, "age": 35.4142, "n": 3, "z": 0.0}));
    let mut diffs = Vec::new();
    differences(&here, &other_cpu, "", &mut diffs, 10);
    assert_eq!(diffs, Vec::<String>::new());
    // A changed figure, or a count that is now a float, is a difference.
    let c = rounded(serde_json::json!({"p": 0.982, "age": 35.4142, "n": 3.5, "z": 0.0}));
    differences(&here, &c, "", &mut diffs, 10);
    assert_eq!(diffs, [".n: 3 → 3.5", ".p: 0.98 → 0.982"]);
}
