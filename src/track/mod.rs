//! Faces across frames: shot cuts, tracks within a shot, and persons across shots (embeddings
//! kept in memory only).
//!
//! A [`Tracker`] is fed one sampled frame at a time ([`Tracker::push`]) and keeps only the
//! tracks of the current shot in full; a finished track is reduced to a summary (its sightings'
//! boxes and times, probability sums, the mean embedding). [`Tracker::finish`] groups the shot
//! tracks into persons by embedding ([`identity`]), fuses each person's attributes, and builds
//! the timeline. Nothing here is written anywhere: embeddings die with the tracker.

pub mod evidence;
pub mod identity;
pub mod link;
pub mod shot;

use crate::config::AnalysisSettings;
use crate::domain::{
    AgeEstimate, AttributeEstimate, BoundingBox, Face, Person, TimelineFrame, UNKNOWN,
};
pub use shot::FrameSignature;
use std::collections::BTreeMap;

/// Consecutive samples a track may miss (a blink, a hand, a detector miss) and still continue.
pub const MAX_MISSED_SAMPLES: u32 = 1;
/// Most shot tracks grouped into persons: clustering holds an n×n similarity table (8 bytes a
/// cell, 32 MB at this bound). A trailer has a few hundred.
pub const MAX_TRACKS: usize = 2_000;

/// One sampled frame: what vision found in it.
#[derive(Debug, Clone)]
pub struct FrameObservation {
    /// Presentation time in seconds.
    pub t: f64,
    /// Sampling intervals this frame stands for: 1, or more when the source had no newer frame
    /// for the following sample times (low or variable frame rate).
    pub slots: u32,
    pub width: u32,
    pub height: u32,
    pub signature: FrameSignature,
    pub faces: Vec<Face>,
    /// One per face, L2-normalised; empty when embeddings are off.
    pub embeddings: Vec<Vec<f32>>,
    /// One per embedding: the sharpness of the chip it was computed on
    /// (`vision::quality::sharpness`); empty when `embeddings` is.
    pub sharpness: Vec<f32>,
}

/// Persons of one trailer and when they are seen.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackingResult {
    /// In order of first appearance, ids from 1.
    pub persons: Vec<Person>,
    /// One entry per sampled frame, in time order.
    pub timeline: Vec<TimelineFrame>,
    /// Time of the first sample of each new shot.
    pub shot_cuts_s: Vec<f64>,
    /// Tracks seen in fewer than `min_track_frames` samples, left out of persons and timeline.
    pub dropped_tracks: u32,
    /// (frame index, face index within the frame, person id), sorted: which person each face
    /// of each sampled frame was attributed to (faces of dropped tracks are absent).
    pub face_persons: Vec<(u32, u32, u32)>,
}

impl TrackingResult {
    /// The person the `face`-th face of the `frame`-th sampled frame belongs to.
    pub fn person_of(&self, frame: usize, face: usize) -> Option<u32> {
        self.face_persons
            .binary_search_by(|&(fr, fa, _)| (fr as usize, fa as usize).cmp(&(frame, face)))
            .ok()
            .map(|i| self.face_persons[i].2)
    }
}

/// A sampled frame kept for the pictures a person checks the tracking with: downscaled, with
/// its faces' boxes in the thumbnail's pixels and the person each face was attributed to
/// ([`TrackingResult::person_of`]; None: a track too short to count).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub t: f64,
    pub thumbnail: image::RgbImage,
    pub faces: Vec<(BoundingBox, Option<u32>)>,
}

/// Input the tracker refuses. None is worth a retry: the same input fails the same way.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrackError {
    #[error("tracking: sample interval {0} s is not a positive number")]
    BadInterval(f64),
    #[error("tracking: frame time {t} is not finite or not after the previous frame ({previous})")]
    TimeNotIncreasing { t: f64, previous: f64 },
    #[error("tracking: frame at {t} s has size {width}×{height}")]
    EmptyFrame { t: f64, width: u32, height: u32 },
    #[error("tracking: frame at {t} s has {faces} faces but {embeddings} embeddings")]
    EmbeddingCount {
        t: f64,
        faces: usize,
        embeddings: usize,
    },
    #[error(
        "tracking: embedding of face {face} at {t} s has {got} values, earlier ones {expected}"
    )]
    EmbeddingDimension {
        t: f64,
        face: usize,
        expected: usize,
        got: usize,
    },
    #[error(
        "tracking: frame at {t} s has {embeddings} embeddings but {sharpness} sharpness values"
    )]
    SharpnessCount {
        t: f64,
        embeddings: usize,
        sharpness: usize,
    },
    #[error("tracking: face {face} at {t} s: {what}")]
    BadFace { t: f64, face: usize, what: String },
    #[error("tracking: {tracks} shot tracks, more than the {limit} that can be grouped")]
    TooManyTracks { tracks: usize, limit: usize },
}

