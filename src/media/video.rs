//! Trailer frame sampling with FFmpeg (ffmpeg-next): frames at a fixed rate of presentation time,
//! converted once to upright RGB at a bounded size, produced lazily by an iterator.
//!
//! Cost model: decoding is the bulk of the work. The sampler tells the decoder, packet by packet,
//! which frames it may drop (`skip_frame = nonref`): a non-reference frame is only decoded when
//! it could be the first frame at or after a sample time. Reference frames are always decoded,
//! so skipping never changes which frame a sample gets ([`SampleSchedule`] holds the rule). When
//! samples are far apart and the container has a keyframe index, the demuxer seeks forward to the
//! keyframe before the next sample instead of decoding the gap.
//!
//! Memory: one decoder (frame threads hold `threads` frames), one scaler, one RGB frame; nothing
//! is queued. Bad input gives a [`VideoError`] naming the input; damaged packets are counted in
//! the [`DecodeReport`] and skipped.

use crate::config::{AnalysisSettings, Limits};
use crate::domain::DecodeReport;
use ff::ffi;
use ffmpeg_next as ff;
use std::collections::BTreeSet;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Once;
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

/// Initialise FFmpeg once per process and route its log to `tracing` (warnings and errors, at
/// warn level, target `ffmpeg`) instead of stderr. Idempotent and thread-safe.
pub fn init_ffmpeg() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // `init` only registers devices/network on this FFmpeg; an error here would resurface
        // as an open failure naming the input, so it is logged rather than propagated.
        if let Err(e) = ff::init() {
            tracing::warn!(error = %e, "FFmpeg initialisation reported an error");
        }
        // SAFETY: plain FFI setters on global FFmpeg state, done once before any use.
        unsafe {
            ffi::av_log_set_level(ffi::AV_LOG_WARNING);
            ffi::av_log_set_callback(Some(log_to_tracing));
        }
    });
}

unsafe extern "C" fn log_to_tracing(
    avcl: *mut c_void,
    level: c_int,
    fmt: *const c_char,
    vl: *mut ffi::__va_list_tag,
) {
    if level > ffi::AV_LOG_WARNING {
        return;
    }
    let mut line = [0 as c_char; 1024];
    let mut print_prefix: c_int = 1;
    // SAFETY: FFmpeg hands us a live va_list for `fmt`; the buffer is ours and NUL-terminated by
    // av_log_format_line2, which truncates to the given size.
    let written = unsafe {
        ffi::av_log_format_line2(
            avcl,
            level,
            fmt,
            vl,
            line.as_mut_ptr(),
            line.len() as c_int,
            &mut print_prefix,
        )
    };
    if written < 0 {
        return;
    }
    // SAFETY: see above, the buffer holds a NUL-terminated string.
    let msg = unsafe { CStr::from_ptr(line.as_ptr()) }.to_string_lossy();
    tracing::warn!(target: "ffmpeg", level, "{}", msg.trim_end());
}

/// Which frames become samples, and which packets may be dropped by the decoder.
///
/// Sample `k` is the first frame whose presentation time is at or after `k / rate` (seconds from
/// the first frame). A packet must be fully decoded when it could be that frame for some pending
/// sample `j`: its time `p ≥ t(j)` with `j` the last sample time at or before `p`, and no packet
/// already sent for full decoding has a time in `[t(j), p)`. Everything else may be dropped if the
/// decoder finds it is not a reference frame. Decoders output frames in presentation order, so
/// this is exact: skipping never changes which frame a sample gets.
#[derive(Debug, Clone)]
pub(crate) struct SampleSchedule {
    /// Seconds per sample.
    interval: f64,
    /// Seconds per timestamp tick.
    tick: f64,
    /// Timestamp of the first frame: sample times count from it.
    origin: Option<i64>,
    /// Index of the first sample not produced yet.
    next: i64,
    /// Samples with an index at or past this lie beyond the duration cap.
    end: i64,
    /// Timestamps of packets sent for full decoding that may still matter.
    decodable: BTreeSet<i64>,
}

/// What to do with a decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameRole {
    /// Before the next sample time (or carries no timestamp): not a sample.
    Skip,
    /// A sample standing for this many sample times.
    Sample { slots: u32 },
}

/// Unreadable packets in a row after which the demuxer is taken to have hit the end of the
/// readable data (a cut file) rather than a damaged packet.
const MAX_DEMUX_ERRORS_IN_A_ROW: u32 = 16;

/// Bound on remembered packet timestamps (a long gap between samples with few frames decoded
/// cannot grow it without limit).
const MAX_REMEMBERED_PACKETS: usize = 4096;

impl SampleSchedule {
    pub(crate) fn new(sample_rate: f64, time_base: f64, max_duration_s: f64) -> Self {
        let end = (max_duration_s * sample_rate - 1e-9).ceil().max(0.0) as i64;
        SampleSchedule {
            interval: 1.0 / sample_rate,
            tick: time_base,
            origin: None,
            next: 0,
            end,
            decodable: BTreeSet::new(),
        }
    }

    /// Timestamp (ticks) of sample `k`: the smallest tick at or after `k / rate` seconds.
    fn sample_ts(&self, origin: i64, k: i64) -> i64 {
        origin + ((k as f64 * self.interval) / self.tick - 1e-6).ceil() as i64
    }

    /// Index of the last sample time at or before `ts`.
    fn slot_at(&self, origin: i64, ts: i64) -> i64 {
        let mut k = (((ts - origin) as f64 * self.tick) / self.interval).floor() as i64;
        while self.sample_ts(origin, k) > ts {
            k -= 1;
        }
        while self.sample_ts(origin, k + 1) <= ts {
            k += 1;
        }
        k
    }

