//! Acceptance of the trailer analysis on the synthetic trailers, whose truth is known: distinct
//! persons per perceived gender equal the truth (a person seen only in simulated turns may be
//! split, one person per shot, never merged), screen time per gender is within 10%, and
//! matching found persons to truth persons finds no merge and no miss.

mod common;

use regard::domain::{Analysis, UNKNOWN};
use regard::evaluate::match_identities;
use std::collections::BTreeMap;

#[test]
fn synthetic_trailers_count_persons_and_screen_time_per_gender() {
    let truth = common::truth();
    assert!(
        truth.trailers.len() >= 3,
        "the fixtures hold the synthetic trailers"
    );
    let mut failures = Vec::new();
    for (name, t) in &truth.trailers {
        let out = common::analyze_path(&common::root().join("fixtures").join(name), false);
        let Analysis::Trailer(a) = &out.analysis else {
            panic!("{name} is not a trailer")
        };
        let allowed = t.allowed_splits();
        let identity = match_identities(name, t, a.persons.len() as u32, &out.sightings);
        println!("{name}: {identity:?}");
        if !identity.merges.is_empty() || !identity.misses.is_empty() {
            failures.push(format!(
                "{name}: merges {:?}, misses {:?}",
                identity.merges, identity.misses
            ));
        }
        let mut truth_persons: BTreeMap<&str, u32> = BTreeMap::new();
        let mut truth_seconds: BTreeMap<&str, f64> = BTreeMap::new();
        for p in &t.persons {
            *truth_persons.entry(&p.gender).or_default() += 1;
            *truth_seconds.entry(&p.gender).or_default() += p.seconds_on_screen;
        }
        let gender = a
            .statistics
            .iter()
            .find(|s| s.attribute == "gender")
            .expect("gender statistics");
        println!(
            "{name}: {} frames, cuts at {:?}",
            a.sampled_frames, a.shot_cuts_s
        );
        println!(
            "  {:8} {:>14} {:>14} {:>16} {:>16}",
            "gender", "persons truth", "persons found", "seconds truth", "seconds found"
        );
        for label in ["female", "male", UNKNOWN] {
            let found = gender
                .categories
                .iter()
                .find(|c| c.category == label)
                .expect("every category has a row");
            let tp = truth_persons.get(label).copied().unwrap_or(0);
            let ts = truth_seconds.get(label).copied().unwrap_or(0.0);
            println!(
                "  {label:8} {tp:>14} {:>14} {ts:>16.1} {:>16.1}",
                found.persons, found.person_seconds
            );
            let extra = allowed.get(label).copied().unwrap_or(0);
            if !(tp..=tp + extra).contains(&found.persons) {
                failures.push(format!(
                    "{name}: {label} persons {} (truth {tp}, up to {extra} more from splits)",
                    found.persons
                ));
            }
            let tolerance = 0.10 * ts;
            if (found.person_seconds - ts).abs() > tolerance + 1e-9 {
                failures.push(format!(
                    "{name}: {label} screen time {:.1} s (truth {ts:.1} s)",
                    found.person_seconds
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "trailer figures off the truth:\n{}",
        failures.join("\n")
    );
}

/// Issue 13: two men seen only in profile-like views, in different shots, must not be merged
/// into one person (nor with anybody else), and the man who comes back frontal is found.
#[test]
fn t4_has_no_merge_and_every_truth_person_found() {
    let truth = common::truth();
    let name = "trailers/t4_640x360.mp4";
    let t = &truth.trailers[name];
    let out = common::analyze_path(&common::root().join("fixtures").join(name), false);
    let Analysis::Trailer(a) = &out.analysis else {
        panic!("{name} is not a trailer")
    };
    let o = match_identities(name, t, a.persons.len() as u32, &out.sightings);
    println!("{o:?}");
    assert_eq!(o.truth_persons, 4);
    assert!(o.merges.is_empty(), "merges: {:?}", o.merges);
    assert!(o.misses.is_empty(), "misses: {:?}", o.misses);
    assert!(o.extras.is_empty(), "extras: {:?}", o.extras);
    // Only the persons seen turned in every shot may be split.
    for (person, _) in &o.splits {
        assert!(
            t.shots
                .iter()
                .flat_map(|s| &s.faces)
                .filter(|f| &f.person == person)
                .all(|f| f.yaw != 0.0),
            "{person} was seen frontal and still split: {:?}",
            o.splits
        );
    }
    // biden is seen frontal in two shots: one person.
    assert!(o.splits.iter().all(|(p, _)| p != "biden"), "{:?}", o.splits);
}

#[test]
fn analyze_annotate_writes_a_contact_sheet_and_a_timeline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let trailer = common::root().join("fixtures/trailers/t3_640x360.mp4");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_regard"))
        .current_dir(common::root())
        .args(["analyze", "--annotate"])
        .arg(dir.path())
        .arg(&trailer)
        .output()
        .expect("regard runs");
    assert!(
        output.status.success(),
        "regard failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("trailer"),
        "the table names the trailer: {stdout}"
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "01-t3_640x360.mp4.contact-sheet.png",
            "01-t3_640x360.mp4.timeline.png"
        ]
    );
    let sheet = image::open(dir.path().join(&names[0])).expect("contact sheet is a valid image");
    // 5 columns of 240 px thumbnails with 4 px gaps; 16 s at 2/s = 32 frames → 7 rows of
    // 135 px thumbnails + 11 px captions + 4 px gaps.
    assert_eq!(sheet.width(), 5 * 244 + 4);
    assert_eq!(sheet.height(), 7 * (135 + 11 + 4) + 4);
    let timeline = image::open(dir.path().join(&names[1])).expect("timeline is a valid image");
    assert_eq!((timeline.width(), timeline.height()), (1000, 260));
}
