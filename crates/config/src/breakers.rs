//! `[latency_breaker]` (with its per-dependency tables `[latency_breaker.jupiter]`,
//! `[latency_breaker.rpc_reads]` and `[latency_breaker.rpc_sends]`), `[exit_breaker]` and
//! `[halt]`.
//!
//! A latency breaker's key is looked up in its dependency's table first, then in
//! `[latency_breaker]` (a key written there applies to every dependency, as before the
//! tables existed), then in the dependency's calibrated default. A call's timeout is the
//! table's `call_timeout_ms`, else `exit.call_timeout_ms` (`exit.send_timeout_ms` for
//! sends).
//!
//! # The calibrated defaults, and where they come from
//! Only the P99 thresholds differ from the breaker's own defaults (5 failures in a row,
//! half of 100 calls failed, 30 s open, 3 probes); the send timeout is new:
//!
//! | dependency | `p99_threshold_ms` | `call_timeout_ms` |
//! |---|---|---|
//! | `jupiter` (price feed and router) | 1,000 | 2,000 (`exit.call_timeout_ms`) |
//! | `rpc_reads` | 1,000 | 2,000 (`exit.call_timeout_ms`) |
//! | `rpc_sends` | 1,000 | 1,500 (`exit.send_timeout_ms`) |
//!
//! - Jupiter publishes no latency figure: its API gateway runs in six AWS regions
//!   (us-east-1, us-east-2, eu-central-1, eu-west-1, ap-southeast-1, ap-northeast-1) and
//!   latency "varies significantly" with the distance to them, the same for every plan
//!   (<https://dev.jup.ag/portal/latency>). A published benchmark of Jupiter's Metis swap
//!   builds measured, from a co-located server, 95 ms (buy) and 169 ms (sell) on average,
//!   177 ms at worst, and over the public internet (buys) 180 ms on average and 370 ms at
//!   worst (<https://docs.lasersell.io/benchmarks/tx-build-latency>, 20 calls each). 1 s
//!   is a judgement: about 2.7 times the worst public-internet build seen, so a server far
//!   from every gateway does not pause entries while a Jupiter that takes seconds does.
//! - Solana RPC: no provider publishes a P99 for reads or for `sendTransaction` that could
//!   be cited (searched: Solana's, Helius', QuickNode's pages), so both thresholds are
//!   judgements. Solana's public endpoints are rate-limited and "not intended for
//!   production applications" (<https://docs.solana.com/cluster/rpc-endpoints>, now
//!   <https://solana.com/docs/references/clusters>); a slot is about 400 ms
//!   (`exit.slot_time_ms`); the devnet example configuration had to raise the old single
//!   200 ms P99 (meant for a dedicated node) to 1 s for the public endpoint. 1 s is two and
//!   a half slots: a read later than that describes a chain that has moved on, and a send
//!   later than that is overtaken by the attempt's own rebroadcast (every 400 ms).
//! - Timeouts: a read keeps 2 s, room for `rpc.request_timeout_ms` (1 s) on one endpoint
//!   and the next (the client fails over within the call). A send with preflight is a
//!   read plus the transaction's simulation on the node before it forwards it, so it is
//!   given 1.5 s (it was cut at 200 ms, which on a public endpoint counted most sends as
//!   failures); past that the same bytes are sent again on the rebroadcast, so a longer
//!   wait buys nothing. Helius, one provider, advises a `getHealth` on the sending
//!   endpoint every second to keep its path warm
//!   (<https://www.helius.dev/docs/sending-transactions/optimizing-transactions>): the
//!   sends' breaker recovers by such a probe, never by a transaction.

use kyzlo_application::guard::{DependencyLimits, GuardLimits};
use kyzlo_domain::DomainError;
use kyzlo_domain::latency_breaker::LatencyBreakerConfig;
use serde::{Deserialize, Serialize};

use crate::check::{ConfigError, invalid, positive_ms, positive_secs};

/// `[exit_breaker]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExitBreakerFile {
    /// Consecutive failed exits that halt trading.
    pub threshold: u32,
}