    /// Seconds from the first frame.
    pub(crate) fn seconds(&self, ts: i64) -> f64 {
        (ts - self.origin.unwrap_or(ts)) as f64 * self.tick
    }

    /// Timestamp of the next sample, once the origin is known.
    pub(crate) fn origin_ts(&self) -> Option<i64> {
        self.origin
    }

    pub(crate) fn next_sample_ts(&self) -> Option<i64> {
        self.origin.map(|o| self.sample_ts(o, self.next))
    }

    /// All samples within the duration cap are produced.
    pub(crate) fn past_duration_cap(&self) -> bool {
        self.next >= self.end
    }

    /// Whether the packet with this presentation timestamp must be decoded in full.
    pub(crate) fn needs_full_decode(&mut self, pts: Option<i64>) -> bool {
        let (Some(origin), Some(p)) = (self.origin, pts) else {
            return true;
        };
        if p < self.sample_ts(origin, self.next) {
            return false;
        }
        let j = self.slot_at(origin, p);
        let from = self.sample_ts(origin, j);
        let better_known = self.decodable.range(from..).next().is_some_and(|&m| m <= p);
        if better_known {
            return false;
        }
        if self.decodable.len() >= MAX_REMEMBERED_PACKETS {
            self.decodable.pop_first();
        }
        self.decodable.insert(p);
        true
    }

    /// Decide what a decoded frame (in presentation order) is.
    pub(crate) fn on_frame(&mut self, ts: Option<i64>) -> FrameRole {
        let Some(ts) = ts else { return FrameRole::Skip };
        let origin = *self.origin.get_or_insert(ts);
        if ts < self.sample_ts(origin, self.next) || self.next >= self.end {
            return FrameRole::Skip;
        }
        let last = self.slot_at(origin, ts).min(self.end - 1);
        let slots = (last - self.next + 1) as u32;
        self.next = last + 1;
        let keep_from = self.sample_ts(origin, self.next);
        self.decodable = self.decodable.split_off(&keep_from);
        FrameRole::Sample { slots }
    }

    /// After a seek the decoder starts afresh: earlier decisions no longer hold.
    pub(crate) fn forget_packets(&mut self) {
        self.decodable.clear();
    }
}

/// Output size for a `width`×`height` picture with pixel aspect ratio `sar` (width/height of a
/// pixel, 1 for square pixels): display aspect kept, long side at most `max_side`, at least 1 px.
pub fn output_size(width: u32, height: u32, sar: f64, max_side: u32) -> (u32, u32) {
    let sar = if sar.is_finite() && sar > 0.0 {
        sar
    } else {
        1.0
    };
    let dw = width as f64 * sar;
    let dh = height as f64;
    let long = dw.max(dh);
    let scale = if long > max_side as f64 {
        max_side as f64 / long
    } else {
        1.0
    };
    let w = (dw * scale).round().max(1.0) as u32;
    let h = (dh * scale).round().max(1.0) as u32;
    (w, h)
}

/// Clockwise rotation (0, 90, 180, 270) that shows a frame upright, from an FFmpeg display
/// matrix (3×3, 16.16 fixed point except the last column). `av_display_rotation_get` gives the
/// counter-clockwise angle as `-atan2(m[1], m[0])`; the clockwise turn is its opposite. An
/// iPhone held upright writes `[0, 1, 0, -1, 0, 0, ...]`: 90° clockwise. Flips are ignored.
pub fn rotation_from_display_matrix(m: &[i32; 9]) -> i32 {
    let a = m[0] as f64 / 65536.0;
    let b = m[1] as f64 / 65536.0;
    let c = m[3] as f64 / 65536.0;
    let d = m[4] as f64 / 65536.0;
    let sx = a.hypot(c);
    let sy = b.hypot(d);
    if sx == 0.0 || sy == 0.0 {
        return 0;
    }
    normalize_rotation((b / sy).atan2(a / sx).to_degrees())
}

/// Snap an angle in degrees to the nearest quarter turn in [0, 360).
pub fn normalize_rotation(degrees: f64) -> i32 {
    if !degrees.is_finite() {
        return 0;
    }
    let quarter = (degrees / 90.0).round() as i64;
    (quarter.rem_euclid(4) * 90) as i32
}

/// Whether the bytes look like an ISO-BMFF (MP4/MOV) file, and if so whether it has a top-level
/// `moov` box. `None` when it does not look like ISO-BMFF at all.
pub(crate) fn iso_bmff_has_moov<R: Read + Seek>(reader: &mut R) -> Option<bool> {
    const KNOWN: [&[u8; 4]; 8] = [
        b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid",
    ];
    let len = reader.seek(SeekFrom::End(0)).ok()?;
    let mut pos = 0u64;
    // Bounded: a file of tiny boxes cannot keep us here.
    for i in 0..100_000 {
        if pos + 8 > len {
            return if i == 0 { None } else { Some(false) };
        }
        reader.seek(SeekFrom::Start(pos)).ok()?;
        let mut header = [0u8; 16];
        reader.read_exact(&mut header[..8]).ok()?;
        let kind: [u8; 4] = header[4..8].try_into().ok()?;
        if i == 0 && !KNOWN.contains(&&kind) {
            return None;
        }
        if &kind == b"moov" {
            return Some(true);
        }
        let size = match u32::from_be_bytes(header[..4].try_into().ok()?) {
            0 => return Some(false), // box runs to the end of the file
            1 => {
                reader.read_exact(&mut header[8..16]).ok()?;
                u64::from_be_bytes(header[8..16].try_into().ok()?)
            }
            n => n as u64,
        };
        if size < 8 {
            return Some(false);
        }
        pos = pos.saturating_add(size);
    }
    Some(false)
}

