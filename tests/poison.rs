//! The poison corpus through the real worker, broker and database: every kind of bad input
//! (built at test time: byte strings, the ffmpeg command line, a local HTTP server, raw broker
//! messages) ends as a recorded failure with its own stable code, the worker stays alive and
//! ready, its memory stays bounded, and no temporary file outlives it.

mod common;
mod world;

use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use world::{Broker, TestDb, amqp_url, free_port};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The worker's limits in these tests (MiB): the memory bound below is stated from them.
const MAX_IMAGE_MIB: u64 = 8;
const MAX_IMAGE_ALLOC_MIB: u64 = 64;
const MAX_MEDIA_MIB: u64 = 16;
/// Slack over the limits for what one failing job may leave allocated besides its pixels
/// (FFmpeg's demuxer and decoder state, allocator fragmentation), in MiB.
const SLACK_MIB: u64 = 96;

/// The final event (completed, failed, malformed) of each of `ids`, skipping `retrying`.
async fn final_events(
    broker: &mut Broker,
    ids: &[String],
    limit: Duration,
) -> BTreeMap<String, Value> {
    let until = tokio::time::Instant::now() + limit;
    let mut out = BTreeMap::new();
    while ids.iter().any(|id| !out.contains_key(id)) {
        match tokio::time::timeout_at(until, broker.results.next()).await {
            Ok(Some(Ok(d))) => {
                let e: Value = serde_json::from_slice(&d.data).unwrap();
                if e["outcome"] != "retrying" {
                    let id = e["job_id"].as_str().unwrap_or_default().to_owned();
                    assert!(out.insert(id, e.clone()).is_none(), "two final events: {e}");
                }
            }
            Ok(other) => panic!("results consumer ended: {other:?}"),
            Err(_) => {
                let missing: Vec<&String> =
                    ids.iter().filter(|id| !out.contains_key(*id)).collect();
                panic!("no final event after {limit:?} for {missing:?}; got {out:#?}")
            }
        }
    }
    out
}

// ------------------------------------------------------------------ the worker process

struct WorkerProcess {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl WorkerProcess {
    fn start(
        broker: &Broker,
        db_url: &str,
        media_root: &Path,
        tmpdir: &Path,
        log: PathBuf,
        extra: &[(&str, String)],
    ) -> WorkerProcess {
        let port = free_port();
        let mut c = Command::new(env!("CARGO_BIN_EXE_regard"));
        c.current_dir(common::root())
            .arg("worker")
            .env("REGARD_AMQP_URL", amqp_url())
            .env("REGARD_QUEUE_PREFIX", &broker.topology.prefix)
            .env("REGARD_DELIVERY_LIMIT", "5")
            .env("REGARD_RETRY_DELAYS", "0.5,1")
            .env("REGARD_MAX_ATTEMPTS", "2")
            .env("REGARD_DATABASE_URL", db_url)
            .env("REGARD_MEDIA_ROOTS", media_root)
            .env("REGARD_HTTP_LISTEN", format!("127.0.0.1:{port}"))
            .env("REGARD_JOB_SLOTS", "1")
            .env("REGARD_ORT_THREADS", "1")
            .env("REGARD_SHUTDOWN_DEADLINE", "30")
            .env("REGARD_RECONNECT_MAX", "1")
            .env("REGARD_LOG", "warn,regard=info")
            .env("REGARD_LOG_FORMAT", "json")
            .env("TMPDIR", tmpdir)
            .env("NO_COLOR", "1")
            .env_remove("REGARD_ALLOW_PRIVATE")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in extra {
            c.env(k, v);
        }
        WorkerProcess {
            child: c.spawn().expect("regard worker starts"),
            port,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn http(&self, path: &str) -> Option<(u16, String)> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let status = text.split(' ').nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n")?.1.to_string();
        Some((status, body))
    }

    fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.http("/metrics")?;
        body.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("worker exited ({status}):\n{}", self.log());
        }
    }

