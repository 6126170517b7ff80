//! The model manifest (`models/manifest.toml`): which files regard runs, what each one expects
//! and returns, and the sha256 that ties a result to the exact bytes that produced it.
//!
//! Parsing is strict about what regard needs (roles, labels, input layout) and lenient about the
//! rest (`source` tables and licences are for the setup script and for humans, so they are not
//! read). Detection thresholds are analysis settings, recorded with every result; a threshold in
//! the `decode` table would be one nobody reads, so it is refused.

use super::VisionError;
use super::hash_cache::{FileKey, HashCache};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// What a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelRole {
    /// Finds faces (exactly one per manifest).
    Detector,
    /// A categorical perceived attribute: one probability per label.
    Classifier,
    /// An age distribution whose expectation is the age in years.
    Age,
    /// A face descriptor used in memory to follow one person; never stored.
    Embedding,
}

impl ModelRole {
    pub fn as_str(&self) -> &'static str {
        match self {
            ModelRole::Detector => "detector",
            ModelRole::Classifier => "classifier",
            ModelRole::Age => "age",
            ModelRole::Embedding => "embedding",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "detector" => Some(ModelRole::Detector),
            "classifier" => Some(ModelRole::Classifier),
            "age" => Some(ModelRole::Age),
            "embedding" => Some(ModelRole::Embedding),
            _ => None,
        }
    }
}

/// Channel order of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ColorOrder {
    Rgb,
    Bgr,
}

/// Classifiers, age and embedding models are fed planar (NCHW) batches; NHWC is accepted only for
/// `gender_age` entries (face-api's network reads NHWC), so that any other model wanting NHWC is
/// refused at load time instead of being fed garbage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Layout {
    #[serde(rename = "NCHW")]
    Nchw,
    #[serde(rename = "NHWC")]
    Nhwc,
}

/// How the picture is brought to the input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resize {
    /// Scale (never up), pad right/bottom with 0: the detector.
    Letterbox,
    /// A face chip aligned on the five landmarks: classifiers, age, embedding.
    Align,
    /// A square, axis-aligned crop placed by the eyes and mouth (see [`SquareSpec`]).
    Square,
}

/// What the model's input tensor must look like. `mean` and `std` are per input channel, in
/// `color` order: value = (pixel − mean) / std, pixels raw 0..255.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
    pub color: ColorOrder,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub resize: Resize,
}

/// Landmark template a chip is aligned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlignTemplate {
    /// dlib's 5-point face chip (positions fitted for YuNet's landmarks), with `padding`.
    Dlib5,
    /// The ArcFace 112×112 five-point template (scaled to the input size).
    Arcface112,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlignSpec {
    pub template: AlignTemplate,
    /// dlib's chip padding (fraction of the face added on each side); dlib5 only.
    #[serde(default = "default_padding")]
    pub padding: f32,
}

fn default_padding() -> f32 {
    0.2
}

/// face-api.js's crop: side = d / `eye_mouth`, where d is the mean distance of the two eye
/// centres to the mouth centre (mean of the mouth corners); top-left = centroid of the eyes and
/// the mouth centre − `offset` · side. Axis-aligned, so the face keeps its roll.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SquareSpec {
    pub eye_mouth: f32,
    pub offset: [f32; 2],
}

/// The two heads of a `gender_age` network.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenderAgeOutputs {
    pub gender: OutputHead,
    pub age: OutputHead,
}

/// One output tensor: `kind` is "probabilities" (with `labels`, in output order) or "years".
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputHead {
    pub tensor: String,
    pub kind: String,
    #[serde(default)]
    pub labels: Vec<String>,
}

