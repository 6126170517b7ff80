//! `regard analyze`: fetch each input, run the pipeline, print, annotate, optionally store.

use crate::cli::AnalyzeArgs;
use crate::config::AnalysisSettings;
use crate::domain::{Analysis, FestivalSelection, Film, MediaContext};
use crate::media::fetch::FetchPolicy;
use crate::media::sniff;
use crate::pipeline::{PictureData, Progress};
use crate::report::{pictures, table};
use crate::runner::{Request, Runner, load_pipeline_in_background};
use crate::store::{JobOrigin, Store};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    let models = args.models.options();
    let pipeline = {
        let (settings, limits) = (settings.clone(), limits.clone());
        // The sessions load while the first input is read and decoded.
        tokio::task::spawn_blocking(move || {
            load_pipeline_in_background(&models, &settings, &limits, true)
        })
        .await??
    };
    let load = pipeline.vision().load_handle();
    let inputs = expand_inputs(&args.inputs)?;
    let mut policy = FetchPolicy::cli(limits.clone());
    if args.allow_private_urls {
        policy.allow_private = vec!["0.0.0.0/0".parse()?, "::/0".parse()?];
    }
    let runner = Runner::new(vec![pipeline], policy, store);
    let provenance = runner.provenance(&settings);

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
        // Each input recorded in the database is a job of its own in the ledger.
        let mut context = context.clone();
        if runner.store().is_some() {
            context.job_id = Some(format!("cli-{}", uuid::Uuid::new_v4()));
        }
        let request = Request {
            source: input.clone(),
            expected_kind: None,
            origin: JobOrigin::Cli,
            context,
            settings: settings.clone(),
            pictures: args.annotate.is_some(),
        };
        // Drawn from a trailer's first progress report on; posters report none.
        let bar = show_progress.then(|| {
            let bar = ProgressBar::hidden();
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} s analysed")
                    .expect("static template"),
            );
            bar
        });
        let bar_in = bar.clone();
        let outcome = runner
            .run(
                &request,
                Arc::new(move |p: Progress| {
                    if let Some(bar) = &bar_in {
                        if bar.is_hidden() {
                            bar.set_draw_target(ProgressDrawTarget::stderr());
                        }
                        bar.set_length(p.total_s.ceil() as u64);
                        bar.set_position(p.done_s.floor() as u64);
                    }
                }),
            )
            .await;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        match outcome {
            Ok(done) => {
                if let (Some(dir), Some(pictures)) = (&args.annotate, &done.pictures) {
                    let stem = file_stem_for(input, index);
                    for path in write_pictures(dir, &stem, &done.analysis, pictures)? {
                        tracing::info!(path = %path.display(), "picture written");
                    }
                }
                let mut entry = serde_json::json!({"input": input, "status": "succeeded", "analysis": &done.analysis});
                if let Some(job_id) = &request.context.job_id {
                    entry["job_id"] = serde_json::json!(job_id);
                }
                if let Some(outcome) = &done.stored {
                    entry["analysis_id"] = serde_json::json!(outcome.analysis_id.0);
                    tracing::info!(input = %input, analysis_id = outcome.analysis_id.0, new = outcome.new, reused = done.reused, "result stored");
                }
                if args.json {
                    results.push(entry);
                } else {
                    say(&overall, analysis_table(&done.analysis), false);
                }
                analysed.push(done.analysis);
            }
            Err(failed) => {
                // Models that could not be loaded fail every input alike: a start-up error,
                // said once, as when the sessions were made before the first input.
                if failed.code == crate::pipeline::INFERENCE_FAILED
                    && let Err(e) = load.wait()
                {
                    return Err(e.into());
                }
                failures += 1;
                say(&overall, format!("error: {}", failed.message), true);
                let mut entry = match &failed.analysis {
                    // Analysed, but not stored where the user asked: the figures are shown,
                    // the input counts as failed.
                    Some(analysis) => {
                        if !args.json {
                            say(&overall, analysis_table(analysis), false);
                        }
                        serde_json::json!({"input": input, "status": "succeeded", "analysis": analysis, "store_error": &failed.message})
                    }
                    None => {
                        serde_json::json!({"input": input, "status": "failed", "error_code": failed.code, "error": &failed.message})
                    }
                };
                if failed.analysis.is_none() && runner.store().is_some() {
                    match runner
                        .record_failure(
                            &failed.media,
                            &settings,
                            &request.context,
                            failed.code,
                            &failed.message,
                            false,
                        )
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
                if let Some(analysis) = failed.analysis {
                    analysed.push(*analysis);
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
            "provenance": provenance,
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
    use std::io::Write as _;
    std::io::stdout().flush()?;
    // Models that no input needed still had to load: one that cannot is the start-up error it
    // is when the sessions are made first.
    load.wait()?;
    // Everything is printed and stored. Tearing down the sessions (their thread pools) and the
    // rest took about 25 ms of a one-poster run, as long as some of the analysis: close the
    // database pool properly, then leave the models to the process exit (`main` ends this
    // command with `process::exit`).
    if let Some(store) = runner.store() {
        store.pool().close().await;
    }
    std::mem::forget(runner);
    Ok(failures == 0)
}

fn analysis_table(analysis: &Analysis) -> String {
    match analysis {
        Analysis::Poster(p) => table::poster(p),
        Analysis::Trailer(t) => table::trailer(t),
    }
}

/// Print above the progress bar when there is one, else to stdout (or stderr for errors).
fn say(bar: &Option<ProgressBar>, text: String, error: bool) {
    match bar {
        Some(bar) => bar.println(text),
        None if error => crate::cli::report_error(text.strip_prefix("error: ").unwrap_or(&text)),
        None => println!("{text}"),
    }
}
