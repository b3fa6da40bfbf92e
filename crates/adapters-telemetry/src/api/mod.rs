//! The operator HTTP API (axum): `GET /metrics`, `/status`, `/exits/history?limit=N`,
//! `/metrics/exits`, `/alerts`, the live status page at `/`, and the control routes `POST /halt`, `/resume`,
//! `/positions/{id}/exit`, `/positions/{id}/hold`, which need `Authorization: Bearer <token>` (compared in
//! constant time) whenever a token is configured. It listens on loopback unless told
//! otherwise, and refuses a non-loopback address without a token.

pub mod client;
pub mod dto;
mod lockout;
mod origin;
pub mod page;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kyzlo_application::control::{ResumeError, constant_time_eq};
use kyzlo_application::operator::{Operator, OperatorError};
use kyzlo_application::orchestrator::ForceExitError;
use kyzlo_domain::PositionId;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::dto::{
    ErrorDto, ExitDto, ExitMetricsDto, ForceExitDto, HaltDto, HistoryDto, StatusDto, TradingDto,
};
use self::lockout::{Credential, Lockout};
use self::page::RecentAlerts;
use crate::error::TelemetryError;
use crate::metrics::{OPENMETRICS_CONTENT_TYPE, PrometheusMetrics};

/// The default port (next to node_exporter's 9100 range, unassigned by Prometheus' list).
pub const DEFAULT_PORT: u16 = 9464;
/// The shortest bearer token accepted, in bytes.
pub const MIN_TOKEN_LEN: usize = 16;
/// `GET /exits/history` without `limit`.
pub const DEFAULT_HISTORY_LIMIT: usize = 20;
/// The largest `limit` accepted.
pub const MAX_HISTORY_LIMIT: usize = 1_000;
/// The largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// The longest halt reason accepted, in bytes.
pub const MAX_REASON_BYTES: usize = 1_024;

/// Where the API listens and how it authenticates.
#[derive(Clone)]
pub struct ApiConfig {
    /// The address to bind (default `127.0.0.1:9464`; port 0 picks a free one).
    pub listen: SocketAddr,
    /// The bearer token the control routes require. Required for a non-loopback `listen`;
    /// without one, on loopback, the control routes are open to local processes (resume
    /// still needs the approval key).
    pub bearer_token: Option<String>,
    /// The alerts the status page shows (an alert sink the bot's alerts also go to).
    pub recent_alerts: Arc<RecentAlerts>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)),
            bearer_token: None,
            recent_alerts: Arc::default(),
        }
    }
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field("listen", &self.listen)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl ApiConfig {
    /// Checks the address and token without binding.
    ///
    /// # Errors
    /// [`TelemetryError::InsecureListen`] for a non-loopback address without a token;
    /// [`TelemetryError::WeakToken`] for a token shorter than [`MIN_TOKEN_LEN`] bytes.
    pub fn validate(&self) -> Result<(), TelemetryError> {
        match &self.bearer_token {
            Some(token) if token.len() < MIN_TOKEN_LEN => Err(TelemetryError::WeakToken {
                min_len: MIN_TOKEN_LEN,
            }),
            Some(_) => Ok(()),
            None if self.listen.ip().is_loopback() => Ok(()),
            None => Err(TelemetryError::InsecureListen {
                listen: self.listen,
            }),
        }
    }
}

#[derive(Clone)]
struct AppState {
    operator: Operator,
    metrics: Arc<PrometheusMetrics>,
    token: Option<Arc<[u8]>>,
    lockout: Arc<Lockout>,
    recent_alerts: Arc<RecentAlerts>,
}

/// Binds the API and serves it in a task until `shutdown` turns true (or its sender is
/// dropped). Returns the task and the bound address (useful with port 0).
///
/// # Errors
/// [`ApiConfig::validate`]'s errors, or [`TelemetryError::Bind`]. The task itself ends
/// with [`TelemetryError::Serve`] if the server fails.
pub async fn serve(
    config: ApiConfig,
    operator: Operator,
    metrics: Arc<PrometheusMetrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<(JoinHandle<Result<(), TelemetryError>>, SocketAddr), TelemetryError> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| TelemetryError::Bind {
            listen: config.listen,
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|source| TelemetryError::Bind {
            listen: config.listen,
            source,
        })?;
    if config.bearer_token.is_none() {
        tracing::warn!(%local, "operator API control routes are unauthenticated (loopback only): configure a bearer token");
    }
    let state = AppState {
        operator,
        metrics,
        token: config.bearer_token.map(|t| Arc::from(t.into_bytes())),
        lockout: Arc::default(),
        recent_alerts: config.recent_alerts.clone(),
    };
    let app = router(state);
    tracing::info!(%local, "operator API listening");
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(wait_for_shutdown(shutdown))
        .await
        .map_err(|source| TelemetryError::Serve { source })
    });
    Ok((task, local))
}

