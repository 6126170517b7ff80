//! Opening a video: the container, the stream to sample and its decoder, with the size limits
//! checked before anything is decoded, and the diagnosis of MP4 files cut before their index.

use super::geometry::{normalize_rotation, output_size, rotation_from_display_matrix};
use super::{SamplerOptions, VideoError, VideoInfo, ffmpeg_error};
use ff::ffi;
use ffmpeg_next as ff;
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// An open container with its chosen video stream and a decoder ready for its packets.
pub(super) struct OpenedVideo {
    pub input: ff::format::context::Input,
    pub stream_index: usize,
    pub decoder: ff::decoder::Video,
    pub info: VideoInfo,
    /// Seconds per timestamp tick of the video stream.
    pub tick: f64,
}

/// Open `path` (named `input_name` in errors) and prepare the decoder of its largest video
/// stream. Refuses oversized streams before any frame is decoded.
pub(super) fn open_video(
    input_name: &str,
    path: &Path,
    opts: &SamplerOptions,
) -> Result<OpenedVideo, VideoError> {
    let name = input_name.to_string();
    let meta = std::fs::metadata(path).map_err(|source| VideoError::Io {
        input: name.clone(),
        source,
    })?;
    if meta.len() == 0 {
        return Err(VideoError::Empty { input: name });
    }

    let mut input = open_input(&name, path, opts.deadline)?;
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
    Ok(OpenedVideo {
        input,
        stream_index,
        decoder,
        info,
        tick,
    })
}

/// The clock FFmpeg's interrupt callback reads: deadlines travel as milliseconds since this
/// instant in the callback's opaque pointer, so no allocation has to outlive the context.
static CLOCK: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

fn millis_since_clock(t: std::time::Instant) -> u64 {
    let start = *CLOCK.get_or_init(std::time::Instant::now);
    u64::try_from(t.saturating_duration_since(start).as_millis()).unwrap_or(u64::MAX)
}

/// FFmpeg asks this during blocking work (opening, probing, reading packets): a non-zero
/// answer makes the call give up with AVERROR_EXIT, so a pathological file cannot hold a slot
/// past the media deadline even inside one FFmpeg call.
unsafe extern "C" fn interrupt_at_deadline(opaque: *mut std::ffi::c_void) -> std::ffi::c_int {
    let deadline_ms = opaque as usize as u64;
    std::ffi::c_int::from(
        deadline_ms != 0 && millis_since_clock(std::time::Instant::now()) >= deadline_ms,
    )
}

fn open_input(
    name: &str,
    path: &Path,
    deadline: Option<std::time::Instant>,
) -> Result<ff::format::context::Input, VideoError> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| VideoError::Unreadable {
        input: name.to_string(),
        reason: "path contains a NUL byte".to_string(),
    })?;
    // SAFETY: a fresh context; avformat_open_input takes it over (and frees it on failure).
    let mut ctx: *mut ffi::AVFormatContext = unsafe { ffi::avformat_alloc_context() };
    if ctx.is_null() {
        return Err(VideoError::Unreadable {
            input: name.to_string(),
            reason: "out of memory".to_string(),
        });
    }
    if let Some(deadline) = deadline {
        // Non-zero even for a deadline at the clock's start (0 means "no deadline").
        let ms = millis_since_clock(deadline).max(1);
        // SAFETY: ctx is a valid, not yet opened context.
        unsafe {
            (*ctx).interrupt_callback.callback = Some(interrupt_at_deadline);
            (*ctx).interrupt_callback.opaque = usize::try_from(ms).unwrap_or(usize::MAX) as *mut _;
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// The clock starts at its first use: let some time pass on it, so that "a moment ago" is
    /// after its start.
    fn start_the_clock_in_the_past() {
        millis_since_clock(std::time::Instant::now());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    #[test]
    fn the_interrupt_callback_answers_once_the_deadline_passed() {
        start_the_clock_in_the_past();
        let now = std::time::Instant::now();
        let past = millis_since_clock(now).max(1);
        let future = millis_since_clock(now + std::time::Duration::from_secs(60));
        // SAFETY: the callback only reads its opaque value as a number.
        unsafe {
            assert_eq!(interrupt_at_deadline(past as usize as *mut _), 1);
            assert_eq!(interrupt_at_deadline(future as usize as *mut _), 0);
            assert_eq!(
                interrupt_at_deadline(std::ptr::null_mut()),
                0,
                "no deadline"
            );
        }
    }

    #[test]
    fn a_deadline_already_passed_stops_ffmpeg_before_it_reads_the_file() {
        ff::init().unwrap();
        start_the_clock_in_the_past();
        let trailer =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/trailers/t1_640x360.mp4");
        let late = Some(std::time::Instant::now() - std::time::Duration::from_millis(5));
        assert!(
            open_input("t1", &trailer, late).is_err(),
            "interrupted at once"
        );
        assert!(open_input("t1", &trailer, None).is_ok());
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
}
