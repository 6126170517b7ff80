//! Optimised-model cache: ONNX Runtime's optimised graph of each model, written once under
//! regard's cache folder and loaded with graph optimisation off at later starts.
//!
//! Optimising a graph (constant folding, fusions, the NCHWc layout) is most of a session's
//! creation time (90–160 ms of a cold start for age-v1 alone, measured here under load). ONNX
//! Runtime can serialise the optimised graph; loaded with optimisation disabled it gave the same
//! outputs bit for bit as the optimising session on each model of the manifest (random inputs,
//! ONNX Runtime 1.31.1), and `regard evaluate` printed the same figures with and without it. The optimised graph holds
//! kernels chosen for this CPU, so an entry is keyed on the source model's sha256, the runtime
//! library's sha256 and the CPU's feature flags: a different model, runtime or machine never
//! reads another's entry.
//!
//! Trust: an entry is only ever derived from source bytes that were verified against the
//! manifest (its name carries their sha256); its own sha256 is recorded beside it when it is
//! written and checked when it is read (through the verified-hash cache, so an unchanged entry
//! is not re-hashed). Anything missing, unreadable or not matching is ignored and the session
//! is made from the source bytes as before. `REGARD_CACHE=off` turns the cache off.

use super::hash_cache::{HashCache, cache_dir};
use super::manifest::{read_verified_with, sha256_file};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Bumped when what is written here, or how it is loaded, changes.
const FORMAT: &str = "v1";

/// Where the entry for a model lives: the optimised graph and its recorded sha256.
#[derive(Debug, Clone)]
pub struct Entry {
    pub model: PathBuf,
    pub sha256_file: PathBuf,
}

/// Short sha256 of the CPU's feature flags (`/proc/cpuinfo`), or of the architecture name.
fn cpu_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        use sha2::{Digest, Sha256};
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let flags = info
            .lines()
            .find(|l| l.starts_with("flags") || l.starts_with("Features"))
            .unwrap_or("");
        let digest = Sha256::digest(format!("{} {flags}", std::env::consts::ARCH).as_bytes());
        hex::encode(&digest[..6])
    })
}

/// How many optimised graphs the cache holds now (0 when the cache is off or empty). A count
/// taken before and after loading tells whether the load made graphs (a first run on this
/// machine, CPU or runtime), which costs time and memory that later loads do not pay.
pub fn cached_graphs() -> usize {
    let Some(dir) = cache_dir().map(|d| d.join("optimized")) else {
        return 0;
    };
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.ends_with(".onnx") && !name.starts_with('.')
                })
                .count()
        })
        .unwrap_or(0)
}

/// The entry for a model of sha256 `model_sha256` run by the runtime of sha256 `runtime_sha256`.
pub fn entry(model_sha256: &str, runtime_sha256: &str) -> Option<Entry> {
    let dir = cache_dir()?.join("optimized");
    let short = |s: &str| s.chars().take(16).collect::<String>();
    let stem = format!(
        "{}-ort{}-cpu{}-{FORMAT}",
        short(model_sha256),
        short(runtime_sha256),
        cpu_tag()
    );
    Some(Entry {
        model: dir.join(format!("{stem}.onnx")),
        sha256_file: dir.join(format!("{stem}.sha256")),
    })
}

impl Entry {
    /// The optimised graph's bytes, when the entry exists and matches its recorded sha256.
    pub fn read(&self) -> Option<Vec<u8>> {
        let recorded = std::fs::read_to_string(&self.sha256_file).ok()?;
        let recorded = recorded.trim();
        if recorded.len() != 64 {
            return None;
        }
        read_verified_with(HashCache::global(), &self.model, recorded).ok()
    }

    /// A fresh path for ONNX Runtime to write the optimised graph to (then [`Entry::publish`]).
    pub fn scratch(&self) -> Option<PathBuf> {
        let dir = self.model.parent()?;
        std::fs::create_dir_all(dir).ok()?;
        let file = tempfile::Builder::new()
            .prefix(".writing-")
            .suffix(".onnx")
            .tempfile_in(dir)
            .ok()?;
        // ONNX Runtime opens the path itself; the name stays ours (unique) until published.
        let (_, path) = file.keep().ok()?;
        Some(path)
    }

    /// Record the sha256 of what ONNX Runtime wrote to `scratch` and move it into place. Best
    /// effort: on any failure the scratch file is removed and the entry stays absent.
    pub fn publish(&self, scratch: &std::path::Path) {
        let done = (|| -> std::io::Result<()> {
            let sha = sha256_file(scratch)?;
            if std::fs::metadata(scratch)?.len() == 0 {
                return Err(std::io::Error::other("empty optimised model"));
            }
            std::fs::rename(scratch, &self.model)?;
            let dir = self.model.parent().unwrap_or(std::path::Path::new("."));
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            std::io::Write::write_all(&mut tmp, format!("{sha}\n").as_bytes())?;
            tmp.persist(&self.sha256_file).map_err(|e| e.error)?;
            Ok(())
        })();
        if let Err(e) = done {
            tracing::debug!(file = %self.model.display(), error = %e, "optimised model not cached");
            let _ = std::fs::remove_file(scratch);
        }
    }
}
