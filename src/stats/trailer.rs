//! Who is seen in a trailer, per attribute and category: distinct persons, screen time,
//! prominence, first appearance, and soft shares with their intervals.
//!
//! Hard numbers use each person's decided (fused) label, so undecided persons are counted under
//! `unknown`. `share` is the soft share of distinct persons, Σ P / n over persons the model (or
//! a coder) can speak for (probabilities present, median face big enough);
//! `screen_time_share` weights the same persons by their screen time (a share of
//! person-seconds). Screen time counts the sampling slots each frame stands for, so a
//! variable-frame-rate trailer is timed like a constant one. Intervals carry per-person
//! classification uncertainty only: one trailer is not a sample of films.

use crate::domain::{
    Person, TimelineFrame, TrailerAnalysis, TrailerAttributeStats, TrailerCategoryStats, UNKNOWN,
};
use crate::stats::{
    CoderLabels, SoftSums, attribute_list, categories, observe, ratio, soft_figures, total,
};
use std::collections::BTreeSet;

/// One category's figures: the published statistics and what the store keeps beside them.
#[derive(Debug, Clone, PartialEq)]
pub struct TrailerCategoryFigures {
    pub stats: TrailerCategoryStats,
    /// `None` for `unknown` and for attributes without probabilities (age bands).
    pub soft: Option<SoftSums>,
}

/// One attribute's figures on a trailer.
#[derive(Debug, Clone, PartialEq)]
pub struct TrailerAttributeFigures {
    pub attribute: String,
    pub total_persons: u32,
    pub unknown_persons: u32,
    /// Persons whose label comes from a coder.
    pub coded: u32,
    pub categories: Vec<TrailerCategoryFigures>,
}

impl TrailerAttributeFigures {
    pub fn into_stats(self) -> TrailerAttributeStats {
        TrailerAttributeStats {
            attribute: self.attribute,
            total_persons: self.total_persons,
            unknown_persons: self.unknown_persons,
            categories: self.categories.into_iter().map(|c| c.stats).collect(),
        }
    }
}

/// Statistics per attribute: every `(name, labels)` given, then "origin" if absent, then
/// "age_band" over `age_bands`; one row per label (declared or met), then `unknown`.
pub fn trailer_statistics(
    persons: &[Person],
    timeline: &[TimelineFrame],
    sample_interval_s: f64,
    attributes: &[(String, Vec<String>)],
    age_bands: &[String],
) -> Vec<TrailerAttributeStats> {
    attribute_list(attributes, age_bands)
        .iter()
        .map(|(name, labels)| {
            let none = CoderLabels::none();
            trailer_figures(persons, timeline, sample_interval_s, name, labels, &none).into_stats()
        })
        .collect()
}

/// The figures of one attribute of a recorded trailer, with coders' labels (by person id): its
/// rows are those its statistics declared, plus what [`CoderLabels`] adds.
pub fn recorded_trailer_figures(
    trailer: &TrailerAnalysis,
    attribute: &str,
    coder: &CoderLabels,
) -> TrailerAttributeFigures {
    let declared: Vec<String> = trailer
        .statistics
        .iter()
        .filter(|s| s.attribute == attribute)
        .flat_map(|s| s.categories.iter().map(|c| c.category.clone()))
        .collect();
    // The pipeline samples every 1 / sample_rate seconds.
    let interval = if trailer.sample_rate > 0.0 {
        1.0 / trailer.sample_rate
    } else {
        0.0
    };
    let (persons, timeline) = (&trailer.persons, &trailer.timeline);
    trailer_figures(persons, timeline, interval, attribute, &declared, coder)
}

