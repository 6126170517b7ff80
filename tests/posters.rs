//! Acceptance of the poster analysis on the composed posters, whose truth is known: every face of
//! 32 px and more is found, none is counted twice, faces at or above the minimum reliable size
//! get the right perceived gender, smaller ones the right gender or `unknown`.
//!
//! One refinement, on purpose: a face at or above the minimum reliable size whose top probability
//! is below the calibrated confidence threshold is `unknown` (low_confidence), as the poster issue
//! asks of the label; such a face is counted and printed apart, must never carry the WRONG
//! gender, and may be at most a tenth of those faces.

mod common;

use regard::domain::{Analysis, BoundingBox, UNKNOWN, UnknownReason};
use regard::evaluate::{MATCH_IOU, match_faces};

#[test]
fn composed_posters_find_every_face_of_32_px_once_with_the_right_gender() {
    let truth = common::truth();
    let min_reliable = common::pipeline().settings().min_reliable_face_px;
    let (mut big, mut big_found, mut duplicates, mut false_pos) = (0, 0, 0, 0);
    let (mut reliable, mut reliable_right, mut small, mut small_ok) = (0, 0, 0, 0);
    let mut reliable_unsure = 0;
    let mut problems = Vec::new();
    for (name, image) in &truth.images {
        let Analysis::Poster(poster) = common::analyze_fixture(name) else {
            panic!("{name} is not a poster")
        };
        let truth_boxes: Vec<BoundingBox> = image
            .faces
            .iter()
            .map(|f| BoundingBox {
                x: f.bbox[0],
                y: f.bbox[1],
                width: f.bbox[2],
                height: f.bbox[3],
            })
            .collect();
        let det: Vec<BoundingBox> = poster.faces.iter().map(|f| f.bbox).collect();
        let matches = match_faces(&truth_boxes, &det, MATCH_IOU);
        // A detection overlapping a truth face that is already matched is a double count.
        for (j, d) in det.iter().enumerate() {
            if matches.iter().any(|&(_, dj)| dj == j) {
                continue;
            }
            if truth_boxes.iter().any(|t| t.iou(d) > 0.1) {
                duplicates += 1;
                problems.push(format!("{name}: face counted twice at {d:?}"));
            } else {
                false_pos += 1;
            }
        }
        for (i, t) in image.faces.iter().enumerate() {
            let found = matches
                .iter()
                .find(|&&(ti, _)| ti == i)
                .map(|&(_, j)| &poster.faces[j]);
            let height = t.bbox[3];
            if height >= 32.0 {
                big += 1;
                match found {
                    Some(_) => big_found += 1,
                    None => problems.push(format!(
                        "{name}: missed a {height:.0} px face of {}",
                        t.person
                    )),
                }
            }
            let Some(face) = found else { continue };
            let label = face
                .attribute("gender")
                .map(|g| g.label.as_str())
                .unwrap_or(UNKNOWN);
            if face.size_px >= min_reliable {
                reliable += 1;
                let unsure = face.attribute("gender").and_then(|g| g.unknown_reason)
                    == Some(UnknownReason::LowConfidence);
                if label == t.gender {
                    reliable_right += 1;
                } else if unsure {
                    reliable_unsure += 1;
                    problems.push(format!(
                        "{name}: {:.0} px face of {} unknown (P({}) = {:.3}, below the confidence threshold)",
                        face.size_px,
                        t.person,
                        t.gender,
                        face.attribute("gender").map_or(0.0, |g| g.probability(&t.gender))
                    ));
                } else {
                    problems.push(format!(
                        "{name}: {:.0} px face of {} labelled {label}",
                        face.size_px, t.person
                    ));
                }
            } else {
                small += 1;
                if label == t.gender || label == UNKNOWN {
                    small_ok += 1;
                } else {
                    problems.push(format!(
                        "{name}: small {:.0} px face of {} labelled {label}",
                        face.size_px, t.person
                    ));
                }
            }
        }
    }
    println!("faces of 32 px and more found: {big_found}/{big}");
    println!("faces counted twice: {duplicates}; detections on no truth face: {false_pos}");
    println!("faces >= {min_reliable} px with the right gender: {reliable_right}/{reliable}");
    println!(
        "faces >= {min_reliable} px unknown for low confidence: {reliable_unsure}/{reliable}; with the wrong gender: {}",
        reliable - reliable_right - reliable_unsure
    );
    println!("smaller faces with the right gender or unknown: {small_ok}/{small}");
    for p in &problems {
        println!("  {p}");
    }
    assert!(
        big > 30,
        "the fixtures should hold many faces of 32 px and more, found {big}"
    );
    assert_eq!(big_found, big, "every face of 32 px and more is found");
    assert_eq!(duplicates, 0, "no face is counted twice");
    assert_eq!(
        reliable_right + reliable_unsure,
        reliable,
        "no face at or above the minimum reliable size gets the wrong gender"
    );
    assert!(
        reliable_unsure * 10 <= reliable,
        "at most a tenth of the reliable-size faces are unsure: {reliable_unsure}/{reliable}"
    );
    assert_eq!(
        small_ok, small,
        "smaller faces get the right gender or unknown"
    );
}

#[test]
fn the_astronaut_is_one_woman() {
    let Analysis::Poster(p) = common::analyze_fixture("faces/astronaut.png") else {
        panic!("not a poster")
    };
    assert_eq!(p.faces.len(), 1);
    assert_eq!(p.faces[0].attribute("gender").unwrap().label, "female");
    let gender = p
        .statistics
        .iter()
        .find(|s| s.attribute == "gender")
        .unwrap();
    let female = gender
        .categories
        .iter()
        .find(|c| c.category == "female")
        .unwrap();
    assert_eq!(female.faces, 1);
    assert!(female.has_largest_face);
    // Provenance names the models by hash and every threshold.
    assert!(
        p.provenance
            .models
            .iter()
            .any(|m| m.role == "detector" && m.sha256.len() == 64)
    );
    assert!(p.provenance.settings.contains_key("min_reliable_face_px"));
    assert_eq!(p.provenance.pipeline_version, regard::PIPELINE_VERSION);
}

#[test]
fn origin_stays_unknown_without_an_enabled_classifier() {
    let Analysis::Poster(p) = common::analyze_fixture("posters/duo_1000x1500.jpg") else {
        panic!("not a poster")
    };
    assert!(!p.faces.is_empty());
    for f in &p.faces {
        let origin = f.attribute("origin").expect("origin is always reported");
        assert_eq!(origin.label, UNKNOWN);
        assert!(origin.probabilities.is_empty());
    }
}
