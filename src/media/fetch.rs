//! Getting media bytes onto local disk: local files under allowed roots, or HTTP(S) downloads
//! with size, time and redirect limits that never connect to private networks (SSRF).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use futures_util::StreamExt;
use ipnet::IpNet;
use reqwest::Url;
use reqwest::header::LOCATION;
use reqwest::redirect::Policy;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::error::MediaError;
use super::sniff::{MediaFormat, SNIFF_LEN, sniff};
use crate::config::Limits;

/// Where media may come from and how much of it.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// Local files must lie under one of these directories (after resolving symlinks and `..`).
    /// `None` accepts any local path: for the CLI, where the operator names the file.
    pub local_roots: Option<Vec<PathBuf>>,
    /// Networks reachable despite being private/loopback/link-local (e.g. `127.0.0.1/32` in
    /// tests, an internal image server in production). Empty: public addresses only.
    pub allow_private: Vec<IpNet>,
    pub limits: Limits,
    /// Directory for downloads; `None` uses the system temp directory.
    pub download_dir: Option<PathBuf>,
}

impl FetchPolicy {
    /// Any local path, public URLs only: what an operator at the command line gets.
    pub fn cli(limits: Limits) -> FetchPolicy {
        FetchPolicy {
            local_roots: None,
            allow_private: Vec::new(),
            limits,
            download_dir: None,
        }
    }
}

/// Media identified by content, held so that what is analysed is exactly what was hashed: a
/// local image in memory, a local video as a private copy, a download as a private temp file.
#[derive(Debug)]
pub struct FetchedMedia {
    /// The source as given (path or URL before redirects).
    pub source: String,
    /// The local file: the canonical path of a local image, or a private temp file (a download,
    /// or the copy of a local video made while hashing it).
    pub path: PathBuf,
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    pub format: MediaFormat,
    /// A local image's bytes as they were hashed: the file may change after the fetch.
    content: Option<Vec<u8>>,
    /// Keeps a temp file alive; deletes it on drop.
    download: Option<TempMedia>,
}

impl FetchedMedia {
    /// True when `path` is a private temp file that disappears with this value.
    pub fn is_download(&self) -> bool {
        self.download.is_some()
    }

    /// The whole content, as hashed (images are decoded from memory). Size was bounded when
    /// fetched.
    pub fn read_all(&self) -> Result<Cow<'_, [u8]>, MediaError> {
        if let Some(content) = &self.content {
            return Ok(Cow::Borrowed(content));
        }
        // Only private temp files are read again: nobody else writes them.
        std::fs::read(&self.path)
            .map(Cow::Owned)
            .map_err(|e| MediaError::io(&self.source, e))
    }
}

/// Temp files (downloads, private copies) alive in this process, so that exits that skip
/// destructors (a signal, `process::exit`) can still delete them: [`remove_temp_files`].
static LIVE_TEMP_FILES: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn live_temp_files() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    // A panic while holding the lock leaves a set of paths that is still right.
    LIVE_TEMP_FILES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Deletes every temp file of a download or private copy still alive; returns how many. For
/// the exit paths that skip destructors; later drops of their owners find nothing to delete.
pub fn remove_temp_files() -> usize {
    let paths = std::mem::take(&mut *live_temp_files());
    paths
        .iter()
        .filter(|p| std::fs::remove_file(p).is_ok())
        .count()
}

/// A private temp file registered in [`LIVE_TEMP_FILES`] while it lives.
#[derive(Debug)]
struct TempMedia {
    path: tempfile::TempPath,
}

impl TempMedia {
    /// A new empty temp file in `dir` (the system temp directory, `$TMPDIR`, when `None`).
    fn create(dir: Option<&Path>) -> std::io::Result<(std::fs::File, TempMedia)> {
        let temp = match dir {
            Some(dir) => tempfile::NamedTempFile::new_in(dir),
            None => tempfile::NamedTempFile::new(),
        }?;
        let (file, path) = temp.into_parts();
        live_temp_files().insert(path.to_path_buf());
        Ok((file, TempMedia { path }))
    }
}

