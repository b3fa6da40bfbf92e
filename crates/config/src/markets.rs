//! `[[markets]]`: the markets one process trades, each a (wallet, pair, strategy, exit
//! plan). Without the list, the process trades one market: the top-level `[pair]`,
//! `[strategy]`, `[exit_plan]` and `[wallet]`. With it, those top-level tables are every
//! market's defaults, and a market's own `pair`, `strategy` or `exit_plan` table replaces
//! the default whole. Markets on one wallet are held together (one lease in a fleet).

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::check::{ConfigError, invalid};
use crate::pair::{PairFile, PairSettings};
use crate::trading::{ExitPlanFile, StrategyFile, Trading};

/// The most markets one process runs.
pub const MAX_MARKETS: usize = 256;

/// One `[[markets]]` entry as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketFile {
    /// Its name: letters, digits, `-` and `_`, unique in the file.
    pub name: String,
    /// Its wallet's keypair file (devnet, mainnet); `[wallet] keypair_path` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keypair_path: Option<PathBuf>,
    /// Its pair; `[pair]` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair: Option<PairFile>,
    /// Its strategy; `[strategy]` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<StrategyFile>,
    /// Its positions' exit plan; `[exit_plan]` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_plan: Option<ExitPlanFile>,
}

/// A market, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Market {
    /// Its name (`main` for the one market of a file without `[[markets]]`).
    pub name: String,
    /// Whether it was listed under `[[markets]]` (its paper wallet is then its own).
    pub listed: bool,
    /// The pair.
    pub pair: PairSettings,
    /// Its sizing, strategy and exit plan.
    pub trading: Trading,
    /// Its wallet's keypair file.
    pub keypair_path: Option<PathBuf>,
}

/// The name of the one market of a file without `[[markets]]`.
pub const MAIN_MARKET: &str = "main";

/// A refusal of a market's own table, its key under `markets[i]`.
pub(crate) fn within(i: usize, error: ConfigError) -> ConfigError {
    rekey(error, |key| format!("markets[{i}].{key}"))
}

/// The wallet section's key for a keypair file, as a market writes it.
pub(crate) fn keypair_key(error: ConfigError) -> ConfigError {
    rekey(error, |key| {
        key.replace("wallet.keypair_path", "keypair_path")
    })
}

fn rekey(error: ConfigError, rename: impl FnOnce(&str) -> String) -> ConfigError {
    match error {
        ConfigError::Invalid {
            key,
            value,
            expected,
        } => ConfigError::Invalid {
            key: rename(&key),
            value,
            expected,
        },
        other => other,
    }
}

