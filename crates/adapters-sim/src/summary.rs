//! What a paper run did, as the summary `kyzlo paper` prints.

use std::time::Duration;

use kyzlo_application::metrics::MetricsSummary;
use kyzlo_domain::Lamports;
use kyzlo_domain::trading_state::TradingState;

use crate::wallet::SimWallet;

/// What a paper run did.
#[derive(Debug, Clone, PartialEq)]
pub struct PaperSummary {
    /// Market time simulated.
    pub simulated: Duration,
    /// Prices at the start and end.
    pub first_price: f64,
    /// Last price.
    pub last_price: f64,
    /// Wallet before.
    pub start: SimWallet,
    /// Wallet after.
    pub end: SimWallet,
    /// Service totals.
    pub totals: MetricsSummary,
    /// Positions still open at the end.
    pub open_positions: usize,
    /// Trading state at the end.
    pub trading_state: TradingState,
    /// Network and priority fees paid by every landed transaction.
    pub fees: Lamports,
    /// What fills lost to slippage against the market at their landing, in quote units.
    pub slippage_quote: i128,
}

impl PaperSummary {
    fn value(&self, wallet: &SimWallet, price: f64) -> f64 {
        wallet.quote.get() as f64 / 1e6 + wallet.base.get() as f64 / 1e9 * price
    }

    /// Profit and loss in quote units, holdings marked at the last price.
    #[must_use]
    pub fn pnl(&self) -> f64 {
        self.value(&self.end, self.last_price) - self.value(&self.start, self.last_price)
    }

    /// The fees, in quote tokens at the last price.
    #[must_use]
    pub fn fees_quote(&self) -> f64 {
        self.fees.get() as f64 / 1e9 * self.last_price
    }

    /// Slippage, in quote tokens.
    #[must_use]
    pub fn slippage(&self) -> f64 {
        self.slippage_quote as f64 / 1e6
    }

    /// What the trades made before their costs (fees and slippage).
    #[must_use]
    pub fn gross(&self) -> f64 {
        self.pnl() + self.fees_quote() + self.slippage()
    }

    /// The summary as text.
    #[must_use]
    pub fn render(&self) -> String {
        let t = &self.totals;
        let mut out = String::new();
        out.push_str(&format!(
            "paper run: {:.1} h of market, price {:.3} -> {:.3}\n",
            self.simulated.as_secs_f64() / 3_600.0,
            self.first_price,
            self.last_price
        ));
        out.push_str(&format!(
            "trades: {} entries filled ({} failed, {} refused), {} exits closed ({} on the first attempt, {} after a retry), {} failed, {} past the deadline\n",
            t.entries_filled,
            t.entries_failed,
            t.entries_refused,
            t.exits_first_attempt + t.exits_required_retry,
            t.exits_first_attempt,
            t.exits_required_retry,
            t.exits_failed,
            t.exits_deadline_exceeded
        ));
        let by_reason: Vec<String> = t
            .exits_closed_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        out.push_str(&format!(
            "exits by reason: {}\n",
            if by_reason.is_empty() {
                "none".to_owned()
            } else {
                by_reason.join(", ")
            }
        ));
        out.push_str(&format!(
            "attempts: {} exit transactions sent; ticks {} ({} failed)\n",
            t.exit_attempts_sent, t.ticks, t.tick_errors
        ));
        out.push_str(&format!(
            "halts: {} (exit breaker trips {}); trading now {}\n",
            t.halts,
            t.circuit_breaker_trips,
            self.trading_state.as_str()
        ));
        out.push_str(&format!(
            "wallet: {:.4} SOL + {:.2} USDC -> {:.4} SOL + {:.2} USDC; fees {:.6} SOL; open positions {}\n",
            self.start.base.get() as f64 / 1e9,
            self.start.quote.get() as f64 / 1e6,
            self.end.base.get() as f64 / 1e9,
            self.end.quote.get() as f64 / 1e6,
            self.fees.get() as f64 / 1e9,
            self.open_positions
        ));
        out.push_str(&format!(
            "PnL: {:+.2} USDC (holdings at the last price) = gross {:+.2} - costs {:.2} (fees {:.2}, slippage {:.2})\n",
            self.pnl(),
            self.gross(),
            self.fees_quote() + self.slippage(),
            self.fees_quote(),
            self.slippage()
        ));
        out
    }
}