impl Drop for TempMedia {
    fn drop(&mut self) {
        // The file itself goes when `path` drops, right after.
        live_temp_files().remove(&self.path.to_path_buf());
    }
}

#[derive(Debug, Clone)]
pub struct Fetcher {
    policy: FetchPolicy,
}

impl Fetcher {
    pub fn new(policy: FetchPolicy) -> Fetcher {
        Fetcher { policy }
    }

    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// Fetches `source`, a local path or an http(s) URL.
    pub async fn fetch(&self, source: &str) -> Result<FetchedMedia, MediaError> {
        match classify(source)? {
            Source::Local(path) => {
                let owned = source.to_owned();
                let policy = self.policy.clone();
                let after = self.policy.limits.fetch_timeout;
                let deadline = Instant::now() + after;
                let read = tokio::task::spawn_blocking(move || {
                    fetch_local(&owned, &path, &policy, deadline)
                });
                // A read that blocks for good (a stalled network mount) frees the slot anyway;
                // its thread finishes or stays blocked on its own, and drops what it read.
                tokio::time::timeout(after, read)
                    .await
                    .map_err(|_elapsed| MediaError::FetchTimeout {
                        input: source.to_owned(),
                        after,
                    })?
                    .map_err(|e| MediaError::Io {
                        input: source.to_owned(),
                        source: std::io::Error::other(format!("local read task failed: {e}")),
                    })?
            }
            Source::Http(url) => {
                let after = self.policy.limits.fetch_timeout;
                tokio::time::timeout(after, self.fetch_http(source, url))
                    .await
                    .map_err(|_elapsed| MediaError::FetchTimeout {
                        input: source.to_owned(),
                        after,
                    })?
            }
        }
    }

