//! FFmpeg's log routed into `tracing`, on every target.
//!
//! The callback receives a C `va_list`, which bindgen spells per target: `*mut __va_list_tag` on
//! x86_64 Linux, a struct on aarch64, `*mut c_char` on i686 or Windows. The bridge never names
//! it: it is generic over the spelling `V`, and [`install`] takes `av_log_set_callback` and
//! `av_log_format_line2` from the bindings, so the compiler infers `V` from them (and refuses to
//! build if the two disagree). The `va_list` is passed on unchanged, never read in Rust.

use ff::ffi;
use ffmpeg_next as ff;
use std::any::Any;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::{Once, OnceLock};

/// `av_log_set_callback`'s callback, over the target's `va_list` spelling `V`.
type LogCallback<V> = unsafe extern "C" fn(*mut c_void, c_int, *const c_char, V);

/// `av_log_format_line2`, over the target's `va_list` spelling `V`.
type FormatLine<V> = unsafe extern "C" fn(
    *mut c_void,
    c_int,
    *const c_char,
    V,
    *mut c_char,
    c_int,
    *mut c_int,
) -> c_int;

/// The `FormatLine<V>` the callback formats with. A static cannot be generic, so it is kept as
/// `Any` and recovered by its exact type (set once, before the callback is installed).
static FORMAT_LINE: OnceLock<Box<dyn Any + Send + Sync>> = OnceLock::new();

/// Initialise FFmpeg once per process and route its log to `tracing` (warnings and errors, at
/// warn level, target `ffmpeg`) instead of stderr. Idempotent and thread-safe.
pub fn init_ffmpeg() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // `init` only registers devices/network on this FFmpeg; an error here would resurface
        // as an open failure naming the input, so it is logged rather than propagated.
        if let Err(e) = ff::init() {
            tracing::warn!(error = %e, "FFmpeg initialisation reported an error");
        }
        // SAFETY: plain FFI setters on global FFmpeg state, done once before any use.
        unsafe {
            ffi::av_log_set_level(ffi::AV_LOG_WARNING);
            install(ffi::av_log_set_callback, ffi::av_log_format_line2);
        }
    });
}

/// Install [`log_to_tracing`] for the `va_list` spelling `V` that both bindings declare.
///
/// # Safety
/// `set_callback` and `format_line` must be FFmpeg's `av_log_set_callback` and
/// `av_log_format_line2`.
unsafe fn install<V: 'static>(
    set_callback: unsafe extern "C" fn(Option<LogCallback<V>>),
    format_line: FormatLine<V>,
) {
    FORMAT_LINE.get_or_init(|| Box::new(format_line));
    // SAFETY: the caller passes FFmpeg's setter; the callback matches its declared signature.
    unsafe { set_callback(Some(log_to_tracing::<V>)) };
}

unsafe extern "C" fn log_to_tracing<V: 'static>(
    avcl: *mut c_void,
    level: c_int,
    fmt: *const c_char,
    vl: V,
) {
    if level > ffi::AV_LOG_WARNING {
        return;
    }
    let Some(format_line) = FORMAT_LINE
        .get()
        .and_then(|f| f.downcast_ref::<FormatLine<V>>())
    else {
        return;
    };
    let mut line = [0 as c_char; 1024];
    let mut print_prefix: c_int = 1;
    // SAFETY: FFmpeg hands us a live va_list for `fmt`; the buffer is ours and NUL-terminated by
    // av_log_format_line2, which truncates to the given size.
    let written = unsafe {
        format_line(
            avcl,
            level,
            fmt,
            vl,
            line.as_mut_ptr(),
            line.len() as c_int,
            &mut print_prefix,
        )
    };
    if written < 0 {
        return;
    }
    // SAFETY: see above, the buffer holds a NUL-terminated string.
    let msg = unsafe { CStr::from_ptr(line.as_ptr()) }.to_string_lossy();
    tracing::warn!(target: "ffmpeg", level, "{}", msg.trim_end());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// What a subscriber wrote.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn ffmpeg_warnings_reach_tracing_formatted_and_chatter_does_not() {
        init_ffmpeg();
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        // FFmpeg calls the callback on the logging thread, so a thread-local subscriber sees it.
        tracing::subscriber::with_default(subscriber, || {
            // SAFETY: printf-style calls whose arguments match their formats.
            unsafe {
                ffi::av_log(
                    std::ptr::null_mut(),
                    ffi::AV_LOG_ERROR,
                    c"bad packet %d in %s\n".as_ptr(),
                    42 as c_int,
                    c"x.mp4".as_ptr(),
                );
                ffi::av_log(
                    std::ptr::null_mut(),
                    ffi::AV_LOG_INFO,
                    c"chatter %d\n".as_ptr(),
                    7 as c_int,
                );
            }
        });
        let text = String::from_utf8(out.0.lock().expect("not poisoned").clone()).expect("utf-8");
        // The va_list reached the formatter intact: both arguments are in the line.
        assert!(text.contains("bad packet 42 in x.mp4"), "{text}");
        assert!(text.contains("WARN ffmpeg:"), "{text}");
        assert!(
            text.contains(&format!("level={}", ffi::AV_LOG_ERROR)),
            "{text}"
        );
        assert!(!text.contains("chatter"), "{text}");
    }
}
