//! The architecture, checked: `src/` reads media → vision → track → stats, run by `pipeline`,
//! whose results `report` shows and `store` keeps; `runner` is the one path from a job to a
//! stored figure, driven by `queue` or `cli`. No module imports one above it, and modules of
//! one layer do not import each other (report and store are independent).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each top-level module of the library and its layer, lowest first. `domain` and `config` are
/// plain types every layer may use, `panics` a helper every layer may use.
const LAYERS: &[(&str, u32)] = &[
    ("domain", 0),
    ("config", 0),
    ("panics", 0),
    ("media", 1),
    ("vision", 2),
    ("track", 3),
    ("stats", 4),
    ("pipeline", 5),
    ("report", 6),
    ("store", 6),
    ("runner", 7),
    ("evaluate", 8),
    ("queue", 8),
    ("coding", 8),
    ("cli", 9),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src readable") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level library module a file belongs to (`src/media/video/mod.rs` → `media`); none
/// for the crate roots and the binary's own module (`lazy_ffmpeg`, declared in `main.rs`).
fn module_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    let name = first.trim_end_matches(".rs").to_string();
    (!matches!(name.as_str(), "lib" | "main" | "lazy_ffmpeg")).then_some(name)
}

/// Every `crate::name` a file mentions, outside comments.
fn crate_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `crate::PIPELINE_VERSION` and the like are the crate root's constants.
            if name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                found.push(name);
            }
            rest = after;
        }
    }
    found
}

#[test]
fn no_module_imports_one_above_it() {
    let layers: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut violations = Vec::new();
    let mut seen_modules = std::collections::BTreeSet::new();
    for file in &files {
        let Some(module) = module_of(file) else {
            continue;
        };
        let Some(&own) = layers.get(module.as_str()) else {
            violations.push(format!(
                "{}: module `{module}` has no layer in tests/layout.rs",
                file.display()
            ));
            continue;
        };
        seen_modules.insert(module.clone());
        let text = std::fs::read_to_string(file).expect("source readable");
        for used in crate_paths(&text) {
            if used == module {
                continue;
            }
            match layers.get(used.as_str()) {
                Some(&layer) if layer < own || (layer == 0 && own == 0) => {}
                Some(&layer) => violations.push(format!(
                    "{}: `{module}` (layer {own}) uses `crate::{used}` (layer {layer})",
                    file.strip_prefix(src()).unwrap_or(file).display()
                )),
                None => violations.push(format!(
                    "{}: `crate::{used}` is not a known module",
                    file.display()
                )),
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    // Every layer is a real module, so the table cannot silently go stale.
    let declared: std::collections::BTreeSet<String> =
        LAYERS.iter().map(|(m, _)| m.to_string()).collect();
    assert_eq!(seen_modules, declared, "modules of src/ and LAYERS differ");
}

#[test]
fn the_check_sees_an_upward_import() {
    assert_eq!(
        crate_paths("use crate::store::Store; // crate::queue is mentioned only here"),
        ["store"]
    );
    assert!(crate_paths("let v = crate::PIPELINE_VERSION;").is_empty());
}
