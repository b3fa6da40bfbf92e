//! Send lanes through the real `RpcClient` and HTTP sender against wiremock lanes: the same
//! signed bytes to every lane on each send and rebroadcast, one accepting lane enough,
//! every lane's failure combined into one classified error, a lane's headers to that
//! lane only, and `getHealth` reachability for `kyzlo doctor`.

use std::time::{Duration, Instant};

use base64::Engine as _;
use kyzlo_adapters_solana::{
    KeypairSigner, LaneHeader, LaneReach, LanesProbe, NATIVE_MINT, Pubkey, SendLane, SolanaChain,
    SolanaConfig, SolanaError, Tip, TokenPair, Url, probe_lanes,
};
use kyzlo_application::ports::{
    Chain, HealthProbe, SignedTransaction, Signer, UnsignedTransaction, WalletAddress,
};
use kyzlo_domain::ErrorClass;
use serde_json::{Value, json};
use solana_keypair::Keypair;
use solana_transaction::versioned::VersionedTransaction;
use wiremock::matchers::{body_partial_json, header, method};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

const USDC: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";

fn signed_memo(signer: &KeypairSigner) -> SignedTransaction {
    use solana_instruction::{AccountMeta, Instruction};
    use solana_message::{Message, VersionedMessage};
    let payer = signer.pubkey();
    let instruction = Instruction::new_with_bytes(
        Pubkey::new_from_array([9; 32]),
        b"kyzlo lanes",
        vec![AccountMeta::new(payer, true)],
    );
    let message = VersionedMessage::Legacy(Message::new_with_blockhash(
        &[instruction],
        Some(&payer),
        &solana_hash::Hash::new_from_array([4; 32]),
    ));
    let tx = VersionedTransaction {
        signatures: vec![solana_signature::Signature::default()],
        message,
    };
    signer
        .sign(&UnsignedTransaction {
            bytes: wincode::serialize(&tx).expect("serializes"),
            last_valid_block_height: 100,
            priority_fee: None,
        })
        .expect("signs")
}

fn signature_text(tx: &SignedTransaction) -> String {
    solana_signature::Signature::from(tx.signature.0).to_string()
}

/// A lane acknowledging `tx`'s signature to `sendTransaction`.
async fn accepting(tx: &SignedTransaction) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"method": "sendTransaction"})))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"jsonrpc": "2.0", "id": 1, "result": signature_text(tx)})),
        )
        .mount(&server)
        .await;
    server
}

/// A lane answering every request with `status`.
async fn failing(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    server
}

/// A URL nothing listens on.
fn refused_url() -> Url {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    Url::parse(&format!("http://127.0.0.1:{port}/")).expect("URL")
}

fn lane(url: &str, label: &str) -> SendLane {
    SendLane {
        label: label.to_owned(),
        ..SendLane::new(Url::parse(url).expect("URL"))
    }
}

fn chain(endpoint: Url, lanes: Vec<SendLane>, wallet: Pubkey) -> SolanaChain {
    let config = SolanaConfig {
        request_timeout: Duration::from_millis(800),
        connect_timeout: Duration::from_millis(300),
        send_lanes: lanes,
        ..SolanaConfig::new(vec![endpoint])
    };
    SolanaChain::new(
        &config,
        WalletAddress(wallet.to_bytes()),
        TokenPair {
            base: NATIVE_MINT,
            quote: USDC.parse().expect("mint"),
        },
    )
    .expect("valid config")
}

/// The `sendTransaction` bodies `server` received.
async fn sends(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|body| body["method"] == "sendTransaction")
        .collect()
}

