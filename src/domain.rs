//! Plain domain types shared by every stage: faces, perceived attributes, statistics, provenance.
//! No IO here. Serde shapes are part of the public contract (`--json`, results events), so field
//! names are chosen for readers, not for storage.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The label used for every attribute when the evidence is not good enough to decide.
pub const UNKNOWN: &str = "unknown";

/// An axis-aligned box in source-image pixels (top-left corner, size).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoundingBox {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

impl BoundingBox {
    pub fn area(&self) -> f32 {
        self.width.max(0.0) * self.height.max(0.0)
    }

    pub fn center(&self) -> (f32, f32) {
        (self.x + self.width / 2.0, self.y + self.height / 2.0)
    }

    pub fn right(&self) -> f32 {
        self.x + self.width
    }

    pub fn bottom(&self) -> f32 {
        self.y + self.height
    }

    /// Intersection over union, 0 when the boxes do not overlap.
    pub fn iou(&self, other: &BoundingBox) -> f32 {
        let ix = (self.right().min(other.right()) - self.x.max(other.x)).max(0.0);
        let iy = (self.bottom().min(other.bottom()) - self.y.max(other.y)).max(0.0);
        let inter = ix * iy;
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }
}

/// Five facial landmarks in YuNet order: subject's right eye, left eye, nose tip,
/// right mouth corner, left mouth corner (the subject's right eye is on the image's left).
pub type Landmarks = [[f32; 2]; 5];

/// One face found by the detector, in source-image coordinates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub bbox: BoundingBox,
    pub landmarks: Landmarks,
    pub score: f32,
}

/// Why an attribute came out `unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownReason {
    /// The top probability is below the configured confidence threshold.
    LowConfidence,
    /// The face is smaller than the minimum size at which the model is reliable.
    FaceTooSmall,
    /// No model is configured for this attribute (perceived origin by default).
    NotConfigured,
    /// Two models' probabilities for the same label differ by more than the allowed margin
    /// (`gender_max_disagreement`): one of them is wrong, and which is not known.
    ModelsDisagree,
}

/// What one model said about a face before any combination: its probabilities per label (a
/// categorical attribute) or its age in years.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelOpinion {
    /// The model's manifest name.
    pub model: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub probabilities: BTreeMap<String, f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub years: Option<f32>,
}

impl ModelOpinion {
    pub fn probabilities(model: &str, probabilities: BTreeMap<String, f32>) -> Self {
        ModelOpinion {
            model: model.to_string(),
            probabilities,
            years: None,
        }
    }

    pub fn years(model: &str, years: f32) -> Self {
        ModelOpinion {
            model: model.to_string(),
            probabilities: BTreeMap::new(),
            years: Some(years),
        }
    }
}

/// A perceived categorical attribute (gender, origin, a festival's own label) of a face or a
/// person: the model's probabilities are kept, the label is only a decision on top of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeEstimate {
    /// Attribute name as declared in the model manifest, e.g. "gender".
    pub attribute: String,
    /// Decided label, or [`UNKNOWN`].
    pub label: String,
    /// Probability of the most likely label (0 when not configured).
    pub confidence: f32,
    /// Probability per label of the model (sums to 1). Empty when not configured.
    pub probabilities: BTreeMap<String, f32>,
    /// Set when `label` is [`UNKNOWN`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<UnknownReason>,
    /// Each model's own probabilities when more than one model has an opinion on this
    /// attribute; `probabilities` is then their combination (`vision::combine`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_model: Vec<ModelOpinion>,
}

impl AttributeEstimate {
    /// The estimate of an attribute that no model is configured for.
    pub fn not_configured(attribute: &str) -> Self {
        AttributeEstimate {
            attribute: attribute.to_string(),
            label: UNKNOWN.to_string(),
            confidence: 0.0,
            probabilities: BTreeMap::new(),
            unknown_reason: Some(UnknownReason::NotConfigured),
            by_model: Vec::new(),
        }
    }

    /// Decide a label from probabilities: the most likely label when its probability reaches
    /// `min_confidence` and the face is at least `min_face_px` tall, `unknown` otherwise.
    pub fn decide(
        attribute: &str,
        probabilities: BTreeMap<String, f32>,
        min_confidence: f32,
        face_px: f32,
        min_face_px: f32,
    ) -> Self {
        let best = probabilities
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(label, p)| (label.clone(), *p));
        let (label, confidence, reason) = match best {
            None => (UNKNOWN.to_string(), 0.0, Some(UnknownReason::NotConfigured)),
            Some((_, p)) if face_px < min_face_px => {
                (UNKNOWN.to_string(), p, Some(UnknownReason::FaceTooSmall))
            }
            Some((_, p)) if p < min_confidence => {
                (UNKNOWN.to_string(), p, Some(UnknownReason::LowConfidence))
            }
            Some((label, p)) => (label, p, None),
        };
        AttributeEstimate {
            attribute: attribute.to_string(),
            label,
            confidence,
            probabilities,
            unknown_reason: reason,
            by_model: Vec::new(),
        }
    }

    pub fn is_unknown(&self) -> bool {
        self.label == UNKNOWN
    }

    pub fn probability(&self, label: &str) -> f32 {
        self.probabilities.get(label).copied().unwrap_or(0.0)
    }
}

