//! Media intake against hostile and awkward input: every bad poster or URL gets a precise,
//! permanent-or-retryable error naming the input, never a panic, hang or unbounded allocation.

mod common;

use std::io::Cursor;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, GrayImage, ImageBuffer, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use regard::config::Limits;
use regard::media::{FetchPolicy, Fetcher, MediaError, MediaFormat, decode_image};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------------------------
// Byte builders

fn ihdr(width: u32, height: u32, bit_depth: u8, color_type: u8) -> Vec<u8> {
    let mut data = width.to_be_bytes().to_vec();
    data.extend_from_slice(&height.to_be_bytes());
    data.extend_from_slice(&[bit_depth, color_type, 0, 0, 0]);
    data
}

/// A zlib stream of stored (uncompressed) deflate blocks: enough to hand-build any PNG.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = data.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

/// A palette PNG (colour type 3, 8-bit indices) with per-entry alpha.
fn palette_png(width: u32, indices: &[u8], palette: &[[u8; 4]]) -> Vec<u8> {
    let height = indices.len() as u32 / width;
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    common::png_chunk(&mut out, b"IHDR", &ihdr(width, height, 8, 3));
    let plte: Vec<u8> = palette.iter().flat_map(|c| [c[0], c[1], c[2]]).collect();
    common::png_chunk(&mut out, b"PLTE", &plte);
    let trns: Vec<u8> = palette.iter().map(|c| c[3]).collect();
    common::png_chunk(&mut out, b"tRNS", &trns);
    let mut raw = Vec::new();
    for row in indices.chunks(width as usize) {
        raw.push(0); // filter: none
        raw.extend_from_slice(row);
    }
    common::png_chunk(&mut out, b"IDAT", &zlib_stored(&raw));
    common::png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A baseline JPEG with four components as Photoshop writes CMYK: an Adobe APP14 marker with
/// transform 0 and inverted samples (255 = no ink). Each 8×8 block is one flat colour, so only
/// DC coefficients are coded; the quantiser 8 makes the decoded samples exact.
fn adobe_cmyk_jpeg(
    blocks_wide: usize,
    blocks_high: usize,
    ink: impl Fn(usize, usize) -> [u8; 4],
) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    let segment = |out: &mut Vec<u8>, marker: u8, body: &[u8]| {
        out.extend_from_slice(&[0xFF, marker]);
        out.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(body);
    };
    segment(&mut out, 0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x00");
    let mut dqt = vec![0x00];
    dqt.extend_from_slice(&[8; 64]);
    segment(&mut out, 0xDB, &dqt);
    let mut sof = vec![8];
    sof.extend_from_slice(&((blocks_high * 8) as u16).to_be_bytes());
    sof.extend_from_slice(&((blocks_wide * 8) as u16).to_be_bytes());
    sof.push(4);
    for id in 1..=4 {
        sof.extend_from_slice(&[id, 0x11, 0]);
    }
    segment(&mut out, 0xC0, &sof);
    // DC table: categories 0..=11, all 4-bit codes, so category c is coded as c.
    let mut dc = vec![0x00];
    let mut counts = [0u8; 16];
    counts[3] = 12;
    dc.extend_from_slice(&counts);
    dc.extend(0..12u8);
    segment(&mut out, 0xC4, &dc);
    // AC table: EOB = 00, ZRL = 01.
    let mut ac = vec![0x10];
    let mut counts = [0u8; 16];
    counts[1] = 2;
    ac.extend_from_slice(&counts);
    ac.extend_from_slice(&[0x00, 0xF0]);
    segment(&mut out, 0xC4, &ac);
    let mut sos = vec![4];
    for id in 1..=4 {
        sos.extend_from_slice(&[id, 0x00]);
    }
    sos.extend_from_slice(&[0, 63, 0]);
    segment(&mut out, 0xDA, &sos);

    let mut bits = BitWriter::default();
    let mut predictors = [0i32; 4];
    for by in 0..blocks_high {
        for bx in 0..blocks_wide {
            let ink = ink(bx, by);
            for (component, predictor) in predictors.iter_mut().enumerate() {
                let stored = 255 - i32::from(ink[component]);
                let dc = stored - 128;
                let diff = dc - *predictor;
                *predictor = dc;
                let category = 32 - diff.unsigned_abs().leading_zeros();
                bits.put(category, 4);
                if category > 0 {
                    let amplitude = if diff >= 0 {
                        diff
                    } else {
                        diff + (1 << category) - 1
                    };
                    bits.put(amplitude as u32, category);
                }
                bits.put(0b00, 2); // end of block
            }
        }
    }
    out.extend_from_slice(&bits.finish());
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    acc: u32,
    len: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, count: u32) {
        for i in (0..count).rev() {
            self.acc = (self.acc << 1) | ((value >> i) & 1);
            self.len += 1;
            if self.len == 8 {
                let byte = self.acc as u8;
                self.bytes.push(byte);
                if byte == 0xFF {
                    self.bytes.push(0x00);
                }
                self.acc = 0;
                self.len = 0;
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        while self.len != 0 {
            self.put(1, 1);
        }
        self.bytes
    }
}

fn jpeg(image: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 95)
        .encode_image(image)
        .expect("encode test JPEG");
    out
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encode test image");
    out.into_inner()
}

/// Inserts an EXIF APP1 segment holding only an Orientation tag right after SOI.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut body = b"Exif\0\0".to_vec();
    body.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .status()
        .expect(
            "the ffmpeg command line is required to build this fixture (apt-get install ffmpeg)",
        );
    assert!(status.success(), "ffmpeg {args:?} failed");
}

