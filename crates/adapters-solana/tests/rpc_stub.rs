//! The adapter through its real `RpcClient` and HTTP sender against scripted JSON-RPC
//! stubs on loopback: the recorded Jupiter swap's fill, 429/5xx/-32005/cut-short/stalled
//! answers, hedged reads and background probes across two endpoints, and the exact shape of sends,
//! status batches, balances and priority fees.

#[path = "support/http.rs"]
mod http;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::{Reply, Server};
use kyzlo_adapters_solana::{
    KeypairSigner, NATIVE_MINT, Pubkey, SolanaChain, SolanaConfig, TokenPair, Url,
};
use kyzlo_application::ports::Blockhash;
use kyzlo_application::ports::{
    Chain, Commitment, HealthProbe, PortError, Side, Signer, StatusLookup, UnsignedTransaction,
};
use kyzlo_domain::{ErrorClass, Lamports, TokenAmount, TxSignature};
use serde_json::{Value, json};
use solana_keypair::Keypair;

const RECORDED: &[u8] = include_bytes!("fixtures/rpc_getTransaction_jupiter_swap_sol_usdc.json");
const RECORDED_WALLET: &str = "3qAnC3L6xDoTbaL74jLKzQNyhRJc2YJGL7Uu5fxiu9W6";
const USDC: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";

/// What a stub answers to one call.
enum Answer {
    Result(Value),
    RpcError(Value),
    Status(u16, Option<&'static str>),
    Raw(Vec<u8>),
    CutShort(Value),
    HalfJson(Value),
    Stall,
}

type Script = dyn Fn(&str, &Value) -> Answer + Send + Sync;

/// A scripted JSON-RPC endpoint that records every call.
struct Stub {
    server: Server,
    log: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Stub {
    async fn start(script: impl Fn(&str, &Value) -> Answer + Send + Sync + 'static) -> Stub {
        let script: Arc<Script> = Arc::new(script);
        let log = Arc::new(Mutex::new(Vec::new()));
        let calls = log.clone();
        let server = Server::start(Arc::new(move |body: Vec<u8>| {
            let script = script.clone();
            let calls = calls.clone();
            Box::pin(async move {
                let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let method = request["method"].as_str().unwrap_or("").to_owned();
                let params = request["params"].clone();
                calls
                    .lock()
                    .expect("log")
                    .push((method.clone(), params.clone()));
                let envelope = |key: &str, value: Value| {
                    let mut answer = json!({"jsonrpc": "2.0", "id": request["id"].clone()});
                    answer[key] = value;
                    serde_json::to_vec(&answer).expect("JSON")
                };
                match script(&method, &params) {
                    Answer::Result(value) => full(200, vec![], envelope("result", value)),
                    Answer::RpcError(error) => full(200, vec![], envelope("error", error)),
                    Answer::Status(status, retry_after) => full(
                        status,
                        retry_after
                            .map(|r| vec![("Retry-After", r.to_owned())])
                            .unwrap_or_default(),
                        b"{\"message\":\"slow down\"}".to_vec(),
                    ),
                    Answer::Raw(body) => full(200, vec![], body),
                    Answer::CutShort(value) => Reply::CutShort {
                        body: envelope("result", value),
                    },
                    Answer::HalfJson(value) => Reply::HalfJson {
                        body: envelope("result", value),
                    },
                    Answer::Stall => Reply::Stall(Duration::from_secs(5)),
                }
            })
        }))
        .await;
        Stub { server, log }
    }

    fn url(&self) -> Url {
        self.server.url()
    }

    fn calls(&self, method: &str) -> Vec<Value> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, p)| p.clone())
            .collect()
    }
}

