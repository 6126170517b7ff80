//! The `regard analyze` command as a user meets it: exit codes, one error line per bad input
//! (naming it) while the good inputs are still analysed, JSON output.

mod common;

use std::process::{Command, Output};

fn regard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_regard"))
        .current_dir(common::root())
        .args(args)
        .output()
        .expect("regard runs")
}

#[test]
fn bad_inputs_get_one_error_line_each_and_the_rest_is_analysed() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.path().join("notes.jpg");
    std::fs::write(&text, b"this is not a picture\n").unwrap();
    let truncated = dir.path().join("truncated.jpg");
    let jpeg = std::fs::read(common::root().join("fixtures/faces/obama_1.jpg")).unwrap();
    std::fs::write(&truncated, &jpeg[..jpeg.len() / 3]).unwrap();
    // A closed local port: nothing listens on port 9 (discard) here; private addresses need the flag.
    let unreachable = "http://127.0.0.1:9/poster.jpg";
    let private = "http://10.255.255.1/poster.jpg";
    let inputs = [
        empty.to_str().unwrap(),
        text.to_str().unwrap(),
        truncated.to_str().unwrap(),
        "fixtures/faces/astronaut.png",
        private,
    ];
    let out = regard(&[&["analyze"], &inputs[..]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "some inputs failed: exit 1\n{stderr}"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 4, "one error line per bad input:\n{stderr}");
    for (input, line) in [
        empty.to_str().unwrap(),
        text.to_str().unwrap(),
        truncated.to_str().unwrap(),
        private,
    ]
    .iter()
    .zip(&errors)
    {
        assert!(line.contains(input), "the error names its input: {line}");
    }
    assert!(
        errors[3].contains("private"),
        "a private address is refused as such: {}",
        errors[3]
    );
    assert!(
        stdout.contains("astronaut.png  poster 512×512"),
        "the good input is analysed:\n{stdout}"
    );
    assert!(
        stdout.contains("5 input(s): 1 analysed, 4 failed"),
        "{stdout}"
    );

    let out = regard(&["analyze", "--allow-private-urls", unreachable]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(unreachable), "{stderr}");
}

