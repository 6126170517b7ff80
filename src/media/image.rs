//! Still images: JPEG, PNG and WebP bytes to upright 8-bit RGB, refusing oversize images before
//! the decoder allocates anything and turning every decoder failure (even a panic) into an error.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::metadata::Orientation;
use image::{
    ColorType, DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, RgbImage,
};

use super::error::MediaError;
use super::sniff::{MediaFormat, sniff};
use crate::config::Limits;

/// An image ready for the detector: upright (EXIF orientation applied), 8-bit RGB, alpha
/// composited on white.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    pub image: RgbImage,
    /// "jpeg", "png" or "webp" (see [`MediaFormat::name`]).
    pub format: &'static str,
    /// Width after orientation.
    pub width: u32,
    /// Height after orientation.
    pub height: u32,
}

/// Decodes `bytes` (named `input_name` in errors) within `limits`.
pub fn decode_image(
    input_name: &str,
    bytes: &[u8],
    limits: &Limits,
) -> Result<DecodedImage, MediaError> {
    let format = match sniff(bytes) {
        Some(format) => format,
        None if bytes.is_empty() => return Err(corrupt(input_name, "the file is empty")),
        None => {
            return Err(MediaError::UnsupportedFormat {
                input: input_name.to_owned(),
                format: "unrecognised content (not a JPEG, PNG or WebP image)".into(),
            });
        }
    };
    let image_format = match format {
        MediaFormat::Jpeg => ImageFormat::Jpeg,
        MediaFormat::Png => ImageFormat::Png,
        MediaFormat::WebP => ImageFormat::WebP,
        other => {
            let what = if other.is_video() {
                "video container"
            } else {
                "image"
            };
            return Err(MediaError::UnsupportedFormat {
                input: input_name.to_owned(),
                format: format!("{} {what}, not a still image regard decodes", other.name()),
            });
        }
    };
    if bytes.len() as u64 > limits.max_image_bytes {
        return Err(MediaError::TooLarge {
            input: input_name.to_owned(),
            limit: limits.max_image_bytes,
        });
    }
    // Our own header reading runs before any decoder sees the data, so a hostile header cannot
    // make a decoder allocate; the decoder's own limits are the second line.
    if let Some((width, height)) = header_dimensions(format, bytes) {
        check_dimensions(input_name, width, height, limits)?;
    }
    // The JPEG decoder is lenient and paints missing scan data grey; a half-downloaded poster
    // must fail instead of being measured.
    if format == MediaFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(corrupt(
            input_name,
            "truncated JPEG (no end-of-image marker after the scan)",
        ));
    }

    let (image, width, height) = without_panics(input_name, || {
        decode_with_limits(input_name, bytes, image_format, limits)
    })?;
    Ok(DecodedImage {
        image,
        format: format.name(),
        width,
        height,
    })
}

/// Runs a decoder, turning a panic on hostile data into a `corrupt_media` error. (The panic
/// hook still prints the message; the worker stays up.)
fn without_panics<T>(
    input_name: &str,
    decode: impl FnOnce() -> Result<T, MediaError>,
) -> Result<T, MediaError> {
    match catch_unwind(AssertUnwindSafe(decode)) {
        Ok(result) => result,
        Err(panic) => {
            let message = crate::panics::message(panic.as_ref());
            Err(corrupt(
                input_name,
                &format!("the decoder failed on this data: {message}"),
            ))
        }
    }
}

