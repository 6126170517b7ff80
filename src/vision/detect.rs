//! Face detection without ONNX Runtime: which views of an image the detector sees, how a view is
//! filled, how YuNet's outputs become boxes, and how boxes from several views merge.
//!
//! Windows are at most 640×640. A graph with a fixed input size gets every view letterboxed into
//! exactly that size; a graph that takes any size (the derived YuNet, see
//! `scripts/derive_yunet_any_size.py`) gets each window cut to its view, rounded up to the largest
//! stride ([`InputWindow`]): a 16:9 frame is one 640×384 run, not 640×640 with 256 rows of
//! padding. The views and their scales are the same either way; only the padding goes.
//!
//! YuNet finds faces from about 14 to 600 input pixels tall
//! (measured on the astronaut photo scaled to each size: score ≥ 0.76 from 14 px to 600 px, nothing
//! at 10 px). A poster is 2000×3000: letterboxed whole, a face needs ≥ 75 source px to reach
//! 16 input px, so small faces need finer views. The plan:
//!
//! * level 0, the whole image scaled (never up) into one input: every face from ~16/s0 source
//!   pixels to the full image;
//! * then, while level k misses faces the caller wants (16/s_k > smallest face), a finer level at
//!   the scale that brings the smallest planned face to 16 input px, cut into 640² tiles. A tile
//!   keeps only faces up to twice the coarser level's smallest (bigger ones are the coarser
//!   level's job, and a tile sees them cut or too big), and tiles overlap by 1.2× that size,
//!   so every face a tile keeps is whole in at least one tile. Boxes touching a tile edge that
//!   lies inside the image are dropped (the face is cut there and whole in a neighbour).
//!
//! The smallest planned face is 32 px (faces below ~40 px are `unknown` for the attributes
//! anyway): a 2000×3000 poster takes 1 + 6 runs, a 1920×1080 frame 1 + 2, anything ≤ 640 one.

use super::manifest::{ColorOrder, InputSpec};
use crate::domain::{BoundingBox, Detection, Landmarks};
use image::RgbImage;

/// Knobs of the view plan, measured on YuNet 2023mar (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TilePolicy {
    /// Smallest face height (input px) YuNet finds reliably.
    pub min_face_input_px: f32,
    /// Largest face height (input px) YuNet finds reliably; bounds how far one level may jump.
    pub max_face_input_px: f32,
    /// Faces smaller than this (source px) are not planned for, whatever `min_face_px` says:
    /// finding 16 px faces on a poster would take ~20 runs.
    pub smallest_planned_face_px: f32,
    /// A finer level keeps faces up to this multiple of the coarser level's smallest face.
    pub handover: f32,
    /// Tile overlap as a multiple of the largest face a tile keeps.
    pub overlap_factor: f32,
    /// Boxes closer than this (input px) to an inner tile edge are taken as cut.
    pub edge_margin_px: f32,
}

impl Default for TilePolicy {
    fn default() -> Self {
        TilePolicy {
            min_face_input_px: 16.0,
            max_face_input_px: 400.0,
            smallest_planned_face_px: 32.0,
            handover: 2.0,
            overlap_factor: 1.2,
            edge_margin_px: 2.0,
        }
    }
}

/// The detector's input windows: the largest size, and whether smaller ones may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputWindow {
    pub width: u32,
    pub height: u32,
    /// `Some(m)`: the graph takes any size that is a multiple of `m` (its largest stride), so a
    /// window shrinks to its view rounded up to `m`. `None`: every window is `width × height`.
    pub multiple: Option<u32>,
}

impl InputWindow {
    /// A graph that takes only `width × height`.
    pub fn fixed(width: u32, height: u32) -> Self {
        InputWindow {
            width,
            height,
            multiple: None,
        }
    }

    /// The window for a level of `level_width × level_height` pixels.
    pub fn for_level(&self, level_width: u32, level_height: u32) -> (u32, u32) {
        match self.multiple {
            None => (self.width, self.height),
            Some(m) => {
                let m = m.max(1);
                let fit = |len: u32, max: u32| len.max(1).div_ceil(m).saturating_mul(m).min(max);
                (fit(level_width, self.width), fit(level_height, self.height))
            }
        }
    }
}

/// One scale of the image and the windows cut from it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanLevel {
    /// Size of the image at this level (≤ the source size: never upscaled).
    pub width: u32,
    pub height: u32,
    /// Size of every window of this level (the detector input of each run).
    pub window_width: u32,
    pub window_height: u32,
    /// Window origins in this level's pixels.
    pub tiles: Vec<(u32, u32)>,
    /// Detections taller than this (source px) are left to coarser levels.
    pub keep_max_face_px: f32,
}

impl PlanLevel {
    /// Level pixels per source pixel, horizontally and vertically.
    pub fn scale(&self, source_width: u32, source_height: u32) -> (f32, f32) {
        (
            self.width as f32 / source_width as f32,
            self.height as f32 / source_height as f32,
        )
    }
}

/// Every detector run for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionPlan {
    pub source_width: u32,
    pub source_height: u32,
    pub levels: Vec<PlanLevel>,
}

impl DetectionPlan {
    /// Number of detector runs.
    pub fn runs(&self) -> usize {
        self.levels.iter().map(|l| l.tiles.len()).sum()
    }

    /// Input pixels over all runs (the detector's work grows with it).
    pub fn input_pixels(&self) -> u64 {
        self.levels
            .iter()
            .map(|l| l.tiles.len() as u64 * u64::from(l.window_width) * u64::from(l.window_height))
            .sum()
    }
}

