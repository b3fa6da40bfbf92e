//! The signals that stop kyzlo gracefully: Ctrl-C (SIGINT), SIGTERM (what systemd sends)
//! and SIGHUP (a closed terminal; nothing is reloaded on it). They are caught from
//! [`catch`] on, which the binary calls inside its runtime before it claims the data
//! directory: a signal that arrives before anything waits for it is kept for [`wait`],
//! instead of killing the process without a graceful stop.

use std::sync::{Mutex, PoisonError};

/// Which signal arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Ctrl-C.
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// SIGHUP.
    Hangup,
}

#[cfg(unix)]
type Caught = [tokio::signal::unix::Signal; 3];
#[cfg(not(unix))]
type Caught = ();

static CAUGHT: Mutex<Option<Caught>> = Mutex::new(None);

/// Starts catching the stopping signals (inside a tokio runtime). Calling it again
/// replaces nothing that is already caught.
pub fn catch() {
    let mut caught = CAUGHT.lock().unwrap_or_else(PoisonError::into_inner);
    if caught.is_some() {
        return;
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(int), Ok(term), Ok(hup)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            *caught = Some([int, term, hup]);
        }
    }
}

/// Waits for the first stopping signal since [`catch`] (catching them now if it was not
/// called).
pub async fn wait() -> Stop {
    catch();
    let caught = CAUGHT.lock().unwrap_or_else(PoisonError::into_inner).take();
    #[cfg(unix)]
    if let Some([mut int, mut term, mut hup]) = caught {
        return tokio::select! {
            _ = int.recv() => Stop::Interrupt,
            _ = term.recv() => Stop::Terminate,
            _ = hup.recv() => Stop::Hangup,
        };
    }
    #[cfg(not(unix))]
    let _ = caught;
    let _ = tokio::signal::ctrl_c().await;
    Stop::Interrupt
}
