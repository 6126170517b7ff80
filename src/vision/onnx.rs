//! The models of the manifest run with ONNX Runtime: YuNet as a [`FaceDetector`], classifiers
//! and the age model as [`AttributeModel`]s, SFace as a [`FaceEmbedder`]. Only sessions and
//! tensors live here; pre- and post-processing are the pure functions of [`super::detect`] and
//! [`super::align`].

use super::align::{pack_chips, pack_chips_nhwc};
use super::detect::{
    DetectionPlan, InputWindow, PlanLevel, StrideOutputs, TilePolicy, decode_yunet, fill_window,
    merge_views, plan_views, resize_area_on, window_to_source,
};
use super::manifest::{
    self, GenderAgeSpec, Layout, ModelManifest, ModelRole, ModelSpec, OutputKind, SquareSpec,
    read_verified,
};
use super::{
    AgeModel, AttributeModel, ChipSpec, Classifier, DetectOptions, FaceDetector, FaceEmbedder,
    GenderAgeModel, Models, VisionError, VisionOptions,
};
use crate::domain::{Detection, ModelRef};
use image::RgbImage;
use ndarray::ArrayView4;
use ort::environment::Environment;
use ort::logging::LogLevel;
use ort::session::Session;
use ort::value::TensorRef;
use std::sync::{Mutex, OnceLock};

/// ONNX Runtime is loaded once per process; later loads must name the same library bytes.
static RUNTIME: Mutex<Option<(String, Environment)>> = Mutex::new(None);

/// The variable ONNX Runtime reads, once, when its first environment is created, to decide
/// whether to start its telemetry (on Linux an event store under
/// `$XDG_CACHE_HOME`/`~/.cache/Microsoft/DeveloperTools`, with a device id). Turning telemetry
/// events off through the API after that does not remove the store.
const ORT_DISABLE_TELEMETRY: &str = "ORT_DISABLE_TELEMETRY";

/// The least severe of ONNX Runtime's own log lines that reach tracing. Its logger is
/// created at VERBOSE (ort's tracing bridge); below WARNING the library formats a line for
/// every node of every run, which tracing would then only throw away.
const ORT_LOG_LEVEL: LogLevel = LogLevel::Warning;

/// The process's ONNX Runtime, loaded from `file` the first time, after checking that its bytes
/// have the `sha256` the manifest expects. Later calls (one per pipeline copy) reuse it without
/// reading the file again, and must expect the same bytes.
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
    let started = std::time::Instant::now();
    manifest::verify_file(file, sha256)?;
    let verified = started.elapsed();
    let load_err = |message: String| VisionError::RuntimeLoad {
        file: file.to_path_buf(),
        message,
    };
    // regard sends nothing anywhere and keeps no event store: ONNX Runtime's telemetry off,
    // before the library is loaded. SAFETY: set once, under the RUNTIME lock, before the
    // library (the only reader of this variable) exists; regard reads no variable concurrently.
    unsafe { std::env::set_var(ORT_DISABLE_TELEMETRY, "1") };
    let env = ort::init_from(file)
        .map_err(|e| load_err(e.to_string()))?
        .with_name("regard")
        .with_telemetry(false)
        .build()
        .map_err(|e| load_err(e.to_string()))?;
    // The library's own lines go through tracing (ort's `tracing` feature), as JSON in JSON mode.
    env.set_log_level(ORT_LOG_LEVEL);
    register_shared_arena(&env)
        .map_err(|e| load_err(format!("cannot make the shared memory arena: {e}")))?;
    tracing::debug!(
        verify_ms = verified.as_secs_f64() * 1e3,
        load_ms = (started.elapsed() - verified).as_secs_f64() * 1e3,
        "ONNX Runtime verified and loaded"
    );
    *guard = Some((sha256.to_string(), env.clone()));
    Ok(env)
}

/// One CPU memory arena for every session of the process, which each session takes instead of
/// its own (`session.use_env_allocators`). Each session used to grow an arena of its own on its
/// first run and keep it; with one arena the detector's freed blocks serve the classifiers
/// after it. A cold `regard analyze` of a 2000×3000 poster peaked at 134 instead of 161 MiB, of
/// a 1000×1500 one at 101 instead of 128, 2 to 8 ms sooner; every output of the fixtures and
/// `regard evaluate` unchanged (BENCHMARKS.md).
fn register_shared_arena(env: &Environment) -> Result<(), ort::Error> {
    use ort::AsPointer as _;
    use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
    let memory = MemoryInfo::new(
        AllocationDevice::CPU,
        0,
        AllocatorType::Arena,
        MemoryType::Default,
    )?;
    // SAFETY: both pointers come from live ort objects; ONNX Runtime copies the memory info and
    // keeps the allocator with the environment, which lives as long as the process (RUNTIME);
    // a null arena configuration means its defaults, the same as a session's own arena.
    unsafe {
        ort::Error::result_from_status((ort::api().CreateAndRegisterAllocator)(
            env.ptr().cast_mut(),
            memory.ptr(),
            std::ptr::null(),
        ))
    }
}