    async fn ready(&mut self) {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            self.assert_alive();
            if let Some((200, _)) = self.http("/readyz") {
                return;
            }
            assert!(Instant::now() < until, "worker not ready:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A `kB` field of /proc/PID/status, in MiB.
    fn status_mib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/PID/status");
        let kb: u64 = status
            .lines()
            .find_map(|l| {
                l.strip_prefix(field)?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {field} in {status}"));
        kb / 1024
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -{name} {}", self.child.id());
    }

    async fn exit_code(&mut self, limit: Duration) -> Option<i32> {
        let until = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < until,
                "worker still running:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // Left running by a failed test: kill it so it does not outlive the test.
            if let Err(e) = self.child.kill() {
                eprintln!("could not kill worker {}: {e}", self.child.id());
            }
            if let Err(e) = self.child.wait() {
                eprintln!("could not reap worker {}: {e}", self.child.id());
            }
        }
    }
}

/// Temp files a process left (tempfile names start with `.tmp`).
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(".tmp"))
        .collect()
}

// ------------------------------------------------------------------ a hostile HTTP server

#[derive(Clone)]
enum Reply {
    Full {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// The headers, then one byte of `body` every `every` (a slow drip).
    Drip { body: Vec<u8>, every: Duration },
    /// Claims a body of `claimed` bytes, sends `body` and stalls.
    Claims { claimed: u64, body: Vec<u8> },
}

/// Serves `route` on `ip` (any port) until dropped.
async fn serve(
    ip: &str,
    route: impl Fn(&str, SocketAddr) -> Reply + Send + Sync + 'static,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let route = std::sync::Arc::new(route);
    let task = tokio::spawn(async move {
        let mut handlers = tokio::task::JoinSet::new();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let route = route.clone();
            handlers.spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let head = |status: u16, length: u64, headers: &[(&str, String)]| {
                    let mut h = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {length}\r\nConnection: close\r\n"
                    );
                    for (name, value) in headers {
                        h.push_str(&format!("{name}: {value}\r\n"));
                    }
                    h.push_str("\r\n");
                    h.into_bytes()
                };
                // The client may hang up at any point: that is the point of most replies.
                match route(&path, addr) {
                    Reply::Full {
                        status,
                        headers,
                        body,
                    } => {
                        if stream
                            .write_all(&head(status, body.len() as u64, &headers))
                            .await
                            .is_ok()
                        {
                            let _sent = stream.write_all(&body).await;
                        }
                    }
                    Reply::Drip { body, every } => {
                        let png = [("Content-Type", "image/png".to_owned())];
                        if stream
                            .write_all(&head(200, body.len() as u64, &png))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        for byte in body {
                            if stream.write_all(&[byte]).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(every).await;
                        }
                    }
                    Reply::Claims { claimed, body } => {
                        let png = [("Content-Type", "image/png".to_owned())];
                        if stream.write_all(&head(200, claimed, &png)).await.is_ok() {
                            let _sent = stream.write_all(&body).await;
                            tokio::time::sleep(Duration::from_secs(120)).await;
                        }
                    }
                }
            });
        }
    });
    (addr, task)
}

// ------------------------------------------------------------------ byte builders

/// A PNG of `width`×`height` with the given depth and colour type whose rows are all zeros,
/// deflated: tens of megabytes of pixels in kilobytes. `idat_rows` limits the rows actually
/// present (a header that promises more than the data holds).
fn png(width: u32, height: u32, depth: u8, color: u8, idat_rows: u32) -> Vec<u8> {
    let channels = match color {
        0 => 1,
        2 => 3,
        4 => 2,
        6 => 4,
        _ => 1,
    };
    let row_bytes = (width as usize * channels * usize::from(depth)).div_ceil(8);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let row = vec![0u8; row_bytes + 1];
    for _ in 0..idat_rows {
        z.write_all(&row).unwrap();
    }
    let data = z.finish().unwrap();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[depth, color, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    common::png_chunk(&mut out, b"IHDR", &ihdr);
    common::png_chunk(&mut out, b"IDAT", &data);
    common::png_chunk(&mut out, b"IEND", &[]);
    out
}

/// SOI, a baseline SOF0 declaring `width`×`height`, a scan of nothing, EOI.
fn jpeg_header(width: u16, height: u16) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08];
    v.extend_from_slice(&height.to_be_bytes());
    v.extend_from_slice(&width.to_be_bytes());
    v.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    v.extend_from_slice(&[
        0xFF, 0xDA, 0x00, 0x0C, 3, 1, 0, 2, 0x11, 3, 0x11, 0, 0x3F, 0,
    ]);
    v.extend_from_slice(&[0x00, 0xFF, 0xD9]);
    v
}

fn ffmpeg(args: &str, out: &Path) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(args.split_whitespace())
        .arg(out)
        .status()
        .expect("the ffmpeg command line is required to build these inputs");
    assert!(status.success(), "ffmpeg {args} failed");
}