    async fn fetch_http(&self, source: &str, first: Url) -> Result<FetchedMedia, MediaError> {
        let max_redirects = self.policy.limits.max_redirects;
        let mut url = first;
        let mut redirects = 0;
        loop {
            let response = self.request(source, &url).await?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or(MediaError::HttpStatus {
                        input: source.to_owned(),
                        status: status.as_u16(),
                    })?;
                let next = url
                    .join(location)
                    .map_err(|e| MediaError::UnsupportedSource {
                        input: source.to_owned(),
                        reason: format!("redirect to an invalid URL {location:?}: {e}"),
                    })?;
                redirects += 1;
                if redirects > max_redirects {
                    return Err(MediaError::TooManyRedirects {
                        input: source.to_owned(),
                        max: max_redirects,
                    });
                }
                check_scheme(source, &next)?;
                url = next;
                continue;
            }
            if !status.is_success() {
                return Err(MediaError::HttpStatus {
                    input: source.to_owned(),
                    status: status.as_u16(),
                });
            }
            return self.download(source, response).await;
        }
    }

    /// One request, to an address we resolved and checked ourselves: the client is pinned to
    /// it, so a second DNS answer cannot swap in a private address (DNS rebinding).
    async fn request(&self, source: &str, url: &Url) -> Result<reqwest::Response, MediaError> {
        let unreachable = |reason: String| MediaError::Unreachable {
            input: source.to_owned(),
            reason,
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| unreachable(format!("no port for {url}")))?;
        let host = url
            .host_str()
            .ok_or_else(|| unreachable(format!("no host in {url}")))?;
        // IPv6 literals come bracketed ("[::1]").
        let literal: Option<IpAddr> = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok();
        let addrs: Vec<SocketAddr> = match literal {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| unreachable(format!("cannot resolve {host}: {e}")))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(unreachable(format!("{host} has no address")));
        }
        // Refuse if any answer is private: a name that mixes public and private answers is
        // either misconfigured or an attack, and neither deserves a request.
        if let Some(bad) = addrs.iter().find(|a| !self.address_allowed(a.ip())) {
            return Err(MediaError::PrivateAddress {
                input: source.to_owned(),
                addr: bad.ip(),
            });
        }
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(Policy::none())
            .connect_timeout(self.policy.limits.connect_timeout)
            .user_agent(concat!("regard/", env!("CARGO_PKG_VERSION")));
        if literal.is_none() {
            builder = builder.resolve_to_addrs(host, &addrs);
        }
        let client = builder
            .build()
            .map_err(|e| unreachable(format!("HTTP client: {}", error_chain(&e))))?;
        client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| self.transfer_error(source, e))
    }

    async fn download(
        &self,
        source: &str,
        response: reqwest::Response,
    ) -> Result<FetchedMedia, MediaError> {
        let max = self.policy.limits.max_media_bytes;
        let too_large = || MediaError::TooLarge {
            input: source.to_owned(),
            limit: max,
        };
        if response.content_length().is_some_and(|len| len > max) {
            return Err(too_large());
        }
        let (file, temp) = TempMedia::create(self.policy.download_dir.as_deref())
            .map_err(|e| MediaError::io(source, e))?;
        let max_image = self.policy.limits.max_image_bytes.min(max);
        let mut file = tokio::fs::File::from_std(file);
        let mut hasher = Sha256::new();
        let mut head = Vec::with_capacity(SNIFF_LEN);
        let mut total: u64 = 0;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.transfer_error(source, e))?;
            total += chunk.len() as u64;
            // Servers may lie about (or omit) Content-Length: count what actually arrives.
            if total > max {
                return Err(too_large());
            }
            if head.len() < SNIFF_LEN {
                let take = (SNIFF_LEN - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
            // An image is refused at its own, smaller limit as soon as it is recognised.
            if total > max_image && sniff(&head).is_some_and(MediaFormat::is_image) {
                return Err(MediaError::TooLarge {
                    input: source.to_owned(),
                    limit: max_image,
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| MediaError::io(source, e))?;
        }
        file.flush().await.map_err(|e| MediaError::io(source, e))?;
        drop(file);
        let format = recognise(source, total, &head)?;
        Ok(FetchedMedia {
            source: source.to_owned(),
            path: temp.path.to_path_buf(),
            bytes: total,
            sha256: hex::encode(hasher.finalize()),
            format,
            content: None,
            download: Some(temp),
        })
    }

    fn address_allowed(&self, ip: IpAddr) -> bool {
        let allow_listed = |ip: IpAddr| self.policy.allow_private.iter().any(|n| n.contains(&ip));
        if allow_listed(ip) || embedded_ipv4(ip).is_some_and(|v4| allow_listed(IpAddr::V4(v4))) {
            return true;
        }
        is_public(ip)
    }

    fn transfer_error(&self, source: &str, e: reqwest::Error) -> MediaError {
        if e.is_timeout() {
            let limits = &self.policy.limits;
            return MediaError::FetchTimeout {
                input: source.to_owned(),
                after: if e.is_connect() {
                    limits.connect_timeout
                } else {
                    limits.fetch_timeout
                },
            };
        }
        MediaError::Unreachable {
            input: source.to_owned(),
            reason: error_chain(&e),
        }
    }
}

enum Source {
    Local(PathBuf),
    Http(Url),
}

fn classify(source: &str) -> Result<Source, MediaError> {
    let unsupported = |reason: String| MediaError::UnsupportedSource {
        input: source.to_owned(),
        reason,
    };
    if source.is_empty() {
        return Err(unsupported("empty source".into()));
    }
    let lower = source.to_ascii_lowercase();
    if source.contains("://") || lower.starts_with("file:") {
        let url = Url::parse(source).map_err(|e| unsupported(format!("invalid URL: {e}")))?;
        check_scheme(source, &url)?;
        return Ok(Source::Http(url));
    }
    Ok(Source::Local(PathBuf::from(source)))
}

fn check_scheme(source: &str, url: &Url) -> Result<(), MediaError> {
    match url.scheme() {
        "http" | "https" => Ok(()),
        other => Err(MediaError::UnsupportedSource {
            input: source.to_owned(),
            reason: format!("scheme {other:?} is not fetched"),
        }),
    }
}

fn fetch_local(
    source: &str,
    path: &Path,
    policy: &FetchPolicy,
    deadline: Instant,
) -> Result<FetchedMedia, MediaError> {
    let io = |e| MediaError::io(source, e);
    let canonical = std::fs::canonicalize(path).map_err(io)?;
    if let Some(roots) = &policy.local_roots {
        // Roots are canonicalised too, so symlinked roots work and `..` or a symlink inside a
        // root cannot lead out of it. A root that does not exist admits nothing.
        let inside = roots
            .iter()
            .filter_map(|root| std::fs::canonicalize(root).ok())
            .any(|root| canonical.starts_with(root));
        if !inside {
            return Err(MediaError::OutsideRoots {
                input: source.to_owned(),
            });
        }
    }
    // Look before opening: opening a FIFO blocks until a writer comes, a device never ends.
    regular_file(source, &std::fs::symlink_metadata(&canonical).map_err(io)?)?;
    // Open the canonical path, the one that was checked, without blocking and without
    // following a symlink swapped in since; then check what was actually opened.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(&canonical)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::ENXIO) => MediaError::NotAFile {
                input: source.to_owned(),
                kind: "a special file",
            },
            _ => io(e),
        })?;
    let meta = file.metadata().map_err(io)?;
    regular_file(source, &meta)?;
    let limits = &policy.limits;
    let too_large = |limit: u64| MediaError::TooLarge {
        input: source.to_owned(),
        limit,
    };
    if meta.len() > limits.max_media_bytes {
        return Err(too_large(limits.max_media_bytes));
    }
    let timed_out = || MediaError::FetchTimeout {
        input: source.to_owned(),
        after: limits.fetch_timeout,
    };
    // Read at most one byte past the limit: the file may grow after the metadata call.
    let mut reader = file.take(limits.max_media_bytes.saturating_add(1));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut read = |buf: &mut [u8]| -> Result<usize, MediaError> {
        loop {
            if Instant::now() > deadline {
                return Err(timed_out());
            }
            match reader.read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => return other.map_err(io),
            }
        }
    };

    // The head decides where the bytes go.
    let mut head = Vec::with_capacity(SNIFF_LEN);
    while head.len() < SNIFF_LEN {
        let n = read(&mut buf[..SNIFF_LEN - head.len()])?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let format = recognise(source, head.len() as u64, &head)?;
    // What is hashed is what is analysed: an image stays in memory (it is decoded from there),
    // a video is copied to a private file while hashed (FFmpeg reads that copy). A file still
    // being written is then analysed as it was read, and stored under that content's key.
    let (limit, mut sink) = if format.is_image() {
        let limit = limits.max_image_bytes.min(limits.max_media_bytes);
        if meta.len() > limit {
            return Err(too_large(limit));
        }
        let mut memory = Vec::with_capacity(meta.len() as usize);
        memory.extend_from_slice(&head);
        (limit, Sink::Memory(memory))
    } else {
        let (mut file, temp) = TempMedia::create(policy.download_dir.as_deref()).map_err(io)?;
        file.write_all(&head).map_err(io)?;
        (
            limits.max_media_bytes,
            Sink::Copy(std::io::BufWriter::with_capacity(256 * 1024, file), temp),
        )
    };
    hasher.update(&head);
    let mut total = head.len() as u64;
    loop {
        let n = read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > limit {
            return Err(too_large(limit));
        }
        hasher.update(&buf[..n]);
        match &mut sink {
            Sink::Memory(memory) => memory.extend_from_slice(&buf[..n]),
            Sink::Copy(file, _) => file.write_all(&buf[..n]).map_err(io)?,
        }
    }
    let (path, content, download) = match sink {
        Sink::Memory(memory) => (canonical, Some(memory), None),
        Sink::Copy(file, temp) => {
            // Flushed to the page cache, where FFmpeg reads it; durability is not needed.
            file.into_inner().map_err(|e| io(e.into_error()))?;
            (temp.path.to_path_buf(), None, Some(temp))
        }
    };
    Ok(FetchedMedia {
        source: source.to_owned(),
        path,
        bytes: total,
        sha256: hex::encode(hasher.finalize()),
        format,
        content,
        download,
    })
}

