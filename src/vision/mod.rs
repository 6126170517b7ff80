//! Models as data (manifest, hashes), face detection, alignment, perceived attributes and
//! embeddings.
//!
//! The models sit behind three narrow traits: [`FaceDetector`] (image → boxes and landmarks),
//! [`AttributeModel`] (aligned chips → probabilities) and [`FaceEmbedder`] (aligned chips → unit
//! vectors), so that the pipeline and tracking can be tested with scripted fakes and no
//! inference runtime. [`onnx`] implements them with ONNX Runtime; what can be computed without
//! it lives in [`manifest`], [`detect`] and [`align`] as pure functions with their own tests.
//! [`Vision`] makes the chips each model asks for and turns its rows into perceptions. Face chips
//! and embeddings stay in memory: nothing here writes to disk.

pub mod align;
pub mod combine;
pub mod detect;
pub mod hash_cache;
pub mod manifest;
pub mod onnx;
pub mod optimized;
pub mod quality;

use crate::domain::{BoundingBox, Detection, ModelOpinion, ModelRef};
use align::{Similarity, face_chip, square_crop, template_points, warp_chip};
use image::RgbImage;
pub use manifest::ModelManifest;
use manifest::{AlignSpec, SquareSpec};
use ndarray::Array2;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What can go wrong in the vision stage. None of it is worth a retry: files do not fix
/// themselves and inference on the same bytes fails the same way.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VisionError {
    #[error("model manifest {path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error(
        "model file {file} is missing or unreadable ({reason}); expected sha256 {expected}, actual: none; {hint}",
        hint = manifest::SETUP_HINT
    )]
    MissingFile {
        file: PathBuf,
        expected: String,
        reason: String,
    },
    #[error(
        "model file {file} has sha256 {actual}, the manifest expects {expected}; {hint}",
        hint = manifest::SETUP_HINT
    )]
    HashMismatch {
        file: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("cannot load ONNX Runtime from {file}: {message}")]
    RuntimeLoad { file: PathBuf, message: String },
    #[error("cannot load model \"{model}\": {message}")]
    ModelLoad { model: String, message: String },
    #[error("inference with model \"{model}\" failed: {message}")]
    Inference { model: String, message: String },
    #[error("face embeddings were not enabled when the models were loaded")]
    EmbeddingsDisabled,
    #[error("no loaded model is named \"{0}\"")]
    UnknownModel(String),
}

impl VisionError {
    pub fn is_retryable(&self) -> bool {
        match self {
            VisionError::Manifest { .. }
            | VisionError::MissingFile { .. }
            | VisionError::HashMismatch { .. }
            | VisionError::RuntimeLoad { .. }
            | VisionError::ModelLoad { .. }
            | VisionError::Inference { .. }
            | VisionError::EmbeddingsDisabled
            | VisionError::UnknownModel(_) => false,
        }
    }
}

/// How the models are loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionOptions {
    /// ONNX Runtime intra-op threads per session.
    pub intra_threads: usize,
    /// Sensitive attributes (manifest `sensitive_attributes`) the operator explicitly enabled.
    pub enable_sensitive: Vec<String>,
    /// Load the embedding model (trailers need it to follow persons; posters do not).
    pub embeddings: bool,
}

impl Default for VisionOptions {
    fn default() -> Self {
        VisionOptions {
            intra_threads: 2,
            enable_sensitive: Vec::new(),
            embeddings: false,
        }
    }
}

/// What a detector is asked for: the analysis settings of the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectOptions {
    pub score_threshold: f32,
    pub nms_iou: f32,
    /// Faces shorter than this are not looked for and not returned.
    pub min_face_px: f32,
    /// Windows may be cut to each view when the detector's graph takes any input size
    /// (`detect::InputWindow`); otherwise every window is the manifest's input size.
    pub fitted_windows: bool,
}

/// Finds faces in one image. Models take `&self` and are `Sync`: one model set serves every
/// thread of a worker slot (ONNX sessions lock inside).
pub trait FaceDetector: Send + Sync {
    /// What produced the boxes (provenance).
    fn model(&self) -> ModelRef;
    /// Boxes and landmarks in source pixels, best score first, none shorter than
    /// `options.min_face_px`.
    fn detect(
        &self,
        image: &RgbImage,
        options: &DetectOptions,
    ) -> Result<Vec<Detection>, VisionError>;
}

/// The face chip a model reads: how it is aligned on the landmarks, and its size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChipSpec {
    pub align: AlignSpec,
    pub width: u32,
    pub height: u32,
}

/// Reads aligned face chips and gives a distribution per chip (over labels or age bins).
pub trait AttributeModel: Send + Sync {
    fn model(&self) -> ModelRef;
    fn chip(&self) -> ChipSpec;
    /// One row of probabilities per chip, in the model's output order.
    fn probabilities(&self, chips: &[RgbImage]) -> Result<Vec<Vec<f32>>, VisionError>;
}

/// Reads aligned face chips and gives a descriptor per chip, to tell persons apart.
pub trait FaceEmbedder: Send + Sync {
    fn model(&self) -> ModelRef;
    fn chip(&self) -> ChipSpec;
    /// One L2-normalised vector per chip.
    fn embed(&self, chips: &[RgbImage]) -> Result<Vec<Vec<f32>>, VisionError>;
}

