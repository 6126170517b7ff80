//! regard: measures who is seen on film posters and in trailers.
//!
//! The pipeline reads top-down: [`media`] (fetch, decode, sample) → [`vision`] (detect, align,
//! perceive, embed) → [`track`] (faces → persons across frames and shots) → [`stats`]
//! (representation statistics and their uncertainty) → [`report`] (tables, JSON, pictures).
//! [`pipeline`] runs one media file through them; [`store`] (PostgreSQL) and [`queue`]
//! (RabbitMQ) sit at the edges and are driven by the CLI in `main.rs`; [`coding`] is the coders'
//! web application on top of the store.

pub mod cli;
pub mod coding;
pub mod config;
pub mod domain;
pub mod evaluate;
pub mod media;
mod panics;
pub mod pipeline;
pub mod queue;
pub mod report;
pub mod runner;
pub mod stats;
pub mod store;
pub mod track;
pub mod vision;

/// regard's version, recorded in every result.
pub const PIPELINE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Version of the algorithm that turns pixels into figures: part of every result key and of the
/// provenance. Bump it whenever a change alters any reported figure (a tile policy, a linking
/// gate, a sampler constant...): the golden test over the fixtures (`tests/golden.rs`) fails when
/// a figure changes while this stays, and names the version to bump to.
///
/// 2: a second gender and age opinion (face-api.js AgeGenderNet) combined with dlib's models
/// (`vision::combine`), and thresholds re-chosen by the rules of fixtures/evaluation-method.md.
///
/// 3: trailers perceive (gender and age models) a shot track's first faces and then every few
/// (settings `trailer_perceive_first`, `trailer_perceive_every`), not every face.
///
/// 4: trailer frames are detected in a window fitted to the frame (setting
/// `trailer_fitted_windows`, the any-size YuNet file), and pixel aspect ratios within half a
/// percent of square are taken as square (no resampling of every frame).
pub const ALGORITHM_VERSION: u32 = 4;
