//! One HTTP exchange with Jupiter: send, read a bounded body, and turn the status, the
//! headers and the body's `errorCode` into a typed outcome.

use std::time::{Duration, SystemTime};

use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};

use crate::error::{BodyExcerpt, JupiterError, NoRouteCode};

/// The rate-limit reset header some gateways send besides (or instead of) `Retry-After`.
pub const RATE_LIMIT_RESET: &str = "x-ratelimit-reset";

/// A reset value at or above this is a Unix time in seconds (2001-09-09), not a count of
/// seconds to wait: no gateway asks for a 31-year wait.
const EPOCH_SECONDS_FROM: f64 = 1_000_000_000.0;
/// A reset value at or above this is a Unix time in milliseconds.
const EPOCH_MILLIS_FROM: f64 = 1_000_000_000_000.0;

/// A successful answer's body, read whole and within the limit.
#[derive(Debug)]
pub(crate) struct JsonBody {
    pub(crate) status: u16,
    pub(crate) bytes: Vec<u8>,
}

/// Sends `request` and returns the JSON body of a 2xx answer, or the typed failure.
pub(crate) async fn exchange(
    request: RequestBuilder,
    operation: &'static str,
    max_body_bytes: usize,
    request_timeout: Duration,
) -> Result<JsonBody, JupiterError> {
    let started = std::time::Instant::now();
    let response = request
        .send()
        .await
        .map_err(|e| transport_error(e, request_timeout))?;
    let status = response.status();
    tracing::debug!(
        operation,
        status = status.as_u16(),
        elapsed_ms = elapsed_ms(started),
        "jupiter answered"
    );
    if status.is_success() {
        read_success(response, max_body_bytes, request_timeout).await
    } else {
        let retry_after = retry_after(response.headers(), SystemTime::now());
        let body = read_up_to(response, max_body_bytes, request_timeout).await?;
        Err(status_error(status, retry_after, &body))
    }
}

