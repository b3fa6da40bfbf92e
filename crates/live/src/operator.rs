//! `kyzlo status`, `halt`, `resume`, `exit`, `hold` and `exits`: talk to a running bot
//! over its HTTP API; where none runs, read (or, for a halt or resume, write) the journal,
//! so an operator can inspect a stopped bot and make sure it starts halted.

use std::fmt::Write as _;
use std::sync::Arc;

use kyzlo_adapters_journal::data_dir::JOURNAL_FILE;
use kyzlo_adapters_journal::{DataDir, DataDirError};
use kyzlo_adapters_telemetry::{ClientError, OperatorClient, Request};
use kyzlo_application::operator::{OperatorError, StoppedBot};
use kyzlo_application::ports::PortError;

use kyzlo_config::{Config, JournalBackend};

/// Where the running bot's API is, as the command line says.
#[derive(Debug, Clone, Default)]
pub struct ApiArgs {
    /// Its base URL (default: `api.listen`).
    pub url: Option<String>,
    /// The bearer token for control endpoints (default: `api.bearer_token`).
    pub token: Option<String>,
}

/// Why an operator command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The bot refused, or no bot runs and the journal cannot do it either.
    #[error("{0}")]
    Remote(String),
    /// The journal or the command's runtime failed.
    #[error("{0}")]
    Startup(String),
    /// The data folder is another process's, or its journal is not fit to read.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
}

/// Runs an operator command: against the running bot's API, or, when none answers, the
/// stopped bot's use cases over its journal.
///
/// # Errors
/// [`CommandError::Remote`] when the bot refuses (with its answer), or when no bot runs and
/// the journal cannot do it either.
pub fn run(config: &Config, api: &ApiArgs, request: Request) -> Result<String, CommandError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::Startup(format!("runtime: {e}")))?;
    runtime.block_on(async {
        if let Some(base) = base_url(config, api) {
            let configured = config.api.bearer_token.as_ref().map(|t| t.expose());
            let token = api.token.clone().or_else(|| configured.map(str::to_owned));
            let client = OperatorClient::new(&base, token)
                .map_err(|e| CommandError::Remote(e.to_string()))?;
            match client.send(&request).await {
                Ok(answer) => return Ok(format!("{answer}\n")),
                Err(ClientError::NotRunning(_)) => {}
                Err(e) => return Err(CommandError::Remote(e.to_string())),
            }
        }
        local(config, api, request).await
    })
}

fn base_url(config: &Config, api: &ApiArgs) -> Option<String> {
    match (&api.url, config.api.listen) {
        (Some(url), _) => Some(url.clone()),
        (None, Some(listen)) => Some(format!("http://{listen}")),
        (None, None) => None,
    }
}

fn where_asked(config: &Config, api: &ApiArgs) -> String {
    base_url(config, api).unwrap_or_else(|| "(no API configured)".to_owned())
}

fn stopped_bot(
    config: &Config,
    api: &ApiArgs,
) -> Result<(StoppedBot, DataDir, std::path::PathBuf), CommandError> {
    if matches!(config.journal, JournalBackend::Postgres { .. }) {
        return Err(CommandError::Remote(format!(
            "no bot answers at {}; with journal.url (PostgreSQL) this command needs a running bot's API",
            where_asked(config, api)
        )));
    }
    let path = config.data_dir.join(JOURNAL_FILE);
    if !path.exists() {
        return Err(CommandError::Remote(format!(
            "no bot answers at {} and there is no journal at {}",
            where_asked(config, api),
            path.display()
        )));
    }
    let dir = DataDir::claim(&config.data_dir).map_err(|e| match e {
        DataDirError::InUse { holder, .. } => CommandError::Remote(format!(
            "no bot answers at {}, but a kyzlo ({}) holds {}: talk to it through its API (--api URL, or [api] listen)",
            where_asked(config, api),
            holder.map_or_else(|| "pid unknown".to_owned(), |pid| format!("pid {pid}")),
            config.data_dir.display()
        )),
        other => CommandError::DataDir(other),
    })?;
    let journal = dir.open_journal()?;
    Ok((
        StoppedBot::new(
            Arc::new(journal),
            config.api.approval_key.clone(),
            crate::unix_clock(),
        ),
        dir,
        path,
    ))
}

/// The stopped bot's use cases, through the application's operator over its journal.
async fn local(config: &Config, api: &ApiArgs, request: Request) -> Result<String, CommandError> {
    let (bot, _dir, path) = stopped_bot(config, api)?;
    let journal = |e: PortError| CommandError::Startup(format!("journal: {e}"));
    let mut out = format!(
        "no bot answers at {}; from the journal {}:\n",
        where_asked(config, api),
        path.display()
    );
    match request {
        Request::Status => {
            let status = bot.status().await.map_err(journal)?;
            let _ = writeln!(out, "trading: {}", status.trading);
            let _ = writeln!(out, "open positions: {}", status.positions.len());
            for p in &status.positions {
                let _ = writeln!(
                    out,
                    "  {} entry {} remaining {} of {}",
                    p.position, p.entry_price, p.remaining, p.size
                );
            }
            let _ = writeln!(
                out,
                "unresolved intents (settled at the next start): {}",
                status.unresolved
            );
            let _ = writeln!(
                out,
                "consecutive failed exits: {}",
                status.consecutive_failed_exits
            );
        }
        Request::Exits(limit) => {
            for h in bot.exit_history(limit).await.map_err(journal)? {
                let _ = writeln!(out, "{}", h.summary());
            }
        }
        Request::Halt(reason) => {
            let state = bot.halt(&reason).await.map_err(journal)?;
            let _ = writeln!(out, "trading: {} (the bot will start halted)", state);
        }
        Request::Resume(key) => {
            bot.resume(key.as_bytes()).await.map_err(|e| match e {
                OperatorError::Journal(e) => journal(e),
                other => CommandError::Remote(other.to_string()),
            })?;
            let _ = writeln!(out, "trading: active (the bot will start active)");
        }
        Request::ForceExit(position) | Request::Hold(position) => {
            return Err(CommandError::Remote(format!(
                "no bot answers at {}: start it to act on pos-{position} (the journal alone cannot trade)",
                where_asked(config, api)
            )));
        }
    }
    Ok(out)
}
