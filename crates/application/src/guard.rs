//! The latency guard: one latency breaker per dependency (the price feed, the router, the
//! chain's reads and the chain's sends), every call timed into its dependency's breaker
//! under that dependency's own timeout, entries admitted only while every breaker is
//! closed, and trading moved to ReduceOnly (exits still run) while any is not, until
//! recovery probes close it again.
//!
//! The guard wraps the ports it times ([`GuardedFeed`], [`GuardedRouter`],
//! [`GuardedChain`]): services call the ports as usual and never repeat the timing. The
//! chain is two dependencies: a slow send path (a node slow to simulate and forward) must
//! not hide healthy reads, nor slow reads healthy sends, so each has its breaker, its
//! limits and its timeout.
//!
//! Ordinary calls never count as recovery probes: in half-open, only a probe the guard
//! admitted itself (the dependency's health probe) can close a breaker, so a healthy price
//! feed cannot close the chain's breakers, an entry is never a probe, and neither is a
//! send. The sends' breaker recovers by a probe of the send path that sends nothing (see
//! [`crate::bot::BotPorts::send_probe`]): admitting the next real send as the probe would
//! gate an exit's send on a breaker (exits must never wait for one), and the only other
//! sends are entries', which are refused while any breaker is open, so nothing would ever
//! come to lift ReduceOnly. A probe the request budget deferred made no request: its
//! permit is given back and nothing is recorded.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use kyzlo_domain::latency_breaker::{
    Admission, BreakerSnapshot, BreakerState, CallOutcome, LatencyBreaker, LatencyBreakerConfig,
    StateChange,
};
use kyzlo_domain::trading_state::ReduceOnlyCause;
use kyzlo_domain::{DomainError, ErrorClass, Lamports, TxSignature};

use crate::clock::Clock;
use crate::control::TradingControl;
use crate::metrics::{Dependency, MetricEvent, MetricsSink};
use crate::ports::{
    Alert, AlertKind, Balances, Blockhash, BuildCost, Chain, Commitment, DurableNonce, Fill,
    HealthProbe, NonceAccount, Observed, PortError, PriceFeed, PriceTick, Quote, QuoteRequest,
    RecentBlockhash, Severity, Side, SignedTransaction, StatusLookup, SwapRequest, SwapRouter,
    TxStatus, UnsignedTransaction,
};
use crate::rng::Jitter;

/// The dependencies with a breaker of their own.
pub const GUARDED: [Dependency; 4] = [
    Dependency::PriceFeed,
    Dependency::Router,
    Dependency::RpcReads,
    Dependency::RpcSends,
];

fn slot(dependency: Dependency) -> usize {
    match dependency {
        Dependency::PriceFeed => 0,
        Dependency::Router => 1,
        // The chain's health probe is a read.
        Dependency::RpcReads | Dependency::Health => 2,
        Dependency::RpcSends => 3,
    }
}

/// One guarded dependency's limits: its breaker, and how long one call to it may take.
#[derive(Debug, Clone, PartialEq)]
pub struct DependencyLimits {
    /// The breaker's thresholds and timers.
    pub breaker: LatencyBreakerConfig,
    /// A call not answered by then fails as [`ErrorClass::RpcTimeout`] and counts as a
    /// failure in the breaker (for a send: it may still have been forwarded, and the
    /// attempt's rebroadcast gives it another chance).
    pub call_timeout: Duration,
}

/// Each guarded dependency's limits.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardLimits {
    /// The price feed's.
    pub price_feed: DependencyLimits,
    /// The router's (quotes, swap builds).
    pub router: DependencyLimits,
    /// The chain's reads (statuses, blockhash checks, block height, blockhashes, fills,
    /// balances) and its health probe.
    pub rpc_reads: DependencyLimits,
    /// The chain's sends.
    pub rpc_sends: DependencyLimits,
}

