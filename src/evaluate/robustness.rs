//! The robustness table: posters are not portraits. Every labelled face large enough to be made
//! small without inventing detail is rendered under poster-like conditions (colour grading,
//! grain, blur, halftone print, low contrast, text over the lower face, tilts), at a few face
//! heights, on poster-sized canvases, and each canvas goes through the real poster path
//! (`Pipeline::analyze_with_settings`: the same detector view plan, the same models and the
//! same combined gender decision at the configured thresholds). The counts per condition and
//! height say on which posters the headline figures hold.
//!
//! Everything here is deterministic: the only randomness (grain, the blocks of the text bars)
//! comes from a fixed seed per canvas, so the same models give the same table.

use super::matching::{MATCH_IOU, match_faces};
use super::render::{NEUTRAL_GREY, render_face};
use super::truth::{FaceTruth, ImageTruth};
use crate::domain::{Analysis, BoundingBox};
use image::{Rgb, RgbImage};
use std::collections::{BTreeMap, BTreeSet};

/// Face heights (px, truth box on the canvas) every condition is rendered at.
pub const ROBUSTNESS_HEIGHTS: [u32; 3] = [25, 40, 80];
/// Truth faces at least this tall are rendered: every render is then a downscale (the largest
/// height above), never an upscale that would invent detail.
pub const ROBUSTNESS_SOURCE_MIN_PX: f32 = 80.0;
/// The canvas: a 2:3 poster the size of the smaller composed fixture posters. Larger posters
/// are seen by the detector at about the same scale for faces of these heights (the view plan
/// brings small faces to the same tile scale), smaller ones (long side ≤ 1280 px) at a larger
/// scale.
pub const POSTER_WIDTH: u32 = 1000;
pub const POSTER_HEIGHT: u32 = 1500;
/// Side of the square cut around each face, in face heights (as the size calibration).
pub const CUT_FACE_HEIGHTS: f32 = super::render::CROP_FACE_HEIGHTS;
/// Least free space between two renders on a canvas, px.
pub const MIN_GAP_PX: u32 = 16;
/// Seed of the first canvas; each canvas adds its index (part, condition, height).
pub const SEED: u64 = 0x5EED_2026_0013;

/// Duotone: luminance mapped linearly from the shadow colour to the highlight colour.
pub const DUOTONE_SHADOW: [u8; 3] = [16, 36, 96];
pub const DUOTONE_HIGHLIGHT: [u8; 3] = [255, 176, 64];
/// Heavy grain: monochrome Gaussian noise of this standard deviation, grey levels, per pixel.
pub const GRAIN_SIGMA: f32 = 32.0;
/// Blur: Gaussian of this standard deviation, poster px.
pub const BLUR_SIGMA: f32 = 2.0;
/// Halftone: one dot screen per channel (cyan, magenta, yellow ink) at these angles, cells of
/// this side (poster px).
pub const HALFTONE_CELL_PX: f32 = 4.0;
pub const HALFTONE_ANGLES_DEG: [f32; 3] = [15.0, 75.0, 45.0];
/// Low contrast: every channel pulled towards mid-grey, keeping this fraction of its distance.
pub const LOW_CONTRAST: f32 = 0.3;
/// Text bars: two rows of letter-like light blocks, as fractions of the face box height from
/// its top (the mouth and the chin), running a little past the face on both sides.
pub const TEXT_ROWS: [(f32, f32); 2] = [(0.60, 0.76), (0.82, 0.98)];
pub const TEXT_COLOUR: [u8; 3] = [245, 245, 240];
/// Tilts, degrees (positive: counter-clockwise on screen).
pub const TILT_DEG: f32 = 20.0;

/// One poster-like condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Condition {
    /// The reference: the face downscaled, nothing else.
    Clean,
    Duotone,
    Grain,
    Blur,
    Halftone,
    LowContrast,
    /// Partial occlusion of the lower face by text-like bars.
    TextBars,
    /// The face tilted in the image plane, degrees.
    Rotated(f32),
    /// Only the faces labelled in profile (`"pose": "profile"`), downscaled as clean: a row
    /// over fewer faces than the others, compared with nothing but itself.
    Profile,
}

/// Every condition of the table, in its order (the profile row last: the seeds of the others
/// do not depend on it).
pub const CONDITIONS: [Condition; 10] = [
    Condition::Clean,
    Condition::Duotone,
    Condition::Grain,
    Condition::Blur,
    Condition::Halftone,
    Condition::LowContrast,
    Condition::TextBars,
    Condition::Rotated(-TILT_DEG),
    Condition::Rotated(TILT_DEG),
    Condition::Profile,
];

