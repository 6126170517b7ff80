//! `regard bench`: timings that go into BENCHMARKS.md (never into tests).

use crate::cli::BenchArgs;
use crate::config::{AnalysisSettings, Limits};
use crate::media::fetch::{FetchPolicy, Fetcher};
use crate::media::image::decode_image;
use anyhow::Context;
use std::path::PathBuf;
use std::time::Instant;

/// The posters of the benchmark: a 2000×3000 poster with 8 faces and a 1000×1500 one.
pub const BENCH_POSTERS: [&str; 2] = [
    "fixtures/posters/bench_2000x3000_8faces.jpg",
    "fixtures/posters/bench_1000x1500.jpg",
];

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn summary(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (percentile(&v, 50.0), percentile(&v, 95.0))
}

/// Time poster analysis stage by stage and print a Markdown table.
pub async fn run_posters(args: BenchArgs) -> anyhow::Result<()> {
    let settings = AnalysisSettings::default();
    let limits = Limits::default();
    let inputs: Vec<PathBuf> = if args.inputs.is_empty() {
        BENCH_POSTERS.iter().map(PathBuf::from).collect()
    } else {
        args.inputs.clone()
    };
    // Measured before this process loads a model, printed last: a child's peak RSS counts the
    // memory of the process that spawned it as it was at the spawn.
    let cold = match args.cold_runs {
        0 => None,
        _ => Some(cold_posters(&args, &inputs)?),
    };
    let pipeline = crate::runner::load_pipeline(&args.models.options(), &settings, &limits, false)?;
    let fetcher = Fetcher::new(FetchPolicy::cli(limits.clone()));
    println!(
        "| poster | size | faces | decode p50 / p95 ms | detect p50 / p95 ms | classify p50 / p95 ms | whole analysis p50 / p95 ms |"
    );
    println!("|---|---|---|---|---|---|---|");
    for input in &inputs {
        let source = input.display().to_string();
        let media = fetcher
            .fetch(&source)
            .await
            .with_context(|| format!("{source}: cannot read"))?;
        let bytes = media.read_all()?;
        let (mut decode, mut detect, mut classify, mut whole) = (vec![], vec![], vec![], vec![]);
        let mut faces = 0;
        let mut size = (0, 0);
        // One untimed warm-up run: first-run allocations of ONNX Runtime are not what a worker pays.
        for run in 0..=args.runs {
            let t0 = Instant::now();
            let image = decode_image(&source, &bytes, &limits)?;
            let t1 = Instant::now();
            let detections = pipeline.vision().detect(
                &image.image,
                settings.detection_score_threshold,
                settings.nms_iou,
                settings.min_face_px,
            )?;
            let t2 = Instant::now();
            // As the pipeline does: with the mirror images when the settings average them.
            let perceptions = pipeline.vision().perceive_with(
                &image.image,
                &detections,
                settings.mirror_average,
            )?;
            let t3 = Instant::now();
            let output = pipeline.analyze(&media, false, &|_| {})?;
            let t4 = Instant::now();
            if run == 0 {
                faces = detections.len();
                size = (image.width, image.height);
                if let crate::domain::Analysis::Poster(p) = &output.analysis {
                    anyhow::ensure!(
                        p.faces.len() == perceptions.len(),
                        "pipeline and stages disagree on {source}"
                    );
                }
                continue;
            }
            let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
            decode.push(ms(t0, t1));
            detect.push(ms(t1, t2));
            classify.push(ms(t2, t3));
            whole.push(ms(t3, t4));
        }
        let f = |v: Vec<f64>| {
            let (p50, p95) = summary(v);
            format!("{p50:.1} / {p95:.1}")
        };
        println!(
            "| {} | {}×{} | {} | {} | {} | {} | {} |",
            source,
            size.0,
            size.1,
            faces,
            f(decode),
            f(detect),
            f(classify),
            f(whole)
        );
    }
    println!(
        "\n{} timed runs per poster after one warm-up; whole analysis = read + decode + detect + classify + statistics.",
        args.runs
    );
    if let Some(cold) = cold {
        print!("{cold}");
    }
    Ok(())
}