/// Plan the views for an image so that faces from `max(min_face_px, policy floor)` source pixels
/// up to the whole image are each seen whole, at a size YuNet handles, by at least one view.
pub fn plan_views(
    width: u32,
    height: u32,
    input: InputWindow,
    min_face_px: f32,
    policy: &TilePolicy,
) -> DetectionPlan {
    let (input_width, input_height) = (input.width, input.height);
    let (w, h) = (width.max(1) as f32, height.max(1) as f32);
    let s0 = (input_width as f32 / w)
        .min(input_height as f32 / h)
        .min(1.0);
    let scaled = |s: f32| {
        (
            ((w * s).round() as u32).clamp(1, width.max(1)),
            ((h * s).round() as u32).clamp(1, height.max(1)),
        )
    };
    let (w0, h0) = scaled(s0);
    let (w0, h0) = (w0.min(input_width), h0.min(input_height));
    let (window_width, window_height) = input.for_level(w0, h0);
    let mut levels = vec![PlanLevel {
        width: w0,
        height: h0,
        window_width,
        window_height,
        tiles: vec![(0, 0)],
        keep_max_face_px: f32::INFINITY,
    }];
    let target = min_face_px.max(policy.smallest_planned_face_px).max(1.0);
    let mut s = s0;
    // Each level is strictly finer than the last and the loop stops at scale 1: it ends.
    while policy.min_face_input_px / s > target && s < 1.0 {
        let jump = policy.max_face_input_px / policy.min_face_input_px;
        let next = (policy.min_face_input_px / target).min(s * jump).min(1.0);
        let keep_max = policy.handover * policy.min_face_input_px / s;
        let overlap = (keep_max * next * policy.overlap_factor).ceil() as u32;
        let overlap = overlap.min(input_width.min(input_height) / 2);
        let (lw, lh) = scaled(next);
        let (window_width, window_height) = input.for_level(lw, lh);
        let xs = axis_tiles(lw, window_width, overlap);
        let ys = axis_tiles(lh, window_height, overlap);
        let tiles = ys
            .iter()
            .flat_map(|&y| xs.iter().map(move |&x| (x, y)))
            .collect();
        levels.push(PlanLevel {
            width: lw,
            height: lh,
            window_width,
            window_height,
            tiles,
            keep_max_face_px: keep_max,
        });
        s = next;
    }
    DetectionPlan {
        source_width: width,
        source_height: height,
        levels,
    }
}

/// Window origins along one axis: as few windows as cover `len` with at least `overlap` shared
/// between neighbours, spread evenly.
pub fn axis_tiles(len: u32, window: u32, overlap: u32) -> Vec<u32> {
    if len <= window {
        return vec![0];
    }
    let step = window.saturating_sub(overlap).max(1);
    let n = (len - overlap).div_ceil(step).max(2);
    let span = (len - window) as f64;
    (0..n)
        .map(|i| (span * i as f64 / (n - 1) as f64).round() as u32)
        .collect()
}

/// Downscale by area averaging (each output pixel is the mean of the source area it covers):
/// no aliasing at the 3–5× reductions posters need, and one pass over the source.
pub fn resize_area(image: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
    resize_area_on(image, out_w, out_h, 1)
}

/// [`resize_area`] on up to `threads` threads, each making a band of output rows: the same
/// bytes, since every output row is computed on its own.
pub fn resize_area_on(image: &RgbImage, out_w: u32, out_h: u32, threads: usize) -> RgbImage {
    // Halving by 2×2 blocks is the same average for a fraction of the arithmetic: do that while
    // the image is at least twice the target, and the exact weighted pass only for the rest.
    let mut halved: Option<RgbImage> = None;
    loop {
        let current = halved.as_ref().unwrap_or(image);
        if current.width() >= 2 * out_w && current.height() >= 2 * out_h {
            halved = Some(halve_on(current, threads));
        } else {
            break;
        }
    }
    match halved {
        Some(h) if h.dimensions() == (out_w, out_h) => h,
        Some(h) => resize_area_exact(&h, out_w, out_h, threads),
        None => resize_area_exact(image, out_w, out_h, threads),
    }
}

/// Fills `out`, rows of `row_len` bytes, by `fill(first_row, rows)` over up to `threads` bands
/// of consecutive rows at once (the calling thread takes the first band).
fn in_bands(
    out: &mut [u8],
    row_len: usize,
    threads: usize,
    fill: impl Fn(usize, &mut [u8]) + Sync,
) {
    let rows = out.len() / row_len.max(1);
    let bands = threads.min(rows).max(1);
    if bands == 1 {
        fill(0, out);
        return;
    }
    let per_band = rows.div_ceil(bands);
    std::thread::scope(|scope| {
        let mut chunks = out.chunks_mut(per_band * row_len).enumerate();
        let first = chunks.next();
        for (band, chunk) in chunks {
            let fill = &fill;
            scope.spawn(move || fill(band * per_band, chunk));
        }
        if let Some((_, chunk)) = first {
            fill(0, chunk);
        }
    });
}

/// Halve an image by averaging 2×2 blocks (an odd last row or column is dropped).
pub fn halve(src: &RgbImage) -> RgbImage {
    halve_on(src, 1)
}

/// [`halve`] on up to `threads` threads, in bands of output rows: the same bytes.
pub fn halve_on(src: &RgbImage, threads: usize) -> RgbImage {
    let (w, h) = (src.width() as usize / 2, src.height() as usize / 2);
    let stride = src.width() as usize * 3;
    let raw = src.as_raw();
    let mut out = vec![0u8; w * h * 3];
    // Per row pair: the vertical sums of all bytes first (a contiguous pass the compiler turns
    // into vector code), then each output byte from two neighbouring sums. Integer arithmetic:
    // the same bytes as averaging each block directly.
    in_bands(&mut out, w * 3, threads, |first_row, band| {
        let mut sums = vec![0u16; w * 6];
        for (k, dst) in band.chunks_exact_mut(w * 3).enumerate() {
            let y = first_row + k;
            let top = &raw[2 * y * stride..][..w * 6];
            let bottom = &raw[(2 * y + 1) * stride..][..w * 6];
            for ((s, &t), &b) in sums.iter_mut().zip(top).zip(bottom) {
                *s = u16::from(t) + u16::from(b);
            }
            for (d, pair) in dst.chunks_exact_mut(3).zip(sums.chunks_exact(6)) {
                d[0] = ((pair[0] + pair[3] + 2) >> 2) as u8;
                d[1] = ((pair[1] + pair[4] + 2) >> 2) as u8;
                d[2] = ((pair[2] + pair[5] + 2) >> 2) as u8;
            }
        }
    });
    RgbImage::from_raw(w as u32, h as u32, out).unwrap_or_else(|| RgbImage::new(w as u32, h as u32))
}

