//! Measuring the pipeline honestly on a labelled set: detection recall and false positives by
//! face size, gender accuracy and `unknown` rate by face size, error rates for women and men
//! separately, for trailers the error on distinct persons and screen time, and the face-size
//! calibration that chooses the attribute thresholds. The truth format is documented in
//! fixtures/README.md.
//!
//! [`evaluate()`] runs a loaded pipeline over the set and returns a [`Report`]; [`markdown()`]
//! renders it. Nothing here prints: `regard evaluate` (`cli::evaluate`) does.

pub mod age;
pub mod calibration;
pub mod detection;
pub mod floor;
pub mod identity;
pub mod markdown;
pub mod matching;
pub mod min_samples;
pub mod opinions;
pub mod poster;
pub mod render;
pub mod report;
pub mod robustness;
pub mod trailer;
pub mod truth;

pub use calibration::{CalibrationChoice, CalibrationReport, CalibrationRule, SizeRender};
pub use floor::{Floor, FloorCheck};
pub use identity::{IdentityOutcome, match_identities};
pub use markdown::markdown;
pub use matching::{MATCH_IOU, match_faces};
pub use poster::{FaceOutcome, PosterOutcomes};
pub use report::{LabelledSet, Report};
pub use robustness::{Condition, RobustnessCell, RobustnessTable};
pub use trailer::TrailerOutcome;
pub use truth::{FaceTruth, ImageTruth, PersonTruth, TrailerTruth, Truth};

use crate::config::Limits;
use crate::domain::Analysis;
use crate::media::fetch::{FetchPolicy, Fetcher};
use crate::pipeline::Pipeline;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the pipeline made of every labelled input.
#[derive(Debug, Default)]
pub struct Evaluation {
    /// The calibration part's images.
    pub posters: PosterOutcomes,
    /// The held-out part's images, when the truth has one.
    pub held_out: Option<PosterOutcomes>,
    /// Every box found at the lowest threshold of the detection sweep, per image: calibration
    /// part, then held-out part.
    pub detection: Vec<detection::DetectionImage>,
    pub held_out_detection: Vec<detection::DetectionImage>,
    pub trailers: Vec<TrailerOutcome>,
    /// Inputs that could not be analysed: (media, error).
    pub failures: Vec<(String, String)>,
}

/// Run `pipeline` over every input of `truth` (paths relative to `base`) and over the
/// face-size renders of its large faces, and report at the pipeline's settings. `invocation`
/// is the command line the report says produced it; `floor` (with where it was read from) adds
/// the CI floor and its breaches.
pub async fn evaluate(
    pipeline: Arc<Pipeline>,
    limits: &Limits,
    truth: &Truth,
    base: &Path,
    invocation: String,
    floor: Option<(&Floor, String)>,
) -> anyhow::Result<Report> {
    let eval = analyse_labelled(&pipeline, limits, truth, base).await;
    let renders = calibrate(&pipeline, limits, truth, base).await?;
    let robustness = robustness::measure(&pipeline, limits, truth, base).await?;
    let min_samples = min_samples::measure(&pipeline, limits, truth, base).await?;
    let labelled = LabelledSet {
        images: truth.images.len(),
        faces: eval.posters.faces.len(),
        trailers: truth.trailers.len(),
        held_out_images: truth.held_out_images.len(),
        held_out_faces: eval.held_out.as_ref().map_or(0, |h| h.faces.len()),
    };
    let mut report = Report::new(
        invocation,
        pipeline.provenance(),
        pipeline.settings(),
        labelled,
        &eval,
        &renders,
        floor,
    );
    report.robustness = robustness;
    report.min_samples_choice = min_samples::choose(&min_samples, pipeline.settings().sample_rate);
    report.min_samples = min_samples;
    Ok(report)
}

