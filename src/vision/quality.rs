//! How good a face chip is for telling people apart: its sharpness. Computed on the chip the
//! embedding model reads, in memory; neither the chip nor the figure of a face is kept beyond
//! the frame's tracking.

use image::RgbImage;

/// Variance of the 4-neighbour Laplacian of the chip's grey levels (0..255, BT.601 luma),
/// over the interior pixels. A sharp face chip has strong edges (eyes, nostrils, mouth) and a
/// high variance; a blurred or upscaled-from-tiny one a low variance. 0 for a chip smaller than
/// 3×3.
pub fn sharpness(chip: &RgbImage) -> f32 {
    let (w, h) = (chip.width() as usize, chip.height() as usize);
    if w < 3 || h < 3 {
        return 0.0;
    }
    let grey: Vec<f64> = chip
        .pixels()
        .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
        .collect();
    let (mut sum, mut sum_sq, mut n) = (0.0f64, 0.0f64, 0.0f64);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let c = grey[y * w + x];
            let l = grey[(y - 1) * w + x]
                + grey[(y + 1) * w + x]
                + grey[y * w + x - 1]
                + grey[y * w + x + 1]
                - 4.0 * c;
            sum += l;
            sum_sq += l * l;
            n += 1.0;
        }
    }
    let mean = sum / n;
    (sum_sq / n - mean * mean).max(0.0) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn a_flat_chip_has_none_and_blurring_lowers_it() {
        assert_eq!(
            sharpness(&RgbImage::from_pixel(16, 16, Rgb([90, 90, 90]))),
            0.0
        );
        assert_eq!(sharpness(&RgbImage::new(2, 2)), 0.0);
        // A checkerboard of 4-pixel squares: strong edges.
        let board = RgbImage::from_fn(32, 32, |x, y| {
            if (x / 4 + y / 4) % 2 == 0 {
                Rgb([230, 230, 230])
            } else {
                Rgb([20, 20, 20])
            }
        });
        let sharp = sharpness(&board);
        let blurred = sharpness(&image::imageops::blur(&board, 2.0));
        assert!(sharp > 1000.0, "{sharp}");
        assert!(blurred < sharp / 4.0, "{blurred} vs {sharp}");
    }
}
