//! `regard evaluate`: run the pipeline over a labelled set and measure it honestly — detection
//! recall and false positives by face size, gender accuracy and `unknown` rate by face size,
//! error rates for women and men separately, and for trailers the error on distinct persons and
//! screen time. The truth format is documented in fixtures/README.md.

use crate::domain::{BoundingBox, Face, PosterAnalysis, TrailerAnalysis, UNKNOWN};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Debug, Deserialize)]
pub struct Truth {
    #[serde(default)]
    pub images: BTreeMap<String, ImageTruth>,
    #[serde(default)]
    pub trailers: BTreeMap<String, TrailerTruth>,
}

#[derive(Debug, Deserialize)]
pub struct ImageTruth {
    pub faces: Vec<FaceTruth>,
}

#[derive(Debug, Deserialize)]
pub struct FaceTruth {
    pub person: String,
    pub gender: String,
    /// [x, y, width, height] in image pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

impl FaceTruth {
    fn bbox(&self) -> BoundingBox {
        BoundingBox {
            x: self.bbox[0],
            y: self.bbox[1],
            width: self.bbox[2],
            height: self.bbox[3],
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct TrailerTruth {
    pub persons: Vec<PersonTruth>,
}

#[derive(Debug, Deserialize)]
pub struct PersonTruth {
    pub person: String,
    pub gender: String,
    pub seconds_on_screen: f64,
}

/// Face-height buckets of the evaluation, in pixels.
pub const SIZE_BUCKETS: [(&str, f32, f32); 4] = [
    ("<20", 0.0, 20.0),
    ("20-40", 20.0, 40.0),
    ("40-80", 40.0, 80.0),
    (">=80", 80.0, f32::INFINITY),
];

pub fn bucket_of(height: f32) -> &'static str {
    SIZE_BUCKETS
        .iter()
        .find(|(_, lo, hi)| height >= *lo && height < *hi)
        .map(|b| b.0)
        .unwrap_or(">=80")
}

/// Minimum IoU between a detected box and a truth box to count as the same face. Detector boxes
/// run from forehead to chin and truth boxes were drawn the same way, but tolerate some slack.
pub const MATCH_IOU: f32 = 0.3;

/// Greedy one-to-one matching by IoU, best pairs first. Returns (truth index, detection index).
pub fn match_faces(
    truth: &[BoundingBox],
    detected: &[BoundingBox],
    min_iou: f32,
) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (i, t) in truth.iter().enumerate() {
        for (j, d) in detected.iter().enumerate() {
            let iou = t.iou(d);
            if iou >= min_iou {
                pairs.push((iou, i, j));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut used_t = vec![false; truth.len()];
    let mut used_d = vec![false; detected.len()];
    let mut out = Vec::new();
    for (_, i, j) in pairs {
        if !used_t[i] && !used_d[j] {
            used_t[i] = true;
            used_d[j] = true;
            out.push((i, j));
        }
    }
    out
}

/// One truth face and what regard made of it.
#[derive(Debug, Clone)]
pub struct FaceOutcome {
    pub media: String,
    pub truth_gender: String,
    pub truth_height: f32,
    /// None: missed by the detector.
    pub detected: Option<Face>,
}

/// Counts per size bucket.
#[derive(Debug, Default, Clone)]
pub struct BucketCounts {
    pub truth_faces: u32,
    pub found: u32,
    pub false_positives: u32,
    pub correct: u32,
    pub wrong: u32,
    pub unknown: u32,
}

#[derive(Debug, Default)]
pub struct Evaluation {
    pub faces: Vec<FaceOutcome>,
    pub false_positive_heights: Vec<f32>,
    pub trailers: Vec<TrailerOutcome>,
    pub failures: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct TrailerOutcome {
    pub media: String,
    pub truth_persons: BTreeMap<String, u32>,
    pub found_persons: BTreeMap<String, u32>,
    pub truth_seconds: BTreeMap<String, f64>,
    pub found_seconds: BTreeMap<String, f64>,
}

impl Evaluation {
    pub fn add_image(&mut self, media: &str, truth: &ImageTruth, analysis: &PosterAnalysis) {
        let truth_boxes: Vec<BoundingBox> = truth.faces.iter().map(FaceTruth::bbox).collect();
        let det_boxes: Vec<BoundingBox> = analysis.faces.iter().map(|f| f.bbox).collect();
        let matches = match_faces(&truth_boxes, &det_boxes, MATCH_IOU);
        for (i, t) in truth.faces.iter().enumerate() {
            let detected = matches
                .iter()
                .find(|(ti, _)| *ti == i)
                .map(|(_, j)| analysis.faces[*j].clone());
            self.faces.push(FaceOutcome {
                media: media.to_string(),
                truth_gender: t.gender.clone(),
                truth_height: t.bbox[3],
                detected,
            });
        }
        for (j, f) in analysis.faces.iter().enumerate() {
            if !matches.iter().any(|(_, dj)| *dj == j) {
                self.false_positive_heights.push(f.size_px);
            }
        }
    }

    pub fn add_trailer(&mut self, media: &str, truth: &TrailerTruth, analysis: &TrailerAnalysis) {
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
        self.trailers.push(TrailerOutcome {
            media: media.to_string(),
            truth_persons,
            found_persons,
            truth_seconds,
            found_seconds,
        });
    }

    /// Per-bucket counts with the decisions regard would make at these thresholds (the stored
    /// probabilities are re-decided, so threshold sweeps need no second inference run).
    pub fn buckets(
        &self,
        min_confidence: f32,
        min_reliable_px: f32,
    ) -> BTreeMap<&'static str, BucketCounts> {
        let mut out: BTreeMap<&'static str, BucketCounts> = SIZE_BUCKETS
            .iter()
            .map(|b| (b.0, BucketCounts::default()))
            .collect();
        for f in &self.faces {
            let b = out.entry(bucket_of(f.truth_height)).or_default();
            b.truth_faces += 1;
            let Some(face) = &f.detected else { continue };
            b.found += 1;
            match decided_gender(face, min_confidence, min_reliable_px) {
                None => b.unknown += 1,
                Some(label) if label == f.truth_gender => b.correct += 1,
                Some(_) => b.wrong += 1,
            }
        }
        for h in &self.false_positive_heights {
            out.entry(bucket_of(*h)).or_default().false_positives += 1;
        }
        out
    }

    /// (faces, wrong, unknown) for the truth gender `gender`, over detected faces at least
    /// `min_height` tall.
    pub fn errors_for(
        &self,
        gender: &str,
        min_height: f32,
        min_confidence: f32,
        min_reliable_px: f32,
    ) -> (u32, u32, u32) {
        let mut n = 0;
        let mut wrong = 0;
        let mut unknown = 0;
        for f in self
            .faces
            .iter()
            .filter(|f| f.truth_gender == gender && f.truth_height >= min_height)
        {
            let Some(face) = &f.detected else { continue };
            n += 1;
            match decided_gender(face, min_confidence, min_reliable_px) {
                None => unknown += 1,
                Some(label) if label != gender => wrong += 1,
                Some(_) => {}
            }
        }
        (n, wrong, unknown)
    }

    /// Accuracy among decided faces of at least `min_height` px (the CI floor's figure).
    pub fn gender_accuracy(
        &self,
        min_height: f32,
        min_confidence: f32,
        min_reliable_px: f32,
    ) -> Option<f64> {
        let mut correct = 0u32;
        let mut decided = 0u32;
        for f in self.faces.iter().filter(|f| f.truth_height >= min_height) {
            let Some(face) = &f.detected else { continue };
            if let Some(label) = decided_gender(face, min_confidence, min_reliable_px) {
                decided += 1;
                if label == f.truth_gender {
                    correct += 1;
                }
            }
        }
        (decided > 0).then(|| correct as f64 / decided as f64)
    }

    /// Recall of faces at least `min_height` px tall.
    pub fn recall(&self, min_height: f32) -> Option<f64> {
        let relevant: Vec<_> = self
            .faces
            .iter()
            .filter(|f| f.truth_height >= min_height)
            .collect();
        (!relevant.is_empty()).then(|| {
            relevant.iter().filter(|f| f.detected.is_some()).count() as f64 / relevant.len() as f64
        })
    }
}

/// The gender label a face gets at these thresholds, None for `unknown`.
pub fn decided_gender(face: &Face, min_confidence: f32, min_reliable_px: f32) -> Option<String> {
    let g = face.attribute("gender")?;
    let (label, p) = g.probabilities.iter().max_by(|a, b| a.1.total_cmp(b.1))?;
    (face.size_px >= min_reliable_px && *p >= min_confidence).then(|| label.clone())
}

fn ratio(num: u32, den: u32) -> String {
    if den == 0 {
        "–".into()
    } else {
        format!("{:.1}%", 100.0 * num as f64 / den as f64)
    }
}

/// The Markdown report: every table of the evaluation.
pub fn markdown(eval: &Evaluation, min_confidence: f32, min_reliable_px: f32) -> String {
    let mut out = String::new();
    let buckets = eval.buckets(min_confidence, min_reliable_px);
    let _ = writeln!(out, "### Detection by face height\n");
    let _ = writeln!(
        out,
        "| face height | truth faces | found | recall | false positives |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for (name, ..) in SIZE_BUCKETS {
        let b = &buckets[name];
        let _ = writeln!(
            out,
            "| {name} px | {} | {} | {} | {} |",
            b.truth_faces,
            b.found,
            ratio(b.found, b.truth_faces),
            b.false_positives
        );
    }
    let _ = writeln!(
        out,
        "\n### Perceived gender by face height (min confidence {min_confidence}, min reliable size {min_reliable_px} px)\n"
    );
    let _ = writeln!(
        out,
        "| face height | found faces | correct | wrong | unknown | accuracy of decided | unknown rate |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for (name, ..) in SIZE_BUCKETS {
        let b = &buckets[name];
        let _ = writeln!(
            out,
            "| {name} px | {} | {} | {} | {} | {} | {} |",
            b.found,
            b.correct,
            b.wrong,
            b.unknown,
            ratio(b.correct, b.correct + b.wrong),
            ratio(b.unknown, b.found)
        );
    }
    let _ = writeln!(
        out,
        "\n### Errors for women and for men (found faces of 40 px and more)\n"
    );
    let _ = writeln!(
        out,
        "| truth | found faces | labelled the other gender | unknown |"
    );
    let _ = writeln!(out, "|---|---|---|---|");
    let mut rates = Vec::new();
    for gender in ["female", "male"] {
        let (n, wrong, unknown) = eval.errors_for(gender, 40.0, min_confidence, min_reliable_px);
        rates.push(if n > 0 {
            wrong as f64 / n as f64
        } else {
            f64::NAN
        });
        let _ = writeln!(
            out,
            "| {gender} | {n} | {} ({wrong}) | {} ({unknown}) |",
            ratio(wrong, n),
            ratio(unknown, n)
        );
    }
    let gap = rates[0] - rates[1];
    let _ = writeln!(
        out,
        "\nBias figure (error rate for women minus error rate for men): {}\n",
        if gap.is_nan() {
            "–".to_string()
        } else {
            format!("{:+.1} points", gap * 100.0)
        }
    );
    if !eval.trailers.is_empty() {
        let _ = writeln!(out, "### Trailers\n");
        let _ = writeln!(
            out,
            "| trailer | gender | persons (truth) | persons (found) | person-seconds (truth) | person-seconds (found) | screen-time error |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for t in &eval.trailers {
            let mut genders: Vec<&String> = t
                .truth_persons
                .keys()
                .chain(t.found_persons.keys())
                .collect();
            genders.sort();
            genders.dedup();
            for g in genders {
                let ts = t.truth_seconds.get(g).copied().unwrap_or(0.0);
                let fs = t.found_seconds.get(g).copied().unwrap_or(0.0);
                let err = if ts > 0.0 {
                    format!("{:+.1}%", 100.0 * (fs - ts) / ts)
                } else {
                    "–".into()
                };
                let _ = writeln!(
                    out,
                    "| {} | {g} | {} | {} | {ts:.1} | {fs:.1} | {err} |",
                    t.media,
                    t.truth_persons.get(g).copied().unwrap_or(0),
                    t.found_persons.get(g).copied().unwrap_or(0)
                );
            }
        }
        out.push('\n');
    }
    if !eval.failures.is_empty() {
        let _ = writeln!(out, "### Inputs that failed\n");
        for (media, error) in &eval.failures {
            let _ = writeln!(out, "- {media}: {error}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: f32, y: f32, w: f32, h: f32) -> BoundingBox {
        BoundingBox {
            x,
            y,
            width: w,
            height: h,
        }
    }

    #[test]
    fn matching_is_one_to_one_and_prefers_the_best_overlap() {
        let truth = [b(0.0, 0.0, 10.0, 10.0), b(100.0, 100.0, 10.0, 10.0)];
        let det = [
            b(1.0, 1.0, 10.0, 10.0),
            b(0.0, 0.0, 10.0, 10.0),
            b(300.0, 300.0, 5.0, 5.0),
        ];
        let m = match_faces(&truth, &det, 0.3);
        assert_eq!(m, vec![(0, 1)]);
    }

    #[test]
    fn buckets_follow_the_issue() {
        assert_eq!(bucket_of(19.9), "<20");
        assert_eq!(bucket_of(20.0), "20-40");
        assert_eq!(bucket_of(40.0), "40-80");
        assert_eq!(bucket_of(80.0), ">=80");
    }
}

/// Thresholds tried by the calibration sweep.
pub const SWEEP_CONFIDENCE: [f32; 7] = [0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 0.95];
pub const SWEEP_MIN_PX: [f32; 6] = [16.0, 24.0, 32.0, 40.0, 48.0, 64.0];

/// Accuracy of decided faces and coverage (decided / found) at each pair of thresholds.
pub fn sweep_markdown(eval: &Evaluation) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Calibration sweep: accuracy of decided faces / share of found faces decided\n"
    );
    let mut header = String::from("| min reliable px \\ min confidence |");
    let mut rule = String::from("|---|");
    for c in SWEEP_CONFIDENCE {
        let _ = write!(header, " {c} |");
        rule.push_str("---|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    for px in SWEEP_MIN_PX {
        let _ = write!(out, "| {px} |");
        for c in SWEEP_CONFIDENCE {
            let (mut correct, mut decided, mut found) = (0u32, 0u32, 0u32);
            for f in &eval.faces {
                let Some(face) = &f.detected else { continue };
                found += 1;
                if let Some(label) = decided_gender(face, c, px) {
                    decided += 1;
                    correct += u32::from(label == f.truth_gender);
                }
            }
            let _ = write!(
                out,
                " {} / {} |",
                ratio(correct, decided),
                ratio(decided, found)
            );
        }
        out.push('\n');
    }
    out
}

/// Floors that CI enforces on the committed fixtures (fixtures/evaluation-floor.toml).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Floor {
    /// Accuracy of decided gender labels on found faces of at least 40 px.
    pub min_gender_accuracy_40px: f64,
    /// Detection recall on faces of at least 32 px.
    pub min_recall_32px: f64,
}

impl Floor {
    /// The breaches, in words; empty when the evaluation is above every floor.
    pub fn check(
        &self,
        eval: &Evaluation,
        min_confidence: f32,
        min_reliable_px: f32,
    ) -> Vec<String> {
        let mut breaches = Vec::new();
        match eval.gender_accuracy(40.0, min_confidence, min_reliable_px) {
            Some(a) if a >= self.min_gender_accuracy_40px => {}
            Some(a) => breaches.push(format!(
                "gender accuracy on faces >= 40 px is {:.1}%, below the floor {:.1}%",
                a * 100.0,
                self.min_gender_accuracy_40px * 100.0
            )),
            None => breaches
                .push("no decided face of 40 px or more: cannot check the gender floor".into()),
        }
        match eval.recall(32.0) {
            Some(r) if r >= self.min_recall_32px => {}
            Some(r) => breaches.push(format!(
                "detection recall on faces >= 32 px is {:.1}%, below the floor {:.1}%",
                r * 100.0,
                self.min_recall_32px * 100.0
            )),
            None => breaches
                .push("no truth face of 32 px or more: cannot check the recall floor".into()),
        }
        breaches
    }
}

/// Run `regard evaluate`. Returns false when a floor is breached or an input failed.
pub async fn run(args: crate::cli::EvaluateArgs) -> anyhow::Result<bool> {
    use anyhow::Context;
    let truth_text = std::fs::read_to_string(&args.truth)
        .with_context(|| format!("cannot read the truth file {}", args.truth.display()))?;
    let truth: Truth = serde_json::from_str(&truth_text)
        .with_context(|| format!("{}: invalid truth file", args.truth.display()))?;
    let base = args
        .truth
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let settings = args
        .settings
        .apply(crate::config::AnalysisSettings::default());
    let limits = crate::config::Limits::default();
    let models = args.models.clone();
    let pipeline = {
        let (settings, limits) = (settings.clone(), limits.clone());
        tokio::task::spawn_blocking(move || {
            crate::analyze::load_pipeline(&models, settings, limits, true)
        })
        .await??
    };
    let pipeline = std::sync::Arc::new(pipeline);
    let fetcher = crate::media::fetch::Fetcher::new(crate::media::fetch::FetchPolicy::cli(limits));
    let mut eval = Evaluation::default();
    let names: Vec<(String, bool)> = truth
        .images
        .keys()
        .map(|k| (k.clone(), false))
        .chain(truth.trailers.keys().map(|k| (k.clone(), true)))
        .collect();
    for (name, is_trailer) in names {
        let path = base.join(&name);
        let outcome: anyhow::Result<crate::domain::Analysis> = async {
            let media = fetcher.fetch(&path.display().to_string()).await?;
            let p = std::sync::Arc::clone(&pipeline);
            let out =
                tokio::task::spawn_blocking(move || p.analyze(&media, false, &|_| {})).await??;
            Ok(out.analysis)
        }
        .await;
        match (outcome, is_trailer) {
            (Ok(crate::domain::Analysis::Poster(p)), false) => {
                eval.add_image(&name, &truth.images[&name], &p)
            }
            (Ok(crate::domain::Analysis::Trailer(t)), true) => {
                eval.add_trailer(&name, &truth.trailers[&name], &t)
            }
            (Ok(_), _) => eval
                .failures
                .push((name.clone(), "analysed as the wrong kind of media".into())),
            (Err(e), _) => eval.failures.push((name.clone(), format!("{e:#}"))),
        }
        tracing::info!(media = %name, "evaluated");
    }
    let prov = pipeline.provenance();
    let mut doc = String::new();
    let _ = writeln!(doc, "# Evaluation\n");
    let _ = writeln!(
        doc,
        "Produced by `regard evaluate --truth {} --write EVALUATION.md` on {} (regard {}).\n",
        args.truth.display(),
        chrono::Utc::now().format("%Y-%m-%d"),
        prov.pipeline_version
    );
    let _ = writeln!(doc, "Models:\n");
    for m in &prov.models {
        let _ = writeln!(
            doc,
            "- {} ({}): `{}` sha256 `{}`",
            m.name, m.role, m.file, m.sha256
        );
    }
    let _ = writeln!(
        doc,
        "- ONNX Runtime library sha256 `{}`\n",
        prov.runtime_sha256
    );
    let _ = writeln!(
        doc,
        "Labelled set: {} images with {} faces, {} trailers. Faces are matched to truth boxes one-to-one by IoU ≥ {MATCH_IOU}.\n",
        truth.images.len(),
        eval.faces.len(),
        truth.trailers.len()
    );
    doc.push_str(&markdown(
        &eval,
        settings.min_attribute_confidence,
        settings.min_reliable_face_px,
    ));
    doc.push_str(&sweep_markdown(&eval));
    print!("{doc}");
    if let Some(path) = &args.write {
        let mut text = doc.clone();
        if let Some(notes) = &args.append {
            text.push('\n');
            text.push_str(
                &std::fs::read_to_string(notes)
                    .with_context(|| format!("cannot read {}", notes.display()))?,
            );
        }
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut ok = eval.failures.is_empty();
    if let Some(floor_path) = &args.floor {
        let text = std::fs::read_to_string(floor_path)
            .with_context(|| format!("cannot read {}", floor_path.display()))?;
        let floor: Floor = toml::from_str(&text)
            .with_context(|| format!("{}: invalid floor file", floor_path.display()))?;
        let breaches = floor.check(
            &eval,
            settings.min_attribute_confidence,
            settings.min_reliable_face_px,
        );
        for b in &breaches {
            eprintln!("evaluation floor breached: {b}");
        }
        if breaches.is_empty() {
            eprintln!("evaluation: every floor of {} holds", floor_path.display());
        }
        ok &= breaches.is_empty();
    }
    Ok(ok)
}