async fn wait_for_shutdown(mut shutdown: watch::Receiver<bool>) {
    // An Err means the sender is gone: nobody can ask any more, so stop.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/alerts", get(recent_alerts))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/exits/history", get(history))
        .route("/metrics/exits", get(exit_metrics))
        .route("/halt", post(halt))
        .route("/resume", post(resume))
        .route("/positions/{id}/exit", post(force_exit))
        .route("/positions/{id}/hold", post(hold))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// An error answer.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    body: ErrorDto,
    retry_after: Option<u64>,
}

impl Failure {
    fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorDto {
                error,
                message: message.into(),
                field: None,
            },
            retry_after: None,
        }
    }

    fn locked_out(wait: Duration) -> Self {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut f = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_wrong_credentials",
            format!("too many wrong credentials from this address: try again in {seconds} s"),
        );
        f.retry_after = Some(seconds);
        f
    }

    fn bad_field(field: &'static str, message: impl Into<String>) -> Self {
        let mut f = Self::new(StatusCode::BAD_REQUEST, "bad_request", message);
        f.body.field = Some(field);
        f
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if unauthorized {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

fn json<T: Serialize>(status: StatusCode, body: T) -> Response {
    (status, axum::Json(body)).into_response()
}

/// The token from `Authorization: Bearer <token>` (scheme case-insensitive), if any.
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.strip_prefix(b" ")?.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Checks a control request from `client`: not cross-site (see [`origin`]), and its
/// bearer token, unless `client` is made to wait for earlier wrong tokens (see
/// [`lockout`]).
async fn authorize(state: &AppState, client: IpAddr, headers: &HeaderMap) -> Result<(), Failure> {
    if let Err(why) = origin::check(headers, state.token.is_none()) {
        tracing::warn!(%client, ?why, "operator API: a cross-site control request refused");
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "cross_site",
            match why {
                origin::CrossSite::Origin => "the request's Origin is another site than its Host",
                origin::CrossSite::Host => {
                    "without a bearer token, control requests must name a loopback host"
                }
            },
        ));
    }
    let Some(expected) = &state.token else {
        return Ok(());
    };
    let Some(given) = bearer(headers) else {
        return Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing `Authorization: Bearer <token>`",
        ));
    };
    if let Err(locked) = state.lockout.begin(client, Credential::Bearer) {
        page(state, client, locked.alert).await;
        return Err(Failure::locked_out(locked.wait.unwrap_or_default()));
    }
    if constant_time_eq(expected, given) {
        state.lockout.succeeded(client, Credential::Bearer);
        Ok(())
    } else {
        tracing::warn!(%client, "operator API: wrong bearer token");
        Err(wrong_credential(state, client, Credential::Bearer).await)
    }
}

/// Counts a wrong credential from `client`, pages the operator once past the threshold,
/// and answers 401 (403 for an approval key), or 429 once the client is made to wait.
async fn wrong_credential(state: &AppState, client: IpAddr, kind: Credential) -> Failure {
    let failed = state.lockout.failed(client, kind);
    page(state, client, failed.alert).await;
    match (failed.wait, kind) {
        (Some(wait), _) => Failure::locked_out(wait),
        (None, Credential::ApprovalKey) => Failure::new(
            StatusCode::FORBIDDEN,
            "wrong_approval_key",
            "wrong approval key",
        ),
        (None, Credential::Bearer) => Failure::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong bearer token",
        ),
    }
}

/// Pages the operator when the refusals crossed the threshold.
async fn page(state: &AppState, client: IpAddr, alert: Option<u32>) {
    if let Some(n) = alert {
        state
            .operator
            .alert_wrong_credentials(format!(
                "the operator API refused {n} requests in a row for wrong credentials (bearer tokens or approval keys); the latest from {client}"
            ))
            .await;
    }
}

