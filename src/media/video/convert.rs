//! Decoded frame → upright RGB at the output size: one swscale pass (colour matrix and range
//! from the frame, pixel aspect ratio applied), then a rotation by copy when the stream asks for
//! one.

use super::VideoError;
use super::ffmpeg_error;
use super::geometry::output_size;
use ff::ffi;
use ffmpeg_next as ff;
use std::ffi::c_int;

/// Converts frames of one stream; the scaler is rebuilt only when the frame format or size
/// changes.
pub(super) struct FrameConverter {
    max_output_side: u32,
    /// Clockwise quarter turn that shows the stream upright.
    rotation: i32,
    scaler: Option<Scaler>,
}

struct Scaler {
    context: ff::software::scaling::Context,
    output: ff::frame::Video,
    key: (ff::format::Pixel, u32, u32),
}

// SAFETY: an SwsContext has no thread affinity; it is owned here and only used through
// `&mut self`, so moving it to another thread (e.g. a blocking pool) is sound.
unsafe impl Send for Scaler {}

impl FrameConverter {
    pub(super) fn new(max_output_side: u32, rotation: i32) -> Self {
        FrameConverter {
            max_output_side,
            rotation,
            scaler: None,
        }
    }

    /// `frame` as upright RGB, long side at most the output size.
    pub(super) fn convert(
        &mut self,
        frame: &ff::frame::Video,
        input_name: &str,
    ) -> Result<image::RgbImage, VideoError> {
        let fmt = frame.format();
        let (w, h) = (frame.width(), frame.height());
        let key = (fmt, w, h);
        if self.scaler.as_ref().is_none_or(|s| s.key != key) {
            let sar = f64::from(frame.aspect_ratio());
            let (ow, oh) = output_size(w, h, sar, self.max_output_side);
            let mut context = ff::software::scaling::Context::get(
                fmt,
                w,
                h,
                ff::format::Pixel::RGB24,
                ow,
                oh,
                ff::software::scaling::Flags::BILINEAR,
            )
            .map_err(ffmpeg_error(input_name, "creating the scaler"))?;
            set_colorspace(&mut context, frame);
            self.scaler = Some(Scaler {
                context,
                output: ff::frame::Video::new(ff::format::Pixel::RGB24, ow, oh),
                key,
            });
        }
        let scaler = self.scaler.as_mut().expect("scaler set above");
        scaler
            .context
            .run(frame, &mut scaler.output)
            .map_err(ffmpeg_error(input_name, "converting a frame to RGB"))?;
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
        Ok(match self.rotation {
            90 => image::imageops::rotate90(&image),
            180 => image::imageops::rotate180(&image),
            270 => image::imageops::rotate270(&image),
            _ => image,
        })
    }
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
