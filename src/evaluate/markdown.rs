//! The report in Markdown (EVALUATION.md): every table of a [`Report`], in a fixed order.

use super::calibration::{CALIBRATION_SOURCE_MIN_PX, CalibrationReport, SizeCell};
use super::detection::{AgainstReference, DETECTION_RULE_MIN_PX, DetectionRow};
use super::floor::{FLOOR_GENDER_MIN_PX, FLOOR_RECALL_MIN_PX};
use super::identity::{IDENTITY_IOU, IdentityOutcome, MIN_COVER_SIGHTINGS};
use super::matching::MATCH_IOU;
use super::opinions::SourceRow;
use super::poster::{BucketCounts, GENDER_ERRORS_MIN_PX};
use super::render::{CANVAS_GAP, CANVAS_SIDE, CROP_FACE_HEIGHTS};
use super::report::{DETECTION_REFERENCE, FloorSection, Report, Sweep, TrailerTable};
use super::robustness::{
    CONDITIONS, CUT_FACE_HEIGHTS, Condition, POSTER_HEIGHT, POSTER_WIDTH, ROBUSTNESS_HEIGHTS,
    ROBUSTNESS_SOURCE_MIN_PX, RobustnessTable,
};
use crate::config::AnalysisSettings;
use std::fmt::Write;

fn ratio(num: u32, den: u32) -> String {
    if den == 0 {
        "–".into()
    } else {
        format!("{:.1}%", 100.0 * num as f64 / den as f64)
    }
}

fn percent(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), |v| format!("{:.1}%", 100.0 * v))
}

fn two_places(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_string(), |v| format!("{v:.2}"))
}

/// A Markdown table: the header row, the rule, one line per row.
fn table<R: AsRef<str>>(
    out: &mut String,
    header: &[R],
    rows: impl IntoIterator<Item = Vec<String>>,
) {
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        out.push('|');
        for c in cells {
            let _ = write!(out, " {c} |");
        }
        out.push('\n');
    };
    line(out, &mut header.iter().map(AsRef::as_ref));
    out.push('|');
    for _ in header {
        out.push_str("---|");
    }
    out.push('\n');
    for row in rows {
        line(out, &mut row.iter().map(String::as_str));
    }
}

/// A table with one column per confidence threshold.
fn grid<T>(
    out: &mut String,
    corner: &str,
    confidences: &[f32],
    rows: impl IntoIterator<Item = (String, T)>,
    cell: impl Fn(&T, usize) -> String,
) {
    let header: Vec<String> = std::iter::once(corner.to_string())
        .chain(confidences.iter().map(f32::to_string))
        .collect();
    let rows = rows.into_iter().map(|(label, values)| {
        std::iter::once(label)
            .chain((0..confidences.len()).map(|i| cell(&values, i)))
            .collect()
    });
    table(out, &header, rows);
}

/// The whole report.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    header(&mut out, report);
    posters(&mut out, report);
    models(&mut out, report);
    detection(&mut out, report);
    if let Some(trailers) = &report.trailers {
        trailer_table(&mut out, trailers);
    }
    min_samples(&mut out, report);
    robustness(&mut out, report);
    if !report.failures.is_empty() {
        let _ = writeln!(out, "### Inputs that failed\n");
        for (media, error) in &report.failures {
            let _ = writeln!(out, "- {media}: {error}");
        }
        out.push('\n');
    }
    sweep(&mut out, &report.sweep);
    out.push('\n');
    calibration(&mut out, &report.calibration, &report.settings);
    if let Some(floor) = &report.floor {
        floor_table(&mut out, floor);
    }
    out
}

fn header(out: &mut String, report: &Report) {
    let prov = &report.provenance;
    let _ = writeln!(out, "# Evaluation\n");
    let _ = writeln!(
        out,
        "Produced by `{}` on {} (regard {}, algorithm version {}).\n",
        report.invocation,
        report.date.format("%Y-%m-%d"),
        prov.pipeline_version,
        prov.algorithm_version
    );
    let _ = writeln!(out, "Models:\n");
    for m in &prov.models {
        let _ = writeln!(
            out,
            "- {} ({}): `{}` sha256 `{}`",
            m.name, m.role, m.file, m.sha256
        );
    }
    let _ = writeln!(
        out,
        "- ONNX Runtime library sha256 `{}`\n",
        prov.runtime_sha256
    );
    let l = &report.labelled;
    let _ = writeln!(
        out,
        "Labelled set: calibration part {} images with {} faces and {} trailers; held-out part {} images with {} faces (fixtures/evaluation-method.md). The detection, gender, model and CI floor tables are measured on the **{}** part; the thresholds are chosen on the calibration part. Faces are matched to truth boxes one-to-one by IoU ≥ {MATCH_IOU}.\n",
        l.images, l.faces, l.trailers, l.held_out_images, l.held_out_faces, report.part
    );
}

