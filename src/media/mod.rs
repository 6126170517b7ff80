//! Fetching media (local files under allowed roots, HTTP(S) with limits), recognising it by its bytes, decoding images and sampling video frames.
pub mod video;
