//! `[nonce]`: durable-nonce mode. With the wallet's nonce account configured, every
//! attempt of an intent is built on the account's current value instead of a recent
//! blockhash, so at most one of them can ever land; a later rung is sent beside an
//! earlier one after `escalate_after_ms`, and a cancel (the nonce's advance alone) bids
//! `cancel_fee_lamports`. `kyzlo wallet nonce create` makes the account and records it
//! here.

use std::time::Duration;

use kyzlo_application::execute::NonceSettings;
use kyzlo_application::ports::NonceAccount;
use kyzlo_domain::Lamports;
use serde::{Deserialize, Serialize};
use solana_pubkey::Pubkey;

use crate::check::{ConfigError, invalid, printable};
use crate::network::JupiterApi;

/// The shortest and longest wait before a later rung is sent beside an earlier one.
pub const ESCALATE_AFTER_MS: std::ops::RangeInclusive<u64> = 100..=30_000;
/// The most a cancel may bid (0.01 SOL).
pub const MAX_CANCEL_FEE_LAMPORTS: u64 = 10_000_000;

/// Whether a configured nonce account is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NonceMode {
    /// Nonce mode wherever an account is configured (the default).
    #[default]
    Auto,
    /// The blockhash path, even with an account configured.
    Off,
}

/// `[nonce]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NonceFile {
    /// The wallet's nonce account (base58), whose authority is the wallet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `auto` (nonce mode when `account` is set) or `off`.
    pub mode: NonceMode,
    /// How long an attempt is in flight alone before the next rung is sent beside it.
    pub escalate_after_ms: u64,
    /// The priority fee a cancel bids, in lamports.
    pub cancel_fee_lamports: u64,
}

impl Default for NonceFile {
    /// No account; `auto`; 1 s; 100,000 lamports.
    fn default() -> Self {
        Self {
            account: None,
            mode: NonceMode::Auto,
            escalate_after_ms: 1_000,
            cancel_fee_lamports: 100_000,
        }
    }
}

/// What else decides whether nonce mode can run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context {
    pub api: JupiterApi,
    pub markets: usize,
}

impl NonceFile {
    /// The settings of nonce mode, `None` when it is off (no account, or `mode = "off"`).
    /// Every value is checked either way, so turning the mode on never reveals a bad one.
    pub(crate) fn validate(&self, context: Context) -> Result<Option<NonceSettings>, ConfigError> {
        let account = self
            .account
            .as_deref()
            .map(|text| {
                text.parse::<Pubkey>().map_err(|_| {
                    invalid(
                        "nonce.account",
                        printable(text),
                        "a base58 account address (the wallet's nonce account)",
                    )
                })
            })
            .transpose()?;
        if !ESCALATE_AFTER_MS.contains(&self.escalate_after_ms) {
            return Err(invalid(
                "nonce.escalate_after_ms",
                self.escalate_after_ms,
                "milliseconds from 100 to 30000",
            ));
        }
        if self.cancel_fee_lamports > MAX_CANCEL_FEE_LAMPORTS {
            return Err(invalid(
                "nonce.cancel_fee_lamports",
                self.cancel_fee_lamports,
                "0 to 10000000 lamports (0.01 SOL)",
            ));
        }
        let Some(account) = account.filter(|_| self.mode == NonceMode::Auto) else {
            return Ok(None);
        };
        if context.api == JupiterApi::V1 {
            return Err(invalid(
                "jupiter.api",
                "v1",
                "v2 with a nonce account: v1's transaction is Jupiter's own and cannot build on a durable nonce (or nonce.mode = \"off\")",
            ));
        }
        if context.markets > 0 {
            return Err(invalid(
                "nonce.account",
                account,
                "unset with [[markets]]: one nonce account serves one wallet's one market (or nonce.mode = \"off\")",
            ));
        }
        Ok(Some(NonceSettings {
            account: NonceAccount(account.to_bytes()),
            escalate_after: Duration::from_millis(self.escalate_after_ms),
            cancel_fee: Lamports::new(self.cancel_fee_lamports),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "SysvarRent111111111111111111111111111111111";

    fn on(api: JupiterApi, markets: usize) -> Context {
        Context { api, markets }
    }

    #[test]
    fn nonce_mode_is_on_only_with_an_account_and_mode_auto() {
        let live = on(JupiterApi::V2, 0);
        assert_eq!(NonceFile::default().validate(live).unwrap(), None);
        let file = NonceFile {
            account: Some(ACCOUNT.into()),
            escalate_after_ms: 1_500,
            cancel_fee_lamports: 50_000,
            ..NonceFile::default()
        };
        let settings = file.validate(live).unwrap().expect("on");
        assert_eq!(
            settings.account,
            NonceAccount(ACCOUNT.parse::<Pubkey>().unwrap().to_bytes())
        );
        assert_eq!(settings.escalate_after, Duration::from_millis(1_500));
        assert_eq!(settings.cancel_fee, Lamports::new(50_000));
        let off = NonceFile {
            mode: NonceMode::Off,
            ..file.clone()
        };
        assert_eq!(off.validate(live).unwrap(), None);
        // Off, nothing else forbids it.
        assert_eq!(off.validate(on(JupiterApi::V1, 2)).unwrap(), None);
    }

    #[test]
    fn bad_values_and_impossible_combinations_name_their_key() {
        type Edit = fn(&mut NonceFile);
        let live = on(JupiterApi::V2, 0);
        let cases: [(&str, Edit, Context); 7] = [
            (
                "nonce.account",
                |f| f.account = Some("not-base58!".into()),
                live,
            ),
            ("nonce.account", |f| f.account = Some(String::new()), live),
            (
                "nonce.escalate_after_ms",
                |f| f.escalate_after_ms = 99,
                live,
            ),
            (
                "nonce.escalate_after_ms",
                |f| f.escalate_after_ms = 30_001,
                live,
            ),
            (
                "nonce.cancel_fee_lamports",
                |f| f.cancel_fee_lamports = 10_000_001,
                live,
            ),
            ("jupiter.api", |_| {}, on(JupiterApi::V1, 0)),
            ("nonce.account", |_| {}, on(JupiterApi::V2, 2)),
        ];
        for (key, edit, context) in cases {
            let mut file = NonceFile {
                account: Some(ACCOUNT.into()),
                ..NonceFile::default()
            };
            edit(&mut file);
            match file.validate(context) {
                Err(ConfigError::Invalid { key: got, .. }) => assert_eq!(got, key, "{file:?}"),
                other => panic!("{key}: {other:?}"),
            }
        }
        // Bad values are refused even while the mode is off.
        let file = NonceFile {
            mode: NonceMode::Off,
            escalate_after_ms: 0,
            ..NonceFile::default()
        };
        assert!(file.validate(live).is_err());
        let paper = NonceFile {
            account: Some(ACCOUNT.into()),
            ..NonceFile::default()
        };
        // Paper mode simulates the account at the configured address.
        let settings = paper.validate(on(JupiterApi::V2, 0)).unwrap();
        assert!(settings.is_some());
    }
}