/// The options' sensitive attributes, checked against the manifest: each must be listed as
/// sensitive and have an enabled classifier.
pub fn check_options(manifest: &ModelManifest, options: &VisionOptions) -> Result<(), VisionError> {
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
    Ok(())
}

/// Load ONNX Runtime (once per process) and one session per model the options ask for.
/// Every file loaded is hashed first: a missing or altered file is an error naming it.
pub fn load(manifest: &ModelManifest, options: &VisionOptions) -> Result<Models, VisionError> {
    let manifest_err = |message: String| VisionError::Manifest {
        path: manifest.path.clone(),
        message,
    };
    check_options(manifest, options)?;
    let runtime_sha256 = manifest.runtime.sha256.clone();
    let env = runtime_environment(&manifest.runtime.file, &runtime_sha256)?;
    let threads = options.intra_threads;
    // One job per session, run side by side (see `run_loads`), the results taken in manifest
    // order whatever order they finish in. The face models (classifiers, age, gender_age) get
    // one-thread sessions: perceive runs them on its threads side by side, each run on one
    // (`Vision::perceive_with`); the detector and the embedder run on all `threads`.
    let mut jobs: Vec<(u64, LoadJob<'_>)> = Vec::new();
    let size = |file: &std::path::Path| std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let env = &env;
    for spec in manifest.loaded_models(&options.enable_sensitive, options.embeddings) {
        let job: LoadJob<'_> = match spec.role {
            ModelRole::Detector => Box::new(move || {
                Ok(Loaded::Detector(Box::new(YunetDetector::load(
                    env, spec, threads,
                )?)))
            }),
            ModelRole::Classifier => Box::new(move || {
                Ok(Loaded::Classifier(Classifier {
                    attribute: spec.attribute.clone().unwrap_or_default(),
                    labels: spec.labels.clone(),
                    model: Box::new(OnnxModel::load(env, spec, 1)?),
                }))
            }),
            ModelRole::Age => Box::new(move || {
                Ok(Loaded::Age(AgeModel {
                    bin_values: spec.bin_values.clone(),
                    model: Box::new(OnnxModel::load(env, spec, 1)?),
                }))
            }),
            ModelRole::Embedding => Box::new(move || {
                Ok(Loaded::Embedder(Box::new(LazyEmbedder::new(
                    env, spec, threads,
                )?)))
            }),
        };
        // A lazily loaded embedder costs nothing here.
        let cost = if spec.role == ModelRole::Embedding {
            0
        } else {
            size(&spec.file)
        };
        jobs.push((cost, job));
        if spec.role == ModelRole::Detector && threads > 1 {
            // A tiled plan (any poster larger than the detector input) runs its views on
            // one-thread lane sessions: made now, beside the others, not inside the first
            // poster's analysis.
            jobs.push((
                size(&spec.file),
                Box::new(move || {
                    Ok(Loaded::Lanes(YunetDetector::lane_sessions_for(
                        env, spec, threads,
                    )?))
                }),
            ));
        }
    }
    for spec in manifest.gender_age.iter().filter(|m| m.enabled) {
        jobs.push((
            size(&spec.file),
            Box::new(move || {
                Ok(Loaded::GenderAge(Box::new(OnnxGenderAge::load(
                    env, spec, threads,
                )?)))
            }),
        ));
    }
    let mut detector = None;
    let mut lanes = None;
    let mut classifiers = Vec::new();
    let mut age = None;
    let mut embedder: Option<Box<dyn FaceEmbedder>> = None;
    let mut gender_age: Vec<Box<dyn GenderAgeModel>> = Vec::new();
    for loaded in run_loads(jobs) {
        match loaded? {
            Loaded::Detector(d) => detector = Some(*d),
            Loaded::Lanes(l) => lanes = Some(l),
            Loaded::Classifier(c) => classifiers.push(c),
            Loaded::Age(a) => age = Some(a),
            Loaded::Embedder(e) => embedder = Some(e),
            Loaded::GenderAge(g) => gender_age.push(g),
        }
    }
    let detector = detector.ok_or_else(|| manifest_err("no enabled detector".into()))?;
    if let Some(lanes) = lanes {
        let _ = detector.lane_sessions.set(Ok(lanes));
    }
    Ok(Models {
        runtime_sha256,
        detector: Box::new(detector),
        classifiers,
        age,
        embedder,
        gender_age,
    })
}

