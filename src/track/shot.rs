//! Shot cuts between consecutive sampled frames.
//!
//! At 2 samples/s a cut falls between two samples, so it is read off the samples themselves.
//! Once per sampled frame a signature is computed: a joint RGB histogram (4 levels per channel,
//! soft-binned, 64 bins) and an 8×8 grid of mean luma divided by the frame's mean luma (so a
//! change of exposure does not move it). Two frames' distance is the mean of the colour
//! distance (half the L1 distance of the histograms) and the layout distance (mean absolute
//! difference of the grids), in [0, 1]. Colour alone could not separate some pairs of portraits
//! from a 10% pan with 12% more light; layout alone neither; their mean did. The threshold
//! (`AnalysisSettings::shot_cut_distance`, default 0.22) sits between the largest within-shot
//! and the smallest across-shot distance the tests measure on the fixture photographs (printed
//! by `cargo test --lib track::shot -- --nocapture`); these are portraits, not trailer frames,
//! so the threshold is a first setting to check on real trailers. Limits: a cut between two
//! shots of the same set and light (shot / reverse shot) can be missed, a flash or a whip pan
//! taken for a cut. A missed cut is partly caught by the embedding guard when linking faces; a
//! false cut only splits a track, which the embeddings merge back across shots.

use image::RgbImage;

const LEVELS: usize = 4;
const BINS: usize = LEVELS * LEVELS * LEVELS;
const GRID: usize = 8;
/// At most about this many pixels are read per frame: plenty for a 64-bin histogram.
const TARGET_SAMPLES: u32 = 256 * 144;

/// A small colour summary of one sampled frame (no pixels are kept).
#[derive(Debug, Clone, PartialEq)]
pub struct FrameSignature {
    histogram: [f32; BINS],
    /// Mean luma per cell of a GRID×GRID grid, divided by the frame's mean luma.
    layout: [f32; GRID * GRID],
}

impl FrameSignature {
    /// Computed on a regular grid of at most about 37 000 pixels, whatever the frame size.
    pub fn from_image(image: &RgbImage) -> FrameSignature {
        let (w, h) = image.dimensions();
        let mut histogram = [0f32; BINS];
        let mut layout = [0f32; GRID * GRID];
        let mut cell_count = [0f32; GRID * GRID];
        if w == 0 || h == 0 {
            return FrameSignature { histogram, layout };
        }
        let stride = ((u64::from(w) * u64::from(h) / u64::from(TARGET_SAMPLES)) as f64)
            .sqrt()
            .max(1.0) as u32;
        let mut count = 0u32;
        for y in (0..h).step_by(stride as usize) {
            for x in (0..w).step_by(stride as usize) {
                // Soft (trilinear) binning: a pixel near a bin edge is shared between the two
                // bins, so a slight change of light does not move it wholesale.
                let px = image.get_pixel(x, y).0;
                let cell = (y as usize * GRID / h as usize) * GRID + x as usize * GRID / w as usize;
                layout[cell] +=
                    0.299 * f32::from(px[0]) + 0.587 * f32::from(px[1]) + 0.114 * f32::from(px[2]);
                cell_count[cell] += 1.0;
                let rgb = px.map(soft_level);
                for (ri, rw) in [(rgb[0].0, 1.0 - rgb[0].1), (rgb[0].0 + 1, rgb[0].1)] {
                    for (gi, gw) in [(rgb[1].0, 1.0 - rgb[1].1), (rgb[1].0 + 1, rgb[1].1)] {
                        for (bi, bw) in [(rgb[2].0, 1.0 - rgb[2].1), (rgb[2].0 + 1, rgb[2].1)] {
                            let w = rw * gw * bw;
                            if w > 0.0 {
                                histogram[(ri.min(LEVELS - 1) * LEVELS + gi.min(LEVELS - 1))
                                    * LEVELS
                                    + bi.min(LEVELS - 1)] += w;
                            }
                        }
                    }
                }
                count += 1;
            }
        }
        for bin in &mut histogram {
            *bin /= count as f32;
        }
        for (cell, n) in layout.iter_mut().zip(cell_count) {
            *cell /= n.max(1.0);
        }
        let mean = layout.iter().sum::<f32>() / layout.len() as f32;
        for cell in &mut layout {
            *cell /= mean.max(1.0);
        }
        FrameSignature { histogram, layout }
    }

