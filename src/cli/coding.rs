//! `regard coding serve|add-coder|figures`: the coders' web application, its accounts, and the
//! perceived-origin figures it produces, on top of [`crate::coding`] and [`crate::store`].

use crate::cli::{DbArgs, LimitArgs};
use crate::coding::auth::hash_password;
use crate::coding::{ServeOptions, serve};
use crate::media::FetchPolicy;
use crate::store::{OriginFigure, Store};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum CodingCommand {
    /// Serve the coding application (sign-in, work queues, keyboard coding, admin page) until
    /// SIGTERM or Ctrl-C. Faces are rendered from the source media per request, never stored.
    Serve(Box<CodingServeArgs>),
    /// Create a coder account, or set a new password: the password is read from the first line
    /// of standard input (or REGARD_CODER_PASSWORD) and stored as an argon2 hash.
    AddCoder(AddCoderArgs),
    /// Perceived origin per festival edition from the coders' labels: share, 95% interval,
    /// coverage (share of faces/persons coded), and whether the figures are incomplete.
    Figures(FiguresArgs),
}

#[derive(Debug, Args)]
pub struct CodingServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Address to listen on (port 0: any free port, printed on stderr).
    #[arg(long, env = "REGARD_CODING_LISTEN", default_value = "127.0.0.1:8088")]
    pub listen: SocketAddr,
    /// Directories local media must lie under, as for the worker (comma-separated in the
    /// environment). None: faces only from http(s) URLs.
    #[arg(long = "media-root", env = "REGARD_MEDIA_ROOTS", value_delimiter = ',')]
    pub media_roots: Vec<PathBuf>,
    /// Private networks media URLs may reach, as for the worker.
    #[arg(
        long = "allow-private",
        env = "REGARD_ALLOW_PRIVATE",
        value_delimiter = ','
    )]
    pub allow_private: Vec<ipnet::IpNet>,
    /// File holding the hex key (at least 64 hex digits) cookies are signed with. None: a
    /// random key, so every session ends when the server stops.
    #[arg(long, env = "REGARD_CODING_SESSION_KEY_FILE")]
    pub session_key_file: Option<PathBuf>,
    /// How long a session lasts, in hours.
    #[arg(long, env = "REGARD_CODING_SESSION_HOURS", default_value_t = 8)]
    pub session_hours: u64,
    /// Mark cookies Secure (when served behind HTTPS, as it should be beyond localhost).
    #[arg(long, env = "REGARD_CODING_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Face and context pictures one coder may load per minute.
    #[arg(long, env = "REGARD_CODING_IMAGES_PER_MINUTE", default_value_t = 120)]
    pub images_per_minute: u32,
    /// Pictures one coder may load at once before the per-minute rate applies.
    #[arg(long, env = "REGARD_CODING_IMAGE_BURST", default_value_t = 20)]
    pub image_burst: u32,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Debug, Args)]
pub struct AddCoderArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The coder's name (what they sign in with, and what each label records).
    #[arg(long)]
    pub name: String,
    /// An admin sees progress and agreement, and adjudicates disagreements.
    #[arg(long)]
    pub admin: bool,
}

#[derive(Debug, Args)]
pub struct FiguresArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Only this festival.
    #[arg(long)]
    pub festival: Option<String>,
    /// Only this edition.
    #[arg(long)]
    pub edition: Option<i32>,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(command: CodingCommand) -> anyhow::Result<bool> {
    match command {
        CodingCommand::Serve(args) => run_serve(*args).await,
        CodingCommand::AddCoder(args) => run_add_coder(args).await,
        CodingCommand::Figures(args) => run_figures(args).await,
    }
}

async fn run_serve(args: CodingServeArgs) -> anyhow::Result<bool> {
    let store = Store::connect(&args.db.database_url).await?;
    store.migrate().await?;
    let session_key = match &args.session_key_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the session key {}", path.display()))?,
        ),
        None => None,
    };
    let fetch = FetchPolicy {
        local_roots: Some(args.media_roots.clone()),
        allow_private: args.allow_private.clone(),
        limits: args.limits.limits(),
        download_dir: None,
    };
    let opts = ServeOptions {
        listen: args.listen,
        session_key,
        session_ttl: Duration::from_secs(args.session_hours.max(1) * 3600),
        secure_cookies: args.secure_cookies,
        images_per_minute: args.images_per_minute,
        image_burst: args.image_burst,
        fetch,
    };
    serve(store, opts, shutdown_signal()).await?;
    Ok(true)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn run_add_coder(args: AddCoderArgs) -> anyhow::Result<bool> {
    let password = match std::env::var("REGARD_CODER_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    let hash = hash_password(&password)?;
    let store = Store::connect(&args.db.database_url).await?;
    let id = store.upsert_coder(&args.name, &hash, args.admin).await?;
    println!(
        "coder {:?} (id {id}){}: password set",
        args.name.trim(),
        if args.admin { ", admin" } else { "" }
    );
    Ok(true)
}

/// The origin figures as a table: one line per festival edition, media kind and category.
pub fn figures_table(figures: &[OriginFigure]) -> String {
    use std::fmt::Write;
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v));
    let mut out = format!(
        "{:<20} {:>7} {:<8} {:<16} {:>7} {:>16} {:>18}\n",
        "festival", "edition", "media", "origin", "share", "95% interval", "coverage (coded)"
    );
    for f in figures {
        let interval = match (f.share_ci_low, f.share_ci_high) {
            (Some(l), Some(h)) => format!("[{:.1}, {:.1}]%", 100.0 * l, 100.0 * h),
            _ => "-".into(),
        };
        let coverage = format!("{} ({}/{})", pct(f.coverage), f.decided, f.total);
        let _ = writeln!(
            out,
            "{:<20} {:>7} {:<8} {:<16} {:>7} {:>16} {:>18}{}",
            f.festival,
            f.edition,
            f.media_kind,
            f.category,
            pct(f.share),
            interval,
            coverage,
            if f.incomplete { "  INCOMPLETE" } else { "" }
        );
    }
    if figures.iter().any(|f| f.incomplete) {
        out.push_str(
            "INCOMPLETE: coverage below regard.coding_setting origin_min_coverage; \
             these shares do not speak for the edition yet.\n",
        );
    }
    out
}

async fn run_figures(args: FiguresArgs) -> anyhow::Result<bool> {
    let store = Store::connect(&args.db.database_url).await?;
    let figures = store
        .origin_figures(args.festival.as_deref(), args.edition)
        .await?;
    if args.json {
        for f in &figures {
            println!("{}", serde_json::to_string(f)?);
        }
    } else {
        print!("{}", figures_table(&figures));
    }
    Ok(true)
}
