//! Sending: the routes a send takes to a leader, the node's preflight of what it is
//! sent, and refused resends.

use super::*;

/// What a send does once the state is updated.
pub(super) enum SendEnd {
    Ok,
    /// Hang, then report success (it was forwarded).
    HangForwarded,
    /// Hang, then time out (nothing reached the chain).
    HangLost,
    Err(SimError),
}

impl SimVenue {
    pub(super) fn trace_send(&self, signature: TxSignature, at: Duration, accepted: bool) {
        if let Some(trace) = &self.trace {
            trace.record(TraceEvent::Sent {
                signature,
                at,
                accepted,
            });
        }
    }

    pub(super) fn begin_send(&self, tx: &SignedTransaction, now: Duration) -> SendEnd {
        let end = self.route_send(tx, now);
        let accepted = matches!(end, SendEnd::Ok | SendEnd::HangForwarded);
        self.trace_send(tx.signature, now, accepted);
        end
    }

    pub(super) fn route_send(&self, tx: &SignedTransaction, now: Duration) -> SendEnd {
        let mut s = self.lock();
        s.sends += 1;
        let resend = s.first_sent.contains_key(&tx.signature);
        s.first_sent.entry(tx.signature).or_insert(now);
        self.settle(&mut s, now);
        if self.schedule.in_blackout(now) {
            return SendEnd::HangLost;
        }
        let unknown = SendEnd::Err(SimError::UnknownTransaction {
            len: tx.bytes.len(),
        });
        let Ok(id) = self.decode(&tx.bytes) else {
            return unknown;
        };
        if self.signature_of(id) != tx.signature {
            return unknown;
        }
        let Some(built) = s.ledger.built(&tx.signature) else {
            return unknown;
        };
        let fate = self.schedule.send_fate(now, built.priority_fee);
        match fate {
            SendFate::RateLimited { retry_after } => {
                return SendEnd::Err(SimError::Injected {
                    operation: "sim.send",
                    class: ErrorClass::RateLimited,
                    retry_after: Some(retry_after),
                    code: Some(TOO_MANY_REQUESTS),
                });
            }
            SendFate::NodeUnhealthy => {
                return SendEnd::Err(SimError::Injected {
                    operation: "sim.send",
                    class: ErrorClass::NodeUnhealthy,
                    retry_after: None,
                    code: Some(NODE_BEHIND_CODE),
                });
            }
            SendFate::Blackout => return SendEnd::HangLost,
            _ => {}
        }
        let tip = s.ledger.slot_at(now);
        let node = s.cluster.pick();
        let view = s.cluster.view(node, tip, now);
        if s.ledger
            .landing(&tx.signature)
            .is_some_and(|l| l.slot <= view.view)
            || s.ledger
                .phantom(&tx.signature)
                .is_some_and(|p| p.slot <= view.view && view.view < p.until)
        {
            // The node has seen these bytes land: `AlreadyProcessed`, which is success.
            return SendEnd::Ok;
        }
        if self.schedule.profile().cluster.preflight {
            if let Err(refusal) = self.preflight(&mut s, &built, view.view) {
                return SendEnd::Err(refusal);
            }
            if resend && let Some(refusal) = self.refuse_resend(now) {
                return SendEnd::Err(refusal);
            }
        }
        let mut forward = |after: Duration| {
            s.ledger.forward(tx.signature, now.saturating_add(after));
        };
        match fate {
            SendFate::Lands { after } => {
                forward(after);
                SendEnd::Ok
            }
            SendFate::HangsThenLands { after } => {
                forward(after);
                SendEnd::HangForwarded
            }
            // Neither reached a leader: a rebroadcast to another leader draws again.
            SendFate::HangsNeverLands => SendEnd::HangLost,
            SendFate::Dropped => SendEnd::Ok,
            SendFate::RateLimited { .. } | SendFate::NodeUnhealthy | SendFate::Blackout => {
                SendEnd::HangLost
            }
        }
    }

    /// A node's simulation of `built` on its view: what a real node refuses before
    /// forwarding.
    pub(super) fn preflight(
        &self,
        s: &mut State,
        built: &Built,
        view: u64,
    ) -> Result<(), SimError> {
        let height = s.ledger.height(view);
        if built.blockhash_slot > view || height > built.last_valid {
            return Err(SimError::BlockhashExpired {
                last_valid: built.last_valid,
                height,
            });
        }
        let held = s.ledger.holdings_at(view, Commitment::Processed);
        let fee = BASE_FEE.saturating_add(built.priority_fee).get();
        if held.lamports < fee.saturating_add(RENT_EXEMPT_MINIMUM) {
            return Err(SimError::InsufficientFee {
                held: held.lamports,
                fee,
            });
        }
        let native = self.pair.native_base;
        let (have, need) = match built.side {
            Side::Sell if native => (
                held.lamports,
                built
                    .amount_in
                    .get()
                    .saturating_add(fee)
                    .saturating_add(RENT_EXEMPT_MINIMUM),
            ),
            Side::Sell => (held.token, built.amount_in.get()),
            Side::Buy => (held.quote, built.amount_in.get()),
        };
        if have < need {
            return Err(SimError::Preflight {
                class: ErrorClass::InsufficientFunds,
                code: -32_002,
                reason: "insufficient funds",
            });
        }
        let at = s.ledger.time_of(view);
        if self.swap_out(at, built.side, built.amount_in) < built.min_out.get() {
            return Err(SimError::Preflight {
                class: ErrorClass::SlippageExceeded,
                code: 6_001,
                reason: "slippage tolerance exceeded (custom program error 6001)",
            });
        }
        Ok(())
    }

    /// Whether the node a resend reaches refuses it at preflight although an earlier copy
    /// may still land: its simulation fails (slippage on its own state) or it has not
    /// seen the blockhash yet.
    pub(super) fn refuse_resend(&self, now: Duration) -> Option<SimError> {
        let p = self.schedule.profile().cluster.refused_resends;
        if p <= 0.0 {
            return None;
        }
        let bucket = u64::try_from(now.as_millis() / 100).unwrap_or(u64::MAX);
        let mut rng = SimRng::keyed(self.schedule.seed(), STREAM_RESEND, bucket);
        if rng.uniform() >= p {
            return None;
        }
        Some(if rng.uniform() < 0.5 {
            SimError::Preflight {
                class: ErrorClass::SlippageExceeded,
                code: 6_001,
                reason: "slippage tolerance exceeded on the node's state (custom program error 6001)",
            }
        } else {
            SimError::Preflight {
                class: ErrorClass::BlockhashExpired,
                code: -32_002,
                reason: "blockhash not found on the node's view",
            }
        })
    }
}
