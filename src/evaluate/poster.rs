//! Poster metrics: detection recall and false positives, and perceived-gender accuracy, by face
//! size. Decisions are re-made from the stored probabilities, so any thresholds can be measured
//! from one inference run.

use super::matching::{MATCH_IOU, match_faces};
use super::truth::{FaceTruth, ImageTruth};
use crate::domain::{AttributeEstimate, BoundingBox, Face, ModelOpinion, PosterAnalysis};
use std::collections::BTreeMap;

/// Face-height buckets of the evaluation, in pixels.
pub const SIZE_BUCKETS: [(&str, f32, f32); 4] = [
    ("<20", 0.0, 20.0),
    ("20-40", 20.0, 40.0),
    ("40-80", 40.0, 80.0),
    (">=80", 80.0, f32::INFINITY),
];

pub fn bucket_of(height: f32) -> &'static str {
    SIZE_BUCKETS
        .iter()
        .find(|(_, lo, hi)| height >= *lo && height < *hi)
        .map(|b| b.0)
        .unwrap_or(">=80")
}

/// The errors for women and for men are measured on found faces at least this tall, where the
/// size rule does not decide most of them `unknown`.
pub const GENDER_ERRORS_MIN_PX: f32 = 40.0;

/// Thresholds tried by the calibration sweep over the labelled faces.
pub const SWEEP_CONFIDENCE: [f32; 8] = super::calibration::CALIBRATION_CONFIDENCES;
pub const SWEEP_MIN_PX: [f32; 6] = [16.0, 24.0, 32.0, 40.0, 48.0, 64.0];

/// One truth face and what regard made of it.
#[derive(Debug, Clone)]
pub struct FaceOutcome {
    pub media: String,
    pub truth_gender: String,
    pub truth_height: f32,
    /// "minor" or "adult" where the truth says (`FaceTruth::age_group`).
    pub truth_age_group: Option<String>,
    /// None: missed by the detector.
    pub detected: Option<Face>,
}

/// Counts per size bucket.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BucketCounts {
    pub truth_faces: u32,
    pub found: u32,
    pub false_positives: u32,
    pub correct: u32,
    pub wrong: u32,
    pub unknown: u32,
}

/// For one truth gender: found faces, those labelled the other gender, those left `unknown`.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct GenderErrors {
    pub faces: u32,
    pub wrong: u32,
    pub unknown: u32,
}

impl GenderErrors {
    pub fn error_rate(&self) -> Option<f64> {
        (self.faces > 0).then(|| self.wrong as f64 / self.faces as f64)
    }
}

/// Found faces, decided faces and correct ones at one pair of thresholds.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Decided {
    pub found: u32,
    pub decided: u32,
    pub correct: u32,
}

/// Every truth face of the posters with its outcome, and the heights of the found faces that
/// match no truth face.
#[derive(Debug, Default)]
pub struct PosterOutcomes {
    pub faces: Vec<FaceOutcome>,
    pub false_positive_heights: Vec<f32>,
}

impl PosterOutcomes {
    pub fn add_image(&mut self, media: &str, truth: &ImageTruth, analysis: &PosterAnalysis) {
        let truth_boxes: Vec<BoundingBox> = truth.faces.iter().map(FaceTruth::bbox).collect();
        let det_boxes: Vec<BoundingBox> = analysis.faces.iter().map(|f| f.bbox).collect();
        let matches = match_faces(&truth_boxes, &det_boxes, MATCH_IOU);
        for (i, t) in truth.faces.iter().enumerate() {
            let detected = matches
                .iter()
                .find(|(ti, _)| *ti == i)
                .map(|(_, j)| analysis.faces[*j].clone());
            self.faces.push(FaceOutcome {
                media: media.to_string(),
                truth_gender: t.gender.clone(),
                truth_height: t.height(),
                truth_age_group: t.age_group.clone(),
                detected,
            });
        }
        for (j, f) in analysis.faces.iter().enumerate() {
            if !matches.iter().any(|(_, dj)| *dj == j) {
                self.false_positive_heights.push(f.size_px);
            }
        }
    }

    /// Found faces with their truth, and the label each gets at these thresholds.
    fn decisions(
        &self,
        min_confidence: f32,
        min_reliable_px: f32,
    ) -> impl Iterator<Item = (&FaceOutcome, Option<String>)> {
        self.faces.iter().filter_map(move |f| {
            let face = f.detected.as_ref()?;
            Some((f, decided_gender(face, min_confidence, min_reliable_px)))
        })
    }

