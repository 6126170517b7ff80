//! The minimum number of sampled frames a trailer person needs (`min_track_frames`): a track
//! seen in fewer samples is dropped before persons are formed. Each trailer of the labelled set
//! is analysed again at every value tried, and the persons are matched to the truth's
//! (`identity`): truth persons covered, found persons covering nobody (false persons), merges,
//! splits, and the person-seconds found, of them `unknown`. The stated rule
//! (fixtures/evaluation-method.md, "The minimum samples of a trailer person") picks one.

use super::identity::IdentityOutcome;
use super::trailer::TrailerOutcome;
use super::truth::Truth;
use crate::domain::{Analysis, UNKNOWN};
use std::path::Path;
use std::sync::Arc;

/// The values the sweep tries (today's default, 2, among them).
pub const MIN_SAMPLES_TRIED: [u32; 5] = [1, 2, 3, 4, 6];

/// The rule's cap, seconds: a person on screen this long is a person the figures must count
/// (a cameo), so the minimum may not ask for more samples than this many seconds hold.
pub const SHORTEST_COUNTED_S: f64 = 1.0;

/// The trailers of the labelled set at one minimum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MinSamplesRow {
    pub min_samples: u32,
    pub truth_persons: u32,
    /// Truth persons covered by at least one found person.
    pub covered: u32,
    pub found_persons: u32,
    /// Found persons covering no truth person.
    pub extras: u32,
    pub merges: u32,
    pub splits: u32,
    pub truth_seconds: f64,
    pub found_seconds: f64,
    /// Person-seconds of found persons whose gender is `unknown`.
    pub unknown_seconds: f64,
}

impl MinSamplesRow {
    /// Sum the outcomes of every trailer analysed at `min_samples`.
    pub fn new(min_samples: u32, outcomes: &[TrailerOutcome]) -> MinSamplesRow {
        let mut row = MinSamplesRow {
            min_samples,
            ..MinSamplesRow::default()
        };
        for o in outcomes {
            row.truth_seconds += o.truth_seconds.values().sum::<f64>();
            row.found_seconds += o.found_seconds.values().sum::<f64>();
            row.unknown_seconds += o.found_seconds.get(UNKNOWN).copied().unwrap_or(0.0);
            let Some(id) = &o.identity else { continue };
            row.add_identity(id);
        }
        row
    }

    fn add_identity(&mut self, id: &IdentityOutcome) {
        self.truth_persons += id.truth_persons;
        self.covered += id.truth_persons - id.misses.len() as u32;
        self.found_persons += id.found_persons;
        self.extras += id.extras.len() as u32;
        self.merges += id.merges.len() as u32;
        self.splits += id.splits.len() as u32;
    }
}

/// The most samples a minimum may ask for at `sample_rate`: those [`SHORTEST_COUNTED_S`] holds.
pub fn cap(sample_rate: f64) -> u32 {
    ((SHORTEST_COUNTED_S * sample_rate).floor() as u32).max(1)
}

/// The stated rule: among the values no higher than [`cap`] that cover as many truth persons as
/// the lowest value tried does (equal recall), the one with the fewest false persons, then the
/// fewest merges, then the highest. None without a row at the lowest value.
pub fn choose(rows: &[MinSamplesRow], sample_rate: f64) -> Option<u32> {
    let lowest = rows.iter().min_by_key(|r| r.min_samples)?;
    rows.iter()
        .filter(|r| r.min_samples <= cap(sample_rate) && r.covered >= lowest.covered)
        .min_by(|a, b| {
            (a.extras, a.merges)
                .cmp(&(b.extras, b.merges))
                .then(b.min_samples.cmp(&a.min_samples))
        })
        .map(|r| r.min_samples)
}

