//! The `regard` binary loads FFmpeg when an input needs it, not before `main`
//! (`src/lazy_ffmpeg.rs`): a poster is analysed without any of FFmpeg's ~130 libraries, a
//! trailer loads them on the way. glibc's loader says what it initialises (`LD_DEBUG=libs`).
#![cfg(regard_lazy_ffmpeg)]

mod common;

use std::process::{Command, Output};

const FFMPEG: [&str; 4] = [
    "libavutil.so",
    "libswscale.so",
    "libavcodec.so",
    "libavformat.so",
];

/// Run the binary with the loader's library trace; it must succeed. The output and the
/// libraries it initialised.
fn traced(args: &[&str]) -> (Output, Vec<String>) {
    let out = Command::new(env!("CARGO_BIN_EXE_regard"))
        .current_dir(common::root())
        .args(args)
        .env("LD_DEBUG", "libs")
        .output()
        .expect("regard runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "regard {args:?}: {stderr}");
    let initialised = stderr
        .lines()
        .filter_map(|l| {
            l.split_once("calling init: ")
                .map(|(_, lib)| lib.trim().to_string())
        })
        .collect();
    (out, initialised)
}

fn ffmpeg_in(libraries: &[String]) -> Vec<&str> {
    FFMPEG
        .into_iter()
        .filter(|f| libraries.iter().any(|l| l.contains(f)))
        .collect()
}

fn assert_no_ffmpeg(libraries: &[String]) {
    assert_eq!(ffmpeg_in(libraries), Vec::<&str>::new(), "{libraries:?}");
}

#[test]
fn the_binary_does_not_need_ffmpeg_to_start() {
    let (_, initialised) = traced(&["--version"]);
    assert!(
        initialised.iter().any(|l| l.contains("libc.so")),
        "the loader trace is read (libc is always initialised): {initialised:?}"
    );
    assert_no_ffmpeg(&initialised);
    // Before, the loader initialised about 130 libraries for `--version`.
    assert!(initialised.len() < 10, "{initialised:?}");
}

#[test]
fn a_poster_is_analysed_without_loading_ffmpeg() {
    let (out, initialised) = traced(&["analyze", "--json", "fixtures/faces/astronaut.png"]);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON report on stdout");
    let faces = &report["results"][0]["analysis"]["faces"];
    assert_eq!(faces.as_array().map(Vec::len), Some(1), "{report}");
    assert!(
        initialised.iter().any(|l| l.contains("libonnxruntime")),
        "ONNX Runtime is loaded on demand too, and traced: {initialised:?}"
    );
    assert_no_ffmpeg(&initialised);
}

#[test]
fn a_trailer_loads_ffmpeg_when_it_comes() {
    let (out, initialised) = traced(&["analyze", "fixtures/trailers/t1_640x360.mp4"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("40 frames at 2/s"), "{stdout}");
    assert_eq!(ffmpeg_in(&initialised), FFMPEG.to_vec(), "{initialised:?}");
}
