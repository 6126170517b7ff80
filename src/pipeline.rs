//! One media file in, one analysis out: the same path for the CLI and the worker.
//! Decides what the file is by its bytes, then runs media → vision → track → stats.

use crate::config::{AnalysisSettings, Limits};
use crate::domain::{
    AgeEstimate, Analysis, AttributeEstimate, Detection, Face, MediaInfo, PosterAnalysis,
    Provenance, TrailerAnalysis, UNKNOWN,
};
use crate::media::MediaError;
use crate::media::fetch::FetchedMedia;
use crate::media::image::decode_image;
use crate::media::video::{SamplerOptions, VideoError, VideoSampler};
use crate::report::pictures::{SheetFrame, annotate_faces, contact_sheet, timeline_chart};
use crate::stats;
use crate::track::{FrameObservation, FrameSignature, TrackError, Tracker};
use crate::vision::{Perception, Vision, VisionError};
use image::RgbImage;
use std::cell::Cell;
use std::time::{Duration, Instant};

/// Pictures for a person to check the result, made only when asked for.
pub enum Pictures {
    Poster {
        annotated: RgbImage,
    },
    Trailer {
        contact_sheet: RgbImage,
        timeline: RgbImage,
    },
}

pub struct AnalysisOutput {
    pub analysis: Analysis,
    pub pictures: Option<Pictures>,
    /// What the analysis cost (for metrics and stage timings; not part of the result).
    pub work: Work,
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

/// Per-call state: the settings in force and the work counters.
struct Run<'a> {
    settings: &'a AnalysisSettings,
    frames: Cell<u64>,
    faces: Cell<u64>,
    inference: Cell<Duration>,
}

impl<'a> Run<'a> {
    fn new(settings: &'a AnalysisSettings) -> Self {
        Run {
            settings,
            frames: Cell::new(0),
            faces: Cell::new(0),
            inference: Cell::new(Duration::ZERO),
        }
    }

    /// Runs one model call and adds its time to the inference total.
    fn timed<T>(&self, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        self.inference.set(self.inference.get() + started.elapsed());
        out
    }

    fn work(&self) -> Work {
        Work {
            frames: self.frames.get(),
            faces: self.faces.get(),
            inference_s: self.inference.get().as_secs_f64(),
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
}

impl PipelineError {
    /// Stable code recorded with a failed analysis.
    pub fn code(&self) -> &'static str {
        match self {
            PipelineError::Media(e) => e.code(),
            PipelineError::Video(e) => e.code(),
            PipelineError::Vision(_) => "inference_failed",
            PipelineError::Track { source, .. } => source.code(),
            PipelineError::Panic { .. } => "internal_panic",
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
        }
    }
}

/// Frames kept for the contact sheet at most; spread evenly over the trailer.
const SHEET_FRAMES: usize = 40;
const SHEET_THUMB_WIDTH: u32 = 240;

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

    pub fn vision(&self) -> &Vision {
        &self.vision
    }

    /// What produced results of this pipeline (also the idempotency key's model-set part).
    pub fn provenance(&self) -> Provenance {
        self.provenance_for(&self.settings)
    }

