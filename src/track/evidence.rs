//! Which embedded faces may speak for a track across cuts. A profile or a blurred face gives an
//! embedding that sits closer to other people's than a frontal, sharp one does, so merging shot
//! tracks on such faces merges different people. Only faces that pass the pose and sharpness
//! gates (settings `reid_max_yaw`, `reid_max_roll_deg`, `reid_min_sharpness`) feed a track's
//! identity embedding; within a shot, linking uses every embedding as before.

use crate::config::AnalysisSettings;
use crate::domain::Landmarks;

/// Head pose from the five landmarks (subject's right eye, left eye, nose, mouth corners).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    /// Yaw proxy: where the nose falls between the eyes along the eye line, as |2t − 1| with t
    /// = 0 at one eye and 1 at the other: 0 for a frontal face, 1 with the nose under an eye.
    pub yaw: f32,
    /// Angle of the eye line from the horizontal, degrees (either sign).
    pub roll_deg: f32,
}

/// The pose of a face, or None when the eyes coincide (degenerate landmarks).
pub fn pose(landmarks: &Landmarks) -> Option<Pose> {
    let [re, le, nose, ..] = *landmarks;
    let (dx, dy) = (le[0] - re[0], le[1] - re[1]);
    let eye_sq = dx * dx + dy * dy;
    let usable = eye_sq.is_finite() && eye_sq > 1e-6 && nose.iter().all(|v| v.is_finite());
    if !usable {
        return None;
    }
    let t = ((nose[0] - re[0]) * dx + (nose[1] - re[1]) * dy) / eye_sq;
    Some(Pose {
        yaw: (2.0 * t - 1.0).abs(),
        roll_deg: dy.atan2(dx).to_degrees(),
    })
}

/// Whether an embedded face of this pose and chip sharpness may feed re-identification.
pub fn usable_for_reid(landmarks: &Landmarks, sharpness: f32, s: &AnalysisSettings) -> bool {
    pose(landmarks)
        .is_some_and(|p| p.yaw <= s.reid_max_yaw && p.roll_deg.abs() <= s.reid_max_roll_deg)
        && sharpness >= s.reid_min_sharpness
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRONTAL: Landmarks = [
        [30.0, 40.0],
        [70.0, 40.0],
        [50.0, 60.0],
        [35.0, 80.0],
        [65.0, 80.0],
    ];

    #[test]
    fn frontal_turned_and_tilted_faces_have_their_pose() {
        let p = pose(&FRONTAL).unwrap();
        assert!(p.yaw.abs() < 1e-6 && p.roll_deg.abs() < 1e-6, "{p:?}");
        // Nose three quarters of the way to the left eye: t = 0.75, yaw 0.5.
        let mut turned = FRONTAL;
        turned[2] = [60.0, 60.0];
        assert!((pose(&turned).unwrap().yaw - 0.5).abs() < 1e-6);
        // Eye line rising 40 px over 40 px: 45°; the nose still midway along it.
        let tilted = [
            [30.0, 40.0],
            [70.0, 0.0],
            [57.0, 27.0],
            [0.0, 0.0],
            [0.0, 0.0],
        ];
        let p = pose(&tilted).unwrap();
        assert!((p.roll_deg.abs() - 45.0).abs() < 1e-4, "{p:?}");
        assert!(p.yaw < 0.05, "{p:?}");
        assert_eq!(pose(&[[5.0, 5.0]; 5]), None);
    }

    #[test]
    fn the_gates_want_frontal_level_and_sharp() {
        let s = AnalysisSettings::default();
        let sharp = s.reid_min_sharpness;
        assert!(usable_for_reid(&FRONTAL, sharp, &s));
        assert!(!usable_for_reid(&FRONTAL, sharp * 0.99, &s));
        let mut turned = FRONTAL;
        turned[2][0] = 50.0 + 20.0 * (s.reid_max_yaw + 0.05);
        assert!(!usable_for_reid(&turned, sharp, &s));
        assert!(!usable_for_reid(&[[0.0; 2]; 5], sharp, &s));
    }
}
