//! Representation statistics of posters and trailers, and the uncertainty they carry.
