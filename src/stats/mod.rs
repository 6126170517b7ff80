//! Representation statistics of posters and trailers, and the uncertainty they carry.
//!
//! One engine for every published figure: the pipeline's statistics and the store's rows,
//! before and after human coders label faces and persons ([`CoderLabels`]), all come from here.

pub mod interval;
pub mod poster;
pub mod trailer;

use crate::domain::{AgeEstimate, AttributeEstimate, Interval, UNKNOWN, UnknownReason};
use std::collections::BTreeMap;

/// Seed of the intervals' Monte Carlo: fixed so a media file's figures never change between runs.
pub const INTERVAL_SEED: u64 = 0x7265_6761_7264; // "regard"

/// Human coders' labels of one attribute, by item number (poster face number from 1, trailer
/// person id). A coder's label wins over the model's and is certain (P = 1); a coder's
/// `unknown` does not erase the model's estimate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CoderLabels {
    pub labels: BTreeMap<u32, String>,
    /// The coding scheme's categories of the attribute: they get a row (zero rows included) as
    /// soon as a coder decided an item, so pooled shares count that item in every category.
    pub scheme: Vec<String>,
}

impl CoderLabels {
    /// No coder label: the model's figures.
    pub fn none() -> Self {
        CoderLabels::default()
    }

    fn decided(&self, number: u32) -> Option<&str> {
        self.labels
            .get(&number)
            .map(String::as_str)
            .filter(|l| *l != UNKNOWN)
    }
}

/// Sums over the items a soft share is computed over, kept beside each figure so that intervals
/// over many films can be computed later (see migration 0003): n, Σp, Σp(1−p), and with a
/// weight w per item (face area, screen time) Σw, Σw·p, Σw²·p(1−p).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SoftSums {
    pub n: f64,
    pub sum: f64,
    pub var: f64,
    pub weight: f64,
    pub weighted_sum: f64,
    pub weighted_var: f64,
}

impl SoftSums {
    /// `items` are (P(category), weight) of the eligible items only.
    pub fn of(items: impl IntoIterator<Item = (f64, f64)>) -> SoftSums {
        items
            .into_iter()
            .fold(SoftSums::default(), |mut s, (p, w)| {
                let v = p * (1.0 - p);
                s.n += 1.0;
                s.sum += p;
                s.var += v;
                s.weight += w;
                s.weighted_sum += w * p;
                s.weighted_var += w * w * v;
                s
            })
    }
}

/// One face or person as an attribute's statistics see it.
pub(crate) struct Observation {
    /// The label that counts: a coder's, else the model's decided label, else `unknown`.
    pub label: String,
    probabilities: BTreeMap<String, f64>,
    /// Whether its probabilities may enter the share: coded, or the model can speak for it
    /// (probabilities present, face not too small: tiny faces come out "female" whatever the
    /// truth, so their probabilities are known to be biased).
    eligible: bool,
    /// Has an estimate of the attribute or a coder's label (else no soft sums exist for it).
    judged: bool,
    pub coded: bool,
}

impl Observation {
    /// From a categorical estimate (absent when the item has none for the attribute).
    pub fn of_estimate(estimate: Option<&AttributeEstimate>, coder: Option<&str>) -> Self {
        if let Some(label) = coder {
            return Observation::coded(label);
        }
        match estimate {
            Some(est) => Observation {
                label: est.label.clone(),
                eligible: !est.probabilities.is_empty()
                    && est.unknown_reason != Some(UnknownReason::FaceTooSmall),
                probabilities: est
                    .probabilities
                    .iter()
                    .map(|(l, p)| (l.clone(), f64::from(*p)))
                    .collect(),
                judged: true,
                coded: false,
            },
            None => Observation {
                label: UNKNOWN.to_string(),
                probabilities: BTreeMap::new(),
                eligible: false,
                judged: false,
                coded: false,
            },
        }
    }

    /// From a perceived age: it has no per-band probabilities, so its band is taken as certain
    /// (soft = hard), and no interval is claimed (the age model's jitter is not quantified).
    pub fn of_age(age: Option<&AgeEstimate>, coder: Option<&str>) -> Self {
        if let Some(label) = coder {
            return Observation::coded(label);
        }
        let band = age.map_or(UNKNOWN.to_string(), |a| a.band.clone());
        let known = band != UNKNOWN;
        Observation {
            probabilities: if known {
                BTreeMap::from([(band.clone(), 1.0)])
            } else {
                BTreeMap::new()
            },
            label: band,
            eligible: known,
            judged: false,
            coded: false,
        }
    }

    fn coded(label: &str) -> Self {
        Observation {
            label: label.to_string(),
            probabilities: BTreeMap::from([(label.to_string(), 1.0)]),
            eligible: true,
            judged: true,
            coded: true,
        }
    }

    pub fn p(&self, category: &str) -> f64 {
        self.probabilities.get(category).copied().unwrap_or(0.0)
    }
}

