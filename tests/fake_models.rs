//! The pipeline, tracking, statistics and pictures with fake models and no ONNX Runtime: a
//! trailer made here with the `ffmpeg` CLI goes through the real sampler, a detector that returns
//! scripted boxes per sampled frame, and attribute and embedding models that read the colour of
//! the chips they are given. The truth is known by construction, so every figure is asserted.
//!
//! The trailer (24 frames/s, so that every sample time falls on a frame): three shots on
//! different backgrounds. "A" is a red square, "B" a blue one.
//!   0–3 s: A alone; 3–5 s: B alone; 5–7 s: A and B together.

use image::{Rgb, RgbImage};
use regard::config::{AnalysisSettings, Limits};
use regard::domain::{Analysis, BoundingBox, Detection, ModelRef};
use regard::media::fetch::{FetchPolicy, Fetcher};
use regard::pipeline::{AnalysisOutput, PictureData, Pipeline};
use regard::report::pictures;
use regard::vision::manifest::SquareSpec;
use regard::vision::manifest::{AlignSpec, AlignTemplate};
use regard::vision::{
    AgeModel, AttributeModel, ChipSpec, Classifier, DetectOptions, FaceDetector, FaceEmbedder,
    GenderAgeModel, Models, Vision, VisionError,
};
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

const SAMPLE_RATE: f64 = 2.0;
const A_SHOT1: (f32, f32) = (80.0, 100.0);
const B_SHOT2: (f32, f32) = (420.0, 120.0);
const A_SHOT3: (f32, f32) = (420.0, 100.0);
const B_SHOT3: (f32, f32) = (80.0, 120.0);
const SIDE: f32 = 120.0;

fn model_ref(name: &str, role: &str) -> ModelRef {
    ModelRef {
        name: name.into(),
        role: role.into(),
        file: format!("{name}.fake"),
        sha256: "0".repeat(64),
    }
}

/// A face box with landmarks where YuNet puts them on an upright face (subject's right eye on
/// the image's left).
fn face_at((x, y): (f32, f32)) -> Detection {
    let p = |fx: f32, fy: f32| [x + fx * SIDE, y + fy * SIDE];
    Detection {
        bbox: BoundingBox {
            x,
            y,
            width: SIDE,
            height: SIDE,
        },
        landmarks: [
            p(0.3, 0.4),
            p(0.7, 0.4),
            p(0.5, 0.6),
            p(0.35, 0.8),
            p(0.65, 0.8),
        ],
        score: 0.9,
    }
}

/// The faces of the trailer at presentation time `t`.
fn script(t: f64) -> Vec<Detection> {
    if t < 3.0 {
        vec![face_at(A_SHOT1)]
    } else if t < 5.0 {
        vec![face_at(B_SHOT2)]
    } else {
        vec![face_at(A_SHOT3), face_at(B_SHOT3)]
    }
}

/// Returns the script's boxes for the n-th call: the pipeline detects once per sampled frame,
/// in order, so the n-th call is the frame at n / SAMPLE_RATE.
struct ScriptedDetector {
    calls: Mutex<u32>,
}

impl FaceDetector for ScriptedDetector {
    fn model(&self) -> ModelRef {
        model_ref("scripted-detector", "detector")
    }

    fn detect(
        &self,
        _image: &RgbImage,
        options: &DetectOptions,
    ) -> Result<Vec<Detection>, VisionError> {
        let mut calls = self.calls.lock().unwrap();
        let t = f64::from(*calls) / SAMPLE_RATE;
        *calls += 1;
        Ok(script(t)
            .into_iter()
            .filter(|d| d.bbox.height >= options.min_face_px)
            .collect())
    }
}

/// Mean colour of the middle third of a chip, centred on grey.
fn centre_colour(chip: &RgbImage) -> [f32; 3] {
    let (w, h) = chip.dimensions();
    let mut sum = [0f32; 3];
    let mut n = 0f32;
    for y in h / 3..2 * h / 3 {
        for x in w / 3..2 * w / 3 {
            for (s, v) in sum.iter_mut().zip(chip.get_pixel(x, y).0) {
                *s += f32::from(v);
            }
            n += 1.0;
        }
    }
    sum.map(|s| s / n - 128.0)
}

