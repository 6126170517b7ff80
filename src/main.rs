//! The `regard` binary: parses arguments, sets up logging, runs a command, maps the outcome to
//! an exit code (0: everything succeeded; 1: some input failed; 2: could not run at all).

use clap::Parser;
use regard::cli::{Cli, Command, LogFormat, PersonsCommand, QueueCommand};
use std::process::ExitCode;

#[cfg(regard_lazy_ffmpeg)]
mod lazy_ffmpeg;

/// The tracing filter for `REGARD_LOG` (default `warn,regard=info`). lapin logs every broker
/// hiccup at ERROR on its own and returns the same error to the worker, which logs it once
/// with its context at WARN (a routine broker restart must not page anybody): its lines are
/// off unless the filter names `lapin` itself (`REGARD_LOG=info,lapin=debug`).
fn log_filter(env: Option<&str>) -> String {
    let asked = env.map(str::trim).filter(|f| !f.is_empty());
    let base = asked.unwrap_or("warn,regard=info");
    if base.contains("lapin") {
        base.to_string()
    } else {
        format!("{base},lapin=off")
    }
}

fn init_logging(format: LogFormat) {
    let wanted = log_filter(std::env::var("REGARD_LOG").ok().as_deref());
    let filter = tracing_subscriber::EnvFilter::try_new(&wanted).unwrap_or_else(|error| {
        // Logging is not up yet: say it on stderr, and log with the default filter.
        eprintln!("REGARD_LOG={wanted:?} is not a valid filter ({error}); using the default");
        tracing_subscriber::EnvFilter::new(log_filter(None))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.compact().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.log_format);
    regard::cli::set_json_logs(cli.global.log_format == LogFormat::Json);
    regard::cli::install_panic_hook();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // The worker leaves with `process::exit`: jobs handed back at the shutdown deadline may
    // still be running on blocking threads, which dropping the runtime would wait for.
    let exit_at_once = matches!(cli.command, Command::Worker(_));
    // A worker takes trailers: it loads FFmpeg now, so that a missing library stops it here.
    #[cfg(regard_lazy_ffmpeg)]
    if exit_at_once && let Err(why) = lazy_ffmpeg::load() {
        eprintln!("error: {why}");
        return ExitCode::from(2);
    }
    // `analyze` has printed and stored everything when it returns: its models are not torn down.
    let skip_teardown = matches!(cli.command, Command::Analyze(_));
    let outcome = runtime.block_on(async {
        // The worker turns signals into a graceful shutdown; every other command ends on them.
        if !exit_at_once {
            regard::cli::exit_on_signals();
        }
        match cli.command {
            Command::Analyze(args) => regard::cli::analyze::run(args).await,
            Command::Worker(args) => regard::cli::worker::run(*args).await,
            Command::Enqueue(args) => regard::cli::worker::enqueue(*args).await,
            Command::Queue(QueueCommand::Setup(args)) => {
                regard::cli::worker::queue_setup(args).await
            }
            Command::Queue(QueueCommand::Status(args)) => regard::cli::queue::status(args).await,
            Command::Queue(QueueCommand::DeadLetters(command)) => {
                regard::cli::queue::dead_letters(command).await
            }
            Command::Migrate(args) => regard::store::Store::connect(&args.database_url)
                .await?
                .migrate()
                .await
                .map(|_| true)
                .map_err(Into::into),
            Command::Persons(PersonsCommand::Export(args)) => {
                regard::cli::persons::run_export(args).await
            }
            Command::Persons(PersonsCommand::Import(args)) => {
                regard::cli::persons::run_import(args).await
            }
            Command::Coding(command) => regard::cli::coding::run(command).await,
            Command::Retention(args) => regard::cli::persons::run_retention(args).await,
            Command::Jobs(command) => regard::cli::jobs::run(command).await,
            Command::Films(command) => regard::cli::jobs::run_films(command).await,
            Command::Evaluate(args) => regard::cli::evaluate::run(args).await,
            Command::Bench(regard::cli::BenchCommand::Posters(args)) => {
                regard::cli::bench::run_posters(args).await.map(|_| true)
            }
            Command::Bench(regard::cli::BenchCommand::Trailer(args)) => {
                regard::cli::bench::run_trailer(args).await.map(|_| true)
            }
            Command::Bench(regard::cli::BenchCommand::Soak(args)) => {
                regard::cli::bench::run_soak(*args).await
            }
            Command::Bench(regard::cli::BenchCommand::Worker(args)) => {
                regard::cli::bench_worker::run(args).await.map(|_| true)
            }
        }
    });
    let code: u8 = match outcome {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            // In JSON mode every line on stderr is a JSON log record, the last error too.
            regard::cli::report_error(&format!("{e:#}"));
            2
        }
    };
    if exit_at_once || skip_teardown {
        regard::cli::exit_now(i32::from(code));
    }
    // Destructors run from here on, but a job handed back or a task still running does not
    // hold its temp file through them, nor a model set still loading its sessions.
    regard::vision::finish_background_loads();
    regard::media::fetch::remove_temp_files();
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn lapin_stays_quiet_unless_the_filter_names_it() {
        assert_eq!(log_filter(None), "warn,regard=info,lapin=off");
        assert_eq!(log_filter(Some(" ")), "warn,regard=info,lapin=off");
        // What deploy/kubernetes/config.env sets: lapin's ERROR lines stay off.
        assert_eq!(log_filter(Some("info")), "info,lapin=off");
        assert_eq!(log_filter(Some("info,lapin=debug")), "info,lapin=debug");
    }
}
