//! 95% intervals on a share ("x% of the faces are women") that carry both sources of doubt.
//!
//! Each item (a face, a person) has a probability p of belonging to the category and a weight
//! (1, or screen time). The point share is Σ w·p / Σ w. Two things make the true share differ:
//! (a) classification: the item's real label is unknown, modelled as Bernoulli(p) per item,
//!     independently (a Poisson-binomial count). One media file: with equal weights the count's
//!     distribution is computed exactly by dynamic programming (O(n²), n ≤ [`EXACT_MAX_ITEMS`]);
//!     otherwise [`REPLICATES`] seeded Monte Carlo draws of every label.
//! (b) sampling: several films aggregated are a sample of films. Each replicate resamples the
//!     films with replacement (bootstrap), then draws every label of the drawn films as in (a).
//! The interval is the 2.5% and 97.5% percentiles of the replicate shares, widened if needed to
//! contain the point share. Limits: p is taken as calibrated (the models' probabilities are not
//! checked against ground truth here); labels are assumed independent; the film bootstrap is
//! unreliable below about ten films; faces within a film are not resampled.

use crate::domain::Interval;

/// Replicates of the Monte Carlo / bootstrap (50 draws beyond each 2.5% tail).
pub const REPLICATES: usize = 2_000;
/// Largest single-unit item count solved exactly (the DP is quadratic).
pub const EXACT_MAX_ITEMS: usize = 5_000;
const LOWER_TAIL: f64 = 0.025;
const UPPER_TAIL: f64 = 0.975;

/// A share with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShareEstimate {
    /// Σ w·p / Σ w over every item.
    pub share: f64,
    pub low: f64,
    pub high: f64,
    /// Items the share is computed over.
    pub n: u32,
    /// Items the caller left out because the model cannot speak for them (passed through).
    pub unknown: u32,
}

impl ShareEstimate {
    pub fn interval(&self) -> Interval {
        Interval {
            low: self.low,
            high: self.high,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IntervalError {
    #[error("share interval: no item to compute a share over")]
    NoItems,
    #[error("share interval: probability {value} of item {item} in unit {unit} is not in [0, 1]")]
    BadProbability {
        unit: usize,
        item: usize,
        value: f64,
    },
    #[error(
        "share interval: weight {value} of item {item} in unit {unit} is negative or not finite"
    )]
    BadWeight {
        unit: usize,
        item: usize,
        value: f64,
    },
    #[error("share interval: unit {unit} has {items} items but {weights} weights")]
    WeightShape {
        unit: usize,
        items: usize,
        weights: usize,
    },
    #[error("share interval: {units} units but {weights} weight lists")]
    UnitShape { units: usize, weights: usize },
    #[error("share interval: the weights sum to zero")]
    ZeroWeight,
}

/// The share of a category and its 95% interval.
///
/// `units[f][i]` is P(category) of item `i` of film `f`; `weights`, when given, has the same
/// shape (e.g. screen time per person), otherwise every item weighs 1. One unit: classification
/// uncertainty only; several units: films are bootstrapped as well. Same inputs and seed, same
/// result.
pub fn share_interval(
    units: &[Vec<f64>],
    weights: Option<&[Vec<f64>]>,
    unknown: u32,
    seed: u64,
) -> Result<ShareEstimate, IntervalError> {
    validate(units, weights)?;
    let weight = |f: usize, i: usize| weights.map_or(1.0, |w| w[f][i]);
    let n: usize = units.iter().map(Vec::len).sum();
    if n == 0 {
        return Err(IntervalError::NoItems);
    }
    let (mut num, mut den) = (0.0, 0.0);
    for (f, unit) in units.iter().enumerate() {
        for (i, p) in unit.iter().enumerate() {
            num += weight(f, i) * p;
            den += weight(f, i);
        }
    }
    if den <= 0.0 {
        return Err(IntervalError::ZeroWeight);
    }
    let share = num / den;

    let single: Vec<&Vec<f64>> = units.iter().filter(|u| !u.is_empty()).collect();
    let (low, high) = if single.len() == 1 && weights.is_none() && n <= EXACT_MAX_ITEMS {
        poisson_binomial_quantiles(single[0])
    } else {
        let mut rng = SplitMix64::new(seed);
        let mut replicates = Vec::with_capacity(REPLICATES);
        let resample_films = units.len() > 1;
        while replicates.len() < REPLICATES {
            let (mut num, mut den) = (0.0, 0.0);
            for draw in 0..units.len() {
                let f = if resample_films {
                    rng.below(units.len())
                } else {
                    draw
                };
                for (i, p) in units[f].iter().enumerate() {
                    let w = weight(f, i);
                    den += w;
                    if rng.unit() < *p {
                        num += w;
                    }
                }
            }
            // A bootstrap draw of only empty or weightless films says nothing: draw again.
            if den > 0.0 {
                replicates.push(num / den);
            }
        }
        replicates.sort_by(f64::total_cmp);
        (
            percentile(&replicates, LOWER_TAIL),
            percentile(&replicates, UPPER_TAIL),
        )
    };
    Ok(ShareEstimate {
        share,
        low: low.min(share),
        high: high.max(share),
        n: n as u32,
        unknown,
    })
}

fn validate(units: &[Vec<f64>], weights: Option<&[Vec<f64>]>) -> Result<(), IntervalError> {
    for (unit, items) in units.iter().enumerate() {
        for (item, &value) in items.iter().enumerate() {
            if !(0.0..=1.0).contains(&value) {
                return Err(IntervalError::BadProbability { unit, item, value });
            }
        }
    }
    if let Some(weights) = weights {
        if weights.len() != units.len() {
            return Err(IntervalError::UnitShape {
                units: units.len(),
                weights: weights.len(),
            });
        }
        for (unit, (items, ws)) in units.iter().zip(weights).enumerate() {
            if items.len() != ws.len() {
                return Err(IntervalError::WeightShape {
                    unit,
                    items: items.len(),
                    weights: ws.len(),
                });
            }
            for (item, &value) in ws.iter().enumerate() {
                if !value.is_finite() || value < 0.0 {
                    return Err(IntervalError::BadWeight { unit, item, value });
                }
            }
        }
    }
    Ok(())
}

/// The exact distribution of K = Σ Bernoulli(p_i), and the 2.5% / 97.5% quantiles of K / n.
fn poisson_binomial_quantiles(p: &[f64]) -> (f64, f64) {
    let n = p.len();
    // pmf[k] = P(K = k) after the items seen so far.
    let mut pmf = vec![0.0; n + 1];
    pmf[0] = 1.0;
    for (seen, &pi) in p.iter().enumerate() {
        for k in (0..=seen + 1).rev() {
            let stay = pmf[k] * (1.0 - pi);
            let step = if k > 0 { pmf[k - 1] * pi } else { 0.0 };
            pmf[k] = stay + step;
        }
    }
    let quantile = |q: f64| {
        let mut cdf = 0.0;
        for (k, mass) in pmf.iter().enumerate() {
            cdf += mass;
            // Tolerance: rounding in the DP must not push the quantile one step too far.
            if cdf >= q - 1e-12 {
                return k as f64 / n as f64;
            }
        }
        1.0
    };
    (quantile(LOWER_TAIL), quantile(UPPER_TAIL))
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// SplitMix64: a tiny, well-studied generator; enough for resampling, and seedable so a
/// published interval can be reproduced bit for bit without a dependency.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (n > 0); the modulo bias is below 2⁻⁴⁰ for any realistic film count.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn width(e: &ShareEstimate) -> f64 {
        e.high - e.low
    }