fn is_red(chip: &RgbImage) -> bool {
    let [r, _, b] = centre_colour(chip);
    r > b
}

/// "Perceives" red faces as women and blue ones as men.
struct ColourGender;

impl AttributeModel for ColourGender {
    fn model(&self) -> ModelRef {
        model_ref("colour-gender", "classifier")
    }

    fn chip(&self) -> ChipSpec {
        ChipSpec {
            align: AlignSpec {
                template: AlignTemplate::Dlib5,
                padding: 0.2,
            },
            width: 32,
            height: 32,
        }
    }

    fn probabilities(&self, chips: &[RgbImage]) -> Result<Vec<Vec<f32>>, VisionError> {
        Ok(chips
            .iter()
            .map(|c| {
                if is_red(c) {
                    vec![0.95, 0.05]
                } else {
                    vec![0.05, 0.95]
                }
            })
            .collect())
    }
}

/// Red faces are 20 years old, blue ones 40.
struct ColourAge;

impl AttributeModel for ColourAge {
    fn model(&self) -> ModelRef {
        model_ref("colour-age", "age")
    }

    fn chip(&self) -> ChipSpec {
        ChipSpec {
            align: AlignSpec {
                template: AlignTemplate::Dlib5,
                padding: 0.2,
            },
            width: 64,
            height: 64,
        }
    }

    fn probabilities(&self, chips: &[RgbImage]) -> Result<Vec<Vec<f32>>, VisionError> {
        Ok(chips
            .iter()
            .map(|c| {
                if is_red(c) {
                    vec![1.0, 0.0]
                } else {
                    vec![0.0, 1.0]
                }
            })
            .collect())
    }
}

/// The chip's centre colour as a unit vector: one direction per colour, so one per person.
struct ColourEmbedder;

impl FaceEmbedder for ColourEmbedder {
    fn model(&self) -> ModelRef {
        model_ref("colour-embedding", "embedding")
    }

    fn chip(&self) -> ChipSpec {
        ChipSpec {
            align: AlignSpec {
                template: AlignTemplate::Arcface112,
                padding: 0.0,
            },
            width: 112,
            height: 112,
        }
    }

    fn embed(&self, chips: &[RgbImage]) -> Result<Vec<Vec<f32>>, VisionError> {
        Ok(chips
            .iter()
            .map(|c| {
                let v = centre_colour(c);
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
                v.iter().map(|x| x / norm).collect()
            })
            .collect())
    }
}

/// A second opinion that calls every face a man of 15: it agrees with [`ColourGender`] on blue
/// faces and contradicts it on red ones.
struct AlwaysMale;

impl GenderAgeModel for AlwaysMale {
    fn model(&self) -> ModelRef {
        model_ref("always-male", "gender_age")
    }

    fn square(&self) -> SquareSpec {
        SquareSpec {
            eye_mouth: 0.45,
            offset: [0.5, 0.43],
        }
    }

    fn side(&self) -> u32 {
        112
    }

    fn labels(&self) -> Vec<String> {
        vec!["female".into(), "male".into()]
    }

    fn estimate(&self, crops: &[RgbImage]) -> Result<Vec<(Vec<f32>, f32)>, VisionError> {
        assert!(crops.iter().all(|c| c.dimensions() == (112, 112)));
        Ok(crops.iter().map(|_| (vec![0.02, 0.98], 15.0)).collect())
    }
}

/// Finds A and B on every call.
struct BothFaces;

impl FaceDetector for BothFaces {
    fn model(&self) -> ModelRef {
        model_ref("both-faces", "detector")
    }

    fn detect(&self, _: &RgbImage, _: &DetectOptions) -> Result<Vec<Detection>, VisionError> {
        Ok(vec![face_at(A_SHOT1), face_at(B_SHOT2)])
    }
}