impl Condition {
    /// Its name in the table.
    pub fn name(&self) -> String {
        match self {
            Condition::Clean => "clean".into(),
            Condition::Duotone => "duotone".into(),
            Condition::Grain => "heavy grain".into(),
            Condition::Blur => "blur".into(),
            Condition::Halftone => "halftone".into(),
            Condition::LowContrast => "low contrast".into(),
            Condition::TextBars => "text over the lower face".into(),
            Condition::Rotated(d) => format!("rotated {d:+}°"),
            Condition::Profile => "profile (labelled)".into(),
        }
    }

    /// What it does, with its parameters.
    pub fn describe(&self) -> String {
        let rgb = |c: [u8; 3]| format!("rgb({}, {}, {})", c[0], c[1], c[2]);
        match self {
            Condition::Clean => "the face downscaled by area averaging, nothing else".into(),
            Condition::Duotone => format!(
                "luminance mapped from {} (shadows) to {} (highlights) over the whole poster",
                rgb(DUOTONE_SHADOW),
                rgb(DUOTONE_HIGHLIGHT)
            ),
            Condition::Grain => format!(
                "monochrome Gaussian noise over the whole poster, σ = {GRAIN_SIGMA} grey levels per pixel, seeded"
            ),
            Condition::Blur => format!("Gaussian blur of the whole poster, σ = {BLUR_SIGMA} px"),
            Condition::Halftone => {
                let [c, m, y] = HALFTONE_ANGLES_DEG;
                format!(
                    "cyan, magenta and yellow round-dot screens at {c}°, {m}° and {y}°, {HALFTONE_CELL_PX} px cells, over the whole poster"
                )
            }
            Condition::LowContrast => format!(
                "every channel of the whole poster pulled to mid-grey, keeping {LOW_CONTRAST} of its distance"
            ),
            Condition::TextBars => {
                let [(a, b), (c, d)] = TEXT_ROWS;
                format!(
                    "two rows of light letter-like blocks, from {a} to {b} and from {c} to {d} of the face height down from its top (mouth and chin), a little wider than the face, seeded"
                )
            }
            Condition::Rotated(d) => format!(
                "the photograph turned {d:+}° about the face centre before downscaling (in-plane tilt)"
            ),
            Condition::Profile => "only the faces the labels mark as seen in profile, downscaled as clean (its faces column counts them)".into(),
        }
    }

    /// Whether `source` is rendered under this condition: every face, except that the profile
    /// row takes only the faces labelled in profile.
    pub fn takes(&self, source: &RobustSource) -> bool {
        *self != Condition::Profile || source.profile
    }
}

/// One labelled face the table renders.
#[derive(Debug, Clone)]
pub struct RobustSource {
    pub media: String,
    pub person: String,
    pub gender: String,
    /// The square cut around the face at source resolution (neutral grey outside the image
    /// and over the image's other faces), upright.
    pub cut: RgbImage,
    /// The same cut turned by each tilt of [`CONDITIONS`], in their order.
    pub tilted: Vec<(f32, RgbImage)>,
    /// The face box inside the cut (the same in every tilted cut: the turn is about its centre).
    pub face: BoundingBox,
    /// Labelled as seen in profile.
    pub profile: bool,
}

/// The tilts [`CONDITIONS`] asks for.
fn tilts() -> Vec<f32> {
    CONDITIONS
        .iter()
        .filter_map(|c| match c {
            Condition::Rotated(d) => Some(*d),
            _ => None,
        })
        .collect()
}

/// Sample `image` bilinearly at (x, y) (pixel centres at +0.5); neutral grey outside it or
/// inside `hidden`.
fn sample(image: &RgbImage, hidden: &[BoundingBox], x: f32, y: f32) -> [f32; 3] {
    let (w, h) = (image.width() as i64, image.height() as i64);
    let (fx, fy) = (x - 0.5, y - 0.5);
    let (x0, y0) = (fx.floor() as i64, fy.floor() as i64);
    let (ax, ay) = (fx - x0 as f32, fy - y0 as f32);
    let mut out = [0f32; 3];
    for (dx, dy, weight) in [
        (0, 0, (1.0 - ax) * (1.0 - ay)),
        (1, 0, ax * (1.0 - ay)),
        (0, 1, (1.0 - ax) * ay),
        (1, 1, ax * ay),
    ] {
        let (px, py) = (x0 + dx, y0 + dy);
        let covered = hidden.iter().any(|o| {
            let (cx, cy) = (px as f32 + 0.5, py as f32 + 0.5);
            cx >= o.x && cx < o.right() && cy >= o.y && cy < o.bottom()
        });
        let p = if px < 0 || py < 0 || px >= w || py >= h || covered {
            NEUTRAL_GREY.0
        } else {
            image.get_pixel(px as u32, py as u32).0
        };
        for c in 0..3 {
            out[c] += weight * p[c] as f32;
        }
    }
    out
}

