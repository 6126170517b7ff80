//! Trailer metrics: distinct persons and person-seconds on screen, per perceived gender.

use super::identity::{IdentityOutcome, match_identities};
use super::truth::TrailerTruth;
use crate::domain::{TrailerAnalysis, UNKNOWN};
use crate::pipeline::PersonSighting;
use std::collections::BTreeMap;

/// What a trailer's truth says and what regard found, summed per gender label.
#[derive(Debug, Clone)]
pub struct TrailerOutcome {
    pub media: String,
    pub truth_persons: BTreeMap<String, u32>,
    pub found_persons: BTreeMap<String, u32>,
    pub truth_seconds: BTreeMap<String, f64>,
    pub found_seconds: BTreeMap<String, f64>,
    /// Truth persons matched to found persons; None when the truth has no shots.
    pub identity: Option<IdentityOutcome>,
}

/// One gender of one trailer.
#[derive(Debug, Clone, PartialEq)]
pub struct TrailerRow {
    pub media: String,
    pub gender: String,
    pub truth_persons: u32,
    pub found_persons: u32,
    pub truth_seconds: f64,
    pub found_seconds: f64,
}

impl TrailerRow {
    /// Distinct persons found minus distinct persons in the truth.
    pub fn person_error(&self) -> i64 {
        self.found_persons as i64 - self.truth_persons as i64
    }

    /// Error of the person-seconds in percent of the truth; None when the truth has none.
    pub fn screen_time_error_pct(&self) -> Option<f64> {
        (self.truth_seconds > 0.0)
            .then(|| 100.0 * (self.found_seconds - self.truth_seconds) / self.truth_seconds)
    }
}

impl TrailerOutcome {
    pub fn new(
        media: &str,
        truth: &TrailerTruth,
        analysis: &TrailerAnalysis,
        sightings: &[PersonSighting],
    ) -> TrailerOutcome {
        let mut truth_persons = BTreeMap::new();
        let mut truth_seconds = BTreeMap::new();
        for p in &truth.persons {
            *truth_persons.entry(p.gender.clone()).or_insert(0) += 1;
            *truth_seconds.entry(p.gender.clone()).or_insert(0.0) += p.seconds_on_screen;
        }
        let mut found_persons = BTreeMap::new();
        let mut found_seconds = BTreeMap::new();
        for p in &analysis.persons {
            let label = p
                .attribute("gender")
                .map(|g| g.label.clone())
                .unwrap_or_else(|| UNKNOWN.to_string());
            *found_persons.entry(label.clone()).or_insert(0) += 1;
            *found_seconds.entry(label).or_insert(0.0) += p.screen_time_s;
        }
        TrailerOutcome {
            media: media.to_string(),
            truth_persons,
            found_persons,
            truth_seconds,
            found_seconds,
            identity: (!truth.shots.is_empty())
                .then(|| match_identities(media, truth, analysis.persons.len() as u32, sightings)),
        }
    }

    /// One row per gender label in the truth or in what was found, in label order.
    pub fn rows(&self) -> Vec<TrailerRow> {
        let mut genders: Vec<&String> = self
            .truth_persons
            .keys()
            .chain(self.found_persons.keys())
            .collect();
        genders.sort();
        genders.dedup();
        genders
            .into_iter()
            .map(|g| TrailerRow {
                media: self.media.clone(),
                gender: g.clone(),
                truth_persons: self.truth_persons.get(g).copied().unwrap_or(0),
                found_persons: self.found_persons.get(g).copied().unwrap_or(0),
                truth_seconds: self.truth_seconds.get(g).copied().unwrap_or(0.0),
                found_seconds: self.found_seconds.get(g).copied().unwrap_or(0.0),
            })
            .collect()
    }
}

/// Distinct-persons error (found − truth) per gender label, summed over rows.
pub fn person_errors(rows: &[TrailerRow]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for r in rows {
        *out.entry(r.gender.clone()).or_insert(0) += r.person_error();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_cover_every_label_of_truth_and_found_and_sum_the_person_errors() {
        let outcome = TrailerOutcome {
            media: "t.mp4".into(),
            truth_persons: [("female".to_string(), 2), ("male".to_string(), 1)].into(),
            found_persons: [("male".to_string(), 2), ("unknown".to_string(), 1)].into(),
            truth_seconds: [("female".to_string(), 10.0), ("male".to_string(), 4.0)].into(),
            found_seconds: [("male".to_string(), 5.0), ("unknown".to_string(), 1.0)].into(),
            identity: None,
        };
        let rows = outcome.rows();
        let genders: Vec<&str> = rows.iter().map(|r| r.gender.as_str()).collect();
        assert_eq!(genders, ["female", "male", "unknown"]);
        assert_eq!(rows[0].person_error(), -2);
        assert_eq!(rows[0].screen_time_error_pct(), Some(-100.0));
        assert_eq!(rows[1].screen_time_error_pct(), Some(25.0));
        assert_eq!(rows[2].screen_time_error_pct(), None, "no truth seconds");
        let twice: Vec<TrailerRow> = rows.iter().chain(&rows).cloned().collect();
        assert_eq!(
            person_errors(&twice),
            [
                ("female".to_string(), -4),
                ("male".to_string(), 2),
                ("unknown".to_string(), 2)
            ]
            .into()
        );
    }
}