fn fake_pipeline() -> Pipeline {
    let vision = Vision::new(Models {
        runtime_sha256: "none (fake models)".into(),
        detector: Box::new(ScriptedDetector {
            calls: Mutex::new(0),
        }),
        classifiers: vec![Classifier {
            attribute: "gender".into(),
            labels: vec!["female".into(), "male".into()],
            model: Box::new(ColourGender),
        }],
        age: Some(AgeModel {
            bin_values: vec![20.0, 40.0],
            model: Box::new(ColourAge),
        }),
        embedder: Some(Box::new(ColourEmbedder)),
        gender_age: Vec::new(),
    });
    let settings = AnalysisSettings {
        sample_rate: SAMPLE_RATE,
        // The scripted faces are flat coloured squares: no texture for the sharpness gate of
        // re-identification to measure (its own tests are in tests/vision.rs and src/track).
        // The pose gate stays on: the scripted landmarks are those of an upright face.
        reid_min_sharpness: 0.0,
        ..AnalysisSettings::default()
    };
    Pipeline::new(vision, settings, Limits::default(), 1)
}

fn make_trailer(path: &Path) {
    let shot = |background: &str, seconds: u32, squares: &[((f32, f32), &str)]| {
        let mut filter = format!("color=c={background}:s=640x360:r=24:d={seconds}");
        for ((x, y), colour) in squares {
            filter.push_str(&format!(
                ",drawbox=x={x}:y={y}:w={SIDE}:h={SIDE}:color={colour}:t=fill"
            ));
        }
        filter
    };
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(shot("0x202020", 3, &[(A_SHOT1, "red")]))
        .args(["-f", "lavfi", "-i"])
        .arg(shot("0xd8d8d8", 2, &[(B_SHOT2, "blue")]))
        .args(["-f", "lavfi", "-i"])
        .arg(shot("0x1e5a1e", 2, &[(A_SHOT3, "red"), (B_SHOT3, "blue")]))
        .args([
            "-filter_complex",
            "[0][1][2]concat=n=3:v=1:a=0",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(path)
        .status()
        .expect("the ffmpeg CLI runs");
    assert!(status.success(), "ffmpeg made the test trailer");
}

fn analyze(pipeline: &Pipeline, path: &Path, want_pictures: bool) -> AnalysisOutput {
    let fetcher = Fetcher::new(FetchPolicy::cli(Limits::default()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let media = runtime
        .block_on(fetcher.fetch(&path.display().to_string()))
        .expect("file readable");
    pipeline
        .analyze(&media, want_pictures, &|_| {})
        .expect("analysed")
}

/// Nothing of ONNX Runtime is mapped into this process.
fn assert_no_onnx_runtime() {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    assert!(
        !maps.contains("onnxruntime"),
        "ONNX Runtime was loaded by a test that must run without it"
    );
}

#[test]
fn a_trailer_tracks_scripted_faces_into_persons_without_onnx_runtime() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("three_shots.mp4");
    make_trailer(&path);
    let pipeline = fake_pipeline();
    let output = analyze(&pipeline, &path, true);
    let Analysis::Trailer(a) = &output.analysis else {
        panic!("the mp4 is analysed as a trailer")
    };

    assert_eq!(a.sampled_frames, 14, "7 s at 2 samples/s");
    assert_eq!(a.shot_cuts_s, [3.0, 5.0], "cuts where the shots change");
    assert_eq!(a.persons.len(), 2, "A and B, each linked across a cut");
    let (pa, pb) = (&a.persons[0], &a.persons[1]);
    assert_eq!((pa.id, pb.id), (1, 2), "ids in order of first appearance");
    assert_eq!(pa.attribute("gender").unwrap().label, "female");
    assert_eq!(pb.attribute("gender").unwrap().label, "male");
    assert_eq!(pa.age.as_ref().unwrap().band, "18-29");
    assert_eq!(pb.age.as_ref().unwrap().band, "30-44");
    // A: 6 samples in shot 1 and 4 in shot 3; B: 4 in shot 2 and 4 in shot 3.
    assert_eq!((pa.frames, pa.tracks, pa.screen_time_s), (10, 2, 5.0));
    assert_eq!((pb.frames, pb.tracks, pb.screen_time_s), (8, 2, 4.0));
    assert_eq!((pa.first_seen_s, pa.last_seen_s), (0.0, 6.5));
    assert_eq!((pb.first_seen_s, pb.last_seen_s), (3.0, 6.5));

    let gender = a
        .statistics
        .iter()
        .find(|s| s.attribute == "gender")
        .expect("gender statistics");
    let seconds = |label: &str| {
        let c = gender
            .categories
            .iter()
            .find(|c| c.category == label)
            .expect("every category has a row");
        (c.persons, c.person_seconds)
    };
    assert_eq!(seconds("female"), (1, 5.0));
    assert_eq!(seconds("male"), (1, 4.0));
    assert_eq!(seconds("unknown"), (0, 0.0));
    assert_eq!(
        a.provenance.runtime_sha256, "none (fake models)",
        "provenance names the models that ran"
    );
    let names: Vec<&str> = a
        .provenance
        .models
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "scripted-detector",
            "colour-gender",
            "colour-age",
            "colour-embedding"
        ]
    );

    // What the pictures are drawn from: every sampled frame (fewer than the sheet's 40),
    // downscaled to 240 px, boxes scaled with it and labelled with their person.
    let Some(PictureData::Trailer { frames }) = &output.pictures else {
        panic!("trailer picture data")
    };
    assert_eq!(frames.len(), 14);
    let scale = 240.0 / 640.0;
    assert_eq!(frames[0].thumbnail.dimensions(), (240, 135));
    assert_eq!(frames[0].faces.len(), 1);
    let (b, person) = frames[0].faces[0];
    assert_eq!(person, Some(1));
    assert_eq!(
        (b.x, b.y, b.height),
        (A_SHOT1.0 * scale, A_SHOT1.1 * scale, SIDE * scale)
    );
    assert_eq!(frames[6].t, 3.0);
    assert_eq!(
        frames[6].faces.iter().map(|f| f.1).collect::<Vec<_>>(),
        [Some(2)]
    );
    assert_eq!(
        frames[13].faces.iter().map(|f| f.1).collect::<Vec<_>>(),
        [Some(1), Some(2)]
    );
    let drawn = pictures::trailer_pictures(a, frames);
    let names: Vec<&str> = drawn.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["contact-sheet", "timeline"]);
    // 5 columns of 244 px; 14 frames → 3 rows of 135 px thumbnails + 11 px captions + 4 px gaps.
    assert_eq!(
        drawn[0].1.dimensions(),
        (5 * 244 + 4, 3 * (135 + 11 + 4) + 4)
    );
    assert_eq!(drawn[1].1.dimensions(), (1000, 260));
    assert_no_onnx_runtime();
}

