//! Getting media bytes onto local disk: local files under allowed roots, or HTTP(S) downloads
//! with size, time and redirect limits that never connect to private networks (SSRF).

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

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

/// Media on local disk, identified by content.
#[derive(Debug)]
pub struct FetchedMedia {
    /// The source as given (path or URL before redirects).
    pub source: String,
    /// The local file: the canonical path of a local source, or a temp file for a download.
    pub path: PathBuf,
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    pub format: MediaFormat,
    /// Keeps a download alive; deletes it on drop.
    download: Option<tempfile::TempPath>,
}

impl FetchedMedia {
    /// True when `path` is a temp file that disappears with this value.
    pub fn is_download(&self) -> bool {
        self.download.is_some()
    }

    /// The whole content (images are decoded from memory). Size was bounded when fetched.
    pub fn read_all(&self) -> Result<Vec<u8>, MediaError> {
        std::fs::read(&self.path).map_err(|e| MediaError::io(&self.source, e))
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
                let roots = self.policy.local_roots.clone();
                let max_bytes = self.policy.limits.max_media_bytes;
                tokio::task::spawn_blocking(move || {
                    fetch_local(&owned, &path, roots.as_deref(), max_bytes)
                })
                .await
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
        let temp = match &self.policy.download_dir {
            Some(dir) => tempfile::NamedTempFile::new_in(dir),
            None => tempfile::NamedTempFile::new(),
        }
        .map_err(|e| MediaError::io(source, e))?;
        let (file, temp_path) = temp.into_parts();
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
            path: temp_path.to_path_buf(),
            bytes: total,
            sha256: hex::encode(hasher.finalize()),
            format,
            download: Some(temp_path),
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
    roots: Option<&[PathBuf]>,
    max_bytes: u64,
) -> Result<FetchedMedia, MediaError> {
    let io = |e| MediaError::io(source, e);
    let canonical = std::fs::canonicalize(path).map_err(io)?;
    if let Some(roots) = roots {
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
    // Open the canonical path, the one that was checked, not the name given.
    let file = std::fs::File::open(&canonical).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(MediaError::NotAFile {
            input: source.to_owned(),
        });
    }
    let too_large = || MediaError::TooLarge {
        input: source.to_owned(),
        limit: max_bytes,
    };
    if meta.len() > max_bytes {
        return Err(too_large());
    }
    // Read at most one byte past the limit: the file may grow after the metadata call.
    let mut reader = file.take(max_bytes.saturating_add(1));
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(SNIFF_LEN);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        total += n as u64;
        if head.len() < SNIFF_LEN {
            let take = (SNIFF_LEN - head.len()).min(n);
            head.extend_from_slice(&buf[..take]);
        }
        hasher.update(&buf[..n]);
    }
    if total > max_bytes {
        return Err(too_large());
    }
    let format = recognise(source, total, &head)?;
    Ok(FetchedMedia {
        source: source.to_owned(),
        path: canonical,
        bytes: total,
        sha256: hex::encode(hasher.finalize()),
        format,
        download: None,
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
