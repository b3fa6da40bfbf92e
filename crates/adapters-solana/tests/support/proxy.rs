//! A JSON-RPC fault proxy on 127.0.0.1 between the adapter and the validator: it forwards
//! every call unless a rule for its method (or for every method) says otherwise.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use solana_transaction::versioned::VersionedTransaction;

use super::http::{Reply, Server};

/// What the proxy does instead of plain forwarding.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Waits this long, then forwards (past the client's timeout, the client has left).
    Delay(Duration),
    /// Answers this HTTP status, with a `Retry-After` of these seconds if given.
    Status(u16, Option<u64>),
    /// Answers JSON-RPC -32005, node behind by this many slots.
    NodeUnhealthy(u64),
    /// `sendTransaction`: acknowledges with the signature and drops the transaction.
    DropSend,
    /// `sendTransaction`: acknowledges with the signature now and forwards it this much
    /// later, so it really lands late.
    ForwardLate(Duration),
    /// Forwards, then sends only the first half of the answer (its full length declared).
    CutShort,
    /// Forwards, then sends the first half of the answer with no length, closing to end
    /// it: the HTTP message looks whole, the JSON stops midway.
    HalfJson,
    /// Accepts the request and never answers (closes after this long).
    Stall(Duration),
}

#[derive(Default)]
struct State {
    rules: Vec<(Option<&'static str>, Fault)>,
    seen: Vec<String>,
}

/// A running proxy; stopped when dropped (held-back sends still go out).
pub struct Proxy {
    server: Server,
    state: Arc<Mutex<State>>,
}

impl Proxy {
    /// A proxy forwarding to `upstream`.
    pub async fn start(upstream: reqwest::Url) -> Proxy {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");
        let server = Server::start(Arc::new(move |body: Vec<u8>| {
            let (state, client, upstream) = (shared.clone(), client.clone(), upstream.clone());
            Box::pin(async move { handle(&state, &client, &upstream, body).await })
        }))
        .await;
        Proxy { server, state }
    }

    /// Its URL.
    pub fn url(&self) -> reqwest::Url {
        self.server.url()
    }

    /// Applies `fault` to `method` (`None`: every method) from now on.
    pub fn set(&self, method: Option<&'static str>, fault: Fault) {
        self.state
            .lock()
            .expect("proxy state")
            .rules
            .push((method, fault));
    }

    /// How many calls of `method` arrived.
    pub fn count(&self, method: &str) -> usize {
        self.state
            .lock()
            .expect("proxy state")
            .seen
            .iter()
            .filter(|m| *m == method)
            .count()
    }
}

async fn forward(client: &reqwest::Client, upstream: &reqwest::Url, body: Vec<u8>) -> Reply {
    let sent = client
        .post(upstream.clone())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response
                .bytes()
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default();
            Reply::Full {
                status,
                headers: Vec::new(),
                body,
            }
        }
        Err(_) => Reply::Full {
            status: 502,
            headers: Vec::new(),
            body: Vec::new(),
        },
    }
}

/// The signature of the base64 transaction in `sendTransaction`'s parameters.
fn signature_of(request: &Value) -> Option<String> {
    let encoded = request["params"][0].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let tx: VersionedTransaction = wincode::deserialize(&bytes).ok()?;
    tx.signatures.first().map(ToString::to_string)
}

fn json_reply(value: &Value) -> Reply {
    Reply::Full {
        status: 200,
        headers: Vec::new(),
        body: serde_json::to_vec(value).unwrap_or_default(),
    }
}

async fn handle(
    state: &Mutex<State>,
    client: &reqwest::Client,
    upstream: &reqwest::Url,
    body: Vec<u8>,
) -> Reply {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let method = request["method"].as_str().unwrap_or("").to_owned();
    let fault = {
        let mut state = state.lock().expect("proxy state");
        state.seen.push(method.clone());
        state
            .rules
            .iter()
            .rev()
            .find(|(m, _)| m.is_none_or(|m| m == method))
            .map(|(_, f)| *f)
    };
    let id = request["id"].clone();
    match fault {
        None => forward(client, upstream, body).await,
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            forward(client, upstream, body).await
        }
        Some(Fault::Status(status, retry_after)) => Reply::Full {
            status,
            headers: retry_after
                .map(|s| vec![("Retry-After", s.to_string())])
                .unwrap_or_default(),
            body: b"{}".to_vec(),
        },
        Some(Fault::NodeUnhealthy(behind)) => json_reply(&json!({"jsonrpc": "2.0", "id": id,
            "error": {"code": -32005, "message": format!("Node is behind by {behind} slots"),
                "data": {"numSlotsBehind": behind}}})),
        Some(Fault::DropSend) => match signature_of(&request) {
            Some(signature) => {
                json_reply(&json!({"jsonrpc": "2.0", "id": id, "result": signature}))
            }
            None => forward(client, upstream, body).await,
        },
        Some(Fault::ForwardLate(delay)) => match signature_of(&request) {
            Some(signature) => {
                let (client, upstream) = (client.clone(), upstream.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = forward(&client, &upstream, body).await;
                });
                json_reply(&json!({"jsonrpc": "2.0", "id": id, "result": signature}))
            }
            None => forward(client, upstream, body).await,
        },
        Some(Fault::CutShort) => match forward(client, upstream, body).await {
            Reply::Full { body, .. } => Reply::CutShort { body },
            other => other,
        },
        Some(Fault::HalfJson) => match forward(client, upstream, body).await {
            Reply::Full { body, .. } => Reply::HalfJson { body },
            other => other,
        },
        Some(Fault::Stall(duration)) => Reply::Stall(duration),
    }
}