fn limits() -> Limits {
    Limits {
        max_media_bytes: 1 << 20,
        max_image_side: 8_000,
        max_image_pixels: 40_000_000,
        connect_timeout: Duration::from_secs(2),
        fetch_timeout: Duration::from_secs(10),
        max_redirects: 3,
        ..Limits::default()
    }
}

fn assert_close(actual: [u8; 3], expected: [u8; 3], tolerance: u8, what: &str) {
    let close = actual
        .iter()
        .zip(expected)
        .all(|(a, e)| a.abs_diff(e) <= tolerance);
    assert!(
        close,
        "{what}: got {actual:?}, expected {expected:?} ± {tolerance}"
    );
}

fn expect_err<T: std::fmt::Debug>(
    result: Result<T, MediaError>,
    code: &str,
    input: &str,
) -> MediaError {
    let err = result.expect_err("an error was expected");
    assert_eq!(err.code(), code, "wrong error: {err}");
    assert!(
        err.to_string().contains(input),
        "error must name {input}: {err}"
    );
    err
}

// ---------------------------------------------------------------------------------------------
// Decoding: the bad inputs

#[test]
fn zero_byte_file_is_corrupt_media() {
    let err = expect_err(
        decode_image("empty.jpg", &[], &limits()),
        "corrupt_media",
        "empty.jpg",
    );
    assert!(!err.is_retryable());
}

#[test]
fn truncated_jpeg_is_corrupt_media() {
    let noisy = RgbImage::from_fn(128, 96, |x, y| {
        Rgb([((x * 7) ^ (y * 13)) as u8, (x * y) as u8, (x + y) as u8])
    });
    let full = jpeg(&DynamicImage::ImageRgb8(noisy));
    assert!(decode_image("whole.jpg", &full, &limits()).is_ok());
    for cut in [full.len() / 2, full.len() - 2, 200] {
        let err = expect_err(
            decode_image("half.jpg", &full[..cut], &limits()),
            "corrupt_media",
            "half.jpg",
        );
        assert!(!err.is_retryable());
    }
}

#[test]
fn text_file_named_jpg_is_unsupported_format() {
    let err = expect_err(
        decode_image("poster.jpg", b"<html>404 Not Found</html>\n", &limits()),
        "unsupported_format",
        "poster.jpg",
    );
    assert!(!err.is_retryable());
}

#[test]
fn gif_is_recognised_but_unsupported() {
    let err = expect_err(
        decode_image(
            "anim.gif",
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
            &limits(),
        ),
        "unsupported_format",
        "anim.gif",
    );
    assert!(err.to_string().contains("gif"), "{err}");
}