#[test]
fn a_poster_gets_the_detector_boxes_and_its_picture_data_without_onnx_runtime() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("poster.png");
    let mut poster = RgbImage::from_pixel(640, 360, Rgb([32, 32, 32]));
    for (origin, colour) in [(A_SHOT1, Rgb([255, 0, 0])), (B_SHOT2, Rgb([0, 0, 255]))] {
        for y in 0..SIDE as u32 {
            for x in 0..SIDE as u32 {
                poster.put_pixel(origin.0 as u32 + x, origin.1 as u32 + y, colour);
            }
        }
    }
    poster.save(&path).expect("poster written");
    // The first call of the script is t = 0: A alone. B's square is not detected, so it must
    // not appear.
    let pipeline = fake_pipeline();
    let output = analyze(&pipeline, &path, true);
    let Analysis::Poster(p) = &output.analysis else {
        panic!("a png is a poster")
    };
    assert_eq!(p.faces.len(), 1);
    assert_eq!(p.faces[0].bbox, face_at(A_SHOT1).bbox);
    assert_eq!(p.faces[0].attribute("gender").unwrap().label, "female");
    assert_eq!(p.faces[0].age.as_ref().unwrap().years, 20.0);
    let Some(PictureData::Poster { image }) = &output.pictures else {
        panic!("poster picture data")
    };
    assert_eq!(
        image, &poster,
        "the decoded poster, for the report to draw on"
    );
    let drawn = pictures::poster_pictures(p, image);
    assert_eq!(drawn.len(), 1);
    assert_eq!(drawn[0].0, "annotated");
    // The box is stroked in the colour of a woman's face just outside the square's corner.
    let female = pictures::gender_color("female");
    assert_eq!(
        drawn[0].1.get_pixel(A_SHOT1.0 as u32, A_SHOT1.1 as u32),
        &female
    );
    assert_ne!(
        drawn[0].1.get_pixel(B_SHOT2.0 as u32, B_SHOT2.1 as u32),
        &female
    );
    assert_no_onnx_runtime();
}

