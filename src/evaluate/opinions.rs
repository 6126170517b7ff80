//! Each gender model alone against their combination, on the same faces: decided, right,
//! confidently wrong (decided and wrong), `unknown`, and the errors for women and men. And the
//! stated rule that picks the disagreement margin of the combination (`max_model_disagreement`)
//! on the calibration renders; fixtures/evaluation-method.md states it in words.

use super::poster::GenderErrors;
use crate::domain::ModelOpinion;
use crate::vision::combine::{self, CombineRule};

/// The row name of the combination in the tables.
pub const COMBINATION: &str = "combination";

/// Margins the disagreement rule tries. With two models and a confidence threshold c, a decided
/// mean already implies a disagreement of at most 2·(1 − c), so only margins below that can
/// change a decision; 1.0 is "no margin".
pub const DISAGREEMENT_MARGINS: [f32; 7] = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 1.0];

/// One face to score: its truth gender, its height and every gender model's opinion.
#[derive(Debug, Clone, Copy)]
pub struct Scored<'a> {
    pub truth: &'a str,
    pub size_px: f32,
    pub opinions: &'a [ModelOpinion],
}

/// How one source (a model alone or the combination) does on a set of faces.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SourceRow {
    pub source: String,
    pub faces: u32,
    pub decided: u32,
    pub correct: u32,
    /// Decided and wrong: a label published with confidence that is false.
    pub wrong: u32,
    pub unknown: u32,
    pub women: GenderErrors,
    pub men: GenderErrors,
}

impl SourceRow {
    pub fn accuracy(&self) -> Option<f64> {
        (self.decided > 0).then(|| self.correct as f64 / self.decided as f64)
    }

    pub fn unknown_rate(&self) -> Option<f64> {
        (self.faces > 0).then(|| self.unknown as f64 / self.faces as f64)
    }
}

/// The label `source` gives a face (None: `unknown`): one model alone on its own
/// probabilities, or the combination rule over all of them.
pub fn label(face: &Scored<'_>, source: Option<&str>, rule: &CombineRule) -> Option<String> {
    let opinions: Vec<ModelOpinion> = match source {
        None => face.opinions.to_vec(),
        Some(model) => face
            .opinions
            .iter()
            .filter(|o| o.model == model)
            .cloned()
            .collect(),
    };
    let e = combine::decide("gender", opinions, face.size_px, rule);
    (!e.is_unknown()).then_some(e.label)
}

/// The gender models that gave an opinion on any of the faces, in first-seen order.
pub fn models_of(faces: &[Scored<'_>]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for o in faces.iter().flat_map(|f| f.opinions) {
        if !out.contains(&o.model) {
            out.push(o.model.clone());
        }
    }
    out
}