/// One session (or the detector's lane sessions) of a model set, loaded.
enum Loaded {
    Detector(Box<YunetDetector>),
    Lanes(Vec<Mutex<Session>>),
    Classifier(Classifier),
    Age(AgeModel),
    Embedder(Box<dyn FaceEmbedder>),
    GenderAge(Box<dyn GenderAgeModel>),
}

type LoadJob<'a> = Job<'a, Result<Loaded, VisionError>>;

/// A piece of work run by [`run_loads`].
type Job<'a, T> = Box<dyn FnOnce() -> T + Send + 'a>;

/// Run the load jobs on as many threads as there are cores (at most 4), costliest first (the
/// cost is the model file's size), and give their results in job order. ONNX Runtime makes a
/// session on one thread, and nothing else runs while the models load, so side by side the load
/// takes about as long as the largest model instead of the sum of all.
fn run_loads<T: Send>(jobs: Vec<(u64, Job<'_, T>)>) -> Vec<T> {
    let cores = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(1);
    run_jobs(jobs, cores.clamp(1, 4))
}

/// [`run_loads`] on at most `threads` threads.
fn run_jobs<T: Send>(jobs: Vec<(u64, Job<'_, T>)>, threads: usize) -> Vec<T> {
    let n = jobs.len();
    let threads = threads.max(1).min(n);
    let mut queue: Vec<(usize, u64, Job<'_, T>)> = jobs
        .into_iter()
        .enumerate()
        .map(|(i, (cost, job))| (i, cost, job))
        .collect();
    if threads <= 1 {
        return queue.into_iter().map(|(_, _, job)| job()).collect();
    }
    // Popped from the end: cheapest first in the vector.
    queue.sort_by_key(|(i, cost, _)| (*cost, std::cmp::Reverse(*i)));
    let queue = Mutex::new(queue);
    let done: Mutex<Vec<(usize, T)>> = Mutex::new(Vec::with_capacity(n));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
                    let Some((i, _, job)) = next else { break };
                    let out = job();
                    done.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((i, out));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, out)| out).collect()
}

/// The sha256 of the runtime this process loaded (none before the first load).
fn loaded_runtime_sha256() -> Option<String> {
    RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .as_ref()
        .map(|(sha, _)| sha.clone())
}

/// A session of a manifest model with `threads` intra-op threads.
fn new_session(
    env: &Environment,
    spec: &ModelSpec,
    threads: usize,
) -> Result<Session, VisionError> {
    session_for(env, &spec.name, &spec.sha256, &spec.file, threads)
}

/// A session of the model `name` in `file`, which must have the sha256 `sha256`: from its
/// optimised graph in the cache when there is one (see [`super::optimized`]), after checking the
/// file by the verified-hash cache, without reading it; else from the file's bytes (hashed as
/// they are read), writing the optimised graph for the next start. Not reading a model twice
/// keeps the transient peak of a load down (SFace is 37 MiB: its bytes, the optimised graph's
/// and ONNX Runtime's own copy were all alive at once).
fn session_for(
    env: &Environment,
    name: &str,
    sha256: &str,
    file: &std::path::Path,
    threads: usize,
) -> Result<Session, VisionError> {
    let err = |e: ort::Error| VisionError::ModelLoad {
        model: name.to_string(),
        message: e.to_string(),
    };
    // Intra-op threads busy-wait between runs by default; with decoding and inference sharing
    // two cores that spinning steals the decoder's time (STACK.md).
    let builder = || -> Result<ort::session::builder::SessionBuilder, VisionError> {
        Session::builder(env)
            .map_err(err)?
            .with_intra_threads(threads.max(1))
            .map_err(|e| err(e.into()))?
            .with_intra_op_spinning(false)
            .map_err(|e| err(e.into()))?
            .with_inter_op_spinning(false)
            .map_err(|e| err(e.into()))
            // Memory patterns pre-plan one block per run for every intermediate tensor; without
            // them the arena reuses freed tensors, which cut the bench trailer's peak RSS by
            // 41 MiB and a poster's by 33 MiB at no measurable cost (BENCHMARKS.md; the outputs
            // are the same: only where tensors live changes).
            .and_then(|b| b.with_memory_pattern(false).map_err(|e| err(e.into())))
            // Subnormal floats are flushed to zero (FTZ/DAZ on the session's pool threads; the
            // calling thread gets the same in `flushing_subnormals`). The classifiers meet
            // enough of them that on the Intel machines here they took a third of their time.
            // Every output of the 17 fixture images and 4 fixture trailers came out bit for bit
            // the same (`analyze --json`, full f32 precision), and `regard evaluate` unchanged:
            // what is flushed is below anything the outputs can show (BENCHMARKS.md).
            .and_then(|b| b.with_flush_to_zero().map_err(|e| err(e.into())))
            .and_then(|b| b.with_env_allocators().map_err(|e| err(e.into())))
    };
    let started = std::time::Instant::now();
    let entry = loaded_runtime_sha256().and_then(|rt| super::optimized::entry(sha256, &rt));
    if let Some(entry) = &entry
        && let Some(optimised) = entry.read()
    {
        manifest::verify_file(file, sha256)?;
        let made = builder()?
            .with_optimization_level(ort::session::builder::GraphOptimizationLevel::Disable)
            .map_err(|e| err(e.into()))?
            .commit_from_memory(&optimised);
        match made {
            Ok(session) => {
                tracing::debug!(
                    model = name,
                    threads,
                    ms = started.elapsed().as_secs_f64() * 1e3,
                    "session created from the cached optimised graph"
                );
                return Ok(session);
            }
            Err(e) => {
                tracing::debug!(model = name, error = %e, "cached optimised graph not loadable");
            }
        }
    }
    let bytes = read_verified(file, sha256)?;
    let scratch = entry.as_ref().and_then(|e| e.scratch());
    let mut b = builder()?;
    if let Some(path) = &scratch {
        // ONNX Runtime warns that the graph it writes is for this machine: it is, and the
        // entry's name says which CPU and runtime it is for.
        b = b
            .with_optimized_model_path(path)
            .map_err(|e| err(e.into()))?
            .with_log_level(LogLevel::Error)
            .map_err(|e| err(e.into()))?;
    }
    let made = b.commit_from_memory(&bytes);
    if let (Some(entry), Some(path)) = (&entry, &scratch) {
        match &made {
            Ok(_) => entry.publish(path),
            Err(_) => {
                let _ = std::fs::remove_file(path);
            }
        }
    }
    let session = made.map_err(err)?;
    tracing::debug!(
        model = name,
        threads,
        ms = started.elapsed().as_secs_f64() * 1e3,
        "session created"
    );
    Ok(session)
}

/// One session of a manifest entry. The session sits behind a mutex because `Session::run`
/// needs `&mut`, which keeps the model shareable between threads.
pub struct OnnxModel {
    spec: ModelSpec,
    session: Mutex<Session>,
    output: String,
    /// The first input dimension is dynamic: all faces go in one run.
    batchable: bool,
    /// The input's height and width are both dynamic: the graph takes other sizes than the
    /// manifest's (how a detector's windows are cut, [`InputWindow`]).
    any_spatial_size: bool,
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    it.collect::<Vec<_>>().join(", ")
}

impl OnnxModel {
    fn load(env: &Environment, spec: &ModelSpec, threads: usize) -> Result<Self, VisionError> {
        let err = |message: String| VisionError::ModelLoad {
            model: spec.name.clone(),
            message,
        };
        let session = new_session(env, spec, threads)?;
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
        let shape = input.dtype().tensor_shape();
        let batchable = shape
            .and_then(|s| s.first().copied())
            .is_some_and(|n| n < 0);
        let (h_axis, w_axis) = match spec.input.layout {
            Layout::Nchw => (2, 3),
            Layout::Nhwc => (1, 2),
        };
        let any_spatial_size = shape.is_some_and(|s| {
            s.len() == 4
                && [h_axis, w_axis]
                    .iter()
                    .all(|&a| s.get(a).is_some_and(|&n| n < 0))
        });
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
        Ok(OnnxModel {
            spec: spec.clone(),
            session: Mutex::new(session),
            output,
            batchable,
            any_spatial_size,
        })
    }

    /// Whether the graph's input takes any height and width (see the field).
    fn any_spatial_size(&self) -> bool {
        self.any_spatial_size
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
            let outputs = flushing_subnormals(|| {
                session.run(ort::inputs![self.spec.input.name.as_str() => tensor])
            })
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

    /// Rows of a prepared NCHW batch as the manifest says to read them: probabilities (softmax
    /// applied to logits) or L2-normalised embeddings.
    pub fn run_decoded(&self, batch: ArrayView4<'_, f32>) -> Result<Vec<Vec<f32>>, VisionError> {
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

    fn run_chips(&self, chips: &[RgbImage]) -> Result<Vec<Vec<f32>>, VisionError> {
        self.run_decoded(pack_chips(chips, &self.spec.input).view())
    }

    fn model_ref(&self) -> ModelRef {
        self.spec.model_ref()
    }

    fn chip_spec(&self) -> ChipSpec {
        chip_spec(&self.spec)
    }
}

fn chip_spec(spec: &ModelSpec) -> ChipSpec {
    ChipSpec {
        // Validation guarantees every face model has an align table.
        align: spec.align.unwrap_or(manifest::AlignSpec {
            template: manifest::AlignTemplate::Dlib5,
            padding: 0.2,
        }),
        width: spec.input.width,
        height: spec.input.height,
    }
}

/// The embedder, its session created on first use: posters never embed, and it is the largest
/// model (38.7 MB to hash and optimise, most of a cold start). Its file must exist when the
/// models load; its bytes are hashed when they are read, as every model's are.
pub struct LazyEmbedder {
    env: Environment,
    spec: ModelSpec,
    threads: usize,
    model: OnceLock<OnnxModel>,
    /// Held while the session is created, so that two threads do not both create it.
    loading: Mutex<()>,
}

impl LazyEmbedder {
    fn new(env: &Environment, spec: &ModelSpec, threads: usize) -> Result<Self, VisionError> {
        std::fs::metadata(&spec.file).map_err(|e| VisionError::MissingFile {
            file: spec.file.clone(),
            expected: spec.sha256.clone(),
            reason: e.to_string(),
        })?;
        Ok(LazyEmbedder {
            env: env.clone(),
            spec: spec.clone(),
            threads,
            model: OnceLock::new(),
            loading: Mutex::new(()),
        })
    }

    /// The session, created now if this is the first use. A failed load is not kept: the
    /// next call tries again (and fails the same way on the same file).
    fn session(&self) -> Result<&OnnxModel, VisionError> {
        if let Some(model) = self.model.get() {
            return Ok(model);
        }
        let _loading = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(model) = self.model.get() {
            return Ok(model);
        }
        let model = OnnxModel::load(&self.env, &self.spec, self.threads)?;
        Ok(self.model.get_or_init(|| model))
    }
}

impl FaceEmbedder for LazyEmbedder {
    fn model(&self) -> ModelRef {
        self.spec.model_ref()
    }

    fn chip(&self) -> ChipSpec {
        chip_spec(&self.spec)
    }

    fn embed(&self, chips: &[RgbImage]) -> Result<Vec<Vec<f32>>, VisionError> {
        self.session()?.run_chips(chips)
    }
}

impl AttributeModel for OnnxModel {
    fn model(&self) -> ModelRef {
        self.model_ref()
    }

    fn chip(&self) -> ChipSpec {
        self.chip_spec()
    }

    fn probabilities(&self, chips: &[RgbImage]) -> Result<Vec<Vec<f32>>, VisionError> {
        self.run_chips(chips)
    }
}

impl FaceEmbedder for OnnxModel {
    fn model(&self) -> ModelRef {
        self.model_ref()
    }

    fn chip(&self) -> ChipSpec {
        self.chip_spec()
    }

    fn embed(&self, chips: &[RgbImage]) -> Result<Vec<Vec<f32>>, VisionError> {
        self.run_chips(chips)
    }
}

/// A `gender_age` network (face-api.js's AgeGenderNet): NHWC square crops in, a gender
/// distribution and an age in years out, from two named output tensors.
pub struct OnnxGenderAge {
    spec: GenderAgeSpec,
    /// One one-thread session per thread that may run the model at once: perceive spreads its
    /// batch over the threads it has (see `Vision::perceive_with`); a run takes a free one.
    sessions: Vec<Mutex<Session>>,
}

impl OnnxGenderAge {
    fn load(env: &Environment, spec: &GenderAgeSpec, threads: usize) -> Result<Self, VisionError> {
        let err = |message: String| VisionError::ModelLoad {
            model: spec.name.clone(),
            message,
        };
        let sessions = (0..threads.max(1))
            .map(|_| session_for(env, &spec.name, &spec.sha256, &spec.file, 1).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        let session = sessions[0].lock().unwrap_or_else(|p| p.into_inner());
        if !session.inputs().iter().any(|i| i.name() == spec.input.name) {
            return Err(err(format!(
                "the graph has no input \"{}\" (inputs: {})",
                spec.input.name,
                names(session.inputs().iter().map(|i| i.name()))
            )));
        }
        for head in [&spec.outputs.gender, &spec.outputs.age] {
            if !session.outputs().iter().any(|o| o.name() == head.tensor) {
                return Err(err(format!(
                    "the graph has no output \"{}\" (outputs: {})",
                    head.tensor,
                    names(session.outputs().iter().map(|o| o.name()))
                )));
            }
        }
        drop(session);
        Ok(OnnxGenderAge {
            spec: spec.clone(),
            sessions,
        })
    }

    /// A session no other thread is running, else the first one once it is free.
    fn free_session(&self) -> std::sync::MutexGuard<'_, Session> {
        for session in &self.sessions {
            match session.try_lock() {
                Ok(guard) => return guard,
                Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
        }
        self.sessions[0].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn infer_err(&self, message: impl ToString) -> VisionError {
        VisionError::Inference {
            model: self.spec.name.clone(),
            message: message.to_string(),
        }
    }
}

impl GenderAgeModel for OnnxGenderAge {
    fn model(&self) -> ModelRef {
        self.spec.model_ref()
    }

    fn square(&self) -> SquareSpec {
        self.spec.square
    }

    fn side(&self) -> u32 {
        self.spec.input.width
    }

    fn labels(&self) -> Vec<String> {
        self.spec.outputs.gender.labels.clone()
    }

    fn estimate(&self, crops: &[RgbImage]) -> Result<Vec<(Vec<f32>, f32)>, VisionError> {
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        let n = crops.len();
        let batch = pack_chips_nhwc(crops, &self.spec.input);
        let tensor = TensorRef::from_array_view(batch.view()).map_err(|e| self.infer_err(e))?;
        let mut session = self.free_session();
        let outputs = flushing_subnormals(|| {
            session.run(ort::inputs![self.spec.input.name.as_str() => tensor])
        })
        .map_err(|e| self.infer_err(e))?;
        let read = |name: &str| -> Result<Vec<f32>, VisionError> {
            let value = outputs
                .get(name)
                .ok_or_else(|| self.infer_err(format!("no output \"{name}\"")))?;
            let (_, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| self.infer_err(e))?;
            if data.is_empty() || data.len() % n != 0 || data.iter().any(|v| !v.is_finite()) {
                return Err(self.infer_err(format!(
                    "output \"{name}\" of {} values is not {n} finite rows",
                    data.len()
                )));
            }
            Ok(data.to_vec())
        };
        let gender = read(&self.spec.outputs.gender.tensor)?;
        let age = read(&self.spec.outputs.age.tensor)?;
        if age.len() != n {
            return Err(self.infer_err(format!("{} ages for {n} faces", age.len())));
        }
        let width = gender.len() / n;
        Ok(gender.chunks(width).map(<[f32]>::to_vec).zip(age).collect())
    }
}

/// Runs `f` (a session run) with subnormal floats flushed to zero on this thread, FTZ and DAZ
/// set in MXCSR and restored after, even on a panic. `session.set_denormal_as_zero` (set on
/// every session, see [`session_for`]) does this only on ONNX Runtime's own pool threads, and a
/// run computes on the caller's thread too: all of it with one intra-op thread, as a worker's
/// slots and the detector's lanes have. Elsewhere than x86-64 it only runs `f`.
fn flushing_subnormals<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(target_arch = "x86_64")]
    {
        /// MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6).
        const FTZ_DAZ: u32 = 0x8040;
        struct Restore(u32);
        impl Drop for Restore {
            fn drop(&mut self) {
                // SAFETY: loads back the value stored below; only FP control bits change.
                unsafe {
                    std::arch::asm!("ldmxcsr [{}]", in(reg) &self.0, options(nostack, readonly))
                };
            }
        }
        let mut saved: u32 = 0;
        // SAFETY: stores MXCSR into a local u32.
        unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut saved, options(nostack)) };
        let _restore = Restore(saved);
        let flushed = saved | FTZ_DAZ;
        // SAFETY: the current MXCSR with two mode bits set (no exception unmasked).
        unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &flushed, options(nostack, readonly)) };
        f()
    }
    #[cfg(not(target_arch = "x86_64"))]
    f()
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

