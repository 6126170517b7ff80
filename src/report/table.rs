//! Plain-text tables for the terminal: one block per media file.

use crate::domain::{Interval, PosterAnalysis, TrailerAnalysis, UNKNOWN};
use std::fmt::Write;

/// Columns padded to their widest cell; the first row is the header.
pub struct TextTable {
    rows: Vec<Vec<String>>,
    right_aligned: Vec<bool>,
}

impl TextTable {
    pub fn new(header: &[&str]) -> Self {
        TextTable {
            rows: vec![header.iter().map(|s| s.to_string()).collect()],
            right_aligned: header.iter().enumerate().map(|(i, _)| i > 0).collect(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self, indent: &str) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::from(indent);
            for (c, width) in widths.iter().enumerate() {
                let cell = row.get(c).map(String::as_str).unwrap_or("");
                let pad = width - cell.chars().count();
                if self.right_aligned.get(c).copied().unwrap_or(true) {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                }
                line.push_str("  ");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

pub fn percent(x: f64) -> String {
    // + 0.0 turns -0.0 into 0.0 so that no "-0.0%" is printed.
    format!("{:.1}%", x * 100.0 + 0.0)
}

/// "41.0% [28.3–55.1]", or "–" when there is nothing to share.
pub fn share_with_interval(share: Option<f64>, interval: Option<Interval>) -> String {
    match (share, interval) {
        (Some(s), Some(i)) => format!(
            "{} [{:.1}–{:.1}]",
            percent(s),
            i.low * 100.0,
            i.high * 100.0
        ),
        (Some(s), None) => percent(s),
        _ => "–".to_string(),
    }
}

fn short_sha(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// The poster block: faces, then per-attribute statistics.
pub fn poster(analysis: &PosterAnalysis) -> String {
    let m = &analysis.media;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}  poster {}×{} {}  sha256 {}…  {} face(s)",
        m.source,
        m.width,
        m.height,
        m.format,
        short_sha(&m.content_sha256),
        analysis.faces.len()
    );
    if !analysis.faces.is_empty() {
        let mut t = TextTable::new(&[
            "#",
            "box (x,y w×h)",
            "px",
            "score",
            "gender",
            "P(female)",
            "age",
            "band",
        ]);
        for (i, f) in analysis.faces.iter().enumerate() {
            let g = f.attribute("gender");
            t.row(vec![
                (i + 1).to_string(),
                format!(
                    "{:.0},{:.0} {:.0}×{:.0}",
                    f.bbox.x, f.bbox.y, f.bbox.width, f.bbox.height
                ),
                format!("{:.0}", f.size_px),
                format!("{:.2}", f.detection_score),
                g.map(|g| match g.unknown_reason {
                    Some(reason) => format!(
                        "{UNKNOWN} ({})",
                        serde_json::to_value(reason)
                            .ok()
                            .and_then(|v| v.as_str().map(String::from))
                            .unwrap_or_default()
                    ),
                    None => format!("{} {:.0}%", g.label, g.confidence * 100.0),
                })
                .unwrap_or_else(|| UNKNOWN.to_string()),
                g.filter(|g| !g.probabilities.is_empty())
                    .map(|g| format!("{:.3}", g.probability("female")))
                    .unwrap_or_else(|| "–".into()),
                f.age
                    .as_ref()
                    .map(|a| format!("{:.0}", a.years))
                    .unwrap_or_else(|| "–".into()),
                f.age
                    .as_ref()
                    .map(|a| a.band.clone())
                    .unwrap_or_else(|| UNKNOWN.into()),
            ]);
        }
        out.push_str(&t.render("  "));
    }
    for stats in &analysis.statistics {
        let mut t = TextTable::new(&[
            &stats.attribute,
            "faces",
            "soft",
            "share [95% CI]",
            "area share [95% CI]",
            "largest",
            "upper ⅓",
            "centre ⅓",
        ]);
        for c in &stats.categories {
            t.row(vec![
                c.category.clone(),
                c.faces.to_string(),
                format!("{:.2}", c.soft_count),
                if c.category == UNKNOWN {
                    "–".into()
                } else {
                    share_with_interval(Some(c.share), c.share_interval)
                },
                if c.category == UNKNOWN {
                    percent(c.face_area_share)
                } else {
                    share_with_interval(Some(c.face_area_share_soft), c.face_area_share_interval)
                },
                if c.has_largest_face {
                    "yes".into()
                } else {
                    "".into()
                },
                c.faces_upper_third.to_string(),
                c.faces_central_third.to_string(),
            ]);
        }
        let _ = writeln!(
            out,
            "  {} of {} face(s) {} unknown",
            stats.attribute, stats.total_faces, stats.unknown
        );
        out.push_str(&t.render("    "));
    }
    out
}

/// The trailer block: what was analysed, the persons, then per-attribute statistics.
pub fn trailer(analysis: &TrailerAnalysis) -> String {
    let m = &analysis.media;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}  trailer {}×{} {}  sha256 {}…  {:.1} s analysed, {} frames at {}/s, {} shot cut(s), {} person(s)",
        m.source,
        m.width,
        m.height,
        m.format,
        short_sha(&m.content_sha256),
        analysis.analysed_duration_s,
        analysis.sampled_frames,
        analysis.sample_rate,
        analysis.shot_cuts_s.len(),
        analysis.persons.len()
    );
    let d = &analysis.decode;
    if d.corrupt_packets > 0 || d.truncated || d.capped || d.deadline_hit || !d.notes.is_empty() {
        let _ = writeln!(
            out,
            "  partial: {} corrupt packet(s) skipped{}{}{}{}",
            d.corrupt_packets,
            if d.truncated { ", file truncated" } else { "" },
            if d.capped {
                ", stopped at the duration/frame cap"
            } else {
                ""
            },
            if d.deadline_hit {
                ", stopped at the deadline"
            } else {
                ""
            },
            d.notes.iter().map(|n| format!("; {n}")).collect::<String>()
        );
    }
    if !analysis.persons.is_empty() {
        let mut t = TextTable::new(&[
            "person",
            "gender",
            "P(female)",
            "age band",
            "on screen",
            "first seen",
            "frames",
            "tracks",
        ]);
        for p in &analysis.persons {
            let g = p.attribute("gender");
            t.row(vec![
                format!("P{}", p.id),
                g.map(|g| {
                    if g.is_unknown() {
                        UNKNOWN.to_string()
                    } else {
                        format!("{} {:.0}%", g.label, g.confidence * 100.0)
                    }
                })
                .unwrap_or_else(|| UNKNOWN.into()),
                g.filter(|g| !g.probabilities.is_empty())
                    .map(|g| format!("{:.3}", g.probability("female")))
                    .unwrap_or_else(|| "–".into()),
                p.age
                    .as_ref()
                    .map(|a| a.band.clone())
                    .unwrap_or_else(|| UNKNOWN.into()),
                format!("{:.1} s", p.screen_time_s),
                format!("{:.1} s", p.first_seen_s),
                p.frames.to_string(),
                p.tracks.to_string(),
            ]);
        }
        out.push_str(&t.render("  "));
    }
    for stats in &analysis.statistics {
        let mut t = TextTable::new(&[
            &stats.attribute,
            "persons",
            "soft",
            "share [95% CI]",
            "screen time",
            "person-s",
            "frames",
            "prominence-s",
            "first seen",
        ]);
        for c in &stats.categories {
            t.row(vec![
                c.category.clone(),
                c.persons.to_string(),
                format!("{:.2}", c.soft_persons),
                if c.category == UNKNOWN {
                    "–".into()
                } else {
                    share_with_interval(Some(c.share), c.share_interval)
                },
                format!("{:.1} s", c.screen_time_s),
                format!("{:.1}", c.person_seconds + 0.0),
                percent(c.frame_share),
                format!("{:.2}", c.prominence_s + 0.0),
                c.first_appearance_s
                    .map(|t| format!("{t:.1} s"))
                    .unwrap_or_else(|| "–".into()),
            ]);
        }
        let _ = writeln!(
            out,
            "  {} of {} person(s) {} unknown",
            stats.attribute, stats.total_persons, stats.unknown_persons
        );
        out.push_str(&t.render("    "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let mut t = TextTable::new(&["name", "n"]);
        t.row(vec!["female".into(), "3".into()]);
        t.row(vec!["unknown".into(), "12".into()]);
        let text = t.render("");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "name      n");
        assert_eq!(lines[1], "female    3");
        assert_eq!(lines[2], "unknown  12");
    }

    #[test]
    fn share_shows_its_interval() {
        let s = share_with_interval(
            Some(0.41),
            Some(Interval {
                low: 0.283,
                high: 0.551,
            }),
        );
        assert_eq!(s, "41.0% [28.3–55.1]");
        assert_eq!(share_with_interval(None, None), "–");
    }
}

/// A share of perceived women over several files, with its interval.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SummaryShare {
    pub share: f64,
    pub interval: Interval,
    /// Faces or persons the share is computed over.
    pub items: u32,
    /// Files that contributed at least one item.
    pub files: usize,
    /// Faces or persons too small (or without probabilities) to count.
    pub too_small: u32,
}

/// Shares of perceived women over every input of a run. Each interval resamples the files (a
/// bootstrap over media, standing for films) and draws each item's label from its probability.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub files: usize,
    pub poster_faces: Option<SummaryShare>,
    pub trailer_persons: Option<SummaryShare>,
    pub trailer_screen_time: Option<SummaryShare>,
}

