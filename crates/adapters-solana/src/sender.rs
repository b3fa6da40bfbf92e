//! Our own `RpcSender` for `solana-client`'s `RpcClient`: one HTTP POST per call with
//! explicit connect and request timeouts and no retries of any kind.
//!
//! The stock `HttpSender` retries HTTP 429 up to five times and sleeps up to 120 s on
//! `Retry-After`, hidden inside one call: that waiting would run inside the exit
//! deadline. Here a 429 returns at once as [`SolanaError::Http`] with its retry-after,
//! and the caller (the executor's retry policy) decides whether and when to call again.
//! Failures travel through the client as `ClientErrorKind::Middleware` holding the typed
//! [`SolanaError`], which [`crate::error::classify`] downcasts: no text is parsed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde::Deserialize;
use serde_json::Value;
use solana_client::client_error::{ClientError, ClientErrorKind, Result as ClientResult};
use solana_client::rpc_custom_error::NodeUnhealthyErrorData;
use solana_client::rpc_request::{RpcError, RpcRequest, RpcResponseErrorData};
use solana_client::rpc_response::RpcSimulateTransactionResult;
use solana_client::rpc_sender::{RpcSender, RpcTransportStats};

use crate::error::{RPC_PREFLIGHT_FAILURE, SolanaError, classify_reqwest, excerpt};

/// Largest answer accepted, in bytes: far above any method this adapter calls, far below
/// what would hurt the process.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// JSON-RPC code: node unhealthy (its data may say how far behind).
const RPC_NODE_UNHEALTHY: i64 = -32005;

/// An HTTP JSON-RPC transport with no hidden retries.
pub(crate) struct HttpRpcSender {
    client: reqwest::Client,
    url: reqwest::Url,
    /// Sent with every request to `url`, and only there (a send lane's API key).
    headers: HeaderMap,
    request_timeout: Duration,
    next_id: AtomicU64,
    stats: Mutex<RpcTransportStats>,
}

impl HttpRpcSender {
    /// A sender posting to `url` with `client`, whose timeouts are already set;
    /// `request_timeout` is only reported in errors.
    pub(crate) fn new(
        client: reqwest::Client,
        url: reqwest::Url,
        request_timeout: Duration,
    ) -> Self {
        Self {
            client,
            url,
            headers: HeaderMap::new(),
            request_timeout,
            next_id: AtomicU64::new(1),
            stats: Mutex::new(RpcTransportStats::default()),
        }
    }

    /// The same sender, also sending `headers` (values marked sensitive) with each request.
    pub(crate) fn with_headers(self, headers: HeaderMap) -> Self {
        Self { headers, ..self }
    }

    async fn exchange(&self, body: String) -> Result<Value, SolanaError> {
        let response = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| classify_reqwest(&e, Some(self.request_timeout)))?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = retry_after_seconds(response.headers().get(RETRY_AFTER));
            let body = read_body(response, crate::error::EXCERPT_LIMIT, self.request_timeout)
                .await
                .map(|b| excerpt(&b))
                .unwrap_or_default();
            return Err(SolanaError::Http {
                status: status.as_u16(),
                retry_after,
                body,
            });
        }
        let bytes = read_body(response, MAX_RESPONSE_BYTES, self.request_timeout).await?;
        if bytes.len() > MAX_RESPONSE_BYTES {
            return Err(SolanaError::TooLarge {
                limit: MAX_RESPONSE_BYTES,
            });
        }
        serde_json::from_slice::<Value>(&bytes).map_err(|e| {
            if e.is_eof() {
                SolanaError::Truncated {
                    received: bytes.len(),
                }
            } else {
                SolanaError::Malformed {
                    detail: format!("not JSON at line {} column {}", e.line(), e.column()),
                }
            }
        })
    }
}

/// Reads at most `limit + 1` bytes of the body (one more tells "too large").
async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, SolanaError> {
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = (limit + 1).saturating_sub(bytes.len());
                bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if bytes.len() > limit {
                    return Ok(bytes);
                }
            }
            Ok(None) => return Ok(bytes),
            Err(e) if e.is_timeout() => return Err(SolanaError::Timeout { after: timeout }),
            Err(_) => {
                return Err(SolanaError::Truncated {
                    received: bytes.len(),
                });
            }
        }
    }
}