/// Where the sampler is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Reading packets and decoding.
    Reading,
    /// End of input sent to the decoder: draining its last frames.
    Draining,
    Done,
}

/// A lazily sampled video: iterate to get [`SampledFrame`]s in time order.
pub struct VideoSampler {
    input_name: String,
    opts: SamplerOptions,
    input: ff::format::context::Input,
    stream_index: usize,
    decoder: ff::decoder::Video,
    info: VideoInfo,
    report: DecodeReport,
    schedule: SampleSchedule,
    /// Seconds per timestamp tick of the video stream.
    tick: f64,
    stage: Stage,
    /// The decoder may have frames to give (a packet or end-of-input was sent since it last
    /// said it needs input).
    decoder_has_output: bool,
    frame: ff::frame::Video,
    scaler: Option<Scaler>,
    skipping: bool,
    produced: u32,
    consecutive_errors: u32,
    /// Presentation time of the last frame decoded, from the first frame, in seconds.
    last_frame_s: Option<f64>,
    /// Decode timestamp of the last packet read (where the demuxer is).
    last_read_ts: Option<i64>,
    seeks: u32,
    /// After a seek, frames shown before the keyframe (open-GOP leading frames) cannot decode
    /// cleanly; they are not samples and not damage either.
    seek_floor: Option<i64>,
    /// The sample time of the last forward seek (one per sample time).
    seeked_for: Option<i64>,
    /// Sample time, aim and attempt of a seek whose landing is not verified yet.
    seek_check: Option<(i64, i64, u32)>,
    reseeks: u32,
    video_packets: u64,
    droppable_packets: u64,
    demux_errors: u32,
    multi_slot_frames: u32,
    untimed_frames: u32,
    skip_enabled: bool,
}

struct Scaler {
    context: ff::software::scaling::Context,
    output: ff::frame::Video,
    key: (ff::format::Pixel, u32, u32),
}

// SAFETY: an SwsContext has no thread affinity; it is owned here and only used through
// `&mut self`, so moving it to another thread (e.g. a blocking pool) is sound.
unsafe impl Send for Scaler {}

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

impl VideoSampler {
    /// Open `path` (named `input_name` in errors and logs) and prepare the decoder. Refuses
    /// oversized streams before any frame is decoded.
    pub fn open(input_name: &str, path: &Path, opts: &SamplerOptions) -> Result<Self, VideoError> {
        opts.validate()?;
        init_ffmpeg();
        let name = input_name.to_string();
        let meta = std::fs::metadata(path).map_err(|source| VideoError::Io {
            input: name.clone(),
            source,
        })?;
        if meta.len() == 0 {
            return Err(VideoError::Empty { input: name });
        }

        let mut input = open_input(&name, path)?;
        // Headers first: a 16K stream is refused before FFmpeg probes (and decodes) anything.
        check_declared_sizes(&name, &input, opts.max_input_side)?;
        // SAFETY: the context is open and owned by `input`.
        let r = unsafe { ffi::avformat_find_stream_info(input.as_mut_ptr(), std::ptr::null_mut()) };
        if r < 0 {
            return Err(VideoError::Unreadable {
                input: name,
                reason: ff::Error::from(r).to_string(),
            });
        }

        let stream = input
            .streams()
            .filter(|s| s.parameters().medium() == ff::media::Type::Video)
            .filter(|s| {
                !s.disposition()
                    .contains(ff::format::stream::Disposition::ATTACHED_PIC)
            })
            .max_by_key(|s| {
                let p = s.parameters();
                // SAFETY: codecpar of a live stream.
                let (w, h) = unsafe { ((*p.as_ptr()).width, (*p.as_ptr()).height) };
                (w as i64) * (h as i64)
            })
            .ok_or_else(|| VideoError::NoVideoStream {
                input: name.clone(),
            })?;
        let stream_index = stream.index();
        let time_base = stream.time_base();
        let params = stream.parameters();
        let codec_id = params.id();
        // SAFETY: codecpar of a live stream.
        let (width, height, sar) = unsafe {
            let p = &*params.as_ptr();
            let sar = ff::Rational::from(p.sample_aspect_ratio);
            (p.width.max(0) as u32, p.height.max(0) as u32, sar)
        };
        if width > opts.max_input_side || height > opts.max_input_side {
            return Err(VideoError::TooLarge {
                input: name,
                width,
                height,
                max: opts.max_input_side,
            });
        }
        let codec_name = codec_id.name().to_string();
        if codec_id == ff::codec::Id::None || ff::decoder::find(codec_id).is_none() {
            return Err(VideoError::UnsupportedCodec {
                input: name,
                codec: codec_name,
            });
        }
        let rotation = stream_rotation(&stream);
        let frame_rate = [stream.avg_frame_rate(), stream.rate()]
            .into_iter()
            .find(|r| r.numerator() > 0 && r.denominator() > 0)
            .map(f64::from);
        let tick = f64::from(time_base);
        let duration_s = if stream.duration() > 0 {
            Some(stream.duration() as f64 * tick)
        } else if input.duration() > 0 {
            Some(input.duration() as f64 / ffi::AV_TIME_BASE as f64)
        } else {
            None
        };

        let mut context = ff::codec::context::Context::from_parameters(params)
            .map_err(ffmpeg_error(&name, "reading codec parameters"))?;
        let mut threading = ff::codec::threading::Config::kind(ff::codec::threading::Type::Frame);
        threading.count = opts.threads.max(1);
        context.set_threading(threading);
        // SAFETY: setting a plain field of an unopened codec context. The decoder refuses to
        // allocate frames larger than this, whatever later packets claim.
        unsafe {
            let side = opts.max_input_side as i64;
            (*context.as_mut_ptr()).max_pixels = side * side;
        }
        let mut decoder = context.decoder();
        decoder.set_packet_time_base(time_base);
        // Skipping pays only when most frames are not samples (e.g. 2 samples/s of 25 fps).
        let skip_enabled =
            opts.skip_nonref && frame_rate.is_some_and(|fps| fps >= 2.0 * opts.sample_rate);
        let decoder = decoder.video().map_err(|e| match e {
            ff::Error::DecoderNotFound => VideoError::UnsupportedCodec {
                input: name.clone(),
                codec: codec_name.clone(),
            },
            source => VideoError::Unreadable {
                input: name.clone(),
                reason: format!("cannot open the {codec_name} decoder: {source}"),
            },
        })?;

        // Only the chosen stream is demuxed: audio packets are not even read into memory.
        for mut s in input.streams_mut() {
            if s.index() != stream_index {
                // SAFETY: a field of a live stream; the demuxer checks it on each read.
                unsafe { (*s.as_mut_ptr()).discard = ffi::AVDiscard::AVDISCARD_ALL };
            }
        }

        let (dw, dh) = output_size(width, height, f64::from(sar).max(0.0), u32::MAX);
        let (dw, dh) = if rotation % 180 == 90 {
            (dh, dw)
        } else {
            (dw, dh)
        };
        let info = VideoInfo {
            width: dw,
            height: dh,
            duration_s,
            frame_rate,
            codec: codec_name,
            container: input.format().name().to_string(),
            rotation,
        };
        let report = DecodeReport::default();
        Ok(VideoSampler {
            input_name: name,
            schedule: SampleSchedule::new(opts.sample_rate, tick, opts.max_duration_s),
            opts: opts.clone(),
            input,
            stream_index,
            decoder,
            info,
            report,
            tick,
            stage: Stage::Reading,
            decoder_has_output: false,
            frame: ff::frame::Video::empty(),
            scaler: None,
            skipping: false,
            produced: 0,
            consecutive_errors: 0,
            last_frame_s: None,
            last_read_ts: None,
            seeks: 0,
            seek_floor: None,
            seeked_for: None,
            seek_check: None,
            reseeks: 0,
            video_packets: 0,
            droppable_packets: 0,
            demux_errors: 0,
            multi_slot_frames: 0,
            untimed_frames: 0,
            skip_enabled,
        })
    }

    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// What was skipped, cut or capped so far (complete once the iterator has ended).
    pub fn report(&self) -> &DecodeReport {
        &self.report
    }

