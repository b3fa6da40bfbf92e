//! `kyzlo wallet nonce create` and `kyzlo wallet nonce show`: the wallet's durable nonce
//! account, created (rent-exempt, the wallet its authority) and recorded under `[nonce]`
//! in the configuration file in place, keeping the file's formatting and comments; and
//! shown as the chain holds it.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use kyzlo_adapters_solana::nonce::{self, CREATE_FEE_LAMPORTS, NONCE_ACCOUNT_SIZE};
use kyzlo_adapters_solana::{Pubkey, SolanaChain};
use kyzlo_application::ports::{Chain as _, Commitment, Signer as _};
use kyzlo_config::{Config, ConfigError, NonceMode, Profile};

/// Why a nonce command did nothing (or stopped part way).
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The command cannot run as asked.
    #[error("{0}")]
    Usage(String),
    /// The chain refused or could not be reached (with the failure's class).
    #[error("{0}")]
    Remote(String),
    /// The account was created but could not be recorded in the configuration file.
    #[error(
        "nonce account {account} was created, but {path} could not be updated: {reason}; add `account = \"{account}\"` under [nonce] yourself"
    )]
    NotRecorded {
        /// The new account.
        account: String,
        /// The configuration file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// Whether the operator confirmed on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// `--yes`: no question asked.
    Given,
    /// Ask on the terminal (refused without one).
    Ask,
}

/// A nonce command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceAction {
    /// [`create_nonce`].
    Create(Confirmation),
    /// [`show_nonce`].
    Show,
}

