//! Verified-hash cache: the sha256 of a model file or of the runtime library, remembered with
//! the file's identity and change times, so that a start re-hashes only files that changed.
//!
//! An entry is `(device, inode, size, mtime ns, ctime ns) → sha256` for one canonical path. A
//! file whose stat matches every field of its entry is taken to hold the bytes hashed when the
//! entry was written; any difference re-hashes it (and a file that still matches the manifest
//! gets a new entry). What this trusts: that a file's content does not change without its
//! mtime or ctime changing (ctime cannot be set from user space; it moves on every write,
//! rename or `touch`), and that whoever can write the cache file could already replace the
//! model files (it lives in the user's own cache folder). Changes made within the timestamp
//! granularity of the hashing itself are handled as git handles "racy" files: a file changed
//! less than [`RACY_WINDOW`] before it was hashed gets no entry, so it is hashed again next
//! time.
//!
//! The file is `verified-sha256` in regard's cache folder ([`cache_dir`]: `$REGARD_CACHE`, else
//! `$XDG_CACHE_HOME/regard`, else `~/.cache/regard`); `REGARD_CACHE=off` turns the cache off
//! (every start hashes every file it loads). A cache that cannot be read or written is no cache: nothing
//! fails because of it. The provenance of a result always carries the manifest's sha256, which
//! every loaded file was checked against, by hashing or by its entry.

use std::fs::Metadata;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The variable naming regard's cache folder (`off` or empty: no cache).
pub const CACHE_VAR: &str = "REGARD_CACHE";

/// Files changed this recently before hashing get no entry (see the module comment).
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

const HEADER: &str =
    "# regard verified-sha256 cache v1: sha256 device inode size mtime_ns ctime_ns path";

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl FileKey {
    pub fn of(meta: &Metadata) -> FileKey {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    sha256: String,
    key: FileKey,
    path: String,
}

/// A cache file and what was read of it.
pub struct HashCache {
    file: Option<PathBuf>,
    racy: Duration,
    /// Entries as last read or written (read at first use).
    entries: Mutex<Option<Vec<Entry>>>,
}

impl HashCache {
    /// The cache in `file` (`None`: no cache; lookups miss and nothing is written).
    pub fn at(file: Option<PathBuf>) -> HashCache {
        HashCache {
            file,
            racy: RACY_WINDOW,
            entries: Mutex::new(None),
        }
    }

    /// With another racy window (tests: files just written are cached at once).
    pub fn with_racy_window(mut self, racy: Duration) -> HashCache {
        self.racy = racy;
        self
    }

    /// The process's cache, from the environment (see the module comment).
    pub fn global() -> &'static HashCache {
        static GLOBAL: OnceLock<HashCache> = OnceLock::new();
        GLOBAL.get_or_init(|| HashCache::at(default_file()))
    }

    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// True when `path`, now stat'ed as `key`, has an entry with that key and `sha256`.
    pub fn is_verified(&self, path: &Path, key: &FileKey, sha256: &str) -> bool {
        if self.file.is_none() {
            return false;
        }
        let Some(name) = canonical(path) else {
            return false;
        };
        let mut guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entries = guard.get_or_insert_with(|| self.read());
        entries
            .iter()
            .any(|e| e.path == name && e.key == *key && e.sha256 == sha256)
    }

    /// Remember that `path`, stat'ed as `key` before and after it was hashed, has `sha256`
    /// (unless it changed within the racy window before now). Best effort.
    pub fn record(&self, path: &Path, key: &FileKey, sha256: &str) {
        let Some(file) = &self.file else { return };
        let Some(name) = canonical(path) else { return };
        if name.contains('\n') {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let changed = key.mtime_ns.max(key.ctime_ns);
        if now - changed < self.racy.as_nanos() as i128 {
            return;
        }
        let mut guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // Re-read: another process may have added entries since this one read the file.
        let mut entries = self.read();
        entries.retain(|e| e.path != name);
        entries.push(Entry {
            sha256: sha256.to_string(),
            key: *key,
            path: name,
        });
        if let Err(e) = write_atomically(file, &entries) {
            tracing::debug!(file = %file.display(), error = %e, "verified-hash cache not written");
        }
        *guard = Some(entries);
    }

    fn read(&self) -> Vec<Entry> {
        let Some(file) = &self.file else {
            return Vec::new();
        };
        match std::fs::read_to_string(file) {
            Ok(text) => text.lines().filter_map(parse_line).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// regard's cache folder: `$REGARD_CACHE`, else `$XDG_CACHE_HOME/regard`, else
/// `~/.cache/regard`; `None` when `REGARD_CACHE=off` (or empty) or no home is known.
pub fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os(CACHE_VAR) {
        Some(v) if v.is_empty() || v == "off" => return None,
        Some(v) => return Some(PathBuf::from(v)),
        None => {}
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|h| h.join(".cache"))
        })?;
    Some(base.join("regard"))
}

fn default_file() -> Option<PathBuf> {
    cache_dir().map(|d| d.join("verified-sha256"))
}

fn canonical(path: &Path) -> Option<String> {
    std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.to_str().map(str::to_owned))
}

