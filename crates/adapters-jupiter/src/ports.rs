//! The application's ports on Jupiter: [`SwapRouter`] on quote + swap, [`PriceFeed`] on
//! the price API.

use async_trait::async_trait;
use kyzlo_application::ports::{
    PortError, PriceFeed, PriceTick, Quote, QuoteRequest, Side, SwapRequest, SwapRouter,
    UnsignedTransaction,
};

use crate::client::{JupiterClient, QuoteParams, SwapParams};

/// `operation` of quote failures.
pub const OP_QUOTE: &str = "jupiter.quote";
/// `operation` of swap failures.
pub const OP_SWAP: &str = "jupiter.swap";
/// `operation` of price failures.
pub const OP_PRICE: &str = "jupiter.price";
/// `operation` of Swap API v2 `/build` failures.
pub const OP_BUILD: &str = "jupiter.build";

impl JupiterClient {
    /// What to ask Jupiter for `request`: a sell spends `amount_in` of the base mint for
    /// the quote mint, a buy spends `amount_in` of the quote mint for the base mint, at
    /// the request's slippage (the escalation rung's).
    #[must_use]
    pub fn params_for(&self, request: &QuoteRequest) -> QuoteParams<'_> {
        let config = self.config();
        let (input_mint, output_mint) = match request.side {
            Side::Sell => (&config.base_mint, &config.quote_mint),
            Side::Buy => (&config.quote_mint, &config.base_mint),
        };
        QuoteParams {
            input_mint,
            output_mint,
            amount: request.amount_in,
            slippage: request.slippage,
        }
    }
}

#[async_trait]
impl SwapRouter for JupiterClient {
    /// An exact-input quote: a sell spends `amount_in` of the base mint for the quote mint,
    /// a buy spends `amount_in` of the quote mint for the base mint, at the request's
    /// slippage (the escalation rung's).
    async fn quote(&self, request: &QuoteRequest) -> Result<Quote, PortError> {
        let params = self.params_for(request);
        let quote = JupiterClient::quote(self, &params)
            .await
            .map_err(|e| e.to_port_error(OP_QUOTE))?;
        Ok(Quote {
            request: *request,
            expected_out: quote.out_amount,
            min_out: quote.other_amount_threshold,
            price_impact_pct: quote.price_impact_pct,
            route_label: quote.route_label(),
            raw: quote.raw,
        })
    }

    /// The swap transaction for the quote as received, with the rung's priority fee and
    /// the attempt's blockhash lifetime. A request on a durable nonce is refused
    /// ([`JupiterError::NonceUnsupported`](crate::JupiterError::NonceUnsupported)) before
    /// any request: Jupiter's own transaction cannot carry it.
    async fn build_swap(&self, request: &SwapRequest) -> Result<UnsignedTransaction, PortError> {
        if request.nonce.is_some() {
            return Err(crate::JupiterError::NonceUnsupported.to_port_error(OP_SWAP));
        }
        let params = SwapParams {
            quote_response: &request.quote.raw,
            priority_fee: request.priority_fee,
            expiry_slots: request.expiry_slots,
        };
        let swap = self
            .swap(&params)
            .await
            .map_err(|e| e.to_port_error(OP_SWAP))?;
        Ok(swap.transaction)
    }
}

#[async_trait]
impl PriceFeed for JupiterClient {
    /// The USD price of the base mint (the quote mint is taken to be worth one USD).
    async fn price(&self) -> Result<PriceTick, PortError> {
        let mint = self.config().base_mint.as_str();
        let prices = self
            .prices(&[mint])
            .await
            .map_err(|e| e.to_port_error(OP_PRICE))?;
        let price = prices
            .usd_price(mint)
            .map_err(|e| e.to_port_error(OP_PRICE))?;
        Ok(PriceTick { price })
    }
}
