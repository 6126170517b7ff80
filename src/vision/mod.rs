//! Models as data (manifest, hashes), ONNX Runtime sessions, face detection, alignment,
//! perceived attributes and embeddings.
//!
//! Everything that can be computed without ONNX Runtime lives in [`manifest`], [`detect`] and
//! [`align`] as pure functions with their own tests; [`Vision`] only owns the sessions and runs
//! them. Face chips and embeddings stay in memory: nothing here writes to disk.

pub mod align;
pub mod detect;
pub mod manifest;

use crate::domain::{BoundingBox, Detection, ModelRef};
use align::{Similarity, face_chip, pack_chips, template_points, warp_chip};
use detect::{
    DetectionPlan, StrideOutputs, TilePolicy, decode_yunet, fill_window, merge_views, plan_views,
    resize_area, window_to_source,
};
use image::RgbImage;
pub use manifest::ModelManifest;
use manifest::{ModelRole, ModelSpec, OutputKind, read_verified, sha256_file};
use ndarray::{Array2, ArrayView4};
use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// What can go wrong in the vision stage. None of it is worth a retry: files do not fix
/// themselves and inference on the same bytes fails the same way.
#[derive(Debug, thiserror::Error)]
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

/// What the attribute models perceived for one face.
#[derive(Debug, Clone, PartialEq)]
pub struct Perception {
    /// Per enabled classifier, in manifest order: attribute name → probability per label.
    pub classes: Vec<(String, BTreeMap<String, f32>)>,
    /// Expected age in years (Σ p·bin_value), when an age model is configured.
    pub age_years: Option<f32>,
}

struct LoadedModel {
    spec: ModelSpec,
    session: Mutex<Session>,
    output: String,
    /// The first input dimension is dynamic: all faces go in one run.
    batchable: bool,
}

/// The loaded model set. Sessions are created once and reused; each sits behind a mutex because
/// `Session::run` needs `&mut`, which makes `Vision` shareable between threads.
pub struct Vision {
    detector: LoadedModel,
    classifiers: Vec<LoadedModel>,
    age: Option<LoadedModel>,
    embedding: Option<LoadedModel>,
    runtime_sha256: String,
    tile_policy: TilePolicy,
}

/// ONNX Runtime is loaded once per process; later loads must name the same library bytes.
static RUNTIME: Mutex<Option<(String, Environment)>> = Mutex::new(None);

fn runtime_environment(file: &std::path::Path, sha256: &str) -> Result<Environment, VisionError> {
    let mut guard = RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((loaded_sha, env)) = guard.as_ref() {
        if loaded_sha != sha256 {
            return Err(VisionError::RuntimeLoad {
                file: file.to_path_buf(),
                message: format!(
                    "this process already runs ONNX Runtime with sha256 {loaded_sha}; one process loads one runtime"
                ),
            });
        }
        return Ok(env.clone());
    }
    let load_err = |message: String| VisionError::RuntimeLoad {
        file: file.to_path_buf(),
        message,
    };
    let env = ort::init_from(file)
        .map_err(|e| load_err(e.to_string()))?
        .with_name("regard")
        .build()
        .map_err(|e| load_err(e.to_string()))?;
    *guard = Some((sha256.to_string(), env.clone()));
    Ok(env)
}

