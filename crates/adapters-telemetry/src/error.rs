//! The crate's one error type, with structured fields, and its mapping to the
//! application's [`PortError`] and the domain's [`ErrorClass`].

use std::net::SocketAddr;
use std::time::Duration;

use kyzlo_application::ports::PortError;
use kyzlo_domain::ErrorClass;

/// The most of a remote's response body kept in an error, in bytes.
pub const BODY_EXCERPT_LIMIT: usize = 512;

/// Everything that can go wrong in telemetry: starting the API, delivering a webhook,
/// rendering metrics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The API was asked to listen beyond loopback without a bearer token: anyone who
    /// can reach the port could halt or force-exit.
    #[error(
        "refusing to serve the control API on non-loopback address {listen} without a bearer token"
    )]
    InsecureListen {
        /// The address asked for.
        listen: SocketAddr,
    },
    /// A configured bearer token is too short to be a secret.
    #[error("bearer token too short: at least {min_len} bytes")]
    WeakToken {
        /// The minimum length.
        min_len: usize,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {listen}: {source}")]
    Bind {
        /// The address asked for.
        listen: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP server stopped with an I/O error.
    #[error("the API server failed: {source}")]
    Serve {
        /// The OS error.
        source: std::io::Error,
    },
    /// A webhook URL that is not an absolute http(s) URL. The URL itself is a secret and
    /// is not repeated here.
    #[error("invalid {kind} webhook URL: {problem}")]
    InvalidWebhookUrl {
        /// Which webhook.
        kind: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The HTTP client could not be built (TLS back-end initialisation).
    #[error("cannot build the webhook HTTP client: {source}")]
    HttpClient {
        /// The client's error (carries no URL).
        source: reqwest::Error,
    },
    /// A webhook answered with a non-success status.
    #[error("{kind} webhook answered HTTP {status}: {body}")]
    WebhookStatus {
        /// Which webhook.
        kind: &'static str,
        /// The HTTP status.
        status: u16,
        /// What the remote asked us to wait (HTTP `Retry-After`), if it said.
        retry_after: Option<Duration>,
        /// The start of the response body, at most [`BODY_EXCERPT_LIMIT`] bytes.
        body: String,
    },
    /// A webhook could not be reached or did not answer in time.
    #[error("{kind} webhook unreachable ({}): {source}", if *.timeout { "timeout" } else { "transport" })]
    WebhookTransport {
        /// Which webhook.
        kind: &'static str,
        /// Whether it was the client's timeout.
        timeout: bool,
        /// The client's error, with the URL stripped.
        source: reqwest::Error,
    },
    /// The metrics registry could not be encoded.
    #[error("cannot encode metrics")]
    Encode,
}

impl TelemetryError {
    /// The domain class of this failure, decided on variants and status codes only.
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        match self {
            TelemetryError::WebhookStatus { status, .. } => match *status {
                429 => ErrorClass::RateLimited,
                408 | 504 => ErrorClass::RpcTimeout,
                500..=599 => ErrorClass::NodeUnhealthy,
                _ => ErrorClass::Unknown,
            },
            TelemetryError::WebhookTransport { timeout: true, .. } => ErrorClass::RpcTimeout,
            TelemetryError::WebhookTransport { timeout: false, .. } => ErrorClass::Network,
            TelemetryError::InsecureListen { .. }
            | TelemetryError::WeakToken { .. }
            | TelemetryError::Bind { .. }
            | TelemetryError::Serve { .. }
            | TelemetryError::InvalidWebhookUrl { .. }
            | TelemetryError::HttpClient { .. }
            | TelemetryError::Encode => ErrorClass::Unknown,
        }
    }

    /// This failure as a port error at `operation`, keeping the status code and any
    /// retry-after.
    #[must_use]
    pub fn into_port_error(self, operation: &'static str) -> PortError {
        let class = self.class();
        let (code, retry_after) = match &self {
            TelemetryError::WebhookStatus {
                status,
                retry_after,
                ..
            } => (Some(i64::from(*status)), *retry_after),
            _ => (None, None),
        };
        let mut error = PortError::new(operation, class, self.to_string());
        if let Some(code) = code {
            error = error.with_code(code);
        }
        if let Some(retry_after) = retry_after {
            error = error.with_retry_after(retry_after);
        }
        error
    }
}

/// The first [`BODY_EXCERPT_LIMIT`] bytes of `body`, cut on a character boundary, with
/// invalid UTF-8 replaced.
#[must_use]
pub fn body_excerpt(body: &[u8]) -> String {
    let head = &body[..body.len().min(BODY_EXCERPT_LIMIT)];
    let text = String::from_utf8_lossy(head);
    // A multi-byte character cut at the limit shows as one replacement character: fine.
    text.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_statuses_map_to_classes() {
        let cases = [
            (429, ErrorClass::RateLimited),
            (408, ErrorClass::RpcTimeout),
            (504, ErrorClass::RpcTimeout),
            (500, ErrorClass::NodeUnhealthy),
            (503, ErrorClass::NodeUnhealthy),
            (400, ErrorClass::Unknown),
            (403, ErrorClass::Unknown),
            (404, ErrorClass::Unknown),
        ];
        for (status, class) in cases {
            let e = TelemetryError::WebhookStatus {
                kind: "generic",
                status,
                retry_after: None,
                body: String::new(),
            };
            assert_eq!(e.class(), class, "HTTP {status}");
        }
    }

    #[test]
    fn port_error_keeps_status_and_retry_after() {
        let e = TelemetryError::WebhookStatus {
            kind: "slack",
            status: 429,
            retry_after: Some(Duration::from_secs(7)),
            body: "slow down".into(),
        }
        .into_port_error("alerts.slack");
        assert_eq!(e.operation, "alerts.slack");
        assert_eq!(e.class, ErrorClass::RateLimited);
        assert_eq!(e.code, Some(429));
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    }

    #[test]
    fn body_excerpt_is_bounded_and_never_panics_on_bad_utf8() {
        let huge = vec![b'x'; 10_000];
        assert_eq!(body_excerpt(&huge).len(), BODY_EXCERPT_LIMIT);
        let mut cut = vec![b'a'; BODY_EXCERPT_LIMIT - 1];
        cut.extend_from_slice("é".as_bytes());
        let excerpt = body_excerpt(&cut);
        assert!(excerpt.starts_with(&"a".repeat(BODY_EXCERPT_LIMIT - 1)));
        assert_eq!(body_excerpt(&[0xff, 0xfe]), "\u{fffd}\u{fffd}");
    }
}
