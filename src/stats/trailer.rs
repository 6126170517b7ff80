//! Who is seen in a trailer, per attribute and category: distinct persons, screen time,
//! prominence, first appearance, and soft shares with their intervals.
//!
//! Hard numbers use each person's decided (fused) label, so undecided persons are counted under
//! `unknown`. `share` is the soft share of distinct persons, Σ P / n over persons the model can
//! speak for (probabilities present, median face big enough); `screen_time_share` weights the
//! same persons by their screen time (a share of person-seconds). Intervals carry per-person
//! classification uncertainty only: one trailer is not a sample of films.

use crate::domain::{Person, TimelineFrame, TrailerAttributeStats, TrailerCategoryStats};
use crate::domain::{UNKNOWN, UnknownReason};
use crate::stats::poster::{AGE_BAND, ORIGIN};
use crate::stats::soft_share;
use std::collections::{BTreeMap, BTreeSet};

/// One person as an attribute's statistics see it.
struct Observation {
    label: String,
    probabilities: BTreeMap<String, f64>,
    eligible: bool,
}

impl Observation {
    fn p(&self, category: &str) -> f64 {
        self.probabilities.get(category).copied().unwrap_or(0.0)
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
    let mut names: Vec<(String, Vec<String>)> = attributes.to_vec();
    if !names.iter().any(|(n, _)| n == ORIGIN) {
        names.push((ORIGIN.to_string(), Vec::new()));
    }
    let mut stats: Vec<TrailerAttributeStats> = names
        .iter()
        .map(|(name, labels)| {
            let observations: Vec<Observation> = persons
                .iter()
                .map(|person| match person.attribute(name) {
                    Some(est) => Observation {
                        label: est.label.clone(),
                        eligible: !est.probabilities.is_empty()
                            && est.unknown_reason != Some(UnknownReason::FaceTooSmall),
                        probabilities: est
                            .probabilities
                            .iter()
                            .map(|(l, p)| (l.clone(), f64::from(*p)))
                            .collect(),
                    },
                    None => Observation {
                        label: UNKNOWN.to_string(),
                        probabilities: BTreeMap::new(),
                        eligible: false,
                    },
                })
                .collect();
            let view = View {
                persons,
                observations: &observations,
                timeline,
                interval_s: sample_interval_s,
            };
            view.attribute_stats(name, labels, true)
        })
        .collect();
    // Age has no per-band probabilities: soft = hard, and no interval is claimed.
    let observations: Vec<Observation> = persons
        .iter()
        .map(|person| {
            let band = person
                .age
                .as_ref()
                .map_or(UNKNOWN.to_string(), |a| a.band.clone());
            let known = band != UNKNOWN;
            Observation {
                probabilities: if known {
                    BTreeMap::from([(band.clone(), 1.0)])
                } else {
                    BTreeMap::new()
                },
                label: band,
                eligible: known,
            }
        })
        .collect();
    let view = View {
        persons,
        observations: &observations,
        timeline,
        interval_s: sample_interval_s,
    };
    stats.push(view.attribute_stats(AGE_BAND, age_bands, false));
    stats
}

struct View<'a> {
    persons: &'a [Person],
    observations: &'a [Observation],
    timeline: &'a [TimelineFrame],
    interval_s: f64,
}

impl View<'_> {
    fn attribute_stats(
        &self,
        name: &str,
        declared: &[String],
        with_interval: bool,
    ) -> TrailerAttributeStats {
        let mut categories: Vec<String> =
            declared.iter().filter(|l| *l != UNKNOWN).cloned().collect();
        for obs in self.observations {
            if obs.label != UNKNOWN && !categories.contains(&obs.label) {
                categories.push(obs.label.clone());
            }
        }
        categories.push(UNKNOWN.to_string());

        let eligible: Vec<usize> = (0..self.persons.len())
            .filter(|&i| self.observations[i].eligible)
            .collect();
        let excluded = (self.persons.len() - eligible.len()) as u32;
        let unknown_persons = self
            .observations
            .iter()
            .filter(|o| o.label == UNKNOWN)
            .count() as u32;
        let total_person_seconds: f64 = self.persons.iter().map(|p| p.screen_time_s).sum();

        let rows = categories
            .iter()
            .map(|category| {
                let mine: Vec<&Person> = self
                    .persons
                    .iter()
                    .zip(self.observations)
                    .filter(|(_, o)| o.label == *category)
                    .map(|(p, _)| p)
                    .collect();
                let ids: BTreeSet<u32> = mine.iter().map(|p| p.id).collect();
                let slots_seen: u32 = self
                    .timeline
                    .iter()
                    .filter(|f| f.persons.iter().any(|id| ids.contains(id)))
                    .map(|f| f.slots)
                    .sum();
                let all_slots: u32 = self.timeline.iter().map(|f| f.slots).sum();
                let person_seconds: f64 = mine.iter().map(|p| p.screen_time_s).sum();
                let (share, share_interval, screen_time_share, screen_time_share_interval) =
                    if category == UNKNOWN {
                        let share = ratio(unknown_persons as f64, self.persons.len() as f64);
                        (
                            share,
                            None,
                            ratio(person_seconds, total_person_seconds),
                            None,
                        )
                    } else {
                        let p: Vec<f64> = eligible
                            .iter()
                            .map(|&i| self.observations[i].p(category))
                            .collect();
                        let w: Vec<f64> = eligible
                            .iter()
                            .map(|&i| self.persons[i].screen_time_s)
                            .collect();
                        let context = (name, category.as_str());
                        let (share, interval) =
                            soft_share(p.clone(), None, excluded, with_interval, context);
                        let (time_share, time_interval) =
                            soft_share(p, Some(w), excluded, with_interval, context);
                        (share, interval, time_share, time_interval)
                    };
                TrailerCategoryStats {
                    category: category.clone(),
                    persons: mine.len() as u32,
                    soft_persons: self.observations.iter().map(|o| o.p(category)).sum(),
                    screen_time_s: f64::from(slots_seen) * self.interval_s,
                    person_seconds,
                    frame_share: ratio(f64::from(slots_seen), f64::from(all_slots)),
                    prominence_s: mine.iter().map(|p| p.prominence_s).sum(),
                    first_appearance_s: mine.iter().map(|p| p.first_seen_s).min_by(f64::total_cmp),
                    share,
                    share_interval,
                    screen_time_share,
                    screen_time_share_interval,
                }
            })
            .collect();
        TrailerAttributeStats {
            attribute: name.to_string(),
            total_persons: self.persons.len() as u32,
            unknown_persons,
            categories: rows,
        }
    }
}

fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 { num / den } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AnalysisSettings;
    use crate::domain::Face;
    use crate::domain::{AgeEstimate, AttributeEstimate, BoundingBox};
    use crate::track::{FrameObservation, FrameSignature, track_persons};

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
            person(4, 0.5, u, 20.0),
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
}