/// Reads face-api.js's square face crops and gives, per crop, gender probabilities (in
/// [`GenderAgeModel::labels`] order) and an age in years: a second opinion on both from one
/// network, independent of the classifiers' aligned chips.
pub trait GenderAgeModel: Send + Sync {
    fn model(&self) -> ModelRef;
    /// How the crop is placed on the landmarks.
    fn square(&self) -> SquareSpec;
    /// The crop's side in pixels (the network's input size).
    fn side(&self) -> u32;
    /// Gender labels in output order.
    fn labels(&self) -> Vec<String>;
    /// One `(probabilities, years)` per crop.
    fn estimate(&self, crops: &[RgbImage]) -> Result<Vec<(Vec<f32>, f32)>, VisionError>;
}

/// A categorical attribute model and what its rows mean.
pub struct Classifier {
    pub attribute: String,
    /// One per output column.
    pub labels: Vec<String>,
    pub model: Box<dyn AttributeModel>,
}

/// An age model: a distribution over bins whose expectation is the age in years.
pub struct AgeModel {
    /// Age in years of each output column.
    pub bin_values: Vec<f32>,
    pub model: Box<dyn AttributeModel>,
}

/// A model set, as [`onnx::load`] makes it from a manifest or a test from fakes.
pub struct Models {
    /// sha256 of the inference runtime the models run in (provenance).
    pub runtime_sha256: String,
    pub detector: Box<dyn FaceDetector>,
    /// In manifest order.
    pub classifiers: Vec<Classifier>,
    pub age: Option<AgeModel>,
    pub embedder: Option<Box<dyn FaceEmbedder>>,
    /// Second gender and age opinions (manifest role `gender_age`), in manifest order.
    pub gender_age: Vec<Box<dyn GenderAgeModel>>,
}

/// What the attribute models perceived for one face.
#[derive(Debug, Clone, PartialEq)]
pub struct Perception {
    /// Per enabled classifier, in manifest order: attribute name → probability per label.
    pub classes: Vec<(String, BTreeMap<String, f32>)>,
    /// Expected age in years (Σ p·bin_value), when an age model is configured.
    pub age_years: Option<f32>,
    /// Every model's own opinion, attribute name first: the classifiers' probabilities, the age
    /// model's years, then each `gender_age` model's gender probabilities and years. What the
    /// combination rule decides from, and what a face keeps.
    pub opinions: Vec<(String, ModelOpinion)>,
}

/// The loaded model set. Models are created once and reused; all are `Send + Sync`, so `Vision`
/// is shareable between threads.
pub struct Vision {
    models: std::sync::Arc<Deferred>,
    /// What the model set is, known before its sessions are made.
    about: ModelSetInfo,
    /// Run the square-crop models on a second thread beside the aligned-chip models.
    parallel_models: bool,
}

/// What results made by a model set name and hold, without running it.
#[derive(Debug, Clone, PartialEq)]
struct ModelSetInfo {
    runtime_sha256: String,
    /// Detector first, then in manifest order (as [`model_refs`]).
    models: Vec<ModelRef>,
    /// Classifier attributes and their labels, in manifest order.
    attributes: Vec<(String, Vec<String>)>,
    has_age: bool,
}

impl ModelSetInfo {
    fn of(m: &Models) -> ModelSetInfo {
        ModelSetInfo {
            runtime_sha256: m.runtime_sha256.clone(),
            models: std::iter::once(m.detector.model())
                .chain(m.classifiers.iter().map(|c| c.model.model()))
                .chain(m.age.iter().map(|a| a.model.model()))
                .chain(m.embedder.iter().map(|e| e.model()))
                .chain(m.gender_age.iter().map(|g| g.model()))
                .collect(),
            attributes: m
                .classifiers
                .iter()
                .map(|c| (c.attribute.clone(), c.labels.clone()))
                .collect(),
            has_age: m.age.is_some(),
        }
    }

    /// The same, read off the manifest: what [`onnx::load`] of it with `options` gives.
    fn planned(manifest: &ModelManifest, options: &VisionOptions) -> ModelSetInfo {
        let loaded = || manifest.loaded_models(&options.enable_sensitive, options.embeddings);
        ModelSetInfo {
            runtime_sha256: manifest.runtime.sha256.clone(),
            models: model_refs(manifest, options),
            attributes: loaded()
                .filter(|m| m.role == manifest::ModelRole::Classifier)
                .map(|m| (m.attribute.clone().unwrap_or_default(), m.labels.clone()))
                .collect(),
            has_age: loaded().any(|m| m.role == manifest::ModelRole::Age),
        }
    }
}

/// A model set that is loaded, or being loaded on a thread of its own: the first use waits for
/// it, and every use after a failed load gets the load's error.
struct Deferred {
    done: std::sync::OnceLock<Result<Models, VisionError>>,
    loading: std::sync::Mutex<Option<std::thread::JoinHandle<Result<Models, VisionError>>>>,
}

