//! The labelled set: what is really in each poster and trailer (format in fixtures/README.md).

use crate::domain::BoundingBox;
use anyhow::Context;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The labelled set. `images` and `trailers` are the calibration part (thresholds are chosen
/// on them); `held_out_images`, read from the file `held_out` names, is the held-out part the
/// headline tables and the CI floor are measured on.
#[derive(Debug, Default, Deserialize)]
pub struct Truth {
    #[serde(default)]
    pub images: BTreeMap<String, ImageTruth>,
    #[serde(default)]
    pub trailers: BTreeMap<String, TrailerTruth>,
    /// A truth file in the same folder holding the held-out images (its `images` only).
    #[serde(default)]
    pub held_out: Option<String>,
    #[serde(skip)]
    pub held_out_images: BTreeMap<String, ImageTruth>,
}

impl Truth {
    /// Read and parse a truth file (media paths in it are relative to its folder), and the
    /// held-out truth file it names.
    pub fn load(path: &Path) -> anyhow::Result<Truth> {
        let mut truth = Self::load_one(path)?;
        if let Some(name) = &truth.held_out {
            if name.contains('/') || name.contains('\\') {
                anyhow::bail!(
                    "{}: held_out must name a file in the same folder, not {name:?}",
                    path.display()
                );
            }
            let held = Self::load_one(&path.with_file_name(name))?;
            if held.held_out.is_some() || !held.trailers.is_empty() {
                anyhow::bail!("{name}: a held-out truth file holds images only");
            }
            if let Some(both) = held.images.keys().find(|k| truth.images.contains_key(*k)) {
                anyhow::bail!("{both} is in both parts of the labelled set");
            }
            truth.held_out_images = held.images;
        }
        Ok(truth)
    }

    fn load_one(path: &Path) -> anyhow::Result<Truth> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the truth file {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: invalid truth file", path.display()))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ImageTruth {
    pub faces: Vec<FaceTruth>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FaceTruth {
    pub person: String,
    pub gender: String,
    /// [x, y, width, height] in image pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// The head's pose when it is not frontal or nearly so: `"profile"` for a face seen from
    /// the side (one eye, the nose and the mouth in view). The robustness table renders these
    /// faces as its profile condition.
    #[serde(default)]
    pub pose: Option<String>,
    /// `"minor"` (a child or a teenager) or `"adult"`, where a coder can tell by eye; absent
    /// when unsure. The labelled set has no ages in years.
    #[serde(default)]
    pub age_group: Option<String>,
}

impl FaceTruth {
    pub fn bbox(&self) -> BoundingBox {
        BoundingBox {
            x: self.bbox[0],
            y: self.bbox[1],
            width: self.bbox[2],
            height: self.bbox[3],
        }
    }

    /// Height of the truth box, px.
    pub fn height(&self) -> f32 {
        self.bbox[3]
    }
}

#[derive(Debug, Deserialize)]
pub struct TrailerTruth {
    pub persons: Vec<PersonTruth>,
    /// The shots and the faces in each (for matching persons, `evaluate::identity`).
    #[serde(default)]
    pub shots: Vec<ShotTruth>,
}

/// One shot of a trailer, half-open in time.
#[derive(Debug, Deserialize)]
pub struct ShotTruth {
    pub start_s: f64,
    pub end_s: f64,
    pub faces: Vec<ShotFaceTruth>,
}

/// One face of a shot: who, and its box [x, y, w, h] in the shot's first and last frame.
#[derive(Debug, Deserialize)]
pub struct ShotFaceTruth {
    pub person: String,
    pub box_first: [f32; 4],
    pub box_last: [f32; 4],
    /// The simulated head turn of a fixture face (scripts/make_fixtures.py), 0 for none.
    #[serde(default)]
    pub yaw: f32,
}

impl TrailerTruth {
    /// How many more found persons than truth persons a tracker that would rather split than
    /// merge may report, per gender: a person seen only turned in k shots may come out as k
    /// persons (k − 1 more).
    pub fn allowed_splits(&self) -> std::collections::BTreeMap<String, u32> {
        let mut out = std::collections::BTreeMap::new();
        for p in &self.persons {
            let faces: Vec<&ShotFaceTruth> = self
                .shots
                .iter()
                .flat_map(|s| &s.faces)
                .filter(|f| f.person == p.person)
                .collect();
            if !faces.is_empty() && faces.iter().all(|f| f.yaw != 0.0) {
                *out.entry(p.gender.clone()).or_default() += faces.len() as u32 - 1;
            }
        }
        out
    }
}

#[derive(Debug, Deserialize)]
pub struct PersonTruth {
    pub person: String,
    pub gender: String,
    pub seconds_on_screen: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_without_faces_is_labelled_by_an_empty_face_list() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("truth.json"),
            r#"{"images": {"a.jpg": {"faces": [{"person": "p", "gender": "male", "box": [1, 2, 30, 40]}]}}, "held_out": "held.json"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("held.json"),
            r#"{"images": {"external/brick.png": {"faces": []}}}"#,
        )
        .unwrap();
        let truth = Truth::load(&dir.path().join("truth.json")).unwrap();
        assert_eq!(truth.images["a.jpg"].faces.len(), 1);
        assert!(truth.held_out_images["external/brick.png"].faces.is_empty());
        // A missing face list is an error, not an image without faces.
        std::fs::write(dir.path().join("held.json"), r#"{"images": {"x.png": {}}}"#).unwrap();
        assert!(Truth::load(&dir.path().join("truth.json")).is_err());
    }
}
