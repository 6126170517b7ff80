//! Trailer frame sampling with FFmpeg (ffmpeg-next): frames at a fixed rate of presentation time,
//! converted once to upright RGB at a bounded size, produced lazily by an iterator.
//!
//! Cost model: decoding is the bulk of the work. The sampler tells the decoder, packet by packet,
//! which frames it may drop (`skip_frame = nonref`): a non-reference frame is only decoded when
//! it could be the first frame at or after a sample time. Reference frames are always decoded,
//! so skipping never changes which frame a sample gets (`schedule` holds the rule). When
//! samples are far apart and the container has a keyframe index, the demuxer seeks forward to the
//! keyframe before the next sample instead of decoding the gap.
//!
//! Memory: one decoder (frame threads hold `threads` frames), one scaler, one RGB frame; nothing
//! is queued. Bad input gives a [`VideoError`] naming the input; damaged packets are counted in
//! the [`DecodeReport`](crate::domain::DecodeReport) and skipped.
//!
//! Layout: `probe` opens the container and checks limits, `sampler` runs the packet loop,
//! `schedule` decides which frames are samples (pure), `convert` turns a frame into upright RGB
//! (`geometry` holds its pure size and rotation maths), `ffmpeg_log` routes FFmpeg's log.

mod convert;
mod ffmpeg_log;
mod geometry;
mod probe;
mod sampler;
mod schedule;

pub use self::ffmpeg_log::init_ffmpeg;
pub use self::geometry::{normalize_rotation, output_size, rotation_from_display_matrix};
pub use self::sampler::VideoSampler;

use crate::config::{AnalysisSettings, Limits};
use ffmpeg_next as ff;
use std::time::Instant;

/// Why a video could not be sampled.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("{input}: cannot read the file: {source}")]
    Io {
        input: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{input}: the file is empty (0 bytes)")]
    Empty { input: String },
    #[error(
        "{input}: MP4/MOV file without a `moov` index (incomplete upload, or cut before the index was written)"
    )]
    MissingIndex { input: String },
    #[error("{input}: not a readable video container: {reason}")]
    Unreadable { input: String, reason: String },
    #[error("{input}: no video stream (audio-only or data-only file)")]
    NoVideoStream { input: String },
    #[error("{input}: no decoder for video codec `{codec}`")]
    UnsupportedCodec { input: String, codec: String },
    #[error("{input}: video is {width}×{height}, larger than the {max} px per side accepted")]
    TooLarge {
        input: String,
        width: u32,
        height: u32,
        max: u32,
    },
    #[error("{input}: {count} packets in a row failed to decode (last: {last})")]
    TooManyDecodeErrors {
        input: String,
        count: u32,
        last: String,
    },
    #[error("{input}: {what} failed: {source}")]
    Ffmpeg {
        input: String,
        what: &'static str,
        #[source]
        source: ff::Error,
    },
    #[error("invalid sampler options: {0}")]
    InvalidOptions(String),
}

impl VideoError {
    /// Stable machine-readable code (results events, database, exit codes).
    pub fn code(&self) -> &'static str {
        match self {
            VideoError::Io { .. } => "io",
            VideoError::Empty { .. }
            | VideoError::MissingIndex { .. }
            | VideoError::Unreadable { .. }
            | VideoError::TooManyDecodeErrors { .. } => "corrupt_media",
            VideoError::NoVideoStream { .. } => "no_video_stream",
            VideoError::UnsupportedCodec { .. } => "unsupported_format",
            VideoError::TooLarge { .. } => "too_large",
            VideoError::Ffmpeg { .. } => "decoder_failed",
            VideoError::InvalidOptions(_) => "invalid_options",
        }
    }

    /// Whether trying the same file again later may succeed. Only transient resource or IO
    /// failures qualify: a broken file stays broken.
    pub fn is_retryable(&self) -> bool {
        match self {
            VideoError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::OutOfMemory
            ),
            VideoError::Ffmpeg { source, .. } => {
                matches!(source, ff::Error::Other { errno } if *errno == libc_enomem())
            }
            _ => false,
        }
    }
}

fn libc_enomem() -> i32 {
    // ENOMEM is 12 on every platform FFmpeg builds for.
    12
}

