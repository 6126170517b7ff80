//! Who is on a poster, per attribute and category: counts, soft counts, area, placement.
//!
//! Hard numbers (`faces`, area, placement) use decided labels, so a face left `unknown` is
//! counted under `unknown`, never guessed. `soft_count` sums P(category) over every face with
//! probabilities. `share` is Σ P / n over the faces the model can speak for: faces with
//! probabilities that are not too small (tiny faces come out "female" whatever the truth, so
//! their probabilities are known to be biased and are left out of the share, counted as
//! unknown instead). Its interval carries per-face classification uncertainty only (one poster).

use crate::domain::{
    BoundingBox, Face, PosterAttributeStats, PosterCategoryStats, UNKNOWN, UnknownReason,
};
use crate::stats::soft_share;

/// The attribute name of the age-band statistics.
pub const AGE_BAND: &str = "age_band";
/// Perceived origin is always reported, as `unknown` unless a classifier was configured.
pub const ORIGIN: &str = "origin";

/// One face as an attribute's statistics see it.
struct Observation {
    label: String,
    probabilities: Option<Vec<(String, f64)>>,
    /// Whether the face's probabilities may enter the share (big enough, model configured).
    eligible: bool,
}

/// Statistics per attribute: every `(name, labels)` given, then "origin" if absent, then
/// "age_band" over `age_bands`. Each has one row per label, labels met on faces but not
/// declared, and `unknown`, zero rows included.
pub fn poster_statistics(
    faces: &[Face],
    width: u32,
    height: u32,
    attributes: &[(String, Vec<String>)],
    age_bands: &[String],
) -> Vec<PosterAttributeStats> {
    let mut stats = Vec::new();
    let mut names: Vec<(String, Vec<String>)> = attributes.to_vec();
    if !names.iter().any(|(n, _)| n == ORIGIN) {
        names.push((ORIGIN.to_string(), Vec::new()));
    }
    for (name, labels) in &names {
        let observations: Vec<Observation> = faces
            .iter()
            .map(|face| match face.attribute(name) {
                Some(est) => Observation {
                    label: est.label.clone(),
                    eligible: !est.probabilities.is_empty()
                        && est.unknown_reason != Some(UnknownReason::FaceTooSmall),
                    probabilities: Some(
                        est.probabilities
                            .iter()
                            .map(|(l, p)| (l.clone(), f64::from(*p)))
                            .collect(),
                    ),
                },
                None => Observation {
                    label: UNKNOWN.to_string(),
                    probabilities: None,
                    eligible: false,
                },
            })
            .collect();
        stats.push(attribute_stats(
            name,
            labels,
            faces,
            &observations,
            width,
            height,
            true,
        ));
    }
    // Age has no per-band probabilities on a face: soft = hard, and no interval is claimed
    // (the age model's jitter is real but not quantified here).
    let observations: Vec<Observation> = faces
        .iter()
        .map(|face| {
            let band = face
                .age
                .as_ref()
                .map_or(UNKNOWN.to_string(), |a| a.band.clone());
            let known = band != UNKNOWN;
            Observation {
                probabilities: known.then(|| vec![(band.clone(), 1.0)]),
                label: band,
                eligible: known,
            }
        })
        .collect();
    stats.push(attribute_stats(
        AGE_BAND,
        age_bands,
        faces,
        &observations,
        width,
        height,
        false,
    ));
    stats
}