async fn read_success(
    mut response: Response,
    max_body_bytes: usize,
    request_timeout: Duration,
) -> Result<JsonBody, JupiterError> {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let declared = response.content_length();
    if declared.is_some_and(|len| len > max_body_bytes as u64) {
        return Err(JupiterError::BodyTooLarge {
            status,
            limit: max_body_bytes,
            declared,
        });
    }
    let mut bytes = Vec::with_capacity(
        declared
            .and_then(|len| usize::try_from(len).ok())
            .unwrap_or(0),
    );
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(e, request_timeout))?
    {
        if bytes.len() + chunk.len() > max_body_bytes {
            return Err(JupiterError::BodyTooLarge {
                status,
                limit: max_body_bytes,
                declared,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    if !content_type.as_deref().is_some_and(is_json) {
        return Err(JupiterError::WrongContentType {
            status,
            content_type,
            body: BodyExcerpt::new(&bytes),
        });
    }
    Ok(JsonBody { status, bytes })
}

/// Reads at most `limit` bytes of an error answer: enough for its `errorCode` and an
/// excerpt; the rest is dropped unread.
async fn read_up_to(
    mut response: Response,
    limit: usize,
    request_timeout: Duration,
) -> Result<Vec<u8>, JupiterError> {
    let mut bytes = Vec::new();
    while bytes.len() < limit {
        let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport_error(e, request_timeout))?
        else {
            break;
        };
        let room = limit - bytes.len();
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    Ok(bytes)
}

/// `application/json`, with or without parameters, or any `+json` type.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The typed failure for a non-2xx status.
pub(crate) fn status_error(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
) -> JupiterError {
    let code = status.as_u16();
    let excerpt = BodyExcerpt::new(body);
    match code {
        429 => JupiterError::RateLimited {
            retry_after,
            body: excerpt,
        },
        401 | 403 => JupiterError::Unauthorized {
            status: code,
            body: excerpt,
        },
        400..=499 => {
            let error_code = error_code(body);
            match error_code.as_deref().and_then(NoRouteCode::from_error_code) {
                Some(no_route) => JupiterError::NoRoute {
                    status: code,
                    code: no_route,
                    body: excerpt,
                },
                None => JupiterError::BadRequest {
                    status: code,
                    code: error_code,
                    body: excerpt,
                },
            }
        }
        500..=599 => JupiterError::Server {
            status: code,
            body: excerpt,
        },
        _ => JupiterError::UnexpectedStatus {
            status: code,
            body: excerpt,
        },
    }
}

/// The string value of the top-level `errorCode` field of a JSON error body.
fn error_code(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ErrorBody {
        error_code: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<ErrorBody>(body).ok()?.error_code? {
        serde_json::Value::String(code) => Some(code),
        _ => None,
    }
}

/// Classifies a client error by its kind: a failed connection never reached Jupiter; a
/// timeout may have.
pub(crate) fn transport_error(error: reqwest::Error, request_timeout: Duration) -> JupiterError {
    if error.is_connect() {
        JupiterError::Connect { source: error }
    } else if error.is_timeout() {
        JupiterError::Timeout {
            timeout: request_timeout,
        }
    } else {
        JupiterError::Transport { source: error }
    }
}

/// How long a 429 asks us to wait.
///
/// `Retry-After` wins when it parses: delay-seconds or an HTTP date (RFC 9110). Otherwise
/// `x-ratelimit-reset`: a number of seconds (fractions allowed) that is a wait when below
/// 10^9, a Unix time in seconds from 10^9, and a Unix time in milliseconds from 10^12. A
/// time already past is a wait of zero.
#[must_use]
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    header(RETRY_AFTER.as_str())
        .and_then(|value| parse_retry_after(value, now))
        .or_else(|| header(RATE_LIMIT_RESET).and_then(|value| parse_reset(value, now)))
}

fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn parse_reset(value: &str, now: SystemTime) -> Option<Duration> {
    let is_number = !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && value.bytes().filter(|&b| b == b'.').count() <= 1;
    if !is_number {
        return None;
    }
    let number: f64 = value.parse().ok()?;
    if !number.is_finite() {
        return None;
    }
    if number < EPOCH_SECONDS_FROM {
        return Duration::try_from_secs_f64(number).ok();
    }
    let epoch_seconds = if number >= EPOCH_MILLIS_FROM {
        number / 1000.0
    } else {
        number
    };
    let at =
        SystemTime::UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(epoch_seconds).ok()?)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn elapsed_ms(started: std::time::Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::JupiterError;
    use reqwest::header::HeaderValue;

    fn at(unix_seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix_seconds)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn retry_after_forms_parse_to_the_documented_waits() {
        let now = at(1_750_000_000);
        type Case = (&'static [(&'static str, &'static str)], Option<Duration>);
        let cases: &[Case] = &[
            (&[("retry-after", "7")], Some(Duration::from_secs(7))),
            (&[("retry-after", " 0 ")], Some(Duration::ZERO)),
            (
                // 1_750_000_007 is Sun, 15 Jun 2025 15:06:47 GMT.
                &[("retry-after", "Sun, 15 Jun 2025 15:06:47 GMT")],
                Some(Duration::from_secs(7)),
            ),
            (
                &[("retry-after", "Sun, 15 Jun 2025 15:06:00 GMT")],
                Some(Duration::ZERO),
            ),
            (&[("x-ratelimit-reset", "7")], Some(Duration::from_secs(7))),
            (
                &[("x-ratelimit-reset", "1.5")],
                Some(Duration::from_millis(1500)),
            ),
            (
                &[("x-ratelimit-reset", "1750000007")],
                Some(Duration::from_secs(7)),
            ),
            (
                &[("x-ratelimit-reset", "1750000007000")],
                Some(Duration::from_secs(7)),
            ),
            (&[("x-ratelimit-reset", "1749999990")], Some(Duration::ZERO)),
            (
                &[("retry-after", "3"), ("x-ratelimit-reset", "9")],
                Some(Duration::from_secs(3)),
            ),
            (
                &[("retry-after", "soon"), ("x-ratelimit-reset", "9")],
                Some(Duration::from_secs(9)),
            ),
            (&[("retry-after", "-1")], None),
            (&[("retry-after", "7.5")], None),
            (&[("retry-after", "99999999999999999999999")], None),
            (&[("x-ratelimit-reset", "-7")], None),
            (&[("x-ratelimit-reset", "1e3")], None),
            (&[("x-ratelimit-reset", "1.2.3")], None),
            (&[("x-ratelimit-reset", "")], None),
            (&[], None),
        ];
        for (pairs, expected) in cases {
            assert_eq!(retry_after(&headers(pairs), now), *expected, "{pairs:?}");
        }
        let overflowing = "9".repeat(400);
        let map = headers(&[("x-ratelimit-reset", &overflowing)]);
        assert_eq!(retry_after(&map, now), None);
    }

    #[test]
    fn non_ascii_header_values_are_ignored() {
        let mut map = HeaderMap::new();
        map.insert(
            "retry-after",
            HeaderValue::from_bytes(b"\xff\xfe7").unwrap(),
        );
        assert_eq!(retry_after(&map, at(0)), None);
    }

    #[test]
    fn json_content_types_are_recognized() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/problem+json",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in [
            "text/html",
            "text/plain; charset=utf-8",
            "",
            "application/jsonp",
        ] {
            assert!(!is_json(bad), "{bad}");
        }
    }

    #[test]
    fn statuses_map_to_their_typed_errors() {
        let no_route = br#"{"error":"No routes found","errorCode":"NO_ROUTES_FOUND"}"#;
        assert!(matches!(
            status_error(StatusCode::BAD_REQUEST, None, no_route),
            JupiterError::NoRoute {
                status: 400,
                code: NoRouteCode::NoRoutesFound,
                ..
            }
        ));
        let other = br#"{"error":"bad amount","errorCode":"INVALID_AMOUNT"}"#;
        assert!(matches!(
            status_error(StatusCode::BAD_REQUEST, None, other),
            JupiterError::BadRequest { status: 400, code: Some(ref c), .. } if c == "INVALID_AMOUNT"
        ));
        // The code must be the errorCode field's whole value, not text elsewhere.
        let mention = br#"{"error":"NO_ROUTES_FOUND","errorCode":"OTHER"}"#;
        assert!(matches!(
            status_error(StatusCode::BAD_REQUEST, None, mention),
            JupiterError::BadRequest { .. }
        ));
        let numeric = br#"{"errorCode":404}"#;
        assert!(matches!(
            status_error(StatusCode::NOT_FOUND, None, numeric),
            JupiterError::BadRequest { code: None, .. }
        ));
        assert!(matches!(
            status_error(StatusCode::TOO_MANY_REQUESTS, Some(Duration::from_secs(2)), b""),
            JupiterError::RateLimited {
                retry_after: Some(d),
                ..
            } if d == Duration::from_secs(2)
        ));
        for status in [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN] {
            assert!(matches!(
                status_error(status, None, b"{}"),
                JupiterError::Unauthorized { .. }
            ));
        }
        for status in [500u16, 502, 503, 504] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(matches!(
                status_error(status, None, b"<html>"),
                JupiterError::Server { .. }
            ));
        }
        assert!(matches!(
            status_error(StatusCode::FOUND, None, b""),
            JupiterError::UnexpectedStatus { status: 302, .. }
        ));
    }
}