/// The square cut of side `CUT_FACE_HEIGHTS` face heights centred on `face`, turned by
/// `degrees` about the face centre (counter-clockwise on screen for positive angles), sampled
/// from `image` with grey outside it and over `others`; and the face box inside it.
pub fn tilted_cut(
    image: &RgbImage,
    face: &BoundingBox,
    others: &[BoundingBox],
    degrees: f32,
) -> (RgbImage, BoundingBox) {
    let side = (face.height * CUT_FACE_HEIGHTS).round().max(1.0) as u32;
    let (cx, cy) = (face.x + face.width / 2.0, face.y + face.height / 2.0);
    let half = side as f32 / 2.0;
    let (sin, cos) = degrees.to_radians().sin_cos();
    let cut = RgbImage::from_fn(side, side, |u, v| {
        // Output offset from the centre, turned back into the source (y points down, so a
        // counter-clockwise turn on screen is a clockwise one in these coordinates).
        let (dx, dy) = (u as f32 + 0.5 - half, v as f32 + 0.5 - half);
        let (sx, sy) = (cx + dx * cos - dy * sin, cy + dx * sin + dy * cos);
        let p = sample(image, others, sx, sy);
        Rgb(p.map(|c| c.round().clamp(0.0, 255.0) as u8))
    });
    let inside = BoundingBox {
        x: half - face.width / 2.0,
        y: half - face.height / 2.0,
        width: face.width,
        height: face.height,
    };
    (cut, inside)
}

/// The corners of the face box turned by `degrees` about its centre.
pub fn turned_corners(face: &BoundingBox, degrees: f32) -> [(f32, f32); 4] {
    let (cx, cy) = (face.x + face.width / 2.0, face.y + face.height / 2.0);
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (hw, hh) = (face.width / 2.0, face.height / 2.0);
    [(-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)]
        .map(|(dx, dy)| (cx + dx * cos + dy * sin, cy - dx * sin + dy * cos))
}

/// Every truth face of at least [`ROBUSTNESS_SOURCE_MIN_PX`] of one image, cut out upright
/// and at every tilt.
pub fn sources_of(media: &str, image: &RgbImage, truth: &ImageTruth) -> Vec<RobustSource> {
    let boxes: Vec<BoundingBox> = truth.faces.iter().map(FaceTruth::bbox).collect();
    let mut out = Vec::new();
    for (i, t) in truth.faces.iter().enumerate() {
        if t.height() < ROBUSTNESS_SOURCE_MIN_PX {
            continue;
        }
        let others: Vec<BoundingBox> = boxes
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, b)| *b)
            .collect();
        let (cut, face) = tilted_cut(image, &boxes[i], &others, 0.0);
        let tilted = tilts()
            .into_iter()
            .map(|d| (d, tilted_cut(image, &boxes[i], &others, d).0))
            .collect();
        out.push(RobustSource {
            media: media.to_string(),
            person: t.person.clone(),
            gender: t.gender.clone(),
            cut,
            tilted,
            face,
            profile: t.pose.as_deref() == Some("profile"),
        });
    }
    out
}

/// A small deterministic generator (SplitMix64): the grain and the text blocks.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = self.unit().max(1e-7);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }
}

/// Light letter-like blocks in two rows over the lower part of `face` (box in `render`'s
/// pixels), a little wider than the face.
pub fn draw_text_bars(render: &mut RgbImage, face: &BoundingBox, rng: &mut Rng) {
    let h = face.height;
    let (left, right) = (face.x - 0.15 * face.width, face.right() + 0.15 * face.width);
    for (top, bottom) in TEXT_ROWS {
        let (y0, y1) = (face.y + top * h, face.y + bottom * h);
        let mut x = left;
        while x < right {
            let letter = h * (0.06 + 0.10 * rng.unit());
            let x1 = (x + letter).min(right);
            for py in y0.round().max(0.0) as u32..(y1.round().max(0.0) as u32).min(render.height())
            {
                for px in
                    x.round().max(0.0) as u32..(x1.round().max(0.0) as u32).min(render.width())
                {
                    render.put_pixel(px, py, Rgb(TEXT_COLOUR));
                }
            }
            // Letter spacing, and now and then a word space.
            let space = if rng.unit() < 0.2 { 0.10 } else { 0.03 };
            x = x1 + h * space;
        }
    }
}

fn luminance(p: [u8; 3]) -> f32 {
    0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32
}

