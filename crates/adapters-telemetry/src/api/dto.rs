//! The API's JSON shapes: serde types that live here, in the adapter, mapped from the
//! application's and domain's types (which know nothing of serde).

use std::collections::BTreeMap;
use std::time::Duration;

use kyzlo_application::journal::text::nonce_account_text;
use kyzlo_application::journal::{AttemptOutcome, IntentAction, IntentHistory, IntentOutcome};
use kyzlo_application::metrics::MetricsSummary;
use kyzlo_application::operator::Status;
use kyzlo_application::orchestrator::PositionView;
use kyzlo_domain::trading_state::{HaltOutcome, TradingState};
use kyzlo_domain::{BreakerSnapshot, LatencySnapshot, Price, TokenAmount};
use serde::Serialize;

/// `GET /status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusDto {
    /// Trading state with its reason.
    pub trading: TradingDto,
    /// Each dependency's latency circuit breaker, by dependency (`price_feed`, `router`,
    /// `rpc_reads`, `rpc_sends`).
    pub latency_breakers: BTreeMap<&'static str, BreakerDto>,
    /// The exit circuit breaker.
    pub exit_breaker: ExitBreakerDto,
    /// Open positions.
    pub positions: Vec<PositionDto>,
    /// How many positions have an exit running.
    pub open_exits: usize,
    /// Base units start-up reconciliation found in the wallet beyond what the journal
    /// accounts for (no stop protects them); absent when there were none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unaccounted_base_units: Option<u64>,
}

impl From<Status> for StatusDto {
    fn from(s: Status) -> Self {
        let positions: Vec<PositionDto> = s.positions.iter().map(PositionDto::from).collect();
        Self {
            trading: TradingDto::from(&s.trading),
            latency_breakers: s
                .latency_breakers
                .iter()
                .map(|(d, b)| (d.as_str(), BreakerDto::from(b)))
                .collect(),
            exit_breaker: ExitBreakerDto {
                consecutive_failed_exits: s.consecutive_failed_exits,
            },
            open_exits: positions.iter().filter(|p| p.exiting).count(),
            positions,
            unaccounted_base_units: s.unknown_tokens.map(TokenAmount::get),
        }
    }
}

/// The trading state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradingDto {
    /// `active`, `reduce_only` or `halted`.
    pub state: &'static str,
    /// Why trading is halted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub halt_reason: Option<HaltReasonDto>,
    /// Why entries are paused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reduce_only_cause: Option<&'static str>,
    /// Since when, in microseconds since the process started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_micros: Option<u64>,
}

impl From<&TradingState> for TradingDto {
    fn from(state: &TradingState) -> Self {
        let (halt_reason, reduce_only_cause, since) = match state {
            TradingState::Active => (None, None, None),
            TradingState::ReduceOnly { cause, since } => (None, Some(cause.as_str()), Some(*since)),
            TradingState::Halted { reason, since } => (
                Some(HaltReasonDto {
                    cause: reason.cause.as_str(),
                    detail: reason.detail.clone(),
                }),
                None,
                Some(*since),
            ),
        };
        Self {
            state: state.as_str(),
            halt_reason,
            reduce_only_cause,
            since_micros: since.map(|t| t.as_micros()),
        }
    }
}

/// Why trading was halted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HaltReasonDto {
    /// `exit_breaker`, `exit_deadline`, `operator`, `reconciliation`, `shutdown`.
    pub cause: &'static str,
    /// The detail given with the first halt.
    pub detail: String,
}

/// The latency breaker's snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerDto {
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    /// Transitions since start.
    pub state_changes: u64,
    /// Calls admitted.
    pub admitted: u64,
    /// Calls rejected.
    pub rejected: u64,
    /// Successful outcomes.
    pub successes: u64,
    /// Failed outcomes.
    pub failures: u64,
    /// Current run of failures.
    pub consecutive_failures: u32,
    /// Failed share of the outcome window.
    pub error_rate: f64,
    /// Failed recoveries since the last close.
    pub recovery_attempts: u32,
    /// The latency window.
    pub latency: LatencyDto,
}