fn decode_with_limits(
    input_name: &str,
    bytes: &[u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<(RgbImage, u32, u32), MediaError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(limits.max_image_side);
    decoder_limits.max_image_height = Some(limits.max_image_side);
    decoder_limits.max_alloc = Some(limits.max_image_alloc);
    reader.limits(decoder_limits);

    let mut decoder = reader
        .into_decoder()
        .map_err(|e| image_error(input_name, e, None))?;
    let (width, height) = decoder.dimensions();
    check_dimensions(input_name, width, height, limits)?;
    // A broken EXIF block should not cost the whole poster: fall back to "as stored".
    let orientation = decoder.orientation().unwrap_or_else(|e| {
        tracing::warn!(input = input_name, error = %e, "unreadable EXIF orientation, using none");
        Orientation::NoTransforms
    });
    // The decoder limits cover the decoders' own allocations, not the buffer the image is
    // decoded into, nor our copies: those are counted here, before anything is allocated.
    let needed = pixel_memory(
        decoder.total_bytes(),
        decoder.color_type(),
        u64::from(width) * u64::from(height),
        orientation,
    );
    if needed > limits.max_image_alloc {
        return Err(MediaError::TooManyPixels {
            input: input_name.to_owned(),
            width,
            height,
            limit: format!(
                "decoding needs {} MiB, over the {} MiB allowed",
                needed.div_ceil(1 << 20),
                limits.max_image_alloc >> 20
            ),
        });
    }
    let mut image = DynamicImage::from_decoder(decoder)
        .map_err(|e| image_error(input_name, e, Some((width, height))))?;
    image.apply_orientation(orientation);
    let rgb = flatten_on_white(image);
    let (width, height) = rgb.dimensions();
    Ok((rgb, width, height))
}

/// Refuses images over the side or pixel-count limits.
pub fn check_dimensions(
    input_name: &str,
    width: u32,
    height: u32,
    limits: &Limits,
) -> Result<(), MediaError> {
    let too_large = |limit: String| MediaError::TooManyPixels {
        input: input_name.to_owned(),
        width,
        height,
        limit,
    };
    if width == 0 || height == 0 {
        return Err(corrupt(
            input_name,
            &format!("header declares a {width}×{height} image"),
        ));
    }
    if width.max(height) > limits.max_image_side {
        return Err(too_large(format!(
            "{} pixels per side",
            limits.max_image_side
        )));
    }
    if u64::from(width) * u64::from(height) > limits.max_image_pixels {
        return Err(too_large(format!("{} pixels", limits.max_image_pixels)));
    }
    Ok(())
}

/// The most pixel memory decoding holds at once, in bytes: the decoded buffer (`decoded`
/// bytes) plus either its rotated copy or what converting it to 8-bit RGB allocates (an
/// 8-bit RGBA copy first when the alpha comes in another layout), whichever is larger.
fn pixel_memory(decoded: u64, color: ColorType, pixels: u64, orientation: Orientation) -> u64 {
    let rotated = match orientation {
        Orientation::Rotate90
        | Orientation::Rotate270
        | Orientation::Rotate90FlipH
        | Orientation::Rotate270FlipH => decoded,
        _ => 0,
    };
    let rgb = 3 * pixels;
    let converted = match color {
        ColorType::Rgb8 => 0,
        ColorType::Rgba8 => rgb,
        c if c.has_alpha() => 4 * pixels + rgb,
        _ => rgb,
    };
    decoded + rotated.max(converted)
}

/// Composites transparent pixels on white (posters with alpha are meant to be seen on a page)
/// and converts any depth or colour model to 8-bit RGB, reusing the buffer when it already is.
fn flatten_on_white(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let over_white = |c: u8| {
            let a = u32::from(a);
            ((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8
        };
        image::Rgb([over_white(r), over_white(g), over_white(b)])
    })
}

fn corrupt(input_name: &str, reason: &str) -> MediaError {
    MediaError::Corrupt {
        input: input_name.to_owned(),
        reason: reason.to_owned(),
    }
}

fn image_error(input_name: &str, error: ImageError, dimensions: Option<(u32, u32)>) -> MediaError {
    match error {
        ImageError::Limits(limit) => {
            let (width, height) = dimensions.unwrap_or((0, 0));
            MediaError::TooManyPixels {
                input: input_name.to_owned(),
                width,
                height,
                limit: format!("decoder limits: {limit}"),
            }
        }
        ImageError::Unsupported(what) => MediaError::UnsupportedFormat {
            input: input_name.to_owned(),
            format: what.to_string(),
        },
        other => corrupt(input_name, &other.to_string()),
    }
}

/// True when an end-of-image marker follows the first scan. 0xFF 0xD9 cannot occur inside
/// entropy-coded data (0xFF is stuffed there), and EXIF thumbnails sit before the first scan.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let Some(scan) = jpeg_walk(bytes, |_, _| None::<()>).err() else {
        return false;
    };
    bytes[scan..].windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Walks JPEG marker segments from the start, calling `visit(marker, offset)` on each; stops with
