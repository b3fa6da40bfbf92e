//! The latency guard: every router and chain call goes through it, bounded by a timeout
//! and timed into the latency breaker; the breaker decides admission for entries, and
//! its opening moves trading to ReduceOnly (exits still run) until a health probe shows
//! the network has recovered.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use kyzlo_domain::ErrorClass;
use kyzlo_domain::latency_breaker::{
    Admission, BreakerSnapshot, BreakerState, CallOutcome, LatencyBreaker, StateChange,
};
use kyzlo_domain::trading_state::ReduceOnlyCause;

use crate::clock::Clock;
use crate::control::TradingControl;
use crate::metrics::{Dependency, MetricEvent, MetricsSink};
use crate::ports::{Alert, AlertKind, HealthProbe, PortError, Severity};
use crate::rng::Jitter;

/// Times calls, owns the latency breaker, and keeps the trading state in step with it.
pub struct LatencyGuard {
    breaker: Mutex<LatencyBreaker>,
    call_timeout: Duration,
    control: Arc<TradingControl>,
    metrics: Arc<dyn MetricsSink>,
    clock: Clock,
}

impl LatencyGuard {
    /// A guard over `breaker`; every call is cut off after `call_timeout`.
    pub fn new(
        breaker: LatencyBreaker,
        call_timeout: Duration,
        control: Arc<TradingControl>,
        metrics: Arc<dyn MetricsSink>,
        clock: Clock,
    ) -> Self {
        Self {
            breaker: Mutex::new(breaker),
            call_timeout,
            control,
            metrics,
            clock,
        }
    }

    fn breaker(&self) -> MutexGuard<'_, LatencyBreaker> {
        self.breaker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs one dependency call under the timeout and records its latency and outcome.
    /// The breaker's lock is never held across the call.
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
        self.call_within(dependency, operation, self.call_timeout, call)
            .await
    }

    /// As [`LatencyGuard::call`] with a timeout of its own, capped at the guard's.
    ///
    /// # Errors
    /// The call's own error, or `RpcTimeout` when it did not finish in time.
    pub async fn call_within<T, F>(
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
        let generation = self.breaker().generation();
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
            let mut breaker = self.breaker();
            let _ = breaker.record(now, generation, outcome);
            breaker.take_events()
        };
        self.on_changes(events).await;
        result
    }

    /// Whether an entry may start now. Exits never ask: they run while ReduceOnly.
    pub async fn admit_entry(&self) -> bool {
        let now = self.clock.now();
        let (admitted, events) = {
            let mut breaker = self.breaker();
            let admitted = matches!(breaker.admit(now), Admission::Admitted(_));
            (admitted, breaker.take_events())
        };
        self.on_changes(events).await;
        admitted
    }

    /// The breaker's counters and latency statistics.
    #[must_use]
    pub fn snapshot(&self) -> BreakerSnapshot {
        self.breaker().snapshot()
    }

    /// The breaker's state.
    #[must_use]
    pub fn state(&self) -> BreakerState {
        self.breaker().state()
    }

    /// Probes health while the breaker is not closed, with the breaker's recovery
    /// backoff and jitter between probes, until it closes. Returns once closed.
    pub async fn recover(&self, probe: &dyn HealthProbe, jitter: &Jitter) {
        loop {
            let (state, delay) = {
                let breaker = self.breaker();
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
            let (permit, events) = {
                let mut breaker = self.breaker();
                let _ = breaker.handle_timeout(now);
                let admission = breaker.admit(now);
                (admission, breaker.take_events())
            };
            self.on_changes(events).await;
            if let Admission::Admitted(permit) = permit {
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
                    let mut breaker = self.breaker();
                    let _ = breaker.record(now, permit.generation, outcome);
                    breaker.take_events()
                };
                self.on_changes(events).await;
            }
        }
    }

    async fn on_changes(&self, changes: Vec<StateChange>) {
        for change in changes {
            self.on_change(change).await;
        }
    }

    async fn on_change(&self, change: StateChange) {
        self.metrics
            .record(MetricEvent::LatencyBreakerState(change.to));
        tracing::warn!(from = change.from.as_str(), to = change.to.as_str(), cause = ?change.cause, "latency breaker");
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
                                "latency breaker open ({:?}): entries paused, exits continue",
                                change.cause
                            ),
                            position: None,
                        })
                        .await;
                }
            }
            BreakerState::Closed => {
                let _ = self
                    .control
                    .leave_reduce_only(ReduceOnlyCause::LatencyBreakerOpen)
                    .await;
            }
            BreakerState::HalfOpen => {}
        }
    }
}