#[test]
fn png_header_claiming_50000_by_50000_is_refused_before_decoding() {
    let mut bomb = b"\x89PNG\r\n\x1a\n".to_vec();
    common::png_chunk(&mut bomb, b"IHDR", &ihdr(50_000, 50_000, 8, 6));
    common::png_chunk(&mut bomb, b"IEND", &[]);
    let started = Instant::now();
    let err = expect_err(
        decode_image("bomb.png", &bomb, &limits()),
        "too_large",
        "bomb.png",
    );
    assert!(err.to_string().contains("50000×50000"), "{err}");
    assert!(!err.is_retryable());
    // Within the side limit but over the pixel count: still refused from the header.
    let roomy = Limits {
        max_image_side: 60_000,
        ..limits()
    };
    expect_err(
        decode_image("bomb.png", &bomb, &roomy),
        "too_large",
        "bomb.png",
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

// ---------------------------------------------------------------------------------------------
// Decoding: awkward but valid images

#[test]
fn cmyk_jpeg_decodes_to_rgb() {
    // Quadrants: cyan, magenta / yellow, 50 % black.
    let bytes = adobe_cmyk_jpeg(2, 2, |bx, by| match (bx, by) {
        (0, 0) => [255, 0, 0, 0],
        (1, 0) => [0, 255, 0, 0],
        (0, 1) => [0, 0, 255, 0],
        _ => [0, 0, 0, 128],
    });
    let decoded = decode_image("cmyk.jpg", &bytes, &limits()).expect("CMYK JPEG decodes");
    assert_eq!(
        (decoded.width, decoded.height, decoded.format),
        (16, 16, "jpeg")
    );
    let at = |x, y| decoded.image.get_pixel(x, y).0;
    assert_close(at(3, 3), [0, 255, 255], 3, "cyan");
    assert_close(at(12, 3), [255, 0, 255], 3, "magenta");
    assert_close(at(3, 12), [255, 255, 0], 3, "yellow");
    assert_close(at(12, 12), [127, 127, 127], 3, "half black");
}

#[test]
fn greyscale_jpeg_decodes_to_rgb() {
    let grey = GrayImage::from_fn(64, 32, |x, _| image::Luma([if x < 32 { 40 } else { 200 }]));
    let decoded = decode_image(
        "grey.jpg",
        &jpeg(&DynamicImage::ImageLuma8(grey)),
        &limits(),
    )
    .unwrap();
    assert_eq!((decoded.width, decoded.height), (64, 32));
    assert_close(
        decoded.image.get_pixel(8, 16).0,
        [40, 40, 40],
        4,
        "dark half",
    );
    assert_close(
        decoded.image.get_pixel(56, 16).0,
        [200, 200, 200],
        4,
        "light half",
    );
}

#[test]
fn sixteen_bit_png_decodes_to_8_bit() {
    let deep: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(4, 2, |x, _| {
        if x < 2 {
            Rgb([65_535, 0, 0x8080])
        } else {
            Rgb([0x1010, 0xFFFF, 0])
        }
    });
    let bytes = encode(&DynamicImage::ImageRgb16(deep), ImageFormat::Png);
    let decoded = decode_image("deep.png", &bytes, &limits()).unwrap();
    assert_eq!(decoded.image.get_pixel(0, 0).0, [255, 0, 128]);
    assert_eq!(decoded.image.get_pixel(3, 1).0, [16, 255, 0]);
}

#[test]
fn png_with_alpha_is_composited_on_white() {
    let rgba = RgbaImage::from_fn(2, 2, |x, y| match (x, y) {
        (0, 0) => Rgba([255, 0, 0, 255]),
        (1, 0) => Rgba([0, 0, 255, 0]),
        _ => Rgba([0, 0, 0, 128]),
    });
    let decoded = decode_image(
        "alpha.png",
        &encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png),
        &limits(),
    )
    .unwrap();
    assert_eq!(decoded.image.get_pixel(0, 0).0, [255, 0, 0]);
    assert_eq!(
        decoded.image.get_pixel(1, 0).0,
        [255, 255, 255],
        "fully transparent → white, not the hidden blue"
    );
    assert_eq!(
        decoded.image.get_pixel(0, 1).0,
        [127, 127, 127],
        "half-transparent black over white"
    );
}

#[test]
fn palette_png_with_transparency_decodes() {
    let bytes = palette_png(
        2,
        &[0, 1, 2, 0],
        &[[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 0]],
    );
    let decoded = decode_image("palette.png", &bytes, &limits()).unwrap();
    assert_eq!((decoded.width, decoded.height), (2, 2));
    assert_eq!(decoded.image.get_pixel(0, 0).0, [255, 0, 0]);
    assert_eq!(decoded.image.get_pixel(1, 0).0, [0, 255, 0]);
    assert_eq!(decoded.image.get_pixel(0, 1).0, [255, 255, 255]);
}

#[test]
fn webp_lossless_decodes() {
    let rgb = RgbImage::from_fn(30, 20, |x, _| {
        if x < 15 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    });
    let decoded = decode_image(
        "lossless.webp",
        &encode(&DynamicImage::ImageRgb8(rgb), ImageFormat::WebP),
        &limits(),
    )
    .unwrap();
    assert_eq!(
        (decoded.width, decoded.height, decoded.format),
        (30, 20, "webp")
    );
    assert_eq!(decoded.image.get_pixel(2, 2).0, [255, 0, 0]);
    assert_eq!(decoded.image.get_pixel(27, 17).0, [0, 0, 255]);
}

#[test]
fn webp_lossy_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lossy.webp");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=0x20C040:s=64x48:d=1",
        "-frames:v",
        "1",
        "-c:v",
        "libwebp",
        "-lossless",
        "0",
        out.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(
        &bytes[12..16],
        b"VP8 ",
        "ffmpeg must have written lossy WebP"
    );
    let decoded = decode_image("lossy.webp", &bytes, &limits()).unwrap();
    assert_eq!((decoded.width, decoded.height), (64, 48));
    assert_close(
        decoded.image.get_pixel(32, 24).0,
        [0x20, 0xC0, 0x40],
        12,
        "lossy green",
    );
}