/// `Ok(Some(..))` when `visit` returns a value, `Err(offset)` at the first scan (SOS), `Ok(None)`
/// when the data ends or is malformed first.
fn jpeg_walk<T>(
    bytes: &[u8],
    mut visit: impl FnMut(u8, usize) -> Option<T>,
) -> Result<Option<T>, usize> {
    let be16 = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|s| usize::from(u16::from_be_bytes([s[0], s[1]])))
    };
    let mut at = 2;
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        if bytes.get(at) != Some(&0xFF) {
            return Ok(None);
        }
        let Some(&marker) = bytes.get(at + 1) else {
            return Ok(None);
        };
        match marker {
            0xD0..=0xD7 | 0x01 => at += 2,
            0xD9 => return Ok(None),
            0xDA => return Err(at),
            _ => {
                if let Some(found) = visit(marker, at) {
                    return Ok(Some(found));
                }
                let Some(len) = be16(at + 2) else {
                    return Ok(None);
                };
                at += 2 + len;
            }
        }
    }
}

/// Width and height as the file header declares them, read without decoding. `None` when the
/// header is too short or malformed (the decoder then reports the corruption).
pub fn header_dimensions(format: MediaFormat, bytes: &[u8]) -> Option<(u32, u32)> {
    let be32 = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    };
    let be16 = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|s| u32::from(u16::from_be_bytes([s[0], s[1]])))
    };
    let le = |at: usize, n: usize| {
        bytes.get(at..at + n).map(|s| {
            s.iter()
                .rev()
                .fold(0u32, |acc, &b| (acc << 8) | u32::from(b))
        })
    };
    match format {
        MediaFormat::Png => {
            if bytes.get(12..16) != Some(b"IHDR") {
                return None;
            }
            Some((be32(16)?, be32(20)?))
        }
        MediaFormat::Jpeg => {
            // Start-of-frame markers are C0..CF except DHT (C4), JPG (C8) and DAC (CC).
            let is_sof = |m: u8| (0xC0..=0xCF).contains(&m) && !matches!(m, 0xC4 | 0xC8 | 0xCC);
            jpeg_walk(bytes, |marker, at| {
                is_sof(marker).then(|| Some((be16(at + 7)?, be16(at + 5)?)))
            })
            .ok()
            .flatten()
            .flatten()
        }
        MediaFormat::WebP => match bytes.get(12..16)? {
            b"VP8 " => {
                if bytes.get(23..26) != Some(&[0x9D, 0x01, 0x2A]) {
                    return None;
                }
                Some((le(26, 2)? & 0x3FFF, le(28, 2)? & 0x3FFF))
            }
            b"VP8L" => {
                if bytes.get(20) != Some(&0x2F) {
                    return None;
                }
                let bits = le(21, 4)?;
                Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
            }
            b"VP8X" => Some((le(24, 3)? + 1, le(27, 3)? + 1)),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        v.extend_from_slice(&width.to_be_bytes());
        v.extend_from_slice(&height.to_be_bytes());
        v.extend_from_slice(&[8, 2, 0, 0, 0]);
        v
    }

    #[test]
    fn header_dimensions_of_each_format() {
        assert_eq!(
            header_dimensions(MediaFormat::Png, &png_header(640, 480)),
            Some((640, 480))
        );
        // SOI, an APP0 of 16 bytes, then SOF0 (precision 8, height 300, width 200).
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
        jpeg.extend_from_slice(&[0; 14]);
        jpeg.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, 0x01, 0x2C, 0x00, 0xC8, 0x03]);
        assert_eq!(
            header_dimensions(MediaFormat::Jpeg, &jpeg),
            Some((200, 300))
        );
        // A progressive SOF2 counts too; DHT (C4) does not.
        let mut progressive = vec![0xFF, 0xD8, 0xFF, 0xC4, 0x00, 0x02];
        progressive.extend_from_slice(&[0xFF, 0xC2, 0x00, 0x11, 0x08, 0x00, 0x10, 0x00, 0x20]);
        assert_eq!(
            header_dimensions(MediaFormat::Jpeg, &progressive),
            Some((32, 16))
        );

        let mut lossless = b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f".to_vec();
        // width-1 = 99, height-1 = 49 packed in 14-bit fields.
        let bits: u32 = 99 | (49 << 14);
        lossless.extend_from_slice(&bits.to_le_bytes());
        assert_eq!(
            header_dimensions(MediaFormat::WebP, &lossless),
            Some((100, 50))
        );
        let mut extended = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
        extended.extend_from_slice(&[0x4F, 0xC3, 0x00, 0x4F, 0xC3, 0x00]);
        assert_eq!(
            header_dimensions(MediaFormat::WebP, &extended),
            Some((50_000, 50_000))
        );
    }

    #[test]
    fn truncated_headers_give_none_not_panic() {
        let full = png_header(10, 10);
        for len in 0..full.len() {
            let _maybe = header_dimensions(MediaFormat::Png, &full[..len]);
        }
        assert_eq!(header_dimensions(MediaFormat::Png, &full[..20]), None);
        assert_eq!(
            header_dimensions(MediaFormat::Jpeg, &[0xFF, 0xD8, 0xFF]),
            None
        );
        assert_eq!(
            header_dimensions(MediaFormat::Jpeg, &[0xFF, 0xD8, 0xFF, 0xDA, 0, 2]),
            None
        );
    }

    #[test]
    fn limits_refuse_sides_and_pixel_counts() {
        let limits = Limits {
            max_image_side: 1000,
            max_image_pixels: 500_000,
            ..Limits::default()
        };
        assert!(check_dimensions("a", 1000, 500, &limits).is_ok());
        let side = check_dimensions("a", 1001, 10, &limits).unwrap_err();
        assert_eq!(side.code(), "too_large");
        let pixels = check_dimensions("a", 1000, 501, &limits).unwrap_err();
        assert!(pixels.to_string().contains("500000 pixels"), "{pixels}");
        assert_eq!(
            check_dimensions("a", 0, 10, &limits).unwrap_err().code(),
            "corrupt_media"
        );
    }

    #[test]
    fn a_decoder_panic_becomes_corrupt_media() {
        let err = without_panics::<()>("evil.webp", || panic!("index out of bounds")).unwrap_err();
        assert_eq!(err.code(), "corrupt_media");
        assert!(err.to_string().contains("evil.webp"), "{err}");
        assert!(err.to_string().contains("index out of bounds"), "{err}");
        assert_eq!(without_panics("fine.png", || Ok(7)).unwrap(), 7);
    }

    #[test]
    fn alpha_is_composited_on_white() {
        let mut rgba = image::RgbaImage::new(2, 1);
        rgba.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
        rgba.put_pixel(1, 0, image::Rgba([200, 0, 0, 128]));
        let flat = flatten_on_white(DynamicImage::ImageRgba8(rgba));
        assert_eq!(flat.get_pixel(0, 0).0, [255, 255, 255]);
        // 200·128/255 + 255·127/255 ≈ 227, 0 + 127 = 127.
        assert_eq!(flat.get_pixel(1, 0).0, [227, 127, 127]);
    }
}