impl TrackError {
    /// Stable code recorded with a failed analysis.
    pub fn code(&self) -> &'static str {
        match self {
            TrackError::TooManyTracks { .. } => "too_many_tracks",
            _ => "invalid_tracking_input",
        }
    }

    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// One sighting of a track's face, all that is kept of it once the frame is gone.
#[derive(Debug, Clone)]
struct Sighting {
    frame: u32,
    /// Sampling intervals the frame stands for.
    slots: u32,
    /// Index of the face within its frame's observation.
    face: u32,
    t: f64,
    bbox: BoundingBox,
    size_px: f32,
    /// Face area / frame area.
    area_fraction: f64,
}

/// Weighted probability sums for one group of faces (reliable-size or small).
#[derive(Debug, Clone, Default)]
struct Evidence {
    /// Per attribute: Σ w·P(label) per label, and Σ w.
    attributes: BTreeMap<String, (BTreeMap<String, f64>, f64)>,
    /// Σ w·years, Σ w.
    age: (f64, f64),
}

impl Evidence {
    fn add_face(&mut self, face: &Face, weight: f64) {
        for est in face
            .attributes
            .iter()
            .filter(|e| !e.probabilities.is_empty())
        {
            let (sums, total) = self.attributes.entry(est.attribute.clone()).or_default();
            for (label, p) in &est.probabilities {
                *sums.entry(label.clone()).or_default() += weight * f64::from(*p);
            }
            *total += weight;
        }
        if let Some(age) = &face.age {
            self.age.0 += weight * f64::from(age.years);
            self.age.1 += weight;
        }
    }

    fn merge(&mut self, other: &Evidence) {
        for (name, (sums, total)) in &other.attributes {
            let (mine, my_total) = self.attributes.entry(name.clone()).or_default();
            for (label, s) in sums {
                *mine.entry(label.clone()).or_default() += s;
            }
            *my_total += total;
        }
        self.age.0 += other.age.0;
        self.age.1 += other.age.1;
    }
}

/// A track of the current shot, or the summary of a finished one.
#[derive(Debug, Clone)]
struct ShotTrack {
    sightings: Vec<Sighting>,
    /// Centre displacement per sample at the last link.
    velocity: (f32, f32),
    missed: u32,
    last_embedding: Option<Vec<f32>>,
    /// Sum of the embeddings of the faces that passed the re-identification gates
    /// ([`evidence::usable_for_reid`]), and how many there were.
    reid_sum: Option<Vec<f32>>,
    reid_samples: u32,
    /// Faces at least `min_reliable_face_px` tall; the small ones are used only if no other.
    reliable: Evidence,
    small: Evidence,
    /// Attribute names in order of first appearance (including unconfigured ones).
    attribute_names: Vec<String>,
}

impl ShotTrack {
    fn start(
        frame: u32,
        face_index: usize,
        obs: &FrameObservation,
        face: &Face,
        embedding: Option<(&[f32], f32)>,
        s: &AnalysisSettings,
    ) -> Self {
        let mut track = ShotTrack {
            sightings: Vec::new(),
            velocity: (0.0, 0.0),
            missed: 0,
            last_embedding: None,
            reid_sum: None,
            reid_samples: 0,
            reliable: Evidence::default(),
            small: Evidence::default(),
            attribute_names: Vec::new(),
        };
        track.add(frame, face_index, obs, face, embedding, s);
        track
    }