/// `v.round().clamp(0.0, 255.0) as u8` for the finite sums of non-negative pixel values that
/// resampling makes, without a call to libm's `roundf` per byte: for 0 ≤ v < 2²³, `v − trunc(v)`
/// is exact, so comparing it with ½ rounds half away from zero as `round` does. Clamping
/// before rounding gives the same byte, since 0 and 255 are whole.
#[inline]
fn round_to_u8(v: f32) -> u8 {
    let v = v.clamp(0.0, 255.0);
    let whole = v as u32;
    (whole + u32::from(v - whole as f32 >= 0.5)) as u8
}

/// One axis of an area resize: for each output index, the first source index it covers and
/// where its weights start in `weights`; the source indices it covers are consecutive.
struct AxisTaps {
    first: Vec<u32>,
    /// `offsets[o]..offsets[o + 1]` are output `o`'s weights.
    offsets: Vec<usize>,
    weights: Vec<f32>,
}

impl AxisTaps {
    fn new(src_len: u32, out_len: u32) -> Self {
        let mut taps = AxisTaps {
            first: Vec::with_capacity(out_len as usize),
            offsets: vec![0],
            weights: Vec::new(),
        };
        for list in area_weights(src_len, out_len) {
            debug_assert!(list.windows(2).all(|p| p[1].0 == p[0].0 + 1));
            taps.first.push(list[0].0);
            taps.weights.extend(list.iter().map(|&(_, w)| w));
            taps.offsets.push(taps.weights.len());
        }
        taps
    }

    fn of(&self, o: usize) -> (usize, &[f32]) {
        (
            self.first[o] as usize,
            &self.weights[self.offsets[o]..self.offsets[o + 1]],
        )
    }
}

/// Source row `sy` resampled horizontally: per output column and channel, the weighted sum
/// of the source pixels it covers, added in source order.
fn horizontal(line: &[u8], cols: &AxisTaps, row: &mut [f32]) {
    for (ox, px) in row.chunks_exact_mut(3).enumerate() {
        let (first, weights) = cols.of(ox);
        let mut acc = [0f32; 3];
        for (p, &w) in line[first * 3..][..weights.len() * 3]
            .chunks_exact(3)
            .zip(weights)
        {
            acc[0] += w * f32::from(p[0]);
            acc[1] += w * f32::from(p[1]);
            acc[2] += w * f32::from(p[2]);
        }
        px.copy_from_slice(&acc);
    }
}

fn resize_area_exact(image: &RgbImage, out_w: u32, out_h: u32, threads: usize) -> RgbImage {
    let (sw, sh) = image.dimensions();
    if (out_w, out_h) == (sw, sh) {
        return image.clone();
    }
    let cols = AxisTaps::new(sw, out_w);
    let rows = AxisTaps::new(sh, out_h);
    let src = image.as_raw();
    let line_len = sw as usize * 3;
    let row_len = out_w as usize * 3;
    let mut out = vec![0u8; row_len * out_h as usize];
    in_bands(&mut out, row_len, threads, |first_row, band| {
        exact_rows(src, line_len, (&cols, &rows), first_row, band, row_len)
    });
    RgbImage::from_raw(out_w, out_h, out).unwrap_or_else(|| RgbImage::new(out_w, out_h))
}

/// Output rows `first_row..` of an exact area resize into `band`.
fn exact_rows(
    src: &[u8],
    line_len: usize,
    (cols, rows): (&AxisTaps, &AxisTaps),
    first_row: usize,
    band: &mut [u8],
    row_len: usize,
) {
    let mut acc = vec![0f32; row_len];
    // Horizontally resampled source rows `kept_first..kept_first + kept.len()`: consecutive
    // output rows share their boundary source row, so each source row is resampled once. The
    // rows an output row no longer needs are reused as buffers.
    let mut kept: std::collections::VecDeque<Vec<f32>> = Default::default();
    let mut kept_first = 0usize;
    let mut free: Vec<Vec<f32>> = Vec::new();
    for (k, dst) in band.chunks_exact_mut(row_len).enumerate() {
        let (first, weights) = rows.of(first_row + k);
        while kept_first < first
            && let Some(row) = kept.pop_front()
        {
            free.push(row);
            kept_first += 1;
        }
        if kept.is_empty() {
            kept_first = first;
        }
        while kept_first + kept.len() < first + weights.len() {
            let sy = kept_first + kept.len();
            let mut row = free.pop().unwrap_or_else(|| vec![0f32; row_len]);
            horizontal(&src[sy * line_len..][..line_len], cols, &mut row);
            kept.push_back(row);
        }
        acc.iter_mut().for_each(|v| *v = 0.0);
        for (row, &wy) in kept.range(first - kept_first..).zip(weights) {
            for (a, v) in acc.iter_mut().zip(row) {
                *a += wy * v;
            }
        }
        for (d, a) in dst.iter_mut().zip(&acc) {
            *d = round_to_u8(*a);
        }
    }
}

/// For each output index, the source indices it covers and their weights (summing to 1).
fn area_weights(src_len: u32, out_len: u32) -> Vec<Vec<(u32, f32)>> {
    let ratio = src_len as f64 / out_len.max(1) as f64;
    (0..out_len)
        .map(|o| {
            let a = o as f64 * ratio;
            let b = ((o + 1) as f64 * ratio).min(src_len as f64);
            let mut taps = Vec::new();
            let mut i = a.floor() as u32;
            while (i as f64) < b && i < src_len {
                let lo = (i as f64).max(a);
                let hi = ((i + 1) as f64).min(b);
                if hi > lo {
                    taps.push((i, ((hi - lo) / (b - a)) as f32));
                }
                i += 1;
            }
            if taps.is_empty() {
                taps.push((src_len.saturating_sub(1).min(a as u32), 1.0));
            }
            taps
        })
        .collect()
}