impl From<&BreakerSnapshot> for BreakerDto {
    fn from(b: &BreakerSnapshot) -> Self {
        Self {
            state: b.state.as_str(),
            state_changes: b.state_changes,
            admitted: b.admitted,
            rejected: b.rejected,
            successes: b.successes,
            failures: b.failures,
            consecutive_failures: b.consecutive_failures,
            error_rate: if b.error_rate.is_finite() {
                b.error_rate
            } else {
                0.0
            },
            recovery_attempts: b.recovery_attempts,
            latency: LatencyDto::from(&b.latency),
        }
    }
}

/// Latency statistics, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyDto {
    /// Samples in the window.
    pub count: u64,
    pub mean_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

impl From<&LatencySnapshot> for LatencyDto {
    fn from(l: &LatencySnapshot) -> Self {
        Self {
            count: l.count,
            mean_ms: millis(l.mean),
            min_ms: millis(l.min),
            max_ms: millis(l.max),
            p50_ms: millis(l.p50),
            p95_ms: millis(l.p95),
            p99_ms: millis(l.p99),
        }
    }
}

/// The exit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExitBreakerDto {
    /// Consecutive failed exits (the breaker trips at its threshold).
    pub consecutive_failed_exits: u32,
}

/// One open position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PositionDto {
    /// Its id (the `{id}` of `POST /positions/{id}/exit`).
    pub id: u64,
    /// Entry price.
    pub entry_price: f64,
    /// Base units still held.
    pub remaining_base_units: u64,
    /// The active stop level.
    pub stop_level: f64,
    /// The highest price since entry.
    pub peak: f64,
    /// Where the next take-profit rung sells, if one is left.
    pub next_take_profit: Option<f64>,
    /// Whether an exit is running.
    pub exiting: bool,
}

impl From<&PositionView> for PositionDto {
    fn from(p: &PositionView) -> Self {
        Self {
            id: p.id.0,
            entry_price: p.entry_price.get(),
            remaining_base_units: p.remaining.get(),
            stop_level: p.stop_level.get(),
            peak: p.peak.get(),
            next_take_profit: p.next_take_profit.map(Price::get),
            exiting: p.exiting,
        }
    }
}

/// `GET /exits/history`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryDto {
    /// Newest first.
    pub exits: Vec<ExitDto>,
}

/// One exit intent with its attempts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExitDto {
    /// The intent id.
    pub intent: u64,
    /// The position.
    pub position: u64,
    /// The exit kind (`stop_loss`, `operator`, ...), or `entry`.
    pub kind: &'static str,
    /// `buy` or `sell`.
    pub side: &'static str,
    /// Input amount asked for, in base units.
    pub amount_in: u64,
    /// When it was created, in microseconds since the process started.
    pub created_at_micros: u64,
    /// How it ended; absent while unresolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<ExitOutcomeDto>,
    /// Its transactions, oldest first.
    pub attempts: Vec<AttemptDto>,
}