    fn add(
        &mut self,
        frame: u32,
        face_index: usize,
        obs: &FrameObservation,
        face: &Face,
        embedding: Option<(&[f32], f32)>,
        s: &AnalysisSettings,
    ) {
        if let Some(last) = self.sightings.last() {
            let steps = (frame - last.frame).max(1) as f32;
            let (c0, c1) = (last.bbox.center(), face.bbox.center());
            self.velocity = ((c1.0 - c0.0) / steps, (c1.1 - c0.1) / steps);
        }
        self.sightings.push(Sighting {
            frame,
            slots: obs.slots.max(1),
            face: face_index as u32,
            t: obs.t,
            bbox: face.bbox,
            size_px: face.size_px,
            area_fraction: f64::from(face.bbox.area())
                / (f64::from(obs.width) * f64::from(obs.height)),
        });
        self.missed = 0;
        // Detection confidence × face size: a sharp, large face says more than a blurry, small one.
        let weight = f64::from(face.detection_score) * f64::from(face.size_px);
        if face.size_px >= s.min_reliable_face_px {
            self.reliable.add_face(face, weight);
        } else {
            self.small.add_face(face, weight);
        }
        for est in &face.attributes {
            if !self.attribute_names.contains(&est.attribute) {
                self.attribute_names.push(est.attribute.clone());
            }
        }
        if let Some((e, sharpness)) = embedding {
            if evidence::usable_for_reid(&face.landmarks, sharpness, s) {
                match &mut self.reid_sum {
                    Some(sum) => sum.iter_mut().zip(e).for_each(|(a, b)| *a += b),
                    None => self.reid_sum = Some(e.to_vec()),
                }
                self.reid_samples += 1;
            }
            self.last_embedding = Some(e.to_vec());
        }
    }

    fn predicted(&self, frame: u32) -> BoundingBox {
        let last = self
            .sightings
            .last()
            .expect("a track has at least one sighting");
        let steps = (frame - last.frame) as f32;
        BoundingBox {
            x: last.bbox.x + self.velocity.0 * steps,
            y: last.bbox.y + self.velocity.1 * steps,
            ..last.bbox
        }
    }

    fn frames(&self) -> Vec<u32> {
        self.sightings.iter().map(|s| s.frame).collect()
    }

    /// What is kept once the shot is over: the last embedding is no longer needed.
    fn close(mut self) -> Self {
        self.last_embedding = None;
        self
    }

    /// The embedding this track is compared with other shots' tracks by: the sum of its gated
    /// faces' embeddings, if there are at least `min_reid_samples` of them. None: the evidence
    /// is too weak to merge, and the track stays its own person.
    fn identity_embedding(&self, s: &AnalysisSettings) -> Option<&[f32]> {
        (self.reid_samples >= s.min_reid_samples.max(1))
            .then_some(self.reid_sum.as_deref())
            .flatten()
    }
}

/// Streaming tracker over the sampled frames of one trailer (memory: the current shot's tracks,
/// plus a summary per finished track and one time per sampled frame).
pub struct Tracker {
    settings: AnalysisSettings,
    interval_s: f64,
    times: Vec<f64>,
    /// Sampling intervals each frame stands for (see [`FrameObservation::slots`]).
    slots: Vec<u32>,
    previous_signature: Option<FrameSignature>,
    embedding_dim: Option<usize>,
    active: Vec<ShotTrack>,
    finished: Vec<ShotTrack>,
    shot_cuts_s: Vec<f64>,
    dropped_tracks: u32,
}

impl Tracker {
    pub fn new(sample_interval_s: f64, settings: AnalysisSettings) -> Result<Self, TrackError> {
        if !(sample_interval_s.is_finite() && sample_interval_s > 0.0) {
            return Err(TrackError::BadInterval(sample_interval_s));
        }
        Ok(Tracker {
            settings,
            interval_s: sample_interval_s,
            times: Vec::new(),
            slots: Vec::new(),
            previous_signature: None,
            embedding_dim: None,
            active: Vec::new(),
            finished: Vec::new(),
            shot_cuts_s: Vec::new(),
            dropped_tracks: 0,
        })
    }

    /// Whether a frame with this signature starts a new shot.
    fn is_cut(&self, signature: &FrameSignature) -> bool {
        self.previous_signature.as_ref().is_some_and(|previous| {
            shot::is_cut(previous, signature, self.settings.shot_cut_distance)
        })
    }