#[test]
fn exif_orientation_all_eight_values() {
    // 48×32 stored; a red 16×16 square in the stored top-left corner, the rest blue.
    let stored = RgbImage::from_fn(48, 32, |x, y| {
        if x < 16 && y < 16 {
            Rgb([230, 20, 20])
        } else {
            Rgb([20, 20, 230])
        }
    });
    let plain = jpeg(&DynamicImage::ImageRgb8(stored));
    // Where the red corner must appear once the image is upright.
    let cases = [
        (1, (48, 32), "top-left"),
        (2, (48, 32), "top-right"),
        (3, (48, 32), "bottom-right"),
        (4, (48, 32), "bottom-left"),
        (5, (32, 48), "top-left"),
        (6, (32, 48), "top-right"),
        (7, (32, 48), "bottom-right"),
        (8, (32, 48), "bottom-left"),
    ];
    for (orientation, (width, height), red_corner) in cases {
        let bytes = with_exif_orientation(&plain, orientation);
        let decoded = decode_image("rotated.jpg", &bytes, &limits()).unwrap();
        assert_eq!(
            (decoded.width, decoded.height),
            (width, height),
            "orientation {orientation}"
        );
        assert_eq!(decoded.image.dimensions(), (width, height));
        let corners = [
            ("top-left", (4, 4)),
            ("top-right", (width - 5, 4)),
            ("bottom-left", (4, height - 5)),
            ("bottom-right", (width - 5, height - 5)),
        ];
        for (name, (x, y)) in corners {
            let [r, _, b] = decoded.image.get_pixel(x, y).0;
            let is_red = r > 150 && b < 100;
            assert_eq!(
                is_red,
                name == red_corner,
                "orientation {orientation}: {name} corner is {:?}",
                decoded.image.get_pixel(x, y).0
            );
        }
    }
}

#[test]
fn fixture_photographs_decode() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/faces");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        if !matches!(ext, "jpg" | "png") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let name = path.display().to_string();
        let decoded =
            decode_image(&name, &bytes, &Limits::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            decoded.format,
            if ext == "png" { "png" } else { "jpeg" },
            "{name}"
        );
        assert!(
            decoded.width >= 100 && decoded.height >= 100,
            "{name}: {}×{}",
            decoded.width,
            decoded.height
        );
        seen += 1;
    }
    assert!(
        seen >= 9,
        "expected the 9 fixture photographs, found {seen}"
    );
}

// ---------------------------------------------------------------------------------------------
// Fetching local files

fn fetcher_with_roots(roots: Vec<PathBuf>) -> Fetcher {
    Fetcher::new(FetchPolicy {
        local_roots: Some(roots),
        ..FetchPolicy::cli(limits())
    })
}

fn tiny_png() -> Vec<u8> {
    encode(
        &DynamicImage::ImageRgb8(RgbImage::from_pixel(3, 3, Rgb([1, 2, 3]))),
        ImageFormat::Png,
    )
}

#[tokio::test]
async fn local_file_is_hashed_and_recognised_by_content() {
    let root = tempfile::tempdir().unwrap();
    let bytes = tiny_png();
    // The name says JPEG; the content decides.
    let path = root.path().join("poster.jpg");
    std::fs::write(&path, &bytes).unwrap();
    let fetched = fetcher_with_roots(vec![root.path().to_owned()])
        .fetch(path.to_str().unwrap())
        .await
        .unwrap();
    assert_eq!(fetched.format, MediaFormat::Png);
    assert_eq!(fetched.bytes, bytes.len() as u64);
    assert_eq!(fetched.sha256, hex::encode(Sha256::digest(&bytes)));
    assert_eq!(fetched.path, path.canonicalize().unwrap());
    assert!(!fetched.is_download());
    assert_eq!(fetched.read_all().unwrap(), bytes);
}

#[tokio::test]
async fn zero_byte_local_file_is_corrupt_media() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("empty.png");
    std::fs::write(&path, b"").unwrap();
    expect_err(
        Fetcher::new(FetchPolicy::cli(limits()))
            .fetch(path.to_str().unwrap())
            .await,
        "corrupt_media",
        "empty.png",
    );
}

#[tokio::test]
async fn text_file_named_jpg_is_refused_at_fetch() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("poster.jpg");
    std::fs::write(&path, "not an image at all\n").unwrap();
    expect_err(
        Fetcher::new(FetchPolicy::cli(limits()))
            .fetch(path.to_str().unwrap())
            .await,
        "unsupported_format",
        "poster.jpg",
    );
}

#[tokio::test]
async fn missing_local_file_is_not_found() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("nope.jpg");
    let err = expect_err(
        Fetcher::new(FetchPolicy::cli(limits()))
            .fetch(path.to_str().unwrap())
            .await,
        "not_found",
        "nope.jpg",
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn local_file_over_the_size_limit_is_too_large() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("big.png");
    std::fs::write(&path, tiny_png()).unwrap();
    let small = Fetcher::new(FetchPolicy {
        limits: Limits {
            max_media_bytes: 10,
            ..limits()
        },
        ..FetchPolicy::cli(limits())
    });
    expect_err(
        small.fetch(path.to_str().unwrap()).await,
        "too_large",
        "big.png",
    );
}