impl GuardLimits {
    /// `breaker` for every dependency; prices, quotes, builds and reads cut off at
    /// `call_timeout`, sends at `send_timeout`.
    #[must_use]
    pub fn new(
        breaker: LatencyBreakerConfig,
        call_timeout: Duration,
        send_timeout: Duration,
    ) -> Self {
        let limits = DependencyLimits {
            breaker,
            call_timeout,
        };
        Self {
            price_feed: limits.clone(),
            router: limits.clone(),
            rpc_reads: limits.clone(),
            rpc_sends: DependencyLimits {
                call_timeout: send_timeout,
                ..limits
            },
        }
    }

    /// The limits of `dependency` (the health probe's are the RPC reads').
    #[must_use]
    pub fn of(&self, dependency: Dependency) -> &DependencyLimits {
        match dependency {
            Dependency::PriceFeed => &self.price_feed,
            Dependency::Router => &self.router,
            Dependency::RpcReads | Dependency::Health => &self.rpc_reads,
            Dependency::RpcSends => &self.rpc_sends,
        }
    }
}

/// The guard's breakers, each built from its dependency's validated limits.
#[derive(Debug, Clone)]
pub struct GuardBreakers {
    breakers: [LatencyBreaker; 4],
    timeouts: [Duration; 4],
}

impl GuardBreakers {
    /// A closed breaker per guarded dependency.
    ///
    /// # Errors
    /// [`DomainError::InvalidConfig`] for the first dependency whose breaker configuration
    /// is invalid.
    pub fn new(limits: &GuardLimits) -> Result<Self, DomainError> {
        let breaker = |d: Dependency| LatencyBreaker::new(limits.of(d).breaker.clone());
        Ok(Self {
            breakers: [
                breaker(GUARDED[0])?,
                breaker(GUARDED[1])?,
                breaker(GUARDED[2])?,
                breaker(GUARDED[3])?,
            ],
            timeouts: GUARDED.map(|d| limits.of(d).call_timeout),
        })
    }
}

/// Times calls, owns the breakers, and keeps the trading state in step with them.
///
/// One guard may serve several markets of a process ([`LatencyGuard::attach`]): a
/// dependency's breaker is then shared by every market calling it, and its opening moves
/// each market's trading to ReduceOnly.
pub struct LatencyGuard {
    breakers: [Mutex<LatencyBreaker>; 4],
    timeouts: [Duration; 4],
    /// The trading states kept in step: the first market's, and every market attached
    /// (held weakly: a market that stopped drops out).
    controls: Mutex<Vec<Weak<TradingControl>>>,
    /// Held by the market whose bot probes the open breakers, so that markets sharing the
    /// guard do not probe a dependency once each.
    recovery: tokio::sync::Mutex<()>,
    metrics: Arc<dyn MetricsSink>,
    clock: Clock,
}

impl LatencyGuard {
    /// A guard over `breakers`, each dependency's calls cut off at its own timeout.
    pub fn new(
        breakers: GuardBreakers,
        control: Arc<TradingControl>,
        metrics: Arc<dyn MetricsSink>,
        clock: Clock,
    ) -> Self {
        Self {
            breakers: breakers.breakers.map(Mutex::new),
            timeouts: breakers.timeouts,
            controls: Mutex::new(vec![Arc::downgrade(&control)]),
            recovery: tokio::sync::Mutex::new(()),
            metrics,
            clock,
        }
    }

