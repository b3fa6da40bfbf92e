//! The operator's side of the fleet, through the database alone (no instance's API need
//! be reachable): `kyzlo fleet status`, `halt`, `resume` and `exit`; and the plan of
//! an instance's markets from its configuration.

use std::fmt::Write as _;
use std::time::Duration;

use kyzlo_adapters_postgres::{PgDatabase, PgError};
use kyzlo_application::control::ApprovalKey;
use kyzlo_application::fleet::resume_proof;
use kyzlo_application::ports::Signer as _;
use kyzlo_config::{Config, ConfigError, JournalBackend, Profile};

use crate::runner::MarketPlan;

/// How long `fleet exit` waits for the instance holding the wallet to answer.
pub const EXIT_WAIT: Duration = Duration::from_secs(30);

/// What the operator asks of the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Instances, leases, markets, positions and the halt record.
    Status,
    /// Halt every market of every instance.
    Halt {
        /// Why.
        reason: String,
    },
    /// Resume the fleet with the approval key.
    Resume {
        /// The approval key.
        key: String,
    },
    /// Force-exit a position, by the instance holding its wallet.
    Exit {
        /// The wallet (as `fleet status` shows it).
        wallet: String,
        /// The market (as `fleet status` shows it).
        market: String,
        /// The position's id.
        position: u64,
    },
}

/// Why a fleet command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The configuration has no fleet database.
    #[error("`fleet` works on the fleet's PostgreSQL journal: set journal.url (postgres://…)")]
    NoDatabase,
    /// The database refused or could not be reached (the password never shown).
    #[error("fleet database: {0}")]
    Database(#[from] PgError),
    /// The command was refused.
    #[error("{0}")]
    Refused(String),
}

/// Carries out `request` on `config`'s fleet database, as `by` (the operator's name in
/// what is written).
///
/// # Errors
/// [`FleetError`].
pub async fn run(config: &Config, request: Request, by: &str) -> Result<String, FleetError> {
    let JournalBackend::Postgres { url, .. } = &config.journal else {
        return Err(FleetError::NoDatabase);
    };
    // Only a halt may bring a database to this build's schema (halting a fleet before
    // its first instance starts is a safe thing to allow); the other commands migrate
    // nothing, so a newer tool cannot move a running fleet's schema on.
    let db = if matches!(request, Request::Halt { .. }) {
        PgDatabase::connect(url.expose(), 2).await?
    } else {
        PgDatabase::connect_unmigrated(url.expose(), 2).await?
    };
    match request {
        Request::Status => status(&db).await,
        Request::Halt { reason } => {
            let record = db.halt_fleet(&reason, by).await?;
            Ok(format!(
                "fleet halted (generation {}, by {}): {}\n",
                record.generation, record.by, record.detail
            ))
        }
        Request::Resume { key } => resume(config, &db, &key, by).await,
        Request::Exit {
            wallet,
            market,
            position,
        } => exit(&db, &wallet, &market, position, by).await,
    }
}

async fn resume(
    config: &Config,
    db: &PgDatabase,
    given: &str,
    by: &str,
) -> Result<String, FleetError> {
    let key =
        ApprovalKey::new(given).map_err(|e| FleetError::Refused(format!("resume refused: {e}")))?;
    // The instances check the proof with their own key; one this configuration knows is
    // checked here first, so a wrong key writes nothing.
    if let Some(configured) = &config.api.approval_key
        && !configured.matches(given.as_bytes())
    {
        return Err(FleetError::Refused(
            "resume refused: wrong approval key".to_owned(),
        ));
    }
    let record = db.fleet_halt().await?;
    if !record.halted {
        return Err(FleetError::Refused(format!(
            "the fleet is not halted (generation {})",
            record.generation
        )));
    }
    let proof = resume_proof(&key, record.generation + 1);
    let after = db.resume_fleet(record.generation, &proof, by).await?;
    if after.halted {
        return Err(FleetError::Refused(format!(
            "the fleet was halted again meanwhile (generation {}): resume again",
            after.generation
        )));
    }
    Ok(format!(
        "fleet resumed (generation {}); each instance resumes its markets once it has checked the key\n",
        after.generation
    ))
}