fn posters(out: &mut String, report: &Report) {
    let _ = writeln!(out, "### Detection by face height ({} part)\n", report.part);
    bucket_table(
        out,
        report,
        &[
            ("truth faces", &|b| b.truth_faces.to_string()),
            ("found", &|b| b.found.to_string()),
            ("recall", &|b| ratio(b.found, b.truth_faces)),
            ("false positives", &|b| b.false_positives.to_string()),
        ],
    );
    let _ = writeln!(
        out,
        "\n### Perceived gender by face height ({} part; min confidence {}, min reliable size {} px)\n",
        report.part, report.settings.min_attribute_confidence, report.settings.min_reliable_face_px
    );
    bucket_table(
        out,
        report,
        &[
            ("found faces", &|b| b.found.to_string()),
            ("correct", &|b| b.correct.to_string()),
            ("wrong", &|b| b.wrong.to_string()),
            ("unknown", &|b| b.unknown.to_string()),
            ("accuracy of decided", &|b| {
                ratio(b.correct, b.correct + b.wrong)
            }),
            ("unknown rate", &|b| ratio(b.unknown, b.found)),
        ],
    );
    let _ = writeln!(
        out,
        "\n### Errors for women and for men ({} part; found faces of {GENDER_ERRORS_MIN_PX} px and more)\n",
        report.part
    );
    table(
        out,
        &[
            "truth",
            "found faces",
            "labelled the other gender",
            "unknown",
        ],
        report.by_gender.iter().map(|(gender, e)| {
            vec![
                gender.to_string(),
                e.faces.to_string(),
                format!("{} ({})", ratio(e.wrong, e.faces), e.wrong),
                format!("{} ({})", ratio(e.unknown, e.faces), e.unknown),
            ]
        }),
    );
    let _ = writeln!(
        out,
        "\nBias figure (error rate for women minus error rate for men): {}\n",
        report.bias().map_or_else(
            || "–".to_string(),
            |gap| format!("{:+.1} points", gap * 100.0)
        )
    );
}

fn source_table(out: &mut String, rows: &[SourceRow]) {
    table(
        out,
        &[
            "gender from",
            "found faces",
            "decided",
            "accuracy of decided",
            "confidently wrong",
            "unknown rate",
            "women labelled men",
            "men labelled women",
        ],
        rows.iter().map(|r| {
            vec![
                r.source.clone(),
                r.faces.to_string(),
                r.decided.to_string(),
                ratio(r.correct, r.decided),
                r.wrong.to_string(),
                ratio(r.unknown, r.faces),
                format!(
                    "{} ({} of {})",
                    ratio(r.women.wrong, r.women.faces),
                    r.women.wrong,
                    r.women.faces
                ),
                format!(
                    "{} ({} of {})",
                    ratio(r.men.wrong, r.men.faces),
                    r.men.wrong,
                    r.men.faces
                ),
            ]
        }),
    );
}

fn age_groups(out: &mut String, report: &Report) {
    if report.age_groups.is_empty() {
        return;
    }
    let s = &report.settings;
    let edge = s.age_band_edges.first().copied().unwrap_or(18);
    let _ = writeln!(
        out,
        "\n### The 0-{} band: minors and adults ({} part, found faces of {} px and more)\n",
        edge - 1,
        report.part,
        s.min_reliable_face_px
    );
    let _ = writeln!(
        out,
        "Faces a coder can tell by eye are a child or a teenager (minor) or an adult are labelled so; the others are left out (the labelled set has no ages in years). Each age model's estimate, and the age regard reports (face-api's when it is under {} years, `second_opinion_age_below`, the age model's otherwise), is counted as under {edge} or not.\n",
        s.second_opinion_age_below
    );
    let (minors_under, adults_under) = (
        format!("minors under {edge}"),
        format!("adults under {edge}"),
    );
    table(
        out,
        &["age from", "minors", &minors_under, "adults", &adults_under],
        report.age_groups.iter().map(|r| {
            vec![
                r.estimator.clone(),
                r.found[0].to_string(),
                format!("{} ({})", ratio(r.under[0], r.found[0]), r.under[0]),
                r.found[1].to_string(),
                format!("{} ({})", ratio(r.under[1], r.found[1]), r.under[1]),
            ]
        }),
    );
}