impl ExitBreakerFile {
    pub(crate) fn validate(&self) -> Result<u32, ConfigError> {
        if self.threshold == 0 {
            return Err(invalid("exit_breaker.threshold", 0, "at least 1"));
        }
        Ok(self.threshold)
    }
}

/// `[halt]` as written: what a halt does besides stopping entries and automatic exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HaltFile {
    /// A position whose stop fires while halted: `on_recovery` retries its exit on the
    /// widest rung once the chain answers (alerting on each try, with backoff, until it
    /// closes or `kyzlo hold ID`); `operator_only` leaves it to an operator.
    pub protective_exits: ProtectiveExitsFile,
}

/// `halt.protective_exits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtectiveExitsFile {
    /// Retried once the chain answers.
    #[default]
    OnRecovery,
    /// Left to an operator.
    OperatorOnly,
}

impl ProtectiveExitsFile {
    pub(crate) fn validate(self) -> kyzlo_application::orchestrator::ProtectiveExits {
        use kyzlo_application::orchestrator::ProtectiveExits;
        match self {
            Self::OnRecovery => ProtectiveExits::OnRecovery,
            Self::OperatorOnly => ProtectiveExits::OperatorOnly,
        }
    }
}

/// The calibrated P99 threshold of Jupiter's breakers (price feed and router); see the
/// module documentation for its source.
pub const JUPITER_P99_THRESHOLD_MS: u64 = 1_000;
/// The calibrated P99 threshold of the RPC reads' breaker; see the module documentation.
pub const RPC_READS_P99_THRESHOLD_MS: u64 = 1_000;
/// The calibrated P99 threshold of the RPC sends' breaker; see the module documentation.
pub const RPC_SENDS_P99_THRESHOLD_MS: u64 = 1_000;
/// The default timeout of a price read, a quote, a swap build and a chain read
/// (`exit.call_timeout_ms`).
pub const CALL_TIMEOUT_MS: u64 = 2_000;
/// The default timeout of a send (`exit.send_timeout_ms`); see the module documentation.
pub const SEND_TIMEOUT_MS: u64 = 1_500;

/// `[latency_breaker]` as written: the keys every dependency's breaker takes unless its
/// own table says otherwise, and the per-dependency tables. An absent key falls back to
/// the dependency's calibrated default.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyBreakerFile {
    /// A run of failed calls this long opens it (default 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
    /// A failed share of the window this high opens it (default 0.5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_rate_threshold: Option<f64>,
    /// Calls needed before the failed share counts (default 20).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_calls: Option<u32>,
    /// Calls in the failed-share window (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome_window: Option<u32>,
    /// A p99 latency this high opens it (default: the dependency's, 1000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_threshold_ms: Option<u64>,
    /// Latencies in the p99 window (default 1000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_window: Option<usize>,
    /// Latencies needed before the p99 counts (default 20).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_latency_samples: Option<usize>,
    /// Open this long, it lets probes through (half-open; default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_timeout_s: Option<f64>,
    /// Probes let through while half-open (default 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub half_open_max_probes: Option<u32>,
    /// A probe unanswered this long failed (default 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_timeout_s: Option<f64>,
    /// `[latency_breaker.jupiter]`: the price feed's and the router's breakers (Jupiter's
    /// price and swap APIs; in paper, their simulated stand-ins).
    pub jupiter: DependencyBreakerFile,
    /// `[latency_breaker.rpc_reads]`: the chain's reads and its health probe.
    pub rpc_reads: DependencyBreakerFile,
    /// `[latency_breaker.rpc_sends]`: the chain's sends.
    pub rpc_sends: DependencyBreakerFile,
}

/// `[latency_breaker.<dependency>]` as written: any of `[latency_breaker]`'s keys, for
/// this dependency alone, and its call timeout.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DependencyBreakerFile {
    /// A run of failed calls this long opens it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
    /// A failed share of the window this high opens it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_rate_threshold: Option<f64>,
    /// Calls needed before the failed share counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_calls: Option<u32>,
    /// Calls in the failed-share window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome_window: Option<u32>,
    /// A p99 latency this high opens it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_threshold_ms: Option<u64>,
    /// Latencies in the p99 window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_window: Option<usize>,
    /// Latencies needed before the p99 counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_latency_samples: Option<usize>,
    /// Open this long, it lets probes through (half-open).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_timeout_s: Option<f64>,
    /// Probes let through while half-open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub half_open_max_probes: Option<u32>,
    /// A probe unanswered this long failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_timeout_s: Option<f64>,
    /// A call unanswered this long failed (default `exit.call_timeout_ms`, for sends
    /// `exit.send_timeout_ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_timeout_ms: Option<u64>,
}