    /// Per-bucket counts with the decisions regard would make at these thresholds.
    pub fn buckets(
        &self,
        min_confidence: f32,
        min_reliable_px: f32,
    ) -> BTreeMap<&'static str, BucketCounts> {
        let mut out: BTreeMap<&'static str, BucketCounts> = SIZE_BUCKETS
            .iter()
            .map(|b| (b.0, BucketCounts::default()))
            .collect();
        for f in &self.faces {
            out.entry(bucket_of(f.truth_height))
                .or_default()
                .truth_faces += 1;
        }
        for (f, decided) in self.decisions(min_confidence, min_reliable_px) {
            let b = out.entry(bucket_of(f.truth_height)).or_default();
            b.found += 1;
            match decided {
                None => b.unknown += 1,
                Some(label) if label == f.truth_gender => b.correct += 1,
                Some(_) => b.wrong += 1,
            }
        }
        for h in &self.false_positive_heights {
            out.entry(bucket_of(*h)).or_default().false_positives += 1;
        }
        out
    }

    /// The errors for the truth gender `gender`, over found faces at least `min_height` tall.
    pub fn errors_for(
        &self,
        gender: &str,
        min_height: f32,
        min_confidence: f32,
        min_reliable_px: f32,
    ) -> GenderErrors {
        let mut out = GenderErrors::default();
        for (_, decided) in self
            .decisions(min_confidence, min_reliable_px)
            .filter(|(f, _)| f.truth_gender == gender && f.truth_height >= min_height)
        {
            out.faces += 1;
            match decided {
                None => out.unknown += 1,
                Some(label) if label != gender => out.wrong += 1,
                Some(_) => {}
            }
        }
        out
    }

    /// Found, decided and correct faces of at least `min_height` px.
    pub fn decided(&self, min_height: f32, min_confidence: f32, min_reliable_px: f32) -> Decided {
        let mut out = Decided::default();
        for (f, decided) in self
            .decisions(min_confidence, min_reliable_px)
            .filter(|(f, _)| f.truth_height >= min_height)
        {
            out.found += 1;
            if let Some(label) = decided {
                out.decided += 1;
                out.correct += u32::from(label == f.truth_gender);
            }
        }
        out
    }

    /// Accuracy among decided faces of at least `min_height` px (the CI floor's figure).
    pub fn gender_accuracy(
        &self,
        min_height: f32,
        min_confidence: f32,
        min_reliable_px: f32,
    ) -> Option<f64> {
        let d = self.decided(min_height, min_confidence, min_reliable_px);
        (d.decided > 0).then(|| d.correct as f64 / d.decided as f64)
    }

    /// Every found truth face at least `min_height` px tall, with each gender model's opinion
    /// (a face perceived by one model only has that model's probabilities as its one opinion).
    pub fn gender_opinions(&self, min_height: f32) -> Vec<(&FaceOutcome, Vec<ModelOpinion>)> {
        self.faces
            .iter()
            .filter(|f| f.truth_height >= min_height)
            .filter_map(|f| {
                let face = f.detected.as_ref()?;
                let g = face.attribute("gender")?;
                let opinions = if g.by_model.is_empty() {
                    if g.probabilities.is_empty() {
                        Vec::new()
                    } else {
                        vec![ModelOpinion::probabilities(
                            "gender",
                            g.probabilities.clone(),
                        )]
                    }
                } else {
                    g.by_model.clone()
                };
                Some((f, opinions))
            })
            .collect()
    }

    /// Recall of faces at least `min_height` px tall.
    pub fn recall(&self, min_height: f32) -> Option<f64> {
        let relevant: Vec<_> = self
            .faces
            .iter()
            .filter(|f| f.truth_height >= min_height)
            .collect();
        (!relevant.is_empty()).then(|| {
            relevant.iter().filter(|f| f.detected.is_some()).count() as f64 / relevant.len() as f64
        })
    }
}

/// The gender label a face gets at these thresholds, None for `unknown`.
pub fn decided_gender(face: &Face, min_confidence: f32, min_reliable_px: f32) -> Option<String> {
    // The pipeline's own decision rule, re-applied to the stored probabilities. Whether the
    // models disagree does not depend on these two thresholds: that decision is kept.
    let g = face.attribute("gender")?;
    if g.unknown_reason == Some(crate::domain::UnknownReason::ModelsDisagree)
        && face.size_px >= min_reliable_px
    {
        return None;
    }
    let decided = AttributeEstimate::decide(
        "gender",
        g.probabilities.clone(),
        min_confidence,
        face.size_px,
        min_reliable_px,
    );
    (!decided.is_unknown()).then_some(decided.label)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::evaluate::matching::b;

    #[test]
    fn buckets_follow_the_issue() {
        assert_eq!(bucket_of(19.9), "<20");
        assert_eq!(bucket_of(20.0), "20-40");
        assert_eq!(bucket_of(40.0), "40-80");
        assert_eq!(bucket_of(80.0), ">=80");
    }

    fn face(height: f32, p_female: f32) -> Face {
        let probs: BTreeMap<String, f32> = [
            ("female".to_string(), p_female),
            ("male".to_string(), 1.0 - p_female),
        ]
        .into_iter()
        .collect();
        Face {
            bbox: b(0.0, 0.0, height * 0.75, height),
            landmarks: [[0.0; 2]; 5],
            detection_score: 0.9,
            size_px: height,
            attributes: vec![AttributeEstimate::decide(
                "gender", probs, 0.75, height, 40.0,
            )],
            age: None,
        }
    }

    pub(crate) fn outcome(gender: &str, height: f32, p_female: Option<f32>) -> FaceOutcome {
        FaceOutcome {
            media: "poster.jpg".into(),
            truth_gender: gender.into(),
            truth_height: height,
            truth_age_group: None,
            detected: p_female.map(|p| face(height, p)),
        }
    }
}