fn models(out: &mut String, report: &Report) {
    let s = &report.settings;
    let _ = writeln!(
        out,
        "### Perceived gender: each model alone and their combination ({} part, found faces of every size)\n",
        report.part
    );
    let _ = writeln!(
        out,
        "The same found faces, decided at min confidence {} and min reliable size {} px; the combination is the mean of the models' probabilities, `unknown` when two models' probabilities of one label differ by more than {} (max_model_disagreement). Confidently wrong: decided, and not the truth.\n",
        s.min_attribute_confidence, s.min_reliable_face_px, s.max_model_disagreement
    );
    source_table(out, &report.models);
    if let Some(rows) = &report.calibration_models {
        let _ = writeln!(
            out,
            "\nThe same on the calibration part's labelled faces:\n"
        );
        source_table(out, rows);
    }
    age_groups(out, report);
    let m = &report.margin;
    let _ = writeln!(
        out,
        "\n### Disagreement margin: chosen on the calibration renders (rendered {} px and more)\n",
        s.min_reliable_face_px
    );
    let _ = writeln!(
        out,
        "Rule (stated before measuring, fixtures/evaluation-method.md): among the margins tried, keep those at which the combination has no more confidently wrong renders than the better model alone; take the one with the fewest confidently wrong, the largest on a tie (fewest `unknown`).\n"
    );
    source_table(out, &m.singles);
    out.push('\n');
    table(
        out,
        &[
            "margin",
            "decided",
            "confidently wrong",
            "unknown rate",
            "women labelled men",
            "men labelled women",
        ],
        m.rows.iter().map(|(margin, r)| {
            vec![
                margin.to_string(),
                r.decided.to_string(),
                r.wrong.to_string(),
                ratio(r.unknown, r.faces),
                r.women.wrong.to_string(),
                r.men.wrong.to_string(),
            ]
        }),
    );
    let _ = writeln!(
        out,
        "\nThe rule chooses: {}; in use: {}{}.\n",
        m.chosen.map_or_else(
            || "– (no face with two opinions)".to_string(),
            |c| c.to_string()
        ),
        s.max_model_disagreement,
        match m.chosen {
            Some(c) if c == s.max_model_disagreement => " (the rule's choice)",
            Some(_) => " (NOT the rule's choice)",
            None => "",
        }
    );
}

fn detection_table(out: &mut String, rows: &[DetectionRow]) {
    let mut header = vec!["detection threshold".to_string()];
    if let Some(first) = rows.first() {
        for (name, _) in &first.buckets {
            header.push(format!("{name} px: found / truth"));
            header.push(format!("{name} px: false faces"));
        }
    }
    header.push(format!("found of {DETECTION_RULE_MIN_PX} px and more"));
    header.push("false faces per image".to_string());
    table(
        out,
        &header,
        rows.iter().map(|r| {
            let mut cells = vec![r.threshold.to_string()];
            for (_, c) in &r.buckets {
                cells.push(format!("{} / {}", c.found, c.truth_faces));
                cells.push(c.false_faces.to_string());
            }
            cells.push(format!("{} / {}", r.found_rule, r.truth_rule));
            cells.push(two_places(r.false_per_image()));
            cells
        }),
    );
}

fn detection(out: &mut String, report: &Report) {
    let s = &report.settings;
    let _ = writeln!(
        out,
        "### Detection threshold: recall and false faces per face height (calibration part)\n"
    );
    let _ = writeln!(
        out,
        "Rule (stated before measuring, fixtures/evaluation-method.md): the highest threshold that finds as many truth faces of {DETECTION_RULE_MIN_PX} px and more as {DETECTION_REFERENCE} (the threshold before the rule) does: equal recall, fewest false faces. A false face is a box matching no truth face.\n"
    );
    detection_table(out, &report.detection);
    if let Some(a) = &report.detection_against {
        let _ = writeln!(out, "\n{}", against_reference(a));
    }
    let _ = writeln!(
        out,
        "\nThe rule chooses: {}; in use: {}{}.\n",
        report
            .detection_choice
            .map_or_else(|| "–".to_string(), |c| c.to_string()),
        s.detection_score_threshold,
        match report.detection_choice {
            Some(c) if c == s.detection_score_threshold => " (the rule's choice)",
            Some(_) => " (NOT the rule's choice)",
            None => "",
        }
    );
    if !report.held_out_detection.is_empty() {
        let _ = writeln!(out, "The same thresholds on the held-out part:\n");
        detection_table(out, &report.held_out_detection);
        if let Some(a) = &report.held_out_detection_against {
            let _ = writeln!(out, "\n{}", against_reference(a));
        }
        out.push('\n');
    }
}

/// The line under a detection table: false faces per labelled image and recall at the
/// reference threshold and at the one in use, as issue 13's acceptance states the claim.
fn against_reference(a: &AgainstReference) -> String {
    let (r, u) = (&a.reference, &a.in_use);
    let ratio = match a.ratio() {
        Some(x) => format!("ratio {x:.2}"),
        None => format!("no false face at {}: no ratio", r.threshold),
    };
    format!(
        "False faces per labelled image ({} images): {} → {}, {} → {} ({ratio}); found of {DETECTION_RULE_MIN_PX} px and more: {} / {} at {}, {} / {} at {} ({}).",
        r.images,
        r.threshold,
        two_places(r.false_per_image()),
        u.threshold,
        two_places(u.false_per_image()),
        r.found_rule,
        r.truth_rule,
        r.threshold,
        u.found_rule,
        u.truth_rule,
        u.threshold,
        if a.equal_recall() {
            "equal recall"
        } else {
            "FEWER found in use"
        }
    )
}

/// A column of a bucket table: its header and what it shows of a bucket.
type BucketColumn<'a> = (&'a str, &'a dyn Fn(&BucketCounts) -> String);

/// A table with one row per face-height bucket and the given columns.
fn bucket_table(out: &mut String, report: &Report, columns: &[BucketColumn]) {
    let header: Vec<&str> = std::iter::once("face height")
        .chain(columns.iter().map(|c| c.0))
        .collect();
    let rows = report.by_size.iter().map(|(name, b)| {
        std::iter::once(format!("{name} px"))
            .chain(columns.iter().map(|c| (c.1)(b)))
            .collect()
    });
    table(out, &header, rows);
}