    /// Seconds of the video that were looked at: up to the last decoded frame, within the cap.
    pub fn analysed_duration_s(&self) -> f64 {
        self.last_frame_s
            .unwrap_or(0.0)
            .min(self.opts.max_duration_s)
    }

    fn deadline_passed(&self) -> bool {
        self.opts.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn finish(&mut self) {
        if self.stage == Stage::Done {
            return;
        }
        self.stage = Stage::Done;
        if self.skip_enabled {
            self.report.notes.push(format!(
                "{} of {} video packets were marked droppable: non-reference frames that cannot \
                 be a sample were not decoded (skip_frame=nonref); sample times are exact",
                self.droppable_packets, self.video_packets
            ));
        }
        if self.seeks > 0 {
            self.report.notes.push(format!(
                "seeked {} times to the keyframe before a distant sample ({} went back one \
                 keyframe more)",
                self.seeks, self.reseeks
            ));
        }
        if self.multi_slot_frames > 0 {
            self.report.notes.push(format!(
                "{} frames stand for more than one sample time (no newer frame in between)",
                self.multi_slot_frames
            ));
        }
        if self.untimed_frames > 0 {
            self.report.notes.push(format!(
                "{} frames without a timestamp were ignored",
                self.untimed_frames
            ));
        }
    }

    fn count_failure(&mut self, what: String) -> Result<(), VideoError> {
        self.report.corrupt_packets += 1;
        self.consecutive_errors += 1;
        if self.consecutive_errors >= self.opts.max_consecutive_errors {
            return Err(VideoError::TooManyDecodeErrors {
                input: self.input_name.clone(),
                count: self.consecutive_errors,
                last: what,
            });
        }
        Ok(())
    }

    fn caps_reached(&self) -> bool {
        self.produced >= self.opts.max_frames || self.schedule.past_duration_cap()
    }

    /// The caps stopped sampling: `capped` only if the stream really goes on past them.
    fn probe_beyond_caps(&mut self) {
        let Some(next_ts) = self.schedule.next_sample_ts() else {
            return;
        };
        if self.stage == Stage::Reading {
            let mut packet = ff::Packet::empty();
            for _ in 0..10_000 {
                if self.deadline_passed() {
                    break;
                }
                match packet.read(&mut self.input) {
                    Ok(()) if packet.stream() == self.stream_index => {
                        if packet.pts().or(packet.dts()).is_some_and(|p| p >= next_ts) {
                            self.report.capped = true;
                            break;
                        }
                    }
                    Ok(()) => {}
                    Err(_) => break,
                }
            }
        } else if self.stage == Stage::Draining {
            // Input ended already; frames still inside the decoder may lie past the cap.
            while self.decoder.receive_frame(&mut self.frame).is_ok() {
                if self.frame.timestamp().is_some_and(|t| t >= next_ts) {
                    self.report.capped = true;
                    break;
                }
            }
        }
        if self.report.capped {
            let why = if self.produced >= self.opts.max_frames {
                format!("frame cap of {} samples", self.opts.max_frames)
            } else {
                format!("duration cap of {} s", self.opts.max_duration_s)
            };
            self.report.notes.push(format!("stopped at the {why}"));
        }
    }

    /// Index entry (keyframe) at or before `ts`, as its timestamp.
    fn keyframe_at_or_before(&mut self, ts: i64) -> Option<i64> {
        // SAFETY: the stream is live; the entry is read before any other call on the context.
        unsafe {
            let st = *(*self.input.as_ptr()).streams.add(self.stream_index);
            let entry =
                ffi::avformat_index_get_entry_from_timestamp(st, ts, ffi::AVSEEK_FLAG_BACKWARD);
            (!entry.is_null()).then(|| (*entry).timestamp)
        }
    }

    /// Seek the demuxer to the last keyframe at or before `ts` (stream ticks) and restart
    /// decoding. Demuxers differ on whether they compare presentation or decode times here;
    /// [`Self::went_back_after_seek`] catches a landing past the sample time.
    fn seek_to_keyframe(&mut self, ts: i64) -> bool {
        // SAFETY: reading the time base of a live stream, then pure arithmetic.
        let micros = unsafe {
            let st = *(*self.input.as_ptr()).streams.add(self.stream_index);
            let us = ffi::AVRational {
                num: 1,
                den: ffi::AV_TIME_BASE,
            };
            ffi::av_rescale_q(ts, (*st).time_base, us)
        };
        if let Err(e) = self.input.seek(micros, ..micros + 1) {
            tracing::debug!(input = %self.input_name, error = %e, "seek failed; decoding on");
            return false;
        }
        self.decoder.flush();
        self.schedule.forget_packets();
        self.decoder_has_output = false;
        self.last_read_ts = None;
        self.seek_floor = self.keyframe_at_or_before(ts);
        true
    }

    /// Seek forward when the keyframe before the next sample is far past what was read. Each
    /// sample time gets at most one forward seek; [`Self::went_back_after_seek`] verifies it landed early
    /// enough.
    fn maybe_seek(&mut self) {
        let (Some(min_gap), Some(target), Some(read)) = (
            self.opts.seek_min_gap_s,
            self.schedule.next_sample_ts(),
            self.last_read_ts,
        ) else {
            return;
        };
        if self.seeked_for.is_some_and(|t| t >= target)
            || ((target - read) as f64) * self.tick < min_gap
        {
            return;
        }
        let Some(keyframe_ts) = self.keyframe_at_or_before(target) else {
            return;
        };
        if ((keyframe_ts - read) as f64) * self.tick < min_gap {
            return;
        }
        self.seeked_for = Some(target);
        tracing::debug!(input = %self.input_name, read, target, keyframe_ts, "seeking forward");
        if self.seek_to_keyframe(target) {
            self.seeks += 1;
            self.seek_check = Some((target, keyframe_ts, 0));
        }
    }

    /// After a forward seek, the first clean frame must be at or before the sample time: the
    /// demuxer may land on a keyframe shown after it (index times can be decode times), and
    /// frames of the previous group shown in between would be missed. Then go back one keyframe
    /// (up to three times, then to the start) and decode from there.
    fn went_back_after_seek(&mut self, ts: i64) -> bool {
        let Some((target, aim, tries)) = self.seek_check.take() else {
            return false;
        };
        if ts <= target {
            return false;
        }
        self.reseeks += 1;
        let back = self.keyframe_at_or_before(aim - 1).filter(|_| tries < 3);
        match back {
            Some(back) if self.seek_to_keyframe(back) => {
                self.seek_check = Some((target, back, tries + 1));
            }
            _ => {
                let start = self.schedule.origin_ts().unwrap_or(i64::MIN / 2);
                if !self.seek_to_keyframe(start) {
                    self.report.notes.push(format!(
                        "could not seek back for the sample at {:.2} s; it may be late",
                        self.schedule.seconds(target)
                    ));
                }
            }
        }
        true
    }

    fn set_skip(&mut self, skip: bool) {
        if skip != self.skipping {
            let mode = if skip {
                ff::Discard::NonReference
            } else {
                ff::Discard::Default
            };
            // SAFETY: the decoder reads skip_frame per packet (frame threads copy it on submit).
            unsafe { (*self.decoder.as_mut_ptr()).skip_frame = mode.into() };
            self.skipping = skip;
        }
    }

    /// Read and send the next packet of the video stream; at the end, start draining.
    fn feed(&mut self) -> Result<(), VideoError> {
        let mut packet = ff::Packet::empty();
        loop {
            match packet.read(&mut self.input) {
                Ok(()) => {
                    self.demux_errors = 0;
                    if packet.stream() != self.stream_index {
                        continue;
                    }
                    self.last_read_ts = packet.dts().or(packet.pts()).or(self.last_read_ts);
                    let full = !self.skip_enabled || self.schedule.needs_full_decode(packet.pts());
                    self.set_skip(!full);
                    self.video_packets += 1;
                    self.droppable_packets += u64::from(!full);
                    match self.decoder.send_packet(&packet) {
                        Ok(()) => {}
                        Err(e) => self.count_failure(format!("packet rejected: {e}"))?,
                    }
                    self.decoder_has_output = true;
                    return Ok(());
                }
                Err(ff::Error::Eof) => {}
                // One damaged packet: demuxers resync past it. A run of them is a cut file
                // whose index promises packets the bytes no longer hold.
                Err(ff::Error::InvalidData) if self.demux_errors < MAX_DEMUX_ERRORS_IN_A_ROW => {
                    self.demux_errors += 1;
                    self.report.corrupt_packets += 1;
                    continue;
                }
                Err(e) => {
                    self.report.truncated = true;
                    self.report.notes.push(format!(
                        "demuxer stopped after {:.2} s of video: {e}",
                        self.last_frame_s.unwrap_or(0.0)
                    ));
                }
            }
            self.set_skip(false);
            // Sending end-of-input twice is harmless but not useful; errors here mean the
            // decoder is already drained.
            if let Err(e) = self.decoder.send_eof() {
                tracing::debug!(input = %self.input_name, error = %e, "decoder refused end of input");
            }
            self.stage = Stage::Draining;
            self.decoder_has_output = true;
            return Ok(());
        }
    }

    /// Handle one decoded frame; a sample when it is one.
    fn on_frame(&mut self) -> Result<Option<SampledFrame>, VideoError> {
        let ts = self.frame.timestamp().or(self.frame.pts());
        if self.frame.is_corrupt() || self.frame.has_decode_errors() {
            let leading = matches!((ts, self.seek_floor), (Some(t), Some(floor)) if t < floor);
            if !leading {
                self.count_failure("frame decoded with errors".to_string())?;
            }
            return Ok(None);
        }
        self.consecutive_errors = 0;
        if let Some(ts) = ts
            && self.went_back_after_seek(ts)
        {
            // This frame comes from the abandoned position.
            return Ok(None);
        }
        if ts.is_none() {
            self.untimed_frames += 1;
        }
        let role = self.schedule.on_frame(ts);
        if let Some(ts) = ts {
            self.last_frame_s = Some(self.schedule.seconds(ts));
        }
        let FrameRole::Sample { slots } = role else {
            return Ok(None);
        };
        let (w, h) = (self.frame.width(), self.frame.height());
        if w > self.opts.max_input_side || h > self.opts.max_input_side {
            return Err(VideoError::TooLarge {
                input: self.input_name.clone(),
                width: w,
                height: h,
                max: self.opts.max_input_side,
            });
        }
        if slots > 1 {
            self.multi_slot_frames += 1;
        }
        let image = self.convert()?;
        self.produced += 1;
        tracing::debug!(input = %self.input_name, t = self.last_frame_s, slots, "sample");
        Ok(Some(SampledFrame {
            t: self.last_frame_s.unwrap_or(0.0),
            slots,
            image,
        }))
    }

    /// The current frame as upright RGB at the output size: one swscale pass, then a rotation
    /// by copy when the stream asks for one.
    fn convert(&mut self) -> Result<image::RgbImage, VideoError> {
        let fmt = self.frame.format();
        let (w, h) = (self.frame.width(), self.frame.height());
        let key = (fmt, w, h);
        if self.scaler.as_ref().is_none_or(|s| s.key != key) {
            let sar = f64::from(self.frame.aspect_ratio());
            let (ow, oh) = output_size(w, h, sar, self.opts.max_output_side);
            let mut context = ff::software::scaling::Context::get(
                fmt,
                w,
                h,
                ff::format::Pixel::RGB24,
                ow,
                oh,
                ff::software::scaling::Flags::BILINEAR,
            )
            .map_err(ffmpeg_error(&self.input_name, "creating the scaler"))?;
            set_colorspace(&mut context, &self.frame);
            self.scaler = Some(Scaler {
                context,
                output: ff::frame::Video::new(ff::format::Pixel::RGB24, ow, oh),
                key,
            });
        }
        let scaler = self.scaler.as_mut().expect("scaler set above");
        scaler
            .context
            .run(&self.frame, &mut scaler.output)
            .map_err(ffmpeg_error(&self.input_name, "converting a frame to RGB"))?;
        let out = &scaler.output;
        let (ow, oh) = (out.width(), out.height());
        let stride = out.stride(0);
        let row = ow as usize * 3;
        let data = out.data(0);
        let mut pixels = Vec::with_capacity(row * oh as usize);
        for y in 0..oh as usize {
            pixels.extend_from_slice(&data[y * stride..y * stride + row]);
        }
        let image = image::RgbImage::from_raw(ow, oh, pixels).expect("buffer sized to the frame");
        Ok(match self.info.rotation {
            90 => image::imageops::rotate90(&image),
            180 => image::imageops::rotate180(&image),
            270 => image::imageops::rotate270(&image),
            _ => image,
        })
    }

    fn advance(&mut self) -> Result<Option<SampledFrame>, VideoError> {
        loop {
            if self.stage == Stage::Done {
                return Ok(None);
            }
            if self.deadline_passed() {
                self.report.deadline_hit = true;
                self.report.notes.push(format!(
                    "deadline reached after {:.2} s of video",
                    self.last_frame_s.unwrap_or(0.0)
                ));
                self.finish();
                return Ok(None);
            }
            if self.caps_reached() {
                self.probe_beyond_caps();
                self.finish();
                return Ok(None);
            }
            if self.decoder_has_output {
                match self.decoder.receive_frame(&mut self.frame) {
                    Ok(()) => {
                        if let Some(sample) = self.on_frame()? {
                            return Ok(Some(sample));
                        }
                        continue;
                    }
                    Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {
                        self.decoder_has_output = false;
                    }
                    Err(ff::Error::Eof) => {
                        self.check_truncation();
                        self.finish();
                        return Ok(None);
                    }
                    Err(e) => {
                        self.count_failure(format!("decoding failed: {e}"))?;
                        continue;
                    }
                }
            }
            match self.stage {
                Stage::Reading => {
                    self.maybe_seek();
                    self.feed()?;
                }
                // Draining and the decoder wants input: it has nothing more to give.
                Stage::Draining => {
                    self.check_truncation();
                    self.finish();
                    return Ok(None);
                }
                Stage::Done => return Ok(None),
            }
        }
    }

    /// The stream ended well before the duration its header declares.
    fn check_truncation(&mut self) {
        if self.report.truncated {
            return;
        }
        let (Some(declared), Some(last)) = (self.info.duration_s, self.last_frame_s) else {
            return;
        };
        let frame = self.info.frame_rate.map_or(0.1, |f| 1.0 / f);
        if last + 2.0 * frame + 1.0 < declared {
            self.report.truncated = true;
            self.report.notes.push(format!(
                "video ends at {last:.2} s but declares {declared:.2} s"
            ));
        }
    }
}

impl Iterator for VideoSampler {
    type Item = Result<SampledFrame, VideoError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.advance() {
            Ok(Some(frame)) => Some(Ok(frame)),
            Ok(None) => None,
            Err(e) => {
                self.report.notes.push(e.to_string());
                self.finish();
                Some(Err(e))
            }
        }
    }
}

