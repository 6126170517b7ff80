//! Who is on a poster, per attribute and category: counts, soft counts, area, placement.
//!
//! Hard numbers (`faces`, area, placement) use decided labels, so a face left `unknown` is
//! counted under `unknown`, never guessed. `soft_count` sums P(category) over every face with
//! probabilities. `share` is Σ P / n over the faces the model (or a coder) can speak for: faces
//! with probabilities that are not too small (see [`Observation`](super::Observation)), counted
//! as unknown otherwise. Its interval carries per-face classification uncertainty only (one
//! poster).

use crate::domain::{
    BoundingBox, Face, PosterAnalysis, PosterAttributeStats, PosterCategoryStats, UNKNOWN,
};
use crate::stats::{
    CoderLabels, SoftSums, attribute_list, categories, observe, ratio, soft_figures, total,
};

/// The attribute name of the age-band statistics.
pub const AGE_BAND: &str = "age_band";
/// Perceived origin is always reported, as `unknown` unless a classifier was configured.
pub const ORIGIN: &str = "origin";

/// One category's figures: the published statistics and what the store keeps beside them.
#[derive(Debug, Clone, PartialEq)]
pub struct PosterCategoryFigures {
    pub stats: PosterCategoryStats,
    /// Face area of this category in pixels (area shares cannot be pooled across posters).
    pub face_area_px: f64,
    /// `None` for `unknown` and for attributes without probabilities (age bands).
    pub soft: Option<SoftSums>,
}

/// One attribute's figures on a poster.
#[derive(Debug, Clone, PartialEq)]
pub struct PosterAttributeFigures {
    pub attribute: String,
    pub total_faces: u32,
    pub unknown: u32,
    /// Faces whose label comes from a coder.
    pub coded: u32,
    pub categories: Vec<PosterCategoryFigures>,
}

impl PosterAttributeFigures {
    pub fn into_stats(self) -> PosterAttributeStats {
        PosterAttributeStats {
            attribute: self.attribute,
            total_faces: self.total_faces,
            unknown: self.unknown,
            categories: self.categories.into_iter().map(|c| c.stats).collect(),
        }
    }
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
    attribute_list(attributes, age_bands)
        .iter()
        .map(|(name, labels)| {
            poster_figures(faces, width, height, name, labels, &CoderLabels::none()).into_stats()
        })
        .collect()
}

/// The figures of one attribute of a recorded poster, with coders' labels (face numbers from
/// 1): its rows are those its statistics declared, plus what [`CoderLabels`] adds.
pub fn recorded_poster_figures(
    poster: &PosterAnalysis,
    attribute: &str,
    coder: &CoderLabels,
) -> PosterAttributeFigures {
    let declared: Vec<String> = poster
        .statistics
        .iter()
        .filter(|s| s.attribute == attribute)
        .flat_map(|s| s.categories.iter().map(|c| c.category.clone()))
        .collect();
    let (width, height) = (poster.media.width, poster.media.height);
    poster_figures(&poster.faces, width, height, attribute, &declared, coder)
}

/// One attribute's figures over `faces` (face `i` is number `i + 1` for the coders).
pub fn poster_figures(
    faces: &[Face],
    width: u32,
    height: u32,
    name: &str,
    declared: &[String],
    coder: &CoderLabels,
) -> PosterAttributeFigures {
    let observations = observe(
        name,
        faces.iter().enumerate().map(|(i, f)| {
            let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
            (number, f.attribute(name), f.age.as_ref())
        }),
        coder,
    );
    let areas: Vec<f64> = faces.iter().map(|f| f64::from(f.bbox.area())).collect();
    let total_area = total(areas.iter().copied());
    let largest = faces
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.bbox.area().total_cmp(&b.1.bbox.area()))
        .map(|(i, _)| i);
    let unknown_faces = observations.iter().filter(|o| o.label == UNKNOWN).count() as u32;

    let rows = categories(declared, coder, &observations)
        .into_iter()
        .map(|category| {
            let mine: Vec<usize> = (0..faces.len())
                .filter(|&i| observations[i].label == category)
                .collect();
            let area = total(mine.iter().map(|&i| areas[i]));
            // Area-weighted: a face counts by its share of the painted faces.
            let soft = soft_figures(name, &observations, &areas, &category);
            let stats = PosterCategoryStats {
                faces: mine.len() as u32,
                soft_count: soft.count,
                face_area_share: ratio(area, total_area),
                has_largest_face: largest.is_some_and(|i| observations[i].label == category),
                faces_upper_third: mine
                    .iter()
                    .filter(|&&i| upper_third(&faces[i].bbox, height))
                    .count() as u32,
                faces_central_third: mine
                    .iter()
                    .filter(|&&i| central_third(&faces[i].bbox, width, height))
                    .count() as u32,
                share: soft.share,
                share_interval: soft.share_interval,
                face_area_share_soft: soft.weighted_share,
                face_area_share_interval: soft.weighted_interval,
                category,
            };
            PosterCategoryFigures {
                stats,
                face_area_px: area,
                soft: soft.sums,
            }
        })
        .collect();
    PosterAttributeFigures {
        attribute: name.to_string(),
        total_faces: faces.len() as u32,
        unknown: unknown_faces,
        coded: observations.iter().filter(|o| o.coded).count() as u32,
        categories: rows,
    }
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
                model: None,
                by_model: Vec::new(),
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

    /// A category without faces has sums of nothing: 0.0, never the -0.0 of Rust's float
    /// `sum`, which the JSON and the database printed as "-0.0".
    #[test]
    fn a_category_without_faces_sums_to_positive_zero() {
        let zero = |v: f64| v == 0.0 && v.is_sign_positive();
        // One woman: no man's face to sum the area of.
        let one = poster_statistics(
            &[face(250.0, 100.0, 200.0, 0.02, None)],
            600,
            900,
            &gender(),
            &bands(),
        );
        let male = row(&one, "gender", "male");
        assert!(zero(male.face_area_share), "{:?}", male.face_area_share);
        // No face at all: nothing to weigh either.
        let none = poster_statistics(&[], 600, 900, &gender(), &bands());
        let male = row(&none, "gender", "male");
        assert!(zero(male.face_area_share), "{:?}", male.face_area_share);
        assert!(
            zero(male.face_area_share_soft),
            "{:?}",
            male.face_area_share_soft
        );
        for stats in [&one, &none] {
            let json = serde_json::to_string(stats).unwrap();
            assert!(!json.contains("-0.0"), "{json}");
        }
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