fn trailer_table(out: &mut String, trailers: &TrailerTable) {
    let _ = writeln!(out, "### Trailers\n");
    table(
        out,
        &[
            "trailer",
            "gender",
            "persons (truth)",
            "persons (found)",
            "distinct-persons error (found − truth)",
            "person-seconds (truth)",
            "person-seconds (found)",
            "screen-time error",
        ],
        trailers.rows.iter().map(|r| {
            vec![
                r.media.clone(),
                r.gender.clone(),
                r.truth_persons.to_string(),
                r.found_persons.to_string(),
                format!("{:+}", r.person_error()),
                format!("{:.1}", r.truth_seconds),
                format!("{:.1}", r.found_seconds),
                r.screen_time_error_pct()
                    .map_or_else(|| "–".into(), |e| format!("{e:+.1}%")),
            ]
        }),
    );
    let summary: Vec<String> = trailers
        .person_errors
        .iter()
        .map(|(g, e)| format!("{g} {e:+}"))
        .collect();
    let _ = writeln!(
        out,
        "\nDistinct-persons error over all trailers (found − truth, per gender): {}.",
        summary.join(", ")
    );
    out.push('\n');
    if !trailers.identities.is_empty() {
        identity_table(out, &trailers.identities);
    }
}

fn min_samples(out: &mut String, report: &Report) {
    use super::min_samples::{SHORTEST_COUNTED_S, cap};
    if report.min_samples.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "### Minimum samples of a trailer person (calibration trailers)\n"
    );
    let _ = writeln!(
        out,
        "Rule (stated before measuring, fixtures/evaluation-method.md): a track seen in fewer sampled frames than the minimum is dropped. Among the minimums of at most {} samples (the samples of {SHORTEST_COUNTED_S} s at {} per second: a person on screen that long is counted) that cover as many truth persons as the lowest minimum tried, the one with the fewest false persons (found persons covering no truth person), then the fewest merges, then the highest. Persons are matched to the truth as in the table above.\n",
        cap(report.settings.sample_rate),
        report.settings.sample_rate,
    );
    table(
        out,
        &[
            "min samples",
            "truth persons covered",
            "persons found",
            "false persons",
            "merges",
            "splits",
            "person-seconds (truth)",
            "person-seconds (found)",
            "of them unknown",
        ],
        report.min_samples.iter().map(|r| {
            vec![
                r.min_samples.to_string(),
                format!("{} / {}", r.covered, r.truth_persons),
                r.found_persons.to_string(),
                r.extras.to_string(),
                r.merges.to_string(),
                r.splits.to_string(),
                format!("{:.1}", r.truth_seconds),
                format!("{:.1}", r.found_seconds),
                format!("{:.1}", r.unknown_seconds),
            ]
        }),
    );
    let chosen = report
        .min_samples_choice
        .map_or_else(|| "none".to_string(), |n| n.to_string());
    let in_use = report.settings.min_track_frames;
    let verdict = if report.min_samples_choice == Some(in_use) {
        "the rule's choice"
    } else {
        "DIFFERENT from the rule's choice"
    };
    let _ = writeln!(
        out,
        "\nThe rule chooses: {chosen}; in use: {in_use} ({verdict}).\n"
    );
}

fn identity_table(out: &mut String, identities: &[IdentityOutcome]) {
    let _ = writeln!(
        out,
        "### Trailer persons: merges, splits and misses
"
    );
    let _ = writeln!(
        out,
        "Each face regard gives a person on a sampled frame counts for the truth person whose box in that shot (interpolated between its first and last frame) overlaps it most, at IoU ≥ {IDENTITY_IOU}; a found person covers a truth person with at least {MIN_COVER_SIGHTINGS} such faces. A merge is a found person covering two or more truth persons, a split a truth person covered by two or more found persons, a miss a truth person covered by nobody, an extra a found person covering nobody (`src/evaluate/identity.rs`).\n"
    );
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "–".to_string()
        } else {
            items.join("; ")
        }
    };
    table(
        out,
        &[
            "trailer",
            "persons (truth)",
            "persons (found)",
            "merges",
            "splits",
            "misses",
            "extras",
            "which",
        ],
        identities.iter().map(|o| {
            let which = o
                .merges
                .iter()
                .map(|(f, t)| format!("P{f} merges {}", t.join("+")))
                .chain(o.splits.iter().map(|(t, f)| {
                    let ids: Vec<String> = f.iter().map(|i| format!("P{i}")).collect();
                    format!("{t} split into {}", ids.join("+"))
                }))
                .chain(o.misses.iter().map(|t| format!("{t} missed")))
                .collect();
            vec![
                o.media.clone(),
                o.truth_persons.to_string(),
                o.found_persons.to_string(),
                o.merges.len().to_string(),
                o.splits.len().to_string(),
                o.misses.len().to_string(),
                o.extras.len().to_string(),
                list(which),
            ]
        }),
    );
    out.push('\n');
}