/// Runs `action` on a runtime of its own, on the configuration file at `path` (else
/// `kyzlo.toml` when present: the file [`load`](kyzlo_config::load) read), which
/// `create` edits.
///
/// # Errors
/// As [`create_nonce`] and [`show_nonce`]; [`WalletError::Usage`] without a runtime.
pub fn run(
    config: &Config,
    path: Option<&Path>,
    action: NonceAction,
) -> Result<String, WalletError> {
    let file = path.map(Path::to_path_buf).or_else(|| {
        let local = PathBuf::from("kyzlo.toml");
        local.exists().then_some(local)
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| WalletError::Usage(format!("runtime: {e}")))?;
    runtime.block_on(async {
        match action {
            NonceAction::Create(confirmation) => {
                create_nonce(config, file.as_deref(), confirmation).await
            }
            NonceAction::Show => show_nonce(config).await,
        }
    })
}

fn chain(config: &Config) -> Result<(SolanaChain, Pubkey), WalletError> {
    if config.profile == Profile::Paper {
        return Err(WalletError::Usage(
            "the wallet's nonce account lives on devnet or mainnet: pass --profile devnet|mainnet"
                .into(),
        ));
    }
    let signer = crate::signer(config)?;
    let wallet = signer.address();
    let chain = crate::solana(config, wallet, true).map_err(WalletError::Usage)?;
    Ok((chain, Pubkey::new_from_array(wallet.0)))
}

fn sol(lamports: u64) -> String {
    format!(
        "{}.{:09} SOL",
        lamports / 1_000_000_000,
        lamports % 1_000_000_000
    )
}

/// `kyzlo wallet nonce create`: computes the account's rent-exempt minimum, shows it and
/// the fee, asks (unless `--yes`), creates the account, waits for its confirmation, then
/// records `account` under `[nonce]` in `path` (the configuration file the command
/// loaded). Refused when an account is already configured.
///
/// # Errors
/// [`WalletError`]: paper profile, an account already configured, no configuration file,
/// no confirmation, a wallet short of the lamports, a chain failure, or a file that could
/// not be updated (the account's address is in the error).
pub async fn create_nonce(
    config: &Config,
    path: Option<&Path>,
    confirmation: Confirmation,
) -> Result<String, WalletError> {
    if let Some(account) = &config.file.nonce.account {
        return Err(WalletError::Usage(format!(
            "a nonce account is already configured ([nonce] account = \"{account}\"): `kyzlo wallet nonce show` shows it"
        )));
    }
    let path = path.ok_or_else(|| {
        WalletError::Usage(
            "the new account is recorded in the configuration file: pass --config (or keep a kyzlo.toml here)"
                .into(),
        )
    })?;
    // Refused now, before anything is spent, if it cannot be edited later.
    let document = read_document(path)
        .map_err(|reason| WalletError::Usage(format!("{}: {reason}", path.display())))?;
    let (chain, wallet) = chain(config)?;
    let remote = |e: kyzlo_application::ports::PortError| WalletError::Remote(e.to_string());
    let rent = chain
        .rent_exempt_minimum(NONCE_ACCOUNT_SIZE)
        .await
        .map_err(remote)?;
    let needed = rent + CREATE_FEE_LAMPORTS;
    let held = chain.balances().await.map_err(remote)?.fee_lamports.get();
    let plan = format!(
        "a nonce account for wallet {wallet} on {}: {rent} lamports ({}) held by the account (its rent-exempt minimum, recoverable by withdrawing), plus a fee of {CREATE_FEE_LAMPORTS} lamports; the wallet holds {}",
        config.profile.as_str(),
        sol(rent),
        sol(held)
    );
    if held < needed {
        return Err(WalletError::Usage(format!(
            "{plan}: {needed} lamports are needed"
        )));
    }
    if confirmation == Confirmation::Ask && !ask(&plan)? {
        return Err(WalletError::Usage(
            "not confirmed: nothing was created".into(),
        ));
    }
    let signer = crate::signer(config)?;
    let (account, signature) = nonce::create_account(&chain, signer.as_ref(), rent)
        .await
        .map_err(remote)?;
    record(path, document, &account).map_err(|reason| WalletError::NotRecorded {
        account: account.to_string(),
        path: path.to_path_buf(),
        reason,
    })?;
    Ok(format!(
        "created nonce account {account} (authority {wallet}, {rent} lamports) in transaction {}\nrecorded under [nonce] in {}\n",
        kyzlo_application::journal::text::signature_text(&signature),
        path.display()
    ))
}

/// Asks on the terminal; refused without one.
fn ask(plan: &str) -> Result<bool, WalletError> {
    if !std::io::stdin().is_terminal() {
        return Err(WalletError::Usage(format!(
            "{plan}.\nNot a terminal: pass --yes to create it without asking"
        )));
    }
    let mut err = std::io::stderr();
    let _ = write!(err, "{plan}.\nCreate it? [y/N] ");
    let _ = err.flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| WalletError::Usage(format!("no answer: {e}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// The configuration file as an editable document.
fn read_document(path: &Path) -> Result<toml_edit::DocumentMut, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let document: toml_edit::DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
    match document.get("nonce") {
        None => Ok(document),
        Some(item) if item.is_table_like() => Ok(document),
        Some(_) => Err("`nonce` is not a table".into()),
    }
}

/// `account` written under `[nonce]` of `document`, saved over `path` by a rename (the
/// file is whole or untouched), with the file's permissions.
fn record(
    path: &Path,
    mut document: toml_edit::DocumentMut,
    account: &Pubkey,
) -> Result<(), String> {
    let table = document
        .entry("nonce")
        .or_insert_with(toml_edit::table)
        .as_table_like_mut()
        .ok_or("`nonce` is not a table")?;
    table.insert("account", toml_edit::value(account.to_string()));
    let permissions = std::fs::metadata(path)
        .map_err(|e| e.to_string())?
        .permissions();
    let mut staged = path.as_os_str().to_owned();
    staged.push(".kyzlo-new");
    let staged = PathBuf::from(staged);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&staged)?;
        file.write_all(document.to_string().as_bytes())?;
        file.sync_all()?;
        std::fs::set_permissions(&staged, permissions)?;
        std::fs::rename(&staged, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&staged);
        e.to_string()
    })
}