impl LoadedModel {
    fn load(env: &Environment, spec: &ModelSpec, threads: usize) -> Result<Self, VisionError> {
        let bytes = read_verified(&spec.file, &spec.sha256)?;
        let err = |message: String| VisionError::ModelLoad {
            model: spec.name.clone(),
            message,
        };
        // Intra-op threads busy-wait between runs by default; with decoding and inference sharing
        // two cores that spinning steals the decoder's time (STACK.md).
        let session = Session::builder(env)
            .map_err(|e| err(e.to_string()))?
            .with_intra_threads(threads.max(1))
            .map_err(|e| err(e.to_string()))?
            .with_intra_op_spinning(false)
            .map_err(|e| err(e.to_string()))?
            .with_inter_op_spinning(false)
            .map_err(|e| err(e.to_string()))?
            .commit_from_memory(&bytes)
            .map_err(|e| err(e.to_string()))?;
        let input = session
            .inputs()
            .iter()
            .find(|i| i.name() == spec.input.name)
            .ok_or_else(|| {
                err(format!(
                    "the graph has no input \"{}\" (inputs: {})",
                    spec.input.name,
                    names(session.inputs().iter().map(|i| i.name()))
                ))
            })?;
        let batchable = input
            .dtype()
            .tensor_shape()
            .and_then(|s| s.first().copied())
            .is_some_and(|n| n < 0);
        let output = match &spec.output {
            Some(name) => {
                if !session.outputs().iter().any(|o| o.name() == name) {
                    return Err(err(format!(
                        "the graph has no output \"{name}\" (outputs: {})",
                        names(session.outputs().iter().map(|o| o.name()))
                    )));
                }
                name.clone()
            }
            None => session
                .outputs()
                .first()
                .map(|o| o.name().to_string())
                .ok_or_else(|| err("the graph has no output".into()))?,
        };
        Ok(LoadedModel {
            spec: spec.clone(),
            session: Mutex::new(session),
            output,
            batchable,
        })
    }

    fn infer_err(&self, message: impl ToString) -> VisionError {
        VisionError::Inference {
            model: self.spec.name.clone(),
            message: message.to_string(),
        }
    }

    /// Run a batch and return one output row per item, batched or one by one as the graph allows.
    fn run_rows(&self, batch: ArrayView4<'_, f32>) -> Result<Vec<Vec<f32>>, VisionError> {
        let n = batch.shape()[0];
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let mut rows = Vec::with_capacity(n);
        let chunk = if self.batchable { n } else { 1 };
        let mut start = 0;
        while start < n {
            let end = (start + chunk).min(n);
            let part = batch.slice(ndarray::s![start..end, .., .., ..]);
            let tensor = TensorRef::from_array_view(part).map_err(|e| self.infer_err(e))?;
            let outputs = session
                .run(ort::inputs![self.spec.input.name.as_str() => tensor])
                .map_err(|e| self.infer_err(e))?;
            let value = outputs
                .get(&self.output)
                .ok_or_else(|| self.infer_err(format!("no output \"{}\"", self.output)))?;
            let (_, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| self.infer_err(e))?;
            let items = end - start;
            if data.is_empty() || data.len() % items != 0 {
                return Err(self.infer_err(format!(
                    "output of {} values does not split into {items} rows",
                    data.len()
                )));
            }
            rows.extend(data.chunks(data.len() / items).map(|r| r.to_vec()));
            start = end;
        }
        Ok(rows)
    }

    /// Rows as the manifest says to read them: probabilities (softmax applied to logits) or
    /// L2-normalised embeddings.
    fn run_decoded(&self, batch: ArrayView4<'_, f32>) -> Result<Vec<Vec<f32>>, VisionError> {
        let mut rows = self.run_rows(batch)?;
        for row in rows.iter_mut() {
            match self.spec.output_kind {
                OutputKind::Probabilities => {}
                OutputKind::Logits => softmax(row),
                OutputKind::Embedding => l2_normalise(row),
            }
            if row.iter().any(|v| !v.is_finite()) {
                return Err(self.infer_err("the output holds a non-finite value"));
            }
        }
        Ok(rows)
    }

    fn model_ref(&self) -> ModelRef {
        ModelRef {
            name: self.spec.name.clone(),
            role: self.spec.role.as_str().to_string(),
            file: self.spec.file_name.clone(),
            sha256: self.spec.sha256.clone(),
        }
    }
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    it.collect::<Vec<_>>().join(", ")
}

fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

fn l2_normalise(row: &mut [f32]) {
    let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        row.iter_mut().for_each(|v| *v /= norm);
    }
}