/// Checks the names: present, well formed, unique; and that no wallet trades one base
/// token in two markets (its balance could not be told apart when reconciling).
pub(crate) fn check(markets: &[MarketFile], resolved: &[Market]) -> Result<(), ConfigError> {
    if markets.len() > MAX_MARKETS {
        return Err(invalid(
            "markets",
            format!("{} entries", markets.len()),
            format!("at most {MAX_MARKETS} markets per process"),
        ));
    }
    let mut names = BTreeSet::new();
    for (i, market) in markets.iter().enumerate() {
        let name = &market.name;
        if name.is_empty()
            || name.len() > 40
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                format!("markets[{i}].name"),
                format!("{name:?}"),
                "1 to 40 letters, digits, - or _",
            ));
        }
        if !names.insert(name.as_str()) {
            return Err(invalid(
                format!("markets[{i}].name"),
                name,
                "a name no other market has",
            ));
        }
    }
    let mut held = BTreeSet::new();
    for (i, market) in resolved.iter().enumerate() {
        let wallet = market
            .keypair_path
            .as_ref()
            .map_or_else(|| market.name.clone(), |p| p.display().to_string());
        if !held.insert((wallet, market.pair.base_mint)) {
            return Err(invalid(
                format!("markets[{i}].pair.base_mint"),
                market.pair.base_mint,
                "a base token no other market of the same wallet trades (the wallet's balance of it could not be told apart)",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{Config, File, MAIN_MARKET, MarketFile, PairFile, StrategyFile};

    fn listed(name: &str) -> MarketFile {
        MarketFile {
            name: name.to_owned(),
            keypair_path: None,
            pair: None,
            strategy: None,
            exit_plan: None,
        }
    }

    fn refused(file: File) -> String {
        Config::try_from(file).unwrap_err().to_string()
    }

    /// A file on the fleet journal, which `[[markets]]` needs.
    fn fleet() -> File {
        let mut file = File::default();
        file.journal.url = Some(crate::Secret::new("postgres://kyzlo:pw@db/fleet"));
        file
    }

    #[test]
    fn a_list_of_markets_on_the_sqlite_journal_is_refused() {
        let file = File {
            markets: vec![listed("a")],
            ..File::default()
        };
        let text = refused(file);
        assert!(
            text.contains("markets") && text.contains("journal.url"),
            "{text}"
        );
    }

    #[test]
    fn without_a_list_the_process_trades_the_top_level_market() {
        let config = Config::try_from(File::default()).unwrap();
        assert_eq!(config.markets.len(), 1);
        assert_eq!(config.markets[0].name, MAIN_MARKET);
        assert!(!config.markets[0].listed);
        assert_eq!(config.markets[0].pair, config.pair);
    }

    #[test]
    fn a_market_s_own_tables_replace_the_defaults_and_for_market_gives_its_config() {
        let mut file = fleet();
        let bonk = PairFile {
            base_mint: "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263".to_owned(),
            base_decimals: 5,
            ..PairFile::default()
        };
        let mut strategy = StrategyFile::default();
        strategy.window_s = file.strategy.window_s * 2.0;
        file.markets = vec![
            listed("sol-usdc"),
            MarketFile {
                pair: Some(bonk),
                strategy: Some(strategy),
                ..listed("bonk-usdc")
            },
        ];
        let config = Config::try_from(file.clone()).unwrap();
        assert_eq!(config.markets.len(), 2);
        assert_eq!(config.markets[0].pair, config.pair);
        let second = config.for_market(1).unwrap();
        assert_eq!(second.pair.pair.base_decimals, 5);
        assert!(!second.pair.pair.native_base);
        assert_eq!(
            second.trading.strategy.window,
            config.trading.strategy.window * 2
        );
        assert_eq!(second.markets.len(), 1);
        assert_eq!(second.markets[0].name, "bonk-usdc");
        assert!(config.for_market(2).is_none());
    }

    #[test]
    fn bad_names_and_duplicates_are_refused_by_key() {
        for name in ["", "has space", "semi;colon", &"x".repeat(41)] {
            let mut file = fleet();
            file.markets = vec![listed(name)];
            let text = refused(file);
            assert!(text.contains("markets[0].name"), "{text}");
        }
        let mut file = fleet();
        file.markets = vec![listed("a"), listed("a")];
        let text = refused(file);
        assert!(text.contains("markets[1].name"), "{text}");
    }

    #[test]
    fn a_bad_value_in_a_market_s_own_table_names_the_market() {
        let mut file = fleet();
        file.markets = vec![
            listed("ok"),
            MarketFile {
                pair: Some(PairFile {
                    base_mint: "not-a-mint".to_owned(),
                    ..PairFile::default()
                }),
                ..listed("bad")
            },
        ];
        let text = refused(file);
        assert!(text.contains("markets[1].pair.base_mint"), "{text}");
        let mut file = fleet();
        file.markets = vec![MarketFile {
            keypair_path: Some("/nonexistent/kyzlo.json".into()),
            ..listed("live")
        }];
        file.profile = crate::Profile::Devnet;
        let text = refused(file);
        assert!(text.contains("markets[0].keypair_path"), "{text}");
    }

    #[test]
    fn one_wallet_cannot_trade_one_base_token_twice() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id.json");
        std::fs::write(&key, "[]").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let mut file = fleet();
        file.markets = vec![
            MarketFile {
                keypair_path: Some(key.clone()),
                ..listed("a")
            },
            MarketFile {
                keypair_path: Some(key),
                ..listed("b")
            },
        ];
        let text = refused(file);
        assert!(text.contains("markets[1].pair.base_mint"), "{text}");
    }
}