#[test]
fn a_run_whose_inputs_all_fail_early_still_exits_with_its_code() {
    // The only input fails before any model is needed, while the sessions are still being
    // made on their own thread: the process must not exit under that thread (it died of
    // SIGSEGV in 6 of 10 such runs). Ten runs, because the race is one of timing.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.jpg");
    for run in 0..10 {
        let out = regard(&["analyze", missing.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "run {run}: one failed input is exit 1 ({:?})\n{stderr}",
            out.status
        );
        assert!(stderr.contains("missing.jpg"), "{stderr}");
    }
}

#[test]
fn json_output_carries_results_and_provenance() {
    let out = regard(&[
        "analyze",
        "--json",
        "fixtures/faces/astronaut.png",
        "fixtures/faces/ardern_1.jpg",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for r in results {
        assert_eq!(r["status"], "succeeded");
        assert_eq!(r["analysis"]["kind"], "poster");
        assert_eq!(r["analysis"]["faces"].as_array().unwrap().len(), 1);
        let gender = &r["analysis"]["faces"][0]["attributes"][0];
        assert_eq!(gender["attribute"], "gender");
        assert_eq!(gender["label"], "female");
        assert!(gender["probabilities"]["female"].as_f64().unwrap() > 0.9);
    }
    let models = doc["provenance"]["models"].as_array().unwrap();
    assert!(
        models
            .iter()
            .all(|m| m["sha256"].as_str().unwrap().len() == 64)
    );
    assert!(doc["provenance"]["settings"]["min_attribute_confidence"].is_number());
}

#[test]
fn a_missing_model_file_stops_regard_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = std::fs::read_to_string(common::root().join("models/manifest.toml")).unwrap();
    // Same manifest in an empty folder: every file is missing.
    std::fs::write(dir.path().join("manifest.toml"), manifest).unwrap();
    let models = dir.path().join("manifest.toml");
    let out = regard(&[
        "analyze",
        "--models",
        models.to_str().unwrap(),
        "fixtures/faces/astronaut.png",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("libonnxruntime") || stderr.contains(".onnx"),
        "names the file: {stderr}"
    );
    assert!(
        stderr.contains("setup_models.py"),
        "says how to fix it: {stderr}"
    );
}

/// With `--log-format json` every line on stderr is a JSON record: the models' and FFmpeg's
/// messages, each failed input's error, and the final error of a run that cannot start.
#[test]
fn json_logs_are_json_lines_only() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("notes.jpg");
    std::fs::write(&bad, b"this is not a picture\n").unwrap();
    let out = regard(&[
        "--log-format",
        "json",
        "analyze",
        "fixtures/faces/astronaut.png",
        "fixtures/trailers/t1_640x360.mp4",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "one input failed");
    let cannot_start = regard(&[
        "--log-format",
        "json",
        "analyze",
        "--models",
        "/nonexistent/manifest.toml",
        "fixtures/faces/astronaut.png",
    ]);
    assert_eq!(cannot_start.status.code(), Some(2));
    for (run, o) in [("a failed input", &out), ("no models", &cannot_start)] {
        let stderr = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(!lines.is_empty(), "{run}: the error is logged");
        for line in &lines {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{run}: not a JSON line ({e}): {line:?}"));
            assert!(v["level"].is_string(), "{run}: {line}");
        }
        assert!(
            lines.iter().any(|l| l.contains("\"level\":\"ERROR\"")),
            "{run}: an ERROR record: {stderr}"
        );
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("notes.jpg"));
}

/// The embedder is loaded only at the first trailer, but a worker checks every model file before
/// it takes a job: an altered embedder file stops it at start-up, named, with a non-zero exit.
#[test]
fn a_worker_with_an_altered_embedder_file_refuses_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let models = common::root().join("models");
    let manifest = std::fs::read_to_string(models.join("manifest.toml")).unwrap();
    let sface = "face_recognition_sface_2021dec_fp32.onnx";
    let start = manifest.find(sface).expect("the manifest names SFace");
    let sha_at = start + manifest[start..].find("sha256 = \"").unwrap() + "sha256 = \"".len();
    let mut altered = manifest.clone();
    altered.replace_range(sha_at..sha_at + 64, &"0".repeat(64));
    let altered = altered.replace("file = \"", &format!("file = \"{}/", models.display()));
    let path = tmp.path().join("manifest.toml");
    std::fs::write(&path, altered).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_regard"))
        .current_dir(common::root())
        .args(["worker", "--models", path.to_str().unwrap()])
        .env(
            "REGARD_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/test",
        )
        .env("REGARD_STARTUP_WAIT", "5")
        .output()
        .expect("regard runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the worker started: {stderr}");
    assert!(
        stderr.contains(sface),
        "the altered file is not named: {stderr}"
    );
}

/// ONNX Runtime's own log lines go through tracing: in JSON mode a warning of the library (here
/// about a model initializer that no node reads) is a JSON record at WARN, not a coloured line.
#[test]
fn onnx_runtime_warnings_arrive_as_json_records() {
    let root = common::root();
    let models = root.join("fixtures/models");
    let original = std::fs::read_to_string(models.join("manifest.toml")).unwrap();
    let tint_sha = "ac1ec42e258abc17df103ec82da171b6f7c18c02aba53983a4104c2eeb8a70ae";
    let unused = models.join("unused_initializer.onnx");
    let unused_sha = sha256_hex(&std::fs::read(&unused).unwrap());
    assert!(original.contains(tint_sha) && original.contains("\"tiny_tint.onnx\""));
    let manifest = original
        .replace(
            "\"../../models/",
            &format!("\"{}/", root.join("models").display()),
        )
        .replace("\"tiny_tint.onnx\"", &format!("\"{}\"", unused.display()))
        .replace(tint_sha, &unused_sha);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.toml");
    std::fs::write(&path, manifest).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_regard"))
        .current_dir(&root)
        .args(["--log-format", "json", "analyze", "--models"])
        .arg(&path)
        .arg("fixtures/faces/astronaut.png")
        .env_remove("REGARD_LOG")
        .env_remove("ORT_LOG")
        // The warning comes from graph optimisation, which a cached optimised graph skips.
        .env("REGARD_CACHE", "off")
        .output()
        .expect("regard runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let records: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"))
        })
        .collect();
    let warning = records
        .iter()
        .find(|r| {
            r["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Removing initializer 'unused'"))
        })
        .unwrap_or_else(|| panic!("ONNX Runtime's warning is a JSON record: {stderr}"));
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert!(
        warning["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("ort")),
        "{warning}"
    );
}

