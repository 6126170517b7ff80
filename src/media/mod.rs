//! Fetching media (local files under allowed roots, HTTP(S) with limits), recognising it by its
//! bytes, decoding images and sampling video frames.

pub mod error;
pub mod fetch;
pub mod image;
pub mod sniff;
pub mod video;

pub use self::error::MediaError;
pub use self::fetch::{FetchPolicy, FetchedMedia, Fetcher};
pub use self::image::{DecodedImage, decode_image};
pub use self::sniff::{MediaFormat, sniff};
