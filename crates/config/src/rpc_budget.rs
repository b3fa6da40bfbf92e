//! `[rpc.budget]`: the RPC provider's request budget, kept on kyzlo's side like
//! Jupiter's, so that entries' wallet reads and health probes never take the room an
//! exit's sends, status polls and confirmations need.
//!
//! Providers state their limits per IP or per key over a window: Solana's public mainnet
//! and devnet endpoints allow 100 requests per 10 s per IP, 40 per 10 s for any single
//! method, and answer 429 past them (<https://docs.solana.com/cluster/rpc-endpoints>,
//! now <https://solana.com/docs/references/clusters>, which warns the figures may
//! change); Helius, for one, allows 10 requests a second on its free plan, 50 on
//! Developer, 200 on Business and 500 on Professional
//! (<https://www.helius.dev/docs/billing/rate-limits>). So the budget is `requests` per
//! `window_s`, whichever window the plan counts in. Per-method limits are not modelled:
//! one exit's sends and status reads (2.5 a second each at the default 400 ms intervals)
//! stay under the public endpoint's 40 per 10 s per method, but Helius limits
//! `sendTransaction` apart (1 a second on Free, 5 on Developer), so on its free plan the
//! rebroadcast interval (`exit.rebroadcast_interval_ms`) must be 1 s or more.
//!
//! The default is sized for the public endpoint: 90 calls per 10 s (kyzlo counts port
//! calls; a wallet read is a balance and the pair's token accounts, up to three requests,
//! and the tenth left over is for those), 40 of them kept for exits: an exit polls its
//! status and resends its bytes every 400 ms, about 50 calls in 10 s, so 40 cover its
//! first eight seconds even if entries and probes used all they may; beyond that it waits
//! for the window, never refused. On a paid plan, set the plan's figures (e.g. Helius
//! Developer: `requests = 50`, `window_s = 1`, `reserved_for_exits = 10`).

use std::time::Duration;

use kyzlo_domain::budget::RequestBudget;
use serde::{Deserialize, Serialize};

use crate::check::{ConfigError, invalid};

/// The longest window accepted: an hour.
const MAX_WINDOW_S: u64 = 3_600;

/// The fewest requests kept for exits: one attempt reads the wallet, checks its blockhash,
/// sends and reads its status.
const MIN_RESERVE: u32 = 4;

/// `[rpc.budget]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RpcBudgetFile {
    /// Calls the provider's plan allows per window; 0 turns the budget off.
    pub requests: u32,
    /// The plan's window, in seconds (the public endpoint's is 10).
    pub window_s: u64,
    /// Of those, how many entries' reads and sends and health probes leave untouched for
    /// exits (and start-up reconciliation), which wait for room and are never refused.
    pub reserved_for_exits: u32,
}

impl Default for RpcBudgetFile {
    fn default() -> Self {
        Self {
            requests: 90,
            window_s: 10,
            reserved_for_exits: 40,
        }
    }
}

impl RpcBudgetFile {
    /// The budget, or `None` when `requests` is 0.
    pub(crate) fn validate(&self) -> Result<Option<RequestBudget>, ConfigError> {
        if self.requests == 0 {
            return Ok(None);
        }
        if self.window_s == 0 || self.window_s > MAX_WINDOW_S {
            return Err(invalid(
                "rpc.budget.window_s",
                self.window_s,
                "1 to 3600 seconds",
            ));
        }
        if self.reserved_for_exits >= self.requests {
            return Err(invalid(
                "rpc.budget.reserved_for_exits",
                self.reserved_for_exits,
                format!(
                    "fewer than rpc.budget.requests ({}): entries and probes need some room",
                    self.requests
                ),
            ));
        }
        if self.reserved_for_exits < MIN_RESERVE {
            return Err(invalid(
                "rpc.budget.reserved_for_exits",
                self.reserved_for_exits,
                "at least 4: an exit's attempt reads the wallet, checks its blockhash, sends and reads its status",
            ));
        }
        RequestBudget::new(
            self.requests,
            Duration::from_secs(self.window_s),
            self.reserved_for_exits,
        )
        .map(Some)
        .map_err(|e| invalid("rpc.budget.requests", self.requests, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_fits_the_public_endpoint_and_keeps_room_for_exits() {
        let budget = RpcBudgetFile::default().validate().unwrap().unwrap();
        assert!(budget.limit() < 100, "under the public 100 per 10 s");
    }

    #[test]
    fn zero_requests_turn_it_off() {
        let off = RpcBudgetFile {
            requests: 0,
            ..RpcBudgetFile::default()
        };
        assert_eq!(off.validate().unwrap(), None);
    }

    #[test]
    fn nonsense_is_refused_naming_the_key() {
        let cases = [
            (
                RpcBudgetFile {
                    window_s: 0,
                    ..RpcBudgetFile::default()
                },
                "rpc.budget.window_s",
            ),
            (
                RpcBudgetFile {
                    window_s: 3_601,
                    ..RpcBudgetFile::default()
                },
                "rpc.budget.window_s",
            ),
            (
                RpcBudgetFile {
                    requests: 40,
                    reserved_for_exits: 40,
                    window_s: 10,
                },
                "rpc.budget.reserved_for_exits",
            ),
            (
                RpcBudgetFile {
                    requests: 10,
                    reserved_for_exits: 3,
                    window_s: 1,
                },
                "rpc.budget.reserved_for_exits",
            ),
        ];
        for (file, key) in cases {
            match file.validate() {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{file:?}"),
                other => panic!("{file:?}: {other:?}"),
            }
        }
    }
}
