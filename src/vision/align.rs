//! Face chips: the five landmarks mapped onto a model's template by a least-squares similarity
//! (rotation, uniform scale, translation), then the chip sampled from the image. The same steps
//! dlib's `extract_image_chip` takes, so the dlib-trained gender and age models see what they
//! were trained on, and the ArcFace-style template SFace expects.

use super::manifest::{AlignSpec, AlignTemplate, InputSpec, SquareSpec};
use crate::domain::Landmarks;
use image::RgbImage;
use ndarray::Array4;

/// Chip positions of YuNet's five landmarks in a dlib face chip with padding 0.2, as fractions
/// of the chip size (fitted on 38 faces against dlib's own 5-point shape model; MODELS.md).
pub const DLIB5_TEMPLATE_PADDING_02: [[f32; 2]; 5] = [
    [0.29146, 0.28153],
    [0.67109, 0.26196],
    [0.48648, 0.49521],
    [0.34546, 0.67398],
    [0.67003, 0.65962],
];
const DLIB5_FITTED_PADDING: f32 = 0.2;

/// The ArcFace five-point template, in pixels of a 112×112 chip.
pub const ARCFACE_112: [[f32; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// Where the five landmarks must land in a chip of `width`×`height` pixels.
pub fn template_points(align: &AlignSpec, width: u32, height: u32) -> Landmarks {
    let (w, h) = (width as f32, height as f32);
    let mut out = [[0.0; 2]; 5];
    match align.template {
        AlignTemplate::Dlib5 => {
            // dlib pads the unit face square by `padding` on each side; the template was fitted at
            // 0.2, so undo that padding and apply the requested one.
            let (p0, p) = (DLIB5_FITTED_PADDING, align.padding);
            for (o, t) in out.iter_mut().zip(DLIB5_TEMPLATE_PADDING_02) {
                let unpadded = |v: f32| v * (1.0 + 2.0 * p0) - p0;
                let padded = |v: f32| (unpadded(v) + p) / (1.0 + 2.0 * p);
                *o = [padded(t[0]) * w, padded(t[1]) * h];
            }
        }
        AlignTemplate::Arcface112 => {
            for (o, t) in out.iter_mut().zip(ARCFACE_112) {
                *o = [t[0] * w / 112.0, t[1] * h / 112.0];
            }
        }
    }
    out
}

/// A similarity transform taking chip pixels to image pixels:
/// x = a·u − b·v + tx, y = b·u + a·v + ty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a: f64,
    pub b: f64,
    pub tx: f64,
    pub ty: f64,
}

impl Similarity {
    pub fn apply(&self, u: f64, v: f64) -> (f64, f64) {
        (
            self.a * u - self.b * v + self.tx,
            self.b * u + self.a * v + self.ty,
        )
    }

    /// Image pixels per chip pixel.
    pub fn scale(&self) -> f64 {
        self.a.hypot(self.b)
    }
}

/// Least-squares similarity from `from` to `to` (Umeyama's solution, which in 2-D is the linear
/// least-squares fit of [a, b, tx, ty]). None when `from` has no spread or a value is not finite.
pub fn fit_similarity(from: &Landmarks, to: &Landmarks) -> Option<Similarity> {
    let n = from.len() as f64;
    let mean = |pts: &Landmarks| {
        let (sx, sy) = pts
            .iter()
            .fold((0.0, 0.0), |(x, y), p| (x + p[0] as f64, y + p[1] as f64));
        (sx / n, sy / n)
    };
    let (fx, fy) = mean(from);
    let (tx, ty) = mean(to);
    let (mut var, mut sa, mut sb) = (0.0, 0.0, 0.0);
    for (f, t) in from.iter().zip(to) {
        let (u, v) = (f[0] as f64 - fx, f[1] as f64 - fy);
        let (x, y) = (t[0] as f64 - tx, t[1] as f64 - ty);
        var += u * u + v * v;
        sa += u * x + v * y;
        sb += u * y - v * x;
    }
    if !(var.is_finite() && sa.is_finite() && sb.is_finite()) || var < 1e-9 {
        return None;
    }
    let (a, b) = (sa / var, sb / var);
    Some(Similarity {
        a,
        b,
        tx: tx - (a * fx - b * fy),
        ty: ty - (b * fx + a * fy),
    })
}

/// Sample a `width`×`height` chip through `chip_to_image`. While one chip pixel spans more than
/// two image pixels the source is first halved by 2×2 averaging (dlib's pyramid), so a small
/// chip of a large face averages the face instead of picking scattered pixels. Bilinear
/// sampling; chip pixels whose 2×2 neighbourhood leaves the image are black (as in dlib).
pub fn warp_chip(
    image: &RgbImage,
    chip_to_image: &Similarity,
    width: u32,
    height: u32,
) -> RgbImage {
    let mut t = *chip_to_image;
    let mut levels = 0u32;
    while t.scale() / f64::from(1u32 << levels) > 2.0 && levels < 16 {
        levels += 1;
    }
    // Only the chip's footprint (plus a margin for the pyramid and the bilinear taps) is
    // pyramided, not the whole poster; its origin is aligned so that the 2×2 blocks are the ones
    // a whole-image pyramid would use.
    let corners = [
        t.apply(0.0, 0.0),
        t.apply(width as f64, 0.0),
        t.apply(0.0, height as f64),
        t.apply(width as f64, height as f64),
    ];
    let block = 1i64 << levels;
    let margin = 2 * block + 2;
    let (iw, ih) = (image.width() as i64, image.height() as i64);
    let min_x = corners.iter().map(|c| c.0).fold(f64::INFINITY, f64::min);
    let max_x = corners
        .iter()
        .map(|c| c.0)
        .fold(f64::NEG_INFINITY, f64::max);
    let min_y = corners.iter().map(|c| c.1).fold(f64::INFINITY, f64::min);
    let max_y = corners
        .iter()
        .map(|c| c.1)
        .fold(f64::NEG_INFINITY, f64::max);
    if !(min_x.is_finite() && max_x.is_finite() && min_y.is_finite() && max_y.is_finite()) {
        return RgbImage::new(width, height);
    }
    let x0 = ((min_x as i64 - margin).max(0) / block) * block;
    let y0 = ((min_y as i64 - margin).max(0) / block) * block;
    let x1 = (max_x as i64 + margin).min(iw);
    let y1 = (max_y as i64 + margin).min(ih);
    if x1 <= x0 || y1 <= y0 {
        return RgbImage::new(width, height);
    }
    let mut src = crop(
        image,
        x0 as u32,
        y0 as u32,
        (x1 - x0) as u32,
        (y1 - y0) as u32,
    );
    t.tx -= x0 as f64;
    t.ty -= y0 as f64;
    // Pixels at the image's right/bottom edge pair with pixels of the next block in a
    // whole-image pyramid only when the crop stops before the edge; otherwise the last odd
    // column is dropped, as a whole-image 2×2 pyramid would.
    for _ in 0..levels {
        if src.width() < 2 || src.height() < 2 {
            break;
        }
        src = super::detect::halve(&src);
        // Level pixel i averages source pixels 2i and 2i+1, centred at 2i + 0.5.
        t = Similarity {
            a: t.a / 2.0,
            b: t.b / 2.0,
            tx: (t.tx - 0.5) / 2.0,
            ty: (t.ty - 0.5) / 2.0,
        };
    }
    let mut chip = RgbImage::new(width, height);
    let (sw, sh) = (src.width() as i64, src.height() as i64);
    let raw = src.as_raw();
    for r in 0..height {
        for c in 0..width {
            let (x, y) = t.apply(c as f64, r as f64);
            let (xf, yf) = (x.floor(), y.floor());
            let (xi, yi) = (xf as i64, yf as i64);
            if xi < 0 || yi < 0 || xi + 1 >= sw || yi + 1 >= sh {
                continue;
            }
            let (dx, dy) = (x - xf, y - yf);
            let at = |xx: i64, yy: i64, ch: usize| raw[((yy * sw + xx) * 3) as usize + ch] as f64;
            let mut px = [0u8; 3];
            for (ch, p) in px.iter_mut().enumerate() {
                let top = at(xi, yi, ch) * (1.0 - dx) + at(xi + 1, yi, ch) * dx;
                let bottom = at(xi, yi + 1, ch) * (1.0 - dx) + at(xi + 1, yi + 1, ch) * dx;
                *p = (top * (1.0 - dy) + bottom * dy).round().clamp(0.0, 255.0) as u8;
            }
            chip.put_pixel(c, r, image::Rgb(px));
        }
    }
    chip
}

/// The chip a model sees for one face, or None when the landmarks are degenerate.
pub fn face_chip(
    image: &RgbImage,
    landmarks: &Landmarks,
    align: &AlignSpec,
    width: u32,
    height: u32,
) -> Option<RgbImage> {
    let template = template_points(align, width, height);
    let t = fit_similarity(&template, landmarks)?;
    Some(warp_chip(image, &t, width, height))
}

/// face-api.js's square crop of one face as (left, top, side) in image pixels: e, e' = eye
/// centres, m = mean of the mouth corners, d = mean of |e − m| and |e' − m|; side = d /
/// `eye_mouth`; top-left = centroid(e, e', m) − `offset` · side. Axis-aligned: the face keeps its
/// roll, as in the crops the network was trained on. None when the points are degenerate.
pub fn square_box(landmarks: &Landmarks, spec: &SquareSpec) -> Option<(f64, f64, f64)> {
    let p = |i: usize| (f64::from(landmarks[i][0]), f64::from(landmarks[i][1]));
    let (le, re) = (p(0), p(1));
    let mo = ((p(3).0 + p(4).0) / 2.0, (p(3).1 + p(4).1) / 2.0);
    let dist = |a: (f64, f64), b: (f64, f64)| (a.0 - b.0).hypot(a.1 - b.1);
    let d = (dist(le, mo) + dist(re, mo)) / 2.0;
    let side = d / f64::from(spec.eye_mouth);
    if !(side.is_finite() && side >= 1.0) {
        return None;
    }
    let cx = (le.0 + re.0 + mo.0) / 3.0;
    let cy = (le.1 + re.1 + mo.1) / 3.0;
    Some((
        cx - f64::from(spec.offset[0]) * side,
        cy - f64::from(spec.offset[1]) * side,
        side,
    ))
}

/// The `size`×`size` crop of [`square_box`]: chip pixel (c, r) is the bilinear sample at
/// (left + c·s, top + r·s), s = side / size, with no pre-filter (face-api resizes the same way);
/// pixels whose taps leave the image are black; values rounded half to even, as NumPy does in
/// the golden script.
pub fn square_crop(
    image: &RgbImage,
    landmarks: &Landmarks,
    spec: &SquareSpec,
    size: u32,
) -> Option<RgbImage> {
    let (x0, y0, side) = square_box(landmarks, spec)?;
    let s = side / f64::from(size);
    let (w, h) = (i64::from(image.width()), i64::from(image.height()));
    let raw = image.as_raw();
    let mut chip = RgbImage::new(size, size);
    for r in 0..size {
        for c in 0..size {
            let (x, y) = (x0 + f64::from(c) * s, y0 + f64::from(r) * s);
            let (xf, yf) = (x.floor(), y.floor());
            let (xi, yi) = (xf as i64, yf as i64);
            if xi < 0 || yi < 0 || xi + 1 >= w || yi + 1 >= h {
                continue;
            }
            let (dx, dy) = (x - xf, y - yf);
            let at =
                |xx: i64, yy: i64, ch: usize| f64::from(raw[((yy * w + xx) * 3) as usize + ch]);
            let mut px = [0u8; 3];
            for (ch, v) in px.iter_mut().enumerate() {
                let top = at(xi, yi, ch) * (1.0 - dx) + at(xi + 1, yi, ch) * dx;
                let bottom = at(xi, yi + 1, ch) * (1.0 - dx) + at(xi + 1, yi + 1, ch) * dx;
                *v = (top * (1.0 - dy) + bottom * dy)
                    .round_ties_even()
                    .clamp(0.0, 255.0) as u8;
            }
            chip.put_pixel(c, r, image::Rgb(px));
        }
    }
    Some(chip)
}

/// Pack chips into one NHWC batch of raw pixel values in `spec.color` order, `(pixel − mean) /
/// std` per channel (a model that normalises inside its graph declares mean 0 and std 1).
pub fn pack_chips_nhwc(chips: &[RgbImage], spec: &InputSpec) -> Array4<f32> {
    let (w, h) = (spec.width as usize, spec.height as usize);
    let order = super::detect::channel_order(spec.color);
    let mut batch = Array4::<f32>::zeros((chips.len(), h, w, 3));
    for (n, chip) in chips.iter().enumerate() {
        for (x, y, px) in chip.enumerate_pixels() {
            let (x, y) = (x as usize, y as usize);
            if x >= w || y >= h {
                continue;
            }
            for (c, &src) in order.iter().enumerate() {
                batch[[n, y, x, c]] = (px.0[src] as f32 - spec.mean[c]) / spec.std[c];
            }
        }
    }
    batch
}

/// Pack chips into one NCHW batch: channel order, mean and std from the model's input spec.
/// Chips must already be the input size.
pub fn pack_chips(chips: &[RgbImage], spec: &InputSpec) -> Array4<f32> {
    let (w, h) = (spec.width as usize, spec.height as usize);
    let order = super::detect::channel_order(spec.color);
    let mut batch = Array4::<f32>::zeros((chips.len(), 3, h, w));
    for (n, chip) in chips.iter().enumerate() {
        for (x, y, px) in chip.enumerate_pixels() {
            let (x, y) = (x as usize, y as usize);
            if x >= w || y >= h {
                continue;
            }
            for (c, &src) in order.iter().enumerate() {
                batch[[n, c, y, x]] = (px.0[src] as f32 - spec.mean[c]) / spec.std[c];
            }
        }
    }
    batch
}

/// The `width`×`height` rectangle at (`x`, `y`), which lies inside `image`, copied row by row
/// (`imageops::crop_imm(..).to_image()` copies pixel by pixel).
pub fn crop(image: &RgbImage, x: u32, y: u32, width: u32, height: u32) -> RgbImage {
    let stride = image.width() as usize * 3;
    let (x, y, w) = (x as usize, y as usize, width as usize);
    let raw = image.as_raw();
    let mut out = Vec::with_capacity(w * 3 * height as usize);
    for row in raw[y * stride..].chunks(stride).take(height as usize) {
        out.extend_from_slice(&row[x * 3..(x + w) * 3]);
    }
    RgbImage::from_raw(width, height, out).expect("the rectangle lies inside the image")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::manifest::{ColorOrder, Layout, Resize};

    fn dlib(padding: f32) -> AlignSpec {
        AlignSpec {
            template: AlignTemplate::Dlib5,
            padding,
        }
    }

    #[test]
    fn dlib_template_at_its_fitted_padding_is_the_published_one() {
        let p = template_points(&dlib(0.2), 100, 100);
        assert!((p[0][0] - 29.146).abs() < 1e-3 && (p[4][1] - 65.962).abs() < 1e-3);
        // More padding pulls the landmarks towards the centre.
        let q = template_points(&dlib(0.5), 100, 100);
        assert!(q[1][0] - q[0][0] < p[1][0] - p[0][0]);
        let a = template_points(
            &AlignSpec {
                template: AlignTemplate::Arcface112,
                padding: 0.0,
            },
            112,
            112,
        );
        assert_eq!(a[2], [56.0252, 71.7366]);
    }

    #[test]
    fn fit_recovers_a_known_similarity() {
        let truth = Similarity {
            a: 2.0 * 0.3f64.cos(),
            b: 2.0 * 0.3f64.sin(),
            tx: 40.0,
            ty: -7.0,
        };
        let from = template_points(&dlib(0.2), 32, 32);
        let mut to = from;
        for p in to.iter_mut() {
            let (x, y) = truth.apply(p[0] as f64, p[1] as f64);
            *p = [x as f32, y as f32];
        }
        let fit = fit_similarity(&from, &to).unwrap();
        assert!((fit.a - truth.a).abs() < 1e-4 && (fit.b - truth.b).abs() < 1e-4);
        assert!((fit.tx - truth.tx).abs() < 1e-3 && (fit.ty - truth.ty).abs() < 1e-3);
        assert!((fit.scale() - 2.0).abs() < 1e-4);
        assert!(fit_similarity(&[[1.0, 1.0]; 5], &to).is_none());
    }

    #[test]
    fn fit_is_least_squares_under_noise() {
        // Moving one target point moves the fit by a fifth of that, not all of it.
        let from = template_points(&dlib(0.2), 64, 64);
        let mut to = from;
        to[2][0] += 5.0;
        let fit = fit_similarity(&from, &to).unwrap();
        // The centroid maps onto the centroid: shifted by 5/5 = 1 px.
        let cx = from.iter().map(|p| p[0] as f64).sum::<f64>() / 5.0;
        let cy = from.iter().map(|p| p[1] as f64).sum::<f64>() / 5.0;
        let (mx, my) = fit.apply(cx, cy);
        assert!(
            (mx - cx - 1.0).abs() < 1e-4 && (my - cy).abs() < 1e-4,
            "{fit:?}"
        );
        // The moved point keeps most of its error: the others are not bent to it.
        let (x2, _) = fit.apply(from[2][0] as f64, from[2][1] as f64);
        assert!(to[2][0] as f64 - x2 > 3.0, "{fit:?}");
        assert!((fit.scale() - 1.0).abs() < 0.05);
    }

    #[test]
    fn identity_warp_copies_pixels() {
        let mut img = RgbImage::new(8, 8);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([x as u8 * 10, y as u8 * 10, 7]);
        }
        let id = Similarity {
            a: 1.0,
            b: 0.0,
            tx: 2.0,
            ty: 1.0,
        };
        let chip = warp_chip(&img, &id, 4, 4);
        assert_eq!(chip.get_pixel(0, 0).0, [20, 10, 7]);
        assert_eq!(chip.get_pixel(3, 2).0, [50, 30, 7]);
        // Half-pixel shift interpolates.
        let half = Similarity { tx: 2.5, ..id };
        assert_eq!(warp_chip(&img, &half, 4, 4).get_pixel(0, 0).0, [25, 10, 7]);
        // Outside the image: black.
        let out = Similarity { tx: 6.0, ..id };
        assert_eq!(warp_chip(&img, &out, 4, 4).get_pixel(3, 0).0, [0, 0, 0]);
    }

    #[test]
    fn a_large_face_is_averaged_not_aliased() {
        // A fine 1-pixel checkerboard seen at 8 image px per chip px: the pyramid averages it
        // to grey; point sampling would give pure black or white.
        let mut img = RgbImage::new(256, 256);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb(if (x + y) % 2 == 0 { [0; 3] } else { [200; 3] });
        }
        let t = Similarity {
            a: 8.0,
            b: 0.0,
            tx: 40.0,
            ty: 40.0,
        };
        let chip = warp_chip(&img, &t, 16, 16);
        for p in chip.pixels() {
            assert!((90..=110).contains(&p.0[0]), "{p:?}");
        }
    }

    #[test]
    fn the_square_box_follows_face_apis_rule() {
        // Eyes at (40, 50) and (60, 50), mouth corners at (44, 70) and (56, 70): m = (50, 70),
        // d = |(10, 20)| = 22.36, side = d / 0.5 = 44.72, centroid (50, 56.67).
        let lm = [
            [40.0, 50.0],
            [60.0, 50.0],
            [50.0, 60.0],
            [44.0, 70.0],
            [56.0, 70.0],
        ];
        let spec = SquareSpec {
            eye_mouth: 0.5,
            offset: [0.5, 0.25],
        };
        let (x, y, side) = square_box(&lm, &spec).unwrap();
        let want = 500f64.sqrt() / 0.5;
        assert!((side - want).abs() < 1e-4, "{side}");
        assert!((x - (50.0 - 0.5 * want)).abs() < 1e-4, "{x}");
        assert!((y - (170.0 / 3.0 - 0.25 * want)).abs() < 1e-4, "{y}");
        assert!(square_box(&[[3.0, 3.0]; 5], &spec).is_none());
    }

    #[test]
    fn a_square_crop_at_one_pixel_per_pixel_copies_and_leaves_the_outside_black() {
        // Eyes (10, 10) and (30, 10), mouth centre (20, 34): d = 26, side 26 at the centroid
        // (20, 18) with offset 0, so a 26-pixel crop copies image pixel (20 + c, 18 + r).
        let lm = [
            [10.0, 10.0],
            [30.0, 10.0],
            [20.0, 20.0],
            [14.0, 34.0],
            [26.0, 34.0],
        ];
        let spec = SquareSpec {
            eye_mouth: 1.0,
            offset: [0.0, 0.0],
        };
        let image = RgbImage::from_fn(40, 40, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let chip = square_crop(&image, &lm, &spec, 26).unwrap();
        for (c, r, px) in chip.enumerate_pixels() {
            let (x, y) = (20 + c, 18 + r);
            if x + 1 >= 40 || y + 1 >= 40 {
                assert_eq!(px.0, [0, 0, 0], "({c}, {r}) is outside");
            } else {
                assert_eq!(px.0, [x as u8, y as u8, 7], "({c}, {r})");
            }
        }
        assert!(square_crop(&image, &[[3.0, 3.0]; 5], &spec, 26).is_none());
    }

    #[test]
    fn chips_pack_with_the_spec_normalisation() {
        let mut chip = RgbImage::new(2, 2);
        chip.put_pixel(1, 0, image::Rgb([130, 117, 104]));
        let spec = InputSpec {
            name: "images".into(),
            width: 2,
            height: 2,
            layout: Layout::Nchw,
            color: ColorOrder::Rgb,
            mean: [122.0, 117.0, 100.0],
            std: [256.0, 256.0, 2.0],
            resize: Resize::Align,
        };
        let b = pack_chips(&[chip.clone(), chip.clone()], &spec);
        assert_eq!(b.shape(), [2, 3, 2, 2]);
        assert_eq!(b[[1, 0, 0, 1]], 8.0 / 256.0);
        assert_eq!(b[[1, 1, 0, 1]], 0.0);
        assert_eq!(b[[1, 2, 0, 1]], 2.0);
        assert_eq!(b[[0, 2, 0, 0]], -50.0);
        let bgr = InputSpec {
            color: ColorOrder::Bgr,
            mean: [0.0; 3],
            std: [1.0; 3],
            ..spec
        };
        let b = pack_chips(&[chip], &bgr);
        assert_eq!((b[[0, 0, 0, 1]], b[[0, 2, 0, 1]]), (104.0, 130.0));
    }
}