impl From<&IntentHistory> for ExitDto {
    fn from(h: &IntentHistory) -> Self {
        let i = &h.intent;
        Self {
            intent: i.intent.0,
            position: i.position.0,
            kind: match i.action {
                IntentAction::Exit(kind) => kind.as_str(),
                IntentAction::Enter => "entry",
            },
            side: i.side.as_str(),
            amount_in: i.amount_in.get(),
            created_at_micros: i.created_at.as_micros(),
            outcome: h.outcome.map(|o| match o {
                IntentOutcome::Filled(fill) => ExitOutcomeDto::Filled {
                    amount_in: fill.amount_in.get(),
                    amount_out: fill.amount_out.get(),
                    fee_lamports: fill.fee.get(),
                },
                IntentOutcome::Landed {
                    provisional: fill, ..
                } => ExitOutcomeDto::Landed {
                    amount_in: fill.amount_in.get(),
                    min_amount_out: fill.amount_out.get(),
                },
                IntentOutcome::Failed => ExitOutcomeDto::Failed,
            }),
            attempts: h
                .attempts
                .iter()
                .map(|(a, outcome)| AttemptDto {
                    attempt: a.attempt,
                    signature: bs58::encode(a.signature.0).into_string(),
                    last_valid_block_height: a.last_valid_block_height,
                    slippage_bps: a.slippage.bps().get(),
                    priority_fee_lamports: a.priority_fee.get(),
                    amount_in: a.amount_in.get(),
                    sent_at_micros: a.sent_at.as_micros(),
                    nonce_account: a.nonce.map(|n| nonce_account_text(&n.nonce.account)),
                    cancel: a.nonce.is_some_and(|n| n.cancel),
                    outcome: outcome.map(|o| match o {
                        AttemptOutcome::Landed => "landed",
                        AttemptOutcome::Failed(_) => "failed",
                        AttemptOutcome::Expired => "expired",
                    }),
                    error_class: match outcome {
                        Some(AttemptOutcome::Failed(class)) => Some(class.as_str()),
                        _ => None,
                    },
                })
                .collect(),
        }
    }
}

/// How an exit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ExitOutcomeDto {
    /// One transaction landed.
    Filled {
        /// Base units sold.
        amount_in: u64,
        /// Quote units received.
        amount_out: u64,
        /// Fees paid, read back from the landed transaction (base and priority).
        fee_lamports: u64,
    },
    /// One transaction landed; its fill is not read yet.
    Landed {
        /// Base units sold.
        amount_in: u64,
        /// At least this many quote units received (the quote's minimum).
        min_amount_out: u64,
    },
    /// Nothing landed and nothing can.
    Failed,
}

/// One transaction of an exit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptDto {
    /// 1-based.
    pub attempt: u32,
    /// Base58, as explorers show it.
    pub signature: String,
    /// The block height after which it cannot land.
    pub last_valid_block_height: u64,
    /// Slippage asked for.
    pub slippage_bps: u16,
    /// Priority fee bid (exact with kyzlo's own message; the cap on Jupiter v1). What the
    /// landed one paid is the outcome's `fee_lamports`.
    pub priority_fee_lamports: u64,
    /// Exact input amount.
    pub amount_in: u64,
    /// When it was sent, in microseconds since the process started.
    pub sent_at_micros: u64,
    /// The durable nonce account it was built on (base58), or `null` for an attempt on a
    /// recent blockhash.
    pub nonce_account: Option<String>,
    /// Whether it is the exit's cancel: the nonce's advance alone, which swaps nothing
    /// and lands only so that nothing else on the same nonce value can.
    pub cancel: bool,
    /// `landed`, `failed` or `expired`; absent while it may still land.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    /// The error class of a failed attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_class: Option<&'static str>,
}

/// `GET /metrics/exits`: the seeds' exit metrics, and the gateway's counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExitMetricsDto {
    /// Exits started.
    pub exits_attempted: u64,
    /// Exits closed by their first transaction.
    pub exits_first_attempt: u64,
    /// Exits closed after more than one transaction.
    pub exits_required_retry: u64,
    /// Exits unresolved at their deadline.
    pub exits_deadline_exceeded: u64,
    /// Exits that gave up.
    pub exits_failed: u64,
    /// Exit breaker trips.
    pub circuit_breaker_trips: u64,
    /// Mean time of closed exits, seconds (0 when none).
    pub avg_exit_time_secs: f64,
    /// 99th percentile (nearest rank) time of closed exits, seconds (0 when none).
    pub p99_exit_time_secs: f64,
    /// Mean realised slippage of closed exits, bps (0 when none).
    pub avg_exit_slippage_bps: f64,
    /// Closed exits by kind.
    pub exits_closed_by_kind: BTreeMap<&'static str, u64>,
    /// Exit transactions sent.
    pub exit_transactions_sent: u64,
    /// The exit gateway's counts.
    pub gateway: GatewayDto,
    /// Ticks run.
    pub ticks: u64,
    /// Ticks that failed.
    pub tick_errors: u64,
}