/// A `[[model]]` entry with role `gender_age`: a second gender and age opinion from one network
/// with two output heads. It is kept apart from [`ModelManifest::models`] because its input (a
/// square NHWC crop) and outputs (probabilities and years) follow their own rules; it runs next to
/// the classifiers and its opinions are combined with theirs (`vision::combine`).
#[derive(Debug, Clone, PartialEq)]
pub struct GenderAgeSpec {
    pub name: String,
    pub file_name: String,
    pub file: PathBuf,
    pub sha256: String,
    pub enabled: bool,
    pub input: InputSpec,
    pub square: SquareSpec,
    pub outputs: GenderAgeOutputs,
}

const GENDER_AGE_ROLE: &str = "gender_age";

impl GenderAgeSpec {
    /// How this model is named in a result's provenance.
    pub fn model_ref(&self) -> crate::domain::ModelRef {
        crate::domain::ModelRef {
            name: self.name.clone(),
            role: GENDER_AGE_ROLE.to_string(),
            file: self.file_name.clone(),
            sha256: self.sha256.clone(),
        }
    }
}

/// Detector decoding parameters (YuNet).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeSpec {
    #[serde(default = "default_strides")]
    pub strides: Vec<u32>,
}

fn default_strides() -> Vec<u32> {
    vec![8, 16, 32]
}

/// How the model's output is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// Already a distribution (softmax in the graph).
    Probabilities,
    /// Raw scores: regard applies a softmax.
    Logits,
    /// A descriptor: regard L2-normalises it.
    Embedding,
}

/// The ONNX Runtime shared library.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeSpec {
    /// Resolved path (relative paths are taken from the manifest's folder).
    pub file: PathBuf,
    pub sha256: String,
}

/// One `[[model]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub name: String,
    pub role: ModelRole,
    /// Attribute name for classifiers (and "age" for the age model).
    pub attribute: Option<String>,
    /// Decoder family of a detector ("yunet").
    pub family: Option<String>,
    /// The file name as written in the manifest (recorded in provenance).
    pub file_name: String,
    /// Resolved path.
    pub file: PathBuf,
    pub sha256: String,
    /// Classifier labels, in the order of the model's output.
    pub labels: Vec<String>,
    /// Age in years of each output bin of an age model.
    pub bin_values: Vec<f32>,
    /// Output tensor name; the first output when absent.
    pub output: Option<String>,
    pub output_kind: OutputKind,
    pub enabled: bool,
    pub input: InputSpec,
    pub align: Option<AlignSpec>,
    pub decode: Option<DecodeSpec>,
}

impl ModelSpec {
    /// How this model is named in a result's provenance.
    pub fn model_ref(&self) -> crate::domain::ModelRef {
        crate::domain::ModelRef {
            name: self.name.clone(),
            role: self.role.as_str().to_string(),
            file: self.file_name.clone(),
            sha256: self.sha256.clone(),
        }
    }
}

/// The parsed, validated manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelManifest {
    /// The manifest file itself.
    pub path: PathBuf,
    pub manifest_version: u32,
    /// Attributes that only run when the operator names them explicitly.
    pub sensitive_attributes: Vec<String>,
    pub runtime: RuntimeSpec,
    /// Every entry, enabled or not, in manifest order (`gender_age` entries excepted).
    pub models: Vec<ModelSpec>,
    /// The `gender_age` entries, enabled or not, in manifest order.
    pub gender_age: Vec<GenderAgeSpec>,
}

#[derive(Deserialize)]
struct RawManifest {
    manifest_version: u32,
    #[serde(default)]
    sensitive_attributes: Vec<String>,
    runtime: RawRuntimes,
    #[serde(default, rename = "model")]
    models: Vec<RawModel>,
}

#[derive(Deserialize)]
struct RawRuntime {
    file: String,
    sha256: String,
}

/// `[runtime]` names one library for every machine, or one per CPU architecture
/// (`[runtime.x86_64]`, `[runtime.aarch64]`: Rust's names, as in `std::env::consts::ARCH`).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawRuntimes {
    Any(RawRuntime),
    PerArch(std::collections::BTreeMap<String, RawRuntime>),
}