/// The timeouts `[exit]` gives every dependency unless its table sets `call_timeout_ms`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DefaultTimeouts {
    /// `exit.call_timeout_ms`.
    pub(crate) call_ms: u64,
    /// `exit.send_timeout_ms`.
    pub(crate) send_ms: u64,
}

/// One dependency's table, as [`LatencyBreakerFile::validate`] reads it.
struct Table<'a> {
    name: &'static str,
    own: &'a DependencyBreakerFile,
    p99_threshold_ms: u64,
    timeout_key: &'static str,
    timeout_ms: u64,
}

/// A value and the key it was read from (the dependency's own key when it came from no
/// file: that is where an operator would change it).
struct Picked<T> {
    value: T,
    key: String,
}

impl LatencyBreakerFile {
    fn tables(&self, timeouts: DefaultTimeouts) -> [Table<'_>; 3] {
        [
            Table {
                name: "jupiter",
                own: &self.jupiter,
                p99_threshold_ms: JUPITER_P99_THRESHOLD_MS,
                timeout_key: "exit.call_timeout_ms",
                timeout_ms: timeouts.call_ms,
            },
            Table {
                name: "rpc_reads",
                own: &self.rpc_reads,
                p99_threshold_ms: RPC_READS_P99_THRESHOLD_MS,
                timeout_key: "exit.call_timeout_ms",
                timeout_ms: timeouts.call_ms,
            },
            Table {
                name: "rpc_sends",
                own: &self.rpc_sends,
                p99_threshold_ms: RPC_SENDS_P99_THRESHOLD_MS,
                timeout_key: "exit.send_timeout_ms",
                timeout_ms: timeouts.send_ms,
            },
        ]
    }

    /// The key the RPC reads' call timeout is read from, and its value in milliseconds.
    pub(crate) fn rpc_reads_timeout(&self, timeouts: DefaultTimeouts) -> (String, u64) {
        let [_, reads, _] = self.tables(timeouts);
        let picked = reads.timeout();
        (picked.key, picked.value)
    }

    /// Each dependency's limits: its table's keys over `[latency_breaker]`'s over its
    /// calibrated defaults; its timeout from its table or `[exit]`.
    pub(crate) fn validate(&self, timeouts: DefaultTimeouts) -> Result<GuardLimits, ConfigError> {
        let [jupiter, rpc_reads, rpc_sends] = self.tables(timeouts);
        let jupiter = jupiter.limits(self)?;
        Ok(GuardLimits {
            price_feed: jupiter.clone(),
            router: jupiter,
            rpc_reads: rpc_reads.limits(self)?,
            rpc_sends: rpc_sends.limits(self)?,
        })
    }
}

