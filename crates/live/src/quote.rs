//! `kyzlo quote`: an exit quote from Jupiter (selling the base token), with the route,
//! the amounts and the price impact.

use kyzlo_application::ports::{QuoteRequest, Side, SwapRouter, WalletAddress};
use kyzlo_config::Config;
use kyzlo_domain::{Slippage, TokenAmount};

/// Why no quote was shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    /// An argument was refused.
    #[error("{0}")]
    Usage(String),
    /// Jupiter's client could not be built, or Jupiter refused (with its class).
    #[error("{0}")]
    Remote(String),
}

/// Asks Jupiter (at `jupiter_url` when given) to sell `amount` of the base token (in its
/// decimal units) at `slippage_bps`; the answer as text.
///
/// # Errors
/// [`QuoteError`].
pub async fn run(
    config: &Config,
    amount: &str,
    slippage_bps: u16,
    jupiter_url: Option<&url::Url>,
) -> Result<String, QuoteError> {
    let (base_decimals, quote_decimals) = (
        config.pair.pair.base_decimals,
        config.pair.pair.quote_decimals,
    );
    let amount_in = TokenAmount::parse_decimal(amount, base_decimals).map_err(|e| {
        QuoteError::Usage(format!(
            "--amount {amount:?}: {e} (the base token has {base_decimals} decimal places)"
        ))
    })?;
    let slippage = Slippage::from_bps(slippage_bps).map_err(|_| {
        QuoteError::Usage(format!(
            "--slippage-bps {slippage_bps}: expected 1 to 10000"
        ))
    })?;
    let (client, note) =
        crate::jupiter(config, WalletAddress([0; 32]), jupiter_url).map_err(QuoteError::Remote)?;
    if let Some(note) = note {
        tracing::warn!("{note}");
    }
    // The port's quote (sell the base token), not the client's raw one.
    let q = SwapRouter::quote(
        &client,
        &QuoteRequest {
            side: Side::Sell,
            amount_in,
            slippage,
        },
    )
    .await
    .map_err(|e| QuoteError::Remote(format!("quote refused: {e}")))?;
    let ui = |units: u64, decimals: u8| units as f64 / 10f64.powi(i32::from(decimals));
    let (out_ui, min_ui) = (
        ui(q.expected_out.get(), quote_decimals),
        ui(q.min_out.get(), quote_decimals),
    );
    Ok(format!(
        "route: {}\nin: {} base units ({amount} of the base token)\nout: {} quote units ({out_ui:.6})\nminimum out at {slippage_bps} bps: {} ({min_ui:.6})\nprice: {:.6}\nprice impact: {:.4}%\n",
        q.route_label,
        amount_in,
        q.expected_out,
        q.min_out,
        out_ui / ui(amount_in.get(), base_decimals),
        q.price_impact_pct
    ))
}