impl RawRuntimes {
    fn for_arch(&self, arch: &str) -> Result<&RawRuntime, String> {
        match self {
            RawRuntimes::Any(one) => Ok(one),
            RawRuntimes::PerArch(all) => all.get(arch).ok_or_else(|| {
                let known: Vec<&str> = all.keys().map(String::as_str).collect();
                format!(
                    "[runtime] has no entry for this machine's architecture {arch} (entries: {})",
                    known.join(", ")
                )
            }),
        }
    }
}

#[derive(Deserialize)]
struct RawModel {
    name: String,
    role: String,
    attribute: Option<String>,
    family: Option<String>,
    file: String,
    sha256: String,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    bin_values: Vec<f32>,
    output: Option<String>,
    output_kind: Option<String>,
    #[serde(default = "default_enabled")]
    enabled: bool,
    input: InputSpec,
    align: Option<AlignSpec>,
    decode: Option<DecodeSpec>,
    square: Option<SquareSpec>,
    outputs: Option<GenderAgeOutputs>,
}

fn default_enabled() -> bool {
    true
}

/// The message every missing or altered file ends with.
pub const SETUP_HINT: &str = "run `python3 scripts/setup_models.py` to fetch and check the models";

impl ModelManifest {
    /// Read and validate a manifest. Files are not hashed here: see [`ModelManifest::verify`].
    pub fn load(path: &Path) -> Result<ModelManifest, VisionError> {
        let text = std::fs::read_to_string(path).map_err(|e| VisionError::Manifest {
            path: path.to_path_buf(),
            message: format!("cannot read it: {e} ({SETUP_HINT})"),
        })?;
        Self::parse(&text, path)
    }

    /// Parse manifest text; `path` names the manifest in errors and anchors relative paths.
    /// The runtime is the one of the architecture this process runs on.
    pub fn parse(text: &str, path: &Path) -> Result<ModelManifest, VisionError> {
        Self::parse_for_arch(text, path, std::env::consts::ARCH)
    }

