//! Times one sampling run of a video and prints frames, wall time and peak RSS, for comparing
//! decoder settings (one configuration per process, so peak RSS is that run's).
//!
//! `cargo run --release --example video_sampling -- FILE [rate] [threads] [skip:0|1] [seek_gap_s|none]`.

use regard::media::video::{SamplerOptions, VideoSampler};
use std::time::Instant;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // FFmpeg's own warnings arrive through tracing (target "ffmpeg").
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let Some(path) = args.first() else {
        eprintln!("usage: video_sampling FILE [rate] [threads] [skip:0|1] [seek_gap_s|none]");
        std::process::exit(2);
    };
    let arg = |i: usize| args.get(i).map(String::as_str);
    let opts = SamplerOptions {
        sample_rate: arg(1).map_or(Ok(2.0), str::parse)?,
        threads: arg(2).map_or(Ok(2), str::parse)?,
        skip_nonref: arg(3) != Some("0"),
        seek_min_gap_s: match arg(4) {
            None => SamplerOptions::default().seek_min_gap_s,
            Some("none") => None,
            Some(g) => Some(g.parse()?),
        },
        ..SamplerOptions::default()
    };
    let start = Instant::now();
    let mut sampler = VideoSampler::open(path, std::path::Path::new(path), &opts)?;
    let mut frames = 0;
    let mut last_t = 0.0;
    for frame in &mut sampler {
        let frame = frame?;
        frames += 1;
        last_t = frame.t;
    }
    println!(
        "rate={} threads={} skip={} seek={:?} frames={frames} last_t={last_t:.3} wall={:.2}s peak_rss={}MiB report={:?}",
        opts.sample_rate,
        opts.threads,
        opts.skip_nonref,
        opts.seek_min_gap_s,
        start.elapsed().as_secs_f64(),
        peak_rss_kib() / 1024,
        sampler.report()
    );
    Ok(())
}
