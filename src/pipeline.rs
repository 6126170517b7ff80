//! One media file in, one analysis out: the same path for the CLI and the worker.
//! Decides what the file is by its bytes, then runs media → vision → track → stats.

use crate::config::{AnalysisSettings, Limits};
use crate::domain::{
    AgeEstimate, Analysis, AttributeEstimate, BoundingBox, Detection, Face, MediaInfo,
    ModelOpinion, PosterAnalysis, Provenance, TrailerAnalysis, UNKNOWN,
};
use crate::media::MediaError;
use crate::media::fetch::FetchedMedia;
use crate::media::image::decode_image;
use crate::media::video::{SamplerOptions, VideoError, VideoSampler};
use crate::stats;
use crate::track::{FrameObservation, FrameSignature, Snapshot, TrackError, Tracker};
use crate::vision::combine::{self, CombineRule};
use crate::vision::{DetectOptions, Perception, Vision, VisionError};
use image::RgbImage;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The failure code of a run that did not finish within its job's time limit.
pub const JOB_TIMEOUT: &str = "job_timeout";
/// Failure code of an analysis whose models failed (to load or to run).
pub const INFERENCE_FAILED: &str = "inference_failed";

/// What the pictures a person checks a result with are drawn from (`report::pictures` draws
/// them), kept only when asked for.
pub enum PictureData {
    /// The decoded poster; its faces are in the analysis.
    Poster { image: RgbImage },
    /// At most `SHEET_FRAMES` sampled frames spread evenly over the trailer, downscaled.
    Trailer { frames: Vec<Snapshot> },
}

pub struct AnalysisOutput {
    pub analysis: Analysis,
    pub pictures: Option<PictureData>,
    /// Wall-clock seconds per stage (decode, detect, perceive, embed, track, statistics):
    /// where the time goes, for benchmarks and the database's timings.
    pub stage_seconds: BTreeMap<&'static str, f64>,
    /// What the analysis cost (for metrics; not part of the result).
    pub work: Work,
    /// A trailer's faces that count, each with the person it was attributed to (empty for a
    /// poster). Not part of the result: `regard evaluate` matches them with the truth boxes.
    pub sightings: Vec<PersonSighting>,
}

/// One face of one sampled frame and the person the tracker attributed it to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PersonSighting {
    /// Presentation time of the sampled frame, seconds.
    pub t: f64,
    pub person: u32,
    pub bbox: BoundingBox,
}

/// Work done by one analysis: images looked at, faces found, time spent in the models.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Work {
    /// Images analysed: 1 for a poster, the sampled frames of a trailer.
    pub frames: u64,
    /// Faces detected over all those images (a person seen in 10 frames counts 10).
    pub faces: u64,
    /// Seconds spent in ONNX Runtime (detection, attributes, embeddings).
    pub inference_s: f64,
}

impl Work {
    fn from_clock(clock: &StageClock, frames: u64, faces: u64) -> Work {
        let inference_s = ["detect", "perceive", "embed"]
            .iter()
            .filter_map(|k| clock.0.get(k))
            .sum();
        Work {
            frames,
            faces,
            inference_s,
        }
    }
}

/// Accumulates wall-clock time per pipeline stage.
#[derive(Default)]
struct StageClock(BTreeMap<&'static str, f64>);

impl StageClock {
    fn time<T>(&mut self, stage: &'static str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        *self.0.entry(stage).or_default() += start.elapsed().as_secs_f64();
        out
    }
}

/// When an analysis must give up: a deadline, and a flag its caller may raise. The pipeline
/// looks at it between frames and between a poster's stages, so a job's time limit stops the
/// blocking thread too, not only the caller's wait.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    deadline: Option<Instant>,
    raised: Arc<AtomicBool>,
}

impl Stop {
    /// Never stops unless raised.
    pub fn never() -> Self {
        Stop::default()
    }