/// The observations of attribute `name` over items given as (number, estimate, age).
pub(crate) fn observe<'a>(
    name: &str,
    items: impl Iterator<Item = (u32, Option<&'a AttributeEstimate>, Option<&'a AgeEstimate>)>,
    coder: &CoderLabels,
) -> Vec<Observation> {
    items
        .map(|(number, estimate, age)| {
            let coded = coder.decided(number);
            if name == poster::AGE_BAND {
                Observation::of_age(age, coded)
            } else {
                Observation::of_estimate(estimate, coded)
            }
        })
        .collect()
}

/// Whether the attribute's shares carry an interval (age bands do not).
pub(crate) fn with_interval(name: &str) -> bool {
    name != poster::AGE_BAND
}

/// The rows of an attribute: declared labels, the scheme's once a coder decided an item, labels
/// met on the items but declared nowhere (never dropped), then `unknown`.
pub(crate) fn categories(
    declared: &[String],
    coder: &CoderLabels,
    observations: &[Observation],
) -> Vec<String> {
    let scheme: &[String] = if observations.iter().any(|o| o.coded) {
        &coder.scheme
    } else {
        &[]
    };
    let met = observations.iter().map(|o| &o.label);
    let mut out: Vec<String> = Vec::new();
    for label in declared.iter().chain(scheme).chain(met) {
        if label != UNKNOWN && !out.contains(label) {
            out.push(label.clone());
        }
    }
    out.push(UNKNOWN.to_string());
    out
}

/// The soft figures of one category over all items, each with a weight (face area, screen time).
pub(crate) struct Soft {
    /// Σ P(category) over every item.
    pub count: f64,
    pub share: f64,
    pub share_interval: Option<Interval>,
    pub weighted_share: f64,
    pub weighted_interval: Option<Interval>,
    pub sums: Option<SoftSums>,
}

/// Soft count, soft shares Σ w·p / Σ w over the eligible items and their intervals, and the
/// sums that pool them. `unknown` has no soft share: its shares are those of the items left
/// undecided, by count and by weight, without interval.
pub(crate) fn soft_figures(
    attribute: &str,
    observations: &[Observation],
    weights: &[f64],
    category: &str,
) -> Soft {
    let count = total(observations.iter().map(|o| o.p(category)));
    if category == UNKNOWN {
        let undecided: Vec<f64> = observations
            .iter()
            .zip(weights)
            .filter(|(o, _)| o.label == UNKNOWN)
            .map(|(_, w)| *w)
            .collect();
        let all = observations.len() as f64;
        return Soft {
            count,
            share: ratio(undecided.len() as f64, all),
            share_interval: None,
            weighted_share: ratio(
                total(undecided.iter().copied()),
                total(weights.iter().copied()),
            ),
            weighted_interval: None,
            sums: None,
        };
    }
    let with_interval = with_interval(attribute);
    let eligible: Vec<(f64, f64)> = observations
        .iter()
        .zip(weights)
        .filter(|(o, _)| o.eligible)
        .map(|(o, w)| (o.p(category), *w))
        .collect();
    let excluded = u32::try_from(observations.len() - eligible.len()).unwrap_or(u32::MAX);
    let p: Vec<f64> = eligible.iter().map(|(p, _)| *p).collect();
    let w: Vec<f64> = eligible.iter().map(|(_, w)| *w).collect();
    let context = (attribute, category);
    let (share, share_interval) = soft_share(p.clone(), None, excluded, with_interval, context);
    let (weighted_share, weighted_interval) =
        soft_share(p, Some(w), excluded, with_interval, context);
    let judged = observations.iter().any(|o| o.judged);
    Soft {
        count,
        share,
        share_interval,
        weighted_share,
        weighted_interval,
        sums: (with_interval && judged).then(|| SoftSums::of(eligible)),
    }
}

/// Attributes to compute: every `(name, labels)` given, then "origin" if absent (perceived
/// origin is always reported, as `unknown` unless a classifier was configured), then
/// "age_band" over `age_bands`.
pub(crate) fn attribute_list(
    attributes: &[(String, Vec<String>)],
    age_bands: &[String],
) -> Vec<(String, Vec<String>)> {
    let mut names: Vec<(String, Vec<String>)> = attributes.to_vec();
    if !names.iter().any(|(n, _)| n == poster::ORIGIN) {
        names.push((poster::ORIGIN.to_string(), Vec::new()));
    }
    names.push((poster::AGE_BAND.to_string(), age_bands.to_vec()));
    names
}

/// Σ `values`, and 0.0 when there are none. Rust's float `sum` starts from -0.0, so that a
/// category with no face printed `-0.0` seconds or shares; from 0.0 every other sum is the same,
/// bit for bit (0.0 + x = x for every x but -0.0).
pub(crate) fn total(values: impl IntoIterator<Item = f64>) -> f64 {
    values.into_iter().fold(0.0, |sum, v| sum + v)
}

pub(crate) fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 { num / den } else { 0.0 }
}

