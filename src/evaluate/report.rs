//! The evaluation as a value: every table of the report, computed once, for
//! [`super::markdown`] to render (and for tests and other callers to read).

use super::Evaluation;
use super::calibration::{CalibrationReport, SizeRender};
use super::detection::{AgainstReference, DetectionRow};
use super::floor::{Floor, FloorCheck};
use super::opinions::{MarginChoice, Scored, SourceRow, choose_margin};
use super::poster::{
    BucketCounts, Decided, GENDER_ERRORS_MIN_PX, GenderErrors, SIZE_BUCKETS, SWEEP_CONFIDENCE,
    SWEEP_MIN_PX,
};
use super::robustness::RobustnessTable;
use super::trailer::{TrailerRow, person_errors};
use crate::config::AnalysisSettings;
use crate::domain::Provenance;
use std::collections::BTreeMap;

/// The threshold the detection rule keeps recall equal to: the one in use before the rule
/// (0.6, YuNet's threshold in regard until algorithm version 2).
pub const DETECTION_REFERENCE: f32 = 0.6;

/// The truth genders the error table reports, women first (the bias figure is women − men).
pub const REPORTED_GENDERS: [&str; 2] = ["female", "male"];

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The command line that produced it, as the header names it.
    pub invocation: String,
    pub date: chrono::NaiveDate,
    pub provenance: Provenance,
    /// The settings in use: the thresholds every decision below was made at.
    pub settings: AnalysisSettings,
    pub labelled: LabelledSet,
    /// The part of the labelled set the detection, gender, model and floor tables are
    /// measured on: "held-out" when the truth has one, "calibration" otherwise.
    pub part: &'static str,
    /// Detection and perceived gender per face-height bucket, in bucket order.
    pub by_size: Vec<(&'static str, BucketCounts)>,
    /// Errors per truth gender on found faces of [`GENDER_ERRORS_MIN_PX`] and more.
    pub by_gender: Vec<(&'static str, GenderErrors)>,
    /// None when the truth has no trailer that was analysed.
    pub trailers: Option<TrailerTable>,
    /// Inputs that could not be analysed: (media, error).
    pub failures: Vec<(String, String)>,
    pub sweep: Sweep,
    pub calibration: CalibrationReport,
    pub floor: Option<FloorSection>,
    /// Each gender model alone, then their combination, on the found labelled faces of
    /// `part`, at the settings' thresholds.
    pub models: Vec<SourceRow>,
    /// The same on the calibration part's labelled faces (when `part` is the held-out one).
    pub calibration_models: Option<Vec<SourceRow>>,
    /// The `0-17` band: minors and adults of `part` (truth age groups) put under the first
    /// band edge by each age model and by the reported age, on found faces of the minimum
    /// reliable size and more.
    pub age_groups: Vec<super::age::AgeGroupRow>,
    /// Each gender model alone and the combination on the calibration renders of at least the
    /// minimum reliable size, and the margin the disagreement rule chooses on them.
    pub margin: MarginChoice,
    /// Recall and false faces at each detection threshold tried, calibration part, and the
    /// threshold the detection rule chooses there.
    pub detection: Vec<DetectionRow>,
    pub detection_choice: Option<f32>,
    /// The same sweep on the held-out part (empty without one).
    pub held_out_detection: Vec<DetectionRow>,
    /// False faces per image and recall at [`DETECTION_REFERENCE`] and at the threshold in use,
    /// calibration part then held-out part (None for a part without images).
    pub detection_against: Option<AgainstReference>,
    pub held_out_detection_against: Option<AgainstReference>,
    /// The robustness tables: the held-out part's (when there is one), then the calibration
    /// part's (measured apart: `Report::new` leaves them empty, `evaluate` fills them in).
    pub robustness: Vec<RobustnessTable>,
    /// The trailers at each minimum number of samples per person tried, and the value the
    /// stated rule chooses (filled in by `evaluate`, like `robustness`).
    pub min_samples: Vec<super::min_samples::MinSamplesRow>,
    pub min_samples_choice: Option<u32>,
}

/// The size of the labelled set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelledSet {
    /// Calibration part: images, truth faces of the images that were analysed, trailers.
    pub images: usize,
    pub faces: usize,
    pub trailers: usize,
    /// Held-out part: images and the truth faces of those analysed.
    pub held_out_images: usize,
    pub held_out_faces: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrailerTable {
    pub rows: Vec<TrailerRow>,
    /// Distinct-persons error over all trailers, per gender label.
    pub person_errors: BTreeMap<String, i64>,
    /// Merges, splits and misses per trailer whose truth has shots.
    pub identities: Vec<super::identity::IdentityOutcome>,
}

/// Threshold sweep over the labelled faces: for each minimum reliable size, the counts at each
/// confidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub confidences: Vec<f32>,
    pub rows: Vec<(f32, Vec<Decided>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FloorSection {
    /// Where the floor was read from.
    pub source: String,
    pub check: FloorCheck,
}

impl Report {
    /// Every table of the report, at the thresholds of `settings`.
    pub fn new(
        invocation: String,
        provenance: Provenance,
        settings: &AnalysisSettings,
        labelled: LabelledSet,
        eval: &Evaluation,
        renders: &[SizeRender],
        floor: Option<(&Floor, String)>,
    ) -> Report {
        let (confidence, reliable_px) = (
            settings.min_attribute_confidence,
            settings.min_reliable_face_px,
        );
        let (part, main) = match &eval.held_out {
            Some(h) => ("held-out", h),
            None => ("calibration", &eval.posters),
        };
        let mut buckets = main.buckets(confidence, reliable_px);
        let by_size = SIZE_BUCKETS
            .iter()
            .map(|(name, ..)| (*name, buckets.remove(name).unwrap_or_default()))
            .collect();
        let by_gender = REPORTED_GENDERS
            .iter()
            .map(|&g| {
                let errors = main.errors_for(g, GENDER_ERRORS_MIN_PX, confidence, reliable_px);
                (g, errors)
            })
            .collect();
        let trailers = (!eval.trailers.is_empty()).then(|| {
            let rows: Vec<TrailerRow> = eval.trailers.iter().flat_map(|t| t.rows()).collect();
            TrailerTable {
                person_errors: person_errors(&rows),
                rows,
                identities: eval
                    .trailers
                    .iter()
                    .filter_map(|t| t.identity.clone())
                    .collect(),
            }
        });
        let sweep = Sweep {
            confidences: SWEEP_CONFIDENCE.to_vec(),
            rows: SWEEP_MIN_PX
                .iter()
                .map(|&px| {
                    let row = SWEEP_CONFIDENCE
                        .iter()
                        .map(|&c| eval.posters.decided(0.0, c, px))
                        .collect();
                    (px, row)
                })
                .collect(),
        };
        let rule = crate::vision::combine::CombineRule {
            min_confidence: confidence,
            min_face_px: reliable_px,
            max_disagreement: settings.max_model_disagreement,
        };
        let model_rows = |outcomes: &super::poster::PosterOutcomes| {
            let labelled_opinions = outcomes.gender_opinions(0.0);
            let scored: Vec<Scored> = labelled_opinions
                .iter()
                .map(|(f, opinions)| Scored {
                    truth: &f.truth_gender,
                    size_px: f.detected.as_ref().map_or(0.0, |d| d.size_px),
                    opinions,
                })
                .collect();
            super::opinions::rows(&scored, &rule)
        };
        let models = model_rows(main);
        let age_groups = super::age::age_groups(
            main,
            settings.age_band_edges.first().map_or(18.0, |&e| e as f32),
            reliable_px,
        );
        let calibration_models = eval.held_out.is_some().then(|| model_rows(&eval.posters));
        let rendered: Vec<Scored> = renders
            .iter()
            .filter(|r| r.height_px as f32 >= reliable_px)
            .filter_map(|r| {
                let d = r.detected.as_ref()?;
                Some(Scored {
                    truth: &r.truth_gender,
                    size_px: d.height_px,
                    opinions: &d.opinions,
                })
            })
            .collect();
        let margin = choose_margin(&rendered, &rule);
        let detection = super::detection::sweep(&eval.detection);
        let detection_choice = super::detection::choose(&detection, DETECTION_REFERENCE);
        let against = |images: &[super::detection::DetectionImage]| {
            (!images.is_empty()).then(|| {
                AgainstReference::new(
                    images,
                    DETECTION_REFERENCE,
                    settings.detection_score_threshold,
                )
            })
        };
        Report {
            detection_against: against(&eval.detection),
            held_out_detection_against: against(&eval.held_out_detection),
            robustness: Vec::new(),
            min_samples: Vec::new(),
            min_samples_choice: None,
            detection,
            detection_choice,
            held_out_detection: if eval.held_out_detection.is_empty() {
                Vec::new()
            } else {
                super::detection::sweep(&eval.held_out_detection)
            },
            part,
            models,
            calibration_models,
            age_groups,
            margin,
            invocation,
            date: chrono::Utc::now().date_naive(),
            provenance,
            settings: settings.clone(),
            labelled,
            by_size,
            by_gender,
            trailers,
            failures: eval.failures.clone(),
            sweep,
            calibration: CalibrationReport::new(renders),
            floor: floor.map(|(floor, source)| FloorSection {
                check: floor.check(main, confidence, reliable_px),
                source,
            }),
        }
    }

    /// Error rate for women minus error rate for men; None when either has no found face.
    pub fn bias(&self) -> Option<f64> {
        let rate = |g: &str| {
            self.by_gender
                .iter()
                .find(|(name, _)| *name == g)
                .and_then(|(_, e)| e.error_rate())
        };
        Some(rate(REPORTED_GENDERS[0])? - rate(REPORTED_GENDERS[1])?)
    }

    /// The floor's breaches, in words (none without a floor).
    pub fn breaches(&self) -> &[String] {
        self.floor.as_ref().map_or(&[], |f| &f.check.breaches)
    }

    /// Every input was analysed and every floor holds.
    pub fn passed(&self) -> bool {
        self.failures.is_empty() && self.breaches().is_empty()
    }
}
