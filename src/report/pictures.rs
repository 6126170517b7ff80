//! Pictures a person uses to check what the models saw: annotated posters, a contact sheet of a
//! trailer's sampled frames, and a timeline of who is on screen. Drawn from an analysis and the
//! few images the pipeline keeps for them (the decoded poster, downscaled sampled frames).

use super::draw::{
    draw_label, draw_text, fill_rect, palette, stroke_rect, text_height, text_width,
};
use crate::domain::{Face, Person, PosterAnalysis, TrailerAnalysis, UNKNOWN};
use crate::track::Snapshot;
use image::{Rgb, RgbImage, imageops};

const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
const GREY: Rgb<u8> = Rgb([150, 150, 150]);

/// Colour of a gender label: the same in every picture and chart.
pub fn gender_color(label: &str) -> Rgb<u8> {
    match label {
        "female" => Rgb([214, 40, 140]),
        "male" => Rgb([30, 110, 220]),
        _ => GREY,
    }
}

fn gender_letter(label: Option<&str>) -> &'static str {
    match label {
        Some("female") => "F",
        Some("male") => "M",
        _ => "?",
    }
}

/// The pictures of a poster, each with the suffix of its file name: the annotated poster.
pub fn poster_pictures(
    analysis: &PosterAnalysis,
    image: &RgbImage,
) -> Vec<(&'static str, RgbImage)> {
    vec![("annotated", annotate_faces(image, &analysis.faces))]
}

/// The pictures of a trailer, each with the suffix of its file name: the contact sheet of the
/// kept frames and the timeline.
pub fn trailer_pictures(
    analysis: &TrailerAnalysis,
    frames: &[Snapshot],
) -> Vec<(&'static str, RgbImage)> {
    vec![
        ("contact-sheet", contact_sheet(frames, &analysis.persons, 5)),
        ("timeline", timeline_chart(analysis, 1000, 260)),
    ]
}

/// Short label drawn next to a face: gender letter and confidence, age band.
pub fn face_caption(face: &Face) -> String {
    let gender = face.attribute("gender");
    let g = gender_letter(gender.map(|g| g.label.as_str()));
    let conf = gender
        .map(|g| (g.confidence * 100.0).round() as u32)
        .unwrap_or(0);
    let age = face
        .age
        .as_ref()
        .map(|a| a.band.as_str())
        .unwrap_or(UNKNOWN);
    let age = if age == UNKNOWN { "?" } else { age };
    format!("{g} {conf}% {age}")
}

fn scale_for(width: u32, height: u32) -> u32 {
    (width.max(height) / 700).clamp(1, 6)
}

/// The poster with a box per face, coloured by perceived gender, and its caption.
pub fn annotate_faces(image: &RgbImage, faces: &[Face]) -> RgbImage {
    let mut out = image.clone();
    let scale = scale_for(out.width(), out.height());
    for face in faces {
        let label = face
            .attribute("gender")
            .map(|g| g.label.as_str())
            .unwrap_or(UNKNOWN);
        let color = gender_color(label);
        let b = face.bbox;
        stroke_rect(
            &mut out,
            b.x as i64,
            b.y as i64,
            b.width.max(1.0) as u32,
            b.height.max(1.0) as u32,
            scale + 1,
            color,
        );
        let caption = face_caption(face);
        let label_h = text_height(scale) as i64 + 2 * scale as i64;
        draw_label(
            &mut out,
            b.x as i64,
            b.y as i64 - label_h,
            &caption,
            scale,
            WHITE,
            color,
        );
    }
    out
}

