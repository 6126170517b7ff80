//! What a person reads: tables, JSON, annotated images, contact sheets and timelines.