/// YuNet on a letterboxed whole view plus tiles where small faces need them (see
/// [`super::detect`]), merged across views with NMS.
///
/// A plan of one view (a trailer frame) runs on the main session with every intra-op thread.
/// A tiled plan (a poster: 1 + 6 views at 2000×3000) runs its views side by side, one per
/// thread on one-thread sessions: a 640² YuNet run parallelises poorly inside ONNX Runtime, whole
/// views do not. The outputs are the same bit for bit (each view is computed the same way; the
/// views are merged in plan order).
pub struct YunetDetector {
    model: OnnxModel,
    strides: Vec<u32>,
    /// The manifest's input size, and whether the graph also takes smaller windows.
    window: InputWindow,
    tile_policy: TilePolicy,
    env: Environment,
    /// Views of a tiled plan run on this many threads (the intra-op threads of the main session).
    lanes: usize,
    /// One one-thread session per lane, made while the models load (or at the first tiled plan).
    lane_sessions: OnceLock<Result<Vec<Mutex<Session>>, String>>,
}

impl YunetDetector {
    fn load(env: &Environment, spec: &ModelSpec, threads: usize) -> Result<Self, VisionError> {
        let strides = spec
            .decode
            .as_ref()
            .map(|d| d.strides.clone())
            .unwrap_or_else(|| vec![8, 16, 32]);
        let model = OnnxModel::load(env, spec, threads)?;
        let window = InputWindow {
            width: spec.input.width,
            height: spec.input.height,
            multiple: model
                .any_spatial_size()
                .then(|| strides.iter().copied().max().unwrap_or(32)),
        };
        tracing::debug!(
            model = %spec.name,
            fitted_windows = window.multiple.is_some(),
            "detector windows"
        );
        Ok(YunetDetector {
            model,
            strides,
            window,
            tile_policy: TilePolicy::default(),
            env: env.clone(),
            lanes: threads.max(1),
            lane_sessions: OnceLock::new(),
        })
    }