/// ONNX Runtime keeps a telemetry event store (device id, OS, executable path) under
/// `$XDG_CACHE_HOME` or `~/.cache/Microsoft/DeveloperTools` unless told not to before its
/// environment exists: regard sends and keeps nothing of the kind.
#[test]
fn onnx_runtime_keeps_no_telemetry_store() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let xdg = dir.path().join("xdg");
    std::fs::create_dir_all(&home).unwrap();
    for xdg_cache in [None, Some(&xdg)] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_regard"));
        cmd.current_dir(common::root())
            .args(["analyze", "fixtures/faces/astronaut.png"])
            .env("HOME", &home)
            .env_remove("ORT_DISABLE_TELEMETRY");
        match xdg_cache {
            Some(x) => cmd.env("XDG_CACHE_HOME", x),
            None => cmd.env_remove("XDG_CACHE_HOME"),
        };
        let out = cmd.output().expect("regard runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for store in [home.join(".cache/Microsoft"), xdg.join("Microsoft")] {
            assert!(
                !store.exists(),
                "XDG_CACHE_HOME {xdg_cache:?}: {} was created: {:?}",
                store.display(),
                walk(&store)
            );
        }
    }
}

/// `regard bench posters` times each stage in one process, then cold starts in new ones: both
/// tables carry a row per poster with numbers, and a failing cold run would fail the command.
#[test]
fn bench_posters_prints_warm_stages_and_cold_processes() {
    let poster = "fixtures/posters/duo_1000x1500.jpg";
    let out = regard(&[
        "bench",
        "posters",
        "--runs",
        "1",
        "--cold-runs",
        "2",
        poster,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with(&format!("| {poster} |")))
        .collect();
    assert_eq!(rows.len(), 2, "a warm row and a cold row:\n{stdout}");
    let cold: Vec<f64> = rows[1]
        .split('|')
        .skip(2)
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    assert_eq!(cold.len(), 4, "p50, min, max and peak RSS:\n{stdout}");
    assert!(
        cold[1] > 0.0 && cold[1] <= cold[0] && cold[0] <= cold[2],
        "{stdout}"
    );
    // A process that loaded ONNX Runtime and four models holds tens of MiB at least; a reading
    // of this process instead of the child's, or of KiB as MiB, would be far off.
    assert!(
        (30.0..2000.0).contains(&cold[3]),
        "the child's peak RSS in MiB: {stdout}"
    );
    assert!(stdout.contains("2 cold runs per poster"), "{stdout}");
}

/// `regard bench trailer` times FFmpeg and regard on the same file in one run. Its row has the
/// file's duration, both medians and their ratio; when the run had to make the optimised graphs
/// (an empty cache) it says that its peak RSS includes them, and a second run, which loads them
/// from the cache, does not.
#[test]
fn bench_trailer_prints_both_sides_and_says_when_it_made_the_model_cache() {
    let cache = tempfile::tempdir().unwrap();
    let trailer = "fixtures/trailers/t2_854x480.mp4";
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_regard"))
            .current_dir(common::root())
            .args(["bench", "trailer", "--runs", "1", "--file", trailer])
            .env("REGARD_CACHE", cache.path())
            .output()
            .expect("regard runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let cells = |stdout: &str| -> Vec<String> {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {trailer} |")))
            .unwrap_or_else(|| panic!("a row for the trailer:\n{stdout}"));
        row.split('|')
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect()
    };
    let seconds = |cell: &str| -> f64 {
        cell.trim_end_matches(['s', '×', ' '])
            .parse()
            .unwrap_or_else(|_| panic!("a number: {cell:?}"))
    };
    let first = run();
    let row = cells(&first);
    assert_eq!(row.len(), 8, "{first}");
    let (duration, ffmpeg, ours, ratio) = (
        seconds(&row[1]),
        seconds(&row[3]),
        seconds(&row[4]),
        seconds(&row[5]),
    );
    assert!(duration > 1.0, "{first}");
    assert!(ffmpeg > 0.0 && ours > 0.0, "{first}");
    assert!(
        (ratio - ours / ffmpeg).abs() <= 0.01 + 0.01 * ratio,
        "the ratio is regard over FFmpeg: {first}"
    );
    assert!(row[7].ends_with(" MiB"), "{first}");
    let made = "The peak RSS includes making";
    assert!(first.contains(made), "an empty cache:\n{first}");
    assert!(first.contains("| embed |"), "{first}");
    let second = run();
    assert!(
        !second.contains(made),
        "graphs loaded from the cache:\n{second}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            found.push(e.path());
            found.extend(walk(&e.path()));
        }
    }
    found
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The caches under `REGARD_CACHE` (verified hashes, optimised graphs) change no figure: a cold
/// cache, a warm one and a damaged one give the faces of a run without them, and a model file
/// altered after it was cached is still refused, naming it.
#[test]
fn model_caches_change_no_figure_and_an_altered_model_is_still_refused() {
    let root = common::root();
    let dir = tempfile::tempdir().unwrap();
    let models = root.join("fixtures/models");
    let manifest = std::fs::read_to_string(models.join("manifest.toml"))
        .unwrap()
        .replace(
            "\"../../models/",
            &format!("\"{}/", root.join("models").display()),
        );
    let tint = dir.path().join("tiny_tint.onnx");
    std::fs::copy(models.join("tiny_tint.onnx"), &tint).unwrap();
    let manifest_path = dir.path().join("manifest.toml");
    std::fs::write(&manifest_path, manifest).unwrap();
    // Files changed less than 2 s before they are hashed get no entry (racy timestamps).
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let cache = dir.path().join("cache");
    let run = |cache: &str| {
        Command::new(env!("CARGO_BIN_EXE_regard"))
            .current_dir(&root)
            .args(["analyze", "--json", "--models"])
            .arg(&manifest_path)
            .arg("fixtures/posters/duo_1000x1500.jpg")
            .env("REGARD_CACHE", cache)
            .output()
            .expect("regard runs")
    };
    let faces = |out: &Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["results"][0]["analysis"]["faces"].clone()
    };
    let plain = faces(&run("off"));
    assert!(plain.as_array().is_some_and(|f| !f.is_empty()), "{plain}");
    let cache_str = cache.to_str().unwrap();
    assert_eq!(faces(&run(cache_str)), plain, "cold cache");
    let hashes = std::fs::read_to_string(cache.join("verified-sha256")).unwrap();
    let tint_real = std::fs::canonicalize(&tint).unwrap();
    assert!(
        hashes.contains(tint_real.to_str().unwrap()),
        "the copied model has an entry: {hashes}"
    );
    let optimised: Vec<_> = std::fs::read_dir(cache.join("optimized"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
        .collect();
    assert!(optimised.len() >= 2, "{optimised:?}");
    assert_eq!(faces(&run(cache_str)), plain, "warm cache");
    // Damaged optimised graphs are ignored (their recorded sha256 no longer matches).
    for path in &optimised {
        std::fs::write(path, b"not a model").unwrap();
    }
    assert_eq!(faces(&run(cache_str)), plain, "damaged cache");
    // The same size, one byte different: the file's ctime moved, so it is hashed and refused.
    let mut bytes = std::fs::read(&tint).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&tint, &bytes).unwrap();
    let out = run(cache_str);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an altered model must be refused");
    assert!(
        stderr.contains("tiny_tint.onnx") && stderr.contains("sha256"),
        "{stderr}"
    );
}