fn attribute_stats(
    name: &str,
    declared: &[String],
    faces: &[Face],
    observations: &[Observation],
    width: u32,
    height: u32,
    with_interval: bool,
) -> PosterAttributeStats {
    let mut categories: Vec<String> = declared.iter().filter(|l| *l != UNKNOWN).cloned().collect();
    // A label the faces carry but the caller did not declare still gets its row: never drop it.
    for obs in observations {
        if obs.label != UNKNOWN && !categories.contains(&obs.label) {
            categories.push(obs.label.clone());
        }
    }
    categories.push(UNKNOWN.to_string());

    let total_area: f64 = faces.iter().map(|f| f64::from(f.bbox.area())).sum();
    let largest = faces
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.bbox.area().total_cmp(&b.1.bbox.area()))
        .map(|(i, _)| i);
    let eligible: Vec<usize> = (0..observations.len())
        .filter(|&i| observations[i].eligible)
        .collect();
    let excluded = (observations.len() - eligible.len()) as u32;
    let unknown_faces = observations.iter().filter(|o| o.label == UNKNOWN).count() as u32;

    let rows = categories
        .iter()
        .map(|category| {
            let mine: Vec<usize> = (0..faces.len())
                .filter(|&i| observations[i].label == *category)
                .collect();
            let area: f64 = mine.iter().map(|&i| f64::from(faces[i].bbox.area())).sum();
            let soft_count: f64 = observations.iter().map(|o| probability(o, category)).sum();
            let (share, share_interval, area_share, area_interval) = if category == UNKNOWN {
                (
                    ratio(unknown_faces as f64, faces.len() as f64),
                    None,
                    ratio(area, total_area),
                    None,
                )
            } else {
                let p: Vec<f64> = eligible
                    .iter()
                    .map(|&i| probability(&observations[i], category))
                    .collect();
                // Area-weighted: a face counts by its share of the painted faces.
                let w: Vec<f64> = eligible
                    .iter()
                    .map(|&i| f64::from(faces[i].bbox.area()))
                    .collect();
                let context = (name, category.as_str());
                let (share, interval) =
                    soft_share(p.clone(), None, excluded, with_interval, context);
                let (area_share, area_interval) =
                    soft_share(p, Some(w), excluded, with_interval, context);
                (share, interval, area_share, area_interval)
            };
            PosterCategoryStats {
                category: category.clone(),
                faces: mine.len() as u32,
                soft_count,
                face_area_share: ratio(area, total_area),
                has_largest_face: largest.is_some_and(|i| observations[i].label == *category),
                faces_upper_third: mine
                    .iter()
                    .filter(|&&i| upper_third(&faces[i].bbox, height))
                    .count() as u32,
                faces_central_third: mine
                    .iter()
                    .filter(|&&i| central_third(&faces[i].bbox, width, height))
                    .count() as u32,
                share,
                share_interval,
                face_area_share_soft: area_share,
                face_area_share_interval: area_interval,
            }
        })
        .collect();
    PosterAttributeStats {
        attribute: name.to_string(),
        total_faces: faces.len() as u32,
        unknown: unknown_faces,
        categories: rows,
    }
}

fn probability(obs: &Observation, category: &str) -> f64 {
    obs.probabilities.as_ref().map_or(0.0, |ps| {
        ps.iter()
            .find(|(l, _)| l == category)
            .map_or(0.0, |(_, p)| *p)
    })
}

fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 { num / den } else { 0.0 }
}

fn upper_third(b: &BoundingBox, height: u32) -> bool {
    f64::from(b.center().1) < f64::from(height) / 3.0
}

