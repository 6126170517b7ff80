//! Settings that shape results (recorded in every result's provenance) and limits that protect
//! the process (not recorded: they change whether a result exists, not what it says).
//! Defaults live here, in one place.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Everything that changes what an analysis says. Two analyses of the same bytes with the same
/// model set and equal `AnalysisSettings` are the same result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisSettings {
    /// Detector score below which a candidate face is dropped.
    pub detection_score_threshold: f32,
    /// IoU above which two detections are the same face (non-maximum suppression).
    pub nms_iou: f32,
    /// Faces shorter than this (pixels) are not reported at all.
    pub min_face_px: f32,
    /// In trailers, faces shorter than this (pixels) are not looked for: one detector run per
    /// 1080p frame instead of three (a poster's small faces matter more than a crowd's in a shot).
    #[serde(default = "default_trailer_min_face_px")]
    pub trailer_min_face_px: f32,
    /// Below this face height (pixels) perceived attributes are `unknown` (face_too_small).
    pub min_reliable_face_px: f32,
    /// Below this top probability a categorical attribute is `unknown` (low_confidence).
    pub min_attribute_confidence: f32,
    /// Average each face's perceived attributes with those of its mirror image.
    #[serde(default = "default_true")]
    pub mirror_average: bool,
    /// Upper edges (exclusive) of the age bands, in years: [18, 30, 45, 60] gives
    /// 0-17, 18-29, 30-44, 45-59, 60+.
    pub age_band_edges: Vec<u32>,
    /// Trailer frames sampled per second of presentation time.
    pub sample_rate: f64,
    /// Trailer tracks seen in fewer sampled frames than this are dropped as untrustworthy.
    pub min_track_frames: u32,
    /// Cosine similarity of face embeddings above which two shot tracks are the same person.
    pub same_person_similarity: f32,
    /// Signature distance (colour and layout, 0..1) between consecutive sampled frames at or above which a
    /// shot cut is declared; tracks never continue across a cut (see `track::shot`).
    #[serde(default = "default_shot_cut_distance")]
    pub shot_cut_distance: f32,
}

fn default_shot_cut_distance() -> f32 {
    0.22
}

impl Default for AnalysisSettings {
    fn default() -> Self {
        AnalysisSettings {
            detection_score_threshold: 0.6,
            nms_iou: 0.3,
            min_face_px: 16.0,
            // Both chosen by the face-size calibration of `regard evaluate` (EVALUATION.md).
            min_reliable_face_px: 24.0,
            min_attribute_confidence: 0.85,
            mirror_average: true,
            trailer_min_face_px: default_trailer_min_face_px(),
            age_band_edges: vec![18, 30, 45, 60],
            sample_rate: 2.0,
            min_track_frames: 2,
            same_person_similarity: 0.363,
            shot_cut_distance: default_shot_cut_distance(),
        }
    }
}

fn default_trailer_min_face_px() -> f32 {
    48.0
}

fn default_true() -> bool {
    true
}

impl AnalysisSettings {
    /// Flat key/values for provenance records.
    pub fn as_provenance(&self) -> BTreeMap<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map.into_iter().collect(),
            _ => BTreeMap::new(),
        }
    }

    /// The age band label for an age in years, e.g. "30-44" or "60+".
    pub fn age_band(&self, years: f32) -> String {
        let mut lower = 0;
        for &edge in &self.age_band_edges {
            if years < edge as f32 {
                return format!("{lower}-{}", edge - 1);
            }
            lower = edge;
        }
        format!("{lower}+")
    }

    /// Every band label, youngest first.
    pub fn age_bands(&self) -> Vec<String> {
        let mut bands = Vec::new();
        let mut lower = 0;
        for &edge in &self.age_band_edges {
            bands.push(format!("{lower}-{}", edge - 1));
            lower = edge;
        }
        bands.push(format!("{lower}+"));
        bands
    }
}

/// Bounds that keep a worker alive whatever it is fed.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest media file accepted, in bytes (download or local).
    pub max_media_bytes: u64,
    /// Largest image accepted, per side, in pixels.
    pub max_image_side: u32,
    /// Largest image accepted, in pixels (width × height).
    pub max_image_pixels: u64,
    /// Largest decoder allocation for an image, in bytes.
    pub max_image_alloc: u64,
    /// Largest video frame accepted, per side (16K headers are refused).
    pub max_video_side: u32,
    /// Longest stretch of a video analysed, in seconds.
    pub max_video_duration_s: f64,
    /// Most frames sampled from one video.
    pub max_video_frames: u32,
    /// Wall-clock deadline for one media file's analysis.
    pub analysis_deadline: Duration,
    /// HTTP connect timeout.
    pub connect_timeout: Duration,
    /// HTTP whole-transfer timeout.
    pub fetch_timeout: Duration,
    /// Redirects followed at most.
    pub max_redirects: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_media_bytes: 512 * 1024 * 1024,
            max_image_side: 12_000,
            max_image_pixels: 60_000_000,
            max_image_alloc: 512 * 1024 * 1024,
            max_video_side: 4096,
            max_video_duration_s: 600.0,
            max_video_frames: 2_400,
            analysis_deadline: Duration::from_secs(900),
            connect_timeout: Duration::from_secs(10),
            fetch_timeout: Duration::from_secs(300),
            max_redirects: 5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_bands_cover_every_age_once() {
        let s = AnalysisSettings::default();
        assert_eq!(s.age_bands(), ["0-17", "18-29", "30-44", "45-59", "60+"]);
        assert_eq!(s.age_band(0.25), "0-17");
        assert_eq!(s.age_band(17.99), "0-17");
        assert_eq!(s.age_band(18.0), "18-29");
        assert_eq!(s.age_band(44.5), "30-44");
        assert_eq!(s.age_band(80.0), "60+");
    }

    #[test]
    fn provenance_lists_every_threshold() {
        let p = AnalysisSettings::default().as_provenance();
        assert_eq!(p["min_reliable_face_px"], serde_json::json!(24.0));
        assert!(p.contains_key("min_attribute_confidence"));
        assert!(p.contains_key("sample_rate"));
    }
}