/// The soft share Σ w·p / Σ w of the eligible items and, if asked, its 95% interval from their
/// classification uncertainty. 0 with no interval when nothing is eligible.
pub(crate) fn soft_share(
    p: Vec<f64>,
    weights: Option<Vec<f64>>,
    excluded: u32,
    with_interval: bool,
    context: (&str, &str),
) -> (f64, Option<Interval>) {
    let den: f64 = weights
        .as_ref()
        .map_or(p.len() as f64, |w| total(w.iter().copied()));
    if p.is_empty() || den <= 0.0 {
        return (0.0, None);
    }
    let num: f64 = match &weights {
        Some(w) => total(p.iter().zip(w).map(|(p, w)| p * w)),
        None => total(p.iter().copied()),
    };
    if !with_interval {
        return (num / den, None);
    }
    let weights = weights.map(|w| vec![w]);
    match interval::share_interval(&[p], weights.as_deref(), excluded, INTERVAL_SEED) {
        Ok(e) => (e.share, Some(e.interval())),
        Err(error) => {
            // Probabilities come from the vision stage; a bad one is a bug upstream, and the
            // figure is then published without an interval rather than not at all.
            tracing::warn!(attribute = context.0, category = context.1, %error, "no share interval");
            (num / den, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gender(p_female: f32, face_px: f32) -> AttributeEstimate {
        let probabilities = BTreeMap::from([
            ("female".to_string(), p_female),
            ("male".to_string(), 1.0 - p_female),
        ]);
        AttributeEstimate::decide("gender", probabilities, 0.75, face_px, 40.0)
    }

    fn coder(labels: &[(u32, &str)], scheme: &[&str]) -> CoderLabels {
        CoderLabels {
            labels: labels.iter().map(|(n, l)| (*n, l.to_string())).collect(),
            scheme: scheme.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_coder_label_wins_but_a_coder_unknown_does_not_erase_the_model() {
        let female = gender(0.9, 100.0);
        let labels = coder(&[(1, "male"), (2, UNKNOWN)], &[]);
        let items = [
            (1, Some(&female), None),
            (2, Some(&female), None),
            (3, None, None),
        ];
        let o = observe("gender", items.into_iter(), &labels);
        let seen: Vec<(&str, bool, f64)> = o
            .iter()
            .map(|o| (o.label.as_str(), o.coded, o.p("female")))
            .collect();
        assert_eq!(seen[0], ("male", true, 0.0));
        assert_eq!(seen[1].0, "female");
        assert!(!seen[1].1 && (seen[1].2 - 0.9).abs() < 1e-6);
        assert_eq!(seen[2], (UNKNOWN, false, 0.0));
    }

    #[test]
    fn coded_items_are_certain_and_too_small_faces_stay_out_of_the_soft_sums() {
        let ambiguous = gender(0.6, 100.0);
        let confident = gender(0.9, 100.0);
        let tiny = gender(0.9, 20.0);
        let items = [
            (1, Some(&ambiguous), None),
            (2, Some(&confident), None),
            (3, Some(&tiny), None),
            (4, None, None),
        ];
        let o = observe("gender", items.into_iter(), &coder(&[(2, "male")], &[]));
        let soft = soft_figures("gender", &o, &[2.0, 3.0, 5.0, 7.0], "female");
        let sums = soft.sums.expect("sums");
        // Items 1 (model, P = 0.6) and 2 (coded male, P = 0); the tiny and the unjudged are out.
        assert_eq!(sums.n, 2.0);
        assert!((sums.sum - 0.6).abs() < 1e-6);
        assert!(
            (sums.var - 0.24).abs() < 1e-6,
            "only the model's face is in doubt"
        );
        assert_eq!(sums.weight, 5.0);
        assert!((sums.weighted_sum - 1.2).abs() < 1e-6);
        assert!((sums.weighted_var - 4.0 * 0.24).abs() < 1e-6);
        // The soft count takes every item with probabilities, the tiny face included.
        assert!((soft.count - 1.5).abs() < 1e-6);
        let ci = soft.share_interval.expect("interval");
        // The share is 0.3; the coded face is certain, so it can only be 0 or 0.5.
        assert!((soft.share - 0.3).abs() < 1e-6);
        assert_eq!((ci.low, ci.high), (0.0, 0.5));
        assert!(soft.weighted_interval.is_some());
        let unknown = soft_figures("gender", &o, &[2.0, 3.0, 5.0, 7.0], UNKNOWN);
        assert_eq!((unknown.sums, unknown.share_interval), (None, None));
    }

    #[test]
    fn categories_keep_the_declared_order_add_the_scheme_once_coded_and_end_with_unknown() {
        let declared = vec![UNKNOWN.to_string(), "b".to_string(), "a".to_string()];
        let scheme = coder(&[(1, "c")], &[UNKNOWN, "d", "a"]);
        let model = gender(0.9, 100.0);
        let items = || [(1, None, None), (2, Some(&model), None)].into_iter();
        let coded = observe("gender", items(), &scheme);
        assert_eq!(
            categories(&declared, &scheme, &coded),
            ["b", "a", "d", "c", "female", UNKNOWN]
        );
        // Nothing decided by a coder: the scheme adds no row.
        let uncoded = observe("gender", items(), &coder(&[(1, UNKNOWN)], &["d"]));
        assert_eq!(
            categories(&declared, &scheme, &uncoded),
            ["b", "a", "female", UNKNOWN]
        );
    }
}