impl Deferred {
    fn ready(models: Models) -> Deferred {
        Deferred {
            done: std::sync::OnceLock::from(Ok(models)),
            loading: std::sync::Mutex::new(None),
        }
    }

    /// Starts `load` on a thread of its own, known to [`finish_background_loads`].
    fn spawn(
        load: impl FnOnce() -> Result<Models, VisionError> + Send + 'static,
    ) -> std::sync::Arc<Deferred> {
        let loading = std::thread::Builder::new()
            .name("regard-load".into())
            .spawn(load);
        let deferred = std::sync::Arc::new(match loading {
            Ok(handle) => Deferred {
                done: std::sync::OnceLock::new(),
                loading: std::sync::Mutex::new(Some(handle)),
            },
            Err(e) => Deferred {
                done: std::sync::OnceLock::from(Err(VisionError::ModelLoad {
                    model: "(all)".into(),
                    message: format!("cannot start the loading thread: {e}"),
                })),
                loading: std::sync::Mutex::new(None),
            },
        });
        BACKGROUND_LOADS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(std::sync::Arc::downgrade(&deferred));
        deferred
    }

    fn get(&self) -> Result<&Models, VisionError> {
        if self.done.get().is_none() {
            // Whoever holds the lock joins the thread and stores its result before letting go.
            let mut loading = self.loading.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(handle) = loading.take() {
                let result = handle.join().unwrap_or_else(|panic| {
                    Err(VisionError::ModelLoad {
                        model: "(all)".into(),
                        message: format!(
                            "the loading thread panicked: {}",
                            crate::panics::message(panic.as_ref())
                        ),
                    })
                });
                let _ = self.done.set(result);
            }
        }
        match self.done.get() {
            Some(Ok(models)) => Ok(models),
            Some(Err(e)) => Err(e.clone()),
            None => Err(VisionError::ModelLoad {
                model: "(all)".into(),
                message: "the models were never loaded".into(),
            }),
        }
    }
}

impl Drop for Deferred {
    /// A set dropped while it loads waits for its thread: none outlives the set it fills.
    fn drop(&mut self) {
        let loading = self.loading.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(handle) = loading.take() {
            // The load's result belongs to a set nobody can use any more.
            let _ = handle.join();
        }
    }
}

/// Model sets loading on a thread of their own; those dropped since have joined theirs.
static BACKGROUND_LOADS: std::sync::Mutex<Vec<std::sync::Weak<Deferred>>> =
    std::sync::Mutex::new(Vec::new());

/// Waits for every model set still loading on a thread of its own; for the process exit, which
/// tears down ONNX Runtime's globals under a thread still making sessions: that crashed 6 of
/// 10 `regard analyze` runs whose only input failed before a model was needed (SIGSEGV instead
/// of exit 1). A load's error is not reported here: whoever uses the set gets it.
pub fn finish_background_loads() {
    let loads = std::mem::take(&mut *BACKGROUND_LOADS.lock().unwrap_or_else(|p| p.into_inner()));
    for deferred in loads.iter().filter_map(std::sync::Weak::upgrade) {
        let _ = deferred.get();
    }
}

/// See [`Vision::load_handle`].
#[derive(Clone)]
pub struct ModelLoad(std::sync::Arc<Deferred>);

impl ModelLoad {
    /// Waits for the load; its error when it failed.
    pub fn wait(&self) -> Result<(), VisionError> {
        self.0.get().map(|_| ())
    }
}

fn infer_err(model: &ModelRef, message: impl ToString) -> VisionError {
    VisionError::Inference {
        model: model.name.clone(),
        message: message.to_string(),
    }
}

/// Pieces each square-crop model's batch is cut into, so that two threads share it evenly (a
/// 2000×3000 poster's 8 faces and their mirror images: 6 runs of at most 3 crops).
const GENDER_AGE_PIECES: usize = 6;
/// Fewest crops in a piece: a trailer frame's one face and its mirror image stay one run.
const MIN_PIECE: usize = 2;

/// One face model's run on a poster's or a frame's faces, with its time as a debug event
/// (`REGARD_LOG=debug`: where the classify stage goes, model by model).
fn timed_run<T>(model: &ModelRef, chips: usize, run: impl FnOnce() -> T) -> T {
    let started = std::time::Instant::now();
    let out = run();
    tracing::debug!(
        model = %model.name,
        chips,
        ms = started.elapsed().as_secs_f64() * 1e3,
        "face model run"
    );
    out
}

/// A model's rows, checked to be one per chip.
fn checked_rows(
    model: &ModelRef,
    chips: usize,
    rows: Vec<Vec<f32>>,
) -> Result<Vec<Vec<f32>>, VisionError> {
    if rows.len() != chips {
        return Err(infer_err(
            model,
            format!("{} output rows for {chips} faces", rows.len()),
        ));
    }
    Ok(rows)
}

impl Vision {
    /// The models of a manifest with ONNX Runtime (see [`onnx::load`]).
    pub fn load(manifest: &ModelManifest, options: &VisionOptions) -> Result<Vision, VisionError> {
        onnx::load(manifest, options)
            .map(|m| Vision::new(m).with_parallel_models(options.intra_threads > 1))
    }