/// Apply a whole-poster condition to the canvas (`Clean`, `TextBars` and tilts change
/// nothing here: they act on each face before it is pasted).
pub fn apply_to_poster(canvas: &mut RgbImage, condition: Condition, seed: u64) {
    match condition {
        Condition::Clean | Condition::TextBars | Condition::Rotated(_) | Condition::Profile => {}
        Condition::Duotone => {
            for p in canvas.pixels_mut() {
                let t = luminance(p.0) / 255.0;
                p.0 = std::array::from_fn(|c| {
                    let (a, b) = (DUOTONE_SHADOW[c] as f32, DUOTONE_HIGHLIGHT[c] as f32);
                    (a + (b - a) * t).round().clamp(0.0, 255.0) as u8
                });
            }
        }
        Condition::Grain => {
            let mut rng = Rng::new(seed);
            for p in canvas.pixels_mut() {
                let n = GRAIN_SIGMA * rng.normal();
                p.0 = p.0.map(|v| (v as f32 + n).round().clamp(0.0, 255.0) as u8);
            }
        }
        Condition::Blur => *canvas = image::imageops::blur(canvas, BLUR_SIGMA),
        Condition::Halftone => halftone(canvas),
        Condition::LowContrast => {
            for p in canvas.pixels_mut() {
                p.0 = p.0.map(|v| {
                    (128.0 + LOW_CONTRAST * (v as f32 - 128.0))
                        .round()
                        .clamp(0.0, 255.0) as u8
                });
            }
        }
    }
}

/// Amplitude-modulated colour halftone: each channel's ink (255 − value) printed as round dots
/// on its own rotated screen, anti-aliased by 3×3 supersampling.
fn halftone(canvas: &mut RgbImage) {
    const SUB: u32 = 3;
    let screens: Vec<(f32, f32)> = HALFTONE_ANGLES_DEG
        .iter()
        .map(|a| a.to_radians().sin_cos())
        .collect();
    for (x, y, p) in canvas.enumerate_pixels_mut() {
        p.0 = std::array::from_fn(|c| {
            let ink = 1.0 - p.0[c] as f32 / 255.0;
            let radius = (ink / std::f32::consts::PI).sqrt();
            let (sin, cos) = screens[c];
            let mut inked = 0u32;
            for sy in 0..SUB {
                for sx in 0..SUB {
                    let fx = x as f32 + (sx as f32 + 0.5) / SUB as f32;
                    let fy = y as f32 + (sy as f32 + 0.5) / SUB as f32;
                    let u = (fx * cos + fy * sin) / HALFTONE_CELL_PX;
                    let v = (-fx * sin + fy * cos) / HALFTONE_CELL_PX;
                    let (du, dv) = (u - u.floor() - 0.5, v - v.floor() - 0.5);
                    inked += u32::from(du * du + dv * dv < radius * radius);
                }
            }
            let covered = inked as f32 / (SUB * SUB) as f32;
            (255.0 * (1.0 - covered)).round() as u8
        });
    }
}

/// Where the renders of one canvas go: a grid spread over the poster, one cell per face, each
/// render centred in its cell. `side` is a render's side; returns the top-left corners, or
/// None when `n` renders of that side do not fit with [`MIN_GAP_PX`] between them.
pub fn layout(n: usize, side: u32) -> Option<Vec<(u32, u32)>> {
    if n == 0 {
        return Some(Vec::new());
    }
    let aspect = POSTER_WIDTH as f32 / POSTER_HEIGHT as f32;
    let cols = ((n as f32 * aspect).sqrt().ceil() as usize).clamp(1, n);
    let rows = n.div_ceil(cols);
    let (cell_w, cell_h) = (POSTER_WIDTH / cols as u32, POSTER_HEIGHT / rows as u32);
    if cell_w < side + MIN_GAP_PX || cell_h < side + MIN_GAP_PX {
        return None;
    }
    Some(
        (0..n)
            .map(|i| {
                let (col, row) = ((i % cols) as u32, (i / cols) as u32);
                (
                    col * cell_w + (cell_w - side) / 2,
                    row * cell_h + (cell_h - side) / 2,
                )
            })
            .collect(),
    )
}

/// The most renders of `side` px one canvas holds.
pub fn per_canvas(side: u32) -> usize {
    let mut n = 1;
    while layout(n + 1, side).is_some() {
        n += 1;
    }
    n
}

