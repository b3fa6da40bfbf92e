//! Telegram: alerts to the configured chats, and operator commands from those chats only.
//!
//! Shapes checked against the Telegram Bot API documentation (core.telegram.org/bots/api,
//! Bot API 9.x): `POST {api}/bot{token}/sendMessage` with `{"chat_id", "text"}`, and
//! `POST {api}/bot{token}/getUpdates` with `{"offset", "timeout", "allowed_updates"}`
//! answering `{"ok", "result": [{"update_id", "message": {"chat": {"id"}, "text"}}]}`.
//!
//! Alerts go through the same de-duplicating, rate-limited router as the webhooks (this is
//! one more sink). Commands are long-polled: `/status`, `/exits`, `/halt REASON` and
//! `/exit ID`; resume stays on the command line and the API, where the approval key
//! belongs. A command from a chat not in the list is refused and logged, never acted on.
//! The bot token is part of every URL: it is never logged, and the client follows no
//! redirect.

use std::fmt::Write as _;
use std::time::Duration;

use async_trait::async_trait;
use kyzlo_application::journal::IntentHistory;
use kyzlo_application::operator::Operator;
use kyzlo_application::ports::{Alert, AlertSink, PortError};
use kyzlo_domain::trading_state::HaltOutcome;
use kyzlo_domain::{ErrorClass, PositionId};
use reqwest::Client;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use crate::error::TelemetryError;

/// Where the bot's API is and who may use it.
#[derive(Clone)]
pub struct TelegramConfig {
    /// The Bot API's base URL (`https://api.telegram.org`; a local stand-in in tests).
    pub api_url: String,
    /// The bot's token (a secret: never logged).
    pub token: String,
    /// The chats that receive alerts and whose commands are obeyed.
    pub chats: Vec<i64>,
}

impl std::fmt::Debug for TelegramConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramConfig")
            .field("api_url", &self.api_url)
            .field("token", &"***")
            .field("chats", &self.chats)
            .finish()
    }
}

/// The Bot API client shared by the alert sink and the command loop.
#[derive(Clone)]
pub struct Telegram {
    config: TelegramConfig,
    client: Client,
}

impl std::fmt::Debug for Telegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telegram")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct Answer<T> {
    ok: bool,
    result: Option<T>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Update {
    update_id: i64,
    message: Option<Message>,
}

#[derive(Debug, Deserialize)]
struct Message {
    chat: Chat,
    /// When it was sent, in Unix seconds.
    #[serde(default)]
    date: i64,
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Chat {
    id: i64,
}

/// A command sent more than this long before the bot started is not obeyed: Telegram
/// keeps a day of messages, and an `/exit` typed while the bot was down must not fire at
/// its next start. (A minute of grace for clocks that disagree.)
const STALE_BEFORE_START_S: i64 = 60;

/// The longest a getUpdates call waits for a message, in seconds.
const LONG_POLL_S: u64 = 25;
/// Telegram's limit on a message's length, in characters.
const MAX_TEXT: usize = 4_000;

impl Telegram {
    /// A client for `config`.
    ///
    /// # Errors
    /// [`TelemetryError::HttpClient`] if the TLS back-end cannot start.
    pub fn new(config: TelegramConfig) -> Result<Self, TelemetryError> {
        let client = Client::builder()
            .timeout(Duration::from_secs(LONG_POLL_S + 10))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| TelemetryError::HttpClient {
                source: e.without_url(),
            })?;
        Ok(Self { config, client })
    }