/// `kyzlo wallet nonce show`: the configured account, its authority, current value and
/// lamports as the chain holds them (confirmed), or that none is configured.
///
/// # Errors
/// [`WalletError`]: paper profile, or a chain failure (an account that is not a nonce
/// account is one, by its class).
pub async fn show_nonce(config: &Config) -> Result<String, WalletError> {
    let Some(text) = &config.file.nonce.account else {
        return Ok(
            "no nonce account configured ([nonce] account): `kyzlo wallet nonce create` makes one\n"
                .into(),
        );
    };
    let account: Pubkey = text.parse().map_err(|_| {
        WalletError::Usage(format!("[nonce] account {text:?} is not a base58 address"))
    })?;
    let (chain, wallet) = chain(config)?;
    let read = chain
        .nonce_info(account, Commitment::Confirmed)
        .await
        .map_err(|e| WalletError::Remote(e.to_string()))?;
    let mode = match config.file.nonce.mode {
        NonceMode::Auto => "on",
        NonceMode::Off => "off (nonce.mode = \"off\")",
    };
    let Some(info) = read.value else {
        return Ok(format!(
            "nonce account {account}: does not exist or holds no initialized nonce (slot {})\n",
            read.context_slot
        ));
    };
    let whose = if info.authority == wallet {
        "the wallet".to_owned()
    } else {
        format!("NOT the wallet {wallet}: kyzlo cannot advance it")
    };
    Ok(format!(
        "nonce account {account}\n  authority  {} ({whose})\n  value      {}\n  lamports   {} ({})\n  mode       {mode}\n  slot       {}\n",
        info.authority,
        info.value,
        info.lamports,
        sol(info.lamports),
        read.context_slot
    ))
}

/// Refuses nonce mode where the run cannot use it: the devnet stand-in keeps no nonce
/// account and builds no transaction on one. `config check` and the run both ask.
///
/// # Errors
/// [`ConfigError::Invalid`] on `nonce.account`.
pub fn check_supported(config: &Config) -> Result<(), ConfigError> {
    if config.profile == Profile::Devnet && config.execution.exit.nonce.is_some() {
        return Err(ConfigError::Invalid {
            key: "nonce.account".into(),
            value: config.file.nonce.account.clone().unwrap_or_default(),
            expected: "unset on the devnet profile (or nonce.mode = \"off\"): the devnet stand-in builds no transactions on a durable nonce yet".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_is_recorded_in_place_keeping_comments_and_other_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kyzlo.toml");
        let account = Pubkey::new_unique();
        // (as written, what of it is kept verbatim, how the account appears)
        let cases = [
            (
                "# mine\nprofile = \"devnet\" # here\n\n[rpc]\nendpoints = [\"http://127.0.0.1:8899\"]\n",
                true,
                "[nonce]\naccount = ",
            ),
            (
                "[nonce]\n# tuned\nescalate_after_ms = 1500\n",
                true,
                "escalate_after_ms = 1500\naccount = ",
            ),
            ("nonce = { mode = \"auto\" }\n", false, "account = "),
        ];
        for (text, kept, expected) in cases {
            std::fs::write(&path, text).unwrap();
            let document = read_document(&path).unwrap();
            record(&path, document, &account).unwrap();
            let written = std::fs::read_to_string(&path).unwrap();
            assert!(!kept || written.starts_with(text), "{written}");
            assert!(
                written.contains(&format!("{expected}\"{account}\"")),
                "{written}"
            );
            let parsed: toml_edit::DocumentMut = written.parse().unwrap();
            assert_eq!(
                parsed["nonce"]["account"].as_str(),
                Some(account.to_string().as_str())
            );
        }
        std::fs::write(&path, "nonce = 3\n").unwrap();
        assert!(read_document(&path).is_err());
        std::fs::write(&path, "[nonce\n").unwrap();
        assert!(read_document(&path).is_err());
        assert!(read_document(&dir.path().join("missing.toml")).is_err());
    }
}
