//! face-api.js's AgeGenderNet (derived ONNX, `models/faceapi_age_gender.onnx`) run by regard
//! against the numbers face-api's own JavaScript gave on the same crops
//! (`fixtures/golden/agegender.json`, made by `scripts/golden_agegender.py`), and regard's square
//! crop against the golden crops, and the combined gender decision on a real photograph.

use regard::domain::{BoundingBox, Detection};
use regard::vision::align::square_crop;
use regard::vision::manifest::ModelManifest;
use regard::vision::{Vision, VisionOptions};
use std::path::PathBuf;

const MODEL: &str = "faceapi-agegender";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn manifest() -> ModelManifest {
    ModelManifest::load(&root().join("models/manifest.toml")).unwrap()
}

fn golden() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("fixtures/golden/agegender.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn f32s(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn landmarks(v: &serde_json::Value) -> [[f32; 2]; 5] {
    let points: Vec<Vec<f32>> = v.as_array().unwrap().iter().map(f32s).collect();
    std::array::from_fn(|i| [points[i][0], points[i][1]])
}

fn load() -> Vision {
    Vision::load(&manifest(), &VisionOptions::default())
        .unwrap_or_else(|e| panic!("loading the models failed: {e}"))
}

#[test]
fn the_derived_agegender_model_gives_face_apis_numbers_on_the_golden_crops() {
    let g = golden();
    let m = manifest();
    let spec = m.gender_age.iter().find(|s| s.name == MODEL).unwrap();
    assert_eq!(
        g["model"]["sha256"], spec.sha256,
        "golden made with another file"
    );
    let crops: Vec<_> = g["crops"].as_array().unwrap().iter().collect();
    assert!(crops.len() >= 10, "{} golden crops", crops.len());
    let images: Vec<image::RgbImage> = crops
        .iter()
        .map(|c| {
            image::open(root().join(c["png"].as_str().unwrap()))
                .unwrap()
                .to_rgb8()
        })
        .collect();
    let v = load();
    // All crops in one batch, and each alone: the same numbers.
    let batch = v.run_gender_age(MODEL, &images).unwrap();
    for (i, (c, (probs, years))) in crops.iter().zip(&batch).enumerate() {
        let want = f32s(&c["faceapi"]["gender"]);
        let want_age = c["faceapi"]["age"].as_f64().unwrap() as f32;
        let name = c["name"].as_str().unwrap();
        assert_eq!(probs.len(), 2, "{name}");
        for (p, w) in probs.iter().zip(&want) {
            assert!(
                (p - w).abs() < 1e-4,
                "{name}: P {probs:?}, face-api {want:?}"
            );
        }
        assert!(
            (years - want_age).abs() < 1e-2,
            "{name}: {years} years, face-api {want_age}"
        );
        let alone = v.run_gender_age(MODEL, &images[i..=i]).unwrap();
        assert!((alone[0].1 - years).abs() < 1e-3 && (alone[0].0[0] - probs[0]).abs() < 1e-5);
    }
    // The golden set holds both perceived genders, so a swapped head order would fail above;
    // check that it does.
    let females = batch.iter().filter(|(p, _)| p[0] > 0.5).count();
    assert!(
        females > 0 && females < batch.len(),
        "{females} of {}",
        batch.len()
    );
}

#[test]
fn the_square_crop_is_the_golden_crop() {
    let g = golden();
    let m = manifest();
    let spec = m.gender_age.iter().find(|s| s.name == MODEL).unwrap();
    for c in g["crops"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let image = image::open(root().join(c["image"].as_str().unwrap()))
            .unwrap()
            .to_rgb8();
        let want = image::open(root().join(c["png"].as_str().unwrap()))
            .unwrap()
            .to_rgb8();
        let lm = landmarks(&c["landmarks"]);
        let got = square_crop(&image, &lm, &spec.square, spec.input.width).unwrap();
        assert_eq!(got.dimensions(), want.dimensions());
        // The golden landmarks are rounded to 3 decimals and the JPEG decoders differ by a
        // level here and there: the crops must agree to within a level or two on average.
        let diffs: Vec<i32> = got
            .as_raw()
            .iter()
            .zip(want.as_raw())
            .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
            .collect();
        let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
        let big = diffs.iter().filter(|d| **d > 16).count();
        assert!(mean < 1.5, "{name}: mean |diff| {mean}");
        assert!(
            big * 100 < diffs.len(),
            "{name}: {big} values off by more than 16"
        );
        if c["image"].as_str().unwrap().ends_with(".png") {
            assert!(
                mean < 0.05,
                "{name}: a PNG decodes exactly, mean |diff| {mean}"
            );
        }
    }
}

#[test]
fn every_face_keeps_both_gender_opinions_and_both_ages() {
    let v = load();
    let image = image::open(root().join("fixtures/faces/astronaut.png"))
        .unwrap()
        .to_rgb8();
    let dets = v.detect(&image, 0.6, 0.3, 16.0).unwrap();
    assert_eq!(dets.len(), 1);
    let p = v.perceive(&image, &dets).unwrap();
    let models: Vec<(&str, &str)> = p[0]
        .opinions
        .iter()
        .map(|(a, o)| (a.as_str(), o.model.as_str()))
        .collect();
    assert_eq!(
        models,
        [
            ("gender", "gender-v1"),
            ("age", "age-v1"),
            ("gender", MODEL),
            ("age", MODEL)
        ]
    );
    let faceapi = &p[0].opinions[2].1;
    assert!(faceapi.probabilities["female"] > 0.5, "{faceapi:?}");
    let years = p[0].opinions[3].1.years.unwrap();
    assert!((15.0..80.0).contains(&years), "{years}");
    assert!(
        v.models()
            .iter()
            .any(|m| m.name == MODEL && m.role == "gender_age")
    );
    // A degenerate face (all landmarks on one point) still gets a crop from its box.
    let degenerate = Detection {
        bbox: BoundingBox {
            x: 180.0,
            y: 60.0,
            width: 90.0,
            height: 110.0,
        },
        landmarks: [[220.0, 120.0]; 5],
        score: 0.9,
    };
    let crop = v.gender_age_crop(MODEL, &image, &degenerate).unwrap();
    assert_eq!(crop.dimensions(), (112, 112));
    assert!(crop.pixels().any(|p| p.0 != [0, 0, 0]));
}