    /// [`ModelManifest::parse`], choosing the runtime entry of `arch` (Rust's name).
    pub fn parse_for_arch(
        text: &str,
        path: &Path,
        arch: &str,
    ) -> Result<ModelManifest, VisionError> {
        let err = |message: String| VisionError::Manifest {
            path: path.to_path_buf(),
            message,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if raw.manifest_version != 1 {
            return Err(err(format!(
                "manifest_version {} is not supported (this regard reads version 1)",
                raw.manifest_version
            )));
        }
        let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let raw_runtime = raw.runtime.for_arch(arch).map_err(err)?;
        let runtime = RuntimeSpec {
            file: dir.join(&raw_runtime.file),
            sha256: check_sha256_syntax(&raw_runtime.sha256)
                .map_err(|m| err(format!("[runtime]: {m}")))?,
        };
        let mut models = Vec::with_capacity(raw.models.len());
        let mut gender_age = Vec::new();
        for m in raw.models {
            let entry = |message: String| err(format!("model entry \"{}\": {message}", m.name));
            if m.role == GENDER_AGE_ROLE {
                let (Some(square), Some(outputs)) = (m.square, m.outputs) else {
                    return Err(entry(
                        "a gender_age model needs [model.square] and [model.outputs] tables".into(),
                    ));
                };
                gender_age.push(GenderAgeSpec {
                    file: dir.join(&m.file),
                    file_name: m.file,
                    sha256: check_sha256_syntax(&m.sha256).map_err(&entry)?,
                    name: m.name,
                    enabled: m.enabled,
                    input: m.input,
                    square,
                    outputs,
                });
                continue;
            }
            let role = ModelRole::parse(&m.role).ok_or_else(|| {
                entry(format!(
                    "unknown role \"{}\" (expected detector, classifier, age, embedding or gender_age)",
                    m.role
                ))
            })?;
            let output_kind = match (m.output_kind.as_deref(), role) {
                (Some("probabilities"), _) => OutputKind::Probabilities,
                (Some("logits"), _) => OutputKind::Logits,
                (Some("embedding"), _) => OutputKind::Embedding,
                (None, ModelRole::Embedding) => OutputKind::Embedding,
                (None, _) => OutputKind::Probabilities,
                (Some(other), _) => {
                    return Err(entry(format!(
                        "unknown output_kind \"{other}\" (expected probabilities, logits or embedding)"
                    )));
                }
            };
            let sha256 = check_sha256_syntax(&m.sha256).map_err(&entry)?;
            models.push(ModelSpec {
                file: dir.join(&m.file),
                file_name: m.file,
                name: m.name,
                role,
                attribute: m.attribute,
                family: m.family,
                sha256,
                labels: m.labels,
                bin_values: m.bin_values,
                output: m.output,
                output_kind,
                enabled: m.enabled,
                input: m.input,
                align: m.align,
                decode: m.decode,
            });
        }
        let manifest = ModelManifest {
            path: path.to_path_buf(),
            manifest_version: raw.manifest_version,
            sensitive_attributes: raw.sensitive_attributes,
            runtime,
            models,
            gender_age,
        };
        manifest.validate().map_err(err)?;
        Ok(manifest)
    }

    /// Entries that are not switched off with `enabled = false`.
    pub fn enabled_models(&self) -> impl Iterator<Item = &ModelSpec> {
        self.models.iter().filter(|m| m.enabled)
    }

    pub fn is_sensitive(&self, attribute: &str) -> bool {
        self.sensitive_attributes.iter().any(|a| a == attribute)
    }

    /// The enabled entries a session is opened for: a sensitive classifier only when the
    /// operator enabled it, the embedder only when asked. Loading and provenance both read
    /// this list, so a model set can be known without loading it.
    pub fn loaded_models<'a>(
        &'a self,
        enable_sensitive: &'a [String],
        embeddings: bool,
    ) -> impl Iterator<Item = &'a ModelSpec> + 'a {
        self.enabled_models().filter(move |m| match m.role {
            ModelRole::Classifier => {
                let attribute = m.attribute.as_deref().unwrap_or_default();
                !self.is_sensitive(attribute) || enable_sensitive.iter().any(|e| e == attribute)
            }
            ModelRole::Embedding => embeddings,
            ModelRole::Detector | ModelRole::Age => true,
        })
    }

