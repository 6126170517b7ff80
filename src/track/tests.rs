//! Synthetic trailers built in code: boxes, probabilities and embeddings chosen by hand.

use super::*;
use image::{Rgb, RgbImage};

const INTERVAL: f64 = 0.5;
const W: u32 = 1000;
const H: u32 = 500;

/// A shot's look: each shot a flat colour, so consecutive shots differ and a shot's frames not.
fn look(shot: u8) -> FrameSignature {
    let colours = [[200, 30, 30], [30, 200, 30], [30, 30, 200], [220, 220, 40]];
    FrameSignature::from_image(&RgbImage::from_pixel(8, 8, Rgb(colours[shot as usize % 4])))
}

fn face(x: f32, y: f32, size: f32, p_male: f32, score: f32) -> Face {
    let s = AnalysisSettings::default();
    let probs = BTreeMap::from([
        ("female".to_string(), 1.0 - p_male),
        ("male".to_string(), p_male),
    ]);
    Face {
        bbox: BoundingBox {
            x,
            y,
            width: size,
            height: size,
        },
        // A frontal, level face: eyes at 40% of the height, nose midway between them.
        landmarks: [
            [x + 0.3 * size, y + 0.4 * size],
            [x + 0.7 * size, y + 0.4 * size],
            [x + 0.5 * size, y + 0.6 * size],
            [x + 0.35 * size, y + 0.8 * size],
            [x + 0.65 * size, y + 0.8 * size],
        ],
        detection_score: score,
        size_px: size,
        attributes: vec![
            AttributeEstimate::decide(
                "gender",
                probs,
                s.min_attribute_confidence,
                size,
                s.min_reliable_face_px,
            ),
            AttributeEstimate::not_configured("origin"),
        ],
        age: Some(AgeEstimate {
            years: 35.0,
            band: s.age_band(35.0),
            model: None,
            by_model: Vec::new(),
        }),
    }
}