/// `Retry-After` as whole seconds; an HTTP-date or anything else is ignored.
fn retry_after_seconds(value: Option<&reqwest::header::HeaderValue>) -> Option<Duration> {
    let text = value?.to_str().ok()?;
    text.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The JSON-RPC error object.
#[derive(Deserialize)]
struct ErrorObject {
    code: i64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    data: Value,
}

/// Splits a JSON-RPC answer into its result or its typed error, as the stock sender does.
fn interpret(mut answer: Value) -> ClientResult<Value> {
    let Some(object) = answer.as_object_mut() else {
        return Err(middleware(SolanaError::Malformed {
            detail: "answer is not a JSON object".to_owned(),
        }));
    };
    if let Some(error) = object.remove("error").filter(|e| !e.is_null()) {
        let error: ErrorObject = serde_json::from_value(error).map_err(|_| {
            middleware(SolanaError::Malformed {
                detail: "error object without a numeric code".to_owned(),
            })
        })?;
        let data = match error.code {
            RPC_PREFLIGHT_FAILURE => {
                serde_json::from_value::<RpcSimulateTransactionResult>(error.data)
                    .map(RpcResponseErrorData::SendTransactionPreflightFailure)
                    .unwrap_or(RpcResponseErrorData::Empty)
            }
            RPC_NODE_UNHEALTHY => serde_json::from_value::<NodeUnhealthyErrorData>(error.data)
                .map(|d| RpcResponseErrorData::NodeUnhealthy {
                    num_slots_behind: d.num_slots_behind,
                })
                .unwrap_or(RpcResponseErrorData::Empty),
            _ => RpcResponseErrorData::Empty,
        };
        return Err(ClientErrorKind::RpcError(RpcError::RpcResponseError {
            code: error.code,
            message: error.message,
            data,
        })
        .into());
    }
    match object.remove("result") {
        Some(result) => Ok(result),
        None => Err(middleware(SolanaError::Malformed {
            detail: "answer has neither result nor error".to_owned(),
        })),
    }
}

fn middleware(error: SolanaError) -> ClientError {
    ClientErrorKind::Middleware(anyhow::Error::new(error)).into()
}

#[async_trait]
impl RpcSender for HttpRpcSender {
    async fn send(&self, request: RpcRequest, params: Value) -> ClientResult<Value> {
        let started = Instant::now();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = request.build_request_json(id, params).to_string();
        let outcome = self.exchange(body).await;
        if let Ok(mut stats) = self.stats.lock() {
            stats.request_count = stats.request_count.saturating_add(1);
            stats.elapsed_time = stats.elapsed_time.saturating_add(started.elapsed());
        }
        interpret(outcome.map_err(middleware)?)
    }

    fn get_transport_stats(&self) -> RpcTransportStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn url(&self) -> String {
        self.url.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::classify;
    use kyzlo_domain::ErrorClass;
    use serde_json::json;

    fn class_of(answer: Value) -> ErrorClass {
        classify(&interpret(answer).expect_err("an error")).class()
    }

    #[test]
    fn result_is_taken_from_the_answer() {
        let answer = json!({"jsonrpc": "2.0", "id": 1, "result": 42});
        assert_eq!(interpret(answer).ok(), Some(json!(42)));
    }

    #[test]
    fn null_result_is_a_result() {
        let answer = json!({"jsonrpc": "2.0", "id": 1, "result": null});
        assert_eq!(interpret(answer).ok(), Some(Value::Null));
    }

    #[test]
    fn odd_answers_are_malformed_not_panics() {
        assert_eq!(class_of(json!([1, 2])), ErrorClass::Unknown);
        assert_eq!(class_of(json!("text")), ErrorClass::Unknown);
        assert_eq!(class_of(json!({"id": 1})), ErrorClass::Unknown);
        assert_eq!(
            class_of(json!({"error": {"message": "no code"}})),
            ErrorClass::Unknown
        );
        assert_eq!(
            class_of(json!({"error": {"code": "x"}})),
            ErrorClass::Unknown
        );
    }

    #[test]
    fn node_unhealthy_error_keeps_how_far_behind() {
        let answer = json!({"error": {"code": -32005, "message": "Node is behind by 42 slots",
            "data": {"numSlotsBehind": 42}}});
        let error = classify(&interpret(answer).expect_err("an error"));
        assert_eq!(
            error,
            SolanaError::Rpc {
                code: -32005,
                message: "Node is behind by 42 slots".to_owned(),
                slots_behind: Some(42)
            }
        );
    }

    #[test]
    fn preflight_error_carries_the_instruction_error() {
        let answer = json!({"error": {"code": -32002, "message": "simulation failed",
            "data": {"err": {"InstructionError": [2, {"Custom": 6001}]}, "logs": []}}});
        let error = classify(&interpret(answer).expect_err("an error"));
        assert_eq!(error.class(), ErrorClass::SlippageExceeded);
        assert_eq!(error.code(), Some(6001));
    }

    #[test]
    fn preflight_blockhash_not_found_from_its_json_form() {
        let answer = json!({"error": {"code": -32002, "message": "x",
            "data": {"err": "BlockhashNotFound", "logs": []}}});
        let error = classify(&interpret(answer).expect_err("an error"));
        assert_eq!(error.class(), ErrorClass::BlockhashExpired);
    }

    #[test]
    fn retry_after_reads_whole_seconds_only() {
        use reqwest::header::HeaderValue;
        let secs = HeaderValue::from_static("7");
        assert_eq!(
            retry_after_seconds(Some(&secs)),
            Some(Duration::from_secs(7))
        );
        let date = HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(retry_after_seconds(Some(&date)), None);
        assert_eq!(retry_after_seconds(None), None);
    }
}