/// The detector input for the `window` (width, height) at (`x`, `y`) of `level_image`: planar
/// (NCHW without the batch axis), channel order, mean and std from the manifest, zero where the
/// window passes the image's right or bottom edge (that is the letterbox padding).
pub fn fill_window(
    level_image: &RgbImage,
    x: u32,
    y: u32,
    window: (u32, u32),
    spec: &InputSpec,
) -> Vec<f32> {
    let (iw, ih) = (window.0 as usize, window.1 as usize);
    let plane = iw * ih;
    let mut t = vec![0f32; 3 * plane];
    let order = channel_order(spec.color);
    // Padding is 0 in pixel space, i.e. (0 − mean)/std in tensor space.
    for c in 0..3 {
        let pad = -spec.mean[c] / spec.std[c];
        if pad != 0.0 {
            t[c * plane..(c + 1) * plane].fill(pad);
        }
    }
    let (lw, lh) = level_image.dimensions();
    let cw = (lw.saturating_sub(x) as usize).min(iw);
    let ch = (lh.saturating_sub(y) as usize).min(ih);
    let raw = level_image.as_raw();
    let k = [0, 1, 2].map(|c| 1.0 / spec.std[c]);
    let b = [0, 1, 2].map(|c| -spec.mean[c] / spec.std[c]);
    let (p0, rest) = t.split_at_mut(plane);
    let (p1, p2) = rest.split_at_mut(plane);
    // One pass over each source row, writing the three planes (the same value per element as
    // a pass per channel).
    for v in 0..ch {
        let row = &raw[((y as usize + v) * lw as usize + x as usize) * 3..][..cw * 3];
        let at = v * iw..v * iw + cw;
        for (((d0, d1), d2), px) in p0[at.clone()]
            .iter_mut()
            .zip(&mut p1[at.clone()])
            .zip(&mut p2[at])
            .zip(row.chunks_exact(3))
        {
            *d0 = f32::from(px[order[0]]) * k[0] + b[0];
            *d1 = f32::from(px[order[1]]) * k[1] + b[1];
            *d2 = f32::from(px[order[2]]) * k[2] + b[2];
        }
    }
    t
}

/// Which RGB component feeds each input channel.
pub fn channel_order(color: ColorOrder) -> [usize; 3] {
    match color {
        ColorOrder::Rgb => [0, 1, 2],
        ColorOrder::Bgr => [2, 1, 0],
    }
}

/// YuNet's outputs for one stride (batch of one), as flat slices.
#[derive(Debug, Clone, Copy)]
pub struct StrideOutputs<'a> {
    pub stride: u32,
    /// [cells] class score
    pub cls: &'a [f32],
    /// [cells] objectness
    pub obj: &'a [f32],
    /// [cells × 4] dx, dy, log w, log h
    pub bbox: &'a [f32],
    /// [cells × 10] landmark offsets
    pub kps: &'a [f32],
}

/// Decode YuNet's grid outputs into detections in input pixels (MODELS.md formula); candidates
/// below `score_threshold` are dropped, nothing else (NMS comes after merging views).
pub fn decode_yunet(
    outputs: &[StrideOutputs<'_>],
    input_width: u32,
    input_height: u32,
    score_threshold: f32,
) -> Vec<Detection> {
    let mut dets = Vec::new();
    for o in outputs {
        let s = o.stride as f32;
        let cols = (input_width / o.stride) as usize;
        let cells = cols * (input_height / o.stride) as usize;
        let cells = cells
            .min(o.cls.len())
            .min(o.obj.len())
            .min(o.bbox.len() / 4)
            .min(o.kps.len() / 10);
        for idx in 0..cells {
            let score = (o.cls[idx].clamp(0.0, 1.0) * o.obj[idx].clamp(0.0, 1.0)).sqrt();
            if score.is_nan() || score < score_threshold {
                continue;
            }
            let (r, c) = ((idx / cols) as f32, (idx % cols) as f32);
            let b = &o.bbox[idx * 4..idx * 4 + 4];
            let cx = (c + b[0]) * s;
            let cy = (r + b[1]) * s;
            let w = b[2].exp() * s;
            let h = b[3].exp() * s;
            let k = &o.kps[idx * 10..idx * 10 + 10];
            let mut landmarks: Landmarks = [[0.0; 2]; 5];
            for (i, lm) in landmarks.iter_mut().enumerate() {
                *lm = [(k[2 * i] + c) * s, (k[2 * i + 1] + r) * s];
            }
            if !(w.is_finite() && h.is_finite()) {
                continue;
            }
            dets.push(Detection {
                bbox: BoundingBox {
                    x: cx - w / 2.0,
                    y: cy - h / 2.0,
                    width: w,
                    height: h,
                },
                landmarks,
                score,
            });
        }
    }
    dets
}

/// Greedy non-maximum suppression: best score first, drop anything overlapping a kept box by
/// more than `iou`. Ties keep the earlier detection (stable).
pub fn nms(mut dets: Vec<Detection>, iou: f32) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::with_capacity(dets.len());
    for d in dets {
        if kept.iter().all(|k| k.bbox.iou(&d.bbox) <= iou) {
            kept.push(d);
        }
    }
    kept
}

