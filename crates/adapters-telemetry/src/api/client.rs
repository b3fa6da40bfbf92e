//! The operator API's client: what `kyzlo status`, `halt`, `resume`, `exit`, `hold` and `exits`
//! send to a running bot.

use std::time::Duration;

/// An operator request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `GET /status`.
    Status,
    /// `POST /halt` with the reason.
    Halt(String),
    /// `POST /resume` with the approval key (sent to the bot only).
    Resume(String),
    /// `POST /positions/{id}/exit`.
    ForceExit(u64),
    /// `POST /positions/{id}/hold`.
    Hold(u64),
    /// `GET /exits/history?limit=N`.
    Exits(usize),
}

/// Why a request got no answer worth showing.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the address: the bot is not running.
    #[error("no bot answers at {0}")]
    NotRunning(String),
    /// The bot refused, with its status and answer.
    #[error("the bot answered {status}: {body}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// Its answer (pretty JSON when it is JSON).
        body: String,
    },
    /// The request failed on the way.
    #[error("{0}")]
    Transport(String),
}

/// A client of one bot's API at `base` (e.g. `http://127.0.0.1:9464`).
pub struct OperatorClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl OperatorClient {
    /// A client for the API at `base`; `token` is the bearer token of the control routes.
    ///
    /// # Errors
    /// [`ClientError::Transport`] when the HTTP client cannot be built.
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientError::Transport(format!("HTTP client: {e}")))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    /// Sends `request`; the answer as pretty JSON (or as sent, when it is not JSON).
    ///
    /// # Errors
    /// [`ClientError::NotRunning`] when nothing listens; [`ClientError::Refused`] for a
    /// non-2xx answer; [`ClientError::Transport`] otherwise.
    pub async fn send(&self, request: &Request) -> Result<String, ClientError> {
        let base = &self.base;
        let builder = match request {
            Request::Status => self.http.get(format!("{base}/status")),
            Request::Exits(limit) => self.http.get(format!("{base}/exits/history?limit={limit}")),
            Request::Halt(reason) => self
                .http
                .post(format!("{base}/halt"))
                .json(&serde_json::json!({ "reason": reason })),
            Request::Resume(key) => self
                .http
                .post(format!("{base}/resume"))
                .json(&serde_json::json!({ "approval_key": key })),
            Request::ForceExit(position) => {
                self.http.post(format!("{base}/positions/{position}/exit"))
            }
            Request::Hold(position) => self.http.post(format!("{base}/positions/{position}/hold")),
        };
        let builder = match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        };
        let response = match builder.send().await {
            Ok(response) => response,
            Err(e) if e.is_connect() => return Err(ClientError::NotRunning(base.clone())),
            Err(e) => {
                return Err(ClientError::Transport(format!(
                    "{base}: {}",
                    e.without_url()
                )));
            }
        };
        let status = response.status();
        let body = response.text().await.map_err(|e| {
            ClientError::Transport(format!("{base}: reading the answer: {}", e.without_url()))
        })?;
        let pretty = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or(body);
        if status.is_success() {
            Ok(pretty)
        } else {
            Err(ClientError::Refused {
                status: status.as_u16(),
                body: pretty,
            })
        }
    }
}