/// A cold start as a user or a fresh worker pays it: a new `regard analyze` process per run
/// (model files already in the page cache after the first), wall time from spawn to exit and
/// the process's peak resident set size.
fn cold_posters(args: &BenchArgs, inputs: &[PathBuf]) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let mut table = String::new();
    let exe = std::env::current_exe().context("the regard binary")?;
    writeln!(
        table,
        "\n| poster | cold process p50 ms | min ms | max ms | peak RSS p50 MiB |"
    )?;
    writeln!(table, "|---|---|---|---|---|")?;
    for input in inputs {
        let mut wall = Vec::with_capacity(args.cold_runs);
        let mut rss = Vec::with_capacity(args.cold_runs);
        for _ in 0..args.cold_runs {
            let t0 = Instant::now();
            let (status, peak_mib) = run_measured(
                std::process::Command::new(&exe)
                    .arg("analyze")
                    .arg("--json")
                    .arg("--models")
                    .arg(&args.models.models)
                    .arg(input)
                    .env("REGARD_ORT_THREADS", args.models.ort_threads.to_string())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null()),
            )
            .context("regard analyze runs")?;
            wall.push(t0.elapsed().as_secs_f64() * 1000.0);
            rss.push(peak_mib);
            anyhow::ensure!(
                status.success(),
                "regard analyze {} failed ({status})",
                input.display()
            );
        }
        wall.sort_by(f64::total_cmp);
        rss.sort_by(f64::total_cmp);
        writeln!(
            table,
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} |",
            input.display(),
            percentile(&wall, 50.0),
            wall[0],
            wall[wall.len() - 1],
            percentile(&rss, 50.0)
        )?;
    }
    writeln!(
        table,
        "\n{} cold runs per poster: `regard analyze --json POSTER`, one process each, from spawn to exit (load the models, analyse, print).",
        args.cold_runs
    )?;
    Ok(table)
}

/// `regard bench soak`: see [`crate::cli::soak`]. Returns false when a job was lost or doubled.
pub async fn run_soak(args: crate::cli::SoakArgs) -> anyhow::Result<bool> {
    crate::cli::soak::run(args).await
}

/// Runs `command` to its end: its exit status and the child's peak resident set size in MiB
/// (`wait4`'s resource usage; Linux counts `ru_maxrss` in KiB).
fn run_measured(
    command: &mut std::process::Command,
) -> std::io::Result<(std::process::ExitStatus, f64)> {
    use std::os::unix::process::ExitStatusExt as _;
    let child = command.spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain integers, for which zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is this process's child, not yet reaped: `child` is dropped below
        // without std waiting for it (dropping a `Child` neither waits nor kills).
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    drop(child);
    Ok((
        std::process::ExitStatus::from_raw(status),
        usage.ru_maxrss as f64 / 1024.0,
    ))
}

/// Peak resident set size of this process so far, in MiB (Linux: VmHWM).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The default benchmark trailer: 120 s of 1920×1080 H.264 (x264 defaults: B-frames, 250-frame
/// keyframe interval) made from the fixture trailers, so that it has faces, cuts and returns.
fn default_trailer() -> anyhow::Result<PathBuf> {
    let dir = PathBuf::from(".cache/bench");
    let path = dir.join("trailer-120s-1080p.mp4");
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir)?;
    let part = dir.join("trailer-120s-1080p.part.mp4");
    eprintln!("bench: making {} with ffmpeg (once)", path.display());
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-y",
            "-stream_loop",
            "-1",
            "-i",
            "fixtures/trailers/t2_854x480.mp4",
        ])
        .args([
            "-t",
            "120",
            "-an",
            "-vf",
            "scale=1920:1080:flags=bicubic,fps=25",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&part)
        .status()
        .context("cannot run ffmpeg (install Debian's ffmpeg)")?;
    anyhow::ensure!(
        status.success(),
        "ffmpeg failed to make the benchmark trailer"
    );
    std::fs::rename(&part, &path)?;
    Ok(path)
}

