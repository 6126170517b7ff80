//! The evaluation as a value: every table of the report, computed once, for
//! [`super::markdown`] to render (and for tests and other callers to read).

use super::Evaluation;
use super::calibration::{CalibrationReport, SizeRender};
use super::floor::{Floor, FloorCheck};
use super::poster::{
    BucketCounts, Decided, GENDER_ERRORS_MIN_PX, GenderErrors, SIZE_BUCKETS, SWEEP_CONFIDENCE,
    SWEEP_MIN_PX,
};
use super::trailer::{TrailerRow, person_errors};
use crate::config::AnalysisSettings;
use crate::domain::Provenance;
use std::collections::BTreeMap;

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
}

/// The size of the labelled set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelledSet {
    pub images: usize,
    /// Truth faces of the images that were analysed.
    pub faces: usize,
    pub trailers: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrailerTable {
    pub rows: Vec<TrailerRow>,
    /// Distinct-persons error over all trailers, per gender label.
    pub person_errors: BTreeMap<String, i64>,
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
        let mut buckets = eval.posters.buckets(confidence, reliable_px);
        let by_size = SIZE_BUCKETS
            .iter()
            .map(|(name, ..)| (*name, buckets.remove(name).unwrap_or_default()))
            .collect();
        let by_gender = REPORTED_GENDERS
            .iter()
            .map(|&g| {
                let errors =
                    eval.posters
                        .errors_for(g, GENDER_ERRORS_MIN_PX, confidence, reliable_px);
                (g, errors)
            })
            .collect();
        let trailers = (!eval.trailers.is_empty()).then(|| {
            let rows: Vec<TrailerRow> = eval.trailers.iter().flat_map(|t| t.rows()).collect();
            TrailerTable {
                person_errors: person_errors(&rows),
                rows,
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
        Report {
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
                check: floor.check(&eval.posters, confidence, reliable_px),
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
