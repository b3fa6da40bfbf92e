//! `status`, `halt`, `resume`, `exit` and `exits`: talk to a running bot over its HTTP
//! API; where none runs, read (or, for a halt or resume, write) the journal, so an
//! operator can inspect a stopped bot and make sure it starts halted.

use std::fmt::Write as _;
use std::time::Duration;

use kyzlo_adapters_journal::SqliteJournal;
use kyzlo_application::control::constant_time_eq;
use kyzlo_application::journal::{IntentAction, IntentOutcome, Journal};
use kyzlo_domain::Timestamp;
use kyzlo_domain::trading_state::{HaltCause, HaltReason, TradingState};

use crate::cli::ApiArgs;
use crate::config::Config;
use crate::error::AppError;

/// What an operator command does.
pub enum Request {
    /// `GET /status`.
    Status,
    /// `POST /halt`.
    Halt {
        /// Why.
        reason: String,
    },
    /// `POST /resume`.
    Resume {
        /// The approval key.
        key: String,
    },
    /// `POST /positions/{id}/exit`.
    Exit {
        /// The position.
        position: u64,
    },
    /// `GET /exits/history`.
    Exits {
        /// How many.
        limit: usize,
    },
}

fn base_url(config: &Config, api: &ApiArgs) -> String {
    api.url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.api.listen))
        .trim_end_matches('/')
        .to_owned()
}

/// Runs an operator command.
///
/// # Errors
/// [`AppError::Remote`] when the bot refuses (with its answer), or when no bot runs and
/// the journal cannot do it either.
pub fn run(config: &Config, api: &ApiArgs, request: Request) -> Result<String, AppError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::Startup(format!("runtime: {e}")))?;
    runtime.block_on(async {
        match remote(config, api, &request).await? {
            Some(answer) => Ok(answer),
            None => local(config, request).await,
        }
    })
}

/// `Ok(None)` when no bot answers at the address.
async fn remote(
    config: &Config,
    api: &ApiArgs,
    request: &Request,
) -> Result<Option<String>, AppError> {
    if api.url.is_none() && config.api.listen.is_empty() {
        // No API configured: nothing to ask; the journal answers.
        return Ok(None);
    }
    let base = base_url(config, api);
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| AppError::Remote(format!("HTTP client: {e}")))?;
    let token = api
        .token
        .clone()
        .or_else(|| config.api.bearer_token.clone());
    let builder = match request {
        Request::Status => client.get(format!("{base}/status")),
        Request::Exits { limit } => client.get(format!("{base}/exits/history?limit={limit}")),
        Request::Halt { reason } => client
            .post(format!("{base}/halt"))
            .json(&serde_json::json!({ "reason": reason })),
        Request::Resume { key } => client
            .post(format!("{base}/resume"))
            .json(&serde_json::json!({ "approval_key": key })),
        Request::Exit { position } => client.post(format!("{base}/positions/{position}/exit")),
    };
    let builder = match token {
        Some(token) => builder.bearer_auth(token),
        None => builder,
    };
    let response = match builder.send().await {
        Ok(response) => response,
        Err(e) if e.is_connect() => return Ok(None),
        Err(e) => return Err(AppError::Remote(format!("{base}: {}", e.without_url()))),
    };
    let status = response.status();
    let body = response.text().await.map_err(|e| {
        AppError::Remote(format!("{base}: reading the answer: {}", e.without_url()))
    })?;
    let pretty = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(body);
    if status.is_success() {
        Ok(Some(format!("{pretty}\n")))
    } else {
        Err(AppError::Remote(format!(
            "the bot answered {status}: {pretty}"
        )))
    }
}

fn open_journal(config: &Config) -> Result<SqliteJournal, AppError> {
    let path = config.journal.data_dir.join("journal.db");
    if !path.exists() {
        return Err(AppError::Remote(format!(
            "no bot answers at http://{} and there is no journal at {}",
            config.api.listen,
            path.display()
        )));
    }
    SqliteJournal::open(&path).map_err(|e| AppError::Startup(format!("journal: {e}")))
}

fn describe(state: &TradingState) -> String {
    match state {
        TradingState::Active => "active".to_owned(),
        TradingState::ReduceOnly { cause, .. } => format!("reduce_only ({})", cause.as_str()),
        TradingState::Halted { reason, .. } => {
            format!("halted ({}: {})", reason.cause.as_str(), reason.detail)
        }
    }
}

async fn local(config: &Config, request: Request) -> Result<String, AppError> {
    let journal = open_journal(config)?;
    let port = |e: kyzlo_application::ports::PortError| AppError::Startup(format!("journal: {e}"));
    let mut out = format!(
        "no bot answers at http://{}; from the journal {}:\n",
        config.api.listen,
        journal.path().display()
    );
    match request {
        Request::Status => {
            let snapshot = journal.load().await.map_err(port)?;
            let state = snapshot.trading_state.unwrap_or(TradingState::Active);
            let _ = writeln!(out, "trading: {}", describe(&state));
            let _ = writeln!(out, "open positions: {}", snapshot.open_positions.len());
            for p in &snapshot.open_positions {
                let _ = writeln!(
                    out,
                    "  {} entry {} remaining {} of {}",
                    p.position, p.entry_price, p.remaining, p.size
                );
            }
            let _ = writeln!(
                out,
                "unresolved intents (settled at the next start): {}",
                snapshot.unresolved.len()
            );
        }
        Request::Exits { limit } => {
            for h in journal.exit_history(limit).await.map_err(port)? {
                let kind = match h.intent.action {
                    IntentAction::Exit(kind) => kind.as_str(),
                    IntentAction::Enter => "entry",
                };
                let outcome = match h.outcome {
                    Some(IntentOutcome::Filled(fill)) => {
                        format!("filled: {} in -> {} out", fill.amount_in, fill.amount_out)
                    }
                    Some(IntentOutcome::Landed {
                        provisional: fill, ..
                    }) => format!(
                        "landed: {} in -> at least {} out (fill not read yet)",
                        fill.amount_in, fill.amount_out
                    ),
                    Some(IntentOutcome::Failed) => "failed".to_owned(),
                    None => "unresolved".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "{} {} {} attempts {} {}",
                    h.intent.intent,
                    h.intent.position,
                    kind,
                    h.attempts.len(),
                    outcome
                );
            }
        }
        Request::Halt { reason } => {
            let mut state = journal
                .load()
                .await
                .map_err(port)?
                .trading_state
                .unwrap_or(TradingState::Active);
            let _ = state.halt(
                Timestamp::ZERO,
                HaltReason::new(HaltCause::Operator, reason),
            );
            journal.record_trading_state(&state).await.map_err(port)?;
            let _ = writeln!(
                out,
                "trading: {} (the bot will start halted)",
                describe(&state)
            );
        }
        Request::Resume { key } => {
            let configured = config.api.approval_key.as_deref().ok_or_else(|| {
                AppError::Remote("resume refused: no approval key is configured".into())
            })?;
            if !constant_time_eq(configured.as_bytes(), key.as_bytes()) {
                return Err(AppError::Remote(
                    "resume refused: the approval key does not match".into(),
                ));
            }
            journal
                .record_trading_state(&TradingState::Active)
                .await
                .map_err(port)?;
            let _ = writeln!(out, "trading: active (the bot will start active)");
        }
        Request::Exit { position } => {
            return Err(AppError::Remote(format!(
                "no bot answers at http://{}: start it to force-exit pos-{position} (the journal alone cannot trade)",
                config.api.listen
            )));
        }
    }
    Ok(out)
}
