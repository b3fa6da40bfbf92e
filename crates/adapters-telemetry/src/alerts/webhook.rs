//! Webhook alert sinks: Slack (`{"text": ...}`), Discord (`{"content": ...}`) and a
//! generic JSON receiver (`{"kind", "severity", "message", "position"}`), over one
//! `reqwest` client with a timeout. Webhook URLs carry their secret in the path: they are
//! never logged, never shown by `Debug`, and stripped from every client error.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use kyzlo_application::ports::{Alert, AlertSink, PortError};
use reqwest::header::RETRY_AFTER;
use reqwest::{Client, Url};
use serde_json::{Value, json};

use super::severity_str;
use crate::error::{BODY_EXCERPT_LIMIT, TelemetryError, body_excerpt};

/// Discord refuses messages longer than this many characters.
const DISCORD_CONTENT_LIMIT: usize = 2_000;

/// Which receiver, and so which payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookKind {
    /// A Slack incoming webhook: `{"text": ...}`.
    Slack,
    /// A Discord webhook: `{"content": ...}` with mentions disabled.
    Discord,
    /// Any JSON receiver: `{"kind", "severity", "message", "position"}`.
    Generic,
}

impl WebhookKind {
    /// A stable lower-case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            WebhookKind::Slack => "slack",
            WebhookKind::Discord => "discord",
            WebhookKind::Generic => "generic",
        }
    }

    const fn operation(self) -> &'static str {
        match self {
            WebhookKind::Slack => "alerts.slack",
            WebhookKind::Discord => "alerts.discord",
            WebhookKind::Generic => "alerts.webhook",
        }
    }

    /// The JSON body for `alert`.
    #[must_use]
    pub fn payload(self, alert: &Alert) -> Value {
        let severity = severity_str(alert.severity).to_ascii_uppercase();
        let position = alert
            .position
            .map(|p| format!(" (position {})", p.0))
            .unwrap_or_default();
        match self {
            WebhookKind::Slack => json!({
                "text": format!(
                    "*[{severity}]* {}: {}{position}",
                    alert.kind.as_str(),
                    slack_escape(&alert.message)
                ),
            }),
            WebhookKind::Discord => {
                let content = format!(
                    "**[{severity}]** {}: {}{position}",
                    alert.kind.as_str(),
                    alert.message
                );
                json!({
                    "content": truncate_chars(&content, DISCORD_CONTENT_LIMIT),
                    "allowed_mentions": { "parse": [] },
                })
            }
            WebhookKind::Generic => json!({
                "kind": alert.kind.as_str(),
                "severity": severity_str(alert.severity),
                "message": alert.message,
                "position": alert.position.map(|p| p.0),
            }),
        }
    }
}

/// Posts alerts to one webhook.
#[derive(Clone)]
pub struct WebhookAlerts {
    kind: WebhookKind,
    url: Url,
    client: Client,
}

impl fmt::Debug for WebhookAlerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookAlerts")
            .field("kind", &self.kind)
            .field("url", &"***")
            .finish()
    }
}

impl WebhookAlerts {
    /// A sink posting to `url`, giving up on each request after `timeout`. Redirects are
    /// not followed (a redirect would carry the alert somewhere not configured).
    ///
    /// # Errors
    /// [`TelemetryError::InvalidWebhookUrl`] for a URL that is not absolute http(s) with a
    /// host; [`TelemetryError::HttpClient`] if the TLS back-end cannot start.
    pub fn new(kind: WebhookKind, url: &str, timeout: Duration) -> Result<Self, TelemetryError> {
        let invalid = |problem| TelemetryError::InvalidWebhookUrl {
            kind: kind.as_str(),
            problem,
        };
        let url = Url::parse(url).map_err(|_| invalid("not an absolute URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no host"));
        }
        let client = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| TelemetryError::HttpClient {
                source: e.without_url(),
            })?;
        Ok(Self { kind, url, client })
    }

    /// Which receiver this is.
    #[must_use]
    pub fn kind(&self) -> WebhookKind {
        self.kind
    }

    async fn post(&self, alert: &Alert) -> Result<(), TelemetryError> {
        let kind = self.kind.as_str();
        let transport = |e: reqwest::Error| TelemetryError::WebhookTransport {
            kind,
            timeout: e.is_timeout(),
            source: e.without_url(),
        };
        let mut response = self
            .client
            .post(self.url.clone())
            .json(&self.kind.payload(alert))
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // Read no more of the body than the excerpt keeps: a hostile receiver cannot make
        // us buffer megabytes.
        let mut body = Vec::new();
        while body.len() < BODY_EXCERPT_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        Err(TelemetryError::WebhookStatus {
            kind,
            status: status.as_u16(),
            retry_after,
            body: body_excerpt(&body),
        })
    }
}

#[async_trait]
impl AlertSink for WebhookAlerts {
    async fn send(&self, alert: &Alert) -> Result<(), PortError> {
        self.post(alert)
            .await
            .map_err(|e| e.into_port_error(self.kind.operation()))
    }
}

/// Slack's mrkdwn needs exactly these three escaped.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => text[..cut].to_owned(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kyzlo_application::ports::{AlertKind, Severity};
    use kyzlo_domain::PositionId;

    fn alert(message: &str) -> Alert {
        Alert {
            kind: AlertKind::TradingHalted,
            severity: Severity::Critical,
            message: message.to_owned(),
            position: Some(PositionId(3)),
        }
    }

    #[test]
    fn payloads_have_each_receivers_shape() {
        let a = alert("halted <now> & then");
        assert_eq!(
            WebhookKind::Slack.payload(&a),
            json!({"text": "*[CRITICAL]* trading_halted: halted &lt;now&gt; &amp; then (position 3)"})
        );
        let discord = WebhookKind::Discord.payload(&a);
        assert_eq!(
            discord["content"],
            "**[CRITICAL]** trading_halted: halted <now> & then (position 3)"
        );
        assert_eq!(discord["allowed_mentions"]["parse"], json!([]));
        assert_eq!(
            WebhookKind::Generic.payload(&a),
            json!({"kind": "trading_halted", "severity": "critical", "message": "halted <now> & then", "position": 3})
        );
    }

    #[test]
    fn discord_content_is_cut_to_its_limit_on_a_char_boundary() {
        let a = alert(&"é".repeat(5_000));
        let content = WebhookKind::Discord.payload(&a)["content"]
            .as_str()
            .map(|s| s.chars().count());
        assert_eq!(content, Some(DISCORD_CONTENT_LIMIT));
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for url in [
            "",
            "not a url",
            "ftp://example.com/x",
            "file:///etc/passwd",
            "mailto:ops@example.com",
            "http://",
        ] {
            let err = WebhookAlerts::new(WebhookKind::Slack, url, Duration::from_secs(1));
            assert!(
                matches!(
                    err,
                    Err(TelemetryError::InvalidWebhookUrl { kind: "slack", .. })
                ),
                "{url:?}"
            );
        }
    }

    #[test]
    fn debug_masks_the_url() {
        let secret = "https://hooks.slack.com/services/T000/B000/SECRETSECRET";
        let sink = WebhookAlerts::new(WebhookKind::Slack, secret, Duration::from_secs(1));
        let shown = format!("{sink:?}");
        assert!(!shown.contains("SECRETSECRET"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
}
