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
                    format!("no time left for a call: {reason:?}"),
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