    /// The detector views `detect` runs on an image of this size; windows cut to the views
    /// only when `fitted` and the graph takes any size.
    pub fn plan(&self, width: u32, height: u32, min_face_px: f32, fitted: bool) -> DetectionPlan {
        let window = match fitted {
            true => self.window,
            false => InputWindow::fixed(self.window.width, self.window.height),
        };
        plan_views(width, height, window, min_face_px, &self.tile_policy)
    }

    /// `lanes` one-thread sessions of the detector `spec`.
    fn lane_sessions_for(
        env: &Environment,
        spec: &ModelSpec,
        lanes: usize,
    ) -> Result<Vec<Mutex<Session>>, VisionError> {
        (0..lanes)
            .map(|_| new_session(env, spec, 1).map(Mutex::new))
            .collect()
    }

    fn lane_sessions(&self) -> Result<&[Mutex<Session>], VisionError> {
        let made = self.lane_sessions.get_or_init(|| {
            Self::lane_sessions_for(&self.env, &self.model.spec, self.lanes)
                .map_err(|e| e.to_string())
        });
        made.as_deref().map_err(|message| VisionError::ModelLoad {
            model: self.model.spec.name.clone(),
            message: message.clone(),
        })
    }

    /// One view: the window at `origin` of `level_image`, decoded into source pixels.
    fn run_view(
        &self,
        session: &mut Session,
        view: View<'_>,
        plan: &DetectionPlan,
        options: &DetectOptions,
    ) -> Result<Vec<Detection>, VisionError> {
        let model = &self.model;
        let input = &model.spec.input;
        let window = (view.level.window_width, view.level.window_height);
        let (iw, ih) = (window.0 as usize, window.1 as usize);
        let (x, y) = view.origin;
        let tensor = fill_window(view.image, x, y, window, input);
        let array =
            ArrayView4::from_shape((1, 3, ih, iw), &tensor).map_err(|e| model.infer_err(e))?;
        let tensor = TensorRef::from_array_view(array).map_err(|e| model.infer_err(e))?;
        let outputs =
            flushing_subnormals(|| session.run(ort::inputs![input.name.as_str() => tensor]))
                .map_err(|e| model.infer_err(e))?;
        let mut per_stride = Vec::with_capacity(self.strides.len());
        for &s in &self.strides {
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
        let dets = decode_yunet(&per_stride, window.0, window.1, options.score_threshold);
        Ok(window_to_source(
            dets,
            plan,
            view.level,
            view.origin,
            self.tile_policy.edge_margin_px,
        ))
    }
}

/// The detections of one view, in source pixels.
type ViewResult = Result<Vec<Detection>, VisionError>;

/// One detector input of a plan.
#[derive(Clone, Copy)]
struct View<'a> {
    level: &'a PlanLevel,
    image: &'a RgbImage,
    origin: (u32, u32),
}

