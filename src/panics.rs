//! Caught panics, turned into errors: a decoder on hostile data, a model-loading thread, a job's
//! blocking task. Every layer may use it.

/// The message a panic carried, for the error that replaces it.
pub(crate) fn message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".to_string())
}