/// One row for `source` (None: the combination).
pub fn row(faces: &[Scored<'_>], source: Option<&str>, rule: &CombineRule) -> SourceRow {
    let mut r = SourceRow {
        source: source.unwrap_or(COMBINATION).to_string(),
        ..SourceRow::default()
    };
    for f in faces {
        let decided = label(f, source, rule);
        r.faces += 1;
        let errors = match f.truth {
            "female" => Some(&mut r.women),
            "male" => Some(&mut r.men),
            _ => None,
        };
        let (right, wrong) = match &decided {
            None => (false, false),
            Some(l) => (l == f.truth, l != f.truth),
        };
        if let Some(e) = errors {
            e.faces += 1;
            e.wrong += u32::from(wrong);
            e.unknown += u32::from(decided.is_none());
        }
        match decided {
            None => r.unknown += 1,
            Some(_) => {
                r.decided += 1;
                r.correct += u32::from(right);
                r.wrong += u32::from(wrong);
            }
        }
    }
    r
}

/// Every model alone, then the combination.
pub fn rows(faces: &[Scored<'_>], rule: &CombineRule) -> Vec<SourceRow> {
    let models = models_of(faces);
    models
        .iter()
        .map(|m| row(faces, Some(m), rule))
        .chain(std::iter::once(row(faces, None, rule)))
        .collect()
}

/// What the disagreement rule saw and chose.
#[derive(Debug, Clone, PartialEq)]
pub struct MarginChoice {
    /// The combination at each margin of [`DISAGREEMENT_MARGINS`].
    pub rows: Vec<(f32, SourceRow)>,
    /// Each model alone (the margin plays no part).
    pub singles: Vec<SourceRow>,
    /// None when no margin was tried (no face with two opinions).
    pub chosen: Option<f32>,
}

/// The stated rule: among the margins, keep those at which the combination has no more
/// confidently wrong faces than the better single model (the one with fewer); among those take
/// the one with the fewest confidently wrong faces, and on a tie the largest margin (the fewest
/// `unknown`). When no margin qualifies, the fewest confidently wrong, largest on a tie.
pub fn choose_margin(faces: &[Scored<'_>], rule: &CombineRule) -> MarginChoice {
    let models = models_of(faces);
    let singles: Vec<SourceRow> = models.iter().map(|m| row(faces, Some(m), rule)).collect();
    let rows: Vec<(f32, SourceRow)> = DISAGREEMENT_MARGINS
        .iter()
        .map(|&m| {
            let at = CombineRule {
                max_disagreement: m,
                ..*rule
            };
            (m, row(faces, None, &at))
        })
        .collect();
    let best_single = singles.iter().map(|r| r.wrong).min();
    let pick = |candidates: Vec<&(f32, SourceRow)>| {
        candidates
            .into_iter()
            .min_by(|a, b| a.1.wrong.cmp(&b.1.wrong).then(b.0.total_cmp(&a.0)))
            .map(|(m, _)| *m)
    };
    let several = faces.iter().any(|f| f.opinions.len() > 1);
    let chosen = several.then(|| {
        let qualifying: Vec<&(f32, SourceRow)> = rows
            .iter()
            .filter(|(_, r)| best_single.is_none_or(|b| r.wrong <= b))
            .collect();
        if qualifying.is_empty() {
            pick(rows.iter().collect())
        } else {
            pick(qualifying)
        }
    });
    MarginChoice {
        rows,
        singles,
        chosen: chosen.flatten(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(model: &str, p_female: f32) -> ModelOpinion {
        ModelOpinion::probabilities(
            model,
            [
                ("female".to_string(), p_female),
                ("male".to_string(), 1.0 - p_female),
            ]
            .into(),
        )
    }

    const RULE: CombineRule = CombineRule {
        min_confidence: 0.6,
        min_face_px: 24.0,
        max_disagreement: 1.0,
    };

    #[test]
    fn errors_that_fall_on_different_faces_are_caught_by_the_combination() {
        // Model a is confidently wrong on a man, model b on a woman; the third face is easy.
        let faces = [
            vec![op("a", 0.95), op("b", 0.1)],
            vec![op("a", 0.9), op("b", 0.05)],
            vec![op("a", 0.9), op("b", 0.95)],
        ];
        let truths = ["male", "female", "female"];
        let scored: Vec<Scored> = faces
            .iter()
            .zip(truths)
            .map(|(o, t)| Scored {
                truth: t,
                size_px: 100.0,
                opinions: o,
            })
            .collect();
        let r = rows(&scored, &RULE);
        let names: Vec<&str> = r.iter().map(|r| r.source.as_str()).collect();
        assert_eq!(names, ["a", "b", COMBINATION]);
        assert_eq!((r[0].wrong, r[1].wrong), (1, 1));
        assert_eq!(r[0].men.wrong, 1);
        assert_eq!(r[1].women.wrong, 1);
        // The means are 0.525 and 0.475: below 0.6, so unknown, not wrong.
        assert_eq!((r[2].wrong, r[2].unknown, r[2].correct), (0, 2, 1));
        let choice = choose_margin(&scored, &RULE);
        assert_eq!(choice.singles.len(), 2);
        // Every margin gives 0 wrong: the largest (no margin) is chosen.
        assert_eq!(choice.chosen, Some(1.0));
    }

    #[test]
    fn a_margin_is_chosen_when_it_removes_confident_errors() {
        // Model a is sure a man is a woman, b leans male: the mean 0.6875 passes 0.6. (Binary
        // fractions, so that the differences are exact.)
        let faces = [
            vec![op("a", 0.9375), op("b", 0.4375)],
            vec![op("a", 0.875), op("b", 0.8125)],
        ];
        let scored: Vec<Scored> = faces
            .iter()
            .zip(["male", "female"])
            .map(|(o, t)| Scored {
                truth: t,
                size_px: 100.0,
                opinions: o,
            })
            .collect();
        let choice = choose_margin(&scored, &RULE);
        // Margins below 0.5 make the man unknown, and b alone has no confident error, so only
        // those qualify; the woman (disagreement 0.0625) is decided from margin 0.1 up.
        assert_eq!(choice.chosen, Some(0.3));
        let at = |m: f32| &choice.rows.iter().find(|(x, _)| *x == m).unwrap().1;
        assert_eq!((at(0.3).wrong, at(0.3).correct), (0, 1));
        assert_eq!(at(1.0).wrong, 1);
        assert_eq!(at(0.05).correct, 0);
    }
}