fn robustness(out: &mut String, report: &Report) {
    let Some(first) = report.robustness.first() else {
        return;
    };
    let s = &report.settings;
    let _ = writeln!(
        out,
        "### Robustness: poster-like conditions ({} part first, then calibration part)\n",
        first.part
    );
    let _ = writeln!(
        out,
        "Each truth face of {ROBUSTNESS_SOURCE_MIN_PX} px and more (so that every render is a downscale) is cut out ({CUT_FACE_HEIGHTS} face heights square, other faces greyed), put under each condition below, downscaled by area averaging so that the face is each height of the table tall, and laid out apart from the others on {POSTER_WIDTH}×{POSTER_HEIGHT} neutral grey posters (one condition and one height per poster). Each poster is written as a PNG file and analysed as `regard analyze` analyses a poster: the detector's view plan for that size, detection threshold {}, min face {} px, the combined gender decision at min confidence {}, min reliable size {} px and max disagreement {}. A face is found when a reported face overlaps its box by IoU ≥ {MATCH_IOU}; a false face is a reported face that overlaps none. Accuracy is among found faces given a gender; the unknown rate is among found faces. Seeds are fixed: the same models give the same tables.\n",
        s.detection_score_threshold,
        s.min_face_px,
        s.min_attribute_confidence,
        s.min_reliable_face_px,
        s.max_model_disagreement,
    );
    let _ = writeln!(
        out,
        "Conditions (the profile row renders only the faces labelled in profile, so it holds fewer faces than the others and is compared with nothing):\n"
    );
    for c in CONDITIONS {
        let _ = writeln!(out, "- {}: {}", c.name(), c.describe());
    }
    out.push('\n');
    for t in &report.robustness {
        robustness_table(out, t);
        how_to_read(out, t);
    }
    let _ = writeln!(
        out,
        "On which posters the figures hold: the detection and gender figures of this report hold for posters like the clean rows; on a poster like a condition, for faces at least as tall as the height from which that condition keeps the clean figures, and below it expect the missed faces, the `unknown` rate and the wrong labels of its rows. Keeping the clean figures speaks of recall and wrong labels only: where a condition leaves more faces `unknown` than clean, the shares rest on fewer faces, and its unknown rate says how many fewer. Each poster here holds one condition at full strength over sharp, mostly frontal, well-lit photographs: a real poster combines several, so its figures are at best those of its worst condition.\n"
    );
}

fn robustness_table(out: &mut String, t: &RobustnessTable) {
    let _ = writeln!(
        out,
        "Robustness, {} part: {} faces ({} of women) of {} distinct people ({} women), {} posters.\n",
        t.part, t.sources, t.sources_of_women, t.people, t.women, t.canvases
    );
    table(
        out,
        &[
            "condition",
            "face height",
            "faces",
            "found",
            "recall",
            "decided",
            "correct",
            "accuracy of decided",
            "unknown rate",
            "false faces",
        ],
        t.cells.iter().map(|(c, h, cell)| {
            vec![
                c.name(),
                format!("{h} px"),
                cell.faces.to_string(),
                cell.found.to_string(),
                ratio(cell.found, cell.faces),
                cell.decided.to_string(),
                cell.correct.to_string(),
                ratio(cell.correct, cell.decided),
                ratio(cell.unknown, cell.found),
                cell.false_faces.to_string(),
            ]
        }),
    );
    out.push('\n');
}

/// The smallest height of the table from which, at every height up, `condition` finds as many
/// faces as clean and gives no more wrong labels: where the clean figures hold under it.
pub fn holds_from(t: &RobustnessTable, condition: Condition) -> Option<u32> {
    let mut from = None;
    for &h in ROBUSTNESS_HEIGHTS.iter().rev() {
        let (Some(c), Some(clean)) = (t.cell(condition, h), t.cell(Condition::Clean, h)) else {
            break;
        };
        if c.found < clean.found || c.wrong() > clean.wrong() || c.faces == 0 {
            break;
        }
        from = Some(h);
    }
    from
}

fn how_to_read(out: &mut String, t: &RobustnessTable) {
    let clean: Vec<String> = ROBUSTNESS_HEIGHTS
        .iter()
        .filter_map(|&h| {
            let c = t.cell(Condition::Clean, h)?;
            Some(format!(
                "{h} px: {} of {} found, {} of {} decided right, {} unknown",
                c.found,
                c.faces,
                c.correct,
                c.decided,
                ratio(c.unknown, c.found)
            ))
        })
        .collect();
    let holds: Vec<String> = CONDITIONS
        .iter()
        .skip(1)
        .filter(|&&c| c != Condition::Profile)
        .map(|&c| {
            let from = holds_from(t, c).map_or_else(
                || "at none of the heights".to_string(),
                |h| format!("from {h} px"),
            );
            format!("{} {from}", c.name())
        })
        .collect();
    let profile: Vec<String> = ROBUSTNESS_HEIGHTS
        .iter()
        .filter_map(|&h| {
            let c = t.cell(Condition::Profile, h).filter(|c| c.faces > 0)?;
            Some(format!(
                "{h} px: {} of {} found, {} of {} decided right",
                c.found, c.faces, c.correct, c.decided
            ))
        })
        .collect();
    let profile = if profile.is_empty() {
        "This part has no face labelled in profile.".to_string()
    } else {
        format!(
            "Faces labelled in profile, on their own: {}.",
            profile.join("; ")
        )
    };
    let _ = writeln!(
        out,
        "How to read it ({} part): the clean rows are the reference, the same faces with nothing done to them ({}). A condition keeps the clean figures (as many faces found, no more wrong labels) {}. {profile}\n",
        t.part,
        clean.join("; "),
        holds.join(", ")
    );
}