/// Bring one window's detections (input pixels) back to source pixels, dropping those the
/// window is not trusted with: cut by an inner window edge, or taller than the level keeps.
pub fn window_to_source(
    dets: Vec<Detection>,
    plan: &DetectionPlan,
    level: &PlanLevel,
    origin: (u32, u32),
    margin: f32,
) -> Vec<Detection> {
    let (sx, sy) = level.scale(plan.source_width, plan.source_height);
    let (iw, ih) = (level.window_width as f32, level.window_height as f32);
    let (ox, oy) = (origin.0 as f32, origin.1 as f32);
    let inner_left = origin.0 > 0;
    let inner_top = origin.1 > 0;
    let inner_right = origin.0 + level.window_width < level.width;
    let inner_bottom = origin.1 + level.window_height < level.height;
    dets.into_iter()
        .filter(|d| {
            let b = &d.bbox;
            !(inner_left && b.x < margin
                || inner_top && b.y < margin
                || inner_right && b.right() > iw - margin
                || inner_bottom && b.bottom() > ih - margin)
        })
        .map(|d| {
            let to_x = |u: f32| (ox + u) / sx;
            let to_y = |v: f32| (oy + v) / sy;
            let mut landmarks = d.landmarks;
            for lm in landmarks.iter_mut() {
                *lm = [to_x(lm[0]), to_y(lm[1])];
            }
            Detection {
                bbox: BoundingBox {
                    x: to_x(d.bbox.x),
                    y: to_y(d.bbox.y),
                    width: d.bbox.width / sx,
                    height: d.bbox.height / sy,
                },
                landmarks,
                score: d.score,
            }
        })
        .filter(|d| d.bbox.height <= level.keep_max_face_px)
        .collect()
}

/// Share of a smaller box lying inside a larger one above which the smaller is taken as a piece
/// of the same face (a tile that saw only part of a big face), not as a second face.
pub const CONTAINED_SHARE: f32 = 0.7;

/// Merge the detections of every view (source pixels): one NMS across views, then boxes that
/// sit mostly inside a larger kept box are dropped (IoU misses them: a fragment of a big face
/// has a small IoU with it), then the size floor. Sorted by score, best first.
pub fn merge_views(all: Vec<Detection>, nms_iou: f32, min_face_px: f32) -> Vec<Detection> {
    let kept = nms(all, nms_iou);
    let inside_larger = |d: &Detection| {
        kept.iter().any(|o| {
            o.bbox.area() > d.bbox.area()
                && intersection(&o.bbox, &d.bbox) >= CONTAINED_SHARE * d.bbox.area()
        })
    };
    kept.iter()
        .filter(|d| !inside_larger(d) && d.bbox.height >= min_face_px)
        .cloned()
        .collect()
}