/// Analyse every poster and trailer of the truth as `regard analyze` would; an input that
/// fails is recorded with its error, not fatal.
pub async fn analyse_labelled(
    pipeline: &Arc<Pipeline>,
    limits: &Limits,
    truth: &Truth,
    base: &Path,
) -> Evaluation {
    let fetcher = Fetcher::new(FetchPolicy::cli(limits.clone()));
    let mut eval = Evaluation::default();
    // (name, is a trailer, is held out)
    let names: Vec<(String, bool, bool)> = truth
        .images
        .keys()
        .map(|k| (k.clone(), false, false))
        .chain(truth.trailers.keys().map(|k| (k.clone(), true, false)))
        .chain(
            truth
                .held_out_images
                .keys()
                .map(|k| (k.clone(), false, true)),
        )
        .collect();
    if !truth.held_out_images.is_empty() {
        eval.held_out = Some(PosterOutcomes::default());
    }
    // Images are analysed at the lowest threshold of the detection sweep and their faces then
    // filtered at the settings' threshold: the same faces as at that threshold (see
    // `detection`), and every other threshold's from the same run.
    let threshold = pipeline.settings().detection_score_threshold;
    let sweep_settings = crate::config::AnalysisSettings {
        detection_score_threshold: threshold.min(detection::DETECTION_THRESHOLDS[0]),
        ..pipeline.settings().clone()
    };
    for (name, is_trailer, held_out) in names {
        let path = base.join(&name);
        let outcome: anyhow::Result<(Analysis, Vec<crate::pipeline::PersonSighting>)> = async {
            let media = fetcher.fetch(&path.display().to_string()).await?;
            let p = Arc::clone(pipeline);
            let settings = sweep_settings.clone();
            let out = tokio::task::spawn_blocking(move || {
                if is_trailer {
                    p.analyze(&media, false, &|_| {})
                } else {
                    p.analyze_with_settings(&media, &settings, false, &|_| {})
                }
            })
            .await??;
            Ok((out.analysis, out.sightings))
        }
        .await;
        let outcome = outcome.map(|(analysis, sightings)| match analysis {
            Analysis::Poster(mut p) => {
                let truth_of = if held_out {
                    &truth.held_out_images
                } else {
                    &truth.images
                };
                if let Some(t) = truth_of.get(&name) {
                    let image = detection::DetectionImage {
                        media: name.clone(),
                        truth: t.faces.iter().map(FaceTruth::bbox).collect(),
                        found: p
                            .faces
                            .iter()
                            .map(|f| (f.bbox, f.detection_score))
                            .collect(),
                    };
                    if held_out {
                        eval.held_out_detection.push(image);
                    } else {
                        eval.detection.push(image);
                    }
                }
                p.faces.retain(|f| f.detection_score >= threshold);
                (Analysis::Poster(p), sightings)
            }
            other => (other, sightings),
        });
        match (outcome, is_trailer) {
            (Ok((Analysis::Poster(p), _)), false) if held_out => {
                if let Some(h) = eval.held_out.as_mut() {
                    h.add_image(&name, &truth.held_out_images[&name], &p)
                }
            }
            (Ok((Analysis::Poster(p), _)), false) => {
                eval.posters.add_image(&name, &truth.images[&name], &p)
            }
            (Ok((Analysis::Trailer(t), sightings)), true) => eval.trailers.push(
                TrailerOutcome::new(&name, &truth.trailers[&name], &t, &sightings),
            ),
            (Ok(_), _) => eval
                .failures
                .push((name.clone(), "analysed as the wrong kind of media".into())),
            (Err(e), _) => eval.failures.push((name.clone(), format!("{e:#}"))),
        }
        tracing::info!(media = %name, "evaluated");
    }
    eval
}

/// The face-size renders of every image with a face large enough to be a source.
pub async fn calibrate(
    pipeline: &Arc<Pipeline>,
    limits: &Limits,
    truth: &Truth,
    base: &Path,
) -> anyhow::Result<Vec<SizeRender>> {
    let p = Arc::clone(pipeline);
    let sources: Vec<(String, PathBuf, ImageTruth)> = truth
        .images
        .iter()
        .filter(|(_, t)| {
            t.faces
                .iter()
                .any(|f| f.height() >= calibration::CALIBRATION_SOURCE_MIN_PX)
        })
        .map(|(name, t)| (name.clone(), base.join(name), t.clone()))
        .collect();
    let limits = limits.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<SizeRender>> {
        let mut all = Vec::new();
        for (name, path, image_truth) in &sources {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let decoded = crate::media::image::decode_image(name, &bytes, &limits)?;
            all.extend(
                render::calibrate_image(
                    p.vision(),
                    p.settings(),
                    name,
                    &decoded.image,
                    image_truth,
                )
                .with_context(|| format!("{name}: size calibration failed"))?,
            );
            tracing::info!(media = %name, "size calibration");
        }
        Ok(all)
    })
    .await?
}