fn open_input(name: &str, path: &Path) -> Result<ff::format::context::Input, VideoError> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| VideoError::Unreadable {
        input: name.to_string(),
        reason: "path contains a NUL byte".to_string(),
    })?;
    let mut ctx: *mut ffi::AVFormatContext = std::ptr::null_mut();
    // SAFETY: standard avformat_open_input call; on failure FFmpeg frees the context.
    let r = unsafe {
        ffi::avformat_open_input(
            &mut ctx,
            c_path.as_ptr(),
            std::ptr::null(),
            std::ptr::null_mut(),
        )
    };
    if r < 0 {
        let missing_moov = File::open(path)
            .ok()
            .and_then(|mut f| iso_bmff_has_moov(&mut f))
            == Some(false);
        return Err(if missing_moov {
            VideoError::MissingIndex {
                input: name.to_string(),
            }
        } else {
            VideoError::Unreadable {
                input: name.to_string(),
                reason: ff::Error::from(r).to_string(),
            }
        });
    }
    // SAFETY: the context was opened above; `Input` closes it on drop.
    Ok(unsafe { ff::format::context::Input::wrap(ctx) })
}

/// Refuse streams whose header declares a frame larger than allowed.
fn check_declared_sizes(
    name: &str,
    input: &ff::format::context::Input,
    max_side: u32,
) -> Result<(), VideoError> {
    for s in input.streams() {
        // SAFETY: codecpar of a live stream.
        let (w, h) = unsafe {
            let p = &*s.parameters().as_ptr();
            (p.width.max(0) as u32, p.height.max(0) as u32)
        };
        let cover_art = s
            .disposition()
            .contains(ff::format::stream::Disposition::ATTACHED_PIC);
        let video = s.parameters().medium() == ff::media::Type::Video && !cover_art;
        if video && (w > max_side || h > max_side) {
            return Err(VideoError::TooLarge {
                input: name.to_string(),
                width: w,
                height: h,
                max: max_side,
            });
        }
    }
    Ok(())
}