fn operator_failure(error: OperatorError) -> Failure {
    match error {
        OperatorError::NotRunning => Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_running",
            "the trading loop is not running",
        ),
        OperatorError::Resume(e) => {
            let (status, code) = match &e {
                ResumeError::WrongKey => (StatusCode::FORBIDDEN, "wrong_approval_key"),
                ResumeError::NoKeyConfigured => (StatusCode::FORBIDDEN, "no_approval_key"),
                ResumeError::NotHalted => (StatusCode::CONFLICT, "not_halted"),
                ResumeError::WeakKey => (StatusCode::INTERNAL_SERVER_ERROR, "weak_approval_key"),
                ResumeError::Journal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "journal"),
            };
            Failure::new(status, code, e.to_string())
        }
        OperatorError::ForceExit(e) => {
            let (status, code) = match &e {
                ForceExitError::UnknownPosition(_) => (StatusCode::NOT_FOUND, "unknown_position"),
                ForceExitError::Gateway(_) => (StatusCode::CONFLICT, "exit_running"),
            };
            Failure::new(status, code, e.to_string())
        }
        OperatorError::Journal(e) => {
            tracing::error!(error = %e, "operator API: journal read failed");
            Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "journal", e.to_string())
        }
    }
}

/// A JSON object body; an empty body is an empty object.
fn object_body(body: &[u8]) -> Result<Map<String, Value>, Failure> {
    if body.trim_ascii().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Failure::bad_field("body", "the body must be a JSON object")),
        Err(_) => Err(Failure::bad_field("body", "the body is not valid JSON")),
    }
}

/// An optional string field; `null` counts as absent.
fn string_field<'a>(
    map: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, Failure> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Failure::bad_field(
            field,
            format!("`{field}` must be a string"),
        )),
    }
}

async fn status_page() -> Response {
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        page::STATUS_PAGE,
    )
        .into_response()
}

async fn recent_alerts(State(state): State<AppState>) -> Response {
    json(StatusCode::OK, state.recent_alerts.newest_first())
}

async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.render() {
        Ok(text) => ([(CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response(),
        Err(e) => Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "metrics", e.to_string())
            .into_response(),
    }
}

async fn status(State(state): State<AppState>) -> Result<Response, Failure> {
    let status = state.operator.status().await.map_err(operator_failure)?;
    Ok(json(StatusCode::OK, StatusDto::from(status)))
}

async fn history(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, Failure> {
    let Query(query) = query.map_err(|_| Failure::bad_field("query", "malformed query string"))?;
    let limit = match query.get("limit") {
        None => DEFAULT_HISTORY_LIMIT,
        Some(raw) => match raw.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_HISTORY_LIMIT).contains(&n) => n,
            _ => {
                return Err(Failure::bad_field(
                    "limit",
                    format!("`limit` must be a whole number from 1 to {MAX_HISTORY_LIMIT}"),
                ));
            }
        },
    };
    let exits = state
        .operator
        .exit_history(limit)
        .await
        .map_err(operator_failure)?;
    Ok(json(
        StatusCode::OK,
        HistoryDto {
            exits: exits.iter().map(ExitDto::from).collect(),
        },
    ))
}

async fn exit_metrics(State(state): State<AppState>) -> Response {
    json(
        StatusCode::OK,
        ExitMetricsDto::from(&state.operator.exit_metrics()),
    )
}

async fn halt(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    authorize(&state, peer.ip(), &headers).await?;
    let body = object_body(&body)?;
    let reason = match string_field(&body, "reason")? {
        Some(r) if r.len() > MAX_REASON_BYTES => {
            return Err(Failure::bad_field(
                "reason",
                format!("`reason` is longer than {MAX_REASON_BYTES} bytes"),
            ));
        }
        Some(r) if !r.trim().is_empty() => r.trim().to_owned(),
        _ => "halted by an operator through the API".to_owned(),
    };
    let outcome = state.operator.halt(&reason).await;
    let trading = state.operator.status().await.ok().map(|s| s.trading);
    let dto = HaltDto::new(outcome, trading.as_ref());
    Ok(json(StatusCode::OK, dto))
}

async fn resume(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    authorize(&state, peer.ip(), &headers).await?;
    let body = object_body(&body)?;
    let key = string_field(&body, "approval_key")?
        .ok_or_else(|| Failure::bad_field("approval_key", "`approval_key` is required"))?;
    let client = peer.ip();
    if let Err(locked) = state.lockout.begin(client, Credential::ApprovalKey) {
        page(&state, client, locked.alert).await;
        return Err(Failure::locked_out(locked.wait.unwrap_or_default()));
    }
    match state.operator.resume(key.as_bytes()).await {
        Ok(()) => state.lockout.succeeded(client, Credential::ApprovalKey),
        Err(OperatorError::Resume(ResumeError::WrongKey)) => {
            tracing::warn!(%client, "operator API: wrong approval key");
            return Err(wrong_credential(&state, client, Credential::ApprovalKey).await);
        }
        // The key was compared and right; what failed came after it.
        Err(e @ OperatorError::Resume(ResumeError::NotHalted | ResumeError::Journal(_))) => {
            state.lockout.succeeded(client, Credential::ApprovalKey);
            return Err(operator_failure(e));
        }
        Err(e) => {
            state.lockout.not_compared(client, Credential::ApprovalKey);
            return Err(operator_failure(e));
        }
    }
    let status = state.operator.status().await.map_err(operator_failure)?;
    Ok(json(
        StatusCode::OK,
        serde_json::json!({ "trading": TradingDto::from(&status.trading) }),
    ))
}