fn full(status: u16, headers: Vec<(&'static str, String)>, body: Vec<u8>) -> Reply {
    Reply::Full {
        status,
        headers,
        body,
    }
}

fn config(endpoints: Vec<Url>) -> SolanaConfig {
    SolanaConfig {
        request_timeout: Duration::from_millis(400),
        connect_timeout: Duration::from_millis(200),
        ..SolanaConfig::new(endpoints)
    }
}

fn pair() -> TokenPair {
    TokenPair {
        base: NATIVE_MINT,
        quote: USDC.parse().expect("mint"),
    }
}

fn chain_for(config: &SolanaConfig, wallet: &Pubkey) -> SolanaChain {
    SolanaChain::new(
        config,
        kyzlo_application::ports::WalletAddress(wallet.to_bytes()),
        pair(),
    )
    .expect("valid config")
}

fn chain(stubs: &[&Stub]) -> SolanaChain {
    chain_for(
        &config(stubs.iter().map(|s| s.url()).collect()),
        &RECORDED_WALLET.parse().expect("wallet"),
    )
}

fn block_height_is(height: u64) -> impl Fn(&str, &Value) -> Answer {
    move |method, _| match method {
        "getBlockHeight" => Answer::Result(json!(height)),
        _ => Answer::RpcError(json!({"code": -32601, "message": "Method not found"})),
    }
}

fn expect_class(result: Result<u64, PortError>, class: ErrorClass) -> PortError {
    let error = result.expect_err("an error");
    assert_eq!(error.class, class, "{error}");
    error
}

#[tokio::test]
async fn fill_of_the_recorded_jupiter_swap_served_over_json_rpc() {
    let stub = Stub::start(|_, _| Answer::Raw(RECORDED.to_vec())).await;
    let signature = TxSignature([1; 64]);
    let fill = chain(&[&stub])
        .fill(signature, Side::Sell)
        .await
        .expect("answer")
        .expect("landed");
    assert_eq!(fill.amount_in, TokenAmount::new(39_600_000));
    assert_eq!(fill.amount_out, TokenAmount::new(5_300_650));
    assert_eq!(fill.fee, Lamports::new(8_214));
    let params = &stub.calls("getTransaction")[0];
    assert_eq!(params[1]["encoding"], "jsonParsed");
    assert_eq!(params[1]["maxSupportedTransactionVersion"], 0);
    assert_eq!(params[1]["commitment"], "confirmed");
}

#[tokio::test]
async fn fill_of_an_unknown_signature_is_none() {
    let stub = Stub::start(|_, _| Answer::Result(Value::Null)).await;
    let fill = chain(&[&stub]).fill(TxSignature([2; 64]), Side::Sell).await;
    assert_eq!(fill, Ok(None));
}

#[tokio::test]
async fn http_429_returns_at_once_as_rate_limited_with_its_retry_after() {
    let stub = Stub::start(|_, _| Answer::Status(429, Some("30"))).await;
    let started = Instant::now();
    let error = expect_class(
        chain(&[&stub]).block_height().await,
        ErrorClass::RateLimited,
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no hidden waiting"
    );
    assert_eq!(error.retry_after, Some(Duration::from_secs(30)));
    assert_eq!(error.code, Some(429));
    assert_eq!(stub.calls("getBlockHeight").len(), 1, "no hidden retries");
}

#[tokio::test]
async fn http_500_is_node_unhealthy_with_the_status_as_code() {
    let stub = Stub::start(|_, _| Answer::Status(500, None)).await;
    let error = expect_class(
        chain(&[&stub]).block_height().await,
        ErrorClass::NodeUnhealthy,
    );
    assert_eq!(error.code, Some(500));
}

#[tokio::test]
async fn json_rpc_node_unhealthy_is_node_unhealthy_with_its_code() {
    let stub = Stub::start(|_, _| {
        Answer::RpcError(
            json!({"code": -32005, "message": "Node is behind by 120 slots",
            "data": {"numSlotsBehind": 120}}),
        )
    })
    .await;
    let error = expect_class(
        chain(&[&stub]).block_height().await,
        ErrorClass::NodeUnhealthy,
    );
    assert_eq!(error.code, Some(-32005));
}

#[tokio::test]
async fn an_answer_cut_short_is_a_network_failure() {
    let cut = Stub::start(|_, _| Answer::CutShort(json!(123_456_789))).await;
    expect_class(chain(&[&cut]).block_height().await, ErrorClass::Network);
    let half = Stub::start(|_, _| Answer::HalfJson(json!({"value": [1, 2, 3, 4, 5, 6]}))).await;
    expect_class(chain(&[&half]).block_height().await, ErrorClass::Network);
}

#[tokio::test]
async fn a_stalled_endpoint_times_out_within_the_request_timeout() {
    let stub = Stub::start(|_, _| Answer::Stall).await;
    let started = Instant::now();
    expect_class(chain(&[&stub]).block_height().await, ErrorClass::RpcTimeout);
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_network_failure() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let url = Url::parse(&format!("http://127.0.0.1:{port}/")).expect("URL");
    let chain = chain_for(&config(vec![url]), &Pubkey::new_from_array([3; 32]));
    expect_class(chain.block_height().await, ErrorClass::Network);
}

#[tokio::test]
async fn wrong_types_and_garbage_get_a_class_not_a_panic() {
    let cases: Vec<(Answer, ErrorClass)> = vec![
        (Answer::Result(json!("not a number")), ErrorClass::Unknown),
        (Answer::Result(json!(-5)), ErrorClass::Unknown),
        (Answer::Result(Value::Null), ErrorClass::Unknown),
        (
            Answer::Raw(b"<html>gateway</html>".to_vec()),
            ErrorClass::Unknown,
        ),
        (Answer::Raw(b"[1,2,3]".to_vec()), ErrorClass::Unknown),
        (
            Answer::Raw(b"{\"error\": {\"code\": \"x\"}}".to_vec()),
            ErrorClass::Unknown,
        ),
        // An empty or unfinished JSON body is an answer cut short.
        (Answer::Raw(Vec::new()), ErrorClass::Network),
        (
            Answer::Raw(b"{\"jsonrpc\":\"2.0\",\"res".to_vec()),
            ErrorClass::Network,
        ),
        (Answer::Status(404, None), ErrorClass::Unknown),
    ];
    for (answer, class) in cases {
        let answer = Arc::new(Mutex::new(Some(answer)));
        let stub = Stub::start(move |_, _| {
            answer
                .lock()
                .expect("lock")
                .take()
                .unwrap_or(Answer::Result(Value::Null))
        })
        .await;
        expect_class(chain(&[&stub]).block_height().await, class);
    }
}

#[tokio::test]
async fn a_huge_answer_is_refused() {
    let huge = vec![b' '; kyzlo_adapters_solana::MAX_RESPONSE_BYTES + 10];
    let stub = Stub::start(move |_, _| Answer::Raw(huge.clone())).await;
    expect_class(chain(&[&stub]).block_height().await, ErrorClass::Unknown);
}

#[tokio::test]
async fn a_read_the_first_endpoint_leaves_unanswered_is_hedged_to_the_second_and_both_are_probed() {
    let stalled = Stub::start(|_, _| Answer::Stall).await;
    let healthy = Stub::start(|method, _| match method {
        "getSlot" => Answer::Result(json!(1_000)),
        _ => Answer::Result(json!(42)),
    })
    .await;
    let chain = chain(&[&stalled, &healthy]);
    let started = Instant::now();
    assert_eq!(chain.block_height().await, Ok(42));
    let took = started.elapsed();
    // Sent to the second endpoint after the hedge delay (200 ms), answered long before
    // the first one's request timeout (400 ms here).
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_millis(400),
        "{took:?}"
    );
    assert_eq!(stalled.calls("getBlockHeight").len(), 1);
    assert_eq!(healthy.calls("getBlockHeight").len(), 1);
    // The prober, started by the first call, asked each endpoint its slot; only the
    // second has answered yet.
    assert_eq!(stalled.calls("getSlot").len(), 1);
    assert_eq!(healthy.calls("getSlot").len(), 1);
    let status = chain.endpoint_status();
    assert_eq!((status[0].slot, status[1].slot), (None, Some(1_000)));
}

