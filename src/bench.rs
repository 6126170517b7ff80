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
pub fn run_posters(args: BenchArgs) -> anyhow::Result<()> {
    let settings = AnalysisSettings::default();
    let limits = Limits::default();
    let pipeline =
        crate::analyze::load_pipeline(&args.models, settings.clone(), limits.clone(), false)?;
    let inputs: Vec<PathBuf> = if args.inputs.is_empty() {
        BENCH_POSTERS.iter().map(PathBuf::from).collect()
    } else {
        args.inputs.clone()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let fetcher = Fetcher::new(FetchPolicy::cli(limits.clone()));
    println!(
        "| poster | size | faces | decode p50 / p95 ms | detect p50 / p95 ms | classify p50 / p95 ms | whole analysis p50 / p95 ms |"
    );
    println!("|---|---|---|---|---|---|---|");
    for input in &inputs {
        let source = input.display().to_string();
        let media = runtime
            .block_on(fetcher.fetch(&source))
            .with_context(|| format!("{source}: cannot read"))?;
        let bytes = std::fs::read(&media.path)?;
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
            let perceptions = pipeline.vision().perceive(&image.image, &detections)?;
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
