//! Every metric's name, help text and label set, registered once.

use super::*;

pub(super) fn register_all(registry: &mut Registry, m: &Handles, alerts: &AlertCounters) {
    let r = registry;
    r.register("ticks", "Ticks run", m.ticks.clone());
    r.register(
        "tick_errors",
        "Ticks that failed (logged, not fatal)",
        m.tick_errors.clone(),
    );
    r.register(
        "exits_attempted",
        "Exits started, by exit kind",
        m.exits_attempted.clone(),
    );
    r.register(
        "exits_first_attempt",
        "Exits closed by their first transaction, by exit kind",
        m.exits_first_attempt.clone(),
    );
    r.register(
        "exit_priority_fees_bid_lamports",
        "Priority fees bid by exit transactions, in lamports, by exit kind",
        m.exit_priority_fees_bid.clone(),
    );
    r.register(
        "exit_fees_paid_lamports",
        "Fees paid by landed exit transactions (base and priority, read from the chain), in lamports, by exit kind",
        m.exit_fees_paid.clone(),
    );
    r.register(
        "exits_required_retry",
        "Exits closed after more than one transaction, by exit kind",
        m.exits_required_retry.clone(),
    );
    r.register(
        "exits_failed",
        "Exits that gave up, by exit kind",
        m.exits_failed.clone(),
    );
    r.register(
        "exits_deadline_exceeded",
        "Exits still unresolved at their 30 s deadline, by exit kind",
        m.exits_deadline_exceeded.clone(),
    );
    r.register(
        "exit_transactions_sent",
        "Exit transactions sent, by exit kind and order style",
        m.exit_transactions_sent.clone(),
    );
    r.register(
        "circuit_breaker_trips",
        "Exit circuit breaker trips (each asks for a trading halt)",
        m.circuit_breaker_trips.clone(),
    );
    r.register(
        "exit_duration_seconds",
        "Time from exit signal to the exit's end, by result",
        m.exit_duration.clone(),
    );
    r.register(
        "exit_slippage_bps",
        "Realised slippage of closed exits against the trigger price, in bps (positive is worse)",
        m.exit_slippage.clone(),
    );
    r.register(
        "gateway_orders",
        "Exit orders accepted by the gateway, by module and exit kind",
        m.gateway_orders.clone(),
    );
    r.register(
        "gateway_ownership_conflicts",
        "Second exit orders refused for a position that already has one, by module and kind",
        m.gateway_conflicts.clone(),
    );
    r.register(
        "entries",
        "Entries by result (filled, failed, refused)",
        m.entries.clone(),
    );
    r.register(
        "dependency_calls",
        "Dependency calls by dependency and outcome",
        m.calls.clone(),
    );
    r.register(
        "dependency_call_duration_seconds",
        "Dependency call latency, by dependency",
        m.call_duration.clone(),
    );
    r.register(
        "dependency_latency_quantile_seconds",
        "Latency quantiles over each dependency's last 1000 calls, refreshed on scrape",
        m.dependency_quantiles.clone(),
    );
    r.register(
        "latency_breaker_state",
        "Latency circuit breaker state (1 for the current state)",
        m.breaker_state.clone(),
    );
    r.register(
        "latency_breaker_transitions",
        "Latency circuit breaker transitions, by state entered",
        m.breaker_transitions.clone(),
    );
    r.register(
        "latency_breaker_latency_seconds",
        "Latency quantiles over the latency breaker's window, refreshed on scrape",
        m.breaker_latency.clone(),
    );
    r.register(
        "latency_breaker_error_rate",
        "Failed share of the latency breaker's outcome window, refreshed on scrape",
        m.breaker_error_rate.clone(),
    );
    r.register(
        "latency_breaker_consecutive_failures",
        "Current run of failed calls seen by the latency breaker, refreshed on scrape",
        m.breaker_consecutive_failures.clone(),
    );
    r.register(
        "exit_breaker_consecutive_failures",
        "Consecutive failed exits counted by the exit breaker, refreshed on scrape",
        m.exit_breaker_consecutive_failures.clone(),
    );
    r.register(
        "trading_state",
        "Trading state (1 for the current state: active, reduce_only, halted)",
        m.trading_state.clone(),
    );
    r.register(
        "alerts",
        "Alerts by kind and outcome (delivered, failed, deduplicated, rate_limited, dropped, summary)",
        alerts.family(),
    );
}
