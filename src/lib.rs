//! regard: measures who is seen on film posters and in trailers.
//!
//! The pipeline reads top-down: [`media`] (fetch, decode, sample) → [`vision`] (detect, align,
//! perceive, embed) → [`track`] (faces → persons across frames and shots) → [`stats`]
//! (representation statistics and their uncertainty) → [`report`] (tables, JSON, pictures).
//! [`pipeline`] runs one media file through them; [`store`] (PostgreSQL) and [`queue`]
//! (RabbitMQ) sit at the edges and are driven by the CLI in `main.rs`.

pub mod analyze;
pub mod bench;
pub mod cli;
pub mod coding;
pub mod config;
pub mod domain;
pub mod evaluate;
pub mod media;
pub mod pipeline;
pub mod queue;
pub mod report;
pub mod stats;
pub mod store;
pub mod track;
pub mod vision;
pub mod worker;

/// regard's version, recorded in every result.
pub const PIPELINE_VERSION: &str = env!("CARGO_PKG_VERSION");
