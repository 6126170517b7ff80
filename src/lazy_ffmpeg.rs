//! FFmpeg loaded when a video first needs it, not before `main` (binary only).
//!
//! Debian's libavformat and libavcodec pull in about 130 shared libraries (codecs, network and
//! subtitle libraries, GnuTLS, …). Linked as usual, the dynamic loader maps and relocates all
//! of them before `main`: about 40 ms of every `regard` process, `--version` included, on the
//! 2-core machines here, which a one-poster `regard analyze` (no FFmpeg at all) paid in full.
//!
//! `build.rs` reads the functions that the four FFmpeg libraries export and generates, for each,
//! a hidden function of the same name in this binary: a jump through a slot that first points at
//! a resolver. The static linker binds ffmpeg-sys-next's references to these stubs, so with
//! `--as-needed` (rustc's default) the libraries are no longer start-up dependencies. The first
//! call of any FFmpeg function opens the four libraries (`dlopen`, once for the process), looks
//! the function up and stores its address in the slot: later calls are one indirect jump.
//! Nothing is exported, so FFmpeg's own calls between its libraries do not pass through here.
//!
//! The library test binaries link FFmpeg as usual; `tests/lazy_ffmpeg.rs` checks that this
//! binary loads none of it for a poster and loads it for a trailer. `REGARD_FFMPEG_AT_START=1`
//! at build time (or a target other than x86-64 Linux) links FFmpeg as usual.

use std::ffi::{CStr, c_void};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

include!(concat!(env!("OUT_DIR"), "/lazy_ffmpeg.rs"));

unsafe extern "C" {
    /// One address per entry of `FUNCTIONS`, defined by the generated assembly.
    static regard_ffmpeg_slots: [AtomicUsize; FUNCTION_COUNT];
}

/// The four libraries, opened once.
fn handles() -> Result<&'static [usize; LIBRARIES.len()], String> {
    static HANDLES: OnceLock<Result<[usize; LIBRARIES.len()], String>> = OnceLock::new();
    HANDLES
        .get_or_init(|| {
            let mut handles = [0usize; LIBRARIES.len()];
            for (handle, name) in handles.iter_mut().zip(LIBRARIES) {
                // SAFETY: a NUL-terminated name; FFmpeg's initialisers are safe to run on any
                // thread.
                let h = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL) };
                if h.is_null() {
                    return Err(format!(
                        "cannot load {}: {}",
                        name.to_string_lossy(),
                        dl_error()
                    ));
                }
                *handle = h as usize;
            }
            Ok(handles)
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated message owned by the loader.
    let message = unsafe { libc::dlerror() };
    if message.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: non-null, NUL-terminated (above).
        unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned()
    }
}

/// Open FFmpeg now. The worker does this at start, so that an image without FFmpeg's libraries
/// fails when it starts rather than at its first trailer.
pub fn load() -> Result<(), String> {
    handles().map(|_| ())
}

/// Called by the stub of function `index` (from assembly, arguments saved): the function's
/// address, stored in its slot for later calls. A process that cannot load FFmpeg cannot
/// continue the call it is in: it says why and exits with status 2 ("could not run at all").
extern "C" fn resolve(index: usize) -> *const c_void {
    let (library, name) = FUNCTIONS[index];
    let address = handles().and_then(|handles| {
        // SAFETY: a handle from dlopen and a NUL-terminated name.
        let address = unsafe { libc::dlsym(handles[library] as *mut c_void, name.as_ptr()) };
        if address.is_null() {
            Err(format!(
                "{} has no {}: {}",
                LIBRARIES[library].to_string_lossy(),
                name.to_string_lossy(),
                dl_error()
            ))
        } else {
            Ok(address)
        }
    });
    match address {
        Ok(address) => {
            // SAFETY: the slots are a static array of FUNCTION_COUNT words; index < that.
            unsafe { regard_ffmpeg_slots[index].store(address as usize, Ordering::Release) };
            address
        }
        Err(why) => {
            eprintln!("error: FFmpeg is needed to read this input and {why}");
            std::process::exit(2)
        }
    }
}