    /// `(track, face)` links of the next frame's faces to the active tracks (none after a cut).
    fn links(
        &self,
        cut: bool,
        boxes: impl Iterator<Item = BoundingBox>,
        embeddings: &[Vec<f32>],
    ) -> Vec<(usize, usize)> {
        if cut {
            return Vec::new();
        }
        let frame = self.times.len() as u32;
        let ends: Vec<link::TrackEnd> = self
            .active
            .iter()
            .map(|t| link::TrackEnd {
                predicted: t.predicted(frame),
                embedding: t.last_embedding.as_deref(),
            })
            .collect();
        let candidates: Vec<link::Candidate> = boxes
            .enumerate()
            .map(|(i, bbox)| link::Candidate {
                bbox,
                embedding: embeddings.get(i).map(Vec::as_slice),
            })
            .collect();
        link::assign(&ends, &candidates)
    }

    /// For each face of the next frame (its `signature`, face `boxes` and `embeddings` as
    /// [`Tracker::push`] will be given them), how many sightings the track it will continue has
    /// already: 0 for a face that starts a track. Lets the caller spend perception on the faces
    /// whose track still needs evidence before the frame is pushed.
    pub fn prior_sightings(
        &self,
        signature: &FrameSignature,
        boxes: &[BoundingBox],
        embeddings: &[Vec<f32>],
    ) -> Vec<u32> {
        let mut prior = vec![0u32; boxes.len()];
        for (t, f) in self.links(self.is_cut(signature), boxes.iter().copied(), embeddings) {
            prior[f] = self.active[t].sightings.len() as u32;
        }
        prior
    }

    /// Add the next sampled frame (times strictly increasing).
    pub fn push(&mut self, obs: FrameObservation) -> Result<(), TrackError> {
        self.validate(&obs)?;
        let frame = self.times.len() as u32;
        let cut = self.is_cut(&obs.signature);
        if cut {
            self.shot_cuts_s.push(obs.t);
            for track in std::mem::take(&mut self.active) {
                self.end_track(track);
            }
        }
        let embedding = |i: usize| {
            obs.embeddings
                .get(i)
                .map(|e| (e.as_slice(), obs.sharpness[i]))
        };
        let links = self.links(cut, obs.faces.iter().map(|f| f.bbox), &obs.embeddings);
        let mut linked_face = vec![false; obs.faces.len()];
        let mut linked_track = vec![false; self.active.len()];
        for &(t, f) in &links {
            self.active[t].add(frame, f, &obs, &obs.faces[f], embedding(f), &self.settings);
            linked_face[f] = true;
            linked_track[t] = true;
        }
        let mut still_active = Vec::with_capacity(self.active.len() + obs.faces.len());
        for (mut track, linked) in std::mem::take(&mut self.active)
            .into_iter()
            .zip(linked_track)
        {
            if !linked {
                track.missed += 1;
            }
            if track.missed > MAX_MISSED_SAMPLES {
                self.end_track(track);
            } else {
                still_active.push(track);
            }
        }
        for (f, face) in obs.faces.iter().enumerate() {
            if !linked_face[f] {
                still_active.push(ShotTrack::start(
                    frame,
                    f,
                    &obs,
                    face,
                    embedding(f),
                    &self.settings,
                ));
            }
        }
        self.active = still_active;
        self.times.push(obs.t);
        self.slots.push(obs.slots.max(1));
        self.previous_signature = Some(obs.signature);
        Ok(())
    }