#[tokio::test]
async fn when_every_endpoint_is_cooling_they_are_still_tried() {
    let calls = Arc::new(Mutex::new(0_u32));
    let counter = calls.clone();
    let stub = Stub::start(move |_, _| {
        let mut n = counter.lock().expect("lock");
        *n += 1;
        if *n == 1 {
            Answer::Status(502, None)
        } else {
            Answer::Result(json!(9))
        }
    })
    .await;
    let chain = chain(&[&stub]);
    expect_class(chain.block_height().await, ErrorClass::NodeUnhealthy);
    assert_eq!(chain.block_height().await, Ok(9));
    assert_eq!(
        chain.endpoint_status()[0].cooling_for,
        None,
        "success clears it"
    );
}

#[tokio::test]
async fn a_node_error_answer_is_returned_not_failed_over() {
    let refusing =
        Stub::start(|_, _| Answer::RpcError(json!({"code": -32602, "message": "Invalid params"})))
            .await;
    let other = Stub::start(block_height_is(1)).await;
    let chain = chain(&[&refusing, &other]);
    let error = expect_class(chain.block_height().await, ErrorClass::Unknown);
    assert_eq!(error.code, Some(-32602));
    assert!(other.calls("getBlockHeight").is_empty());
}

fn signed_memo(signer: &KeypairSigner) -> kyzlo_application::ports::SignedTransaction {
    use solana_instruction::{AccountMeta, Instruction};
    use solana_message::{Message, VersionedMessage};
    use solana_transaction::versioned::VersionedTransaction;
    let payer = signer.pubkey();
    let instruction = Instruction::new_with_bytes(
        Pubkey::new_from_array([9; 32]),
        b"kyzlo",
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

fn acknowledging(params: &Value) -> Answer {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(params[0].as_str().unwrap_or(""))
        .unwrap_or_default();
    let tx: solana_transaction::versioned::VersionedTransaction = match wincode::deserialize(&bytes)
    {
        Ok(tx) => tx,
        Err(_) => return Answer::RpcError(json!({"code": -32602, "message": "bad tx"})),
    };
    Answer::Result(json!(tx.signatures[0].to_string()))
}

#[tokio::test]
async fn send_posts_the_exact_bytes_once_with_max_retries_zero_and_configured_preflight() {
    let stub = Stub::start(|_, params| acknowledging(params)).await;
    let signer = KeypairSigner::new(Keypair::new());
    let tx = signed_memo(&signer);
    chain(&[&stub]).send(&tx).await.expect("sent");
    let calls = stub.calls("sendTransaction");
    assert_eq!(calls.len(), 1);
    let sent = base64::engine::general_purpose::STANDARD
        .decode(calls[0][0].as_str().expect("base64 text"))
        .expect("base64");
    assert_eq!(sent, tx.bytes.to_vec(), "the same bytes");
    assert_eq!(calls[0][1]["encoding"], "base64");
    assert_eq!(calls[0][1]["maxRetries"], 0);
    assert_eq!(calls[0][1]["skipPreflight"], false);
    assert_eq!(calls[0][1]["preflightCommitment"], "confirmed");

    let skipping = SolanaConfig {
        skip_preflight: true,
        commitment: Commitment::Finalized,
        ..config(vec![stub.url()])
    };
    chain_for(&skipping, &signer.pubkey())
        .send(&tx)
        .await
        .expect("sent");
    let calls = stub.calls("sendTransaction");
    assert_eq!(calls[1][1]["skipPreflight"], true);
    assert_eq!(calls[1][1]["preflightCommitment"], "finalized");
}

#[tokio::test]
async fn send_maps_preflight_failures_and_takes_already_processed_as_success() {
    let cases: Vec<(Value, Option<(ErrorClass, i64)>)> = vec![
        (json!("AlreadyProcessed"), None),
        (
            json!("BlockhashNotFound"),
            Some((ErrorClass::BlockhashExpired, -32002)),
        ),
        (
            json!("InsufficientFundsForFee"),
            Some((ErrorClass::InsufficientFunds, -32002)),
        ),
        (
            json!({"InstructionError": [3, {"Custom": 6001}]}),
            Some((ErrorClass::SlippageExceeded, 6001)),
        ),
        (
            json!({"InstructionError": [0, {"Custom": 1}]}),
            Some((ErrorClass::LandedFailed, 1)),
        ),
    ];
    let signer = KeypairSigner::new(Keypair::new());
    let tx = signed_memo(&signer);
    for (err, expected) in cases {
        let data = json!({"err": err, "logs": ["Program log: x"], "accounts": null,
            "unitsConsumed": 0});
        let stub = Stub::start(move |_, _| {
            Answer::RpcError(json!({"code": -32002,
                "message": "Transaction simulation failed", "data": data.clone()}))
        })
        .await;
        let outcome = chain(&[&stub]).send(&tx).await;
        match expected {
            None => assert_eq!(outcome, Ok(()), "{err}"),
            Some((class, code)) => {
                let error = outcome.expect_err("refused");
                assert_eq!((error.class, error.code), (class, Some(code)), "{err}");
            }
        }
    }
}

#[tokio::test]
async fn send_acknowledged_with_another_signature_is_an_error() {
    let stub = Stub::start(|_, _| {
        Answer::Result(json!(
            solana_signature::Signature::from([7; 64]).to_string()
        ))
    })
    .await;
    let signer = KeypairSigner::new(Keypair::new());
    let error = chain(&[&stub])
        .send(&signed_memo(&signer))
        .await
        .expect_err("mismatch");
    assert_eq!(error.class, ErrorClass::Unknown);
}

#[tokio::test]
async fn without_send_lanes_a_failing_endpoint_fails_over_with_the_same_bytes() {
    let failing = Stub::start(|_, _| Answer::Status(500, None)).await;
    let accepting = Stub::start(|_, params| acknowledging(params)).await;
    let signer = KeypairSigner::new(Keypair::new());
    let tx = signed_memo(&signer);
    chain_for(
        &config(vec![failing.url(), accepting.url()]),
        &signer.pubkey(),
    )
    .send(&tx)
    .await
    .expect("sent");
    let (a, b) = (
        failing.calls("sendTransaction"),
        accepting.calls("sendTransaction"),
    );
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_eq!(a[0][0], b[0][0], "the same bytes to both");
}

#[tokio::test]
async fn a_send_that_times_out_fails_over_with_the_same_bytes() {
    let stalled = Stub::start(|_, _| Answer::Stall).await;
    let accepting = Stub::start(|_, params| acknowledging(params)).await;
    let signer = KeypairSigner::new(Keypair::new());
    let tx = signed_memo(&signer);
    let chain = chain_for(
        &config(vec![stalled.url(), accepting.url()]),
        &signer.pubkey(),
    );
    chain.send(&tx).await.expect("sent via the second");
    assert_eq!(
        stalled.calls("sendTransaction")[0][0],
        accepting.calls("sendTransaction")[0][0]
    );
}

#[tokio::test]
async fn blockhash_validity_is_asked_at_a_minimum_context_slot_and_keeps_the_answers_slot() {
    let stub = Stub::start(|method, params| {
        assert_eq!(method, "isBlockhashValid");
        let config = &params[1];
        let value = config["minContextSlot"] == json!(42) && config["commitment"] == "confirmed";
        Answer::Result(json!({"context": {"slot": 77}, "value": !value}))
    })
    .await;
    let chain = chain(&[&stub]);
    let answer = chain
        .blockhash_valid(kyzlo_application::ports::Blockhash([3; 32]), 42)
        .await
        .expect("answer");
    assert_eq!(answer.context_slot, 77);
    assert!(!answer.value, "asked with minContextSlot 42 at confirmed");
    let calls = stub.calls("isBlockhashValid");
    assert_eq!(
        calls[0][0],
        json!(solana_hash::Hash::new_from_array([3; 32]).to_string())
    );
}

#[tokio::test]
async fn statuses_go_in_batches_of_256_with_history_only_when_asked() {
    let stub = Stub::start(|_, params| {
        let n = params[0].as_array().map_or(0, Vec::len);
        let mut values = vec![Value::Null; n];
        if n > 0 {
            values[0] = json!({"slot": 5, "confirmations": 1, "err": null,
                "status": {"Ok": null}, "confirmationStatus": "confirmed"});
        }
        Answer::Result(json!({"context": {"slot": 9}, "value": values}))
    })
    .await;
    let signatures: Vec<TxSignature> = (0..300_u16)
        .map(|i| {
            let mut bytes = [0_u8; 64];
            bytes[..2].copy_from_slice(&i.to_le_bytes());
            TxSignature(bytes)
        })
        .collect();
    let chain = chain(&[&stub]);
    let observed = chain
        .statuses(&signatures, StatusLookup::Recent)
        .await
        .expect("statuses");
    assert_eq!(
        observed.context_slot, 9,
        "the answers' context slot is kept"
    );
    let statuses = observed.value;
    assert_eq!(statuses.len(), 300);
    assert_eq!(
        statuses[0].map(|s| (s.slot, s.commitment)),
        Some((5, Commitment::Confirmed))
    );
    assert_eq!(statuses[1], None);
    assert_eq!(
        statuses[256].map(|s| s.slot),
        Some(5),
        "first of the second batch"
    );
    let calls = stub.calls("getSignatureStatuses");
    let sizes: Vec<usize> = calls
        .iter()
        .map(|p| p[0].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(sizes, vec![256, 44]);
    assert_eq!(
        calls[0][0][1],
        json!(solana_signature::Signature::from(signatures[1].0).to_string())
    );
    assert!(
        calls[0].get(1).is_none(),
        "no history search for a recent look-up"
    );

    chain
        .statuses(&signatures[..1], StatusLookup::WithHistory)
        .await
        .expect("statuses");
    let calls = stub.calls("getSignatureStatuses");
    assert_eq!(calls[2][1]["searchTransactionHistory"], true);
}

#[tokio::test]
async fn a_status_answer_of_the_wrong_length_is_refused() {
    let stub =
        Stub::start(|_, _| Answer::Result(json!({"context": {"slot": 1}, "value": [null]}))).await;
    let error = chain(&[&stub])
        .statuses(
            &[TxSignature([1; 64]), TxSignature([2; 64])],
            StatusLookup::Recent,
        )
        .await
        .expect_err("two asked, one answered");
    assert_eq!(error.class, ErrorClass::Unknown);
}

fn token_account(mint: &str, amount: &str) -> Value {
    json!({"pubkey": Pubkey::new_unique().to_string(), "account": {
        "lamports": 2_039_280, "owner": "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
        "executable": false, "rentEpoch": 0, "space": 165,
        "data": {"program": "spl-token", "space": 165, "parsed": {"type": "account", "info": {
            "mint": mint, "owner": RECORDED_WALLET, "isNative": false, "state": "initialized",
            "tokenAmount": {"amount": amount, "decimals": 6, "uiAmount": 1.0, "uiAmountString": "1"}}}}}})
}

#[tokio::test]
async fn balances_count_wrapped_sol_with_native_sol_for_a_sol_base() {
    let native = NATIVE_MINT.to_string();
    let stub = Stub::start(move |method, params| match method {
        "getBalance" => Answer::Result(json!({"context": {"slot": 1}, "value": 5_000_000_000_u64})),
        "getTokenAccountsByOwner" => {
            let accounts = if params[1]["mint"] == USDC {
                vec![token_account(USDC, "1500000"), token_account(USDC, "250")]
            } else if params[1]["programId"] == "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA" {
                // Every Token account of the wallet: only the wrapped SOL ones count.
                vec![token_account(&native, "40"), token_account(USDC, "999")]
            } else {
                return Answer::RpcError(json!({"code": -32602,
                    "message": "Invalid param: could not find mint"}));
            };
            Answer::Result(json!({"context": {"slot": 1}, "value": accounts}))
        }
        _ => Answer::RpcError(json!({"code": -32601, "message": "Method not found"})),
    })
    .await;
    let balances = chain(&[&stub]).balances().await.expect("balances");
    assert_eq!(balances.fee_lamports, Lamports::new(5_000_000_000));
    assert_eq!(balances.base, TokenAmount::new(5_000_000_040));
    assert_eq!(balances.quote, TokenAmount::new(1_500_250));
    let asked = stub.calls("getTokenAccountsByOwner");
    assert_eq!(asked.len(), 2);
    assert!(asked.iter().all(|p| p[0] == RECORDED_WALLET));
    assert!(asked.iter().all(|p| p[2]["encoding"] == "jsonParsed"));
    assert!(asked.iter().all(|p| p[2]["commitment"] == "confirmed"));
}

#[tokio::test]
async fn balances_of_a_misconfigured_mint_are_an_error_not_zero() {
    let stub = Stub::start(|method, params| match method {
        "getBalance" => Answer::Result(json!({"context": {"slot": 1}, "value": 1_u64})),
        "getTokenAccountsByOwner" if params[1]["mint"].is_string() => Answer::RpcError(
            json!({"code": -32602, "message": "Invalid param: could not find mint"}),
        ),
        _ => Answer::Result(json!({"context": {"slot": 1}, "value": []})),
    })
    .await;
    let error = chain(&[&stub]).balances().await.expect_err("no such mint");
    assert_eq!(
        (error.class, error.code),
        (ErrorClass::Unknown, Some(-32602))
    );
}

#[tokio::test]
async fn priority_fee_is_the_75th_percentile_of_recent_fees_for_the_accounts() {
    let stub = Stub::start(|_, _| {
        let fees: Vec<Value> = (1..=8_u64)
            .map(|i| json!({"slot": i, "prioritizationFee": i * 100}))
            .collect();
        Answer::Result(Value::Array(fees))
    })
    .await;
    let chain = chain(&[&stub]);
    let accounts = [Pubkey::new_unique(), Pubkey::new_unique()];
    let fee = chain.priority_fee(&accounts, 75).await.expect("fee");
    assert_eq!(fee.micro_lamports_per_cu, 600);
    assert_eq!(fee.slots_sampled, 8);
    let asked = stub.calls("getRecentPrioritizationFees");
    assert_eq!(
        asked[0][0],
        json!([accounts[0].to_string(), accounts[1].to_string()])
    );

    let too_many: Vec<Pubkey> = (0..129).map(|_| Pubkey::new_unique()).collect();
    assert!(chain.priority_fee(&too_many, 75).await.is_err());
    assert_eq!(
        stub.calls("getRecentPrioritizationFees").len(),
        1,
        "refused locally"
    );
}

#[tokio::test]
async fn probe_blockhash_validity_and_latest_blockhash_use_their_methods() {
    let blockhash = solana_hash::Hash::new_from_array([8; 32]);
    let stub = Stub::start(move |method, _| match method {
        "getSlot" => Answer::Result(json!(77)),
        "isBlockhashValid" => Answer::Result(json!({"context": {"slot": 1}, "value": false})),
        "getLatestBlockhash" => Answer::Result(json!({"context": {"slot": 1},
            "value": {"blockhash": blockhash.to_string(), "lastValidBlockHeight": 1234}})),
        _ => Answer::RpcError(json!({"code": -32601, "message": "Method not found"})),
    })
    .await;
    let chain = chain(&[&stub]);
    assert_eq!(chain.probe().await, Ok(()));
    let valid = chain
        .blockhash_valid(Blockhash(blockhash.to_bytes()), 0)
        .await
        .expect("answer");
    assert_eq!((valid.context_slot, valid.value), (1, false));
    let latest = chain.newest_blockhash().await.expect("latest");
    assert_eq!(
        (latest.blockhash, latest.last_valid_block_height),
        (blockhash, 1234)
    );
    assert_eq!(
        stub.calls("isBlockhashValid")[0][1]["commitment"],
        "confirmed"
    );
}