fn sweep(out: &mut String, sweep: &Sweep) {
    let _ = writeln!(
        out,
        "### Calibration sweep: accuracy of decided faces / share of found faces decided\n"
    );
    grid(
        out,
        "min reliable px \\ min confidence",
        &sweep.confidences,
        sweep.rows.iter().map(|(px, row)| (px.to_string(), row)),
        |row, i| {
            let d = row[i];
            format!(
                "{} / {}",
                ratio(d.correct, d.decided),
                ratio(d.decided, d.found)
            )
        },
    );
}

fn calibration(out: &mut String, cal: &CalibrationReport, settings: &AnalysisSettings) {
    let _ = writeln!(out, "### Face-size calibration\n");
    let _ = writeln!(
        out,
        "Sources: the {} truth faces of {CALIBRATION_SOURCE_MIN_PX} px and more ({} of women), {} distinct people ({} women, {} men). Each is cut out ({CROP_FACE_HEIGHTS} face heights square, other faces greyed), downscaled by area averaging so that the face is each height below tall, as is and mirrored ({} renders in all), packed {CANVAS_GAP} px apart on neutral grey {CANVAS_SIDE}×{CANVAS_SIDE} canvases, and run through the detector (score ≥ {}, every size looked for) and the attribute models (mirror averaging {}). A render counts as detected when a detection overlaps its box by IoU ≥ {MATCH_IOU}. The pipeline itself does not report faces below min_face_px = {} px.\n",
        cal.sources,
        cal.sources_of_women,
        cal.people,
        cal.women,
        cal.people - cal.women,
        cal.renders,
        settings.detection_score_threshold,
        if settings.mirror_average { "on" } else { "off" },
        settings.min_face_px,
    );
    table(
        out,
        &[
            "face height",
            "renders",
            "detected",
            "mean detected height",
            "mean P(true gender) women",
            "mean P(true gender) men",
            "lowest P(true gender) women",
            "lowest P(true gender) men",
        ],
        cal.by_height.iter().map(|r| {
            vec![
                format!("{} px", r.height_px),
                r.renders.to_string(),
                format!("{} ({})", r.detected, ratio(r.detected, r.renders)),
                r.mean_detected_px
                    .map_or_else(|| "–".to_string(), |v| format!("{v:.1} px")),
                two_places(r.mean_p_true_women),
                two_places(r.mean_p_true_men),
                two_places(r.lowest_p_true_women),
                two_places(r.lowest_p_true_men),
            ]
        }),
    );
    let cell_grid = |out: &mut String, title: &str, cell: &dyn Fn(&SizeCell) -> String| {
        let _ = writeln!(out, "\n{title}\n");
        grid(
            out,
            "face height \\ min confidence",
            &cal.confidences,
            cal.cells.iter().map(|(h, row)| (format!("{h} px"), row)),
            |row, i| cell(&row[i]),
        );
    };
    cell_grid(
        out,
        "Accuracy of decided labels / share of detected renders decided, by rendered face height and confidence threshold:",
        &|c| {
            format!(
                "{} / {}",
                percent(c.accuracy()),
                ratio(c.decided, c.detected)
            )
        },
    );
    cell_grid(
        out,
        "Error rate for women / error rate for men (detected women labelled male / detected men labelled female):",
        &|c| format!("{} / {}", percent(c.women_error()), percent(c.men_error())),
    );
    let rule = cal.rule;
    let _ = writeln!(
        out,
        "\nRule: a size and a confidence threshold are acceptable together when, at every rendered height from that size up, the decided labels are at least {:.0}% right and the error rates for women and for men differ by at most {:.0} points. min_reliable_face_px is the smallest rendered height with an acceptable threshold; min_attribute_confidence is, among the thresholds acceptable at that height, the one that decides the most renders of that height (the lowest on a tie).\n",
        rule.min_accuracy * 100.0,
        rule.max_gender_gap * 100.0
    );
    match cal.choice {
        Some(choice) => {
            let agrees = choice.min_reliable_face_px as f32 == settings.min_reliable_face_px
                && choice.min_attribute_confidence == settings.min_attribute_confidence;
            let _ = writeln!(
                out,
                "Chosen by the rule: min_reliable_face_px = {}, min_attribute_confidence = {}. In use for this evaluation: {} and {} ({}).\n",
                choice.min_reliable_face_px,
                choice.min_attribute_confidence,
                settings.min_reliable_face_px,
                settings.min_attribute_confidence,
                if agrees {
                    "the same"
                } else {
                    "DIFFERENT from the rule's choice"
                }
            );
        }
        None => {
            let _ = writeln!(
                out,
                "No rendered height meets the rule at any threshold: the thresholds in use ({} px, {}) are not supported by this calibration.\n",
                settings.min_reliable_face_px, settings.min_attribute_confidence
            );
        }
    }
}