/// The `sendTransaction` bodies `server` received, once it has received `count`: a lane
/// still answering when another accepted is not waited for by `send`, but it is sent to.
async fn sends_once(server: &MockServer, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let bodies = sends(server).await;
        if bodies.len() >= count || Instant::now() > deadline {
            return bodies;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The transaction a `sendTransaction` body carries, decoded from its base64.
fn carried(body: &Value) -> VersionedTransaction {
    assert_eq!(body["params"][1]["encoding"], "base64", "{body}");
    assert_eq!(body["params"][1]["maxRetries"], 0, "{body}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body["params"][0].as_str().expect("base64 text"))
        .expect("base64");
    wincode::deserialize(&bytes).expect("a transaction")
}

#[tokio::test]
async fn one_send_and_its_rebroadcast_post_the_same_signed_bytes_to_every_lane() {
    let signer = KeypairSigner::new(Keypair::new());
    let tx = signed_memo(&signer);
    let (a, b, c) = (
        accepting(&tx).await,
        accepting(&tx).await,
        accepting(&tx).await,
    );
    let endpoint = accepting(&tx).await;
    let lanes = vec![
        lane(&a.uri(), "a"),
        SendLane {
            skip_preflight: true,
            ..lane(&b.uri(), "b")
        },
        lane(&c.uri(), "c"),
    ];
    let chain = chain(
        Url::parse(&endpoint.uri()).expect("URL"),
        lanes,
        signer.pubkey(),
    );

    chain.send(&tx).await.expect("sent");
    for (server, skip) in [(&a, false), (&b, true), (&c, false)] {
        let bodies = sends_once(server, 1).await;
        assert_eq!(bodies.len(), 1, "one request per lane per send");
        let sent = carried(&bodies[0]);
        assert_eq!(
            sent.signatures[0].as_ref(),
            &tx.signature.0[..],
            "the signed bytes"
        );
        assert_eq!(
            wincode::serialize(&sent).expect("bytes"),
            tx.bytes.to_vec(),
            "unchanged"
        );
        assert_eq!(
            bodies[0]["params"][1]["skipPreflight"], skip,
            "the lane's own"
        );
    }

    // The executor's rebroadcast: the same transaction sent again reaches every lane again.
    chain.send(&tx).await.expect("rebroadcast");
    for server in [&a, &b, &c] {
        let bodies = sends_once(server, 2).await;
        assert_eq!(bodies.len(), 2);
        assert_eq!(
            bodies[0]["params"][0], bodies[1]["params"][0],
            "the same bytes"
        );
        assert_eq!(
            carried(&bodies[1]).signatures[0].as_ref(),
            &tx.signature.0[..]
        );
    }
    assert!(
        sends(&endpoint).await.is_empty(),
        "with lanes, the read endpoint is not sent to"
    );
}

#[tokio::test]
async fn a_send_succeeds_while_one_lane_accepts_and_the_others_are_down() {
    let signer = KeypairSigner::new(Keypair::new());
    let tx = signed_memo(&signer);
    let (down, up) = (failing(500).await, accepting(&tx).await);
    let lanes = vec![
        lane(&down.uri(), "down"),
        lane(refused_url().as_str(), "refused"),
        lane(&up.uri(), "up"),
    ];
    let chain = chain(refused_url(), lanes, signer.pubkey());
    chain.send(&tx).await.expect("one lane accepted");
    assert_eq!(
        sends_once(&down, 1).await.len(),
        1,
        "the failing lane was sent to"
    );
    assert_eq!(sends_once(&up, 1).await.len(), 1);
}

#[tokio::test]
async fn a_send_returns_at_the_first_acceptance_without_waiting_for_a_stalled_lane() {
    let signer = KeypairSigner::new(Keypair::new());
    let tx = signed_memo(&signer);
    let stalled = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&stalled)
        .await;
    let up = accepting(&tx).await;
    let chain = chain(
        refused_url(),
        vec![lane(&stalled.uri(), "stalled"), lane(&up.uri(), "up")],
        signer.pubkey(),
    );
    let started = Instant::now();
    chain.send(&tx).await.expect("sent");
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "not held up by the stalled lane: {:?}",
        started.elapsed()
    );
    assert_eq!(sends_once(&stalled, 1).await.len(), 1, "yet it was sent to");
}

#[tokio::test]
async fn when_every_lane_fails_the_errors_combine_into_the_most_cautious_class() {
    let signer = KeypairSigner::new(Keypair::new());
    let tx = signed_memo(&signer);
    let preflight = |err: Value| {
        ResponseTemplate::new(200).set_body_json(json!({"jsonrpc": "2.0", "id": 1, "error": {
            "code": -32002, "message": "Transaction simulation failed",
            "data": {"err": err, "logs": []}}}))
    };
    let refusing = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(preflight(json!("BlockhashNotFound")))
        .mount(&refusing)
        .await;

    // Down everywhere: a node failure, classified, with no lane taken as accepting.
    let (a, b) = (failing(500).await, failing(503).await);
    let lanes = vec![
        lane(&a.uri(), "a"),
        lane(&b.uri(), "b"),
        lane(refused_url().as_str(), "c"),
    ];
    let error = chain(refused_url(), lanes, signer.pubkey())
        .send(&tx)
        .await
        .expect_err("no lane accepted");
    assert_eq!(error.operation, "rpc.sendTransaction");
    // The refused connection (Network) outranks the 5xx answers (NodeUnhealthy): a lane
    // that could not be reached is the least informative, so the most cautious.
    assert_eq!(error.class, ErrorClass::Network, "{error}");
    assert!(error.detail.starts_with("c:"), "named by label: {error}");

    // A refusal from one lane and a timeout from another: the bytes may have been
    // forwarded by the one that timed out, so the timeout is what the executor hears.
    let stalled = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&stalled)
        .await;
    let lanes = vec![
        lane(&refusing.uri(), "refusing"),
        lane(&stalled.uri(), "stalled"),
    ];
    let error = chain(refused_url(), lanes, signer.pubkey())
        .send(&tx)
        .await
        .expect_err("no lane accepted");
    assert_eq!(error.class, ErrorClass::RpcTimeout, "{error}");
    assert!(
        error.detail.starts_with("stalled:"),
        "named by label: {error}"
    );

    // Refused by every lane's preflight: the typed refusal, with its code.
    let lanes = vec![lane(&refusing.uri(), "refusing")];
    let error = chain(refused_url(), lanes, signer.pubkey())
        .send(&tx)
        .await
        .expect_err("refused");
    assert_eq!(
        (error.class, error.code),
        (ErrorClass::BlockhashExpired, Some(-32002))
    );

    // A lane that already processed these very bytes accepted them.
    let processed = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(preflight(json!("AlreadyProcessed")))
        .mount(&processed)
        .await;
    let lanes = vec![
        lane(&refusing.uri(), "refusing"),
        lane(&processed.uri(), "seen"),
    ];
    chain(refused_url(), lanes, signer.pubkey())
        .send(&tx)
        .await
        .expect("already processed is success");
}