    fn validate(&self) -> Result<(), String> {
        let count = |role| self.enabled_models().filter(|m| m.role == role).count();
        if count(ModelRole::Detector) != 1 {
            return Err(format!(
                "exactly one enabled detector is needed, found {}",
                count(ModelRole::Detector)
            ));
        }
        for role in [ModelRole::Age, ModelRole::Embedding] {
            if count(role) > 1 {
                return Err(format!(
                    "at most one enabled {} model is allowed, found {}",
                    role.as_str(),
                    count(role)
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        let mut attributes = std::collections::BTreeSet::new();
        for m in &self.gender_age {
            let entry = |message: &str| format!("model entry \"{}\": {message}", m.name);
            if !names.insert(m.name.as_str()) {
                return Err(entry("the name is used twice"));
            }
            check_input(&m.input).map_err(&entry)?;
            if m.input.resize != Resize::Square {
                return Err(entry(
                    "a gender_age model's input resize must be \"square\"",
                ));
            }
            if m.input.layout != Layout::Nhwc || m.input.width != m.input.height {
                return Err(entry(
                    "a gender_age model's input must be NHWC and square (width = height)",
                ));
            }
            let s = &m.square;
            if !(s.eye_mouth.is_finite() && s.eye_mouth > 0.0)
                || s.offset.iter().any(|v| !v.is_finite())
            {
                return Err(entry("square eye_mouth must be positive and offset finite"));
            }
            let (gender, age) = (&m.outputs.gender, &m.outputs.age);
            if gender.kind != "probabilities" || age.kind != "years" {
                return Err(entry(
                    "outputs.gender.kind must be \"probabilities\" and outputs.age.kind \"years\"",
                ));
            }
            if gender.labels.is_empty() || gender.labels.iter().any(|l| l == crate::domain::UNKNOWN)
            {
                return Err(entry(
                    "outputs.gender needs labels, without \"unknown\" (regard adds it)",
                ));
            }
            if gender.tensor.is_empty() || age.tensor.is_empty() {
                return Err(entry("output tensor names must not be empty"));
            }
        }
        for m in &self.models {
            let entry = |message: &str| format!("model entry \"{}\": {message}", m.name);
            if !names.insert(m.name.as_str()) {
                return Err(entry("the name is used twice"));
            }
            let input = &m.input;
            check_input(input).map_err(&entry)?;
            if input.layout != Layout::Nchw {
                return Err(entry("input layout must be \"NCHW\""));
            }
            match m.role {
                ModelRole::Detector => {
                    if m.family.as_deref() != Some("yunet") {
                        return Err(entry("detector family must be \"yunet\""));
                    }
                    if input.resize != Resize::Letterbox {
                        return Err(entry("a detector's input resize must be \"letterbox\""));
                    }
                    let strides = m.decode.as_ref().map(|d| d.strides.clone());
                    let strides = strides.unwrap_or_else(default_strides);
                    if strides.is_empty()
                        || strides
                            .iter()
                            .any(|s| *s == 0 || input.width % s != 0 || input.height % s != 0)
                    {
                        return Err(entry("decode strides must divide the input size"));
                    }
                }
                ModelRole::Classifier | ModelRole::Age | ModelRole::Embedding => {
                    if input.resize != Resize::Align || m.align.is_none() {
                        return Err(entry(
                            "a face model needs resize = \"align\" and an [model.align] table",
                        ));
                    }
                }
            }
            match m.role {
                ModelRole::Classifier => {
                    let Some(attribute) = m.attribute.as_deref().filter(|a| !a.is_empty()) else {
                        return Err(entry("a classifier needs an attribute name"));
                    };
                    if m.labels.is_empty() {
                        return Err(entry("a classifier needs a non-empty labels list"));
                    }
                    if m.labels.iter().any(|l| l == crate::domain::UNKNOWN) {
                        return Err(entry("\"unknown\" is added by regard, not a model label"));
                    }
                    if m.enabled && !attributes.insert(attribute.to_string()) {
                        return Err(entry(&format!(
                            "attribute \"{attribute}\" has another enabled classifier"
                        )));
                    }
                }
                ModelRole::Age => {
                    if m.bin_values.is_empty() || m.bin_values.iter().any(|v| !v.is_finite()) {
                        return Err(entry("an age model needs finite bin_values"));
                    }
                }
                ModelRole::Embedding | ModelRole::Detector => {}
            }
        }
        Ok(())
    }

    /// Check the sha256 of the runtime library and of every enabled model file. The first
    /// missing or altered file is an error naming it, both hashes and the setup script.
    pub fn verify(&self) -> Result<(), VisionError> {
        verify_file(&self.runtime.file, &self.runtime.sha256)?;
        for m in self.enabled_models() {
            verify_file(&m.file, &m.sha256)?;
        }
        for m in self.gender_age.iter().filter(|m| m.enabled) {
            verify_file(&m.file, &m.sha256)?;
        }
        Ok(())
    }
}

fn check_input(input: &InputSpec) -> Result<(), &'static str> {
    if input.width == 0 || input.height == 0 || input.width > 4096 || input.height > 4096 {
        return Err("input width and height must be within 1..=4096");
    }
    if input.std.iter().any(|s| !s.is_finite() || *s == 0.0)
        || input.mean.iter().any(|v| !v.is_finite())
    {
        return Err("input mean must be finite and std finite and non-zero");
    }
    Ok(())
}

fn check_sha256_syntax(s: &str) -> Result<String, String> {
    let s = s.trim().to_ascii_lowercase();
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s)
    } else {
        Err(format!("sha256 \"{s}\" is not 64 hexadecimal digits"))
    }
}

/// sha256 of a file, streamed (the runtime library is 29 MB, SFace 39 MB).
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Check one file against its expected sha256: by its entry in the verified-hash cache when the
/// file is unchanged since it was last hashed, else by hashing it (see [`super::hash_cache`]).
pub fn verify_file(path: &Path, expected: &str) -> Result<(), VisionError> {
    verify_file_with(HashCache::global(), path, expected)
}

/// [`verify_file`] with a given cache.
pub fn verify_file_with(cache: &HashCache, path: &Path, expected: &str) -> Result<(), VisionError> {
    let missing = |e: std::io::Error| VisionError::MissingFile {
        file: path.to_path_buf(),
        expected: expected.to_string(),
        reason: e.to_string(),
    };
    let before = FileKey::of(&std::fs::metadata(path).map_err(missing)?);
    if cache.is_verified(path, &before, expected) {
        return Ok(());
    }
    let actual = sha256_file(path).map_err(missing)?;
    if actual != expected {
        return Err(VisionError::HashMismatch {
            file: path.to_path_buf(),
            expected: expected.to_string(),
            actual,
        });
    }
    if let Ok(after) = std::fs::metadata(path)
        && FileKey::of(&after) == before
    {
        cache.record(path, &before, expected);
    }
    Ok(())
}

/// The bytes of a file, checked against the expected sha256 (hashed as they are read, or found
/// unchanged since they were last hashed: see [`verify_file`]).
pub(crate) fn read_verified(path: &Path, expected: &str) -> Result<Vec<u8>, VisionError> {
    let started = std::time::Instant::now();
    let bytes = read_verified_with(HashCache::global(), path, expected)?;
    tracing::debug!(
        file = %path.display(),
        ms = started.elapsed().as_secs_f64() * 1e3,
        "model file read and verified"
    );
    Ok(bytes)
}

/// [`read_verified`] with a given cache. The key is taken from the open file before and after
/// reading: the bytes returned are those of the version the entry names.
pub(crate) fn read_verified_with(
    cache: &HashCache,
    path: &Path,
    expected: &str,
) -> Result<Vec<u8>, VisionError> {
    let missing = |e: std::io::Error| VisionError::MissingFile {
        file: path.to_path_buf(),
        expected: expected.to_string(),
        reason: e.to_string(),
    };
    let mut file = std::fs::File::open(path).map_err(missing)?;
    let before = FileKey::of(&file.metadata().map_err(missing)?);
    let mut bytes = Vec::with_capacity(before.size as usize);
    file.read_to_end(&mut bytes).map_err(missing)?;
    let after = FileKey::of(&file.metadata().map_err(missing)?);
    let unchanged = before == after;
    if unchanged && cache.is_verified(path, &before, expected) {
        return Ok(bytes);
    }
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != expected {
        return Err(VisionError::HashMismatch {
            file: path.to_path_buf(),
            expected: expected.to_string(),
            actual,
        });
    }
    if unchanged {
        cache.record(path, &before, expected);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPO_MANIFEST: &str = include_str!("../../models/manifest.toml");

    #[test]
    fn repository_manifest_parses_into_roles() {
        let m = ModelManifest::parse_for_arch(
            REPO_MANIFEST,
            Path::new("models/manifest.toml"),
            "x86_64",
        )
        .unwrap();
        assert_eq!(m.sensitive_attributes, ["origin"]);
        assert_eq!(
            m.runtime.file,
            Path::new("models/lib/libonnxruntime.so.1.31.1")
        );
        let roles: Vec<_> = m.models.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                ModelRole::Detector,
                ModelRole::Classifier,
                ModelRole::Age,
                ModelRole::Embedding
            ]
        );
        let gender = &m.models[1];
        assert_eq!(gender.labels, ["female", "male"]);
        assert_eq!(gender.input.color, ColorOrder::Rgb);
        assert_eq!(gender.align.unwrap().template, AlignTemplate::Dlib5);
        assert_eq!(m.models[2].bin_values.len(), 81);
        assert_eq!(m.models[0].input.color, ColorOrder::Bgr);
        assert_eq!(m.models[0].decode.as_ref().unwrap().strides, [8, 16, 32]);
        assert_eq!(m.models[3].output_kind, OutputKind::Embedding);
    }

