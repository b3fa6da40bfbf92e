//! `[api]` and `[alerts]`: how an operator reaches the bot, and how it reaches them.

use std::net::SocketAddr;
use std::time::Duration;

use kyzlo_application::control::ApprovalKey;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::check::{ConfigError, Scheme, http_url, invalid, positive_secs};
use crate::secret::Secret;

/// `[api]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiFile {
    /// Listen address (loopback unless a bearer token is set); empty: no API.
    pub listen: String,
    /// Bearer token of the control routes (secret).
    pub bearer_token: Option<Secret>,
    /// The key that resumes trading after a halt (secret, at least 16 characters).
    pub approval_key: Option<Secret>,
}

impl Default for ApiFile {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
            bearer_token: None,
            approval_key: None,
        }
    }
}

/// `[alerts]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsFile {
    /// Slack incoming-webhook URL (secret).
    pub slack_webhook: Option<Secret>,
    /// Discord webhook URL (secret).
    pub discord_webhook: Option<Secret>,
    /// Generic JSON webhook URL (secret).
    pub generic_webhook: Option<Secret>,
    /// At most this many alerts of one kind per window.
    pub max_per_window: u32,
    /// The rate-limit window.
    pub window_s: f64,
    /// Telegram bot token (secret): alerts to `telegram_chat_ids`, and commands from them.
    pub telegram_bot_token: Option<Secret>,
    /// The Telegram chats that get alerts and may command the bot.
    pub telegram_chat_ids: Vec<i64>,
    /// The Telegram Bot API's address.
    pub telegram_api_url: String,
}

impl Default for AlertsFile {
    fn default() -> Self {
        Self {
            slack_webhook: None,
            discord_webhook: None,
            generic_webhook: None,
            max_per_window: 5,
            window_s: 60.0,
            telegram_bot_token: None,
            telegram_chat_ids: Vec::new(),
            telegram_api_url: "https://api.telegram.org".into(),
        }
    }
}

/// The operator API, validated.
#[derive(Debug, Clone)]
pub struct Api {
    /// Where it listens; `None`: no API.
    pub listen: Option<SocketAddr>,
    /// Bearer token of the control routes.
    pub bearer_token: Option<Secret>,
    /// The key that resumes trading after a halt.
    pub approval_key: Option<ApprovalKey>,
}

/// A webhook's kind: what its body looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Webhook {
    /// `{"text"}`.
    Slack,
    /// `{"content"}`, mentions disabled.
    Discord,
    /// `{"kind","severity","message","position"}`.
    Generic,
}

/// Alerts, validated.
#[derive(Debug, Clone)]
pub struct Alerts {
    /// The webhooks alerts go to besides the log (their URLs are secrets).
    pub webhooks: Vec<(Webhook, Url)>,
    /// At most this many alerts of one kind per window.
    pub max_per_window: u32,
    /// The rate-limit window.
    pub window: Duration,
    /// Telegram, when configured.
    pub telegram: Option<Telegram>,
}

/// Telegram, validated.
#[derive(Debug, Clone)]
pub struct Telegram {
    /// The Bot API's address.
    pub api_url: Url,
    /// The bot's token (secret).
    pub token: Secret,
    /// The chats that get alerts and may command the bot.
    pub chats: Vec<i64>,
}

/// The shortest bearer token accepted (the API's own floor).
const MIN_TOKEN_BYTES: usize = 16;
/// The longest bearer token accepted: it must fit an HTTP header.
const MAX_TOKEN_BYTES: usize = 512;

impl ApiFile {
    pub(crate) fn validate(&self) -> Result<Api, ConfigError> {
        let listen = if self.listen.is_empty() {
            None
        } else {
            let addr: SocketAddr = self.listen.parse().map_err(|_| {
                invalid(
                    "api.listen",
                    &self.listen,
                    "an address like 127.0.0.1:9464, or empty for no API",
                )
            })?;
            if !addr.ip().is_loopback() && self.bearer_token.is_none() {
                return Err(invalid(
                    "api.listen",
                    addr,
                    "a loopback address, or set api.bearer_token to listen elsewhere",
                ));
            }
            Some(addr)
        };
        if let Some(token) = &self.bearer_token {
            let token = token.expose();
            if token.len() < MIN_TOKEN_BYTES
                || token.len() > MAX_TOKEN_BYTES
                || !token.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(invalid(
                    "api.bearer_token",
                    "***",
                    "16 to 512 printable ASCII characters, without spaces (it travels in an HTTP header)",
                ));
            }
        }
        let approval_key = self
            .approval_key
            .as_ref()
            .map(|key| ApprovalKey::new(key.expose()))
            .transpose()
            .map_err(|_| invalid("api.approval_key", "***", "at least 16 characters"))?;
        Ok(Api {
            listen,
            bearer_token: self.bearer_token.clone(),
            approval_key,
        })
    }
}

impl AlertsFile {
    pub(crate) fn validate(&self) -> Result<Alerts, ConfigError> {
        let mut webhooks = Vec::new();
        for (key, kind, url) in [
            ("alerts.slack_webhook", Webhook::Slack, &self.slack_webhook),
            (
                "alerts.discord_webhook",
                Webhook::Discord,
                &self.discord_webhook,
            ),
            (
                "alerts.generic_webhook",
                Webhook::Generic,
                &self.generic_webhook,
            ),
        ] {
            if let Some(url) = url {
                // A webhook URL is a secret: it never travels in clear beyond this host.
                webhooks.push((kind, http_url(key, url.expose(), true, Scheme::Https)?));
            }
        }
        if self.max_per_window == 0 {
            return Err(invalid("alerts.max_per_window", 0, "at least 1"));
        }
        Ok(Alerts {
            webhooks,
            max_per_window: self.max_per_window,
            window: positive_secs("alerts.window_s", self.window_s)?,
            telegram: self.telegram()?,
        })
    }

    fn telegram(&self) -> Result<Option<Telegram>, ConfigError> {
        let Some(token) = &self.telegram_bot_token else {
            if !self.telegram_chat_ids.is_empty() {
                return Err(invalid(
                    "alerts.telegram_bot_token",
                    "(none)",
                    "a bot token from @BotFather when alerts.telegram_chat_ids is set",
                ));
            }
            return Ok(None);
        };
        // The token is part of every request's path: digits, a colon, then URL-safe
        // characters, as @BotFather issues them.
        let shape = token.expose().split_once(':').is_some_and(|(id, key)| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && key.len() >= 20
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
        if !shape {
            return Err(invalid(
                "alerts.telegram_bot_token",
                "***",
                "a bot token as @BotFather issues it (digits, a colon, then at least 20 letters, digits, _ or -)",
            ));
        }
        if self.telegram_chat_ids.is_empty() {
            return Err(invalid(
                "alerts.telegram_chat_ids",
                "[]",
                "at least one chat id that gets alerts and may command the bot",
            ));
        }
        Ok(Some(Telegram {
            api_url: http_url(
                "alerts.telegram_api_url",
                &self.telegram_api_url,
                false,
                Scheme::Https,
            )?,
            token: token.clone(),
            chats: self.telegram_chat_ids.clone(),
        }))
    }
}
