//! Preparing one attempt: the amount (a full exit quotes the on-chain balance, less the
//! fee reserve when the input is SOL), a quote on the rung's slippage, the swap built
//! with a short blockhash life, signed, and its blockhash checked on our own view of the
//! chain, whose context slot anchors every later proof of the attempt's death. On a
//! durable nonce the swap is built on the nonce's value instead, and nothing expires.
//! Retried as one unit: nothing here has been sent, so throwing a preparation away is
//! safe.

use std::time::Duration;

use kyzlo_domain::ladder::Rung;
use kyzlo_domain::retry::RetryPolicy;
use kyzlo_domain::{ErrorClass, Lamports, Timestamp, TokenAmount, unit_interval};

use super::{Amount, Run};
use crate::ports::{DurableNonce, PortError, QuoteRequest, Side, SignedTransaction, SwapRequest};

/// An attempt ready to journal and send.
pub(super) struct Prepared {
    pub signed: SignedTransaction,
    pub amount_in: TokenAmount,
    /// The least the swap accepts: a lower bound of what a landing receives.
    pub min_out: TokenAmount,
    /// A context slot at which our node saw the blockhash valid (on a durable nonce: the
    /// context slot of the read that found its value).
    pub valid_at_slot: u64,
    /// When the blockhash is expected to expire (from the router's last valid height):
    /// when to start proving the attempt dead.
    pub expected_expiry: Timestamp,
    /// The priority fee the transaction bids: exact when the router built it so, else
    /// the rung's fee (a cap the router honours).
    pub priority_fee: Lamports,
}

impl Run<'_> {
    /// Prepares an attempt on `rung`, retried as one unit until `until`: each try is
    /// cut off at `prepare_call_timeout` or at `until`, tries are spaced by a jittered
    /// backoff (200 ms doubling to 2 s, or the server's retry-after when longer), and a
    /// class that may not be retried ends it at once.
    pub(super) async fn prepare(
        &self,
        rung: Rung,
        attempt: u32,
        until: Timestamp,
        nonce: Option<(DurableNonce, u64)>,
    ) -> Result<Prepared, PortError> {
        let v = self.venue;
        let backoff = RetryPolicy {
            max_attempts: u32::MAX,
            total_budget: Duration::MAX,
            initial_backoff: Duration::from_millis(200),
            multiplier: 2.0,
            max_backoff: Duration::from_secs(2),
        };
        let mut tries = 0_u32;
        loop {
            let left = until.saturating_since(v.clock.now());
            let call_time = self.settings.prepare_call_timeout.min(left);
            tries = tries.saturating_add(1);
            let error = match tokio::time::timeout(
                call_time,
                self.prepare_once(rung, attempt, nonce),
            )
            .await
            {
                Ok(Ok(prepared)) => return Ok(prepared),
                Ok(Err(error)) => error,
                Err(_) => PortError::new(
                    "prepare",
                    ErrorClass::RpcTimeout,
                    format!("no transaction prepared within {call_time:?}"),
                ),
            };
            if !error.class.is_retryable() {
                return Err(error);
            }
            let ceiling = backoff.backoff_ceiling(tries);
            let mut delay = ceiling.mul_f64(unit_interval(v.jitter.next_u64()));
            if let Some(asked) = error.retry_after {
                delay = delay.max(asked);
            }
            if v.clock.now().saturating_add(delay) >= until {
                return Err(error);
            }
            tracing::warn!(intent = %self.job.intent, %error, tries, ?delay, "preparation failed; preparing again");
            tokio::time::sleep(delay).await;
        }
    }

    async fn amount_in(&self) -> Result<TokenAmount, PortError> {
        let v = self.venue;
        let amount = match self.job.amount {
            Amount::Exact(amount) => amount,
            Amount::WholeBalance { cap } => {
                let balances = v.chain.balances().await?;
                let held = match self.job.side {
                    // SOL pays the fees and the rent too: leave them their reserve.
                    Side::Sell if v.pair.native_base => TokenAmount::new(
                        balances
                            .base
                            .get()
                            .saturating_sub(self.settings.fee_reserve.get()),
                    ),
                    Side::Sell => balances.base,
                    Side::Buy => balances.quote,
                };
                held.min(cap)
            }
        };
        if amount.is_zero() {
            return Err(PortError::new(
                "prepare",
                ErrorClass::InsufficientFunds,
                "nothing to swap in the wallet above the fee reserve",
            ));
        }
        Ok(amount)
    }

    async fn prepare_once(
        &self,
        rung: Rung,
        attempt: u32,
        nonce: Option<(DurableNonce, u64)>,
    ) -> Result<Prepared, PortError> {
        let v = self.venue;
        let amount_in = self.amount_in().await?;
        let quote = v
            .router
            .quote(&QuoteRequest {
                side: self.job.side,
                amount_in,
                slippage: rung.slippage,
            })
            .await?;
        let min_out = quote.min_out;
        let expiry_slots = self.settings.expiry_for(&rung);
        let unsigned = v
            .router
            .build_swap(&SwapRequest {
                quote,
                priority_fee: rung.priority_fee,
                expiry_slots: Some(expiry_slots),
                attempt,
                nonce: nonce.map(|(n, _)| n),
            })
            .await?;
        let signed = v.signer.sign(&unsigned)?;
        let priority_fee = unsigned.priority_fee.unwrap_or(rung.priority_fee);
        if let Some((nonce, read_at_slot)) = nonce {
            // Its life is the nonce's: it can land until the value moves on, whenever.
            if signed.blockhash != nonce.value {
                return Err(PortError::new(
                    "prepare",
                    ErrorClass::Unknown,
                    "the router's transaction does not carry the durable nonce's value",
                ));
            }
            return Ok(Prepared {
                signed,
                amount_in,
                min_out,
                valid_at_slot: read_at_slot,
                expected_expiry: Timestamp::from_micros(u64::MAX),
                priority_fee,
            });
        }
        // The router's blockhash, checked on our own view: its context slot is where the
        // proof of this attempt's death starts from. A node that does not know it yet (or
        // a router that handed out a stale one) means a new build, never a send.
        let valid = v.chain.blockhash_valid(signed.blockhash, 0).await?;
        if !valid.value {
            return Err(PortError::new(
                "prepare",
                ErrorClass::BlockhashExpired,
                "the router's blockhash is not valid on our view of the chain",
            ));
        }
        let height = v.chain.block_height().await.ok();
        let life_blocks = height.map_or(u64::from(expiry_slots), |h| {
            unsigned.last_valid_block_height.saturating_sub(h)
        });
        // A router on a lagging node builds on a blockhash that is valid but nearly
        // spent: such a transaction would expire before it could land. Build again.
        if life_blocks < u64::from(expiry_slots) / 2 {
            return Err(PortError::new(
                "prepare",
                ErrorClass::BlockhashExpired,
                format!(
                    "the router's blockhash has {life_blocks} blocks of life left, under half the {expiry_slots} asked for"
                ),
            ));
        }
        let life = self.settings.slot_time * u32::try_from(life_blocks).unwrap_or(u32::MAX);
        Ok(Prepared {
            signed,
            amount_in,
            min_out,
            valid_at_slot: valid.context_slot,
            expected_expiry: v.clock.now().saturating_add(life),
            priority_fee,
        })
    }
}
