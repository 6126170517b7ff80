//! Trailer persons matched to the truth's persons, by overlap in time and space: does regard
//! merge two people into one person, or split one person into several?
//!
//! The rule. Each face regard attributed to a person on a sampled frame (a sighting) is
//! compared with the truth faces of the shot that holds its time; the truth box at that time is
//! the linear interpolation of the shot's first and last box (the truth moves smoothly, about a
//! pixel off a straight line: fixtures/README.md). The sighting counts for the truth person
//! whose box overlaps it most, if that IoU is at least [`IDENTITY_IOU`]. A found person
//! *covers* a truth person when at least [`MIN_COVER_SIGHTINGS`] of its sightings count for
//! that person (a single stray frame is not a merge). Then:
//! - a **merge** is a found person covering two or more truth persons;
//! - a **split** is a truth person covered by two or more found persons;
//! - a **miss** is a truth person covered by no found person;
//! - an **extra** is a found person covering no truth person (a false face, or too few matched
//!   sightings).

use super::truth::TrailerTruth;
use crate::domain::BoundingBox;
use crate::pipeline::PersonSighting;
use std::collections::{BTreeMap, BTreeSet};

/// Least IoU between a sighting and a truth box for the sighting to count for that person.
pub const IDENTITY_IOU: f32 = 0.3;
/// Sightings a found person needs on a truth person to cover it.
pub const MIN_COVER_SIGHTINGS: u32 = 2;

/// Merges, splits and misses of one trailer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IdentityOutcome {
    pub media: String,
    pub truth_persons: u32,
    pub found_persons: u32,
    /// Found person id → the truth persons it covers (two or more).
    pub merges: Vec<(u32, Vec<String>)>,
    /// Truth person → the found persons covering it (two or more).
    pub splits: Vec<(String, Vec<u32>)>,
    /// Truth persons covered by nobody.
    pub misses: Vec<String>,
    /// Found persons covering nobody.
    pub extras: Vec<u32>,
}

/// Match what was found (`found_persons` persons with ids 1..=n, and their sightings) with the
/// truth of one trailer, by the rule in the module documentation.
pub fn match_identities(
    media: &str,
    truth: &TrailerTruth,
    found_persons: u32,
    sightings: &[PersonSighting],
) -> IdentityOutcome {
    // (found id, truth person) → matched sightings.
    let mut votes: BTreeMap<(u32, &str), u32> = BTreeMap::new();
    for s in sightings {
        let Some(shot) = truth
            .shots
            .iter()
            .find(|sh| sh.start_s <= s.t && s.t < sh.end_s)
        else {
            continue;
        };
        let span = shot.end_s - shot.start_s;
        let frac = if span > 0.0 {
            ((s.t - shot.start_s) / span).clamp(0.0, 1.0) as f32
        } else {
            0.0
        };
        let best = shot
            .faces
            .iter()
            .map(|f| (f.person.as_str(), f.box_at(frac).iou(&s.bbox)))
            .filter(|(_, iou)| *iou >= IDENTITY_IOU)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((person, _)) = best {
            *votes.entry((s.person, person)).or_default() += 1;
        }
    }
    let covers: BTreeSet<(u32, &str)> = votes
        .into_iter()
        .filter(|(_, n)| *n >= MIN_COVER_SIGHTINGS)
        .map(|(k, _)| k)
        .collect();
    let mut by_found: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut by_truth: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for &(found, person) in &covers {
        by_found.entry(found).or_default().push(person.to_string());
        by_truth.entry(person).or_default().push(found);
    }
    let truth_names: BTreeSet<&str> = truth.persons.iter().map(|p| p.person.as_str()).collect();
    IdentityOutcome {
        media: media.to_string(),
        truth_persons: truth_names.len() as u32,
        found_persons,
        merges: by_found
            .iter()
            .filter(|(_, t)| t.len() >= 2)
            .map(|(f, t)| (*f, t.clone()))
            .collect(),
        splits: by_truth
            .iter()
            .filter(|(_, f)| f.len() >= 2)
            .map(|(t, f)| (t.to_string(), f.clone()))
            .collect(),
        misses: truth_names
            .iter()
            .filter(|t| !by_truth.contains_key(*t))
            .map(|t| t.to_string())
            .collect(),
        extras: (1..=found_persons)
            .filter(|f| !by_found.contains_key(f))
            .collect(),
    }
}