#[tokio::test]
async fn path_escape_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("media");
    let outside = base.path().join("secret");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("x.png"), tiny_png()).unwrap();
    std::fs::write(root.join("ok.png"), tiny_png()).unwrap();
    std::os::unix::fs::symlink(outside.join("x.png"), root.join("link.png")).unwrap();
    let fetcher = fetcher_with_roots(vec![root.clone()]);

    let dotdot = format!("{}/../secret/x.png", root.display());
    expect_err(fetcher.fetch(&dotdot).await, "outside_roots", &dotdot);
    let link = root.join("link.png").display().to_string();
    expect_err(fetcher.fetch(&link).await, "outside_roots", &link);
    let direct = outside.join("x.png").display().to_string();
    expect_err(fetcher.fetch(&direct).await, "outside_roots", &direct);
    // A sibling directory sharing the root's name as a prefix is not inside it.
    let sibling = base.path().join("media-evil");
    std::fs::create_dir_all(&sibling).unwrap();
    std::fs::write(sibling.join("y.png"), tiny_png()).unwrap();
    let prefixed = sibling.join("y.png").display().to_string();
    expect_err(fetcher.fetch(&prefixed).await, "outside_roots", &prefixed);

    let inside = fetcher
        .fetch(root.join("ok.png").to_str().unwrap())
        .await
        .unwrap();
    assert_eq!(inside.format, MediaFormat::Png);
}

#[tokio::test]
async fn directories_and_other_schemes_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(FetchPolicy::cli(limits()));
    expect_err(
        fetcher.fetch(root.path().to_str().unwrap()).await,
        "not_a_file",
        root.path().to_str().unwrap(),
    );
    expect_err(
        fetcher.fetch("file:///etc/passwd").await,
        "unsupported_source",
        "file:///etc/passwd",
    );
    expect_err(
        fetcher.fetch("ftp://example.org/a.jpg").await,
        "unsupported_source",
        "ftp://example.org/a.jpg",
    );
}

// ---------------------------------------------------------------------------------------------
// Fetching over HTTP from a tiny local server

#[derive(Clone)]
enum Reply {
    Full {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// Zeros until the client hangs up (at most 2 GiB), optionally claiming a Content-Length.
    Zeros { claimed_length: Option<u64> },
    /// Accepts the request and never answers.
    Hang,
}

struct Server {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

async fn serve(route: impl Fn(&str, SocketAddr) -> Reply + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let route = Arc::new(route);
    let task = tokio::spawn(async move {
        let mut handlers = tokio::task::JoinSet::new();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
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
                match route(&path, addr) {
                    Reply::Full {
                        status,
                        headers,
                        body,
                    } => {
                        let mut head = format!(
                            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                            body.len()
                        );
                        for (name, value) in headers {
                            head.push_str(&format!("{name}: {value}\r\n"));
                        }
                        head.push_str("\r\n");
                        // The client may hang up early (that is the point of some tests).
                        if stream.write_all(head.as_bytes()).await.is_ok() {
                            let _sent = stream.write_all(&body).await;
                        }
                    }
                    Reply::Zeros { claimed_length } => {
                        let mut head =
                            "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close\r\n"
                                .to_owned();
                        if let Some(len) = claimed_length {
                            head.push_str(&format!("Content-Length: {len}\r\n"));
                        }
                        head.push_str("\r\n");
                        if stream.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let zeros = vec![0u8; 64 * 1024];
                        for _ in 0..(2u64 << 30) / zeros.len() as u64 {
                            if stream.write_all(&zeros).await.is_err() {
                                return;
                            }
                        }
                    }
                    Reply::Hang => tokio::time::sleep(Duration::from_secs(120)).await,
                }
            });
        }
    });
    Server {
        addr,
        connections,
        task,
    }
}

fn loopback_fetcher(limits: Limits, download_dir: &Path) -> Fetcher {
    Fetcher::new(FetchPolicy {
        local_roots: Some(Vec::new()),
        allow_private: vec!["127.0.0.1/32".parse().unwrap()],
        limits,
        download_dir: Some(download_dir.to_owned()),
    })
}

fn ok_png(body: Vec<u8>) -> Reply {
    Reply::Full {
        status: 200,
        headers: vec![("Content-Type", "image/png".into())],
        body,
    }
}

fn dir_is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

#[tokio::test]
async fn download_is_hashed_and_deleted_on_drop() {
    let bytes = tiny_png();
    let body = bytes.clone();
    let server = serve(move |_, _| ok_png(body.clone())).await;
    let downloads = tempfile::tempdir().unwrap();
    let fetched = loopback_fetcher(limits(), downloads.path())
        .fetch(&server.url("/poster"))
        .await
        .unwrap();
    assert_eq!(fetched.format, MediaFormat::Png);
    assert_eq!(fetched.sha256, hex::encode(Sha256::digest(&bytes)));
    assert_eq!(fetched.bytes, bytes.len() as u64);
    assert!(fetched.is_download());
    assert_eq!(std::fs::read(&fetched.path).unwrap(), bytes);
    assert!(fetched.path.starts_with(downloads.path()));
    drop(fetched);
    assert!(
        dir_is_empty(downloads.path()),
        "the temp file must go with the FetchedMedia"
    );
}