    /// Stops at `deadline`.
    pub fn at(deadline: Instant) -> Self {
        Stop {
            deadline: Some(deadline),
            ..Stop::default()
        }
    }

    /// Stop now (every clone sees it).
    pub fn raise(&self) {
        self.raised.store(true, Ordering::Relaxed);
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Raised, or past the deadline.
    pub fn is_due(&self) -> bool {
        self.raised.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn check(&self, input: &str) -> Result<(), PipelineError> {
        if self.is_due() {
            Err(PipelineError::Stopped {
                input: input.to_string(),
            })
        } else {
            Ok(())
        }
    }
}

/// Progress of a long analysis (trailers): seconds analysed out of the total.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done_s: f64,
    pub total_s: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Video(#[from] VideoError),
    #[error(transparent)]
    Vision(#[from] VisionError),
    #[error("{input}: {source}")]
    Track { input: String, source: TrackError },
    #[error("{input}: analysis panicked: {message}")]
    Panic { input: String, message: String },
    /// The caller's [`Stop`] came due (the job's time limit).
    #[error("{input}: the job's time limit was reached; analysis stopped")]
    Stopped { input: String },
}

impl PipelineError {
    /// Stable code recorded with a failed analysis.
    pub fn code(&self) -> &'static str {
        match self {
            PipelineError::Media(e) => e.code(),
            PipelineError::Video(e) => e.code(),
            PipelineError::Vision(_) => INFERENCE_FAILED,
            PipelineError::Track { source, .. } => source.code(),
            PipelineError::Panic { .. } => "internal_panic",
            PipelineError::Stopped { .. } => JOB_TIMEOUT,
        }
    }

    /// Worth trying again later (the input is not at fault).
    pub fn is_retryable(&self) -> bool {
        match self {
            PipelineError::Media(e) => e.is_retryable(),
            PipelineError::Video(e) => e.is_retryable(),
            PipelineError::Vision(e) => e.is_retryable(),
            PipelineError::Track { source, .. } => source.is_retryable(),
            PipelineError::Panic { .. } => false,
            // A slow machine or a busy moment: another attempt may finish in time.
            PipelineError::Stopped { .. } => true,
        }
    }
}

/// Frames kept for the contact sheet at most; spread evenly over the trailer.
const SHEET_FRAMES: usize = 40;
const SHEET_THUMB_WIDTH: u32 = 240;
/// A trailer's faces are embedded at least every this many sampled frames (see analyze_trailer):
/// every other frame, so that a 2 s shot at 2 samples/s gives a track the `min_reid_samples`
/// (2) gated embeddings it needs to be recognised in another shot.
const EMBED_EVERY: usize = 2;

/// Whether a trailer face is perceived (gender and age models run on it), given how many
/// sightings the shot track it continues already has (`prior`, 0 for a new track): the first
/// `trailer_perceive_first` faces of a track (at least its first), then every
/// `trailer_perceive_every`-th. The others still count for the track's boxes and screen time;
/// the person's attributes are fused over the perceived ones.
pub fn perceives(prior: u32, s: &AnalysisSettings) -> bool {
    let first = s.trailer_perceive_first.max(1);
    prior < first || (prior + 1 - first).is_multiple_of(s.trailer_perceive_every.max(1))
}

/// The provenance of results made by this build with these models and settings.
pub fn provenance(
    runtime_sha256: &str,
    models: Vec<crate::domain::ModelRef>,
    settings: &AnalysisSettings,
) -> Provenance {
    Provenance {
        pipeline_version: crate::PIPELINE_VERSION.to_string(),
        algorithm_version: crate::ALGORITHM_VERSION,
        runtime_sha256: runtime_sha256.to_string(),
        models,
        settings: settings.as_provenance(),
    }
}

/// The provenance a pipeline loaded from a verified `manifest` gives, without loading it (the
/// runtime's sha256 is the manifest's once [`ModelManifest::verify`] passed).
pub fn manifest_provenance(
    manifest: &crate::vision::ModelManifest,
    options: &crate::vision::VisionOptions,
    settings: &AnalysisSettings,
) -> Provenance {
    provenance(
        &manifest.runtime.sha256,
        crate::vision::model_refs(manifest, options),
        settings,
    )
}

pub struct Pipeline {
    vision: Vision,
    settings: AnalysisSettings,
    limits: Limits,
    decoder_threads: usize,
}

impl Pipeline {
    pub fn new(
        vision: Vision,
        settings: AnalysisSettings,
        limits: Limits,
        decoder_threads: usize,
    ) -> Self {
        Pipeline {
            vision,
            settings,
            limits,
            decoder_threads: decoder_threads.max(1),
        }
    }

    pub fn settings(&self) -> &AnalysisSettings {
        &self.settings
    }

    /// The same pipeline with `threads` FFmpeg frame threads for trailers (at least one).
    pub fn with_decoder_threads(mut self, threads: usize) -> Self {
        self.decoder_threads = threads.max(1);
        self
    }

    /// FFmpeg frame threads of the trailer decoder.
    pub fn decoder_threads(&self) -> usize {
        self.decoder_threads
    }

    pub fn vision(&self) -> &Vision {
        &self.vision
    }

    /// What produced results of this pipeline (also the idempotency key's model-set part).
    pub fn provenance(&self) -> Provenance {
        self.provenance_for(&self.settings)
    }

    /// The provenance of results made with `settings` (per-job overrides) by these models.
    pub fn provenance_for(&self, settings: &AnalysisSettings) -> Provenance {
        provenance(self.vision.runtime_sha256(), self.vision.models(), settings)
    }

    /// Analyse one fetched media file. CPU-bound: call from a blocking thread. A panic anywhere
    /// inside is turned into an error for this file only.
    pub fn analyze(
        &self,
        media: &FetchedMedia,
        want_pictures: bool,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<AnalysisOutput, PipelineError> {
        self.analyze_with_settings(media, &self.settings, want_pictures, progress)
    }

    /// [`Pipeline::analyze`] with other settings than the pipeline's own (a queue job's
    /// overrides); they are recorded in the result's provenance.
    pub fn analyze_with_settings(
        &self,
        media: &FetchedMedia,
        settings: &AnalysisSettings,
        want_pictures: bool,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<AnalysisOutput, PipelineError> {
        self.analyze_until(media, settings, want_pictures, progress, &Stop::never())
    }

    /// [`Pipeline::analyze_with_settings`] that gives up with [`PipelineError::Stopped`] once
    /// `stop` is due.
    pub fn analyze_until(
        &self,
        media: &FetchedMedia,
        settings: &AnalysisSettings,
        want_pictures: bool,
        progress: &(dyn Fn(Progress) + Sync),
        stop: &Stop,
    ) -> Result<AnalysisOutput, PipelineError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            stop.check(&media.source)?;
            if media.format.is_video() {
                self.analyze_trailer(settings, media, want_pictures, progress, stop)
            } else {
                self.analyze_poster(settings, media, want_pictures, stop)
            }
        }))
        .unwrap_or_else(|panic| {
            Err(PipelineError::Panic {
                input: media.source.clone(),
                message: crate::panics::message(panic.as_ref()),
            })
        })
    }