    /// [`Vision::load`] that returns once the files are checked, while ONNX Runtime and the
    /// sessions load on a thread of their own: a one-poster run reads and decodes its image in
    /// the meantime. The first call that runs a model waits for the load; a load that fails
    /// fails every such call with its error ([`Vision::loaded`] asks for it directly).
    ///
    /// Checked before returning, as by [`Vision::load`]: the manifest's sensitive-attribute
    /// rules and the sha256 of the runtime and of every model loaded now (an unchanged file
    /// is not re-hashed, see [`hash_cache`]). What is left to fail is ONNX Runtime itself.
    pub fn load_in_background(
        manifest: &ModelManifest,
        options: &VisionOptions,
    ) -> Result<Vision, VisionError> {
        onnx::check_options(manifest, options)?;
        manifest::verify_file(&manifest.runtime.file, &manifest.runtime.sha256)?;
        for spec in manifest.loaded_models(&options.enable_sensitive, options.embeddings) {
            // The embedder is checked when it is loaded, at the first trailer.
            if spec.role != manifest::ModelRole::Embedding {
                manifest::verify_file(&spec.file, &spec.sha256)?;
            }
        }
        for spec in manifest.gender_age.iter().filter(|m| m.enabled) {
            manifest::verify_file(&spec.file, &spec.sha256)?;
        }
        let about = ModelSetInfo::planned(manifest, options);
        let (manifest, options_owned) = (manifest.clone(), options.clone());
        Ok(Vision {
            models: Deferred::spawn(move || onnx::load(&manifest, &options_owned)),
            about,
            parallel_models: options.intra_threads > 1,
        })
    }

    pub fn new(models: Models) -> Vision {
        Vision {
            about: ModelSetInfo::of(&models),
            models: std::sync::Arc::new(Deferred::ready(models)),
            parallel_models: false,
        }
    }

    /// The model sessions, waiting for a load still running; its error when it failed.
    pub fn loaded(&self) -> Result<&Models, VisionError> {
        self.models.get()
    }

    /// A handle on this set's load that outlives the borrow (the caller hands the pipeline on):
    /// whether the sessions loaded, once they have.
    pub fn load_handle(&self) -> ModelLoad {
        ModelLoad(std::sync::Arc::clone(&self.models))
    }

    /// Run the `gender_age` models on a second thread while the classifiers and the age model
    /// run on the calling one (same results; less wall time when cores are free). [`Vision::load`]
    /// turns it on when sessions have more than one intra-op thread: with one (a worker slot per
    /// core) the cores are already shared out, and a second thread would only compete with the
    /// other slot.
    pub fn with_parallel_models(mut self, parallel: bool) -> Vision {
        self.parallel_models = parallel;
        self
    }

    /// Find faces in windows of the manifest's input size. Boxes and landmarks in source
    /// pixels, best score first; faces shorter than `min_face_px` are dropped.
    pub fn detect(
        &self,
        image: &RgbImage,
        score_threshold: f32,
        nms_iou: f32,
        min_face_px: f32,
    ) -> Result<Vec<Detection>, VisionError> {
        self.detect_with(
            image,
            &DetectOptions {
                score_threshold,
                nms_iou,
                min_face_px,
                fitted_windows: false,
            },
        )
    }

    /// [`Vision::detect`] with every option, e.g. windows fitted to the views (trailer frames).
    pub fn detect_with(
        &self,
        image: &RgbImage,
        options: &DetectOptions,
    ) -> Result<Vec<Detection>, VisionError> {
        let (w, h) = image.dimensions();
        if w == 0 || h == 0 {
            return Ok(Vec::new());
        }
        self.loaded()?.detector.detect(image, options)
    }

    /// Perceived attributes of each detection: one batched run per model for the whole image.
    pub fn perceive(
        &self,
        image: &RgbImage,
        detections: &[Detection],
    ) -> Result<Vec<Perception>, VisionError> {
        self.perceive_with(image, detections, false)
    }

