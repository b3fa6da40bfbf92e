//! The venue as the chain: sends, statuses (processed before confirmed, per node),
//! blockhash validity and height per node's view, fills and balances, and the health probe.

use super::send::SendEnd;
use super::*;

impl SimVenue {
    /// The status of `signature` as a node at `view` reports it.
    pub(super) fn status_at(
        s: &State,
        signature: &TxSignature,
        view: NodeView,
        lookup: StatusLookup,
    ) -> Option<TxStatus> {
        if let Some(l) = s.ledger.landing(signature)
            && l.slot <= view.view
        {
            let remembered = (view.history && lookup == StatusLookup::WithHistory)
                || l.slot.saturating_add(STATUS_CACHE_SLOTS) >= view.view;
            if !remembered {
                return None;
            }
            let commitment = if l.slot.saturating_add(FINALIZE_SLOTS) <= view.view {
                Commitment::Finalized
            } else if l.confirm_slot <= view.view {
                Commitment::Confirmed
            } else {
                Commitment::Processed
            };
            return Some(TxStatus {
                slot: l.slot,
                commitment,
                error: l.status.error(),
            });
        }
        s.ledger
            .phantom(signature)
            .filter(|p| p.slot <= view.view && view.view < p.until)
            .map(|p| TxStatus {
                slot: p.slot,
                commitment: Commitment::Processed,
                error: None,
            })
    }
}

#[async_trait]
impl Chain for SimVenue {
    async fn send(&self, tx: &SignedTransaction) -> Result<(), PortError> {
        const OP: &str = "sim.send";
        if self.schedule.profile().cluster.topology == Topology::Endpoints {
            return self.send_on_endpoints(tx).await;
        }
        let now = self.run_time();
        match self.begin_send(tx, now, None) {
            SendEnd::Ok => Ok(()),
            SendEnd::Err(e) => Err(e.to_port(OP)),
            SendEnd::HangForwarded => {
                tokio::time::sleep(HANG).await;
                Ok(())
            }
            SendEnd::HangLost => {
                tokio::time::sleep(HANG).await;
                Err(SimError::Injected {
                    operation: OP,
                    class: ErrorClass::RpcTimeout,
                    retry_after: None,
                    code: None,
                }
                .to_port(OP))
            }
        }
    }

    async fn statuses(
        &self,
        signatures: &[TxSignature],
        lookup: StatusLookup,
    ) -> Result<Observed<Vec<Option<TxStatus>>>, PortError> {
        self.read("sim.statuses", |s, node| {
            if signatures.len() > MAX_STATUS_SIGNATURES {
                return Err(SimError::TooManySignatures {
                    count: signatures.len(),
                    limit: MAX_STATUS_SIGNATURES,
                });
            }
            if lookup == StatusLookup::WithHistory && !node.view.history {
                // A client with several endpoints moves to the next one.
                return Err(SimError::HistoryUnavailable);
            }
            Ok(Observed {
                context_slot: node.view.view,
                value: signatures
                    .iter()
                    .map(|sig| Self::status_at(s, sig, node.view, lookup))
                    .collect(),
            })
        })
        .await
    }

    async fn blockhash_valid(
        &self,
        blockhash: Blockhash,
        min_context_slot: u64,
    ) -> Result<Observed<bool>, PortError> {
        let slot = self.slot_of(blockhash);
        self.read("sim.blockhash_valid", |s, node| {
            let view = node.view.view;
            if view < min_context_slot {
                return Err(SimError::MinContextSlot {
                    min: min_context_slot,
                    view,
                });
            }
            let valid = match slot {
                // Unknown to this node (newer than its view), or not of this chain at all.
                Some(slot) if slot <= view => {
                    let expires = s.ledger.height(slot).saturating_add(BLOCKHASH_LIFE);
                    s.ledger.height(view) <= expires
                }
                _ => false,
            };
            Ok(Observed {
                context_slot: view,
                value: valid,
            })
        })
        .await
    }

    async fn block_height(&self) -> Result<u64, PortError> {
        self.read("sim.block_height", |s, node| {
            Ok(s.ledger.height(node.view.view))
        })
        .await
    }

    async fn latest_blockhash(&self) -> Result<RecentBlockhash, PortError> {
        let slot = self
            .read("sim.latest_blockhash", |s, node| {
                let slot = s.ledger.block_at_height(node.view.view, u64::MAX);
                Ok((slot, s.ledger.height(slot).saturating_add(BLOCKHASH_LIFE)))
            })
            .await;
        let (slot, last_valid) = slot?;
        Ok(RecentBlockhash {
            blockhash: self.blockhash_of(slot),
            last_valid_block_height: last_valid,
        })
    }

    async fn fill(&self, signature: TxSignature, _side: Side) -> Result<Option<Fill>, PortError> {
        self.read("sim.fill", |s, node| {
            if !node.view.history {
                return Err(SimError::HistoryUnavailable);
            }
            Ok(s.ledger
                .landing(&signature)
                .filter(|l| l.confirm_slot <= node.view.view && node.now >= l.readable_at)
                .map(|l| l.fill))
        })
        .await
    }

    async fn nonce(
        &self,
        account: NonceAccount,
        commitment: Commitment,
    ) -> Result<Observed<Option<Blockhash>>, PortError> {
        self.read("sim.nonce", |s, node| {
            let value = if s.ledger.nonce_account() == Some(account) {
                s.ledger.nonce_at(node.view.view, commitment)
            } else {
                None
            };
            Ok(Observed {
                context_slot: node.view.view,
                value,
            })
        })
        .await
    }

    async fn balances(&self) -> Result<Balances, PortError> {
        let native = self.pair.native_base;
        self.read("sim.balances", |s, node| {
            let held = s.ledger.holdings_at(node.view.view, Commitment::Confirmed);
            Ok(held.to_balances(native))
        })
        .await
    }
}

#[async_trait]
impl HealthProbe for SimVenue {
    async fn probe(&self) -> Result<(), PortError> {
        self.read("sim.probe", |_, _| Ok(())).await
    }
}