impl FaceDetector for YunetDetector {
    fn model(&self) -> ModelRef {
        self.model.model_ref()
    }

    fn detect(
        &self,
        image: &RgbImage,
        options: &DetectOptions,
    ) -> Result<Vec<Detection>, VisionError> {
        let (w, h) = image.dimensions();
        if w == 0 || h == 0 {
            return Ok(Vec::new());
        }
        let plan = self.plan(w, h, options.min_face_px, options.fitted_windows);
        // Scaled images, finest level first, each made from the previous one (a poster's
        // whole view is then a 2×2 pyramid step plus a small resize of the tile level).
        let n = plan.levels.len();
        // A tiled plan (a poster) has its views on the lanes: the pyramid is made in bands on
        // as many threads, which it took 11 ms of a 2000×3000 poster's 53 ms to make on one.
        let view_count: usize = plan.levels.iter().map(|l| l.tiles.len()).sum();
        let lanes = self.lanes.min(view_count);
        let mut scaled: Vec<Option<RgbImage>> = vec![None; n];
        for i in (0..n).rev() {
            let level = &plan.levels[i];
            let made = {
                let finer = scaled[i + 1..].iter().flatten().next();
                let from = finer.unwrap_or(image);
                if (level.width, level.height) != from.dimensions() {
                    Some(resize_area_on(from, level.width, level.height, lanes))
                } else {
                    finer.cloned()
                }
            };
            scaled[i] = made;
        }
        let views: Vec<View<'_>> = plan
            .levels
            .iter()
            .zip(&scaled)
            .flat_map(|(level, scaled)| {
                let image = scaled.as_ref().unwrap_or(image);
                level.tiles.iter().map(move |&origin| View {
                    level,
                    image,
                    origin,
                })
            })
            .collect();
        let mut per_view: Vec<ViewResult> = if lanes <= 1 {
            let mut session = self.model.session.lock().unwrap_or_else(|p| p.into_inner());
            views
                .iter()
                .map(|&v| self.run_view(&mut session, v, &plan, options))
                .collect()
        } else {
            let sessions = self.lane_sessions()?;
            let next = std::sync::atomic::AtomicUsize::new(0);
            let done: Mutex<Vec<(usize, ViewResult)>> = Mutex::new(Vec::with_capacity(views.len()));
            std::thread::scope(|scope| {
                for session in &sessions[..lanes] {
                    let (views, plan, next, done) = (&views, &plan, &next, &done);
                    scope.spawn(move || {
                        let mut session = session.lock().unwrap_or_else(|p| p.into_inner());
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(&view) = views.get(i) else { break };
                            let out = self.run_view(&mut session, view, plan, options);
                            done.lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push((i, out));
                        }
                    });
                }
            });
            let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
            done.sort_by_key(|(i, _)| *i);
            done.into_iter().map(|(_, out)| out).collect()
        };
        let mut all = Vec::new();
        for out in per_view.drain(..) {
            all.extend(out?);
        }
        Ok(merge_views(all, options.nms_iou, options.min_face_px))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn subnormals_are_flushed_inside_a_run_and_kept_after() {
        let tiny = || std::hint::black_box(1e-38_f32) * std::hint::black_box(0.01_f32);
        assert!(
            tiny() > 0.0 && !tiny().is_normal(),
            "a subnormal result before"
        );
        assert_eq!(flushing_subnormals(tiny), 0.0, "flushed to zero inside");
        let caught = std::panic::catch_unwind(|| flushing_subnormals(|| panic!("in a run")));
        assert!(caught.is_err());
        assert!(
            tiny() > 0.0,
            "the thread's mode is restored after, a panic included"
        );
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
    fn loads_run_costliest_first_and_come_back_in_job_order() {
        let started = Mutex::new(Vec::new());
        let jobs = |costs: &[u64]| -> Vec<(u64, Job<'_, usize>)> {
            costs
                .iter()
                .enumerate()
                .map(|(i, &cost)| {
                    let started = &started;
                    let job: Job<'_, usize> = Box::new(move || {
                        started.lock().unwrap().push(i);
                        // The costly jobs finish last.
                        std::thread::sleep(std::time::Duration::from_millis(cost));
                        i
                    });
                    (cost, job)
                })
                .collect()
        };
        let costs = [5, 40, 1, 20, 0];
        assert_eq!(run_jobs(jobs(&costs), 1), [0, 1, 2, 3, 4]);
        // One thread runs them in order of the jobs, not of cost.
        assert_eq!(
            std::mem::take(&mut *started.lock().unwrap()),
            [0, 1, 2, 3, 4]
        );
        assert_eq!(run_jobs(jobs(&costs), 2), [0, 1, 2, 3, 4]);
        let order = std::mem::take(&mut *started.lock().unwrap());
        // The two costliest start first, on the two threads.
        let mut first_two = order[..2].to_vec();
        first_two.sort();
        assert_eq!(first_two, [1, 3]);
        assert_eq!(run_jobs(jobs(&[]), 4), Vec::<usize>::new());
    }

    #[test]
    fn onnx_models_are_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<OnnxModel>();
        assert_send_sync::<YunetDetector>();
        assert_send_sync::<LazyEmbedder>();
        assert_send_sync::<OnnxGenderAge>();
    }
}