impl super::truth::ShotFaceTruth {
    /// The truth box at `frac` (0: first frame, 1: end) of its shot.
    pub fn box_at(&self, frac: f32) -> BoundingBox {
        let v = |i: usize| self.box_first[i] + (self.box_last[i] - self.box_first[i]) * frac;
        BoundingBox {
            x: v(0),
            y: v(1),
            width: v(2),
            height: v(3),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::truth::{PersonTruth, ShotFaceTruth, ShotTruth};

    fn truth() -> TrailerTruth {
        let face = |person: &str, x: f32| ShotFaceTruth {
            person: person.into(),
            box_first: [x, 100.0, 100.0, 100.0],
            box_last: [x + 40.0, 100.0, 100.0, 100.0],
            yaw: 0.0,
        };
        let person = |p: &str| PersonTruth {
            person: p.into(),
            gender: "male".into(),
            seconds_on_screen: 2.0,
        };
        TrailerTruth {
            persons: vec![person("a"), person("b"), person("c")],
            shots: vec![
                ShotTruth {
                    start_s: 0.0,
                    end_s: 2.0,
                    faces: vec![face("a", 0.0), face("b", 400.0)],
                },
                ShotTruth {
                    start_s: 2.0,
                    end_s: 4.0,
                    faces: vec![face("a", 200.0)],
                },
                ShotTruth {
                    start_s: 4.0,
                    end_s: 6.0,
                    faces: vec![face("c", 200.0)],
                },
            ],
        }
    }

    /// Sightings of `person` following truth face at `x` in the shot starting at `start`.
    fn follow(person: u32, start: f64, x: f32) -> Vec<PersonSighting> {
        (0..4)
            .map(|k| PersonSighting {
                t: start + 0.5 * k as f64,
                person,
                bbox: BoundingBox {
                    x: x + 10.0 * k as f32 + 3.0,
                    y: 102.0,
                    width: 96.0,
                    height: 98.0,
                },
            })
            .collect()
    }

    #[test]
    fn a_merge_a_split_a_miss_and_an_extra_are_told_apart() {
        // Found 1 is a (shot 0) and c (shot 2): a merge. Found 2 is b. Found 3 is a again
        // (shot 1): a split of a. Found 4 is nowhere near a face: an extra.
        let mut s = follow(1, 0.0, 0.0);
        s.extend(follow(1, 4.0, 200.0));
        s.extend(follow(2, 0.0, 400.0));
        s.extend(follow(3, 2.0, 200.0));
        s.extend(follow(4, 2.0, 600.0));
        let o = match_identities("t.mp4", &truth(), 4, &s);
        assert_eq!((o.truth_persons, o.found_persons), (3, 4));
        assert_eq!(o.merges, vec![(1, vec!["a".to_string(), "c".to_string()])]);
        assert_eq!(o.splits, vec![("a".to_string(), vec![1, 3])]);
        assert!(o.misses.is_empty());
        assert_eq!(o.extras, vec![4]);
    }

    #[test]
    fn a_single_stray_sighting_is_no_cover_and_nobody_seen_is_a_miss() {
        let mut s = follow(1, 0.0, 0.0);
        s.push(follow(1, 4.0, 200.0)[0]);
        let o = match_identities("t.mp4", &truth(), 1, &s);
        assert!(o.merges.is_empty(), "{o:?}");
        assert_eq!(o.misses, vec!["b".to_string(), "c".to_string()]);
    }
}
