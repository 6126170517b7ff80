//! A person's face for a coder, rendered from the source media for one response: the poster
//! region around the box, or for a trailer person the key frame (largest face) with a few other
//! moments it is on screen. The source is fetched with the worker's rules ([`Fetcher`]: media
//! roots, private networks refused, size and time limits) and decoded in memory; a download's
//! temp file is deleted when the fetch result is dropped, before the response is sent. Nothing
//! is written anywhere.

use crate::config::Limits;
use crate::domain::BoundingBox;
use crate::media::video::{SamplerOptions, VideoError, VideoSampler};
use crate::media::{FetchedMedia, Fetcher, MediaError, decode_image};
use crate::report::draw::stroke_rect;
use crate::store::FaceSource;
use image::{Rgb, RgbImage, imageops};
use std::time::Instant;

/// Height of a face crop in the response, pixels.
pub const FACE_HEIGHT: u32 = 260;
/// Long side of a context picture (the whole poster or frame, the box drawn on it).
pub const CONTEXT_SIDE: u32 = 640;
/// Other moments shown beside a trailer person's key frame.
pub const TRAILER_MOMENTS: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum FaceError {
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Video(#[from] VideoError),
    #[error("the media at {0} changed since it was analysed (its SHA-256 differs)")]
    Changed(String),
    #[error("no frame near {0:.2} s could be decoded")]
    NoFrame(f64),
    #[error("cannot encode the picture: {0}")]
    Encode(String),
    #[error("the rendering task failed: {0}")]
    Task(String),
}

/// Renders faces; cheap to clone.
#[derive(Debug, Clone)]
pub struct FaceRenderer {
    fetcher: Fetcher,
    limits: Limits,
}

impl FaceRenderer {
    pub fn new(fetcher: Fetcher, limits: Limits) -> FaceRenderer {
        FaceRenderer { fetcher, limits }
    }

    /// The JPEG a coder codes from: the face crop, and for a trailer the other moments beside it.
    pub async fn face(&self, source: &FaceSource) -> Result<Vec<u8>, FaceError> {
        self.render(source, false).await
    }

    /// The JPEG of the context: the whole poster (or key frame) with the box drawn.
    pub async fn context(&self, source: &FaceSource) -> Result<Vec<u8>, FaceError> {
        self.render(source, true).await
    }

    async fn render(&self, source: &FaceSource, context: bool) -> Result<Vec<u8>, FaceError> {
        let media = self.fetcher.fetch(&source.source).await?;
        if media.sha256 != source.content_sha256 {
            return Err(FaceError::Changed(source.source.clone()));
        }
        let source = source.clone();
        let limits = self.limits.clone();
        // Decoding is CPU work: off the async threads. `media` (and a download's temp file)
        // is dropped inside, when the pixels are in memory.
        tokio::task::spawn_blocking(move || {
            let picture = if source.media_kind == "trailer" {
                trailer_picture(media, &source, &limits, context)?
            } else {
                poster_picture(media, &source, &limits, context)?
            };
            encode_jpeg(&picture)
        })
        .await
        .map_err(|e| FaceError::Task(e.to_string()))?
    }
}

fn poster_picture(
    media: FetchedMedia,
    source: &FaceSource,
    limits: &Limits,
    context: bool,
) -> Result<RgbImage, FaceError> {
    let bytes = media.read_all()?.into_owned();
    drop(media);
    let decoded = decode_image(&source.source, &bytes, limits)?;
    drop(bytes);
    Ok(if context {
        context_picture(&decoded.image, &source.bbox)
    } else {
        face_crop(&decoded.image, &source.bbox)
    })
}

fn trailer_picture(
    media: FetchedMedia,
    source: &FaceSource,
    limits: &Limits,
    context: bool,
) -> Result<RgbImage, FaceError> {
    let key = source.key_frame_s.unwrap_or(0.0);
    let rate = source.sample_rate.filter(|r| *r > 0.0).unwrap_or(2.0);
    let mut targets = vec![key];
    if !context {
        targets.extend(other_moments(&source.seen_at_s, key, TRAILER_MOMENTS));
    }
    let frames = frames_at(&media, &targets, rate, limits)?;
    drop(media);
    let key_frame = frames[0].as_ref().ok_or(FaceError::NoFrame(key))?;
    if context {
        return Ok(context_picture(key_frame, &source.bbox));
    }
    let mut parts = vec![face_crop(key_frame, &source.bbox)];
    // The other moments have no box of their own: the whole frame, small.
    parts.extend(
        frames[1..]
            .iter()
            .flatten()
            .map(|f| fit_height(f, FACE_HEIGHT)),
    );
    Ok(side_by_side(&parts))
}

/// Up to `n` times the person is on screen, spread over its presence, away from the key frame.
pub fn other_moments(seen_at_s: &[f64], key: f64, n: usize) -> Vec<f64> {
    let away: Vec<f64> = seen_at_s
        .iter()
        .copied()
        .filter(|t| (t - key).abs() >= 1.0)
        .collect();
    if away.is_empty() || n == 0 {
        return Vec::new();
    }
    let mut out: Vec<f64> = (0..n)
        .map(|i| away[(2 * i + 1) * away.len() / (2 * n)])
        .collect();
    out.dedup();
    out
}

/// The sampled frames nearest to each target time, decoded with the analysis's sampling rate
/// (so that the key frame's box lands on the same frame).
fn frames_at(
    media: &FetchedMedia,
    targets: &[f64],
    sample_rate: f64,
    limits: &Limits,
) -> Result<Vec<Option<RgbImage>>, FaceError> {
    let interval = 1.0 / sample_rate;
    let last = targets.iter().copied().fold(0.0, f64::max);
    let opts = SamplerOptions {
        sample_rate,
        max_duration_s: (last + 2.0 * interval).min(limits.max_video_duration_s),
        max_frames: limits.max_video_frames,
        max_input_side: limits.max_video_side,
        deadline: Some(Instant::now() + limits.analysis_deadline),
        threads: 1,
        ..SamplerOptions::default()
    };
    let sampler = VideoSampler::open(&media.source, &media.path, &opts)?;
    let mut best: Vec<Option<(f64, RgbImage)>> = vec![None; targets.len()];
    for frame in sampler {
        let frame = frame?;
        for (slot, target) in best.iter_mut().zip(targets) {
            let distance = (frame.t - target).abs();
            if slot.as_ref().is_none_or(|(d, _)| distance < *d) && distance <= interval {
                *slot = Some((distance, frame.image.clone()));
            }
        }
        if frame.t > last + interval {
            break;
        }
    }
    Ok(best
        .into_iter()
        .map(|b| b.map(|(_, image)| image))
        .collect())
}

/// The box with a margin of half its size on every side, scaled to [`FACE_HEIGHT`].
pub fn face_crop(image: &RgbImage, bbox: &BoundingBox) -> RgbImage {
    let margin = 0.5 * bbox.width.max(bbox.height);
    let x0 = (bbox.x - margin).max(0.0).floor() as u32;
    let y0 = (bbox.y - margin).max(0.0).floor() as u32;
    let x1 = ((bbox.x + bbox.width + margin).ceil() as u32).min(image.width());
    let y1 = ((bbox.y + bbox.height + margin).ceil() as u32).min(image.height());
    let (w, h) = (x1.saturating_sub(x0).max(1), y1.saturating_sub(y0).max(1));
    let x0 = x0.min(image.width().saturating_sub(1));
    let y0 = y0.min(image.height().saturating_sub(1));
    let crop = imageops::crop_imm(image, x0, y0, w, h).to_image();
    fit_height(&crop, FACE_HEIGHT)
}

/// The whole picture at most [`CONTEXT_SIDE`] on its long side, the box drawn on it.
pub fn context_picture(image: &RgbImage, bbox: &BoundingBox) -> RgbImage {
    let long = image.width().max(image.height()).max(1);
    let scale = (CONTEXT_SIDE as f32 / long as f32).min(1.0);
    let (w, h) = (
        ((image.width() as f32 * scale).round() as u32).max(1),
        ((image.height() as f32 * scale).round() as u32).max(1),
    );
    let mut out = imageops::resize(image, w, h, imageops::FilterType::Triangle);
    stroke_rect(
        &mut out,
        (bbox.x * scale).round() as i64,
        (bbox.y * scale).round() as i64,
        ((bbox.width * scale).round() as u32).max(2),
        ((bbox.height * scale).round() as u32).max(2),
        3,
        Rgb([255, 200, 0]),
    );
    out
}

fn fit_height(image: &RgbImage, height: u32) -> RgbImage {
    let scale = height as f32 / image.height().max(1) as f32;
    let width = ((image.width() as f32 * scale).round() as u32).max(1);
    imageops::resize(image, width, height, imageops::FilterType::Triangle)
}

/// Pictures of one height next to each other, 8 px apart.
fn side_by_side(parts: &[RgbImage]) -> RgbImage {
    const GAP: u32 = 8;
    let height = parts.iter().map(RgbImage::height).max().unwrap_or(1);
    let width = parts.iter().map(RgbImage::width).sum::<u32>()
        + GAP * (parts.len().saturating_sub(1) as u32);
    let mut out = RgbImage::from_pixel(width.max(1), height, Rgb([32, 32, 32]));
    let mut x = 0i64;
    for p in parts {
        imageops::replace(&mut out, p, x, 0);
        x += i64::from(p.width() + GAP);
    }
    out
}

fn encode_jpeg(image: &RgbImage) -> Result<Vec<u8>, FaceError> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(image)
        .map_err(|e| FaceError::Encode(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_stay_inside_the_image_and_have_the_face_height() {
        let image = RgbImage::from_pixel(100, 80, Rgb([10, 20, 30]));
        let bbox = BoundingBox {
            x: 80.0,
            y: 60.0,
            width: 30.0,
            height: 30.0,
        };
        let crop = face_crop(&image, &bbox);
        assert_eq!(crop.height(), FACE_HEIGHT);
        let context = context_picture(&image, &bbox);
        assert_eq!((context.width(), context.height()), (100, 80));
        assert!(!encode_jpeg(&crop).unwrap().is_empty());
    }

    #[test]
    fn other_moments_spread_over_the_presence_away_from_the_key_frame() {
        let seen: Vec<f64> = (0..20).map(|i| f64::from(i) * 0.5).collect();
        let m = other_moments(&seen, 4.0, 2);
        assert_eq!(m.len(), 2);
        assert!(m.iter().all(|t| (t - 4.0).abs() >= 1.0), "{m:?}");
        assert!(m[0] < m[1]);
        assert!(other_moments(&[4.0, 4.5], 4.0, 2).is_empty());
    }
}