/// Every trailer of `truth` analysed at each value of [`MIN_SAMPLES_TRIED`], the other settings
/// the pipeline's.
pub async fn measure(
    pipeline: &Arc<crate::pipeline::Pipeline>,
    limits: &crate::config::Limits,
    truth: &Truth,
    base: &Path,
) -> anyhow::Result<Vec<MinSamplesRow>> {
    use crate::media::fetch::{FetchPolicy, Fetcher};
    let fetcher = Fetcher::new(FetchPolicy::cli(limits.clone()));
    // outcomes[k]: every trailer at MIN_SAMPLES_TRIED[k]. Each trailer is fetched (a private
    // copy of the video) once and analysed at every minimum from that copy.
    let mut outcomes: Vec<Vec<TrailerOutcome>> = vec![Vec::new(); MIN_SAMPLES_TRIED.len()];
    for (name, t) in &truth.trailers {
        let media = fetcher
            .fetch(&base.join(name).display().to_string())
            .await?;
        let p = Arc::clone(pipeline);
        let analyses = tokio::task::spawn_blocking(move || {
            MIN_SAMPLES_TRIED
                .iter()
                .map(|&n| {
                    let settings = crate::config::AnalysisSettings {
                        min_track_frames: n,
                        ..p.settings().clone()
                    };
                    p.analyze_with_settings(&media, &settings, false, &|_| {})
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await??;
        for (k, out) in analyses.into_iter().enumerate() {
            let Analysis::Trailer(analysis) = out.analysis else {
                anyhow::bail!("{name} was not analysed as a trailer");
            };
            outcomes[k].push(TrailerOutcome::new(name, t, &analysis, &out.sightings));
        }
        tracing::info!(media = %name, "minimum samples");
    }
    Ok(MIN_SAMPLES_TRIED
        .iter()
        .zip(&outcomes)
        .map(|(&n, o)| MinSamplesRow::new(n, o))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: u32, covered: u32, extras: u32, merges: u32) -> MinSamplesRow {
        MinSamplesRow {
            min_samples: n,
            truth_persons: 10,
            covered,
            extras,
            merges,
            ..MinSamplesRow::default()
        }
    }

    #[test]
    fn the_rule_keeps_recall_under_the_cap_and_takes_the_fewest_false_persons() {
        // 1 finds every person but keeps 3 flickers; 2 drops two of them; 3 drops the third,
        // but is above the cap at 2 samples a second; 4 loses a person.
        let rows = [
            row(1, 10, 3, 0),
            row(2, 10, 1, 0),
            row(3, 10, 0, 0),
            row(4, 9, 0, 0),
        ];
        assert_eq!(cap(2.0), 2);
        assert_eq!(choose(&rows, 2.0), Some(2));
        // At 3 samples a second the cap is 3, and 3 has no false person left.
        assert_eq!(choose(&rows, 3.0), Some(3));
        // A tie on false persons and merges goes to the highest value.
        let tie = [row(1, 10, 0, 0), row(2, 10, 0, 0)];
        assert_eq!(choose(&tie, 2.0), Some(2));
        // Fewer false persons never buys a lost person.
        let lossy = [row(1, 10, 2, 0), row(2, 9, 0, 0)];
        assert_eq!(choose(&lossy, 2.0), Some(1));
        assert_eq!(choose(&[], 2.0), None);
    }

    #[test]
    fn a_row_sums_identities_and_unknown_seconds_over_trailers() {
        let id = IdentityOutcome {
            media: "t.mp4".into(),
            truth_persons: 3,
            found_persons: 4,
            merges: vec![],
            splits: vec![("a".into(), vec![1, 2])],
            misses: vec!["c".into()],
            extras: vec![4],
        };
        let outcome = TrailerOutcome {
            media: "t.mp4".into(),
            truth_persons: Default::default(),
            found_persons: Default::default(),
            truth_seconds: [("female".to_string(), 4.0), ("male".to_string(), 6.0)].into(),
            found_seconds: [("female".to_string(), 3.5), (UNKNOWN.to_string(), 1.5)].into(),
            identity: Some(id),
        };
        let r = MinSamplesRow::new(2, &[outcome.clone(), outcome]);
        assert_eq!((r.truth_persons, r.covered, r.found_persons), (6, 4, 8));
        assert_eq!((r.extras, r.merges, r.splits), (2, 0, 2));
        assert_eq!(
            (r.truth_seconds, r.found_seconds, r.unknown_seconds),
            (20.0, 10.0, 3.0)
        );
    }
}