/// Matches a request without `name`.
struct Without(&'static str);

impl Match for Without {
    fn matches(&self, request: &Request) -> bool {
        !request.headers.contains_key(self.0)
    }
}

#[tokio::test]
async fn a_lanes_headers_reach_that_lane_only() {
    let signer = KeypairSigner::new(Keypair::new());
    let tx = signed_memo(&signer);
    let ack = ResponseTemplate::new(200)
        .set_body_json(json!({"jsonrpc": "2.0", "id": 1, "result": signature_text(&tx)}));
    let keyed = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("x-api-key", "lane-secret-1"))
        .respond_with(ack.clone())
        .mount(&keyed)
        .await;
    let plain = MockServer::start().await;
    Mock::given(method("POST"))
        .and(Without("x-api-key"))
        .respond_with(ack.clone())
        .mount(&plain)
        .await;
    let endpoint = MockServer::start().await;
    Mock::given(method("POST"))
        .and(Without("x-api-key"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"jsonrpc": "2.0", "id": 1, "result": 5})),
        )
        .mount(&endpoint)
        .await;
    let lanes = vec![
        SendLane {
            headers: vec![LaneHeader::new("x-api-key", "lane-secret-1")],
            ..lane(&keyed.uri(), "keyed")
        },
        lane(&plain.uri(), "plain"),
    ];
    let chain = chain(
        Url::parse(&endpoint.uri()).expect("URL"),
        lanes,
        signer.pubkey(),
    );
    chain.send(&tx).await.expect("sent");
    assert_eq!(
        chain.block_height().await,
        Ok(5),
        "reads carry no lane header"
    );
    sends_once(&keyed, 1).await;
    let keyed_got = keyed.received_requests().await.unwrap_or_default();
    assert_eq!(keyed_got.len(), 1);
    assert_eq!(keyed_got[0].headers["x-api-key"], "lane-secret-1");
    let plain_got = {
        sends_once(&plain, 1).await;
        plain.received_requests().await.unwrap_or_default()
    };
    assert_eq!(plain_got.len(), 1);
    assert!(
        !plain_got[0].headers.contains_key("x-api-key"),
        "not to another lane"
    );
    let endpoint_got = endpoint.received_requests().await.unwrap_or_default();
    assert_eq!(endpoint_got.len(), 1);
    assert!(
        !endpoint_got[0].headers.contains_key("x-api-key"),
        "not to a read endpoint"
    );
    assert!(
        !format!("{chain:?}").contains("lane-secret-1"),
        "never in a Debug output"
    );
}