/// How to sample a video. Limits are data: the lead builds these from [`Limits`].
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerOptions {
    /// Samples per second of presentation time.
    pub sample_rate: f64,
    /// Cap on the analysed duration, in seconds from the first frame.
    pub max_duration_s: f64,
    /// Cap on the number of sampled frames.
    pub max_frames: u32,
    /// Streams wider or taller than this are refused before decoding.
    pub max_input_side: u32,
    /// Sampled frames are downscaled so that their long side is at most this.
    pub max_output_side: u32,
    /// Decoding stops at this instant; the report says so.
    pub deadline: Option<Instant>,
    /// Decoder threads.
    pub threads: usize,
    /// This many decoding failures in a row (rejected packets or damaged frames) end the
    /// sampling with an error instead of a partial result.
    pub max_consecutive_errors: u32,
    /// Let the decoder drop non-reference frames that cannot be a sample (exact; see the module
    /// notes). Off decodes every frame.
    pub skip_nonref: bool,
    /// Seek to the keyframe before the next sample when it is at least this far (seconds) past
    /// what was already read; `None` never seeks.
    pub seek_min_gap_s: Option<f64>,
}

impl Default for SamplerOptions {
    fn default() -> Self {
        SamplerOptions {
            sample_rate: 2.0,
            max_duration_s: 600.0,
            max_frames: 2_400,
            max_input_side: 4096,
            max_output_side: 1920,
            deadline: None,
            threads: 2,
            max_consecutive_errors: 300,
            skip_nonref: true,
            seek_min_gap_s: Some(3.0),
        }
    }
}

impl SamplerOptions {
    /// Options from the configured settings and limits; the deadline counts from `started`.
    pub fn from_config(settings: &AnalysisSettings, limits: &Limits, started: Instant) -> Self {
        SamplerOptions {
            sample_rate: settings.sample_rate,
            max_duration_s: limits.max_video_duration_s,
            max_frames: limits.max_video_frames,
            max_input_side: limits.max_video_side,
            deadline: Some(started + limits.analysis_deadline),
            ..SamplerOptions::default()
        }
    }

    fn validate(&self) -> Result<(), VideoError> {
        let bad = |m: &str| Err(VideoError::InvalidOptions(m.to_string()));
        if !(self.sample_rate.is_finite() && self.sample_rate > 0.0 && self.sample_rate <= 1000.0) {
            return bad("sample_rate must be in (0, 1000] per second");
        }
        if !(self.max_duration_s.is_finite() && self.max_duration_s > 0.0) {
            return bad("max_duration_s must be positive");
        }
        if self.max_input_side == 0 || self.max_output_side == 0 {
            return bad("max_input_side and max_output_side must be positive");
        }
        Ok(())
    }
}

/// What the container says about the video stream.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// Display size after rotation (and pixel aspect ratio), at source resolution.
    pub width: u32,
    pub height: u32,
    pub duration_s: Option<f64>,
    pub frame_rate: Option<f64>,
    /// FFmpeg codec name, e.g. "h264".
    pub codec: String,
    /// FFmpeg demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2".
    pub container: String,
    /// Clockwise rotation applied to decoded frames to show them upright: 0, 90, 180 or 270.
    pub rotation: i32,
}

/// One sampled frame, upright RGB.
#[derive(Debug, Clone)]
pub struct SampledFrame {
    /// Presentation time of this frame, in seconds from the first frame's.
    pub t: f64,
    /// Number of sample times this frame stands for (≥ 1). More than one when the source has no
    /// new frame for a sample time (frame rate below the sample rate, or a variable-rate gap):
    /// the frame is produced once and covers `slots` sampling intervals of screen time.
    pub slots: u32,
    pub image: image::RgbImage,
}

fn ffmpeg_error<'a>(
    input: &'a str,
    what: &'static str,
) -> impl FnOnce(ff::Error) -> VideoError + 'a {
    move |source| VideoError::Ffmpeg {
        input: input.to_string(),
        what,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_classify_failures() {
        let e = VideoError::TooLarge {
            input: "x.mp4".into(),
            width: 16384,
            height: 16384,
            max: 4096,
        };
        assert_eq!(e.code(), "too_large");
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("x.mp4"));
        let e = VideoError::Io {
            input: "x".into(),
            source: std::io::Error::from(std::io::ErrorKind::TimedOut),
        };
        assert!(e.is_retryable());
    }
}