    /// [`Vision::perceive`], optionally averaging each face with its mirror image: perceived
    /// gender and age do not change in a mirror, so the average of both chips is a lower-variance
    /// estimate of the same quantity (one batch of 2N chips per model, still one run).
    pub fn perceive_with(
        &self,
        image: &RgbImage,
        detections: &[Detection],
        mirror_average: bool,
    ) -> Result<Vec<Perception>, VisionError> {
        let models = self.loaded()?;
        let mut out: Vec<Perception> = detections
            .iter()
            .map(|_| Perception {
                classes: Vec::with_capacity(models.classifiers.len()),
                age_years: None,
                opinions: Vec::new(),
            })
            .collect();
        if detections.is_empty() {
            return Ok(out);
        }
        // Every chip and crop first (cheap, and what each model reads), then the models: the
        // aligned-chip models one after another on this thread and the square-crop models on a
        // second when the sessions have threads to spare (the runs are independent; results
        // are assembled in the same order either way, so the figures are the same).
        let mut chips = ChipCache::default();
        let attribute_models: Vec<&dyn AttributeModel> = models
            .classifiers
            .iter()
            .map(|c| c.model.as_ref())
            .chain(models.age.as_ref().map(|a| a.model.as_ref()))
            .collect();
        for model in &attribute_models {
            chips.chips(image, detections, &model.chip());
        }
        let crops: Vec<Vec<RgbImage>> = models
            .gender_age
            .iter()
            .map(|m| square_crops(image, detections, &m.square(), m.side()))
            .collect();
        let chips = &chips;
        let run_attribute = |model: &dyn AttributeModel| -> Result<Vec<Vec<f32>>, VisionError> {
            let name = model.model();
            let faces = chips.get(&model.chip());
            if !mirror_average {
                return checked_rows(&name, faces.len(), model.probabilities(faces)?);
            }
            let n = faces.len();
            let mut both = faces.to_vec();
            both.extend(faces.iter().map(image::imageops::flip_horizontal));
            let rows = checked_rows(&name, 2 * n, model.probabilities(&both)?)?;
            Ok((0..n)
                .map(|i| {
                    rows[i]
                        .iter()
                        .zip(&rows[i + n])
                        .map(|(a, b)| (a + b) / 2.0)
                        .collect()
                })
                .collect())
        };
        // The square-crop models' batches (crops, then their mirror images) in pieces, so that
        // both threads can take them: one thread runs the aligned-chip models, then pieces; the
        // other runs pieces from the start. Every run is on a one-thread session, a face's row
        // is computed alone whatever batch it is in, and the rows are put back in batch order,
        // so the figures are the same on one thread or two.
        let batches: Vec<Vec<RgbImage>> = crops
            .iter()
            .map(|c| {
                let mut both = c.clone();
                if mirror_average {
                    both.extend(c.iter().map(image::imageops::flip_horizontal));
                }
                both
            })
            .collect();
        let pieces: Vec<(usize, std::ops::Range<usize>)> = batches
            .iter()
            .enumerate()
            .flat_map(|(m, batch)| {
                let len = batch.len();
                let step = len.div_ceil(GENDER_AGE_PIECES).max(MIN_PIECE);
                (0..len)
                    .step_by(step)
                    .map(move |start| (m, start..(start + step).min(len)))
            })
            .collect();
        let next_piece = std::sync::atomic::AtomicUsize::new(0);
        let piece_rows: Vec<std::sync::OnceLock<Result<GenderAgeRows, VisionError>>> =
            pieces.iter().map(|_| std::sync::OnceLock::new()).collect();
        let run_pieces = || {
            loop {
                let i = next_piece.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((m, range)) = pieces.get(i) else {
                    break;
                };
                let model = models.gender_age[*m].as_ref();
                let chips = &batches[*m][range.clone()];
                let rows = timed_run(&model.model(), chips.len(), || model.estimate(chips));
                let _ = piece_rows[i].set(rows);
            }
        };
        let attributes = || -> Vec<Result<Vec<Vec<f32>>, VisionError>> {
            let chips = detections.len() * if mirror_average { 2 } else { 1 };
            attribute_models
                .iter()
                .map(|m| timed_run(&m.model(), chips, || run_attribute(*m)))
                .collect()
        };
        let attribute_rows =
            if self.parallel_models && !attribute_models.is_empty() && !pieces.is_empty() {
                std::thread::scope(|scope| {
                    let other = scope.spawn(run_pieces);
                    let mine = attributes();
                    run_pieces();
                    other
                        .join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p));
                    mine
                })
            } else {
                let mine = attributes();
                run_pieces();
                mine
            };
        let mut piece_rows = piece_rows.into_iter();
        let gender_age_rows: Vec<Result<GenderAgeRows, VisionError>> = batches
            .iter()
            .enumerate()
            .map(|(m, batch)| {
                let model = models.gender_age[m].as_ref();
                let mut rows = Vec::with_capacity(batch.len());
                for _ in pieces.iter().filter(|(of, _)| *of == m) {
                    let piece = piece_rows.next().and_then(|r| r.into_inner());
                    rows.extend(piece.unwrap_or_else(|| Ok(Vec::new()))?);
                }
                let rows = checked_pairs(&model.model(), batch.len(), rows)?;
                if !mirror_average {
                    return Ok(rows);
                }
                let n = batch.len() / 2;
                Ok((0..n)
                    .map(|i| {
                        let (a, b) = (&rows[i], &rows[i + n]);
                        let probs = a.0.iter().zip(&b.0).map(|(x, y)| (x + y) / 2.0).collect();
                        (probs, (a.1 + b.1) / 2.0)
                    })
                    .collect())
            })
            .collect();
        let mut attribute_rows = attribute_rows.into_iter();
        let mut run = |_: &dyn AttributeModel| -> Result<Vec<Vec<f32>>, VisionError> {
            attribute_rows.next().unwrap_or_else(|| Ok(Vec::new()))
        };
        for c in &models.classifiers {
            let rows = run(c.model.as_ref())?;
            for (p, row) in out.iter_mut().zip(rows) {
                if row.len() != c.labels.len() {
                    return Err(infer_err(
                        &c.model.model(),
                        format!(
                            "{} outputs per face for {} labels",
                            row.len(),
                            c.labels.len()
                        ),
                    ));
                }
                let probs: BTreeMap<String, f32> = c.labels.iter().cloned().zip(row).collect();
                p.opinions.push((
                    c.attribute.clone(),
                    ModelOpinion::probabilities(&c.model.model().name, probs.clone()),
                ));
                p.classes.push((c.attribute.clone(), probs));
            }
        }
        if let Some(age) = &models.age {
            let rows = run(age.model.as_ref())?;
            let bins = &age.bin_values;
            for (p, row) in out.iter_mut().zip(rows) {
                if row.len() != bins.len() {
                    return Err(infer_err(
                        &age.model.model(),
                        format!("{} outputs per face for {} age bins", row.len(), bins.len()),
                    ));
                }
                let years: f32 = row.iter().zip(bins).map(|(p, v)| p * v).sum();
                p.age_years = Some(years);
                p.opinions.push((
                    "age".into(),
                    ModelOpinion::years(&age.model.model().name, years),
                ));
            }
        }
        for (model, rows) in models.gender_age.iter().zip(gender_age_rows) {
            let labels = model.labels();
            let name = model.model().name;
            let rows = rows?;
            for (p, (probs, years)) in out.iter_mut().zip(rows) {
                if probs.len() != labels.len() {
                    return Err(infer_err(
                        &model.model(),
                        format!(
                            "{} gender outputs per face for {} labels",
                            probs.len(),
                            labels.len()
                        ),
                    ));
                }
                let probs = labels.iter().cloned().zip(probs).collect();
                p.opinions
                    .push(("gender".into(), ModelOpinion::probabilities(&name, probs)));
                p.opinions
                    .push(("age".into(), ModelOpinion::years(&name, years)));
            }
        }
        Ok(out)
    }

    /// `(probabilities, years)` of a loaded `gender_age` model on prepared square crops (already
    /// its input size). For golden tests and evaluation tools.
    pub fn run_gender_age(
        &self,
        name: &str,
        crops: &[RgbImage],
    ) -> Result<Vec<(Vec<f32>, f32)>, VisionError> {
        let model = self
            .loaded()?
            .gender_age
            .iter()
            .find(|m| m.model().name == name)
            .ok_or_else(|| VisionError::UnknownModel(name.to_string()))?;
        checked_pairs(&model.model(), crops.len(), model.estimate(crops)?)
    }

    /// The square crop a `gender_age` model reads for one face (black when the landmarks are
    /// degenerate).
    pub fn gender_age_crop(
        &self,
        name: &str,
        image: &RgbImage,
        detection: &Detection,
    ) -> Result<RgbImage, VisionError> {
        let model = self
            .loaded()?
            .gender_age
            .iter()
            .find(|m| m.model().name == name)
            .ok_or_else(|| VisionError::UnknownModel(name.to_string()))?;
        Ok(square_crops(
            image,
            std::slice::from_ref(detection),
            &model.square(),
            model.side(),
        )
        .remove(0))
    }

    /// L2-normalised face descriptors (same order as `detections`), in memory only.
    pub fn embed(
        &self,
        image: &RgbImage,
        detections: &[Detection],
    ) -> Result<Vec<Vec<f32>>, VisionError> {
        Ok(self.embed_with_sharpness(image, detections)?.0)
    }

    /// [`Vision::embed`] and the sharpness of each embedded chip ([`quality::sharpness`]):
    /// re-identification across shots trusts only sharp faces. In memory only.
    pub fn embed_with_sharpness(
        &self,
        image: &RgbImage,
        detections: &[Detection],
    ) -> Result<(Vec<Vec<f32>>, Vec<f32>), VisionError> {
        let model = self
            .loaded()?
            .embedder
            .as_ref()
            .ok_or(VisionError::EmbeddingsDisabled)?;
        if detections.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut cache = ChipCache::default();
        let chips = cache.chips(image, detections, &model.chip());
        let sharpness = chips.iter().map(quality::sharpness).collect();
        let rows = checked_rows(&model.model(), chips.len(), model.embed(chips)?)?;
        Ok((rows, sharpness))
    }

    /// Raw rows of a loaded classifier, age or embedding model on prepared chips (already the
    /// model's chip size). For golden tests and evaluation tools; the pipeline uses `perceive`
    /// and `embed`.
    pub fn run_model(&self, name: &str, chips: &[RgbImage]) -> Result<Array2<f32>, VisionError> {
        let m = self.loaded()?;
        let attribute = m
            .classifiers
            .iter()
            .map(|c| c.model.as_ref())
            .chain(m.age.as_ref().map(|a| a.model.as_ref()))
            .find(|model| model.model().name == name);
        let (model, rows) = match attribute {
            Some(model) => (model.model(), model.probabilities(chips)?),
            None => match m.embedder.as_ref().filter(|e| e.model().name == name) {
                Some(e) => (e.model(), e.embed(chips)?),
                None => return Err(VisionError::UnknownModel(name.to_string())),
            },
        };
        let rows = checked_rows(&model, chips.len(), rows)?;
        let width = rows.first().map_or(0, |r| r.len());
        let flat: Vec<f32> = rows.into_iter().flatten().collect();
        Array2::from_shape_vec((flat.len() / width.max(1), width), flat)
            .map_err(|e| infer_err(&model, e))
    }

    /// Enabled classifier attributes and their labels, in manifest order.
    pub fn attributes(&self) -> Vec<(String, Vec<String>)> {
        self.about.attributes.clone()
    }

    pub fn has_age(&self) -> bool {
        self.about.has_age
    }

    pub fn runtime_sha256(&self) -> &str {
        &self.about.runtime_sha256
    }

    /// The models loaded, or being loaded (for provenance), detector first, then in manifest
    /// order.
    pub fn models(&self) -> Vec<ModelRef> {
        self.about.models.clone()
    }
}