impl Table<'_> {
    fn pick<T: Copy>(&self, key: &str, own: Option<T>, shared: Option<T>, default: T) -> Picked<T> {
        if let (None, Some(value)) = (own, shared) {
            return Picked {
                value,
                key: format!("latency_breaker.{key}"),
            };
        }
        Picked {
            value: own.unwrap_or(default),
            key: format!("latency_breaker.{}.{key}", self.name),
        }
    }

    fn timeout(&self) -> Picked<u64> {
        match self.own.call_timeout_ms {
            Some(value) => Picked {
                value,
                key: format!("latency_breaker.{}.call_timeout_ms", self.name),
            },
            None => Picked {
                value: self.timeout_ms,
                key: self.timeout_key.to_owned(),
            },
        }
    }

    fn limits(&self, shared: &LatencyBreakerFile) -> Result<DependencyLimits, ConfigError> {
        let d = LatencyBreakerConfig::default();
        let own = self.own;
        let failure_threshold = self.pick(
            "failure_threshold",
            own.failure_threshold,
            shared.failure_threshold,
            d.failure_threshold,
        );
        let error_rate_threshold = self.pick(
            "error_rate_threshold",
            own.error_rate_threshold,
            shared.error_rate_threshold,
            d.error_rate_threshold,
        );
        let min_calls = self.pick("min_calls", own.min_calls, shared.min_calls, d.min_calls);
        let outcome_window = self.pick(
            "outcome_window",
            own.outcome_window,
            shared.outcome_window,
            d.outcome_window,
        );
        let p99 = self.pick(
            "p99_threshold_ms",
            own.p99_threshold_ms,
            shared.p99_threshold_ms,
            self.p99_threshold_ms,
        );
        let latency_window = self.pick(
            "latency_window",
            own.latency_window,
            shared.latency_window,
            d.latency_window,
        );
        let min_latency_samples = self.pick(
            "min_latency_samples",
            own.min_latency_samples,
            shared.min_latency_samples,
            d.min_latency_samples,
        );
        let recovery = self.pick(
            "recovery_timeout_s",
            own.recovery_timeout_s,
            shared.recovery_timeout_s,
            d.recovery_timeout.as_secs_f64(),
        );
        let half_open_max_probes = self.pick(
            "half_open_max_probes",
            own.half_open_max_probes,
            shared.half_open_max_probes,
            d.half_open_max_probes,
        );
        let probe_timeout = self.pick(
            "probe_timeout_s",
            own.probe_timeout_s,
            shared.probe_timeout_s,
            d.probe_timeout.as_secs_f64(),
        );
        let timeout = self.timeout();
        let breaker = LatencyBreakerConfig {
            failure_threshold: failure_threshold.value,
            error_rate_threshold: error_rate_threshold.value,
            min_calls: min_calls.value,
            outcome_window: outcome_window.value,
            p99_threshold: positive_ms(&p99.key, p99.value)?,
            latency_window: latency_window.value,
            min_latency_samples: min_latency_samples.value,
            recovery_timeout: positive_secs(&recovery.key, recovery.value)?,
            half_open_max_probes: half_open_max_probes.value,
            probe_timeout: positive_secs(&probe_timeout.key, probe_timeout.value)?,
            ..d
        };
        breaker.validate().map_err(|e| {
            // The domain names its field; the operator needs the key it was read from.
            let (field, expected) = match e {
                DomainError::InvalidConfig { field, expected } => (field, expected.to_owned()),
                other => ("", other.to_string()),
            };
            let (key, value) = match field.rsplit('.').next().unwrap_or(field) {
                "failure_threshold" => (failure_threshold.key, failure_threshold.value.to_string()),
                "error_rate_threshold" => (
                    error_rate_threshold.key,
                    error_rate_threshold.value.to_string(),
                ),
                "min_calls" => (min_calls.key, min_calls.value.to_string()),
                "outcome_window" => (outcome_window.key, outcome_window.value.to_string()),
                "p99_threshold" => (p99.key, p99.value.to_string()),
                "latency_window" => (latency_window.key, latency_window.value.to_string()),
                "min_latency_samples" => (
                    min_latency_samples.key,
                    min_latency_samples.value.to_string(),
                ),
                "recovery_timeout" => (recovery.key, recovery.value.to_string()),
                "half_open_max_probes" => (
                    half_open_max_probes.key,
                    half_open_max_probes.value.to_string(),
                ),
                "probe_timeout" => (probe_timeout.key, probe_timeout.value.to_string()),
                other => (
                    format!("latency_breaker.{}.{other}", self.name),
                    "(as written)".to_owned(),
                ),
            };
            invalid(key, value, expected)
        })?;
        Ok(DependencyLimits {
            breaker,
            call_timeout: positive_ms(&timeout.key, timeout.value)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{Config, File};

    fn config(toml_text: &str) -> Result<Config, ConfigError> {
        Config::try_from(toml::from_str::<File>(toml_text).unwrap())
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn each_dependency_gets_its_calibrated_defaults() {
        let guard = config("").unwrap().guard;
        for (limits, p99, timeout) in [
            (&guard.price_feed, JUPITER_P99_THRESHOLD_MS, CALL_TIMEOUT_MS),
            (&guard.router, JUPITER_P99_THRESHOLD_MS, CALL_TIMEOUT_MS),
            (
                &guard.rpc_reads,
                RPC_READS_P99_THRESHOLD_MS,
                CALL_TIMEOUT_MS,
            ),
            (
                &guard.rpc_sends,
                RPC_SENDS_P99_THRESHOLD_MS,
                SEND_TIMEOUT_MS,
            ),
        ] {
            assert_eq!(limits.breaker.p99_threshold, ms(p99));
            assert_eq!(limits.call_timeout, ms(timeout));
            assert_eq!(
                LatencyBreakerConfig {
                    p99_threshold: LatencyBreakerConfig::default().p99_threshold,
                    ..limits.breaker.clone()
                },
                LatencyBreakerConfig::default(),
                "only the P99 differs from the breaker's own defaults"
            );
        }
    }

    #[test]
    fn a_shared_key_applies_to_every_dependency_and_a_tables_key_to_its_own() {
        let guard = config(
            "[exit]\ncall_timeout_ms = 1500\nsend_timeout_ms = 800\n\
             [latency_breaker]\np99_threshold_ms = 500\nfailure_threshold = 7\n\
             [latency_breaker.rpc_sends]\np99_threshold_ms = 2000\ncall_timeout_ms = 3000\n\
             [latency_breaker.jupiter]\nfailure_threshold = 3\n",
        )
        .unwrap()
        .guard;
        let row = |l: &DependencyLimits| {
            (
                l.breaker.p99_threshold,
                l.breaker.failure_threshold,
                l.call_timeout,
            )
        };
        assert_eq!(row(&guard.price_feed), (ms(500), 3, ms(1_500)));
        assert_eq!(row(&guard.router), (ms(500), 3, ms(1_500)));
        assert_eq!(row(&guard.rpc_reads), (ms(500), 7, ms(1_500)));
        assert_eq!(row(&guard.rpc_sends), (ms(2_000), 7, ms(3_000)));
    }

    #[test]
    fn a_refused_value_names_the_key_it_was_read_from() {
        for (toml_text, key) in [
            (
                "[latency_breaker]\nerror_rate_threshold = 2.0",
                "latency_breaker.error_rate_threshold",
            ),
            (
                "[latency_breaker.rpc_reads]\nerror_rate_threshold = 2.0",
                "latency_breaker.rpc_reads.error_rate_threshold",
            ),
            (
                "[latency_breaker]\nmin_latency_samples = 10\n[latency_breaker.rpc_sends]\nlatency_window = 5",
                "latency_breaker.min_latency_samples",
            ),
            (
                "[latency_breaker.rpc_sends]\np99_threshold_ms = 0",
                "latency_breaker.rpc_sends.p99_threshold_ms",
            ),
            (
                "[latency_breaker.jupiter]\ncall_timeout_ms = 0",
                "latency_breaker.jupiter.call_timeout_ms",
            ),
            ("[exit]\nsend_timeout_ms = 0", "exit.send_timeout_ms"),
            (
                "[rpc]\nendpoints = [\"http://a.example\", \"http://b.example\"]\nrequest_timeout_ms = 1000\n[latency_breaker.rpc_reads]\ncall_timeout_ms = 900",
                "rpc.request_timeout_ms",
            ),
        ] {
            match config(toml_text) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{toml_text}"),
                other => panic!("{toml_text}: {other:?}"),
            }
        }
        let Err(e) = config(
            "[rpc]\nendpoints = [\"http://a.example\", \"http://b.example\"]\nrequest_timeout_ms = 1000\n[latency_breaker.rpc_reads]\ncall_timeout_ms = 900",
        ) else {
            panic!("accepted");
        };
        assert!(
            e.to_string()
                .contains("less than latency_breaker.rpc_reads.call_timeout_ms (900)"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_key_in_a_dependencys_table_is_refused() {
        assert!(toml::from_str::<File>("[latency_breaker.rpc_sends]\np99 = 1").is_err());
        assert!(toml::from_str::<File>("[latency_breaker.chain]\np99_threshold_ms = 1").is_err());
    }
}