impl Vision {
    /// Load ONNX Runtime (once per process) and one session per model the options ask for.
    /// Every file loaded is hashed first: a missing or altered file is an error naming it.
    pub fn load(manifest: &ModelManifest, options: &VisionOptions) -> Result<Vision, VisionError> {
        let manifest_err = |message: String| VisionError::Manifest {
            path: manifest.path.clone(),
            message,
        };
        for wanted in &options.enable_sensitive {
            if !manifest.is_sensitive(wanted) {
                return Err(manifest_err(format!(
                    "\"{wanted}\" was enabled as a sensitive attribute but is not listed in sensitive_attributes"
                )));
            }
            let configured = manifest.enabled_models().any(|m| {
                m.role == ModelRole::Classifier && m.attribute.as_deref() == Some(wanted.as_str())
            });
            if !configured {
                return Err(manifest_err(format!(
                    "\"{wanted}\" was enabled but no enabled classifier has that attribute"
                )));
            }
        }
        let runtime_sha256 = match sha256_file(&manifest.runtime.file) {
            Ok(actual) if actual == manifest.runtime.sha256 => actual,
            Ok(actual) => {
                return Err(VisionError::HashMismatch {
                    file: manifest.runtime.file.clone(),
                    expected: manifest.runtime.sha256.clone(),
                    actual,
                });
            }
            Err(e) => {
                return Err(VisionError::MissingFile {
                    file: manifest.runtime.file.clone(),
                    expected: manifest.runtime.sha256.clone(),
                    reason: e.to_string(),
                });
            }
        };
        let env = runtime_environment(&manifest.runtime.file, &runtime_sha256)?;
        let threads = options.intra_threads;
        let mut detector = None;
        let mut classifiers = Vec::new();
        let mut age = None;
        let mut embedding = None;
        for spec in manifest.enabled_models() {
            match spec.role {
                ModelRole::Detector => detector = Some(LoadedModel::load(&env, spec, threads)?),
                ModelRole::Classifier => {
                    let attribute = spec.attribute.as_deref().unwrap_or_default();
                    // Perceived origin and the like run only when the operator named them.
                    if manifest.is_sensitive(attribute)
                        && !options.enable_sensitive.iter().any(|a| a == attribute)
                    {
                        continue;
                    }
                    classifiers.push(LoadedModel::load(&env, spec, threads)?);
                }
                ModelRole::Age => age = Some(LoadedModel::load(&env, spec, threads)?),
                ModelRole::Embedding if options.embeddings => {
                    embedding = Some(LoadedModel::load(&env, spec, threads)?)
                }
                ModelRole::Embedding => {}
            }
        }
        let detector = detector.ok_or_else(|| manifest_err("no enabled detector".into()))?;
        Ok(Vision {
            detector,
            classifiers,
            age,
            embedding,
            runtime_sha256,
            tile_policy: TilePolicy::default(),
        })
    }

    /// The detector views `detect` would run on an image of this size.
    pub fn detection_plan(&self, width: u32, height: u32, min_face_px: f32) -> DetectionPlan {
        let input = &self.detector.spec.input;
        plan_views(
            width,
            height,
            input.width,
            input.height,
            min_face_px,
            &self.tile_policy,
        )
    }