/// Where a local file's bytes go while they are hashed.
enum Sink {
    Memory(Vec<u8>),
    Copy(std::io::BufWriter<std::fs::File>, TempMedia),
}

/// Refuses anything but a regular file, naming what it is.
fn regular_file(source: &str, meta: &std::fs::Metadata) -> Result<(), MediaError> {
    let t = meta.file_type();
    let kind = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "a special file"
    };
    Err(MediaError::NotAFile {
        input: source.to_owned(),
        kind,
    })
}

fn recognise(source: &str, total: u64, head: &[u8]) -> Result<MediaFormat, MediaError> {
    if total == 0 {
        return Err(MediaError::Corrupt {
            input: source.to_owned(),
            reason: "the file is empty".into(),
        });
    }
    sniff(head).ok_or_else(|| MediaError::UnsupportedFormat {
        input: source.to_owned(),
        format: "unrecognised content (neither a known image nor a video container)".into(),
    })
}

/// True for addresses on the public internet; false for loopback, private, link-local,
/// unique-local, CGNAT, multicast, unspecified, documentation/benchmark/reserved ranges, and
/// IPv6 forms that embed such an IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_ipv4(ip) {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0)) // discard-only
        }
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    !(a == 0 // "this network", including 0.0.0.0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // CGNAT
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 224) // multicast, reserved, broadcast
}