async fn force_exit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, Failure> {
    authorize(&state, peer.ip(), &headers).await?;
    let id = position_id(id)?;
    let intent = state
        .operator
        .force_exit(PositionId(id))
        .await
        .map_err(operator_failure)?;
    Ok(json(
        StatusCode::ACCEPTED,
        ForceExitDto {
            position: id,
            intent: intent.0,
        },
    ))
}

async fn hold(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, Failure> {
    authorize(&state, peer.ip(), &headers).await?;
    let id = position_id(id)?;
    state
        .operator
        .hold(PositionId(id))
        .await
        .map_err(operator_failure)?;
    Ok(json(
        StatusCode::OK,
        serde_json::json!({ "position": id, "held": true }),
    ))
}

/// The `{id}` of a position route.
fn position_id(id: Result<Path<String>, PathRejection>) -> Result<u64, Failure> {
    let Path(raw) = id.map_err(|_| Failure::bad_field("id", "malformed position id"))?;
    raw.parse::<u64>()
        .map_err(|_| Failure::bad_field("id", "the position id must be a whole number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(value) {
            h.insert(AUTHORIZATION, v);
        }
        h
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let cases: [(&[u8], Option<&[u8]>); 8] = [
            (b"Bearer abc", Some(b"abc")),
            (b"bearer abc", Some(b"abc")),
            (b"BEARER  abc ", Some(b"abc")),
            (b"Bearer ", None),
            (b"Bearer", None),
            (b"Basic abc", None),
            (b"Bearerabc", None),
            (b"", None),
        ];
        for (value, expected) in cases {
            assert_eq!(
                bearer(&headers(value)),
                expected,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn non_loopback_without_a_token_is_refused() {
        for listen in ["0.0.0.0:9464", "[::]:9464", "192.0.2.1:9464"] {
            let config = ApiConfig {
                listen: listen
                    .parse()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 1))),
                bearer_token: None,
                ..ApiConfig::default()
            };
            assert!(
                matches!(
                    config.validate(),
                    Err(TelemetryError::InsecureListen { .. })
                ),
                "{listen}"
            );
        }
        let loopback_v6 = ApiConfig {
            listen: SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)),
            bearer_token: None,
            ..ApiConfig::default()
        };
        assert!(loopback_v6.validate().is_ok());
        let with_token = ApiConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            bearer_token: Some("a-long-enough-token-0123".into()),
            ..ApiConfig::default()
        };
        assert!(with_token.validate().is_ok());
    }

    #[test]
    fn short_tokens_are_refused() {
        let config = ApiConfig {
            bearer_token: Some("short".into()),
            ..ApiConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(TelemetryError::WeakToken {
                min_len: MIN_TOKEN_LEN
            })
        ));
    }

    #[test]
    fn default_listens_on_loopback_and_debug_masks_the_token() {
        let config = ApiConfig {
            bearer_token: Some("super-secret-token-value".into()),
            ..ApiConfig::default()
        };
        assert_eq!(
            config.listen,
            "127.0.0.1:9464".parse().unwrap_or(config.listen)
        );
        assert!(config.listen.ip().is_loopback());
        let shown = format!("{config:?}");
        assert!(!shown.contains("super-secret"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }

    #[test]
    fn json_bodies_are_checked_field_by_field() {
        assert!(object_body(b"").is_ok_and(|m| m.is_empty()));
        assert!(object_body(b"  \n").is_ok_and(|m| m.is_empty()));
        for bad in [&b"[1]"[..], b"\"x\"", b"{", b"\xff\xfe"] {
            let err = object_body(bad).err().map(|f| f.body.field);
            assert_eq!(err, Some(Some("body")), "{bad:?}");
        }
        let map = object_body(br#"{"reason": 5, "approval_key": null}"#).unwrap_or_default();
        assert_eq!(
            string_field(&map, "reason").err().map(|f| f.body.field),
            Some(Some("reason"))
        );
        assert!(matches!(string_field(&map, "approval_key"), Ok(None)));
    }
}