    fn validate(&mut self, obs: &FrameObservation) -> Result<(), TrackError> {
        let previous = self.times.last().copied().unwrap_or(f64::NEG_INFINITY);
        if !obs.t.is_finite() || obs.t <= previous {
            return Err(TrackError::TimeNotIncreasing { t: obs.t, previous });
        }
        if obs.width == 0 || obs.height == 0 {
            return Err(TrackError::EmptyFrame {
                t: obs.t,
                width: obs.width,
                height: obs.height,
            });
        }
        if !obs.embeddings.is_empty() && obs.embeddings.len() != obs.faces.len() {
            return Err(TrackError::EmbeddingCount {
                t: obs.t,
                faces: obs.faces.len(),
                embeddings: obs.embeddings.len(),
            });
        }
        if obs.sharpness.len() != obs.embeddings.len() {
            return Err(TrackError::SharpnessCount {
                t: obs.t,
                embeddings: obs.embeddings.len(),
                sharpness: obs.sharpness.len(),
            });
        }
        for (face, e) in obs.embeddings.iter().enumerate() {
            if e.is_empty() {
                return Err(TrackError::BadFace {
                    t: obs.t,
                    face,
                    what: "empty embedding".into(),
                });
            }
            let expected = *self.embedding_dim.get_or_insert(e.len());
            if e.len() != expected {
                return Err(TrackError::EmbeddingDimension {
                    t: obs.t,
                    face,
                    expected,
                    got: e.len(),
                });
            }
            if e.iter().any(|v| !v.is_finite()) {
                return Err(TrackError::BadFace {
                    t: obs.t,
                    face,
                    what: "embedding has a non-finite value".into(),
                });
            }
            if !obs.sharpness[face].is_finite() {
                return Err(TrackError::BadFace {
                    t: obs.t,
                    face,
                    what: "sharpness is not finite".into(),
                });
            }
        }
        for (i, f) in obs.faces.iter().enumerate() {
            let b = f.bbox;
            let what = if ![b.x, b.y, b.width, b.height, f.size_px]
                .iter()
                .all(|v| v.is_finite())
            {
                Some("box or size is not finite".to_string())
            } else if b.width <= 0.0 || b.height <= 0.0 || f.size_px <= 0.0 {
                Some(format!("empty box {}×{}", b.width, b.height))
            } else if !(0.0..=1.0).contains(&f.detection_score) {
                Some(format!(
                    "detection score {} not in [0, 1]",
                    f.detection_score
                ))
            } else {
                f.attributes
                    .iter()
                    .flat_map(|a| a.probabilities.iter().map(move |p| (a, p)))
                    .find(|(_, (_, p))| !(0.0..=1.0).contains(*p))
                    .map(|(a, (l, p))| format!("P({}={l}) = {p} not in [0, 1]", a.attribute))
            };
            if let Some(what) = what {
                return Err(TrackError::BadFace {
                    t: obs.t,
                    face: i,
                    what,
                });
            }
        }
        Ok(())
    }

    fn end_track(&mut self, track: ShotTrack) {
        if (track.sightings.len() as u32) < self.settings.min_track_frames {
            self.dropped_tracks += 1;
        } else {
            self.finished.push(track.close());
        }
    }

    /// Close every track, group tracks into persons, and build the timeline.
    pub fn finish(mut self) -> Result<TrackingResult, TrackError> {
        for track in std::mem::take(&mut self.active) {
            self.end_track(track);
        }
        let tracks = std::mem::take(&mut self.finished);
        if tracks.len() > MAX_TRACKS {
            return Err(TrackError::TooManyTracks {
                tracks: tracks.len(),
                limit: MAX_TRACKS,
            });
        }
        let frames: Vec<Vec<u32>> = tracks.iter().map(ShotTrack::frames).collect();
        let identities: Vec<identity::TrackIdentity> = tracks
            .iter()
            .zip(&frames)
            .map(|(t, f)| identity::TrackIdentity {
                embedding: t.identity_embedding(&self.settings),
                frames: f,
            })
            .collect();
        let groups = identity::cluster_tracks(&identities, self.settings.same_person_similarity);
        drop(identities);

        // Persons paired with their group, in order of first appearance (then left to right).
        let mut persons: Vec<(Person, &Vec<usize>)> = groups
            .iter()
            .map(|g| {
                let members: Vec<&ShotTrack> = g.iter().map(|&i| &tracks[i]).collect();
                (self.person(&members), g)
            })
            .collect();
        persons.sort_by(|(a, _), (b, _)| {
            a.first_seen_s
                .total_cmp(&b.first_seen_s)
                .then(a.key_box.x.total_cmp(&b.key_box.x))
                .then(a.key_frame_s.total_cmp(&b.key_frame_s))
        });
        let mut timeline: Vec<TimelineFrame> = self
            .times
            .iter()
            .zip(&self.slots)
            .map(|(&t, &slots)| TimelineFrame {
                t,
                slots,
                persons: Vec::new(),
                gender_counts: BTreeMap::new(),
            })
            .collect();
        let mut face_persons = Vec::new();
        for (rank, (person, group)) in persons.iter_mut().enumerate() {
            person.id = rank as u32 + 1;
            for &track in group.iter() {
                face_persons.extend(
                    tracks[track]
                        .sightings
                        .iter()
                        .map(|s| (s.frame, s.face, person.id)),
                );
            }
            let gender = person
                .attribute("gender")
                .map_or(UNKNOWN.to_string(), |a| a.label.clone());
            for &track in group.iter() {
                for &frame in &frames[track] {
                    let entry = &mut timeline[frame as usize];
                    entry.persons.push(person.id);
                    *entry.gender_counts.entry(gender.clone()).or_default() += 1;
                }
            }
        }
        let persons: Vec<Person> = persons.into_iter().map(|(p, _)| p).collect();
        for entry in &mut timeline {
            entry.persons.sort_unstable();
        }
        face_persons.sort_unstable();
        Ok(TrackingResult {
            persons,
            timeline,
            shot_cuts_s: self.shot_cuts_s,
            dropped_tracks: self.dropped_tracks,
            face_persons,
        })
    }

