//! Removing the `--output` temporary file when the process is stopped by
//! SIGINT, SIGTERM or SIGHUP (a normal failure removes it in
//! `image::discard_output`). The handler unlinks the file whose name was
//! registered, restores the default action and raises the signal again, so
//! the process still ends "killed by" that signal. A signal that was
//! ignored when the handler would be installed (`nohup`, a background job)
//! stays ignored.
//!
//! While a raw image is edited in place, the first of those signals is
//! held back instead: the engine stops before its next write, the change
//! is put back (byte for byte, see `Filesystem::begin_undoable`), and the
//! process then ends by that signal.
//!
//! SIGXFSZ is ignored, so that a file size limit is an error, not a kill.
//!
//! This is the binary's only `unsafe` code besides src/device.rs: a signal
//! handler needs `sigaction`, and the handler itself may only call
//! async-signal-safe functions (`unlink`, `signal`, `raise`), reading the
//! name through an atomic pointer to a string that is never freed.

use std::path::Path;

#[cfg(unix)]
mod imp {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::ptr::null_mut;
    use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, Ordering};
    use std::sync::Once;

    /// The temporary files to remove, as C strings that are never freed
    /// (the handler may be reading them at any moment); null when none.
    static TEMP: [AtomicPtr<libc::c_char>; 8] = [const { AtomicPtr::new(null_mut()) }; 8];
    static INSTALL: Once = Once::new();

    /// An undoable change is open on the image in place: the first signal
    /// asks the engine to stop (it then puts the image back) instead of
    /// ending the process at once; the number of that signal, 0 if none.
    static DEFER: AtomicBool = AtomicBool::new(false);
    static DEFERRED: AtomicI32 = AtomicI32::new(0);

    extern "C" fn on_signal(sig: libc::c_int) {
        if DEFER.load(Ordering::SeqCst)
            && DEFERRED
                .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            // An atomic store: async-signal-safe.
            ext3edit::interrupt::request();
            return;
        }
        // SAFETY: each `p` is null or a NUL-terminated string leaked by
        // `remove_on_signal`, valid for the life of the process. unlink,
        // signal and raise are async-signal-safe (POSIX.1-2008, 2.4.3).
        unsafe {
            for slot in &TEMP {
                let p = slot.swap(null_mut(), Ordering::SeqCst);
                if !p.is_null() {
                    libc::unlink(p);
                }
            }
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }

    pub fn remove_on_signal(path: &Path) {
        let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
            return;
        };
        // Names are leaked on purpose: see TEMP. With every slot taken,
        // the oldest name is replaced.
        let raw = c.into_raw();
        let slot = TEMP
            .iter()
            .find(|s| s.load(Ordering::SeqCst).is_null())
            .unwrap_or(&TEMP[0]);
        slot.store(raw, Ordering::SeqCst);
        install();
    }

    fn install() {
        INSTALL.call_once(|| {
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                // SAFETY: a zeroed sigaction is a valid "no flags, empty
                // mask" value; `on_signal` has the signature sa_handler
                // expects and only calls async-signal-safe functions; `old`
                // is a valid place for the previous action.
                unsafe {
                    let mut act: libc::sigaction = std::mem::zeroed();
                    act.sa_sigaction =
                        on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                    libc::sigemptyset(&mut act.sa_mask);
                    let mut old: libc::sigaction = std::mem::zeroed();
                    if libc::sigaction(sig, &act, &mut old) == 0
                        && old.sa_sigaction == libc::SIG_IGN
                    {
                        // Ignored before: keep it ignored.
                        libc::sigaction(sig, &old, std::ptr::null_mut());
                    }
                }
            }
        });
    }

    pub fn defer_to_rollback() {
        DEFER.store(true, Ordering::SeqCst);
        install();
    }

    pub fn raise_deferred() {
        let sig = DEFERRED.load(Ordering::SeqCst);
        if sig != 0 {
            // SAFETY: restoring the default action and raising the signal
            // has no memory-safety requirement.
            unsafe {
                libc::signal(sig, libc::SIG_DFL);
                libc::raise(sig);
            }
        }
    }

    pub fn ignore_file_size_limit() {
        // SAFETY: SIG_IGN for SIGXFSZ installs no handler; a write past
        // RLIMIT_FSIZE then fails with EFBIG.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        }
    }

    pub fn forget_temp() {
        for slot in &TEMP {
            slot.store(null_mut(), Ordering::SeqCst);
        }
    }
}

/// From now on, remove `path` if SIGINT, SIGTERM or SIGHUP stops the
/// process (replaces any name registered before).
pub fn remove_on_signal(path: &Path) {
    #[cfg(unix)]
    imp::remove_on_signal(path);
    #[cfg(not(unix))]
    let _ = path;
}

/// An undoable change is open on an image edited in place: from now on
/// the first SIGINT, SIGTERM or SIGHUP asks the engine to stop
/// ([`ext3edit::interrupt`]); the command then fails, the change is put
/// back, and [`raise_deferred`] ends the process by that signal. A second
/// signal ends it at once.
pub fn defer_to_rollback() {
    #[cfg(unix)]
    imp::defer_to_rollback();
}

/// End the process by the signal [`defer_to_rollback`] held back, if one
/// came (a no-op otherwise).
pub fn raise_deferred() {
    #[cfg(unix)]
    imp::raise_deferred();
}

/// Ignore SIGXFSZ: a write past the file size limit (`ulimit -f`,
/// `prlimit --fsize`) fails with EFBIG, which is reported as an error like
/// a full disk (temporary files removed, one line, exit 1), instead of
/// killing the process with its temporary files left behind.
pub fn ignore_file_size_limit() {
    #[cfg(unix)]
    imp::ignore_file_size_limit();
}

/// The registered file is gone or renamed into place: leave it alone.
pub fn forget_temp() {
    #[cfg(unix)]
    imp::forget_temp();
}