/// `regard analyze` makes its model sessions while it reads the first input. A runtime that
/// passes the file check but does not load (here a text file with the manifest's sha256) is
/// still a start-up error, said once with exit code 2, not one failed input per file.
#[test]
fn a_runtime_that_does_not_load_is_one_start_up_error() {
    let root = common::root();
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libfake.so");
    std::fs::write(&fake, b"not a library\n").unwrap();
    let fake_sha = regard::vision::manifest::sha256_file(&fake).unwrap();
    let real = regard::vision::ModelManifest::load(&root.join("models/manifest.toml")).unwrap();
    let manifest = std::fs::read_to_string(root.join("models/manifest.toml"))
        .unwrap()
        .replace(
            "file = \"",
            &format!("file = \"{}/", root.join("models").display()),
        )
        .replacen(&real.runtime.sha256, &fake_sha, 1)
        .replacen(
            &real.runtime.file.display().to_string(),
            &fake.display().to_string(),
            1,
        );
    let manifest_path = dir.path().join("manifest.toml");
    std::fs::write(&manifest_path, manifest).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_regard"))
        .current_dir(&root)
        .args(["analyze", "--models"])
        .arg(&manifest_path)
        .args(["fixtures/faces/astronaut.png", "fixtures/faces/obama_1.jpg"])
        .output()
        .expect("regard runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.matches("cannot load ONNX Runtime").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("libfake.so"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("analysed"),
        "no input is reported as analysed or failed"
    );
}