/// One poster: `sources` under `condition`, each face `height_px` tall; the canvas and the
/// truth box of each source on it (in order). `seed` drives the grain and the text blocks.
pub fn render_poster(
    sources: &[&RobustSource],
    condition: Condition,
    height_px: u32,
    seed: u64,
) -> (RgbImage, Vec<BoundingBox>) {
    let mut canvas = RgbImage::from_pixel(POSTER_WIDTH, POSTER_HEIGHT, NEUTRAL_GREY);
    let mut rng = Rng::new(seed ^ 0xA5A5_A5A5);
    let renders: Vec<(RgbImage, BoundingBox)> = sources
        .iter()
        .map(|s| {
            let cut = match condition {
                Condition::Rotated(d) => s
                    .tilted
                    .iter()
                    .find(|(t, _)| *t == d)
                    .map_or(&s.cut, |(_, c)| c),
                _ => &s.cut,
            };
            let (mut render, bbox) = render_face(cut, &s.face, height_px, false);
            if condition == Condition::TextBars {
                draw_text_bars(&mut render, &bbox, &mut rng);
            }
            (render, bbox)
        })
        .collect();
    let side = renders.iter().map(|(r, _)| r.width().max(r.height())).max();
    let places = side
        .and_then(|s| layout(renders.len(), s))
        .expect("callers split the sources into canvases that hold them");
    let mut truth = Vec::with_capacity(renders.len());
    for ((render, bbox), (x, y)) in renders.iter().zip(places) {
        image::imageops::replace(&mut canvas, render, x as i64, y as i64);
        truth.push(BoundingBox {
            x: bbox.x + x as f32,
            y: bbox.y + y as f32,
            ..*bbox
        });
    }
    apply_to_poster(&mut canvas, condition, seed);
    (canvas, truth)
}

/// The counts of one condition at one face height.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct RobustnessCell {
    pub faces: u32,
    pub found: u32,
    /// Found faces given a gender label (not `unknown`), and those whose label is the truth's.
    pub decided: u32,
    pub correct: u32,
    /// Found faces whose gender is `unknown`, whatever the reason.
    pub unknown: u32,
    /// Faces the pipeline reported that match no rendered face.
    pub false_faces: u32,
}

impl RobustnessCell {
    pub fn recall(&self) -> Option<f64> {
        (self.faces > 0).then(|| self.found as f64 / self.faces as f64)
    }

    pub fn wrong(&self) -> u32 {
        self.decided - self.correct
    }

    /// Add what the pipeline found on one canvas whose faces have these truth boxes and
    /// genders.
    pub fn add(&mut self, truth: &[(BoundingBox, &str)], found: &[crate::domain::Face]) {
        let boxes: Vec<BoundingBox> = truth.iter().map(|(b, _)| *b).collect();
        let det: Vec<BoundingBox> = found.iter().map(|f| f.bbox).collect();
        let matches = match_faces(&boxes, &det, MATCH_IOU);
        self.faces += truth.len() as u32;
        self.found += matches.len() as u32;
        self.false_faces += (found.len() - matches.len()) as u32;
        for (ti, fj) in matches {
            match found[fj].attribute("gender") {
                Some(g) if !g.is_unknown() => {
                    self.decided += 1;
                    self.correct += u32::from(g.label == truth[ti].1);
                }
                _ => self.unknown += 1,
            }
        }
    }
}

/// The table of one part of the labelled set.
#[derive(Debug, Clone, PartialEq)]
pub struct RobustnessTable {
    /// "held-out" or "calibration".
    pub part: &'static str,
    /// Faces rendered, distinct people among them, and how many of each are women.
    pub sources: usize,
    pub sources_of_women: usize,
    pub people: usize,
    pub women: usize,
    /// Posters analysed.
    pub canvases: usize,
    /// (condition, face height, counts), conditions in [`CONDITIONS`] order, heights within.
    pub cells: Vec<(Condition, u32, RobustnessCell)>,
}

impl RobustnessTable {
    pub fn cell(&self, condition: Condition, height_px: u32) -> Option<&RobustnessCell> {
        self.cells
            .iter()
            .find(|(c, h, _)| *c == condition && *h == height_px)
            .map(|(_, _, cell)| cell)
    }
}

/// One poster to render: its condition, face height, seed and the faces on it.
pub type Canvas<'a> = (Condition, u32, u64, Vec<&'a RobustSource>);

/// Every canvas of one part.
pub fn canvases(part_index: u64, sources: &[RobustSource]) -> Vec<Canvas<'_>> {
    let mut out = Vec::new();
    for (ci, &condition) in CONDITIONS.iter().enumerate() {
        for (hi, &h) in ROBUSTNESS_HEIGHTS.iter().enumerate() {
            // A render's side is its cut's side scaled, rounded: at most this.
            let side = (h as f32 * CUT_FACE_HEIGHTS).ceil() as u32 + 2;
            let n = per_canvas(side).max(1);
            let taken: Vec<&RobustSource> = sources.iter().filter(|s| condition.takes(s)).collect();
            for (k, chunk) in taken.chunks(n).enumerate() {
                let index = ((part_index * 16 + ci as u64) * 16 + hi as u64) * 64 + k as u64;
                out.push((condition, h, SEED.wrapping_add(index), chunk.to_vec()));
            }
        }
    }
    out
}

