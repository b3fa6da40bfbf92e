//! [`BuildRouter`]: the [`SwapRouter`] on Jupiter's Swap API v2. A quote is one `/build`
//! call (the route and its raw instructions); the swap is kyzlo's own v0 transaction,
//! compiled from those instructions by the Solana adapter's [`Assembler`] with kyzlo's
//! blockhash (so the attempt's last valid height is exact and its life short), its
//! compute budget and priority fee, and the send lanes' tips. One Jupiter request per
//! attempt, where the v1 path needs two. On a durable nonce the assembler builds on the
//! nonce's value (its advance first, no expiry), and a cancel is the advance alone.

use async_trait::async_trait;
use kyzlo_adapters_jupiter::JupiterClient;
use kyzlo_adapters_jupiter::ports::OP_BUILD;
use kyzlo_adapters_solana::{Assembler, CHAIN_REQUESTS, SwapPlan};
use kyzlo_application::ports::{
    BuildCost, DurableNonce, PortError, Quote, QuoteRequest, SwapRequest, SwapRouter,
    UnsignedTransaction,
};
use kyzlo_domain::Lamports;

/// Blocks an attempt lives when the executor does not say.
const FULL_LIFE: u32 = 150;

/// Jupiter's `/build` for routes, kyzlo's [`Assembler`] for transactions.
#[derive(Debug)]
pub struct BuildRouter {
    jupiter: JupiterClient,
    assembler: Assembler,
}

impl BuildRouter {
    /// A router asking `jupiter` for routes and compiling them with `assembler`.
    #[must_use]
    pub fn new(jupiter: JupiterClient, assembler: Assembler) -> Self {
        Self { jupiter, assembler }
    }
}

#[async_trait]
impl SwapRouter for BuildRouter {
    /// `/build` for the request; the answer's bytes travel in the quote to
    /// [`BuildRouter::build_swap`], so the swap needs no second Jupiter call.
    async fn quote(&self, request: &QuoteRequest) -> Result<Quote, PortError> {
        let params = self.jupiter.params_for(request);
        let build = self
            .jupiter
            .build(&params)
            .await
            .map_err(|e| e.to_port_error(OP_BUILD))?;
        Ok(Quote {
            request: *request,
            expected_out: build.quote.out_amount,
            min_out: build.quote.other_amount_threshold,
            price_impact_pct: build.quote.price_impact_pct,
            route_label: build.quote.route_label(),
            raw: build.quote.raw,
        })
    }

    /// The quote's instructions compiled into kyzlo's own transaction: the attempt's
    /// life, its number (later attempts bid more) and the rung's fee cap.
    async fn build_swap(&self, request: &SwapRequest) -> Result<UnsignedTransaction, PortError> {
        let build = self
            .jupiter
            .build_from_raw(&request.quote.raw)
            .map_err(|e| e.to_port_error(OP_BUILD))?;
        let instructions = build.instructions();
        let assembled = self
            .assembler
            .assemble(&SwapPlan {
                instructions: &instructions,
                lookup_tables: &build.lookup_tables,
                fee_cap: request.priority_fee,
                attempt: request.attempt,
                life_blocks: request.expiry_slots.unwrap_or(FULL_LIFE),
                nonce: request.nonce,
            })
            .await?;
        tracing::debug!(
            compute_unit_limit = assembled.compute_unit_limit,
            compute_unit_price = assembled.compute_unit_price,
            priority_fee = assembled.priority_fee.get(),
            last_valid_height = assembled.transaction.last_valid_block_height,
            "swap assembled"
        );
        Ok(assembled.transaction)
    }

    /// The nonce's advance alone, bidding `priority_fee` in all: compiled here, no
    /// request to Jupiter or the chain.
    async fn build_cancel(
        &self,
        nonce: DurableNonce,
        priority_fee: Lamports,
    ) -> Result<UnsignedTransaction, PortError> {
        let cancel = self.assembler.cancel(nonce, priority_fee)?;
        tracing::debug!(
            compute_unit_limit = cancel.compute_unit_limit,
            compute_unit_price = cancel.compute_unit_price,
            priority_fee = cancel.priority_fee.get(),
            "nonce cancel assembled"
        );
        Ok(cancel.transaction)
    }

    /// No Jupiter request (the route came with the quote); the assembler's RPC reads.
    fn build_cost(&self) -> BuildCost {
        BuildCost {
            router: 0,
            chain: CHAIN_REQUESTS,
        }
    }
}
