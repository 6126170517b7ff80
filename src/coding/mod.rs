//! Coders in a browser (`regard coding serve`): perceived origin, and corrections of perceived
//! gender and age band, coded by trained people on faces rendered on demand from the source
//! media. Nothing but labels is stored: a face is decoded in memory for one response, sent with
//! `Cache-Control: no-store`, and dropped.
//!
//! - [`auth`]: argon2 password hashes, HMAC-signed session cookies, CSRF tokens.
//! - [`faces`]: the face (poster region, or a trailer person's key frames) from the source.
//! - [`agreement`]: Cohen's kappa and Krippendorff's alpha between coders.
//! - [`web`]: the axum application (server-rendered pages, a little plain JavaScript).

pub mod agreement;
pub mod auth;
pub mod faces;
mod pages;
pub mod ratelimit;
pub mod web;

pub use web::{ServeOptions, serve};
