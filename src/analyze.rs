//! `regard analyze`: fetch each input, run the pipeline, print, annotate, optionally store.

use crate::cli::{AnalyzeArgs, ModelArgs};
use crate::config::{AnalysisSettings, Limits};
use crate::domain::Analysis;
use crate::media::fetch::{FetchPolicy, Fetcher};
use crate::media::sniff;
use crate::pipeline::{AnalysisOutput, Pictures, Pipeline, Progress};
use crate::report::table;
use crate::vision::{ModelManifest, Vision, VisionOptions};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Load and verify the models, then build a pipeline. Refuses to start on a missing or altered
/// model file, naming it.
pub fn load_pipeline(
    models: &ModelArgs,
    settings: AnalysisSettings,
    limits: Limits,
    embeddings: bool,
) -> anyhow::Result<Pipeline> {
    let manifest = ModelManifest::load(&models.models)?;
    manifest.verify()?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let options = VisionOptions {
        intra_threads: if models.ort_threads == 0 {
            cores
        } else {
            models.ort_threads
        },
        enable_sensitive: models.enable_sensitive.clone(),
        embeddings,
    };
    let vision = Vision::load(&manifest, &options)?;
    Ok(Pipeline::new(vision, settings, limits, cores))
}

/// Expand directories into the media files they hold (recognised by their bytes), sorted.
/// Plain files and URLs are kept as given, so that a bad one gets its own error line.
pub fn expand_inputs(inputs: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for input in inputs {
        let path = Path::new(input);
        if !input.contains("://") && path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("{input}: cannot list directory"))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && looks_like_media(p))
                .collect();
            files.sort();
            out.extend(files.into_iter().map(|p| p.display().to_string()));
        } else {
            out.push(input.clone());
        }
    }
    Ok(out)
}

fn looks_like_media(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    sniff::sniff(&head[..n]).is_some()
}

fn file_stem_for(source: &str, index: usize) -> String {
    let name = source.rsplit(['/', '\\']).next().unwrap_or("media");
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{:02}-{}", index + 1, stem.trim_start_matches('.'))
}

fn write_pictures(dir: &Path, stem: &str, pictures: &Pictures) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    let mut save = |name: String, img: &image::RgbImage| -> anyhow::Result<()> {
        let path = dir.join(name);
        img.save(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    match pictures {
        Pictures::Poster { annotated } => save(format!("{stem}.annotated.png"), annotated)?,
        Pictures::Trailer {
            contact_sheet,
            timeline,
        } => {
            save(format!("{stem}.contact-sheet.png"), contact_sheet)?;
            save(format!("{stem}.timeline.png"), timeline)?;
        }
    }
    Ok(written)
}

/// Run `regard analyze`. Returns whether every input succeeded.
pub async fn run(args: AnalyzeArgs) -> anyhow::Result<bool> {
    let settings = args.settings.apply(AnalysisSettings::default());
    let limits = args.limits.limits();
    let models = args.models.clone();
    let pipeline = {
        let limits = limits.clone();
        tokio::task::spawn_blocking(move || load_pipeline(&models, settings, limits, true))
            .await??
    };
    let pipeline = Arc::new(pipeline);
    let inputs = expand_inputs(&args.inputs)?;
    let mut policy = FetchPolicy::cli(limits.clone());
    if args.allow_private_urls {
        policy.allow_private = vec!["0.0.0.0/0".parse()?, "::/0".parse()?];
    }
    let fetcher = Fetcher::new(policy);

    let show_progress = std::io::stderr().is_terminal() && !args.json;
    let overall = (show_progress && inputs.len() > 1).then(|| {
        let bar = ProgressBar::new(inputs.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} files {msg}")
                .expect("static template"),
        );
        bar
    });

    let mut results: Vec<serde_json::Value> = Vec::new();
    let mut analysed: Vec<Analysis> = Vec::new();
    let mut failures = 0usize;
    for (index, input) in inputs.iter().enumerate() {
        if let Some(bar) = &overall {
            bar.set_message(input.clone());
        }
        let outcome = analyze_one(
            &pipeline,
            &fetcher,
            input,
            args.annotate.is_some(),
            show_progress,
        )
        .await;
        match outcome {
            Ok(output) => {
                if let (Some(dir), Some(pictures)) = (&args.annotate, &output.pictures) {
                    let stem = file_stem_for(input, index);
                    for path in write_pictures(dir, &stem, pictures)? {
                        tracing::info!(path = %path.display(), "picture written");
                    }
                }
                let text = match &output.analysis {
                    Analysis::Poster(p) => table::poster(p),
                    Analysis::Trailer(t) => table::trailer(t),
                };
                if args.json {
                    results.push(serde_json::json!({"input": input, "status": "succeeded", "analysis": &output.analysis}));
                } else {
                    match &overall {
                        Some(bar) => bar.println(text),
                        None => println!("{text}"),
                    }
                }
                analysed.push(output.analysis);
            }
            Err(error) => {
                failures += 1;
                let message = format!("{error:#}");
                if args.json {
                    results.push(
                        serde_json::json!({"input": input, "status": "failed", "error": message}),
                    );
                }
                match &overall {
                    Some(bar) => bar.println(format!("error: {message}")),
                    None => eprintln!("error: {message}"),
                }
            }
        }
        if let Some(bar) = &overall {
            bar.inc(1);
        }
    }
    if let Some(bar) = overall {
        bar.finish_and_clear();
    }
    if args.json {
        let doc = serde_json::json!({
            "pipeline_version": crate::PIPELINE_VERSION,
            "provenance": pipeline.provenance(),
            "summary": table::summarize(&analysed),
            "results": results,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        if !analysed.is_empty() {
            println!("{}", table::summary(&table::summarize(&analysed)));
        }
        println!(
            "{} input(s): {} analysed, {} failed",
            inputs.len(),
            inputs.len() - failures,
            failures
        );
    }
    Ok(failures == 0)
}

async fn analyze_one(
    pipeline: &Arc<Pipeline>,
    fetcher: &Fetcher,
    input: &str,
    want_pictures: bool,
    show_progress: bool,
) -> anyhow::Result<AnalysisOutput> {
    let media = fetcher.fetch(input).await?;
    let pipeline = Arc::clone(pipeline);
    let bar = (show_progress && media.format.is_video()).then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} s analysed")
                .expect("static template"),
        );
        bar
    });
    let bar_in = bar.clone();
    let output = tokio::task::spawn_blocking(move || {
        pipeline.analyze(&media, want_pictures, &move |p: Progress| {
            if let Some(bar) = &bar_in {
                bar.set_length(p.total_s.ceil() as u64);
                bar.set_position(p.done_s.floor() as u64);
            }
        })
    })
    .await
    .context("analysis task failed")??;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(output)
}
