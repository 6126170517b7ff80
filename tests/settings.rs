//! The one table of settings and limits (`regard::config`) against everything published from
//! it: the README's configuration tables, the `settings` of the job schema, the flags and
//! `REGARD_*` variables of the commands, and the provenance a run records.
//!
//! `REGARD_BLESS=1 cargo test --test settings` rewrites the README block from the table.

use regard::config::{self, AnalysisSettings};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn regard(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regard"));
    cmd.current_dir(root()).args(args);
    // The caller's own REGARD_* settings must not leak into what is checked.
    for (key, _) in std::env::vars() {
        if key.starts_with("REGARD_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("regard runs")
}

/// The README block between the markers, markers included.
fn readme_block(readme: &str) -> Option<(usize, usize)> {
    let start = readme.find(config::README_BEGIN)?;
    let end = readme[start..].find(config::README_END)? + start + config::README_END.len();
    Some((start, end))
}

#[test]
fn the_readme_configuration_tables_are_the_table() {
    let path = root().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (start, end) = readme_block(&readme).expect("README.md has the settings table markers");
    let expected = config::markdown_table();
    if std::env::var_os("REGARD_BLESS").is_some() {
        let updated = format!("{}{expected}{}", &readme[..start], &readme[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert!(
        readme[start..end] == expected,
        "README.md's settings table differs from src/config.rs; \
         run `REGARD_BLESS=1 cargo test --test settings` to rewrite it. Expected:\n{expected}"
    );
}

#[test]
fn every_setting_and_limit_has_one_flag_and_variable_of_its_own() {
    let entries: Vec<_> = config::settings()
        .into_iter()
        .chain(config::limits())
        .collect();
    assert!(entries.len() >= 20, "{} entries", entries.len());
    let mut seen = std::collections::BTreeSet::new();
    for e in &entries {
        assert!(!e.description.is_empty(), "{} has no description", e.name);
        for name in [e.flag, e.env, e.job_env].into_iter().flatten() {
            assert!(seen.insert(name), "{name} is declared twice");
        }
        if let Some(flag) = e.flag {
            let env = e.env.expect("a flag has a variable");
            assert_eq!(
                env,
                format!("REGARD_{}", flag.replace('-', "_").to_uppercase()),
                "{}'s variable is named after its flag",
                e.name
            );
        }
        assert_eq!(e.job.is_some(), e.job_env.is_some(), "{}", e.name);
    }
    // What existed before the table keeps its name.
    for env in [
        "REGARD_DETECTION_THRESHOLD",
        "REGARD_MIN_FACE_PX",
        "REGARD_MIN_RELIABLE_FACE_PX",
        "REGARD_MIN_CONFIDENCE",
        "REGARD_SAMPLE_RATE",
        "REGARD_MAX_MEDIA_MIB",
        "REGARD_MAX_VIDEO_SECONDS",
        "REGARD_MAX_VIDEO_FRAMES",
        "REGARD_DEADLINE_SECONDS",
        "REGARD_JOB_SAMPLE_RATE",
        "REGARD_JOB_MIN_RELIABLE_FACE_PX",
    ] {
        assert!(seen.contains(env), "{env} is gone");
    }
}

/// `regard <command> --help` lists the table's flags and variables where the command takes them.
#[test]
fn the_commands_take_the_tables_flags() {
    let help = |command: &[&str]| {
        let mut args = command.to_vec();
        args.push("--help");
        let out = regard(&args, &[]);
        assert!(out.status.success(), "{command:?} --help");
        String::from_utf8(out.stdout).unwrap()
    };
    let settings = config::settings();
    let limits = config::limits();
    for (command, takes_limits) in [
        (&["analyze"][..], true),
        (&["worker"], true),
        (&["evaluate"], false),
    ] {
        let text = help(command);
        for e in settings
            .iter()
            .chain(if takes_limits { &limits[..] } else { &[] })
        {
            let (Some(flag), Some(env)) = (e.flag, e.env) else {
                continue;
            };
            assert!(
                text.contains(&format!("--{flag} ")),
                "{command:?}: --{flag}\n{text}"
            );
            assert!(
                text.contains(&format!("[env: {env}=")),
                "{command:?}: {env}"
            );
            assert!(
                text.contains(&format!("[default: {}]", e.default)),
                "{command:?}: default of --{flag}"
            );
        }
    }
    let text = help(&["enqueue"]);
    for e in settings.iter().filter(|e| e.job.is_some()) {
        assert!(
            text.contains(&format!("--{} ", e.flag.unwrap())),
            "enqueue: {}",
            e.name
        );
        assert!(text.contains(e.job_env.unwrap()), "enqueue: {}", e.name);
    }
    for e in settings.iter().filter(|e| e.job.is_none()) {
        if let Some(flag) = e.flag {
            assert!(
                !text.contains(&format!("--{flag} ")),
                "enqueue offers --{flag}"
            );
        }
    }
}

/// A flag and a variable of the table reach the recorded provenance; the rest stay at their
/// defaults, under the keys and with the values results were always recorded with.
#[test]
fn flags_and_variables_reach_the_provenance() {
    let out = regard(
        &[
            "analyze",
            "--json",
            "--nms-iou",
            "0.35",
            "fixtures/faces/astronaut.png",
        ],
        &[
            ("REGARD_SHOT_CUT_DISTANCE", "0.3"),
            ("REGARD_MIN_CONFIDENCE", "0.8"),
            ("REGARD_MIRROR_AVERAGE", "false"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let recorded = &doc["provenance"]["settings"];
    let expected = AnalysisSettings {
        nms_iou: 0.35,
        shot_cut_distance: 0.3,
        min_attribute_confidence: 0.8,
        mirror_average: false,
        ..AnalysisSettings::default()
    };
    assert_eq!(
        recorded,
        &serde_json::to_value(expected.as_provenance()).unwrap()
    );
    assert_eq!(recorded["nms_iou"], serde_json::json!(0.35f32));
    assert_eq!(recorded["mirror_average"], serde_json::json!(false));
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_job_schema_settings_are_the_overridable_settings() {
    let schema = read_json(&root().join("schemas/job.v1.schema.json"));
    let expected = config::job_settings_schema();
    assert!(
        schema["properties"]["settings"] == expected,
        "schemas/job.v1.schema.json `properties.settings` differs from src/config.rs; it should be\n{}",
        serde_json::to_string_pretty(&expected).unwrap()
    );
    // The example at the bounds sets every overridable setting to one of its bounds.
    let example = read_json(&root().join("schemas/examples/valid-settings-at-bounds.json"));
    let set = example["settings"].as_object().unwrap();
    for e in config::settings() {
        let Some((lo, hi)) = e.job else { continue };
        let v = set
            .get(e.name)
            .and_then(|v| v.as_f64())
            .unwrap_or_else(|| panic!("valid-settings-at-bounds.json lacks {}", e.name));
        assert!(v == lo || v == hi, "{} = {v} is not at a bound", e.name);
    }
    assert_eq!(
        set.len(),
        config::settings()
            .iter()
            .filter(|e| e.job.is_some())
            .count()
    );
}
