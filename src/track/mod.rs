//! Faces across frames: shot cuts, tracks within a shot, and persons across shots (embeddings kept in memory only).

pub mod shot;
