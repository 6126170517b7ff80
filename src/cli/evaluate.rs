//! `regard evaluate`: loads the models, runs the evaluation of the library, prints the report,
//! writes it (with notes appended) when asked, and maps failures and floor breaches to exit 1.

use super::EvaluateArgs;
use crate::config::{AnalysisSettings, Limits};
use crate::evaluate::{Floor, Truth};
use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;

/// The command line as the report's header names it.
fn invocation(args: &EvaluateArgs) -> String {
    let flag = |name: &str, path: &Option<PathBuf>| {
        path.as_ref()
            .map(|p| format!(" --{name} {}", p.display()))
            .unwrap_or_default()
    };
    format!(
        "regard evaluate --truth {}{}{}{}",
        args.truth.display(),
        flag("floor", &args.floor),
        flag("write", &args.write),
        flag("append", &args.append),
    )
}

/// Run `regard evaluate`. Returns false when a floor is breached or an input failed.
pub async fn run(args: EvaluateArgs) -> anyhow::Result<bool> {
    let truth = Truth::load(&args.truth)?;
    let base = args
        .truth
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let floor = args.floor.as_deref().map(Floor::load).transpose()?;
    let settings = args.settings.apply(AnalysisSettings::default());
    let limits = Limits::default();
    let pipeline = {
        let (models, limits) = (args.models.clone(), limits.clone());
        tokio::task::spawn_blocking(move || {
            crate::runner::load_pipeline(&models.options(), &settings, &limits, true)
        })
        .await??
    };
    let floor_source = args.floor.as_ref().map(|p| p.display().to_string());
    let report = crate::evaluate::evaluate(
        Arc::new(pipeline),
        &limits,
        &truth,
        &base,
        invocation(&args),
        floor.as_ref().zip(floor_source),
    )
    .await?;
    let doc = crate::evaluate::markdown(&report);
    if let Some(floor_path) = &args.floor {
        for b in report.breaches() {
            eprintln!("evaluation floor breached: {b}");
        }
        if report.breaches().is_empty() {
            eprintln!("evaluation: every floor of {} holds", floor_path.display());
        }
    }
    print!("{doc}");
    if let Some(path) = &args.write {
        let mut text = doc;
        if let Some(notes) = &args.append {
            text.push('\n');
            text.push_str(
                &std::fs::read_to_string(notes)
                    .with_context(|| format!("cannot read {}", notes.display()))?,
            );
        }
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(report.passed())
}