fn parse_line(line: &str) -> Option<Entry> {
    if line.starts_with('#') {
        return None;
    }
    let mut parts = line.splitn(7, ' ');
    let sha256 = parts.next()?;
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let key = FileKey {
        dev: parts.next()?.parse().ok()?,
        ino: parts.next()?.parse().ok()?,
        size: parts.next()?.parse().ok()?,
        mtime_ns: parts.next()?.parse().ok()?,
        ctime_ns: parts.next()?.parse().ok()?,
    };
    let path = parts.next()?;
    if path.is_empty() {
        return None;
    }
    Some(Entry {
        sha256: sha256.to_ascii_lowercase(),
        key,
        path: path.to_string(),
    })
}

fn write_atomically(file: &Path, entries: &[Entry]) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    writeln!(tmp, "{HEADER}")?;
    for e in entries {
        let k = &e.key;
        writeln!(
            tmp,
            "{} {} {} {} {} {} {}",
            e.sha256, k.dev, k.ino, k.size, k.mtime_ns, k.ctime_ns, e.path
        )?;
    }
    tmp.flush()?;
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(path: &Path) -> FileKey {
        FileKey::of(&std::fs::metadata(path).unwrap())
    }

    #[test]
    fn an_entry_matches_only_the_same_file_version_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.onnx");
        std::fs::write(&model, b"abc").unwrap();
        let cache_file = dir.path().join("cache/verified-sha256");
        let cache = HashCache::at(Some(cache_file.clone())).with_racy_window(Duration::ZERO);
        let sha = "a".repeat(64);
        let key = key_of(&model);
        assert!(!cache.is_verified(&model, &key, &sha));
        cache.record(&model, &key, &sha);
        assert!(cache.is_verified(&model, &key, &sha));
        assert!(!cache.is_verified(&model, &key, &"b".repeat(64)));
        // Another process reads the same file.
        let again = HashCache::at(Some(cache_file));
        assert!(again.is_verified(&model, &key, &sha));
        // Rewritten with the same size: the key differs (ctime at least), so no hit.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&model, b"abd").unwrap();
        let changed = key_of(&model);
        assert_ne!(changed, key);
        assert!(!again.is_verified(&model, &changed, &sha));
    }

    #[test]
    fn files_changed_within_the_racy_window_get_no_entry() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.onnx");
        std::fs::write(&model, b"abc").unwrap();
        let cache = HashCache::at(Some(dir.path().join("c")));
        let key = key_of(&model);
        let sha = "c".repeat(64);
        cache.record(&model, &key, &sha);
        assert!(!cache.is_verified(&model, &key, &sha));
        assert!(!dir.path().join("c").exists());
    }

    #[test]
    fn no_cache_and_garbage_lines_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.onnx");
        std::fs::write(&model, b"abc").unwrap();
        let key = key_of(&model);
        let none = HashCache::at(None).with_racy_window(Duration::ZERO);
        none.record(&model, &key, &"d".repeat(64));
        assert!(!none.is_verified(&model, &key, &"d".repeat(64)));
        let file = dir.path().join("c");
        std::fs::write(&file, "garbage\nzz 1 2 3 4 5 /x\n").unwrap();
        let cache = HashCache::at(Some(file)).with_racy_window(Duration::ZERO);
        assert!(!cache.is_verified(&model, &key, &"d".repeat(64)));
        cache.record(&model, &key, &"d".repeat(64));
        assert!(cache.is_verified(&model, &key, &"d".repeat(64)));
    }
}
