//! The robustness table of `regard evaluate`, measured with the real models on the labelled set:
//! every condition × face height has its row in the report, and a face the pipeline finds in its
//! own photograph is found again on the clean 80 px poster.

mod common;

use regard::config::Limits;
use regard::domain::{Analysis, BoundingBox};
use regard::evaluate::robustness::{
    CONDITIONS, ROBUSTNESS_HEIGHTS, ROBUSTNESS_SOURCE_MIN_PX, measure,
};
use regard::evaluate::{
    Condition, Evaluation, FaceTruth, ImageTruth, LabelledSet, MATCH_IOU, Report, Truth, markdown,
    match_faces,
};
use regard::pipeline::Pipeline;
use regard::vision::{ModelManifest, Vision, VisionOptions};
use std::collections::BTreeMap;
use std::sync::Arc;

/// `measure` moves the pipeline into blocking tasks: its own, shared, copy of the models.
fn pipeline() -> Arc<Pipeline> {
    let manifest = ModelManifest::load(&common::root().join("models/manifest.toml"))
        .expect("model manifest (run python3 scripts/setup_models.py)");
    manifest.verify().expect("models in place");
    let vision = Vision::load(
        &manifest,
        &VisionOptions {
            intra_threads: 2,
            enable_sensitive: vec![],
            embeddings: false,
        },
    )
    .expect("models load");
    Arc::new(Pipeline::new(
        vision,
        common::pipeline().settings().clone(),
        Limits::default(),
        2,
    ))
}

/// How many truth faces of at least `ROBUSTNESS_SOURCE_MIN_PX` the pipeline finds in their own
/// photographs.
fn found_in_their_photographs(images: &BTreeMap<String, ImageTruth>) -> u32 {
    let mut found = 0;
    for (name, image) in images {
        let Analysis::Poster(poster) = common::analyze_fixture(name) else {
            panic!("{name} is not a poster")
        };
        let truth: Vec<BoundingBox> = image.faces.iter().map(FaceTruth::bbox).collect();
        let det: Vec<BoundingBox> = poster.faces.iter().map(|f| f.bbox).collect();
        found += match_faces(&truth, &det, MATCH_IOU)
            .iter()
            .filter(|&&(i, _)| image.faces[i].height() >= ROBUSTNESS_SOURCE_MIN_PX)
            .count() as u32;
    }
    found
}

/// Truth faces tall enough to render that are labelled in profile.
fn profile_faces(images: &BTreeMap<String, ImageTruth>) -> usize {
    images
        .values()
        .flat_map(|i| &i.faces)
        .filter(|f| f.height() >= ROBUSTNESS_SOURCE_MIN_PX && f.pose.as_deref() == Some("profile"))
        .count()
}

#[test]
fn every_condition_and_height_has_its_row_and_clean_80_px_faces_are_found() {
    let root = common::root();
    let truth = Truth::load(&root.join("fixtures/truth.json")).expect("truth");
    let pipeline = pipeline();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let tables = runtime
        .block_on(measure(
            &pipeline,
            &Limits::default(),
            &truth,
            &root.join("fixtures"),
        ))
        .expect("robustness measured");
    let parts: Vec<&str> = tables.iter().map(|t| t.part).collect();
    assert_eq!(parts, ["held-out", "calibration"]);

    let mut report = Report::new(
        "regard evaluate".into(),
        pipeline.provenance(),
        pipeline.settings(),
        LabelledSet {
            images: 0,
            faces: 0,
            trailers: 0,
            held_out_images: 0,
            held_out_faces: 0,
        },
        &Evaluation::default(),
        &[],
        None,
    );
    report.robustness = tables.clone();
    let md = markdown(&report);
    for t in &tables {
        assert!(t.sources > 0, "{} part: no face to render", t.part);
        for c in CONDITIONS {
            for h in ROBUSTNESS_HEIGHTS {
                let cell = t.cell(c, h).expect("a cell for every condition and height");
                let rendered = if c == Condition::Profile {
                    profile_faces(if t.part == "held-out" {
                        &truth.held_out_images
                    } else {
                        &truth.images
                    })
                } else {
                    t.sources
                };
                assert_eq!(cell.faces as usize, rendered, "{} {h} px", c.name());
                assert!(cell.found <= cell.faces && cell.correct <= cell.decided);
                let row = format!(
                    "| {} | {h} px | {} | {} |",
                    c.name(),
                    cell.faces,
                    cell.found
                );
                assert!(md.contains(&row), "missing {row:?} in\n{md}");
            }
        }
    }
    assert!(md.contains("How to read it (held-out part)"), "{md}");
    assert!(
        profile_faces(&truth.held_out_images) > 0,
        "the held-out part has faces labelled in profile: its profile row is not empty"
    );
    assert!(
        md.contains("Faces labelled in profile, on their own: 25 px:"),
        "{md}"
    );
    assert!(md.contains("On which posters the figures hold"), "{md}");

    // Made small and put on a clean poster, a face the pipeline finds in its photograph is still
    // found at 80 px.
    for (t, images) in [
        (&tables[0], &truth.held_out_images),
        (&tables[1], &truth.images),
    ] {
        let clean = t.cell(Condition::Clean, 80).expect("clean 80 px");
        let in_photos = found_in_their_photographs(images);
        assert!(
            clean.found >= in_photos,
            "{} part: {} found on the clean 80 px posters, {in_photos} in the photographs",
            t.part,
            clean.found
        );
    }
    // On the calibration part that is every face.
    let calibration = tables[1].cell(Condition::Clean, 80).expect("clean 80 px");
    assert_eq!(calibration.recall(), Some(1.0), "{calibration:?}");
}
