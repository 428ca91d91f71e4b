//! A stop asked for from outside the engine (the command line's signal
//! handler), honoured where a change can still be abandoned.
//!
//! [`request`] only stores to an atomic flag, so it is safe to call from a
//! signal handler. The engine looks at the flag before each write that
//! would move an image on ([`crate::Filesystem::commit`], its intermediate
//! commits and its early data writes): once it is set, those fail with an
//! interrupted I/O error instead, and the caller abandons the change, which
//! puts the image back as it was (see [`crate::Filesystem::begin_undoable`]).

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// Ask the engine to stop at its next write (async-signal-safe).
pub fn request() {
    STOP.store(true, Ordering::SeqCst);
}

/// True once [`request`] was called.
pub fn requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// The error the engine returns when a stop was requested.
pub(crate) fn check() -> crate::Result<()> {
    if requested() {
        return Err(crate::Error::io(
            "stopped by a signal before the change was complete",
            std::io::Error::from(std::io::ErrorKind::Interrupted),
        ));
    }
    Ok(())
}