fn intersection(a: &BoundingBox, b: &BoundingBox) -> f32 {
    let ix = (a.right().min(b.right()) - a.x.max(b.x)).max(0.0);
    let iy = (a.bottom().min(b.bottom()) - a.y.max(b.y)).max(0.0);
    ix * iy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::manifest::{Layout, Resize};

    const FIXED: InputWindow = InputWindow {
        width: 640,
        height: 640,
        multiple: None,
    };
    const ANY: InputWindow = InputWindow {
        width: 640,
        height: 640,
        multiple: Some(32),
    };

    fn det(x: f32, y: f32, w: f32, h: f32, score: f32) -> Detection {
        Detection {
            bbox: BoundingBox {
                x,
                y,
                width: w,
                height: h,
            },
            landmarks: [[x + w / 2.0, y + h / 2.0]; 5],
            score,
        }
    }

    fn yunet_spec() -> InputSpec {
        InputSpec {
            name: "input".into(),
            width: 640,
            height: 640,
            layout: Layout::Nchw,
            color: ColorOrder::Bgr,
            mean: [0.0; 3],
            std: [1.0; 3],
            resize: Resize::Letterbox,
        }
    }

    #[test]
    fn small_images_take_one_run_at_native_scale() {
        let p = plan_views(512, 512, FIXED, 16.0, &TilePolicy::default());
        assert_eq!(p.runs(), 1);
        assert_eq!((p.levels[0].width, p.levels[0].height), (512, 512));
        let p = plan_views(640, 360, FIXED, 16.0, &TilePolicy::default());
        assert_eq!(p.runs(), 1);
    }

    #[test]
    fn a_poster_takes_a_whole_view_and_six_tiles() {
        let p = plan_views(2000, 3000, FIXED, 16.0, &TilePolicy::default());
        assert_eq!(p.levels.len(), 2);
        let whole = &p.levels[0];
        assert_eq!((whole.width, whole.height), (427, 640));
        let tiles = &p.levels[1];
        assert_eq!((tiles.width, tiles.height), (1000, 1500));
        assert_eq!(tiles.tiles.len(), 6);
        assert_eq!(p.runs(), 7);
        // Tiles keep faces up to 2 × 16 / (640/3000) = 150 source px, i.e. 75 px at this level;
        // neighbours overlap by at least 1.2 × that.
        assert!((tiles.keep_max_face_px - 150.0).abs() < 0.5);
        let xs: Vec<u32> = tiles.tiles.iter().map(|t| t.0).collect();
        let ys: Vec<u32> = tiles.tiles.iter().map(|t| t.1).collect();
        assert_eq!(xs[..2], [0, 360]);
        assert_eq!(ys, [0, 0, 430, 430, 860, 860]);
        assert_eq!(ys[5] + 640, tiles.height);
        assert!(ys[0] + 640 - ys[2] >= 90 && ys[2] + 640 - ys[4] >= 90);
        assert!(xs[0] + 640 - xs[1] >= 90);
    }

    #[test]
    fn frames_and_small_posters_take_few_runs() {
        let policy = TilePolicy::default();
        assert_eq!(plan_views(1920, 1080, FIXED, 16.0, &policy).runs(), 3);
        assert_eq!(plan_views(854, 480, FIXED, 16.0, &policy).runs(), 1);
        assert_eq!(plan_views(1000, 1500, FIXED, 16.0, &policy).runs(), 3);
        // Asking only for faces of 80 px and more needs no tiles on a poster.
        assert_eq!(plan_views(2000, 3000, FIXED, 80.0, &policy).runs(), 1);
    }

    #[test]
    fn windows_fit_their_view_when_the_graph_takes_any_size() {
        let policy = TilePolicy::default();
        // A 16:9 frame: the same 640×360 view, 256 rows of padding fewer.
        let frame = plan_views(1920, 1080, ANY, 100.0, &policy);
        assert_eq!(frame.runs(), 1);
        let l = &frame.levels[0];
        assert_eq!((l.width, l.height), (640, 360));
        assert_eq!((l.window_width, l.window_height), (640, 384));
        // Posters: the same levels, scales and tile counts as fixed windows; smaller windows
        // wherever a level is smaller than 640 on a side.
        for (w, h, windows) in [
            (1000u32, 1500u32, vec![(448u32, 640u32), (512, 640)]),
            (2000, 3000, vec![(448, 640), (640, 640)]),
            (640, 360, vec![(640, 384)]),
            (100, 50, vec![(128, 64)]),
        ] {
            let any = plan_views(w, h, ANY, 16.0, &policy);
            let fixed = plan_views(w, h, FIXED, 16.0, &policy);
            let sizes: Vec<(u32, u32)> = any
                .levels
                .iter()
                .map(|l| (l.window_width, l.window_height))
                .collect();
            assert_eq!(sizes, windows, "{w}x{h}");
            assert_eq!(any.runs(), fixed.runs(), "{w}x{h}");
            for (a, f) in any.levels.iter().zip(&fixed.levels) {
                assert_eq!((a.width, a.height, &a.tiles), (f.width, f.height, &f.tiles));
                assert!(a.window_width >= a.width.min(640) && a.window_height >= a.height.min(640));
            }
            assert!(any.input_pixels() < fixed.input_pixels(), "{w}x{h}");
        }
        assert_eq!(FIXED.for_level(100, 50), (640, 640));
    }

    #[test]
    fn every_planned_face_is_whole_in_some_trusted_window() {
        // Brute force over face sizes and positions on a poster and on a 1080p frame: each face
        // of at least 32 px must be within the size range and wholly inside one window of a
        // level that keeps it, with the edge margin, with fixed windows and with fitted ones.
        let sizes = [(2000u32, 3000u32), (1920, 1080), (1000, 1500), (4000, 6000)];
        for ((w, h), input) in sizes.into_iter().flat_map(|s| [(s, FIXED), (s, ANY)]) {
            let p = plan_views(w, h, input, 16.0, &TilePolicy::default());
            for size in [32.0f32, 45.0, 70.0, 100.0, 149.0, 200.0, 400.0] {
                if size > w.min(h) as f32 {
                    continue;
                }
                let mut y = 0.0;
                while y + size <= h as f32 {
                    let mut x = 0.0;
                    while x + size <= w as f32 {
                        let seen = p.levels.iter().any(|l| {
                            let (sx, sy) = l.scale(w, h);
                            let scaled = size * sy;
                            scaled >= 15.9
                                && size <= l.keep_max_face_px
                                && l.tiles.iter().any(|&(tx, ty)| {
                                    let (x0, y0) = (x * sx - tx as f32, y * sy - ty as f32);
                                    let (x1, y1) = (x0 + size * sx, y0 + scaled);
                                    let (ww, wh) = (l.window_width, l.window_height);
                                    (x0 >= 2.0 || tx == 0)
                                        && (y0 >= 2.0 || ty == 0)
                                        && (x1 <= (ww - 2) as f32 || tx + ww >= l.width)
                                        && (y1 <= (wh - 2) as f32 || ty + wh >= l.height)
                                        && x0 + tx as f32 >= 0.0
                                        && x1 <= (tx + ww) as f32 + 0.01
                                        && y1 <= (ty + wh) as f32 + 0.01
                                })
                        });
                        assert!(seen, "{w}x{h}: face {size} at ({x},{y}) unseen");
                        x += 37.0;
                    }
                    y += 41.0;
                }
            }
        }
    }

    #[test]
    fn axis_tiles_cover_with_overlap() {
        assert_eq!(axis_tiles(600, 640, 90), [0]);
        assert_eq!(axis_tiles(1000, 640, 90), [0, 360]);
        let t = axis_tiles(5000, 640, 100);
        assert_eq!(*t.last().unwrap(), 5000 - 640);
        for pair in t.windows(2) {
            assert!(pair[0] + 640 >= pair[1] + 100, "{t:?}");
        }
    }

    /// Pseudo-random image (xorshift), so that every byte value and rounding case comes up.
    fn noise(w: u32, h: u32, seed: u64) -> RgbImage {
        let mut x = seed | 1;
        RgbImage::from_fn(w, h, |_, _| {
            let mut byte = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            };
            image::Rgb([byte(), byte(), byte()])
        })
    }

    /// The area resize as first written: the definition the faster one must match byte for byte
    /// (the figures of every fixture depend on these bytes).
    fn resize_area_exact_reference(image: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
        let (sw, _) = image.dimensions();
        let cols = area_weights(sw, out_w);
        let rows = area_weights(image.height(), out_h);
        let src = image.as_raw();
        let mut out = vec![0u8; out_w as usize * out_h as usize * 3];
        let mut acc = vec![0f32; out_w as usize * 3];
        let mut hrow = vec![0f32; out_w as usize * 3];
        for (oy, taps_y) in rows.iter().enumerate() {
            acc.iter_mut().for_each(|v| *v = 0.0);
            for &(sy, wy) in taps_y {
                let line = &src[sy as usize * sw as usize * 3..][..sw as usize * 3];
                for (ox, taps_x) in cols.iter().enumerate() {
                    let mut px = [0f32; 3];
                    for &(sx, wx) in taps_x {
                        let p = &line[sx as usize * 3..sx as usize * 3 + 3];
                        px[0] += wx * p[0] as f32;
                        px[1] += wx * p[1] as f32;
                        px[2] += wx * p[2] as f32;
                    }
                    hrow[ox * 3..ox * 3 + 3].copy_from_slice(&px);
                }
                for (a, v) in acc.iter_mut().zip(&hrow) {
                    *a += wy * v;
                }
            }
            let dst = &mut out[oy * out_w as usize * 3..][..out_w as usize * 3];
            for (d, a) in dst.iter_mut().zip(&acc) {
                *d = a.round().clamp(0.0, 255.0) as u8;
            }
        }
        RgbImage::from_raw(out_w, out_h, out).unwrap()
    }

    #[test]
    fn area_resize_gives_the_bytes_of_its_definition() {
        // The sizes the pipeline meets (a 1080p frame halved to 960×540 then cut to the 640×360
        // view, a poster's 500×750 level to 427×640) and odd ones, up and down.
        let cases = [
            (960, 540, 640, 360),
            (500, 750, 427, 640),
            (1000, 1500, 512, 640),
            (97, 61, 40, 33),
            (33, 17, 32, 16),
            (5, 7, 9, 11),
            (1, 1, 1, 3),
        ];
        for (k, &(sw, sh, ow, oh)) in cases.iter().enumerate() {
            let img = noise(sw, sh, 7 + k as u64);
            let reference = resize_area_exact_reference(&img, ow, oh);
            // In bands on 2 and 3 threads (more bands than rows for the smallest) as in one.
            for threads in 1..=3 {
                assert_eq!(
                    resize_area_exact(&img, ow, oh, threads),
                    reference,
                    "{sw}×{sh} → {ow}×{oh} on {threads} threads"
                );
            }
        }
    }

    #[test]
    fn halving_and_the_whole_resize_in_bands_give_the_bytes_of_one_pass() {
        // A poster's first pyramid step, an odd height, and fewer rows than threads.
        for (k, &(w, h)) in [(400, 601), (37, 9), (6, 2)].iter().enumerate() {
            let img = noise(w, h, 40 + k as u64);
            let once = halve(&img);
            let whole = resize_area(&img, w / 3 + 1, h / 3 + 1);
            for threads in 2..=4 {
                assert_eq!(halve_on(&img, threads), once, "{w}×{h} halved on {threads}");
                assert_eq!(
                    resize_area_on(&img, w / 3 + 1, h / 3 + 1, threads),
                    whole,
                    "{w}×{h} resized on {threads}"
                );
            }
        }
    }

    #[test]
    fn halving_averages_each_block_with_rounding() {
        let img = noise(21, 10, 3);
        let half = halve(&img);
        assert_eq!(half.dimensions(), (10, 5));
        for (x, y, p) in half.enumerate_pixels() {
            for c in 0..3 {
                let sum: u16 = [(0, 0), (1, 0), (0, 1), (1, 1)]
                    .iter()
                    .map(|&(dx, dy)| u16::from(img.get_pixel(2 * x + dx, 2 * y + dy)[c]))
                    .sum();
                assert_eq!(p[c], ((sum + 2) / 4) as u8, "({x}, {y}) channel {c}");
            }
        }
    }

    #[test]
    fn rounding_to_a_byte_is_round_then_clamp() {
        let reference = |v: f32| v.round().clamp(0.0, 255.0) as u8;
        // Every float from 0 to 256 near a half (where rounding decides), plus a sweep and the
        // ends.
        for k in 0..=256u32 {
            let half = k as f32 + 0.5;
            let mut v = half;
            for _ in 0..64 {
                v = f32::from_bits(v.to_bits() - 1);
            }
            for _ in 0..128 {
                assert_eq!(round_to_u8(v), reference(v), "{v:e}");
                v = f32::from_bits(v.to_bits() + 1);
            }
        }
        let mut v = 0.0f32;
        while v < 300.0 {
            assert_eq!(round_to_u8(v), reference(v), "{v:e}");
            v += 0.001;
        }
        for v in [-1.0, -0.4, -0.0, 255.49998, 255.5, 1e9, f32::MIN_POSITIVE] {
            assert_eq!(round_to_u8(v), reference(v), "{v:e}");
        }
    }

    #[test]
    fn a_window_gives_the_values_of_a_pass_per_channel() {
        let img = noise(37, 23, 11);
        let mut spec = yunet_spec();
        spec.mean = [1.5, 20.0, 120.0];
        spec.std = [1.0, 3.0, 57.0];
        for (x, y, window) in [(0, 0, (64, 32)), (5, 3, (32, 32)), (36, 22, (8, 8))] {
            let t = fill_window(&img, x, y, window, &spec);
            let (iw, ih) = (window.0 as usize, window.1 as usize);
            let order = channel_order(spec.color);
            for c in 0..3 {
                for v in 0..ih {
                    for u in 0..iw {
                        let (sx, sy) = (x as usize + u, y as usize + v);
                        let (k, b) = (1.0 / spec.std[c], -spec.mean[c] / spec.std[c]);
                        let want = if sx < 37 && sy < 23 {
                            f32::from(img.get_pixel(sx as u32, sy as u32)[order[c]]) * k + b
                        } else {
                            b
                        };
                        let got = t[c * iw * ih + v * iw + u];
                        assert_eq!(got.to_bits(), want.to_bits(), "({u}, {v}) channel {c}");
                    }
                }
            }
        }
    }

    #[test]
    fn area_resize_averages_blocks() {
        let mut img = RgbImage::new(4, 2);
        for (x, _, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb(if x % 2 == 0 {
                [0, 100, 200]
            } else {
                [100, 200, 250]
            });
        }
        let small = resize_area(&img, 2, 1);
        assert_eq!(small.get_pixel(0, 0).0, [50, 150, 225]);
        assert_eq!(small.get_pixel(1, 0).0, [50, 150, 225]);
        // Non-integer ratio: 3 → 2, the middle pixel is split between both outputs.
        let mut img = RgbImage::new(3, 1);
        img.put_pixel(0, 0, image::Rgb([0, 0, 0]));
        img.put_pixel(1, 0, image::Rgb([90, 90, 90]));
        img.put_pixel(2, 0, image::Rgb([180, 180, 180]));
        let small = resize_area(&img, 2, 1);
        assert_eq!(small.get_pixel(0, 0).0[0], 30);
        assert_eq!(small.get_pixel(1, 0).0[0], 150);
    }

    #[test]
    fn window_is_bgr_planar_and_zero_padded() {
        let mut img = RgbImage::new(3, 2);
        img.put_pixel(1, 0, image::Rgb([10, 20, 30]));
        img.put_pixel(2, 1, image::Rgb([1, 2, 3]));
        let t = fill_window(&img, 1, 0, (640, 640), &yunet_spec());
        let plane = 640 * 640;
        assert_eq!((t[0], t[plane], t[2 * plane]), (30.0, 20.0, 10.0));
        assert_eq!(
            (t[640 + 1], t[plane + 640 + 1], t[2 * plane + 640 + 1]),
            (3.0, 2.0, 1.0)
        );
        // Beyond the image: padding.
        assert_eq!(t[2], 0.0);
        assert_eq!(t[2 * 640], 0.0);
        // Mean and std come from the spec.
        let mut spec = yunet_spec();
        spec.color = ColorOrder::Rgb;
        spec.mean = [10.0, 0.0, 0.0];
        spec.std = [2.0, 1.0, 1.0];
        let t = fill_window(&img, 1, 0, (640, 640), &spec);
        assert_eq!((t[0], t[plane], t[2 * plane]), (0.0, 20.0, 30.0));
        assert_eq!(t[5], -5.0);
        // A smaller window: its own planes, the same pixels.
        let t = fill_window(&img, 1, 0, (32, 32), &yunet_spec());
        let plane = 32 * 32;
        assert_eq!(t.len(), 3 * plane);
        assert_eq!((t[0], t[plane], t[2 * plane]), (30.0, 20.0, 10.0));
        assert_eq!(t[32 + 1], 3.0);
        assert_eq!((t[2], t[2 * 32]), (0.0, 0.0));
    }

    #[test]
    fn decode_follows_the_yunet_formula() {
        // 640 input, stride 32: 20×20 cells. One strong cell at row 3, column 5.
        let cells = 400;
        let mut cls = vec![0.0f32; cells];
        let mut obj = vec![0.0f32; cells];
        let mut bbox = vec![0.0f32; cells * 4];
        let mut kps = vec![0.0f32; cells * 10];
        let idx = 3 * 20 + 5;
        cls[idx] = 0.81;
        obj[idx] = 1.2; // clamped to 1
        bbox[idx * 4..idx * 4 + 4].copy_from_slice(&[0.5, 0.25, 2f32.ln(), 3f32.ln()]);
        kps[idx * 10] = -0.5;
        kps[idx * 10 + 1] = 0.5;
        cls[7] = 0.3; // score sqrt(0.3 × 0) = 0: dropped
        let out = StrideOutputs {
            stride: 32,
            cls: &cls,
            obj: &obj,
            bbox: &bbox,
            kps: &kps,
        };
        let dets = decode_yunet(&[out], 640, 640, 0.6);
        assert_eq!(dets.len(), 1);
        let d = &dets[0];
        assert!((d.score - 0.9).abs() < 1e-6);
        let (cx, cy) = d.bbox.center();
        assert!((cx - 5.5 * 32.0).abs() < 1e-3 && (cy - 3.25 * 32.0).abs() < 1e-3);
        assert!((d.bbox.width - 64.0).abs() < 1e-3 && (d.bbox.height - 96.0).abs() < 1e-3);
        assert_eq!(d.landmarks[0], [4.5 * 32.0, 3.5 * 32.0]);
        assert_eq!(d.landmarks[1], [5.0 * 32.0, 3.0 * 32.0]);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let dets = vec![
            det(0.0, 0.0, 10.0, 10.0, 0.7),
            det(1.0, 1.0, 10.0, 10.0, 0.9),
            det(50.0, 50.0, 10.0, 10.0, 0.8),
        ];
        let kept = nms(dets, 0.3);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].score, 0.9);
        assert_eq!(kept[1].score, 0.8);
    }

    #[test]
    fn window_detections_come_back_to_source_and_cut_faces_are_dropped() {
        let plan = plan_views(2000, 3000, FIXED, 16.0, &TilePolicy::default());
        let level = &plan.levels[1]; // scale 0.5
        // Window at (360, 430): a face at input (100, 200) size 40 → source ((360+100)*2, ...).
        let dets = vec![
            det(100.0, 200.0, 40.0, 40.0, 0.9),
            det(0.5, 300.0, 40.0, 40.0, 0.9), // cut by the inner left edge
            det(600.0, 300.0, 39.0, 40.0, 0.9), // right edge is the image edge: kept
            det(200.0, 200.0, 90.0, 90.0, 0.9), // 180 source px: the whole view's job
        ];
        let out = window_to_source(dets, &plan, level, (360, 430), 2.0);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].bbox.x, 920.0);
        assert_eq!(out[0].bbox.y, 1260.0);
        assert_eq!(out[0].bbox.height, 80.0);
        assert_eq!(out[0].landmarks[0], [960.0, 1300.0]);
        assert_eq!(out[1].bbox.x, 1920.0);
    }

    #[test]
    fn merging_views_keeps_one_box_per_face_and_the_size_floor() {
        let whole = det(100.0, 100.0, 80.0, 80.0, 0.85);
        let tile = det(102.0, 101.0, 78.0, 80.0, 0.92);
        let tiny = det(500.0, 500.0, 12.0, 12.0, 0.95);
        let merged = merge_views(vec![whole, tile.clone(), tiny], 0.3, 16.0);
        assert_eq!(merged, vec![tile]);
    }

    #[test]
    fn a_fragment_of_a_big_face_is_not_a_second_face() {
        let big = det(100.0, 100.0, 600.0, 700.0, 0.8);
        let fragment = det(150.0, 200.0, 120.0, 120.0, 0.9);
        let neighbour = det(650.0, 120.0, 120.0, 120.0, 0.9); // mostly outside: a real face
        let merged = merge_views(vec![big.clone(), fragment, neighbour.clone()], 0.3, 16.0);
        assert_eq!(merged, vec![neighbour, big]);
    }
}