/// The exit gateway's counts (seed 003's summary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayDto {
    /// Orders accepted.
    pub total_orders: u64,
    /// Orders by module.
    pub orders_by_module: BTreeMap<&'static str, u64>,
    /// Orders by exit kind.
    pub orders_by_kind: BTreeMap<&'static str, u64>,
    /// Second orders refused for a position that already had one.
    pub ownership_conflicts: u64,
}

impl From<&MetricsSummary> for ExitMetricsDto {
    fn from(s: &MetricsSummary) -> Self {
        let mut gateway = GatewayDto {
            total_orders: 0,
            orders_by_module: BTreeMap::new(),
            orders_by_kind: BTreeMap::new(),
            ownership_conflicts: s.gateway_conflicts,
        };
        for ((module, kind), n) in &s.gateway_orders {
            gateway.total_orders += n;
            *gateway.orders_by_module.entry(module).or_default() += n;
            *gateway.orders_by_kind.entry(kind).or_default() += n;
        }
        let mut times: Vec<Duration> = s.exit_times.clone();
        times.sort_unstable();
        let p99 = times
            .len()
            .checked_sub(1)
            .map(|last| {
                // Nearest rank: the smallest value with at least 99% of samples at or below it.
                let rank = (times.len() as f64 * 0.99).ceil() as usize;
                times[rank.saturating_sub(1).min(last)]
            })
            .unwrap_or_default();
        let slippage: Vec<f64> = s
            .exit_slippage_bps
            .iter()
            .copied()
            .filter(|b| b.is_finite())
            .collect();
        Self {
            exits_attempted: s.exits_attempted,
            exits_first_attempt: s.exits_first_attempt,
            exits_required_retry: s.exits_required_retry,
            exits_deadline_exceeded: s.exits_deadline_exceeded,
            exits_failed: s.exits_failed,
            circuit_breaker_trips: s.circuit_breaker_trips,
            avg_exit_time_secs: mean(times.iter().map(Duration::as_secs_f64)),
            p99_exit_time_secs: p99.as_secs_f64(),
            avg_exit_slippage_bps: mean(slippage.into_iter()),
            exits_closed_by_kind: s.exits_closed_by_kind.clone(),
            exit_transactions_sent: s.exit_attempts_sent,
            gateway,
            ticks: s.ticks,
            tick_errors: s.tick_errors,
        }
    }
}

/// `POST /halt`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HaltDto {
    /// `halted`, or `already_halted` (the first reason stays).
    pub outcome: &'static str,
    /// The state now (absent if the trading loop did not answer; the halt holds anyway).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trading: Option<TradingDto>,
}

impl HaltDto {
    pub(crate) fn new(outcome: HaltOutcome, state: Option<&TradingState>) -> Self {
        Self {
            outcome: match outcome {
                HaltOutcome::Halted => "halted",
                HaltOutcome::AlreadyHalted => "already_halted",
            },
            trading: state.map(TradingDto::from),
        }
    }
}

/// `POST /positions/{id}/exit`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ForceExitDto {
    /// The position.
    pub position: u64,
    /// The exit's intent id (find it in `/exits/history`).
    pub intent: u64,
}

