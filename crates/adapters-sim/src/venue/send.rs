//! Sending: the routes a send takes to a leader (through the client's endpoint list on
//! a cluster of several providers), the node's preflight of what it is sent, and
//! refused resends.

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

    /// One send call at `now`, to the endpoint `via` (on a cluster of several
    /// providers) or to the node the cluster picks.
    pub(super) fn begin_send(
        &self,
        tx: &SignedTransaction,
        now: Duration,
        via: Option<usize>,
    ) -> SendEnd {
        let end = self.route_send(tx, now, via);
        let accepted = matches!(end, SendEnd::Ok | SendEnd::HangForwarded);
        self.trace_send(tx.signature, now, accepted);
        end
    }

    /// A send through the client's endpoint list, as kyzlo's Solana adapter sends
    /// without send lanes: to the first endpoint it would read from, then to the next
    /// while they fail as endpoints (an endpoint that gives no answer within the request
    /// timeout may still have forwarded the bytes); a node's answer, even a refusal, ends
    /// it. When none succeeds, the error is the most cautious one seen: a timeout (the
    /// bytes may be on their way) before any refusal.
    pub(super) async fn send_on_endpoints(&self, tx: &SignedTransaction) -> Result<(), PortError> {
        const OP: &str = "sim.send";
        let (client, candidates) = {
            let now = self.run_time();
            let s = self.lock();
            (s.cluster.client(), s.cluster.candidates(now))
        };
        let mut seen: Vec<SimError> = Vec::new();
        for endpoint in candidates {
            let now = self.run_time();
            match self.begin_send(tx, now, Some(endpoint)) {
                SendEnd::Ok => {
                    self.lock().cluster.answered(endpoint);
                    return Ok(());
                }
                SendEnd::HangForwarded | SendEnd::HangLost => {
                    tokio::time::sleep(client.request_timeout).await;
                    let until = self.run_time().saturating_add(client.cooldown);
                    self.lock().cluster.cool(endpoint, until);
                    seen.push(SimError::Injected {
                        operation: OP,
                        class: ErrorClass::RpcTimeout,
                        retry_after: None,
                        code: None,
                    });
                }
                SendEnd::Err(e) if fails_endpoint(&e) => {
                    let until = self.run_time().saturating_add(client.cooldown);
                    self.lock().cluster.cool(endpoint, until);
                    seen.push(e);
                }
                SendEnd::Err(e) => {
                    self.lock().cluster.answered(endpoint);
                    seen.push(e);
                    break;
                }
            }
        }
        let rank = |e: &SimError| match e.class() {
            ErrorClass::RpcTimeout => 0,
            ErrorClass::Network => 1,
            ErrorClass::NodeUnhealthy => 2,
            ErrorClass::RateLimited => 3,
            ErrorClass::Unknown => 4,
            _ => 5,
        };
        Err(seen.iter().min_by_key(|e| rank(e)).map_or_else(
            || PortError::new(OP, ErrorClass::Unknown, "no endpoint"),
            |e| e.to_port(OP),
        ))
    }

    pub(super) fn route_send(
        &self,
        tx: &SignedTransaction,
        now: Duration,
        via: Option<usize>,
    ) -> SendEnd {
        let mut s = self.lock();
        s.sends += 1;
        let resend = s.first_sent.contains_key(&tx.signature);
        s.first_sent.entry(tx.signature).or_insert(now);
        self.settle(&mut s, now);
        if self.schedule.in_blackout(now) {
            return SendEnd::HangLost;
        }
        // A dead provider: the bytes reach no node.
        if via.is_some_and(|e| s.cluster.down(e, now)) {
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
        let node = via.unwrap_or_else(|| s.cluster.pick());
        if s.cluster.down(node, now) {
            return SendEnd::HangLost;
        }
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
        if let Some(nonce) = built.nonce {
            // The node checks the value its own view holds: a node behind an advance
            // still accepts (and forwards) what the leader will refuse.
            if s.ledger.nonce_at(view, Commitment::Processed) != Some(nonce.value) {
                return Err(SimError::NonceMismatch);
            }
        } else if built.blockhash_slot > view || height > built.last_valid {
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
        if built.nonce.is_some_and(|n| n.cancel) {
            return Ok(());
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
