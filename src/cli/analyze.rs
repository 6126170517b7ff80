//! `regard analyze`: fetch each input, run the pipeline, print, annotate, optionally store.

use crate::cli::{AnalyzeArgs, ModelArgs};
use crate::config::{AnalysisSettings, Limits};
use crate::domain::{Analysis, FestivalSelection, Film, MediaContext, MediaRole};
use crate::media::fetch::{FetchPolicy, Fetcher};
use crate::media::sniff;
use crate::pipeline::{AnalysisOutput, PictureData, Pipeline, Progress};
use crate::report::{pictures, table};
use crate::store::{FailedMedia, Store, Timings};
use crate::vision::{ModelManifest, Vision, VisionOptions};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

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

/// Have the report layer draw the pictures of one analysis, and write them as PNG.
fn write_pictures(
    dir: &Path,
    stem: &str,
    analysis: &Analysis,
    data: &PictureData,
) -> anyhow::Result<Vec<PathBuf>> {
    let drawn = match (analysis, data) {
        (Analysis::Poster(a), PictureData::Poster { image }) => pictures::poster_pictures(a, image),
        (Analysis::Trailer(a), PictureData::Trailer { frames }) => {
            pictures::trailer_pictures(a, frames)
        }
        _ => anyhow::bail!("{stem}: the picture data does not match the analysis"),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for (suffix, img) in drawn {
        let path = dir.join(format!("{stem}.{suffix}.png"));
        img.save(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// The film and festival results are filed under (`--film-title`, `--imdb-id`, `--festival`...).
/// Every input of one run goes under the same film. Flags that could not be filed are refused
/// rather than silently dropped.
pub fn media_context(args: &AnalyzeArgs) -> anyhow::Result<MediaContext> {
    let nonempty = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    let title = nonempty(&args.film_title);
    let imdb_id = nonempty(&args.imdb_id);
    let section = nonempty(&args.section);
    let festival = nonempty(&args.festival);
    let any_context = title.is_some()
        || imdb_id.is_some()
        || args.film_year.is_some()
        || festival.is_some()
        || args.edition.is_some();
    if any_context && args.database_url.is_none() {
        anyhow::bail!(
            "--film-title, --film-year, --imdb-id and --festival file results in the database: \
             give --db (or REGARD_DATABASE_URL)"
        );
    }
    let film = if title.is_some() || imdb_id.is_some() {
        Some(Film {
            title: title.unwrap_or_default(),
            year: args.film_year,
            imdb_id,
            ..Film::default()
        })
    } else {
        if args.film_year.is_some() {
            anyhow::bail!("--film-year needs --film-title or --imdb-id");
        }
        None
    };
    let festival = match (festival, args.edition) {
        (Some(festival), Some(edition)) => {
            if film.is_none() {
                anyhow::bail!("--festival needs the film: give --film-title or --imdb-id");
            }
            Some(FestivalSelection {
                festival,
                edition,
                section,
            })
        }
        (None, None) if section.is_none() => None,
        _ => anyhow::bail!("--festival, --edition (and --section) go together"),
    };
    Ok(MediaContext {
        film,
        festival,
        job_id: None,
    })
}

/// Run `regard analyze`. Returns whether every input succeeded (and, with `--db`, was stored).
pub async fn run(args: AnalyzeArgs) -> anyhow::Result<bool> {
    let context = media_context(&args)?;
    // Connect before loading the models: a wrong URL fails in a second, not after a minute.
    let store = match &args.database_url {
        Some(url) => {
            let store = Store::connect(url).await?;
            store.migrate().await?;
            Some(store)
        }
        None => None,
    };
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
            Ok((output, timings)) => {
                let stored = match &store {
                    Some(store) => Some(
                        store
                            .record_analysis(&output.analysis, &context, &timings)
                            .await,
                    ),
                    None => None,
                };
                if let (Some(dir), Some(pictures)) = (&args.annotate, &output.pictures) {
                    let stem = file_stem_for(input, index);
                    for path in write_pictures(dir, &stem, &output.analysis, pictures)? {
                        tracing::info!(path = %path.display(), "picture written");
                    }
                }
                let text = match &output.analysis {
                    Analysis::Poster(p) => table::poster(p),
                    Analysis::Trailer(t) => table::trailer(t),
                };
                let mut entry = serde_json::json!({"input": input, "status": "succeeded", "analysis": &output.analysis});
                match &stored {
                    Some(Ok(outcome)) => {
                        entry["analysis_id"] = serde_json::json!(outcome.analysis_id.0);
                        tracing::info!(input = %input, analysis_id = outcome.analysis_id.0, new = outcome.new, "result stored");
                    }
                    Some(Err(e)) => {
                        // The figures exist but are not where the user asked: a failed input.
                        failures += 1;
                        let message = format!("{input}: cannot store the result: {e}");
                        entry["store_error"] = serde_json::json!(message);
                        say(&overall, format!("error: {message}"), true);
                    }
                    None => {}
                }
                if args.json {
                    results.push(entry);
                } else {
                    say(&overall, text, false);
                }
                analysed.push(output.analysis);
            }
            Err(failed) => {
                failures += 1;
                let message = format!("{:#}", failed.error);
                let mut entry = serde_json::json!({"input": input, "status": "failed", "error_code": failed.code, "error": message});
                say(&overall, format!("error: {message}"), true);
                if let Some(store) = &store {
                    let provenance = pipeline.provenance();
                    match store
                        .record_failure(&failed.media, &provenance, &context, failed.code, &message)
                        .await
                    {
                        Ok(outcome) => {
                            entry["analysis_id"] = serde_json::json!(outcome.analysis_id.0)
                        }
                        Err(e) => {
                            let message = format!("{input}: cannot store the failure: {e}");
                            entry["store_error"] = serde_json::json!(message);
                            say(&overall, format!("error: {message}"), true);
                        }
                    }
                }
                if args.json {
                    results.push(entry);
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

/// Print above the progress bar when there is one, else to stdout (or stderr for errors).
fn say(bar: &Option<ProgressBar>, text: String, error: bool) {
    match bar {
        Some(bar) => bar.println(text),
        None if error => eprintln!("{text}"),
        None => println!("{text}"),
    }
}

/// An input that could not be analysed, with what is known of it and the stable error code
/// recorded in the database.
struct Failed {
    media: FailedMedia,
    code: &'static str,
    error: anyhow::Error,
}

async fn analyze_one(
    pipeline: &Arc<Pipeline>,
    fetcher: &Fetcher,
    input: &str,
    want_pictures: bool,
    show_progress: bool,
) -> Result<(AnalysisOutput, Timings), Failed> {
    let started_at = chrono::Utc::now();
    let clock = Instant::now();
    let mut failed_media = FailedMedia {
        source: input.to_string(),
        content_sha256: None,
        kind: None,
    };
    let media = match fetcher.fetch(input).await {
        Ok(media) => media,
        Err(e) => {
            return Err(Failed {
                media: failed_media,
                code: e.code(),
                error: e.into(),
            });
        }
    };
    let fetch_s = clock.elapsed().as_secs_f64();
    failed_media.content_sha256 = Some(media.sha256.clone());
    failed_media.kind = Some(if media.format.is_video() {
        MediaRole::Trailer
    } else {
        MediaRole::Poster
    });
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
    .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let output = match output {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => {
            return Err(Failed {
                media: failed_media,
                code: e.code(),
                error: e.into(),
            });
        }
        Err(e) => {
            return Err(Failed {
                media: failed_media,
                code: "internal_panic",
                error: anyhow::Error::new(e).context(format!("{input}: analysis task failed")),
            });
        }
    };
    let mut timings = Timings {
        started_at: Some(started_at),
        finished_at: Some(chrono::Utc::now()),
        ..Timings::default()
    };
    timings.stages_s.insert("fetch".into(), fetch_s);
    timings
        .stages_s
        .insert("analyze".into(), clock.elapsed().as_secs_f64() - fetch_s);
    Ok((output, timings))
}