    /// One person from its shot tracks (id set by the caller).
    fn person(&self, tracks: &[&ShotTrack]) -> Person {
        let s = &self.settings;
        let mut sightings: Vec<&Sighting> = tracks.iter().flat_map(|t| &t.sightings).collect();
        sightings.sort_by_key(|x| x.frame);
        let mut sizes: Vec<f32> = sightings.iter().map(|x| x.size_px).collect();
        sizes.sort_by(f32::total_cmp);
        let median_face_px = median(&sizes);
        let key = sightings
            .iter()
            .max_by(|a, b| {
                a.bbox
                    .area()
                    .total_cmp(&b.bbox.area())
                    .then(b.frame.cmp(&a.frame))
            })
            .expect("a person has at least one sighting");

        let (mut reliable, mut small) = (Evidence::default(), Evidence::default());
        let mut names: Vec<String> = Vec::new();
        for t in tracks {
            reliable.merge(&t.reliable);
            small.merge(&t.small);
            for n in &t.attribute_names {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
        let attributes = names
            .iter()
            .map(|name| {
                let pooled = reliable
                    .attributes
                    .get(name)
                    .or_else(|| small.attributes.get(name))
                    .filter(|(_, total)| *total > 0.0);
                match pooled {
                    Some((sums, total)) => AttributeEstimate::decide(
                        name,
                        sums.iter()
                            .map(|(l, v)| (l.clone(), (v / total) as f32))
                            .collect(),
                        s.min_attribute_confidence,
                        median_face_px,
                        s.min_reliable_face_px,
                    ),
                    None => AttributeEstimate::not_configured(name),
                }
            })
            .collect();
        let age_pool = if reliable.age.1 > 0.0 {
            reliable.age
        } else {
            small.age
        };
        let age = (age_pool.1 > 0.0).then(|| {
            let years = (age_pool.0 / age_pool.1) as f32;
            AgeEstimate {
                years,
                band: if median_face_px < s.min_reliable_face_px {
                    UNKNOWN.to_string()
                } else {
                    s.age_band(years)
                },
                model: None,
                by_model: Vec::new(),
            }
        });
        let frames = sightings.len() as u32;
        let slots: u32 = sightings.iter().map(|x| x.slots).sum();
        Person {
            id: 0,
            attributes,
            age,
            first_seen_s: sightings.first().map_or(0.0, |x| x.t),
            last_seen_s: sightings.last().map_or(0.0, |x| x.t),
            screen_time_s: f64::from(slots) * self.interval_s,
            prominence_s: sightings
                .iter()
                .map(|x| self.interval_s * f64::from(x.slots) * x.area_fraction)
                .sum(),
            frames,
            tracks: tracks.len() as u32,
            key_frame_s: key.t,
            key_box: key.bbox,
            median_face_px,
        }
    }
}

/// Track a whole trailer at once (the frames are consumed one by one; see [`Tracker`]).
pub fn track_persons(
    frames: impl IntoIterator<Item = FrameObservation>,
    sample_interval_s: f64,
    settings: &AnalysisSettings,
) -> Result<TrackingResult, TrackError> {
    let mut tracker = Tracker::new(sample_interval_s, settings.clone())?;
    for frame in frames {
        tracker.push(frame)?;
    }
    tracker.finish()
}

fn median(sorted: &[f32]) -> f32 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests;