#[tokio::test]
async fn a_tip_to_the_wallet_or_a_mint_of_the_pair_is_refused() {
    let wallet = Pubkey::new_unique();
    for account in [wallet, NATIVE_MINT, USDC.parse().expect("mint")] {
        let config = SolanaConfig {
            send_lanes: vec![SendLane {
                tip: Some(Tip {
                    account,
                    lamports: 1_000,
                }),
                ..lane("https://lane.example/", "tipped")
            }],
            ..SolanaConfig::new(vec![Url::parse("https://rpc.example/").expect("URL")])
        };
        let refused = SolanaChain::new(
            &config,
            WalletAddress(wallet.to_bytes()),
            TokenPair {
                base: NATIVE_MINT,
                quote: USDC.parse().expect("mint"),
            },
        );
        match refused {
            Err(SolanaError::Config { field, .. }) => assert_eq!(field, "send_lanes.tip.account"),
            other => panic!("{account}: expected a config error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn lane_probes_tell_healthy_send_only_refused_and_unreachable_lanes_apart() {
    let healthy = MockServer::start().await;
    Mock::given(body_partial_json(json!({"method": "getHealth"})))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"jsonrpc": "2.0", "id": 1, "result": "ok"})),
        )
        .mount(&healthy)
        .await;
    let send_only = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"jsonrpc": "2.0", "id": 1,
            "error": {"code": -32601, "message": "Method not found"}})),
        )
        .mount(&send_only)
        .await;
    let keyed = MockServer::start().await;
    Mock::given(header("authorization", "Bearer probe-secret"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"jsonrpc": "2.0", "id": 1, "result": "ok"})),
        )
        .mount(&keyed)
        .await;
    let unauthorized = failing(401).await;
    let config = SolanaConfig {
        request_timeout: Duration::from_millis(800),
        connect_timeout: Duration::from_millis(300),
        send_lanes: vec![
            lane(&healthy.uri(), "healthy"),
            lane(&send_only.uri(), "send-only"),
            SendLane {
                headers: vec![LaneHeader::new("authorization", "Bearer probe-secret")],
                ..lane(&keyed.uri(), "keyed")
            },
            lane(&unauthorized.uri(), "unauthorized"),
            lane(refused_url().as_str(), "refused"),
        ],
        ..SolanaConfig::new(vec![refused_url()])
    };
    let probes = probe_lanes(&config).await.expect("valid lanes");
    let reach: Vec<(&str, &LaneReach)> = probes
        .iter()
        .map(|p| (p.label.as_str(), &p.reach))
        .collect();
    assert_eq!(reach[0], ("healthy", &LaneReach::Healthy));
    assert_eq!(reach[1], ("send-only", &LaneReach::NoHealthMethod));
    assert_eq!(reach[2], ("keyed", &LaneReach::Healthy), "with its header");
    assert!(
        matches!(reach[3], ("unauthorized", LaneReach::Failed(e)) if e.code() == Some(401)),
        "{reach:?}"
    );
    assert!(
        matches!(reach[4], ("refused", LaneReach::Failed(e)) if e.class() == ErrorClass::Network),
        "{reach:?}"
    );
    for server in [&healthy, &send_only, &keyed] {
        let bodies: Vec<Value> = server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter_map(|r| serde_json::from_slice(&r.body).ok())
            .collect();
        assert!(
            bodies.iter().all(|b| b["method"] == "getHealth"),
            "nothing but getHealth: {bodies:?}"
        );
    }
}

#[tokio::test]
async fn the_send_paths_probe_passes_while_any_lane_is_reachable_and_fails_when_none_is() {
    let send_only = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"jsonrpc": "2.0", "id": 1,
            "error": {"code": -32601, "message": "Method not found"}})),
        )
        .mount(&send_only)
        .await;
    let down = failing(503).await;
    let with = |lanes: Vec<SendLane>| SolanaConfig {
        request_timeout: Duration::from_millis(800),
        connect_timeout: Duration::from_millis(300),
        send_lanes: lanes,
        ..SolanaConfig::new(vec![refused_url()])
    };
    let one_up = LanesProbe::new(with(vec![
        lane(&down.uri(), "down"),
        lane(&send_only.uri(), "send-only"),
    ]));
    one_up.probe().await.expect("one reachable lane is enough");
    let none_up = LanesProbe::new(with(vec![
        lane(&down.uri(), "down"),
        lane(refused_url().as_str(), "refused"),
    ]));
    let error = none_up.probe().await.expect_err("no lane reachable");
    assert_eq!(error.operation, "lanes.getHealth");
    assert!(
        error.detail.starts_with("down:") || error.detail.starts_with("refused:"),
        "named by its label: {error}"
    );
    // Nothing was sent: only getHealth reached the lanes.
    for request in send_only.received_requests().await.unwrap() {
        let body: Value = request.body_json().unwrap();
        assert_eq!(body["method"], json!("getHealth"));
    }
}
