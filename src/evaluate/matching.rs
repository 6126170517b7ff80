//! Which found face is which truth face.

use crate::domain::BoundingBox;

/// Minimum IoU between a detected box and a truth box to count as the same face. Detector boxes
/// run from forehead to chin and truth boxes were drawn the same way, but tolerate some slack.
pub const MATCH_IOU: f32 = 0.3;

/// Greedy one-to-one matching by IoU, best pairs first. Returns (truth index, detection index).
pub fn match_faces(
    truth: &[BoundingBox],
    detected: &[BoundingBox],
    min_iou: f32,
) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (i, t) in truth.iter().enumerate() {
        for (j, d) in detected.iter().enumerate() {
            let iou = t.iou(d);
            if iou >= min_iou {
                pairs.push((iou, i, j));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut used_t = vec![false; truth.len()];
    let mut used_d = vec![false; detected.len()];
    let mut out = Vec::new();
    for (_, i, j) in pairs {
        if !used_t[i] && !used_d[j] {
            used_t[i] = true;
            used_d[j] = true;
            out.push((i, j));
        }
    }
    out
}

#[cfg(test)]
pub(crate) fn b(x: f32, y: f32, w: f32, h: f32) -> BoundingBox {
    BoundingBox {
        x,
        y,
        width: w,
        height: h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_is_one_to_one_and_prefers_the_best_overlap() {
        let truth = [b(0.0, 0.0, 10.0, 10.0), b(100.0, 100.0, 10.0, 10.0)];
        let det = [
            b(1.0, 1.0, 10.0, 10.0),
            b(0.0, 0.0, 10.0, 10.0),
            b(300.0, 300.0, 5.0, 5.0),
        ];
        let m = match_faces(&truth, &det, 0.3);
        assert_eq!(m, vec![(0, 1)]);
    }
}