fn job(id: &str, kind: &str, source: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": 1,
        "job_id": id,
        "kind": kind,
        "source": source,
        "film": {"title": "Poison"},
    }))
    .unwrap()
}

// ------------------------------------------------------------------ the corpus

/// One kind of bad input: its job id, message body, and the code its failure must carry.
struct Poison {
    id: String,
    body: Vec<u8>,
    code: &'static str,
}

/// Builds every kind under `media` (files), on the server at `http` (URLs), or as raw
/// message bytes.
fn corpus(media: &Path, http: SocketAddr) -> Vec<Poison> {
    let fixtures = common::root().join("fixtures");
    let poster = std::fs::read(fixtures.join("posters/duo_1000x1500.jpg")).unwrap();
    let trailer = std::fs::read(fixtures.join("trailers/t3_640x360.mp4")).unwrap();
    let mut out = Vec::new();
    let file = |id: &str, kind: &'static str, name: &str, bytes: &[u8], code| {
        let path = media.join(name);
        std::fs::write(&path, bytes).unwrap();
        (id.to_owned(), kind, path.display().to_string(), code)
    };
    let mut local: Vec<(String, &str, String, &str)> = vec![
        file("zero-byte-poster", "poster", "empty.jpg", b"", "corrupt_media"),
        file("zero-byte-trailer", "trailer", "empty.mp4", b"", "corrupt_media"),
        file(
            "truncated-jpeg",
            "poster",
            "truncated.jpg",
            &poster[..poster.len() / 3],
            "corrupt_media",
        ),
        file(
            "jpeg-header-only",
            "poster",
            "header.jpg",
            &poster[..600],
            "corrupt_media",
        ),
        file(
            "text-named-jpg",
            "poster",
            "notes.jpg",
            b"not a picture at all\n",
            "unsupported_format",
        ),
        file(
            "html-named-png",
            "poster",
            "page.png",
            b"<!doctype html><html><body><img src=x></body></html>",
            "unsupported_format",
        ),
        file(
            "gif-poster",
            "poster",
            "anim.gif",
            b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;",
            "unsupported_format",
        ),
        file(
            "png-50000-square",
            "poster",
            "wide.png",
            &png(50_000, 50_000, 8, 6, 1),
            "too_large",
        ),
        file(
            "jpeg-65500-square",
            "poster",
            "wide.jpg",
            &jpeg_header(65_500, 65_500),
            "too_large",
        ),
        // 7000×7000 at 16-bit RGBA: under the pixel limit, 392 MB to decode into.
        file(
            "png-16bit-rgba-header",
            "poster",
            "deep.png",
            &png(7_000, 7_000, 16, 6, 2),
            "too_large",
        ),
        // 6000×6000 grey, all of it present: 36 MB of pixels, 108 MB as RGB, from ~40 kB.
        file(
            "png-decompression-bomb",
            "poster",
            "bomb.png",
            &png(6_000, 6_000, 8, 0, 6_000),
            "too_large",
        ),
        file(
            "webp-16383-canvas",
            "poster",
            "canvas.webp",
            b"RIFF\x1e\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0\xfe\x3f\0\xfe\x3f\0",
            "too_large",
        ),
        file(
            "png-bad-crc",
            "poster",
            "crc.png",
            &{
                let mut p = png(64, 64, 8, 2, 64);
                let n = p.len();
                p[n - 20] ^= 0xFF;
                p
            },
            "corrupt_media",
        ),
        file(
            "trailer-named-jpg-as-poster",
            "poster",
            "clip.jpg",
            &trailer,
            "kind_mismatch",
        ),
        file(
            "poster-named-mp4-as-trailer",
            "trailer",
            "still.mp4",
            &poster,
            "kind_mismatch",
        ),
        file(
            "mp4-magic-then-garbage",
            "trailer",
            "garbage.mp4",
            &{
                let mut v = trailer[..32].to_vec();
                v.extend((0..40_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
                v
            },
            "corrupt_media",
        ),
        file(
            "image-over-the-image-limit",
            "poster",
            "huge.png",
            &{
                let mut v = png(64, 64, 8, 2, 64);
                v.resize(((MAX_IMAGE_MIB + 1) << 20) as usize, 0);
                v
            },
            "too_large",
        ),
        file(
            "video-over-the-media-limit",
            "trailer",
            "huge.mp4",
            &{
                let mut v = trailer.clone();
                v.resize(((MAX_MEDIA_MIB + 1) << 20) as usize, 0);
                v
            },
            "too_large",
        ),
    ];

    // Built by the ffmpeg command line.
    let audio = media.join("audio.m4a");
    ffmpeg("-f lavfi -i sine=duration=2 -c:a aac", &audio);
    local.push((
        "audio-only".into(),
        "trailer",
        audio.display().to_string(),
        "no_video_stream",
    ));
    let subs = media.join("subtitles.srt");
    std::fs::write(&subs, "1\n00:00:00,000 --> 00:00:02,000\nHello\n").unwrap();
    let subtitle_only = media.join("subtitles.mkv");
    ffmpeg(&format!("-i {} -c:s srt", subs.display()), &subtitle_only);
    local.push((
        "subtitle-only".into(),
        "trailer",
        subtitle_only.display().to_string(),
        "no_video_stream",
    ));
    let tail_index = media.join("tail-index.mp4");
    ffmpeg(
        "-f lavfi -i testsrc2=size=320x180:rate=25 -t 4 -c:v libx264 -preset ultrafast",
        &tail_index,
    );
    let whole = std::fs::read(&tail_index).unwrap();
    std::fs::write(&tail_index, &whole[..whole.len() / 2]).unwrap();
    local.push((
        "truncated-trailer-no-index".into(),
        "trailer",
        tail_index.display().to_string(),
        "corrupt_media",
    ));
    // A 16K header: the sample entry's width and height patched to 15360×8640.
    let mut huge = trailer.clone();
    let at = (0..huge.len() - 32)
        .find(|&i| &huge[i..i + 4] == b"avc1" && huge[i + 28..i + 30] == 640u16.to_be_bytes())
        .expect("avc1 sample entry");
    huge[at + 28..at + 30].copy_from_slice(&15_360u16.to_be_bytes());
    huge[at + 30..at + 32].copy_from_slice(&8_640u16.to_be_bytes());
    let sixteen_k = media.join("16k.mp4");
    std::fs::write(&sixteen_k, &huge).unwrap();
    local.push((
        "16k-header".into(),
        "trailer",
        sixteen_k.display().to_string(),
        "too_large",
    ));

    // Not regular files, or not there, or not inside the root.
    let fifo = media.join("fifo.jpg");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    local.push((
        "fifo".into(),
        "poster",
        fifo.display().to_string(),
        "not_a_file",
    ));
    let dir = media.join("folder.mp4");
    std::fs::create_dir(&dir).unwrap();
    local.push((
        "directory".into(),
        "trailer",
        dir.display().to_string(),
        "not_a_file",
    ));
    let missing = media.join("missing.jpg").display().to_string();
    local.push(("missing".into(), "poster", missing, "not_found"));
    let escape = media.join("zero.jpg");
    std::os::unix::fs::symlink("/dev/zero", &escape).unwrap();
    local.push((
        "symlink-to-dev-zero".into(),
        "poster",
        escape.display().to_string(),
        "outside_roots",
    ));
    local.push((
        "etc-passwd".into(),
        "poster",
        "/etc/passwd".into(),
        "outside_roots",
    ));

    for (id, kind, source, code) in local {
        out.push(Poison {
            body: job(&id, kind, &source),
            id,
            code,
        });
    }

    // Over HTTP, from the server on another loopback address (the only one allowed).
    let url = |path: &str| format!("http://{http}{path}");
    for (id, path, code) in [
        ("html-served-as-image", "/html.jpg", "unsupported_format"),
        ("http-404", "/missing.png", "http_status"),
        ("http-503", "/busy.png", "http_status"),
        ("redirect-to-private", "/to-private", "private_address"),
        ("redirect-to-localhost", "/to-localhost", "private_address"),
        ("redirect-to-file-scheme", "/to-file", "unsupported_source"),
        ("redirect-loop", "/loop", "too_many_redirects"),
        ("slow-drip", "/drip.png", "fetch_timeout"),
        ("claims-10-gb", "/claims.png", "too_large"),
        ("downloaded-bomb", "/bomb.png", "too_large"),
    ] {
        out.push(Poison {
            id: id.into(),
            body: job(id, "poster", &url(path)),
            code,
        });
    }
    let port = http.port();
    for (id, source, code) in [
        (
            "dns-name-to-loopback",
            format!("http://localhost:{port}/ok.png"),
            "private_address",
        ),
        (
            "loopback-literal",
            format!("http://127.0.0.1:{port}/ok.png"),
            "private_address",
        ),
        (
            "ipv4-mapped-loopback",
            format!("http://[::ffff:127.0.0.1]:{port}/ok.png"),
            "private_address",
        ),
        (
            "cloud-metadata",
            "http://169.254.169.254/latest/meta-data".into(),
            "private_address",
        ),
        (
            "closed-port",
            format!("http://{}:9/ok.png", http.ip()),
            "unreachable",
        ),
    ] {
        out.push(Poison {
            id: id.into(),
            body: job(id, "poster", &source),
            code,
        });
    }

    // Messages that are not jobs.
    let mut nested = String::new();
    for _ in 0..10_000 {
        nested.push('[');
    }
    let raw: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not-json",
            b"{\"version\": 1, \"this is\": not json".to_vec(),
            "job_not_json",
        ),
        (
            "invalid-utf8-in-title",
            {
                let mut v = br#"{"version":1,"job_id":"invalid-utf8-in-title","kind":"poster","source":"/x.jpg","film":{"title":"caf"#.to_vec();
                v.extend_from_slice(&[0xC3, 0x28, 0xFF]);
                v.extend_from_slice(br#""}}"#);
                v
            },
            "job_not_json",
        ),
        (
            "deeply-nested-json",
            format!(r#"{{"version":1,"job_id":"deeply-nested-json","film":{nested}"#).into_bytes(),
            "job_not_json",
        ),
        (
            "oversized-message",
            {
                let mut v = job("oversized-message", "poster", "/x.jpg");
                v.truncate(v.len() - 1);
                v.extend_from_slice(br#","padding":""#);
                v.extend(std::iter::repeat_n(b'a', 70 * 1024));
                v.extend_from_slice(br#""}"#);
                v
            },
            "job_too_large",
        ),
        (
            "version-2",
            br#"{"version":2,"job_id":"version-2"}"#.to_vec(),
            "job_unsupported_version",
        ),
        (
            "unknown-field",
            {
                let mut v: Value =
                    serde_json::from_slice(&job("unknown-field", "poster", "/x.jpg")).unwrap();
                v["priority"] = json!(9);
                serde_json::to_vec(&v).unwrap()
            },
            "job_malformed",
        ),
        (
            "relative-source",
            job("relative-source", "poster", "../../etc/passwd"),
            "job_invalid",
        ),
        (
            "control-chars-in-source",
            job("control-chars-in-source", "poster", "/media/a\u{0}b.jpg"),
            "job_invalid",
        ),
        (
            "file-url",
            job("file-url", "poster", "file:///etc/passwd"),
            "job_invalid",
        ),
        (
            "json-array",
            b"[1, 2, 3]".to_vec(),
            "job_unsupported_version",
        ),
    ];
    for (id, body, code) in raw {
        out.push(Poison {
            id: id.into(),
            body,
            code,
        });
    }
    out
}

/// The server's routes; `addr` is its own address (for redirects to itself).
fn route(path: &str, addr: SocketAddr) -> Reply {
    let redirect = |to: String| Reply::Full {
        status: 302,
        headers: vec![("Location", to)],
        body: Vec::new(),
    };
    let png_reply = |body: Vec<u8>| Reply::Full {
        status: 200,
        headers: vec![("Content-Type", "image/png".into())],
        body,
    };
    match path {
        "/html.jpg" => Reply::Full {
            status: 200,
            headers: vec![("Content-Type", "image/jpeg".into())],
            body: b"<!doctype html><title>Not Found</title><p>gone</p>".to_vec(),
        },
        "/busy.png" => Reply::Full {
            status: 503,
            headers: vec![("Retry-After", "1".into())],
            body: Vec::new(),
        },
        "/to-private" => redirect("http://10.255.255.1/poster.jpg".into()),
        "/to-localhost" => redirect(format!("http://localhost:{}/ok.png", addr.port())),
        "/to-file" => redirect("file:///etc/passwd".into()),
        "/loop" => redirect("/loop".into()),
        "/drip.png" => Reply::Drip {
            body: png(64, 64, 8, 2, 64),
            every: Duration::from_millis(500),
        },
        "/claims.png" => Reply::Claims {
            claimed: 10 << 30,
            body: png(64, 64, 8, 2, 1),
        },
        "/bomb.png" => png_reply(png(6_000, 6_000, 8, 0, 6_000)),
        _ => Reply::Full {
            status: 404,
            headers: Vec::new(),
            body: Vec::new(),
        },
    }
}

fn poster_job(id: &str, media: &Path) -> Vec<u8> {
    let to = media.join(format!("{id}.jpg"));
    std::fs::copy(
        common::root().join("fixtures/posters/duo_1000x1500.jpg"),
        &to,
    )
    .unwrap();
    job(id, "poster", &to.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_poison_kind_is_a_recorded_failure_with_its_code_and_the_worker_stays_bounded() {
    let _turn = SERIAL.lock().await;
    let db = TestDb::new().await;
    let mut broker = Broker::new("poison", 2).await;
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    let tmp = dir.path().join("tmp");
    for d in [&media, &tmp] {
        std::fs::create_dir(d).unwrap();
    }
    let media = media.canonicalize().unwrap();
    let (http, server) = serve("127.0.0.2", route).await;
    let corpus = corpus(&media, http);
    let kinds = corpus.len();
    assert!(kinds >= 30, "{kinds} kinds");

    let mut worker = WorkerProcess::start(
        &broker,
        &db.url,
        &media,
        &tmp,
        dir.path().join("worker.log"),
        &[
            ("REGARD_ALLOW_PRIVATE", "127.0.0.2/32".into()),
            ("REGARD_MAX_IMAGE_MIB", MAX_IMAGE_MIB.to_string()),
            (
                "REGARD_MAX_IMAGE_ALLOC_MIB",
                MAX_IMAGE_ALLOC_MIB.to_string(),
            ),
            ("REGARD_MAX_MEDIA_MIB", MAX_MEDIA_MIB.to_string()),
            ("REGARD_FETCH_TIMEOUT_SECONDS", "3".into()),
            ("REGARD_CONNECT_TIMEOUT_SECONDS", "2".into()),
        ],
    );
    worker.ready().await;

    // A good poster first: the models' own memory is then part of the baseline.
    broker
        .publish_as("warm-up", &poster_job("warm-up", &media))
        .await;
    let warm = final_events(&mut broker, &["warm-up".into()], Duration::from_secs(120)).await;
    assert_eq!(
        warm["warm-up"]["outcome"], "completed",
        "{:#}",
        warm["warm-up"]
    );
    let baseline = worker.status_mib("VmHWM:");

    for p in &corpus {
        broker.publish_as(&p.id, &p.body).await;
    }
    // And a good poster last: the worker still analyses after all of it.
    broker
        .publish_as("after", &poster_job("after", &media))
        .await;
    let mut ids: Vec<String> = corpus.iter().map(|p| p.id.clone()).collect();
    ids.push("after".into());
    let events = final_events(&mut broker, &ids, Duration::from_secs(300)).await;

    let mut wrong = Vec::new();
    for p in &corpus {
        let e = &events[&p.id];
        let outcome = e["outcome"].as_str().unwrap_or_default();
        if !matches!(outcome, "failed" | "malformed") || e["error_code"] != p.code {
            wrong.push(format!(
                "{}: expected {} got {outcome} {} ({})",
                p.id, p.code, e["error_code"], e["error"]
            ));
        }
        assert_eq!(e["dead_lettered"], true, "{}: {e:#}", p.id);
    }
    assert!(
        wrong.is_empty(),
        "{} of {kinds} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(
        events["after"]["outcome"], "completed",
        "{:#}",
        events["after"]
    );

    // Each one is in the ledger, failed or dead-lettered with the same code.
    let rows: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT job_id, status, error_code FROM regard.job")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let ledger: BTreeMap<String, (String, Option<String>)> =
        rows.into_iter().map(|(id, s, c)| (id, (s, c))).collect();
    for p in &corpus {
        let (status, code) = ledger
            .get(&p.id)
            .unwrap_or_else(|| panic!("{} has no ledger row", p.id));
        assert!(
            matches!(status.as_str(), "failed" | "dead_lettered"),
            "{}: {status}",
            p.id
        );
        assert_eq!(code.as_deref(), Some(p.code), "{}", p.id);
    }

    worker.assert_alive();
    assert_eq!(worker.http("/readyz").map(|r| r.0), Some(200));
    let peak = worker.status_mib("VmHWM:");
    let bound = baseline + MAX_IMAGE_MIB + MAX_IMAGE_ALLOC_MIB + SLACK_MIB;
    eprintln!(
        "poison: {kinds} kinds; worker VmHWM {baseline} MiB after the warm-up poster, \
         {peak} MiB after the corpus (bound {bound} MiB)"
    );
    assert!(peak <= bound, "peak RSS {peak} MiB over {bound} MiB");
    // The counter moves just after the event goes out.
    let until = Instant::now() + Duration::from_secs(10);
    while worker.metric("regard_dead_letters_total") != Some(kinds as f64) {
        assert!(
            Instant::now() < until,
            "dead letters counted: {:?} of {kinds}",
            worker.metric("regard_dead_letters_total")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    worker.signal("TERM");
    assert_eq!(
        worker.exit_code(Duration::from_secs(40)).await,
        Some(0),
        "{}",
        worker.log()
    );
    assert_eq!(
        temp_files(&tmp),
        Vec::<String>::new(),
        "temp files left behind"
    );
    // Every stderr line of the JSON-mode worker is a JSON record (no raw panic text).
    for line in worker.log().lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
    server.abort();
    broker.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_sigtermed_mid_download_leaves_no_temp_file() {
    let _turn = SERIAL.lock().await;
    let db = TestDb::new().await;
    let mut broker = Broker::new("tempfiles", 2).await;
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    let tmp = dir.path().join("tmp");
    for d in [&media, &tmp] {
        std::fs::create_dir(d).unwrap();
    }
    // A poster that takes minutes to arrive, one byte a second.
    let (http, server) = serve("127.0.0.2", |_, _| Reply::Drip {
        body: png(64, 64, 8, 2, 64),
        every: Duration::from_secs(1),
    })
    .await;
    let mut worker = WorkerProcess::start(
        &broker,
        &db.url,
        &media,
        &tmp,
        dir.path().join("worker.log"),
        &[
            ("REGARD_ALLOW_PRIVATE", "127.0.0.2/32".into()),
            // The job is handed back at this deadline, its download still in flight.
            ("REGARD_SHUTDOWN_DEADLINE", "2".into()),
        ],
    );
    worker.ready().await;
    broker
        .publish_as(
            "slow",
            &job("slow", "poster", &format!("http://{http}/slow.png")),
        )
        .await;
    let until = Instant::now() + Duration::from_secs(60);
    while temp_files(&tmp).is_empty() {
        worker.assert_alive();
        assert!(
            Instant::now() < until,
            "no download started:\n{}",
            worker.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.signal("TERM");
    assert_eq!(
        worker.exit_code(Duration::from_secs(30)).await,
        Some(0),
        "{}",
        worker.log()
    );
    assert_eq!(temp_files(&tmp), Vec::<String>::new(), "{}", worker.log());
    // No final event: the job was handed back, not failed.
    let more = tokio::time::timeout(Duration::from_millis(500), broker.results.next()).await;
    if let Ok(Some(Ok(d))) = more {
        let e: Value = serde_json::from_slice(&d.data).unwrap();
        assert_ne!(e["outcome"], "failed", "{e}");
    }
    server.abort();
    broker.cleanup().await;
}

/// `regard analyze` has no graceful shutdown of its own: SIGTERM ends it at once with exit 143,
/// and the download it had in flight is deleted first (`cli::exit_on_signals`). Without that
/// handler the signal's default action killed the process and left the temp file behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyze_sigtermed_mid_download_exits_143_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let (http, server) = serve("127.0.0.2", |_, _| Reply::Drip {
        body: png(64, 64, 8, 2, 64),
        every: Duration::from_secs(1),
    })
    .await;
    let log = dir.path().join("analyze.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_regard"))
        .current_dir(common::root())
        .args(["analyze", "--allow-private-urls"])
        .arg(format!("http://{http}/slow.png"))
        .env("TMPDIR", &tmp)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("regard analyze starts");
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let until = Instant::now() + Duration::from_secs(60);
    while temp_files(&tmp).is_empty() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "analyze exited ({status}) before its download began:\n{}",
                text()
            );
        }
        assert!(Instant::now() < until, "no download started:\n{}", text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let until = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < until,
            "analyze ignored SIGTERM:\n{}",
            text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        temp_files(&tmp),
        Vec::<String>::new(),
        "{status}:\n{}",
        text()
    );
    assert_eq!(status.code(), Some(143), "{status}:\n{}", text());
    server.abort();
}