    fn url(&self, method: &str) -> String {
        format!(
            "{}/bot{}/{method}",
            self.config.api_url.trim_end_matches('/'),
            self.config.token
        )
    }

    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        method: &'static str,
        body: serde_json::Value,
    ) -> Result<T, PortError> {
        let operation = "telegram";
        // `without_url`: the URL holds the token.
        let response = self
            .client
            .post(self.url(method))
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                PortError::new(operation, ErrorClass::Network, e.without_url().to_string())
            })?;
        let status = response.status();
        let answer: Answer<T> = response.json().await.map_err(|e| {
            PortError::new(operation, ErrorClass::Unknown, e.without_url().to_string())
        })?;
        match answer {
            Answer {
                ok: true,
                result: Some(result),
                ..
            } => Ok(result),
            other => Err(PortError::new(
                operation,
                if status.as_u16() == 429 {
                    ErrorClass::RateLimited
                } else {
                    ErrorClass::Unknown
                },
                format!(
                    "{method} refused ({status}): {}",
                    other.description.unwrap_or_default()
                ),
            )),
        }
    }

    /// Sends `text` to `chat`.
    ///
    /// # Errors
    /// [`PortError`] when the Bot API cannot be reached or refuses.
    pub async fn send(&self, chat: i64, text: &str) -> Result<(), PortError> {
        let text: String = text.chars().take(MAX_TEXT).collect();
        self.call::<serde_json::Value>("sendMessage", json!({"chat_id": chat, "text": text}))
            .await
            .map(|_| ())
    }

    /// Obeys commands from the configured chats until `shutdown`: long-polls the Bot API,
    /// answers each command in its chat. A failed poll is retried after a pause.
    ///
    /// Commands sent before the bot started (more than [`STALE_BEFORE_START_S`] before)
    /// are answered "ignored", never obeyed.
    pub async fn run_commands(self, operator: Operator, mut shutdown: watch::Receiver<bool>) {
        // Telegram's clock against this host's: wall-clock time, not the tokio clock.
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let mut offset: i64 = 0;
        loop {
            let poll = self.call::<Vec<Update>>(
                "getUpdates",
                json!({"offset": offset, "timeout": LONG_POLL_S, "allowed_updates": ["message"]}),
            );
            let updates = tokio::select! {
                updates = poll => updates,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            let updates = match updates {
                Ok(updates) => updates,
                Err(e) => {
                    tracing::warn!(error = %e, "telegram: polling failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(5)) => continue,
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                }
            };
            for update in updates {
                offset = offset.max(update.update_id + 1);
                let Some(Message {
                    chat,
                    date,
                    text: Some(text),
                }) = update.message
                else {
                    continue;
                };
                if !self.config.chats.contains(&chat.id) {
                    tracing::warn!(
                        chat = chat.id,
                        "telegram: command from a chat not allowed; refused"
                    );
                    let _ = self
                        .send(chat.id, "refused: this chat may not command this bot")
                        .await;
                    continue;
                }
                let answer = if date.saturating_add(STALE_BEFORE_START_S) < started {
                    tracing::warn!(
                        chat = chat.id,
                        "telegram: a command sent before the bot started; ignored"
                    );
                    "ignored: sent before this bot started; send it again if it still holds"
                        .to_owned()
                } else {
                    answer(&operator, &text).await
                };
                if let Err(e) = self.send(chat.id, &answer).await {
                    tracing::warn!(error = %e, "telegram: answer not delivered");
                }
            }
        }
    }
}

/// The answer to one command.
async fn answer(operator: &Operator, text: &str) -> String {
    let text = text.trim();
    let (command, rest) = text.split_once(' ').unwrap_or((text, ""));
    // `/cmd@BotName` in groups.
    let command = command.split('@').next().unwrap_or(command);
    match command {
        "/status" => match operator.status().await {
            Ok(status) => {
                let mut out = format!("trading: {}\n", status.trading);
                let _ = writeln!(out, "open positions: {}", status.positions.len());
                for p in &status.positions {
                    let _ = writeln!(
                        out,
                        "  pos-{} entry {:.4} remaining {} stop {:.4}{}",
                        p.id.0,
                        p.entry_price.get(),
                        p.remaining,
                        p.stop_level.get(),
                        if p.exiting { " (exiting)" } else { "" }
                    );
                }
                let _ = write!(
                    out,
                    "failed exits in a row: {}",
                    status.consecutive_failed_exits
                );
                out
            }
            Err(e) => format!("status unavailable: {e}"),
        },
        "/exits" => match operator.exit_history(5).await {
            Ok(exits) if exits.is_empty() => "no exits yet".to_owned(),
            Ok(exits) => exits
                .iter()
                .map(IntentHistory::summary)
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => format!("history unavailable: {e}"),
        },
        "/halt" if rest.trim().len() > crate::api::MAX_REASON_BYTES => format!(
            "refused: the reason is longer than {} bytes",
            crate::api::MAX_REASON_BYTES
        ),
        "/halt" => {
            let reason = if rest.trim().is_empty() {
                "halted by an operator through Telegram"
            } else {
                rest.trim()
            };
            match operator.halt(reason).await {
                HaltOutcome::Halted => format!("halted: {reason}"),
                HaltOutcome::AlreadyHalted => "already halted (the first reason stays)".to_owned(),
            }
        }
        "/exit" => {
            let id = rest.trim().trim_start_matches("pos-");
            match id.parse::<u64>() {
                Ok(id) => match operator.force_exit(PositionId(id)).await {
                    Ok(intent) => format!("force-exit of pos-{id} started: {intent}"),
                    Err(e) => format!("force-exit of pos-{id} refused: {e}"),
                },
                Err(_) => "usage: /exit ID (a position number, e.g. /exit 12)".to_owned(),
            }
        }
        "/resume" => "resume needs the approval key: use `kyzlo resume` or the API".to_owned(),
        _ => "commands: /status, /exits, /halt REASON, /exit ID".to_owned(),
    }
}

#[async_trait]
impl AlertSink for Telegram {
    async fn send(&self, alert: &Alert) -> Result<(), PortError> {
        let text = format!(
            "kyzlo {}: {}{}",
            alert.kind.as_str(),
            alert.message,
            alert
                .position
                .map(|p| format!(" ({p})"))
                .unwrap_or_default()
        );
        let mut last = Ok(());
        for chat in &self.config.chats {
            if let Err(e) = Telegram::send(self, *chat, &text).await {
                last = Err(e);
            }
        }
        last
    }
}
