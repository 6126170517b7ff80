//! The renders of the face-size calibration: each large truth face cut out, downscaled to every
//! calibration height, packed on canvases and run through the pipeline's own models.

use super::calibration::{
    CALIBRATION_HEIGHTS, CALIBRATION_SOURCE_MIN_PX, RenderedFace, SizeRender,
};
use super::matching::{MATCH_IOU, match_faces};
use super::truth::{FaceTruth, ImageTruth};
use crate::domain::BoundingBox;
use image::RgbImage;

/// Side of the square cut around a face, in face heights: hair, ears and a little background,
/// as the detector and the face chip see around a real face.
pub const CROP_FACE_HEIGHTS: f32 = 2.0;
/// Renders are packed on canvases of this side: the detector's own input size, so it sees each
/// face at its rendered size (one view, no resize, no tiles).
pub const CANVAS_SIDE: u32 = 640;
/// Neutral grey between renders, so that no render touches another.
pub const CANVAS_GAP: u32 = 16;
pub const NEUTRAL_GREY: image::Rgb<u8> = image::Rgb([128, 128, 128]);

/// A square cut of side `CROP_FACE_HEIGHTS` face heights centred on `face`, neutral grey where it
/// leaves the image and over every other face of the image (so only one face is measured), and
/// the face box inside it.
pub fn face_crop(
    image: &RgbImage,
    face: &BoundingBox,
    other_faces: &[BoundingBox],
) -> (RgbImage, BoundingBox) {
    let side = (face.height * CROP_FACE_HEIGHTS).round().max(1.0) as u32;
    let x0 = (face.x + face.width / 2.0 - side as f32 / 2.0).round() as i64;
    let y0 = (face.y + face.height / 2.0 - side as f32 / 2.0).round() as i64;
    let covered = |x: i64, y: i64| {
        let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
        other_faces
            .iter()
            .any(|o| fx >= o.x && fx < o.right() && fy >= o.y && fy < o.bottom())
    };
    let crop = RgbImage::from_fn(side, side, |cx, cy| {
        let (x, y) = (x0 + cx as i64, y0 + cy as i64);
        if x < 0
            || y < 0
            || x >= image.width() as i64
            || y >= image.height() as i64
            || covered(x, y)
        {
            NEUTRAL_GREY
        } else {
            *image.get_pixel(x as u32, y as u32)
        }
    });
    let inside = BoundingBox {
        x: face.x - x0 as f32,
        y: face.y - y0 as f32,
        width: face.width,
        height: face.height,
    };
    (crop, inside)
}

/// The crop downscaled by area averaging so that the face is `height_px` tall, optionally
/// mirrored, and the face box in the result.
pub fn render_face(
    crop: &RgbImage,
    face: &BoundingBox,
    height_px: u32,
    mirrored: bool,
) -> (RgbImage, BoundingBox) {
    let f = height_px as f32 / face.height.max(1.0);
    let w = ((crop.width() as f32 * f).round() as u32).max(1);
    let h = ((crop.height() as f32 * f).round() as u32).max(1);
    let (fx, fy) = (
        w as f32 / crop.width() as f32,
        h as f32 / crop.height() as f32,
    );
    let mut small = crate::vision::detect::resize_area(crop, w, h);
    let mut bbox = BoundingBox {
        x: face.x * fx,
        y: face.y * fy,
        width: face.width * fx,
        height: face.height * fy,
    };
    if mirrored {
        image::imageops::flip_horizontal_in_place(&mut small);
        bbox.x = w as f32 - bbox.right();
    }
    (small, bbox)
}

