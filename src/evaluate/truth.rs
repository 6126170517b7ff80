//! The labelled set: what is really in each poster and trailer (format in fixtures/README.md).

use crate::domain::BoundingBox;
use anyhow::Context;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Deserialize)]
pub struct Truth {
    #[serde(default)]
    pub images: BTreeMap<String, ImageTruth>,
    #[serde(default)]
    pub trailers: BTreeMap<String, TrailerTruth>,
}

impl Truth {
    /// Read and parse a truth file (media paths in it are relative to its folder).
    pub fn load(path: &Path) -> anyhow::Result<Truth> {
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
}

#[derive(Debug, Deserialize)]
pub struct PersonTruth {
    pub person: String,
    pub gender: String,
    pub seconds_on_screen: f64,
}