    /// Keeps `control` (another market's trading state) in step with the breakers from
    /// their next change on; [`LatencyGuard::catch_up`] brings it to their present.
    pub fn attach(&self, control: &Arc<TradingControl>) {
        self.controls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::downgrade(control));
    }

    /// Moves `control` to ReduceOnly if a breaker is not closed now (a market attached to a
    /// guard whose dependency is already failing starts without entries).
    pub async fn catch_up(&self, control: &TradingControl) {
        if self.state() != BreakerState::Closed {
            let _ = control
                .enter_reduce_only(ReduceOnlyCause::LatencyBreakerOpen)
                .await;
        }
    }

    /// The right to probe the open breakers, held for as long as one market's bot
    /// probes: the others wait for it and then find the breakers closed.
    pub async fn recovery_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.recovery.lock().await
    }

    fn controls(&self) -> Vec<Arc<TradingControl>> {
        let mut controls = self.controls.lock().unwrap_or_else(PoisonError::into_inner);
        controls.retain(|c| c.strong_count() > 0);
        controls.iter().filter_map(Weak::upgrade).collect()
    }

    fn breaker(&self, dependency: Dependency) -> MutexGuard<'_, LatencyBreaker> {
        self.breakers[slot(dependency)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// How long one call to `dependency` may take.
    #[must_use]
    pub fn call_timeout(&self, dependency: Dependency) -> Duration {
        self.timeouts[slot(dependency)]
    }

    /// Runs one call to `dependency` under its timeout and records its latency and
    /// outcome in its breaker. No lock is held across the call.
    ///
    /// # Errors
    /// The call's own error, or `RpcTimeout` when it did not finish in time.
    pub async fn call<T, F>(
        &self,
        dependency: Dependency,
        operation: &'static str,
        call: F,
    ) -> Result<T, PortError>
    where
        F: Future<Output = Result<T, PortError>>,
    {
        let timeout = self.call_timeout(dependency);
        let generation = self.breaker(dependency).generation();
        let started = self.clock.now();
        let result = match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(PortError::new(
                operation,
                ErrorClass::RpcTimeout,
                format!("no answer within {timeout:?}"),
            )),
        };
        let now = self.clock.now();
        let elapsed = now.saturating_since(started);
        let ok = result.is_ok();
        self.metrics.record(MetricEvent::Call {
            dependency,
            elapsed,
            ok,
        });
        let outcome = if ok {
            CallOutcome::Success { latency: elapsed }
        } else {
            CallOutcome::Failure { latency: elapsed }
        };
        let events = {
            let mut breaker = self.breaker(dependency);
            let _ = breaker.record_unadmitted(now, generation, outcome);
            breaker.take_events()
        };
        self.on_changes(dependency, events).await;
        result
    }

    /// Whether an entry may start now: only while every breaker is closed (an entry is
    /// never a recovery probe). Exits never ask: they run while ReduceOnly.
    pub async fn admit_entry(&self) -> bool {
        let now = self.clock.now();
        let mut all_closed = true;
        for dependency in GUARDED {
            let events = {
                let mut breaker = self.breaker(dependency);
                let _ = breaker.handle_timeout(now);
                all_closed &= breaker.state() == BreakerState::Closed;
                breaker.take_events()
            };
            self.on_changes(dependency, events).await;
        }
        all_closed
    }

    /// Each dependency's breaker: counters and latency statistics.
    #[must_use]
    pub fn snapshots(&self) -> Vec<(Dependency, BreakerSnapshot)> {
        GUARDED
            .iter()
            .map(|d| (*d, self.breaker(*d).snapshot()))
            .collect()
    }

    /// The worst state of any breaker (open, then half-open, then closed).
    #[must_use]
    pub fn state(&self) -> BreakerState {
        let states: Vec<BreakerState> = GUARDED.iter().map(|d| self.state_of(*d)).collect();
        if states.contains(&BreakerState::Open) {
            BreakerState::Open
        } else if states.contains(&BreakerState::HalfOpen) {
            BreakerState::HalfOpen
        } else {
            BreakerState::Closed
        }
    }

    /// One dependency's breaker state.
    #[must_use]
    pub fn state_of(&self, dependency: Dependency) -> BreakerState {
        self.breaker(dependency).state()
    }

    /// Opens every breaker: the bot restarted in ReduceOnly because a breaker was open, so
    /// recovery must be proven again before entries resume.
    pub async fn restore_open(&self) {
        let now = self.clock.now();
        for dependency in GUARDED {
            let events = {
                let mut breaker = self.breaker(dependency);
                let _ = breaker.trip(now);
                breaker.take_events()
            };
            self.on_changes(dependency, events).await;
        }
    }

    /// Probes `dependency` with `probe` while its breaker is not closed, with the
    /// breaker's recovery backoff and jitter between probes, until it closes. A probe
    /// the request budget deferred (no request made) gives its permit back and is tried
    /// again after the next delay.
    pub async fn recover(&self, dependency: Dependency, probe: &dyn HealthProbe, jitter: &Jitter) {
        let timeout = self.call_timeout(dependency);
        loop {
            let (state, delay) = {
                let breaker = self.breaker(dependency);
                (
                    breaker.state(),
                    breaker.next_recovery_probe_delay(jitter.next_u64()),
                )
            };
            if state == BreakerState::Closed {
                return;
            }
            tokio::time::sleep(delay).await;
            let now = self.clock.now();
            let (admission, events) = {
                let mut breaker = self.breaker(dependency);
                let _ = breaker.handle_timeout(now);
                (breaker.admit(now), breaker.take_events())
            };
            self.on_changes(dependency, events).await;
            let Admission::Admitted(permit) = admission else {
                continue;
            };
            let started = self.clock.now();
            let result = tokio::time::timeout(timeout, probe.probe()).await;
            if let Ok(Err(e)) = &result
                && e.operation == crate::budget::DEFERRED
            {
                tracing::debug!(
                    dependency = dependency.as_str(),
                    "recovery probe deferred by the request budget"
                );
                self.breaker(dependency).withdraw(permit);
                continue;
            }
            let now = self.clock.now();
            let latency = now.saturating_since(started);
            let ok = matches!(result, Ok(Ok(())));
            self.metrics.record(MetricEvent::Call {
                dependency: Dependency::Health,
                elapsed: latency,
                ok,
            });
            let outcome = if ok {
                CallOutcome::Success { latency }
            } else {
                CallOutcome::Failure { latency }
            };
            let events = {
                let mut breaker = self.breaker(dependency);
                let _ = breaker.record(now, permit.generation, outcome);
                breaker.take_events()
            };
            self.on_changes(dependency, events).await;
        }
    }

    async fn on_changes(&self, dependency: Dependency, changes: Vec<StateChange>) {
        for change in changes {
            self.metrics.record(MetricEvent::LatencyBreakerState {
                dependency,
                state: change.to,
            });
            tracing::warn!(
                dependency = dependency.as_str(),
                from = change.from.as_str(),
                to = change.to.as_str(),
                cause = change.cause.as_str(),
                "latency breaker"
            );
            match change.to {
                BreakerState::Open => {
                    let mut alerted = false;
                    for control in self.controls() {
                        if !control
                            .enter_reduce_only(ReduceOnlyCause::LatencyBreakerOpen)
                            .await
                            || alerted
                        {
                            continue;
                        }
                        // One page per opening, however many markets share the breaker.
                        alerted = true;
                        control
                            .alert(Alert {
                                kind: AlertKind::LatencyBreaker,
                                severity: Severity::Warning,
                                message: format!(
                                    "{} latency breaker open ({}): entries paused, exits continue",
                                    dependency.as_str(),
                                    change.cause.as_str()
                                ),
                                position: None,
                            })
                            .await;
                    }
                }
                BreakerState::Closed if self.state() == BreakerState::Closed => {
                    for control in self.controls() {
                        let _ = control
                            .leave_reduce_only(ReduceOnlyCause::LatencyBreakerOpen)
                            .await;
                    }
                }
                BreakerState::Closed | BreakerState::HalfOpen => {}
            }
        }
    }
}