/// Clockwise rotation to show the stream upright: display matrix side data first, then the
/// legacy `rotate` tag.
fn stream_rotation(stream: &ff::format::stream::Stream) -> i32 {
    for side in stream.side_data() {
        if side.kind() == ff::codec::packet::side_data::Type::DisplayMatrix {
            let data = side.data();
            if data.len() >= 36 {
                let mut m = [0i32; 9];
                for (i, v) in m.iter_mut().enumerate() {
                    *v = i32::from_ne_bytes(data[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
                }
                return rotation_from_display_matrix(&m);
            }
        }
    }
    stream
        .metadata()
        .get("rotate")
        .and_then(|r| r.trim().parse::<f64>().ok())
        .map_or(0, normalize_rotation)
}

/// Use the frame's colour matrix and range (BT.709 for HD) rather than swscale's BT.601
/// limited-range default.
fn set_colorspace(context: &mut ff::software::scaling::Context, frame: &ff::frame::Video) {
    use ff::util::color::{Range, Space};
    let space = match frame.color_space() {
        Space::BT709 => ffi::SWS_CS_ITU709,
        Space::Unspecified if frame.height() >= 720 => ffi::SWS_CS_ITU709,
        Space::BT2020NCL | Space::BT2020CL => ffi::SWS_CS_BT2020,
        _ => ffi::SWS_CS_DEFAULT,
    };
    let full_range = c_int::from(frame.color_range() == Range::JPEG);
    // SAFETY: the scaler is live; the coefficient tables are static in libswscale. The call
    // only fails for formats it cannot adjust (then defaults stay, which is acceptable).
    unsafe {
        let table = ffi::sws_getCoefficients(space);
        let dst_table = ffi::sws_getCoefficients(ffi::SWS_CS_DEFAULT);
        ffi::sws_setColorspaceDetails(
            context.as_mut_ptr(),
            table,
            full_range,
            dst_table,
            1,
            0,
            1 << 16,
            1 << 16,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn schedule_25fps() -> SampleSchedule {
        // 2 samples/s, time base 1/12800 (what the mp4 muxer uses at 25 fps), 600 s cap.
        SampleSchedule::new(2.0, 1.0 / 12800.0, 600.0)
    }

    #[test]
    fn samples_are_the_first_frame_at_or_after_each_sample_time() {
        let mut s = schedule_25fps();
        let frame = 512; // ticks per frame at 25 fps
        let mut taken = vec![];
        for n in 0..50 {
            if let FrameRole::Sample { slots } = s.on_frame(Some(1000 + n * frame)) {
                assert_eq!(slots, 1);
                taken.push(n);
            }
        }
        // 0.5 s = frame 12.5 → frame 13 (0.52 s); 1.0 s = frame 25; 1.5 s → 38.
        assert_eq!(taken, vec![0, 13, 25, 38]);
    }

    #[test]
    fn a_frame_covering_several_sample_times_says_so() {
        let mut s = SampleSchedule::new(2.0, 0.001, 600.0);
        assert_eq!(s.on_frame(Some(0)), FrameRole::Sample { slots: 1 });
        // Next frame 1.7 s later: it is the first frame at or after 0.5, 1.0 and 1.5.
        assert_eq!(s.on_frame(Some(1700)), FrameRole::Sample { slots: 3 });
        assert_eq!(s.on_frame(Some(1900)), FrameRole::Skip);
        assert_eq!(s.on_frame(Some(2000)), FrameRole::Sample { slots: 1 });
    }

    #[test]
    fn the_duration_cap_bounds_samples_and_slots() {
        let mut s = SampleSchedule::new(2.0, 0.001, 1.2);
        assert_eq!(s.on_frame(Some(0)), FrameRole::Sample { slots: 1 });
        // Slots at 0.5 and 1.0 are within the cap, 1.5 and 2.0 are not.
        assert_eq!(s.on_frame(Some(2000)), FrameRole::Sample { slots: 2 });
        assert!(s.past_duration_cap());
        assert_eq!(s.on_frame(Some(2500)), FrameRole::Skip);
    }

    #[test]
    fn only_packets_that_can_be_samples_are_fully_decoded() {
        let mut s = schedule_25fps();
        assert!(
            s.needs_full_decode(Some(0)),
            "origin unknown: decode everything"
        );
        assert_eq!(s.on_frame(Some(0)), FrameRole::Sample { slots: 1 });
        // Decode order of a B-pyramid group: P(16) Bref(14) b(13) b(15), frames of 512 ticks;
        // sample 1 is at 0.5 s = 6400 ticks = frame 12.5.
        let f = |n: i64| Some(n * 512);
        assert!(!s.needs_full_decode(f(3)), "before the next sample time");
        assert!(
            s.needs_full_decode(f(16)),
            "first packet past the sample time"
        );
        assert!(
            s.needs_full_decode(f(14)),
            "earlier than the best candidate"
        );
        assert!(
            s.needs_full_decode(f(13)),
            "earlier still: this is the sample"
        );
        assert!(
            !s.needs_full_decode(f(15)),
            "a better candidate (13) is already decoded"
        );
        // Frames come out in presentation order: 13 is the sample.
        assert_eq!(s.on_frame(f(13)), FrameRole::Sample { slots: 1 });
        assert_eq!(s.on_frame(f(14)), FrameRole::Skip);
        // Packets between samples are droppable; the one at the next sample time is not.
        assert!(!s.needs_full_decode(f(20)));
        assert!(s.needs_full_decode(f(25)));
        assert!(!s.needs_full_decode(f(26)));
    }

    #[test]
    fn remembered_packets_stay_bounded() {
        let mut s = SampleSchedule::new(0.001, 0.001, 1e9);
        s.on_frame(Some(0));
        // Ever earlier packets, all candidates for the same far sample.
        for p in (1_000_000..1_010_000).rev() {
            s.needs_full_decode(Some(p));
        }
        assert!(s.decodable.len() <= MAX_REMEMBERED_PACKETS);
    }

    #[test]
    fn output_size_keeps_aspect_and_bounds_the_long_side() {
        assert_eq!(output_size(3840, 2160, 1.0, 1920), (1920, 1080));
        assert_eq!(output_size(853, 481, 1.0, 1920), (853, 481));
        assert_eq!(output_size(1080, 1920, 1.0, 960), (540, 960));
        // Anamorphic PAL DVD: 720×576 pixels shown at 16:9.
        assert_eq!(output_size(720, 576, 64.0 / 45.0, 4096), (1024, 576));
        assert_eq!(output_size(10_000, 1, 1.0, 100), (100, 1));
    }

    #[test]
    fn display_matrix_rotation_is_clockwise_and_snapped() {
        let one = 1 << 16;
        // What an iPhone held upright writes (ffprobe: "rotation of -90.00 degrees").
        let phone_upright = [0, one, 0, -one, 0, 0, 0, 0, 1 << 30];
        assert_eq!(rotation_from_display_matrix(&phone_upright), 90);
        // What FFmpeg 5.1 writes for `-metadata:s:v rotate=90` (its player turns it left).
        let ffmpeg51_rotate90 = [0, -one, 0, one, 0, 0, 0, 0, 1 << 30];
        assert_eq!(rotation_from_display_matrix(&ffmpeg51_rotate90), 270);
        let identity = [one, 0, 0, 0, one, 0, 0, 0, 1 << 30];
        assert_eq!(rotation_from_display_matrix(&identity), 0);
        let upside_down = [-one, 0, 0, 0, -one, 0, 0, 0, 1 << 30];
        assert_eq!(rotation_from_display_matrix(&upside_down), 180);
        assert_eq!(normalize_rotation(-90.0), 270);
        assert_eq!(normalize_rotation(89.0), 90);
        assert_eq!(normalize_rotation(f64::NAN), 0);
    }

    fn mp4_box(kind: &[u8; 4], payload: usize) -> Vec<u8> {
        let mut b = ((8 + payload) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.resize(8 + payload, 0);
        b
    }

    #[test]
    fn iso_bmff_without_moov_is_recognised() {
        let mut with = mp4_box(b"ftyp", 16);
        with.extend(mp4_box(b"mdat", 100));
        let mut without = with.clone();
        with.extend(mp4_box(b"moov", 40));
        assert_eq!(iso_bmff_has_moov(&mut Cursor::new(with)), Some(true));
        assert_eq!(
            iso_bmff_has_moov(&mut Cursor::new(without.clone())),
            Some(false)
        );
        // Cut in the middle of mdat: still no moov.
        without.truncate(60);
        assert_eq!(iso_bmff_has_moov(&mut Cursor::new(without)), Some(false));
        assert_eq!(
            iso_bmff_has_moov(&mut Cursor::new(b"\x1aE\xdf\xa3 matroska".to_vec())),
            None
        );
        assert_eq!(iso_bmff_has_moov(&mut Cursor::new(Vec::new())), None);
    }

    #[test]
    fn a_sampler_can_move_to_a_blocking_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<VideoSampler>();
        assert_send::<VideoError>();
    }

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
