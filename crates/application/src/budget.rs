//! Request budgets: kyzlo never asks a provider for more than its plan allows, and what
//! the plan allows goes to exits first. A [`Budget`] counts one provider's requests
//! ([`RequestBudget`], a sliding window as Jupiter counts its plans); every call made
//! inside [`protecting`] (an exit, its confirmations, start-up reconciliation) waits for
//! room and is never refused, any other call (price reads, entries) is made only while
//! the room kept for exits stays untouched, and otherwise deferred without a request. A
//! price read that is deferred is answered from the latest quote an exit already paid
//! for, when it is fresh. A 429's reset time closes the budget until then.
//!
//! [`BudgetedFeed`] and [`BudgetedRouter`] share one provider's count (Jupiter's);
//! [`BudgetedChain`] and [`BudgetedProbe`] share another (the RPC provider's), so that an
//! entry's balance read or a health probe never takes the room an exit's sends, status
//! polls and confirmations need. All sit outside the latency guard's wrappers: a deferral
//! is no failure of the provider, and a wait for room is no latency of it. The budget
//! counts port calls: one call is one request, except a wallet read (a balance and the
//! pair's token accounts) and a send broadcast to several endpoints, which the budget's
//! size leaves room for.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use kyzlo_domain::budget::{Admission, RequestBudget, Urgency};
use kyzlo_domain::{ErrorClass, Lamports, Price, Timestamp, TxSignature};

use crate::clock::Clock;
use crate::ports::{
    Balances, Blockhash, BuildCost, Chain, Commitment, DurableNonce, Fill, HealthProbe,
    NonceAccount, Observed, Pair, PortError, PriceFeed, PriceTick, Quote, QuoteRequest,
    RecentBlockhash, Side, SignedTransaction, StatusLookup, SwapRequest, SwapRouter, TxStatus,
    UnsignedTransaction,
};

tokio::task_local! {
    static URGENCY: Urgency;
}

/// Runs `work` as protective: every budgeted call in it waits for room instead of being
/// deferred.
pub async fn protecting<F: Future>(work: F) -> F::Output {
    URGENCY.scope(Urgency::Protect, work).await
}

fn urgency() -> Urgency {
    URGENCY.try_with(|u| *u).unwrap_or(Urgency::Routine)
}

/// The `operation` of a call the budget deferred without making it.
pub const DEFERRED: &str = "budget.deferred";

/// How old a quote's price may be to stand in for a deferred price read.
pub const QUOTE_PRICE_MAX_AGE: Duration = Duration::from_secs(5);

/// One provider's budget, shared by every port that calls it.
pub struct Budget {
    provider: &'static str,
    window: Mutex<RequestBudget>,
    clock: Clock,
    last_quote: Mutex<Option<(Timestamp, Price)>>,
}

impl Budget {
    /// `window` for `provider` (named in deferrals), on `clock`.
    #[must_use]
    pub fn new(provider: &'static str, window: RequestBudget, clock: Clock) -> Arc<Self> {
        Arc::new(Self {
            provider,
            window: Mutex::new(window),
            clock,
            last_quote: Mutex::new(None),
        })
    }