/// One attribute's figures over `persons` seen along `timeline`.
pub fn trailer_figures(
    persons: &[Person],
    timeline: &[TimelineFrame],
    sample_interval_s: f64,
    name: &str,
    declared: &[String],
    coder: &CoderLabels,
) -> TrailerAttributeFigures {
    let observations = observe(
        name,
        persons
            .iter()
            .map(|p| (p.id, p.attribute(name), p.age.as_ref())),
        coder,
    );
    let unknown_persons = observations.iter().filter(|o| o.label == UNKNOWN).count() as u32;
    let screen_times: Vec<f64> = persons.iter().map(|p| p.screen_time_s).collect();
    let all_slots: u32 = timeline.iter().map(|f| f.slots).sum();

    let rows = categories(declared, coder, &observations)
        .into_iter()
        .map(|category| {
            let mine: Vec<&Person> = persons
                .iter()
                .zip(&observations)
                .filter(|(_, o)| o.label == category)
                .map(|(p, _)| p)
                .collect();
            let ids: BTreeSet<u32> = mine.iter().map(|p| p.id).collect();
            let slots_seen: u32 = timeline
                .iter()
                .filter(|f| f.persons.iter().any(|id| ids.contains(id)))
                .map(|f| f.slots)
                .sum();
            let person_seconds = total(mine.iter().map(|p| p.screen_time_s));
            let soft = soft_figures(name, &observations, &screen_times, &category);
            let stats = TrailerCategoryStats {
                persons: mine.len() as u32,
                soft_persons: soft.count,
                screen_time_s: f64::from(slots_seen) * sample_interval_s,
                person_seconds,
                frame_share: ratio(f64::from(slots_seen), f64::from(all_slots)),
                prominence_s: total(mine.iter().map(|p| p.prominence_s)),
                first_appearance_s: mine.iter().map(|p| p.first_seen_s).min_by(f64::total_cmp),
                share: soft.share,
                share_interval: soft.share_interval,
                screen_time_share: soft.weighted_share,
                screen_time_share_interval: soft.weighted_interval,
                category,
            };
            TrailerCategoryFigures {
                stats,
                soft: soft.sums,
            }
        })
        .collect();
    TrailerAttributeFigures {
        attribute: name.to_string(),
        total_persons: persons.len() as u32,
        unknown_persons,
        coded: observations.iter().filter(|o| o.coded).count() as u32,
        categories: rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AnalysisSettings;
    use crate::domain::Face;
    use crate::domain::{AgeEstimate, AttributeEstimate, BoundingBox};
    use crate::stats::poster::{AGE_BAND, ORIGIN};
    use crate::track::{FrameObservation, FrameSignature, track_persons};
    use std::collections::BTreeMap;

    fn person(id: u32, p_male: f32, frames: &[usize], face_px: f32) -> Person {
        let s = AnalysisSettings::default();
        let gender = AttributeEstimate::decide(
            "gender",
            BTreeMap::from([
                ("female".to_string(), 1.0 - p_male),
                ("male".to_string(), p_male),
            ]),
            s.min_attribute_confidence,
            face_px,
            s.min_reliable_face_px,
        );
        Person {
            id,
            attributes: vec![gender, AttributeEstimate::not_configured(ORIGIN)],
            age: Some(AgeEstimate {
                years: 30.0,
                band: "30-44".into(),
                model: None,
                by_model: Vec::new(),
            }),
            first_seen_s: frames[0] as f64 * 0.5,
            last_seen_s: *frames.last().unwrap() as f64 * 0.5,
            screen_time_s: frames.len() as f64 * 0.5,
            prominence_s: frames.len() as f64 * 0.5 * 0.01,
            frames: frames.len() as u32,
            tracks: 1,
            key_frame_s: frames[0] as f64 * 0.5,
            key_box: BoundingBox {
                x: 0.0,
                y: 0.0,
                width: face_px,
                height: face_px,
            },
            median_face_px: face_px,
        }
    }

    fn timeline(persons: &[(u32, &[usize])], frames: usize) -> Vec<TimelineFrame> {
        (0..frames)
            .map(|k| TimelineFrame {
                slots: 1,
                t: k as f64 * 0.5,
                persons: persons
                    .iter()
                    .filter(|(_, fs)| fs.contains(&k))
                    .map(|(id, _)| *id)
                    .collect(),
                gender_counts: BTreeMap::new(),
            })
            .collect()
    }

    fn gender() -> Vec<(String, Vec<String>)> {
        vec![(
            "gender".to_string(),
            vec!["female".to_string(), "male".to_string()],
        )]
    }

    fn bands() -> Vec<String> {
        AnalysisSettings::default().age_bands()
    }

    fn row<'a>(s: &'a [TrailerAttributeStats], attr: &str, cat: &str) -> &'a TrailerCategoryStats {
        s.iter()
            .find(|a| a.attribute == attr)
            .and_then(|a| a.categories.iter().find(|c| c.category == cat))
            .unwrap_or_else(|| panic!("no row {attr}/{cat}"))
    }

    #[test]
    fn screen_time_union_person_seconds_and_shares() {
        // 10 sampled frames. Two women overlap in frames 2..=4; a man in 0..=5; an undecided
        // person (tiny face) in 8..=9; nobody in frame 7.
        let (w1, w2, m, u): (&[usize], &[usize], &[usize], &[usize]) = (
            &[0, 1, 2, 3, 4],
            &[2, 3, 4, 5, 6],
            &[0, 1, 2, 3, 4, 5],
            &[8, 9],
        );
        let persons = vec![
            person(1, 0.02, w1, 100.0),
            person(2, 0.1, w2, 100.0),
            person(3, 0.97, m, 100.0),
            person(4, 0.5, u, 12.0),
        ];
        let tl = timeline(&[(1, w1), (2, w2), (3, m), (4, u)], 10);
        let s = trailer_statistics(&persons, &tl, 0.5, &gender(), &bands());
        assert_eq!(s[0].attribute, "gender");
        assert_eq!((s[0].total_persons, s[0].unknown_persons), (4, 1));

        let f = row(&s, "gender", "female");
        assert_eq!(f.persons, 2);
        // Union: frames 0..=6 → 7 × 0.5 s; person-seconds 2.5 + 2.5.
        assert_eq!(f.screen_time_s, 3.5);
        assert_eq!(f.person_seconds, 5.0);
        assert!((f.frame_share - 0.7).abs() < 1e-12);
        assert!((f.prominence_s - 0.05).abs() < 1e-12);
        assert_eq!(f.first_appearance_s, Some(0.0));
        assert!((f.soft_persons - (0.98 + 0.9 + 0.03 + 0.5)).abs() < 1e-5);
        // The tiny face is left out of the share: (0.98 + 0.9 + 0.03) / 3.
        assert!((f.share - 1.91 / 3.0).abs() < 1e-5);
        let i = f.share_interval.unwrap();
        assert!(i.low <= f.share && f.share <= i.high);
        // Person-seconds share: (0.98·2.5 + 0.9·2.5 + 0.03·3) / 8.
        assert!((f.screen_time_share - (0.98 * 2.5 + 0.9 * 2.5 + 0.03 * 3.0) / 8.0).abs() < 1e-5);
        assert!(f.screen_time_share_interval.is_some());

        let m = row(&s, "gender", "male");
        assert_eq!(
            (m.persons, m.screen_time_s, m.person_seconds),
            (1, 3.0, 3.0)
        );
        let u = row(&s, "gender", UNKNOWN);
        assert_eq!(
            (u.persons, u.screen_time_s, u.first_appearance_s),
            (1, 1.0, Some(4.0))
        );
        assert!((u.share - 0.25).abs() < 1e-12);
        assert!((u.screen_time_share - 1.0 / 9.0).abs() < 1e-12);

        let origin = s.iter().find(|a| a.attribute == ORIGIN).unwrap();
        assert_eq!((origin.unknown_persons, origin.categories.len()), (4, 1));
        let age = row(&s, AGE_BAND, "30-44");
        assert_eq!((age.persons, age.share_interval), (4, None));
        assert_eq!(row(&s, AGE_BAND, "60+").persons, 0);
    }

    #[test]
    fn a_category_never_seen_has_a_zero_row() {
        let persons = vec![person(1, 0.99, &[0, 1], 100.0)];
        let tl = timeline(&[(1, &[0, 1])], 2);
        let s = trailer_statistics(&persons, &tl, 0.5, &gender(), &bands());
        let f = row(&s, "gender", "female");
        assert_eq!(
            (f.persons, f.screen_time_s, f.first_appearance_s),
            (0, 0.0, None)
        );
        assert!(f.share < 0.02);
    }

    #[test]
    fn tracker_output_feeds_the_statistics() {
        // End to end on synthetic frames: one man in 4 frames, nobody in the 5th.
        let settings = AnalysisSettings::default();
        let sig = FrameSignature::from_image(&image::RgbImage::new(4, 4));
        let face = |x: f32| {
            let probs = BTreeMap::from([("female".to_string(), 0.05), ("male".to_string(), 0.95)]);
            Face {
                bbox: BoundingBox {
                    x,
                    y: 50.0,
                    width: 100.0,
                    height: 100.0,
                },
                landmarks: [[0.0; 2]; 5],
                detection_score: 0.9,
                size_px: 100.0,
                attributes: vec![AttributeEstimate::decide(
                    "gender", probs, 0.75, 100.0, 40.0,
                )],
                age: None,
            }
        };
        let frames = (0..5).map(|k| FrameObservation {
            slots: 1,
            t: k as f64 * 0.5,
            width: 1000,
            height: 500,
            signature: sig.clone(),
            faces: if k < 4 {
                vec![face(100.0 + 10.0 * k as f32)]
            } else {
                vec![]
            },
            embeddings: vec![],
            sharpness: vec![],
        });
        let r = track_persons(frames, 0.5, &settings).unwrap();
        let s = trailer_statistics(
            &r.persons,
            &r.timeline,
            0.5,
            &gender(),
            &settings.age_bands(),
        );
        let m = row(&s, "gender", "male");
        assert_eq!((m.persons, m.screen_time_s), (1, 2.0));
        assert!((m.frame_share - 0.8).abs() < 1e-12);
        assert!((m.prominence_s - 4.0 * 0.5 * 0.02).abs() < 1e-12);
        assert_eq!(row(&s, AGE_BAND, UNKNOWN).persons, 1);
    }

    #[test]
    fn coders_who_agree_change_nothing_and_screen_time_counts_slots() {
        // Three decoded frames standing for 1, 3 and 2 sampling slots (variable frame rate).
        let mut tl = timeline(&[(1, &[0, 1]), (2, &[1, 2])], 3);
        for (frame, slots) in tl.iter_mut().zip([1, 3, 2]) {
            frame.slots = slots;
        }
        let persons = vec![
            person(1, 0.0, &[0, 1], 100.0),
            person(2, 1.0, &[1, 2], 100.0),
        ];
        let declared = vec!["female".to_string(), "male".to_string()];
        let figures = |labels: &[(u32, &str)]| {
            let coder = CoderLabels {
                labels: labels.iter().map(|(n, l)| (*n, l.to_string())).collect(),
                scheme: declared.clone(),
            };
            trailer_figures(&persons, &tl, 0.5, "gender", &declared, &coder)
        };
        let model = figures(&[]);
        let agreed = figures(&[(1, "female"), (2, "male")]);
        assert_eq!((model.coded, agreed.coded), (0, 2));
        assert_eq!(model.categories, agreed.categories);
        let f = &agreed.categories[0].stats;
        assert_eq!((f.category.as_str(), f.screen_time_s), ("female", 2.0));
        assert!((f.frame_share - 4.0 / 6.0).abs() < 1e-12);

        // A coder who says person 1 is a man: both men, certainly.
        let moved = figures(&[(1, "male")]);
        let m = &moved.categories[1].stats;
        assert_eq!((m.category.as_str(), m.persons), ("male", 2));
        assert_eq!((m.screen_time_s, m.frame_share, m.share), (3.0, 1.0, 1.0));
        let i = m.share_interval.expect("interval");
        assert_eq!((i.low, i.high), (1.0, 1.0));
        assert_eq!(
            moved.categories[1].soft.map(|s| (s.n, s.var)),
            Some((2.0, 0.0))
        );
    }
}
