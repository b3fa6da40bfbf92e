//! The signals that stop kyzlo gracefully: Ctrl-C (SIGINT), SIGTERM (what systemd sends)
//! and SIGHUP (a closed terminal; nothing is reloaded on it). They are caught from
//! [`catch`] on, which the binary calls inside its runtime before it claims the data
//! directory: a signal that arrives before anything waits for it is kept for [`wait`],
//! instead of killing the process without a graceful stop. Each signal is caught on its
//! own: one that cannot be caught is reported ([`CatchError`]) and leaves the others
//! caught.

use std::fmt;
use std::io;
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

impl Stop {
    /// The stopping signals, in the order their slots are kept.
    #[cfg(any(unix, test))]
    const ALL: [Stop; 3] = [Stop::Interrupt, Stop::Terminate, Stop::Hangup];

    /// The signal's usual name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Stop::Interrupt => "SIGINT",
            Stop::Terminate => "SIGTERM",
            Stop::Hangup => "SIGHUP",
        }
    }
}

/// Stopping signals that could not be caught; the others are caught all the same.
#[derive(Debug)]
#[non_exhaustive]
pub struct CatchError {
    /// Each signal that could not be caught, with the operating system's reason.
    pub failed: Vec<(Stop, io::Error)>,
}

impl fmt::Display for CatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not caught: ")?;
        for (i, (stop, error)) in self.failed.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} ({error})", stop.name())?;
        }
        Ok(())
    }
}

impl std::error::Error for CatchError {}

/// One slot per stopping signal (in [`Stop::ALL`]'s order), empty when it is not caught.
#[cfg(unix)]
type Caught = [Option<tokio::signal::unix::Signal>; 3];
#[cfg(not(unix))]
type Caught = ();

#[cfg(unix)]
static CAUGHT: Mutex<Caught> = Mutex::new([None, None, None]);
#[cfg(not(unix))]
static CAUGHT: Mutex<Caught> = Mutex::new(());

/// Starts catching the stopping signals (inside a tokio runtime), as [`try_catch`]; a
/// signal that cannot be caught is reported on stderr, and the others stay caught.
pub fn catch() {
    if let Err(e) = try_catch() {
        use std::io::Write as _;
        let _ = writeln!(
            io::stderr(),
            "warning: stopping signals {e}: such a signal stops kyzlo without a graceful stop"
        );
    }
}

/// Starts catching the stopping signals (inside a tokio runtime). Calling it again
/// replaces nothing that is already caught and tries again those that are not.
///
/// # Errors
/// [`CatchError`] naming each signal that could not be caught; every other one is caught
/// and kept for [`wait`].
pub fn try_catch() -> Result<(), CatchError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut caught = CAUGHT.lock().unwrap_or_else(PoisonError::into_inner);
        register_missing(&mut caught, |stop| {
            signal(match stop {
                Stop::Interrupt => SignalKind::interrupt(),
                Stop::Terminate => SignalKind::terminate(),
                Stop::Hangup => SignalKind::hangup(),
            })
        })
    }
    #[cfg(not(unix))]
    Ok(())
}

/// Fills each empty slot with `register`'s handle for its signal; a failure leaves that
/// slot empty and the others as they are.
#[cfg(any(unix, test))]
fn register_missing<S>(
    slots: &mut [Option<S>; 3],
    mut register: impl FnMut(Stop) -> io::Result<S>,
) -> Result<(), CatchError> {
    let mut failed = Vec::new();
    for (slot, stop) in slots.iter_mut().zip(Stop::ALL) {
        if slot.is_none() {
            match register(stop) {
                Ok(handle) => *slot = Some(handle),
                Err(error) => failed.push((stop, error)),
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CatchError { failed })
    }
}

/// Waits for the first stopping signal since [`catch`] (catching them now if it was not
/// called). Only the signals that are caught are waited for; with none caught, Ctrl-C is
/// waited for as tokio's `ctrl_c` catches it.
pub async fn wait() -> Stop {
    catch();
    #[cfg(unix)]
    {
        let [int, term, hup] =
            std::mem::take(&mut *CAUGHT.lock().unwrap_or_else(PoisonError::into_inner));
        if int.is_some() || term.is_some() || hup.is_some() {
            return tokio::select! {
                () = arrival(int) => Stop::Interrupt,
                () = arrival(term) => Stop::Terminate,
                () = arrival(hup) => Stop::Hangup,
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    Stop::Interrupt
}

/// Resolves when `caught`'s signal arrives (or its stream ends); never when it is not
/// caught.
#[cfg(unix)]
async fn arrival(caught: Option<tokio::signal::unix::Signal>) {
    match caught {
        Some(mut signal) => {
            let _ = signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_that_cannot_be_caught_leaves_the_others_caught() {
        let mut slots: [Option<Stop>; 3] = [None, None, None];
        let refused = register_missing(&mut slots, |stop| match stop {
            Stop::Terminate => Err(io::Error::other("refused")),
            other => Ok(other),
        })
        .expect_err("SIGTERM was refused");
        assert_eq!(slots, [Some(Stop::Interrupt), None, Some(Stop::Hangup)]);
        assert_eq!(refused.failed.len(), 1);
        assert_eq!(refused.failed[0].0, Stop::Terminate);
        assert_eq!(refused.to_string(), "not caught: SIGTERM (refused)");
    }

    #[test]
    fn catching_again_tries_only_the_signals_not_yet_caught() {
        let mut slots = [Some(Stop::Interrupt), None, Some(Stop::Hangup)];
        let mut asked = Vec::new();
        register_missing(&mut slots, |stop| {
            asked.push(stop);
            Ok(stop)
        })
        .expect("all caught now");
        assert_eq!(asked, [Stop::Terminate]);
        assert_eq!(slots, Stop::ALL.map(Some));
    }

    #[tokio::test]
    async fn the_stopping_signals_are_caught_inside_a_runtime() {
        try_catch().expect("a unix process may catch SIGINT, SIGTERM and SIGHUP");
        #[cfg(unix)]
        {
            let caught = CAUGHT.lock().unwrap_or_else(PoisonError::into_inner);
            assert!(caught.iter().all(Option::is_some));
        }
    }
}