    /// Find faces: a letterboxed whole view plus tiles where small faces need them (see
    /// [`detect`]), merged across views with NMS. Boxes and landmarks in source pixels, best
    /// score first; faces shorter than `min_face_px` are dropped.
    pub fn detect(
        &self,
        image: &RgbImage,
        score_threshold: f32,
        nms_iou: f32,
        min_face_px: f32,
    ) -> Result<Vec<Detection>, VisionError> {
        let (w, h) = image.dimensions();
        if w == 0 || h == 0 {
            return Ok(Vec::new());
        }
        let model = &self.detector;
        let input = &model.spec.input;
        let strides = model
            .spec
            .decode
            .as_ref()
            .map(|d| d.strides.clone())
            .unwrap_or_else(|| vec![8, 16, 32]);
        let plan = self.detection_plan(w, h, min_face_px);
        let (iw, ih) = (input.width as usize, input.height as usize);
        let mut session = model.session.lock().unwrap_or_else(|p| p.into_inner());
        // Scaled images, finest level first, each made from the previous one (a poster's
        // whole view is then a 2×2 pyramid step plus a small resize of the tile level).
        let n = plan.levels.len();
        let mut scaled: Vec<Option<RgbImage>> = vec![None; n];
        for i in (0..n).rev() {
            let level = &plan.levels[i];
            let made = {
                let finer = scaled[i + 1..].iter().flatten().next();
                let from = finer.unwrap_or(image);
                if (level.width, level.height) != from.dimensions() {
                    Some(resize_area(from, level.width, level.height))
                } else {
                    finer.cloned()
                }
            };
            scaled[i] = made;
        }
        let level_images: Vec<&RgbImage> =
            scaled.iter().map(|s| s.as_ref().unwrap_or(image)).collect();
        let mut all = Vec::new();
        for (level, level_image) in plan.levels.iter().zip(&level_images) {
            for &(x, y) in &level.tiles {
                let tensor = fill_window(level_image, x, y, input);
                let view = ArrayView4::from_shape((1, 3, ih, iw), &tensor)
                    .map_err(|e| model.infer_err(e))?;
                let tensor = TensorRef::from_array_view(view).map_err(|e| model.infer_err(e))?;
                let outputs = session
                    .run(ort::inputs![input.name.as_str() => tensor])
                    .map_err(|e| model.infer_err(e))?;
                let mut per_stride = Vec::with_capacity(strides.len());
                for &s in &strides {
                    let get = |prefix: &str| -> Result<&[f32], VisionError> {
                        let name = format!("{prefix}_{s}");
                        let value = outputs
                            .get(&name)
                            .ok_or_else(|| model.infer_err(format!("no output \"{name}\"")))?;
                        let (_, data) = value
                            .try_extract_tensor::<f32>()
                            .map_err(|e| model.infer_err(e))?;
                        Ok(data)
                    };
                    per_stride.push(StrideOutputs {
                        stride: s,
                        cls: get("cls")?,
                        obj: get("obj")?,
                        bbox: get("bbox")?,
                        kps: get("kps")?,
                    });
                }
                let dets = decode_yunet(&per_stride, input.width, input.height, score_threshold);
                all.extend(window_to_source(
                    dets,
                    &plan,
                    level,
                    (x, y),
                    self.tile_policy.edge_margin_px,
                ));
            }
        }
        Ok(merge_views(all, nms_iou, min_face_px))
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
        let mut out: Vec<Perception> = detections
            .iter()
            .map(|_| Perception {
                classes: Vec::with_capacity(self.classifiers.len()),
                age_years: None,
            })
            .collect();
        if detections.is_empty() {
            return Ok(out);
        }
        let mut chips = ChipCache::default();
        let run = |model: &LoadedModel,
                   batch: ndarray::Array4<f32>|
         -> Result<Vec<Vec<f32>>, VisionError> {
            if !mirror_average {
                return model.run_decoded(batch.view());
            }
            let n = batch.shape()[0];
            let mirrored = batch.slice(ndarray::s![.., .., .., ..;-1]);
            let both = ndarray::concatenate(ndarray::Axis(0), &[batch.view(), mirrored])
                .map_err(|e| model.infer_err(format!("cannot build the mirrored batch: {e}")))?;
            let rows = model.run_decoded(both.view())?;
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
        for model in &self.classifiers {
            let rows = run(model, chips.batch(image, detections, &model.spec))?;
            let labels = &model.spec.labels;
            let attribute = model.spec.attribute.clone().unwrap_or_default();
            for (p, row) in out.iter_mut().zip(rows) {
                if row.len() != labels.len() {
                    return Err(model.infer_err(format!(
                        "{} outputs per face for {} labels",
                        row.len(),
                        labels.len()
                    )));
                }
                let probs = labels.iter().cloned().zip(row).collect();
                p.classes.push((attribute.clone(), probs));
            }
        }
        if let Some(model) = &self.age {
            let rows = run(model, chips.batch(image, detections, &model.spec))?;
            let bins = &model.spec.bin_values;
            for (p, row) in out.iter_mut().zip(rows) {
                if row.len() != bins.len() {
                    return Err(model.infer_err(format!(
                        "{} outputs per face for {} age bins",
                        row.len(),
                        bins.len()
                    )));
                }
                p.age_years = Some(row.iter().zip(bins).map(|(p, v)| p * v).sum());
            }
        }
        Ok(out)
    }

    /// L2-normalised face descriptors (same order as `detections`), in memory only.
    pub fn embed(
        &self,
        image: &RgbImage,
        detections: &[Detection],
    ) -> Result<Vec<Vec<f32>>, VisionError> {
        let model = self
            .embedding
            .as_ref()
            .ok_or(VisionError::EmbeddingsDisabled)?;
        if detections.is_empty() {
            return Ok(Vec::new());
        }
        let batch = ChipCache::default().batch(image, detections, &model.spec);
        model.run_decoded(batch.view())
    }

    /// Raw run of a loaded classifier, age or embedding model on a prepared NCHW batch, decoded
    /// as the manifest says (probabilities / softmax of logits / L2-normalised). For golden tests
    /// and evaluation tools; the pipeline uses `perceive` and `embed`.
    pub fn run_model(
        &self,
        name: &str,
        batch: ArrayView4<'_, f32>,
    ) -> Result<Array2<f32>, VisionError> {
        let model = self
            .classifiers
            .iter()
            .chain(self.age.as_ref())
            .chain(self.embedding.as_ref())
            .find(|m| m.spec.name == name)
            .ok_or_else(|| VisionError::UnknownModel(name.to_string()))?;
        let rows = model.run_decoded(batch)?;
        let width = rows.first().map_or(0, |r| r.len());
        let flat: Vec<f32> = rows.into_iter().flatten().collect();
        Array2::from_shape_vec((flat.len() / width.max(1), width), flat)
            .map_err(|e| model.infer_err(e))
    }

    /// Enabled classifier attributes and their labels, in manifest order.
    pub fn attributes(&self) -> Vec<(String, Vec<String>)> {
        self.classifiers
            .iter()
            .map(|m| {
                (
                    m.spec.attribute.clone().unwrap_or_default(),
                    m.spec.labels.clone(),
                )
            })
            .collect()
    }

    pub fn has_age(&self) -> bool {
        self.age.is_some()
    }

    pub fn runtime_sha256(&self) -> &str {
        &self.runtime_sha256
    }

    /// The models actually loaded (for provenance), detector first, then in manifest order.
    pub fn models(&self) -> Vec<ModelRef> {
        std::iter::once(&self.detector)
            .chain(&self.classifiers)
            .chain(self.age.as_ref())
            .chain(self.embedding.as_ref())
            .map(LoadedModel::model_ref)
            .collect()
    }
}

/// Chips shared between models that want the same alignment and size (gender and a festival's
/// classifier, say): each is warped once per image.
#[derive(Default)]
struct ChipCache {
    entries: Vec<(ChipKey, Vec<RgbImage>)>,
}

type ChipKey = (manifest::AlignTemplate, u32, u32, u32);

impl ChipCache {
    fn batch(
        &mut self,
        image: &RgbImage,
        detections: &[Detection],
        spec: &ModelSpec,
    ) -> ndarray::Array4<f32> {
        // Validation guarantees every face model has an align table.
        let align = spec.align.unwrap_or(manifest::AlignSpec {
            template: manifest::AlignTemplate::Dlib5,
            padding: 0.2,
        });
        let (w, h) = (spec.input.width, spec.input.height);
        let key = (align.template, align.padding.to_bits(), w, h);
        if !self.entries.iter().any(|(k, _)| *k == key) {
            let chips = detections
                .iter()
                .map(|d| {
                    face_chip(image, &d.landmarks, &align, w, h)
                        .unwrap_or_else(|| box_chip(image, &d.bbox, &align, w, h))
                })
                .collect();
            self.entries.push((key, chips));
        }
        let chips = &self
            .entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, c)| c.as_slice())
            .unwrap_or_default();
        pack_chips(chips, &spec.input)
    }
}

/// Fallback for degenerate landmarks (all on one point): align the template's eye-mouth square
/// on the box instead, so the face still gets a chip of the right framing.
fn box_chip(
    image: &RgbImage,
    bbox: &BoundingBox,
    align: &manifest::AlignSpec,
    w: u32,
    h: u32,
) -> RgbImage {
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
    fn softmax_and_normalisation() {
        let mut r = vec![0.0, 2f32.ln()];
        softmax(&mut r);
        assert!((r[0] - 1.0 / 3.0).abs() < 1e-6 && (r[1] - 2.0 / 3.0).abs() < 1e-6);
        let mut e = vec![3.0, 4.0];
        l2_normalise(&mut e);
        assert_eq!(e, [0.6, 0.8]);
    }

    #[test]
    fn vision_is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Vision>();
    }
}
