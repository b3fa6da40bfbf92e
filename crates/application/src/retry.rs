//! Retrying one call under a [`RetryPolicy`]: capped exponential backoff with full
//! jitter, the remote's retry-after honoured, and nothing planned past the budget.

use std::future::Future;
use std::time::Duration;

use kyzlo_domain::ErrorClass;
use kyzlo_domain::retry::{RetryBudget, RetryDecision, RetryPolicy};

use crate::clock::Clock;
use crate::ports::PortError;
use crate::rng::Jitter;

/// Calls `op` until it succeeds, fails with a class that is not retryable, or the
/// policy's attempts or budget run out. `max_call_time` is how long one call may take
/// (the budget refuses an attempt that could not end in time).
///
/// # Errors
/// The last call's error; or `RpcTimeout` when not even one call fit in the budget.
pub async fn retry_call<T, F, Fut>(
    clock: &Clock,
    jitter: &Jitter,
    policy: RetryPolicy,
    max_call_time: Duration,
    operation: &'static str,
    mut op: F,
) -> Result<T, PortError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PortError>>,
{
    let mut budget = RetryBudget::new(policy, clock.now());
    let mut last: Option<PortError> = None;
    loop {
        if let Err(reason) = budget.begin_attempt(clock.now(), max_call_time) {
            return Err(last.unwrap_or_else(|| {
                PortError::new(
                    operation,
                    ErrorClass::RpcTimeout,
                    format!("no time left for a call: {reason}"),
                )
            }));
        }
        match op().await {
            Ok(value) => return Ok(value),
            Err(error) => {
                match budget.after_failure(
                    clock.now(),
                    error.classified(),
                    max_call_time,
                    jitter.next_u64(),
                ) {
                    RetryDecision::RetryAfter(delay) => {
                        tracing::warn!(%error, attempt = budget.attempts(), ?delay, "retrying");
                        tokio::time::sleep(delay).await;
                        last = Some(error);
                    }
                    RetryDecision::GiveUp(reason) => {
                        tracing::warn!(%error, ?reason, "giving up");
                        return Err(error);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kyzlo_domain::{Slippage, TokenAmount};

    use super::*;
    use crate::ports::{MockSwapRouter, Quote, QuoteRequest, Side, SwapRouter};

    fn request() -> QuoteRequest {
        QuoteRequest {
            side: Side::Sell,
            amount_in: TokenAmount::new(1_000),
            slippage: Slippage::from_bps(100).unwrap(),
        }
    }

    fn quote() -> Quote {
        Quote {
            request: request(),
            expected_out: TokenAmount::new(95),
            min_out: TokenAmount::new(94),
            price_impact_pct: 0.0,
            route_label: "mock".into(),
            raw: Arc::from(&b"{}"[..]),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_with_a_reset_of_seven_seconds_waits_exactly_that_long() {
        let mut router = MockSwapRouter::new();
        let mut seq = mockall::Sequence::new();
        router
            .expect_quote()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| {
                Err(
                    PortError::new("jupiter.quote", ErrorClass::RateLimited, "429")
                        .with_code(429)
                        .with_retry_after(Duration::from_secs(7)),
                )
            });
        router
            .expect_quote()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(quote()));
        let clock = Clock::new();
        // A 100 ms backoff ceiling: the wait can only come from the retry-after.
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            ..RetryPolicy::default_policy()
        };
        let started = clock.now();
        let req = request();
        let result = retry_call(
            &clock,
            &Jitter::new(1),
            policy,
            Duration::from_secs(2),
            "quote",
            || router.quote(&req),
        )
        .await;
        assert!(result.is_ok());
        assert_eq!(
            clock.now().saturating_since(started),
            Duration::from_secs(7)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_routes_found_is_not_retried() {
        let mut router = MockSwapRouter::new();
        router.expect_quote().times(1).returning(|_| {
            Err(
                PortError::new("jupiter.quote", ErrorClass::NoRoute, "NO_ROUTES_FOUND")
                    .with_code(400),
            )
        });
        let clock = Clock::new();
        let started = clock.now();
        let req = request();
        let result = retry_call(
            &clock,
            &Jitter::new(1),
            RetryPolicy::default_policy(),
            Duration::from_secs(2),
            "quote",
            || router.quote(&req),
        )
        .await;
        assert_eq!(result.map(|_| ()).unwrap_err().class, ErrorClass::NoRoute);
        assert_eq!(
            clock.now().saturating_since(started),
            Duration::ZERO,
            "no waiting either"
        );
    }
}
