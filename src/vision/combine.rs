//! How several models' opinions on one face become one decision. Gender: the mean of the
//! models' probabilities, `unknown` when two models disagree by more than a margin (one of them
//! is wrong, and nothing says which) or when the mean is not confident enough. Age: one model's
//! estimate, chosen by the age range it falls in. The rule and its thresholds are written down,
//! and chosen, in fixtures/evaluation-method.md; every opinion stays with the face.

use crate::domain::{AttributeEstimate, ModelOpinion, UnknownReason};
use std::collections::BTreeMap;

/// The thresholds of the combination rule (from the analysis settings).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CombineRule {
    pub min_confidence: f32,
    pub min_face_px: f32,
    pub max_disagreement: f32,
}

/// Mean probability per label over the opinions (labels any opinion lacks count 0), and the
/// disagreement: the largest difference between two opinions' probabilities of one label.
/// None without opinions that have probabilities.
pub fn mean_and_disagreement(opinions: &[ModelOpinion]) -> Option<(BTreeMap<String, f32>, f32)> {
    let with: Vec<&ModelOpinion> = opinions
        .iter()
        .filter(|o| !o.probabilities.is_empty())
        .collect();
    if with.is_empty() {
        return None;
    }
    let labels: std::collections::BTreeSet<&String> =
        with.iter().flat_map(|o| o.probabilities.keys()).collect();
    let n = with.len() as f32;
    let mut mean = BTreeMap::new();
    let mut disagreement = 0f32;
    for label in labels {
        let ps: Vec<f32> = with
            .iter()
            .map(|o| o.probabilities.get(label).copied().unwrap_or(0.0))
            .collect();
        let (lo, hi) = ps
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &p| {
                (lo.min(p), hi.max(p))
            });
        disagreement = disagreement.max(hi - lo);
        mean.insert(label.clone(), ps.iter().sum::<f32>() / n);
    }
    Some((mean, disagreement))
}

/// Decide one attribute from every model's opinion. One opinion: the usual decision on its
/// probabilities. Several: the decision on their mean, except that a face big enough to decide
/// whose models disagree beyond `max_disagreement` is `unknown` (models_disagree). The
/// opinions are kept in `by_model` when there are several.
pub fn decide(
    attribute: &str,
    opinions: Vec<ModelOpinion>,
    face_px: f32,
    rule: &CombineRule,
) -> AttributeEstimate {
    let Some((mean, disagreement)) = mean_and_disagreement(&opinions) else {
        return AttributeEstimate::not_configured(attribute);
    };
    let mut estimate = AttributeEstimate::decide(
        attribute,
        mean,
        rule.min_confidence,
        face_px,
        rule.min_face_px,
    );
    let several = opinions
        .iter()
        .filter(|o| !o.probabilities.is_empty())
        .count()
        > 1;
    if several {
        let too_small = estimate.unknown_reason == Some(UnknownReason::FaceTooSmall);
        if !too_small && disagreement > rule.max_disagreement {
            estimate.label = crate::domain::UNKNOWN.to_string();
            estimate.unknown_reason = Some(UnknownReason::ModelsDisagree);
        }
        estimate.by_model = opinions;
    }
    estimate
}

/// The age estimate to report: the second opinion's (a `gender_age` model's, `second`) when it
/// is below `second_below_years`, the age model's (`primary`) otherwise; whichever exists when
/// only one does. Returns the chosen opinion.
pub fn choose_age<'a>(
    primary: Option<&'a ModelOpinion>,
    second: Option<&'a ModelOpinion>,
    second_below_years: f32,
) -> Option<&'a ModelOpinion> {
    match (primary, second) {
        (Some(p), Some(s)) => match s.years {
            Some(y) if y < second_below_years => Some(s),
            _ => Some(p),
        },
        (p, s) => p.or(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UNKNOWN;

    fn gender(model: &str, p_female: f32) -> ModelOpinion {
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
        min_confidence: 0.8,
        min_face_px: 24.0,
        max_disagreement: 0.5,
    };

    #[test]
    fn two_agreeing_models_decide_on_their_mean_and_both_are_kept() {
        let e = decide(
            "gender",
            vec![gender("a", 0.9), gender("b", 0.8)],
            100.0,
            &RULE,
        );
        assert_eq!(e.label, "female");
        assert!((e.probability("female") - 0.85).abs() < 1e-6);
        assert_eq!(e.by_model.len(), 2);
        assert_eq!(e.by_model[1].model, "b");
    }

    #[test]
    fn models_that_disagree_beyond_the_margin_give_unknown_even_when_the_mean_is_confident() {
        // Mean 0.86 would pass the confidence bar; |0.99 - 0.73| = 0.26 is within 0.5...
        let e = decide(
            "gender",
            vec![gender("a", 0.99), gender("b", 0.73)],
            100.0,
            &RULE,
        );
        assert_eq!(e.label, "female");
        // ...but a confident "female" against a confident "male" is no decision.
        let e = decide(
            "gender",
            vec![gender("a", 0.99), gender("b", 0.05)],
            100.0,
            &RULE,
        );
        assert_eq!(e.label, UNKNOWN);
        assert_eq!(e.unknown_reason, Some(UnknownReason::ModelsDisagree));
        let strict = CombineRule {
            max_disagreement: 0.2,
            ..RULE
        };
        let e = decide(
            "gender",
            vec![gender("a", 0.99), gender("b", 0.73)],
            100.0,
            &strict,
        );
        assert_eq!(e.unknown_reason, Some(UnknownReason::ModelsDisagree));
    }

    #[test]
    fn a_small_face_stays_too_small_and_one_model_decides_alone() {
        let e = decide(
            "gender",
            vec![gender("a", 0.99), gender("b", 0.01)],
            10.0,
            &RULE,
        );
        assert_eq!(e.unknown_reason, Some(UnknownReason::FaceTooSmall));
        let e = decide("gender", vec![gender("a", 0.1)], 100.0, &RULE);
        assert_eq!(e.label, "male");
        assert!(e.by_model.is_empty());
        let e = decide("gender", Vec::new(), 100.0, &RULE);
        assert_eq!(e.unknown_reason, Some(UnknownReason::NotConfigured));
    }

    #[test]
    fn the_second_opinion_age_is_chosen_below_its_range_limit_only() {
        let dlib = ModelOpinion::years("dlib", 27.0);
        let young = ModelOpinion::years("faceapi", 16.0);
        let old = ModelOpinion::years("faceapi", 40.0);
        assert_eq!(
            choose_age(Some(&dlib), Some(&young), 25.0).unwrap().model,
            "faceapi"
        );
        assert_eq!(
            choose_age(Some(&dlib), Some(&old), 25.0).unwrap().model,
            "dlib"
        );
        assert_eq!(choose_age(None, Some(&old), 25.0).unwrap().model, "faceapi");
        assert!(choose_age(None, None, 25.0).is_none());
    }
}