    fn media_info(
        &self,
        media: &FetchedMedia,
        format: String,
        width: u32,
        height: u32,
    ) -> MediaInfo {
        MediaInfo {
            source: media.source.clone(),
            content_sha256: media.sha256.clone(),
            bytes: media.bytes,
            format,
            width,
            height,
            duration_s: None,
            frame_rate: None,
        }
    }

    fn analyze_poster(
        &self,
        s: &AnalysisSettings,
        media: &FetchedMedia,
        want_pictures: bool,
        stop: &Stop,
    ) -> Result<AnalysisOutput, PipelineError> {
        let mut clock = StageClock::default();
        let decoded = clock.time("decode", || -> Result<_, PipelineError> {
            let bytes = media.read_all()?;
            Ok(decode_image(&media.source, &bytes, &self.limits)?)
        })?;
        stop.check(&media.source)?;
        let (_, faces) = self.perceive_faces(s, &decoded.image, s.min_face_px, &mut clock)?;
        stop.check(&media.source)?;
        let attributes = self.vision.attributes();
        let statistics = clock.time("statistics", || {
            stats::poster::poster_statistics(
                &faces,
                decoded.width,
                decoded.height,
                &attributes,
                &s.age_bands(),
            )
        });
        let analysis = PosterAnalysis {
            media: self.media_info(
                media,
                decoded.format.to_string(),
                decoded.width,
                decoded.height,
            ),
            faces,
            statistics,
            provenance: self.provenance_for(s),
        };
        let pictures = want_pictures.then_some(PictureData::Poster {
            image: decoded.image,
        });
        let work = Work::from_clock(&clock, 1, analysis.faces.len() as u64);
        Ok(AnalysisOutput {
            analysis: Analysis::Poster(analysis),
            pictures,
            stage_seconds: clock.0,
            work,
            sightings: Vec::new(),
        })
    }