/// The price feed, timed by the guard.
pub struct GuardedFeed {
    inner: Arc<dyn PriceFeed>,
    guard: Arc<LatencyGuard>,
}

impl GuardedFeed {
    /// `inner` timed by `guard`.
    pub fn new(inner: Arc<dyn PriceFeed>, guard: Arc<LatencyGuard>) -> Self {
        Self { inner, guard }
    }
}

#[async_trait]
impl PriceFeed for GuardedFeed {
    async fn price(&self) -> Result<PriceTick, PortError> {
        self.guard
            .call(Dependency::PriceFeed, "feed.price", self.inner.price())
            .await
    }
}

/// A probe of the price feed: what tells the feed's and the router's breakers that the
/// price and quote service answers again.
pub struct FeedProbe(pub Arc<dyn PriceFeed>);

#[async_trait]
impl HealthProbe for FeedProbe {
    async fn probe(&self) -> Result<(), PortError> {
        self.0.price().await.map(|_| ())
    }
}

/// The router, timed by the guard.
pub struct GuardedRouter {
    inner: Arc<dyn SwapRouter>,
    guard: Arc<LatencyGuard>,
}

impl GuardedRouter {
    /// `inner` timed by `guard`.
    pub fn new(inner: Arc<dyn SwapRouter>, guard: Arc<LatencyGuard>) -> Self {
        Self { inner, guard }
    }
}