    /// How different two sampled frames look, in [0, 1]: the mean of the colour distance
    /// (half the L1 distance of the histograms) and the layout distance (mean absolute
    /// difference of the gain-normalised luma grids, capped at 1).
    pub fn distance(&self, other: &FrameSignature) -> f32 {
        let colour: f32 = self
            .histogram
            .iter()
            .zip(&other.histogram)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / 2.0;
        let layout: f32 = self
            .layout
            .iter()
            .zip(&other.layout)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / self.layout.len() as f32;
        ((colour.clamp(0.0, 1.0) + layout.clamp(0.0, 1.0)) / 2.0).clamp(0.0, 1.0)
    }
}

/// The lower bin of a channel value and the weight of the upper one (bin centres at
/// (i + 0.5) × 256 / LEVELS; values beyond the outer centres stay in the outer bin).
fn soft_level(v: u8) -> (usize, f32) {
    let pos = (f32::from(v) + 0.5) * LEVELS as f32 / 256.0 - 0.5;
    if pos <= 0.0 {
        return (0, 0.0);
    }
    let lower = pos.floor();
    (lower as usize, pos - lower)
}

/// Whether a shot cut lies between two consecutive sampled frames.
pub fn is_cut(previous: &FrameSignature, current: &FrameSignature, threshold: f32) -> bool {
    previous.distance(current) >= threshold
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AnalysisSettings;
    use image::imageops;
    use std::path::Path;

    fn fixture(name: &str) -> RgbImage {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/faces")
            .join(name);
        image::open(&path)
            .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
            .to_rgb8()
    }

    /// The same shot half a second later: the camera drifted by `shift` of the frame and the
    /// light changed by `gain`.
    fn later_in_shot(img: &RgbImage, shift: f32, gain: f32) -> RgbImage {
        let (w, h) = img.dimensions();
        let dx = (w as f32 * shift) as u32;
        let crop = imageops::crop_imm(img, dx, 0, w - dx, h).to_image();
        let mut out = imageops::resize(&crop, w, h, imageops::FilterType::Triangle);
        for p in out.pixels_mut() {
            for c in &mut p.0 {
                *c = (*c as f32 * gain).min(255.0) as u8;
            }
        }
        out
    }

    #[test]
    fn identical_frames_have_distance_zero() {
        let img = fixture("astronaut.png");
        let s = FrameSignature::from_image(&img);
        assert_eq!(s.distance(&s), 0.0);
    }

    #[test]
    fn motion_within_a_shot_is_not_a_cut_and_a_new_shot_is() {
        let threshold = AnalysisSettings::default().shot_cut_distance;
        let names = [
            "astronaut.png",
            "ardern_1.jpg",
            "ardern_2.jpg",
            "biden_1.jpg",
            "macron_2.jpg",
            "obama_1.jpg",
            "obama_2.jpg",
            "sunak_1.jpg",
        ];
        let signatures: Vec<(FrameSignature, FrameSignature)> = names
            .iter()
            .map(|n| {
                let img = fixture(n);
                let moved = later_in_shot(&img, 0.10, 1.12);
                (
                    FrameSignature::from_image(&img),
                    FrameSignature::from_image(&moved),
                )
            })
            .collect();
        let mut within_max = 0f32;
        for (name, (still, moved)) in names.iter().zip(&signatures) {
            let d = still.distance(moved);
            eprintln!("{name}: within-shot distance {d:.3}");
            within_max = within_max.max(d);
            assert!(!is_cut(still, moved, threshold), "{name}: {d}");
        }
        let mut across_min = 1f32;
        for i in 0..names.len() {
            for j in i + 1..names.len() {
                let d = signatures[i].0.distance(&signatures[j].0);
                across_min = across_min.min(d);
                assert!(
                    is_cut(&signatures[i].0, &signatures[j].0, threshold),
                    "{} → {}: {d}",
                    names[i],
                    names[j]
                );
            }
        }
        eprintln!("within-shot max {within_max:.3}, across-shot min {across_min:.3}");
    }

    #[test]
    fn an_empty_frame_does_not_panic() {
        let empty = FrameSignature::from_image(&RgbImage::new(0, 0));
        let grey = FrameSignature::from_image(&RgbImage::from_pixel(4, 4, image::Rgb([128; 3])));
        let d = empty.distance(&grey);
        assert!(d > 0.0 && d <= 1.0, "{d}");
    }
}
