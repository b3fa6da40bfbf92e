//! The venue as the router and the signer: quotes on the market (drifting on the
//! adversarial cluster), swaps built on a blockhash of the life asked for (or not, when
//! the router lies), and signatures.

use super::*;

#[async_trait]
impl SwapRouter for SimVenue {
    async fn quote(&self, request: &QuoteRequest) -> Result<Quote, PortError> {
        const OP: &str = "sim.quote";
        let node = self.gate(OP, false).await?;
        let fair = self.fair_out(request.side, request.amount_in, node.now);
        let drift = self.schedule.profile().cluster.quote_drift_bps;
        let drift = if drift > 0.0 {
            let bucket = u64::try_from(node.now.as_millis() / 100).unwrap_or(u64::MAX);
            drift * SimRng::keyed(self.schedule.seed(), STREAM_DRIFT, bucket).normal()
        } else {
            0.0
        };
        let expected = (fair as f64 * (1.0 + drift / 10_000.0)).max(0.0);
        // Float-to-int casts saturate; the product is finite and not negative.
        let expected_out = TokenAmount::new(expected as u64);
        if request.amount_in.is_zero() || expected_out.is_zero() {
            return Err(SimError::NoRoute {
                amount_in: request.amount_in.get(),
            }
            .to_port(OP));
        }
        let bps = u128::from(request.slippage.bps().get());
        let cut = u128::from(expected_out.get()) * bps / 10_000;
        let min_out = TokenAmount::new(
            expected_out
                .get()
                .saturating_sub(u64::try_from(cut).unwrap_or(u64::MAX)),
        );
        Ok(Quote {
            request: *request,
            expected_out,
            min_out,
            price_impact_pct: 0.0,
            route_label: "sim".into(),
            raw: Arc::from(
                format!("{{\"price\":{}}}", self.market.price_at(node.now).get()).as_bytes(),
            ),
        })
    }

    async fn build_swap(&self, request: &SwapRequest) -> Result<UnsignedTransaction, PortError> {
        const OP: &str = "sim.build_swap";
        let node = self.gate(OP, false).await?;
        if let Some(nonce) = request.nonce {
            return self.build_on_nonce(OP, nonce, node.tip, Some(request), request.priority_fee);
        }
        let slots = u64::from(request.expiry_slots.unwrap_or(DEFAULT_EXPIRY_SLOTS));
        let mut s = self.lock();
        let router = s.cluster.router_node();
        let view = s.cluster.view(router, node.tip, node.now).view;
        let newest = s.ledger.block_at_height(view, u64::MAX);
        let height = s.ledger.height(newest);
        let ignores = self.schedule.profile().cluster.router_ignores_expiry;
        let (blockhash_slot, claimed) = if ignores || slots >= BLOCKHASH_LIFE {
            (newest, height.saturating_add(slots.min(BLOCKHASH_LIFE)))
        } else {
            // An older blockhash, so the transaction lives only the slots asked for.
            let target = height.saturating_add(slots).saturating_sub(BLOCKHASH_LIFE);
            let older = s.ledger.block_at_height(newest, target);
            let h = s.ledger.height(older);
            (older, h.saturating_add(BLOCKHASH_LIFE))
        };
        let last_valid = s
            .ledger
            .height(blockhash_slot)
            .saturating_add(BLOCKHASH_LIFE);
        let high_water = last_valid.max(claimed).max(node.tip);
        if let Some(paper) = s.paper.as_mut() {
            paper
                .note_last_valid(high_water)
                .map_err(|e| e.to_port(OP))?;
        }
        let id = s.next_id;
        s.next_id += 1;
        let signature = self.signature_of(id);
        s.ids.insert(id, signature);
        s.ledger.insert(
            signature,
            Built {
                side: request.quote.request.side,
                amount_in: request.quote.request.amount_in,
                min_out: request.quote.min_out,
                priority_fee: request.priority_fee,
                blockhash_slot,
                last_valid,
                nonce: None,
            },
        );
        Ok(UnsignedTransaction {
            bytes: self.encode(id),
            last_valid_block_height: claimed,
            priority_fee: None,
        })
    }

    async fn build_cancel(
        &self,
        nonce: DurableNonce,
        priority_fee: Lamports,
    ) -> Result<UnsignedTransaction, PortError> {
        const OP: &str = "sim.build_cancel";
        let tip = {
            let now = self.run_time();
            self.lock().ledger.slot_at(now)
        };
        let unsigned = self.build_on_nonce(OP, nonce, tip, None, priority_fee)?;
        Ok(UnsignedTransaction {
            priority_fee: Some(priority_fee),
            ..unsigned
        })
    }
}

impl SimVenue {
    /// A transaction on the wallet's durable nonce, its advance first: the swap of
    /// `request`, or a cancel (the advance alone) without one. It never expires; only
    /// the nonce's value decides whether it can land.
    fn build_on_nonce(
        &self,
        op: &'static str,
        nonce: DurableNonce,
        tip: u64,
        request: Option<&SwapRequest>,
        priority_fee: Lamports,
    ) -> Result<UnsignedTransaction, PortError> {
        let mut s = self.lock();
        if s.ledger.nonce_account() != Some(nonce.account) {
            return Err(SimError::UnknownNonceAccount.to_port(op));
        }
        let height = s.ledger.height(tip);
        if let Some(paper) = s.paper.as_mut() {
            paper.note_last_valid(height).map_err(|e| e.to_port(op))?;
        }
        let id = s.next_id;
        s.next_id += 1;
        let signature = self.signature_of(id);
        s.ids.insert(id, signature);
        let (side, amount_in, min_out) = match request {
            Some(r) => (
                r.quote.request.side,
                r.quote.request.amount_in,
                r.quote.min_out,
            ),
            None => (Side::Sell, TokenAmount::ZERO, TokenAmount::ZERO),
        };
        s.ledger.insert(
            signature,
            Built {
                side,
                amount_in,
                min_out,
                priority_fee,
                blockhash_slot: tip,
                last_valid: u64::MAX,
                nonce: Some(BuiltNonce {
                    value: nonce.value,
                    cancel: request.is_none(),
                }),
            },
        );
        Ok(UnsignedTransaction {
            bytes: self.encode(id),
            last_valid_block_height: NO_LAST_VALID_HEIGHT,
            priority_fee: None,
        })
    }
}

impl Signer for SimVenue {
    fn address(&self) -> WalletAddress {
        SIM_ADDRESS
    }

    fn sign(&self, unsigned: &UnsignedTransaction) -> Result<SignedTransaction, PortError> {
        let id = self
            .decode(&unsigned.bytes)
            .map_err(|e| e.to_port("sim.sign"))?;
        let signature = self.signature_of(id);
        let built = self.lock().ledger.built(&signature).ok_or_else(|| {
            SimError::UnknownTransaction {
                len: unsigned.bytes.len(),
            }
            .to_port("sim.sign")
        })?;
        Ok(SignedTransaction {
            bytes: Arc::from(unsigned.bytes.as_slice()),
            signature,
            blockhash: built
                .nonce
                .map_or_else(|| self.blockhash_of(built.blockhash_slot), |n| n.value),
            last_valid_block_height: unsigned.last_valid_block_height,
        })
    }
}