    /// The provenance of results made with `settings` (per-job overrides) by these models.
    pub fn provenance_for(&self, settings: &AnalysisSettings) -> Provenance {
        Provenance {
            pipeline_version: crate::PIPELINE_VERSION.to_string(),
            runtime_sha256: self.vision.runtime_sha256().to_string(),
            models: self.vision.models(),
            settings: settings.as_provenance(),
        }
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
        let run = Run::new(settings);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if media.format.is_video() {
                self.analyze_trailer(&run, media, want_pictures, progress)
            } else {
                self.analyze_poster(&run, media, want_pictures)
            }
        }))
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(PipelineError::Panic {
                input: media.source.clone(),
                message,
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
        run: &Run,
        media: &FetchedMedia,
        want_pictures: bool,
    ) -> Result<AnalysisOutput, PipelineError> {
        let bytes = media.read_all()?;
        let decoded = decode_image(&media.source, &bytes, &self.limits)?;
        drop(bytes);
        let faces = self.perceive_faces(run, &decoded.image)?;
        let attributes = self.vision.attributes();
        let statistics = stats::poster::poster_statistics(
            &faces,
            decoded.width,
            decoded.height,
            &attributes,
            &run.settings.age_bands(),
        );
        let pictures = want_pictures.then(|| Pictures::Poster {
            annotated: annotate_faces(&decoded.image, &faces),
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
            provenance: self.provenance_for(run.settings),
        };
        Ok(AnalysisOutput {
            analysis: Analysis::Poster(analysis),
            pictures,
            work: run.work(),
        })
    }

    /// Detect, then perceive every face of one image in one batch per model.
    fn perceive_faces(&self, run: &Run, image: &RgbImage) -> Result<Vec<Face>, PipelineError> {
        let s = run.settings;
        let detections = run.timed(|| {
            self.vision
                .detect(image, s.detection_score_threshold, s.nms_iou, s.min_face_px)
        })?;
        let perceptions = run.timed(|| {
            self.vision
                .perceive_with(image, &detections, s.mirror_average)
        })?;
        run.frames.set(run.frames.get() + 1);
        run.faces.set(run.faces.get() + detections.len() as u64);
        Ok(detections
            .iter()
            .zip(perceptions)
            .map(|(d, p)| Self::face_from(s, d, p))
            .collect())
    }

    /// Turn a detection and the models' probabilities into a face with decided labels.
    fn face_from(s: &AnalysisSettings, detection: &Detection, perception: Perception) -> Face {
        let size_px = detection.bbox.height;
        let mut attributes: Vec<AttributeEstimate> = perception
            .classes
            .into_iter()
            .map(|(attribute, probabilities)| {
                AttributeEstimate::decide(
                    &attribute,
                    probabilities,
                    s.min_attribute_confidence,
                    size_px,
                    s.min_reliable_face_px,
                )
            })
            .collect();
        for required in ["gender", "origin"] {
            if !attributes.iter().any(|a| a.attribute == required) {
                attributes.push(AttributeEstimate::not_configured(required));
            }
        }
        let age = perception.age_years.map(|years| AgeEstimate {
            years,
            band: if size_px < s.min_reliable_face_px {
                UNKNOWN.to_string()
            } else {
                s.age_band(years)
            },
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
        run: &Run,
        media: &FetchedMedia,
        want_pictures: bool,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<AnalysisOutput, PipelineError> {
        let s = run.settings;
        let opts = SamplerOptions {
            threads: self.decoder_threads,
            ..SamplerOptions::from_config(s, &self.limits, Instant::now())
        };
        let mut sampler = VideoSampler::open(&media.source, &media.path, &opts)?;
        let info = sampler.info().clone();
        let total_s = info.duration_s.unwrap_or(0.0).min(opts.max_duration_s);
        let interval = 1.0 / s.sample_rate;
        let expected_frames = ((total_s * s.sample_rate).ceil() as usize).max(1);
        let sheet_every = expected_frames.div_ceil(SHEET_FRAMES).max(1);

        let track_err = |source| PipelineError::Track {
            input: media.source.clone(),
            source,
        };
        let mut tracker = Tracker::new(interval, s.clone()).map_err(track_err)?;
        let mut sheet: Vec<(usize, f64, RgbImage, f32, Vec<Face>)> = Vec::new();
        let mut index = 0usize;
        for frame in &mut sampler {
            let frame = frame?;
            let faces = self.perceive_faces(run, &frame.image)?;
            let embeddings = if faces.is_empty() {
                Vec::new()
            } else {
                let detections: Vec<Detection> = faces
                    .iter()
                    .map(|f| Detection {
                        bbox: f.bbox,
                        landmarks: f.landmarks,
                        score: f.detection_score,
                    })
                    .collect();
                run.timed(|| self.vision.embed(&frame.image, &detections))?
            };
            if want_pictures && index.is_multiple_of(sheet_every) && sheet.len() < SHEET_FRAMES {
                let scale = SHEET_THUMB_WIDTH as f32 / frame.image.width() as f32;
                let thumb = image::imageops::thumbnail(
                    &frame.image,
                    SHEET_THUMB_WIDTH,
                    (frame.image.height() as f32 * scale).round().max(1.0) as u32,
                );
                sheet.push((index, frame.t, thumb, scale, faces.clone()));
            }
            tracker
                .push(FrameObservation {
                    t: frame.t,
                    width: frame.image.width(),
                    height: frame.image.height(),
                    signature: FrameSignature::from_image(&frame.image),
                    faces,
                    embeddings,
                })
                .map_err(track_err)?;
            index += 1;
            progress(Progress {
                done_s: frame.t + interval,
                total_s,
            });
        }
        let report = sampler.report().clone();
        drop(sampler);
        let tracking = tracker.finish().map_err(track_err)?;
        let attributes = self.vision.attributes();
        let statistics = stats::trailer::trailer_statistics(
            &tracking.persons,
            &tracking.timeline,
            interval,
            &attributes,
            &s.age_bands(),
        );
        let sampled_frames = index as u32;
        let analysed_duration_s = sampled_frames as f64 * interval;
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
        let pictures = want_pictures.then(|| {
            let frames: Vec<SheetFrame> = sheet
                .into_iter()
                .map(|(i, t, thumbnail, scale, faces)| SheetFrame {
                    t,
                    thumbnail,
                    faces: faces
                        .iter()
                        .enumerate()
                        .map(|(k, f)| {
                            let person = tracking.person_of(i, k);
                            let label = analysis
                                .persons
                                .iter()
                                .find(|p| Some(p.id) == person)
                                .and_then(|p| p.attribute("gender"))
                                .map(|g| gender_letter(&g.label))
                                .unwrap_or("?");
                            let b = f.bbox;
                            let scaled = crate::domain::BoundingBox {
                                x: b.x * scale,
                                y: b.y * scale,
                                width: b.width * scale,
                                height: b.height * scale,
                            };
                            (scaled, person, label.to_string())
                        })
                        .collect(),
                })
                .collect();
            Pictures::Trailer {
                contact_sheet: contact_sheet(&frames, 5),
                timeline: timeline_chart(&analysis, 1000, 260),
            }
        });
        Ok(AnalysisOutput {
            analysis: Analysis::Trailer(analysis),
            pictures,
            work: run.work(),
        })
    }
}

fn gender_letter(label: &str) -> &'static str {
    match label {
        "female" => "F",
        "male" => "M",
        _ => "?",
    }
}
