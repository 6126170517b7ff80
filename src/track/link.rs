//! Linking the faces of one sampled frame to the tracks of the current shot.
//!
//! Half a second apart, a face moves and zooms: the track's last box is moved by its last
//! velocity, then compared with each new face by overlap and by centre distance in face sizes.
//! Embeddings, when present, break ties (two people crossing) and veto links between faces that
//! clearly belong to different people (a missed cut). Pairs are assigned greedily by cost:
//! with the handful of faces in a frame, greedy and optimal assignment rarely differ, and the
//! veto and gates keep greedy from making absurd links.

use crate::domain::BoundingBox;

/// Largest centre shift between two samples, in face sizes (geometric mean of the heights).
pub const MAX_CENTRE_SHIFT: f32 = 2.0;
/// Largest zoom between two samples (ratio of face heights).
pub const MAX_SIZE_RATIO: f32 = 2.0;
/// Below this cosine the embeddings veto a link. SFace scored different people at most 0.264
/// and the same person at least 0.605 on the test faces; within a shot the geometry already
/// agrees, so only clear disagreement (blur and profile views lower same-person scores) vetoes.
pub const LINK_MIN_COSINE: f32 = 0.15;
/// Weight of the embedding term against the geometric terms (each about 0..1).
const EMBEDDING_WEIGHT: f32 = 1.0;

/// What a track offers for linking: where its face should be now, and what it looks like.
pub struct TrackEnd<'a> {
    pub predicted: BoundingBox,
    pub embedding: Option<&'a [f32]>,
}

/// What a new face offers for linking.
pub struct Candidate<'a> {
    pub bbox: BoundingBox,
    pub embedding: Option<&'a [f32]>,
}

/// The cost of continuing a track with a face, or `None` when the link is implausible.
pub fn link_cost(track: &TrackEnd, face: &Candidate) -> Option<f32> {
    let (h1, h2) = (track.predicted.height, face.bbox.height);
    if h1 <= 0.0 || h2 <= 0.0 || h1.max(h2) / h1.min(h2) > MAX_SIZE_RATIO {
        return None;
    }
    let scale = (h1 * h2).sqrt();
    let (c1, c2) = (track.predicted.center(), face.bbox.center());
    let shift = ((c1.0 - c2.0).powi(2) + (c1.1 - c2.1).powi(2)).sqrt() / scale;
    if shift > MAX_CENTRE_SHIFT {
        return None;
    }
    let mut cost = (1.0 - track.predicted.iou(&face.bbox)) + shift / MAX_CENTRE_SHIFT;
    if let (Some(a), Some(b)) = (track.embedding, face.embedding) {
        let cos = cosine(a, b);
        if cos < LINK_MIN_COSINE {
            return None;
        }
        cost += EMBEDDING_WEIGHT * (1.0 - cos);
    }
    Some(cost)
}

/// Greedy assignment by increasing cost: `(track, face)` pairs, each index used once.
pub fn assign(tracks: &[TrackEnd], faces: &[Candidate]) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (t, track) in tracks.iter().enumerate() {
        for (f, face) in faces.iter().enumerate() {
            if let Some(cost) = link_cost(track, face) {
                pairs.push((cost, t, f));
            }
        }
    }
    // Ties broken by index so the result never depends on sort stability.
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let (mut track_used, mut face_used) = (vec![false; tracks.len()], vec![false; faces.len()]);
    let mut links = Vec::new();
    for (_, t, f) in pairs {
        if !track_used[t] && !face_used[f] {
            track_used[t] = true;
            face_used[f] = true;
            links.push((t, f));
        }
    }
    links
}

/// Cosine of two vectors (embeddings are L2-normalised, but means of them are not).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bbox(x: f32, y: f32, size: f32) -> BoundingBox {
        BoundingBox {
            x,
            y,
            width: size,
            height: size,
        }
    }

    #[test]
    fn a_moving_zooming_face_links_and_a_far_one_does_not() {
        let track = TrackEnd {
            predicted: bbox(100.0, 100.0, 100.0),
            embedding: None,
        };
        let zoomed = Candidate {
            bbox: bbox(130.0, 90.0, 150.0),
            embedding: None,
        };
        let far = Candidate {
            bbox: bbox(500.0, 100.0, 100.0),
            embedding: None,
        };
        let tiny = Candidate {
            bbox: bbox(100.0, 100.0, 40.0),
            embedding: None,
        };
        assert!(link_cost(&track, &zoomed).is_some());
        assert!(link_cost(&track, &far).is_none());
        assert!(link_cost(&track, &tiny).is_none());
    }

    #[test]
    fn embeddings_veto_a_different_person_in_the_same_place() {
        let (a, b) = ([1.0, 0.0], [0.0, 1.0]);
        let track = TrackEnd {
            predicted: bbox(0.0, 0.0, 100.0),
            embedding: Some(&a),
        };
        let other = Candidate {
            bbox: bbox(0.0, 0.0, 100.0),
            embedding: Some(&b),
        };
        assert_eq!(link_cost(&track, &other), None);
    }

    #[test]
    fn greedy_assignment_takes_the_cheapest_links_first() {
        let tracks = [
            TrackEnd {
                predicted: bbox(0.0, 0.0, 100.0),
                embedding: None,
            },
            TrackEnd {
                predicted: bbox(150.0, 0.0, 100.0),
                embedding: None,
            },
        ];
        let faces = [
            Candidate {
                bbox: bbox(140.0, 0.0, 100.0),
                embedding: None,
            },
            Candidate {
                bbox: bbox(10.0, 0.0, 100.0),
                embedding: None,
            },
        ];
        let mut links = assign(&tracks, &faces);
        links.sort_unstable();
        assert_eq!(links, vec![(0, 1), (1, 0)]);
    }
}