/// The models [`Vision::load`] loads for `options`, in [`Vision::models`] order, without
/// loading them: what a result made by them will name in its provenance.
pub fn model_refs(manifest: &ModelManifest, options: &VisionOptions) -> Vec<ModelRef> {
    let rank = |role: manifest::ModelRole| match role {
        manifest::ModelRole::Detector => 0,
        manifest::ModelRole::Classifier => 1,
        manifest::ModelRole::Age => 2,
        manifest::ModelRole::Embedding => 3,
    };
    let mut specs: Vec<_> = manifest
        .loaded_models(&options.enable_sensitive, options.embeddings)
        .collect();
    specs.sort_by_key(|m| rank(m.role));
    specs
        .into_iter()
        .map(|m| m.model_ref())
        .chain(
            manifest
                .gender_age
                .iter()
                .filter(|g| g.enabled)
                .map(|g| g.model_ref()),
        )
        .collect()
}

/// One `(gender probabilities, years)` per face, from a `gender_age` model.
type GenderAgeRows = Vec<(Vec<f32>, f32)>;

/// A `gender_age` model's rows, checked to be one per crop.
fn checked_pairs(
    model: &ModelRef,
    crops: usize,
    rows: Vec<(Vec<f32>, f32)>,
) -> Result<Vec<(Vec<f32>, f32)>, VisionError> {
    if rows.len() != crops {
        return Err(infer_err(
            model,
            format!("{} output rows for {crops} faces", rows.len()),
        ));
    }
    Ok(rows)
}