/// Every error answer: a machine code, a message, and the offending field if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorDto {
    /// A stable snake_case code.
    pub error: &'static str,
    /// For a person.
    pub message: String,
    /// The request field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0u64), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_metrics_compute_mean_and_nearest_rank_p99() {
        let mut s = MetricsSummary {
            exits_attempted: 100,
            exits_first_attempt: 99,
            exits_required_retry: 1,
            ..MetricsSummary::default()
        };
        s.exit_times = (1..=100).map(Duration::from_secs).collect();
        s.exit_slippage_bps = vec![10.0, 30.0, f64::NAN];
        s.gateway_orders.insert(("exit_plan", "stop_loss"), 3);
        s.gateway_orders.insert(("operator", "operator"), 1);
        let dto = ExitMetricsDto::from(&s);
        assert_eq!(dto.p99_exit_time_secs, 99.0);
        assert_eq!(dto.avg_exit_time_secs, 50.5);
        assert_eq!(dto.avg_exit_slippage_bps, 20.0);
        assert_eq!(dto.gateway.total_orders, 4);
        assert_eq!(dto.gateway.orders_by_module.get("exit_plan"), Some(&3));
        assert_eq!(dto.gateway.orders_by_kind.get("operator"), Some(&1));
    }

    #[test]
    fn an_exits_attempts_show_their_nonce_account_and_which_is_the_cancel() {
        use kyzlo_application::journal::{AttemptRecord, IntentRecord, NonceUse};
        use kyzlo_application::ports::{Blockhash, DurableNonce, NonceAccount, Side};
        use kyzlo_domain::{
            ExitKind, IntentId, Lamports, PositionId, Slippage, Timestamp, TxSignature,
        };

        let nonce = DurableNonce {
            account: NonceAccount([0xAB; 32]),
            value: Blockhash([0xC0; 32]),
        };
        let attempt = |number: u32, nonce: Option<NonceUse>| {
            let record = AttemptRecord {
                intent: IntentId(3),
                attempt: number,
                signature: TxSignature([u8::try_from(number).unwrap(); 64]),
                blockhash: nonce.map_or(Blockhash([1; 32]), |n| n.nonce.value),
                valid_at_slot: 10,
                last_valid_block_height: 20,
                slippage: Slippage::from_bps(100).unwrap(),
                priority_fee: Lamports::new(5_000),
                amount_in: TokenAmount::new(if nonce.is_some_and(|n| n.cancel) {
                    0
                } else {
                    7
                }),
                min_out: TokenAmount::new(0),
                sent_at: Timestamp::ZERO,
                nonce,
            };
            (record, None)
        };
        let history = IntentHistory {
            intent: IntentRecord {
                intent: IntentId(3),
                position: PositionId(1),
                action: IntentAction::Exit(ExitKind::StopLoss),
                side: Side::Sell,
                amount_in: TokenAmount::new(7),
                created_at: Timestamp::ZERO,
            },
            outcome: None,
            attempts: vec![
                attempt(1, None),
                attempt(
                    2,
                    Some(NonceUse {
                        nonce,
                        cancel: false,
                    }),
                ),
                attempt(
                    3,
                    Some(NonceUse {
                        nonce,
                        cancel: true,
                    }),
                ),
            ],
        };
        let json = serde_json::to_value(ExitDto::from(&history)).unwrap();
        let account = bs58::encode([0xAB; 32]).into_string();
        let shown: Vec<(serde_json::Value, serde_json::Value)> = json["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["nonce_account"].clone(), a["cancel"].clone()))
            .collect();
        assert_eq!(
            shown,
            [
                (serde_json::Value::Null, serde_json::json!(false)),
                (serde_json::json!(account), serde_json::json!(false)),
                (serde_json::json!(account), serde_json::json!(true)),
            ]
        );
    }

    #[test]
    fn exit_metrics_of_nothing_are_zero_not_nan() {
        let dto = ExitMetricsDto::from(&MetricsSummary::default());
        assert_eq!(
            (
                dto.avg_exit_time_secs,
                dto.p99_exit_time_secs,
                dto.avg_exit_slippage_bps
            ),
            (0.0, 0.0, 0.0)
        );
    }
}
