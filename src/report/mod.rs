//! What a person reads: tables, JSON, annotated images, contact sheets and timelines.

pub mod draw;
pub mod pictures;
pub mod table;
