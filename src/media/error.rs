//! One error type for everything that can go wrong between a media source and decoded pixels
//! (fetching, recognising, decoding images and video). Each variant names its input; `code()`
//! is what the database stores and `is_retryable()` is what the queue acts on.

use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("{input}: not found")]
    NotFound { input: String },

    #[error("{input}: not a regular file ({kind})")]
    NotAFile { input: String, kind: &'static str },

    #[error("{input}: path is outside the allowed media roots")]
    OutsideRoots { input: String },

    #[error("{input}: unsupported source (only local paths and http/https URLs): {reason}")]
    UnsupportedSource { input: String, reason: String },

    #[error("{input}: unreachable: {reason}")]
    Unreachable { input: String, reason: String },

    #[error("{input}: no complete answer within {after:?}")]
    FetchTimeout { input: String, after: Duration },

    #[error("{input}: HTTP status {status}")]
    HttpStatus { input: String, status: u16 },

    #[error("{input}: more than {max} redirects")]
    TooManyRedirects { input: String, max: usize },

    #[error(
        "{input}: refused address {addr} (private, loopback, link-local or otherwise not public)"
    )]
    PrivateAddress { input: String, addr: IpAddr },

    #[error("{input}: larger than the limit of {limit} bytes")]
    TooLarge { input: String, limit: u64 },

    #[error("{input}: {width}×{height} pixels is over the limit ({limit})")]
    TooManyPixels {
        input: String,
        width: u32,
        height: u32,
        limit: String,
    },

    #[error("{input}: corrupt or truncated media: {reason}")]
    Corrupt { input: String, reason: String },

    #[error("{input}: unsupported format: {format}")]
    UnsupportedFormat { input: String, format: String },

    #[error("{input}: {source}")]
    Io {
        input: String,
        #[source]
        source: std::io::Error,
    },

    /// For the video sampler, which classifies its own failures: `code` is its stable code
    /// (e.g. "no_video_stream", "corrupt_media") and `retryable` its own judgement.
    #[error("{input}: {reason}")]
    Video {
        input: String,
        reason: String,
        code: &'static str,
        retryable: bool,
    },
}

impl MediaError {
    /// Stable snake_case code stored with a failed job. Never rename one: old rows keep it.
    pub fn code(&self) -> &'static str {
        match self {
            MediaError::NotFound { .. } => "not_found",
            MediaError::NotAFile { .. } => "not_a_file",
            MediaError::OutsideRoots { .. } => "outside_roots",
            MediaError::UnsupportedSource { .. } => "unsupported_source",
            MediaError::Unreachable { .. } => "unreachable",
            MediaError::FetchTimeout { .. } => "fetch_timeout",
            MediaError::HttpStatus { .. } => "http_status",
            MediaError::TooManyRedirects { .. } => "too_many_redirects",
            MediaError::PrivateAddress { .. } => "private_address",
            MediaError::TooLarge { .. } | MediaError::TooManyPixels { .. } => "too_large",
            MediaError::Corrupt { .. } => "corrupt_media",
            MediaError::UnsupportedFormat { .. } => "unsupported_format",
            MediaError::Io { .. } => "io",
            MediaError::Video { code, .. } => code,
        }
    }

    /// True when the same request may succeed later (network, server load); false when the
    /// content or the request itself is the problem.
    pub fn is_retryable(&self) -> bool {
        match self {
            MediaError::Unreachable { .. } | MediaError::FetchTimeout { .. } => true,
            MediaError::HttpStatus { status, .. } => {
                *status >= 500 || *status == 429 || *status == 408
            }
            MediaError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::StorageFull
                    | std::io::ErrorKind::OutOfMemory
            ),
            MediaError::Video { retryable, .. } => *retryable,
            MediaError::NotFound { .. }
            | MediaError::NotAFile { .. }
            | MediaError::OutsideRoots { .. }
            | MediaError::UnsupportedSource { .. }
            | MediaError::TooManyRedirects { .. }
            | MediaError::PrivateAddress { .. }
            | MediaError::TooLarge { .. }
            | MediaError::TooManyPixels { .. }
            | MediaError::Corrupt { .. }
            | MediaError::UnsupportedFormat { .. } => false,
        }
    }

    /// The input (path or URL) the error is about.
    pub fn input(&self) -> &str {
        match self {
            MediaError::NotFound { input }
            | MediaError::NotAFile { input, .. }
            | MediaError::OutsideRoots { input }
            | MediaError::UnsupportedSource { input, .. }
            | MediaError::Unreachable { input, .. }
            | MediaError::FetchTimeout { input, .. }
            | MediaError::HttpStatus { input, .. }
            | MediaError::TooManyRedirects { input, .. }
            | MediaError::PrivateAddress { input, .. }
            | MediaError::TooLarge { input, .. }
            | MediaError::TooManyPixels { input, .. }
            | MediaError::Corrupt { input, .. }
            | MediaError::UnsupportedFormat { input, .. }
            | MediaError::Io { input, .. }
            | MediaError::Video { input, .. } => input,
        }
    }

    pub(crate) fn io(input: &str, source: std::io::Error) -> MediaError {
        match source.kind() {
            std::io::ErrorKind::NotFound => MediaError::NotFound {
                input: input.to_owned(),
            },
            _ => MediaError::Io {
                input: input.to_owned(),
                source,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_errors_are_permanent_and_network_errors_retryable() {
        let input = "poster.jpg".to_owned();
        let corrupt = MediaError::Corrupt {
            input: input.clone(),
            reason: "truncated".into(),
        };
        assert_eq!(corrupt.code(), "corrupt_media");
        assert!(!corrupt.is_retryable());
        assert!(corrupt.to_string().contains("poster.jpg"));

        let status = |status| MediaError::HttpStatus {
            input: input.clone(),
            status,
        };
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(!status(404).is_retryable());
        assert!(!status(403).is_retryable());

        let timeout = MediaError::FetchTimeout {
            input: input.clone(),
            after: Duration::from_secs(3),
        };
        assert_eq!(timeout.code(), "fetch_timeout");
        assert!(timeout.is_retryable());

        let private = MediaError::PrivateAddress {
            input,
            addr: "10.0.0.1".parse().unwrap(),
        };
        assert_eq!(private.code(), "private_address");
        assert!(!private.is_retryable());
        assert!(private.to_string().contains("10.0.0.1"));
    }

    #[test]
    fn video_errors_keep_the_samplers_classification() {
        let e = MediaError::Video {
            input: "trailer.mp4".into(),
            reason: "no video stream (audio-only file)".into(),
            code: "no_video_stream",
            retryable: false,
        };
        assert_eq!(e.code(), "no_video_stream");
        assert!(!e.is_retryable());
        assert_eq!(
            e.to_string(),
            "trailer.mp4: no video stream (audio-only file)"
        );
    }

    #[test]
    fn missing_file_io_error_becomes_not_found() {
        let e = MediaError::io("a.png", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(e.code(), "not_found");
        assert_eq!(e.input(), "a.png");
    }
}
