//! The `0-17` band, measured: labelled faces a coder can tell are a child or a teenager
//! (`"age_group": "minor"`) or an adult (`"adult"`), and how often each age model, and the
//! age regard reports (the switch between them, `second_opinion_age_below`), puts them under
//! the first band edge. The labelled set has no ages in years, so this is a check of the band
//! that matters most to the figures (minors on screen), not of the years.

use super::poster::PosterOutcomes;

/// The truth's age groups, in the table's order.
pub const AGE_GROUPS: [&str; 2] = ["minor", "adult"];

/// One estimator on the labelled faces of one part.
#[derive(Debug, Clone, PartialEq)]
pub struct AgeGroupRow {
    /// A model's manifest name, or "reported" for the age regard reports.
    pub estimator: String,
    /// Per group of [`AGE_GROUPS`]: found faces with that truth and an estimate, and those
    /// estimated under `minor_below` years.
    pub found: [u32; 2],
    pub under: [u32; 2],
}

/// Every age model's estimate and the reported one, on found faces of `min_px` and more whose
/// truth has an age group, against `minor_below` (the first age band edge).
pub fn age_groups(outcomes: &PosterOutcomes, minor_below: f32, min_px: f32) -> Vec<AgeGroupRow> {
    let mut rows: Vec<AgeGroupRow> = Vec::new();
    let mut add = |estimator: &str, group: usize, years: f32| {
        let i = match rows.iter().position(|r| r.estimator == estimator) {
            Some(i) => i,
            None => {
                rows.push(AgeGroupRow {
                    estimator: estimator.to_string(),
                    found: [0; 2],
                    under: [0; 2],
                });
                rows.len() - 1
            }
        };
        rows[i].found[group] += 1;
        rows[i].under[group] += u32::from(years < minor_below);
    };
    for f in &outcomes.faces {
        let Some(group) = f
            .truth_age_group
            .as_deref()
            .and_then(|g| AGE_GROUPS.iter().position(|a| *a == g))
        else {
            continue;
        };
        let Some(age) = f
            .detected
            .as_ref()
            .filter(|d| d.size_px >= min_px)
            .and_then(|d| d.age.as_ref())
        else {
            continue;
        };
        for opinion in &age.by_model {
            if let Some(y) = opinion.years {
                add(&opinion.model, group, y);
            }
        }
        add("reported", group, age.years);
    }
    // Models first (in the order met), the reported age last.
    rows.sort_by_key(|r| r.estimator == "reported");
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AgeEstimate, BoundingBox, Face, ModelOpinion};
    use crate::evaluate::FaceOutcome;

    fn face(group: Option<&str>, dlib: f32, faceapi: f32, reported: f32) -> FaceOutcome {
        let opinion = |model: &str, y: f32| ModelOpinion {
            model: model.into(),
            probabilities: Default::default(),
            years: Some(y),
        };
        FaceOutcome {
            media: "x.jpg".into(),
            truth_gender: "female".into(),
            truth_height: 100.0,
            truth_age_group: group.map(str::to_string),
            detected: Some(Face {
                bbox: BoundingBox {
                    x: 0.0,
                    y: 0.0,
                    width: 80.0,
                    height: 100.0,
                },
                landmarks: Default::default(),
                detection_score: 0.9,
                size_px: 100.0,
                attributes: vec![],
                age: Some(AgeEstimate {
                    years: reported,
                    band: String::new(),
                    model: None,
                    by_model: vec![opinion("dlib", dlib), opinion("faceapi", faceapi)],
                }),
            }),
        }
    }

    #[test]
    fn each_estimator_counts_minors_and_adults_under_the_edge() {
        let outcomes = PosterOutcomes {
            faces: vec![
                // A teenager dlib calls 26, face-api 15: reported 15.
                face(Some("minor"), 26.0, 15.0, 15.0),
                face(Some("minor"), 12.0, 11.0, 11.0),
                // An adult face-api calls 17 and dlib 30: the switch reports 17.
                face(Some("adult"), 30.0, 17.0, 17.0),
                face(Some("adult"), 40.0, 35.0, 40.0),
                // No age group in the truth: not counted.
                face(None, 10.0, 10.0, 10.0),
            ],
            ..PosterOutcomes::default()
        };
        let rows = age_groups(&outcomes, 18.0, 24.0);
        let names: Vec<&str> = rows.iter().map(|r| r.estimator.as_str()).collect();
        assert_eq!(names, ["dlib", "faceapi", "reported"]);
        assert_eq!((rows[0].found, rows[0].under), ([2, 2], [1, 0]));
        assert_eq!((rows[1].found, rows[1].under), ([2, 2], [2, 1]));
        assert_eq!((rows[2].found, rows[2].under), ([2, 2], [2, 1]));
        // Faces under the size floor are left out.
        assert!(age_groups(&outcomes, 18.0, 200.0).is_empty());
    }
}