/// Time the trailer analysis against `ffmpeg -threads 2 -i FILE -f null -` on the same file, in
/// the same run, and print a Markdown table with the ratio, the real-time factor, where the time
/// goes and the peak RSS.
pub async fn run_trailer(args: crate::cli::BenchTrailerArgs) -> anyhow::Result<()> {
    let file = match &args.file {
        Some(f) => f.clone(),
        None => default_trailer()?,
    };
    let settings = AnalysisSettings::default();
    let limits = Limits::default();
    let graphs_before = crate::vision::optimized::cached_graphs();
    let mut pipeline =
        crate::runner::load_pipeline(&args.models.options(), &settings, &limits, true)?;
    if let Some(threads) = args.decoder_threads {
        pipeline = pipeline.with_decoder_threads(threads);
    }
    eprintln!("bench: {} decoder thread(s)", pipeline.decoder_threads());
    let fetcher = Fetcher::new(FetchPolicy::cli(limits));
    let media = fetcher.fetch(&file.display().to_string()).await?;
    let (mut ffmpeg_s, mut ours_s) = (Vec::new(), Vec::new());
    let mut stages: std::collections::BTreeMap<&'static str, f64> = Default::default();
    let mut duration = 0.0;
    let mut frames = 0;
    for _ in 0..args.runs.max(1) {
        let t0 = Instant::now();
        let status = std::process::Command::new("ffmpeg")
            .args(["-loglevel", "error", "-threads", "2", "-i"])
            .arg(&file)
            .args(["-f", "null", "-"])
            .status()
            .context("cannot run ffmpeg")?;
        anyhow::ensure!(status.success(), "ffmpeg failed on {}", file.display());
        ffmpeg_s.push(t0.elapsed().as_secs_f64());
        let t1 = Instant::now();
        let out = pipeline.analyze(&media, false, &|_| {})?;
        ours_s.push(t1.elapsed().as_secs_f64());
        for (k, v) in &out.stage_seconds {
            *stages.entry(k).or_default() += v / args.runs.max(1) as f64;
        }
        if let crate::domain::Analysis::Trailer(t) = &out.analysis {
            duration = t.media.duration_s.unwrap_or(t.analysed_duration_s);
            frames = t.sampled_frames;
        }
    }
    // Counted after the runs: the embedder's session is made on the first trailer.
    let graphs_made = crate::vision::optimized::cached_graphs().saturating_sub(graphs_before);
    let (ff, _) = summary(ffmpeg_s);
    let (us, _) = summary(ours_s);
    println!(
        "| file | duration | sampled frames | ffmpeg decode (median) | regard analysis (median) | ratio | real-time factor | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {duration:.1} s | {frames} at {}/s | {ff:.2} s | {us:.2} s | {:.2}× | {:.1}× real time | {} |",
        file.display(),
        settings.sample_rate,
        us / ff,
        duration / us,
        peak_rss_mib()
            .map(|m| format!("{m:.0} MiB"))
            .unwrap_or_else(|| "–".into())
    );
    if graphs_made > 0 {
        // ONNX Runtime optimising a graph holds it twice: 355 instead of 266 MiB here.
        println!(
            "\nThe peak RSS includes making {graphs_made} optimised model graph(s) for the cache \
             (a first run on this machine, CPU or runtime); run again for the peak of a load \
             from the cache."
        );
    }
    println!(
        "\nWhere regard's time goes (mean of {} runs):\n",
        args.runs.max(1)
    );
    println!("| stage | seconds | share |");
    println!("|---|---|---|");
    let total: f64 = stages.values().sum();
    for (k, v) in &stages {
        println!("| {k} | {v:.2} | {:.0}% |", 100.0 * v / total.max(1e-9));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 95.0), 95.0);
        assert_eq!(percentile(&[3.0], 95.0), 3.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