fn floor_table(out: &mut String, floor: &FloorSection) {
    let check = &floor.check;
    let _ = writeln!(out, "### CI floor ({})\n", floor.source);
    table(
        out,
        &["figure", "today", "floor"],
        [
            vec![
                format!(
                    "accuracy of decided gender labels, found faces of {FLOOR_GENDER_MIN_PX} px and more"
                ),
                percent(check.gender_accuracy_40px),
                percent(Some(check.floor.min_gender_accuracy_40px)),
            ],
            vec![
                format!("detection recall, faces of {FLOOR_RECALL_MIN_PX} px and more"),
                percent(check.recall_32px),
                percent(Some(check.floor.min_recall_32px)),
            ],
        ],
    );
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Provenance;
    use crate::evaluate::poster::tests::outcome;
    use crate::evaluate::{Evaluation, IdentityOutcome, LabelledSet, TrailerOutcome};

    /// A robustness table with every cell: clean finds all 4 faces at every height; blur misses
    /// one at 25 px; halftone gives a wrong label at 80 px.
    fn robustness_table_fixture() -> RobustnessTable {
        use crate::evaluate::RobustnessCell;
        let cells = CONDITIONS
            .iter()
            .flat_map(|&c| {
                ROBUSTNESS_HEIGHTS.iter().map(move |&h| {
                    let mut cell = RobustnessCell {
                        faces: 4,
                        found: 4,
                        decided: 4,
                        correct: 4,
                        unknown: 0,
                        false_faces: 0,
                    };
                    if c == Condition::Blur && h == 25 {
                        cell.found = 3;
                        cell.decided = 2;
                        cell.correct = 2;
                        cell.unknown = 1;
                    }
                    if c == Condition::Halftone && h == 80 {
                        cell.correct = 3;
                        cell.false_faces = 2;
                    }
                    (c, h, cell)
                })
            })
            .collect();
        RobustnessTable {
            part: "calibration",
            sources: 4,
            sources_of_women: 2,
            people: 3,
            women: 1,
            canvases: 27,
            cells,
        }
    }

    #[test]
    fn the_robustness_table_has_a_row_per_condition_and_height_and_says_where_figures_hold() {
        let md = markdown(&report());
        for c in CONDITIONS {
            for h in ROBUSTNESS_HEIGHTS {
                let row = format!("| {} | {h} px | 4 |", c.name());
                assert_eq!(md.matches(&row).count(), 1, "{row} in\n{md}");
            }
        }
        for expected in [
            "| blur | 25 px | 4 | 3 | 75.0% | 2 | 2 | 100.0% | 33.3% | 0 |\n",
            "| halftone | 80 px | 4 | 4 | 100.0% | 4 | 3 | 75.0% | 0.0% | 2 |\n",
            "blur from 40 px,",
            "halftone at none of the heights,",
            "duotone from 25 px,",
            "Robustness, calibration part: 4 faces (2 of women) of 3 distinct people (1 women), 27 posters.",
        ] {
            assert!(md.contains(expected), "missing {expected:?} in\n{md}");
        }
    }

    #[test]
    fn under_each_detection_table_false_faces_per_image_and_recall_at_the_reference_and_in_use() {
        use crate::evaluate::detection::{DetectionImage, sweep};
        use crate::evaluate::matching::b;
        let portrait = DetectionImage {
            media: "p.jpg".into(),
            truth: vec![b(0.0, 0.0, 60.0, 80.0)],
            found: vec![
                (b(0.0, 0.0, 60.0, 80.0), 0.9),
                (b(200.0, 0.0, 30.0, 30.0), 0.65),
            ],
        };
        // An image without faces: two background boxes, one kept at 0.7.
        let wall = DetectionImage {
            media: "wall.png".into(),
            truth: vec![],
            found: vec![
                (b(0.0, 0.0, 40.0, 40.0), 0.62),
                (b(90.0, 0.0, 40.0, 40.0), 0.74),
            ],
        };
        let mut r = report();
        let in_use = r.settings.detection_score_threshold;
        assert_eq!(
            in_use, 0.7,
            "the line below is written for the default threshold"
        );
        r.detection = sweep(std::slice::from_ref(&portrait));
        r.detection_against = Some(AgainstReference::new(
            std::slice::from_ref(&portrait),
            0.6,
            in_use,
        ));
        r.held_out_detection = sweep(&[portrait.clone(), wall.clone()]);
        r.held_out_detection_against = Some(AgainstReference::new(&[portrait, wall], 0.6, in_use));
        let md = markdown(&r);
        let calibration = "False faces per labelled image (1 images): 0.6 → 1.00, 0.7 → 0.00 (ratio 0.00); found of 20 px and more: 1 / 1 at 0.6, 1 / 1 at 0.7 (equal recall).";
        let held_out = "False faces per labelled image (2 images): 0.6 → 1.50, 0.7 → 0.50 (ratio 0.33); found of 20 px and more: 1 / 1 at 0.6, 1 / 1 at 0.7 (equal recall).";
        let (cal_at, held_at) = (md.find(calibration), md.find(held_out));
        assert!(cal_at.is_some() && held_at.is_some(), "{md}");
        let held_table = md.find("The same thresholds on the held-out part").unwrap();
        assert!(cal_at.unwrap() < held_table && held_table < held_at.unwrap());
        // Without false faces at the reference there is nothing to halve: no ratio.
        let mut clean = report();
        clean.detection_against = Some(AgainstReference::new(
            &[DetectionImage {
                media: "brick.png".into(),
                truth: vec![],
                found: vec![],
            }],
            0.6,
            in_use,
        ));
        assert!(
            markdown(&clean).contains("(1 images): 0.6 → 0.00, 0.7 → 0.00 (no false face at 0.6: no ratio); found of 20 px and more: 0 / 0 at 0.6, 0 / 0 at 0.7 (equal recall)."),
            "{}",
            markdown(&clean)
        );
    }

    fn report() -> Report {
        let mut eval = Evaluation::default();
        eval.posters.faces.push(outcome("female", 60.0, Some(0.95)));
        eval.posters.faces.push(outcome("male", 60.0, Some(0.05)));
        eval.posters.faces.push(outcome("male", 12.0, None));
        eval.trailers.push(TrailerOutcome {
            media: "t.mp4".into(),
            truth_persons: [("female".to_string(), 2)].into(),
            found_persons: [("male".to_string(), 1)].into(),
            truth_seconds: [("female".to_string(), 8.0)].into(),
            found_seconds: [("male".to_string(), 3.0)].into(),
            identity: Some(IdentityOutcome {
                media: "t.mp4".into(),
                truth_persons: 2,
                found_persons: 1,
                merges: vec![(1, vec!["a".into(), "b".into()])],
                splits: vec![],
                misses: vec![],
                extras: vec![],
            }),
        });
        eval.failures.push(("x.jpg".into(), "broken".into()));
        let provenance = Provenance {
            pipeline_version: "9.9.9".into(),
            algorithm_version: 7,
            runtime_sha256: "abc".into(),
            models: vec![],
            settings: Default::default(),
        };
        let labelled = LabelledSet {
            images: 2,
            faces: 3,
            trailers: 1,
            held_out_images: 0,
            held_out_faces: 0,
        };
        let mut report = Report::new(
            "regard evaluate --truth t.json".into(),
            provenance,
            &AnalysisSettings::default(),
            labelled,
            &eval,
            &[],
            None,
        );
        report.robustness = vec![robustness_table_fixture()];
        report
    }

    #[test]
    fn every_table_row_has_as_many_cells_as_its_header() {
        let md = markdown(&report());
        let mut tables = 0;
        let mut columns = None;
        for line in md.lines() {
            match (line.starts_with('|'), columns) {
                (true, None) => {
                    columns = Some(line.matches(" |").count());
                    tables += 1;
                }
                (true, Some(n)) if line.starts_with("|---") => {
                    assert_eq!(line.matches("---|").count(), n, "{line}");
                }
                (true, Some(n)) => assert_eq!(line.matches(" |").count(), n, "{line}"),
                (false, _) => columns = None,
            }
        }
        // Detection, gender, errors, models, margin (two), detection sweep, trailers, trailer
        // persons, robustness, sweep, calibration (three): fourteen tables.
        assert_eq!(tables, 14, "{md}");
    }

    #[test]
    fn the_report_shows_the_figures_and_a_dash_where_there_is_none() {
        let md = markdown(&report());
        for expected in [
            "Produced by `regard evaluate --truth t.json` on ",
            "Labelled set: calibration part 2 images with 3 faces and 1 trailers; held-out part 0 images with 0 faces",
            "| <20 px | 1 | 0 | 0.0% | 0 |\n",
            "| 40-80 px | 2 | 2 | 100.0% | 0 |\n",
            "| 20-40 px | 0 | 0 | – | 0 |\n",
            "| female | 1 | 0.0% (0) | 0.0% (0) |\n",
            "Bias figure (error rate for women minus error rate for men): +0.0 points\n",
            "| t.mp4 | female | 2 | 0 | -2 | 8.0 | 0.0 | -100.0% |\n",
            "| t.mp4 | male | 0 | 1 | +1 | 0.0 | 3.0 | – |\n",
            "per gender): female -2, male +1.\n",
            "| t.mp4 | 2 | 1 | 1 | 0 | 0 | 0 | P1 merges a+b |\n",
            "### Inputs that failed\n\n- x.jpg: broken\n",
            "No rendered height meets the rule at any threshold",
        ] {
            assert!(md.contains(expected), "missing {expected:?} in\n{md}");
        }
        assert!(!md.contains("### CI floor"), "no floor was given");
    }
}