/// A grid of sampled frames with boxes coloured by person and labelled "P<id> <gender>" (the
/// person's fused gender, "?" when undecided or for a face of no person).
pub fn contact_sheet(frames: &[Snapshot], persons: &[Person], columns: u32) -> RgbImage {
    let columns = columns.max(1);
    let cell_w = frames
        .iter()
        .map(|f| f.thumbnail.width())
        .max()
        .unwrap_or(160);
    let cell_h = frames
        .iter()
        .map(|f| f.thumbnail.height())
        .max()
        .unwrap_or(90);
    let caption_h = text_height(1) + 4;
    let rows = (frames.len() as u32).div_ceil(columns).max(1);
    let gap = 4;
    let width = columns * (cell_w + gap) + gap;
    let height = rows * (cell_h + caption_h + gap) + gap;
    let mut sheet = RgbImage::from_pixel(width, height, Rgb([24, 24, 24]));
    for (i, frame) in frames.iter().enumerate() {
        let col = i as u32 % columns;
        let row = i as u32 / columns;
        let x0 = gap + col * (cell_w + gap);
        let y0 = gap + row * (cell_h + caption_h + gap);
        imageops::overlay(
            &mut sheet,
            &frame.thumbnail,
            x0 as i64,
            (y0 + caption_h) as i64,
        );
        draw_text(
            &mut sheet,
            x0 as i64,
            y0 as i64 + 1,
            &format!("{:.1}S", frame.t),
            1,
            WHITE,
        );
        for (b, person) in &frame.faces {
            let label = gender_letter(
                persons
                    .iter()
                    .find(|p| Some(p.id) == *person)
                    .and_then(|p| p.attribute("gender"))
                    .map(|g| g.label.as_str()),
            );
            let color = person.map(|p| palette(p as usize)).unwrap_or(GREY);
            let bx = x0 as i64 + b.x as i64;
            let by = (y0 + caption_h) as i64 + b.y as i64;
            stroke_rect(
                &mut sheet,
                bx,
                by,
                b.width.max(2.0) as u32,
                b.height.max(2.0) as u32,
                1,
                color,
            );
            let text = match person {
                Some(p) => format!("P{p} {label}"),
                None => format!("- {label}"),
            };
            draw_label(
                &mut sheet,
                bx,
                by + b.height as i64 + 1,
                &text,
                1,
                BLACK,
                color,
            );
        }
    }
    sheet
}

/// A stacked bar per sampled frame: how many persons of each perceived gender are visible.
/// Time runs left to right; a legend and a time axis make it readable on its own.
pub fn timeline_chart(analysis: &TrailerAnalysis, width: u32, height: u32) -> RgbImage {
    let mut img = RgbImage::from_pixel(width, height, WHITE);
    let left = 40i64;
    let bottom_margin = 24i64;
    let top = 22i64;
    let plot_w = (width as i64 - left - 10).max(10);
    let plot_h = (height as i64 - top - bottom_margin).max(10);
    let max_count = analysis
        .timeline
        .iter()
        .map(|f| f.gender_counts.values().sum::<u32>())
        .max()
        .unwrap_or(0)
        .max(1);
    let duration = analysis.analysed_duration_s.max(1e-3);
    let interval = if analysis.sample_rate > 0.0 {
        1.0 / analysis.sample_rate
    } else {
        0.5
    };
    let bar_w = ((interval / duration) * plot_w as f64).ceil().max(1.0) as u32;
    // Axes.
    fill_rect(&mut img, left, top + plot_h, plot_w as u32, 1, BLACK);
    fill_rect(&mut img, left - 1, top, 1, plot_h as u32, BLACK);
    for k in 0..=max_count {
        let y = top + plot_h - (k as i64 * plot_h / max_count as i64);
        draw_text(&mut img, 4, y - 3, &k.to_string(), 1, BLACK);
    }
    let ticks = 6;
    for k in 0..=ticks {
        let t = duration * k as f64 / ticks as f64;
        let x = left + (t / duration * plot_w as f64) as i64;
        fill_rect(&mut img, x, top + plot_h, 1, 4, BLACK);
        let text = format!("{t:.0}S");
        draw_text(
            &mut img,
            x - text_width(&text, 1) as i64 / 2,
            top + plot_h + 8,
            &text,
            1,
            BLACK,
        );
    }
    for frame in &analysis.timeline {
        let x = left + (frame.t / duration * plot_w as f64) as i64;
        let mut y = top + plot_h;
        for label in ["female", "male", UNKNOWN] {
            let n = frame.gender_counts.get(label).copied().unwrap_or(0) as i64;
            if n == 0 {
                continue;
            }
            let h = n * plot_h / max_count as i64;
            fill_rect(&mut img, x, y - h, bar_w, h as u32, gender_color(label));
            y -= h;
        }
    }
    // Legend.
    let mut x = left;
    for (label, text) in [("female", "WOMEN"), ("male", "MEN"), (UNKNOWN, "UNKNOWN")] {
        fill_rect(&mut img, x, 6, 10, 10, gender_color(label));
        draw_text(&mut img, x + 14, 8, text, 1, BLACK);
        x += 14 + text_width(text, 1) as i64 + 16;
    }
    img
}