fn central_third(b: &BoundingBox, width: u32, height: u32) -> bool {
    let (cx, cy) = b.center();
    let inside = |c: f32, side: u32| {
        let (c, side) = (f64::from(c), f64::from(side));
        c >= side / 3.0 && c < 2.0 * side / 3.0
    };
    inside(cx, width) && inside(cy, height)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AgeEstimate, AttributeEstimate};
    use std::collections::BTreeMap;

    const MIN_CONFIDENCE: f32 = 0.75;
    const MIN_FACE_PX: f32 = 40.0;

    fn face(x: f32, y: f32, size: f32, p_male: f32, years: Option<(f32, &str)>) -> Face {
        let probs = BTreeMap::from([
            ("female".to_string(), 1.0 - p_male),
            ("male".to_string(), p_male),
        ]);
        Face {
            bbox: BoundingBox {
                x,
                y,
                width: size,
                height: size,
            },
            landmarks: [[0.0; 2]; 5],
            detection_score: 0.9,
            size_px: size,
            attributes: vec![
                AttributeEstimate::decide("gender", probs, MIN_CONFIDENCE, size, MIN_FACE_PX),
                AttributeEstimate::not_configured(ORIGIN),
            ],
            age: years.map(|(years, band)| AgeEstimate {
                years,
                band: band.to_string(),
            }),
        }
    }

    fn gender() -> Vec<(String, Vec<String>)> {
        vec![(
            "gender".to_string(),
            vec!["female".to_string(), "male".to_string()],
        )]
    }

    fn bands() -> Vec<String> {
        ["0-17", "18-29", "30-44", "45-59", "60+"]
            .map(String::from)
            .to_vec()
    }

    fn row<'a>(
        stats: &'a [PosterAttributeStats],
        attr: &str,
        cat: &str,
    ) -> &'a PosterCategoryStats {
        stats
            .iter()
            .find(|s| s.attribute == attr)
            .and_then(|s| s.categories.iter().find(|c| c.category == cat))
            .unwrap_or_else(|| panic!("no row {attr}/{cat}"))
    }

    #[test]
    fn counts_area_and_placement_on_a_poster() {
        // 600×900 poster: a big woman at the top centre, a man in the middle, a tiny face.
        let faces = vec![
            face(250.0, 100.0, 200.0, 0.02, Some((34.0, "30-44"))),
            face(250.0, 400.0, 100.0, 0.97, Some((50.0, "45-59"))),
            face(10.0, 800.0, 20.0, 0.10, None),
        ];
        let stats = poster_statistics(&faces, 600, 900, &gender(), &bands());
        let names: Vec<&str> = stats.iter().map(|s| s.attribute.as_str()).collect();
        assert_eq!(names, ["gender", ORIGIN, AGE_BAND]);

        let g = &stats[0];
        assert_eq!((g.total_faces, g.unknown), (3, 1));
        let cats: Vec<&str> = g.categories.iter().map(|c| c.category.as_str()).collect();
        assert_eq!(cats, ["female", "male", UNKNOWN]);
        let female = row(&stats, "gender", "female");
        let male = row(&stats, "gender", "male");
        let unknown = row(&stats, "gender", UNKNOWN);
        assert_eq!((female.faces, male.faces, unknown.faces), (1, 1, 1));
        let total_area = 200.0 * 200.0 + 100.0 * 100.0 + 20.0 * 20.0;
        assert!((female.face_area_share - 40_000.0 / total_area).abs() < 1e-9);
        assert!((unknown.face_area_share - 400.0 / total_area).abs() < 1e-9);
        assert!(female.has_largest_face && !male.has_largest_face);
        // Centres: woman (350, 200) upper third; man (300, 450) central; tiny face neither.
        assert_eq!(
            (female.faces_upper_third, female.faces_central_third),
            (1, 0)
        );
        assert_eq!((male.faces_upper_third, male.faces_central_third), (0, 1));
        assert_eq!(
            (unknown.faces_upper_third, unknown.faces_central_third),
            (0, 0)
        );
        // Soft counts include the tiny face; the share leaves it out (its P is biased).
        assert!((female.soft_count - (0.98 + 0.03 + 0.90)).abs() < 1e-6);
        assert!((female.share - (0.98 + 0.03) / 2.0).abs() < 1e-6);
        assert!((unknown.share - 1.0 / 3.0).abs() < 1e-9);
        let interval = female.share_interval.expect("interval");
        assert!(interval.low <= female.share && female.share <= interval.high);
        // Area-weighted soft share over the same two faces: the big woman weighs four times more.
        let expected = (0.98 * 40_000.0 + 0.03 * 10_000.0) / 50_000.0;
        assert!((female.face_area_share_soft - expected).abs() < 1e-6);
        let area = female.face_area_share_interval.expect("area interval");
        let soft = female.face_area_share_soft;
        assert!(area.low <= soft && soft <= area.high, "{area:?}");
        assert!(area.high - area.low < 0.5, "{area:?}");
        assert!(unknown.face_area_share_interval.is_none());

        // Origin is never inferred: one unknown row holding every face.
        let origin = &stats[1];
        assert_eq!(origin.categories.len(), 1);
        assert_eq!((origin.unknown, origin.categories[0].faces), (3, 3));

        // Age bands: every band listed, zero rows included.
        let age = &stats[2];
        assert_eq!(age.categories.len(), 6);
        assert_eq!(row(&stats, AGE_BAND, "30-44").faces, 1);
        assert_eq!(row(&stats, AGE_BAND, "0-17").faces, 0);
        assert_eq!(row(&stats, AGE_BAND, UNKNOWN).faces, 1);
        assert!((row(&stats, AGE_BAND, "45-59").share - 0.5).abs() < 1e-9);
    }

    #[test]
    fn soft_and_hard_counts_agree_on_confident_faces() {
        let faces: Vec<Face> = (0..4)
            .map(|i| {
                face(
                    i as f32 * 100.0,
                    0.0,
                    80.0,
                    if i < 3 { 0.999 } else { 0.001 },
                    None,
                )
            })
            .collect();
        let stats = poster_statistics(&faces, 800, 800, &gender(), &bands());
        let male = row(&stats, "gender", "male");
        assert_eq!(male.faces, 3);
        assert!((male.soft_count - 3.0).abs() < 0.01);
        let i = male.share_interval.unwrap();
        assert!(i.high - i.low < 0.01, "{i:?}");
    }

    #[test]
    fn ambiguous_faces_move_the_soft_count_while_the_hard_count_says_unknown() {
        let at = |p_male: f32| {
            let faces: Vec<Face> = (0..4)
                .map(|i| face(i as f32 * 100.0, 0.0, 80.0, p_male, None))
                .collect();
            poster_statistics(&faces, 800, 800, &gender(), &bands())
        };
        let (lean_male, lean_female) = (at(0.65), at(0.35));
        for stats in [&lean_male, &lean_female] {
            assert_eq!(row(stats, "gender", "male").faces, 0);
            assert_eq!(row(stats, "gender", UNKNOWN).faces, 4);
        }
        assert!((row(&lean_male, "gender", "male").soft_count - 2.6).abs() < 1e-5);
        assert!((row(&lean_female, "gender", "male").soft_count - 1.4).abs() < 1e-5);
        // And the interval says how little four ambiguous faces tell.
        let i = row(&lean_male, "gender", "male").share_interval.unwrap();
        assert!(i.high - i.low >= 0.5, "{i:?}");
    }

    #[test]
    fn a_poster_without_faces_has_zero_rows() {
        let stats = poster_statistics(&[], 600, 900, &gender(), &bands());
        let female = row(&stats, "gender", "female");
        assert_eq!(
            (female.faces, female.share, female.share_interval),
            (0, 0.0, None)
        );
        assert!(!female.has_largest_face);
        assert_eq!(stats[0].total_faces, 0);
    }

    #[test]
    fn undeclared_labels_keep_their_row() {
        let mut f = face(0.0, 0.0, 80.0, 0.9, None);
        f.attributes.push(AttributeEstimate::decide(
            "festival_label",
            BTreeMap::from([("lead".to_string(), 0.9), ("extra".to_string(), 0.1)]),
            MIN_CONFIDENCE,
            80.0,
            MIN_FACE_PX,
        ));
        let attrs = vec![("festival_label".to_string(), vec!["extra".to_string()])];
        let stats = poster_statistics(&[f], 100, 100, &attrs, &bands());
        assert_eq!(row(&stats, "festival_label", "lead").faces, 1);
        assert_eq!(row(&stats, "festival_label", "extra").faces, 0);
    }
}