#[tokio::test]
async fn unreachable_url_is_retryable() {
    // Bind then close a port, so nothing listens there.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let downloads = tempfile::tempdir().unwrap();
    let url = format!("http://{closed}/poster.jpg");
    let err = expect_err(
        loopback_fetcher(limits(), downloads.path())
            .fetch(&url)
            .await,
        "unreachable",
        &url,
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn http_404_is_permanent_and_503_retryable() {
    let server = serve(|path, _| Reply::Full {
        status: if path == "/gone" { 404 } else { 503 },
        headers: vec![],
        body: b"no".to_vec(),
    })
    .await;
    let downloads = tempfile::tempdir().unwrap();
    let fetcher = loopback_fetcher(limits(), downloads.path());
    let gone = server.url("/gone");
    let err = expect_err(fetcher.fetch(&gone).await, "http_status", &gone);
    assert!(matches!(err, MediaError::HttpStatus { status: 404, .. }));
    assert!(!err.is_retryable());
    let busy = server.url("/busy");
    assert!(expect_err(fetcher.fetch(&busy).await, "http_status", &busy).is_retryable());
}

#[tokio::test]
async fn url_claiming_1_gb_is_refused_from_its_content_length() {
    let server = serve(|_, _| Reply::Zeros {
        claimed_length: Some(1 << 30),
    })
    .await;
    let downloads = tempfile::tempdir().unwrap();
    let url = server.url("/huge.jpg");
    let started = Instant::now();
    let err = expect_err(
        loopback_fetcher(limits(), downloads.path())
            .fetch(&url)
            .await,
        "too_large",
        &url,
    );
    assert!(!err.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(dir_is_empty(downloads.path()));
}

#[tokio::test]
async fn url_streaming_zeros_forever_stops_at_the_limit() {
    let server = serve(|_, _| Reply::Zeros {
        claimed_length: None,
    })
    .await;
    let downloads = tempfile::tempdir().unwrap();
    let url = server.url("/endless.jpg");
    let started = Instant::now();
    let err = expect_err(
        loopback_fetcher(limits(), downloads.path())
            .fetch(&url)
            .await,
        "too_large",
        &url,
    );
    assert!(matches!(err, MediaError::TooLarge { limit, .. } if limit == 1 << 20));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        dir_is_empty(downloads.path()),
        "the partial download must be deleted"
    );
}

#[tokio::test]
async fn redirect_loop_stops_at_max_redirects() {
    let server = serve(|path, _| {
        let next = if path == "/a" { "/b" } else { "/a" };
        Reply::Full {
            status: 302,
            headers: vec![("Location", next.into())],
            body: vec![],
        }
    })
    .await;
    let downloads = tempfile::tempdir().unwrap();
    let url = server.url("/a");
    let err = expect_err(
        loopback_fetcher(limits(), downloads.path())
            .fetch(&url)
            .await,
        "too_many_redirects",
        &url,
    );
    assert!(!err.is_retryable());
    // The first request plus max_redirects (3) followed hops.
    assert_eq!(server.connections.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn redirects_within_the_limit_are_followed() {
    let bytes = tiny_png();
    let server = serve(move |path, addr| match path {
        "/old" => Reply::Full {
            status: 301,
            headers: vec![("Location", format!("http://{addr}/new"))],
            body: vec![],
        },
        _ => ok_png(bytes.clone()),
    })
    .await;
    let downloads = tempfile::tempdir().unwrap();
    let fetched = loopback_fetcher(limits(), downloads.path())
        .fetch(&server.url("/old"))
        .await
        .unwrap();
    assert_eq!(fetched.format, MediaFormat::Png);
    assert_eq!(fetched.source, server.url("/old"));
}

#[tokio::test]
async fn redirect_to_a_private_address_is_refused() {
    let server = serve(|_, _| Reply::Full {
        status: 302,
        headers: vec![(
            "Location",
            "http://169.254.169.254/latest/meta-data/".into(),
        )],
        body: vec![],
    })
    .await;
    let downloads = tempfile::tempdir().unwrap();
    let url = server.url("/poster.jpg");
    let err = expect_err(
        loopback_fetcher(limits(), downloads.path())
            .fetch(&url)
            .await,
        "private_address",
        &url,
    );
    assert!(err.to_string().contains("169.254.169.254"), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn private_address_is_refused_without_allow_list() {
    let server = serve(|_, _| ok_png(tiny_png())).await;
    let public_only = Fetcher::new(FetchPolicy::cli(limits()));
    let by_ip = server.url("/poster.png");
    expect_err(public_only.fetch(&by_ip).await, "private_address", &by_ip);
    let by_name = format!("http://localhost:{}/poster.png", server.addr.port());
    expect_err(
        public_only.fetch(&by_name).await,
        "private_address",
        &by_name,
    );
    let mapped = format!(
        "http://[::ffff:127.0.0.1]:{}/poster.png",
        server.addr.port()
    );
    expect_err(public_only.fetch(&mapped).await, "private_address", &mapped);
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        0,
        "refused before connecting"
    );
}

#[tokio::test]
async fn silent_server_times_out_and_is_retryable() {
    let server = serve(|_, _| Reply::Hang).await;
    let downloads = tempfile::tempdir().unwrap();
    let quick = Limits {
        fetch_timeout: Duration::from_millis(500),
        ..limits()
    };
    let url = server.url("/slow.jpg");
    let started = Instant::now();
    let err = expect_err(
        loopback_fetcher(quick, downloads.path()).fetch(&url).await,
        "fetch_timeout",
        &url,
    );
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn downloaded_text_is_unsupported_format() {
    let server = serve(|_, _| Reply::Full {
        status: 200,
        headers: vec![("Content-Type", "image/jpeg".into())],
        body: b"<html>hi</html>".to_vec(),
    })
    .await;
    let downloads = tempfile::tempdir().unwrap();
    let url = server.url("/poster.jpg");
    expect_err(
        loopback_fetcher(limits(), downloads.path())
            .fetch(&url)
            .await,
        "unsupported_format",
        &url,
    );
    assert!(dir_is_empty(downloads.path()));
}

// ---------------------------------------------------------------------------------------------
// Only regular files, read within a deadline, analysed as hashed (issue 12)

/// Fetches with a hang guard: a fetch that blocks fails the test instead of hanging it.
async fn fetch_within(
    fetcher: &Fetcher,
    source: &str,
) -> Result<regard::media::FetchedMedia, MediaError> {
    tokio::time::timeout(Duration::from_secs(20), fetcher.fetch(source))
        .await
        .unwrap_or_else(|_| panic!("fetching {source} hung"))
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs")
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

#[tokio::test]
async fn a_fifo_under_a_media_root_is_refused_without_blocking() {
    let root = tempfile::tempdir().unwrap();
    let fifo = root.path().join("poster.jpg");
    mkfifo(&fifo);
    let fetcher = fetcher_with_roots(vec![root.path().to_owned()]);
    let err = expect_err(
        fetch_within(&fetcher, fifo.to_str().unwrap()).await,
        "not_a_file",
        "poster.jpg",
    );
    assert!(err.to_string().contains("FIFO"), "{err}");
    assert!(!err.is_retryable());
    // A symlink to it inside the root is the same FIFO.
    let link = root.path().join("link.jpg");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    expect_err(
        fetch_within(&fetcher, link.to_str().unwrap()).await,
        "not_a_file",
        "link.jpg",
    );
}

#[tokio::test]
async fn a_socket_and_devices_are_refused_as_not_a_file() {
    let root = tempfile::tempdir().unwrap();
    let socket = root.path().join("trailer.mp4");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let fetcher = fetcher_with_roots(vec![root.path().to_owned(), "/dev".into()]);
    let err = expect_err(
        fetch_within(&fetcher, socket.to_str().unwrap()).await,
        "not_a_file",
        "trailer.mp4",
    );
    assert!(err.to_string().contains("socket"), "{err}");
    for device in ["/dev/zero", "/dev/null", "/dev/urandom"] {
        let err = expect_err(fetch_within(&fetcher, device).await, "not_a_file", device);
        assert!(err.to_string().contains("device"), "{err}");
    }
}

#[test]
fn regard_analyze_on_a_fifo_exits_with_an_error() {
    let root = tempfile::tempdir().unwrap();
    let fifo = root.path().join("poster.jpg");
    mkfifo(&fifo);
    let mut child = Command::new(env!("CARGO_BIN_EXE_regard"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["analyze", fifo.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A hang guard, not a speed test: model loading is the slow part.
    let until = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > until {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("regard analyze on a FIFO hung");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("poster.jpg") && stderr.contains("not a regular file"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_poster_rewritten_after_the_fetch_is_decoded_as_it_was_hashed() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("poster.png");
    let first = tiny_png();
    std::fs::write(&path, &first).unwrap();
    let fetched = fetch_within(
        &fetcher_with_roots(vec![root.path().to_owned()]),
        path.to_str().unwrap(),
    )
    .await
    .unwrap();
    // Still being written, or replaced: the bytes on disk are no longer the ones hashed.
    let second = encode(
        &DynamicImage::ImageRgb8(RgbImage::from_pixel(5, 4, Rgb([9, 9, 9]))),
        ImageFormat::Png,
    );
    std::fs::write(&path, &second).unwrap();
    let analysed = fetched.read_all().unwrap();
    assert_eq!(hex::encode(Sha256::digest(&analysed)), fetched.sha256);
    assert_eq!(analysed, first);
    let decoded = decode_image(&fetched.source, &analysed, &limits()).unwrap();
    assert_eq!((decoded.width, decoded.height), (3, 3));
}

#[tokio::test]
async fn a_trailer_rewritten_after_the_fetch_is_analysed_from_a_private_copy() {
    let root = tempfile::tempdir().unwrap();
    let temp = tempfile::tempdir().unwrap();
    let path = root.path().join("trailer.mp4");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/trailers");
    std::fs::copy(fixtures.join("t3_640x360.mp4"), &path).unwrap();
    let fetcher = Fetcher::new(FetchPolicy {
        local_roots: Some(vec![root.path().to_owned()]),
        download_dir: Some(temp.path().to_owned()),
        ..FetchPolicy::cli(limits())
    });
    let fetched = fetch_within(&fetcher, path.to_str().unwrap())
        .await
        .unwrap();
    assert_eq!(fetched.format, MediaFormat::Mp4);
    assert!(fetched.is_download(), "a private copy: {:?}", fetched.path);
    // Truncated in place (a copy still in progress looks the same), then another trailer.
    std::fs::write(&path, b"").unwrap();
    std::fs::copy(fixtures.join("t1_640x360.mp4"), &path).unwrap();
    let analysed = std::fs::read(&fetched.path).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&analysed)), fetched.sha256);
    assert_eq!(analysed.len() as u64, fetched.bytes);
    drop(fetched);
    assert!(dir_is_empty(temp.path()), "the copy goes with the value");
}

#[tokio::test]
async fn an_image_over_the_image_limit_is_too_large_at_fetch_local_or_downloaded() {
    // 300 KiB of PNG: under the media limit (1 MiB), over an image limit of 256 KiB.
    let noise = RgbImage::from_fn(320, 320, |x, y| {
        let v = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) as u8;
        Rgb([v, v.wrapping_mul(7), v.wrapping_mul(13)])
    });
    let png = encode(&DynamicImage::ImageRgb8(noise), ImageFormat::Png);
    assert!(
        png.len() > 256 << 10 && png.len() < 1 << 20,
        "{}",
        png.len()
    );
    let small = Limits {
        max_image_bytes: 256 << 10,
        ..limits()
    };
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("huge.png");
    std::fs::write(&path, &png).unwrap();
    let local = Fetcher::new(FetchPolicy {
        local_roots: Some(vec![root.path().to_owned()]),
        ..FetchPolicy::cli(small.clone())
    });
    let err = expect_err(
        fetch_within(&local, path.to_str().unwrap()).await,
        "too_large",
        "huge.png",
    );
    assert!(
        err.to_string().contains(&(256u64 << 10).to_string()),
        "{err}"
    );
    let body = png.clone();
    let server = serve(move |_, _| ok_png(body.clone())).await;
    let downloads = tempfile::tempdir().unwrap();
    let url = server.url("/huge.png");
    expect_err(
        fetch_within(&loopback_fetcher(small.clone(), downloads.path()), &url).await,
        "too_large",
        &url,
    );
    assert!(dir_is_empty(downloads.path()));
    // Bytes handed to the decoder directly are held to the same limit.
    expect_err(
        decode_image("huge.png", &png, &small),
        "too_large",
        "huge.png",
    );
    // A trailer of the same size is not an image: the media limit applies.
    let trailer = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/trailers/t2_854x480.mp4"),
    )
    .unwrap();
    assert!(trailer.len() > 256 << 10);
    let video = root.path().join("t2.mp4");
    std::fs::write(&video, &trailer).unwrap();
    fetch_within(&local, video.to_str().unwrap()).await.unwrap();
}

/// A PNG whose pixel data is `rows` × (filter byte + `row_bytes` zeros), deflated: megabytes of
/// pixels in a few kilobytes.
fn zero_png(width: u32, height: u32, bit_depth: u8, color_type: u8, row_bytes: usize) -> Vec<u8> {
    use std::io::Write as _;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let row = vec![0u8; row_bytes + 1];
    for _ in 0..height {
        z.write_all(&row).unwrap();
    }
    let data = z.finish().unwrap();
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    common::png_chunk(
        &mut png,
        b"IHDR",
        &ihdr(width, height, bit_depth, color_type),
    );
    common::png_chunk(&mut png, b"IDAT", &data);
    common::png_chunk(&mut png, b"IEND", &[]);
    png
}

#[test]
fn a_decompression_bomb_within_the_pixel_limits_is_refused_by_the_memory_limit() {
    // 6000×6000 grey: 36 MP (under the 40 MP limit), 36 MB decoded, 108 MB as RGB, from a
    // file of tens of kilobytes.
    let bomb = zero_png(6_000, 6_000, 8, 0, 6_000);
    assert!(bomb.len() < 200_000, "{}", bomb.len());
    let tight = Limits {
        max_image_alloc: 64 << 20,
        ..limits()
    };
    let err = expect_err(
        decode_image("bomb.png", &bomb, &tight),
        "too_large",
        "bomb.png",
    );
    assert!(err.to_string().contains("MiB"), "{err}");
    // Enough memory: the same image decodes (it is a valid, if boring, picture).
    let roomy = Limits {
        max_image_alloc: 200 << 20,
        ..limits()
    };
    let decoded = decode_image("bomb.png", &bomb, &roomy).unwrap();
    assert_eq!((decoded.width, decoded.height), (6_000, 6_000));
}

#[test]
fn a_sixteen_bit_rgba_header_is_refused_before_its_buffer_is_allocated() {
    // 7000×7000 RGBA at 16 bits: 49 MP (under the default pixel limit), 392 MB to decode into.
    let mut bomb = b"\x89PNG\r\n\x1a\n".to_vec();
    common::png_chunk(&mut bomb, b"IHDR", &ihdr(7_000, 7_000, 16, 6));
    common::png_chunk(&mut bomb, b"IDAT", &zlib_stored(&[0; 64]));
    common::png_chunk(&mut bomb, b"IEND", &[]);
    let err = expect_err(
        decode_image("deep.png", &bomb, &Limits::default()),
        "too_large",
        "deep.png",
    );
    assert!(err.to_string().contains("MiB"), "{err}");
}
