//! Representation statistics of posters and trailers, and the uncertainty they carry.

pub mod interval;
pub mod poster;
pub mod trailer;
