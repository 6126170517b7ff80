//! Which shot tracks show the same person: average-linkage agglomerative clustering of the
//! tracks' mean embeddings, merging while the best pair's mean cosine reaches the threshold.
//! Two groups that share a sampled frame are never merged: one person is not twice in a frame.
//! A track without embedding stays alone. A per-row best-neighbour cache keeps each merge at
//! O(n) in the usual case instead of a full O(n²) scan.

use crate::track::link::cosine;

/// One shot track as clustering sees it.
pub struct TrackIdentity<'a> {
    /// Mean of the track's L2-normalised embeddings, if it has any.
    pub embedding: Option<&'a [f32]>,
    /// Sampled-frame indices the track is seen in, increasing.
    pub frames: &'a [u32],
}

/// Groups of track indices, each group one person; every track in exactly one group.
pub fn cluster_tracks(tracks: &[TrackIdentity], same_person_similarity: f32) -> Vec<Vec<usize>> {
    let n = tracks.len();
    // sim[i * n + j]: mean cosine between groups i and j; None when they may never merge.
    let mut sim: Vec<Option<f32>> = vec![None; n * n];
    for i in 0..n {
        for j in i + 1..n {
            let s = match (tracks[i].embedding, tracks[j].embedding) {
                (Some(a), Some(b)) if !share_a_frame(tracks[i].frames, tracks[j].frames) => {
                    Some(cosine(a, b))
                }
                _ => None,
            };
            sim[i * n + j] = s;
            sim[j * n + i] = s;
        }
    }
    let mut members: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    let mut alive = vec![true; n];
    let best_of = |sim: &[Option<f32>], alive: &[bool], i: usize| -> Option<(usize, f32)> {
        let mut best: Option<(usize, f32)> = None;
        for j in (0..n).filter(|&j| j != i && alive[j]) {
            if let Some(s) = sim[i * n + j]
                && best.is_none_or(|(_, b)| s > b)
            {
                best = Some((j, s));
            }
        }
        best
    };
    let mut best: Vec<Option<(usize, f32)>> = (0..n).map(|i| best_of(&sim, &alive, i)).collect();
    loop {
        let top = (0..n)
            .filter(|&i| alive[i])
            .filter_map(|i| best[i].map(|(j, s)| (i, j, s)))
            .max_by(|a, b| a.2.total_cmp(&b.2).then(b.0.cmp(&a.0)));
        let Some((a, b, s)) = top else { break };
        if s < same_person_similarity {
            break;
        }
        let (a, b) = (a.min(b), a.max(b));
        let (na, nb) = (members[a].len() as f32, members[b].len() as f32);
        for k in (0..n).filter(|&k| alive[k] && k != a && k != b) {
            // Lance–Williams update for average linkage; a veto on either side persists.
            let merged = match (sim[a * n + k], sim[b * n + k]) {
                (Some(x), Some(y)) => Some((na * x + nb * y) / (na + nb)),
                _ => None,
            };
            sim[a * n + k] = merged;
            sim[k * n + a] = merged;
        }
        let moved = std::mem::take(&mut members[b]);
        members[a].extend(moved);
        alive[b] = false;
        for k in 0..n {
            if !alive[k] {
                best[k] = None;
            } else if k == a || best[k].is_some_and(|(j, _)| j == a || j == b) {
                best[k] = best_of(&sim, &alive, k);
            } else if let Some(s) = sim[k * n + a]
                && best[k].is_none_or(|(_, cur)| s > cur)
            {
                best[k] = Some((a, s));
            }
        }
    }
    let mut groups: Vec<Vec<usize>> = members.into_iter().filter(|m| !m.is_empty()).collect();
    for g in &mut groups {
        g.sort_unstable();
    }
    groups.sort();
    groups
}

fn share_a_frame(a: &[u32], b: &[u32]) -> bool {
    let (Some(a0), Some(a1), Some(b0), Some(b1)) = (a.first(), a.last(), b.first(), b.last())
    else {
        return false;
    };
    if a1 < b0 || b1 < a0 {
        return false;
    }
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_tracks_merge_and_different_ones_do_not() {
        let (a1, a2, b) = ([1.0, 0.1, 0.0], [0.95, 0.0, 0.2], [0.0, 1.0, 0.0]);
        let frames = [[0, 1, 2], [5, 6, 7], [10, 11, 12]];
        let tracks = [
            TrackIdentity {
                embedding: Some(&a1),
                frames: &frames[0],
            },
            TrackIdentity {
                embedding: Some(&b),
                frames: &frames[1],
            },
            TrackIdentity {
                embedding: Some(&a2),
                frames: &frames[2],
            },
        ];
        assert_eq!(cluster_tracks(&tracks, 0.363), vec![vec![0, 2], vec![1]]);
    }

    #[test]
    fn tracks_sharing_a_frame_never_merge_even_through_a_third() {
        // 0 and 1 overlap in time; 2 looks like both. Whichever merges with 2 first, the
        // group then shares a frame with the other.
        let e = [1.0, 0.0];
        let (f0, f1, f2) = ([0, 1, 2], [2, 3], [8, 9]);
        let tracks = [
            TrackIdentity {
                embedding: Some(&e),
                frames: &f0,
            },
            TrackIdentity {
                embedding: Some(&e),
                frames: &f1,
            },
            TrackIdentity {
                embedding: Some(&e),
                frames: &f2,
            },
        ];
        let groups = cluster_tracks(&tracks, 0.363);
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert!(!groups.iter().any(|g| g.contains(&0) && g.contains(&1)));
    }

    #[test]
    fn average_linkage_uses_every_member() {
        // 0 and 1 are close (0.9); 2 is close to 1 (0.5) but not to 0 (0.1): mean 0.3, no merge.
        let v0 = [1.0, 0.0, 0.0];
        let v1 = [0.9, (1.0f32 - 0.81).sqrt(), 0.0];
        let v2 = [0.1, 0.94, (1.0f32 - 0.01 - 0.94 * 0.94).sqrt()];
        let frames = [[0], [1], [2]];
        let tracks: Vec<TrackIdentity> = [&v0[..], &v1[..], &v2[..]]
            .iter()
            .zip(&frames)
            .map(|(e, f)| TrackIdentity {
                embedding: Some(e),
                frames: f,
            })
            .collect();
        let c12 = cosine(&v1, &v2);
        let c02 = cosine(&v0, &v2);
        assert!(c12 > 0.363 && (c12 + c02) / 2.0 < 0.363, "{c12} {c02}");
        assert_eq!(cluster_tracks(&tracks, 0.363), vec![vec![0, 1], vec![2]]);
    }

    #[test]
    fn tracks_without_embeddings_stay_alone() {
        let tracks = [
            TrackIdentity {
                embedding: None,
                frames: &[0],
            },
            TrackIdentity {
                embedding: None,
                frames: &[5],
            },
        ];
        assert_eq!(cluster_tracks(&tracks, 0.0), vec![vec![0], vec![1]]);
    }
}