/// face-api's square crops of every detection; a face whose landmarks are degenerate gets the
/// square of its box (eyes-to-mouth taken as 40% of the box height).
fn square_crops(
    image: &RgbImage,
    detections: &[Detection],
    spec: &SquareSpec,
    side: u32,
) -> Vec<RgbImage> {
    detections
        .iter()
        .map(|d| {
            square_crop(image, &d.landmarks, spec, side).unwrap_or_else(|| {
                let b = &d.bbox;
                let (cx, cy) = b.center();
                let h = b.height * 0.4;
                let fake = [
                    [cx - h / 2.0, cy - h / 2.0],
                    [cx + h / 2.0, cy - h / 2.0],
                    [cx, cy],
                    [cx, cy + h / 2.0],
                    [cx, cy + h / 2.0],
                ];
                square_crop(image, &fake, spec, side).unwrap_or_else(|| RgbImage::new(side, side))
            })
        })
        .collect()
}

/// Chips shared between models that want the same alignment and size (gender and a festival's
/// classifier, say): each is warped once per image.
#[derive(Default)]
struct ChipCache {
    entries: Vec<(ChipKey, Vec<RgbImage>)>,
}

type ChipKey = (manifest::AlignTemplate, u32, u32, u32);

impl ChipCache {
    /// The chips made for `spec` (empty when none were).
    fn get(&self, spec: &ChipSpec) -> &[RgbImage] {
        let key = (
            spec.align.template,
            spec.align.padding.to_bits(),
            spec.width,
            spec.height,
        );
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(&[], |(_, chips)| chips.as_slice())
    }

    fn chips(
        &mut self,
        image: &RgbImage,
        detections: &[Detection],
        spec: &ChipSpec,
    ) -> &[RgbImage] {
        let ChipSpec {
            align,
            width: w,
            height: h,
        } = *spec;
        let key = (align.template, align.padding.to_bits(), w, h);
        let index = match self.entries.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                let chips = detections
                    .iter()
                    .map(|d| {
                        face_chip(image, &d.landmarks, &align, w, h)
                            .unwrap_or_else(|| box_chip(image, &d.bbox, &align, w, h))
                    })
                    .collect();
                self.entries.push((key, chips));
                self.entries.len() - 1
            }
        };
        &self.entries[index].1
    }
}

