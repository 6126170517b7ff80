//! Agreement between coders on a nominal scheme. A coder's `unknown` (unsure) is no code: it is
//! left out, as a missing value, before either figure is computed.

use std::collections::BTreeMap;

const UNSURE: &str = "unknown";

/// Agreement of one scheme: what the admin page shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agreement {
    /// Persons with two decided codes (the pairs kappa is computed over).
    pub pairs: usize,
    /// Share of those pairs with the same code.
    pub observed: Option<f64>,
    pub cohen_kappa: Option<f64>,
    pub krippendorff_alpha: Option<f64>,
}

/// Both figures over units (persons), each the codes given in order. Kappa takes the first two
/// decided codes of each unit (the two coders of the design); alpha takes every decided code.
pub fn agreement(units: &[Vec<String>]) -> Agreement {
    let decided: Vec<Vec<&str>> = units
        .iter()
        .map(|u| {
            u.iter()
                .map(String::as_str)
                .filter(|l| *l != UNSURE)
                .collect()
        })
        .collect();
    let pairs: Vec<(&str, &str)> = decided
        .iter()
        .filter(|u| u.len() >= 2)
        .map(|u| (u[0], u[1]))
        .collect();
    let observed = (!pairs.is_empty())
        .then(|| pairs.iter().filter(|(a, b)| a == b).count() as f64 / pairs.len() as f64);
    Agreement {
        pairs: pairs.len(),
        observed,
        cohen_kappa: cohen_kappa(&pairs),
        krippendorff_alpha: krippendorff_alpha(&decided),
    }
}

/// Cohen's kappa of two coders' codes, one pair per unit: (p_o − p_e) / (1 − p_e). `None`
/// without pairs or when chance agreement is total (both coders used one and the same code).
pub fn cohen_kappa(pairs: &[(&str, &str)]) -> Option<f64> {
    if pairs.is_empty() {
        return None;
    }
    let n = pairs.len() as f64;
    let mut first: BTreeMap<&str, f64> = BTreeMap::new();
    let mut second: BTreeMap<&str, f64> = BTreeMap::new();
    let mut agree = 0.0;
    for (a, b) in pairs {
        *first.entry(a).or_default() += 1.0;
        *second.entry(b).or_default() += 1.0;
        if a == b {
            agree += 1.0;
        }
    }
    let p_o = agree / n;
    let p_e: f64 = first
        .iter()
        .map(|(code, na)| na / n * second.get(code).copied().unwrap_or(0.0) / n)
        .sum();
    (p_e < 1.0).then(|| (p_o - p_e) / (1.0 - p_e))
}

/// Krippendorff's alpha for nominal data, any number of coders per unit, missing codes allowed:
/// 1 − (n − 1) Σ_{c≠k} o_ck / Σ_{c≠k} n_c n_k, over the coincidences of units with two or more
/// codes. `None` when fewer than two codes are pairable or only one code was ever used.
pub fn krippendorff_alpha(units: &[Vec<&str>]) -> Option<f64> {
    let mut disagreeing = 0.0;
    let mut totals: BTreeMap<&str, f64> = BTreeMap::new();
    for unit in units.iter().filter(|u| u.len() >= 2) {
        let m = unit.len() as f64;
        for (i, c) in unit.iter().enumerate() {
            *totals.entry(c).or_default() += 1.0;
            for (j, k) in unit.iter().enumerate() {
                if i != j && c != k {
                    disagreeing += 1.0 / (m - 1.0);
                }
            }
        }
    }
    let n: f64 = totals.values().sum();
    let expected: f64 = n * n - totals.values().map(|v| v * v).sum::<f64>();
    (n >= 2.0 && expected > 0.0).then(|| 1.0 - (n - 1.0) * disagreeing / expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    /// The textbook 2×2 table: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no. p_o = 0.7, p_e = 0.5,
    /// kappa = 0.4; alpha = 1 − 99 · 30 / (2 · 55 · 45) = 0.4.
    fn textbook() -> Vec<Vec<String>> {
        let mut units = Vec::new();
        for (a, b, n) in [
            ("yes", "yes", 20),
            ("yes", "no", 5),
            ("no", "yes", 10),
            ("no", "no", 15),
        ] {
            for _ in 0..n {
                units.push(vec![a.to_string(), b.to_string()]);
            }
        }
        units
    }

    #[test]
    fn kappa_and_alpha_match_the_textbook_table() {
        let a = agreement(&textbook());
        assert_eq!(a.pairs, 50);
        assert!(close(a.observed, 0.7), "{a:?}");
        assert!(close(a.cohen_kappa, 0.4), "{a:?}");
        assert!(close(a.krippendorff_alpha, 0.4), "{a:?}");
    }

    #[test]
    fn perfect_agreement_is_one_and_unsure_codes_are_missing_values() {
        let mut units = vec![
            vec!["a".to_string(), "a".to_string()],
            vec!["b".to_string(), "b".to_string()],
            vec!["a".to_string(), "unknown".to_string()],
        ];
        let a = agreement(&units);
        assert_eq!(a.pairs, 2);
        assert!(close(a.cohen_kappa, 1.0), "{a:?}");
        assert!(close(a.krippendorff_alpha, 1.0), "{a:?}");
        // One code only: chance agreement is total, neither figure is defined.
        units = vec![vec!["a".to_string(), "a".to_string()]];
        let a = agreement(&units);
        assert_eq!(a.cohen_kappa, None);
        assert_eq!(a.krippendorff_alpha, None);
        assert_eq!(agreement(&[]).observed, None);
    }

    #[test]
    fn alpha_counts_a_third_coder() {
        // Three coders on one unit (a, a, b) and two on another (b, b): o_ab = o_ba = 1
        // (2 disagreeing ordered pairs / 2), n_a = 2, n_b = 3, n = 5:
        // alpha = 1 − 4 · 2 / (2 · 2 · 3) = 1/3.
        let units = vec![vec!["a", "a", "b"], vec!["b", "b"]];
        assert!(close(krippendorff_alpha(&units), 1.0 / 3.0));
    }
}