/// The IPv4 address inside IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and
/// NAT64 (64:ff9b::a.b.c.d) IPv6 addresses: each reaches that IPv4 host.
fn embedded_ipv4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let compatible =
        s[..6].iter().all(|&x| x == 0) && v6 != Ipv6Addr::UNSPECIFIED && v6 != Ipv6Addr::LOCALHOST;
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|&x| x == 0);
    (compatible || nat64).then_some(tail)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for addr in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip(addr)), "{addr} must be refused");
        }
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "192.169.0.1",
            "2a00:1450:4007:80e::200e",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip(addr)), "{addr} is public");
        }
    }

    #[test]
    fn allow_list_covers_mapped_forms_too() {
        let fetcher = Fetcher::new(FetchPolicy {
            allow_private: vec!["127.0.0.1/32".parse().unwrap()],
            ..FetchPolicy::cli(Limits::default())
        });
        assert!(fetcher.address_allowed(ip("127.0.0.1")));
        assert!(fetcher.address_allowed(ip("::ffff:127.0.0.1")));
        assert!(!fetcher.address_allowed(ip("127.0.0.2")));
        assert!(!fetcher.address_allowed(ip("10.0.0.1")));
        assert!(fetcher.address_allowed(ip("93.184.215.14")));
    }

    #[test]
    fn sources_are_classified_by_scheme() {
        assert!(matches!(classify("posters/a.jpg"), Ok(Source::Local(_))));
        assert!(matches!(
            classify("https://example.org/a.jpg"),
            Ok(Source::Http(_))
        ));
        for refused in [
            "file:///etc/passwd",
            "file:/etc/passwd",
            "ftp://x/a.jpg",
            "gopher://x",
            "",
        ] {
            let e = classify(refused).err().unwrap();
            assert_eq!(e.code(), "unsupported_source", "{refused}");
        }
    }
}