fn usable(a: Option<&crate::domain::AttributeEstimate>) -> bool {
    a.is_some_and(|a| {
        !a.probabilities.is_empty()
            && a.unknown_reason != Some(crate::domain::UnknownReason::FaceTooSmall)
    })
}

pub fn summarize(analyses: &[crate::domain::Analysis]) -> Summary {
    use crate::domain::Analysis;
    use crate::stats::interval::share_interval;
    let (mut poster_units, mut poster_excluded) = (Vec::new(), 0u32);
    let (mut trailer_units, mut trailer_weights, mut trailer_excluded) =
        (Vec::new(), Vec::new(), 0u32);
    let (mut any_poster, mut any_trailer) = (false, false);
    for a in analyses {
        match a {
            Analysis::Poster(p) => {
                any_poster = true;
                let (ok, ex): (Vec<_>, Vec<_>) =
                    p.faces.iter().partition(|f| usable(f.attribute("gender")));
                poster_excluded += ex.len() as u32;
                let ps: Vec<f64> = ok
                    .iter()
                    .map(|f| {
                        f64::from(
                            f.attribute("gender")
                                .map_or(0.0, |g| g.probability("female")),
                        )
                    })
                    .collect();
                if !ps.is_empty() {
                    poster_units.push(ps);
                }
            }
            Analysis::Trailer(t) => {
                any_trailer = true;
                let (ok, ex): (Vec<_>, Vec<_>) = t
                    .persons
                    .iter()
                    .partition(|p| usable(p.attribute("gender")));
                trailer_excluded += ex.len() as u32;
                let ps: Vec<f64> = ok
                    .iter()
                    .map(|p| {
                        f64::from(
                            p.attribute("gender")
                                .map_or(0.0, |g| g.probability("female")),
                        )
                    })
                    .collect();
                let ws: Vec<f64> = ok.iter().map(|p| p.screen_time_s).collect();
                if !ps.is_empty() {
                    trailer_units.push(ps);
                    trailer_weights.push(ws);
                }
            }
        }
    }
    let seed = crate::stats::INTERVAL_SEED;
    let share = |units: &[Vec<f64>], weights: Option<&[Vec<f64>]>, excluded: u32| {
        share_interval(units, weights, excluded, seed)
            .ok()
            .map(|e| SummaryShare {
                share: e.share,
                interval: e.interval(),
                items: e.n,
                files: units.len(),
                too_small: excluded,
            })
    };
    Summary {
        files: analyses.len(),
        poster_faces: if any_poster {
            share(&poster_units, None, poster_excluded)
        } else {
            None
        },
        trailer_persons: if any_trailer {
            share(&trailer_units, None, trailer_excluded)
        } else {
            None
        },
        trailer_screen_time: if any_trailer {
            share(&trailer_units, Some(&trailer_weights), trailer_excluded)
        } else {
            None
        },
    }
}

/// The summary block printed after the per-file tables.
pub fn summary(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "summary of {} analysed file(s): share of perceived women [95% CI]",
        s.files
    );
    for (what, share) in [
        ("among poster faces", &s.poster_faces),
        ("among trailer persons", &s.trailer_persons),
        (
            "of trailer screen time (person-seconds)",
            &s.trailer_screen_time,
        ),
    ] {
        if let Some(e) = share {
            let _ = writeln!(
                out,
                "  {what}: {} over {} in {} file(s); {} too small to count",
                share_with_interval(Some(e.share), Some(e.interval)),
                e.items,
                e.files,
                e.too_small
            );
        }
    }
    out
}