/// Perceived age: the expectation of the model's distribution, and the coarse band that is
/// reported (the model is jittery: bands, not years, are what statistics use).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgeEstimate {
    pub years: f32,
    /// Band label such as "30-44", or [`UNKNOWN`] for faces too small to trust.
    pub band: String,
    /// The model whose estimate `years` is, when several models estimated the age
    /// (`vision::combine::choose_age`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Every age model's own estimate, when there is more than one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_model: Vec<ModelOpinion>,
}

/// One face on a poster (or in one video frame) with everything regard perceived about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Face {
    pub bbox: BoundingBox,
    pub landmarks: Landmarks,
    pub detection_score: f32,
    /// Face height in source pixels (the size the reliability thresholds refer to).
    pub size_px: f32,
    /// One estimate per categorical attribute: "gender" always, "origin" always (unknown unless
    /// configured), then any other configured classifier.
    pub attributes: Vec<AttributeEstimate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<AgeEstimate>,
}

impl Face {
    pub fn attribute(&self, name: &str) -> Option<&AttributeEstimate> {
        self.attributes.iter().find(|a| a.attribute == name)
    }
}

/// A 95% interval on a share, in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// A model file that took part in an analysis.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ModelRef {
    pub name: String,
    pub role: String,
    pub file: String,
    pub sha256: String,
}

/// What produced a result: enough to reproduce it and to tell two model sets apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// regard's version (Cargo package version). Recorded, not part of the result key.
    pub pipeline_version: String,
    /// [`crate::ALGORITHM_VERSION`] of the code that made the result: part of the result key.
    /// Results stored before it existed read as 0.
    #[serde(default)]
    pub algorithm_version: u32,
    /// ONNX Runtime library sha256.
    pub runtime_sha256: String,
    pub models: Vec<ModelRef>,
    /// Every threshold and setting that shaped the result, as flat key/values.
    pub settings: BTreeMap<String, serde_json::Value>,
}

/// Facts about the media file itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// What the caller gave (path or URL).
    pub source: String,
    /// sha256 of the file's bytes: results are keyed on content, not on location.
    pub content_sha256: String,
    pub bytes: u64,
    /// Container/codec format as detected from the bytes (e.g. "jpeg", "png", "mp4/h264").
    pub format: String,
    pub width: u32,
    pub height: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<f64>,
}

/// Poster statistics of one category of one attribute (e.g. gender = female).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PosterCategoryStats {
    pub category: String,
    /// Faces whose decided label is this category.
    pub faces: u32,
    /// Sum over all faces of P(category): the count that carries the model's uncertainty.
    pub soft_count: f64,
    /// Share of the total face area held by faces of this category (decided labels).
    pub face_area_share: f64,
    /// The largest face of the poster has this label.
    pub has_largest_face: bool,
    /// Faces whose centre is in the upper third of the poster.
    pub faces_upper_third: u32,
    /// Faces whose centre is in the central third (horizontally and vertically).
    pub faces_central_third: u32,
    /// Soft share of the faces the model can speak for: Σ P(category) / n over faces that are
    /// big enough and have probabilities (see `stats::poster`); for `unknown`, the share of
    /// all faces left undecided. 0 when no face qualifies.
    #[serde(default)]
    pub share: f64,
    /// 95% interval on `share` from per-face classification uncertainty (`stats::interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_interval: Option<Interval>,
    /// Soft share of face area: Σ P(category) × area / Σ area over the faces `share` counts;
    /// for `unknown`, the area share of undecided faces. 0 when no face qualifies.
    #[serde(default)]
    pub face_area_share_soft: f64,
    /// 95% interval on `face_area_share_soft`, as for `share_interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face_area_share_interval: Option<Interval>,
}

/// One attribute's statistics on a poster. `categories` holds every label of the model plus
/// [`UNKNOWN`], in the model's order, zero rows included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PosterAttributeStats {
    pub attribute: String,
    pub total_faces: u32,
    pub unknown: u32,
    pub categories: Vec<PosterCategoryStats>,
}

/// Everything regard says about one poster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PosterAnalysis {
    pub media: MediaInfo,
    pub faces: Vec<Face>,
    pub statistics: Vec<PosterAttributeStats>,
    pub provenance: Provenance,
}

/// One distinct person of a trailer: the faces of one or more shot tracks that the embeddings
/// say are the same person. The embedding itself is never part of this type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// Number within the analysis, from 1, in order of first appearance.
    pub id: u32,
    /// Fused over the person's faces, weighted by detection confidence and face size.
    pub attributes: Vec<AttributeEstimate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<AgeEstimate>,
    pub first_seen_s: f64,
    pub last_seen_s: f64,
    /// Seconds on screen: one sampling interval for every sampled frame the person is seen in.
    pub screen_time_s: f64,
    /// Screen time weighted by face area relative to the frame area.
    pub prominence_s: f64,
    /// Sampled frames the person is seen in.
    pub frames: u32,
    /// Shot tracks merged into this person.
    pub tracks: u32,
    /// The frame where the person's face is largest, and the box there: what a human coder needs
    /// to find the person again (no face image is ever stored).
    pub key_frame_s: f64,
    pub key_box: BoundingBox,
    /// Median face height in pixels over the person's faces.
    pub median_face_px: f32,
}