#[async_trait]
impl SwapRouter for GuardedRouter {
    async fn quote(&self, request: &QuoteRequest) -> Result<Quote, PortError> {
        self.guard
            .call(
                Dependency::Router,
                "router.quote",
                self.inner.quote(request),
            )
            .await
    }

    async fn build_swap(&self, request: &SwapRequest) -> Result<UnsignedTransaction, PortError> {
        self.guard
            .call(
                Dependency::Router,
                "router.build_swap",
                self.inner.build_swap(request),
            )
            .await
    }

    async fn build_cancel(
        &self,
        nonce: DurableNonce,
        priority_fee: Lamports,
    ) -> Result<UnsignedTransaction, PortError> {
        self.guard
            .call(
                Dependency::Router,
                "router.build_cancel",
                self.inner.build_cancel(nonce, priority_fee),
            )
            .await
    }

    fn build_cost(&self) -> BuildCost {
        self.inner.build_cost()
    }
}

/// The chain, timed by the guard as two dependencies: sends into the sends' breaker under
/// its timeout, every read into the reads' breaker under theirs.
pub struct GuardedChain {
    inner: Arc<dyn Chain>,
    guard: Arc<LatencyGuard>,
}

impl GuardedChain {
    /// `inner` timed by `guard`.
    pub fn new(inner: Arc<dyn Chain>, guard: Arc<LatencyGuard>) -> Self {
        Self { inner, guard }
    }
}

#[async_trait]
impl Chain for GuardedChain {
    async fn send(&self, tx: &SignedTransaction) -> Result<(), PortError> {
        self.guard
            .call(Dependency::RpcSends, "chain.send", self.inner.send(tx))
            .await
    }

    async fn statuses(
        &self,
        signatures: &[TxSignature],
        lookup: StatusLookup,
    ) -> Result<Observed<Vec<Option<TxStatus>>>, PortError> {
        let call = self.inner.statuses(signatures, lookup);
        self.guard
            .call(Dependency::RpcReads, "chain.statuses", call)
            .await
    }

    async fn blockhash_valid(
        &self,
        blockhash: Blockhash,
        min_context_slot: u64,
    ) -> Result<Observed<bool>, PortError> {
        let call = self.inner.blockhash_valid(blockhash, min_context_slot);
        self.guard
            .call(Dependency::RpcReads, "chain.blockhash_valid", call)
            .await
    }

    async fn block_height(&self) -> Result<u64, PortError> {
        let call = self.inner.block_height();
        self.guard
            .call(Dependency::RpcReads, "chain.block_height", call)
            .await
    }

    async fn latest_blockhash(&self) -> Result<RecentBlockhash, PortError> {
        let call = self.inner.latest_blockhash();
        self.guard
            .call(Dependency::RpcReads, "chain.latest_blockhash", call)
            .await
    }

    async fn fill(&self, signature: TxSignature, side: Side) -> Result<Option<Fill>, PortError> {
        let call = self.inner.fill(signature, side);
        self.guard
            .call(Dependency::RpcReads, "chain.fill", call)
            .await
    }

    async fn balances(&self) -> Result<Balances, PortError> {
        let call = self.inner.balances();
        self.guard
            .call(Dependency::RpcReads, "chain.balances", call)
            .await
    }

    async fn nonce(
        &self,
        account: NonceAccount,
        commitment: Commitment,
    ) -> Result<Observed<Option<Blockhash>>, PortError> {
        let call = self.inner.nonce(account, commitment);
        self.guard
            .call(Dependency::RpcReads, "chain.nonce", call)
            .await
    }
}