    fn window(&self) -> std::sync::MutexGuard<'_, RequestBudget> {
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `call` for `operation` when the budget has room for the caller's urgency;
    /// a 429's reset closes the budget.
    ///
    /// # Errors
    /// A [`ErrorClass::RateLimited`] deferral for a routine call while only the exits'
    /// room is left; otherwise `call`'s own result.
    pub async fn call<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, PortError>>,
    ) -> Result<T, PortError> {
        self.call_costing(operation, 1, call).await
    }

    /// As [`Budget::call`] for a call that makes `requests` requests to this provider (none:
    /// made at once, uncounted).
    ///
    /// # Errors
    /// As [`Budget::call`].
    pub async fn call_costing<T>(
        &self,
        operation: &'static str,
        requests: u32,
        call: impl Future<Output = Result<T, PortError>>,
    ) -> Result<T, PortError> {
        for _ in 0..requests {
            self.admit(operation).await?;
        }
        let result = call.await;
        if requests > 0
            && let Err(e) = &result
            && e.class == ErrorClass::RateLimited
        {
            let after = e.retry_after.unwrap_or(Duration::from_secs(1));
            self.window().rate_limited(self.clock.now(), after);
        }
        result
    }

    /// Room for one request at the caller's urgency: waited for, or refused.
    async fn admit(&self, operation: &'static str) -> Result<(), PortError> {
        let urgency = urgency();
        loop {
            let admission = self.window().admit(urgency, self.clock.now());
            match admission {
                Admission::Go => return Ok(()),
                Admission::Deferred => {
                    tracing::debug!(
                        provider = self.provider,
                        operation,
                        "deferred: the request budget's room is kept for exits"
                    );
                    return Err(PortError::new(
                        DEFERRED,
                        ErrorClass::RateLimited,
                        format!(
                            "{operation} deferred: {}'s request budget keeps its room for exits",
                            self.provider
                        ),
                    ));
                }
                Admission::Wait(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    fn remember_quote(&self, price: Price) {
        *self
            .last_quote
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((self.clock.now(), price));
    }

    fn recent_quote(&self) -> Option<Price> {
        let now = self.clock.now();
        self.last_quote
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .filter(|(at, _)| now.saturating_since(*at) <= QUOTE_PRICE_MAX_AGE)
            .map(|(_, price)| price)
    }
}

/// A price feed on a budget: a deferred read is answered from a fresh exit quote.
pub struct BudgetedFeed {
    inner: Arc<dyn PriceFeed>,
    budget: Arc<Budget>,
}

impl BudgetedFeed {
    /// `inner` on `budget`.
    pub fn new(inner: Arc<dyn PriceFeed>, budget: Arc<Budget>) -> Self {
        Self { inner, budget }
    }
}

#[async_trait]
impl PriceFeed for BudgetedFeed {
    async fn price(&self) -> Result<PriceTick, PortError> {
        match self.budget.call("feed.price", self.inner.price()).await {
            Err(e) if e.operation == DEFERRED => match self.budget.recent_quote() {
                Some(price) => Ok(PriceTick { price }),
                None => Err(e),
            },
            other => other,
        }
    }
}

/// A router on a budget; its quotes' prices stand in for deferred price reads.
pub struct BudgetedRouter {
    inner: Arc<dyn SwapRouter>,
    budget: Option<Arc<Budget>>,
    rpc: Option<Arc<Budget>>,
    pair: Pair,
}

impl BudgetedRouter {
    /// `inner` on the router's `budget` and the chain's `rpc` budget (what an own-message
    /// build asks of the RPC provider), quoting `pair`.
    pub fn new(
        inner: Arc<dyn SwapRouter>,
        budget: Option<Arc<Budget>>,
        rpc: Option<Arc<Budget>>,
        pair: Pair,
    ) -> Self {
        Self {
            inner,
            budget,
            rpc,
            pair,
        }
    }
}

#[async_trait]
impl SwapRouter for BudgetedRouter {
    async fn quote(&self, request: &QuoteRequest) -> Result<Quote, PortError> {
        let Some(budget) = &self.budget else {
            return self.inner.quote(request).await;
        };
        let quote = budget
            .call("router.quote", self.inner.quote(request))
            .await?;
        let price = match request.side {
            Side::Sell => self.pair.price_of(request.amount_in, quote.expected_out),
            Side::Buy => self.pair.price_of(quote.expected_out, request.amount_in),
        };
        if let Some(price) = price {
            budget.remember_quote(price);
        }
        Ok(quote)
    }

    /// The build's requests counted on each provider's budget: an own-message build asks
    /// the chain (blockhash, fees, simulation, tables) and not the router.
    async fn build_swap(&self, request: &SwapRequest) -> Result<UnsignedTransaction, PortError> {
        let cost = self.inner.build_cost();
        if let Some(rpc) = &self.rpc {
            for _ in 0..cost.chain {
                rpc.admit("router.build_swap").await?;
            }
        }
        match &self.budget {
            Some(budget) => {
                budget
                    .call_costing(
                        "router.build_swap",
                        cost.router,
                        self.inner.build_swap(request),
                    )
                    .await
            }
            None => self.inner.build_swap(request).await,
        }
    }

    /// A cancel is compiled from what the caller gives: no request to either provider.
    async fn build_cancel(
        &self,
        nonce: DurableNonce,
        priority_fee: Lamports,
    ) -> Result<UnsignedTransaction, PortError> {
        self.inner.build_cancel(nonce, priority_fee).await
    }

    fn build_cost(&self) -> BuildCost {
        self.inner.build_cost()
    }
}

/// The chain on its RPC provider's budget: inside [`protecting`] (an exit's sends, status
/// polls, blockhash checks, fills; reconciliation) every call waits for room; any other
/// (an entry's wallet read and sends) is deferred once only the exits' room is left.
pub struct BudgetedChain {
    inner: Arc<dyn Chain>,
    budget: Arc<Budget>,
}

impl BudgetedChain {
    /// `inner` on `budget`.
    pub fn new(inner: Arc<dyn Chain>, budget: Arc<Budget>) -> Self {
        Self { inner, budget }
    }
}

#[async_trait]
impl Chain for BudgetedChain {
    async fn send(&self, tx: &SignedTransaction) -> Result<(), PortError> {
        self.budget.call("chain.send", self.inner.send(tx)).await
    }

    async fn statuses(
        &self,
        signatures: &[TxSignature],
        lookup: StatusLookup,
    ) -> Result<Observed<Vec<Option<TxStatus>>>, PortError> {
        self.budget
            .call("chain.statuses", self.inner.statuses(signatures, lookup))
            .await
    }

    async fn blockhash_valid(
        &self,
        blockhash: Blockhash,
        min_context_slot: u64,
    ) -> Result<Observed<bool>, PortError> {
        self.budget
            .call(
                "chain.blockhash_valid",
                self.inner.blockhash_valid(blockhash, min_context_slot),
            )
            .await
    }

    async fn block_height(&self) -> Result<u64, PortError> {
        self.budget
            .call("chain.block_height", self.inner.block_height())
            .await
    }

    async fn latest_blockhash(&self) -> Result<RecentBlockhash, PortError> {
        self.budget
            .call("chain.latest_blockhash", self.inner.latest_blockhash())
            .await
    }

    async fn fill(&self, signature: TxSignature, side: Side) -> Result<Option<Fill>, PortError> {
        self.budget
            .call("chain.fill", self.inner.fill(signature, side))
            .await
    }

    async fn balances(&self) -> Result<Balances, PortError> {
        self.budget
            .call("chain.balances", self.inner.balances())
            .await
    }

    async fn nonce(
        &self,
        account: NonceAccount,
        commitment: Commitment,
    ) -> Result<Observed<Option<Blockhash>>, PortError> {
        self.budget
            .call("chain.nonce", self.inner.nonce(account, commitment))
            .await
    }
}

/// A health probe on its provider's budget: outside [`protecting`] a probe (a breaker's
/// recovery, a halted bot's wait for the chain) only tells whether to resume something,
/// so it is deferred, without a request, rather than take the exits' room; the latency
/// guard does not count a deferred probe as an answer.
pub struct BudgetedProbe {
    inner: Arc<dyn HealthProbe>,
    budget: Arc<Budget>,
}

impl BudgetedProbe {
    /// `inner` on `budget`.
    pub fn new(inner: Arc<dyn HealthProbe>, budget: Arc<Budget>) -> Self {
        Self { inner, budget }
    }
}

#[async_trait]
impl HealthProbe for BudgetedProbe {
    async fn probe(&self) -> Result<(), PortError> {
        self.budget.call("health.probe", self.inner.probe()).await
    }
}