    /// Films whose faces have calibrated probabilities: a face looks like a woman with the
    /// film's rate, its P is a confidence in 0.75..0.99 either way, and its true label is then
    /// drawn from P (so P is calibrated by construction).
    fn simulated_films(rng: &mut SplitMix64, films: usize, rate: f64) -> Vec<Vec<f64>> {
        (0..films)
            .map(|_| {
                let film_rate = rate + (rng.unit() - 0.5) * 0.3;
                let faces = 3 + rng.below(10);
                (0..faces)
                    .map(|_| {
                        let looks_female = rng.unit() < film_rate;
                        let confidence = 0.75 + rng.unit() * 0.24;
                        if looks_female {
                            confidence
                        } else {
                            1.0 - confidence
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// E[P] of a face in [`simulated_films`]: the population's true share.
    fn population_share(rate: f64) -> f64 {
        rate * 0.87 + (1.0 - rate) * 0.13
    }

    #[test]
    fn exact_distribution_matches_enumeration() {
        let p = [0.2, 0.7, 0.9];
        // Enumerate all 8 outcomes by hand to get the pmf of K.
        let mut pmf = [0.0f64; 4];
        for mask in 0..8u32 {
            let mut prob = 1.0;
            for (i, pi) in p.iter().enumerate() {
                prob *= if mask & (1 << i) != 0 { *pi } else { 1.0 - pi };
            }
            pmf[mask.count_ones() as usize] += prob;
        }
        // P(K=0) = 0.8*0.3*0.1 = 0.024 < 2.5%, P(K≤1) ≥ 2.5% → low = 1/3.
        assert!((pmf[0] - 0.024).abs() < 1e-12);
        // P(K=3) = 0.126 → the 97.5% quantile is K = 3.
        let e = share_interval(&[p.to_vec()], None, 0, 1).unwrap();
        assert!((e.share - 0.6).abs() < 1e-12);
        assert_eq!((e.low, e.high), (1.0 / 3.0, 1.0));
        assert_eq!(e.n, 3);
    }

    #[test]
    fn confident_faces_give_a_point_and_ambiguous_faces_a_wide_interval() {
        let confident = share_interval(&[vec![0.99; 20]], None, 0, 7).unwrap();
        let ambiguous = share_interval(&[vec![0.5; 20]], None, 0, 7).unwrap();
        assert!(width(&confident) <= 0.1, "{confident:?}");
        assert!(width(&ambiguous) >= 0.35, "{ambiguous:?}");
        assert!(confident.low <= confident.share && confident.share <= confident.high);
        assert!((ambiguous.share - 0.5).abs() < 1e-12);
    }

    #[test]
    fn ambiguity_also_widens_the_aggregated_interval() {
        // Twenty alike films of four women and four men, seen confidently or not at all.
        let confident_film = [vec![0.99; 4], vec![0.01; 4]].concat();
        let confident = vec![confident_film; 20];
        let ambiguous = vec![vec![0.5; 8]; 20];
        let c = share_interval(&confident, None, 0, 3).unwrap();
        let a = share_interval(&ambiguous, None, 0, 3).unwrap();
        assert!((c.share - 0.5).abs() < 1e-9 && (a.share - 0.5).abs() < 1e-9);
        assert!(width(&a) > 3.0 * width(&c), "{a:?} vs {c:?}");
    }

    #[test]
    fn more_films_narrow_the_interval() {
        let mut rng = SplitMix64::new(11);
        let few = simulated_films(&mut rng, 5, 0.35);
        let many = simulated_films(&mut rng, 80, 0.35);
        let few = share_interval(&few, None, 0, 5).unwrap();
        let many = share_interval(&many, None, 0, 5).unwrap();
        assert!(width(&many) < width(&few) * 0.6, "{many:?} vs {few:?}");
    }

    #[test]
    fn the_interval_covers_the_true_share_in_simulation() {
        let rate = 0.35;
        let mut rng = SplitMix64::new(2026);
        let trials = 200;
        let (mut covers_population, mut covers_sample) = (0, 0);
        for trial in 0..trials {
            let films = simulated_films(&mut rng, 25, rate);
            // The real labels of these very films, drawn from their calibrated P.
            let faces: Vec<f64> = films.iter().flatten().copied().collect();
            let women = faces.iter().filter(|p| rng.unit() < **p).count();
            let sample_share = women as f64 / faces.len() as f64;
            let e = share_interval(&films, None, 0, trial).unwrap();
            let truth = population_share(rate);
            covers_population += usize::from(e.low <= truth && truth <= e.high);
            covers_sample += usize::from(e.low <= sample_share && sample_share <= e.high);
        }
        let population = covers_population as f64 / trials as f64;
        let sample = covers_sample as f64 / trials as f64;
        eprintln!("coverage: population {population}, these films {sample}");
        assert!(population >= 0.9, "population coverage {population}");
        assert!(sample >= 0.9, "sample coverage {sample}");
    }

    #[test]
    fn a_fixed_seed_gives_the_same_interval() {
        let mut rng = SplitMix64::new(5);
        let films = simulated_films(&mut rng, 12, 0.4);
        let a = share_interval(&films, None, 2, 99).unwrap();
        let b = share_interval(&films, None, 2, 99).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.unknown, 2);
        let c = share_interval(&films, None, 2, 100).unwrap();
        assert_eq!(a.share, c.share);
    }

    #[test]
    fn weights_shift_the_share_towards_heavy_items() {
        let units = [vec![1.0, 0.0]];
        let weights = [vec![3.0, 1.0]];
        let e = share_interval(&units, Some(&weights), 0, 1).unwrap();
        assert!((e.share - 0.75).abs() < 1e-12);
        // Certain labels: no classification doubt, a point interval.
        assert_eq!((e.low, e.high), (0.75, 0.75));
    }

    #[test]
    fn bad_input_is_named() {
        assert_eq!(share_interval(&[], None, 0, 1), Err(IntervalError::NoItems));
        assert_eq!(
            share_interval(&[vec![]], None, 0, 1),
            Err(IntervalError::NoItems)
        );
        let nan = share_interval(&[vec![0.5, f64::NAN]], None, 0, 1).unwrap_err();
        assert!(matches!(
            nan,
            IntervalError::BadProbability {
                unit: 0,
                item: 1,
                ..
            }
        ));
        assert!(nan.to_string().contains("item 1"));
        assert_eq!(
            share_interval(&[vec![0.5]], Some(&[vec![1.0, 2.0]]), 0, 1),
            Err(IntervalError::WeightShape {
                unit: 0,
                items: 1,
                weights: 2
            })
        );
        assert_eq!(
            share_interval(&[vec![0.5]], Some(&[vec![0.0]]), 0, 1),
            Err(IntervalError::ZeroWeight)
        );
        assert!(matches!(
            share_interval(&[vec![0.5]], Some(&[vec![-1.0]]), 0, 1),
            Err(IntervalError::BadWeight { .. })
        ));
    }
}