/// The table of one part, from what the pipeline found on each of [`canvases`] (in order).
pub fn table(
    part: &'static str,
    sources: &[RobustSource],
    canvases: &[Canvas<'_>],
    truth_boxes: &[Vec<BoundingBox>],
    found: &[Vec<crate::domain::Face>],
) -> RobustnessTable {
    let mut cells: Vec<(Condition, u32, RobustnessCell)> = CONDITIONS
        .iter()
        .flat_map(|&c| {
            ROBUSTNESS_HEIGHTS
                .iter()
                .map(move |&h| (c, h, RobustnessCell::default()))
        })
        .collect();
    for (((condition, h, _, on), boxes), faces) in canvases.iter().zip(truth_boxes).zip(found) {
        let truth: Vec<(BoundingBox, &str)> = boxes
            .iter()
            .zip(on)
            .map(|(b, s)| (*b, s.gender.as_str()))
            .collect();
        if let Some((_, _, cell)) = cells
            .iter_mut()
            .find(|(c, hh, _)| c == condition && hh == h)
        {
            cell.add(&truth, faces);
        }
    }
    let people: BTreeSet<&str> = sources.iter().map(|s| s.person.as_str()).collect();
    let women: BTreeSet<&str> = sources
        .iter()
        .filter(|s| s.gender == "female")
        .map(|s| s.person.as_str())
        .collect();
    RobustnessTable {
        part,
        sources: sources.len(),
        sources_of_women: sources.iter().filter(|s| s.gender == "female").count(),
        people: people.len(),
        women: women.len(),
        canvases: canvases.len(),
        cells,
    }
}

/// The robustness tables of the labelled set: the held-out part (when there is one), then the
/// calibration part. Each canvas is written as a PNG to a private temp folder and analysed by
/// `pipeline` exactly as `regard analyze` analyses a poster file.
pub async fn measure(
    pipeline: &std::sync::Arc<crate::pipeline::Pipeline>,
    limits: &crate::config::Limits,
    truth: &super::Truth,
    base: &std::path::Path,
) -> anyhow::Result<Vec<RobustnessTable>> {
    use anyhow::Context;
    let mut parts: Vec<(&'static str, &BTreeMap<String, ImageTruth>)> = Vec::new();
    if !truth.held_out_images.is_empty() {
        parts.push(("held-out", &truth.held_out_images));
    }
    parts.push(("calibration", &truth.images));
    let fetcher =
        crate::media::fetch::Fetcher::new(crate::media::fetch::FetchPolicy::cli(limits.clone()));
    let dir = tempfile::tempdir().context("cannot make a temp folder for the posters")?;
    let mut out = Vec::new();
    for (part_index, (part, images)) in parts.into_iter().enumerate() {
        let inputs: Vec<(String, std::path::PathBuf, ImageTruth)> = images
            .iter()
            .filter(|(_, t)| {
                t.faces
                    .iter()
                    .any(|f| f.height() >= ROBUSTNESS_SOURCE_MIN_PX)
            })
            .map(|(name, t)| (name.clone(), base.join(name), t.clone()))
            .collect();
        let limits_c = limits.clone();
        let sources = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<RobustSource>> {
            let mut all = Vec::new();
            for (name, path, t) in &inputs {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let decoded = crate::media::image::decode_image(name, &bytes, &limits_c)?;
                all.extend(sources_of(name, &decoded.image, t));
            }
            Ok(all)
        })
        .await??;
        let plan = canvases(part_index as u64, &sources);
        let mut truth_boxes = Vec::with_capacity(plan.len());
        let mut found = Vec::with_capacity(plan.len());
        for (k, (condition, h, seed, on)) in plan.iter().enumerate() {
            let (canvas, boxes) = render_poster(on, *condition, *h, *seed);
            let path = dir.path().join(format!("{part}-{k}.png"));
            canvas
                .save_with_format(&path, image::ImageFormat::Png)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let media = fetcher.fetch(&path.display().to_string()).await?;
            let p = std::sync::Arc::clone(pipeline);
            let analysis = tokio::task::spawn_blocking(move || {
                p.analyze_with_settings(&media, p.settings(), false, &|_| {})
            })
            .await??;
            let Analysis::Poster(poster) = analysis.analysis else {
                anyhow::bail!("a rendered poster was not analysed as a poster");
            };
            truth_boxes.push(boxes);
            found.push(poster.faces);
        }
        tracing::info!(part, canvases = plan.len(), "robustness");
        out.push(table(part, &sources, &plan, &truth_boxes, &found));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic photograph: a textured background and a bright "face" with dark eyes and
    /// mouth, and its truth.
    fn photo() -> (RgbImage, ImageTruth) {
        let image = RgbImage::from_fn(400, 400, |x, y| {
            let inside = (150..250).contains(&x) && (120..250).contains(&y);
            let feature = inside
                && (((165..185).contains(&x) || (215..235).contains(&x))
                    && (160..170).contains(&y)
                    || (175..225).contains(&x) && (215..225).contains(&y));
            if feature {
                Rgb([30, 20, 20])
            } else if inside {
                Rgb([220, 170, 140])
            } else {
                Rgb([
                    (x % 97) as u8 + 40,
                    (y % 89) as u8 + 60,
                    ((x + y) % 50) as u8 + 90,
                ])
            }
        });
        let truth: ImageTruth = serde_json::from_str(
            r#"{"faces": [{"person": "p", "gender": "female", "box": [150, 120, 100, 130]}]}"#,
        )
        .expect("truth");
        (image, truth)
    }

    fn sources() -> Vec<RobustSource> {
        let (image, truth) = photo();
        sources_of("photo.png", &image, &truth)
    }

    #[test]
    fn every_condition_changes_the_pixels_and_the_same_seed_gives_the_same_bytes() {
        let sources = sources();
        let on: Vec<&RobustSource> = sources.iter().collect();
        for h in ROBUSTNESS_HEIGHTS {
            let (clean, clean_boxes) = render_poster(&on, Condition::Clean, h, 7);
            // The profile row chooses faces, not pixels: its faces are rendered as clean.
            let (profile, _) = render_poster(&on, Condition::Profile, h, 7);
            assert_eq!(profile.as_raw(), clean.as_raw());
            for condition in CONDITIONS
                .into_iter()
                .skip(1)
                .filter(|&c| c != Condition::Profile)
            {
                let (a, boxes) = render_poster(&on, condition, h, 7);
                let (b, _) = render_poster(&on, condition, h, 7);
                assert_eq!(a.as_raw(), b.as_raw(), "{} at {h} px", condition.name());
                assert_eq!(boxes, clean_boxes, "the face stays where it was");
                let changed = a
                    .as_raw()
                    .iter()
                    .zip(clean.as_raw())
                    .filter(|(x, y)| x != y)
                    .count();
                // Inside the face box itself, not only somewhere on the poster.
                let b0 = boxes[0];
                let mut in_face = 0;
                for y in b0.y as u32..b0.bottom() as u32 {
                    for x in b0.x as u32..b0.right() as u32 {
                        in_face += u32::from(a.get_pixel(x, y) != clean.get_pixel(x, y));
                    }
                }
                assert!(
                    changed > 0 && in_face > 0,
                    "{} at {h} px changes nothing",
                    condition.name()
                );
            }
        }
        // The seeded conditions really depend on the seed.
        for condition in [Condition::Grain, Condition::TextBars] {
            let (a, _) = render_poster(&on, condition, 80, 7);
            let (b, _) = render_poster(&on, condition, 80, 8);
            assert_ne!(a.as_raw(), b.as_raw(), "{}", condition.name());
        }
    }

    #[test]
    fn a_tilted_face_stays_whole_inside_its_cut_and_the_canvas() {
        // A plain bright face on black: after the turn, as much bright area as before, and
        // every turned corner of the box inside the cut.
        let mut image = RgbImage::from_pixel(300, 300, Rgb([0, 0, 0]));
        for y in 100..200 {
            for x in 110..190 {
                image.put_pixel(x, y, Rgb([255, 255, 255]));
            }
        }
        let face = BoundingBox {
            x: 110.0,
            y: 100.0,
            width: 80.0,
            height: 100.0,
        };
        let bright = |img: &RgbImage| img.pixels().map(|p| p.0[0] as f64 / 255.0).sum::<f64>();
        let (upright, inside) = tilted_cut(&image, &face, &[], 0.0);
        for degrees in [-TILT_DEG, TILT_DEG] {
            let (cut, box_in_cut) = tilted_cut(&image, &face, &[], degrees);
            assert_eq!(box_in_cut, inside);
            let (a, b) = (bright(&cut), bright(&upright));
            assert!((a - b).abs() < 0.02 * b, "{degrees}°: {a} vs {b}");
            for (x, y) in turned_corners(&box_in_cut, degrees) {
                let (w, h) = (cut.width() as f32, cut.height() as f32);
                assert!(
                    x >= 0.0 && y >= 0.0 && x < w && y < h,
                    "{degrees}°: ({x}, {y})"
                );
            }
        }
        // And on the poster: at every height, every turned face box lies inside the canvas.
        let (photo, truth) = photo();
        let sources = sources_of("photo.png", &photo, &truth);
        let many: Vec<&RobustSource> = std::iter::repeat_n(&sources[0], 9).collect();
        for h in ROBUSTNESS_HEIGHTS {
            for degrees in [-TILT_DEG, TILT_DEG] {
                let (canvas, boxes) = render_poster(&many, Condition::Rotated(degrees), h, 1);
                for b in &boxes {
                    for (x, y) in turned_corners(b, degrees) {
                        assert!(
                            x >= 0.0
                                && y >= 0.0
                                && x < canvas.width() as f32
                                && y < canvas.height() as f32
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_tilt_turns_the_face_the_stated_way() {
        // A bright dot right of the face centre moves up on screen under a positive
        // (counter-clockwise) turn.
        let mut image = RgbImage::from_pixel(300, 300, Rgb([0, 0, 0]));
        for y in 148..152 {
            for x in 188..192 {
                image.put_pixel(x, y, Rgb([255, 255, 255]));
            }
        }
        let face = BoundingBox {
            x: 100.0,
            y: 100.0,
            width: 100.0,
            height: 100.0,
        };
        let (cut, _) = tilted_cut(&image, &face, &[], 20.0);
        let (mut sx, mut sy, mut n) = (0.0, 0.0, 0.0);
        for (x, y, p) in cut.enumerate_pixels() {
            let w = p.0[0] as f64;
            sx += w * x as f64;
            sy += w * y as f64;
            n += w;
        }
        let (cx, cy) = (sx / n, sy / n);
        // Centre of the cut is (100, 100); the dot was at (+40, 0) from it.
        assert!(cy < 100.0 - 10.0 && cx > 100.0 + 30.0, "({cx}, {cy})");
    }

    #[test]
    fn only_faces_labelled_in_profile_go_on_the_profile_posters() {
        let (image, _) = photo();
        let truth: ImageTruth = serde_json::from_str(
            r#"{"faces": [
                {"person": "a", "gender": "female", "box": [150, 120, 100, 130]},
                {"person": "b", "gender": "male", "box": [20, 20, 90, 90], "pose": "profile"}
            ]}"#,
        )
        .expect("truth");
        let sources = sources_of("photo.png", &image, &truth);
        assert_eq!(
            sources.iter().map(|s| s.profile).collect::<Vec<_>>(),
            [false, true]
        );
        for (condition, _, _, on) in canvases(0, &sources) {
            let people: Vec<&str> = on.iter().map(|s| s.person.as_str()).collect();
            let expected: &[&str] = if condition == Condition::Profile {
                &["b"]
            } else {
                &["a", "b"]
            };
            assert_eq!(people, expected, "{}", condition.name());
        }
    }

    #[test]
    fn layout_keeps_renders_apart_and_on_the_poster() {
        for h in ROBUSTNESS_HEIGHTS {
            let side = (h as f32 * CUT_FACE_HEIGHTS) as u32 + 1;
            let n = per_canvas(side);
            assert!(n >= 8, "{h} px: {n}");
            let places = layout(n, side).expect("fits");
            for (i, &(x, y)) in places.iter().enumerate() {
                assert!(x + side <= POSTER_WIDTH && y + side <= POSTER_HEIGHT);
                for &(x2, y2) in &places[..i] {
                    let apart = x + side + MIN_GAP_PX <= x2
                        || x2 + side + MIN_GAP_PX <= x
                        || y + side + MIN_GAP_PX <= y2
                        || y2 + side + MIN_GAP_PX <= y;
                    assert!(apart);
                }
            }
            assert!(layout(n + 1, side).is_none());
        }
    }

    #[test]
    fn a_cell_counts_found_decided_unknown_and_false_faces() {
        use crate::domain::{AttributeEstimate, Face};
        let b = |x: f32| BoundingBox {
            x,
            y: 0.0,
            width: 30.0,
            height: 40.0,
        };
        let face = |x: f32, p_female: f32, px: f32| Face {
            bbox: b(x),
            landmarks: [[0.0; 2]; 5],
            detection_score: 0.9,
            size_px: px,
            attributes: vec![AttributeEstimate::decide(
                "gender",
                [
                    ("female".to_string(), p_female),
                    ("male".to_string(), 1.0 - p_female),
                ]
                .into_iter()
                .collect(),
                0.85,
                px,
                24.0,
            )],
            age: None,
        };
        let truth = [
            (b(0.0), "female"),
            (b(100.0), "male"),
            (b(200.0), "male"),
            (b(300.0), "female"),
        ];
        // Right, wrong, unknown (too small), missed; one false face.
        let found = [
            face(0.0, 0.99, 40.0),
            face(100.0, 0.95, 40.0),
            face(200.0, 0.1, 10.0),
            face(500.0, 0.5, 40.0),
        ];
        let mut cell = RobustnessCell::default();
        cell.add(&truth, &found);
        assert_eq!(
            cell,
            RobustnessCell {
                faces: 4,
                found: 3,
                decided: 2,
                correct: 1,
                unknown: 1,
                false_faces: 1
            }
        );
        assert_eq!(cell.wrong(), 1);
        assert_eq!(cell.recall(), Some(0.75));
    }
}