    /// Detect, then perceive every face of one image in one batch per model.
    /// Faces shorter than `min_face_px` are not looked for. Returns the detections too (the
    /// embedder needs them).
    fn perceive_faces(
        &self,
        s: &AnalysisSettings,
        image: &RgbImage,
        min_face_px: f32,
        clock: &mut StageClock,
    ) -> Result<(Vec<Detection>, Vec<Face>), PipelineError> {
        let detections = clock.time("detect", || {
            self.vision
                .detect(image, s.detection_score_threshold, s.nms_iou, min_face_px)
        })?;
        let perceptions = clock.time("perceive", || {
            self.vision
                .perceive_with(image, &detections, s.mirror_average)
        })?;
        let faces = detections
            .iter()
            .zip(perceptions)
            .map(|(d, p)| Self::face_from(s, d, p))
            .collect();
        Ok((detections, faces))
    }

    /// Turn a detection and the models' opinions into a face with decided labels: each
    /// attribute decided by the combination rule (`vision::combine`) over every model that has
    /// an opinion on it, the age from the estimator the rule picks for its range.
    fn face_from(s: &AnalysisSettings, detection: &Detection, perception: Perception) -> Face {
        let size_px = detection.bbox.height;
        let rule = CombineRule {
            min_confidence: s.min_attribute_confidence,
            min_face_px: s.min_reliable_face_px,
            max_disagreement: s.max_model_disagreement,
        };
        let mut names: Vec<String> = Vec::new();
        for (attribute, opinion) in &perception.opinions {
            if !opinion.probabilities.is_empty() && !names.contains(attribute) {
                names.push(attribute.clone());
            }
        }
        let opinions_on = |name: &str| -> Vec<ModelOpinion> {
            perception
                .opinions
                .iter()
                .filter(|(a, o)| a == name && !o.probabilities.is_empty())
                .map(|(_, o)| o.clone())
                .collect()
        };
        let mut attributes: Vec<AttributeEstimate> = names
            .iter()
            .map(|name| combine::decide(name, opinions_on(name), size_px, &rule))
            .collect();
        for required in ["gender", "origin"] {
            if !attributes.iter().any(|a| a.attribute == required) {
                attributes.push(AttributeEstimate::not_configured(required));
            }
        }
        let ages: Vec<&ModelOpinion> = perception
            .opinions
            .iter()
            .filter(|(a, o)| a == "age" && o.years.is_some())
            .map(|(_, o)| o)
            .collect();
        let (primary, second) = if perception.age_years.is_some() {
            (ages.first().copied(), ages.get(1).copied())
        } else {
            (None, ages.first().copied())
        };
        let age = combine::choose_age(primary, second, s.second_opinion_age_below).map(|chosen| {
            let years = chosen.years.unwrap_or_default();
            AgeEstimate {
                years,
                band: if size_px < s.min_reliable_face_px {
                    UNKNOWN.to_string()
                } else {
                    s.age_band(years)
                },
                model: (ages.len() > 1).then(|| chosen.model.clone()),
                by_model: if ages.len() > 1 {
                    ages.iter().map(|o| (*o).clone()).collect()
                } else {
                    Vec::new()
                },
            }
        });
        Face {
            bbox: detection.bbox,
            landmarks: detection.landmarks,
            detection_score: detection.score,
            size_px,
            attributes,
            age,
        }
    }

