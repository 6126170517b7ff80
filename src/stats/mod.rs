//! Representation statistics of posters and trailers, and the uncertainty they carry.

pub mod interval;
pub mod poster;
pub mod trailer;

use crate::domain::Interval;

/// Seed of the intervals' Monte Carlo: fixed so a media file's figures never change between runs.
pub const INTERVAL_SEED: u64 = 0x7265_6761_7264; // "regard"

/// The soft share Σ w·p / Σ w of the eligible items and, if asked, its 95% interval from their
/// classification uncertainty. 0 with no interval when nothing is eligible.
pub(crate) fn soft_share(
    p: Vec<f64>,
    weights: Option<Vec<f64>>,
    excluded: u32,
    with_interval: bool,
    context: (&str, &str),
) -> (f64, Option<Interval>) {
    let den: f64 = weights.as_ref().map_or(p.len() as f64, |w| w.iter().sum());
    if p.is_empty() || den <= 0.0 {
        return (0.0, None);
    }
    let num: f64 = match &weights {
        Some(w) => p.iter().zip(w).map(|(p, w)| p * w).sum(),
        None => p.iter().sum(),
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