fn unit(v: [f32; 4]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn person_a() -> Vec<f32> {
    unit([1.0, 0.05, 0.0, 0.1])
}
fn person_a_later() -> Vec<f32> {
    // Another shot, another angle: cosine ≈ 0.8 with `person_a`.
    unit([0.8, 0.1, 0.55, 0.1])
}
fn person_b() -> Vec<f32> {
    unit([0.05, 1.0, 0.1, 0.0])
}

/// Sharpness of every embedded chip in these scenes unless a test says otherwise: sharp.
const SHARP: f32 = 500.0;

/// The same face seen in profile: the nose moved 40% of the eye distance towards one eye
/// (yaw proxy 0.8).
fn in_profile(mut f: Face) -> Face {
    let eyes = f.landmarks[1][0] - f.landmarks[0][0];
    f.landmarks[2][0] += 0.4 * eyes;
    f
}

fn frame(k: usize, shot: u8, faces: Vec<(Face, Option<Vec<f32>>)>) -> FrameObservation {
    let with_embeddings = faces.iter().any(|(_, e)| e.is_some());
    let (faces, embeddings): (Vec<Face>, Vec<Option<Vec<f32>>>) = faces.into_iter().unzip();
    let sharpness = if with_embeddings {
        vec![SHARP; faces.len()]
    } else {
        Vec::new()
    };
    FrameObservation {
        sharpness,
        slots: 1,
        t: k as f64 * INTERVAL,
        width: W,
        height: H,
        signature: look(shot),
        faces,
        embeddings: if with_embeddings {
            embeddings
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect()
        } else {
            Vec::new()
        },
    }
}

/// Thresholds fixed here (not the calibrated defaults, which may move) so that the expectations
/// below stay about tracking and fusion.
fn settings() -> AnalysisSettings {
    AnalysisSettings {
        min_reliable_face_px: 40.0,
        min_attribute_confidence: 0.75,
        ..AnalysisSettings::default()
    }
}

fn run(frames: Vec<FrameObservation>) -> TrackingResult {
    track_persons(frames, INTERVAL, &settings()).expect("tracking")
}

fn p_male(p: &Person) -> f32 {
    p.attribute("gender").expect("gender").probability("male")
}

#[test]
fn screen_time_prominence_and_timeline_are_exact() {
    // Person 1 in frames 0..=4 (100×100 in 1000×500: 2% of the frame), person 2 in 2..=4.
    let frames = (0..5)
        .map(|k| {
            let mut faces = vec![(face(100.0 + 10.0 * k as f32, 100.0, 100.0, 0.95, 0.9), None)];
            if k >= 2 {
                faces.push((face(600.0, 200.0, 200.0, 0.05, 0.9), None));
            }
            frame(k, 0, faces)
        })
        .collect();
    let r = run(frames);
    assert_eq!(r.persons.len(), 2);
    assert_eq!((r.dropped_tracks, r.shot_cuts_s.len()), (0, 0));
    let (a, b) = (&r.persons[0], &r.persons[1]);
    assert_eq!((a.id, b.id), (1, 2));
    assert_eq!((a.frames, a.tracks), (5, 1));
    assert_eq!(a.screen_time_s, 2.5);
    assert!((a.prominence_s - 5.0 * 0.5 * 0.02).abs() < 1e-12);
    assert_eq!((a.first_seen_s, a.last_seen_s), (0.0, 2.0));
    assert_eq!(b.screen_time_s, 1.5);
    assert!((b.prominence_s - 3.0 * 0.5 * 0.08).abs() < 1e-12);
    assert_eq!(
        (b.first_seen_s, b.key_frame_s, b.median_face_px),
        (1.0, 1.0, 200.0)
    );
    assert_eq!(a.attribute("gender").unwrap().label, "male");
    assert_eq!(b.attribute("gender").unwrap().label, "female");
    assert!(a.attribute("origin").unwrap().is_unknown());
    assert_eq!(a.age.as_ref().unwrap().band, "30-44");

    assert_eq!(r.timeline.len(), 5);
    assert_eq!(r.timeline[1].persons, vec![1]);
    assert_eq!(r.timeline[3].persons, vec![1, 2]);
    assert_eq!(r.timeline[3].t, 1.5);
    assert_eq!(
        r.timeline[3].gender_counts,
        BTreeMap::from([("female".to_string(), 1), ("male".to_string(), 1)])
    );
}

/// Two people walk towards each other at the same height and pass each other between frames 3
/// and 4: right after, each is nearer to where the other was (only their motion tells them
/// apart without embeddings). The detector lists faces in no fixed order.
fn crossing(with_embeddings: bool) -> Vec<FrameObservation> {
    (0..7)
        .map(|k| {
            let step = 150.0 * k as f32;
            let emb = |e: Vec<f32>| with_embeddings.then_some(e);
            let a = (face(40.0 + step, 100.0, 100.0, 0.95, 0.9), emb(person_a()));
            let b = (face(960.0 - step, 100.0, 100.0, 0.05, 0.9), emb(person_b()));
            frame(k, 0, if k % 2 == 0 { vec![a, b] } else { vec![b, a] })
        })
        .collect()
}

#[test]
fn two_people_crossing_keep_their_identities() {
    for with_embeddings in [false, true] {
        let r = run(crossing(with_embeddings));
        assert_eq!(r.persons.len(), 2, "embeddings {with_embeddings}");
        for p in &r.persons {
            assert_eq!((p.frames, p.tracks), (7, 1));
            // A swap would mix 0.95 and 0.05 into something undecided.
            let m = p_male(p);
            assert!(!(0.1..=0.9).contains(&m), "P(male) {m}");
        }
        // Person 1 is leftmost at first sight: the man, who ends on the right.
        let man = &r.persons[0];
        assert!(p_male(man) > 0.9);
        assert_eq!(man.key_box.x, 40.0, "largest face ties: the first is kept");
    }
}

#[test]
fn a_person_leaving_and_returning_after_cuts_is_merged_and_another_is_not() {
    let mut frames = Vec::new();
    for k in 0..4 {
        frames.push(frame(
            k,
            0,
            vec![(face(100.0, 100.0, 120.0, 0.9, 0.9), Some(person_a()))],
        ));
    }
    for k in 4..7 {
        frames.push(frame(
            k,
            1,
            vec![(face(500.0, 100.0, 150.0, 0.1, 0.9), Some(person_b()))],
        ));
    }
    for k in 7..10 {
        frames.push(frame(
            k,
            2,
            vec![(face(700.0, 200.0, 80.0, 0.92, 0.9), Some(person_a_later()))],
        ));
    }
    let r = run(frames);
    assert_eq!(r.shot_cuts_s, vec![2.0, 3.5]);
    assert_eq!(r.persons.len(), 2, "{:?}", r.persons);
    let (a, b) = (&r.persons[0], &r.persons[1]);
    assert_eq!((a.tracks, a.frames, a.screen_time_s), (2, 7, 3.5));
    assert_eq!((a.first_seen_s, a.last_seen_s), (0.0, 4.5));
    assert_eq!((b.tracks, b.frames, b.first_seen_s), (1, 3, 2.0));
    // Median of 4 × 120 px and 3 × 80 px.
    assert_eq!(a.median_face_px, 120.0);
    assert_eq!(r.timeline[8].persons, vec![1]);
    assert_eq!(r.timeline[5].persons, vec![2]);
}

/// Person A frontal and sharp in shot 0 (4 samples), B in shot 1, then A's very embedding
/// again in shot 2 (cosine 1 with shot 0), seen as `later` makes it.
fn a_returns_as(later: impl Fn(FrameObservation) -> FrameObservation) -> TrackingResult {
    let mut frames = Vec::new();
    for k in 0..4 {
        frames.push(frame(
            k,
            0,
            vec![(face(100.0, 100.0, 120.0, 0.9, 0.9), Some(person_a()))],
        ));
    }
    for k in 4..7 {
        frames.push(frame(
            k,
            1,
            vec![(face(500.0, 100.0, 150.0, 0.1, 0.9), Some(person_b()))],
        ));
    }
    for k in 7..10 {
        frames.push(later(frame(
            k,
            2,
            vec![(face(700.0, 200.0, 120.0, 0.92, 0.9), Some(person_a()))],
        )));
    }
    run(frames)
}

#[test]
fn frontal_sharp_tracks_of_one_person_merge_across_shots() {
    let r = a_returns_as(|f| f);
    assert_eq!(r.persons.len(), 2, "{:?}", r.persons);
    assert_eq!((r.persons[0].tracks, r.persons[0].frames), (2, 7));
}

#[test]
fn a_profile_only_track_is_not_merged_even_at_cosine_one() {
    let r = a_returns_as(|mut f| {
        f.faces = f.faces.into_iter().map(in_profile).collect();
        f
    });
    assert_eq!(r.persons.len(), 3, "{:?}", r.persons);
    assert!(r.persons.iter().all(|p| p.tracks == 1));
    // Within its shot the profile track is whole: tracking is unchanged.
    assert_eq!(r.persons[2].frames, 3);
}

#[test]
fn a_blurred_only_track_is_not_merged_even_at_cosine_one() {
    let blur = settings().reid_min_sharpness * 0.5;
    let r = a_returns_as(|mut f| {
        f.sharpness = vec![blur; f.sharpness.len()];
        f
    });
    assert_eq!(r.persons.len(), 3, "{:?}", r.persons);
    assert!(r.persons.iter().all(|p| p.tracks == 1));
}

#[test]
fn a_track_with_fewer_gated_samples_than_min_reid_samples_stays_apart() {
    // Shot 2: one frontal sharp sample, the others in profile.
    let r = a_returns_as(|mut f| {
        if f.t > 3.5 {
            f.faces = f.faces.into_iter().map(in_profile).collect();
        }
        f
    });
    assert_eq!(settings().min_reid_samples, 2);
    assert_eq!(r.persons.len(), 3, "{:?}", r.persons);
    // With the bound at one sample, that single frontal face is enough.
    let one = AnalysisSettings {
        min_reid_samples: 1,
        ..settings()
    };
    let frames: Vec<FrameObservation> = (0..4)
        .map(|k| {
            frame(
                k,
                0,
                vec![(face(100.0, 100.0, 120.0, 0.9, 0.9), Some(person_a()))],
            )
        })
        .chain((4..7).map(|k| {
            let f = face(700.0, 200.0, 120.0, 0.92, 0.9);
            let f = if k == 4 { f } else { in_profile(f) };
            frame(k, 1, vec![(f, Some(person_a()))])
        }))
        .collect();
    let r = track_persons(frames, INTERVAL, &one).expect("tracking");
    assert_eq!(r.persons.len(), 1, "{:?}", r.persons);
}

#[test]
fn without_embeddings_a_return_after_a_cut_is_a_new_person() {
    let frames = (0..6)
        .map(|k| {
            frame(
                k,
                (k / 3) as u8,
                vec![(face(100.0, 100.0, 120.0, 0.9, 0.9), None)],
            )
        })
        .collect();
    let r = run(frames);
    assert_eq!(r.shot_cuts_s, vec![1.5]);
    assert_eq!(r.persons.len(), 2);
    assert!(r.persons.iter().all(|p| p.tracks == 1 && p.frames == 3));
}

#[test]
fn the_same_face_twice_in_a_frame_is_two_persons() {
    // Identical embeddings (a mirror, twins): they share frames, so they are never merged.
    let frames = (0..3)
        .map(|k| {
            frame(
                k,
                0,
                vec![
                    (face(100.0, 100.0, 100.0, 0.9, 0.9), Some(person_a())),
                    (face(700.0, 100.0, 100.0, 0.9, 0.9), Some(person_a())),
                ],
            )
        })
        .collect();
    assert_eq!(run(frames).persons.len(), 2);
}

#[test]
fn a_flickering_gender_probability_is_fused_by_confidence_and_size() {
    let seen = [
        (100.0, 0.9, 0.90),
        (80.0, 0.8, 0.30),
        (120.0, 0.95, 0.95),
        (100.0, 0.9, 0.85),
    ];
    let frames = seen
        .iter()
        .enumerate()
        .map(|(k, &(size, score, p))| frame(k, 0, vec![(face(100.0, 100.0, size, p, score), None)]))
        .collect();
    let r = run(frames);
    assert_eq!(r.persons.len(), 1);
    let (num, den) = seen.iter().fold((0.0, 0.0), |(n, d), &(size, score, p)| {
        (n + score * size * p, d + score * size)
    });
    let expected = num / den; // 285.0 / 358.0 ≈ 0.796
    let g = r.persons[0].attribute("gender").unwrap();
    assert!((g.probability("male") - expected).abs() < 1e-5, "{g:?}");
    assert!((g.probability("female") - (1.0 - expected)).abs() < 1e-5);
    assert_eq!(g.label, "male");
    // The flicker frame alone would not have been decided.
    assert!(r.persons[0].median_face_px >= 100.0);
}

#[test]
fn a_short_spurious_track_is_dropped_and_counted() {
    let frames = (0..4)
        .map(|k| {
            let mut faces = vec![(face(100.0, 100.0, 100.0, 0.9, 0.9), None)];
            if k == 2 {
                faces.push((face(800.0, 300.0, 60.0, 0.2, 0.65), None));
            }
            frame(k, 0, faces)
        })
        .collect();
    let r = run(frames);
    assert_eq!(r.dropped_tracks, 1);
    assert_eq!(r.persons.len(), 1);
    assert_eq!(r.timeline[2].persons, vec![1]);
}

#[test]
fn one_missed_detection_does_not_break_a_track() {
    let frames = [0, 1, 3, 4]
        .into_iter()
        .map(|k| {
            frame(
                k,
                0,
                vec![(face(100.0 + 20.0 * k as f32, 100.0, 100.0, 0.9, 0.9), None)],
            )
        })
        .collect::<Vec<_>>();
    let mut with_gap = frames;
    with_gap.insert(2, frame(2, 0, vec![]));
    let r = run(with_gap);
    assert_eq!(r.persons.len(), 1);
    let p = &r.persons[0];
    assert_eq!((p.tracks, p.frames, p.screen_time_s), (1, 4, 2.0));
    assert!(r.timeline[2].persons.is_empty());
}

#[test]
fn small_faces_keep_a_person_undecided() {
    let frames = (0..3)
        .map(|k| frame(k, 0, vec![(face(100.0, 100.0, 24.0, 0.02, 0.9), None)]))
        .collect();
    let r = run(frames);
    let g = r.persons[0].attribute("gender").unwrap();
    assert!(g.is_unknown());
    assert_eq!(
        g.unknown_reason,
        Some(crate::domain::UnknownReason::FaceTooSmall)
    );
    assert_eq!(r.persons[0].age.as_ref().unwrap().band, UNKNOWN);
    assert_eq!(r.timeline[0].gender_counts[UNKNOWN], 1);
}

#[test]
fn bad_input_is_refused_with_its_time() {
    let s = AnalysisSettings::default();
    assert!(matches!(
        Tracker::new(0.0, s.clone()),
        Err(TrackError::BadInterval(_))
    ));
    let mut t = Tracker::new(INTERVAL, s).unwrap();
    t.push(frame(1, 0, vec![])).unwrap();
    let err = t.push(frame(1, 0, vec![])).unwrap_err();
    assert!(matches!(err, TrackError::TimeNotIncreasing { .. }));
    let mut bad = frame(2, 0, vec![(face(0.0, 0.0, 50.0, 0.5, 0.9), None)]);
    bad.embeddings = vec![person_a(), person_b()];
    assert!(matches!(
        t.push(bad).unwrap_err(),
        TrackError::EmbeddingCount {
            faces: 1,
            embeddings: 2,
            ..
        }
    ));
    let mut unsharp = frame(
        2,
        0,
        vec![(face(0.0, 0.0, 50.0, 0.5, 0.9), Some(person_a()))],
    );
    unsharp.sharpness.clear();
    assert!(matches!(
        t.push(unsharp).unwrap_err(),
        TrackError::SharpnessCount {
            embeddings: 1,
            sharpness: 0,
            ..
        }
    ));
    let mut nan = frame(3, 0, vec![(face(0.0, 0.0, 50.0, 0.5, 0.9), None)]);
    nan.faces[0].bbox.x = f32::NAN;
    let err = t.push(nan).unwrap_err();
    assert!(err.to_string().contains("1.5 s"), "{err}");
    let mut dims = frame(
        4,
        0,
        vec![(face(0.0, 0.0, 50.0, 0.5, 0.9), Some(person_a()))],
    );
    t.push(dims.clone()).unwrap();
    dims.t = 2.5;
    dims.embeddings = vec![vec![1.0; 3]];
    assert!(matches!(
        t.push(dims).unwrap_err(),
        TrackError::EmbeddingDimension { .. }
    ));
    assert!(!err.is_retryable());
    assert_eq!(err.code(), "invalid_tracking_input");
}

#[test]
fn too_many_tracks_is_an_error_not_an_unbounded_table() {
    // MAX_TRACKS + 1 faces on a grid, far apart, seen in two frames: as many two-frame tracks.
    let n = MAX_TRACKS + 1;
    let faces = || -> Vec<(Face, Option<Vec<f32>>)> {
        (0..n)
            .map(|i| {
                let (col, row) = ((i % 50) as f32, (i / 50) as f32);
                (face(col * 100.0, row * 100.0, 20.0, 0.5, 0.9), None)
            })
            .collect()
    };
    let big = |k| FrameObservation {
        slots: 1,
        width: 5000,
        height: 5000,
        ..frame(k, 0, faces())
    };
    let frames = vec![big(0), big(1)];
    let err = track_persons(frames, INTERVAL, &AnalysisSettings::default()).unwrap_err();
    assert_eq!(
        err,
        TrackError::TooManyTracks {
            tracks: n,
            limit: MAX_TRACKS
        }
    );
}

#[test]
fn prior_sightings_tell_which_track_a_face_will_continue() {
    let mut t = Tracker::new(INTERVAL, settings()).unwrap();
    for k in 0..3 {
        let x = 100.0 + 10.0 * k as f32;
        t.push(frame(k, 0, vec![(face(x, 100.0, 80.0, 0.9, 0.9), None)]))
            .unwrap();
    }
    // The same face moved on, and a new face far away: 3 sightings before, and none.
    let next = frame(
        3,
        0,
        vec![
            (face(800.0, 300.0, 80.0, 0.2, 0.9), None),
            (face(130.0, 100.0, 80.0, 0.9, 0.9), None),
        ],
    );
    let boxes: Vec<BoundingBox> = next.faces.iter().map(|f| f.bbox).collect();
    assert_eq!(t.prior_sightings(&next.signature, &boxes, &[]), vec![0, 3]);
    // The query changes nothing: pushing the frame links as it said.
    t.push(next).unwrap();
    let boxes = [face(140.0, 100.0, 80.0, 0.9, 0.9).bbox];
    assert_eq!(t.prior_sightings(&look(0), &boxes, &[]), vec![4]);
    // After a cut every face starts a track.
    assert_eq!(t.prior_sightings(&look(1), &boxes, &[]), vec![0]);
    // An embedding that clearly disagrees vetoes the link, as it does in `push`.
    t.push(frame(
        4,
        0,
        vec![(face(140.0, 100.0, 80.0, 0.9, 0.9), Some(person_a()))],
    ))
    .unwrap();
    let boxes = [face(150.0, 100.0, 80.0, 0.9, 0.9).bbox];
    assert_eq!(t.prior_sightings(&look(0), &boxes, &[person_b()]), vec![0]);
    assert_eq!(t.prior_sightings(&look(0), &boxes, &[person_a()]), vec![5]);
}

#[test]
fn faces_without_perception_count_for_time_not_for_attributes() {
    // One track of four faces; only the first two carry attributes (as when perception is
    // spent on a track's first faces).
    let mut bare = face(110.0, 100.0, 80.0, 0.1, 0.9);
    bare.attributes.clear();
    bare.age = None;
    let frames = vec![
        frame(0, 0, vec![(face(100.0, 100.0, 80.0, 0.9, 0.9), None)]),
        frame(1, 0, vec![(face(105.0, 100.0, 80.0, 0.9, 0.9), None)]),
        frame(2, 0, vec![(bare.clone(), None)]),
        frame(3, 0, vec![(bare, None)]),
    ];
    let r = run(frames);
    assert_eq!(r.persons.len(), 1);
    let p = &r.persons[0];
    assert_eq!(p.frames, 4);
    assert_eq!(p.screen_time_s, 4.0 * INTERVAL);
    // The bare faces' 0.1 would pull the fused probability down; they are not evidence.
    assert!((p_male(p) - 0.9).abs() < 1e-6, "{}", p_male(p));
    assert_eq!(p.age.as_ref().map(|a| a.years), Some(35.0));
    let names: Vec<&str> = p.attributes.iter().map(|a| a.attribute.as_str()).collect();
    assert_eq!(names, vec!["gender", "origin"]);
}