    fn analyze_trailer(
        &self,
        s: &AnalysisSettings,
        media: &FetchedMedia,
        want_pictures: bool,
        progress: &(dyn Fn(Progress) + Sync),
        stop: &Stop,
    ) -> Result<AnalysisOutput, PipelineError> {
        let mut opts = SamplerOptions {
            threads: self.decoder_threads,
            ..SamplerOptions::from_config(s, &self.limits, Instant::now())
        };
        // FFmpeg's interrupt callback then also honours the job's limit inside one read; a
        // sampler that ends at it is turned into `Stopped` below, never a partial result.
        if let Some(due) = stop.deadline() {
            opts.deadline = Some(opts.deadline.map_or(due, |d| d.min(due)));
        }
        let sampler = VideoSampler::open(&media.source, &media.path, &opts)?;
        let info = sampler.info().clone();
        let total_s = info.duration_s.unwrap_or(0.0).min(opts.max_duration_s);
        let interval = 1.0 / s.sample_rate;
        let expected_frames = ((total_s * s.sample_rate).ceil() as usize).max(1);
        let sheet_every = expected_frames.div_ceil(SHEET_FRAMES).max(1);
        // Trailer faces worth counting are larger than poster faces: detecting from this size
        // needs one detector run per 1080p frame instead of three.
        let min_face_px = s.min_face_px.max(s.trailer_min_face_px);

        let track_err = |source| PipelineError::Track {
            input: media.source.clone(),
            source,
        };
        let mut tracker = Tracker::new(interval, s.clone()).map_err(track_err)?;
        let mut clock = StageClock::default();
        // Thumbnails for the pictures, with the face boxes in thumbnail pixels; the person of
        // each face is known once tracking is finished.
        let mut sheet: Vec<(usize, f64, RgbImage, Vec<BoundingBox>)> = Vec::new();
        let mut index = 0usize;
        let mut previous: Option<(FrameSignature, usize)> = None;
        let mut since_embedding = 0usize;
        let mut faces_seen = 0u64;
        // Per sampled frame: its time and its faces' boxes (the evaluation's sightings).
        let mut frame_boxes: Vec<(f64, Vec<BoundingBox>)> = Vec::new();

        // Decoding runs on its own thread, a couple of frames ahead of the models: on two cores
        // the serial decoder and inference overlap instead of taking turns. The channel bounds
        // memory to the frames in flight.
        let (frames_tx, frames_rx) = std::sync::mpsc::sync_channel(2);
        let decoder = std::thread::Builder::new()
            .name("regard-decode".into())
            .spawn(move || {
                let mut sampler = sampler;
                let mut busy = 0.0f64;
                loop {
                    let start = Instant::now();
                    let next = sampler.next();
                    busy += start.elapsed().as_secs_f64();
                    let Some(frame) = next else { break };
                    let failed = frame.is_err();
                    if frames_tx.send(frame).is_err() || failed {
                        break;
                    }
                }
                (
                    sampler.report().clone(),
                    sampler.analysed_duration_s(),
                    busy,
                )
            })
            .map_err(|e| PipelineError::Panic {
                input: media.source.clone(),
                message: format!("cannot start the decoder thread: {e}"),
            })?;
        let mut outcome: Result<(), PipelineError> = Ok(());
        while let Some(frame) = clock.time("wait for decoder", || frames_rx.recv().ok()) {
            let step = (|| -> Result<(), PipelineError> {
                stop.check(&media.source)?;
                let frame = frame?;
                let detections = clock.time("detect", || {
                    self.vision.detect_with(
                        &frame.image,
                        &DetectOptions {
                            score_threshold: s.detection_score_threshold,
                            nms_iou: s.nms_iou,
                            min_face_px,
                            fitted_windows: s.trailer_fitted_windows,
                        },
                    )
                })?;
                let signature = clock.time("track", || FrameSignature::from_image(&frame.image));
                // Embeddings tell persons apart across cuts; within a shot boxes do most of the
                // work. So faces are embedded when a new person may have appeared (first frame,
                // a cut, a change in the number of faces) and at least every EMBED_EVERY frames.
                let need_embedding = !detections.is_empty()
                    && match &previous {
                        None => true,
                        Some((sig, count)) => {
                            *count != detections.len()
                                || since_embedding + 1 >= EMBED_EVERY
                                || crate::track::shot::is_cut(sig, &signature, s.shot_cut_distance)
                        }
                    };
                let (embeddings, sharpness) = if need_embedding {
                    since_embedding = 0;
                    clock.time("embed", || {
                        self.vision.embed_with_sharpness(&frame.image, &detections)
                    })?
                } else {
                    since_embedding += 1;
                    (Vec::new(), Vec::new())
                };
                // Perception is spent on the faces whose track still needs evidence: the
                // tracker says which track each face will continue before it is pushed.
                let boxes: Vec<BoundingBox> = detections.iter().map(|d| d.bbox).collect();
                let selected: Vec<bool> = clock
                    .time("track", || {
                        tracker.prior_sightings(&signature, &boxes, &embeddings)
                    })
                    .into_iter()
                    .map(|prior| perceives(prior, s))
                    .collect();
                let chosen: Vec<Detection> = detections
                    .iter()
                    .zip(&selected)
                    .filter(|(_, keep)| **keep)
                    .map(|(d, _)| d.clone())
                    .collect();
                let perceptions = clock.time("perceive", || {
                    self.vision
                        .perceive_with(&frame.image, &chosen, s.mirror_average)
                })?;
                let mut perceptions = perceptions.into_iter();
                let faces: Vec<Face> = detections
                    .iter()
                    .zip(&selected)
                    .map(|(d, keep)| match keep {
                        true => Self::face_from(
                            s,
                            d,
                            perceptions.next().expect("one perception per chosen face"),
                        ),
                        false => Face {
                            bbox: d.bbox,
                            landmarks: d.landmarks,
                            detection_score: d.score,
                            size_px: d.bbox.height,
                            attributes: Vec::new(),
                            age: None,
                        },
                    })
                    .collect();
                if want_pictures && index.is_multiple_of(sheet_every) && sheet.len() < SHEET_FRAMES
                {
                    let scale = SHEET_THUMB_WIDTH as f32 / frame.image.width() as f32;
                    let thumb = image::imageops::thumbnail(
                        &frame.image,
                        SHEET_THUMB_WIDTH,
                        (frame.image.height() as f32 * scale).round().max(1.0) as u32,
                    );
                    let boxes = faces
                        .iter()
                        .map(|f| {
                            let b = f.bbox;
                            BoundingBox {
                                x: b.x * scale,
                                y: b.y * scale,
                                width: b.width * scale,
                                height: b.height * scale,
                            }
                        })
                        .collect();
                    sheet.push((index, frame.t, thumb, boxes));
                }
                frame_boxes.push((frame.t, faces.iter().map(|f| f.bbox).collect()));
                previous = Some((signature.clone(), faces.len()));
                faces_seen += faces.len() as u64;
                tracker
                    .push(FrameObservation {
                        t: frame.t,
                        slots: frame.slots,
                        width: frame.image.width(),
                        height: frame.image.height(),
                        signature,
                        faces,
                        embeddings,
                        sharpness,
                    })
                    .map_err(track_err)?;
                index += 1;
                progress(Progress {
                    done_s: frame.t + interval,
                    total_s,
                });
                Ok(())
            })();
            if step.is_err() {
                outcome = step;
                break;
            }
        }
        // Dropping the receiver stops the decoder at its next frame.
        drop(frames_rx);
        let (report, analysed_duration_s, decode_busy) =
            decoder.join().map_err(|panic| PipelineError::Panic {
                input: media.source.clone(),
                message: crate::panics::message(panic.as_ref()),
            })?;
        outcome?;
        stop.check(&media.source)?;
        clock.0.insert("decode (decoder thread)", decode_busy);
        let tracking = clock
            .time("track", || tracker.finish())
            .map_err(track_err)?;
        let attributes = self.vision.attributes();
        let statistics = clock.time("statistics", || {
            stats::trailer::trailer_statistics(
                &tracking.persons,
                &tracking.timeline,
                interval,
                &attributes,
                &s.age_bands(),
            )
        });
        let sampled_frames = index as u32;
        let mut media_info = self.media_info(
            media,
            format!("{}/{}", info.container, info.codec),
            info.width,
            info.height,
        );
        media_info.duration_s = info.duration_s;
        media_info.frame_rate = info.frame_rate;
        let analysis = TrailerAnalysis {
            media: media_info,
            analysed_duration_s,
            sampled_frames,
            sample_rate: s.sample_rate,
            shot_cuts_s: tracking.shot_cuts_s.clone(),
            decode: report,
            persons: tracking.persons.clone(),
            statistics,
            timeline: tracking.timeline.clone(),
            provenance: self.provenance_for(s),
        };
        let pictures = want_pictures.then(|| PictureData::Trailer {
            frames: sheet
                .into_iter()
                .map(|(i, t, thumbnail, boxes)| Snapshot {
                    t,
                    thumbnail,
                    faces: boxes
                        .into_iter()
                        .enumerate()
                        .map(|(k, b)| (b, tracking.person_of(i, k)))
                        .collect(),
                })
                .collect(),
        });
        let work = Work::from_clock(&clock, u64::from(sampled_frames), faces_seen);
        let sightings = frame_boxes
            .iter()
            .enumerate()
            .flat_map(|(i, (t, boxes))| {
                let tracking = &tracking;
                boxes.iter().enumerate().filter_map(move |(k, &bbox)| {
                    tracking.person_of(i, k).map(|person| PersonSighting {
                        t: *t,
                        person,
                        bbox,
                    })
                })
            })
            .collect();
        Ok(AnalysisOutput {
            analysis: Analysis::Trailer(analysis),
            pictures,
            stage_seconds: clock.0,
            work,
            sightings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_track_is_perceived_on_its_first_faces_then_every_nth() {
        let s = AnalysisSettings {
            trailer_perceive_first: 2,
            trailer_perceive_every: 3,
            ..AnalysisSettings::default()
        };
        let chosen: Vec<u32> = (0..12).filter(|&p| perceives(p, &s)).collect();
        assert_eq!(chosen, vec![0, 1, 4, 7, 10]);
        let every = AnalysisSettings {
            trailer_perceive_every: 1,
            ..s.clone()
        };
        assert!((0..12).all(|p| perceives(p, &every)));
        // A track's first face is always perceived, so every person has attributes.
        let none = AnalysisSettings {
            trailer_perceive_first: 0,
            trailer_perceive_every: 0,
            ..s
        };
        assert!(perceives(0, &none));
    }
}
