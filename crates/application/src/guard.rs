//! The latency guard: one latency breaker per dependency (the price feed, the router, the
//! chain), every call timed into its dependency's breaker under a timeout, entries
//! admitted only while every breaker is closed, and trading moved to ReduceOnly (exits
//! still run) while any is not, until recovery probes close it again.
//!
//! The guard wraps the ports it times ([`GuardedFeed`], [`GuardedRouter`],
//! [`GuardedChain`]): services call the ports as usual and never repeat the timing.
//! Ordinary calls never count as recovery probes: in half-open, only a probe the guard
//! admitted itself (the dependency's health probe) can close a breaker, so a healthy price
//! feed cannot close the chain's breaker, and an entry is never a probe.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use kyzlo_domain::latency_breaker::{
    Admission, BreakerSnapshot, BreakerState, CallOutcome, LatencyBreaker, StateChange,
};
use kyzlo_domain::trading_state::ReduceOnlyCause;
use kyzlo_domain::{ErrorClass, TxSignature};

use crate::clock::Clock;
use crate::control::TradingControl;
use crate::metrics::{Dependency, MetricEvent, MetricsSink};
use crate::ports::{
    Alert, AlertKind, Balances, Blockhash, Chain, Fill, HealthProbe, Observed, PortError,
    PriceFeed, PriceTick, Quote, QuoteRequest, RecentBlockhash, Severity, Side, SignedTransaction,
    StatusLookup, SwapRequest, SwapRouter, TxStatus, UnsignedTransaction,
};
use crate::rng::Jitter;

/// The dependencies with a breaker of their own.
pub const GUARDED: [Dependency; 3] = [Dependency::PriceFeed, Dependency::Router, Dependency::Chain];

fn slot(dependency: Dependency) -> usize {
    match dependency {
        Dependency::PriceFeed => 0,
        Dependency::Router => 1,
        Dependency::Chain | Dependency::Health => 2,
    }
}

/// Times calls, owns the breakers, and keeps the trading state in step with them.
pub struct LatencyGuard {
    breakers: [Mutex<LatencyBreaker>; 3],
    call_timeout: Duration,
    control: Arc<TradingControl>,
    metrics: Arc<dyn MetricsSink>,
    clock: Clock,
}

impl LatencyGuard {
    /// A guard giving each dependency a copy of `breaker`; every call is cut off after
    /// `call_timeout`.
    pub fn new(
        breaker: LatencyBreaker,
        call_timeout: Duration,
        control: Arc<TradingControl>,
        metrics: Arc<dyn MetricsSink>,
        clock: Clock,
    ) -> Self {
        Self {
            breakers: [
                Mutex::new(breaker.clone()),
                Mutex::new(breaker.clone()),
                Mutex::new(breaker),
            ],
            call_timeout,
            control,
            metrics,
            clock,
        }
    }

    fn breaker(&self, dependency: Dependency) -> MutexGuard<'_, LatencyBreaker> {
        self.breakers[slot(dependency)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// [`LatencyGuard::call`] with the guard's own call timeout.
    pub async fn timed<T, F>(
        &self,
        dependency: Dependency,
        operation: &'static str,
        call: F,
    ) -> Result<T, PortError>
    where
        F: Future<Output = Result<T, PortError>>,
    {
        self.call(dependency, operation, self.call_timeout, call)
            .await
    }

    /// Runs one call to `dependency` under `timeout` (capped at the guard's) and records
    /// its latency and outcome. No lock is held across the call.
    ///
    /// # Errors
    /// The call's own error, or `RpcTimeout` when it did not finish in time.
    pub async fn call<T, F>(
        &self,
        dependency: Dependency,
        operation: &'static str,
        timeout: Duration,
        call: F,
    ) -> Result<T, PortError>
    where
        F: Future<Output = Result<T, PortError>>,
    {
        let timeout = timeout.min(self.call_timeout);
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
    /// breaker's recovery backoff and jitter between probes, until it closes.
    pub async fn recover(&self, dependency: Dependency, probe: &dyn HealthProbe, jitter: &Jitter) {
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
            let result = tokio::time::timeout(self.call_timeout, probe.probe()).await;
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
                    if self
                        .control
                        .enter_reduce_only(ReduceOnlyCause::LatencyBreakerOpen)
                        .await
                    {
                        self.control
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
                    let _ = self
                        .control
                        .leave_reduce_only(ReduceOnlyCause::LatencyBreakerOpen)
                        .await;
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
            .timed(Dependency::PriceFeed, "feed.price", self.inner.price())
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
            .timed(
                Dependency::Router,
                "router.quote",
                self.inner.quote(request),
            )
            .await
    }

    async fn build_swap(&self, request: &SwapRequest) -> Result<UnsignedTransaction, PortError> {
        self.guard
            .timed(
                Dependency::Router,
                "router.build_swap",
                self.inner.build_swap(request),
            )
            .await
    }
}

/// The chain, timed by the guard; a send is cut off sooner (`send_timeout`): it may still
/// have been forwarded, and the attempt's rebroadcast gives it another chance.
pub struct GuardedChain {
    inner: Arc<dyn Chain>,
    guard: Arc<LatencyGuard>,
    send_timeout: Duration,
}

impl GuardedChain {
    /// `inner` timed by `guard`, sends cut at `send_timeout`.
    pub fn new(inner: Arc<dyn Chain>, guard: Arc<LatencyGuard>, send_timeout: Duration) -> Self {
        Self {
            inner,
            guard,
            send_timeout,
        }
    }
}

#[async_trait]
impl Chain for GuardedChain {
    async fn send(&self, tx: &SignedTransaction) -> Result<(), PortError> {
        self.guard
            .call(
                Dependency::Chain,
                "chain.send",
                self.send_timeout,
                self.inner.send(tx),
            )
            .await
    }

    async fn statuses(
        &self,
        signatures: &[TxSignature],
        lookup: StatusLookup,
    ) -> Result<Observed<Vec<Option<TxStatus>>>, PortError> {
        let call = self.inner.statuses(signatures, lookup);
        self.guard
            .timed(Dependency::Chain, "chain.statuses", call)
            .await
    }

    async fn blockhash_valid(
        &self,
        blockhash: Blockhash,
        min_context_slot: u64,
    ) -> Result<Observed<bool>, PortError> {
        let call = self.inner.blockhash_valid(blockhash, min_context_slot);
        self.guard
            .timed(Dependency::Chain, "chain.blockhash_valid", call)
            .await
    }

    async fn block_height(&self) -> Result<u64, PortError> {
        let call = self.inner.block_height();
        self.guard
            .timed(Dependency::Chain, "chain.block_height", call)
            .await
    }

    async fn latest_blockhash(&self) -> Result<RecentBlockhash, PortError> {
        let call = self.inner.latest_blockhash();
        self.guard
            .timed(Dependency::Chain, "chain.latest_blockhash", call)
            .await
    }

    async fn fill(&self, signature: TxSignature, side: Side) -> Result<Option<Fill>, PortError> {
        let call = self.inner.fill(signature, side);
        self.guard
            .timed(Dependency::Chain, "chain.fill", call)
            .await
    }

    async fn balances(&self) -> Result<Balances, PortError> {
        let call = self.inner.balances();
        self.guard
            .timed(Dependency::Chain, "chain.balances", call)
            .await
    }
}