impl Person {
    pub fn attribute(&self, name: &str) -> Option<&AttributeEstimate> {
        self.attributes.iter().find(|a| a.attribute == name)
    }
}

/// Trailer statistics of one category of one attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrailerCategoryStats {
    pub category: String,
    /// Distinct persons whose decided label is this category.
    pub persons: u32,
    /// Sum over persons of P(category).
    pub soft_persons: f64,
    /// Seconds during which at least one person of this category is on screen.
    pub screen_time_s: f64,
    /// Sum over persons of their screen time (two people on screen for 1 s count 2 s).
    pub person_seconds: f64,
    /// Share of sampled frames in which at least one person of this category is visible.
    pub frame_share: f64,
    /// Person-seconds weighted by face area relative to the frame.
    pub prominence_s: f64,
    /// First time a person of this category is seen, if ever.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_appearance_s: Option<f64>,
    /// Soft share of distinct persons: Σ P(category) / n over persons big enough to judge (see
    /// `stats::trailer`); for `unknown`, the share of all persons left undecided.
    #[serde(default)]
    pub share: f64,
    /// 95% interval on `share` from per-person classification uncertainty (`stats::interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_interval: Option<Interval>,
    /// Soft share of person-seconds: Σ P(category) × screen time / Σ screen time over the same
    /// persons as `share`; for `unknown`, undecided persons' share of all person-seconds.
    #[serde(default)]
    pub screen_time_share: f64,
    /// 95% interval on `screen_time_share`, as for `share_interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen_time_share_interval: Option<Interval>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrailerAttributeStats {
    pub attribute: String,
    pub total_persons: u32,
    pub unknown_persons: u32,
    pub categories: Vec<TrailerCategoryStats>,
}

fn one() -> u32 {
    1
}

/// Who is visible in one sampled frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineFrame {
    pub t: f64,
    /// Sampling intervals this frame stands for (more than 1 when the source had no newer
    /// frame for the next sample times).
    #[serde(default = "one")]
    pub slots: u32,
    /// Ids of the persons visible in this frame.
    pub persons: Vec<u32>,
    /// Persons visible per decided gender label (including `unknown`).
    pub gender_counts: BTreeMap<String, u32>,
}

/// What the decoder had to skip or cut: a partial result says so.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DecodeReport {
    /// Packets or frames the decoder rejected and that were skipped.
    pub corrupt_packets: u32,
    /// The file ended before its declared duration (truncated).
    pub truncated: bool,
    /// Analysis stopped at the configured duration or frame cap.
    pub capped: bool,
    /// Analysis stopped at the deadline.
    pub deadline_hit: bool,
    /// Human-readable notes on anything else skipped.
    pub notes: Vec<String>,
}

/// Everything regard says about one trailer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrailerAnalysis {
    pub media: MediaInfo,
    /// Seconds of the trailer that were analysed (less than its duration when capped).
    pub analysed_duration_s: f64,
    pub sampled_frames: u32,
    /// Samples per second.
    pub sample_rate: f64,
    /// Shot cuts detected (timestamps in seconds).
    pub shot_cuts_s: Vec<f64>,
    pub decode: DecodeReport,
    pub persons: Vec<Person>,
    pub statistics: Vec<TrailerAttributeStats>,
    pub timeline: Vec<TimelineFrame>,
    pub provenance: Provenance,
}

/// The result for one media file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Analysis {
    Poster(PosterAnalysis),
    Trailer(TrailerAnalysis),
}

impl Analysis {
    pub fn media(&self) -> &MediaInfo {
        match self {
            Analysis::Poster(p) => &p.media,
            Analysis::Trailer(t) => &t.media,
        }
    }

    pub fn provenance(&self) -> &Provenance {
        match self {
            Analysis::Poster(p) => &p.provenance,
            Analysis::Trailer(t) => &t.provenance,
        }
    }
}

/// The film a media file belongs to, as the scraper (or the CLI user) describes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Film {
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub year: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imdb_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmdb_id: Option<i64>,
    /// Any other identifier the scraper has (e.g. "allocine" => "12345").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub external_ids: BTreeMap<String, String>,
}

/// Where the film was selected, when the job says so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FestivalSelection {
    /// e.g. "Festival de Cannes"
    pub festival: String,
    /// e.g. 2026
    pub edition: i32,
    /// e.g. "Compétition", "Un Certain Regard"
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
}

/// What the media file is for the association: a poster or a trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaRole {
    Poster,
    Trailer,
}

impl MediaRole {
    /// `poster` or `trailer`: the name in jobs, rows, routing keys and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaRole::Poster => "poster",
            MediaRole::Trailer => "trailer",
        }
    }
}

/// Context an analysis is filed under: which film, which festival, where the file came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MediaContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub film: Option<Film>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub festival: Option<FestivalSelection>,
    /// The job id that asked for it, if it came through the queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}