/// Fallback for degenerate landmarks (all on one point): align the template's eye-mouth square
/// on the box instead, so the face still gets a chip of the right framing.
fn box_chip(image: &RgbImage, bbox: &BoundingBox, align: &AlignSpec, w: u32, h: u32) -> RgbImage {
    let t = template_points(align, w, h);
    let (x0, x1) = (t[0][0].min(t[3][0]), t[1][0].max(t[4][0]));
    let (y0, y1) = (t[0][1].min(t[1][1]), t[3][1].max(t[4][1]));
    // In a face box the eyes sit near 35% and the mouth corners near 75% of the height.
    let scale = (bbox.height as f64 * 0.4) / (y1 - y0).max(1.0) as f64;
    let cx = (x0 + x1) as f64 / 2.0;
    let cy = (y0 + y1) as f64 / 2.0;
    let (bx, by) = bbox.center();
    let s = Similarity {
        a: scale,
        b: 0.0,
        tx: bx as f64 - scale * cx,
        ty: by as f64 + bbox.height as f64 * 0.05 - scale * cy,
    };
    warp_chip(image, &s, w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_permanent() {
        let e = VisionError::HashMismatch {
            file: "models/x.onnx".into(),
            expected: "aa".into(),
            actual: "bb".into(),
        };
        assert!(!e.is_retryable());
        let msg = e.to_string();
        assert!(msg.contains("models/x.onnx") && msg.contains("aa") && msg.contains("bb"));
        assert!(msg.contains("scripts/setup_models.py"));
        assert!(!VisionError::EmbeddingsDisabled.is_retryable());
    }

    #[test]
    fn vision_is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Vision>();
    }

    fn fake_ref(name: &str) -> ModelRef {
        ModelRef {
            name: name.into(),
            role: "fake".into(),
            file: String::new(),
            sha256: String::new(),
        }
    }

    struct NoFaces;

    impl FaceDetector for NoFaces {
        fn model(&self) -> ModelRef {
            fake_ref("no-faces")
        }

        fn detect(&self, _: &RgbImage, _: &DetectOptions) -> Result<Vec<Detection>, VisionError> {
            Ok(Vec::new())
        }
    }

    /// Row = [mean brightness of the chip's left half, of its right half]; `extra` rows more
    /// than asked for.
    struct Halves {
        extra: usize,
    }

    impl AttributeModel for Halves {
        fn model(&self) -> ModelRef {
            fake_ref("halves")
        }

        fn chip(&self) -> ChipSpec {
            ChipSpec {
                align: AlignSpec {
                    template: manifest::AlignTemplate::Dlib5,
                    padding: 0.2,
                },
                width: 32,
                height: 32,
            }
        }

        fn probabilities(&self, chips: &[RgbImage]) -> Result<Vec<Vec<f32>>, VisionError> {
            let half = |c: &RgbImage, left: bool| {
                let px: Vec<f32> = c
                    .enumerate_pixels()
                    .filter(|(x, _, _)| (*x < 16) == left)
                    .map(|(_, _, p)| f32::from(p.0[0]) / 255.0)
                    .collect();
                px.iter().sum::<f32>() / px.len() as f32
            };
            let mut rows: Vec<Vec<f32>> = chips
                .iter()
                .map(|c| vec![half(c, true), half(c, false)])
                .collect();
            rows.extend((0..self.extra).map(|_| vec![0.5, 0.5]));
            Ok(rows)
        }
    }

    fn halves_vision(extra: usize) -> Vision {
        Vision::new(Models {
            runtime_sha256: "none".into(),
            detector: Box::new(NoFaces),
            classifiers: vec![Classifier {
                attribute: "side".into(),
                labels: vec!["left".into(), "right".into()],
                model: Box::new(Halves { extra }),
            }],
            age: None,
            embedder: None,
            gender_age: Vec::new(),
        })
    }

    /// A face on the boundary between a white left half and a black right half.
    fn split_face() -> (RgbImage, Detection) {
        let image = RgbImage::from_fn(200, 200, |x, _| {
            image::Rgb(if x < 100 { [255; 3] } else { [0; 3] })
        });
        let p = |x: f32, y: f32| [60.0 + 80.0 * x, 60.0 + 80.0 * y];
        let face = Detection {
            bbox: BoundingBox {
                x: 60.0,
                y: 60.0,
                width: 80.0,
                height: 80.0,
            },
            landmarks: [
                p(0.3, 0.4),
                p(0.7, 0.4),
                p(0.5, 0.6),
                p(0.35, 0.8),
                p(0.65, 0.8),
            ],
            score: 0.9,
        };
        (image, face)
    }

    #[test]
    fn mirror_averaging_averages_each_face_with_its_mirror_image() {
        let v = halves_vision(0);
        let (image, face) = split_face();
        let faces = std::slice::from_ref(&face);
        let plain = v.perceive_with(&image, faces, false).unwrap();
        let probs = &plain[0].classes[0].1;
        assert!(probs["left"] > 0.9 && probs["right"] < 0.1, "{probs:?}");
        let mirrored = v.perceive_with(&image, faces, true).unwrap();
        let probs = &mirrored[0].classes[0].1;
        assert_eq!(probs["left"], probs["right"], "{probs:?}");
        assert_eq!(
            v.attributes(),
            [(
                "side".to_string(),
                vec!["left".to_string(), "right".to_string()]
            )]
        );
        assert_eq!(v.models().len(), 2);
        assert!(!v.has_age());
        assert!(matches!(
            v.embed(&image, faces),
            Err(VisionError::EmbeddingsDisabled)
        ));
    }

    #[test]
    fn a_model_giving_a_row_too_many_is_an_inference_error_naming_it() {
        let v = halves_vision(1);
        let (image, face) = split_face();
        let e = v.perceive(&image, &[face]).unwrap_err();
        assert!(
            matches!(&e, VisionError::Inference { model, .. } if model == "halves"),
            "{e}"
        );
    }
}