    fn with_replaced(from: &str, to: &str) -> Result<ModelManifest, VisionError> {
        assert!(REPO_MANIFEST.contains(from), "{from}");
        ModelManifest::parse(
            &REPO_MANIFEST.replacen(from, to, 1),
            Path::new("models/manifest.toml"),
        )
    }

    #[test]
    fn unknown_role_names_the_entry() {
        let e = with_replaced("role = \"age\"", "role = \"mood\"").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("\"age-v1\"") && msg.contains("mood"), "{msg}");
    }

    #[test]
    fn a_second_detector_is_refused() {
        let first = REPO_MANIFEST.find("\n[[model]]").unwrap();
        let second = first + 1 + REPO_MANIFEST[first + 1..].find("\n[[model]]").unwrap();
        let copy = REPO_MANIFEST[first..second].replace("yunet-2023mar", "yunet-copy");
        let text = format!("{REPO_MANIFEST}\n{copy}");
        let e = ModelManifest::parse(&text, Path::new("models/manifest.toml")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("exactly one enabled detector") && msg.contains("found 2"),
            "{msg}"
        );
        // Switched off, the copy is allowed.
        let off = copy.replace(
            "role = \"detector\"",
            "role = \"detector\"\nenabled = false",
        );
        let text = format!("{REPO_MANIFEST}\n{off}");
        assert!(ModelManifest::parse(&text, Path::new("models/manifest.toml")).is_ok());
    }

    #[test]
    fn detection_thresholds_in_the_manifest_are_refused() {
        // They are the settings detection_score_threshold and nms_iou.
        for field in ["score_threshold = 0.6", "nms_iou = 0.3"] {
            let e = with_replaced(
                "strides = [8, 16, 32]",
                &format!("strides = [8, 16, 32]\n{field}"),
            )
            .unwrap_err();
            let name = field.split(' ').next().unwrap();
            assert!(e.to_string().contains(name), "{e}");
        }
    }

    #[test]
    fn empty_labels_are_refused() {
        let e = with_replaced("labels = [\"female\", \"male\"]", "labels = []").unwrap_err();
        assert!(e.to_string().contains("gender-v1"), "{e}");
    }

    #[test]
    fn the_gender_age_entry_is_parsed_apart_from_the_running_models() {
        let m = ModelManifest::parse(REPO_MANIFEST, Path::new("models/manifest.toml")).unwrap();
        assert!(m.models.iter().all(|s| s.name != "faceapi-agegender"));
        let [ga] = m.gender_age.as_slice() else {
            panic!(
                "one gender_age entry expected, found {}",
                m.gender_age.len()
            );
        };
        assert_eq!(ga.name, "faceapi-agegender");
        assert_eq!(ga.file, Path::new("models/faceapi_age_gender.onnx"));
        assert_eq!(ga.input.layout, Layout::Nhwc);
        assert_eq!((ga.input.width, ga.input.height), (112, 112));
        assert_eq!(ga.input.resize, Resize::Square);
        assert_eq!(ga.square.eye_mouth, 0.45);
        assert_eq!(ga.square.offset, [0.5, 0.43]);
        assert_eq!(ga.outputs.gender.labels, ["female", "male"]);
        assert_eq!(ga.outputs.gender.tensor, "gender");
        assert_eq!(ga.outputs.age.kind, "years");
    }

    #[test]
    fn nhwc_is_refused_for_models_that_run() {
        let e = with_replaced(
            "layout = \"NCHW\"\ncolor = \"RGB\"",
            "layout = \"NHWC\"\ncolor = \"RGB\"",
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("gender-v1") && msg.contains("NCHW"), "{msg}");
    }

    #[test]
    fn a_gender_age_entry_without_its_tables_or_kinds_is_refused() {
        let e = with_replaced(
            "[model.square]\neye_mouth = 0.45\noffset = [0.5, 0.43]\n",
            "",
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("faceapi-agegender") && msg.contains("square"),
            "{msg}"
        );
        let e = with_replaced("kind = \"years\"", "kind = \"logits\"").unwrap_err();
        assert!(e.to_string().contains("faceapi-agegender"), "{e}");
        let e = with_replaced("resize = \"square\"", "resize = \"align\"").unwrap_err();
        assert!(e.to_string().contains("faceapi-agegender"), "{e}");
    }

    #[test]
    fn gender_age_files_are_hashed_by_verify() {
        let dir = std::env::temp_dir().join(format!("regard-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("present.bin"), b"present").unwrap();
        let sha = sha256_file(&dir.join("present.bin")).unwrap();
        let entry = REPO_MANIFEST
            .find("\n[[model]]\nname = \"faceapi-agegender\"")
            .unwrap();
        let gender_age = &REPO_MANIFEST[entry..];
        let text = format!(
            "manifest_version = 1\n[runtime]\nfile = \"present.bin\"\nsha256 = \"{sha}\"\n\
             [[model]]\nname = \"d\"\nrole = \"detector\"\nfamily = \"yunet\"\n\
             file = \"present.bin\"\nsha256 = \"{sha}\"\n[model.input]\nname = \"input\"\n\
             width = 640\nheight = 640\nlayout = \"NCHW\"\ncolor = \"BGR\"\n\
             mean = [0.0, 0.0, 0.0]\nstd = [1.0, 1.0, 1.0]\nresize = \"letterbox\"\n{gender_age}"
        );
        let path = dir.join("manifest.toml");
        let m = ModelManifest::parse(&text, &path).unwrap();
        let missing = m.verify().unwrap_err().to_string();
        std::fs::write(dir.join("faceapi_age_gender.onnx"), b"not the model").unwrap();
        let altered = m.verify().unwrap_err().to_string();
        let off = text.replace(
            "role = \"gender_age\"",
            "role = \"gender_age\"\nenabled = false",
        );
        let off = ModelManifest::parse(&off, &path).unwrap().verify();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(missing.contains("faceapi_age_gender.onnx"), "{missing}");
        assert!(
            altered.contains("faceapi_age_gender.onnx") && altered.contains("0bdb5ab2"),
            "{altered}"
        );
        assert!(off.is_ok(), "{off:?}");
    }

    #[test]
    fn the_runtime_is_the_one_of_the_architecture() {
        let path = Path::new("models/manifest.toml");
        let x86 = ModelManifest::parse_for_arch(REPO_MANIFEST, path, "x86_64").unwrap();
        assert_eq!(
            x86.runtime.file,
            Path::new("models/lib/libonnxruntime.so.1.31.1")
        );
        let arm = ModelManifest::parse_for_arch(REPO_MANIFEST, path, "aarch64").unwrap();
        assert_eq!(
            arm.runtime.file,
            Path::new("models/lib/aarch64/libonnxruntime.so.1.31.1")
        );
        assert_ne!(x86.runtime.sha256, arm.runtime.sha256);
        // The models are the same files on every architecture.
        assert_eq!(x86.models, arm.models);
        let e = ModelManifest::parse_for_arch(REPO_MANIFEST, path, "riscv64").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("riscv64") && msg.contains("aarch64, x86_64"),
            "{msg}"
        );
    }

    #[test]
    fn a_bad_hash_string_is_refused() {
        let e = with_replaced("sha256 = \"d4c4", "sha256 = \"zz").unwrap_err();
        assert!(e.to_string().contains("gender-v1"), "{e}");
    }
}