#[test]
fn a_second_opinion_is_kept_per_face_and_contradicting_models_give_unknown() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("poster.png");
    let mut poster = RgbImage::from_pixel(640, 360, Rgb([32, 32, 32]));
    for (origin, colour) in [(A_SHOT1, Rgb([255, 0, 0])), (B_SHOT2, Rgb([0, 0, 255]))] {
        for y in 0..SIDE as u32 {
            for x in 0..SIDE as u32 {
                poster.put_pixel(origin.0 as u32 + x, origin.1 as u32 + y, colour);
            }
        }
    }
    poster.save(&path).expect("poster written");
    let vision = Vision::new(Models {
        runtime_sha256: "none (fake models)".into(),
        detector: Box::new(BothFaces),
        classifiers: vec![Classifier {
            attribute: "gender".into(),
            labels: vec!["female".into(), "male".into()],
            model: Box::new(ColourGender),
        }],
        age: Some(AgeModel {
            bin_values: vec![20.0, 40.0],
            model: Box::new(ColourAge),
        }),
        embedder: None,
        gender_age: vec![Box::new(AlwaysMale)],
    });
    // The margin is set here (the default follows the evaluation's rule and may be 1, never
    // disagreeing): 0.95 female against 0.98 male is far beyond 0.2.
    let settings = AnalysisSettings {
        max_model_disagreement: 0.2,
        ..AnalysisSettings::default()
    };
    let pipeline = Pipeline::new(vision, settings, Limits::default(), 1);
    let output = analyze(&pipeline, &path, false);
    let Analysis::Poster(p) = &output.analysis else {
        panic!("a png is a poster")
    };
    assert_eq!(p.faces.len(), 2);
    let (a, b) = (&p.faces[0], &p.faces[1]);
    // A (red): colour-gender says female at 0.95, always-male says male at 0.98.
    let ga = a.attribute("gender").unwrap();
    assert_eq!(ga.label, "unknown");
    assert_eq!(
        ga.unknown_reason,
        Some(regard::domain::UnknownReason::ModelsDisagree)
    );
    let models: Vec<&str> = ga.by_model.iter().map(|o| o.model.as_str()).collect();
    assert_eq!(models, ["colour-gender", "always-male"]);
    assert!((ga.probability("female") - (0.95 + 0.02) / 2.0).abs() < 1e-5);
    // B (blue): both say male; the mean decides.
    let gb = b.attribute("gender").unwrap();
    assert_eq!(gb.label, "male");
    assert!((gb.probability("male") - (0.95 + 0.98) / 2.0).abs() < 1e-5);
    // Ages: A's second opinion (15) is under the switch, so it is reported; B's age model
    // says 40 and the second opinion 15 is also under it: both take face-api's 15.
    let age_a = a.age.as_ref().unwrap();
    assert_eq!((age_a.years, age_a.band.as_str()), (15.0, "0-17"));
    assert_eq!(age_a.model.as_deref(), Some("always-male"));
    assert_eq!(age_a.by_model.len(), 2);
    assert_eq!(age_a.by_model[0].years, Some(20.0));
    // Every opinion is in the JSON result.
    let json = serde_json::to_value(&output.analysis).unwrap();
    let face = &json["faces"][0];
    let gender = face["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["attribute"] == "gender")
        .unwrap();
    assert_eq!(gender["unknown_reason"], "models_disagree");
    assert_eq!(gender["by_model"][1]["model"], "always-male");
    assert_eq!(face["age"]["by_model"][1]["years"], 15.0);
    assert!(
        output
            .analysis
            .provenance()
            .models
            .iter()
            .any(|m| m.name == "always-male")
    );
    assert_no_onnx_runtime();
}
