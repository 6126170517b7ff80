//! The accuracy floor CI enforces on the committed fixtures (fixtures/evaluation-floor.toml).

use super::poster::PosterOutcomes;
use anyhow::Context;
use serde::Deserialize;
use std::path::Path;

/// Gender accuracy is held up on found faces at least this tall...
pub const FLOOR_GENDER_MIN_PX: f32 = 40.0;
/// ...and detection recall on faces at least this tall.
pub const FLOOR_RECALL_MIN_PX: f32 = 32.0;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Floor {
    /// Accuracy of decided gender labels on found faces of at least 40 px.
    pub min_gender_accuracy_40px: f64,
    /// Detection recall on faces of at least 32 px.
    pub min_recall_32px: f64,
}

/// Today's figures against the floor.
#[derive(Debug, Clone, PartialEq)]
pub struct FloorCheck {
    pub floor: Floor,
    pub gender_accuracy_40px: Option<f64>,
    pub recall_32px: Option<f64>,
    /// The breaches, in words; empty when the evaluation is above every floor.
    pub breaches: Vec<String>,
}

impl Floor {
    pub fn load(path: &Path) -> anyhow::Result<Floor> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{}: invalid floor file", path.display()))
    }

    pub fn check(
        &self,
        posters: &PosterOutcomes,
        min_confidence: f32,
        min_reliable_px: f32,
    ) -> FloorCheck {
        let gender_accuracy =
            posters.gender_accuracy(FLOOR_GENDER_MIN_PX, min_confidence, min_reliable_px);
        let recall = posters.recall(FLOOR_RECALL_MIN_PX);
        let breaches = [
            breach(
                gender_accuracy,
                self.min_gender_accuracy_40px,
                "gender accuracy on faces >= 40 px",
                "no decided face of 40 px or more: cannot check the gender floor",
            ),
            breach(
                recall,
                self.min_recall_32px,
                "detection recall on faces >= 32 px",
                "no truth face of 32 px or more: cannot check the recall floor",
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        FloorCheck {
            floor: self.clone(),
            gender_accuracy_40px: gender_accuracy,
            recall_32px: recall,
            breaches,
        }
    }
}

/// Why `today` does not hold `floor`, if it does not: `figure` names it, `missing` says what
/// is wrong when there is no figure at all.
fn breach(today: Option<f64>, floor: f64, figure: &str, missing: &str) -> Option<String> {
    match today {
        Some(v) if v >= floor => None,
        Some(v) => Some(format!(
            "{figure} is {:.1}%, below the floor {:.1}%",
            v * 100.0,
            floor * 100.0
        )),
        None => Some(missing.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::poster::tests::outcome;

    fn floor(accuracy: f64, recall: f64) -> Floor {
        Floor {
            min_gender_accuracy_40px: accuracy,
            min_recall_32px: recall,
        }
    }

    fn breaches(floor: Floor, posters: &PosterOutcomes) -> Vec<String> {
        floor.check(posters, 0.75, 40.0).breaches
    }

    #[test]
    fn floor_holds_on_a_perfect_evaluation_and_breaks_when_a_figure_drops_below_it() {
        let mut eval = PosterOutcomes::default();
        for i in 0..9 {
            eval.faces
                .push(outcome("female", 60.0 + i as f32, Some(0.95)));
            eval.faces
                .push(outcome("male", 60.0 + i as f32, Some(0.05)));
        }
        assert!(breaches(floor(0.95, 0.95), &eval).is_empty());
        // One man labelled female: accuracy 18/19 = 94.7% < 95%.
        eval.faces.push(outcome("male", 90.0, Some(0.97)));
        let check = floor(0.95, 0.95).check(&eval, 0.75, 40.0);
        assert_eq!(check.breaches.len(), 1, "{check:?}");
        assert!(check.breaches[0].contains("gender accuracy"), "{check:?}");
        assert_eq!(check.gender_accuracy_40px, Some(18.0 / 19.0));
        // A missed face of 32 px and more: recall 19/20 = 95% holds a 0.95 floor, not 0.96.
        eval.faces.push(outcome("female", 35.0, None));
        assert_eq!(breaches(floor(0.9, 0.95), &eval), Vec::<String>::new());
        let breached = breaches(floor(0.9, 0.96), &eval);
        assert_eq!(breached.len(), 1, "{breached:?}");
        assert!(breached[0].contains("recall"), "{breached:?}");
        // A floor above 100% always breaks: this is how CI's failure path is exercised.
        assert_eq!(breaches(floor(1.01, 1.01), &eval).len(), 2);
    }

    #[test]
    fn floor_reports_an_evaluation_with_nothing_to_measure() {
        let breached = breaches(floor(0.5, 0.5), &PosterOutcomes::default());
        assert_eq!(breached.len(), 2, "{breached:?}");
    }

    #[test]
    fn the_committed_floor_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/evaluation-floor.toml");
        let floor = Floor::load(&path).expect("the committed floor parses");
        assert!(floor.min_gender_accuracy_40px > 0.0 && floor.min_gender_accuracy_40px <= 1.0);
        assert!(floor.min_recall_32px > 0.0 && floor.min_recall_32px <= 1.0);
    }
}
