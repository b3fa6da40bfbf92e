//! Following one sent attempt: the same signed bytes rebroadcast while it lives, its
//! status polled, and, once its blockhash should have expired, its death proven from one
//! consistent view of the chain ([`crate::proof`]). What was sent and seen lives in
//! [`Live`] for the attempt's whole life, across the deadline: a refusal counts as "never
//! forwarded" only while no copy of the bytes has ever been accepted by any node.

use kyzlo_domain::ErrorClass;
use kyzlo_domain::Timestamp;
use kyzlo_domain::exit_state::{ExitEvent, ExitState};

use super::prepare::Prepared;
use super::{ExecutionSettings, Run};
use crate::ports::{SignedTransaction, StatusLookup};
use crate::proof::{AttemptKey, Fate, prove};

/// How an attempt ended (or the deadline interrupted following it).
pub(super) enum AttemptEnd {
    Landed,
    /// Landed with an on-chain error, or refused by every node before any copy was
    /// forwarded.
    Failed(ErrorClass),
    /// Proven dead.
    Expired,
    DeadlinePassed,
}

/// A sent attempt's state, kept across the deadline.
pub(super) struct Live {
    signed: SignedTransaction,
    key: AttemptKey,
    expected_expiry: Timestamp,
    confirm_at: Timestamp,
    next_send: Timestamp,
    /// Whether any node may have accepted (forwarded) a copy of the bytes.
    forwarded: bool,
    marked_timeout: bool,
}

impl Live {
    pub(super) fn new(prepared: &Prepared, settings: &ExecutionSettings, now: Timestamp) -> Self {
        Self {
            signed: prepared.signed.clone(),
            key: AttemptKey {
                signature: prepared.signed.signature,
                blockhash: prepared.signed.blockhash,
                valid_at_slot: prepared.valid_at_slot,
            },
            expected_expiry: prepared.expected_expiry,
            confirm_at: now.saturating_add(settings.confirm_timeout),
            next_send: now,
            forwarded: false,
            marked_timeout: false,
        }
    }
}

/// Whether a refusal of a send that no node ever accepted resolves the attempt: the
/// node simulated it and it cannot succeed as built (slippage, funds, a malformed or
/// unsigned transaction). `BlockhashNotFound` does not: a node behind the blockhash says
/// it, and another node may forward the same bytes; expiry is for the proof to show.
pub(super) fn refusal_resolves(class: ErrorClass) -> bool {
    !class.may_still_land() && class != ErrorClass::BlockhashExpired
}

impl Run<'_> {
    /// Sends the attempt and follows it until it resolves or `until` passes.
    pub(super) async fn track(&mut self, live: &mut Live, until: Option<Timestamp>) -> AttemptEnd {
        let v = self.venue;
        let s = self.settings;
        let signature = live.signed.signature;
        if !matches!(self.sm.state(), ExitState::Submitted { .. }) {
            live.marked_timeout = true;
        }
        loop {
            let now = v.clock.now();
            if now >= live.next_send {
                let result = v.chain.send(&live.signed).await;
                live.next_send = v.clock.now().saturating_add(s.rebroadcast_interval);
                match result {
                    Ok(()) => live.forwarded = true,
                    Err(e) if !live.forwarded && refusal_resolves(e.class) => {
                        // Every node refused every copy so far: nobody holds these bytes.
                        tracing::warn!(intent = %self.job.intent, %signature, error = %e, "send refused before any copy was forwarded");
                        return AttemptEnd::Failed(e.class);
                    }
                    Err(e) => {
                        if e.class.may_still_land() {
                            live.forwarded = true;
                        }
                        if let Some(wait) = e.retry_after {
                            live.next_send = v.clock.now().saturating_add(wait);
                        }
                        tracing::debug!(intent = %self.job.intent, %signature, error = %e, "send failed; the attempt may still land");
                    }
                }
            }
            let mut wake = v.clock.now().saturating_add(s.poll_interval);
            if let Some(until) = until {
                wake = wake.min(until);
            }
            v.clock.sleep_until(wake).await;
            let now = v.clock.now();

            let seen = v
                .chain
                .statuses(&[signature], StatusLookup::Recent)
                .await
                .ok()
                .and_then(|o| Fate::of_status(o.value.first().copied().flatten(), s.commitment));
            if let Some(end) = settled(seen) {
                return end;
            }
            if !live.marked_timeout && now >= live.confirm_at {
                live.marked_timeout = true;
                let _ = self.transition(ExitEvent::ConfirmTimedOut).await;
            }
            // Seen below the commitment: it may still be confirmed; no proof of death.
            if seen != Some(Fate::Pending)
                && now >= live.expected_expiry
                && let Some(end) =
                    settled(Some(prove(v.chain.as_ref(), &live.key, s.commitment).await))
            {
                return end;
            }
            if until.is_some_and(|until| v.clock.now() >= until) {
                return AttemptEnd::DeadlinePassed;
            }
        }
    }
}

/// The end a fate settles, if it settles one.
fn settled(fate: Option<Fate>) -> Option<AttemptEnd> {
    match fate? {
        Fate::Landed => Some(AttemptEnd::Landed),
        Fate::LandedFailed(class) => Some(AttemptEnd::Failed(class)),
        Fate::Dead => Some(AttemptEnd::Expired),
        Fate::Pending | Fate::Unknown => None,
    }
}