async fn exit(
    db: &PgDatabase,
    wallet: &str,
    market: &str,
    position: u64,
    by: &str,
) -> Result<String, FleetError> {
    let held = db
        .leases()
        .await?
        .into_iter()
        .find(|l| l.lease.wallet == wallet && l.expires_in_ms > 0);
    let Some(holder) = held else {
        return Err(FleetError::Refused(format!(
            "no instance holds wallet {wallet} now: start one (it reconciles the wallet), or use `kyzlo exit` on its data folder"
        )));
    };
    let id = db.request_exit(wallet, market, position, by).await?;
    let deadline = tokio::time::Instant::now() + EXIT_WAIT;
    loop {
        if let Some(view) = db.command(id).await?
            && let Some(result) = view.result
        {
            let who = view.taken_by.unwrap_or_default();
            return if result.starts_with("refused") {
                Err(FleetError::Refused(format!("{who}: {result}")))
            } else {
                Ok(format!("{who}: {result}\n"))
            };
        }
        if tokio::time::Instant::now() >= deadline {
            if db.withdraw_command(id).await? {
                return Err(FleetError::Refused(format!(
                    "{} (holding {wallet}) did not take the command within {EXIT_WAIT:?}; it was withdrawn",
                    holder.lease.owner
                )));
            }
            return Err(FleetError::Refused(format!(
                "{} took the command but has not answered within {EXIT_WAIT:?}; see `kyzlo fleet status`",
                holder.lease.owner
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn status(db: &PgDatabase) -> Result<String, FleetError> {
    let record = db.fleet_halt().await?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "fleet: {} (generation {}{})",
        if record.halted { "HALTED" } else { "trading" },
        record.generation,
        if record.by.is_empty() {
            String::new()
        } else {
            format!(", by {}: {}", record.by, record.detail)
        }
    );
    let instances = db.instances().await?;
    let _ = writeln!(out, "\ninstances ({}):", instances.len());
    for i in &instances {
        let _ = writeln!(
            out,
            "  {}  seen {:.1} s ago  markets: {}",
            i.owner,
            i.seen_ms_ago.max(0) as f64 / 1_000.0,
            if i.markets.is_empty() {
                "none (standing by)".to_owned()
            } else {
                i.markets.join(", ")
            }
        );
    }
    let leases = db.leases().await?;
    let _ = writeln!(out, "\nwallets ({}):", leases.len());
    for l in &leases {
        let held = if l.expires_in_ms > 0 {
            format!(
                "held by {} (epoch {}, {:.1} s left)",
                l.lease.owner,
                l.lease.epoch,
                l.expires_in_ms as f64 / 1_000.0
            )
        } else {
            format!("free (last epoch {})", l.lease.epoch)
        };
        let _ = writeln!(out, "  {}  {held}", l.lease.wallet);
    }
    let markets = db.markets().await?;
    let _ = writeln!(out, "\nmarkets ({}):", markets.len());
    for m in &markets {
        let ids: Vec<String> = m.position_ids.iter().map(u64::to_string).collect();
        let _ = writeln!(
            out,
            "  {} {}  {}  open positions: {}{}",
            m.wallet,
            m.market,
            m.state,
            m.open_positions,
            if ids.is_empty() {
                String::new()
            } else {
                format!(" [{}]", ids.join(", "))
            }
        );
    }
    Ok(out)
}

/// The markets of `config` as an instance runs them: each its index, name, wallet (the
/// signer's address on devnet and mainnet; `paper:<data_dir>:<name>` on paper, or the
/// single market's `paper:<data_dir>`) and journal market.
///
/// # Errors
/// [`ConfigError`] for a keypair that cannot be read.
pub fn plans(config: &Config) -> Result<Vec<MarketPlan>, ConfigError> {
    let plans: Vec<MarketPlan> = (0..config.markets.len())
        .filter_map(|i| config.for_market(i).map(|c| (i, c)))
        .map(|(index, c)| {
            let market = &c.markets[0];
            let wallet = match c.profile {
                Profile::Paper if market.listed => {
                    format!("paper:{}:{}", c.data_dir.display(), market.name)
                }
                Profile::Paper => kyzlo_live::journal::paper_wallet(&c),
                Profile::Devnet | Profile::Mainnet => {
                    kyzlo_live::journal::live_wallet(kyzlo_live::signer(&c)?.address())
                }
            };
            Ok(MarketPlan {
                index,
                name: market.name.clone(),
                wallet,
                market: kyzlo_live::journal::market(&c),
            })
        })
        .collect::<Result<_, ConfigError>>()?;
    // Two keypair files of one wallet (a copy, a link) would put two markets on one
    // journal: the addresses decide, not the paths.
    for (i, plan) in plans.iter().enumerate() {
        if let Some(other) = plans[..i]
            .iter()
            .find(|p| p.wallet == plan.wallet && p.market == plan.market)
        {
            return Err(ConfigError::Invalid {
                key: format!("markets[{i}]"),
                value: plan.name.clone(),
                expected: format!(
                    "a (wallet, pair) no other market trades: {} trades the same pair from wallet {}",
                    other.name, plan.wallet
                ),
            });
        }
    }
    Ok(plans)
}