/// Shelf packing, largest first: for each (width, height), the canvas index and top-left corner,
/// with `gap` pixels around every item on canvases of `side`². Items larger than a canvas get a
/// canvas of their own at (gap, gap) and overflow it (callers keep items smaller).
pub fn pack(sizes: &[(u32, u32)], side: u32, gap: u32) -> Vec<(usize, u32, u32)> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse((sizes[i].1, sizes[i].0)));
    let mut out = vec![(0, 0, 0); sizes.len()];
    let (mut canvas, mut x, mut y, mut shelf) = (0usize, gap, gap, 0u32);
    let mut used = false;
    for i in order {
        let (w, h) = sizes[i];
        if used && x + w + gap > side {
            x = gap;
            y += shelf + gap;
            shelf = 0;
        }
        if used && y + h + gap > side {
            canvas += 1;
            x = gap;
            y = gap;
            shelf = 0;
        }
        out[i] = (canvas, x, y);
        used = true;
        x += w + gap;
        shelf = shelf.max(h);
    }
    out
}

/// Render every truth face of `min_source_px` and more of one image at every calibration size,
/// as is and mirrored, and run the pipeline's detector and attribute models on the renders.
pub fn calibrate_image(
    vision: &crate::vision::Vision,
    settings: &crate::config::AnalysisSettings,
    media: &str,
    image: &RgbImage,
    truth: &ImageTruth,
) -> Result<Vec<SizeRender>, crate::vision::VisionError> {
    let boxes: Vec<BoundingBox> = truth.faces.iter().map(FaceTruth::bbox).collect();
    let mut out = Vec::new();
    for (i, face) in truth.faces.iter().enumerate() {
        if face.height() < CALIBRATION_SOURCE_MIN_PX {
            continue;
        }
        let others: Vec<BoundingBox> = boxes
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, b)| *b)
            .collect();
        let (crop, inside) = face_crop(image, &boxes[i], &others);
        for mirrored in [false, true] {
            let renders: Vec<(RgbImage, BoundingBox)> = CALIBRATION_HEIGHTS
                .iter()
                .map(|&h| render_face(&crop, &inside, h, mirrored))
                .collect();
            let sizes: Vec<(u32, u32)> = renders.iter().map(|(r, _)| r.dimensions()).collect();
            let places = pack(&sizes, CANVAS_SIDE, CANVAS_GAP);
            let canvases = places.iter().map(|p| p.0).max().map_or(0, |m| m + 1);
            let mut found: Vec<Option<RenderedFace>> = vec![None; renders.len()];
            for c in 0..canvases {
                let mut canvas = RgbImage::from_pixel(CANVAS_SIDE, CANVAS_SIDE, NEUTRAL_GREY);
                let mut on_canvas = Vec::new();
                for (k, ((render, bbox), &(ci, x, y))) in renders.iter().zip(&places).enumerate() {
                    if ci != c {
                        continue;
                    }
                    image::imageops::replace(&mut canvas, render, x as i64, y as i64);
                    let placed = BoundingBox {
                        x: bbox.x + x as f32,
                        y: bbox.y + y as f32,
                        ..*bbox
                    };
                    on_canvas.push((k, placed));
                }
                // Every size is looked for (min face 1 px): the table shows what the models do
                // below `min_face_px` too, and says that the pipeline drops those faces.
                let detections = vision.detect(
                    &canvas,
                    settings.detection_score_threshold,
                    settings.nms_iou,
                    1.0,
                )?;
                let truth_boxes: Vec<BoundingBox> = on_canvas.iter().map(|(_, b)| *b).collect();
                let det_boxes: Vec<BoundingBox> = detections.iter().map(|d| d.bbox).collect();
                let matches = match_faces(&truth_boxes, &det_boxes, MATCH_IOU);
                let matched: Vec<crate::domain::Detection> = matches
                    .iter()
                    .map(|&(_, j)| detections[j].clone())
                    .collect();
                let perceptions =
                    vision.perceive_with(&canvas, &matched, settings.mirror_average)?;
                for ((ti, _), (d, p)) in matches.iter().zip(matched.iter().zip(perceptions)) {
                    // Every gender opinion, and their combination (the mean the pipeline
                    // decides on): the calibration is of the decision regard makes.
                    let opinions: Vec<crate::domain::ModelOpinion> = p
                        .opinions
                        .into_iter()
                        .filter(|(a, o)| a == "gender" && !o.probabilities.is_empty())
                        .map(|(_, o)| o)
                        .collect();
                    let (gender, disagreement) =
                        crate::vision::combine::mean_and_disagreement(&opinions)
                            .unwrap_or_default();
                    found[on_canvas[*ti].0] = Some(RenderedFace {
                        height_px: d.bbox.height,
                        gender,
                        disagreement,
                        opinions,
                    });
                }
            }
            for (h, detected) in CALIBRATION_HEIGHTS.iter().zip(found) {
                out.push(SizeRender {
                    media: media.to_string(),
                    person: face.person.clone(),
                    truth_gender: face.gender.clone(),
                    mirrored,
                    source_px: face.height(),
                    height_px: *h,
                    detected,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::matching::b;

    #[test]
    fn a_render_holds_the_face_at_the_asked_height_and_mirrors_its_box() {
        // A 400 px crop with a white 100×200 "face" left of centre.
        let mut crop = RgbImage::from_pixel(400, 400, image::Rgb([0, 0, 0]));
        for y in 100..300 {
            for x in 80..180 {
                crop.put_pixel(x, y, image::Rgb([255, 255, 255]));
            }
        }
        let face = b(80.0, 100.0, 100.0, 200.0);
        let (small, bbox) = render_face(&crop, &face, 20, false);
        assert_eq!(small.dimensions(), (40, 40));
        assert!((bbox.height - 20.0).abs() < 0.01 && (bbox.x - 8.0).abs() < 0.01);
        assert_eq!(small.get_pixel(12, 15).0, [255, 255, 255]);
        let (mirror, mbox) = render_face(&crop, &face, 20, true);
        assert!((mbox.x - 22.0).abs() < 0.01 && (mbox.width - 10.0).abs() < 0.01);
        assert_eq!(mirror.get_pixel(27, 15).0, [255, 255, 255]);
        assert_eq!(mirror.get_pixel(12, 15).0, [0, 0, 0]);
    }

    #[test]
    fn a_crop_greys_out_the_outside_and_the_other_faces() {
        let image = RgbImage::from_pixel(100, 100, image::Rgb([10, 20, 30]));
        let face = b(0.0, 0.0, 30.0, 40.0);
        let other = b(50.0, 0.0, 20.0, 20.0);
        let (crop, inside) = face_crop(&image, &face, &[other]);
        assert_eq!(crop.dimensions(), (80, 80));
        // Centred on the face: the face starts 25 px right and 20 px down in the crop.
        assert_eq!((inside.x, inside.y), (25.0, 20.0));
        assert_eq!(crop.get_pixel(0, 0).0, NEUTRAL_GREY.0, "outside the image");
        assert_eq!(crop.get_pixel(30, 30).0, [10, 20, 30], "the face");
        assert_eq!(
            crop.get_pixel(80 - 1, 25).0,
            NEUTRAL_GREY.0,
            "the other face"
        );
    }

    #[test]
    fn packing_keeps_items_apart_and_on_their_canvas() {
        let sizes: Vec<(u32, u32)> = CALIBRATION_HEIGHTS.iter().map(|h| (2 * h, 2 * h)).collect();
        let places = pack(&sizes, 640, 16);
        let rect = |i: usize| {
            let (c, x, y) = places[i];
            (c, x, y, x + sizes[i].0, y + sizes[i].1)
        };
        for i in 0..sizes.len() {
            let (_, _, _, r, bt) = rect(i);
            assert!(r + 16 <= 640 && bt + 16 <= 640, "{i} leaves its canvas");
            for j in 0..i {
                let (ci, xi, yi, ri, bi) = rect(i);
                let (cj, xj, yj, rj, bj) = rect(j);
                let apart =
                    ci != cj || ri + 16 <= xj || rj + 16 <= xi || bi + 16 <= yj || bj + 16 <= yi;
                assert!(apart, "{i} and {j} touch");
            }
        }
        // Every size of a face, even in both orientations, fits on one canvas: one detector run.
        let both: Vec<(u32, u32)> = sizes.iter().chain(&sizes).copied().collect();
        assert!(pack(&both, 640, 16).iter().all(|p| p.0 == 0));
    }
}
