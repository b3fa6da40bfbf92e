//! Protective exits while halted. A halt stops entries and every automatic exit, but a
//! position whose hard stop has fired is not left to fall until an operator acts: with
//! [`ProtectiveExits::OnRecovery`], each tick while halted checks the hard stops (not the
//! trailing or breakeven stops, nor take-profits), and for a position below its stop asks
//! the chain's health probe; once the chain answers, the
//! exit is tried on the ladder's widest rung, the operator alerted on each try, with a
//! wait that doubles from [`FIRST_WAIT`] to [`MAX_WAIT`] between tries (so at most about
//! fifteen tries, and their fees, an hour). It stops when the position is closed, when
//! trading resumes (normal exits take over), or when an operator holds the position
//! ([`Orchestrator::hold`], `kyzlo hold ID`; a hold lasts until resume or restart).

use std::time::Duration;

use tokio::time::Instant;

use super::{ForceExitError, Orchestrator, TickReport};
use crate::metrics::ExitModule;
use crate::ports::{Alert, AlertKind, Severity};
use kyzlo_domain::{PositionId, Price};

/// What a halt does to a position whose stop has fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtectiveExits {
    /// Its exit is retried once the chain answers again (see the module's text).
    #[default]
    OnRecovery,
    /// Nothing until an operator force-exits it.
    OperatorOnly,
}

/// The wait after a position's first protective try.
pub const FIRST_WAIT: Duration = Duration::from_secs(10);
/// The longest wait between protective tries.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// How long the health probe may take before the chain counts as unreachable for a tick.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// One position's protective tries.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Protection {
    tries: u32,
    next: Option<Instant>,
    /// An operator said to leave it alone.
    held: bool,
}

/// The wait after `tries` tries.
fn wait_after(tries: u32) -> Duration {
    let doublings = tries.saturating_sub(1).min(16);
    MAX_WAIT.min(FIRST_WAIT.saturating_mul(1u32 << doublings))
}

impl Orchestrator {
    /// One tick's protective exits while halted (see the module's text).
    pub(super) async fn protect(&mut self, price: Price, report: &mut TickReport) {
        if self.config.protective_exits != ProtectiveExits::OnRecovery {
            return;
        }
        let now = Instant::now();
        let mut due = Vec::new();
        for (id, position) in &mut self.positions {
            let waiting = position.protection.next.is_some_and(|next| now < next);
            if position.exiting || position.protection.held || waiting {
                continue;
            }
            // Only the hard stop, and without feeding the price to the plan: a halt takes
            // no profit and raises no peak, so no trailing or breakeven stop moves.
            if let Some(exit) = position.plan.evaluate_hard_stop(price) {
                due.push((*id, exit));
            }
        }
        if due.is_empty() {
            return;
        }
        // A try into a chain that does not answer would only spend the attempt.
        let probe = tokio::time::timeout(PROBE_TIMEOUT, self.services.probe.probe()).await;
        let reachable = matches!(probe, Ok(Ok(())));
        for (id, exit) in due {
            let Some(position) = self.positions.get_mut(&id) else {
                continue;
            };
            if !reachable {
                position.plan.on_exit_abandoned();
                continue;
            }
            position.protection.tries = position.protection.tries.saturating_add(1);
            let tries = position.protection.tries;
            position.protection.next = Some(now + wait_after(tries));
            let message = format!(
                "{} of {id} below its stop at {price} while trading is halted: protective exit try {tries} on the widest rung (`kyzlo hold {}` leaves it alone)",
                exit.kind, id.0
            );
            match self.spawn_exit(id, ExitModule::Protective, exit) {
                Ok(intent) => {
                    report.exits_started += 1;
                    tracing::warn!(%id, %intent, tries, "protective exit while halted");
                    self.services
                        .control
                        .alert(Alert {
                            kind: AlertKind::ProtectiveExit,
                            severity: Severity::Critical,
                            message,
                            position: Some(id),
                        })
                        .await;
                }
                Err(_) => report.exits_refused += 1,
            }
        }
    }

    /// Trading allows automatic exits again: protective tries and holds are forgotten.
    pub(super) fn end_protection(&mut self) {
        for position in self.positions.values_mut() {
            position.protection = Protection::default();
        }
    }

    /// An operator's hold: no protective exit for `position` until trading resumes (or
    /// the process restarts). A running exit is not stopped.
    ///
    /// # Errors
    /// [`ForceExitError::UnknownPosition`] for a position not open.
    pub fn hold(&mut self, position: PositionId) -> Result<(), ForceExitError> {
        let open = self
            .positions
            .get_mut(&position)
            .ok_or(ForceExitError::UnknownPosition(position))?;
        open.protection.held = true;
        tracing::warn!(%position, "held by an operator: no protective exit until resume");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_up_to_its_cap() {
        assert_eq!(wait_after(1), FIRST_WAIT);
        assert_eq!(wait_after(2), 2 * FIRST_WAIT);
        assert_eq!(wait_after(3), 4 * FIRST_WAIT);
        assert_eq!(wait_after(10), MAX_WAIT);
        assert_eq!(wait_after(u32::MAX), MAX_WAIT);
        // Fees bounded: the tries an hour once the wait is at its cap.
        let mut at = Duration::ZERO;
        let mut tries = 0;
        while at < Duration::from_secs(3_600) {
            tries += 1;
            at += wait_after(tries);
        }
        assert!(tries <= 20, "{tries}");
    }
}
